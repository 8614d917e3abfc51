//! The backup directory: file names (`<db>-<UTC timestamp>.sql.gz` or `.dump`, temp files
//! `.<name>.tmp`), manifests (`<name>.json` beside each backup), listing the backups this agent
//! made, durable renames (fsync file and directory), and removing stale temp files.
use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Format;

/// The label (and file prefix) of the roles-and-tablespaces dump.
pub const GLOBALS: &str = "_globals";
/// Written in every manifest: only files with it are ever deleted.
pub const CREATOR: &str = "pgbackup";
const TS_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// What is recorded beside each backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub creator: String,
    pub version: String,
    pub database: String,
    pub file: String,
    pub format: Format,
    pub timestamp: String,
    pub size_bytes: u64,
    pub dump_bytes: u64,
    pub sha256: String,
    pub duration_seconds: f64,
    pub compression_level: u32,
    pub pg_dump_version: String,
    pub server_version: String,
    pub verified: bool,
    pub verification: String,
}

/// A backup found on disk.
#[derive(Debug, Clone)]
pub struct Backup {
    pub path: PathBuf,
    pub time: DateTime<Utc>,
    pub manifest: Manifest,
}

/// Makes a database name safe as a file name prefix.
pub fn file_prefix(db: &str) -> String {
    db.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

/// `<db>-<timestamp><suffix>`.
pub fn backup_name(db: &str, time: DateTime<Utc>, format: Format) -> String {
    format!(
        "{}-{}{}",
        file_prefix(db),
        time.format(TS_FORMAT),
        format.suffix()
    )
}

/// The temp name a backup is written under before its rename.
pub fn temp_name(final_name: &str) -> String {
    format!(".{final_name}.tmp")
}

/// The manifest's path for a backup.
pub fn manifest_path(backup: &Path) -> PathBuf {
    let mut s = backup.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// Parses `<prefix>-<timestamp><suffix>` into (prefix, time, format).
pub fn parse_name(name: &str) -> Option<(String, DateTime<Utc>, Format)> {
    let (stem, format) = if let Some(s) = name.strip_suffix(".sql.gz") {
        (s, Format::Gzip)
    } else {
        (name.strip_suffix(".dump")?, Format::Custom)
    };
    let (prefix, ts) = stem.rsplit_once('-')?;
    let t = NaiveDateTime::parse_from_str(ts, TS_FORMAT).ok()?.and_utc();
    (!prefix.is_empty()).then(|| (prefix.to_string(), t, format))
}

/// Every backup in `dir` that this agent made: a name of its pattern and a manifest that
/// names the file, the pgbackup creator, and the same timestamp. Newest first.
pub fn list(dir: &Path) -> io::Result<Vec<Backup>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((prefix, time, format)) = parse_name(name) else {
            continue;
        };
        let path = entry.path();
        let Ok(text) = fs::read_to_string(manifest_path(&path)) else {
            continue;
        };
        let Ok(manifest) = serde_json::from_str::<Manifest>(&text) else {
            continue;
        };
        if manifest.creator != CREATOR
            || manifest.file != name
            || manifest.format != format
            || file_prefix(&manifest.database) != prefix
        {
            continue;
        }
        out.push(Backup {
            path,
            time,
            manifest,
        });
    }
    out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.path.cmp(&a.path)));
    Ok(out)
}

/// Verified backups of one database, newest first.
pub fn of_database<'a>(all: &'a [Backup], db: &str) -> Vec<&'a Backup> {
    all.iter()
        .filter(|b| b.manifest.database == db && b.manifest.verified)
        .collect()
}

/// fsyncs a directory, so a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Writes the manifest durably: temp file, fsync, rename, fsync directory.
pub fn write_manifest(backup: &Path, m: &Manifest) -> io::Result<()> {
    let path = manifest_path(backup);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(temp_name(&name));
    let body = serde_json::to_vec_pretty(m).map_err(io::Error::other)?;
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes temp files a crash left behind (`.<our backup name>.tmp`); returns how many.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
            continue;
        };
        let inner = inner.strip_suffix(".json").unwrap_or(inner);
        if parse_name(inner).is_some() && fs::remove_file(entry.path()).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Deletes a backup and its manifest (data first: a manifest alone is never listed).
pub fn delete(b: &Backup) -> io::Result<()> {
    fs::remove_file(&b.path)?;
    match fs::remove_file(manifest_path(&b.path)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 15, 30, 12).unwrap();
        let n = backup_name("my-app", t, Format::Gzip);
        assert_eq!(n, "my-app-20261126T153012Z.sql.gz");
        assert_eq!(parse_name(&n), Some(("my-app".into(), t, Format::Gzip)));
        assert_eq!(
            parse_name("x-20261126T153012Z.dump").map(|p| p.2),
            Some(Format::Custom)
        );
        assert_eq!(parse_name("backup-20261126-153012.sql.gz"), None);
        assert_eq!(file_prefix("../we ird/db"), "_we_ird_db");
        assert_eq!(temp_name(&n), ".my-app-20261126T153012Z.sql.gz.tmp");
    }

    #[test]
    fn lists_only_its_own_backups() {
        let dir = tempfile::tempdir().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let name = backup_name("app", t, Format::Gzip);
        let p = dir.path().join(&name);
        fs::write(&p, b"x").unwrap();
        let m = Manifest {
            creator: CREATOR.into(),
            version: "0".into(),
            database: "app".into(),
            file: name.clone(),
            format: Format::Gzip,
            timestamp: t.to_rfc3339(),
            size_bytes: 1,
            dump_bytes: 1,
            sha256: String::new(),
            duration_seconds: 0.0,
            compression_level: 6,
            pg_dump_version: "15".into(),
            server_version: "15".into(),
            verified: true,
            verification: "gzip".into(),
        };
        write_manifest(&p, &m).unwrap();
        // A look-alike without a manifest, and one whose manifest names another file.
        fs::write(dir.path().join("app-20250101T000000Z.sql.gz"), b"x").unwrap();
        let other = dir.path().join("app-20240101T000000Z.sql.gz");
        fs::write(&other, b"x").unwrap();
        fs::write(manifest_path(&other), serde_json::to_vec(&m).unwrap()).unwrap();
        fs::write(dir.path().join(".app-20240101T000000Z.sql.gz.tmp"), b"x").unwrap();
        let l = list(dir.path()).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].path, p);
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        delete(&l[0]).unwrap();
        assert!(list(dir.path()).unwrap().is_empty());
    }
}
