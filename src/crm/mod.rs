//! Customers, matching, triage, deny lists and undo (issue 5). Decides; the store reads and
//! writes rows. Never imports the UI.
//!
//! Sync calls [`match_pending`] after storing mail (or [`match_messages`] with the ids of a
//! batch): it matches, and sets the denied flag from the deny lists. Readers (triage, timelines,
//! search) call `match_pending` first too, so mail stored without matching is never missed.

pub mod address;
pub mod book;
pub mod csvio;
pub mod deny;
pub mod matching;
pub mod search;
pub mod timeline;
pub mod triage;

pub use deny::DenyLists;
pub use matching::{MatchSummary, match_messages, match_pending, rematch_all};
pub use triage::{Desk, may_see, visible_accounts};

#[cfg(test)]
mod tests;
