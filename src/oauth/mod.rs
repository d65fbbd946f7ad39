//! OAuth2 sign-in, the protocol side (ground floor, no store): the provider's endpoints
//! ([`provider`]), the calls to its authorization server ([`flow`], over the small HTTP client in
//! [`http`]), the loopback redirect ([`loopback`]) and the SASL mechanisms that present a token
//! to IMAP and SMTP ([`sasl`]). Keeping an account's tokens fresh — sealed in the store, one
//! refresh at a time across processes — is `tokens.rs`, a floor up.

pub mod flow;
pub mod http;
pub mod loopback;
pub mod provider;
pub mod sasl;

pub use flow::{Client, TokenSet};
pub use provider::Provider;
