//! Inputs: stdin (read on its own thread in large blocks, cut into lines of at most
//! --max-line-bytes) and files (the shared tailing engine, `common::tail`), both delivered as
//! [`Batch`]es on one channel.
use std::io::Read;

use common::tail::Chunk;
use tokio::sync::mpsc;

use crate::pipeline::Flags;

/// Lines for the pipeline.
#[derive(Debug)]
pub enum Batch {
    /// One or more `\n`-terminated lines from stdin (the last may lack its `\n` at EOF).
    Text {
        /// The lines.
        text: String,
        /// Flags for every line of the batch.
        flags: Flags,
    },
    /// Lines of one file.
    Chunk(Chunk),
}

const READ_SIZE: usize = 64 * 1024;

/// Reads stdin on a thread until EOF or until the receiver is gone.
pub fn spawn_stdin(tx: mpsc::Sender<Batch>, max_line_bytes: usize) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            if let Err(error) = read_lines(&mut lock, &tx, max_line_bytes) {
                tracing::error!(%error, "cannot read stdin");
            }
        })
        .map(|_| ())
}

/// Cuts `input` into batches of whole lines; lines longer than `max` become pieces marked
/// truncated. Returns at EOF (or when the receiver is dropped).
pub fn read_lines(
    input: &mut impl Read,
    tx: &mpsc::Sender<Batch>,
    max: usize,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_SIZE * 2);
    let mut tmp = vec![0u8; READ_SIZE];
    // True while the line at the start of `buf` continues a cut over-long line.
    let mut in_long = false;
    loop {
        let n = match input.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = memchr::memrchr(b'\n', &buf) {
            let rest = buf.split_off(p + 1);
            let lines = std::mem::replace(&mut buf, rest);
            if !send_complete(tx, lines, max, &mut in_long) {
                return Ok(());
            }
        }
        while buf.len() > max {
            let cut = char_boundary(&buf, max);
            let rest = buf.split_off(cut);
            let mut piece = std::mem::replace(&mut buf, rest);
            piece.push(b'\n');
            if !send(tx, piece, true) {
                return Ok(());
            }
            in_long = true;
        }
    }
    if !buf.is_empty() {
        buf.push(b'\n');
        send_complete(tx, buf, max, &mut in_long);
    }
    Ok(())
}

/// The largest cut at or below `max` that does not split a UTF-8 character.
fn char_boundary(b: &[u8], max: usize) -> usize {
    let mut cut = max.min(b.len());
    while cut > max.saturating_sub(3) && cut > 0 && cut < b.len() && (b[cut] & 0xc0) == 0x80 {
        cut -= 1;
    }
    if cut == 0 {
        max.min(b.len())
    } else {
        cut
    }
}

/// Sends `\n`-terminated lines, cutting those longer than `max` (and the rest of a cut line).
fn send_complete(tx: &mpsc::Sender<Batch>, lines: Vec<u8>, max: usize, in_long: &mut bool) -> bool {
    let mut start = 0;
    let mut batch_start = 0;
    for nl in memchr::memchr_iter(b'\n', &lines) {
        let len = nl - start;
        if *in_long || len > max {
            if batch_start < start && !send(tx, lines[batch_start..start].to_vec(), false) {
                return false;
            }
            let mut line = &lines[start..nl];
            while !line.is_empty() {
                let cut = if line.len() > max {
                    char_boundary(line, max)
                } else {
                    line.len()
                };
                let mut piece = line[..cut].to_vec();
                piece.push(b'\n');
                if !send(tx, piece, true) {
                    return false;
                }
                line = &line[cut..];
            }
            *in_long = false;
            batch_start = nl + 1;
        }
        start = nl + 1;
    }
    if batch_start == 0 {
        return send(tx, lines, false);
    }
    batch_start >= lines.len() || send(tx, lines[batch_start..].to_vec(), false)
}

/// Sends `bytes` as text; invalid UTF-8 is replaced line by line. False when nobody listens.
fn send(tx: &mpsc::Sender<Batch>, bytes: Vec<u8>, truncated: bool) -> bool {
    match String::from_utf8(bytes) {
        Ok(text) => tx
            .blocking_send(Batch::Text {
                text,
                flags: Flags {
                    invalid_utf8: false,
                    truncated,
                },
            })
            .is_ok(),
        Err(e) => {
            let bytes = e.into_bytes();
            for line in bytes.split_inclusive(|&b| b == b'\n') {
                let (text, invalid) = match std::str::from_utf8(line) {
                    Ok(s) => (s.to_string(), false),
                    Err(_) => (String::from_utf8_lossy(line).into_owned(), true),
                };
                let flags = Flags {
                    invalid_utf8: invalid,
                    truncated,
                };
                if tx.blocking_send(Batch::Text { text, flags }).is_err() {
                    return false;
                }
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max: usize) -> Vec<(String, Flags)> {
        let (tx, mut rx) = mpsc::channel(1024);
        let mut r = input;
        read_lines(&mut r, &tx, max).unwrap();
        drop(tx);
        let mut out = Vec::new();
        while let Ok(Batch::Text { text, flags }) = rx.try_recv() {
            for l in text.split_terminator('\n') {
                out.push((l.to_string(), flags));
            }
        }
        out
    }

    #[test]
    fn lines_long_lines_and_bad_utf8() {
        let plain = Flags::default();
        let cut = Flags {
            truncated: true,
            ..plain
        };
        let bad = Flags {
            invalid_utf8: true,
            ..plain
        };
        let got = collect(b"a\nbb\n0123456789abc\nd\xffe\nlast", 8);
        assert_eq!(
            got,
            vec![
                ("a".into(), plain),
                ("bb".into(), plain),
                ("01234567".into(), cut),
                ("89abc".into(), cut),
                ("d\u{fffd}e".into(), bad),
                ("last".into(), plain),
            ]
        );
        // A multi-byte character is never split.
        let got = collect("ééééé\n".as_bytes(), 5);
        assert!(
            got.len() > 1 && got.iter().all(|(_, f)| f.truncated),
            "{got:?}"
        );
        assert!(got.iter().all(|(l, _)| !l.contains('\u{fffd}')), "{got:?}");
        assert_eq!(
            got.iter().map(|(l, _)| l.as_str()).collect::<String>(),
            "ééééé"
        );
    }
}
