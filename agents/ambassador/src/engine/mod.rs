//! The event loop of plain TCP routes on Linux (no TLS on either side): one thread per
//! `--workers`, each with its own epoll instance, doing everything a connection needs with
//! direct system calls: accept, the connection limit, the upstream connect with its timeout and
//! retries, the PROXY header, the relay (read/write through one buffer for small messages,
//! splice(2) through a pipe for bulk: `direction`, with the pipes of [`crate::splice`]),
//! half-close, resets, the idle timeout, the upstream socket options, the drain and the forced
//! close. This file holds the loop and a connection's life; `direction` moves the bytes of one
//! direction.
//!
//! Why not tokio here: a proxy does almost nothing per event, so the runtime's own work per
//! event (readiness bookkeeping, waker calls, the timer wheel and its clock reads on each wait)
//! was most of the user CPU per connection. This loop reads the clock once per wait, keeps
//! readiness as two flags per socket (edge-triggered, so a socket is never registered twice or
//! re-armed), takes a read shorter than the buffer as "drained" (the next byte raises a new
//! edge) or, after the peer's FIN, as the end of the stream, and never deregisters: closing a
//! socket removes it from epoll.
//!
//! Every loop waits on the same listening socket with `EPOLLEXCLUSIVE`: the kernel wakes one
//! waiting loop per new connection, so a busy loop is not handed connections an idle one could
//! take (with one `SO_REUSEPORT` socket per loop, the kernel picks by a hash of the address).
//!
//! Connect timeouts and the accept back-off live in a binary heap; an entry whose connect
//! ended is dropped as soon as it reaches the top, so the heap holds little more than the
//! connects in flight. Idle timeouts and the upstream socket options (set once a connection has
//! lived for [`crate::connect::UPSTREAM_OPTIONS_AFTER`]) are found by a sweep over the open
//! connections every `SWEEP` (or a quarter of the shortest idle timeout), which runs only
//! while connections are open: an idle proxy does not wake up. The control thread wakes a loop
//! through an eventfd when the agent stops accepting and when the drain ends.
//!
//! `--on-limit wait`: a connection over the limit queues on its loop, per route, in arrival
//! order; a new connection queues behind those already waiting on any loop (no overtaking by
//! newcomers). A loop that frees a slot wakes, through their eventfds, the loops with
//! connections waiting ([`Peers`]). A waiting connection leaves the queue when it gets a slot,
//! when it waited `--queue-timeout`, or when its client resets.
#![allow(unsafe_code)]

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, VecDeque},
    io,
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    sync::{
        atomic::{fence, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};

use common::prometheus_client::metrics::counter::Counter;
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::{debug, warn};

mod direction;

use direction::{cvt, drive_half, read, would_block, write, Half, Io, Ready};

use crate::{
    config::{OnLimit, ProxyProtocol},
    events,
    pool::{ActiveGuard, Pool, Upstream},
    proxy::{RouteConfig, Shared},
    relay::{set_reset_on_close, End, Side},
};

/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;
/// New connections taken per wakeup of a listener (the listener is level-triggered: what is
/// left wakes the loop again at once). One, as nginx's `multi_accept off`: an `accept` more
/// would mostly find the queue empty (`EAGAIN`), and a loop takes no more than its share of a
/// burst while the other loops wait.
const ACCEPT_BATCH: usize = 1;
/// Pause after an accept error such as EMFILE, instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How often open connections are checked for the idle timeout and the upstream options.
const SWEEP: Duration = Duration::from_secs(1);

/// The eventfd's token.
const WAKE: u64 = u64::MAX;
/// Listener tokens: this in the high half, the listener's index in the low one. Connection
/// ids skip it, so no socket's token can take this form.
const LISTENER: u64 = 0xFFFF_FFFF << 32;
const LISTENER_ID: u32 = u32::MAX;

/// One route served by the loops.
pub struct EngineRoute {
    /// Upstreams.
    pub pool: Arc<Pool>,
    /// Settings.
    pub config: Arc<RouteConfig>,
    /// Connection limit, shared by every loop.
    pub limit: Option<Arc<Semaphore>>,
    /// The listening socket, shared by every loop.
    pub listener: Arc<TcpListener>,
    /// Set `TCP_NODELAY` on each accepted socket (the listener could not pass it on).
    pub set_nodelay: bool,
}

/// Wakes one loop (the agent stopped accepting, or the drain ended).
#[derive(Clone)]
pub struct Waker(Arc<OwnedFd>);

impl Waker {
    /// Makes the loop look at the shutdown flags.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 into an eventfd we own.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// What the loops share for `--on-limit wait`: how many connections wait on each loop and for
/// each route, and how to wake a loop when a slot frees on another.
pub struct Peers {
    loops: Vec<Peer>,
    /// Per route: connections waiting over every loop (a new connection queues behind them).
    routes: Vec<AtomicUsize>,
}

struct Peer {
    waker: OnceLock<Waker>,
    waiting: AtomicUsize,
}

impl Peers {
    /// For `loops` loops serving `routes` routes.
    pub fn new(loops: usize, routes: usize) -> Arc<Self> {
        Arc::new(Peers {
            loops: (0..loops)
                .map(|_| Peer {
                    waker: OnceLock::new(),
                    waiting: AtomicUsize::new(0),
                })
                .collect(),
            routes: (0..routes).map(|_| AtomicUsize::new(0)).collect(),
        })
    }
}

/// A connection's place in the counts of [`Peers`] (and in `waiting_connections`) while it
/// waits for a slot.
struct Queued {
    peers: Arc<Peers>,
    me: usize,
    route: usize,
    _gauge: events::Waiting,
}

impl Queued {
    fn new(peers: &Arc<Peers>, me: usize, route: usize, gauge: events::Waiting) -> Self {
        peers.loops[me].waiting.fetch_add(1, Ordering::SeqCst);
        peers.routes[route].fetch_add(1, Ordering::SeqCst);
        // Counted before the next look at the semaphore: a loop that frees a slot after that
        // look sees the count (its fence pairs with this one) and wakes this loop.
        fence(Ordering::SeqCst);
        Queued {
            peers: peers.clone(),
            me,
            route,
            _gauge: gauge,
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.peers.loops[self.me]
            .waiting
            .fetch_sub(1, Ordering::SeqCst);
        self.peers.routes[self.route].fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts loop `i` of `peers` on a thread of its own serving `routes`; it returns when the
/// agent has stopped accepting and its last connection closed. `accepting` is held until its
/// listeners are closed.
pub fn spawn(
    i: usize,
    routes: &[EngineRoute],
    shared: Arc<Shared>,
    accepting: TaskTrackerToken,
    peers: &Arc<Peers>,
) -> io::Result<Waker> {
    let engine = Engine::new(routes, shared, accepting, peers, i)?;
    let waker = Waker(engine.wake.clone());
    std::thread::Builder::new()
        .name(format!("relay-{i}"))
        .spawn(move || engine.run())?;
    Ok(waker)
}

/// A connection waiting for a free slot (just accepted: None), connecting, or relaying.
enum State {
    Waiting(Option<Queued>),
    Connecting(Box<Connecting>),
    Relaying(Box<Relay>),
}

struct Connecting {
    candidates: Vec<Arc<Upstream>>,
    /// The candidate being tried.
    ci: usize,
    addrs: Vec<SocketAddr>,
    /// The next address of the candidate to try.
    ai: usize,
    /// The attempt in flight.
    sock: Option<TcpStream>,
    addr: Option<SocketAddr>,
    up_id: u32,
    started: Instant,
    /// Events seen on the attempt's socket before it was connected.
    ready: Ready,
}

struct Relay {
    up: TcpStream,
    up_id: u32,
    ur: Ready,
    upstream: Arc<Upstream>,
    addr: SocketAddr,
    _active: ActiveGuard,
    c2u: Half,
    u2c: Half,
    last_active: Instant,
    /// When the upstream socket options are due (None once set).
    options_due: Option<Instant>,
}

struct Conn {
    client: TcpStream,
    client_id: u32,
    cr: Ready,
    peer: SocketAddr,
    /// Our address as the client saw it (for a PROXY header only).
    local: SocketAddr,
    route: usize,
    started: Instant,
    state: State,
    _permit: Option<OwnedSemaphorePermit>,
    _tracked: TaskTrackerToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The connect attempt with this id ran out of time.
    Connect(u32),
    /// Listen again after an accept error.
    Listen(usize),
}

struct Listening {
    route: usize,
    listener: Arc<TcpListener>,
    accepted: Counter,
    registered: bool,
}

/// A route as a loop serves it.
struct Served {
    pool: Arc<Pool>,
    rc: Arc<RouteConfig>,
    limit: Option<Arc<Semaphore>>,
    set_nodelay: bool,
}

struct Engine {
    epfd: OwnedFd,
    wake: Arc<OwnedFd>,
    routes: Vec<Served>,
    listeners: Vec<Listening>,
    shared: Arc<Shared>,
    accepting: Option<TaskTrackerToken>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    next_id: u32,
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    /// Per route: connections waiting for a slot (slot, client id, since), oldest first;
    /// entries of connections gone are dropped when they reach the front.
    waiting: Vec<VecDeque<(usize, u32, Instant)>>,
    /// Entries in `waiting` over all routes: each turn of the loop looks at this alone.
    queued: usize,
    peers: Arc<Peers>,
    /// This loop's index in `peers`.
    me: usize,
    /// A connection holding a slot of a limited route closed during this batch of events.
    released: bool,
    scratch: Vec<u8>,
    now: Instant,
    force_closed: bool,
    /// Connections whose budget ran out, to drive again after this batch of events.
    again: Vec<(usize, u32)>,
    /// The sweep's period, and when it next runs (None while no connection is open).
    sweep: Duration,
    next_sweep: Option<Instant>,
}

/// A socket's epoll token: the id it got when registered, its connection's slot, and which
/// side it is.
/// Takes the front of a route's wait queue, keeping the loop's count of queued entries.
fn pop_waiting(queue: &mut VecDeque<(usize, u32, Instant)>, queued: &mut usize) {
    if queue.pop_front().is_some() {
        *queued -= 1;
    }
}

fn token(id: u32, slot: usize, upstream: bool) -> u64 {
    (u64::from(id) << 32) | ((slot as u64) << 1) | u64::from(upstream)
}

/// How a relay ends when a direction failed: by the socket that failed (`from_client`: the
/// direction reads the client).
fn failed(side: Side, e: io::Error, from_client: bool) -> End {
    if (side == Side::Reader) == from_client {
        End::Client(e)
    } else {
        End::Upstream(e)
    }
}

/// The id, slot and side of a token.
fn untoken(t: u64) -> (u32, usize, bool) {
    (
        (t >> 32) as u32,
        ((t & 0xFFFF_FFFF) >> 1) as usize,
        t & 1 == 1,
    )
}

/// The next socket id (never [`LISTENER_ID`], so no socket's token looks like a listener's).
fn next_id(counter: &mut u32) -> u32 {
    *counter = counter.wrapping_add(1);
    if *counter == LISTENER_ID {
        *counter = 1;
    }
    *counter
}

impl Engine {
    fn new(
        routes: &[EngineRoute],
        shared: Arc<Shared>,
        accepting: TaskTrackerToken,
        peers: &Arc<Peers>,
        me: usize,
    ) -> io::Result<Self> {
        // SAFETY: plain system calls creating descriptors we take ownership of at once.
        let epfd = unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        // SAFETY: as above.
        let wake = unsafe {
            OwnedFd::from_raw_fd(cvt(libc::eventfd(
                0,
                libc::EFD_NONBLOCK | libc::EFD_CLOEXEC,
            ))?)
        };
        let mut engine = Engine {
            epfd,
            wake: Arc::new(wake),
            routes: Vec::new(),
            listeners: Vec::new(),
            shared,
            accepting: Some(accepting),
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            next_id: 0,
            timers: BinaryHeap::new(),
            waiting: routes.iter().map(|_| VecDeque::new()).collect(),
            queued: 0,
            peers: peers.clone(),
            me,
            released: false,
            scratch: Vec::new(),
            now: Instant::now(),
            force_closed: false,
            again: Vec::new(),
            sweep: routes
                .iter()
                .filter_map(|r| r.config.idle_timeout)
                .map(|d| d / 4)
                .fold(SWEEP, Duration::min)
                .max(Duration::from_millis(10)),
            next_sweep: None,
        };
        engine.add(engine.wake.as_raw_fd(), libc::EPOLLIN as u32, WAKE)?;
        let _ = peers.loops[me].waker.set(Waker(engine.wake.clone()));
        for (i, r) in routes.iter().enumerate() {
            let accepted = engine
                .shared
                .metrics
                .accepted
                .get_or_create(&crate::metrics::RouteLabels {
                    route: r.pool.route.clone(),
                })
                .clone();
            engine.routes.push(Served {
                pool: r.pool.clone(),
                rc: r.config.clone(),
                limit: r.limit.clone(),
                set_nodelay: r.set_nodelay,
            });
            engine.listeners.push(Listening {
                route: i,
                listener: r.listener.clone(),
                accepted,
                registered: false,
            });
            engine.listen(i)?;
        }
        Ok(engine)
    }

    fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: registers a descriptor we own or borrow with our epoll instance.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
            .map(drop)
    }

    fn add_socket(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add(
            fd,
            (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            token,
        )
    }

    /// Registers listener `i` (level-triggered, one waiting loop woken per connection).
    fn listen(&mut self, i: usize) -> io::Result<()> {
        let l = &self.listeners[i];
        if l.registered {
            return Ok(());
        }
        self.add(
            l.listener.as_raw_fd(),
            (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32,
            LISTENER | i as u64,
        )?;
        self.listeners[i].registered = true;
        Ok(())
    }

    fn unlisten(&mut self, i: usize) {
        let l = &mut self.listeners[i];
        if l.registered {
            let mut ev = libc::epoll_event { events: 0, u64: 0 };
            // SAFETY: removes a descriptor we registered; the event argument is ignored.
            unsafe {
                libc::epoll_ctl(
                    self.epfd.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    l.listener.as_raw_fd(),
                    &mut ev,
                )
            };
            l.registered = false;
        }
    }

    fn run(mut self) {
        let mut events: Vec<libc::epoll_event> =
            vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        self.check_flags();
        loop {
            if self.accepting.is_none() && self.open == 0 {
                break;
            }
            let timeout = if self.again.is_empty() {
                self.timeout_ms()
            } else {
                0
            };
            // SAFETY: epoll_wait writes at most EVENTS entries into the buffer we own.
            let n = unsafe {
                libc::epoll_wait(
                    self.epfd.as_raw_fd(),
                    events.as_mut_ptr(),
                    EVENTS as libc::c_int,
                    timeout,
                )
            };
            self.now = Instant::now();
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    warn!(error = %e, "epoll_wait failed; the relay loop stops");
                    break;
                }
                continue;
            }
            for ev in &events[..n as usize] {
                let (flags, tok) = (ev.events, ev.u64);
                self.dispatch(flags, tok);
            }
            for (slot, id) in std::mem::take(&mut self.again) {
                if matches!(&self.conns[slot], Some(c) if c.client_id == id) {
                    self.drive(slot);
                }
            }
            self.run_timers();
            if self.queued > 0 {
                self.serve_waiting();
            }
            // After serve_waiting, whose failed connects may free slots too.
            if std::mem::take(&mut self.released) {
                self.wake_waiting_peers();
            }
        }
        debug!("relay loop stopped");
    }

    fn timeout_ms(&self) -> libc::c_int {
        let mut next = self.timers.peek().map(|Reverse((t, _, _))| *t);
        if let Some(s) = self.next_sweep {
            next = Some(next.map_or(s, |t| t.min(s)));
        }
        // The queue timeouts (the fronts are live: serve_waiting dropped the others).
        let queues = if self.queued > 0 {
            &self.waiting[..]
        } else {
            &[]
        };
        for (q, r) in queues.iter().zip(&self.routes) {
            if let (Some(&(_, _, since)), Some(limit)) = (q.front(), r.rc.queue_timeout) {
                let t = since + limit;
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        match next {
            None => -1,
            Some(t) => {
                // From the time read after the last wait (the work since is short), rounded
                // up: waking before the deadline would only wait again.
                let d = t.saturating_duration_since(self.now);
                d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        }
    }

    fn dispatch(&mut self, flags: u32, tok: u64) {
        if tok == WAKE {
            let mut buf = [0u8; 8];
            let _ = read(self.wake.as_raw_fd(), &mut buf);
            self.check_flags();
            return;
        }
        if tok & LISTENER == LISTENER {
            self.accept((tok & 0xFFFF_FFFF) as usize);
            return;
        }
        let (id, slot, upstream) = untoken(tok);
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return;
        };
        if upstream {
            match &mut c.state {
                State::Relaying(r) if r.up_id == id => r.ur.update(flags),
                State::Connecting(k) if k.up_id == id => {
                    k.ready.update(flags);
                    self.connect_event(slot, flags);
                    return;
                }
                _ => return,
            }
        } else if c.client_id == id {
            c.cr.update(flags);
            // A reset before the relay: the client is gone (a FIN alone may be a half-close
            // after its request, which is still served). A connect in flight is dropped, with
            // a reset, as the relay would pass it on.
            if !matches!(c.state, State::Relaying(_))
                && flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
            {
                if let State::Connecting(k) = &c.state {
                    if let Some(sock) = &k.sock {
                        set_reset_on_close(sock);
                    }
                }
                let (route, peer) = (c.route, c.peer);
                // Removed first: once the departure is counted, the connection no longer
                // counts as waiting.
                self.remove(slot);
                events::ClientLeft {
                    route: &self.routes[route].pool.route,
                    client: peer,
                }
                .emit(&self.shared.metrics);
                return;
            }
        } else {
            return;
        }
        self.drive(slot);
    }

    /// Reads the shutdown flags: stop accepting, then (end of the drain) close everything.
    fn check_flags(&mut self) {
        if self.accepting.is_some() && self.shared.stop_accepting.is_cancelled() {
            for i in 0..self.listeners.len() {
                self.unlisten(i);
            }
            self.listeners.clear();
            self.accepting = None;
        }
        if !self.force_closed && self.shared.force_close.is_cancelled() {
            self.force_closed = true;
            for slot in 0..self.conns.len() {
                if self.conns[slot].is_some() {
                    self.close(slot, End::Shutdown);
                }
            }
        }
    }

    fn accept(&mut self, i: usize) {
        for _ in 0..ACCEPT_BATCH {
            let Some(l) = self.listeners.get(i) else {
                return;
            };
            let lfd = l.listener.as_raw_fd();
            // SAFETY: accept4 writes the peer address into the storage try_init hands us and
            // returns a new descriptor, which we own from here on.
            let accepted = unsafe {
                SockAddr::try_init(|storage, len| {
                    cvt(libc::accept4(
                        lfd,
                        storage.cast(),
                        len,
                        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    ))
                })
            };
            let (fd, addr) = match accepted {
                Ok(a) => a,
                Err(e) if would_block(&e) => return,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO)
                    ) =>
                {
                    continue
                }
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    let route = &self.routes[self.listeners[i].route].pool.route;
                    warn!(%route, %error, "cannot accept a connection");
                    self.unlisten(i);
                    self.timers
                        .push(Reverse((self.now + ACCEPT_BACKOFF, 0, Timer::Listen(i))));
                    return;
                }
            };
            // SAFETY: accept4 just returned this descriptor; nothing else owns it.
            let client = unsafe { TcpStream::from_raw_fd(fd) };
            let peer = addr
                .as_socket()
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            self.listeners[i].accepted.inc();
            let route = self.listeners[i].route;
            self.accepted(client, peer, route);
        }
    }

    fn accepted(&mut self, client: TcpStream, peer: SocketAddr, route: usize) {
        let Served {
            pool,
            rc,
            limit,
            set_nodelay,
        } = &self.routes[route];
        if *set_nodelay {
            let _ = client.set_nodelay(true);
        }
        let mut waits = false;
        let permit = match limit {
            None => None,
            Some(sem) => {
                // Connections already waiting (on any loop) go first.
                let queue = self.peers.routes[route].load(Ordering::SeqCst) > 0;
                match (!queue).then(|| sem.clone().try_acquire_owned().ok()) {
                    Some(Some(p)) => Some(p),
                    _ if rc.on_limit == OnLimit::Refuse => {
                        events::ConnectionRejected {
                            route: &pool.route,
                            client: peer,
                            reason: "limit",
                        }
                        .emit(&self.shared.metrics);
                        return;
                    }
                    _ => {
                        waits = true;
                        None
                    }
                }
            }
        };
        // The local address only goes into a PROXY header: spare the syscall otherwise.
        let local = match rc.connector.proxy_protocol {
            ProxyProtocol::Off => peer,
            _ => client.local_addr().unwrap_or(peer),
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        let client_id = next_id(&mut self.next_id);
        if let Err(error) = self.add_socket(client.as_raw_fd(), token(client_id, slot, false)) {
            warn!(%error, "cannot watch an accepted connection; closing it");
            self.free.push(slot);
            return;
        }
        self.conns[slot] = Some(Conn {
            client,
            client_id,
            cr: Ready::default(),
            peer,
            local,
            route,
            started: self.now,
            state: State::Waiting(None),
            _permit: permit,
            _tracked: self.shared.connections.token(),
        });
        self.open += 1;
        if self.next_sweep.is_none() {
            self.next_sweep = Some(self.now + self.sweep);
        }
        if waits {
            let gauge = events::WaitingForSlot {
                route: &pool.route,
                client: peer,
            }
            .begin(&self.shared.metrics);
            let queued = Queued::new(&self.peers, self.me, route, gauge);
            if let Some(c) = self.conns[slot].as_mut() {
                c.state = State::Waiting(Some(queued));
            }
            // Served (or timed out) by serve_waiting at the end of this batch.
            self.waiting[route].push_back((slot, client_id, self.now));
            self.queued += 1;
        } else {
            self.start_connecting(slot);
        }
    }

    /// Connections waiting for a slot take the ones now free, in order; those that waited
    /// their route's queue timeout are turned away.
    fn serve_waiting(&mut self) {
        for route in 0..self.waiting.len() {
            while let Some(&(slot, id, since)) = self.waiting[route].front() {
                let peer = match self.conns.get(slot) {
                    Some(Some(c))
                        if c.client_id == id && matches!(c.state, State::Waiting(Some(_))) =>
                    {
                        c.peer
                    }
                    // Gone (left, closed) since it queued.
                    _ => {
                        pop_waiting(&mut self.waiting[route], &mut self.queued);
                        continue;
                    }
                };
                let Served {
                    pool, rc, limit, ..
                } = &self.routes[route];
                if rc.queue_timeout.is_some_and(|t| since + t <= self.now) {
                    pop_waiting(&mut self.waiting[route], &mut self.queued);
                    events::ConnectionRejected {
                        route: &pool.route,
                        client: peer,
                        reason: "queue_timeout",
                    }
                    .emit(&self.shared.metrics);
                    self.remove(slot);
                    continue;
                }
                let permit = limit.clone().and_then(|sem| sem.try_acquire_owned().ok());
                let Some(permit) = permit else { break };
                pop_waiting(&mut self.waiting[route], &mut self.queued);
                if let Some(Some(c)) = self.conns.get_mut(slot) {
                    c._permit = Some(permit);
                }
                self.start_connecting(slot);
            }
        }
    }

    /// Wakes the other loops with connections waiting for a slot: this one just freed some.
    fn wake_waiting_peers(&self) {
        // Pairs with the fence in Queued::new: the slot is free before the counts are read.
        fence(Ordering::SeqCst);
        for (i, p) in self.peers.loops.iter().enumerate() {
            if i != self.me && p.waiting.load(Ordering::SeqCst) > 0 {
                if let Some(w) = p.waker.get() {
                    w.wake();
                }
            }
        }
    }

    fn start_connecting(&mut self, slot: usize) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        let candidates = self.routes[c.route].pool.candidates();
        c.state = State::Connecting(Box::new(Connecting {
            candidates,
            ci: 0,
            addrs: Vec::new(),
            ai: 0,
            sock: None,
            addr: None,
            up_id: 0,
            started: self.now,
            ready: Ready::default(),
        }));
        self.next_attempt(slot, None);
    }

    /// Ends the attempt in flight (with `failed`, its error) and starts the next one; when
    /// every candidate failed, the client is turned away.
    fn next_attempt(&mut self, slot: usize, failed: Option<io::Error>) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        let route = c.route;
        let State::Connecting(k) = &mut c.state else {
            return;
        };
        let pool = &self.routes[route].pool;
        let timeout = self.routes[route].rc.connector.timeout;
        if let Some(error) = failed {
            k.sock = None;
            events::ConnectFailed {
                route: &pool.route,
                upstream: &k.candidates[k.ci].label,
                addr: k.addr,
                error: &error,
            }
            .emit(&self.shared.metrics);
        }
        let mut out_of = None;
        loop {
            if k.ci < k.candidates.len() && k.ai == 0 && k.addrs.is_empty() {
                k.addrs = k.candidates[k.ci].addrs();
            }
            if k.ci >= k.candidates.len() {
                break;
            }
            if k.ai >= k.addrs.len() {
                // Every address of this upstream failed.
                pool.record_failure(&k.candidates[k.ci]);
                k.ci += 1;
                k.ai = 0;
                k.addrs.clear();
                continue;
            }
            let addr = k.addrs[k.ai];
            k.ai += 1;
            k.addr = Some(addr);
            k.started = self.now;
            k.ready = Ready::default();
            let up_id = next_id(&mut self.next_id);
            k.up_id = up_id;
            let attempt = (|| -> io::Result<TcpStream> {
                let socket =
                    Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None)?;
                socket.set_tcp_nodelay(true)?;
                match socket.connect(&addr.into()) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                    Err(e) => return Err(e),
                }
                let s: TcpStream = socket.into();
                let mut ev = libc::epoll_event {
                    events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET)
                        as u32,
                    u64: token(up_id, slot, true),
                };
                // SAFETY: registers the socket we just made with our epoll instance.
                cvt(unsafe {
                    libc::epoll_ctl(
                        self.epfd.as_raw_fd(),
                        libc::EPOLL_CTL_ADD,
                        s.as_raw_fd(),
                        &mut ev,
                    )
                })?;
                Ok(s)
            })();
            match attempt {
                Ok(s) => {
                    k.sock = Some(s);
                    let key = token(c.client_id, slot, false);
                    self.timers
                        .push(Reverse((self.now + timeout, key, Timer::Connect(up_id))));
                    return;
                }
                // No socket to be had here: no upstream's fault, and none would do better.
                Err(error) if crate::connect::out_of_descriptors(&error) => {
                    out_of = Some(error);
                    break;
                }
                Err(error) => events::ConnectFailed {
                    route: &pool.route,
                    upstream: &k.candidates[k.ci].label,
                    addr: Some(addr),
                    error: &error,
                }
                .emit(&self.shared.metrics),
            }
        }
        events::ConnectionRejected {
            route: &pool.route,
            client: c.peer,
            reason: crate::connect::rejection(out_of.as_ref()),
        }
        .emit(&self.shared.metrics);
        self.remove(slot);
    }

    /// An event on the socket of a connect in flight.
    fn connect_event(&mut self, slot: usize, flags: u32) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        let State::Connecting(k) = &mut c.state else {
            return;
        };
        let refused = flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
        if !refused && flags & libc::EPOLLOUT as u32 == 0 {
            return;
        }
        let Some(sock) = k.sock.take() else { return };
        if refused {
            // The readiness told a failed connect from one that worked: the error is only
            // fetched for a failure.
            let error = sock
                .take_error()
                .ok()
                .flatten()
                .unwrap_or_else(|| io::ErrorKind::NotConnected.into());
            drop(sock);
            self.next_attempt(slot, Some(error));
            return;
        }
        let rc = &self.routes[c.route].rc;
        let pool = &self.routes[c.route].pool;
        let header = crate::proxy_protocol::header(rc.connector.proxy_protocol, c.peer, c.local);
        if !header.is_empty() {
            // A new socket's send buffer is empty: the header (at most a few hundred bytes)
            // goes out whole.
            match write(sock.as_raw_fd(), &header) {
                Ok(n) if n == header.len() => {}
                Ok(_) => {
                    self.next_attempt(
                        slot,
                        Some(io::Error::other("the PROXY header did not go out whole")),
                    );
                    return;
                }
                Err(e) => {
                    self.next_attempt(slot, Some(e));
                    return;
                }
            }
        }
        let upstream = k.candidates[k.ci].clone();
        upstream
            .metrics
            .connect_seconds
            .observe(self.now.duration_since(k.started).as_secs_f64());
        pool.record_success(&upstream);
        let relay = Relay {
            up: sock,
            up_id: k.up_id,
            ur: k.ready,
            _active: upstream.open(),
            upstream,
            addr: k
                .addr
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            c2u: Half::default(),
            u2c: Half::default(),
            last_active: self.now,
            options_due: Some(self.now + crate::connect::UPSTREAM_OPTIONS_AFTER),
        };
        c.state = State::Relaying(Box::new(relay));
        self.drive(slot);
    }

    /// Moves bytes both ways; closes the connection when it ended.
    fn drive(&mut self, slot: usize) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        let State::Relaying(r) = &mut c.state else {
            return;
        };
        let rc = &self.routes[c.route].rc;
        let counters = &r.upstream.metrics.bytes;
        let (cfd, ufd) = (c.client.as_raw_fd(), r.up.as_raw_fd());
        let mut io = Io {
            from: cfd,
            to: ufd,
            size: rc.buffer_size,
            may_splice: rc.splice,
            counter: &counters.to_upstream,
            scratch: &mut self.scratch,
        };
        let up = match drive_half(&mut r.c2u, &mut io, &mut c.cr, &mut r.ur, r.u2c.done) {
            Ok(m) => m,
            Err((side, e)) => return self.close(slot, failed(side, e, true)),
        };
        io.from = ufd;
        io.to = cfd;
        io.counter = &counters.to_client;
        let down = match drive_half(&mut r.u2c, &mut io, &mut r.ur, &mut c.cr, r.c2u.done) {
            Ok(m) => m,
            Err((side, e)) => return self.close(slot, failed(side, e, false)),
        };
        if up.any || down.any {
            r.last_active = self.now;
        }
        if up.more || down.more {
            self.again.push((slot, c.client_id));
        }
        if r.c2u.done && r.u2c.done {
            self.close(slot, End::Done);
        }
    }

    /// Runs what is due: connect timeouts, the accept back-off, the sweep. Entries of connects
    /// that ended are dropped on the way.
    fn run_timers(&mut self) {
        while let Some(Reverse((t, key, timer))) = self.timers.peek().copied() {
            let live = match timer {
                Timer::Listen(_) => true,
                Timer::Connect(up_id) => self.connecting(key, up_id),
            };
            if live && t > self.now {
                break;
            }
            self.timers.pop();
            if !live {
                continue;
            }
            match timer {
                Timer::Listen(i) => {
                    if self.accepting.is_some() {
                        if let Err(error) = self.listen(i) {
                            warn!(%error, "cannot watch the listening socket again");
                        }
                    }
                }
                Timer::Connect(_) => {
                    let (_, slot, _) = untoken(key);
                    let Some(Some(c)) = self.conns.get_mut(slot) else {
                        continue;
                    };
                    let timeout = self.routes[c.route].rc.connector.timeout;
                    if let State::Connecting(k) = &mut c.state {
                        k.sock = None;
                    }
                    self.next_attempt(slot, Some(crate::connect::timed_out(timeout)));
                }
            }
        }
        if self.next_sweep.is_some_and(|t| t <= self.now) {
            self.run_sweep();
        }
    }

    /// True while the connect attempt `up_id` of the connection `key` is in flight.
    fn connecting(&self, key: u64, up_id: u32) -> bool {
        let (id, slot, _) = untoken(key);
        match self.conns.get(slot) {
            Some(Some(c)) if c.client_id == id => {
                matches!(&c.state, State::Connecting(k) if k.up_id == up_id)
            }
            _ => false,
        }
    }

    /// Closes connections idle for their route's idle timeout and sets the upstream options
    /// of those that lived long enough.
    fn run_sweep(&mut self) {
        for slot in 0..self.conns.len() {
            let Some(c) = self.conns[slot].as_mut() else {
                continue;
            };
            let State::Relaying(r) = &mut c.state else {
                continue;
            };
            let Served { pool, rc, .. } = &self.routes[c.route];
            if rc
                .idle_timeout
                .is_some_and(|idle| r.last_active + idle <= self.now)
            {
                self.close(slot, End::Idle);
                continue;
            }
            if r.options_due.is_some_and(|t| t <= self.now) {
                r.options_due = None;
                if let Err(error) = rc.connector.set_upstream_options(&r.up) {
                    debug!(route = %pool.route, %error, "cannot set keepalive on the upstream socket");
                }
            }
        }
        self.next_sweep = (self.open > 0).then(|| self.now + self.sweep);
    }

    /// Ends a connection: resets the other side when one side failed, logs the access line.
    fn close(&mut self, slot: usize, end: End) {
        let Some(c) = self.conns[slot].take() else {
            return;
        };
        self.free.push(slot);
        self.open -= 1;
        self.released |= c._permit.is_some();
        let State::Relaying(mut r) = c.state else {
            return;
        };
        match &end {
            End::Client(_) => set_reset_on_close(&r.up),
            End::Upstream(_) => set_reset_on_close(&c.client),
            _ => {}
        }
        r.c2u.release_pipe();
        r.u2c.release_pipe();
        let Served { pool, rc, .. } = &self.routes[c.route];
        if rc.access_log {
            events::ConnectionClosed {
                route: &pool.route,
                client: c.peer,
                upstream: &r.upstream.label,
                upstream_addr: r.addr,
                duration: self.now.duration_since(c.started),
                bytes_to_upstream: r.c2u.bytes,
                bytes_to_client: r.u2c.bytes,
                reason: end.reason(),
                engine: if r.c2u.spliced || r.u2c.spliced {
                    "splice"
                } else {
                    "buffered"
                },
            }
            .emit();
        }
    }

    /// Drops a connection that never reached the relay.
    fn remove(&mut self, slot: usize) {
        if let Some(mut c) = self.conns[slot].take() {
            // Out of the waiting count before the client's socket closes (fields drop in
            // order, the client first): a client that sees the close is no longer counted.
            if let State::Waiting(queued) = &mut c.state {
                queued.take();
            }
            self.free.push(slot);
            self.open -= 1;
            self.released |= c._permit.is_some();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::splice::give_back;
    use crate::{
        config::Balance, connect::Connector, metrics::Metrics, pool::HealthPolicy,
        relay::ForceClose,
    };
    use common::prometheus_client::registry::Registry;
    use socket2::SockRef;
    use std::{
        io::{Read, Write},
        net::Shutdown,
        os::fd::BorrowedFd,
        sync::mpsc,
    };
    use tokio_util::{sync::CancellationToken, task::TaskTracker};

    const T: Duration = Duration::from_secs(10);

    /// One loop serving one plain route to `upstream`, on a thread that runs `before` first,
    /// with the access log on, captured in `log`.
    struct Harness {
        addr: SocketAddr,
        shared: Arc<Shared>,
        waker: Waker,
        pool: Arc<Pool>,
        stopped: mpsc::Receiver<()>,
        log: Arc<std::sync::Mutex<Vec<u8>>>,
    }

    struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for LogBuf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Harness {
        /// Waits for the access log line of a closed connection and returns it.
        fn closed(&self) -> String {
            let deadline = Instant::now() + T;
            loop {
                let text =
                    String::from_utf8_lossy(&self.log.lock().unwrap_or_else(|p| p.into_inner()))
                        .into_owned();
                if let Some(line) = text.lines().find(|l| l.contains("connection closed")) {
                    return line.to_string();
                }
                assert!(
                    Instant::now() < deadline,
                    "no access log line in {T:?}: {text}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// A route to `upstream` (access log on) and what the loops share.
    fn route(
        upstream: SocketAddr,
        splice: bool,
        idle: Option<Duration>,
        on_limit: OnLimit,
    ) -> (Arc<Pool>, Arc<RouteConfig>, Arc<Shared>) {
        let metrics = Metrics::register(&mut Registry::default());
        let policy = HealthPolicy {
            eject_after: 3,
            cooldown: Duration::from_secs(1),
            cooldown_max: Duration::from_secs(1),
        };
        let host = (upstream.ip().to_string(), upstream.port());
        let pool = Arc::new(Pool::new(
            "test".into(),
            &[host],
            Balance::RoundRobin,
            policy,
            &metrics,
        ));
        pool.upstreams[0].set_addrs(vec![upstream]);
        let config = Arc::new(RouteConfig {
            connector: Connector {
                timeout: Duration::from_secs(5),
                keepalive: Duration::from_secs(30),
                user_timeout: Duration::ZERO,
                tls: None,
                proxy_protocol: ProxyProtocol::Off,
                metrics: metrics.clone(),
            },
            acceptor: None,
            buffer_size: 16 * 1024,
            idle_timeout: idle,
            splice,
            on_limit,
            queue_timeout: None,
            access_log: true,
        });
        let shared = Arc::new(Shared {
            metrics,
            stop_accepting: CancellationToken::new(),
            force_close: ForceClose::new(),
            connections: TaskTracker::new(),
        });
        (pool, config, shared)
    }

    /// Loop `me` of `peers` for one route on a listener of its own, running on a thread
    /// that runs `before` first, with its log captured in `log`. `sweep_never`: the loop wakes
    /// only for events (no sweep), so a test can tell a wakeup that is missing.
    fn run_loop(
        (pool, config, limit): (&Arc<Pool>, &Arc<RouteConfig>, Option<Arc<Semaphore>>),
        shared: &Arc<Shared>,
        (peers, me): (&Arc<Peers>, usize),
        log: &Arc<std::sync::Mutex<Vec<u8>>>,
        sweep_never: bool,
        before: impl FnOnce() + Send + 'static,
    ) -> (SocketAddr, Waker, mpsc::Receiver<()>) {
        let listener = crate::listen::bind(([127, 0, 0, 1], 0).into()).expect("bind");
        let addr = listener.local_addr().expect("address");
        let route = EngineRoute {
            pool: pool.clone(),
            config: config.clone(),
            limit,
            listener: Arc::new(listener),
            set_nodelay: true,
        };
        let mut engine = Engine::new(
            &[route],
            shared.clone(),
            TaskTracker::new().token(),
            peers,
            me,
        )
        .expect("engine");
        if sweep_never {
            engine.sweep = Duration::from_secs(24 * 3600);
        }
        let waker = Waker(engine.wake.clone());
        let (tx, stopped) = mpsc::channel();
        let buf = log.clone();
        std::thread::spawn(move || {
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || LogBuf(buf.clone()))
                .finish();
            let _log = tracing::subscriber::set_default(subscriber);
            before();
            engine.run();
            let _ = tx.send(());
        });
        (addr, waker, stopped)
    }

    fn start(
        upstream: SocketAddr,
        splice: bool,
        idle: Option<Duration>,
        before: impl FnOnce() + Send + 'static,
    ) -> Harness {
        let (pool, config, shared) = route(upstream, splice, idle, OnLimit::Refuse);
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (addr, waker, stopped) = run_loop(
            (&pool, &config, None),
            &shared,
            (&Peers::new(1, 1), 0),
            &log,
            false,
            before,
        );
        Harness {
            addr,
            shared,
            waker,
            pool,
            stopped,
            log,
        }
    }

    /// A server that accepts one connection and hands it to `f`.
    fn server(f: impl FnOnce(TcpStream) + Send + 'static) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("address");
        std::thread::spawn(move || {
            let (s, _) = l.accept().expect("accept");
            f(s);
        });
        addr
    }

    fn echo() -> SocketAddr {
        server(|mut s| {
            let mut r = s.try_clone().expect("clone");
            let _ = std::io::copy(&mut r, &mut s);
        })
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(T)).expect("timeout");
        s
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    fn both_ways_with_half_close(splice: bool) {
        let (tx, got) = mpsc::channel();
        let upstream = server(move |mut s| {
            let mut all = Vec::new();
            s.read_to_end(&mut all).expect("read to EOF");
            let _ = tx.send(all);
            s.write_all(b"bye").expect("answer after the half-close");
        });
        let h = start(upstream, splice, None, || {});
        let data = pattern(3_000_000);
        let mut app = connect(h.addr);
        // Small writes first (buffered path), then bulk (splice path), then small again.
        for chunk in data[..1000].chunks(10) {
            app.write_all(chunk).expect("write");
        }
        app.write_all(&data[1000..2_999_000]).expect("write");
        for chunk in data[2_999_000..].chunks(100) {
            app.write_all(chunk).expect("write");
        }
        app.shutdown(Shutdown::Write).expect("half-close");
        let received = got.recv_timeout(T).expect("the upstream saw EOF");
        assert!(received == data, "bytes differ ({} bytes)", received.len());
        let counters = &h.pool.upstreams[0].metrics.bytes;
        assert_eq!(
            counters.to_upstream.get(),
            3_000_000,
            "counted as they flow"
        );
        let mut back = Vec::new();
        app.read_to_end(&mut back).expect("read to EOF");
        assert_eq!(back, b"bye");
        assert_eq!(counters.to_client.get(), 3);
        let line = h.closed();
        assert!(line.contains("reason=\"done\""), "{line}");
        assert!(line.contains("bytes_to_upstream=3000000"), "{line}");
        let engine = if splice { "splice" } else { "buffered" };
        assert!(line.contains(&format!("engine=\"{engine}\"")), "{line}");
    }

    #[test]
    fn splices_bulk_both_ways_with_half_close() {
        both_ways_with_half_close(true);
    }

    #[test]
    fn buffered_only_both_ways_with_half_close() {
        both_ways_with_half_close(false);
    }

    /// A pipe smaller than a buffer (what a user past its pipe pages gets) is not used: the
    /// direction stays buffered and every byte still arrives.
    #[test]
    fn a_small_pipe_keeps_the_direction_buffered() {
        let (tx, got) = mpsc::channel();
        let upstream = server(move |mut s| {
            let mut all = Vec::new();
            s.read_to_end(&mut all).expect("read to EOF");
            let _ = tx.send(all);
        });
        let h = start(upstream, true, None, || {
            let mut small = crate::splice::pipe().expect("pipe");
            // SAFETY: fcntl on a pipe this test owns.
            let cap = unsafe { libc::fcntl(small.w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
            assert!(cap > 0, "F_SETPIPE_SZ: {}", io::Error::last_os_error());
            small.cap = cap as usize;
            crate::splice::clear_pool();
            give_back(small);
        });
        let data = pattern(1_000_000);
        let mut app = connect(h.addr);
        app.write_all(&data).expect("write");
        app.shutdown(Shutdown::Write).expect("half-close");
        let received = got.recv_timeout(T).expect("the upstream saw EOF");
        assert!(received == data, "bytes differ ({} bytes)", received.len());
        drop(app);
        let line = h.closed();
        assert!(
            line.contains("engine=\"buffered\""),
            "the 4 KiB pipe was used: {line}"
        );
    }

    #[test]
    fn an_idle_connection_is_closed() {
        let h = start(echo(), true, Some(Duration::from_millis(200)), || {});
        let mut app = connect(h.addr);
        app.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        app.read_exact(&mut buf).expect("echo");
        // Nothing more either way: the proxy closes within the timeout and a sweep.
        assert_eq!(app.read(&mut buf).expect("a clean close"), 0);
        let line = h.closed();
        assert!(line.contains("reason=\"idle_timeout\""), "{line}");
    }

    /// Stop accepting closes the listener; the forced close ends open connections, then the
    /// loop.
    #[test]
    fn stops_accepting_then_closes_what_is_open() {
        let h = start(echo(), true, None, || {});
        let mut app = connect(h.addr);
        app.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        app.read_exact(&mut buf).expect("echo");
        h.shared.stop_accepting.cancel();
        h.waker.wake();
        let deadline = Instant::now() + T;
        while TcpStream::connect(h.addr).is_ok() {
            assert!(Instant::now() < deadline, "still accepting");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Open connections go on meanwhile.
        app.write_all(b"pong").expect("write");
        app.read_exact(&mut buf).expect("echo");
        assert_eq!(&buf, b"pong");
        assert!(h.stopped.try_recv().is_err(), "a connection is still open");
        h.shared.force_close.cancel();
        h.waker.wake();
        assert_eq!(app.read(&mut buf).expect("closed"), 0);
        h.stopped.recv_timeout(T).expect("the loop ended");
        let line = h.closed();
        assert!(line.contains("reason=\"shutdown\""), "{line}");
    }

    /// Finds the socket of this process bound to `local` and tells whether SO_KEEPALIVE is on.
    fn keepalive_of_socket_at(local: SocketAddr) -> Option<bool> {
        for fd in 3..4096 {
            // SAFETY: a borrowed descriptor number that may be anything or nothing: only
            // getsockname and getsockopt are called on it, which fail harmlessly otherwise.
            let b = unsafe { BorrowedFd::borrow_raw(fd) };
            let s = SockRef::from(&b);
            if s.local_addr().ok().and_then(|a| a.as_socket()) == Some(local) {
                return s.keepalive().ok();
            }
        }
        None
    }

    /// The upstream socket gets its keepalive once the connection has lived a while.
    #[test]
    fn upstream_keepalive_once_the_connection_lives_on() {
        let (tx, seen) = mpsc::channel();
        let upstream = server(move |mut s| {
            let _ = tx.send(s.peer_addr().expect("peer"));
            let mut r = s.try_clone().expect("clone");
            let _ = std::io::copy(&mut r, &mut s);
        });
        let h = start(upstream, true, None, || {});
        let mut app = connect(h.addr);
        app.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        app.read_exact(&mut buf).expect("echo");
        let ours = seen.recv_timeout(T).expect("upstream connected");
        assert_eq!(keepalive_of_socket_at(ours), Some(false), "not at once");
        let deadline = Instant::now() + T;
        while keepalive_of_socket_at(ours) != Some(true) {
            assert!(Instant::now() < deadline, "no keepalive after {T:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An echo server for any number of connections.
    fn echo_each() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("address");
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut r = s.try_clone().expect("clone");
                    let _ = std::io::copy(&mut r, &mut s);
                });
            }
        });
        addr
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + T;
        while !f() {
            assert!(Instant::now() < deadline, "{what}: not within {T:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn roundtrip(s: &mut TcpStream, msg: &[u8]) {
        s.write_all(msg).expect("write");
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).expect("echo");
        assert_eq!(back, msg);
    }

    /// `--max-connections 1 --on-limit wait` over two loops: the slot a connection frees on
    /// one loop goes to the connection waiting on the other (woken through its eventfd: no
    /// loop polls), and `waiting_connections` counts it meanwhile.
    #[test]
    fn a_slot_freed_on_one_loop_goes_to_a_connection_waiting_on_another() {
        let (pool, config, shared) = route(echo_each(), true, None, OnLimit::Wait);
        let limit = Some(Arc::new(Semaphore::new(1)));
        let peers = Peers::new(2, 1);
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (a, ..) = run_loop(
            (&pool, &config, limit.clone()),
            &shared,
            (&peers, 0),
            &log,
            true,
            || {},
        );
        let (b, ..) = run_loop(
            (&pool, &config, limit),
            &shared,
            (&peers, 1),
            &log,
            true,
            || {},
        );
        let waiting = shared
            .metrics
            .waiting
            .get_or_create(&crate::metrics::RouteLabels {
                route: "test".into(),
            });
        let mut first = connect(a);
        roundtrip(&mut first, b"one");
        let mut second = connect(b);
        second.write_all(b"two").expect("write");
        wait_for("the second to wait", || waiting.get() == 1);
        drop(first);
        let mut back = [0u8; 3];
        second
            .read_exact(&mut back)
            .expect("served once the first closed");
        assert_eq!(&back, b"two");
        assert_eq!(waiting.get(), 0);
    }

    /// A client that resets while its connection waits for a slot leaves the queue, and the
    /// slot goes to the next in line.
    #[test]
    fn a_waiting_client_that_resets_leaves_the_queue() {
        let (pool, config, shared) = route(echo_each(), true, None, OnLimit::Wait);
        let limit = Some(Arc::new(Semaphore::new(1)));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (addr, ..) = run_loop(
            (&pool, &config, limit),
            &shared,
            (&Peers::new(1, 1), 0),
            &log,
            true,
            || {},
        );
        let m = &shared.metrics;
        let waiting = m.waiting.get_or_create(&crate::metrics::RouteLabels {
            route: "test".into(),
        });
        let left = m.rejected.get_or_create(&crate::metrics::RejectLabels {
            route: "test".into(),
            reason: "client_left",
        });
        let mut first = connect(addr);
        roundtrip(&mut first, b"one");
        let gone = connect(addr);
        let mut third = connect(addr);
        third.write_all(b"three").expect("write");
        wait_for("two to wait", || waiting.get() == 2);
        SockRef::from(&gone)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(gone);
        wait_for("the reset client to leave the queue", || {
            left.get() == 1 && waiting.get() == 1
        });
        drop(first);
        let mut back = [0u8; 5];
        third
            .read_exact(&mut back)
            .expect("served once the first closed");
        assert_eq!(&back, b"three");
        assert_eq!(waiting.get(), 0);
    }
}
