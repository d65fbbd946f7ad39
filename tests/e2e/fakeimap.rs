//! A scriptable misbehaving IMAP server for the faults real servers do not show on demand: a
//! malformed FETCH item, changes announced in the middle of a FETCH (EXPUNGE, EXISTS, FLAGS),
//! BYE mid-FETCH, silence or a trickle after some messages, a temporary refusal at login or a
//! BYE greeting, and TLS with any certificate the test made. It keeps a small model of one
//! mailbox (INBOX; an empty Sent) so a test can compare the cache with what the server holds.
//! IMAP4rev1 with IDLE and UIDPLUS, no CONDSTORE: expunges arrive as EXPUNGE by sequence number.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Msg {
    pub uid: u32,
    pub flags: Vec<String>,
    pub raw: Vec<u8>,
    /// INTERNALDATE as the wire writes it.
    pub date: String,
}

/// A change the server makes (by another client) and announces in the middle of a FETCH.
#[derive(Clone, Debug)]
pub enum Change {
    Expunge(u32),
    Append(Vec<u8>),
    /// New flags, announced with the UID.
    Flags(u32, Vec<String>),
    /// New flags, announced without the UID (sequence number only).
    FlagsNoUid(u32, Vec<String>),
}

/// What the server does wrong.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// A greeting line instead of `* OK`, e.g. `* BYE Too many connections`.
    pub greeting: Option<String>,
    /// The answer to LOGIN after the tag, e.g. `NO [UNAVAILABLE] Temporary authentication failure`.
    pub login: Option<String>,
    /// The header FETCH response for this UID is malformed (every time).
    pub malformed_uid: Option<u32>,
    /// The full-body FETCH response for this UID is malformed (a literal that lies).
    pub malformed_body_uid: Option<u32>,
    /// The flags-only FETCH response for this UID is malformed.
    pub malformed_flags_uid: Option<u32>,
    /// After this many messages of the first header FETCH: make and announce these changes.
    pub changes_after: Option<(usize, Vec<Change>)>,
    /// After this many messages of the first header FETCH: `* BYE` with this reason, then close.
    pub bye_after: Option<(usize, String)>,
    /// After this many messages of a header FETCH: say nothing more.
    pub silence_after: Option<usize>,
    /// After this many messages of a header FETCH: the rest one byte at a time, at this pace.
    pub trickle_after: Option<(usize, Duration)>,
}

pub struct State {
    pub uidvalidity: u32,
    pub next_uid: u32,
    pub msgs: Vec<Msg>,
    pub script: Script,
    pub connections: usize,
    /// Every command received (tag stripped).
    pub commands: Vec<String>,
    changes_done: bool,
    bye_done: bool,
}

impl State {
    /// (uid, flags sorted) of every message, as the cache should hold them.
    pub fn view(&self) -> Vec<(u32, Vec<String>)> {
        self.msgs
            .iter()
            .map(|m| {
                let mut f = m.flags.clone();
                f.sort();
                (m.uid, f)
            })
            .collect()
    }

    fn seq_of(&self, uid: u32) -> Option<usize> {
        self.msgs.iter().position(|m| m.uid == uid).map(|i| i + 1)
    }

    pub fn append(&mut self, raw: Vec<u8>) -> u32 {
        let uid = self.next_uid;
        self.next_uid += 1;
        self.msgs.push(Msg {
            uid,
            flags: vec![],
            raw,
            date: "02-Nov-2026 10:00:00 +0000".into(),
        });
        uid
    }
}

pub type Tls = Arc<tokio_rustls::rustls::ServerConfig>;

pub struct FakeImap {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

/// A plain message with all the usual headers.
pub fn message(i: usize) -> Vec<u8> {
    format!(
        "Message-ID: <fake-{i}@example.test>\r\nFrom: Sender {i} <sender{i}@example.test>\r\nTo: rcpt@example.test\r\nSubject: fake message {i}\r\nDate: Mon, 2 Nov 2026 10:{:02}:{:02} +0000\r\n\r\nbody of message {i}\r\n",
        (i / 60) % 60,
        i % 60
    )
    .into_bytes()
}

impl FakeImap {
    /// A server holding `n` messages (UIDs 1..=n) that follows `script`.
    pub fn start(n: usize, script: Script) -> FakeImap {
        FakeImap::start_with(n, script, None)
    }

