//! Running one command and reading its responses up to the tagged completion, so a NO/BAD is
//! never swallowed and nothing is left behind in async-imap's unsolicited channel. Responses
//! the command's reader does not claim as its own answer (EXISTS, EXPUNGE, VANISHED, FETCH of
//! flags that arrive in passing) go to the connection's record of announced changes. Waits are
//! bounded by the stream's watchdog; a failure names the server and says what happened:
//! stalled, too slow, closed, a BYE and its reason, or a response that cannot be read.

use std::time::Duration;

use async_imap::imap_proto::{MailboxDatum, Outcome, Response, Status};
use tokio::io::AsyncWriteExt;

use super::connect::{ImapSession, io_error, session_error};
use crate::error::{AppError, Result, short_detail};

/// A response the library could not parse. The stream is lost after it (the unparsed bytes
/// stay in the library's buffer), so the caller reconnects; what is known about it is kept on
/// the connection for the caller to quarantine the message it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    /// The UID the response names, when it can be told.
    pub uid: Option<u32>,
    /// The unparsed bytes (at most [`UNREADABLE_MAX`]).
    pub raw: Vec<u8>,
    /// A short description for people.
    pub reason: String,
}

/// The most of an unreadable response that is kept.
pub const UNREADABLE_MAX: usize = 1024 * 1024;

/// What async-imap says when a response does not parse: "{nom error:?} during parsing of {buffer:?}".
const PARSE_MARK: &str = " during parsing of ";

/// Reads the library's parse failure: the unparsed text, the UID it names, a short reason.
fn unreadable(text: &str) -> Option<Unreadable> {
    let at = text.find(PARSE_MARK)?;
    let quoted = text[at + PARSE_MARK.len()..].trim();
    let inner = quoted
        .strip_prefix('"')
        .map(|q| q.strip_suffix('"').unwrap_or(q))
        .unwrap_or(quoted);
    let mut raw = super::connect::unescape_debug(inner).into_bytes();
    raw.truncate(UNREADABLE_MAX);
    let first = String::from_utf8_lossy(&raw[..raw.len().min(4096)]).into_owned();
    let line = first.lines().next().unwrap_or("");
    let uid = line
        .find("UID ")
        .map(|i| &line[i + 4..])
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse().ok());
    let shown: String = crate::mail::sanitize::clean_line(line)
        .chars()
        .take(120)
        .collect();
    Some(Unreadable {
        uid,
        raw,
        reason: format!("the server's answer cannot be read: {shown}…"),
    })
}

/// A failed read, in words; a parse failure is kept on the connection as [`Unreadable`].
fn read_error(session: &mut ImapSession, what: &str, e: &std::io::Error) -> AppError {
    let server = session.get_ref().link().server.clone();
    let text = e.to_string();
    match unreadable(&text) {
        Some(u) => {
            tracing::debug!("unreadable response from {server} while {what}: {text}");
            let err = AppError::transient(
                format!("the server {server} sent a response that cannot be read, {what}"),
                short_detail(&u.reason),
                "if it repeats, report it with `mailroom log --level debug`",
            )
            .with_code(crate::error::Code::ServerProtocol);
            session.get_mut().link_mut().unreadable = Some(u);
            err
        }
        None => io_error(&server, what, e),
    }
}

/// The tagged completion: OK, or a NO/BAD in words. `[EXPUNGEISSUED]` (some of what was asked
/// for was expunged meanwhile) is no failure: the expunge is recorded and sync reconciles.
fn done(
    session: &mut ImapSession,
    what: &str,
    status: &Status,
    outcome: &Outcome<'_>,
) -> Result<()> {
    let text = crate::mail::sanitize::clean_line(outcome.information.as_deref().unwrap_or(""));
    match status {
        Status::Ok => Ok(()),
        _ if text.to_ascii_uppercase().starts_with("[EXPUNGEISSUED]") => {
            session.get_mut().link_mut().announced.expunge_issued = true;
            Ok(())
        }
        _ if crate::error::temporary_code(&text).is_some() => {
            let server = session.get_ref().link().server.clone();
            Err(crate::error::temporarily_unavailable(&server, what, &text))
        }
        other => Err(AppError::transient(
            format!("{what}: the server answered {other:?}"),
            short_detail(&text),
            "see the server's message; if it persists, see `mailroom log`",
        )
        .with_code(crate::error::Code::ServerRefused)),
    }
}

