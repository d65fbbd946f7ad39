//! Protocol-neutral mail types and text handling (MIME parsing, sanitising).

pub mod compose;
pub mod parse;
pub mod sanitize;
pub mod trace;
