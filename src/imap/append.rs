//! APPEND with the UIDPLUS result: async-imap's `append()` discards the APPENDUID response code,
//! so this speaks the command itself (literal, continuation, tagged completion).

use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{Response, ResponseCode, Status};
use tokio::io::AsyncWriteExt;

use super::connect::ImapSession;
use crate::error::{AppError, Result};

/// Appends `bytes` to `folder` (wire name). Returns (UIDVALIDITY, UID) when the server reports
/// APPENDUID; `None` means the caller must find the message (e.g. by Message-ID).
pub async fn append(
    session: &mut ImapSession,
    folder: &str,
    flags: &str,
    internal_date: Option<&str>,
    bytes: &[u8],
) -> Result<Option<(u32, u32)>> {
    let quoted = quote(folder);
    let date = internal_date
        .map(|d| format!(" \"{d}\""))
        .unwrap_or_default();
    let cmd = format!("APPEND {quoted} ({flags}){date} {{{}}}", bytes.len());
    let server = session.get_ref().link().server.clone();
    let io =
        |e: std::io::Error| super::connect::io_error(&server, "storing a message (APPEND)", &e);
    let closed = || {
        crate::error::connection_lost(
            &server,
            "storing a message (APPEND)",
            "closed by the server",
        )
    };
    let tag = session
        .run_command(&cmd)
        .await
        .map_err(|e| super::connect::session_error(session, "APPEND", e))?;
    // Wait for the continuation; a tagged NO here (e.g. no such folder, too big) ends it.
    loop {
        let resp = session
            .read_response()
            .await
            .map_err(io)?
            .ok_or_else(closed)?;
        match resp.parsed() {
            Response::Continue { .. } => break,
            Response::Done {
                tag: t,
                status,
                outcome,
            } if *t == tag => {
                return Err(AppError::needs_user(
                    format!("the server refused to store the message in {folder}"),
                    format!(
                        "{status:?} {}",
                        outcome.information.as_deref().unwrap_or("")
                    ),
                    "check that the folder exists and the mailbox is not over quota",
                )
                .with_code(crate::error::Code::ServerRefused));
            }
            _ => {}
        }
    }
    {
        let stream = session.get_mut();
        stream.write_all(bytes).await.map_err(io)?;
        stream.write_all(b"\r\n").await.map_err(io)?;
        stream.flush().await.map_err(io)?;
    }
    loop {
        let resp = session
            .read_response()
            .await
            .map_err(io)?
            .ok_or_else(closed)?;
        if let Response::Done {
            tag: t,
            status,
            outcome,
        } = resp.parsed()
        {
            if *t != tag {
                continue;
            }
            if *status != Status::Ok {
                return Err(AppError::needs_user(
                    format!("the server refused to store the message in {folder}"),
                    outcome.information.as_deref().unwrap_or("").to_string(),
                    "check that the folder exists and the mailbox is not over quota",
                )
                .with_code(crate::error::Code::ServerRefused));
            }
            if let Some(ResponseCode::AppendUid(validity, uids)) = &outcome.code
                && let Some(UidSetMember::Uid(uid)) = uids.first()
            {
                return Ok(Some((*validity, *uid)));
            }
            return Ok(None);
        }
    }
}

/// Quotes a mailbox name for the wire.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}
