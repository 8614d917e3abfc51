//! Outputs: stdout, a file rotated by size, or an HTTP endpoint receiving NDJSON POSTs (with
//! Elasticsearch `_bulk` support), retried with `common::retry::Backoff`.
use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use common::retry::Backoff;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{
    config::{OutputTarget, Settings},
    events::OutputFailed,
    metrics::Metrics,
    Error,
};

/// Where records go.
#[derive(Debug)]
pub enum Sink {
    /// Standard output.
    Stdout(tokio::io::Stdout),
    /// A rotated file.
    File(RotatingFile),
    /// HTTP POSTs.
    Http(HttpSink),
}

impl Sink {
    /// Opens the output of `s`.
    pub fn open(s: &Settings) -> Result<Sink, Error> {
        Ok(match &s.output {
            OutputTarget::Stdout => Sink::Stdout(tokio::io::stdout()),
            OutputTarget::File(p) => Sink::File(RotatingFile::open(
                p,
                s.output_max_bytes,
                s.output_max_files,
            )?),
            OutputTarget::Http { url, bulk } => {
                Sink::Http(HttpSink::new(url, *bulk, s.http_timeout, &s.http_tls)?)
            }
        })
    }

    /// The output's name for logs and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Stdout(_) => "stdout",
            Sink::File(_) => "file",
            Sink::Http(_) => "http",
        }
    }

    /// Writes NDJSON. HTTP retries until it succeeds or `stop` is cancelled; a permanent
    /// rejection (4xx) drops the batch (counted) and returns Ok.
    pub async fn write(
        &mut self,
        data: &str,
        m: &Metrics,
        stop: &CancellationToken,
    ) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        let name = self.name();
        let fail = |e: &dyn std::fmt::Display| {
            OutputFailed {
                output: name,
                error: e,
                action: "stopping",
            }
            .emit(m);
        };
        match self {
            Sink::Stdout(out) => {
                let r = async {
                    out.write_all(data.as_bytes()).await?;
                    out.flush().await
                }
                .await;
                r.map_err(|e| {
                    fail(&e);
                    Error::Output(format!("cannot write to stdout: {e}"))
                })
            }
            Sink::File(f) => f.write(data.as_bytes()).map_err(|e| {
                fail(&e);
                Error::Output(format!("cannot write to {}: {e}", f.path.display()))
            }),
            Sink::Http(h) => h.post(data, m, stop).await,
        }
    }
}

/// A file that is renamed to `.1` (and older ones shifted up to `.N`) when it would pass its
/// size limit.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: usize,
}

impl RotatingFile {
    /// Opens (appends to) `path`.
    pub fn open(path: &Path, max_bytes: u64, max_files: usize) -> Result<Self, Error> {
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
            Error::Output(format!("cannot open output file {}: {e}; check that the directory exists and is writable", path.display()))
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            max_files,
        })
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_files == 0 {
            self.file.set_len(0)?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.max_files));
            for n in (1..self.max_files).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        info!(path = %self.path.display(), "output file rotated");
        Ok(())
    }

    /// Appends `data` (whole lines), rotating at line boundaries first when it would not fit.
    pub fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let room = self.max_bytes.saturating_sub(self.size) as usize;
            // As many whole lines as fit; at least one line into an empty file.
            let take = if data.len() <= room {
                data.len()
            } else {
                match memchr::memrchr(b'\n', &data[..room.min(data.len())]) {
                    Some(p) => p + 1,
                    None if self.size == 0 => {
                        memchr::memchr(b'\n', data).map_or(data.len(), |p| p + 1)
                    }
                    None => 0,
                }
            };
            if take == 0 {
                self.rotate()?;
                continue;
            }
            self.file.write_all(&data[..take])?;
            self.size += take as u64;
            data = &data[take..];
            if !data.is_empty() {
                self.rotate()?;
            }
        }
        Ok(())
    }
}

/// NDJSON POSTs with retries.
#[derive(Debug)]
pub struct HttpSink {
    client: reqwest::Client,
    url: String,
    bulk: bool,
}

impl HttpSink {
    /// A sink POSTing to `url`, trusting `tls`'s CA file besides the built-in roots.
    pub fn new(
        url: &str,
        bulk: bool,
        timeout: Duration,
        tls: &common::http_client::ClientTls,
    ) -> Result<Self, Error> {
        let client = common::http_client::builder(
            concat!("podmates-log2json/", env!("CARGO_PKG_VERSION")),
            tls,
            "--http-ca-file",
        )
        .map_err(Error::Output)?
        .timeout(timeout)
        .build()
        .map_err(|e| Error::Output(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpSink {
            client,
            url: url.to_string(),
            bulk,
        })
    }

    async fn post(
        &mut self,
        data: &str,
        m: &Metrics,
        stop: &CancellationToken,
    ) -> Result<(), Error> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let url = common::secret::redact(&self.url);
        loop {
            let res = self
                .client
                .post(&self.url)
                .header("content-type", "application/x-ndjson")
                .body(data.to_string())
                .send()
                .await;
            let error = match res {
                Ok(r) if r.status().is_success() => {
                    if self.bulk {
                        self.check_bulk(r, m).await;
                    }
                    return Ok(());
                }
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    let e = format!(
                        "{url} answered {status}: {}",
                        body.chars().take(300).collect::<String>()
                    );
                    if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408
                    {
                        OutputFailed {
                            output: "http",
                            error: &e,
                            action: "dropping the batch (the server rejected it)",
                        }
                        .emit(m);
                        return Ok(());
                    }
                    e
                }
                Err(e) => format!("POST {url}: {e}"),
            };
            OutputFailed {
                output: "http",
                error: &error,
                action: "retrying",
            }
            .emit(m);
            if backoff.wait(stop).await.is_err() {
                return Err(Error::Output(format!("gave up sending to {url}: {error}")));
            }
        }
    }

    /// Counts the items an Elasticsearch `_bulk` answer rejected (a 409 on create is a
    /// duplicate: already there).
    async fn check_bulk(&self, r: reqwest::Response, m: &Metrics) {
        let Ok(body) = r.bytes().await else { return };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return;
        };
        if v["errors"] != serde_json::Value::Bool(true) {
            return;
        }
        let items = v["items"].as_array().map(Vec::as_slice).unwrap_or_default();
        let failed: Vec<&serde_json::Value> = items
            .iter()
            .filter_map(|i| i.as_object().and_then(|o| o.values().next()))
            .filter(|i| i["status"].as_u64().is_some_and(|s| s >= 300 && s != 409))
            .collect();
        if let Some(first) = failed.first() {
            let e = format!(
                "{} of {} records rejected, first: {}",
                failed.len(),
                items.len(),
                first["error"]
            );
            OutputFailed {
                output: "http",
                error: &e,
                action: "dropping the rejected records",
            }
            .emit(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_line_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        let mut f = RotatingFile::open(&p, 10, 2).unwrap();
        f.write(b"aaaa\nbbbb\ncccc\n").unwrap();
        f.write(b"dddd\n").unwrap();
        f.write(b"a-line-longer-than-the-limit\n").unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(p.clone()), "a-line-longer-than-the-limit\n");
        assert_eq!(read(dir.path().join("out.json.1")), "cccc\ndddd\n");
        assert_eq!(read(dir.path().join("out.json.2")), "aaaa\nbbbb\n");
        assert!(!dir.path().join("out.json.3").exists());
    }
}
