//! One dump: pg_dump (or pg_dumpall --globals-only) streamed into a temp file in the backup
//! directory through gzip (or as pg_dump's custom format), hashed on the way; verified; then
//! fsynced, renamed atomically to its final name and described by a manifest. Whatever goes
//! wrong (pg_dump fails or is killed, a full disk, a failed check, shutdown), the temp file is
//! removed: nothing half-written ever looks like a backup.
//!
//! Memory stays flat: pg_dump's stdout is read in 64 KiB chunks on the runtime and handed
//! through a channel of four chunks to a blocking thread that compresses, hashes and writes.
use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use chrono::{SubsecRound, Utc};
use flate2::{write::GzEncoder, Compression};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::Command,
    sync::mpsc,
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

const CHUNK: usize = 64 * 1024;

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

/// Counts and hashes what goes to the file.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
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
}

/// The blocking side: compress (or not), hash, write, fsync.
fn write_stream(
    mut rx: mpsc::Receiver<Vec<u8>>,
    file: File,
    format: Format,
    level: u32,
) -> io::Result<Written> {
    let hw = HashWriter {
        inner: BufWriter::with_capacity(128 * 1024, file),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut dump_bytes = 0u64;
    let hw = match format {
        Format::Gzip => {
            let mut enc = GzEncoder::new(hw, Compression::new(level));
            while let Some(chunk) = rx.blocking_recv() {
                dump_bytes += chunk.len() as u64;
                enc.write_all(&chunk)?;
            }
            enc.finish()?
        }
        Format::Custom => {
            let mut hw = hw;
            while let Some(chunk) = rx.blocking_recv() {
                dump_bytes += chunk.len() as u64;
                hw.write_all(&chunk)?;
            }
            hw
        }
    };
    let HashWriter {
        inner,
        hasher,
        bytes,
    } = hw;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Written {
        size: bytes,
        dump_bytes,
        sha256,
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
    Exited(io::Result<()>, io::Result<std::process::ExitStatus>),
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
    let stdout = child.stdout.take();
    let stderr_task = tokio::spawn(read_stderr(child.stderr.take(), spec.db.to_string(), tool));
    let (tx, rx) = mpsc::channel::<Vec<u8>>(4);
    let level = spec.level;
    let writer = tokio::task::spawn_blocking(move || write_stream(rx, file, format, level));

    let pump = async move {
        let Some(mut stdout) = stdout else {
            return Ok(());
        };
        loop {
            let mut buf = Vec::with_capacity(CHUNK);
            let n = stdout.read_buf(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            if tx.send(buf).await.is_err() {
                return Err(io::Error::other("the file writer stopped"));
            }
        }
    };
    let timeout = async {
        match spec.timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        (p, st) = async {
            let p = pump.await;
            if p.is_err() {
                let _ = child.start_kill();
            }
            (p, child.wait().await)
        } => Outcome::Exited(p, st),
        _ = cancel.cancelled() => Outcome::Cancelled,
        _ = timeout => Outcome::TimedOut,
    };
    if !matches!(outcome, Outcome::Exited(..)) {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    let written = writer
        .await
        .map_err(|e| fail(format!("the file writer panicked: {e}")))?;
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
        Outcome::Exited(pumped, st) => {
            if let (Err(e), Ok(_)) = (&pumped, &written) {
                return Err(fail(format!("cannot read {tool}'s output: {e}")));
            }
            st.map_err(|e| fail(format!("cannot wait for {tool}: {e}")))?
        }
    };
    let written = match written {
        Ok(w) => w,
        Err(e) => {
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
    let verification = verify::check(spec.tools, &tmp, format, written.dump_bytes)
        .await
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
