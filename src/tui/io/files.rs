//! Files the console writes on the operator's request (attachments, quarantined .eml) and the
//! reads behind them.

use crate::error::{AppError, Result};
use crate::ops::Ctx;
use crate::store::Store;

/// A quarantined message of an account this operator may see (as `quarantine …` checks).
pub(super) fn quarantine_row(
    ctx: &Ctx,
    store: &Store,
    id: i64,
) -> Result<(crate::store::QuarantineRow, Vec<u8>)> {
    let config = ctx.config()?;
    let visible: Vec<String> = config
        .accounts
        .values()
        .filter(|a| ctx.sees(a))
        .map(|a| a.id.clone())
        .collect();
    store
        .quarantine_get(id)?
        .filter(|(r, _)| visible.contains(&r.account_id))
        .ok_or_else(|| {
            AppError::usage(
                format!("no quarantined message {id}"),
                "it may have been removed; the list is re-read",
            )
        })
}

/// Writes a new file (0600); an existing path is refused, never overwritten.
pub(super) fn write_new(path: &str, bytes: &[u8]) -> Result<()> {
    let p = std::path::Path::new(path);
    if p.exists() {
        return Err(AppError::usage(
            format!("{path} already exists"),
            "choose another path (nothing is overwritten)",
        ));
    }
    crate::config::write_atomic(p, bytes, 0o600)
}
