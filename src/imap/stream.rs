//! The byte stream under every IMAP and SMTP session: plain TCP or TLS, with a watchdog that
//! bounds every wait on the server. The watchdog counts the time someone waits for the server
//! (a read or write that cannot go on) and the bytes that arrive meanwhile; when `timeout`
//! of waiting brings fewer than `timeout × min_bytes_per_sec` bytes (at least one), the wait
//! fails with a [`Stall`]. So a silent server is given up after `timeout`, and a trickle cannot
//! keep a transfer alive, while a slow but steady link still brings a big message. Time spent
//! elsewhere (our own writer catching up, a pause between commands) is not counted, and every
//! command we send starts a new window. IDLE pauses it ([`MailStream::pause`]): IDLE waits in
//! silence by design and bounds itself.
//!
//! The stream also keeps what a caller needs after a failure: the last bytes the server sent
//! (a BYE's reason when the library hides it), and the mailbox changes the server announced
//! in passing ([`Announced`], filled by `fetch::exec`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::client::TlsStream;

use super::exec::Unreadable;
use super::unsolicited::Announced;

/// How long a wait on the server may take, and the slowest transfer that still counts as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Waiting this long without enough progress ends the wait (`sync.timeout_secs`).
    pub timeout: Duration,
    /// The floor in bytes per second over a window of `timeout` (`sync.min_bytes_per_sec`);
    /// 0 only catches silence.
    pub min_bytes_per_sec: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(60),
            min_bytes_per_sec: 1024,
        }
    }
}

/// Why a wait was given up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    /// Bytes the server sent during the window.
    pub bytes: u64,
    /// Seconds waited in the window.
    pub secs: u64,
    pub floor: u64,
}

impl Stall {
    /// `stalled` or `too slow: N bytes in M s`, as errors and status show it.
    pub fn words(&self) -> String {
        if self.bytes == 0 {
            format!("stalled: no data for {} s", self.secs)
        } else {
            format!(
                "too slow: {} bytes in {} s (the floor is {} bytes/s, sync.min_bytes_per_sec)",
                self.bytes, self.secs, self.floor
            )
        }
    }
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.words())
    }
}

impl std::error::Error for Stall {}

/// The rate is judged over the last `timeout` of waiting, kept as this many slices.
const SLICES: u32 = 4;

