//! Splitting blocks of bytes into lines: the hot path.
//!
//! Blocks are scanned for `'\n'` with memchr; a complete line that fits is turned into a
//! [`Line`] straight from the block (one allocation, its text). Bytes after the last newline
//! are held in `pending` until the newline arrives, the partial-line timeout flushes them, or
//! they exceed `max_line_bytes` (then pieces of at most that size are emitted, marked
//! `truncated`, cut at a UTF-8 character boundary where possible). Memory per file is thus
//! bounded by `max_line_bytes`, whatever the line length.
use super::Line;

/// Line splitter of one file.
#[derive(Debug)]
pub struct Splitter {
    max: usize,
    /// Bytes of the current line not yet emitted.
    pending: Vec<u8>,
    /// File offset of the first byte not yet emitted (`pending[0]`).
    emitted_end: u64,
    /// Pieces of the current line were already emitted because it is too long.
    cont: bool,
}

impl Splitter {
    /// A splitter whose next byte is at `offset` in the file.
    pub fn new(max_line_bytes: usize, offset: u64) -> Self {
        Self {
            max: max_line_bytes.max(1),
            pending: Vec::new(),
            emitted_end: offset,
            cont: false,
        }
    }

    /// File offset just after the last emitted line (where an acknowledged prefix may end).
    pub(crate) fn emitted_end(&self) -> u64 {
        self.emitted_end
    }

    /// File offset of the next byte to read.
    pub(crate) fn read_end(&self) -> u64 {
        self.emitted_end + self.pending.len() as u64
    }

    /// Bytes held waiting for their newline.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Splits `data` (the bytes at `read_end()`) into lines appended to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Line>) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            let seg = &data[start..nl];
            if self.pending.is_empty() && !self.cont && seg.len() <= self.max {
                out.push(line(self.emitted_end, seg, false, false));
                self.emitted_end += seg.len() as u64 + 1;
            } else {
                self.finish_line(seg, out);
            }
            start = nl + 1;
        }
        if start < data.len() {
            self.pending.extend_from_slice(&data[start..]);
            self.cut_long(out);
        }
    }

    /// Ends the current line (pending bytes + `seg`) at a newline.
    fn finish_line(&mut self, seg: &[u8], out: &mut Vec<Line>) {
        if self.pending.is_empty() {
            let mut rest = seg;
            while rest.len() > self.max {
                let cut = cut_point(rest, self.max);
                out.push(line(self.emitted_end, &rest[..cut], true, false));
                self.emitted_end += cut as u64;
                self.cont = true;
                rest = &rest[cut..];
            }
            out.push(line(self.emitted_end, rest, self.cont, false));
            self.emitted_end += rest.len() as u64 + 1;
        } else {
            self.pending.extend_from_slice(seg);
            self.cut_long(out);
            out.push(line(self.emitted_end, &self.pending, self.cont, false));
            self.emitted_end += self.pending.len() as u64 + 1;
            self.pending.clear();
        }
        self.cont = false;
    }

    /// Emits pieces of `pending` while it is longer than the maximum.
    fn cut_long(&mut self, out: &mut Vec<Line>) {
        let mut start = 0;
        while self.pending.len() - start > self.max {
            let cut = cut_point(&self.pending[start..], self.max);
            out.push(line(
                self.emitted_end,
                &self.pending[start..start + cut],
                true,
                false,
            ));
            self.emitted_end += cut as u64;
            self.cont = true;
            start += cut;
        }
        if start > 0 {
            self.pending.drain(..start);
        }
    }

    /// Emits the held bytes as a line marked `partial`; what follows starts a new line.
    pub(crate) fn flush_partial(&mut self) -> Option<Line> {
        if self.pending.is_empty() {
            return None;
        }
        let l = line(self.emitted_end, &self.pending, self.cont, true);
        self.emitted_end += self.pending.len() as u64;
        self.pending = Vec::new();
        self.cont = false;
        Some(l)
    }
}

