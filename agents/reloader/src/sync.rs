//! Sync: the watched files copied (or rendered) into `--sync-to`, each written to a temporary
//! name in the same directory and renamed into place, so the app never reads half a file.
//!
//! Only files whose bytes differ are written. Files this process synced before and that have
//! left the source are removed; other files in the target are left alone (a target such as
//! `/etc/nginx/conf.d` may hold the image's own files). Each sync remembers what it replaced, so
//! a failed validation puts the previous files back ([`Applied::rollback`]).
use std::{
    collections::BTreeSet,
    fs, io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use crate::snapshot::File;

/// A file's bytes and permission bits as they were before a sync (None: it did not exist).
type Before = Option<(Vec<u8>, u32)>;

/// What one sync changed, to undo it.
#[derive(Debug, Default)]
pub struct Applied {
    /// Relative path and the bytes and mode it had before (None: it did not exist).
    previous: Vec<(PathBuf, Before)>,
    /// The synced set before this sync.
    previous_synced: BTreeSet<PathBuf>,
}

impl Applied {
    /// How many files were written or removed.
    pub fn changed(&self) -> usize {
        self.previous.len()
    }
}

/// The sync target and what was synced into it.
#[derive(Debug)]
pub struct Syncer {
    target: PathBuf,
    render: bool,
    synced: BTreeSet<PathBuf>,
}

impl Syncer {
    /// A syncer into `target`, rendering `${VAR}` when `render`.
    pub fn new(target: PathBuf, render: bool) -> Self {
        Syncer {
            target,
            render,
            synced: BTreeSet::new(),
        }
    }

    /// Writes `files` into the target; returns what to undo on a failed validation.
    pub fn apply(&mut self, files: &[File]) -> io::Result<Applied> {
        fs::create_dir_all(&self.target).map_err(|e| with_path(e, &self.target))?;
        let mut applied = Applied {
            previous: Vec::new(),
            previous_synced: self.synced.clone(),
        };
        let mut now = BTreeSet::new();
        for f in files {
            let data = if self.render {
                crate::render::render(&f.data)
            } else {
                std::borrow::Cow::Borrowed(&f.data[..])
            };
            let dest = self.target.join(&f.rel);
            let old = read_existing(&dest)?;
            now.insert(f.rel.clone());
            if old
                .as_ref()
                .is_some_and(|(bytes, mode)| bytes[..] == data[..] && *mode == f.mode)
            {
                continue;
            }
            write_atomic(&dest, &data, f.mode)?;
            applied.previous.push((f.rel.clone(), old));
        }
        for gone in self.synced.difference(&now) {
            let dest = self.target.join(gone);
            if let Some(old) = read_existing(&dest)? {
                fs::remove_file(&dest).map_err(|e| with_path(e, &dest))?;
                applied.previous.push((gone.clone(), Some(old)));
            }
        }
        self.synced = now;
        Ok(applied)
    }

    /// Puts back what `applied` replaced.
    pub fn rollback(&mut self, applied: Applied) -> io::Result<()> {
        for (rel, old) in applied.previous.into_iter().rev() {
            let dest = self.target.join(&rel);
            match old {
                Some((bytes, mode)) => write_atomic(&dest, &bytes, mode)?,
                None => match fs::remove_file(&dest) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(with_path(e, &dest))
                    }
                    _ => {}
                },
            }
        }
        self.synced = applied.previous_synced;
        Ok(())
    }
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

fn read_existing(p: &Path) -> io::Result<Before> {
    match fs::read(p) {
        Ok(bytes) => {
            let mode = fs::metadata(p)
                .map_err(|e| with_path(e, p))?
                .permissions()
                .mode()
                & 0o7777;
            Ok(Some((bytes, mode)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(with_path(e, p)),
    }
}

/// Writes `data` to `.<name>.reloader-tmp` next to `dest`, then renames it over `dest`.
fn write_atomic(dest: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| with_path(e, dir))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.reloader-tmp"));
    // A leftover from a crash may be read-only (a Secret's 0400): clear it first.
    let _ = fs::remove_file(&tmp);
    fs::write(&tmp, data).map_err(|e| with_path(e, &tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(|e| with_path(e, &tmp))?;
    fs::rename(&tmp, dest).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        with_path(e, dest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, data: &str) -> File {
        File {
            rel: rel.into(),
            data: data.as_bytes().to_vec(),
            mode: 0o640,
        }
    }

    #[test]
    fn writes_removes_and_rolls_back() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("out");
        fs::create_dir(&t).unwrap();
        fs::write(t.join("default.conf"), "image's own").unwrap();
        let mut s = Syncer::new(t.clone(), false);
        let a = s
            .apply(&[file("a.conf", "1"), file("sub/b.conf", "2")])
            .unwrap();
        assert_eq!(a.changed(), 2);
        assert_eq!(fs::read_to_string(t.join("sub/b.conf")).unwrap(), "2");
        assert_eq!(
            fs::metadata(t.join("a.conf")).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // Same content again: nothing written.
        assert_eq!(
            s.apply(&[file("a.conf", "1"), file("sub/b.conf", "2")])
                .unwrap()
                .changed(),
            0
        );
        // b.conf left the source, a.conf changed, c.conf is new.
        let a = s
            .apply(&[file("a.conf", "bad"), file("c.conf", "3")])
            .unwrap();
        assert_eq!(a.changed(), 3);
        assert!(!t.join("sub/b.conf").exists());
        s.rollback(a).unwrap();
        assert_eq!(fs::read_to_string(t.join("a.conf")).unwrap(), "1");
        assert_eq!(fs::read_to_string(t.join("sub/b.conf")).unwrap(), "2");
        assert!(!t.join("c.conf").exists());
        assert_eq!(
            fs::read_to_string(t.join("default.conf")).unwrap(),
            "image's own"
        );
        let leftovers: Vec<_> = fs::read_dir(&t)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with("reloader-tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
