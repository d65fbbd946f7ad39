//! The Sent copy step: find the copy folder, recognise a copy that is already there (ours by
//! its token, or the server's), wait for a server that files sent mail itself, append ours,
//! and verify.

use super::sentbox::{Ours, with_copy_token};
use super::*;

impl Outbox {
    // ---- copy to Sent ----

    pub(super) async fn copy_all(
        &self,
        account: &Account,
        ids: &[i64],
        opts: &DriveOptions,
        report: &mut DriveReport,
    ) -> Result<()> {
        let tag = claim_tag();
        let mine = self.claim(
            ids,
            &[
                OutboxState::Sent,
                OutboxState::Copied,
                OutboxState::Uncertain,
            ],
            900,
        )?;
        if mine.is_empty() {
            return Ok(());
        }
        let target = account.imap_target();
        let pw = {
            let store = self.store();
            account.credential(&store, &self.vault)
        };
        let chosen_sent = self.store().chosen_sent_folder(account.id())?;
        let mut sent_box: Option<SentBox> = None;
        for id in mine {
            let folder = match self.store().outbox_get(id)? {
                Some(row) => copy_folder_for(&account.cfg.sent_copy, &row),
                None => continue,
            };
            if let Some(b) = sent_box.as_mut()
                && !b.is_on(folder.as_ref())
                && let Err(e) = b.select(folder.as_ref()).await
            {
                self.copy_failed(id, account, &e, report)?;
                self.store().outbox_release(id, &tag)?;
                // A failed SELECT may leave no folder selected: start afresh next time.
                if let Some(b) = sent_box.take() {
                    b.close().await;
                }
                continue;
            }
            if sent_box.is_none() {
                let opened = match &pw {
                    Ok(pw) => {
                        SentBox::open(&target, pw, folder.as_ref(), chosen_sent.clone()).await
                    }
                    Err(e) => Err(e.clone()),
                };
                match opened {
                    Ok(b) => sent_box = Some(b),
                    Err(e) => {
                        self.copy_failed(id, account, &e, report)?;
                        self.store().outbox_release(id, &tag)?;
                        continue;
                    }
                }
            }
            let Some(b) = sent_box.as_mut() else { continue };
            if let Err(e) = self.copy_one(b, id, account, report).await {
                self.copy_failed(id, account, &e, report)?;
                // The connection may be broken; open a fresh one for the next item.
                if let Some(b) = sent_box.take() {
                    b.close().await;
                }
            }
            if opts.connections == CopyConnections::PerMessage
                && let Some(b) = sent_box.take()
            {
                b.close().await;
            }
            self.store().outbox_release(id, &tag)?;
        }
        if let Some(b) = sent_box {
            b.close().await;
        }
        Ok(())
    }

    /// One item's Sent copy, as far as it goes now: an uncertain send is looked for; a pending
    /// copy is recognised (ours, appended by a run that stopped before committing it, or the
    /// server's), waited for, or appended; then it is verified.
    async fn copy_one(
        &self,
        b: &mut SentBox,
        id: i64,
        account: &Account,
        report: &mut DriveReport,
    ) -> Result<()> {
        let Some(row) = self.store().outbox_get(id)? else {
            return Ok(());
        };
        if row.state == OutboxState::Uncertain {
            return self.look_for_uncertain(b, &row, account, report).await;
        }
        if row.copy_state == Some(CopyState::Pending)
            && self.place_copy(b, &row, account, report).await? == Placed::Settled
        {
            return Ok(());
        }
        // Read again: placing it committed its token, folder and UID.
        let Some(row) = self.store().outbox_get(id)? else {
            return Ok(());
        };
        self.verify_copy(b, &row, account, report).await
    }

