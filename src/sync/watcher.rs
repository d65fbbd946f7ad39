//! The watcher: a connection of its own, for two jobs. It wakes the account task when mail
//! arrives or changes in any synced folder, and it is the account's liveness probe.
//!
//! - With NOTIFY (RFC 5465) it asks for news of every synced folder (`NOTIFY SET STATUS
//!   (MAILBOXES (…) (MessageNew MessageExpunge FlagChange))`) and IDLEs: the server sends a
//!   STATUS the moment anything changes in any of them.
//! - Without it, it IDLEs on INBOX (or sends NOOP where the server has no IDLE or the user
//!   turned it off) and every `sync.status_poll_secs` compares the synced folders' counters
//!   (LIST-STATUS, or STATUS) with the last ones: new mail elsewhere starts a pass within about
//!   that long, not at the next full poll.
//!
//! IDLE is ended and renewed at least every half `sync.timeout_secs`, and the answer to DONE
//! (or NOOP) must come within the timeout, so a server that went away is noticed within about
//! 1.5 × the timeout, with no keypress and no command. TCP keepalive is on as well. When the
//! connection fails the watcher reports it to the account task and ends; the task marks the
//! account `disconnected` and retries with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use crate::account::Account;
use crate::error::{AppError, Result};
use crate::imap::ImapSession;
use crate::imap::append::quote;
use crate::imap::connect::{call_limit, called};
use crate::imap::discovery::{self, FolderStatus, ListCaps};
use crate::imap::{fetch, unsolicited};

/// What the watcher needs.
pub struct Watch {
    pub account: Account,
    pub credential: crate::secret::Credential,
    /// INBOX's wire name.
    pub inbox: String,
    /// The synced folders' wire names.
    pub folders: Vec<String>,
    /// Notified when the server reports a change.
    pub changed: Arc<Notify>,
    /// Hears the failure that ended the watcher.
    pub lost: mpsc::UnboundedSender<AppError>,
    pub shutdown: watch::Receiver<bool>,
}

/// How long one IDLE (or the pause between NOOPs) lasts: within `idle_renew_secs` (capped below
/// the server's 29 minutes) and at most half the timeout, so a dead server shows within about
/// 1.5 × `timeout_secs`.
pub fn period(idle_renew_secs: u64, timeout_secs: u64) -> Duration {
    let renew = idle_renew_secs.clamp(1, 29 * 60);
    let probe = (timeout_secs / 2).max(1);
    Duration::from_secs(renew.min(probe))
}

/// Runs until the connection fails (reported on `lost`) or shutdown.
pub async fn run(w: Watch) {
    let mut shutdown = w.shutdown.clone();
    let r = tokio::select! {
        r = watch_folders(&w) => r,
        _ = shutdown.changed() => return,
    };
    if let Err(e) = r {
        tracing::debug!("the watcher of {} ended: {e}", w.account.name);
        let _ = w.lost.send(e);
    }
}

/// How the watcher hears of changes.
enum Mode {
    /// NOTIFY for every synced folder, then IDLE.
    Notify,
    /// IDLE (or NOOP) on INBOX, and the folders' counters compared every so often.
    Poll(ListCaps),
}

async fn watch_folders(w: &Watch) -> Result<()> {
    let o = &w.account.cfg.sync;
    let mut session = crate::imap::connect(&w.account.imap_target(), &w.credential).await?;
    let r = tokio::time::timeout(call_limit(&session), session.capabilities()).await;
    let caps = called(&mut session, "CAPABILITY", r)?;
    let words = crate::imap::connect::capability_words(&caps);
    let idle = o.idle && caps.has_str("IDLE");
    let mode = if caps.has_str("NOTIFY") && !w.folders.is_empty() {
        let boxes: Vec<String> = w.folders.iter().map(|f| quote(f)).collect();
        let cmd = format!(
            "NOTIFY SET STATUS (MAILBOXES ({}) (MessageNew MessageExpunge FlagChange))",
            boxes.join(" ")
        );
        fetch::simple(
            &mut session,
            "asking for news of every folder (NOTIFY)",
            &cmd,
        )
        .await?;
        Mode::Notify
    } else {
        fetch::select(&mut session, &w.inbox, false, None, true).await?;
        Mode::Poll(ListCaps::from_words(&words))
    };
    // Whatever arrived before this point is covered by one more pass.
    w.changed.notify_one();
    let every = period(o.idle_renew_secs, o.timeout_secs);
    let poll = Duration::from_secs(o.status_poll_secs.max(1));
    let mut last: Option<HashMap<String, FolderStatus>> = None;
    loop {
        let wait = match mode {
            Mode::Notify => every,
            Mode::Poll(_) => every.min(poll),
        };
        let mut changed = if idle {
            fetch::idle(&mut session, wait).await?
        } else {
            tokio::time::sleep(wait).await;
            fetch::simple(&mut session, "checking the server (NOOP)", "NOOP").await?;
            !unsolicited::take(&mut session).is_quiet()
        };
        if let Mode::Poll(list) = mode {
            changed |= counters_moved(&mut session, list, &w.folders, &mut last).await?;
        }
        if changed {
            w.changed.notify_one();
        }
    }
}

/// Compares the synced folders' counters with the last ones (the first look only records them).
async fn counters_moved(
    session: &mut ImapSession,
    caps: ListCaps,
    folders: &[String],
    last: &mut Option<HashMap<String, FolderStatus>>,
) -> Result<bool> {
    // Without CONDSTORE the counters miss flag changes; new mail and expunges show.
    let listing = discovery::list_with_status(session, caps, folders).await?;
    unsolicited::take(session);
    let now: HashMap<String, FolderStatus> = listing
        .status
        .into_iter()
        .filter(|(k, _)| folders.contains(k))
        .collect();
    let moved = last.as_ref().is_some_and(|l| *l != now);
    *last = Some(now);
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_period_finds_a_dead_server_within_the_bound() {
        assert_eq!(period(25 * 60, 60), Duration::from_secs(30));
        assert_eq!(period(20, 60), Duration::from_secs(20));
        assert_eq!(period(25 * 60, 2), Duration::from_secs(1));
        assert_eq!(period(99_999, 99_999), Duration::from_secs(29 * 60));
    }
}
