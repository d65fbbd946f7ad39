//! End-to-end tests against the real local Dovecot + Postfix (scripts/mailserver). One test
//! binary, one module per area, so the crate links once.

mod common;
mod db;

mod account;
mod account_edit;
mod alerts;
mod console_mail;
mod corpus;
mod counts;
mod crm;
mod daemon;
mod errors;
mod fakeimap;
mod faults;
mod flags;
mod fleet;
mod hosts;
mod identity;
mod linkem;
mod monitoring;
mod oauth2;
mod operators;
mod outbox_memory;
mod output;
mod proxy;
mod send;
mod settings;
mod smtp_auth;
mod speed;
mod store_copy;
mod sync;
mod team;
mod tui;
mod upgrade;
mod visibility_a;
mod visibility_b;
mod visibility_c;
mod visibility_console;