    /// An uncertain send found in Sent was delivered (the server filed it: nothing of ours is
    /// there, since an uncertain item never got a copy of ours); otherwise it stays uncertain for
    /// the user.
    async fn look_for_uncertain(
        &self,
        b: &mut SentBox,
        row: &OutboxRow,
        account: &Account,
        report: &mut DriveReport,
    ) -> Result<()> {
        let id = row.id;
        let found = b.copies(&row.message_id, &ours_of(row)).await?;
        if let Some(&uid) = found.theirs.first().or(found.ours.first()) {
            let ch = Change {
                state: Some(OutboxState::Verified),
                copy_state: Some(CopyState::FiledByServer),
                copy_folder: Some(b.folder.clone()),
                copy_uid: Some((b.uidvalidity as i64, Some(uid as i64))),
                sent_at: Some(row.sent_at.clone().unwrap_or_else(now)),
                verified_at: Some(now()),
                error: Some(None),
                ..Default::default()
            };
            self.change(
                id,
                Some(&[OutboxState::Uncertain]),
                ch,
                "outbox.uncertain_resolved",
                serde_json::json!({"found_in": b.folder, "uid": uid}),
            )?;
            if found.ours.is_empty() {
                self.learn(b, id, uid, account)?;
            }
            report.verified += 1;
            self.tell(
                id,
                format!("resolved: found in {} — it was delivered", b.folder),
            );
            return Ok(());
        }
        let ch = Change {
            next_attempt_at: Some(Some(at_plus(account.cfg.sent_copy.retry_secs.max(1)))),
            ..Default::default()
        };
        self.change(
            id,
            Some(&[OutboxState::Uncertain]),
            ch,
            "outbox.uncertain_checked",
            serde_json::json!({"found": false}),
        )?;
        report.uncertain += 1;
        self.tell(id, format!("still uncertain: not in {}; decide with `mailroom outbox resend {id}` or `mailroom outbox drop {id}`", b.folder));
        Ok(())
    }

    /// A pending copy: ours already there (appended by a run that stopped before committing it:
    /// never a second one), the server's there (it filed the message itself), worth waiting for
    /// (the server files into this folder), or appended now.
    async fn place_copy(
        &self,
        b: &mut SentBox,
        row: &OutboxRow,
        account: &Account,
        report: &mut DriveReport,
    ) -> Result<Placed> {
        let found = b.copies(&row.message_id, &ours_of(row)).await?;
        if let Some(&uid) = found.ours.first() {
            let note = format!(
                "copied to {} by an earlier run that stopped before recording it (uid {uid}); not appended again",
                b.folder
            );
            self.mark_copied(b, row, Some(uid), "outbox.copy_recognised", note, None)?;
            return Ok(Placed::Appended);
        }
        if let Some(&uid) = found.theirs.first() {
            self.filed_by_server(b, row, uid, account, report)?;
            return Ok(Placed::Settled);
        }
        if let Some(next) = self.server_copy_expected(b, row, account)? {
            self.wait_for_server_copy(b, row, account, next, report)?;
            return Ok(Placed::Settled);
        }
        self.append_copy(b, row).await?;
        Ok(Placed::Appended)
    }

    /// The server filed the message into Sent itself: verified, with its copy — and learned,
    /// so later copies wait for the server's instead of racing it.
    fn filed_by_server(
        &self,
        b: &SentBox,
        row: &OutboxRow,
        uid: u32,
        account: &Account,
        report: &mut DriveReport,
    ) -> Result<()> {
        let ch = Change {
            state: Some(OutboxState::Verified),
            copy_state: Some(CopyState::FiledByServer),
            copy_folder: Some(b.folder.clone()),
            copy_uid: Some((b.uidvalidity as i64, Some(uid as i64))),
            verified_at: Some(now()),
            copy_attempts_inc: true,
            error: Some(None),
            ..Default::default()
        };
        self.change(
            row.id,
            Some(&[OutboxState::Sent, OutboxState::Copied]),
            ch,
            "outbox.verified",
            serde_json::json!({"copy": "filed_by_server", "folder": b.folder, "uid": uid}),
        )?;
        self.learn(b, row.id, uid, account)?;
        report.verified += 1;
        self.tell(
            row.id,
            format!(
                "verified: the server filed it into {} itself (uid {uid})",
                b.folder
            ),
        );
        Ok(())
    }

    /// Whether to wait for the server's own copy instead of appending ours, and if so the
    /// seconds until the next look: always with `filed_by_server = true`; once the server was
    /// seen filing into this folder, until `server_copy_wait_secs` after sending — a wait that
    /// ends without the server's copy unlearns it, and ours is appended.
    fn server_copy_expected(
        &self,
        b: &SentBox,
        row: &OutboxRow,
        account: &Account,
    ) -> Result<Option<u64>> {
        let sc = &account.cfg.sent_copy;
        let backoff = backoff_secs(
            sc.retry_secs,
            account.cfg.sync.backoff_max_secs,
            row.copy_attempts + 1,
        );
        if sc.filed_by_server {
            return Ok(Some(backoff));
        }
        let learned = self.store().sent_filing(account.id(), &b.folder)?;
        if !learned.is_some_and(|f| f.server_files) {
            return Ok(None);
        }
        let sent = row.sent_at.as_deref().unwrap_or(&row.created_at);
        let left = sc.server_copy_wait_secs.saturating_sub(secs_since(sent));
        if left > 0 {
            return Ok(Some(backoff.min(left).max(1)));
        }
        self.unlearn(b, row, account)?;
        Ok(None)
    }

