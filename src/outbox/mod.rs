//! The durable send pipeline: queued → sending → sent → copied → verified (plus uncertain, failed,
//! cancelled), with the copy sub-state pending → appended | filed_by_server | skipped | failed.
//!
//! Every state change is committed (with its audit entry) before the next step starts, so a
//! crash anywhere resumes from the last committed state. `sending` is committed right before
//! SMTP DATA; an item found in `sending` whose process is gone becomes `uncertain` and is never
//! sent again automatically: it is resolved when its Message-ID shows up in Sent, or by the
//! user (`outbox resend|drop`). Copy failures never block sending.

mod copy;
pub mod sentbox;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::account::Account;
use crate::config::{
    AccountConfig, Config, CopyFolder, CopyOnFailure, Home, MessageKind, SentCopyOptions,
};
use crate::error::{AppError, Result};
use crate::failpoint;
use crate::mail::compose::Built;
use crate::secret::Vault;
use crate::smtp::session::{SendError, Session};
use crate::store::outbox::{claim_is_dead, claim_secs, claim_tag};
use crate::store::{Change, Conn, Db, Level, NewOutbox, OutboxRow, now};
use crate::store::{CopyState, OutboxState};

pub use sentbox::SentBox;

/// One state an item reached, for live output (CLI stderr, console).
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub id: i64,
    pub state: OutboxState,
    pub copy_state: Option<CopyState>,
    pub note: String,
}

pub type Observer = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How items reach the servers: one SMTP and one IMAP connection per account and pass
/// (batched), or one of each per message (what batching is measured against).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyConnections {
    #[default]
    Shared,
    PerMessage,
}

