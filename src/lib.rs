//! mailroom: keeps mailboxes in sync with a local SQLite cache over IMAP/SMTP, matches mail to
//! customers, and lets an operator triage mail from unknown senders — from a terminal console or
//! headless commands.
//!
//! Layers (docs/architecture.md, kept by scripts/check-layers): the faces `cli` and `tui` call
//! the service layer `ops`, which drives the domain engines (`sync outbox crm check tokens`) over
//! the ground floor (`store imap smtp oauth mail model config secret`).

// Nothing that comes from the network, the disk or the user may bring the process down: no
// unwrap, expect or panic outside tests (an exception says why, next to an `allow`).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod account;
pub mod alerts;
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
pub mod oauth;
pub mod ops;
pub mod outbox;
pub mod presets;
pub mod secret;
pub mod smtp;
pub mod store;
pub mod sync;
pub mod tokens;
pub mod tui;