/// Where to cut `bytes` (longer than `max`): at `max`, moved back to the start of a UTF-8
/// character it would split (at most 3 bytes back).
fn cut_point(bytes: &[u8], max: usize) -> usize {
    let mut cut = max;
    for _ in 0..3 {
        if cut == 0 || bytes[cut] & 0xC0 != 0x80 {
            break;
        }
        cut -= 1;
    }
    if cut == 0 || bytes[cut] & 0xC0 == 0x80 {
        max
    } else {
        cut
    }
}

fn line(offset: u64, bytes: &[u8], truncated: bool, partial: bool) -> Line {
    let (text, invalid_utf8) = match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
    };
    Line {
        offset,
        text,
        invalid_utf8,
        truncated,
        partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(s: &mut Splitter, parts: &[&[u8]]) -> Vec<Line> {
        let mut out = Vec::new();
        for p in parts {
            s.feed(p, &mut out);
        }
        out
    }

    fn texts(lines: &[Line]) -> Vec<(u64, &str, bool)> {
        lines
            .iter()
            .map(|l| (l.offset, l.text.as_str(), l.truncated))
            .collect()
    }

    #[test]
    fn lines_across_blocks_keep_offsets() {
        let mut s = Splitter::new(100, 10);
        let out = feed_all(&mut s, &[b"ab\ncd", b"e\n\nf", b"g"]);
        assert_eq!(
            texts(&out),
            vec![(10, "ab", false), (13, "cde", false), (17, "", false)]
        );
        assert_eq!(s.emitted_end(), 18);
        assert_eq!(s.read_end(), 20);
        let p = s.flush_partial().unwrap();
        assert_eq!((p.offset, p.text.as_str(), p.partial), (18, "fg", true));
        let out = feed_all(&mut s, &[b"h\n"]);
        assert_eq!(texts(&out), vec![(20, "h", false)]);
        assert!(!out[0].partial);
        assert_eq!(s.emitted_end(), 22);
    }

    #[test]
    fn long_lines_are_cut_and_marked() {
        for parts in [
            vec![&b"0123456789ab\nxy\n"[..]],
            vec![b"0123", b"456789a", b"b\nxy\n"],
            vec![b"0", b"1", b"2345678", b"9ab", b"\nxy", b"\n"],
        ] {
            let mut s = Splitter::new(5, 0);
            let out = feed_all(&mut s, &parts);
            assert_eq!(
                texts(&out),
                vec![
                    (0, "01234", true),
                    (5, "56789", true),
                    (10, "ab", true),
                    (13, "xy", false)
                ],
                "{parts:?}"
            );
            assert_eq!(s.emitted_end(), 16);
        }
        // Exactly max is not truncated.
        let mut s = Splitter::new(3, 0);
        assert_eq!(
            texts(&feed_all(&mut s, &[b"abc\n"])),
            vec![(0, "abc", false)]
        );
    }

    #[test]
    fn cuts_respect_utf8_and_invalid_bytes_are_replaced() {
        let mut s = Splitter::new(4, 0);
        let out = feed_all(&mut s, &["aaé€x\n".as_bytes()]);
        assert_eq!(
            texts(&out),
            vec![(0, "aaé", true), (4, "€x", true)],
            "no U+FFFD from cutting a character"
        );
        assert!(out.iter().all(|l| !l.invalid_utf8));
        let mut s = Splitter::new(100, 0);
        let out = feed_all(&mut s, &[b"a\xffb\n"]);
        assert_eq!(out[0].text, "a\u{fffd}b");
        assert!(out[0].invalid_utf8);
    }

    #[test]
    fn pending_memory_is_bounded() {
        let mut s = Splitter::new(1000, 0);
        let block = vec![b'x'; 4096];
        let mut out = Vec::new();
        for _ in 0..100 {
            s.feed(&block, &mut out);
            assert!(s.pending.len() <= 1000);
        }
        assert!(out.iter().all(|l| l.truncated && l.text.len() == 1000));
        assert_eq!(s.read_end(), 409_600);
    }
}
