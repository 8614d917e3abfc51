//! The common crate's error type.
use std::{io, net::SocketAddr, path::PathBuf};

/// What can go wrong in the shared machinery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The admin server could not bind its address.
    #[error("cannot listen on admin address {addr}: {source}; choose another with --admin-addr (or ADMIN_ADDR), or turn it off with --admin-addr none")]
    AdminBind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// A secret file could not be read.
    #[error("cannot read {option} from file {path}: {source}; check that the Secret volume is mounted and readable")]
    SecretFile {
        /// The option that names the file (`--es-password-file`).
        option: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Both a value and a file were given for one secret.
    #[error("{option} and {option}-file were both given; use only one")]
    SecretTwice {
        /// The option (`--es-password`).
        option: String,
    },
    /// The log level did not parse.
    #[error("invalid value {value:?} for --log-level: expected error, warn, info, debug, trace, or tracing directives such as info,logship=debug")]
    LogLevel {
        /// The value given.
        value: String,
    },
    /// Installing a signal handler failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
}
