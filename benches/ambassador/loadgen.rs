//! Std-only load generator and backend for the ambassador benchmark (built by run.sh with
//! `rustc -O`, so it needs no crate). Modes:
//!   loadgen server ADDR               backend: answers each 64-byte request with 64 bytes
//!                                     (and closes after it when the request is `c` bytes)
//!   loadgen rr ADDR CONNS SECS        keep-alive request/response: req/s, p50, p99 (ms)
//!   loadgen cps ADDR THREADS SECS     a new connection per request, which the server closes:
//!                                     conn/s, p50, p99 (ms)
//!   loadgen idle ADDR N               open N connections, one exchange each, print "ready",
//!                                     hold them until stdin closes
use std::{
    env,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

const MSG: usize = 64;

fn server(addr: &str) {
    let l = Arc::new(TcpListener::bind(addr).expect("bind"));
    let idle = Arc::new(AtomicUsize::new(0));
    spawn_worker(l, idle);
    loop {
        thread::park();
    }
}

/// A backend thread: accepts a connection, answers on it until it closes, then accepts the
/// next. A new thread starts only when every thread is busy, so a connection per request costs
/// the backend no thread start (which would weigh on the conn/s figure of every target alike).
fn spawn_worker(l: Arc<TcpListener>, idle: Arc<AtomicUsize>) {
    idle.fetch_add(1, Ordering::SeqCst);
    let _ = thread::Builder::new().stack_size(64 << 10).spawn(move || loop {
        let Ok((mut s, _)) = l.accept() else { continue };
        if idle.fetch_sub(1, Ordering::SeqCst) == 1 {
            spawn_worker(l.clone(), idle.clone());
        }
        let _ = s.set_nodelay(true);
        let mut buf = [0u8; MSG];
        while s.read_exact(&mut buf).is_ok() {
            // A request of `c` bytes asks for the connection to be closed after the answer.
            if s.write_all(&buf).is_err() || buf[0] == b'c' {
                break;
            }
        }
        drop(s);
        idle.fetch_add(1, Ordering::SeqCst);
    });
}

fn exchange(s: &mut TcpStream) -> bool {
    let req = [b'q'; MSG];
    let mut resp = [0u8; MSG];
    s.write_all(&req).is_ok() && s.read_exact(&mut resp).is_ok()
}

/// One exchange after which the server closes, as with HTTP's `Connection: close`: the server
/// closes first, so the TIME_WAIT state stays on the server's side. When the client closed
/// first, its own TIME_WAIT sockets capped every target at the same rate: the loopback port
/// range (28,232 ports) can be reused only a second after a close.
fn exchange_and_close(s: &mut TcpStream) -> bool {
    let req = [b'c'; MSG];
    let mut resp = [0u8; MSG + 1];
    s.write_all(&req).is_ok()
        && s.read_exact(&mut resp[..MSG]).is_ok()
        && matches!(s.read(&mut resp), Ok(0))
}

fn report(label: &str, secs: f64, mut lat: Vec<Duration>, errors: usize) {
    lat.sort();
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0
        }
    };
    println!(
        "{label} {:.0} p50_ms {:.3} p99_ms {:.3} errors {errors}",
        lat.len() as f64 / secs,
        pct(0.50),
        pct(0.99)
    );
}

fn run_threads(n: usize, secs: f64, f: impl Fn(&AtomicBool) -> (Vec<Duration>, usize) + Send + Sync + 'static) -> (Vec<Duration>, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (stop, f) = (stop.clone(), f.clone());
            thread::spawn(move || f(&stop))
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.join().expect("thread");
        all.extend(l);
        errors += e;
    }
    (all, errors)
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let addr: SocketAddr = args.get(2).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: loadgen server|rr|cps|idle ADDR [N] [SECS]");
        std::process::exit(2)
    });
    let n: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1);
    let secs: f64 = args.get(4).and_then(|v| v.parse().ok()).unwrap_or(3.0);
    match mode {
        "server" => server(&args[2]),
        "rr" => {
            let (lat, errors) = run_threads(n, secs, move |stop| {
                let mut lat = Vec::with_capacity(1 << 16);
                let Ok(mut s) = TcpStream::connect(addr) else { return (lat, 1) };
                let _ = s.set_nodelay(true);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if !exchange(&mut s) {
                        return (lat, 1);
                    }
                    lat.push(t.elapsed());
                }
                (lat, 0)
            });
            report("req_per_s", secs, lat, errors);
        }
        "cps" => {
            let (lat, errors) = run_threads(n, secs, move |stop| {
                let mut lat = Vec::with_capacity(1 << 16);
                let mut errors = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match TcpStream::connect(addr) {
                        Ok(mut s) => {
                            let _ = s.set_nodelay(true);
                            if exchange_and_close(&mut s) {
                                lat.push(t.elapsed());
                            } else {
                                errors += 1;
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            });
            report("conn_per_s", secs, lat, errors);
        }
        "idle" => {
            let mut conns = Vec::with_capacity(n);
            for _ in 0..n {
                let mut s = TcpStream::connect(addr).expect("connect");
                assert!(exchange(&mut s), "exchange");
                conns.push(s);
            }
            println!("ready");
            let _ = std::io::stdout().flush();
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        }
        _ => {
            eprintln!("unknown mode {mode}");
            std::process::exit(2);
        }
    }
}