#[derive(Debug, Clone, Default)]
pub struct DriveOptions {
    /// Drive only this item.
    pub only: Option<i64>,
    /// Ignore backoff and batching times (explicit user action).
    pub force: bool,
    pub connections: CopyConnections,
    /// Only these accounts' items (None: every account's).
    pub accounts: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DriveReport {
    pub sent: usize,
    pub verified: usize,
    pub copy_pending: usize,
    pub uncertain: usize,
    pub failed: usize,
    pub retry_later: usize,
    pub errors: Vec<ErrorSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorSummary {
    pub id: Option<i64>,
    pub what: String,
    pub detail: String,
    pub fix: String,
}

impl ErrorSummary {
    fn new(id: Option<i64>, e: &AppError) -> Self {
        ErrorSummary {
            id,
            what: e.summary.clone(),
            detail: e.detail.clone(),
            fix: e.fix.clone(),
        }
    }
}

/// `base * 2^(n-1)` seconds, capped.
pub fn backoff_secs(base: u64, max: u64, attempt: i64) -> u64 {
    let base = base.max(1);
    let shift = (attempt.max(1) - 1).min(20) as u32;
    base.saturating_mul(1u64 << shift).min(max.max(base))
}

fn at_plus(secs: u64) -> String {
    let t = chrono::Utc::now() + chrono::Duration::seconds(secs.min(10 * 365 * 86400) as i64);
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The queue plus what driving it needs: settings, the database, the key for passwords.
///
/// Its store work is synchronous and interleaved with network waits, so an `Outbox` is driven
/// on a thread of its own (a current-thread runtime), never on a shared runtime's worker.
pub struct Outbox {
    pub config: Arc<Config>,
    store: Mutex<Conn>,
    vault: Vault,
    pub operator: String,
    observer: Option<Observer>,
}

impl Outbox {
    /// Reads the settings and opens the database of `home` (the background worker, each pass).
    pub fn open(home: &Home, operator: &str) -> Result<Outbox> {
        home.ensure()?;
        Ok(Outbox::new(
            Arc::new(Config::load(home)?),
            Db::open_url(&home.store_url()?)?.conn()?,
            Vault::open(home)?,
            operator,
        ))
    }

    /// The queue over settings and a connection the caller already holds.
    pub fn new(config: Arc<Config>, store: Conn, vault: Vault, operator: &str) -> Outbox {
        Outbox {
            config,
            store: Mutex::new(store),
            vault,
            operator: operator.to_string(),
            observer: None,
        }
    }

    pub fn with_observer(mut self, o: Observer) -> Self {
        self.observer = Some(o);
        self
    }

    /// The store, briefly (never held across an await).
    pub fn store(&self) -> MutexGuard<'_, Conn> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn account_for(&self, account_id: &str) -> Result<Account> {
        let (name, cfg) = self.config.account_by_id(account_id).ok_or_else(|| {
            AppError::needs_user(
                format!(
                    "outbox item belongs to an account that is no longer configured ({account_id})"
                ),
                "",
                "add the account again, or `mailroom outbox cancel ID`",
            )
            .with_code(crate::error::Code::NotFound)
        })?;
        Ok(Account {
            name: name.clone(),
            cfg: cfg.clone(),
        })
    }

    fn tell(&self, id: i64, note: impl Into<String>) {
        let Some(o) = &self.observer else { return };
        let row = self.store().outbox_get(id).ok().flatten();
        if let Some(r) = row {
            o(&Progress {
                id,
                state: r.state,
                copy_state: r.copy_state,
                note: note.into(),
            });
        }
    }

    fn change(
        &self,
        id: i64,
        from: Option<&[OutboxState]>,
        ch: Change,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<bool> {
        self.store()
            .outbox_change(id, from, &ch, &self.operator, action, &detail)
    }

    /// Puts a built message into the queue (state `queued`); nothing goes on the wire yet.
    pub fn enqueue(
        &self,
        account: &Account,
        built: &Built,
        subject: &str,
        in_reply_to: Option<String>,
        thread_message_id: Option<i64>,
    ) -> Result<i64> {
        let message_id = message_id_of(&built.raw).unwrap_or_default();
        let n = NewOutbox {
            account_id: account.id().to_string(),
            operator: self.operator.clone(),
            from_addr: built.envelope_from.clone(),
            rcpts: built.rcpts.clone(),
            message_id: message_id.clone(),
            subject: Some(subject.to_string()),
            raw: built.raw.clone(),
            copy_raw: built.copy_raw.clone(),
            copy_note: built.copy_note.clone(),
            copy_state: if account.cfg.sent_copy.enabled {
                CopyState::Pending
            } else {
                CopyState::Skipped
            },
            in_reply_to,
            thread_message_id,
        };
        let detail = serde_json::json!({
            "from": n.from_addr, "rcpts": n.rcpts, "subject": subject,
            "message_id": message_id, "size": n.raw.len(), "copy_note": n.copy_note,
        });
        let id = self.store().outbox_insert(&n, &detail)?;
        self.tell(id, "queued");
        Ok(id)
    }

    /// Items left in `sending` by a process that is gone become `uncertain`: DATA may have
    /// gone out, so they are never sent again without the user's word.
    /// `accounts`: only their items (None: every account's).
    pub fn recover(&self, accounts: Option<&[String]>) -> Result<Vec<i64>> {
        let t = now();
        let rows = self.store().outbox_in_sending()?;
        let mut out = Vec::new();
        for r in rows {
            if accounts.is_some_and(|a| !a.contains(&r.account_id))
                || !claim_is_dead(r.claim.as_deref(), r.claim_until.as_deref(), &t)
            {
                continue;
            }
            let ch = Change {
                state: Some(OutboxState::Uncertain),
                error: Some(Some((
                    "the process sending this message stopped after handing it to SMTP; it may or may not have been delivered".into(),
                    format!("mailroom checks Sent for it; otherwise decide: `mailroom outbox resend {}` or `mailroom outbox drop {}`", r.id, r.id),
                ))),
                claim: Some(None),
                next_attempt_at: Some(None),
                ..Default::default()
            };
            if self.change(
                r.id,
                Some(&[OutboxState::Sending]),
                ch,
                "outbox.uncertain",
                serde_json::json!({"claim": r.claim}),
            )? {
                let _ = self.store().log_event(
                    Some(&r.account_id),
                    Level::Warn,
                    &format!(
                        "outbox #{} is uncertain: the sender stopped during SMTP DATA",
                        r.id
                    ),
                    None,
                    Some("`mailroom outbox resend ID` or `mailroom outbox drop ID`"),
                );
                self.tell(r.id, "uncertain: the previous run stopped during SMTP DATA");
                crate::alerts::outbox(
                    &self.store(),
                    &r.account_id,
                    crate::config::EventKind::OutboxUncertain,
                    r.id,
                    &AppError::needs_user(
                        "the process sending it stopped during SMTP DATA; it may or may not have been delivered",
                        "",
                        format!("mailroom checks Sent for it; otherwise decide: `mailroom outbox resend {}` or `mailroom outbox drop {}`", r.id, r.id),
                    )
                    .with_code(crate::error::Code::OutboxUncertain),
                );
                out.push(r.id);
            }
        }
        Ok(out)
    }

    /// Drives every due item (or just `opts.only`) as far as it can go now.
    pub async fn drive(&self, opts: &DriveOptions) -> Result<DriveReport> {
        let mut report = DriveReport::default();
        self.recover(opts.accounts.as_deref())?;
        let mut accounts: Vec<String> = match opts.only {
            Some(id) => {
                let row = self.store().outbox_get(id)?.ok_or_else(|| no_item(id))?;
                vec![row.account_id]
            }
            None => self.store().outbox_active_accounts()?,
        };
        if let Some(only) = &opts.accounts {
            accounts.retain(|a| only.contains(a));
        }
        for account_id in accounts {
            let account = match self.account_for(&account_id) {
                Ok(a) => a,
                Err(e) => {
                    report.errors.push(ErrorSummary::new(None, &e));
                    continue;
                }
            };
            self.drive_account(&account, opts, &mut report).await?;
        }
        Ok(report)
    }

    fn due(
        &self,
        account: &Account,
        states: &[OutboxState],
        copy_states: Option<&[CopyState]>,
        opts: &DriveOptions,
    ) -> Result<Vec<i64>> {
        let ids = self
            .store()
            .outbox_due(account.id(), states, copy_states, &now(), opts.force)?;
        Ok(match opts.only {
            Some(only) => ids.into_iter().filter(|i| *i == only).collect(),
            None => ids,
        })
    }

    async fn drive_account(
        &self,
        account: &Account,
        opts: &DriveOptions,
        report: &mut DriveReport,
    ) -> Result<()> {
        let sends = self.due(account, &[OutboxState::Queued], None, opts)?;
        if !sends.is_empty() {
            self.deliver(account, &sends, opts, report).await?;
        }
        let mut copies = self.due(
            account,
            &[OutboxState::Sent, OutboxState::Copied],
            Some(&[CopyState::Pending, CopyState::Appended]),
            opts,
        )?;
        // Batching: once one copy is due, every copy still waiting for its batch time rides
        // along on the same connection, so a batch is one connection every batch_secs.
        if !copies.is_empty() && opts.only.is_none() {
            copies.extend(self.store().outbox_waiting_batch(account.id())?);
        }
        copies.extend(self.due(account, &[OutboxState::Uncertain], None, opts)?);
        copies.sort_unstable();
        copies.dedup();
        if !copies.is_empty() {
            self.copy_all(account, &copies, opts, report).await?;
        }
        Ok(())
    }

    // ---- SMTP ----

    /// The items of `ids` this process takes for one step: still in one of `states` and not
    /// held by another live process.
    fn claim(&self, ids: &[i64], states: &[OutboxState], for_secs: u64) -> Result<Vec<i64>> {
        let tag = claim_tag();
        let mut mine = Vec::new();
        for &id in ids {
            if self.store().outbox_claim(
                id,
                states,
                &tag,
                &at_plus(claim_secs(for_secs)),
                &now(),
            )? {
                mine.push(id);
            }
        }
        Ok(mine)
    }

    async fn deliver(
        &self,
        account: &Account,
        ids: &[i64],
        opts: &DriveOptions,
        report: &mut DriveReport,
    ) -> Result<()> {
        let tag = claim_tag();
        let mine = self.claim(ids, &[OutboxState::Queued], 3600)?;
        let mut session: Option<Session> = None;
        // A server that cannot be reached or refuses the login fails every item the same way:
        // one connection attempt per pass, not one per item.
        let mut conn_err: Option<AppError> = None;
        for id in mine {
            let Some(row) = self.store().outbox_get(id)? else {
                continue;
            };
            if row.state != OutboxState::Queued {
                self.store().outbox_release(id, &tag)?;
                continue;
            }
            if let Some(e) = &conn_err {
                self.send_not_sent(&row, e, account, report)?;
                continue;
            }
            if session.as_ref().is_none_or(|s| s.is_broken()) {
                self.tell(id, "connecting to SMTP");
                match self.open_smtp(account).await {
                    Ok(s) => session = Some(s),
                    Err(e) => {
                        self.send_not_sent(&row, &e, account, report)?;
                        conn_err = Some(e);
                        continue;
                    }
                }
            }
            let (Some(sess), Some((raw, _))) = (session.as_mut(), self.store().outbox_raw(id)?)
            else {
                self.store().outbox_release(id, &tag)?;
                continue;
            };
            self.send_one(sess, &row, &raw, account, report).await?;
            if opts.connections == CopyConnections::PerMessage
                && let Some(s) = session.take()
            {
                s.quit().await;
            }
        }
        if let Some(s) = session {
            s.quit().await;
        }
        Ok(())
    }

    /// One SMTP transaction: `sending` is committed right before DATA, and how the transaction
    /// ends decides the item's next state.
    async fn send_one(
        &self,
        sess: &mut Session,
        row: &OutboxRow,
        raw: &[u8],
        account: &Account,
        report: &mut DriveReport,
    ) -> Result<()> {
        let id = row.id;
        let claim = (claim_tag(), at_plus(claim_secs(3600)));
        let result = sess
            .send(&row.from_addr, &row.rcpts, raw, || {
                let ch = Change {
                    state: Some(OutboxState::Sending),
                    claim: Some(Some(claim)),
                    ..Default::default()
                };
                let ok = self.change(
                    id,
                    Some(&[OutboxState::Queued]),
                    ch,
                    "outbox.sending",
                    serde_json::json!({"attempt": row.attempts + 1}),
                )?;
                if !ok {
                    return Err(AppError::transient(
                        "the item changed while connecting",
                        "",
                        "it is retried on the next pass",
                    ));
                }
                self.tell(id, "sending");
                Ok(())
            })
            .await;
        match result {
            Ok(reply) => self.mark_sent(row, &reply, account, report),
            Err(SendError::NotSent(e)) => self.send_not_sent(row, &e, account, report),
            Err(SendError::Refused(e)) => {
                self.send_ended_badly(id, account, e, Ended::Refused, report)
            }
            Err(SendError::Uncertain(e)) => {
                self.send_ended_badly(id, account, e, Ended::Uncertain, report)
            }
        }
    }

    /// The SMTP server accepted it: `sent`, with the copy due after the batch time.
    fn mark_sent(
        &self,
        row: &OutboxRow,
        reply: &str,
        account: &Account,
        report: &mut DriveReport,
    ) -> Result<()> {
        failpoint::hit("before_sent_commit");
        let batch = account.cfg.sent_copy.batch_secs;
        let ch = Change {
            state: Some(OutboxState::Sent),
            attempts_inc: true,
            error: Some(None),
            sent_at: Some(now()),
            next_attempt_at: Some(if batch > 0 {
                Some(at_plus(batch))
            } else {
                None
            }),
            claim: Some(None),
            ..Default::default()
        };
        self.change(
            row.id,
            Some(&[OutboxState::Sending]),
            ch,
            "outbox.sent",
            serde_json::json!({"server": reply, "rcpts": row.rcpts}),
        )?;
        report.sent += 1;
        self.tell(
            row.id,
            format!("sent: the SMTP server accepted it ({reply})"),
        );
        failpoint::hit("after_smtp_accepted");
        Ok(())
    }

    async fn open_smtp(&self, account: &Account) -> Result<Session> {
        let target = account.smtp_target(&self.config)?;
        let cred = {
            let store = self.store();
            account.smtp_credential(&self.config, &store, &self.vault, None)?
        };
        Session::open(&target, cred.as_ref()).await
    }

    /// Not delivered: back to `queued` with the error, an attempt counted and a backoff.
    /// A send that ended without a retry: the item's state and error, its event, the error log
    /// and the report.
    fn send_ended_badly(
        &self,
        id: i64,
        account: &Account,
        mut e: AppError,
        how: Ended,
        report: &mut DriveReport,
    ) -> Result<()> {
        // The fix names commands on this item: make them copy-pasteable.
        e.fix = e.fix.replace(" ID`", &format!(" {id}`"));
        let (to, from, event, level, word): (_, &[OutboxState], _, _, _) = match how {
            Ended::Refused => (
                OutboxState::Failed,
                &[OutboxState::Queued, OutboxState::Sending],
                "outbox.failed",
                Level::Error,
                "failed",
            ),
            // Only a send in progress can have broken off during DATA.
            Ended::Uncertain => (
                OutboxState::Uncertain,
                &[OutboxState::Sending],
                "outbox.uncertain",
                Level::Warn,
                "uncertain",
            ),
        };
        let ch = Change {
            state: Some(to),
            attempts_inc: true,
            error: Some(Some((e.summary.clone(), e.fix.clone()))),
            next_attempt_at: Some(None),
            claim: Some(None),
            ..Default::default()
        };
        let changed = self.change(
            id,
            Some(from),
            ch,
            event,
            serde_json::json!({"error": e.summary, "detail": e.detail}),
        )?;
        let _ = self.store().log_event(
            Some(account.id()),
            level,
            &format!("outbox #{id}: {}", e.summary),
            Some(&e.detail),
            Some(&e.fix),
        );
        let kind = match how {
            Ended::Refused => {
                report.failed += 1;
                crate::config::EventKind::OutboxFailed
            }
            Ended::Uncertain => {
                report.uncertain += 1;
                crate::config::EventKind::OutboxUncertain
            }
        };
        if changed {
            crate::alerts::outbox(&self.store(), account.id(), kind, id, &e);
        }
        report.errors.push(ErrorSummary::new(Some(id), &e));
        self.tell(id, format!("{word}: {}", e.summary));
        Ok(())
    }

    fn send_not_sent(
        &self,
        row: &OutboxRow,
        e: &AppError,
        account: &Account,
        report: &mut DriveReport,
    ) -> Result<()> {
        let attempts = row.attempts + 1;
        let sync = &account.cfg.sync;
        let wait = backoff_secs(sync.backoff_min_secs, sync.backoff_max_secs, attempts);
        let next = at_plus(wait);
        let ch = Change {
            state: Some(OutboxState::Queued),
            attempts_inc: true,
            error: Some(Some((e.summary.clone(), e.fix.clone()))),
            next_attempt_at: Some(Some(next.clone())),
            claim: Some(None),
            ..Default::default()
        };
        self.change(
            row.id,
            Some(&[OutboxState::Queued, OutboxState::Sending]),
            ch,
            "outbox.retry_later",
            serde_json::json!({"error": e.summary, "detail": e.detail, "next_attempt_at": next}),
        )?;
        let _ = self.store().log_event(
            Some(account.id()),
            Level::Warn,
            &format!("outbox #{}: {}", row.id, e.summary),
            Some(&e.detail),
            Some(&e.fix),
        );
        report.retry_later += 1;
        report.errors.push(ErrorSummary::new(Some(row.id), e));
        self.tell(
            row.id,
            format!(
                "not sent: {} — stays queued, next attempt at {next}",
                e.summary
            ),
        );
        Ok(())
    }

    // ---- user actions ----

    fn get(&self, id: i64) -> Result<OutboxRow> {
        self.store().outbox_get(id)?.ok_or_else(|| no_item(id))
    }

    /// Makes an item due now: a waiting or failed send, or a pending/failed/skipped copy.
    pub fn retry(&self, id: i64) -> Result<()> {
        let row = self.get(id)?;
        let ch = match (row.state, row.copy_state) {
            (OutboxState::Queued | OutboxState::Failed, _) => Change {
                state: Some(OutboxState::Queued),
                next_attempt_at: Some(None),
                ..Default::default()
            },
            (
                OutboxState::Sent | OutboxState::Copied,
                Some(CopyState::Pending | CopyState::Appended),
            ) => Change {
                next_attempt_at: Some(None),
                ..Default::default()
            },
            (OutboxState::Sent, Some(CopyState::Failed | CopyState::Skipped)) => Change {
                copy_state: Some(CopyState::Pending),
                next_attempt_at: Some(None),
                ..Default::default()
            },
            (OutboxState::Uncertain, _) => {
                return Err(AppError::usage(
                    format!("outbox #{id} is uncertain: it may have been delivered"),
                    format!(
                        "choose `mailroom outbox resend {id}` (may arrive twice) or `mailroom outbox drop {id}`"
                    ),
                ).with_code(crate::error::Code::OutboxUncertain));
            }
            (s, c) => {
                return Err(AppError::usage(
                    format!(
                        "outbox #{id} has nothing to retry (state {s}, copy {})",
                        c.map(CopyState::as_str).unwrap_or("none")
                    ),
                    "see `mailroom outbox`",
                )
                .with_code(crate::error::Code::NothingToDo));
            }
        };
        self.change(
            id,
            Some(&[row.state]),
            ch,
            "outbox.retry",
            serde_json::json!({}),
        )?;
        Ok(())
    }

    /// Cancels an item SMTP has not accepted (queued or failed).
    pub fn cancel(&self, id: i64) -> Result<()> {
        let row = self.get(id)?;
        let ok = matches!(row.state, OutboxState::Queued | OutboxState::Failed)
            && self.change(
                id,
                Some(&[OutboxState::Queued, OutboxState::Failed]),
                Change {
                    state: Some(OutboxState::Cancelled),
                    next_attempt_at: Some(None),
                    ..Default::default()
                },
                "outbox.cancelled",
                serde_json::json!({}),
            )?;
        if !ok {
            let fix = match row.state {
                OutboxState::Uncertain => format!(
                    "it may have been delivered: `mailroom outbox drop {id}` gives up on it"
                ),
                OutboxState::Sending => {
                    "it is being sent right now; wait and check `mailroom outbox`".to_string()
                }
                OutboxState::Cancelled => "it is cancelled already".to_string(),
                _ => {
                    "the SMTP server has accepted it already; it cannot be called back".to_string()
                }
            };
            return Err(AppError::usage(
                format!("outbox #{id} cannot be cancelled (state {})", row.state),
                fix,
            ));
        }
        self.tell(id, "cancelled");
        Ok(())
    }

    /// The user chose to send an uncertain item again (it may arrive twice).
    pub fn resend(&self, id: i64) -> Result<()> {
        let row = self.get(id)?;
        let ok = self.change(
            id,
            Some(&[OutboxState::Uncertain]),
            Change {
                state: Some(OutboxState::Queued),
                next_attempt_at: Some(None),
                error: Some(None),
                ..Default::default()
            },
            "outbox.resend",
            serde_json::json!({}),
        )?;
        if !ok {
            return Err(AppError::usage(
                format!("outbox #{id} is not uncertain (state {})", row.state),
                "resend is only for uncertain items; see `mailroom outbox retry`",
            )
            .with_code(crate::error::Code::NothingToDo));
        }
        Ok(())
    }

    /// The user gave up on an uncertain item, assuming it was delivered: it counts as sent and
    /// gets its Sent copy so the record is complete.
    pub fn drop_uncertain(&self, id: i64) -> Result<()> {
        let row = self.get(id)?;
        let account = self.account_for(&row.account_id)?;
        let ok = self.change(
            id,
            Some(&[OutboxState::Uncertain]),
            Change {
                state: Some(OutboxState::Sent),
                copy_state: Some(if account.cfg.sent_copy.enabled {
                    CopyState::Pending
                } else {
                    CopyState::Skipped
                }),
                sent_at: Some(row.sent_at.clone().unwrap_or_else(now)),
                next_attempt_at: Some(None),
                error: Some(None),
                ..Default::default()
            },
            "outbox.dropped",
            serde_json::json!({"assumed": "delivered"}),
        )?;
        if !ok {
            return Err(AppError::usage(
                format!("outbox #{id} is not uncertain (state {})", row.state),
                "drop is only for uncertain items; `mailroom outbox cancel` stops a queued one",
            )
            .with_code(crate::error::Code::NothingToDo));
        }
        self.tell(id, "dropped: assumed delivered; not sent again");
        Ok(())
    }

    /// Seconds until something is due (None: nothing waits).
    pub fn next_due_in(&self) -> Result<Option<Duration>> {
        let next = self.store().outbox_next_due()?;
        Ok(next.map(|t| {
            if t.is_empty() {
                return Duration::ZERO;
            }
            chrono::DateTime::parse_from_rfc3339(&t)
                .map(|d| {
                    (d.with_timezone(&chrono::Utc) - chrono::Utc::now())
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                })
                .unwrap_or(Duration::ZERO)
        }))
    }
}

fn no_item(id: i64) -> AppError {
    AppError::not_found("outbox item", &id.to_string(), "see `mailroom outbox`")
}

/// The Message-ID (without <>) of raw bytes we built.
pub fn message_id_of(raw: &[u8]) -> Option<String> {
    let m = mail_parser::MessageParser::default().parse_headers(raw)?;
    m.message_id().map(str::to_string)
}

/// `from` must be the account's address or one of its aliases (case-insensitive).
pub fn check_sender(cfg: &AccountConfig, from_addr: &str) -> Result<()> {
    let f = from_addr.to_ascii_lowercase();
    if cfg.email.eq_ignore_ascii_case(&f) || cfg.aliases.iter().any(|a| a.eq_ignore_ascii_case(&f))
    {
        return Ok(());
    }
    Err(AppError::usage(
        format!("{from_addr} is not this account's address or one of its aliases"),
        format!(
            "send from {} or an alias (add one with `mailroom account edit NAME --alias ADDR`)",
            cfg.email
        ),
    ))
}

/// Which accounts' items a background worker drives, decided again on every pass from the
/// current settings (None: every account's).
pub type Scope = Arc<dyn Fn(&Config) -> Option<Vec<String>> + Send + Sync>;

/// How a background worker runs: how long it sleeps at most, who hears of each state, and whose
/// items it drives.
#[derive(Clone)]
pub struct WorkerSettings {
    pub idle: Duration,
    pub observer: Option<Observer>,
    pub scope: Option<Scope>,
}

/// Runs the queue in the background until `shutdown` turns true: drives what is due, then
/// sleeps until the next item is due (at most `idle`), or until `wake` is notified (something
/// was queued). Reloads the configuration every pass. Every account's items (the daemon).
pub async fn run_worker(
    home: Home,
    operator: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
    wake: Arc<tokio::sync::Notify>,
    observer: Option<Observer>,
    idle: Duration,
) -> Result<()> {
    let settings = WorkerSettings {
        idle,
        observer,
        scope: None,
    };
    work(home, operator, shutdown, wake, settings).await
}

/// `run_worker` with its settings: the daemon's and the console's worker (the console drives
/// only the items of accounts its operator may act on). Its store work is synchronous: run it
/// on a thread of its own.
pub async fn work(
    home: Home,
    operator: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    wake: Arc<tokio::sync::Notify>,
    settings: WorkerSettings,
) -> Result<()> {
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let mut wait = settings.idle;
        match Outbox::open(&home, &operator) {
            Ok(ob) => {
                let ob = match &settings.observer {
                    Some(o) => ob.with_observer(o.clone()),
                    None => ob,
                };
                let opts = DriveOptions {
                    accounts: settings.scope.as_ref().and_then(|s| s(&ob.config)),
                    ..Default::default()
                };
                if let Err(e) = ob.drive(&opts).await {
                    tracing::warn!("outbox pass failed: {e}");
                }
                if let Ok(Some(d)) = ob.next_due_in() {
                    wait = wait.min(d.max(Duration::from_secs(1)));
                }
            }
            Err(e) => tracing::warn!("outbox cannot open: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
            r = shutdown.changed() => { if r.is_err() { return Ok(()); } }
        }
    }
}

/// How a send ended that is not retried by itself.
#[derive(Clone, Copy)]
enum Ended {
    /// The SMTP server refused it: certainly not delivered.
    Refused,
    /// The connection broke during DATA: it may have been delivered.
    Uncertain,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_secs(5, 900, 1), 5);
        assert_eq!(backoff_secs(5, 900, 2), 10);
        assert_eq!(backoff_secs(5, 900, 4), 40);
        assert_eq!(backoff_secs(5, 900, 60), 900);
        assert_eq!(backoff_secs(0, 0, 1), 1, "at least a second");
    }

    #[test]
    fn sender_must_be_the_account_or_an_alias() {
        let toml = r#"id = "x"
email = "a@example.test"
user = "a@example.test"
aliases = ["Sales@example.test"]
imap = { host = "h", port = 1 }
smtp = { host = "h", port = 2 }
"#;
        let cfg: AccountConfig = toml::from_str(toml).unwrap();
        assert!(check_sender(&cfg, "A@example.test").is_ok());
        assert!(check_sender(&cfg, "sales@example.test").is_ok());
        let e = check_sender(&cfg, "ceo@example.test").unwrap_err();
        assert!(e.fix.contains("--alias"));
    }

    #[test]
    fn message_id_is_read_back() {
        let raw = b"Message-ID: <abc@example.test>\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(message_id_of(raw).as_deref(), Some("abc@example.test"));
    }
}