/// The waiting-time bookkeeping of one connection.
struct Watch {
    limits: Limits,
    paused: bool,
    /// Bytes of the last full slices of waiting time (at most `SLICES`), oldest first.
    slices: std::collections::VecDeque<u64>,
    /// Waiting time and bytes of the slice under way.
    waited: Duration,
    bytes: u64,
    /// Time spent waiting since the server last sent a byte.
    quiet: Duration,
    /// Set while a read or write is pending.
    since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Watch {
    fn new(limits: Limits) -> Watch {
        Watch {
            limits,
            paused: false,
            slices: std::collections::VecDeque::new(),
            waited: Duration::ZERO,
            bytes: 0,
            quiet: Duration::ZERO,
            since: None,
            timer: None,
        }
    }

    fn off(&self) -> bool {
        self.paused || self.limits.timeout.is_zero()
    }

    fn slice(&self) -> Duration {
        self.limits.timeout / SLICES
    }

    fn restart(&mut self) {
        self.slices.clear();
        self.waited = Duration::ZERO;
        self.bytes = 0;
        self.quiet = Duration::ZERO;
        self.since = None;
    }

    /// A poll begins: the wait since the last Pending counts.
    fn resume(&mut self) {
        if let Some(s) = self.since.take() {
            let d = s.elapsed();
            self.waited += d;
            self.quiet += d;
        }
    }

    /// Silence for the whole timeout is a stall, whatever came before it; and once a whole
    /// timeout of waiting is behind, the bytes of its last `timeout` must reach the floor.
    fn judge(&mut self) -> Result<(), Stall> {
        let t = self.limits.timeout;
        if self.off() {
            return Ok(());
        }
        let stall = |bytes| Stall {
            bytes,
            secs: t.as_secs(),
            floor: self.limits.min_bytes_per_sec,
        };
        if self.quiet >= t {
            return Err(stall(0));
        }
        let need = (self.limits.min_bytes_per_sec as f64 * t.as_secs_f64()).max(1.0);
        while self.waited >= self.slice() {
            self.waited -= self.slice();
            self.slices.push_back(std::mem::take(&mut self.bytes));
            if self.slices.len() > SLICES as usize {
                self.slices.pop_front();
            }
            let sum: u64 = self.slices.iter().sum();
            if self.slices.len() == SLICES as usize && (sum as f64) < need {
                return Err(stall(sum));
            }
        }
        Ok(())
    }

    fn progress(&mut self, n: usize) -> Result<(), Stall> {
        self.bytes += n as u64;
        if n > 0 {
            self.quiet = Duration::ZERO;
        }
        self.judge()
    }

    /// The inner stream cannot go on: start the clock and arm the timer for the next moment
    /// something is judged (the slice's end, or the end of the allowed silence).
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Stall>> {
        if self.off() {
            return Poll::Pending;
        }
        loop {
            if let Err(s) = self.judge() {
                return Poll::Ready(Err(s));
            }
            let now = Instant::now();
            self.since = Some(now);
            let left = (self.slice().saturating_sub(self.waited))
                .min(self.limits.timeout.saturating_sub(self.quiet));
            let deadline = now + left;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            timer.as_mut().reset(deadline);
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // Already due: count it and judge again.
                Poll::Ready(()) => self.resume(),
            }
        }
    }
}

/// What the connection remembers besides bytes.
pub struct Link {
    /// `host:port`, for errors that name the server.
    pub server: String,
    watch: Watch,
    /// Why the last wait failed, if the watchdog ended it.
    pub stall: Option<Stall>,
    /// Total bytes read and written.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The last bytes the server sent.
    tail: Vec<u8>,
    /// Mailbox changes the server announced during our commands.
    pub announced: Announced,
    /// The response that could not be read, when that is what broke the connection.
    pub unreadable: Option<Unreadable>,
    /// The account's protocol trace (when this process traces).
    pub trace: Option<Box<crate::mail::trace::Tracer>>,
    /// Set while a secret goes out (a SASL exchange): the trace shows none of what is sent.
    secret: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const TAIL: usize = 1024;

impl Link {
    fn new(server: String, limits: Limits) -> Link {
        Link {
            server,
            watch: Watch::new(limits),
            stall: None,
            bytes_in: 0,
            bytes_out: 0,
            tail: Vec::new(),
            announced: Announced::default(),
            unreadable: None,
            trace: None,
            secret: Default::default(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.watch.limits
    }

    /// The switch that keeps what is sent out of the trace while it is on (the protocol code
    /// turns it on around a SASL exchange; lettre owns an SMTP stream, hence a shared flag).
    pub fn secret_flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.secret.clone()
    }

    /// The last bytes the server sent, as text.
    pub fn tail(&self) -> String {
        String::from_utf8_lossy(&self.tail).into_owned()
    }

    fn keep_tail(&mut self, bytes: &[u8]) {
        let take = &bytes[bytes.len().saturating_sub(TAIL)..];
        self.tail.extend_from_slice(take);
        if self.tail.len() > TAIL {
            let cut = self.tail.len() - TAIL;
            self.tail.drain(..cut);
        }
    }

    fn stalled(&mut self, s: Stall) -> std::io::Error {
        self.stall = Some(s);
        std::io::Error::new(std::io::ErrorKind::TimedOut, s)
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Plain TCP (before STARTTLS, or security `none`) or TLS, watched.
pub struct MailStream {
    io: Io,
    link: Link,
}

impl std::fmt::Debug for MailStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.io {
            Io::Plain(_) => "plain",
            Io::Tls(_) => "tls",
        };
        write!(f, "MailStream({kind} {})", self.link.server)
    }
}

impl MailStream {
    pub fn plain(tcp: TcpStream, server: String, limits: Limits) -> MailStream {
        MailStream {
            io: Io::Plain(tcp),
            link: Link::new(server, limits),
        }
    }

