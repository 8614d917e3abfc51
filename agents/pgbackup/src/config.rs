//! The agent's options (flags and env, with the libpq and postgres-backup-local names), and
//! their resolution into [`Settings`]: one connection, the databases, the schedule, the
//! retention policy and the mode (scheduled backups or a one-shot restore).
use std::{path::PathBuf, time::Duration};

use common::{
    config::{parse_bool, parse_byte_size, parse_duration},
    secret, Secret,
};

use crate::{pg::ConnParams, retention::Policy, schedule::Schedule, Error};

/// The agent's options.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "pgbackup")]
pub struct Config {
    /// Connection URL (postgres://user:password@host:5432/db?sslmode=disable). Values given
    /// with the options below win over the URL's.
    #[arg(long, env = "PGBACKUP_URL", value_name = "URL")]
    pub url: Option<Secret>,
    /// Server host (libpq PGHOST). Default: localhost.
    #[arg(long, env = "PGHOST", value_name = "HOST")]
    pub host: Option<String>,
    /// postgres-backup-local's name for --host.
    #[arg(long, env = "POSTGRES_HOST", hide = true)]
    pub postgres_host: Option<String>,
    /// Server port (libpq PGPORT). Default: 5432.
    #[arg(long, env = "PGPORT", value_name = "PORT")]
    pub port: Option<u16>,
    /// postgres-backup-local's name for --port.
    #[arg(long, env = "POSTGRES_PORT", hide = true)]
    pub postgres_port: Option<u16>,
    /// User (libpq PGUSER). Default: postgres.
    #[arg(long, env = "PGUSER", value_name = "USER")]
    pub user: Option<String>,
    /// postgres-backup-local's name for --user.
    #[arg(long, env = "POSTGRES_USER", hide = true)]
    pub postgres_user: Option<String>,
    /// The user, read from a file.
    #[arg(long, env = "POSTGRES_USER_FILE", value_name = "PATH")]
    pub user_file: Option<PathBuf>,
    /// Password (libpq PGPASSWORD). Handed to pg_dump in its environment, never on its
    /// command line.
    #[arg(long, env = "PGPASSWORD", value_name = "PASSWORD")]
    pub password: Option<Secret>,
    /// The password, read from a file (a Secret volume).
    #[arg(long, env = "PGBACKUP_PASSWORD_FILE", value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// postgres-backup-local's name for --password.
    #[arg(long, env = "POSTGRES_PASSWORD", hide = true)]
    pub postgres_password: Option<Secret>,
    /// postgres-backup-local's name for --password-file.
    #[arg(long, env = "POSTGRES_PASSWORD_FILE", hide = true)]
    pub postgres_password_file: Option<PathBuf>,
    /// A libpq password file (host:port:db:user:password lines).
    #[arg(long, env = "PGPASSFILE", value_name = "PATH")]
    pub passfile: Option<PathBuf>,
    /// libpq sslmode: disable, allow, prefer, require, verify-ca, verify-full.
    #[arg(long, env = "PGSSLMODE", value_name = "MODE")]
    pub sslmode: Option<String>,
    /// CA bundle for sslmode verify-ca / verify-full (and require), or `system` for the
    /// public (Mozilla) roots. Default ~/.postgresql/root.crt.
    #[arg(long, env = "PGSSLROOTCERT", value_name = "PATH")]
    pub sslrootcert: Option<String>,
    /// Client certificate (PEM) for certificate authentication; needs --sslkey.
    #[arg(long, env = "PGSSLCERT", value_name = "PATH")]
    pub sslcert: Option<PathBuf>,
    /// Private key (PEM) of --sslcert.
    #[arg(long, env = "PGSSLKEY", value_name = "PATH")]
    pub sslkey: Option<PathBuf>,
    /// Databases to back up: a comma or space separated list, or `all` (every database that
    /// accepts connections, plus roles and tablespaces with pg_dumpall --globals-only).
    #[arg(long, env = "PGBACKUP_DATABASES", value_name = "LIST")]
    pub databases: Option<String>,
    /// postgres-backup-local's name for --databases (comma or space separated).
    #[arg(long, env = "POSTGRES_DB", hide = true)]
    pub postgres_db: Option<String>,
    /// libpq's single database (used when no list is given).
    #[arg(long, env = "PGDATABASE", hide = true)]
    pub pgdatabase: Option<String>,
    /// Also dump roles and tablespaces (pg_dumpall --globals-only); on with `all`.
    #[arg(long, env = "PGBACKUP_GLOBALS", value_name = "BOOL", value_parser = parse_bool, default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub globals: bool,
    /// Directory the backups are written to. Default: /backups.
    #[arg(long, env = "PGBACKUP_DIR", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// postgres-backup-local's name for --backup-dir.
    #[arg(long, env = "BACKUP_DIR", hide = true)]
    pub postgres_backup_dir: Option<PathBuf>,
    /// Dump format: gzip (plain SQL through gzip, .sql.gz) or custom (pg_dump -Fc, .dump).
    #[arg(
        long,
        env = "PGBACKUP_FORMAT",
        value_name = "FORMAT",
        default_value = "gzip"
    )]
    pub format: Format,
    /// Compression level 0-9 (gzip, or pg_dump -Z for custom).
    #[arg(long, env = "PGBACKUP_COMPRESSION_LEVEL", value_name = "N", default_value = "6", value_parser = clap::value_parser!(u32).range(0..=9))]
    pub compression_level: u32,
    /// Directory of pg_dump, pg_dumpall, pg_restore and psql (default: found on PATH).
    #[arg(long, env = "PGBACKUP_PG_BIN_DIR", value_name = "DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// Extra pg_dump options, space separated (postgres-backup-local's POSTGRES_EXTRA_OPTS).
    #[arg(
        long,
        env = "POSTGRES_EXTRA_OPTS",
        value_name = "OPTS",
        allow_hyphen_values = true
    )]
    pub extra_opts: Option<String>,
    /// When to back up: a cron expression (5 or 6 fields), @hourly/@daily/@weekly/@monthly,
    /// or @every DURATION.
    #[arg(long, env = "SCHEDULE", value_name = "CRON", default_value = "@daily")]
    pub schedule: String,
    /// A fixed interval instead of --schedule (10m, 6h).
    #[arg(long, env = "PGBACKUP_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Time zone of the cron schedule and of the daily/weekly/monthly retention buckets.
    #[arg(
        long,
        env = "PGBACKUP_TIME_ZONE",
        value_name = "TZ",
        default_value = "UTC"
    )]
    pub time_zone: String,
    /// Run a backup right at start, then follow the schedule.
    #[arg(long, env = "BACKUP_ON_START", value_name = "BOOL", value_parser = parse_bool, default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub on_start: bool,
    /// Back up every database once, now, and exit: 0 if all succeeded, 1 otherwise (for a
    /// Kubernetes CronJob).
    #[arg(long, env = "PGBACKUP_ONCE", value_name = "BOOL", value_parser = parse_bool, default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub once: bool,
    /// Delay each scheduled run by a random time up to this (spreads many pods' runs).
    #[arg(long, env = "PGBACKUP_JITTER", value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub jitter: Duration,
    /// Kill pg_dump after this long (0: no limit).
    #[arg(long, env = "PGBACKUP_DUMP_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub dump_timeout: Duration,
    /// Keep the newest N backups of each database.
    #[arg(
        long,
        env = "PGBACKUP_KEEP_LAST",
        value_name = "N",
        default_value = "0"
    )]
    pub keep_last: usize,
    /// Keep the newest backup of each of the last N days that have backups.
    #[arg(long, env = "BACKUP_KEEP_DAYS", value_name = "N", default_value = "7")]
    pub keep_days: usize,
    /// Keep the newest backup of each of the last N weeks that have backups.
    #[arg(long, env = "BACKUP_KEEP_WEEKS", value_name = "N", default_value = "4")]
    pub keep_weeks: usize,
    /// Keep the newest backup of each of the last N months that have backups.
    #[arg(
        long,
        env = "BACKUP_KEEP_MONTHS",
        value_name = "N",
        default_value = "6"
    )]
    pub keep_months: usize,
    /// Keep every backup newer than this (0: off).
    #[arg(long, env = "PGBACKUP_KEEP_WITHIN", value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub keep_within: Duration,
    /// Log what retention would delete, and why, without deleting.
    #[arg(long, env = "PGBACKUP_RETENTION_DRY_RUN", value_name = "BOOL", value_parser = parse_bool, default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub retention_dry_run: bool,
    /// /readyz fails when the newest successful backup of a database is older than this.
    /// Default: twice the schedule's period plus one hour.
    #[arg(long, env = "PGBACKUP_MAX_AGE", value_name = "DURATION", value_parser = parse_duration)]
    pub max_age: Option<Duration>,
    /// Free space to leave on the volume on top of the estimated backup size.
    #[arg(long, env = "PGBACKUP_MIN_FREE_SPACE", value_name = "SIZE", value_parser = parse_byte_size, default_value = "0")]
    pub min_free_space: u64,
    /// Every Nth successful run, restore each new backup into a scratch database and check
    /// its tables and row counts (0: never).
    #[arg(
        long,
        env = "PGBACKUP_VERIFY_RESTORE_EVERY",
        value_name = "N",
        default_value = "0"
    )]
    pub verify_restore_every: u64,
    /// POST a JSON summary here after each run that succeeded.
    #[arg(long, env = "WEBHOOK_URL", value_name = "URL")]
    pub webhook_url: Option<Secret>,
    /// POST a JSON summary here after each run that failed.
    #[arg(long, env = "WEBHOOK_ERROR_URL", value_name = "URL")]
    pub webhook_error_url: Option<Secret>,
    /// CA bundle (PEM) that signs the https webhook servers' certificates (default: the
    /// public webpki roots).
    #[arg(long, env = "PGBACKUP_WEBHOOK_CA_FILE", value_name = "PATH")]
    pub webhook_ca_file: Option<PathBuf>,
    /// Restore mode: restore this backup (a file path or `latest`) and exit.
    #[arg(long, env = "PGBACKUP_RESTORE", value_name = "FILE|latest")]
    pub restore: Option<String>,
    /// Restore mode: the database to restore into (created if missing).
    #[arg(long, env = "PGBACKUP_RESTORE_INTO", value_name = "DB")]
    pub restore_into: Option<String>,
}

