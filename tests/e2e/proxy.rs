//! A fault-injecting TCP proxy in front of the shared test servers: the way a test cuts,
//! stalls, slows or takes away a connection without touching the servers every other test uses.
//! Byte counts are of what the server sent (TLS records included), per connection.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does to the server's bytes.
#[derive(Clone)]
pub enum Mode {
    /// Forwards everything.
    Pass,
    /// After this many bytes, forwards nothing more (the connections stay open).
    SilenceAfter(usize),
    /// After this many bytes, one byte per interval.
    TrickleAfter(usize, Duration),
    /// After this many bytes, closes both sides (FIN).
    CutAfter(usize),
    /// After this many bytes, resets both sides (RST).
    ResetAfter(usize),
    /// A steady link of this many bytes per second.
    Throttle(u64),
    /// After this many bytes, pauses forwarding, runs the hook (once), then goes on at the rate
    /// (bytes per second) given, so what the hook changes happens in the middle of a transfer.
    HookAfter(usize, Hook, u64),
}

pub type Hook = Arc<dyn Fn() + Send + Sync>;

struct Ctl {
    target: u16,
    port: u16,
    mode: Mutex<Mode>,
    /// Only the first connection gets the mode; the rest pass.
    only_first: bool,
    accepted: AtomicUsize,
    /// The listener is open.
    up: AtomicBool,
    /// Live connections stop forwarding (and are kept open).
    blackhole: AtomicBool,
    hook_done: AtomicBool,
    /// Live connections' sockets (by connection), to close them when the server "goes away".
    live: Mutex<Vec<(usize, TcpStream)>>,
    stop: AtomicBool,
}

pub struct Proxy {
    pub port: u16,
    ctl: Arc<Ctl>,
}

impl Proxy {
    pub fn start(target: u16, mode: Mode) -> Proxy {
        Proxy::start_with(target, mode, false)
    }

    /// A proxy whose mode applies to the first connection only.
    pub fn first_only(target: u16, mode: Mode) -> Proxy {
        Proxy::start_with(target, mode, true)
    }