/// Runs `cmd`; `on` sees every untagged response and returns whether it is part of the
/// command's own answer. The rest is recorded as announced changes.
pub async fn run(
    session: &mut ImapSession,
    what: &str,
    cmd: &str,
    mut on: impl FnMut(&Response<'_>) -> Result<bool>,
) -> Result<()> {
    let tag = send(session, what, cmd).await?;
    let mut out = answers(session, what, &[tag], |_, r| on(r)).await?;
    out.pop().unwrap_or(Ok(()))
}

/// A command sent whose answer is still to be read ([`answers`]).
pub type Tag = async_imap::imap_proto::RequestId;

/// Sends `cmd` (tagged by the library) without waiting for its answer: several sent in a row
/// travel in one flight, and their answers are read in order with [`answers`].
pub async fn send(session: &mut ImapSession, what: &str, cmd: &str) -> Result<Tag> {
    session.get_mut().link_mut().stall = None;
    session
        .run_command(cmd)
        .await
        .map_err(|e| session_error(session, what, e))
}

/// Reads the answers of commands sent in one flight, each up to its tagged completion. A
/// server may run pipelined commands in parallel (Dovecot answers a LIST before the NOOP sent
/// ahead of it), so completions are matched by tag in whatever order they come, and an untagged
/// response is offered to `on(i, r)` with `i` the oldest command still open — a hint only:
/// handlers claim responses by their kind. What no handler claims is recorded as announced
/// changes. Each command's outcome is its own (a NO to one does not fail the others); a broken
/// connection, a BYE or a response that cannot be read fails them all.
pub async fn answers(
    session: &mut ImapSession,
    what: &str,
    tags: &[Tag],
    mut on: impl FnMut(usize, &Response<'_>) -> Result<bool>,
) -> Result<Vec<Result<()>>> {
    let mut out: Vec<Option<Result<()>>> = tags.iter().map(|_| None).collect();
    while let Some(open) = out.iter().position(Option::is_none) {
        let resp = match session.read_response().await {
            Ok(Some(r)) => r,
            Ok(None) => {
                let server = session.get_ref().link().server.clone();
                return Err(crate::error::connection_lost(
                    &server,
                    what,
                    "closed by the server",
                ));
            }
            Err(e) => return Err(read_error(session, what, &e)),
        };
        match resp.parsed() {
            Response::Done {
                tag: t,
                status,
                outcome,
            } => match tags.iter().position(|x| x == t) {
                Some(k) if out[k].is_none() => out[k] = Some(done(session, what, status, outcome)),
                _ => tracing::debug!("an answer to a command not sent here: {t:?}"),
            },
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                let server = session.get_ref().link().server.clone();
                let reason =
                    crate::mail::sanitize::clean_line(outcome.information.as_deref().unwrap_or(""));
                return Err(crate::error::temporarily_unavailable(
                    &server,
                    what,
                    &format!("the server said BYE: {reason}"),
                ));
            }
            other => {
                if !on(open, other)? {
                    session.get_mut().link_mut().announced.record(other);
                }
            }
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// A change IDLE reports: in the selected folder, or (under NOTIFY, RFC 5465) a STATUS or LIST
/// of another folder.
fn is_change(r: &Response<'_>) -> bool {
    matches!(
        r,
        Response::MailboxData(MailboxDatum::Exists(_))
            | Response::MailboxData(MailboxDatum::Status { .. })
            | Response::MailboxData(MailboxDatum::List(_))
            | Response::Expunge(_)
            | Response::Vanished { .. }
            | Response::Fetch(..)
    )
}

/// IDLE until the server reports a change or `max` passes, then DONE and its answer: the
/// answer doubles as the probe that the server is still there, bounded by the account's
/// timeout. Returns true when something changed.
pub async fn idle(session: &mut ImapSession, max: Duration) -> Result<bool> {
    let what = "waiting in IDLE";
    let tag = session
        .run_command("IDLE")
        .await
        .map_err(|e| session_error(session, what, e))?;
    loop {
        let r = match session.read_response().await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(closed(session, what)),
            Err(e) => return Err(read_error(session, what, &e)),
        };
        match r.parsed() {
            Response::Continue { .. } => break,
            Response::Done { tag: t, .. } if *t == tag => {
                return Err(AppError::transient(
                    "the server refused IDLE",
                    "",
                    "mailroom polls instead",
                )
                .with_code(crate::error::Code::ServerRefused));
            }
            _ => {}
        }
    }
    // IDLE is silence by design: the watchdog rests, the deadline bounds the wait.
    session.get_mut().pause(true);
    let changed = idle_wait(session, max).await;
    session.get_mut().pause(false);
    let mut changed = changed?;
    {
        let s = session.get_mut();
        let sent = async {
            s.write_all(b"DONE\r\n").await?;
            s.flush().await
        }
        .await;
        if let Err(e) = sent {
            let server = session.get_ref().link().server.clone();
            return Err(io_error(&server, "ending IDLE", &e));
        }
    }
    loop {
        let r = match session.read_response().await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(closed(session, "ending IDLE")),
            Err(e) => return Err(read_error(session, "ending IDLE", &e)),
        };
        match r.parsed() {
            Response::Done { tag: t, .. } if *t == tag => return Ok(changed),
            other => changed |= is_change(other),
        }
    }
}

async fn idle_wait(session: &mut ImapSession, max: Duration) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        match tokio::time::timeout_at(deadline, session.read_response()).await {
            Err(_) => return Ok(false),
            Ok(Ok(None)) => return Err(closed(session, "waiting in IDLE")),
            Ok(Err(e)) => return Err(read_error(session, "waiting in IDLE", &e)),
            Ok(Ok(Some(r))) => match r.parsed() {
                Response::Data {
                    status: Status::Bye,
                    outcome,
                } => {
                    let server = session.get_ref().link().server.clone();
                    return Err(crate::error::temporarily_unavailable(
                        &server,
                        "waiting in IDLE",
                        &format!(
                            "the server said BYE: {}",
                            crate::mail::sanitize::clean_line(
                                outcome.information.as_deref().unwrap_or("")
                            )
                        ),
                    ));
                }
                other if is_change(other) => return Ok(true),
                _ => {}
            },
        }
    }
}

fn closed(session: &ImapSession, what: &str) -> AppError {
    crate::error::connection_lost(
        &session.get_ref().link().server,
        what,
        "closed by the server",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_failure_is_read_for_its_uid_and_bytes() {
        let bad = "* 7 FETCH (UID 7 FLAGS (\\Seen) RFC822.SIZE abc)\r\n* 8 FETCH (UID 8)\r\n";
        let text = format!("Error(Error {{ input: [42, 32], code: Tag }}){PARSE_MARK}{bad:?}");
        let u = unreadable(&text).unwrap();
        assert_eq!(u.uid, Some(7));
        assert_eq!(u.raw, bad.as_bytes());
        assert!(
            u.reason.contains("RFC822.SIZE abc") && u.reason.len() < 200,
            "{}",
            u.reason
        );
        assert!(unreadable("connection reset").is_none());
    }
}
