//! One direction of a relayed connection: the socket readiness the loop keeps from epoll's
//! edges, and moving bytes from one socket to the other with read/write through the loop's
//! buffer or splice(2) through a pipe, half-close included. No epoll here: [`drive_half`]
//! moves what the readiness flags allow and clears a flag when the socket says it is drained
//! (or full).
#![allow(unsafe_code)]

use std::{
    io,
    os::fd::{AsRawFd, RawFd},
};

use common::prometheus_client::metrics::counter::Counter;

use crate::{
    relay::Side,
    splice::{give_back, splice, take_pipe, Pipe, PIPE_SIZE},
};

/// Reads (or splices) one direction makes per wakeup before the loop's other connections get
/// their turn; a direction with more to move is driven again after the other events.
const BUDGET: usize = 16;

/// A system call's result: the `errno` error when negative.
pub(super) fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// As [`cvt`], for calls that return a byte count.
fn cvt_size(rc: isize) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// `read(2)` into `buf`.
pub(super) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads at most `buf.len()` bytes into memory we borrow mutably.
    cvt_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// `send(2)` of `buf`, without SIGPIPE.
pub(super) fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: writes at most `buf.len()` bytes from memory we borrow; MSG_NOSIGNAL turns a
    // write to a closed peer into EPIPE instead of SIGPIPE.
    cvt_size(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) })
}

/// The socket has nothing to read, or no room to write (`EAGAIN`).
pub(super) fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Readiness of one socket, as the edges reported it.
#[derive(Default, Clone, Copy)]
pub(super) struct Ready {
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// The peer hung up (or the socket failed): no further edge will come for reading.
    pub(super) hup: bool,
    /// The socket failed (a reset): reading reports the error.
    pub(super) err: bool,
}

impl Ready {
    pub(super) fn update(&mut self, ev: u32) {
        let err_or_hup = ev & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
        if ev & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0 || err_or_hup {
            self.readable = true;
        }
        if ev & libc::EPOLLOUT as u32 != 0 || err_or_hup {
            self.writable = true;
        }
        if ev & libc::EPOLLRDHUP as u32 != 0 || err_or_hup {
            self.hup = true;
        }
        if ev & libc::EPOLLERR as u32 != 0 {
            self.err = true;
        }
    }
}

/// One direction's state (as in [`crate::splice`]).
#[derive(Default)]
pub(super) struct Half {
    /// Bytes read but not yet written (only after the writer could not take a whole read).
    pub(super) pending: Option<Box<[u8]>>,
    pub(super) pos: usize,
    /// Held while bytes sit in it or the socket keeps being readable.
    pub(super) pipe: Option<Pipe>,
    /// In splice mode (a read filled the buffer).
    pub(super) splicing: bool,
    /// The pipe offered was smaller than a buffer: this direction stays buffered.
    pub(super) no_splice: bool,
    pub(super) eof: bool,
    pub(super) done: bool,
    pub(super) bytes: u64,
    pub(super) spliced: bool,
}

impl Half {
    fn sent(&mut self, n: usize, counter: &Counter) {
        self.bytes += n as u64;
        counter.inc_by(n as u64);
    }

    pub(super) fn release_pipe(&mut self) {
        if let Some(p) = self.pipe.take() {
            if p.len == 0 {
                give_back(p);
            }
        }
    }
}

/// What moving one direction needs besides its state.
pub(super) struct Io<'a> {
    pub(super) from: RawFd,
    pub(super) to: RawFd,
    pub(super) size: usize,
    pub(super) may_splice: bool,
    pub(super) counter: &'a Counter,
    pub(super) scratch: &'a mut Vec<u8>,
}

/// What one call moved in one direction.
#[derive(Default)]
pub(super) struct Moved {
    /// Some bytes moved.
    pub(super) any: bool,
    /// The budget ran out with more to move: drive it again (no new edge will come).
    pub(super) more: bool,
}

/// What a write to the other side did: `Some(n)` bytes taken, `None` when the socket is full
/// (its readiness cleared: an edge comes when it has room again).
pub(super) fn written(
    r: io::Result<usize>,
    to: &mut Ready,
) -> Result<Option<usize>, (Side, io::Error)> {
    match r {
        Ok(0) => Err((Side::Writer, io::ErrorKind::WriteZero.into())),
        Ok(n) => Ok(Some(n)),
        Err(e) if would_block(&e) => {
            to.writable = false;
            Ok(None)
        }
        Err(e) => Err((Side::Writer, e)),
    }
}

