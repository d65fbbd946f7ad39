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
    /// The folder selected on this connection (wire name), if any.
    pub selected: Option<String>,
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
            selected: None,
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

    /// Plain bytes the server sent, to the account's protocol trace.
    fn trace_server(&mut self, bytes: &[u8]) {
        if let Some(t) = self.trace.as_mut() {
            t.server_bytes(bytes);
        }
    }

    /// Plain bytes the client sent; a SASL exchange (the flag the signing-in code sets) is
    /// hidden whole.
    fn trace_client(&mut self, bytes: &[u8], secret: bool) {
        if let Some(t) = self.trace.as_mut() {
            t.secret_flag(secret);
            t.client_bytes(bytes);
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
    /// COMPRESS=DEFLATE, once the server agreed to it.
    deflate: Option<Box<Deflate>>,
    /// Commands written right behind the next one the library sends (pipelined after LOGIN),
    /// and how much of them is written.
    after: Vec<u8>,
    after_pos: usize,
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
            deflate: None,
            after: Vec::new(),
            after_pos: 0,
        }
    }

    pub fn tls(tls: TlsStream<TcpStream>, server: String, limits: Limits) -> MailStream {
        MailStream {
            io: Io::Tls(Box::new(tls)),
            link: Link::new(server, limits),
            deflate: None,
            after: Vec::new(),
            after_pos: 0,
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

impl MailStream {
    /// Reads what the server sent, as it came over the wire (compressed under COMPRESS),
    /// counted and judged by the watchdog.
    fn poll_read_wire(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.link.watch.resume();
        let before = buf.filled().len();
        let res = match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        match res {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                self.link.bytes_in += got.len() as u64;
                if self.deflate.is_none() {
                    trace_wire("S:", got, false);
                    self.link.trace_server(got);
                    self.link.keep_tail(got);
                }
                match self.link.watch.progress(got.len()) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(s) => Poll::Ready(Err(self.link.stalled(s))),
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.link.watch.pending(cx) {
                Poll::Ready(Err(s)) => Poll::Ready(Err(self.link.stalled(s))),
                _ => Poll::Pending,
            },
        }
    }

    fn poll_write_wire(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.link.watch.resume();
        let res = match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        match res {
            Poll::Ready(Ok(n)) => {
                if self.deflate.is_none() {
                    let secret = self.link.secret.load(std::sync::atomic::Ordering::SeqCst);
                    trace_wire("C:", &buf[..n], secret);
                    self.link.trace_client(&buf[..n], secret);
                }
                self.link.bytes_out += n as u64;
                // Something we send starts a new exchange: its answer gets a window of its own.
                if n > 0 && !self.link.watch.paused {
                    self.link.watch.restart();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.link.watch.pending(cx) {
                Poll::Ready(Err(s)) => Poll::Ready(Err(self.link.stalled(s))),
                _ => Poll::Pending,
            },
        }
    }

    fn poll_flush_wire(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.link.watch.resume();
        let res = match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        };
        match res {
            Poll::Pending => match self.link.watch.pending(cx) {
                Poll::Ready(Err(s)) => Poll::Ready(Err(self.link.stalled(s))),
                _ => Poll::Pending,
            },
            other => other,
        }
    }

    /// Writes out what the compressor produced; Ready once all of it is on the wire.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        loop {
            let Some(d) = self.deflate.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            if d.wpos >= d.wbuf.len() {
                d.wbuf.clear();
                d.wpos = 0;
                return Poll::Ready(Ok(()));
            }
            let chunk = std::mem::take(&mut d.wbuf);
            let from = d.wpos;
            let r = self.poll_write_wire(cx, &chunk[from..]);
            let Some(d) = self.deflate.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            d.wbuf = chunk;
            match r {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => d.wpos += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The compressed read path: inflate what arrived, read more when nothing comes out.
    fn poll_read_inflated(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let Some(d) = self.deflate.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let out = buf.initialize_unfilled();
            if out.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let (consumed, produced) = d.inflate(out)?;
            if produced > 0 {
                let got = &buf.initialize_unfilled()[..produced];
                trace_wire("S:", got, false);
                self.link.trace_server(got);
                self.link.keep_tail(got);
                buf.advance(produced);
                return Poll::Ready(Ok(()));
            }
            if consumed > 0 {
                continue;
            }
            if d.eof {
                return Poll::Ready(Ok(()));
            }
            let mut raw = std::mem::take(&mut d.rbuf);
            raw.drain(..d.rpos);
            d.rpos = 0;
            let have = raw.len();
            raw.resize(have + DEFLATE_READ, 0);
            let mut rb = ReadBuf::new(&mut raw[have..]);
            let r = self.poll_read_wire(cx, &mut rb);
            let n = rb.filled().len();
            raw.truncate(have + n);
            let Some(d) = self.deflate.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            d.rbuf = raw;
            match r {
                Poll::Ready(Ok(())) if n == 0 => d.eof = true,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Bytes read from the wire at a time under COMPRESS.
const DEFLATE_READ: usize = 32 * 1024;
/// Compressed output held back before a write waits for the wire.
const DEFLATE_HOLD: usize = 64 * 1024;

/// COMPRESS=DEFLATE (RFC 4978): raw deflate both ways, each command flushed with a sync flush
/// so the server sees it whole.
struct Deflate {
    inflate: flate2::Decompress,
    deflate: flate2::Compress,
    /// Compressed bytes read and not inflated yet (from `rpos`).
    rbuf: Vec<u8>,
    rpos: usize,
    /// Compressed bytes not written yet (from `wpos`).
    wbuf: Vec<u8>,
    wpos: usize,
    /// Written since the last sync flush.
    dirty: bool,
    eof: bool,
}

fn zlib_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("COMPRESS=DEFLATE: the server's stream cannot be inflated: {e}"),
    )
}

impl Deflate {
    fn new() -> Deflate {
        Deflate {
            inflate: flate2::Decompress::new(false),
            // Level 1: on a link slow enough to want compression the CPU is better spent
            // elsewhere; what we send is small anyway.
            deflate: flate2::Compress::new(flate2::Compression::fast(), false),
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            wpos: 0,
            dirty: false,
            eof: false,
        }
    }

    /// Inflates buffered input into `out`: (input consumed, output produced).
    fn inflate(&mut self, out: &mut [u8]) -> std::io::Result<(usize, usize)> {
        let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
        let status = self
            .inflate
            .decompress(&self.rbuf[self.rpos..], out, flate2::FlushDecompress::None)
            .map_err(zlib_error)?;
        let consumed = (self.inflate.total_in() - in0) as usize;
        let produced = (self.inflate.total_out() - out0) as usize;
        self.rpos += consumed;
        if status == flate2::Status::StreamEnd {
            self.eof = true;
        }
        Ok((consumed, produced))
    }

    /// Deflates `input` (all of it) into the output buffer; `sync` ends with a sync flush.
    fn deflate(&mut self, mut input: &[u8], sync: bool) -> std::io::Result<()> {
        let flush = if sync {
            flate2::FlushCompress::Sync
        } else {
            flate2::FlushCompress::None
        };
        loop {
            self.wbuf.reserve(input.len() / 2 + 1024);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut self.wbuf, flush)
                .map_err(zlib_error)?;
            let used = (self.deflate.total_in() - before) as usize;
            input = &input[used..];
            // Done when all input is in and the compressor had room to spare for its output.
            if input.is_empty() && self.wbuf.len() < self.wbuf.capacity() {
                return Ok(());
            }
        }
    }
}

impl MailStream {
    /// From now on both directions are deflated (after the server's OK to COMPRESS DEFLATE).
    pub fn start_deflate(&mut self) {
        self.deflate = Some(Box::new(Deflate::new()));
    }

    /// Whether COMPRESS=DEFLATE is active.
    pub fn is_deflated(&self) -> bool {
        self.deflate.is_some()
    }

    /// Writes `bytes` (whole commands) right behind the next command the library sends, in the
    /// same flight: how LOGIN takes the commands that follow it along (not under COMPRESS).
    pub fn send_after_next_command(&mut self, bytes: Vec<u8>) {
        self.after = bytes;
        self.after_pos = 0;
    }

    /// Writes out what waits to go behind the command just written.
    fn poll_after(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.after_pos < self.after.len() {
            let rest = std::mem::take(&mut self.after);
            let r = self.poll_write_wire(cx, &rest[self.after_pos..]);
            self.after = rest;
            match r {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => self.after_pos += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.after.clear();
        self.after_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for MailStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.deflate.is_some() {
            this.poll_read_inflated(cx, buf)
        } else {
            this.poll_read_wire(cx, buf)
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
        let Some(d) = this.deflate.as_ref() else {
            return this.poll_write_wire(cx, buf);
        };
        if d.wbuf.len() - d.wpos >= DEFLATE_HOLD {
            match this.poll_drain(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other.map(|r| r.map(|()| 0)),
            }
        }
        let secret = this.link.secret.load(std::sync::atomic::Ordering::SeqCst);
        trace_wire("C:", buf, secret);
        this.link.trace_client(buf, secret);
        let Some(d) = this.deflate.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        d.deflate(buf, false)?;
        d.dirty |= !buf.is_empty();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(d) = this.deflate.as_mut()
            && d.dirty
        {
            d.deflate(&[], true)?;
            d.dirty = false;
        }
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        match this.poll_after(cx) {
            Poll::Ready(Ok(())) => this.poll_flush_wire(cx),
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

    /// The server's side of COMPRESS=DEFLATE in a test: raw deflate with a sync flush.
    fn deflated(z: &mut flate2::Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 1024);
        z.compress_vec(data, &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        out
    }

    #[tokio::test]
    async fn deflate_both_ways_in_pieces() {
        let (mut c, mut s) = pair(limits(5000, 0)).await;
        c.start_deflate();
        assert!(c.is_deflated());
        // The server's answer arrives compressed, split at awkward places and in a trickle.
        let mut z = flate2::Compress::new(flate2::Compression::default(), false);
        let big: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("* {i} FETCH (UID {i})\r\n").into_bytes())
            .take(300_000)
            .collect();
        let mut wire = deflated(&mut z, b"* OK hello\r\n");
        wire.extend(deflated(&mut z, &big));
        let expected_len = 12 + big.len();
        let feeder = tokio::spawn(async move {
            for piece in wire.chunks(777) {
                s.write_all(piece).await.unwrap();
            }
            // What the client sends back, inflated.
            let mut inflate = flate2::Decompress::new(false);
            let mut got = Vec::new();
            let mut raw = vec![0u8; 4096];
            while !got.ends_with(b"a2 LOGOUT\r\n") {
                let n = s.read(&mut raw).await.unwrap();
                assert!(n > 0, "eof before the commands");
                let mut out = vec![0u8; 65536];
                let before = inflate.total_out();
                inflate
                    .decompress(&raw[..n], &mut out, flate2::FlushDecompress::Sync)
                    .unwrap();
                got.extend_from_slice(&out[..(inflate.total_out() - before) as usize]);
            }
            got
        });
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1000];
        while got.len() < expected_len {
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"* OK hello\r\n"));
        assert_eq!(&got[12..], &big[..]);
        c.write_all(b"a1 NOOP\r\n").await.unwrap();
        c.flush().await.unwrap();
        c.write_all(b"a2 LOGOUT\r\n").await.unwrap();
        c.flush().await.unwrap();
        assert_eq!(feeder.await.unwrap(), b"a1 NOOP\r\na2 LOGOUT\r\n");
        // The wire carried fewer bytes than the text.
        assert!(
            c.link().bytes_in < expected_len as u64 / 3,
            "{}",
            c.link().bytes_in
        );
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
