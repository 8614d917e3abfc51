//! Checking a freshly written backup before it gets its final name.
//!
//! Gzip: the compressed bytes are decompressed as they are written ([`GzipCheck`], on the
//! writer thread, so the check costs no extra pass and no extra wall time): the gzip CRC and
//! length must match, the stream must hold as many bytes as pg_dump wrote and end with
//! pg_dump's "dump complete" trailer. Then the file is read back and its sha256 and size
//! compared with those of the checked bytes ([`check_file_hash`]): what is on disk is what
//! was checked. Custom format: the file must be listed by `pg_restore --list`.
use std::{
    fs::File,
    io::{self, Read, Write},
    path::Path,
    process::Stdio,
};

use sha2::{Digest, Sha256};

use crate::tools::Tools;

/// How many bytes of the dump's end are kept to look for the trailer.
const TAIL: usize = 256;

/// Counts the decompressed bytes and keeps their last [`TAIL`].
#[derive(Default)]
struct Tail {
    total: u64,
    tail: Vec<u8>,
}

impl Write for Tail {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.total += buf.len() as u64;
        if buf.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&buf[buf.len() - TAIL..]);
        } else {
            self.tail.extend_from_slice(buf);
            if self.tail.len() > TAIL {
                self.tail.drain(..self.tail.len() - TAIL);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decompresses a gzip stream fed to it piece by piece and checks it at the end.
pub struct GzipCheck {
    dec: flate2::write::GzDecoder<Tail>,
    error: Option<String>,
}

impl Default for GzipCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl GzipCheck {
    pub fn new() -> Self {
        GzipCheck {
            dec: flate2::write::GzDecoder::new(Tail::default()),
            error: None,
        }
    }

    /// Feeds the next compressed bytes (after the first error, the rest is ignored).
    pub fn update(&mut self, compressed: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.dec.write_all(compressed) {
                self.error = Some(format!("gzip stream is corrupt: {e}"));
            }
        }
    }

    /// Checks CRC and length, the byte count against `dump_bytes` and the trailer.
    pub fn finish(mut self, dump_bytes: u64) -> Result<(), String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let out = self
            .dec
            .try_finish()
            .map(|()| self.dec.get_ref())
            .map_err(|e| format!("gzip stream is corrupt or truncated: {e}"))?;
        if out.total != dump_bytes {
            return Err(format!(
                "decompressed {} bytes but pg_dump wrote {dump_bytes}",
                out.total
            ));
        }
        if !String::from_utf8_lossy(&out.tail).contains("dump complete") {
            return Err(
                "the dump does not end with pg_dump's \"dump complete\" trailer: it is truncated"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Reads `path` back; its size and sha256 must be those of the bytes that were checked.
pub fn check_file_hash(path: &Path, size: u64, sha256: &str) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read it back: {e}")),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let got = hex(&hasher.finalize());
    if total != size || got != sha256 {
        return Err(format!(
            "read back {total} bytes with sha256 {got}, but {size} bytes with sha256 {sha256} were written: the volume did not keep what was written"
        ));
    }
    Ok(())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a whole gzip file (CRC, length, byte count, trailer).
pub fn check_gzip(path: &Path, dump_bytes: u64) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut check = GzipCheck::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read: {e}")),
        };
        check.update(&buf[..n]);
    }
    check.finish(dump_bytes)
}

/// Lists a custom-format dump with `pg_restore --list`.
pub async fn check_custom(tools: &Tools, path: &Path) -> Result<&'static str, String> {
    let out = tokio::process::Command::new(&tools.pg_restore)
        .arg("--list")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", tools.pg_restore.display()))?;
    if !out.status.success() {
        return Err(format!(
            "pg_restore --list failed ({}): {}",
            out.status,
            common::secret::redact(String::from_utf8_lossy(&out.stderr).trim())
        ));
    }
    Ok("pg_restore-list")
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn detects_truncation_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sql.gz");
        let good = b"CREATE TABLE t();\n--\n-- PostgreSQL database dump complete\n--\n\n";
        std::fs::write(&p, gz(good)).unwrap();
        check_gzip(&p, good.len() as u64).unwrap();
        assert!(check_gzip(&p, 3).unwrap_err().contains("pg_dump wrote 3"));
        let no_trailer = b"CREATE TABLE t();\n";
        std::fs::write(&p, gz(no_trailer)).unwrap();
        assert!(check_gzip(&p, no_trailer.len() as u64)
            .unwrap_err()
            .contains("truncated"));
        let mut bytes = gz(good);
        bytes.truncate(bytes.len() - 6);
        std::fs::write(&p, &bytes).unwrap();
        assert!(check_gzip(&p, good.len() as u64).is_err());
        let mut bytes = gz(good);
        let crc_at = bytes.len() - 8;
        bytes[crc_at] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        assert!(check_gzip(&p, good.len() as u64).is_err());
    }

    #[test]
    fn fed_in_small_pieces_and_large_tails() {
        let mut data = vec![b'x'; 1_000_000];
        data.extend_from_slice(b"\n-- PostgreSQL database dump complete\n");
        let z = gz(&data);
        let mut check = GzipCheck::new();
        for piece in z.chunks(7) {
            check.update(piece);
        }
        check.finish(data.len() as u64).unwrap();
    }

    #[test]
    fn read_back_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let sha = hex(&Sha256::digest(b"abc"));
        check_file_hash(&p, 3, &sha).unwrap();
        let err = check_file_hash(&p, 4, &sha).unwrap_err();
        assert!(err.contains("did not keep"), "{err}");
        std::fs::write(&p, b"abd").unwrap();
        assert!(check_file_hash(&p, 3, &sha).is_err());
    }
}
