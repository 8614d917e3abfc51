//! `http://` and `https://`: a GET answered with an expected status (2xx by default) and,
//! optionally, a body containing a substring or matching a regex. Custom CA or skip-verify.
//!
//! Per-target options go in the fragment, which is never sent:
//! `https://api/healthz#status=200-399&contains=ok&regex=...&ca=/etc/ca.pem&insecure`.
//! The `--http-*` flags give the defaults. 401 and 403 outside the expected statuses are
//! reported as authentication failures.
use std::{path::PathBuf, sync::Arc, time::Duration};

use regex::Regex;
use url::Url;

use crate::{
    outcome::{CheckResult, FailKind, Failure},
    resolve::Resolver,
    target::Options,
};

/// Most of a body that is read for matching.
const BODY_LIMIT: usize = 1 << 20;

/// HTTP check options (defaults from flags, overridden per target).
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Accepted status ranges (inclusive); empty means 200-299.
    pub status: Vec<(u16, u16)>,
    /// The body must contain this.
    pub contains: Option<String>,
    /// The body must match this.
    pub regex: Option<Regex>,
    /// Extra CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification.
    pub insecure: bool,
}

/// An HTTP(S) target.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    url: Url,
    opts: HttpOptions,
}

/// Status ranges as an option value.
#[derive(Debug, Clone)]
pub struct StatusRanges(pub Vec<(u16, u16)>);

impl StatusRanges {
    /// Parses the `--http-status` value.
    pub fn parse(s: &str) -> Result<Self, String> {
        parse_status(s).map(StatusRanges)
    }
}

/// Parses `200`, `200-399`, `2xx`, or a comma-separated list of those.
pub fn parse_status(s: &str) -> Result<Vec<(u16, u16)>, String> {
    const EXPECTED: &str = "expected status codes such as 200, 200-399, 2xx or 200,301";
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let code = |c: &str| {
            c.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
        };
        let range = if let Some(d) = part.strip_suffix("xx").or_else(|| part.strip_suffix("XX")) {
            let d: u16 = d
                .parse()
                .ok()
                .filter(|d| (1..=5).contains(d))
                .ok_or(EXPECTED)?;
            (d * 100, d * 100 + 99)
        } else if let Some((a, b)) = part.split_once('-') {
            (code(a).ok_or(EXPECTED)?, code(b).ok_or(EXPECTED)?)
        } else {
            let c = code(part).ok_or(EXPECTED)?;
            (c, c)
        };
        if range.0 > range.1 {
            return Err(EXPECTED.to_string());
        }
        out.push(range);
    }
    if out.is_empty() {
        return Err(EXPECTED.to_string());
    }
    Ok(out)
}

/// Compiles a body regex, naming the option on error.
pub fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| format!("invalid regex {s:?}: {e}"))
}

fn show_ranges(r: &[(u16, u16)]) -> String {
    r.iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl HttpTarget {
    /// Parses the fragment options over `defaults`.
    pub fn parse(mut url: Url, mut o: Options, defaults: &HttpOptions) -> Result<Self, String> {
        let mut opts = defaults.clone();
        if let Some(s) = o.take("status") {
            opts.status = parse_status(&s).map_err(|e| format!("option status={s}: {e}"))?;
        }
        if let Some(c) = o.take("contains") {
            opts.contains = Some(c);
        }
        if let Some(r) = o.take("regex") {
            opts.regex = Some(parse_regex(&r)?);
        }
        if let Some(ca) = o.take("ca") {
            opts.ca_file = Some(PathBuf::from(ca));
        }
        if let Some(i) = o.take_flag("insecure")? {
            opts.insecure = i;
        }
        o.finish(url.scheme(), "status, contains, regex, ca, insecure")?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err("http(s):// needs a host, as in http://api:8080/healthz".to_string());
        }
        if opts.status.is_empty() {
            opts.status = vec![(200, 299)];
        }
        url.set_fragment(None);
        Ok(HttpTarget { url, opts })
    }

    /// Builds the client for this target (once, at start).
    pub fn client(
        &self,
        resolver: &Resolver,
        timeout: Duration,
    ) -> Result<reqwest::Client, String> {
        let mut b = reqwest::Client::builder()
            .dns_resolver(Arc::new(resolver.clone()))
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(0)
            .user_agent(concat!("podmates-waitfor/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &self.opts.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("CA file {} holds no PEM certificate: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "CA file {} holds no PEM certificate",
                    path.display()
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if self.opts.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        b.build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    }

    /// One GET.
    pub async fn check(&self, client: &reqwest::Client) -> CheckResult {
        let mut resp = client
            .get(self.url.clone())
            .send()
            .await
            .map_err(request_failure)?;
        let status = resp.status();
        let code = status.as_u16();
        if !self
            .opts
            .status
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&code))
        {
            let msg = format!(
                "HTTP {status} (expected {})",
                show_ranges(&self.opts.status)
            );
            return Err(if code == 401 || code == 403 {
                Failure::auth(msg)
            } else {
                Failure::not_ready(msg)
            });
        }
        if self.opts.contains.is_none() && self.opts.regex.is_none() {
            return Ok(());
        }
        let mut body = Vec::new();
        while body.len() < BODY_LIMIT {
            match resp.chunk().await.map_err(request_failure)? {
                Some(c) => body.extend_from_slice(&c),
                None => break,
            }
        }
        let text = String::from_utf8_lossy(&body);
        if let Some(c) = &self.opts.contains {
            if !text.contains(c.as_str()) {
                return Err(Failure::not_ready(format!(
                    "HTTP {code} but the body does not contain {c:?}"
                )));
            }
        }
        if let Some(r) = &self.opts.regex {
            if !r.is_match(&text) {
                return Err(Failure::not_ready(format!(
                    "HTTP {code} but the body does not match /{r}/"
                )));
            }
        }
        Ok(())
    }
}

/// Classifies a reqwest error, with its whole cause chain and without the URL.
fn request_failure(e: reqwest::Error) -> Failure {
    let kind = if e.is_timeout() {
        FailKind::Timeout
    } else if e.is_connect() {
        FailKind::Connect
    } else {
        FailKind::Protocol
    };
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    let kind = if msg.contains("does not resolve") {
        FailKind::Resolve
    } else {
        kind
    };
    Failure::new(kind, common::secret::redact(&msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(parse_status("2xx").unwrap(), vec![(200, 299)]);
        assert_eq!(
            parse_status("200-399,418").unwrap(),
            vec![(200, 399), (418, 418)]
        );
        assert!(parse_status("299-200").is_err());
        assert!(parse_status("ok").unwrap_err().contains("200-399"));
        assert!(parse_status("9xx").is_err());
        assert_eq!(show_ranges(&[(200, 299), (418, 418)]), "200-299,418");
    }
}
