//! Files the console writes on the operator's request (attachments, quarantined .eml) and the
//! reads behind them.

use crate::error::{AppError, Result};
use crate::store::Store;

/// Attachments of a fetched body, parsed the way `message show` does.
pub(super) fn attachments_of(
    store: &Store,
    id: i64,
) -> Result<Vec<crate::store::console::AttachmentInfo>> {
    let body = store.message(id)?.and_then(|m| m.body);
    Ok(body
        .as_deref()
        .and_then(crate::mail::parse::parse_body)
        .map(|b| {
            b.attachments
                .into_iter()
                .map(|a| crate::store::console::AttachmentInfo {
                    index: a.index,
                    name: a.name,
                    content_type: a.content_type,
                    size: a.size,
                })
                .collect()
        })
        .unwrap_or_default())
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