    /// A copy without our token was found in `b`'s folder: the server files sent mail there
    /// itself. Told once, when it changes the conclusion.
    fn learn(&self, b: &SentBox, id: i64, uid: u32, account: &Account) -> Result<()> {
        let evidence = format!(
            "outbox #{id}: a copy that mailroom did not append, uid {uid} in {}",
            b.folder
        );
        if self
            .store()
            .set_sent_filing(account.id(), &b.folder, true, &evidence)?
        {
            let wait = account.cfg.sent_copy.server_copy_wait_secs;
            let _ = self.store().log_event(
                Some(account.id()),
                Level::Info,
                &format!(
                    "the server files sent mail into {} itself (outbox #{id}): later copies wait up to {wait} s for the server's before mailroom appends one",
                    b.folder
                ),
                Some(&evidence),
                None,
            );
        }
        Ok(())
    }

    /// The server did not file an item it was expected to file within the wait: mailroom
    /// appends its own copies again (and learns again if the server files later).
    fn unlearn(&self, b: &SentBox, row: &OutboxRow, account: &Account) -> Result<()> {
        let wait = account.cfg.sent_copy.server_copy_wait_secs;
        let evidence = format!(
            "outbox #{}: no copy of the server's in {} within {wait} s of sending",
            row.id, b.folder
        );
        if self
            .store()
            .set_sent_filing(account.id(), &b.folder, false, &evidence)?
        {
            let _ = self.store().log_event(
                Some(account.id()),
                Level::Info,
                &format!(
                    "the server did not file outbox #{} into {} within {wait} s: mailroom appends its own copies again",
                    row.id, b.folder
                ),
                Some(&evidence),
                None,
            );
        }
        Ok(())
    }

    /// The server files sent mail itself (by setting, or as learned): look again in `next`
    /// seconds before appending a copy of our own. Sending goes on meanwhile.
    fn wait_for_server_copy(
        &self,
        b: &SentBox,
        row: &OutboxRow,
        account: &Account,
        next: u64,
        report: &mut DriveReport,
    ) -> Result<()> {
        let sc = &account.cfg.sent_copy;
        let fix = if sc.filed_by_server {
            "nothing to do; if it never appears, set sent_copy.filed_by_server = false".to_string()
        } else {
            format!(
                "nothing to do; if the server's copy has not appeared {} s after sending, mailroom appends its own",
                sc.server_copy_wait_secs
            )
        };
        let ch = Change {
            copy_attempts_inc: true,
            next_attempt_at: Some(Some(at_plus(next))),
            error: Some(Some((
                format!(
                    "waiting for the server to file the message into {}",
                    b.folder
                ),
                fix,
            ))),
            ..Default::default()
        };
        self.change(
            row.id,
            Some(&[OutboxState::Sent]),
            ch,
            "outbox.copy_waiting",
            serde_json::json!({"folder": b.folder, "next_look_secs": next}),
        )?;
        report.copy_pending += 1;
        self.tell(
            row.id,
            format!(
                "copy pending: waiting for the server's own copy in {}",
                b.folder
            ),
        );
        Ok(())
    }

    /// Appends our copy (the copy's own bytes when they differ) with the item's token, which is
    /// committed first, and commits `copied`.
    async fn append_copy(&self, b: &mut SentBox, row: &OutboxRow) -> Result<()> {
        let id = row.id;
        let (raw, copy_raw) = self.store().outbox_raw(id)?.ok_or_else(|| no_item(id))?;
        // Committed before the APPEND: a run that stops right after it finds this copy by its
        // token and takes it as its own.
        let token = self
            .store()
            .outbox_copy_token(id, &crate::model::new_id())?
            .ok_or_else(|| no_item(id))?;
        let bytes = with_copy_token(&copy_raw.unwrap_or(raw), &token);
        let uid = b.append(&bytes, row.sent_at.as_deref()).await?;
        // Crash here and the restart finds our copy by its token before appending again.
        failpoint::hit("after_append");
        let note = format!(
            "copied to {}{}",
            b.folder,
            uid.map(|u| format!(" (uid {u})")).unwrap_or_default()
        );
        self.mark_copied(b, row, uid, "outbox.copied", note, Some(bytes.len()))?;
        Ok(())
    }