    pub fn tls(tls: TlsStream<TcpStream>, server: String, limits: Limits) -> MailStream {
        MailStream {
            io: Io::Tls(Box::new(tls)),
            link: Link::new(server, limits),
        }
    }

    /// The TCP stream of a plain connection (for STARTTLS); None once TLS is up.
    pub fn into_plain(self) -> Option<TcpStream> {
        match self.io {
            Io::Plain(t) => Some(t),
            Io::Tls(_) => None,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.io, Io::Tls(_))
    }

    pub fn tcp(&self) -> &TcpStream {
        match &self.io {
            Io::Plain(t) => t,
            Io::Tls(t) => t.get_ref().0,
        }
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }

    /// Stops (true) or restarts (false) the watchdog: IDLE waits in silence and bounds itself.
    pub fn pause(&mut self, paused: bool) {
        self.link.watch.paused = paused;
        self.link.watch.restart();
    }

    /// Lets a caller change the limits for one long wait (e.g. LOGOUT's 5 s).
    pub fn set_limits(&mut self, limits: Limits) {
        self.link.watch.limits = limits;
        self.link.watch.restart();
    }
}

impl AsyncRead for MailStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        this.link.watch.resume();
        let before = buf.filled().len();
        let res = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        match res {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                trace_wire("S:", got, false);
                if let Some(t) = this.link.trace.as_mut() {
                    t.server_bytes(got);
                }
                this.link.bytes_in += got.len() as u64;
                this.link.keep_tail(got);
                match this.link.watch.progress(got.len()) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(s) => Poll::Ready(Err(this.link.stalled(s))),
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.link.watch.pending(cx) {
                Poll::Ready(Err(s)) => Poll::Ready(Err(this.link.stalled(s))),
                _ => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.link.watch.resume();
        let res = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        match res {
            Poll::Ready(Ok(n)) => {
                let secret = this.link.secret.load(std::sync::atomic::Ordering::SeqCst);
                trace_wire("C:", &buf[..n], secret);
                if let Some(t) = this.link.trace.as_mut() {
                    // A SASL exchange (the flag the signing-in code sets) is hidden whole.
                    t.secret_flag(secret);
                    t.client_bytes(&buf[..n]);
                }
                this.link.bytes_out += n as u64;
                // Something we send starts a new exchange: its answer gets a window of its own.
                if n > 0 && !this.link.watch.paused {
                    this.link.watch.restart();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.link.watch.pending(cx) {
                Poll::Ready(Err(s)) => Poll::Ready(Err(this.link.stalled(s))),
                _ => Poll::Pending,
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        this.link.watch.resume();
        let res = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        };
        match res {
            Poll::Pending => match this.link.watch.pending(cx) {
                Poll::Ready(Err(s)) => Poll::Ready(Err(this.link.stalled(s))),
                _ => Poll::Pending,
            },
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The redacted protocol trace (`-vvv` or `MAILROOM_LOG=mailroom::imap::wire=trace`). While
/// `secret` is on, a line the line redactor would pass (a bare SASL continuation, a piece of a
/// command split across writes) shows as `[REDACTED]`.
fn trace_wire(dir: &str, bytes: &[u8], secret: bool) {
    if !tracing::enabled!(target: "mailroom::imap::wire", tracing::Level::TRACE) || bytes.is_empty()
    {
        return;
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut shown = crate::logging::redact_protocol_line(line);
        if secret && shown == line {
            shown = "[REDACTED]".to_string();
        }
        tracing::trace!(target: "mailroom::imap::wire", "{dir} {}", crate::mail::sanitize::clean_line(&shown));
    }
}

/// TCP keepalive on a connection: a peer that vanished without a word (a host gone, a NAT
/// entry dropped) is noticed by the kernel within about `timeout` even while nothing is sent.
pub fn keepalive(tcp: &TcpStream, timeout: Duration) {
    use std::os::fd::AsRawFd;
    let fd = tcp.as_raw_fd();
    let idle = timeout.as_secs().clamp(1, 7200) as libc::c_int;
    let interval = (idle / 3).max(1);
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| {
        // SAFETY: setsockopt on a socket this process owns, with a pointer to a live c_int of
        // the size passed; a failure only leaves the kernel default in place.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, interval);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair(limits: Limits) -> (MailStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let c = TcpStream::connect(addr).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (MailStream::plain(c, addr.to_string(), limits), s)
    }

    fn limits(ms: u64, floor: u64) -> Limits {
        Limits {
            timeout: Duration::from_millis(ms),
            min_bytes_per_sec: floor,
        }
    }

    #[tokio::test]
    async fn silence_is_a_stall_after_the_timeout() {
        let (mut c, mut s) = pair(limits(300, 1024)).await;
        s.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(c.read(&mut buf).await.unwrap(), 5);
        let started = std::time::Instant::now();
        let e = c.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(c.link().stall.is_some());
        drop(s);
    }

    #[tokio::test]
    async fn a_trickle_is_too_slow_and_a_steady_flow_is_not() {
        let (mut c, mut s) = pair(limits(400, 1024)).await;
        let feeder = tokio::spawn(async move {
            for _ in 0..40 {
                if s.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut buf = [0u8; 16];
        let err = loop {
            match c.read(&mut buf).await {
                Ok(0) => panic!("eof"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        let stall = c.link().stall.unwrap();
        assert!(
            stall.bytes > 0 && stall.words().starts_with("too slow"),
            "{stall}"
        );
        feeder.abort();

        // 2 KB every 50 ms is ~40 KB/s: far above the floor, for longer than a window.
        let (mut c, mut s) = pair(limits(300, 1024)).await;
        let feeder = tokio::spawn(async move {
            for _ in 0..30 {
                s.write_all(&[b'y'; 2048]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut got = 0;
        let mut buf = vec![0u8; 4096];
        while got < 30 * 2048 {
            got += c.read(&mut buf).await.unwrap();
        }
        feeder.await.unwrap();
    }

    #[tokio::test]
    async fn a_burst_does_not_cover_for_a_trickle_after_it() {
        let (mut c, mut s) = pair(limits(400, 1024)).await;
        let feeder = tokio::spawn(async move {
            s.write_all(&[b'z'; 100_000]).await.unwrap();
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if s.write_all(b"z").await.is_err() {
                    return;
                }
            }
        });
        let mut buf = vec![0u8; 16384];
        let mut got = 0;
        while got < 100_000 {
            got += c.read(&mut buf).await.unwrap();
        }
        let trickle = std::time::Instant::now();
        let err = loop {
            if let Err(e) = c.read(&mut buf).await {
                break e;
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        // The last timeout's worth of waiting is judged, not a window the burst filled.
        assert!(
            trickle.elapsed() < Duration::from_millis(700),
            "{:?}",
            trickle.elapsed()
        );
        feeder.abort();
    }

    #[tokio::test]
    async fn time_between_exchanges_does_not_count_and_pause_turns_it_off() {
        let (mut c, mut s) = pair(limits(300, 1024)).await;
        s.write_all(b"a").await.unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(c.read(&mut buf).await.unwrap(), 1);
        // Nobody waits on the server here.
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.write_all(b"next\r\n").await.unwrap();
        s.write_all(b"b").await.unwrap();
        assert_eq!(c.read(&mut buf).await.unwrap(), 1);
        c.pause(true);
        let r = tokio::time::timeout(Duration::from_millis(700), c.read(&mut buf)).await;
        assert!(r.is_err(), "paused: only the caller's own bound applies");
    }
}
