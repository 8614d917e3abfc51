//! Graceful shutdown: one cancellation token every task sees, one task tracker the runtime
//! waits on, and the signal handling that trips them.
//!
//! The first SIGTERM or SIGINT (or `POST /quitquitquit` on the admin server) marks the agent
//! not ready and cancels the token; each task finishes its work (flush, checkpoint, drain) and
//! returns. A second signal exits at once with 128 + the signal number.
use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{readiness::Readiness, Error};

/// A handle on the agent's shutdown: cheap to clone, one per task.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh, untriggered shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown (what a signal does).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// True once shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when shutdown starts; use it in `select!`.
    pub async fn triggered(&self) {
        self.token.cancelled().await
    }

    /// The token, for libraries that take one.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// A child token: cancelled with this one, or on its own.
    pub fn child_token(&self) -> CancellationToken {
        self.token.child_token()
    }

    /// Spawns a task the runtime waits for before it exits.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(fut)
    }

    /// Waits for every spawned task to finish (after [`Shutdown::close`]).
    pub async fn wait(&self) {
        self.tracker.wait().await
    }

    /// No more tasks will be spawned; lets [`Shutdown::wait`] complete.
    pub fn close(&self) {
        self.tracker.close();
    }
}

/// Starts the graceful shutdown: readiness turns false first, then every task sees the token.
pub fn start(shutdown: &Shutdown, readiness: &Readiness) {
    readiness.shutting_down();
    shutdown.trigger();
}

/// Listens for SIGTERM and SIGINT: the first starts the graceful shutdown, a second exits at
/// once. Returns once the handlers are installed.
pub fn listen_for_signals(shutdown: Shutdown, readiness: Readiness) -> Result<(), Error> {
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = first,
            "shutdown started; a second signal exits at once"
        );
        start(&shutdown, &readiness);
        let (second, code) = tokio::select! {
            _ = term.recv() => ("SIGTERM", 128 + libc::SIGTERM),
            _ = int.recv() => ("SIGINT", 128 + libc::SIGINT),
        };
        tracing::warn!(
            signal = second,
            "second signal: exiting without finishing the drain"
        );
        std::process::exit(code);
    });
    Ok(())
}
