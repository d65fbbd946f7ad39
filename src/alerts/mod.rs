//! Alerts: telling someone when sync or sending goes wrong, quietly.
//!
//! 1. **Raising** (this file): where an account's state changes (sync), an outbox item fails or
//!    turns uncertain, a Sent copy fails, or a message is quarantined, the engine queues an
//!    event in the store — one per transition, never one per retry. Raising is one small write
//!    and never waits on a channel.
//! 2. **Routing** (`route.rs`): the process holding the account's sync lease turns new events
//!    into deliveries, one per channel that wants them, at most one alert per account per
//!    `alerts.min_interval_secs`; what comes meanwhile is held back and sent as one digest
//!    when the window ends. One IMMEDIATE transaction per account: two processes never route
//!    the same event.
//! 3. **Delivering** (`deliver.rs`, `http.rs`): a command, a mail, a webhook; each delivery is
//!    claimed in the store first (exactly once across consoles and daemons), runs with a time
//!    limit on the alerts worker (`worker.rs`, a thread of its own, never the sync task), and
//!    is retried with backoff until it gets out or is given up. Every step goes to the event
//!    log and the audit log.

pub mod deliver;
pub mod http;
pub mod route;
pub mod worker;

use serde::{Deserialize, Serialize};

use crate::config::EventKind;
use crate::error::AppError;
use crate::mail::sanitize::clean;
use crate::store::{AccountState, NewAlertEvent, Store};

/// Wakes this process's alerts worker at once when an event was raised here (other processes'
/// events are found by the worker's one-second look).
static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

fn wake() {
    WAKE.notify_one();
}

/// What a channel receives: the event JSON (contract: `{"event","account","state","at","what",
/// "fix","code"}`), plus the event's id (to tell a retried delivery from a new alert), the host
/// that raised it, and for a digest the events it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub id: Option<i64>,
    pub event: String,
    pub account: Option<String>,
    pub state: Option<String>,
    pub at: String,
    pub what: String,
    pub fix: String,
    pub code: Option<String>,
    pub host: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Held>,
}

/// One event a digest summarises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub id: i64,
    pub event: String,
    pub state: Option<String>,
    pub at: String,
    pub what: String,
    pub fix: String,
    pub code: Option<String>,
}

impl Payload {
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The event a person reads first: `work: disconnected`.
    pub fn title(&self) -> String {
        match &self.account {
            Some(a) => format!("{a}: {}", self.event),
            None => self.event.clone(),
        }
    }
}

/// The account's state changed: queue the alert this transition means. `error` is the failure
/// behind a failing state. Healthy again (`idle`) after a failure raised before is `recovered`;
/// the same failing state again (a retry) raises nothing.
pub fn state_changed(
    store: &Store,
    account_id: &str,
    state: AccountState,
    error: Option<&AppError>,
) {
    let kind = match state {
        AccountState::Degraded => EventKind::Degraded,
        AccountState::Disconnected => EventKind::Disconnected,
        AccountState::Error => match error {
            Some(e) if e.fix.contains("account login") => EventKind::LoginNeeded,
            _ => EventKind::Error,
        },
        AccountState::Idle => EventKind::Recovered,
        _ => return,
    };
    let failing = (kind != EventKind::Recovered).then_some(kind.as_str());
    let (what, fix, code) = match error {
        Some(e) => (what_of(e), clean(&e.fix), Some(e.code.as_str())),
        None => (String::new(), String::new(), None),
    };
    let raised = store.alert_transition(account_id, failing, |prev| {
        let what = match kind {
            EventKind::Recovered => format!(
                "the account syncs again (it was {})",
                prev?.replace('_', " ")
            ),
            _ => what,
        };
        let recovered = kind == EventKind::Recovered;
        Some(NewAlertEvent {
            account_id: Some(account_id),
            event: kind.as_str(),
            state: Some(state.as_str()),
            what,
            fix: if recovered { "" } else { &fix },
            code: if recovered { None } else { code },
        })
    });
    done(raised.map(|id| id.is_some()), kind);
}

