//! The commands sync needs, spoken directly: each reads its own responses up to the tagged
//! completion, so a NO/BAD is never swallowed, nothing is left behind in async-imap's
//! unsolicited channel, and QRESYNC/VANISHED/CHANGEDSINCE work without library support.

use std::time::Duration;

use async_imap::imap_proto::{
    AttributeValue, MailboxDatum, Response, ResponseCode, Status, StatusAttribute,
};
use tokio::io::AsyncWriteExt;

use super::append::quote;
use super::connect::{ImapSession, protocol_error};
use crate::error::{AppError, Result};

/// How long one response may take before the connection counts as stalled.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

fn lost(what: &str, detail: impl Into<String>) -> AppError {
    AppError::transient(
        format!("{what}: the connection was lost"),
        detail,
        "mailroom retries by itself and resumes where it stopped",
    )
}

/// Runs `cmd`, hands every untagged response to `on`, and returns the tagged OK's response code
/// text (e.g. for COPYUID). NO/BAD becomes an error.
pub async fn exec(
    session: &mut ImapSession,
    what: &str,
    cmd: &str,
    mut on: impl FnMut(&Response<'_>) -> Result<()>,
) -> Result<()> {
    let tag = session
        .run_command(cmd)
        .await
        .map_err(|e| protocol_error(what, e))?;
    loop {
        let resp = match tokio::time::timeout(READ_TIMEOUT, session.read_response()).await {
            Err(_) => {
                return Err(lost(
                    what,
                    format!("no data for {}s", READ_TIMEOUT.as_secs()),
                ));
            }
            Ok(Err(e)) => return Err(lost(what, e.to_string())),
            Ok(Ok(None)) => return Err(lost(what, "closed by the server")),
            Ok(Ok(Some(r))) => r,
        };
        match resp.parsed() {
            Response::Done {
                tag: t,
                status,
                outcome,
            } if *t == tag => {
                return match status {
                    Status::Ok => Ok(()),
                    other => Err(AppError::transient(
                        format!("{what}: the server answered {other:?}"),
                        outcome.information.as_deref().unwrap_or("").to_string(),
                        "mailroom retries by itself; if it persists, see `mailroom log`",
                    )),
                };
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                return Err(lost(
                    what,
                    outcome.information.as_deref().unwrap_or("BYE").to_string(),
                ));
            }
            other => on(other)?,
        }
    }
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

#[derive(Debug, Clone)]
pub struct FlagUpdate {
    pub uid: u32,
    pub flags: Vec<String>,
    pub modseq: Option<u64>,
}

/// SELECT (or EXAMINE) with CONDSTORE, or with QRESYNC parameters when known.
pub async fn select(
    session: &mut ImapSession,
    wire_name: &str,
    condstore: bool,
    qresync: Option<(u32, u64)>,
    examine: bool,
) -> Result<Selected> {
    let verb = if examine { "EXAMINE" } else { "SELECT" };
    let params = match (qresync, condstore) {
        (Some((uv, ms)), _) => format!(" (QRESYNC ({uv} {ms}))"),
        (None, true) => " (CONDSTORE)".to_string(),
        _ => String::new(),
    };
    let mut sel = Selected::default();
    let mut have_validity = false;
    exec(
        session,
        &format!("{verb} {wire_name}"),
        &format!("{verb} {}{params}", quote(wire_name)),
        |r| {
            match r {
                Response::MailboxData(MailboxDatum::Exists(n)) => sel.exists = *n,
                Response::Data { outcome, .. } => match &outcome.code {
                    Some(ResponseCode::UidValidity(v)) => {
                        sel.uidvalidity = *v;
                        have_validity = true;
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
            Ok(())
        },
    )
    .await?;
    if !have_validity {
        return Err(AppError::needs_user(
            format!("the server gave no UIDVALIDITY for {wire_name}"),
            "",
            "this server is not usable for sync; report it",
        ));
    }
    Ok(sel)
}

fn flag_update(attrs: &[AttributeValue<'_>]) -> Option<FlagUpdate> {
    let mut uid = None;
    let mut flags = None;
    let mut modseq = None;
    for a in attrs {
        match a {
            AttributeValue::Uid(u) => uid = Some(*u),
            AttributeValue::Flags(f) => flags = Some(clean_flags(f)),
            AttributeValue::ModSeq(m) => modseq = Some(*m),
            _ => {}
        }
    }
    Some(FlagUpdate {
        uid: uid?,
        flags: flags?,
        modseq,
    })
}

fn clean_flags(f: &[std::borrow::Cow<'_, str>]) -> Vec<String> {
    // \Recent is per-session noise, not a property of the message.
    f.iter()
        .filter(|x| !x.eq_ignore_ascii_case("\\Recent"))
        .map(|x| x.to_string())
        .collect()
}

/// One message's header fetch result.
#[derive(Debug, Clone)]
pub struct HeaderItem {
    pub uid: u32,
    pub flags: Vec<String>,
    pub size: u32,
    pub internal_date: Option<String>,
    pub modseq: Option<u64>,
    /// None when the server sent no header section (a fetch failure for this message).
    pub header: Option<Vec<u8>>,
}

/// Streams `UID FETCH range (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS …])`,
/// calling `on` per message as it arrives (never collecting the folder in memory).
pub async fn fetch_headers(
    session: &mut ImapSession,
    range: &str,
    modseq: bool,
    mut on: impl FnMut(HeaderItem) -> Result<()>,
) -> Result<()> {
    let extra = if modseq { " MODSEQ" } else { "" };
    let cmd = format!(
        "UID FETCH {range} (UID FLAGS RFC822.SIZE INTERNALDATE{extra} BODY.PEEK[HEADER.FIELDS ({})])",
        crate::mail::parse::HEADER_FIELDS
    );
    exec(session, "fetching headers", &cmd, |r| {
        if let Response::Fetch(_, attrs) = r {
            let mut it = HeaderItem {
                uid: 0,
                flags: vec![],
                size: 0,
                internal_date: None,
                modseq: None,
                header: None,
            };
            for a in attrs {
                match a {
                    AttributeValue::Uid(u) => it.uid = *u,
                    AttributeValue::Flags(f) => it.flags = clean_flags(f),
                    AttributeValue::Rfc822Size(s) => it.size = *s,
                    AttributeValue::InternalDate(d) => it.internal_date = imap_date(d),
                    AttributeValue::ModSeq(m) => it.modseq = Some(*m),
                    AttributeValue::BodySection { data, .. } => {
                        it.header = Some(data.as_deref().unwrap_or(b"").to_vec())
                    }
                    _ => {}
                }
            }
            // A FETCH without UID is an unsolicited flag update for another message.
            if it.uid != 0 {
                on(it)?;
            }
        }
        Ok(())
    })
    .await
}

/// `UID FETCH range (UID FLAGS)`, with CHANGEDSINCE (and VANISHED under QRESYNC) when given.
/// Returns the flag updates and, with VANISHED, the UIDs the server reports gone.
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
    exec(session, "fetching flags", &cmd, |r| {
        match r {
            Response::Fetch(_, attrs) => {
                if let Some(u) = flag_update(attrs) {
                    on(u)?;
                }
            }
            Response::Vanished { uids, .. } => {
                for r in uids {
                    gone.extend(r.clone());
                }
            }
            _ => {}
        }
        Ok(())
    })
    .await?;
    Ok(gone)
}

/// `UID SEARCH query` → UIDs.
pub async fn uid_search(session: &mut ImapSession, query: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    exec(session, "searching", &format!("UID SEARCH {query}"), |r| {
        if let Response::MailboxData(MailboxDatum::Search(v)) = r {
            out.extend_from_slice(v);
        }
        Ok(())
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
    exec(
        session,
        "reading the highest UID",
        "UID FETCH * (UID)",
        |r| {
            if let Response::Fetch(_, attrs) = r {
                for a in attrs {
                    if let AttributeValue::Uid(u) = a {
                        max = max.max(*u);
                    }
                }
            }
            Ok(())
        },
    )
    .await?;
    Ok(max)
}

/// Streams full RFC 5322 bytes (without setting \Seen) of the messages in `range`.
pub async fn fetch_bodies(
    session: &mut ImapSession,
    range: &str,
    mut on: impl FnMut(u32, Vec<u8>) -> Result<()>,
) -> Result<()> {
    exec(
        session,
        "fetching messages",
        &format!("UID FETCH {range} (UID BODY.PEEK[])"),
        |r| {
            if let Response::Fetch(_, attrs) = r {
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
                if let (true, Some(d)) = (uid != 0, data) {
                    on(uid, d)?;
                }
            }
            Ok(())
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
    exec(
        session,
        "measuring sizes",
        &format!("UID FETCH {range} ({items})"),
        |r| {
            if let Response::Fetch(_, attrs) = r {
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
                if let (Some(size), true) = (size, in_scope) {
                    bytes += size;
                    n += 1;
                }
            }
            Ok(())
        },
    )
    .await?;
    Ok((bytes, n))
}

/// STATUS (MESSAGES UNSEEN UIDNEXT) of a folder without selecting it.
pub async fn status(session: &mut ImapSession, wire_name: &str) -> Result<(u32, u32, Option<u32>)> {
    let mut out = (0, 0, None);
    exec(
        session,
        "STATUS",
        &format!("STATUS {} (MESSAGES UNSEEN UIDNEXT)", quote(wire_name)),
        |r| {
            if let Response::MailboxData(MailboxDatum::Status { status, .. }) = r {
                for s in status {
                    match s {
                        StatusAttribute::Messages(n) => out.0 = *n,
                        StatusAttribute::Unseen(n) => out.1 = *n,
                        StatusAttribute::UidNext(n) => out.2 = Some(*n),
                        _ => {}
                    }
                }
            }
            Ok(())
        },
    )
    .await?;
    Ok(out)
}

/// Sends a plain command and waits for its completion.
pub async fn simple(session: &mut ImapSession, what: &str, cmd: &str) -> Result<()> {
    exec(session, what, cmd, |_| Ok(())).await
}

/// IDLE until the server reports a change, `max` passes, or the connection fails. Returns true
/// when something changed.
pub async fn idle(session: &mut ImapSession, max: Duration) -> Result<bool> {
    let tag = session
        .run_command("IDLE")
        .await
        .map_err(|e| protocol_error("IDLE", e))?;
    // Wait for the continuation.
    loop {
        let r = tokio::time::timeout(READ_TIMEOUT, session.read_response())
            .await
            .map_err(|_| lost("IDLE", "no continuation"))?
            .map_err(|e| lost("IDLE", e.to_string()))?
            .ok_or_else(|| lost("IDLE", "closed"))?;
        match r.parsed() {
            Response::Continue { .. } => break,
            Response::Done { tag: t, .. } if *t == tag => {
                return Err(AppError::transient(
                    "the server refused IDLE",
                    "",
                    "mailroom polls instead",
                ));
            }
            _ => {}
        }
    }
    let deadline = tokio::time::Instant::now() + max;
    let mut changed = false;
    loop {
        match tokio::time::timeout_at(deadline, session.read_response()).await {
            Err(_) => break,
            Ok(Err(e)) => return Err(lost("IDLE", e.to_string())),
            Ok(Ok(None)) => return Err(lost("IDLE", "closed")),
            Ok(Ok(Some(r))) => match r.parsed() {
                Response::MailboxData(MailboxDatum::Exists(_))
                | Response::Expunge(_)
                | Response::Vanished { .. }
                | Response::Fetch(..) => {
                    changed = true;
                    break;
                }
                Response::Data {
                    status: Status::Bye,
                    ..
                } => return Err(lost("IDLE", "BYE")),
                _ => {}
            },
        }
    }
    {
        let s = session.get_mut();
        s.write_all(b"DONE\r\n")
            .await
            .map_err(|e| lost("IDLE", e.to_string()))?;
        s.flush().await.map_err(|e| lost("IDLE", e.to_string()))?;
    }
    loop {
        let r = tokio::time::timeout(READ_TIMEOUT, session.read_response())
            .await
            .map_err(|_| lost("IDLE", "no answer to DONE"))?
            .map_err(|e| lost("IDLE", e.to_string()))?
            .ok_or_else(|| lost("IDLE", "closed"))?;
        match r.parsed() {
            Response::Done { tag: t, .. } if *t == tag => return Ok(changed),
            Response::MailboxData(MailboxDatum::Exists(_))
            | Response::Expunge(_)
            | Response::Vanished { .. }
            | Response::Fetch(..) => changed = true,
            _ => {}
        }
    }
}

/// IMAP INTERNALDATE ("17-Jul-1996 02:44:25 -0700") → RFC 3339 UTC.
pub fn imap_date(s: &str) -> Option<String> {
    chrono::DateTime::parse_from_str(s.trim(), "%d-%b-%Y %H:%M:%S %z")
        .ok()
        .map(|d| {
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
    }
}
