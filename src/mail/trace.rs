//! The protocol trace: what an account's IMAP and SMTP connections say, line by line, for the
//! console's debug log and `mailroom trace`. The protocol code owns one [`Tracer`] per
//! connection and tells it what it sends: credentials are hidden where the code knows it is
//! sending them (LOGIN's and AUTHENTICATE's arguments, SASL continuation lines — however the
//! bytes are split across writes), never by matching text afterwards. Message literals are
//! elided (`<literal 4711 bytes>`) unless the account's trace asks for them.
//!
//! Where the lines go is installed once per process ([`install`]); without a sink a tracer is
//! never made and the protocol code pays nothing.

use std::sync::OnceLock;

use super::sanitize::clean_line;

/// Who said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Client,
    Server,
}

impl Dir {
    pub fn as_str(self) -> &'static str {
        match self {
            Dir::Client => "C",
            Dir::Server => "S",
        }
    }
}

/// One line of the trace, ready to store: redacted and stripped of escapes.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceLine {
    pub account_id: String,
    /// `imap` or `smtp`.
    pub proto: &'static str,
    pub dir: Dir,
    /// `info` (commands, tagged answers) or `debug` (untagged data, literals).
    pub level: &'static str,
    pub text: String,
}

/// What an account's trace records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceOpts {
    /// Message literals in full (else elided to their size).
    pub literals: bool,
}

/// Where trace lines go (the store, in mailroom; a vector in tests).
pub trait TraceSink: Send + Sync {
    /// Whether `account_id` is traced now, and how. Asked per line, so it must be cheap.
    fn wants(&self, account_id: &str) -> Option<TraceOpts>;
    fn line(&self, line: TraceLine);
}

static SINK: OnceLock<Box<dyn TraceSink>> = OnceLock::new();

/// Installs the process's sink; false if one was installed already (the first stays).
pub fn install(sink: Box<dyn TraceSink>) -> bool {
    SINK.set(sink).is_ok()
}

fn sink() -> Option<&'static dyn TraceSink> {
    SINK.get().map(|b| b.as_ref())
}

/// What the next client command carries that must never be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hide {
    /// `TAG LOGIN user password`: tag and command stay.
    Login,
    /// `TAG AUTHENTICATE MECH [initial response]` and every continuation line after it: tag,
    /// command and mechanism stay.
    Sasl,
}

impl Hide {
    fn kept_words(self) -> usize {
        match self {
            Hide::Login => 2,
            Hide::Sasl => 3,
        }
    }
}

/// Longest line kept (the rest is cut and marked).
const LINE_MAX: usize = 1000;
/// Longest literal kept when literals are asked for.
const LITERAL_MAX: usize = 64 * 1024;

/// Bytes into lines and literals (`{N}` at a line's end announces N bytes that follow).
#[derive(Debug, Default)]
struct Framer {
    line: Vec<u8>,
    cut: bool,
    literal_left: u64,
    literal_len: u64,
    literal: Option<Vec<u8>>,
}

enum Frame {
    Line(Vec<u8>, bool),
    Literal(u64, Option<Vec<u8>>),
}

impl Framer {
    /// Feeds bytes; `keep`: whether lines are wanted (else only the framing is followed).
    fn feed(&mut self, mut b: &[u8], keep: Option<TraceOpts>, out: &mut Vec<Frame>) {
        while !b.is_empty() {
            if self.literal_left > 0 {
                let take = (self.literal_left as usize).min(b.len());
                if let Some(buf) = self.literal.as_mut() {
                    let room = LITERAL_MAX.saturating_sub(buf.len()).min(take);
                    buf.extend_from_slice(&b[..room]);
                }
                self.literal_left -= take as u64;
                b = &b[take..];
                if self.literal_left == 0 {
                    let body = self.literal.take();
                    if keep.is_some() {
                        out.push(Frame::Literal(self.literal_len, body));
                    }
                }
                continue;
            }
            let (part, rest, end) = match b.iter().position(|c| *c == b'\n') {
                Some(j) => (&b[..=j], &b[j + 1..], true),
                None => (b, &b[b.len()..], false),
            };
            b = rest;
            self.line.extend_from_slice(part);
            if self.line.len() > LINE_MAX {
                // Keep the head for the trace and the tail for the literal marker.
                let tail = self.line.split_off(self.line.len() - 32);
                self.line.truncate(LINE_MAX - 32);
                self.line.extend_from_slice(&tail);
                self.cut = true;
            }
            if !end {
                continue;
            }
            let cut = std::mem::take(&mut self.cut);
            if let Some(n) = literal_at_end(&self.line) {
                self.literal_left = n;
                self.literal_len = n;
                self.literal = keep.filter(|o| o.literals).map(|_| Vec::new());
            }
            if keep.is_some() {
                out.push(Frame::Line(std::mem::take(&mut self.line), cut));
            } else {
                // Untraced, every line of a fetch passes here: the buffer is reused.
                self.line.clear();
            }
        }
        if keep.is_none() && self.line.len() > 32 {
            // Not traced now: only the end matters (a `{N}` marker).
            let cut = self.line.len() - 32;
            self.line.drain(..cut);
        }
    }
}

