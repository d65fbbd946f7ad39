//! IMAP: connecting (TLS/STARTTLS, verification), folder discovery, APPEND with UIDPLUS.
//! Knows nothing of the UI.

pub mod append;
pub mod connect;
pub mod discovery;
pub mod fetch;

pub use connect::{ImapSession, ImapTarget, TlsOptions, connect};
