//! The relay between two plain TCP sockets on Linux, adaptive per direction:
//!
//! - Small messages (the common request/response case) take the buffered path: one `read` into
//!   a per-thread scratch buffer and one `write` straight out of it (two syscalls per message,
//!   no allocation). Only when the writer cannot take everything are the leftover bytes copied
//!   into a buffer owned by the connection, so an idle connection holds no buffer at all.
//! - Once a read fills the whole buffer (a bulk transfer), the direction switches to
//!   `splice(2)` from the socket into a pipe and from the pipe into the other socket (no copy
//!   through user space), and switches back after a splice that moved less than a buffer.
//!
//! A direction holds a pipe only while bytes move: once the pipe is drained and the socket has
//! nothing to read, the pipe goes back to a small per-thread pool, so idle connections hold no
//! pipe (and no extra descriptors). Readiness comes from tokio, so the sockets stay non-blocking
//! and registered with the runtime. Bytes are counted on the route's counters as they are
//! written. Same semantics as [`crate::relay::relay`]: half-close passed on, errors reported by
//! side, bounded memory (a slow reader stops the reading on the other side).
#![allow(unsafe_code)]

use std::{
    cell::RefCell,
    future::poll_fn,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};

use crate::relay::{Counters, End, ForceClose, Outcome, Side, Watch};
use tokio::{
    io::{AsyncRead, AsyncWrite, Interest, ReadBuf},
    net::{
        tcp::{ReadHalf, WriteHalf},
        TcpStream,
    },
};

/// Pipe capacity asked for with `F_SETPIPE_SZ` (the kernel default is 64 KiB, and 1 MiB is
/// `/proc/sys/fs/pipe-max-size`'s default): a splice moves up to this much, so a bulk transfer
/// takes fewer calls and wakeups. Measured on loopback with iperf3 through the proxy: 0.15-0.19
/// CPU-seconds per GB relayed against 0.21-0.28 with 256 KiB pipes, and 17.7-18.8 Gbit/s against
/// 15.5-16.4. A pipe holds at most this much of a direction's data (references to the socket's
/// pages, no copy) and is held only while bytes move.
const PIPE_SIZE: usize = 1024 * 1024;

struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    /// Bytes in the pipe.
    len: usize,
    /// Its capacity.
    cap: usize,
}

/// Empty pipes kept per thread for reuse. Linux counts a pipe's capacity against its user's
/// `/proc/sys/fs/pipe-user-pages-soft` (64 MiB by default, shared by every process of the same
/// UID, other pods' included; past it, new pipes get 8 KiB and `F_SETPIPE_SZ` is refused), so
/// idle pipes are few: 4 MiB per event loop.
const POOL_MAX: usize = 4;

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
    /// The buffered path's read buffer, shared by every connection on the thread (a read is
    /// written out before the next one, so only leftovers need a buffer of their own).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn take_pipe() -> io::Result<Pipe> {
    match POOL.with(|p| p.borrow_mut().pop()) {
        Some(p) => Ok(p),
        None => pipe(),
    }
}

fn give_back(p: Pipe) {
    debug_assert_eq!(p.len, 0);
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(p);
        }
    });
}

fn pipe() -> io::Result<Pipe> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the two-element array we pass; on success we
    // take ownership of both exactly once.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created by pipe2 and are owned by nothing else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own; F_SETPIPE_SZ takes an int and touches no memory.
    // A refusal (above /proc/sys/fs/pipe-max-size, or past the user's pipe pages) leaves the
    // pipe as it was made (64 KiB, or 8 KiB past the pipe pages): its size is read back.
    let mut cap =
        unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
    if cap <= 0 {
        // SAFETY: as above; F_GETPIPE_SZ takes no argument.
        cap = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) };
    }
    Ok(Pipe {
        r,
        w,
        len: 0,
        cap: cap.max(0) as usize,
    })
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: splice with null offsets only reads and writes the two open descriptors we own
    // or borrow for the duration of the call; no memory of ours is touched.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One direction's state.
#[derive(Default)]
struct Half {
    /// Bytes read but not yet written (only after the writer could not take a whole read).
    pending: Option<Box<[u8]>>,
    /// Written so far from `pending`.
    pos: usize,
    /// Held while bytes sit in it or the socket keeps being readable.
    pipe: Option<Pipe>,
    /// In splice mode (a read filled the buffer).
    splicing: bool,
    /// The pipe offered was smaller than a buffer (the user is past its pipe pages): this
    /// direction stays buffered.
    no_splice: bool,
    eof: bool,
    done: bool,
    bytes: u64,
    spliced: bool,
}

