//! What one check attempt found when the target was not ready: a small kind (what the state
//! changes are tracked on, and the metric label) and a one-line message for people.
use std::{fmt, io};

/// Why a target is not ready, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailKind {
    /// The host name does not resolve (yet).
    Resolve,
    /// The TCP connection failed (refused, unreachable, reset).
    Connect,
    /// The attempt took longer than the per-attempt timeout.
    Timeout,
    /// The server rejected the credentials: not "not ready yet", a configuration problem.
    Auth,
    /// The server answered in its protocol but is not ready (starting up, 503, table missing).
    NotReady,
    /// Something answered, but not in the expected protocol (wrong port?).
    Protocol,
    /// A file does not exist or is empty.
    Missing,
}

impl FailKind {
    /// Metric label and log field value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailKind::Resolve => "dns",
            FailKind::Connect => "connect",
            FailKind::Timeout => "timeout",
            FailKind::Auth => "auth",
            FailKind::NotReady => "not_ready",
            FailKind::Protocol => "protocol",
            FailKind::Missing => "missing",
        }
    }

    /// Every kind, for metrics.
    pub const ALL: [FailKind; 7] = [
        FailKind::Resolve,
        FailKind::Connect,
        FailKind::Timeout,
        FailKind::Auth,
        FailKind::NotReady,
        FailKind::Protocol,
        FailKind::Missing,
    ];
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The coarse reason.
    pub kind: FailKind,
    /// What happened, for people (never carries a password).
    pub message: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: FailKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// The server answered but is not ready.
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::new(FailKind::NotReady, message)
    }

    /// Unexpected bytes.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(FailKind::Protocol, message)
    }

    /// Credentials rejected; the message always starts with "authentication failed".
    pub fn auth(detail: impl fmt::Display) -> Self {
        Self::new(FailKind::Auth, format!("authentication failed: {detail}"))
    }

    /// An I/O error on an open connection (reset, closed early).
    pub fn io(what: &str, e: &io::Error) -> Self {
        let kind = match e.kind() {
            io::ErrorKind::TimedOut => FailKind::Timeout,
            io::ErrorKind::UnexpectedEof => FailKind::Protocol,
            _ => FailKind::Connect,
        };
        let msg = if e.kind() == io::ErrorKind::UnexpectedEof {
            format!("{what}: the server closed the connection")
        } else {
            format!("{what}: {e}")
        };
        Failure::new(kind, msg)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The result of one attempt.
pub type CheckResult = Result<(), Failure>;
