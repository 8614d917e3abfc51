//! Secrets: a type that never prints its value, secrets read from files (the Kubernetes Secret
//! volume convention, `--x-file` / `X_FILE`), and redaction of passwords inside URLs and DSNs.
use std::{fmt, path::Path, str::FromStr};

use crate::Error;

/// A secret value. `Debug` and `Display` print `[redacted]`; only [`Secret::expose`] gives the
/// value, so it cannot reach a log line or a metric label by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// Reads a secret from a file, dropping one trailing newline (`echo secret > file` and
/// `kubectl create secret --from-file` both leave one).
pub fn read_secret_file(option: &str, path: &Path) -> Result<Secret, Error> {
    let mut s = std::fs::read_to_string(path).map_err(|source| Error::SecretFile {
        option: option.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(Secret(s))
}

/// Resolves a secret given either directly or as a file (never both).
///
/// `option` is the flag name without `-file`, for messages: `--es-password`.
pub fn resolve(
    option: &str,
    value: Option<Secret>,
    file: Option<&Path>,
) -> Result<Option<Secret>, Error> {
    match (value, file) {
        (Some(_), Some(_)) => Err(Error::SecretTwice {
            option: option.to_string(),
        }),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(p)) => read_secret_file(&format!("{option}-file"), p).map(Some),
        (None, None) => Ok(None),
    }
}

/// The text shown in place of a password.
pub const REDACTED: &str = "***";

/// Redacts passwords in URLs (`postgres://user:pass@host/db` becomes
/// `postgres://user:***@host/db`) and in key/value DSNs (`password=pass`), wherever they occur
/// in `text`. Use it on anything that may carry a connection string before logging it.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // URLs: scheme://user:password@host
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon + 1]);
                        out.push_str(REDACTED);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_pairs(&out)
}

/// Redacts `password=...` style pairs (libpq DSNs, query strings).
fn redact_pairs(text: &str) -> String {
    const KEYS: [&str; 6] = [
        "password=",
        "passwd=",
        "pwd=",
        "secret=",
        "token=",
        "api_key=",
    ];
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hit = KEYS.iter().find(|k| {
            lower[i..].starts_with(*k)
                && (i == 0 || !lower.as_bytes()[i - 1].is_ascii_alphanumeric())
        });
        match hit {
            Some(k) => {
                out.push_str(&text[i..i + k.len()]);
                i += k.len();
                let end = text[i..]
                    .find(|c: char| c.is_whitespace() || c == '&' || c == ';')
                    .map_or(text.len(), |e| i + e);
                if end > i {
                    out.push_str(REDACTED);
                }
                i = end;
            }
            None => {
                let ch = text[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn redacts_urls_and_pairs() {
        assert_eq!(
            redact("connecting to postgres://app:s3cr3t@db:5432/myapp?sslmode=disable"),
            "connecting to postgres://app:***@db:5432/myapp?sslmode=disable"
        );
        assert_eq!(redact("redis://:pw@cache:6379"), "redis://:***@cache:6379");
        assert_eq!(redact("http://user@host/x"), "http://user@host/x");
        assert_eq!(
            redact("host=db user=app password=s3cr3t dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
        assert_eq!(
            redact("https://h/?token=abc&x=1"),
            "https://h/?token=***&x=1"
        );
        assert_eq!(redact("no secrets here"), "no secrets here");
    }

    #[test]
    fn secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cr3t\n").unwrap();
        assert_eq!(
            resolve("--pw", None, Some(&p)).unwrap().unwrap().expose(),
            "s3cr3t"
        );
        assert!(matches!(
            resolve("--pw", Some(Secret::new("x")), Some(&p)),
            Err(Error::SecretTwice { .. })
        ));
        let err = resolve("--pw", None, Some(&dir.path().join("missing"))).unwrap_err();
        assert!(err.to_string().contains("--pw-file"));
    }
}