/// Dump format.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain SQL through gzip.
    Gzip,
    /// pg_dump's custom format.
    Custom,
}

impl Format {
    /// The file name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Format::Gzip => ".sql.gz",
            Format::Custom => ".dump",
        }
    }
}

/// What to back up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Databases {
    /// These.
    List(Vec<String>),
    /// Every database that accepts connections.
    All,
}

/// A restore request.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// A file, or `latest`.
    pub source: String,
    /// The target database.
    pub into: String,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub conn: ConnParams,
    pub databases: Databases,
    pub globals: bool,
    pub backup_dir: PathBuf,
    pub format: Format,
    pub level: u32,
    pub pg_bin_dir: Option<PathBuf>,
    pub extra_opts: Vec<String>,
    pub schedule: Schedule,
    pub on_start: bool,
    pub once: bool,
    pub jitter: Duration,
    pub dump_timeout: Option<Duration>,
    pub policy: Policy,
    pub retention_dry_run: bool,
    pub max_age: Duration,
    pub min_free_space: u64,
    pub verify_restore_every: u64,
    pub webhook_ok: Option<Secret>,
    pub webhook_err: Option<Secret>,
    pub webhook_ca_file: Option<PathBuf>,
    pub restore: Option<RestoreRequest>,
}

/// Splits a comma or space separated list.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

