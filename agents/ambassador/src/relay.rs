//! Moving bytes between the client and the upstream, both ways at once: half-close propagated
//! (EOF on one side shuts down writing on the other), errors reported by side so the caller can
//! reset the other side, bounded buffers (a slow reader stops the reading on the other side, so
//! memory never grows), an idle timeout, and a forced close for the end of the drain.
//!
//! [`relay`] is the buffered copy of the routes with TLS on either side (any stream), whose
//! buffer is released while a direction is idle so idle connections cost little memory; plain
//! TCP routes on Linux relay in [`crate::engine`], with the same semantics. Bytes are counted on
//! the route's [`Counters`] as they are written, so long-lived connections show their traffic
//! before they close.
use std::{
    future::{poll_fn, Future},
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{ready, Context, Poll, Waker},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};
use tokio_util::sync::CancellationToken;

use common::prometheus_client::metrics::counter::Counter;

/// Which end of a direction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side being read.
    Reader,
    /// The side being written.
    Writer,
}

/// How a relay ended.
#[derive(Debug)]
pub enum End {
    /// Both sides closed cleanly.
    Done,
    /// The client side failed (reset, broken pipe).
    Client(io::Error),
    /// The upstream side failed.
    Upstream(io::Error),
    /// No byte either way for the idle timeout.
    Idle,
    /// Closed at the end of the shutdown drain.
    Shutdown,
}

impl End {
    /// The close reason for the access log.
    pub fn reason(&self) -> &'static str {
        match self {
            End::Done => "done",
            End::Client(_) => "client_error",
            End::Upstream(_) => "upstream_error",
            End::Idle => "idle_timeout",
            End::Shutdown => "shutdown",
        }
    }
}

/// Bytes moved and how it ended.
#[derive(Debug)]
pub struct Outcome {
    /// Client to upstream.
    pub to_upstream: u64,
    /// Upstream to client.
    pub to_client: u64,
    /// Why it ended.
    pub end: End,
}

/// Byte counters a relay adds to as bytes are written (cheap atomics, shared with /metrics).
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Client to upstream.
    pub to_upstream: Counter,
    /// Upstream to client.
    pub to_client: Counter,
}

/// Access to the TCP socket under a stream (to reset it with SO_LINGER 0).
pub trait Socket {
    /// The TCP socket.
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Socket for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

impl Socket for tokio_rustls::client::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Makes the next close of `s` send a RST instead of a FIN (reset propagation).
pub fn set_reset_on_close(s: &impl std::os::fd::AsFd) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// The forced close of every open connection at the end of the drain: a flag that each
/// connection reads on every wakeup (one atomic load), and a token that wakes them.
#[derive(Debug, Clone, Default)]
pub struct ForceClose {
    flag: Arc<AtomicBool>,
    token: CancellationToken,
}

impl ForceClose {
    /// Not tripped yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Closes every connection watching this or a child.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Release);
        self.token.cancel();
    }

    /// True once [`ForceClose::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Completes once tripped.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// The same flag with a token of its own (one per event loop: waiting on it takes its
    /// lock, which then stays on that thread's cache).
    pub fn child(&self) -> Self {
        ForceClose {
            flag: self.flag.clone(),
            token: self.token.child_token(),
        }
    }
}

/// Watches the idle timeout and the forced close. The timer and the token are only polled to
/// register the task's waker (first poll, or a new waker) and, the timer, when the clock says it
/// is due; the token never again: the flag says when it tripped, since it is set before the
/// token wakes anyone.
pub(crate) struct Watch<'a> {
    idle: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    last: Instant,
    close: &'a ForceClose,
    cancel: Pin<Box<tokio_util::sync::WaitForCancellationFuture<'a>>>,
    waker: Option<Waker>,
}

impl<'a> Watch<'a> {
    pub(crate) fn new(idle: Option<Duration>, close: &'a ForceClose) -> Self {
        let now = Instant::now();
        Watch {
            idle,
            sleep: idle.map(|d| Box::pin(tokio::time::sleep_until(now + d))),
            last: now,
            close,
            cancel: Box::pin(close.cancelled()),
            waker: None,
        }
    }

    /// Call after polling both directions; `active` when a byte moved.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, active: bool) -> Poll<End> {
        if self.close.is_cancelled() {
            return Poll::Ready(End::Shutdown);
        }
        let register = !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if register {
            if self.cancel.as_mut().poll(cx).is_ready() {
                return Poll::Ready(End::Shutdown);
            }
            self.waker = Some(cx.waker().clone());
        }
        let now = Instant::now();
        if active {
            self.last = now;
        }
        let Some(sleep) = &mut self.sleep else {
            return Poll::Pending;
        };
        // tokio fires a timer at or after its deadline: before it, there is nothing to see.
        if !register && now < sleep.deadline() {
            return Poll::Pending;
        }
        while sleep.as_mut().poll(cx).is_ready() {
            let Some(idle) = self.idle else {
                self.sleep = None;
                break;
            };
            let idle_at = self.last + idle;
            if idle_at <= now {
                return Poll::Ready(End::Idle);
            }
            sleep.as_mut().reset(idle_at);
        }
        Poll::Pending
    }
}

#[derive(Default)]
struct Half {
    buf: Option<Box<[u8]>>,
    pos: usize,
    cap: usize,
    eof: bool,
    done: bool,
    need_flush: bool,
    bytes: u64,
}