    pub fn start_with(n: usize, script: Script, tls: Option<Tls>) -> FakeImap {
        let mut state = State {
            uidvalidity: 777,
            next_uid: 1,
            msgs: vec![],
            script,
            connections: 0,
            commands: vec![],
            changes_done: false,
            bye_done: false,
        };
        for i in 1..=n {
            state.append(message(i));
        }
        let state = Arc::new(Mutex::new(state));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                let tls = tls.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_nodelay(true);
                    let stream: Box<dyn Io> = match tls {
                        None => Box::new(conn),
                        Some(cfg) => {
                            let Ok(sc) = tokio_rustls::rustls::ServerConnection::new(cfg) else {
                                return;
                            };
                            Box::new(tokio_rustls::rustls::StreamOwned::new(sc, conn))
                        }
                    };
                    Conn::new(stream, st).serve();
                });
            }
        });
        FakeImap { port, state }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

pub trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    st: Arc<Mutex<State>>,
}

/// Header fields a FETCH asks for, from `HEADER.FIELDS (A B C)`.
fn wanted_fields(cmd: &str) -> Vec<String> {
    let up = cmd.to_ascii_uppercase();
    let Some(at) = up.find("HEADER.FIELDS (") else {
        return vec![];
    };
    let rest = &up[at + 15..];
    let end = rest.find(')').unwrap_or(rest.len());
    rest[..end].split_whitespace().map(str::to_string).collect()
}

