//! The PostgreSQL client tools pgbackup runs (pg_dump, pg_dumpall, pg_restore, psql): where
//! they are, pg_dump's version, and the check that it is not older than the server.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    pg::{major_text, parse_tool_version, ServerVersion},
    Error,
};

/// Paths of the client tools and pg_dump's version.
#[derive(Debug, Clone)]
pub struct Tools {
    pub pg_dump: PathBuf,
    pub pg_dumpall: PathBuf,
    pub pg_restore: PathBuf,
    pub psql: PathBuf,
    /// pg_dump's version text (15.20).
    pub dump_version: String,
    /// pg_dump's major version (1500 for 15, 906 for 9.6).
    pub dump_major: u32,
}

fn find(bin_dir: Option<&Path>, name: &str) -> Option<PathBuf> {
    if let Some(d) = bin_dir {
        let p = d.join(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Tools {
    /// Finds the tools and runs `pg_dump --version`.
    pub fn locate(bin_dir: Option<&Path>) -> Result<Self, Error> {
        let where_ = || match bin_dir {
            Some(d) => format!("in {} (--pg-bin-dir)", d.display()),
            None => "on PATH".to_string(),
        };
        let pg_dump = find(bin_dir, "pg_dump").ok_or_else(|| Error::Tool {
            message: format!(
                "pg_dump not found {}: install the PostgreSQL client tools (postgresql-client) of at least the server's major version, or set --pg-bin-dir",
                where_()
            ),
        })?;
        let out = Command::new(&pg_dump)
            .arg("--version")
            .output()
            .map_err(|e| Error::Tool {
                message: format!("cannot run {} --version: {e}", pg_dump.display()),
            })?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (dump_version, dump_major) = parse_tool_version(&line)
            .filter(|_| out.status.success())
            .ok_or_else(|| Error::Tool {
                message: format!(
                    "{} --version answered {line:?} (exit {}), not a pg_dump version line such as \"pg_dump (PostgreSQL) 15.4\"",
                    pg_dump.display(),
                    out.status
                ),
            })?;
        let sibling = |name: &str| {
            find(bin_dir, name)
                .or_else(|| pg_dump.parent().map(|d| d.join(name)))
                .unwrap_or_else(|| PathBuf::from(name))
        };
        Ok(Tools {
            pg_dumpall: sibling("pg_dumpall"),
            pg_restore: sibling("pg_restore"),
            psql: sibling("psql"),
            pg_dump,
            dump_version,
            dump_major,
        })
    }

    /// Refuses a pg_dump older than the server: it cannot dump a newer server correctly.
    pub fn check_server(&self, server: &ServerVersion, addr: &str) -> Result<(), Error> {
        if self.dump_major >= server.major() {
            return Ok(());
        }
        Err(Error::Tool {
            message: format!(
                "pg_dump {} ({}) is older than the server at {addr} (PostgreSQL {}): pg_dump's major version must be at least the server's ({} < {}); use client tools of version {} or newer (for example the postgres:{} image) or point --pg-bin-dir at them",
                self.dump_version,
                self.pg_dump.display(),
                server.text,
                major_text(self.dump_major),
                major_text(server.major()),
                major_text(server.major()),
                major_text(server.major()),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_an_older_pg_dump() {
        let t = Tools {
            pg_dump: "/usr/bin/pg_dump".into(),
            pg_dumpall: "pg_dumpall".into(),
            pg_restore: "pg_restore".into(),
            psql: "psql".into(),
            dump_version: "12.3".into(),
            dump_major: 1200,
        };
        let s = ServerVersion {
            num: 150_020,
            text: "15.20".into(),
        };
        let e = t.check_server(&s, "db:5432").unwrap_err().to_string();
        assert!(
            e.contains("pg_dump 12.3") && e.contains("PostgreSQL 15.20") && e.contains("12 < 15"),
            "{e}"
        );
        let old = ServerVersion {
            num: 90_624,
            text: "9.6.24".into(),
        };
        assert!(t.check_server(&old, "db:5432").is_ok());
    }

    #[test]
    fn missing_pg_dump_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = Tools::locate(Some(dir.path())).unwrap_err().to_string();
        assert!(
            e.contains("pg_dump not found") && e.contains("--pg-bin-dir"),
            "{e}"
        );
    }
}
