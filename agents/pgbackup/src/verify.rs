//! Checking a freshly written backup before it gets its final name: a gzip dump is read end
//! to end (every member's CRC and length), must hold as many bytes as pg_dump wrote, and must
//! end with pg_dump's "dump complete" trailer; a custom-format dump must be listed by
//! `pg_restore --list`.
use std::{
    io::{self, Read},
    path::{Path, PathBuf},
    process::Stdio,
};

use flate2::read::MultiGzDecoder;

use crate::{config::Format, tools::Tools};

/// Checks `path`; returns the name of the check that passed.
pub async fn check(
    tools: &Tools,
    path: &Path,
    format: Format,
    dump_bytes: u64,
) -> Result<&'static str, String> {
    match format {
        Format::Gzip => {
            let p = path.to_path_buf();
            tokio::task::spawn_blocking(move || check_gzip(&p, dump_bytes))
                .await
                .map_err(|e| e.to_string())??;
            Ok("gzip-crc")
        }
        Format::Custom => {
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
    }
}

/// Decompresses the whole file; checks length and the trailer.
pub fn check_gzip(path: &PathBuf, dump_bytes: u64) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut dec = MultiGzDecoder::new(io::BufReader::with_capacity(128 * 1024, file));
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail: Vec<u8> = Vec::with_capacity(512);
    let mut total = 0u64;
    loop {
        let n = dec
            .read(&mut buf)
            .map_err(|e| format!("gzip stream is corrupt: {e}"))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 256 {
            tail.drain(..tail.len() - 256);
        }
    }
    if total != dump_bytes {
        return Err(format!(
            "decompressed {total} bytes but pg_dump wrote {dump_bytes}"
        ));
    }
    if !String::from_utf8_lossy(&tail).contains("dump complete") {
        return Err(
            "the dump does not end with pg_dump's \"dump complete\" trailer: it is truncated"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

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
    }
}
