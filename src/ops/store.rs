//! `store copy`: moving an installation from one store to another (SQLite → PostgreSQL and
//! back). The source is opened to read only; the target is created or migrated to this
//! version's schema and must hold no data. Every table is copied in one transaction on the
//! target and its rows are counted on both sides.

use serde::Serialize;

use crate::config::StoreUrl;
use crate::error::{AppError, Result};
use crate::store::{Store, TableCount};

/// What a copy did: the two stores (passwords left out) and every table's counts.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub from: String,
    pub to: String,
    pub tables: Vec<TableCount>,
}

/// Copies the store at `from` into the empty store at `to`.
pub fn copy(from: &str, to: &str) -> Result<CopyReport> {
    let (source_url, target_url) = (StoreUrl::parse(from)?, StoreUrl::parse(to)?);
    if same_store(&source_url, &target_url) {
        return Err(AppError::usage(
            "--from and --to name the same store",
            "name the store to copy with --from and a new, empty one with --to",
        ));
    }
    if let StoreUrl::Sqlite(path) = &source_url
        && !path.exists()
    {
        return Err(AppError::local(
            format!("there is no store at {}", source_url.display()),
            "the source SQLite file does not exist",
            "name the installation's mailroom.db (sqlite:///path/to/home/mailroom.db) with --from",
        ));
    }
    let source = Store::open_url_read_only(&source_url)?;
    let target = Store::open_url(&target_url)?;
    let tables = source.copy_into(&target)?;
    Ok(CopyReport {
        from: redacted(&source_url),
        to: redacted(&target_url),
        tables,
    })
}

fn same_store(a: &StoreUrl, b: &StoreUrl) -> bool {
    match (a, b) {
        (StoreUrl::Sqlite(x), StoreUrl::Sqlite(y)) => {
            x == y || matches!((x.canonicalize(), y.canonicalize()), (Ok(p), Ok(q)) if p == q)
        }
        (StoreUrl::Postgres(x), StoreUrl::Postgres(y)) => x == y,
        _ => false,
    }
}

/// A store URL without a password (`postgres://user:secret@host/db` → `postgres://user@host/db`).
pub fn redacted(url: &StoreUrl) -> String {
    let text = url.display();
    let Some((scheme, rest)) = text.split_once("://") else {
        return text;
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_and_one_store_is_not_copied_onto_itself() {
        let u = StoreUrl::parse("postgres://mr:s3cret@127.0.0.1:15432/mailroom").unwrap();
        assert_eq!(redacted(&u), "postgres://mr@127.0.0.1:15432/mailroom");
        let err = copy("sqlite:///tmp/x.db", "sqlite:///tmp/x.db").unwrap_err();
        assert!(err.to_string().contains("same store"), "{err}");
        let err = copy("sqlite:///nonexistent/m.db", "sqlite:///tmp/y.db").unwrap_err();
        assert!(err.to_string().contains("no store"), "{err}");
    }
}
