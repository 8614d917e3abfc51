//! One dump: pg_dump (or pg_dumpall --globals-only) streamed into a temp file in the backup
//! directory through gzip (or as pg_dump's custom format), hashed on the way; verified; then
//! fsynced, renamed atomically to its final name and described by a manifest. Whatever goes
//! wrong (pg_dump fails or is killed, a full disk, a failed check, shutdown), the temp file is
//! removed: nothing half-written ever looks like a backup.
//!
//! Memory stays flat and the work overlaps like `pg_dump | gzip > file`: pg_dump writes into
//! a pipe while one blocking thread reads it in 256 KiB blocks, compresses (zlib-rs), hashes
//! (sha256) and writes the file, and decompresses what it wrote to check it on the way
//! ([`verify::GzipCheck`]); afterwards the file is read back and its hash compared.
use std::{
    fs::File,
    io::{self, BufWriter, Read, Write},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use chrono::{SubsecRound, Utc};
use flate2::{write::GzEncoder, Compression};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::{
    config::Format,
    pg::ConnParams,
    store::{self, Manifest, GLOBALS},
    tools::Tools,
    verify, Error,
};

/// Read size from pg_dump's pipe.
const CHUNK: usize = 256 * 1024;

/// What to dump and how.
#[derive(Debug)]
pub struct Spec<'a> {
    pub tools: &'a Tools,
    pub conn: &'a ConnParams,
    /// The database, or [`GLOBALS`].
    pub db: &'a str,
    pub format: Format,
    pub level: u32,
    pub extra_opts: &'a [String],
    pub dir: &'a Path,
    pub timeout: Option<Duration>,
    pub server_version: &'a str,
}

/// A finished backup.
#[derive(Debug)]
pub struct Done {
    pub path: PathBuf,
    pub manifest: Manifest,
}

/// Removes the temp file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Counts, hashes and (gzip) checks what goes to the file.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
    check: Option<verify::GzipCheck>,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(c) = &mut self.check {
            c.update(&buf[..n]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Written {
    size: u64,
    dump_bytes: u64,
    sha256: String,
    /// The result of the on-the-fly gzip check (gzip format only).
    check: Option<Result<(), String>>,
}

/// Why the writer thread stopped early.
enum StreamError {
    /// Reading pg_dump's output failed.
    Read(io::Error),
    /// Writing or syncing the file failed.
    Write(io::Error),
}

/// Reads the next block from the pipe; 0 at end.
fn read_some(src: &mut File, buf: &mut [u8]) -> Result<usize, StreamError> {
    loop {
        match src.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map_err(StreamError::Read),
        }
    }
}

/// The blocking side: read pg_dump's output, compress (or not), hash, check, write, fsync.
fn write_stream(
    mut src: File,
    file: File,
    format: Format,
    level: u32,
) -> Result<Written, StreamError> {
    let hw = HashWriter {
        inner: BufWriter::with_capacity(CHUNK, file),
        hasher: Sha256::new(),
        bytes: 0,
        check: (format == Format::Gzip).then(verify::GzipCheck::new),
    };
    let mut buf = vec![0u8; CHUNK];
    let mut dump_bytes = 0u64;
    let hw = match format {
        Format::Gzip => {
            let mut enc = GzEncoder::new(hw, Compression::new(level));
            loop {
                let n = read_some(&mut src, &mut buf)?;
                if n == 0 {
                    break;
                }
                dump_bytes += n as u64;
                enc.write_all(&buf[..n]).map_err(StreamError::Write)?;
            }
            enc.finish().map_err(StreamError::Write)?
        }
        Format::Custom => {
            let mut hw = hw;
            loop {
                let n = read_some(&mut src, &mut buf)?;
                if n == 0 {
                    break;
                }
                dump_bytes += n as u64;
                hw.write_all(&buf[..n]).map_err(StreamError::Write)?;
            }
            hw
        }
    };
    drop(src);
    let HashWriter {
        inner,
        hasher,
        bytes,
        check,
    } = hw;
    let file = inner
        .into_inner()
        .map_err(|e| StreamError::Write(e.into_error()))?;
    file.sync_all().map_err(StreamError::Write)?;
    Ok(Written {
        size: bytes,
        dump_bytes,
        sha256: verify::hex(&hasher.finalize()),
        check: check.map(|c| c.finish(dump_bytes)),
    })
}

/// Reads pg_dump's stderr into the log (redacted); keeps the last lines for the error.
async fn read_stderr(
    stderr: Option<tokio::process::ChildStderr>,
    db: String,
    tool: &'static str,
) -> Vec<String> {
    let mut last = Vec::new();
    let Some(stderr) = stderr else { return last };
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = common::secret::redact(&line);
        warn!(database = %db, tool, output = %line, "client tool wrote to stderr");
        if last.len() == 5 {
            last.remove(0);
        }
        last.push(line);
    }
    last
}

enum Outcome {
    Exited(io::Result<std::process::ExitStatus>),
    Cancelled,
    TimedOut,
}

