//! Customers, matching, triage, deny lists and undo (issue 5). Decides; the store reads and
//! writes rows. Never imports the UI.
//!
//! Sync calls [`match_messages`] after storing a batch (it matches, sets the denied flag and
//! refreshes the search index rows) and may ask [`DenyLists::denied`] before storing.

pub mod address;
pub mod book;
pub mod csvio;
pub mod deny;
pub mod matching;
pub mod search;
pub mod timeline;
pub mod triage;

pub use deny::DenyLists;
pub use matching::{MatchSummary, match_messages, rematch_all};
pub use triage::{Desk, may_see, visible_accounts};

#[cfg(test)]
mod tests;
