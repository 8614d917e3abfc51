//! The optional webhooks: a JSON summary POSTed after each run that succeeded
//! (`--webhook-url`) or failed (`--webhook-error-url`). Plain HTTP/1.1 over TCP, ten seconds at
//! most, one attempt: a webhook never delays or fails a backup. (https URLs are refused at
//! start: this build carries no TLS client.)
use std::time::Duration;

use common::Secret;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tracing::{debug, warn};

use crate::Error;

/// Checks a webhook URL at start.
pub fn validate(option: &'static str, url: &Secret) -> Result<(), Error> {
    let bad = |why: &str| Error::Config {
        option,
        value: common::secret::redact(url.expose()),
        expected: format!("an http:// URL ({why})"),
    };
    let u = url::Url::parse(url.expose()).map_err(|e| bad(&e.to_string()))?;
    if u.scheme() != "http" {
        return Err(bad(
            "https is not supported: use an in-cluster http endpoint",
        ));
    }
    if u.host_str().is_none() {
        return Err(bad("no host"));
    }
    Ok(())
}

/// POSTs `body`; logs (never returns) failures.
pub async fn post(url: &Secret, body: &serde_json::Value) {
    let shown = common::secret::redact(url.expose());
    match tokio::time::timeout(Duration::from_secs(10), send(url.expose(), body)).await {
        Ok(Ok(status)) if (200..300).contains(&status) => {
            debug!(url = %shown, status, "webhook sent")
        }
        Ok(Ok(status)) => warn!(url = %shown, status, "webhook answered with an error status"),
        Ok(Err(error)) => {
            warn!(url = %shown, error = %common::secret::redact(&error.to_string()), "cannot send webhook")
        }
        Err(_) => warn!(url = %shown, "webhook timed out after 10s"),
    }
}

async fn send(url: &str, body: &serde_json::Value) -> std::io::Result<u16> {
    let u = url::Url::parse(url).map_err(std::io::Error::other)?;
    let host = u.host_str().unwrap_or_default().to_string();
    let port = u.port_or_known_default().unwrap_or(80);
    let mut path = u.path().to_string();
    if let Some(q) = u.query() {
        path.push('?');
        path.push_str(q);
    }
    let body = serde_json::to_vec(body).map_err(std::io::Error::other)?;
    let mut s =
        TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port)).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: pgbackup/{}\r\nConnection: close\r\n\r\n",
        body.len(),
        common::VERSION
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(&body).await?;
    let mut buf = vec![0u8; 256];
    let n = s.read(&mut buf).await?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "not an HTTP answer: {:?}",
                line.lines().next().unwrap_or("")
            ))
        })
}