/// An outbox item failed, turned uncertain, or its Sent copy failed (each its own transition).
pub fn outbox(store: &Store, account_id: &str, kind: EventKind, item: i64, e: &AppError) {
    let what = format!("outbox #{item}: {}", what_of(e));
    raise(
        store,
        account_id,
        kind,
        &what,
        &clean(&e.fix),
        Some(e.code.as_str()),
    );
}

/// A message was quarantined (the first time: a retry that fails again raises nothing).
pub fn quarantined(store: &Store, account_id: &str, folder: &str, uid: u32, error: &str) {
    let what = clean(&format!(
        "message UID {uid} in {folder} quarantined: {}",
        crate::error::short_detail(error)
    ));
    let fix = "see `mailroom quarantine list`; retry, skip or save it";
    raise(store, account_id, EventKind::Quarantined, &what, fix, None);
}

fn raise(
    store: &Store,
    account_id: &str,
    kind: EventKind,
    what: &str,
    fix: &str,
    code: Option<&str>,
) {
    let state = store
        .account(account_id)
        .ok()
        .flatten()
        .map(|r| r.state.as_str());
    let raised = store.alert_raise(&NewAlertEvent {
        account_id: Some(account_id),
        event: kind.as_str(),
        state,
        what: what.to_string(),
        fix,
        code,
    });
    done(raised.map(|_| true), kind);
}

/// Raising never fails the caller: a failure to queue is only logged.
fn done(raised: crate::error::Result<bool>, kind: EventKind) {
    match raised {
        Ok(true) => wake(),
        Ok(false) => {}
        Err(e) => tracing::warn!("cannot queue the {} alert: {e}", kind.as_str()),
    }
}

/// An error's words for an alert: summary and detail, cleaned of anything a server sent that a
/// terminal or a mail reader would act on.
fn what_of(e: &AppError) -> String {
    let text = if e.detail.is_empty() {
        e.summary.clone()
    } else {
        format!("{}: {}", e.summary, crate::error::short_detail(&e.detail))
    };
    clean(&text)
}

/// This machine's name, as alerts say where they come from.
pub fn host() -> String {
    crate::store::hostname()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[test]
    fn one_alert_per_transition_with_the_code_and_login_needed_for_a_login_fix() {
        let s = Store::open_in_memory().unwrap();
        s.insert_account("a1", "work", true).unwrap();
        let down = AppError::transient("cannot connect to h:1", "refused \u{1b}[31m", "check it")
            .with_code(Code::NetRefused);
        state_changed(&s, "a1", AccountState::Syncing, None);
        state_changed(&s, "a1", AccountState::Idle, None);
        state_changed(&s, "a1", AccountState::Disconnected, Some(&down));
        state_changed(&s, "a1", AccountState::Disconnected, Some(&down));
        state_changed(&s, "a1", AccountState::Syncing, None);
        state_changed(&s, "a1", AccountState::Idle, None);
        let login =
            AppError::needs_user("token refresh failed", "", "`mailroom account login work`");
        s.set_state("a1", AccountState::Error).unwrap();
        state_changed(&s, "a1", AccountState::Error, Some(&login));
        outbox(&s, "a1", EventKind::OutboxFailed, 7, &down);
        quarantined(&s, "a1", "INBOX", 42, "bad header");
        let evs = s.alert_events().unwrap();
        let kinds: Vec<&str> = evs.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "disconnected",
                "recovered",
                "login_needed",
                "outbox_failed",
                "quarantined"
            ]
        );
        assert_eq!(evs[0].code.as_deref(), Some("net.refused"));
        assert!(!evs[0].what.contains('\u{1b}'), "{}", evs[0].what);
        assert!(evs[0].what.contains("cannot connect to h:1"));
        assert_eq!(evs[1].what, "the account syncs again (it was disconnected)");
        assert_eq!(evs[1].code, None);
        assert_eq!(evs[3].what, "outbox #7: cannot connect to h:1: refused ");
        assert!(evs[4].what.contains("UID 42 in INBOX"));
        assert_eq!(
            evs[4].state.as_deref(),
            Some("error"),
            "the account's state then"
        );
    }
}
