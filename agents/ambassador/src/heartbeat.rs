//! A short timer kept pending on an event loop while it has open connections.
//!
//! tokio's timer interrupts its event loop's wait (an eventfd `write`, then one more
//! `epoll_wait`) whenever a new timer is due before every timer the loop already waits for. A
//! relay thread has no timer of its own, so each connect timeout, armed while the connect is in
//! flight, cost that `write`: 0.43 per new connection under load. With this timer pending (due
//! within [`PERIOD`]) while the loop has connections, arming a connect timeout of [`PERIOD`] or
//! more is a plain insert. It stops when the loop's last connection closes, so an idle proxy
//! does not wake up.
use std::{
    cell::{Cell, RefCell},
    future::poll_fn,
    task::{Poll, Waker},
    time::Duration,
};

/// How often the timer fires while connections are open.
pub const PERIOD: Duration = Duration::from_secs(1);

thread_local! {
    /// Connections open on this thread's event loop.
    static OPEN: Cell<usize> = const { Cell::new(0) };
    /// The heartbeat task, while it waits for a connection.
    static IDLE: RefCell<Option<Waker>> = const { RefCell::new(None) };
    static STARTED: Cell<bool> = const { Cell::new(false) };
}

/// Starts the heartbeat on the current event loop (once per thread). Call from a task.
pub fn start() {
    if STARTED.with(|s| s.replace(true)) {
        return;
    }
    tokio::spawn(async {
        // When the runtime drops this task, the next one on this thread starts its own.
        let _started = Started;
        loop {
            poll_fn(|cx| {
                if OPEN.with(Cell::get) > 0 {
                    return Poll::Ready(());
                }
                IDLE.with(|w| *w.borrow_mut() = Some(cx.waker().clone()));
                Poll::Pending
            })
            .await;
            tokio::time::sleep(PERIOD).await;
        }
    });
}

struct Started;

impl Drop for Started {
    fn drop(&mut self) {
        STARTED.with(|s| s.set(false));
    }
}

/// Counts a connection open on this thread until dropped.
pub struct Open(());

impl Open {
    /// Counts one more connection (and wakes the heartbeat on the first).
    pub fn new() -> Self {
        if OPEN.with(|o| o.replace(o.get() + 1)) == 0 {
            if let Some(w) = IDLE.with(|w| w.borrow_mut().take()) {
                w.wake();
            }
        }
        Open(())
    }
}

impl Default for Open {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.with(|o| o.set(o.get().saturating_sub(1)));
    }
}