    /// Our copy is in `b`'s folder (just appended, or recognised by its token): `copied`.
    fn mark_copied(
        &self,
        b: &SentBox,
        row: &OutboxRow,
        uid: Option<u32>,
        action: &str,
        note: String,
        bytes: Option<usize>,
    ) -> Result<()> {
        let ch = Change {
            state: Some(OutboxState::Copied),
            copy_state: Some(CopyState::Appended),
            copy_folder: Some(b.folder.clone()),
            copy_uid: Some((b.uidvalidity as i64, uid.map(|u| u as i64))),
            copy_attempts_inc: true,
            error: Some(None),
            ..Default::default()
        };
        let detail = serde_json::json!({"folder": b.folder, "uid": uid, "bytes": bytes, "note": row.copy_note});
        self.change(row.id, Some(&[OutboxState::Sent]), ch, action, detail)?;
        self.tell(row.id, note);
        Ok(())
    }

    /// Verifies the copy by Message-ID; a copy the server filed meanwhile replaces ours (ours
    /// is removed) and teaches that the server files.
    async fn verify_copy(
        &self,
        b: &mut SentBox,
        row: &OutboxRow,
        account: &Account,
        report: &mut DriveReport,
    ) -> Result<()> {
        let found = b.copies(&row.message_id, &ours_of(row)).await?;
        if found.is_empty() {
            return Err(AppError::transient(
                format!("the copy is not found in {} by its Message-ID", b.folder),
                format!("Message-ID <{}>", row.message_id),
                "mailroom checks again later; if it persists, the server may filter that folder",
            ));
        }
        let mut ch = Change {
            state: Some(OutboxState::Verified),
            verified_at: Some(now()),
            error: Some(None),
            ..Default::default()
        };
        let mut note = format!("verified: found in {} by Message-ID", b.folder);
        if let Some(&theirs) = found.theirs.first() {
            self.learn(b, row.id, theirs, account)?;
            let ours = found.ours.first().copied();
            // The server filed its own copy too (after we looked): take ours back.
            let removed = match ours {
                Some(our) => b.remove(our).await?.then_some(our),
                None => None,
            };
            if ours.is_none() || removed.is_some() {
                ch.copy_state = Some(CopyState::FiledByServer);
                ch.copy_uid = Some((b.uidvalidity as i64, Some(theirs as i64)));
                note = match removed {
                    Some(our) => format!(
                        "verified: the server filed its own copy too, so mailroom removed its duplicate (uid {our})"
                    ),
                    None => format!("verified: the server filed it into {} itself", b.folder),
                };
            }
        }
        self.change(
            row.id,
            Some(&[OutboxState::Copied, OutboxState::Sent]),
            ch,
            "outbox.verified",
            serde_json::json!({"folder": b.folder, "ours": found.ours, "theirs": found.theirs}),
        )?;
        report.verified += 1;
        self.tell(row.id, note);
        Ok(())
    }

