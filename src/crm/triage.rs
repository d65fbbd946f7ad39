//! The triage queue and its actions. Every action is written to `actions` (what to undo) and to
//! the audit log, in the same transaction as the change itself, so an undo always finds what it
//! needs; `undo` reverses it and is audited too.
//!
//! Deleting goes through the sync engine's durable queue (`pending_ops`, op `delete` = move to
//! Trash on the server); undo withdraws the op if it has not run yet, or queues a move back from
//! Trash if it has.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::json;

use super::address::{Normalizer, Pattern, domain_of};
use super::deny::{self, Scope as DenyScope};
use super::matching::{
    json_addresses, own_addresses, referenced_ids, rematch_addresses, rematch_all,
};
use crate::config::{Config, Home};
use crate::error::{AppError, Result};
use crate::store::{
    ActionKind, ActionRow, MessageDetail, Store, TriageFilter, TriageRow, TriageState, TriageWindow,
};

/// Who acts, and what they may see.
pub struct Operator<'a> {
    pub name: &'a str,
    /// Ids of the accounts this operator may see and act on (the service layer's access gate
    /// decides which: `ops::access`).
    pub accounts: Vec<String>,
}

/// Whether `operator` may see an account: private to its owner unless shared with them;
/// accounts without an owner are everyone's. TRANSITIONAL (issue 11): the service layer decides
/// through `ops::access`; this and [`visible_accounts`] stay for the callers not converted yet
/// (and the unit tests), and go with the last of them.
pub fn may_see(acct: &crate::config::AccountConfig, operator: &str) -> bool {
    match &acct.owner {
        None => true,
        Some(o) => o == operator || acct.shared_with.iter().any(|s| s == operator),
    }
}

pub fn visible_accounts(config: &Config, operator: &str) -> Vec<String> {
    config
        .accounts
        .values()
        .filter(|a| may_see(a, operator))
        .map(|a| a.id.clone())
        .collect()
}

