//! The agent's own log: JSON lines on stderr (plain text when stderr is a terminal), filtered by
//! `--log-level`. Fields follow one style: a lowercase `message`, the failure in `error`.
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::{config::LogFormat, Error};

/// Checks a `--log-level` value without installing anything.
pub fn filter(level: &str) -> Result<EnvFilter, Error> {
    let bad = || Error::LogLevel {
        value: level.to_string(),
    };
    if level.trim().is_empty() {
        return Err(bad());
    }
    // Bare words that are not levels (`verbose`) would silently mean "a target named verbose".
    if !level.contains(['=', ',', ':', '[']) {
        const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
        if !LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            return Err(bad());
        }
    }
    EnvFilter::try_new(level.trim()).map_err(|_| bad())
}

/// Installs the global subscriber. Call once, early in `main`.
pub fn init(level: &str, format: LogFormat) -> Result<(), Error> {
    let filter = filter(level)?;
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only if a subscriber is already set (tests): keep the first one.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn levels() {
        assert!(super::filter("info").is_ok());
        assert!(super::filter("info,logship=debug").is_ok());
        assert!(super::filter("verbose").is_err());
        assert!(super::filter("").is_err());
    }
}