    /// A copy step failed: what happens next is the account's `on_failure` choice.
    fn copy_failed(
        &self,
        id: i64,
        account: &Account,
        e: &AppError,
        report: &mut DriveReport,
    ) -> Result<()> {
        let Some(row) = self.store().outbox_get(id)? else {
            return Ok(());
        };
        let sc = &account.cfg.sent_copy;
        report.errors.push(ErrorSummary::new(Some(id), e));
        if row.state == OutboxState::Uncertain {
            let ch = Change {
                next_attempt_at: Some(Some(at_plus(sc.retry_secs.max(1)))),
                ..Default::default()
            };
            self.change(
                id,
                Some(&[OutboxState::Uncertain]),
                ch,
                "outbox.uncertain_check_failed",
                serde_json::json!({"error": e.summary}),
            )?;
            report.uncertain += 1;
            self.tell(
                id,
                format!("uncertain; cannot check Sent now: {}", e.summary),
            );
            return Ok(());
        }
        let err = Some(Some((
            format!("copy to Sent failed: {}", e.summary),
            e.fix.clone(),
        )));
        let detail = serde_json::json!({"error": e.summary, "detail": e.detail, "on_failure": format!("{:?}", sc.on_failure).to_lowercase()});
        // What the failure does to the item: retry later, or end the copy as failed / skipped.
        let (copy_state, next, action) = match sc.on_failure {
            CopyOnFailure::Retry | CopyOnFailure::Queue => {
                let wait = if sc.on_failure == CopyOnFailure::Retry {
                    backoff_secs(
                        sc.retry_secs,
                        account.cfg.sync.backoff_max_secs,
                        row.copy_attempts + 1,
                    )
                } else {
                    sc.retry_secs.max(sc.batch_secs).max(1)
                };
                (None, Some(at_plus(wait)), "outbox.copy_retry_later")
            }
            CopyOnFailure::Notify => (Some(CopyState::Failed), None, "outbox.copy_failed"),
            CopyOnFailure::Skip => (Some(CopyState::Skipped), None, "outbox.copy_skipped"),
        };
        let ch = Change {
            copy_state,
            copy_attempts_inc: true,
            error: err,
            next_attempt_at: Some(next.clone()),
            ..Default::default()
        };
        self.change(
            id,
            Some(&[OutboxState::Sent, OutboxState::Copied]),
            ch,
            action,
            detail,
        )?;
        match (sc.on_failure, next) {
            (CopyOnFailure::Notify, _) => {
                self.alert_copy_failed(account, id, e);
                let _ = self.store().log_event(
                    Some(account.id()),
                    Level::Error,
                    &format!("outbox #{id}: the copy to Sent failed: {}", e.summary),
                    Some(&e.detail),
                    Some(&format!("{}; then `mailroom outbox retry {id}`", e.fix)),
                );
                report.copy_pending += 1;
                self.tell(
                    id,
                    format!(
                        "copy failed: {} (retry with `mailroom outbox retry {id}`)",
                        e.summary
                    ),
                );
            }
            (CopyOnFailure::Skip, _) => {
                let _ = self.store().log_event(
                    Some(account.id()),
                    Level::Info,
                    &format!(
                        "outbox #{id}: copy to Sent skipped after a failure: {}",
                        e.summary
                    ),
                    Some(&e.detail),
                    None,
                );
                self.tell(id, format!("copy skipped: {}", e.summary));
            }
            (_, next) => {
                report.copy_pending += 1;
                self.tell(
                    id,
                    format!(
                        "copy pending: {} — next try at {}",
                        e.summary,
                        next.unwrap_or_default()
                    ),
                );
            }
        }
        Ok(())
    }
}

impl Outbox {
    /// The copy failed for good (`on_failure = "notify"`): an alert, with the retry command.
    fn alert_copy_failed(&self, account: &Account, id: i64, e: &AppError) {
        let mut alert = e.clone();
        alert.fix = format!("{}; then `mailroom outbox retry {id}`", e.fix);
        let kind = crate::config::EventKind::CopyFailed;
        crate::alerts::outbox(&self.store(), account.id(), kind, id, &alert);
    }
}

/// Where an item's copy goes (None = the detected Sent folder). An appended copy is verified
/// where it was put, even if the settings changed since.
fn copy_folder_for(sc: &SentCopyOptions, row: &OutboxRow) -> Option<CopyFolder> {
    if row.copy_state == Some(CopyState::Appended)
        && let Some(f) = &row.copy_folder
    {
        return Some(CopyFolder {
            name: f.clone(),
            setting: "copy_folder (where it was appended)",
        });
    }
    let kind = if row.in_reply_to.as_deref().is_some_and(|r| !r.is_empty()) {
        MessageKind::Reply
    } else {
        MessageKind::New
    };
    sc.folder_for(kind)
}

/// What the copy step did with a pending copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    /// Ours is there now (appended, or recognised by its token): verify it next.
    Appended,
    /// Found as filed by the server, or left to wait for it: nothing more this pass.
    Settled,
}

/// How to recognise the item's own copy: its token, or (appended before tokens existed) the
/// UID its APPEND reported.
fn ours_of(row: &OutboxRow) -> Ours {
    let uid = match (row.copy_uidvalidity, row.copy_uid) {
        (Some(v), Some(u)) => u32::try_from(v).ok().zip(u32::try_from(u).ok()),
        _ => None,
    };
    Ours {
        token: row.copy_token.clone(),
        uid: if row.copy_state == Some(CopyState::Appended) {
            uid
        } else {
            None
        },
    }
}

/// Whole seconds since an RFC 3339 time (an unreadable time counts as long ago).
fn secs_since(t: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| {
            (chrono::Utc::now() - d.with_timezone(&chrono::Utc))
                .num_seconds()
                .max(0) as u64
        })
        .unwrap_or(u64::MAX)
}
