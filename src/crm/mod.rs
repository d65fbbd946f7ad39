//! Customers, matching, triage, deny lists and undo (issue 5). Decides; the store reads and
//! writes rows. Never imports the UI.
//!
//! Sync calls [`after_sync`] after each pass ([`match_pending`], or [`match_messages`] with the
//! ids of a batch): it matches, and sets the denied flag from the deny lists. The CLI's crm commands
//! call `match_pending` first too, and the console runs it in the background when the database
//! changed (never inside a page load), so mail stored without matching is never missed.
//!
//! Who may see which account is not decided here: the service layer's gate (`ops::access`)
//! hands the desk the accounts an operator may see.

pub mod address;
pub mod book;
pub mod csvio;
pub mod deny;
pub mod matching;
pub mod query;
pub mod search;
pub mod timeline;
pub mod triage;

pub use deny::DenyLists;
pub use matching::{MatchSummary, match_messages, match_pending, rematch_all};
pub use triage::{Desk, may_see, visible_accounts};

#[cfg(test)]
mod tests;

/// What sync calls after each successful pass: matches the new mail. A failure here never fails
/// the sync (the mail is stored; the next catch-up matches it), it is logged with the fix.
pub fn after_sync(store: &crate::store::Store, config: &crate::config::Config, account_id: &str) {
    if let Err(e) = match_pending(store, config) {
        let _ = store.log_event(
            Some(account_id),
            crate::store::Level::Warn,
            "matching new mail to customers failed",
            Some(&e.to_string()),
            Some("it is retried on the next pass, by the console when the database changes, and by every triage command"),
        );
    }
}
