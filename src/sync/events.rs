//! Small, data-light events from sync tasks to whoever listens (the console in-process). They
//! are hints to re-read the store, never the record itself: SQLite is the truth.

use serde::Serialize;

use crate::store::AccountState;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SyncEvent {
    /// The account's state changed (syncing, idle, degraded, …).
    StateChanged {
        account_id: String,
        state: AccountState,
    },
    /// Progress of the current folder pass.
    Progress {
        account_id: String,
        folder: String,
        done: u64,
        total: u64,
    },
    /// Messages of this folder changed in the store: re-read the visible page.
    FolderChanged { account_id: String, folder: String },
    /// A pass finished.
    PassDone {
        account_id: String,
        new: u64,
        updated: u64,
        vanished: u64,
        duration_ms: u64,
    },
    /// A failure (also in the events table), with the fix.
    Failed {
        account_id: String,
        what: String,
        fix: String,
    },
}

pub type EventSender = tokio::sync::broadcast::Sender<SyncEvent>;
pub type EventReceiver = tokio::sync::broadcast::Receiver<SyncEvent>;

/// A channel for sync events; subscribers that fall behind lose old events, not new ones.
pub fn channel() -> (EventSender, EventReceiver) {
    tokio::sync::broadcast::channel(256)
}

/// Sends if anyone listens; sync never waits on a listener.
pub fn emit(tx: Option<&EventSender>, ev: SyncEvent) {
    if let Some(tx) = tx {
        let _ = tx.send(ev);
    }
}