impl Half {
    fn sent(&mut self, n: usize, counter: &Counter, active: &mut bool) {
        self.bytes += n as u64;
        counter.inc_by(n as u64);
        *active = true;
    }

    fn release_pipe(&mut self) {
        if let Some(p) = self.pipe.take() {
            give_back(p);
        }
    }
}

type Counter = common::prometheus_client::metrics::counter::Counter;

/// What a buffered read-and-write did.
enum Step {
    /// Nothing to read now.
    Idle,
    /// End of stream.
    Eof,
    /// `n` bytes read, all written.
    Moved(usize),
    /// `n` bytes read, `written` of them written; the rest to keep.
    Partial {
        n: usize,
        written: usize,
        rest: Box<[u8]>,
    },
    /// Failed.
    Failed(Side, io::Error),
}

fn buffered_step(
    cx: &mut Context<'_>,
    r: &mut ReadHalf<'_>,
    w: &mut WriteHalf<'_>,
    size: usize,
) -> Step {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.len() < size {
            scratch.resize(size, 0);
        }
        let n = {
            let mut rb = ReadBuf::new(&mut scratch[..size]);
            match Pin::new(&mut *r).poll_read(cx, &mut rb) {
                Poll::Pending => return Step::Idle,
                Poll::Ready(Err(e)) => return Step::Failed(Side::Reader, e),
                Poll::Ready(Ok(())) => rb.filled().len(),
            }
        };
        if n == 0 {
            return Step::Eof;
        }
        let written = match Pin::new(&mut *w).poll_write(cx, &scratch[..n]) {
            Poll::Ready(Ok(0)) => {
                return Step::Failed(Side::Writer, io::ErrorKind::WriteZero.into())
            }
            Poll::Ready(Ok(m)) if m == n => return Step::Moved(n),
            Poll::Ready(Ok(m)) => m,
            Poll::Ready(Err(e)) => return Step::Failed(Side::Writer, e),
            Poll::Pending => 0,
        };
        Step::Partial {
            n,
            written,
            rest: scratch[written..n].into(),
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn poll_half(
    h: &mut Half,
    cx: &mut Context<'_>,
    r: &mut ReadHalf<'_>,
    w: &mut WriteHalf<'_>,
    size: usize,
    may_splice: bool,
    counter: &Counter,
    active: &mut bool,
    other_done: bool,
) -> Poll<Result<(), (Side, io::Error)>> {
    if h.done {
        return Poll::Ready(Ok(()));
    }
    loop {
        // Leftovers of the buffered path go first.
        if let Some(buf) = &h.pending {
            let n = match ready!(Pin::new(&mut *w).poll_write(cx, &buf[h.pos..])) {
                Ok(0) => return Poll::Ready(Err((Side::Writer, io::ErrorKind::WriteZero.into()))),
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err((Side::Writer, e))),
            };
            h.pos += n;
            if h.pos == buf.len() {
                h.pending = None;
                h.pos = 0;
            }
            h.sent(n, counter, active);
            continue;
        }
        // Then what sits in the pipe.
        if let Some(p) = h.pipe.as_mut().filter(|p| p.len > 0) {
            let ws: &TcpStream = w.as_ref();
            ready!(ws.poll_write_ready(cx)).map_err(|e| (Side::Writer, e))?;
            let (pr, wfd, len) = (p.r.as_raw_fd(), ws.as_raw_fd(), p.len);
            match ws.try_io(Interest::WRITABLE, || splice(pr, wfd, len)) {
                Ok(n) => {
                    p.len -= n;
                    h.sent(n, counter, active);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err((Side::Writer, e))),
            }
            continue;
        }
        if h.eof {
            // When the other direction is already done, both sockets are closed next, and
            // closing sends this FIN anyway (their receive queues hold nothing: both read EOF),
            // so the `shutdown` call is spared.
            if !other_done {
                match Pin::new(&mut *w).poll_shutdown(cx) {
                    Poll::Ready(Ok(())) | Poll::Pending => {}
                    // The peer already closed both ways: nothing left to tell it.
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotConnected => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err((Side::Writer, e))),
                }
            }
            h.release_pipe();
            h.done = true;
            return Poll::Ready(Ok(()));
        }
        if h.splicing {
            let rs: &TcpStream = r.as_ref();
            if rs
                .poll_read_ready(cx)
                .map_err(|e| (Side::Reader, e))?
                .is_pending()
            {
                // Drained and idle: hand the pipe back.
                h.release_pipe();
                return Poll::Pending;
            }
            if h.pipe.is_none() {
                let p = take_pipe().map_err(|e| (Side::Reader, e))?;
                if p.cap < size.min(PIPE_SIZE) {
                    // Splicing through it would cost more calls than reading into the buffer.
                    h.no_splice = true;
                    h.splicing = false;
                    continue;
                }
                h.pipe = Some(p);
            }
            let Some(p) = h.pipe.as_mut() else { continue };
            let (rfd, pw, cap) = (rs.as_raw_fd(), p.w.as_raw_fd(), p.cap);
            match rs.try_io(Interest::READABLE, || splice(rfd, pw, cap)) {
                Ok(0) => h.eof = true,
                Ok(n) => {
                    p.len = n;
                    h.spliced = true;
                    *active = true;
                    // A small read: back to the cheaper buffered path.
                    if n < size {
                        h.splicing = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err((Side::Reader, e))),
            }
            continue;
        }
        // A read that fills the buffer switches to splice, where that is allowed.
        let splice_allowed = may_splice && !h.no_splice;
        let to_splice = |n: usize| n == size && splice_allowed;
        match buffered_step(cx, r, w, size) {
            Step::Idle => {
                h.release_pipe();
                return Poll::Pending;
            }
            Step::Eof => h.eof = true,
            Step::Moved(n) => {
                h.sent(n, counter, active);
                if to_splice(n) {
                    h.splicing = true;
                }
            }
            Step::Partial { n, written, rest } => {
                if written > 0 {
                    h.sent(written, counter, active);
                }
                *active = true;
                h.pending = Some(rest);
                h.pos = 0;
                if to_splice(n) {
                    h.splicing = true;
                }
            }
            Step::Failed(side, e) => return Poll::Ready(Err((side, e))),
        }
    }
}

/// Applies options to the upstream socket.
pub type UpstreamOptions<'a> = &'a (dyn Fn(&TcpStream) + Sync);

/// Relays between two plain TCP sockets: buffered for small reads of up to `size` bytes,
/// splice(2) for bulk transfers when `may_splice`. Ends like [`crate::relay::relay`].
/// `upstream_options` runs once the connection has lived for
/// [`crate::connect::UPSTREAM_OPTIONS_AFTER`] (not at all when it ends sooner).
#[allow(clippy::too_many_arguments)]
pub async fn relay_tcp(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    size: usize,
    may_splice: bool,
    idle: Option<Duration>,
    cancel: &ForceClose,
    counters: &Counters,
    upstream_options: Option<UpstreamOptions<'_>>,
) -> Outcome {
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let mut up = Half::default();
    let mut down = Half::default();
    let mut watch = Watch::new(
        idle,
        cancel,
        upstream_options.map(|_| crate::connect::UPSTREAM_OPTIONS_AFTER),
    );
    let end = poll_fn(|cx| {
        let mut active = false;
        if let Poll::Ready(Err((side, e))) = poll_half(
            &mut up,
            cx,
            &mut cr,
            &mut uw,
            size,
            may_splice,
            &counters.to_upstream,
            &mut active,
            down.done,
        ) {
            return Poll::Ready(match side {
                Side::Reader => End::Client(e),
                Side::Writer => End::Upstream(e),
            });
        }
        if let Poll::Ready(Err((side, e))) = poll_half(
            &mut down,
            cx,
            &mut ur,
            &mut cw,
            size,
            may_splice,
            &counters.to_client,
            &mut active,
            up.done,
        ) {
            return Poll::Ready(match side {
                Side::Reader => End::Upstream(e),
                Side::Writer => End::Client(e),
            });
        }
        if up.done && down.done {
            return Poll::Ready(End::Done);
        }
        let p = watch.poll(cx, active);
        if watch.take_due() {
            if let Some(f) = upstream_options {
                f(uw.as_ref());
            }
        }
        p
    })
    .await;
    up.release_pipe();
    down.release_pipe();
    Outcome {
        to_upstream: up.bytes,
        to_client: down.bytes,
        spliced: up.spliced || down.spliced,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    /// Relays between `client` and `upstream` on a task of its own: 16 KiB buffers, no idle
    /// timeout, no upstream options.
    fn spawn_relay(
        mut client: TcpStream,
        mut upstream: TcpStream,
        may_splice: bool,
        counters: Counters,
    ) -> tokio::task::JoinHandle<Outcome> {
        tokio::spawn(async move {
            relay_tcp(
                &mut client,
                &mut upstream,
                16 * 1024,
                may_splice,
                None,
                &ForceClose::new(),
                &counters,
                None,
            )
            .await
        })
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    async fn both_ways_with_half_close(may_splice: bool) {
        let (mut app, client) = pair().await;
        let (upstream, mut server) = pair().await;
        let counters = Counters::default();
        let task = spawn_relay(client, upstream, may_splice, counters.clone());
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let d2 = data.clone();
        let writer = tokio::spawn(async move {
            // Small writes first (buffered path), then bulk (splice path), then small again.
            for chunk in d2[..1000].chunks(10) {
                app.write_all(chunk).await.unwrap();
            }
            app.write_all(&d2[1000..2_999_000]).await.unwrap();
            for chunk in d2[2_999_000..].chunks(100) {
                app.write_all(chunk).await.unwrap();
            }
            app.shutdown().await.unwrap();
            let mut back = Vec::new();
            app.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got == data, "bytes differ");
        assert_eq!(
            counters.to_upstream.get(),
            3_000_000,
            "counted as they flow"
        );
        server.write_all(b"bye").await.unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"bye");
        let out = task.await.unwrap();
        assert!(matches!(out.end, End::Done), "{:?}", out.end);
        assert_eq!((out.to_upstream, out.to_client), (3_000_000, 3));
        assert_eq!(counters.to_client.get(), 3);
        assert_eq!(out.spliced, may_splice, "splice used for the bulk part");
    }

    /// The upstream options come once a connection has lived a while, never for a short one.
    #[tokio::test(start_paused = true)]
    async fn upstream_options_only_for_connections_that_live_on() {
        use std::sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        };
        for (pause, expected) in [(Duration::ZERO, 0), (Duration::from_secs(3), 1)] {
            let (mut app, mut client) = pair().await;
            let (mut upstream, mut server) = pair().await;
            let applied = Arc::new(AtomicUsize::new(0));
            let a2 = applied.clone();
            let task = tokio::spawn(async move {
                let options = move |_: &TcpStream| {
                    a2.fetch_add(1, Ordering::Relaxed);
                };
                relay_tcp(
                    &mut client,
                    &mut upstream,
                    16 * 1024,
                    true,
                    None,
                    &ForceClose::new(),
                    &Counters::default(),
                    Some(&options),
                )
                .await
            });
            app.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            server.read_exact(&mut buf).await.unwrap();
            tokio::time::sleep(pause).await;
            assert_eq!(applied.load(Ordering::Relaxed), expected, "after {pause:?}");
            drop((app, server));
            let out = task.await.unwrap();
            assert!(matches!(out.end, End::Done), "{:?}", out.end);
            assert_eq!(applied.load(Ordering::Relaxed), expected, "once at most");
        }
    }

    /// A pipe smaller than a buffer (what a user past its pipe pages gets) is not used: the
    /// direction stays buffered and every byte still arrives.
    #[tokio::test]
    async fn a_small_pipe_keeps_the_direction_buffered() {
        let mut small = pipe().unwrap();
        // SAFETY: fcntl on a pipe this test owns.
        let cap = unsafe { libc::fcntl(small.w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        assert!(cap > 0, "F_SETPIPE_SZ: {}", io::Error::last_os_error());
        small.cap = cap as usize;
        POOL.with(|p| p.borrow_mut().clear());
        give_back(small);
        let (mut app, client) = pair().await;
        let (upstream, mut server) = pair().await;
        let task = spawn_relay(client, upstream, true, Counters::default());
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let d2 = data.clone();
        let writer = tokio::spawn(async move {
            app.write_all(&d2).await.unwrap();
            app.shutdown().await.unwrap();
            app
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got == data, "bytes differ");
        drop((writer.await.unwrap(), server));
        let out = task.await.unwrap();
        assert!(!out.spliced, "the 4 KiB pipe was used");
        assert_eq!(out.to_upstream, 1_000_000);
        POOL.with(|p| p.borrow_mut().clear());
    }

    #[tokio::test]
    async fn splices_bulk_both_ways_with_half_close() {
        both_ways_with_half_close(true).await;
    }

    #[tokio::test]
    async fn buffered_only_both_ways_with_half_close() {
        both_ways_with_half_close(false).await;
    }
}