fn poll_half<R, W>(
    h: &mut Half,
    cx: &mut Context<'_>,
    r: &mut R,
    w: &mut W,
    size: usize,
    counter: &Counter,
    active: &mut bool,
) -> Poll<Result<(), (Side, io::Error)>>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    if h.done {
        return Poll::Ready(Ok(()));
    }
    loop {
        if h.pos < h.cap {
            let buf = h.buf.as_deref().unwrap_or(&[]);
            match ready!(Pin::new(&mut *w).poll_write(cx, &buf[h.pos..h.cap])) {
                Ok(0) => return Poll::Ready(Err((Side::Writer, io::ErrorKind::WriteZero.into()))),
                Ok(n) => {
                    h.pos += n;
                    h.bytes += n as u64;
                    counter.inc_by(n as u64);
                    h.need_flush = true;
                    *active = true;
                }
                Err(e) => return Poll::Ready(Err((Side::Writer, e))),
            }
            continue;
        }
        if h.eof {
            if h.need_flush {
                ready!(Pin::new(&mut *w).poll_flush(cx)).map_err(|e| (Side::Writer, e))?;
                h.need_flush = false;
            }
            match ready!(Pin::new(&mut *w).poll_shutdown(cx)) {
                Ok(()) => {}
                // The peer already closed both ways: nothing left to tell it.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Poll::Ready(Err((Side::Writer, e))),
            }
            h.buf = None;
            h.done = true;
            return Poll::Ready(Ok(()));
        }
        let buf = h
            .buf
            .get_or_insert_with(|| vec![0u8; size].into_boxed_slice());
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *r).poll_read(cx, &mut rb) {
            Poll::Pending => {
                if h.need_flush {
                    match Pin::new(&mut *w).poll_flush(cx) {
                        Poll::Ready(Ok(())) => h.need_flush = false,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err((Side::Writer, e))),
                        Poll::Pending => {}
                    }
                }
                // Nothing buffered while idle: an idle connection holds no buffer.
                h.buf = None;
                return Poll::Pending;
            }
            // A TLS peer that closed without close_notify: treat as an ordinary EOF.
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => h.eof = true,
            Poll::Ready(Err(e)) => return Poll::Ready(Err((Side::Reader, e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    h.eof = true;
                } else {
                    h.pos = 0;
                    h.cap = n;
                    *active = true;
                }
            }
        }
    }
}

/// Relays between `client` and `upstream` with buffers of `size` bytes per direction, until
/// both sides closed, one failed, the idle timeout passed, or `cancel` fired.
pub async fn relay<C, U>(
    client: &mut C,
    upstream: &mut U,
    size: usize,
    idle: Option<Duration>,
    cancel: &ForceClose,
    counters: &Counters,
) -> Outcome
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    U: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut up = Half::default();
    let mut down = Half::default();
    let mut watch = Watch::new(idle, cancel);
    let end = poll_fn(|cx| {
        let mut active = false;
        let a = poll_half(
            &mut up,
            cx,
            client,
            upstream,
            size,
            &counters.to_upstream,
            &mut active,
        );
        if let Poll::Ready(Err((side, e))) = a {
            return Poll::Ready(match side {
                Side::Reader => End::Client(e),
                Side::Writer => End::Upstream(e),
            });
        }
        let b = poll_half(
            &mut down,
            cx,
            upstream,
            client,
            size,
            &counters.to_client,
            &mut active,
        );
        if let Poll::Ready(Err((side, e))) = b {
            return Poll::Ready(match side {
                Side::Reader => End::Upstream(e),
                Side::Writer => End::Client(e),
            });
        }
        if up.done && down.done {
            return Poll::Ready(End::Done);
        }
        watch.poll(cx, active)
    })
    .await;
    Outcome {
        to_upstream: up.bytes,
        to_client: down.bytes,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn copies_both_ways_with_half_close() {
        let (mut app, mut client) = tokio::io::duplex(64);
        let (mut upstream, mut server) = tokio::io::duplex(64);
        let cancel = ForceClose::new();
        let counters = Counters::default();
        let c2 = counters.clone();
        let task = tokio::spawn(async move {
            relay(&mut client, &mut upstream, 1024, None, &cancel, &c2).await
        });
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let d2 = data.clone();
        let writer = tokio::spawn(async move {
            app.write_all(&d2).await.unwrap();
            app.shutdown().await.unwrap();
            let mut back = Vec::new();
            app.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data);
        assert_eq!(counters.to_upstream.get(), 100_000, "counted as they flow");
        server.write_all(b"bye").await.unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"bye");
        let out = task.await.unwrap();
        assert!(matches!(out.end, End::Done), "{:?}", out.end);
        assert_eq!((out.to_upstream, out.to_client), (100_000, 3));
        assert_eq!(counters.to_client.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_and_cancel() {
        let (_app, mut client) = tokio::io::duplex(64);
        let (mut upstream, _server) = tokio::io::duplex(64);
        let cancel = ForceClose::new();
        let out = relay(
            &mut client,
            &mut upstream,
            1024,
            Some(Duration::from_secs(5)),
            &cancel,
            &Counters::default(),
        )
        .await;
        assert!(matches!(out.end, End::Idle));
        cancel.cancel();
        let out = relay(
            &mut client,
            &mut upstream,
            1024,
            None,
            &cancel,
            &Counters::default(),
        )
        .await;
        assert!(matches!(out.end, End::Shutdown));
    }
}
