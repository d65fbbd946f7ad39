//! Triage: the queue of mail from unknown senders and what an operator does with it (pair with a
//! customer, add the sender as one, block, delete, undo). The desk (`crm::Desk`) decides and
//! records; this layer resolves who may see what through the access gate first.
//!
//! Matching: sync matches what it stores (`crm::after_sync`). The CLI's triage commands catch
//! up on anything stored without matching before they answer ([`catch_up`]); the console runs
//! the same catch-up as a background job when the database changed, never inside a page load,
//! so [`count`] and [`window`] only read.

use serde::Serialize;

use super::Ctx;
use super::access::{self, Need, Target};
use crate::config::Config;
use crate::crm::Desk;
use crate::crm::triage::{TrashHit, TrashLookup};
use crate::error::Result;
use crate::store::{ActionRow, Store, TriageFilter, TriageRow, TriageWindow};

pub use crate::crm::MatchSummary;
pub use crate::crm::triage::{
    ActionOutcome, Attachment, BlockPlan, MessageView, Suggestion, TriageItem, TriagePage,
    UndoOutcome,
};
pub use crate::store::console::MessageSummary;

/// A block that was carried out: the action and what it affected.
#[derive(Debug, Clone, Serialize)]
pub struct Blocked {
    #[serde(flatten)]
    pub outcome: ActionOutcome,
    pub plan: BlockPlan,
}

/// The desk for this operator: the accounts the gate lets them see.
fn desk<'a>(cx: &'a Ctx, store: &'a Store, config: &Config) -> Desk<'a> {
    Desk::new(
        store,
        &cx.home,
        config.clone(),
        &cx.operator,
        access::visible_account_ids(cx, config),
    )
}

/// Matches mail that was stored without matching (a sync interrupted between storing and
/// matching, a failure that was logged): what keeps the queue from showing mail a customer
/// already claims. Cheap when nothing is pending.
pub fn catch_up(cx: &Ctx) -> Result<MatchSummary> {
    let config = cx.config()?;
    let store = cx.store()?;
    crate::crm::match_pending(&store, &config)
}

/// The console's background catch-up after the database changed: matches pending mail unless a
/// sync pass is storing mail right now (that pass matches what it stored when it ends, and its
/// end is a commit that brings the console back here). `None`: deferred.
pub fn catch_up_when_idle(cx: &Ctx) -> Result<Option<MatchSummary>> {
    {
        let store = cx.store()?;
        for a in store.accounts()? {
            if a.state == crate::store::AccountState::Syncing && !store.sync_holder_gone(&a.id)? {
                return Ok(None);
            }
        }
    }
    catch_up(cx).map(Some)
}

/// `triage list [--account A]`: one page of the queue of the accounts this operator may see,
/// with suggestions; mail stored without matching is matched first.
pub fn list(cx: &Ctx, account: Option<&str>, limit: i64, offset: i64) -> Result<TriagePage> {
    let config = cx.config()?;
    let store = cx.store()?;
    crate::crm::match_pending(&store, &config)?;
    let only = match account {
        Some(name) => Some(
            access::account(cx, &config, &store, name, Need::Read)?
                .1
                .id
                .clone(),
        ),
        None => None,
    };
    desk(cx, &store, &config).list(only.as_deref(), limit, offset)
}

/// `triage show ID`: the message with its text, attachments and pairing suggestions.
pub fn show(cx: &Ctx, id: i64) -> Result<MessageView> {
    with_message(cx, id, Need::Read, |desk| desk.show(id))
}

/// The pairing suggestions of one message (the console's picker): a read, no matching.
pub fn suggestions(cx: &Ctx, id: i64) -> Result<Vec<Suggestion>> {
    let config = cx.config()?;
    let store = cx.store()?;
    access::message(cx, &config, &store, id, Need::Read)?;
    desk(cx, &store, &config).suggestions(id)
}

/// `triage pair ID --customer C`.
pub fn pair(cx: &Ctx, id: i64, customer_id: i64) -> Result<ActionOutcome> {
    with_message(cx, id, Need::Act, |desk| desk.pair(id, customer_id))
}

