//! mailroom: keeps mailboxes in sync with a local SQLite cache over IMAP/SMTP, matches mail to
//! customers, and lets an operator triage mail from unknown senders — from a terminal console or
//! headless commands.
//!
//! Walls: `imap smtp sync store mail` (and the other domain modules) never import ratatui or
//! crossterm; `tui` never does network or disk I/O itself.

pub mod account;
pub mod check;
pub mod cli;
pub mod config;
pub mod crm;
pub mod error;
pub mod failpoint;
pub mod imap;
pub mod logging;
pub mod mail;
pub mod model;
pub mod ops;
pub mod outbox;
pub mod presets;
pub mod secret;
pub mod smtp;
pub mod store;
pub mod sync;
pub mod tui;
