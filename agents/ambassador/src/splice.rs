//! Zero-copy relay between two plain TCP sockets on Linux: `splice(2)` from the reading socket
//! into a pipe and from the pipe into the writing socket. A direction holds a pipe only while
//! bytes move: once the pipe is drained and the socket has nothing to read, the pipe goes back to
//! a small per-thread pool, so idle connections hold no pipe (and no extra descriptors).
//! Readiness comes from tokio, so the sockets stay non-blocking and registered with the runtime.
//! Same semantics as [`crate::relay::relay`].
#![allow(unsafe_code)]

use std::{
    future::poll_fn,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    task::{ready, Context, Poll},
    time::Duration,
};

use tokio::{io::Interest, net::TcpStream};
use tokio_util::sync::CancellationToken;

use crate::relay::{End, Outcome, Side, Watch};

/// Bytes moved per splice call (the default pipe capacity).
const CHUNK: usize = 64 * 1024;

struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    len: usize,
}

/// Empty pipes kept per thread for reuse.
const POOL_MAX: usize = 64;

thread_local! {
    static POOL: std::cell::RefCell<Vec<Pipe>> = const { std::cell::RefCell::new(Vec::new()) };
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
    Ok(Pipe { r, w, len: 0 })
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

#[derive(Default)]
struct Half {
    pipe: Option<Pipe>,
    eof: bool,
    done: bool,
    bytes: u64,
}

fn poll_half(
    h: &mut Half,
    cx: &mut Context<'_>,
    r: &TcpStream,
    w: &TcpStream,
    active: &mut bool,
) -> Poll<Result<(), (Side, io::Error)>> {
    if h.done {
        return Poll::Ready(Ok(()));
    }
    loop {
        if let Some(p) = h.pipe.as_mut().filter(|p| p.len > 0) {
            ready!(w.poll_write_ready(cx)).map_err(|e| (Side::Writer, e))?;
            let (pr, wfd, len) = (p.r.as_raw_fd(), w.as_raw_fd(), p.len);
            match w.try_io(Interest::WRITABLE, || splice(pr, wfd, len)) {
                Ok(n) => {
                    p.len -= n;
                    h.bytes += n as u64;
                    *active = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err((Side::Writer, e))),
            }
            continue;
        }
        if h.eof {
            match socket2::SockRef::from(w).shutdown(std::net::Shutdown::Write) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Poll::Ready(Err((Side::Writer, e))),
            }
            if let Some(p) = h.pipe.take() {
                give_back(p);
            }
            h.done = true;
            return Poll::Ready(Ok(()));
        }
        if r.poll_read_ready(cx)
            .map_err(|e| (Side::Reader, e))?
            .is_pending()
        {
            // Drained and idle: hand the pipe back.
            if let Some(p) = h.pipe.take() {
                give_back(p);
            }
            return Poll::Pending;
        }
        if h.pipe.is_none() {
            h.pipe = Some(take_pipe().map_err(|e| (Side::Reader, e))?);
        }
        let Some(p) = h.pipe.as_mut() else { continue };
        let (rfd, pw) = (r.as_raw_fd(), p.w.as_raw_fd());
        match r.try_io(Interest::READABLE, || splice(rfd, pw, CHUNK)) {
            Ok(0) => h.eof = true,
            Ok(n) => {
                p.len = n;
                *active = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Poll::Ready(Err((Side::Reader, e))),
        }
    }
}

/// Relays between two plain TCP sockets with splice(2).
pub async fn relay_tcp(
    client: &TcpStream,
    upstream: &TcpStream,
    idle: Option<Duration>,
    cancel: &CancellationToken,
) -> Outcome {
    let mut up = Half::default();
    let mut down = Half::default();
    let mut watch = Watch::new(idle, cancel);
    let end = poll_fn(|cx| {
        let mut active = false;
        if let Poll::Ready(Err((side, e))) = poll_half(&mut up, cx, client, upstream, &mut active) {
            return Poll::Ready(match side {
                Side::Reader => End::Client(e),
                Side::Writer => End::Upstream(e),
            });
        }
        if let Poll::Ready(Err((side, e))) = poll_half(&mut down, cx, upstream, client, &mut active)
        {
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
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn splices_both_ways_with_half_close() {
        let (mut app, client) = pair().await;
        let (upstream, mut server) = pair().await;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(async move { relay_tcp(&client, &upstream, None, &cancel).await });
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
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
        assert!(got == data, "bytes differ");
        server.write_all(b"bye").await.unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"bye");
        let out = task.await.unwrap();
        assert!(matches!(out.end, End::Done), "{:?}", out.end);
        assert_eq!((out.to_upstream, out.to_client), (3_000_000, 3));
    }
}