/// `{123}` or `{123+}` (LITERAL+) at the end of a line.
fn literal_at_end(line: &[u8]) -> Option<u64> {
    let t = line.strip_suffix(b"\n").unwrap_or(line);
    let t = t.strip_suffix(b"\r").unwrap_or(t);
    let t = t.strip_suffix(b"}")?;
    let open = t.iter().rposition(|c| *c == b'{')?;
    let n = &t[open + 1..];
    let n = n.strip_suffix(b"+").unwrap_or(n);
    if n.is_empty() || n.len() > 12 || !n.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(n).ok()?.parse().ok()
}

/// The command line that carries credentials: its tag, command (and mechanism) only — and
/// nothing at all if it is not the command announced.
fn redacted_command(line: &[u8], h: Hide) -> String {
    let text = String::from_utf8_lossy(line);
    let words: Vec<&str> = text.split_whitespace().take(h.kept_words()).collect();
    let command = match h {
        Hide::Login => "LOGIN",
        Hide::Sasl => "AUTHENTICATE",
    };
    let plain = |w: &&str| {
        w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if words.len() >= 2 && words[1].eq_ignore_ascii_case(command) && words.iter().all(plain) {
        format!("{} <redacted>", clean_line(&words.join(" ")))
    } else {
        "<redacted>".to_string()
    }
}

/// One connection's trace.
#[derive(Debug)]
pub struct Tracer {
    account_id: String,
    proto: &'static str,
    client: Framer,
    server: Framer,
    hide: Option<Hide>,
    /// Whether the hidden command's own line went out already (then every client line is
    /// a continuation, hidden whole).
    hid_command: bool,
    /// The hiding came from the signing-in code's secret flag (and ends with it).
    by_flag: bool,
    /// LOGIN's line announced a literal: its arguments go on after it.
    login_open: bool,
}

impl Tracer {
    /// A tracer for one connection of `account_id`; None when this process traces nothing.
    pub fn new(account_id: &str, proto: &'static str) -> Option<Tracer> {
        sink()?;
        Some(Tracer {
            account_id: account_id.to_string(),
            proto,
            client: Framer::default(),
            server: Framer::default(),
            hide: None,
            hid_command: false,
            by_flag: false,
            login_open: false,
        })
    }

    /// The next client command carries credentials: hide them (until [`Tracer::reveal`]).
    pub fn hide(&mut self, what: Hide) {
        self.hide = Some(what);
        self.hid_command = false;
    }

    /// The exchange that carried credentials is over.
    pub fn reveal(&mut self) {
        self.hide = None;
        self.by_flag = false;
    }

    /// The signing-in code's "a secret goes out now" flag (a SASL exchange, e.g. OAuth2's
    /// AUTHENTICATE): while it is up everything the client sends is hidden as SASL.
    pub fn secret_flag(&mut self, up: bool) {
        match (up, self.hide.is_some(), self.by_flag) {
            (true, false, _) => {
                self.hide(Hide::Sasl);
                self.by_flag = true;
            }
            (false, true, true) => self.reveal(),
            _ => {}
        }
    }

    fn wants(&self) -> Option<TraceOpts> {
        sink().and_then(|s| s.wants(&self.account_id))
    }

    /// Bytes the client wrote.
    pub fn client_bytes(&mut self, b: &[u8]) {
        let keep = self.wants();
        let mut frames = Vec::new();
        self.client.feed(b, keep, &mut frames);
        if keep.is_none() && self.hide.is_some() && b.contains(&b'\n') {
            // The command went out untraced: what follows is continuation, hidden whole.
            self.hid_command = true;
        }
        for f in frames {
            let text = match (f, self.hide) {
                (Frame::Line(l, _), Some(h)) if !self.hid_command => {
                    self.hid_command = true;
                    self.login_open = literal_at_end(&l).is_some();
                    redacted_command(&l, h)
                }
                // LOGIN has no continuation: once its arguments are out, what the client
                // pipelines after it (ENABLE, SELECT…) is shown as any command.
                (f @ Frame::Line(..), Some(Hide::Login)) if !self.login_open => self.text(f, keep),
                (Frame::Line(l, _), Some(Hide::Login)) => {
                    self.login_open = literal_at_end(&l).is_some();
                    "<redacted>".to_string()
                }
                (_, Some(_)) => "<redacted>".to_string(),
                (f, None) => self.text(f, keep),
            };
            self.emit(Dir::Client, "info", text);
        }
    }

    /// Bytes the server sent.
    pub fn server_bytes(&mut self, b: &[u8]) {
        let keep = self.wants();
        let mut frames = Vec::new();
        self.server.feed(b, keep, &mut frames);
        for f in frames {
            let level = match &f {
                Frame::Line(l, _) if l.starts_with(b"* ") => "debug",
                Frame::Literal(..) => "debug",
                _ => "info",
            };
            let text = self.text(f, keep);
            self.emit(Dir::Server, level, text);
        }
    }

    /// A whole line, from protocol code that speaks in commands (SMTP): written as given, so
    /// the caller leaves credentials out.
    pub fn note(&self, dir: Dir, text: &str) {
        if self.wants().is_some() {
            self.emit(dir, "info", clean_line(text));
        }
    }

    fn text(&self, f: Frame, keep: Option<TraceOpts>) -> String {
        match f {
            Frame::Line(l, cut) => {
                let mut t = clean_line(String::from_utf8_lossy(&l).trim_end());
                if cut {
                    t.push_str(" …(cut)");
                }
                t
            }
            Frame::Literal(n, Some(body)) if keep.is_some_and(|o| o.literals) => {
                let text = String::from_utf8_lossy(&body);
                let mut t = format!("<literal {n} bytes>");
                for l in text.lines().take(400) {
                    t.push_str(" ⏎ ");
                    t.push_str(&clean_line(l));
                }
                t
            }
            Frame::Literal(n, _) => format!("<literal {n} bytes elided>"),
        }
    }

    fn emit(&self, dir: Dir, level: &'static str, text: String) {
        if text.trim().is_empty() {
            return; // the CRLF that ends a literal
        }
        if let Some(s) = sink() {
            s.line(TraceLine {
                account_id: self.account_id.clone(),
                proto: self.proto,
                dir,
                level,
                text,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]], opts: Option<TraceOpts>) -> Vec<String> {
        let mut f = Framer::default();
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, opts, &mut out);
        }
        out.into_iter()
            .map(|fr| match fr {
                Frame::Line(l, _) => String::from_utf8_lossy(&l).trim_end().to_string(),
                Frame::Literal(n, b) => format!("<{n}:{}>", b.map(|b| b.len()).unwrap_or(0)),
            })
            .collect()
    }

    #[test]
    fn literals_are_framed_across_writes_and_only_kept_when_asked() {
        let on = Some(TraceOpts::default());
        let got = frames(
            &[
                b"* 1 FETCH (BODY[] {1",
                b"1}\r\nhello",
                b" world)\r\nA1 OK done\r\n",
            ],
            on,
        );
        assert_eq!(got, ["* 1 FETCH (BODY[] {11}", "<11:0>", ")", "A1 OK done"]);
        let lit = Some(TraceOpts { literals: true });
        let got = frames(&[b"X {5+}\r\nab", b"cde\r\n"], lit);
        assert_eq!(got, ["X {5+}", "<5:5>", ""]);
        // Not traced: nothing comes out, but the framing is followed (no literal as lines).
        let mut f = Framer::default();
        let mut out = Vec::new();
        f.feed(
            b"* 1 FETCH (BODY[] {20}\r\nA1 LOGIN fake line\r\n",
            None,
            &mut out,
        );
        assert!(out.is_empty());
        f.feed(b")\r\nA2 OK\r\n", on, &mut out);
        assert_eq!(
            out.len(),
            2,
            "the literal's bytes were never taken for lines"
        );
    }

    /// The lib's tests install this sink: it records into a vector.
    static LINES: std::sync::Mutex<Vec<TraceLine>> = std::sync::Mutex::new(Vec::new());
    struct VecSink;
    impl TraceSink for VecSink {
        fn wants(&self, account_id: &str) -> Option<TraceOpts> {
            account_id
                .starts_with("traced")
                .then_some(TraceOpts::default())
        }
        fn line(&self, line: TraceLine) {
            if let Ok(mut v) = LINES.lock() {
                v.push(line);
            }
        }
    }

    fn traced(account: &str) -> Vec<String> {
        let v = LINES.lock().map(|v| v.clone()).unwrap_or_default();
        v.into_iter()
            .filter(|l| l.account_id == account)
            .map(|l| format!("{}: {}", l.dir.as_str(), l.text))
            .collect()
    }

    #[test]
    fn credentials_are_hidden_where_they_are_sent_however_the_writes_split() {
        install(Box::new(VecSink));
        let mut t = Tracer::new("traced-login", "imap").unwrap();
        t.client_bytes(b"A0 CAPABILITY\r\n");
        t.hide(Hide::Login);
        for part in [&b"A1 LO"[..], b"GIN \"alice\" \"hun", b"ter2\"\r", b"\n"] {
            t.client_bytes(part);
        }
        t.server_bytes(b"A1 OK Logged in\r\n");
        t.reveal();
        t.client_bytes(b"A2 SELECT INBOX\r\n");
        let mut t = Tracer::new("traced-sasl", "imap").unwrap();
        t.hide(Hide::Sasl);
        t.client_bytes(b"A1 AUTHENTICATE PLAIN\r\n");
        t.server_bytes(b"+ \r\n");
        t.client_bytes(b"AGFsaWNlAGh1bnRl");
        t.client_bytes(b"cjI=\r\n");
        t.server_bytes(b"A1 OK\r\n");
        t.reveal();
        let login = traced("traced-login");
        assert_eq!(
            login,
            [
                "C: A0 CAPABILITY",
                "C: A1 LOGIN <redacted>",
                "S: A1 OK Logged in",
                "C: A2 SELECT INBOX"
            ]
        );
        let sasl = traced("traced-sasl");
        assert_eq!(
            sasl,
            [
                "C: A1 AUTHENTICATE PLAIN <redacted>",
                "S: +",
                "C: <redacted>",
                "S: A1 OK"
            ]
        );
        let all = format!("{login:?}{sasl:?}");
        assert!(!all.contains("hunter2") && !all.contains("aHVudGVy") && !all.contains("cjI="));
    }

    /// A pipelined login: what follows LOGIN in the same write (or after its literals) is
    /// shown; only LOGIN's arguments are hidden, also when they are sent as literals.
    #[test]
    fn commands_pipelined_after_login_are_shown_and_only_its_arguments_hidden() {
        install(Box::new(VecSink));
        let mut t = Tracer::new("traced-pipelined", "imap").unwrap();
        t.hide(Hide::Login);
        t.client_bytes(b"A1 LOGIN \"alice\" \"hunter2\"\r\nA2 ENABLE QRESYNC\r\nA3 SEL");
        t.client_bytes(b"ECT INBOX\r\n");
        t.server_bytes(b"A1 OK\r\nA2 OK\r\nA3 OK\r\n");
        t.reveal();
        let mut t = Tracer::new("traced-literal-login", "imap").unwrap();
        t.hide(Hide::Login);
        t.client_bytes(b"A1 LOGIN {5}\r\n");
        t.client_bytes(b"alice {8+}\r\nhunter2\"");
        t.client_bytes(b"\r\nA2 LIST \"\" *\r\n");
        t.reveal();
        assert_eq!(
            traced("traced-pipelined"),
            [
                "C: A1 LOGIN <redacted>",
                "C: A2 ENABLE QRESYNC",
                "C: A3 SELECT INBOX",
                "S: A1 OK",
                "S: A2 OK",
                "S: A3 OK"
            ]
        );
        let lit = traced("traced-literal-login");
        assert_eq!(
            lit.first().map(String::as_str),
            Some("C: A1 LOGIN <redacted>")
        );
        assert_eq!(lit.last().map(String::as_str), Some("C: A2 LIST \"\" *"));
        let all = format!("{lit:?}{:?}", traced("traced-pipelined"));
        assert!(!all.contains("hunter2") && !all.contains("alice"), "{all}");
    }

    #[test]
    fn the_signing_in_codes_secret_flag_hides_a_whole_sasl_exchange() {
        install(Box::new(VecSink));
        let mut t = Tracer::new("traced-flag", "imap").unwrap();
        t.secret_flag(true);
        t.client_bytes(b"A1 AUTHENTICATE XOAUTH2 dXNlcj1h");
        t.client_bytes(b"bGljZQFhdXRoPUJlYXJlciB0b2tlbgEB\r\n");
        t.server_bytes(b"A1 OK\r\n");
        t.secret_flag(false);
        t.client_bytes(b"A2 LIST \"\" *\r\n");
        assert_eq!(
            traced("traced-flag"),
            [
                "C: A1 AUTHENTICATE XOAUTH2 <redacted>",
                "S: A1 OK",
                "C: A2 LIST \"\" *"
            ]
        );
    }

    #[test]
    fn a_literal_marker_is_only_braces_and_digits() {
        assert_eq!(literal_at_end(b"A {12}\r\n"), Some(12));
        assert_eq!(literal_at_end(b"A {12+}\r\n"), Some(12));
        assert_eq!(literal_at_end(b"A {x}\r\n"), None);
        assert_eq!(literal_at_end(b"A OK\r\n"), None);
    }
}
