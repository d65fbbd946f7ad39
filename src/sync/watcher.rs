//! The watcher: INBOX on a connection of its own, for two jobs. It wakes the account task when
//! mail arrives (IDLE, or NOOP where the server has no IDLE or the user turned it off), and it
//! is the account's liveness probe: IDLE is ended and renewed at least every half
//! `sync.timeout_secs`, and the answer to DONE (or NOOP) must come within the timeout, so a
//! server that went away is noticed within about 1.5 × the timeout, with no keypress and no
//! command. TCP keepalive is on as well. When the connection fails the watcher reports it to the
//! account task and ends; the task marks the account `disconnected` and retries with backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use crate::account::Account;
use crate::error::{AppError, Result};
use crate::imap::connect::{call_limit, called};
use crate::imap::{fetch, unsolicited};

/// What the watcher needs.
pub struct Watch {
    pub account: Account,
    pub credential: crate::secret::Credential,
    /// INBOX's wire name.
    pub inbox: String,
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
        r = watch_inbox(&w) => r,
        _ = shutdown.changed() => return,
    };
    if let Err(e) = r {
        tracing::debug!("the watcher of {} ended: {e}", w.account.name);
        let _ = w.lost.send(e);
    }
}

async fn watch_inbox(w: &Watch) -> Result<()> {
    let o = &w.account.cfg.sync;
    let mut session = crate::imap::connect(&w.account.imap_target(), &w.credential).await?;
    let r = tokio::time::timeout(call_limit(&session), session.capabilities()).await;
    let caps = called(&mut session, "CAPABILITY", r)?;
    let idle = o.idle && caps.has_str("IDLE");
    fetch::select(&mut session, &w.inbox, false, None, true).await?;
    // Whatever arrived before this EXAMINE is covered by one more pass.
    w.changed.notify_one();
    let every = period(o.idle_renew_secs, o.timeout_secs);
    loop {
        let changed = if idle {
            fetch::idle(&mut session, every).await?
        } else {
            tokio::time::sleep(every).await;
            fetch::simple(&mut session, "checking the server (NOOP)", "NOOP").await?;
            !unsolicited::take(&mut session).is_quiet()
        };
        if changed {
            w.changed.notify_one();
        }
    }
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