/// `triage pair ID --customer C` with the customer as the user named it: an id, an email
/// address or an exact name (see `crm::book::find`; an ambiguous name lists the candidates).
pub fn pair_named(cx: &Ctx, id: i64, customer: &str) -> Result<ActionOutcome> {
    with_message(cx, id, Need::Act, |desk| {
        let customer_id = crate::crm::book::find(desk.store, customer)?;
        desk.pair(id, customer_id)
    })
}

/// `triage add-customer ID [--name N]`.
pub fn add_customer(cx: &Ctx, id: i64, name: Option<&str>) -> Result<ActionOutcome> {
    with_message(cx, id, Need::Act, |desk| desk.add_customer(id, name))
}

/// `triage block ID [--domain] --dry-run`: what a block would hide; nothing changes.
pub fn block_plan(cx: &Ctx, id: i64, domain: bool) -> Result<BlockPlan> {
    with_message(cx, id, Need::Act, |desk| desk.block_plan(id, domain))
}

/// `triage block ID [--domain]`: the sender (or its domain) on the account's deny list.
pub fn block(cx: &Ctx, id: i64, domain: bool) -> Result<Blocked> {
    with_message(cx, id, Need::Act, |desk| {
        let (plan, outcome) = desk.block(id, domain)?;
        Ok(Blocked { outcome, plan })
    })
}

/// `triage delete ID`: out of the queue, and moved to Trash by the next sync pass.
pub fn delete(cx: &Ctx, id: i64) -> Result<ActionOutcome> {
    with_message(cx, id, Need::Act, |desk| desk.delete(id))
}

