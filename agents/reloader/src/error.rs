//! The crate's one error type: configuration mistakes (exit 2) and failures that stop the agent.
use std::path::PathBuf;

/// What can stop reloader.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option has a value reloader cannot use.
    #[error("invalid value {value:?} for {option}: {expected}")]
    Config {
        /// The flag (`--webhook-url`).
        option: &'static str,
        /// The value given (redacted when it may carry a secret).
        value: String,
        /// What is expected instead.
        expected: String,
    },
    /// A watched path is not there.
    #[error("cannot watch {path}: {source}; check the volume mount and the --watch (RELOADER_WATCH) value")]
    WatchPath {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(reqwest::Error),
    /// `--once` could not sync or validate.
    #[error("--once failed: {0}")]
    Once(String),
}

impl Error {
    /// A configuration error for `option`.
    pub(crate) fn config(
        option: &'static str,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Error::Config {
            option,
            value: value.into(),
            expected: expected.into(),
        }
    }
}