impl Config {
    /// Validates and resolves the options.
    pub fn resolve(self) -> Result<Settings, Error> {
        let tz: chrono_tz::Tz = self.time_zone.parse().map_err(|_| Error::Config {
            option: "--time-zone",
            value: self.time_zone.clone(),
            expected: "an IANA time zone such as UTC or Europe/Berlin".into(),
        })?;
        let schedule = match self.interval {
            Some(d) if d.is_zero() => {
                return Err(Error::Config {
                    option: "--interval",
                    value: "0".into(),
                    expected: "a duration greater than zero such as 6h".into(),
                })
            }
            Some(d) => Schedule::Interval(d),
            None => Schedule::parse(&self.schedule, tz)?,
        };
        let password_file = match (&self.password_file, &self.postgres_password_file) {
            (Some(p), _) | (None, Some(p)) => Some(p.as_path()),
            (None, None) => None,
        };
        let password = self.password.clone().or(self.postgres_password.clone());
        let password = secret::resolve("--password", password, password_file)?;
        let user = match (&self.user, &self.postgres_user, &self.user_file) {
            (Some(u), _, _) | (None, Some(u), _) => Some(u.clone()),
            (None, None, Some(p)) => Some(
                secret::read_secret_file("--user-file", p)?
                    .expose()
                    .to_string(),
            ),
            (None, None, None) => None,
        };
        let mut conn = ConnParams::resolve(
            self.url.as_ref(),
            self.host.clone().or(self.postgres_host.clone()),
            self.port.or(self.postgres_port),
            user,
            password,
            self.passfile.clone(),
            self.sslmode.clone(),
        )?;
        if self.sslrootcert.is_some() {
            conn.ssl.rootcert = self.sslrootcert.clone();
        }
        if self.sslcert.is_some() {
            conn.ssl.cert = self.sslcert.clone();
        }
        if self.sslkey.is_some() {
            conn.ssl.key = self.sslkey.clone();
        }
        let restore = match (self.restore, self.restore_into) {
            (Some(source), Some(into)) => Some(RestoreRequest { source, into }),
            (None, None) => None,
            (Some(s), None) => {
                return Err(Error::Config {
                    option: "--restore-into",
                    value: String::new(),
                    expected: format!("the database to restore {s} into"),
                })
            }
            (None, Some(i)) => {
                return Err(Error::Config {
                    option: "--restore",
                    value: String::new(),
                    expected: format!("a backup file or latest to restore into {i}"),
                })
            }
        };
        let list = self
            .databases
            .clone()
            .or(self.postgres_db.clone())
            .or(self.pgdatabase.clone())
            .or(conn.url_dbname.clone());
        let databases = match list.as_deref().map(split_list) {
            Some(l) if l.iter().any(|d| d.eq_ignore_ascii_case("all")) => Databases::All,
            Some(l) if !l.is_empty() => Databases::List(l),
            _ if restore.is_some() => Databases::List(Vec::new()),
            _ => {
                return Err(Error::Config {
                    option: "--databases",
                    value: list.unwrap_or_default(),
                    expected: "a comma separated list of databases, or all (also PGBACKUP_DATABASES, POSTGRES_DB, PGDATABASE or the URL's path)".into(),
                })
            }
        };
        let globals = self.globals || databases == Databases::All;
        let max_age = self
            .max_age
            .unwrap_or_else(|| schedule.period() * 2 + Duration::from_secs(3600));
        if max_age.is_zero() {
            return Err(Error::Config {
                option: "--max-age",
                value: "0".into(),
                expected: "a duration greater than zero such as 26h".into(),
            });
        }
        Ok(Settings {
            conn,
            databases,
            globals,
            backup_dir: self
                .backup_dir
                .or(self.postgres_backup_dir)
                .unwrap_or_else(|| PathBuf::from("/backups")),
            format: self.format,
            level: self.compression_level,
            pg_bin_dir: self.pg_bin_dir,
            extra_opts: self
                .extra_opts
                .as_deref()
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            schedule,
            on_start: self.on_start,
            once: self.once,
            jitter: self.jitter,
            dump_timeout: (!self.dump_timeout.is_zero()).then_some(self.dump_timeout),
            policy: Policy {
                last: self.keep_last,
                days: self.keep_days,
                weeks: self.keep_weeks,
                months: self.keep_months,
                within: self.keep_within,
                tz,
            },
            retention_dry_run: self.retention_dry_run,
            max_age,
            min_free_space: self.min_free_space,
            verify_restore_every: self.verify_restore_every,
            webhook_ok: self.webhook_url,
            webhook_err: self.webhook_error_url,
            webhook_ca_file: self.webhook_ca_file,
            restore,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        c: Config,
    }

    fn resolve(args: &[&str]) -> Result<Settings, Error> {
        use clap::Parser;
        let mut argv = vec!["pgbackup"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses").c.resolve()
    }

    #[test]
    fn postgres_backup_local_names_map_over() {
        let s = resolve(&[
            "--postgres-host",
            "db",
            "--postgres-port",
            "6543",
            "--postgres-user",
            "app",
            "--postgres-password",
            "pw",
            "--postgres-db",
            "a, b",
            "--postgres-backup-dir",
            "/b",
            "--schedule",
            "@every 6h",
            "--on-start",
        ])
        .unwrap();
        assert_eq!(
            (s.conn.host.as_str(), s.conn.port, s.conn.user.as_str()),
            ("db", 6543, "app")
        );
        assert_eq!(s.conn.password.unwrap().expose(), "pw");
        assert_eq!(s.databases, Databases::List(vec!["a".into(), "b".into()]));
        assert_eq!(s.backup_dir, PathBuf::from("/b"));
        assert!(s.on_start && !s.globals);
        assert_eq!(s.max_age, Duration::from_secs(13 * 3600));
        let s = resolve(&["--databases", "all", "--interval", "1h"]).unwrap();
        assert!(s.databases == Databases::All && s.globals);
        // libpq names win over the compatibility names.
        let s = resolve(&["--host", "h1", "--postgres-host", "h2", "--databases", "x"]).unwrap();
        assert_eq!(s.conn.host, "h1");
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = resolve(&[]).unwrap_err().to_string();
        assert!(e.contains("--databases"), "{e}");
        let e = resolve(&["--databases", "x", "--time-zone", "Mars/Olympus"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--time-zone") && e.contains("Mars/Olympus"),
            "{e}"
        );
        let e = resolve(&["--databases", "x", "--restore", "latest"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--restore-into"), "{e}");
        assert!(resolve(&["--restore", "f.sql.gz", "--restore-into", "y"]).is_ok());
        let e = resolve(&[
            "--databases",
            "x",
            "--password",
            "a",
            "--password-file",
            "/nope",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("--password"), "{e}");
    }

    #[test]
    fn lists_split_on_commas_and_spaces() {
        assert_eq!(split_list("a, b c,,d"), ["a", "b", "c", "d"]);
        assert!(split_list(" , ").is_empty());
    }
}
