//! Starting and finishing the tailer, and the checkpoint task.
//!
//! [`Handle::start`] validates the configuration, opens the data directory, starts the
//! watcher, runs the initial scan (so "files present at start" is well defined), and spawns
//! the reader and the checkpoint writer. [`Handle::finish`] stops the reader and writes the
//! final checkpoint.
use std::sync::Arc;

use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    ack::{Acker, Shared},
    checkpoint::Store,
    glob::Globs,
    reader::Reader,
    watch::{Events, Watcher},
    Chunk, FileStats, TailConfig, TailError,
};

/// Chunks waiting in the channel.
const CHANNEL: usize = 16;

/// The running reader and checkpoint tasks.
#[derive(Debug)]
pub(crate) struct Handle {
    cancel: CancellationToken,
    shared: Arc<Shared>,
    store: Option<Store>,
    reader: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
}

fn check(config: &TailConfig) -> Result<(), TailError> {
    let bad = |name, reason| Err(TailError::Setting { name, reason });
    if config.max_line_bytes == 0 {
        return bad("max_line_bytes", "expected at least 1 byte");
    }
    if config.max_batch_bytes == 0 {
        return bad("max_batch_bytes", "expected at least 1 byte");
    }
    if config.max_in_flight_bytes == 0 {
        return bad("max_in_flight_bytes", "expected at least 1 byte");
    }
    if config.rescan_interval.is_zero() {
        return bad("rescan_interval", "expected a duration above zero, e.g. 1s");
    }
    if config.checkpoint_interval.is_zero() {
        return bad(
            "checkpoint_interval",
            "expected a duration above zero, e.g. 1s",
        );
    }
    Ok(())
}

impl Handle {
    pub(crate) fn start(
        config: TailConfig,
        shutdown: CancellationToken,
    ) -> Result<(Handle, mpsc::Receiver<Chunk>), TailError> {
        let globs = Arc::new(Globs::new(&config.include, &config.exclude)?);
        check(&config)?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| TailError::NoRuntime)?;
        let (store, mut entries) = match &config.data_dir {
            Some(dir) => {
                let (store, entries) = Store::open(dir)?;
                (Some(store), entries)
            }
            None => (None, Vec::new()),
        };
        let shared = Arc::new(Shared::new(config.max_in_flight_bytes as u64));
        let events = Arc::new(Events::default());
        let watcher = Watcher::new(events.clone(), globs.clone());
        let (tx, rx) = mpsc::channel(CHANNEL);
        let cancel = shutdown.child_token();
        let checkpoint_interval = config.checkpoint_interval;
        let mut reader = Reader::new(
            config,
            globs,
            shared.clone(),
            events,
            watcher,
            tx,
            cancel.clone(),
        );
        // Files present now: checkpoints and the start position apply to them.
        reader.scan_at_start(&mut entries);
        for e in &entries {
            debug!(path = %e.path.display(), "checkpoint matches no file now, dropping it");
        }
        let reader = rt.spawn(reader.run());
        let checkpointer = store.clone().map(|store| {
            rt.spawn(checkpoints(
                store,
                shared.clone(),
                cancel.clone(),
                checkpoint_interval,
            ))
        });
        Ok((
            Handle {
                cancel,
                shared,
                store,
                reader: Some(reader),
                checkpointer,
            },
            rx,
        ))
    }

    pub(crate) fn acker(&self) -> Acker {
        Acker::new()
    }

    pub(crate) fn stats(&self) -> Vec<FileStats> {
        self.shared.stats()
    }

    #[cfg(test)]
    pub(crate) fn rounds(&self) -> u64 {
        self.shared
            .rounds
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) async fn finish(mut self) -> Result<(), TailError> {
        self.cancel.cancel();
        if let Some(task) = self.reader.take() {
            let _ = task.await;
        }
        if let Some(task) = self.checkpointer.take() {
            let _ = task.await;
        }
        if let Some(store) = self.store.take() {
            let entries = self.shared.snapshot();
            match tokio::task::spawn_blocking(move || store.write(entries)).await {
                Ok(r) => r?,
                Err(e) => warn!(error = %e, "final checkpoint task failed"),
            }
        }
        Ok(())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Writes the checkpoint every interval when something changed; nothing at cancellation
/// (the final write is [`Handle::finish`]'s, after the reader stopped).
async fn checkpoints(
    store: Store,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    every: std::time::Duration,
) {
    let mut written = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let generation = shared.generation();
        if written == Some(generation) {
            continue;
        }
        let entries = shared.snapshot();
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.write(entries)).await {
            Ok(Ok(())) => {
                written = Some(generation);
                if failing {
                    info!("checkpoint written again");
                    failing = false;
                }
            }
            Ok(Err(error)) => {
                if !failing {
                    warn!(%error, "cannot write checkpoint, retrying");
                    failing = true;
                }
            }
            Err(error) => warn!(%error, "checkpoint task failed"),
        }
    }
}
