//! The allocator of the hot-path agents (feature `mimalloc`): mimalloc on musl (musl's own
//! allocator is several times slower on their allocation patterns), the system allocator
//! elsewhere; and [`spawn_idle_release`], which hands free memory back to the OS once an agent
//! goes quiet after a burst.
//!
//! Why: mimalloc purges freed memory lazily, on later allocator calls. An agent that goes idle
//! after shipping a burst makes almost no calls, so without a nudge its RSS stays at the
//! burst's high-water mark for good (measured: logship idle 17-22 MB after 300,000 lines,
//! see benches/logship/README.md).
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The global allocator type: `#[global_allocator] static A: common::alloc::Global = ...`
/// (only on musl; elsewhere the system allocator stays).
#[cfg(target_env = "musl")]
pub use mimalloc::MiMalloc as Global;

/// Returns free memory to the OS now: a full collection (this thread's heap, pages abandoned
/// by finished threads, purging what is free). A few hundred microseconds; a no-op off musl.
/// (Making purging immediate for the call, through `mi_option_purge_delay`, left more memory
/// resident, measured; immediate purging all the time costs about 40% more CPU under load.)
pub fn release_free_memory() {
    #[cfg(target_env = "musl")]
    #[allow(unsafe_code)]
    // SAFETY: mi_collect takes no pointers and may be called at any time from any thread.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

/// How many quiet ticks in a row release memory after a burst. Enough ticks (at logship's
/// 2 s period, 16 s) to outlast what lets go of memory on its own timers after a burst: the
/// tailer's read buffer after a rescan interval of quiet, idle HTTP connections (and the read
/// buffers they grew) within twice their 5 s idle timeout.
pub const QUIET_RELEASES: u32 = 8;

/// Every `period`, reads `activity` (a counter that grows while the agent works, such as lines
/// read); once it stopped growing after having grown, calls `drop_caches` (the agent lets go of
/// buffers it keeps for reuse) and releases free memory, on each of the first
/// [`QUIET_RELEASES`] quiet ticks (what the burst left behind is let go over a few seconds:
/// idle connections close, worker threads end). Runs until `stop`.
pub fn spawn_idle_release(
    period: Duration,
    activity: impl Fn() -> u64 + Send + 'static,
    drop_caches: impl Fn() + Send + 'static,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut last = activity();
        // Start-up's garbage (configuration, TLS roots) is a burst too.
        let mut quiet = 0;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = activity();
            if now != last {
                last = now;
                quiet = 0;
            } else if quiet < QUIET_RELEASES {
                quiet += 1;
                drop_caches();
                release_free_memory();
                tracing::trace!("idle: free memory released to the OS");
            }
        }
    });
}
