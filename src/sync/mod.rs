//! The sync engine: one pass over an account (push queued local changes, list folders, sync
//! each chosen folder incrementally, prefetch small bodies), and the supervisor that keeps
//! accounts in sync in the background. Reports through the store and typed events only.

pub mod bodies;
mod classify;
pub mod engine;
pub mod events;
pub mod fleet;
mod folder;
mod newmail;
pub mod ops;
mod parallel;
pub mod plan;
mod prefetch;
pub mod supervisor;
mod task;
mod watcher;
mod writer;

pub use engine::{Caps, FolderSummary, PassSummary, SyncSession, open_session, run_pass};
pub use events::{EventReceiver, EventSender, SyncEvent};
pub use fleet::{DEFAULT_LEASE_SECS, LeaseOptions, WAITING_FOR_SLOT};
pub use supervisor::Supervisor;