/// Runs one dump to a verified, renamed backup with its manifest.
pub async fn run(spec: &Spec<'_>, cancel: &CancellationToken) -> Result<Done, Error> {
    let started = Instant::now();
    let globals = spec.db == GLOBALS;
    let format = if globals { Format::Gzip } else { spec.format };
    let fail = |reason: String| Error::Dump {
        db: spec.db.to_string(),
        reason,
    };
    let mut time = Utc::now().trunc_subsecs(0);
    let mut name = store::backup_name(spec.db, time, format);
    while spec.dir.join(&name).exists() {
        time += chrono::Duration::seconds(1);
        name = store::backup_name(spec.db, time, format);
    }
    let final_path = spec.dir.join(&name);
    let tmp = spec.dir.join(store::temp_name(&name));
    let file = File::create_new(&tmp)
        .map_err(|e| fail(format!("cannot create {}: {e}", tmp.display())))?;
    let mut guard = TempGuard(Some(tmp.clone()));

    let (tool, mut cmd) = if globals {
        let mut c = Command::new(&spec.tools.pg_dumpall);
        c.args(["--globals-only", "--no-password"]);
        c.envs(spec.conn.child_env("postgres"));
        ("pg_dumpall", c)
    } else {
        let mut c = Command::new(&spec.tools.pg_dump);
        c.arg("--no-password");
        if format == Format::Custom {
            c.arg("--format=custom")
                .arg(format!("--compress={}", spec.level));
        }
        c.args(spec.extra_opts);
        c.envs(spec.conn.child_env(spec.db));
        ("pg_dump", c)
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start {tool}: {e}")))?;
    drop(cmd);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail(format!("{tool}'s output is not captured")))?
        .into_owned_fd()
        .map_err(|e| fail(format!("cannot read {tool}'s output: {e}")))?;
    let stderr_task = tokio::spawn(read_stderr(child.stderr.take(), spec.db.to_string(), tool));
    let level = spec.level;
    let mut writer =
        tokio::task::spawn_blocking(move || write_stream(File::from(stdout), file, format, level));
    let timeout = async {
        match spec.timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    let join = |r: Result<Result<Written, StreamError>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| {
            Err(StreamError::Write(io::Error::other(format!(
                "the file writer panicked: {e}"
            ))))
        })
    };
    // The writer stops early only on an error: then pg_dump is killed (it may be waiting on
    // a lock and would not notice the closed pipe until its next write).
    let mut early = None;
    let outcome = loop {
        tokio::select! {
            st = child.wait() => break Outcome::Exited(st),
            w = &mut writer, if early.is_none() => {
                let w = join(w);
                if w.is_err() {
                    let _ = child.start_kill();
                }
                early = Some(w);
            }
            _ = cancel.cancelled() => break Outcome::Cancelled,
            _ = &mut timeout => break Outcome::TimedOut,
        }
    };
    if !matches!(outcome, Outcome::Exited(..)) {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    let written = match early {
        Some(w) => w,
        None => join(writer.await),
    };
    let stderr_tail = stderr_task.await.unwrap_or_default();
    let status = match outcome {
        Outcome::Cancelled => {
            return Err(Error::Cancelled {
                db: spec.db.to_string(),
            })
        }
        Outcome::TimedOut => {
            return Err(fail(format!(
                "{tool} did not finish within --dump-timeout {}s and was killed",
                spec.timeout.unwrap_or_default().as_secs()
            )))
        }
        Outcome::Exited(st) => st.map_err(|e| fail(format!("cannot wait for {tool}: {e}")))?,
    };
    let written = match written {
        Ok(w) => w,
        Err(StreamError::Read(e)) => {
            return Err(fail(format!("cannot read {tool}'s output: {e}")));
        }
        Err(StreamError::Write(e)) => {
            let hint = if e.raw_os_error() == Some(libc::ENOSPC) {
                "; free space on the volume or enlarge it"
            } else {
                ""
            };
            return Err(fail(format!("cannot write {}: {e}{hint}", tmp.display())));
        }
    };
    if !status.success() {
        let why = stderr_tail
            .last()
            .cloned()
            .unwrap_or_else(|| "no message".into());
        return Err(fail(format!("{tool} failed ({status}): {why}")));
    }
    let verification = match written.check {
        Some(Err(e)) => Err(e),
        Some(Ok(())) => {
            // Read back from the disk: what is there must be what was checked.
            let (path, size, sha) = (tmp.clone(), written.size, written.sha256.clone());
            tokio::task::spawn_blocking(move || verify::check_file_hash(&path, size, &sha))
                .await
                .unwrap_or_else(|e| Err(format!("the read-back check panicked: {e}")))
                .map(|()| "gzip-crc")
        }
        None => verify::check_custom(spec.tools, &tmp).await,
    }
    .map_err(|e| fail(format!("verification of {} failed: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &final_path).map_err(|e| {
        fail(format!(
            "cannot rename {} to {}: {e}",
            tmp.display(),
            final_path.display()
        ))
    })?;
    guard.0 = None;
    let manifest = Manifest {
        creator: store::CREATOR.into(),
        version: common::VERSION.into(),
        database: spec.db.to_string(),
        file: name,
        format,
        timestamp: time.to_rfc3339(),
        size_bytes: written.size,
        dump_bytes: written.dump_bytes,
        sha256: written.sha256,
        duration_seconds: started.elapsed().as_secs_f64(),
        compression_level: spec.level,
        pg_dump_version: spec.tools.dump_version.clone(),
        server_version: spec.server_version.to_string(),
        verified: true,
        verification: verification.to_string(),
    };
    let finish =
        store::sync_dir(spec.dir).and_then(|()| store::write_manifest(&final_path, &manifest));
    if let Err(e) = finish {
        let _ = std::fs::remove_file(&final_path);
        return Err(fail(format!(
            "cannot write the manifest of {}: {e}",
            final_path.display()
        )));
    }
    Ok(Done {
        path: final_path,
        manifest,
    })
}
