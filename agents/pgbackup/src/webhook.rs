//! The optional webhooks: a JSON summary POSTed after each run that succeeded
//! (`--webhook-url`) or failed (`--webhook-error-url`). HTTP/1.1 over TCP, or over TLS
//! (rustls) for https URLs, verified against the public (webpki) roots or
//! `--webhook-ca-file`; ten seconds at most, one attempt: a webhook never delays or fails a
//! backup.
use std::{path::Path, sync::Arc, time::Duration};

use common::{tls as ctls, Secret};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tracing::{debug, warn};

use crate::Error;

/// The TLS client configuration for https webhooks.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ctls::TlsError> {
    ctls::client_config(&ctls::ClientOptions {
        ca_file: ca_file.map(Path::to_path_buf),
        ..Default::default()
    })
}

/// Checks a webhook URL (and, for https, the CA file) at start.
pub fn validate(option: &'static str, url: &Secret, ca_file: Option<&Path>) -> Result<(), Error> {
    let bad = |why: &str| Error::Config {
        option,
        value: common::secret::redact(url.expose()),
        expected: format!("an http:// or https:// URL ({why})"),
    };
    let u = url::Url::parse(url.expose()).map_err(|e| bad(&e.to_string()))?;
    match u.scheme() {
        "http" => {}
        "https" => {
            tls_config(ca_file).map_err(|e| Error::Config {
                option: "--webhook-ca-file",
                value: ca_file.map(|p| p.display().to_string()).unwrap_or_default(),
                expected: format!("a PEM CA bundle for the https webhook ({e})"),
            })?;
        }
        other => return Err(bad(&format!("unsupported scheme {other}"))),
    }
    if u.host_str().is_none() {
        return Err(bad("no host"));
    }
    Ok(())
}

/// POSTs `body`; logs (never returns) failures.
pub async fn post(url: &Secret, ca_file: Option<&Path>, body: &serde_json::Value) {
    let shown = common::secret::redact(url.expose());
    match tokio::time::timeout(Duration::from_secs(10), send(url.expose(), ca_file, body)).await {
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

async fn send(url: &str, ca_file: Option<&Path>, body: &serde_json::Value) -> std::io::Result<u16> {
    let u = url::Url::parse(url).map_err(std::io::Error::other)?;
    let host = u.host_str().unwrap_or_default().to_string();
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = u.port_or_known_default().unwrap_or(80);
    let mut path = u.path().to_string();
    if let Some(q) = u.query() {
        path.push('?');
        path.push_str(q);
    }
    let body = serde_json::to_vec(body).map_err(std::io::Error::other)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: pgbackup/{}\r\nConnection: close\r\n\r\n",
        body.len(),
        common::VERSION
    );
    let tcp = TcpStream::connect((bare_host.as_str(), port)).await?;
    if u.scheme() == "https" {
        let config = tls_config(ca_file).map_err(std::io::Error::other)?;
        let name = ctls::server_name(&bare_host).map_err(std::io::Error::other)?;
        let tls = ctls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| std::io::Error::other(format!("TLS handshake: {e}")))?;
        exchange(tls, head.as_bytes(), &body).await
    } else {
        exchange(tcp, head.as_bytes(), &body).await
    }
}

/// Sends the request, reads the status line.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: &[u8],
    body: &[u8],
) -> std::io::Result<u16> {
    s.write_all(head).await?;
    s.write_all(body).await?;
    s.flush().await?;
    let mut buf = vec![0u8; 256];
    let mut n = 0;
    // The status line may arrive in pieces (TLS records); read until its end.
    while n < buf.len() && !buf[..n].contains(&b'\n') {
        let m = s.read(&mut buf[n..]).await?;
        if m == 0 {
            break;
        }
        n += m;
    }
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
