//! What every podmates agent shares.
//!
//! # Layout
//! - [`runtime`]: the [`Agent`] trait and [`main`], which every agent's `main.rs` calls: parse
//!   flags and env, set up logging and metrics, serve the admin endpoints, run the agent until
//!   it finishes or a signal asks it to stop, and turn the outcome into an exit code.
//! - [`config`]: the options every agent has ([`CommonArgs`]) and the shared value parsers
//!   (durations, byte sizes, listen addresses).
//! - [`secret`]: the [`Secret`] type, secrets read from files, and URL redaction.
//! - [`log`]: JSON log lines on stderr (plain text on a terminal).
//! - [`shutdown`]: the cancellation token and task tracker every task sees; signal handling.
//! - [`readiness`]: named readiness conditions behind `/readyz`.
//! - [`metrics`]: the registry, build info and process metrics behind `/metrics`.
//! - [`admin`]: the admin HTTP server (`/healthz`, `/readyz`, `/metrics`).
//! - [`retry`]: the one backoff helper (exponential, jitter, cap, deadline).
//! - [`resolve`]: host names through an optional hosts-style override file, then DNS.
//!
//! Optional parts, behind cargo features, for what two agents share:
//! `tail` (the file tailing engine), `parse` (log line formats), `tls` (rustls helpers),
//! `mimalloc` (the hot-path agents' allocator, and giving free memory back when idle),
//! `postgres-tls` (libpq's sslmode over rustls for tokio-postgres), `http-client` (the
//! outgoing reqwest client with a CA file and an insecure switch).
//!
//! No `unsafe` anywhere, except the one argument-less FFI call in `alloc` (denied by default,
//! allowed at that call only).
#![deny(unsafe_code)]

pub mod admin;
#[cfg(feature = "mimalloc")]
pub mod alloc;
pub mod config;
mod error;
#[cfg(feature = "http-client")]
pub mod http_client;
pub mod log;
pub mod metrics;
pub mod readiness;
pub mod resolve;
pub mod retry;
pub mod runtime;
pub mod secret;
pub mod shutdown;

#[cfg(feature = "parse")]
pub mod parse;
#[cfg(feature = "postgres-tls")]
pub mod pg_tls;
#[cfg(feature = "tail")]
pub mod tail;
#[cfg(feature = "tls")]
pub mod tls;

pub use config::CommonArgs;
pub use error::Error;
pub use readiness::Readiness;
pub use runtime::{main, Agent, AgentInfo, Context, Flavor};
pub use secret::Secret;
pub use shutdown::Shutdown;

/// The suite's version, from the workspace manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from (`unknown` outside a checkout).
pub const GIT_COMMIT: &str = env!("PODMATES_GIT_COMMIT");

/// Re-exported so agents register metrics with the same version of the crate.
pub use prometheus_client;
