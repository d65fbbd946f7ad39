//! The commands sync needs, spoken directly (see `exec.rs`): each reads its own responses up
//! to the tagged completion, so a NO/BAD is never swallowed, nothing is left behind in
//! async-imap's unsolicited channel, changes the server announces in passing are recorded, and
//! QRESYNC/VANISHED/CHANGEDSINCE work without library support.

use std::time::Duration;

use async_imap::imap_proto::{
    AttributeValue, MailboxDatum, Response, ResponseCode, StatusAttribute,
};

use super::append::quote;
use super::connect::ImapSession;
pub use super::exec::Unreadable;
use super::unsolicited::{clean_flags, flag_update};
use crate::error::{AppError, Result};

/// Runs `cmd`, hands every untagged response to `on`. NO/BAD becomes an error. Mailbox changes
/// among the responses are also recorded on the connection (see `unsolicited.rs`).
pub async fn exec(
    session: &mut ImapSession,
    what: &str,
    cmd: &str,
    mut on: impl FnMut(&Response<'_>) -> Result<()>,
) -> Result<()> {
    super::exec::run(session, what, cmd, |r| on(r).map(|()| false)).await
}

/// Server state of a selected folder.
#[derive(Debug, Clone, Default)]
pub struct Selected {
    pub exists: u32,
    pub uidvalidity: u32,
    pub uidnext: Option<u32>,
    pub highestmodseq: Option<u64>,
    /// VANISHED (EARLIER) UIDs reported by a QRESYNC select.
    pub vanished: Vec<u32>,
    /// Flag changes reported by a QRESYNC select.
    pub changed: Vec<FlagUpdate>,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlagUpdate {
    pub uid: u32,
    pub flags: Vec<String>,
    pub modseq: Option<u64>,
}

/// The SELECT (or EXAMINE) command, with CONDSTORE, or with QRESYNC parameters when known.
pub fn select_command(
    wire_name: &str,
    condstore: bool,
    qresync: Option<(u32, u64)>,
    examine: bool,
) -> String {
    let verb = if examine { "EXAMINE" } else { "SELECT" };
    let params = match (qresync, condstore) {
        (Some((uv, ms)), _) => format!(" (QRESYNC ({uv} {ms}))"),
        (None, true) => " (CONDSTORE)".to_string(),
        _ => String::new(),
    };
    format!("{verb} {}{params}", quote(wire_name))
}

/// Reads a SELECT's answer: the folder's state as of this SELECT.
#[derive(Default)]
pub struct SelectAnswer {
    sel: Selected,
    have_validity: bool,
}

impl SelectAnswer {
    /// Takes one untagged response of the answer (all of it belongs to the SELECT).
    pub fn take(&mut self, r: &Response<'_>) -> bool {
        let sel = &mut self.sel;
        match r {
            Response::MailboxData(MailboxDatum::Exists(n)) => sel.exists = *n,
            Response::Data { outcome, .. } => match &outcome.code {
                Some(ResponseCode::UidValidity(v)) => {
                    sel.uidvalidity = *v;
                    self.have_validity = true;
                }
                Some(ResponseCode::UidNext(v)) => sel.uidnext = Some(*v),
                Some(ResponseCode::HighestModSeq(v)) => sel.highestmodseq = Some(*v),
                Some(ResponseCode::ReadOnly) => sel.read_only = true,
                _ => {}
            },
            Response::Vanished { uids, .. } => {
                for r in uids {
                    sel.vanished.extend(r.clone());
                }
            }
            Response::Fetch(_, attrs) => {
                if let Some(u) = flag_update(attrs) {
                    sel.changed.push(u);
                }
            }
            _ => {}
        }
        true
    }

    /// The selected folder; the connection's record of announced changes starts over with it.
    pub fn finish(self, session: &mut ImapSession, wire_name: &str) -> Result<Selected> {
        super::unsolicited::reset(session, self.sel.exists);
        session.get_mut().link_mut().selected = Some(wire_name.to_string());
        if !self.have_validity {
            return Err(AppError::needs_user(
                format!("the server gave no UIDVALIDITY for {wire_name}"),
                "",
                "this server is not usable for sync; report it",
            )
            .with_code(crate::error::Code::ServerProtocol));
        }
        Ok(self.sel)
    }
}

/// SELECT (or EXAMINE) with CONDSTORE, or with QRESYNC parameters when known.
pub async fn select(
    session: &mut ImapSession,
    wire_name: &str,
    condstore: bool,
    qresync: Option<(u32, u64)>,
    examine: bool,
) -> Result<Selected> {
    let cmd = select_command(wire_name, condstore, qresync, examine);
    let mut answer = SelectAnswer::default();
    super::unsolicited::reset(session, 0);
    let verb = if examine { "EXAMINE" } else { "SELECT" };
    // A SELECT that fails leaves no folder selected.
    session.get_mut().link_mut().selected = None;
    super::exec::run(session, &format!("{verb} {wire_name}"), &cmd, |r| {
        Ok(answer.take(r))
    })
    .await?;
    answer.finish(session, wire_name)
}

/// One message's header fetch result.
#[derive(Debug, Clone)]
pub struct HeaderItem {
    pub uid: u32,
    pub flags: Vec<String>,
    pub size: u32,
    pub internal_date: Option<String>,
    pub modseq: Option<u64>,
    /// The header fields asked for; empty for mail that has none of them, None when the server
    /// answered NIL (it would not give this message's bytes).
    pub header: Option<Vec<u8>>,
}

/// The header item of a FETCH response that carries a body section; None for a FETCH that only
/// reports flags (the server announcing a change in passing).
fn header_item(attrs: &[AttributeValue<'_>]) -> Option<HeaderItem> {
    let mut it = HeaderItem {
        uid: 0,
        flags: vec![],
        size: 0,
        internal_date: None,
        modseq: None,
        header: None,
    };
    let mut has_section = false;
    for a in attrs {
        match a {
            AttributeValue::Uid(u) => it.uid = *u,
            AttributeValue::Flags(f) => it.flags = clean_flags(f),
            AttributeValue::Rfc822Size(s) => it.size = *s,
            AttributeValue::InternalDate(d) => it.internal_date = imap_date(d),
            AttributeValue::ModSeq(m) => it.modseq = Some(*m),
            AttributeValue::BodySection { data, .. } => {
                has_section = true;
                it.header = data.as_deref().map(<[u8]>::to_vec);
            }
            _ => {}
        }
    }
    (has_section && it.uid != 0).then_some(it)
}

/// `UID FETCH range (UID FLAGS RFC822.SIZE INTERNALDATE [MODSEQ] BODY.PEEK[HEADER.FIELDS …])`,
/// or with `BODY.PEEK[]` when the messages are wanted whole (`Whole::Yes`: full offline mode
/// takes header and body in one stream).
pub fn headers_command(range: &str, modseq: bool, whole: Whole) -> String {
    let extra = if modseq { " MODSEQ" } else { "" };
    match whole {
        Whole::No => format!(
            "UID FETCH {range} (UID FLAGS RFC822.SIZE INTERNALDATE{extra} BODY.PEEK[HEADER.FIELDS ({})])",
            crate::mail::parse::HEADER_FIELDS
        ),
        Whole::Yes => {
            format!("UID FETCH {range} (UID FLAGS RFC822.SIZE INTERNALDATE{extra} BODY.PEEK[])")
        }
    }
}

/// Whether a fetch of new mail takes the messages whole or only their header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whole {
    No,
    Yes,
}

/// Streams `UID FETCH range (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS …])`,
/// calling `on` per message as it arrives (never collecting the folder in memory). A FETCH
/// without the header section is a change announced in passing, recorded on the connection.
pub async fn fetch_headers(
    session: &mut ImapSession,
    range: &str,
    modseq: bool,
    whole: Whole,
    on: impl FnMut(HeaderItem) -> Result<()>,
) -> Result<()> {
    let tag = super::exec::send(
        session,
        "fetching headers",
        &headers_command(range, modseq, whole),
    )
    .await?;
    read_headers(session, tag, on).await
}

/// Reads the answer of a header fetch already sent (see [`fetch_headers`]).
pub async fn read_headers(
    session: &mut ImapSession,
    tag: super::exec::Tag,
    mut on: impl FnMut(HeaderItem) -> Result<()>,
) -> Result<()> {
    let mut out = super::exec::answers(session, "fetching headers", &[tag], |_, r| match r {
        Response::Fetch(_, attrs) => match header_item(attrs) {
            Some(it) => on(it).map(|()| true),
            None => Ok(false),
        },
        _ => Ok(false),
    })
    .await?;
    out.pop().unwrap_or(Ok(()))
}

/// `UID FETCH range (UID FLAGS)`, with CHANGEDSINCE (and VANISHED under QRESYNC) when given.
/// Returns the UIDs the server reports gone (VANISHED (EARLIER)); flag updates go to `on`.
pub async fn fetch_flags(
    session: &mut ImapSession,
    range: &str,
    changed_since: Option<u64>,
    vanished: bool,
    mut on: impl FnMut(FlagUpdate) -> Result<()>,
) -> Result<Vec<u32>> {
    let modifiers = match (changed_since, vanished) {
        (Some(m), true) => format!(" (CHANGEDSINCE {m} VANISHED)"),
        (Some(m), false) => format!(" (CHANGEDSINCE {m})"),
        _ => String::new(),
    };
    let cmd = format!("UID FETCH {range} (UID FLAGS){modifiers}");
    let mut gone = Vec::new();
    super::exec::run(session, "fetching flags", &cmd, |r| match r {
        Response::Fetch(_, attrs) => match flag_update(attrs) {
            Some(u) => on(u).map(|()| true),
            None => Ok(false),
        },
        Response::Vanished {
            earlier: true,
            uids,
        } => {
            for r in uids {
                gone.extend(r.clone());
            }
            Ok(true)
        }
        _ => Ok(false),
    })
    .await?;
    Ok(gone)
}

/// `UID SEARCH query` → UIDs.
pub async fn uid_search(session: &mut ImapSession, query: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    super::exec::run(session, "searching", &format!("UID SEARCH {query}"), |r| {
        if let Response::MailboxData(MailboxDatum::Search(v)) = r {
            out.extend_from_slice(v);
            return Ok(true);
        }
        Ok(false)
    })
    .await?;
    out.sort_unstable();
    Ok(out)
}

/// The highest UID in the selected folder (`UID FETCH * (UID)`, IMAP4rev1), for servers that
/// give no UIDNEXT; 0 when nothing came back. Only call it on a non-empty folder: some servers
/// refuse `*` in an empty one.
pub async fn max_uid(session: &mut ImapSession) -> Result<u32> {
    let mut max = 0u32;
    super::exec::run(
        session,
        "reading the highest UID",
        "UID FETCH * (UID)",
        |r| {
            let Response::Fetch(_, attrs) = r else {
                return Ok(false);
            };
            for a in attrs {
                if let AttributeValue::Uid(u) = a {
                    max = max.max(*u);
                }
            }
            Ok(!attrs.iter().any(|a| matches!(a, AttributeValue::Flags(_))))
        },
    )
    .await?;
    Ok(max)
}

/// Streams full RFC 5322 bytes (without setting \Seen) of the messages in `range`.
pub async fn fetch_bodies(
    session: &mut ImapSession,
    range: &str,
    on: impl FnMut(u32, Vec<u8>) -> Result<()>,
) -> Result<()> {
    fetch_sections(session, range, "BODY.PEEK[]", on).await
}

/// At most the first `max` bytes of one message (for keeping a message that cannot be read
/// otherwise); None when the server did not return it.
pub async fn fetch_prefix(
    session: &mut ImapSession,
    uid: u32,
    max: usize,
) -> Result<Option<Vec<u8>>> {
    let mut got = None;
    fetch_sections(
        session,
        &uid.to_string(),
        &format!("BODY.PEEK[]<0.{max}>"),
        |u, raw| {
            if u == uid {
                got = Some(raw);
            }
            Ok(())
        },
    )
    .await?;
    Ok(got)
}

async fn fetch_sections(
    session: &mut ImapSession,
    range: &str,
    section: &str,
    mut on: impl FnMut(u32, Vec<u8>) -> Result<()>,
) -> Result<()> {
    super::exec::run(
        session,
        "fetching messages",
        &format!("UID FETCH {range} (UID {section})"),
        |r| {
            let Response::Fetch(_, attrs) = r else {
                return Ok(false);
            };
            let mut uid = 0;
            let mut data = None;
            for a in attrs {
                match a {
                    AttributeValue::Uid(u) => uid = *u,
                    AttributeValue::BodySection { data: d, .. } => {
                        data = Some(d.as_deref().unwrap_or(b"").to_vec())
                    }
                    _ => {}
                }
            }
            match (uid != 0, data) {
                (true, Some(d)) => on(uid, d).map(|()| true),
                _ => Ok(false),
            }
        },
    )
    .await
}

/// Total RFC822.SIZE of the messages in `range` (for `--plan`), and how many there were; with
/// `since`, only of those whose INTERNALDATE is at or after it (a message without a readable
/// one counts, as sync keeps it too).
pub async fn total_size(
    session: &mut ImapSession,
    range: &str,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(u64, u64)> {
    let mut bytes = 0u64;
    let mut n = 0u64;
    let items = if since.is_some() {
        "UID RFC822.SIZE INTERNALDATE"
    } else {
        "UID RFC822.SIZE"
    };
    super::exec::run(
        session,
        "measuring sizes",
        &format!("UID FETCH {range} ({items})"),
        |r| {
            let Response::Fetch(_, attrs) = r else {
                return Ok(false);
            };
            let mut size = None;
            let mut in_scope = true;
            for a in attrs {
                match a {
                    AttributeValue::Rfc822Size(s) => size = Some(*s as u64),
                    AttributeValue::InternalDate(d) => {
                        let when =
                            chrono::DateTime::parse_from_str(d.trim(), "%d-%b-%Y %H:%M:%S %z");
                        in_scope = match (since, when) {
                            (Some(since), Ok(when)) => when >= since,
                            _ => true,
                        };
                    }
                    _ => {}
                }
            }
            match size {
                Some(size) => {
                    if in_scope {
                        bytes += size;
                        n += 1;
                    }
                    Ok(true)
                }
                None => Ok(false),
            }
        },
    )
    .await?;
    Ok((bytes, n))
}

/// STATUS (MESSAGES UNSEEN UIDNEXT) of a folder without selecting it.
pub async fn status(session: &mut ImapSession, wire_name: &str) -> Result<(u32, u32, Option<u32>)> {
    let mut out = (0, 0, None);
    super::exec::run(
        session,
        "STATUS",
        &format!("STATUS {} (MESSAGES UNSEEN UIDNEXT)", quote(wire_name)),
        |r| {
            let Response::MailboxData(MailboxDatum::Status { status, .. }) = r else {
                return Ok(false);
            };
            for s in status {
                match s {
                    StatusAttribute::Messages(n) => out.0 = *n,
                    StatusAttribute::Unseen(n) => out.1 = *n,
                    StatusAttribute::UidNext(n) => out.2 = Some(*n),
                    _ => {}
                }
            }
            Ok(true)
        },
    )
    .await?;
    Ok(out)
}

/// Sends a plain command and waits for its completion.
pub async fn simple(session: &mut ImapSession, what: &str, cmd: &str) -> Result<()> {
    exec(session, what, cmd, |_| Ok(())).await
}

/// IDLE until the server reports a change, `max` passes, or the connection fails; then DONE,
/// whose answer proves the server is still there. Returns true when something changed.
pub async fn idle(session: &mut ImapSession, max: Duration) -> Result<bool> {
    super::exec::idle(session, max).await
}

/// IMAP INTERNALDATE ("17-Jul-1996 02:44:25 -0700") → RFC 3339 UTC.
pub fn imap_date(s: &str) -> Option<String> {
    use chrono::format::{Item, Parsed, StrftimeItems, parse};
    // The format is read once, not for every message of a fetch.
    static ITEMS: std::sync::LazyLock<Vec<Item<'static>>> =
        std::sync::LazyLock::new(|| StrftimeItems::new("%d-%b-%Y %H:%M:%S %z").collect());
    let mut parsed = Parsed::new();
    parse(&mut parsed, s.trim(), ITEMS.iter()).ok()?;
    parsed.to_datetime().ok().map(|d| {
        d.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    })
}

/// Compresses sorted UIDs into an IMAP sequence set ("1:5,8,10:12").
pub fn uid_set(uids: &[u32]) -> String {
    uid_set_chunks(uids, usize::MAX)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// Like [`uid_set`], split into sets of at most about `max_chars` characters each, in UID order,
/// so a long scattered list (a search result) never exceeds a server's command-line limit
/// (Dovecot's default is 64 KiB; RFC 7162 suggests clients stay below 8 KiB).
pub fn uid_set_chunks(uids: &[u32], max_chars: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        let part = if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        };
        if !cur.is_empty() && cur.len() + 1 + part.len() > max_chars {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(',');
        }
        cur.push_str(&part);
        i += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_and_dates() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
        assert!(uid_set_chunks(&[], 10).is_empty());
        assert_eq!(uid_set_chunks(&[1, 2, 3, 5, 7, 8], 100), vec!["1:3,5,7:8"]);
        assert_eq!(uid_set_chunks(&[1, 2, 3, 5, 7, 8], 5), vec!["1:3,5", "7:8"]);
        // Scattered UIDs: every chunk stays within the limit, together they are the whole set.
        let odd: Vec<u32> = (1..20_000).filter(|u| u % 2 == 1).collect();
        let chunks = uid_set_chunks(&odd, 8000);
        assert!(chunks.len() > 1 && chunks.iter().all(|c| c.len() <= 8000));
        assert_eq!(chunks.join(","), uid_set(&odd));
        assert_eq!(
            imap_date(" 7-Jul-1996 02:44:25 -0700").as_deref(),
            Some("1996-07-07T09:44:25Z")
        );
        assert_eq!(
            imap_date("17-Dec-2026 23:59:59 +0100").as_deref(),
            Some("2026-12-17T22:59:59Z")
        );
        assert_eq!(imap_date("17-Foo-2026 23:59:59 +0100"), None);
        assert_eq!(imap_date(""), None);
    }
}