/// Free-mail providers: "same domain" says nothing about who a sender is there.
const FREEMAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "proton.me",
    "protonmail.com",
    "mail.ru",
    "yandex.ru",
    "t-online.de",
    "orange.fr",
];

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Suggestion {
    pub customer_id: i64,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TriageItem {
    pub id: i64,
    pub account: String,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub has_attachments: bool,
    pub suggestions: Vec<Suggestion>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TriagePage {
    pub total: i64,
    pub messages: Vec<TriageItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    pub index: usize,
    pub name: Option<String>,
    pub content_type: String,
    pub size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: i64,
    pub account: String,
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    /// Readable text (HTML converted); None while the body is not fetched yet.
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
    pub body_fetched: bool,
    pub in_triage: bool,
    pub customer_id: Option<i64>,
    pub suggestions: Vec<Suggestion>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionOutcome {
    pub action_id: i64,
    pub kind: ActionKind,
    pub message_id: i64,
    pub customer_id: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlockPlan {
    pub pattern: String,
    pub kind: &'static str,
    pub account: String,
    /// Cached messages of this account from the pattern that are not hidden yet.
    pub affected: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct UndoOutcome {
    pub action_id: i64,
    pub kind: ActionKind,
    pub message_id: Option<i64>,
    pub detail: String,
}

/// The triage desk: the store, the config it was opened with, and the acting operator with the
/// accounts they may see. Whether the operator may name a message or an action at all is the
/// service layer's decision (`ops::access`), made before the desk is asked.
pub struct Desk<'a> {
    pub store: &'a Store,
    pub home: &'a Home,
    pub config: Config,
    pub operator: Operator<'a>,
}

fn gone(id: i64) -> AppError {
    AppError::not_found("message", &id.to_string(), "see `mailroom triage list`")
}

impl<'a> Desk<'a> {
    pub fn new(
        store: &'a Store,
        home: &'a Home,
        config: Config,
        operator: &'a str,
        accounts: Vec<String>,
    ) -> Desk<'a> {
        Desk {
            store,
            home,
            config,
            operator: Operator {
                name: operator,
                accounts,
            },
        }
    }

    fn filter(&self, account_id: Option<&str>) -> TriageFilter {
        TriageFilter {
            accounts: match account_id {
                Some(a) => self
                    .operator
                    .accounts
                    .iter()
                    .filter(|v| *v == a)
                    .cloned()
                    .collect(),
                None => self.operator.accounts.clone(),
            },
            own: own_addresses(&self.config).into_iter().collect(),
        }
    }

    fn account_name(&self, id: &str) -> String {
        self.config
            .account_by_id(id)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// The message if the operator may see it (a location in a visible account).
    fn visible_message(&self, id: i64) -> Result<(MessageDetail, String)> {
        let d = self.store.message_detail(id)?.ok_or_else(|| gone(id))?;
        let acct = d
            .locations
            .iter()
            .find(|l| self.operator.accounts.contains(&l.account_id))
            .map(|l| l.account_id.clone())
            .ok_or_else(|| gone(id))?;
        Ok((d, acct))
    }

    pub fn list(&self, account_id: Option<&str>, limit: i64, offset: i64) -> Result<TriagePage> {
        let f = self.filter(account_id);
        let total = self.store.triage_count(&f)?;
        let rows = self
            .store
            .triage_rows(&f, TriageWindow::Offset { offset, limit })?;
        let sugg = Suggester::new(self.store)?;
        let thread = sugg.thread_customers(self.store, &rows)?;
        let messages = rows
            .into_iter()
            .map(|r| {
                let suggestions = sugg.for_message(r.from_addr.as_deref(), thread.get(&r.id));
                TriageItem {
                    id: r.id,
                    account: self.account_name(&r.account_id),
                    from: r.from_addr,
                    from_name: r.from_name,
                    subject: r.subject,
                    date: r.date,
                    has_attachments: r.has_attachments,
                    suggestions,
                }
            })
            .collect();
        Ok(TriagePage { total, messages })
    }

    pub fn show(&self, id: i64) -> Result<MessageView> {
        let (d, acct) = self.visible_message(id)?;
        let (text, attachments, fetched) = match &d.body {
            Some(raw) => {
                let (t, a) = render(raw);
                (t.or(d.text_body.clone()), a, true)
            }
            None => (d.text_body.clone(), Vec::new(), d.text_body.is_some()),
        };
        let in_triage = self.store.in_triage(&self.filter(None), id)?;
        let suggestions = self.suggestions_for(&d, &acct)?;
        let n = Normalizer::default();
        Ok(MessageView {
            id,
            account: self.account_name(&acct),
            message_id: d.message_id.clone(),
            from: d.from_addr.clone(),
            from_name: d.from_name.clone(),
            to: json_addresses(&d.to_json, n),
            cc: json_addresses(&d.cc_json, n),
            subject: d.subject.clone(),
            date: d.date.clone(),
            text,
            attachments,
            body_fetched: fetched,
            in_triage,
            customer_id: d.customer_id,
            suggestions,
        })
    }

    /// Customers to pair the message with (same thread, same domain), without reading its
    /// body: what the console's pair picker shows first.
    pub fn suggestions(&self, id: i64) -> Result<Vec<Suggestion>> {
        let (d, acct) = self.visible_message(id)?;
        self.suggestions_for(&d, &acct)
    }

    fn suggestions_for(&self, d: &MessageDetail, acct: &str) -> Result<Vec<Suggestion>> {
        let sugg = Suggester::new(self.store)?;
        let row = TriageRow {
            id: d.id,
            account_id: acct.to_string(),
            from_addr: d.from_addr.clone(),
            from_name: d.from_name.clone(),
            subject: d.subject.clone(),
            date: d.date.clone(),
            message_id: d.message_id.clone(),
            in_reply_to: d.in_reply_to.clone(),
            refs: d.refs.clone(),
            has_attachments: false,
            size: d.size,
            seen: false,
        };
        let thread = sugg.thread_customers(self.store, std::slice::from_ref(&row))?;
        Ok(sugg.for_message(d.from_addr.as_deref(), thread.get(&d.id)))
    }

    fn sender(&self, d: &MessageDetail) -> Result<String> {
        d.from_addr
            .as_deref()
            .and_then(|a| Normalizer::default().address(a))
            .ok_or_else(|| {
                AppError::needs_user(
                    format!("message {} has no usable sender address", d.id),
                    "",
                    "delete it, or pair another message from this sender",
                )
            })
    }

    fn record(
        &self,
        s: &Store,
        kind: ActionKind,
        account_id: &str,
        message_id: i64,
        payload: serde_json::Value,
    ) -> Result<i64> {
        let id = s.insert_action(self.operator.name, kind, Some(message_id), &payload)?;
        let mut detail = payload;
        detail["action_id"] = json!(id);
        s.audit(
            self.operator.name,
            &format!("triage.{kind}"),
            Some(account_id),
            Some(&format!("message:{message_id}")),
            &detail,
        )?;
        Ok(id)
    }

    /// Pairs the message with a customer and gives the customer the sender's address, so future
    /// mail from it matches.
    pub fn pair(&mut self, id: i64, customer_id: i64) -> Result<ActionOutcome> {
        let (d, acct) = self.visible_message(id)?;
        let c = self
            .store
            .customer(customer_id)?
            .ok_or_else(|| super::book::not_found(customer_id))?;
        let sender = self.sender(&d)?;
        let action_id = self.store.atomically(|s| {
            let added = s.customer_add_email(customer_id, &sender)?;
            if added {
                s.customer_touch(customer_id)?;
            }
            s.match_manual(
                id,
                customer_id,
                &format!("paired by {} in triage", self.operator.name),
            )?;
            self.record(
                s,
                ActionKind::Pair,
                &acct,
                id,
                json!({"customer_id": customer_id, "address": sender, "address_added": added,
                       "previous_customer_id": d.customer_id}),
            )
        })?;
        rematch_addresses(self.store, &self.config, std::slice::from_ref(&sender), &[])?;
        Ok(ActionOutcome {
            action_id,
            kind: ActionKind::Pair,
            message_id: id,
            customer_id: Some(customer_id),
            detail: format!(
                "paired with {} ({}); {sender} now belongs to them",
                c.name, c.id
            ),
        })
    }

    /// Creates a customer from the sender (name from the display name unless given).
    pub fn add_customer(&mut self, id: i64, name: Option<&str>) -> Result<ActionOutcome> {
        let (d, acct) = self.visible_message(id)?;
        let sender = self.sender(&d)?;
        if let Some(owner) = self.store.email_owner(&sender)? {
            return Err(AppError::needs_user(
                format!("{sender} already belongs to customer {owner}"),
                "",
                format!("pair the message instead: `mailroom triage pair {id} --customer {owner}`"),
            )
            .with_code(crate::error::Code::Conflict));
        }
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .or_else(|| {
                d.from_name
                    .as_deref()
                    .map(|n| {
                        crate::mail::sanitize::clean_line(n)
                            .trim()
                            .trim_matches('"')
                            .to_string()
                    })
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(|| sender.split('@').next().unwrap_or(&sender).to_string());
        let (action_id, customer_id) = self.store.atomically(|s| {
            let cid = s.customer_insert(&name, None, None)?;
            s.customer_add_email(cid, &sender)?;
            let aid = self.record(
                s,
                ActionKind::AddCustomer,
                &acct,
                id,
                json!({"customer_id": cid, "address": sender, "name": name}),
            )?;
            Ok((aid, cid))
        })?;
        rematch_addresses(self.store, &self.config, std::slice::from_ref(&sender), &[])?;
        Ok(ActionOutcome {
            action_id,
            kind: ActionKind::AddCustomer,
            message_id: id,
            customer_id: Some(customer_id),
            detail: format!("customer {customer_id} {name} <{sender}> added"),
        })
    }

    /// What blocking the sender (or the domain) would affect; nothing changes.
    pub fn block_plan(&self, id: i64, domain: bool) -> Result<BlockPlan> {
        let (d, acct) = self.visible_message(id)?;
        let sender = self.sender(&d)?;
        let pattern = if domain {
            Pattern::Domain(domain_of(&sender).to_string())
        } else {
            Pattern::Address(sender)
        };
        let plain = Normalizer::default();
        let affected = self
            .store
            .senders(Some(&acct))?
            .into_iter()
            .filter(|(_, from, denied)| {
                !denied && plain.address(from).is_some_and(|f| pattern.matches(&f))
            })
            .count();
        Ok(BlockPlan {
            pattern: pattern.as_str().to_string(),
            kind: if domain { "domain" } else { "address" },
            account: self.account_name(&acct),
            affected,
        })
    }

    /// Puts the sender (or domain) on the account's deny list and hides its cached mail.
    pub fn block(&mut self, id: i64, domain: bool) -> Result<(BlockPlan, ActionOutcome)> {
        let plan = self.block_plan(id, domain)?;
        let (_, acct) = self.visible_message(id)?;
        let pattern = Pattern::parse(&plan.pattern).ok_or_else(|| gone(id))?;
        let scope = DenyScope::Account(plan.account.clone());
        // The config edit happens inside the transaction that records the action: if either
        // fails, nothing of the block is kept in the database.
        let action_id = self.store.atomically(|s| {
            let added = deny::add(self.home, &scope, &pattern)?;
            self.record(
                s,
                ActionKind::Block,
                &acct,
                id,
                json!({"pattern": plan.pattern, "kind": plan.kind, "account_id": acct,
                       "added_to_config": added, "affected": plan.affected}),
            )
        })?;
        self.config = Config::load(self.home)?;
        rematch_all(self.store, &self.config)?;
        let detail = format!(
            "{} {} blocked for account {}; {} cached message(s) hidden",
            plan.kind, plan.pattern, plan.account, plan.affected
        );
        Ok((
            plan,
            ActionOutcome {
                action_id,
                kind: ActionKind::Block,
                message_id: id,
                customer_id: None,
                detail,
            },
        ))
    }

    /// Takes the message out of the queue and queues a move to Trash on the server (op
    /// `delete` in the sync engine's queue; its location leaves the cache at once, as with any
    /// local move).
    pub fn delete(&mut self, id: i64) -> Result<ActionOutcome> {
        let (d, acct) = self.visible_message(id)?;
        let places: Vec<_> = d
            .locations
            .iter()
            .filter(|l| self.operator.accounts.contains(&l.account_id))
            .filter(|l| l.role.as_deref() != Some("trash"))
            .cloned()
            .collect();
        if places.is_empty() {
            return Err(AppError::needs_user(
                format!("message {id} is already in Trash"),
                "",
                "nothing to do",
            )
            .with_code(crate::error::Code::NothingToDo));
        }
        let mut trash: HashMap<String, crate::store::FolderRef> = HashMap::new();
        for l in &places {
            if !trash.contains_key(&l.account_id) {
                let t = self
                    .store
                    .role_folder(&l.account_id, "trash")?
                    .ok_or_else(|| {
                        AppError::needs_user(
                            format!(
                                "account {} has no Trash folder",
                                self.account_name(&l.account_id)
                            ),
                            "delete moves mail to Trash, and none was found on the server",
                            format!(
                                "name one: `mailroom folders {} --role trash=FOLDER`",
                                self.account_name(&l.account_id)
                            ),
                        )
                        .with_code(crate::error::Code::FolderMissing)
                    })?;
                trash.insert(l.account_id.clone(), t);
            }
        }
        let action_id = self.store.atomically(|s| {
            let mut ops = Vec::new();
            for l in &places {
                let t = &trash[&l.account_id];
                let op = s.insert_pending_op(
                    &l.account_id,
                    None,
                    Some(id),
                    "delete",
                    Some(&op_target(
                        l.folder_id,
                        &l.wire_name,
                        l.uidvalidity,
                        l.uid,
                        &t.wire_name,
                    )),
                )?;
                s.delete_location(l.id)?;
                ops.push(json!({"op_id": op, "location": l, "trash_folder_id": t.id,
                                "trash_wire_name": t.wire_name}));
            }
            s.set_triage_state(id, Some(TriageState::Deleted))?;
            self.record(
                s,
                ActionKind::Delete,
                &acct,
                id,
                json!({"ops": ops, "message_id_header": d.message_id,
                       "previous_triage_state": d.triage_state}),
            )
        })?;
        Ok(ActionOutcome {
            action_id,
            kind: ActionKind::Delete,
            message_id: id,
            customer_id: None,
            detail: format!(
                "moving to Trash on the server ({} location(s)); the next sync pass does it",
                places.len()
            ),
        })
    }

    /// The accounts an action is about: where its message is now, and where the action found
    /// it. Who may undo it is decided on these (`ops::triage::undo`).
    pub fn action_accounts(&self, a: &ActionRow) -> Result<Vec<String>> {
        let mut accounts: Vec<String> = match a.message_id {
            Some(m) => self
                .store
                .message_locations(m)?
                .into_iter()
                .map(|l| l.account_id)
                .collect(),
            None => Vec::new(),
        };
        collect_account_ids(&a.payload, &mut accounts);
        accounts.sort();
        accounts.dedup();
        Ok(accounts)
    }

    /// This operator's newest action that is not undone yet.
    pub fn last_action(&self) -> Result<ActionRow> {
        self.store.last_action(self.operator.name)?.ok_or_else(|| {
            AppError::needs_user(
                format!("{} has nothing to undo", self.operator.name),
                "",
                "name an action: `mailroom undo ACTION_ID` (ids are in `mailroom audit`)",
            )
            .with_code(crate::error::Code::NothingToDo)
        })
    }

    /// Refuses an action that was undone already.
    pub fn check_undoable(&self, a: &ActionRow) -> Result<()> {
        match &a.undone_at {
            Some(at) => Err(AppError::needs_user(
                format!("action {} was already undone at {at}", a.id),
                "",
                "nothing to do",
            )
            .with_code(crate::error::Code::NothingToDo)),
            None => Ok(()),
        }
    }

    /// The action `undo` would act on: the named one, or this operator's newest.
    pub fn resolve_action(&self, action_id: Option<i64>) -> Result<ActionRow> {
        let a = match action_id {
            Some(id) => self.store.action(id)?.ok_or_else(|| {
                AppError::not_found("action", &id.to_string(), "see `mailroom audit`")
            })?,
            None => self.last_action()?,
        };
        self.check_undoable(&a)?;
        Ok(a)
    }

    /// For a delete whose move already ran: the Trash folders the message must be looked up in
    /// on the server (when the cache does not know its UID there, e.g. Trash is not synced).
    pub fn trash_lookups(&self, a: &ActionRow) -> Result<Vec<TrashLookup>> {
        if a.kind != ActionKind::Delete {
            return Ok(Vec::new());
        }
        let mid = a.message_id.unwrap_or(0);
        let known = self.store.message_locations(mid)?;
        let mut out = Vec::new();
        for op in a.payload["ops"].as_array().into_iter().flatten() {
            let replayed = self
                .store
                .pending_op(op["op_id"].as_i64().unwrap_or(0))?
                .is_some_and(|o| o.done_at.is_some());
            let account = op["location"]["account_id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let in_trash = known
                .iter()
                .any(|l| l.account_id == account && l.role.as_deref() == Some("trash"));
            if replayed && !in_trash {
                out.push(TrashLookup {
                    account_id: account,
                    trash_folder_id: op["trash_folder_id"].as_i64().unwrap_or(0),
                    trash_wire_name: op["trash_wire_name"].as_str().unwrap_or("").to_string(),
                    message_id_header: a.payload["message_id_header"].as_str().map(str::to_string),
                });
            }
        }
        Ok(out)
    }

    /// Undoes the named action, or this operator's newest one. `found` carries where a deleted
    /// message sits in Trash on the server, for moves that already ran (see `trash_lookups`).
    pub fn undo(&mut self, action_id: Option<i64>, found: &[TrashHit]) -> Result<UndoOutcome> {
        let a = self.resolve_action(action_id)?;
        self.undo_action(a, found)
    }

    /// Undoes `a` (already resolved, and allowed by the caller).
    pub fn undo_action(&mut self, a: ActionRow, found: &[TrashHit]) -> Result<UndoOutcome> {
        self.check_undoable(&a)?;
        let detail = match a.kind {
            ActionKind::Pair => self.undo_pair(&a)?,
            ActionKind::AddCustomer => self.undo_add_customer(&a)?,
            ActionKind::Block => self.undo_block(&a)?,
            ActionKind::Delete => self.undo_delete(&a, found)?,
        };
        let acct = a
            .payload
            .get("account_id")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        self.store.atomically(|s| {
            if !s.mark_undone(a.id)? {
                return Err(AppError::transient(
                    format!("action {} was undone by someone else meanwhile", a.id),
                    "",
                    "nothing to do",
                )
                .with_code(crate::error::Code::NothingToDo));
            }
            s.audit(
                self.operator.name,
                "undo",
                acct.as_deref(),
                a.message_id.map(|m| format!("message:{m}")).as_deref(),
                &json!({"action_id": a.id, "kind": a.kind, "by": a.operator, "result": detail}),
            )?;
            Ok(())
        })?;
        Ok(UndoOutcome {
            action_id: a.id,
            kind: a.kind,
            message_id: a.message_id,
            detail,
        })
    }

    fn undo_pair(&mut self, a: &ActionRow) -> Result<String> {
        let p = &a.payload;
        let cid = p["customer_id"].as_i64().unwrap_or(0);
        let addr = p["address"].as_str().unwrap_or("").to_string();
        let added = p["address_added"].as_bool().unwrap_or(false);
        let mid = a.message_id.unwrap_or(0);
        let affected = self.store.customer_message_ids(cid)?;
        self.store.atomically(|s| {
            s.unmatch_manual(mid, cid)?;
            if added {
                s.customer_remove_email(cid, &addr)?;
            }
            Ok(())
        })?;
        rematch_addresses(
            self.store,
            &self.config,
            std::slice::from_ref(&addr),
            &affected,
        )?;
        Ok(if added {
            format!("message {mid} unpaired from customer {cid}; {addr} removed from them")
        } else {
            format!("message {mid} unpaired from customer {cid}")
        })
    }

    fn undo_add_customer(&mut self, a: &ActionRow) -> Result<String> {
        let cid = a.payload["customer_id"].as_i64().unwrap_or(0);
        let affected = self.store.customer_message_ids(cid)?;
        let emails = self
            .store
            .customer(cid)?
            .map(|c| c.emails)
            .unwrap_or_default();
        let existed = self.store.customer_delete(cid)?;
        rematch_addresses(self.store, &self.config, &emails, &affected)?;
        Ok(if existed {
            format!("customer {cid} removed; their mail is unmatched again")
        } else {
            format!("customer {cid} was already removed")
        })
    }

    fn undo_block(&mut self, a: &ActionRow) -> Result<String> {
        let p = &a.payload;
        let pattern = p["pattern"]
            .as_str()
            .and_then(Pattern::parse)
            .ok_or_else(|| {
                AppError::local(
                    "the block action has no pattern",
                    "",
                    "report this as a bug",
                )
            })?;
        let acct_id = p["account_id"].as_str().unwrap_or("");
        let mut note = String::new();
        if p["added_to_config"].as_bool().unwrap_or(false) {
            match self.config.account_by_id(acct_id).map(|(n, _)| n.clone()) {
                Some(name) => {
                    deny::remove(self.home, &DenyScope::Account(name), &pattern)?;
                }
                None => {
                    note = " (the account is gone; nothing to remove from its deny list)".into()
                }
            }
        }
        self.config = Config::load(self.home)?;
        rematch_all(self.store, &self.config)?;
        Ok(format!(
            "{} unblocked; its cached mail is visible again{note}",
            pattern.as_str()
        ))
    }

    fn undo_delete(&mut self, a: &ActionRow, found: &[TrashHit]) -> Result<String> {
        let mid = a.message_id.unwrap_or(0);
        let ops = a.payload["ops"].as_array().cloned().unwrap_or_default();
        let prev = a.payload["previous_triage_state"]
            .as_str()
            .and_then(TriageState::parse);
        let known = self.store.message_locations(mid)?;
        let mut withdrawn = 0;
        let mut moved_back = 0;
        self.store.atomically(|s| {
            for op in &ops {
                let op_id = op["op_id"].as_i64().unwrap_or(0);
                let loc: crate::store::MessagePlace = serde_json::from_value(op["location"].clone())
                    .map_err(|e| AppError::local("the delete action is damaged", e.to_string(), "report this as a bug"))?;
                if s.cancel_pending_op(op_id)? {
                    // The server never saw it: put the location back as it was.
                    s.restore_location(&loc)?;
                    withdrawn += 1;
                    continue;
                }
                // Already replayed: the message sits in this account's Trash; move it back
                // through the queue like any other local move.
                let target = match known
                    .iter()
                    .find(|l| l.account_id == loc.account_id && l.role.as_deref() == Some("trash"))
                {
                    Some(t) => {
                        s.delete_location(t.id)?;
                        Some((t.folder_id, t.wire_name.clone(), t.uidvalidity, t.uid))
                    }
                    None => found.iter().find(|h| h.account_id == loc.account_id).map(|h| {
                        (h.folder_id, h.wire_name.clone(), h.uidvalidity, h.uid)
                    }),
                };
                let Some((fid, wire, uv, uid)) = target else {
                    return Err(AppError::needs_user(
                        format!("message {mid} was moved to Trash, but it is not found there"),
                        "undo moves it back from Trash and needs its place there",
                        format!("run `mailroom sync --once` and then `mailroom undo {}`; if it was emptied from Trash, it is gone", a.id),
                    ).with_code(crate::error::Code::NotFound));
                };
                s.insert_pending_op(
                    &loc.account_id,
                    None,
                    Some(mid),
                    "move",
                    Some(&op_target(fid, &wire, uv, uid, &loc.wire_name)),
                )?;
                moved_back += 1;
            }
            s.set_triage_state(mid, prev)?;
            Ok(())
        })?;
        Ok(match (withdrawn, moved_back) {
            (_, 0) => format!("message {mid} kept: the move to Trash was withdrawn before it ran"),
            _ => format!(
                "message {mid} queued to move back from Trash; it returns with the next sync"
            ),
        })
    }
}

/// Where a deleted message must be looked for on the server.
#[derive(Debug, Clone, Serialize)]
pub struct TrashLookup {
    pub account_id: String,
    pub trash_folder_id: i64,
    pub trash_wire_name: String,
    pub message_id_header: Option<String>,
}

/// Where it was found.
#[derive(Debug, Clone, Serialize)]
pub struct TrashHit {
    pub account_id: String,
    pub folder_id: i64,
    pub wire_name: String,
    pub uidvalidity: i64,
    pub uid: i64,
}

/// The `arg` of a queued move, in the sync engine's op format: where the message is now, and
/// the target folder's wire name.
fn op_target(
    folder_id: i64,
    wire_name: &str,
    uidvalidity: i64,
    uid: i64,
    target_wire: &str,
) -> String {
    json!({"folder_id": folder_id, "wire_name": wire_name, "uidvalidity": uidvalidity,
           "uid": uid, "arg": target_wire})
    .to_string()
}

/// Suggestions for pairing: customers with an address in the sender's domain, and the
/// customer of the thread the message answers.
struct Suggester {
    by_domain: HashMap<String, Vec<i64>>,
    names: HashMap<i64, String>,
}

impl Suggester {
    fn new(store: &Store) -> Result<Suggester> {
        let mut by_domain: HashMap<String, Vec<i64>> = HashMap::new();
        let book = store.book_rows()?;
        for (e, c) in &book.emails {
            let v = by_domain.entry(domain_of(e).to_string()).or_default();
            if !v.contains(c) {
                v.push(*c);
            }
        }
        let names = store.customer_names()?;
        Ok(Suggester { by_domain, names })
    }

    /// The customer of a thread each row answers, if any.
    fn thread_customers(
        &self,
        store: &Store,
        rows: &[TriageRow],
    ) -> Result<HashMap<i64, (i64, String)>> {
        let refs: Vec<(i64, Vec<String>)> = rows
            .iter()
            .map(|r| {
                (
                    r.id,
                    referenced_ids(r.in_reply_to.as_deref(), r.refs.as_deref()),
                )
            })
            .collect();
        let all: Vec<String> = refs
            .iter()
            .flat_map(|(_, v)| v.iter().cloned())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let known: HashMap<String, i64> = store
            .messages_by_message_ids(&all)?
            .into_iter()
            .filter_map(|m| Some((m.message_id?, m.customer_id?)))
            .collect();
        Ok(refs
            .into_iter()
            .filter_map(|(id, v)| {
                v.into_iter()
                    .find_map(|r| known.get(&r).map(|c| (*c, r.clone())))
                    .map(|hit| (id, hit))
            })
            .collect())
    }

    fn for_message(&self, from: Option<&str>, thread: Option<&(i64, String)>) -> Vec<Suggestion> {
        let mut out: Vec<Suggestion> = Vec::new();
        if let Some((c, r)) = thread
            && let Some(name) = self.names.get(c)
        {
            out.push(Suggestion {
                customer_id: *c,
                name: name.clone(),
                reason: format!("same thread (answers <{r}>)"),
            });
        }
        if let Some(addr) = from.and_then(|a| Normalizer::default().address(a)) {
            let d = domain_of(&addr);
            if !FREEMAIL.contains(&d) {
                for c in self.by_domain.get(d).into_iter().flatten().take(5) {
                    if !out.iter().any(|s| s.customer_id == *c)
                        && let Some(name) = self.names.get(c)
                    {
                        out.push(Suggestion {
                            customer_id: *c,
                            name: name.clone(),
                            reason: format!("same domain ({d})"),
                        });
                    }
                }
            }
        }
        out
    }
}

/// Readable text (HTML converted) and the attachment list of a raw message.
pub fn render(raw: &[u8]) -> (Option<String>, Vec<Attachment>) {
    use mail_parser::MimeHeaders;
    let Some(msg) = mail_parser::MessageParser::default().parse(raw) else {
        return (None, Vec::new());
    };
    let text = msg.body_text(0).map(|t| t.into_owned());
    let attachments = msg
        .attachments()
        .enumerate()
        .map(|(i, p)| Attachment {
            index: i,
            name: p.attachment_name().map(str::to_string),
            content_type: p
                .content_type()
                .map(|ct| match &ct.c_subtype {
                    Some(st) => format!("{}/{}", ct.c_type, st),
                    None => ct.c_type.to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: p.len(),
        })
        .collect();
    (text, attachments)
}

/// Every `account_id` string anywhere in an action's payload (where it found the message).
fn collect_account_ids(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map {
                match (k.as_str(), val) {
                    ("account_id", serde_json::Value::String(id)) => out.push(id.clone()),
                    _ => collect_account_ids(val, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_account_ids(i, out)),
        _ => {}
    }
}