/// Moves what can be moved in one direction now, up to [`BUDGET`] reads.
pub(super) fn drive_half(
    h: &mut Half,
    io: &mut Io<'_>,
    from: &mut Ready,
    to: &mut Ready,
    other_done: bool,
) -> Result<Moved, (Side, io::Error)> {
    let mut moved = false;
    if h.done {
        return Ok(Moved::default());
    }
    let mut budget = BUDGET;
    loop {
        // Leftovers of the buffered path go first.
        if let Some(buf) = &h.pending {
            if !to.writable {
                break;
            }
            let Some(n) = written(write(io.to, &buf[h.pos..]), to)? else {
                break;
            };
            h.pos += n;
            if h.pos == buf.len() {
                h.pending = None;
                h.pos = 0;
            }
            h.sent(n, io.counter);
            moved = true;
            continue;
        }
        // Then what sits in the pipe.
        if let Some(p) = h.pipe.as_mut().filter(|p| p.len > 0) {
            if !to.writable {
                break;
            }
            let Some(n) = written(splice(p.r.as_raw_fd(), io.to, p.len), to)? else {
                break;
            };
            p.len -= n;
            h.sent(n, io.counter);
            moved = true;
            continue;
        }
        if h.eof {
            // When the other direction is already done, both sockets are closed next, and
            // closing sends this FIN anyway: the `shutdown` call is spared.
            if !other_done {
                // SAFETY: shutdown on a socket we own.
                let rc = unsafe { libc::shutdown(io.to, libc::SHUT_WR) };
                if let Err(e) = cvt(rc) {
                    // The peer already closed both ways: nothing left to tell it.
                    if e.raw_os_error() != Some(libc::ENOTCONN) {
                        return Err((Side::Writer, e));
                    }
                }
            }
            h.release_pipe();
            h.done = true;
            return Ok(Moved {
                any: moved,
                more: false,
            });
        }
        if !from.readable {
            // Drained and idle: hand the pipe back.
            h.release_pipe();
            break;
        }
        if budget == 0 {
            return Ok(Moved {
                any: moved,
                more: true,
            });
        }
        budget -= 1;
        if h.splicing {
            if h.pipe.is_none() {
                let p = take_pipe().map_err(|e| (Side::Reader, e))?;
                if p.cap < io.size.min(PIPE_SIZE) {
                    // Splicing through it would cost more calls than reading into the buffer.
                    give_back(p);
                    h.no_splice = true;
                    h.splicing = false;
                    continue;
                }
                h.pipe = Some(p);
            }
            let Some(p) = h.pipe.as_mut() else { continue };
            // A short splice does not mean "drained" (the pipe has a slot per page), so only
            // EAGAIN clears the readiness.
            match splice(io.from, p.w.as_raw_fd(), p.cap) {
                Ok(0) => h.eof = true,
                Ok(n) => {
                    p.len = n;
                    h.spliced = true;
                    moved = true;
                    // A small read: back to the cheaper buffered path.
                    if n < io.size {
                        h.splicing = false;
                    }
                }
                Err(e) if would_block(&e) => from.readable = false,
                Err(e) => return Err((Side::Reader, e)),
            }
            continue;
        }
        if io.scratch.len() < io.size {
            io.scratch.resize(io.size, 0);
        }
        let n = match read(io.from, &mut io.scratch[..io.size]) {
            Ok(0) => {
                h.eof = true;
                continue;
            }
            Ok(n) => n,
            Err(e) if would_block(&e) => {
                from.readable = false;
                continue;
            }
            Err(e) => return Err((Side::Reader, e)),
        };
        moved = true;
        // A read shorter than the buffer emptied the socket: the next byte raises a new edge.
        // After a hang-up no edge follows, but the FIN had arrived before this read, behind
        // every byte the peer sent: a short read took them all, and EOF is next (a read more
        // would only return 0). After a failure, reading goes on until it reports the error.
        if n < io.size {
            if !from.hup {
                from.readable = false;
            } else if !from.err {
                h.eof = true;
            }
        }
        if n == io.size && io.may_splice && !h.no_splice {
            h.splicing = true;
        }
        let taken = if to.writable {
            written(write(io.to, &io.scratch[..n]), to)?.unwrap_or(0)
        } else {
            0
        };
        if taken > 0 {
            h.sent(taken, io.counter);
        }
        if taken < n {
            h.pending = Some(io.scratch[taken..n].into());
            h.pos = 0;
        }
    }
    Ok(Moved {
        any: moved,
        more: false,
    })
}
