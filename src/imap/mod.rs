//! IMAP: connecting (TLS/STARTTLS, verification), the watched stream under every session,
//! folder discovery, the commands sync speaks itself, APPEND with UIDPLUS. Knows nothing of
//! the UI.

pub mod append;
pub mod auth;
pub mod connect;
pub mod discovery;
pub mod exec;
pub mod fetch;
pub mod stream;
pub mod tls;
pub mod unsolicited;

pub use connect::{ImapSession, ImapTarget, TlsOptions, connect};
