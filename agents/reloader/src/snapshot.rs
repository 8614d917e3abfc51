//! The content hash of the watched set, and (when syncing) the files themselves.
//!
//! The hash is SHA-256 over, for each watched path in order and each file under it in sorted
//! relative-path order: the relative path, the file's size and its bytes. Symlinks are followed
//! (a ConfigMap's `key -> ..data/key`), names starting with `..` are skipped (kubelet's `..data`
//! and timestamped directories, seen through the keys instead), and a dangling link counts as an
//! entry of its own. Metadata is not hashed, so a touch is not a change.
use std::{
    collections::HashSet,
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// Deepest directory nesting followed (a guard against symlink loops).
const MAX_DEPTH: usize = 32;

/// A hash of the watched set, hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentHash(pub String);

impl ContentHash {
    /// The first 12 hex digits, for logs and the info metric.
    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }

    /// The first 48 bits as a number (exact in a float), for a gauge.
    pub fn prefix_value(&self) -> f64 {
        u64::from_str_radix(self.short(), 16).map_or(0.0, |v| v as f64)
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short())
    }
}

/// One file of the watched set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Path relative to its watched directory (the file name for a watched file).
    pub rel: PathBuf,
    /// Contents.
    pub data: Vec<u8>,
    /// Permission bits of the file.
    pub mode: u32,
}

/// The watched set at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Content hash.
    pub hash: ContentHash,
    /// The files, when asked for (sync), in hash order.
    pub files: Vec<File>,
}

struct Walker {
    hasher: Sha256,
    keep: bool,
    files: Vec<File>,
    buf: Vec<u8>,
}

/// Hashes the watched set; with `keep`, also returns every file's contents.
pub fn take(roots: &[PathBuf], keep: bool) -> io::Result<Snapshot> {
    let mut w = Walker {
        hasher: Sha256::new(),
        keep,
        files: Vec::new(),
        buf: Vec::new(),
    };
    for (i, root) in roots.iter().enumerate() {
        w.hasher.update(format!("root {i}\0").as_bytes());
        match fs::metadata(root) {
            Ok(m) if m.is_dir() => {
                let mut seen = HashSet::new();
                w.dir(root, Path::new(""), 0, &mut seen)?;
            }
            Ok(m) => {
                let name = root.file_name().map(PathBuf::from).unwrap_or_default();
                w.file(root, &name, &m)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => w.hasher.update(b"missing\0"),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", root.display()))),
        }
    }
    Ok(Snapshot {
        hash: ContentHash(hex(&w.hasher.finalize())),
        files: w.files,
    })
}

impl Walker {
    fn dir(
        &mut self,
        dir: &Path,
        rel: &Path,
        depth: usize,
        seen: &mut HashSet<(u64, u64)>,
    ) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(dir)?;
        if depth > MAX_DEPTH || !seen.insert((meta.dev(), meta.ino())) {
            return Ok(());
        }
        let mut names: Vec<_> = match fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| !n.to_string_lossy().starts_with(".."))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        };
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let rel = rel.join(&name);
            match fs::metadata(&path) {
                Ok(m) if m.is_dir() => {
                    self.hasher.update(b"dir\0");
                    self.hasher.update(rel.as_os_str().as_encoded_bytes());
                    self.hasher.update(b"\0");
                    self.dir(&path, &rel, depth + 1, seen)?;
                }
                Ok(m) if m.is_file() => self.file(&path, &rel, &m)?,
                // Sockets, fifos: not configuration.
                Ok(_) => {}
                // A dangling link, or an entry removed while walking.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.hasher.update(b"dangling\0");
                    self.hasher.update(rel.as_os_str().as_encoded_bytes());
                    self.hasher.update(b"\0");
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            }
        }
        seen.remove(&(meta.dev(), meta.ino()));
        Ok(())
    }

    fn file(&mut self, path: &Path, rel: &Path, meta: &fs::Metadata) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mut f = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.hasher.update(b"dangling\0");
                self.hasher.update(rel.as_os_str().as_encoded_bytes());
                self.hasher.update(b"\0");
                return Ok(());
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        self.buf.clear();
        f.read_to_end(&mut self.buf)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        self.hasher.update(b"file\0");
        self.hasher.update(rel.as_os_str().as_encoded_bytes());
        self.hasher.update(b"\0");
        self.hasher.update((self.buf.len() as u64).to_le_bytes());
        self.hasher.update(&self.buf);
        if self.keep {
            self.files.push(File {
                rel: rel.to_path_buf(),
                data: self.buf.clone(),
                mode: meta.permissions().mode() & 0o7777,
            });
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn hash(root: &Path) -> ContentHash {
        take(&[root.to_path_buf()], false).unwrap().hash
    }

    #[test]
    fn content_changes_matter_and_touches_do_not() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a.conf"), "one").unwrap();
        let h1 = hash(d.path());
        // Rewriting the same bytes (a touch, new mtime) is no change.
        fs::write(d.path().join("a.conf"), "one").unwrap();
        assert_eq!(hash(d.path()), h1);
        fs::write(d.path().join("a.conf"), "two").unwrap();
        let h2 = hash(d.path());
        assert_ne!(h2, h1);
        fs::write(d.path().join("b.conf"), "").unwrap();
        assert_ne!(hash(d.path()), h2);
        assert_eq!(h1.short().len(), 12);
        assert!(h1.prefix_value() >= 0.0 && h1.prefix_value() < 2f64.powi(48));
    }

    #[test]
    fn kubelet_layout_is_read_through_the_keys() {
        let d = tempfile::tempdir().unwrap();
        let v = d.path();
        fs::create_dir(v.join("..2024_01_01_00_00_00.1")).unwrap();
        fs::write(v.join("..2024_01_01_00_00_00.1/app.conf"), "v1").unwrap();
        symlink("..2024_01_01_00_00_00.1", v.join("..data")).unwrap();
        symlink("..data/app.conf", v.join("app.conf")).unwrap();
        let snap = take(&[v.to_path_buf()], true).unwrap();
        assert_eq!(snap.files.len(), 1, "{:?}", snap.files);
        assert_eq!(snap.files[0].rel, Path::new("app.conf"));
        assert_eq!(snap.files[0].data, b"v1");
        // A new timestamped directory alone changes nothing; the swap does.
        fs::create_dir(v.join("..2024_01_01_00_00_01.2")).unwrap();
        fs::write(v.join("..2024_01_01_00_00_01.2/app.conf"), "v2").unwrap();
        assert_eq!(hash(v), snap.hash);
        symlink("..2024_01_01_00_00_01.2", v.join("..data_tmp")).unwrap();
        fs::rename(v.join("..data_tmp"), v.join("..data")).unwrap();
        assert_ne!(hash(v), snap.hash);
        // A watched file inside the volume follows the swap too.
        let f = take(&[v.join("app.conf")], true).unwrap();
        assert_eq!(f.files[0].data, b"v2");
        assert_eq!(f.files[0].rel, Path::new("app.conf"));
    }

    #[test]
    fn dangling_links_and_loops() {
        let d = tempfile::tempdir().unwrap();
        symlink("nowhere", d.path().join("gone")).unwrap();
        symlink(".", d.path().join("loop")).unwrap();
        fs::write(d.path().join("x"), "x").unwrap();
        let snap = take(&[d.path().to_path_buf()], true).unwrap();
        assert_eq!(
            snap.files
                .iter()
                .filter(|f| f.rel == Path::new("x"))
                .count(),
            1
        );
        let missing = take(&[d.path().join("missing")], false).unwrap();
        assert_ne!(missing.hash, snap.hash);
    }
}
