//! The HTTP side: one reqwest client (rustls, built-in webpki roots plus `--es-ca-file`),
//! the URLs in failover order, authentication, and the `_bulk` and ping requests.
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};

use crate::{
    config::{Auth, EsSettings},
    Error,
};

/// An answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// A request that got no answer: which URL, and why (no secrets in either).
pub struct NoAnswer {
    pub url: String,
    pub error: String,
}

/// The Elasticsearch client.
pub struct EsClient {
    client: reqwest::Client,
    urls: Vec<url::Url>,
    current: AtomicUsize,
    gzip: bool,
}

impl EsClient {
    /// Builds the client; fails on an unreadable CA file.
    pub fn new(s: &EsSettings) -> Result<Self, Error> {
        let mut headers = HeaderMap::new();
        if let Some(auth) = &s.auth {
            let value = match auth {
                Auth::Basic { user, password } => {
                    format!(
                        "Basic {}",
                        base64(format!("{user}:{}", password.expose()).as_bytes())
                    )
                }
                Auth::ApiKey(k) => format!("ApiKey {}", k.expose()),
                Auth::Bearer(t) => format!("Bearer {}", t.expose()),
            };
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                Error::Config(
                    "Elasticsearch credentials contain characters not allowed in an HTTP header"
                        .into(),
                )
            })?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let tls = common::http_client::ClientTls {
            ca_file: s.ca_file.clone(),
            insecure: s.tls_insecure,
        };
        let b = common::http_client::builder(
            concat!("logship/", env!("CARGO_PKG_VERSION")),
            &tls,
            "--es-ca-file",
        )
        .map_err(Error::Config)?
        .default_headers(headers)
        .timeout(s.timeout)
        .connect_timeout(s.timeout.min(std::time::Duration::from_secs(10)))
        .pool_max_idle_per_host(s.max_in_flight)
        // An idle connection keeps its read buffer (grown to the largest bulk answer): let
        // it go soon after a burst so an idle logship holds no buffers.
        .pool_idle_timeout(std::time::Duration::from_secs(5));
        let client = b
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(EsClient {
            client,
            urls: s.urls.clone(),
            current: AtomicUsize::new(0),
            gzip: s.gzip,
        })
    }

    fn url(&self) -> (usize, &url::Url) {
        let i = self.current.load(Ordering::Relaxed) % self.urls.len();
        (i, &self.urls[i])
    }

    /// URL number `i`.
    pub fn url_at(&self, i: usize) -> &url::Url {
        &self.urls[i % self.urls.len()]
    }

    /// Moves to the next URL after `failed` gave no usable answer.
    pub fn fail_over(&self, failed: usize) {
        if self.urls.len() > 1 {
            let _ = self.current.compare_exchange(
                failed,
                (failed + 1) % self.urls.len(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Sends one `_bulk` request. Returns the index of the URL used with the outcome.
    pub async fn bulk(&self, body: Bytes) -> (usize, Result<Answer, NoAnswer>) {
        let (i, base) = self.url();
        let url = join(base, "_bulk");
        let mut req = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/x-ndjson");
        let body = if self.gzip {
            match super::request::gzip(&body) {
                Ok(z) => {
                    req = req.header(CONTENT_ENCODING, "gzip");
                    z
                }
                Err(_) => body,
            }
        } else {
            body
        };
        (i, self.send(req.body(body), &url).await)
    }

    /// `GET /`: does the cluster answer?
    pub async fn ping(&self) -> (usize, Result<Answer, NoAnswer>) {
        let (i, base) = self.url();
        (i, self.send(self.client.get(base.clone()), base).await)
    }

    async fn send(&self, req: reqwest::RequestBuilder, url: &url::Url) -> Result<Answer, NoAnswer> {
        let no_answer = |e: reqwest::Error| NoAnswer {
            url: url.to_string(),
            error: error_chain(&e),
        };
        let resp = req.send().await.map_err(no_answer)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(no_answer)?;
        Ok(Answer { status, body })
    }
}

fn join(base: &url::Url, path: &str) -> url::Url {
    let mut u = base.clone();
    let p = format!("{}/{path}", u.path().trim_end_matches('/'));
    u.set_path(&p);
    u
}

/// The error with its causes ("error sending request: connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    common::secret::redact(&s)
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(T[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_join() {
        assert_eq!(base64(b"elastic:changeme"), "ZWxhc3RpYzpjaGFuZ2VtZQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        let u = url::Url::parse("http://es:9200/prefix/").unwrap();
        assert_eq!(join(&u, "_bulk").as_str(), "http://es:9200/prefix/_bulk");
        let u = url::Url::parse("http://es:9200").unwrap();
        assert_eq!(join(&u, "_bulk").as_str(), "http://es:9200/_bulk");
    }
}