    fn start_with(target: u16, mode: Mode, only_first: bool) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let ctl = Arc::new(Ctl {
            target,
            port,
            mode: Mutex::new(mode),
            only_first,
            accepted: AtomicUsize::new(0),
            up: AtomicBool::new(true),
            blackhole: AtomicBool::new(false),
            hook_done: AtomicBool::new(false),
            live: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let c = ctl.clone();
        std::thread::spawn(move || accept_loop(l, c));
        Proxy { port, ctl }
    }

    pub fn connections(&self) -> usize {
        self.ctl.accepted.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.ctl.mode.lock().unwrap() = mode;
    }

    /// The server "goes away": the listener closes (new connections are refused) and the live
    /// connections are closed, or black-holed (open, but nothing passes any more).
    pub fn go_away(&self, blackhole: bool) {
        self.ctl.up.store(false, Ordering::SeqCst);
        if blackhole {
            self.ctl.blackhole.store(true, Ordering::SeqCst);
        } else {
            for (_, s) in self.ctl.live.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        // Wait until the port is really closed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server is back on the same port; black-holed connections are closed.
    pub fn come_back(&self) {
        for (_, s) in self.ctl.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.ctl.blackhole.store(false, Ordering::SeqCst);
        self.set_mode(Mode::Pass);
        let l = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        self.ctl.up.store(true, Ordering::SeqCst);
        let c = self.ctl.clone();
        std::thread::spawn(move || accept_loop(l, c));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::SeqCst);
        self.ctl.up.store(false, Ordering::SeqCst);
        for (_, s) in self.ctl.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(l: TcpListener, ctl: Arc<Ctl>) {
    l.set_nonblocking(true).unwrap();
    while ctl.up.load(Ordering::SeqCst) {
        match l.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let n = ctl.accepted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", ctl.target)) else {
                    continue;
                };
                let mode = match (ctl.only_first, n) {
                    (true, k) if k > 0 => Mode::Pass,
                    _ => ctl.mode.lock().unwrap().clone(),
                };
                {
                    let mut live = ctl.live.lock().unwrap();
                    live.push((n, client.try_clone().unwrap()));
                    live.push((n, server.try_clone().unwrap()));
                }
                let dead = Arc::new(AtomicBool::new(false));
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (ctl2, d2) = (ctl.clone(), dead.clone());
                std::thread::spawn(move || pump(c2, s2, Mode::Pass, ctl2, (n, d2)));
                let ctl3 = ctl.clone();
                std::thread::spawn(move || pump(server, client, mode, ctl3, (n, dead)));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    // Dropping the listener closes the port.
}

/// Which connection a pump belongs to, and whether it was reset (both pumps then let go of
/// their sockets at once, so the kernel sends the RST).
type ConnId = (usize, Arc<AtomicBool>);

/// Forwards `from` → `to`, applying the mode.
fn pump(mut from: TcpStream, mut to: TcpStream, mode: Mode, ctl: Arc<Ctl>, conn: ConnId) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut sent = 0usize;
    let mut buf = vec![0u8; 16384];
    let started = Instant::now();
    loop {
        if ctl.stop.load(Ordering::SeqCst) || conn.1.load(Ordering::SeqCst) {
            return;
        }
        if ctl.blackhole.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let k = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue;
            }
            Err(_) => break,
        };
        if !forward(
            &buf[..k],
            &mut sent,
            &mut to,
            &mut from,
            &mode,
            &ctl,
            started,
            &conn,
        ) {
            return;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Forwards one chunk under the mode; false ends the pump.
#[allow(clippy::too_many_arguments)]
fn forward(
    chunk: &[u8],
    sent: &mut usize,
    to: &mut TcpStream,
    from: &mut TcpStream,
    mode: &Mode,
    ctl: &Ctl,
    started: Instant,
    conn: &ConnId,
) -> bool {
    let limit = match mode {
        Mode::SilenceAfter(n)
        | Mode::TrickleAfter(n, _)
        | Mode::CutAfter(n)
        | Mode::ResetAfter(n)
        | Mode::HookAfter(n, _, _) => Some(*n),
        _ => None,
    };
    let before = match limit {
        Some(n) if *sent < n => (n - *sent).min(chunk.len()),
        Some(_) => 0,
        None => chunk.len(),
    };
    if let Mode::Throttle(rate) = mode {
        return throttled(chunk, sent, to, *rate, started);
    }
    if to.write_all(&chunk[..before]).is_err() {
        return false;
    }
    *sent += before;
    let rest = &chunk[before..];
    if rest.is_empty() {
        return true;
    }
    match mode {
        Mode::SilenceAfter(_) => {
            // Swallow everything from now on; keep the sockets open.
            loop {
                if ctl.stop.load(Ordering::SeqCst) {
                    return false;
                }
                let mut sink = [0u8; 16384];
                match from.read(&mut sink) {
                    Ok(0) => return false,
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        Mode::TrickleAfter(_, pace) => {
            for b in rest {
                if to.write_all(&[*b]).is_err() || ctl.stop.load(Ordering::SeqCst) {
                    return false;
                }
                *sent += 1;
                std::thread::sleep(*pace);
            }
            true
        }
        Mode::CutAfter(_) => {
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
            false
        }
        Mode::ResetAfter(_) => {
            for s in [&*to, &*from] {
                linger_zero(s);
            }
            // Every handle of both sockets goes now: the close sends RST.
            conn.1.store(true, Ordering::SeqCst);
            ctl.live.lock().unwrap().retain(|(id, _)| *id != conn.0);
            false
        }
        Mode::HookAfter(_, hook, rate) => {
            if !ctl.hook_done.swap(true, Ordering::SeqCst) {
                hook();
            }
            throttled(rest, sent, to, *rate, Instant::now())
        }
        _ => true,
    }
}

/// Writes at most `rate` bytes per second (measured from `started`).
fn throttled(
    chunk: &[u8],
    sent: &mut usize,
    to: &mut TcpStream,
    rate: u64,
    started: Instant,
) -> bool {
    for piece in chunk.chunks(1024) {
        let due = Duration::from_secs_f64(*sent as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        if to.write_all(piece).is_err() {
            return false;
        }
        *sent += piece.len();
    }
    true
}

/// Makes the socket's close a reset (SO_LINGER 0).
fn linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket this test owns, with a live linger struct of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