/// The lines of a message's header whose names are in `fields` (continuations kept), + CRLF.
fn header_fields(raw: &[u8], fields: &[String]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut out = String::new();
    let mut keep = false;
    for line in head.split("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            if keep {
                out.push_str(line);
                out.push_str("\r\n");
            }
            continue;
        }
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_uppercase();
        keep = line.contains(':') && fields.contains(&name);
        if keep {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// UIDs of a UID set (`1:5,7,9:*`) among `have`; `n:*` with nothing at or above n is the last.
fn uids_in(set: &str, have: &[u32]) -> Vec<u32> {
    let max = have.iter().copied().max().unwrap_or(0);
    let mut out = Vec::new();
    for part in set.split(',') {
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let num = |s: &str| {
            if s == "*" {
                max
            } else {
                s.parse().unwrap_or(0)
            }
        };
        let (mut lo, mut hi) = (num(a), num(b));
        if lo > hi {
            std::mem::swap(&mut lo, &mut hi);
        }
        out.extend(have.iter().copied().filter(|u| *u >= lo && *u <= hi));
    }
    out.sort_unstable();
    out.dedup();
    out
}

impl Conn {
    fn new(io: Box<dyn Io>, st: Arc<Mutex<State>>) -> Conn {
        Conn {
            io,
            buf: Vec::new(),
            st,
        }
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        self.io.write_all(bytes).is_ok() && self.io.flush().is_ok()
    }

    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return Some(line);
            }
            let mut chunk = [0u8; 4096];
            match self.io.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn serve(mut self) {
        let greeting = {
            let mut st = self.st.lock().unwrap();
            st.connections += 1;
            st.script.greeting.clone()
        };
        let g = greeting
            .unwrap_or_else(|| "* OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS] fake ready".into());
        if !self.send(format!("{g}\r\n").as_bytes()) || g.starts_with("* BYE") {
            return;
        }
        while let Some(line) = self.line() {
            let (tag, cmd) = line.split_once(' ').unwrap_or((&line, ""));
            let (tag, cmd) = (tag.to_string(), cmd.to_string());
            self.st.lock().unwrap().commands.push(cmd.clone());
            if !self.command(&tag, &cmd) {
                return;
            }
        }
    }

    /// Handles one command; false ends the connection.
    fn command(&mut self, tag: &str, cmd: &str) -> bool {
        let up = cmd.to_ascii_uppercase();
        let verb = up.split_whitespace().next().unwrap_or("").to_string();
        let reply = match verb.as_str() {
            "CAPABILITY" => "* CAPABILITY IMAP4rev1 IDLE UIDPLUS\r\n".to_string(),
            "LOGIN" => {
                let scripted = self.st.lock().unwrap().script.login.clone();
                if let Some(answer) = scripted {
                    return self.send(format!("{tag} {answer}\r\n").as_bytes());
                }
                String::new()
            }
            "LIST" => "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n".to_string(),
            "SELECT" | "EXAMINE" => self.select(&up),
            "STATUS" => {
                let st = self.st.lock().unwrap();
                format!("* STATUS INBOX (MESSAGES {} UNSEEN 0 UIDNEXT {})\r\n", st.msgs.len(), st.next_uid)
            }
            "UID" if up.starts_with("UID FETCH") => return self.fetch(tag, cmd),
            "UID" if up.starts_with("UID SEARCH") => self.search(&up),
            "IDLE" => {
                if !self.send(b"+ idling\r\n") {
                    return false;
                }
                match self.line() {
                    Some(_) => String::new(),
                    None => return false,
                }
            }
            "LOGOUT" => {
                self.send(format!("* BYE bye\r\n{tag} OK LOGOUT done\r\n").as_bytes());
                return false;
            }
            "NOOP" | "ENABLE" | "CHECK" | "UNSELECT" | "CLOSE" => String::new(),
            "UID" if up.starts_with("UID STORE") => String::new(),
            _ => return self.send(format!("{tag} BAD unknown command\r\n").as_bytes()),
        };
        self.send(format!("{reply}{tag} OK done\r\n").as_bytes())
    }

    fn select(&mut self, up: &str) -> String {
        let st = self.st.lock().unwrap();
        if up.contains("SENT") {
            return format!(
                "* 0 EXISTS\r\n* OK [UIDVALIDITY {}] ok\r\n* OK [UIDNEXT 1] ok\r\n",
                st.uidvalidity + 1
            );
        }
        format!(
            "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)\r\n* {} EXISTS\r\n* OK [UIDVALIDITY {}] ok\r\n* OK [UIDNEXT {}] ok\r\n",
            st.msgs.len(),
            st.uidvalidity,
            st.next_uid
        )
    }

    fn search(&mut self, up: &str) -> String {
        let st = self.st.lock().unwrap();
        let have: Vec<u32> = st.msgs.iter().map(|m| m.uid).collect();
        let uids = match up.split_whitespace().skip_while(|w| *w != "UID").nth(2) {
            Some(set) if up.contains("SEARCH UID ") => uids_in(set, &have),
            _ => have,
        };
        let list: Vec<String> = uids.iter().map(u32::to_string).collect();
        format!("* SEARCH {}\r\n", list.join(" "))
    }

    /// One FETCH response for `uid`, as the command asked.
    fn item(&self, st: &State, uid: u32, cmd: &str) -> Option<Vec<u8>> {
        let seq = st.seq_of(uid)?;
        let m = &st.msgs[seq - 1];
        let up = cmd.to_ascii_uppercase();
        let flags = m.flags.join(" ");
        let mut out = format!("* {seq} FETCH (UID {uid}");
        if up.contains("FLAGS") {
            out.push_str(&format!(" FLAGS ({flags})"));
        }
        let flags_only = !up.contains("BODY") && !up.contains("RFC822.SIZE");
        if flags_only && st.script.malformed_flags_uid == Some(uid) {
            out.push_str(" RFC822.SIZE 12abc");
        }
        let malformed = up.contains("HEADER.FIELDS") && st.script.malformed_uid == Some(uid);
        if up.contains("RFC822.SIZE") {
            let size = if malformed {
                "12abc".to_string()
            } else {
                m.raw.len().to_string()
            };
            out.push_str(&format!(" RFC822.SIZE {size}"));
        }
        if up.contains("INTERNALDATE") {
            out.push_str(&format!(" INTERNALDATE \"{}\"", m.date));
        }
        let mut bytes = out.into_bytes();
        if up.contains("HEADER.FIELDS") {
            let fields = wanted_fields(cmd);
            let hdr = header_fields(&m.raw, &fields);
            let head = format!(
                " BODY[HEADER.FIELDS ({})] {{{}}}\r\n",
                fields.join(" "),
                hdr.len()
            );
            bytes.extend_from_slice(head.as_bytes());
            bytes.extend_from_slice(&hdr);
        } else if let Some(at) = up.find("BODY.PEEK[]<0.") {
            let max: usize = up[at + 14..]
                .split('>')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            let part = &m.raw[..m.raw.len().min(max)];
            bytes.extend_from_slice(format!(" BODY[]<0> {{{}}}\r\n", part.len()).as_bytes());
            bytes.extend_from_slice(part);
        } else if up.contains("BODY.PEEK[]") {
            let lie = if st.script.malformed_body_uid == Some(uid) {
                2
            } else {
                0
            };
            bytes.extend_from_slice(format!(" BODY[] {{{}}}\r\n", m.raw.len() - lie).as_bytes());
            bytes.extend_from_slice(&m.raw);
        }
        bytes.extend_from_slice(b")\r\n");
        Some(bytes)
    }

    fn fetch(&mut self, tag: &str, cmd: &str) -> bool {
        let set = cmd.split_whitespace().nth(2).unwrap_or("").to_string();
        let headers = cmd.to_ascii_uppercase().contains("HEADER.FIELDS");
        let uids = {
            let st = self.st.lock().unwrap();
            let have: Vec<u32> = st.msgs.iter().map(|m| m.uid).collect();
            uids_in(&set, &have)
        };
        for (n, uid) in uids.iter().enumerate() {
            if headers && !self.fault_before(n) {
                return false;
            }
            let item = {
                let st = self.st.lock().unwrap();
                self.item(&st, *uid, cmd)
            };
            let Some(item) = item else { continue }; // expunged meanwhile
            let trickle = headers
                .then(|| self.st.lock().unwrap().script.trickle_after)
                .flatten();
            if let Some((after, pace)) = trickle.filter(|(a, _)| n >= *a) {
                let _ = after;
                for b in item {
                    if !self.send(&[b]) {
                        return false;
                    }
                    std::thread::sleep(pace);
                }
                continue;
            }
            if !self.send(&item) {
                return false;
            }
        }
        self.send(format!("{tag} OK UID FETCH done\r\n").as_bytes())
    }

    /// The scripted faults before the `n`-th message of a header FETCH; false ends the connection.
    fn fault_before(&mut self, n: usize) -> bool {
        let script = self.st.lock().unwrap().script.clone();
        if script.silence_after == Some(n) {
            // Say nothing more; the client must give up by itself.
            std::thread::sleep(Duration::from_secs(120));
            return false;
        }
        if let Some((after, reason)) = script.bye_after.filter(|(a, _)| *a == n) {
            let first = !std::mem::replace(&mut self.st.lock().unwrap().bye_done, true);
            if first {
                self.send(format!("* BYE {reason}\r\n").as_bytes());
                let _ = after;
                return false;
            }
        }
        if let Some((after, changes)) = script.changes_after.filter(|(a, _)| *a == n) {
            let first = !std::mem::replace(&mut self.st.lock().unwrap().changes_done, true);
            if first {
                let _ = after;
                let text = self.apply(&changes);
                return self.send(text.as_bytes());
            }
        }
        true
    }

    /// Makes the changes and returns their announcements.
    fn apply(&mut self, changes: &[Change]) -> String {
        let mut st = self.st.lock().unwrap();
        let mut out = String::new();
        for c in changes {
            match c {
                Change::Expunge(uid) => {
                    if let Some(seq) = st.seq_of(*uid) {
                        st.msgs.remove(seq - 1);
                        out.push_str(&format!("* {seq} EXPUNGE\r\n"));
                    }
                }
                Change::Append(raw) => {
                    st.append(raw.clone());
                    out.push_str(&format!("* {} EXISTS\r\n", st.msgs.len()));
                }
                Change::Flags(uid, flags) | Change::FlagsNoUid(uid, flags) => {
                    if let Some(seq) = st.seq_of(*uid) {
                        st.msgs[seq - 1].flags = flags.clone();
                        let f = flags.join(" ");
                        match c {
                            Change::Flags(..) => {
                                out.push_str(&format!("* {seq} FETCH (UID {uid} FLAGS ({f}))\r\n"))
                            }
                            _ => out.push_str(&format!("* {seq} FETCH (FLAGS ({f}))\r\n")),
                        }
                    }
                }
            }
        }
        out
    }
}

#[test]
fn the_fake_speaks_enough_imap() {
    assert_eq!(uids_in("2:*", &[1, 2, 3]), vec![2, 3]);
    assert_eq!(uids_in("9:*", &[1, 2, 3]), vec![3]);
    assert_eq!(uids_in("1,3:4", &[1, 2, 3, 4, 5]), vec![1, 3, 4]);
    let hdr = header_fields(
        b"From: a@x\r\nX-Other: y\r\nSubject: s\r\n  folded\r\n\r\nbody",
        &["FROM".into(), "SUBJECT".into()],
    );
    assert_eq!(hdr, b"From: a@x\r\nSubject: s\r\n  folded\r\n\r\n");
    // A session through the fake: greeting, LOGIN, SELECT, FETCH.
    let f = FakeImap::start(3, Script::default());
    let mut s = TcpStream::connect(("127.0.0.1", f.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"a LOGIN u p\r\nb SELECT INBOX\r\nc UID FETCH 1:* (UID FLAGS)\r\nd LOGOUT\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(
        text.contains("* 3 EXISTS") && text.contains("* 3 FETCH (UID 3 FLAGS ())"),
        "{text}"
    );
}