/// Runs `f` on the desk once the gate allows `need` on message `id` (after catching up on
/// matching, as every triage command does).
fn with_message<T>(
    cx: &Ctx,
    id: i64,
    need: Need,
    f: impl FnOnce(&mut Desk<'_>) -> Result<T>,
) -> Result<T> {
    let config = cx.config()?;
    let store = cx.store()?;
    crate::crm::match_pending(&store, &config)?;
    access::message(cx, &config, &store, id, need)?;
    f(&mut desk(cx, &store, &config))
}

/// `undo [ACTION_ID]`: undoes the named action, or this operator's newest. A delete whose move
/// to Trash already ran is looked up in Trash on the server when the cache does not know where
/// it is (read-only: EXAMINE + UID SEARCH; the move back goes through the queue).
pub async fn undo(cx: &Ctx, action_id: Option<i64>) -> Result<UndoOutcome> {
    let (action, lookups) = cx.blocking(move |cx| undo_plan(cx, action_id)).await?;
    let mut found = Vec::new();
    for l in lookups {
        found.extend(find_in_trash(cx, l).await?);
    }
    cx.blocking(move |cx| undo_now(cx, action, &found)).await
}

/// The action an undo acts on, if this operator may undo it, and where its message must be
/// looked for on the server.
fn undo_plan(cx: &Ctx, action_id: Option<i64>) -> Result<(ActionRow, Vec<TrashLookup>)> {
    let config = cx.config()?;
    let store = cx.store()?;
    crate::crm::match_pending(&store, &config)?;
    let desk = desk(cx, &store, &config);
    let action = match action_id {
        Some(id) => store
            .action(id)?
            .ok_or_else(|| access::no_such(cx, &Target::Action(id)))?,
        None => desk.last_action()?,
    };
    let holders = desk.action_accounts(&action)?;
    access::action(cx, &config, &store, &action, &holders, Need::Act)?;
    desk.check_undoable(&action)?;
    let lookups = desk.trash_lookups(&action)?;
    Ok((action, lookups))
}

fn undo_now(cx: &Ctx, action: ActionRow, found: &[TrashHit]) -> Result<UndoOutcome> {
    let config = cx.config()?;
    let store = cx.store()?;
    desk(cx, &store, &config).undo_action(action, found)
}

/// Finds a deleted message in Trash on the server, for when Trash is not synced so the cache
/// lacks its UID there.
async fn find_in_trash(cx: &Ctx, l: TrashLookup) -> Result<Option<TrashHit>> {
    use crate::imap::fetch;
    let Some(mid) = l.message_id_header.clone() else {
        return Ok(None);
    };
    let account_id = l.account_id.clone();
    let Some((account, pw)) = cx.blocking(move |cx| login(cx, &account_id)).await? else {
        return Ok(None);
    };
    let mut ss = crate::sync::engine::open_session(&account, &pw).await?;
    let sel = fetch::select(&mut ss.session, &l.trash_wire_name, false, None, true).await?;
    let query = format!(
        "HEADER Message-ID {}",
        crate::imap::append::quote(&format!("<{mid}>"))
    );
    let uids = fetch::uid_search(&mut ss.session, &query).await?;
    ss.logout().await;
    let Some(uid) = uids.last().copied() else {
        return Ok(None);
    };
    let (folder_id, uidvalidity) = (l.trash_folder_id, sel.uidvalidity);
    cx.blocking(move |cx| first_look(cx, folder_id, uidvalidity))
        .await?;
    Ok(Some(TrashHit {
        account_id: l.account_id,
        folder_id,
        wire_name: l.trash_wire_name,
        uidvalidity: uidvalidity as i64,
        uid: uid as i64,
    }))
}

/// An account (by id) and its password, to log in with.
fn login(
    cx: &Ctx,
    account_id: &str,
) -> Result<Option<(crate::account::Account, crate::secret::Credential)>> {
    let config = cx.config()?;
    let Some((name, _)) = config.account_by_id(account_id) else {
        return Ok(None);
    };
    let account = crate::account::Account::from_config(&config, name)?;
    let pw = account.credential(&*cx.store()?, &cx.vault()?)?;
    Ok(Some((account, pw)))
}

/// The queue checks an op's UIDVALIDITY against the folder's: records what an EXAMINE saw for
/// a Trash that was never synced, exactly as a first sync of it would.
fn first_look(cx: &Ctx, folder_id: i64, uidvalidity: u32) -> Result<()> {
    let store = cx.store()?;
    if store
        .folder(folder_id)?
        .is_some_and(|f| f.uidvalidity.is_none())
    {
        store.reset_folder_for_rebuild(folder_id, uidvalidity)?;
    }
    Ok(())
}

/// The console's queue filter: the accounts this operator may see, minus our own addresses.
fn console_filter(cx: &Ctx) -> Result<TriageFilter> {
    let config = cx.config()?;
    Ok(TriageFilter {
        accounts: access::visible_account_ids(cx, &config),
        own: crate::crm::matching::own_addresses(&config)
            .into_iter()
            .collect(),
    })
}

/// The queue's length for this operator (the console's list total). A read: no matching.
pub fn count(cx: &Ctx) -> Result<i64> {
    let f = console_filter(cx)?;
    cx.store()?.triage_count(&f)
}

/// The console's rows `offset..offset+limit` of a queue of `total` rows, newest first. Scrolling
/// on continues after the last row it has (`after`: its date and id) so no row is skipped;
/// past the middle the queue is read from its far end, so the scan stays short either way. A
/// read: no matching.
pub fn window(
    cx: &Ctx,
    total: i64,
    offset: i64,
    limit: i64,
    after: Option<(&str, i64)>,
) -> Result<Vec<MessageSummary>> {
    let f = console_filter(cx)?;
    let store = cx.store()?;
    let want = (total - offset).min(limit).max(0);
    if let Some((date, id)) = after {
        let rows = store.triage_rows(&f, TriageWindow::After { date, id, limit })?;
        if rows.len() as i64 >= want {
            return Ok(rows.into_iter().map(summary).collect());
        }
    }
    let w = if offset > total / 2 {
        TriageWindow::FromEnd {
            offset: (total - offset - limit).max(0),
            limit: want,
        }
    } else {
        TriageWindow::Offset { offset, limit }
    };
    Ok(store.triage_rows(&f, w)?.into_iter().map(summary).collect())
}

/// A queue row as the console's message lists show it.
fn summary(r: TriageRow) -> MessageSummary {
    MessageSummary {
        id: r.id,
        from_name: r.from_name,
        from_addr: r.from_addr,
        subject: r.subject,
        date: r.date,
        seen: r.seen,
        has_attachments: r.has_attachments,
        direction: "in".into(),
        size: r.size,
        account_id: Some(r.account_id),
        why: None,
    }
}
