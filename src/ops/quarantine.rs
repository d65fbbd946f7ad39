//! Messages that failed to parse or fetch: list, retry (fetch the header again and store it if
//! it parses now), skip, save the kept bytes as .eml.
//!
//! Only the quarantine of accounts this operator sees is listed; naming an item of another
//! account reads like a missing id. Retry and skip act on mail (`Need::Act`), save reads it.

use std::path::Path;

use serde_json::json;

use super::Ctx;
use super::access::{self, Need};
use crate::account::Account;
use crate::error::{AppError, Result};
use crate::imap::fetch;
use crate::model::Role;
use crate::store::NewMessage;

pub use crate::store::{QuarantineRow, QuarantineState};

/// Every quarantined message of the accounts this operator sees, oldest first.
pub fn list(cx: &Ctx) -> Result<Vec<QuarantineRow>> {
    let visible = access::visible_account_ids(cx, &*cx.config()?);
    cx.store()?.quarantine_list(&visible)
}

/// A page of them, newest first, and how many there are (the console's list).
pub fn page(cx: &Ctx, offset: i64, limit: i64) -> Result<(i64, Vec<QuarantineRow>)> {
    let visible = access::visible_account_ids(cx, &*cx.config()?);
    let store = cx.store()?;
    Ok((
        store.quarantine_total(&visible)?,
        store.quarantine_recent(&visible, offset, limit)?,
    ))
}

/// Sets the message aside; it stays listed as skipped.
pub fn skip(cx: &Ctx, id: i64) -> Result<()> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (row, _) = access::quarantine_item(cx, &config, &store, id, Need::Act)?;
    store.quarantine_set_state(id, QuarantineState::Skipped)?;
    store.audit(
        &cx.operator,
        "quarantine_skip",
        Some(&row.account_id),
        Some(&id.to_string()),
        &json!({}),
    )?;
    Ok(())
}

/// Writes the kept bytes to a new file (0600; an existing path is refused, never overwritten).
/// Returns how many bytes were written.
pub fn save(cx: &Ctx, id: i64, path: &Path) -> Result<usize> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (_, raw) = access::quarantine_item(cx, &config, &store, id, Need::Read)?;
    if path.exists() {
        return Err(AppError::usage(
            format!("{} already exists", path.display()),
            "choose another path (nothing is overwritten)",
        )
        .with_code(crate::error::Code::Conflict));
    }
    crate::config::write_atomic(path, &raw, 0o600)?;
    Ok(raw.len())
}

/// What a retry found.
#[derive(Debug, Clone)]
pub struct Retried {
    pub id: i64,
    /// The message parsed this time and is stored now.
    pub stored: bool,
    /// Why it was quarantined.
    pub error: String,
}

/// Fetches the message's header again and stores it if it parses now; it stays quarantined
/// (open) otherwise.
pub async fn retry(cx: &Ctx, id: i64) -> Result<Retried> {
    let target = cx.blocking(move |cx| retry_target(cx, id)).await?;
    let error = target.row.error.clone();
    let fetched = match (&target.folder, &target.password) {
        (Some(folder), Some(pw)) => fetch_again(&target, folder, pw).await?,
        _ => None,
    };
    let stored = fetched.is_some();
    cx.blocking(move |cx| record_retry(cx, &target, fetched))
        .await?;
    Ok(Retried { id, stored, error })
}

/// The quarantined message, its account and password, and where it was on the server.
struct RetryTarget {
    row: QuarantineRow,
    account: Account,
    /// (id, wire name, role) of its folder, when it and its UID are known, and the password to
    /// reach it.
    folder: Option<(i64, String, Option<Role>)>,
    password: Option<crate::secret::Credential>,
}

fn retry_target(cx: &Ctx, id: i64) -> Result<RetryTarget> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (row, _) = access::quarantine_item(cx, &config, &store, id, Need::Act)?;
    let (name, _) = config.account_by_id(&row.account_id).ok_or_else(|| {
        AppError::usage("its account is gone", "skip it instead")
            .with_code(crate::error::Code::NotFound)
    })?;
    let account = Account::from_config(&config, name)?;
    let folder = match (row.folder_id, row.uidvalidity, row.uid) {
        (Some(fid), Some(_), Some(_)) => {
            let f = store.folder(fid)?.ok_or_else(|| {
                AppError::usage("its folder is gone", "skip it instead")
                    .with_code(crate::error::Code::NotFound)
            })?;
            Some((fid, f.wire_name, f.role))
        }
        _ => None,
    };
    let password = match folder {
        Some(_) => Some(account.credential(&store, &cx.vault()?)?),
        None => None,
    };
    Ok(RetryTarget {
        row,
        account,
        folder,
        password,
    })
}

/// The message as it reads now, if its folder still has the same UIDVALIDITY and it parses.
async fn fetch_again(
    t: &RetryTarget,
    (_, wire_name, role): &(i64, String, Option<Role>),
    password: &crate::secret::Credential,
) -> Result<Option<NewMessage>> {
    let (Some(uv), Some(uid)) = (t.row.uidvalidity, t.row.uid) else {
        return Ok(None);
    };
    let mut ss = crate::sync::open_session(&t.account, password).await?;
    let sel = fetch::select(&mut ss.session, wire_name, false, None, true).await?;
    if sel.uidvalidity != uv {
        return Ok(None);
    }
    let mut item = None;
    fetch::fetch_headers(
        &mut ss.session,
        &uid.to_string(),
        false,
        fetch::Whole::No,
        |it| {
            if it.uid == uid {
                item = Some(it);
            }
            Ok(())
        },
    )
    .await?;
    ss.logout().await;
    let Some(it) = item else { return Ok(None) };
    let Some(env) = it
        .header
        .as_deref()
        .and_then(crate::mail::parse::parse_headers)
    else {
        return Ok(None);
    };
    Ok(Some(NewMessage {
        uid,
        flags: it.flags,
        size: it.size,
        internal_date: it.internal_date,
        modseq: it.modseq,
        env,
        headers: it.header.unwrap_or_default(),
        denied: false,
        direction: if *role == Some(Role::Sent) {
            "out"
        } else {
            "in"
        },
        body: None,
    }))
}

/// Stores what the retry fetched (the item is then `retried`), else leaves it `open`.
fn record_retry(cx: &Ctx, t: &RetryTarget, fetched: Option<NewMessage>) -> Result<()> {
    let mut store = cx.store()?;
    let state = match (fetched, &t.folder, t.row.uidvalidity) {
        (Some(m), Some((fid, _, _)), Some(uv)) => {
            store.store_batch(t.account.id(), *fid, uv, &[m], None)?;
            QuarantineState::Retried
        }
        _ => QuarantineState::Open,
    };
    store.quarantine_set_state(t.row.id, state)
}
