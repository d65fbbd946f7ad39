//! OAuth2 token bookkeeping shared by every process on the store (schema step 7): the sealed
//! token set lives in `credentials` (kind `oauth2`), the coordination in `oauth_state`.
//! Refreshes are claimed by compare-and-set on the generation, so at most one process
//! refreshes an account's tokens at a time and none refreshes tokens another already replaced.

use rusqlite::{OptionalExtension, params};

use super::{Store, now};
use crate::error::Result;

/// The credential kind the sealed token set is stored under.
pub const TOKENS: &str = "oauth2";
/// The credential kind of the app registration's client secret.
pub const CLIENT_SECRET: &str = "oauth2_client";

/// An account's OAuth2 coordination row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthRow {
    pub generation: i64,
    pub expires_at: Option<String>,
    pub refresh_holder: Option<String>,
    pub refresh_until: Option<String>,
    /// Token-endpoint failures in a row that may pass (the server down).
    pub failures: i64,
    pub failed_at: Option<String>,
    pub last_error: Option<String>,
    /// Why a new sign-in is needed; None while the tokens work.
    pub login_needed: Option<String>,
    pub refreshes: i64,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OAuthRow> {
    Ok(OAuthRow {
        generation: r.get(0)?,
        expires_at: r.get(1)?,
        refresh_holder: r.get(2)?,
        refresh_until: r.get(3)?,
        failures: r.get(4)?,
        failed_at: r.get(5)?,
        last_error: r.get(6)?,
        login_needed: r.get(7)?,
        refreshes: r.get(8)?,
    })
}

const COLUMNS: &str = "generation, expires_at, refresh_holder, refresh_until, failures, failed_at, last_error, login_needed, refreshes";

impl Store {
    /// One IMMEDIATE transaction on a shared connection (the token source's store work runs on
    /// a pooled connection it only borrows).
    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// The account's row and its sealed token set, read in one statement (so the set is the
    /// one of that generation).
    pub fn oauth_tokens(&self, id: &str) -> Result<(Option<OAuthRow>, Option<String>)> {
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("o.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let found = self
            .conn
            .query_row(
                &format!(
                    "SELECT {cols}, c.sealed FROM oauth_state o
                     LEFT JOIN credentials c ON c.account_id = o.account_id AND c.kind = ?2
                     WHERE o.account_id = ?1"
                ),
                params![id, TOKENS],
                |r| Ok((row(r)?, r.get::<_, Option<String>>(9)?)),
            )
            .optional()?;
        Ok(match found {
            Some((r, sealed)) => (Some(r), sealed),
            None => (None, None),
        })
    }

    /// New tokens from a sign-in: stored, the next generation, nothing pending or failed.
    pub fn oauth_signed_in(&self, id: &str, sealed: &str, expires_at: &str) -> Result<i64> {
        self.write(|tx| {
            let t = now();
            tx.execute(
                "INSERT INTO credentials (account_id, kind, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(account_id, kind) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                params![id, TOKENS, sealed, t],
            )?;
            tx.execute(
                "INSERT INTO oauth_state (account_id, generation, expires_at, updated_at) VALUES (?1, 1, ?2, ?3)
                 ON CONFLICT(account_id) DO UPDATE SET generation = oauth_state.generation + 1,
                   expires_at = excluded.expires_at, refresh_holder = NULL, refresh_until = NULL,
                   failures = 0, failed_at = NULL, last_error = NULL, login_needed = NULL,
                   updated_at = excluded.updated_at",
                params![id, expires_at, t],
            )?;
            Ok(tx.query_row(
                "SELECT generation FROM oauth_state WHERE account_id = ?1",
                [id],
                |r| r.get(0),
            )?)
        })
    }

    /// Claims the refresh of generation `seen` for `holder` until `until` (RFC 3339). False
    /// when another process holds a live claim, the tokens moved on, or a sign-in is needed.
    pub fn oauth_claim_refresh(
        &self,
        id: &str,
        seen: i64,
        holder: &str,
        until: &str,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE oauth_state SET refresh_holder = ?3, refresh_until = ?4
             WHERE account_id = ?1 AND generation = ?2 AND login_needed IS NULL
               AND (refresh_holder IS NULL OR refresh_until < ?5)",
            params![id, seen, holder, until, now()],
        )?;
        Ok(n == 1)
    }

    /// Stores refreshed tokens as the next generation and ends `holder`'s claim. Returns the
    /// new generation, or None when the tokens moved on meanwhile (a sign-in).
    pub fn oauth_refreshed(
        &self,
        id: &str,
        holder: &str,
        seen: i64,
        sealed: &str,
        expires_at: &str,
    ) -> Result<Option<i64>> {
        self.write(|tx| {
            let t = now();
            let n = tx.execute(
                "UPDATE oauth_state SET generation = generation + 1, expires_at = ?4,
                   refresh_holder = NULL, refresh_until = NULL, failures = 0, failed_at = NULL,
                   last_error = NULL, refreshes = refreshes + 1, updated_at = ?5
                 WHERE account_id = ?1 AND generation = ?2 AND (refresh_holder = ?3 OR refresh_holder IS NULL)",
                params![id, seen, holder, expires_at, t],
            )?;
            if n == 0 {
                return Ok(None);
            }
            tx.execute(
                "UPDATE credentials SET sealed = ?3, updated_at = ?4 WHERE account_id = ?1 AND kind = ?2",
                params![id, TOKENS, sealed, t],
            )?;
            Ok(Some(seen + 1))
        })
    }

    /// A refresh that failed: `login_needed` says the provider refused for good (the reason is
    /// kept); otherwise it counts as a passing failure. Either way the claim ends.
    pub fn oauth_refresh_failed(
        &self,
        id: &str,
        holder: &str,
        words: &str,
        login_needed: bool,
    ) -> Result<()> {
        let t = now();
        if login_needed {
            self.conn.execute(
                "UPDATE oauth_state SET login_needed = ?3, refresh_holder = NULL, refresh_until = NULL,
                   last_error = ?3, failed_at = ?4, updated_at = ?4
                 WHERE account_id = ?1 AND (refresh_holder = ?2 OR refresh_holder IS NULL)",
                params![id, holder, words, t],
            )?;
        } else {
            self.conn.execute(
                "UPDATE oauth_state SET failures = failures + 1, failed_at = ?4, last_error = ?3,
                   refresh_holder = NULL, refresh_until = NULL, updated_at = ?4
                 WHERE account_id = ?1 AND (refresh_holder = ?2 OR refresh_holder IS NULL)",
                params![id, holder, words, t],
            )?;
        }
        Ok(())
    }

    /// Forgets an account's tokens (after a revocation, or when the account goes).
    pub fn oauth_forget(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM credentials WHERE account_id = ?1 AND kind = ?2",
                params![id, TOKENS],
            )?;
            tx.execute("DELETE FROM oauth_state WHERE account_id = ?1", [id])?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_generation_and_a_refusal_stops_everyone() {
        let s = Store::open_in_memory().unwrap();
        let until = "2999-01-01T00:00:00Z";
        assert_eq!((None, None), s.oauth_tokens("a").unwrap());
        assert!(
            !s.oauth_claim_refresh("a", 0, "p1", until).unwrap(),
            "no row"
        );
        let g = s
            .oauth_signed_in("a", "sealed1", "2030-01-01T00:00:00Z")
            .unwrap();
        assert_eq!(g, 1);
        assert!(s.oauth_claim_refresh("a", 1, "p1", until).unwrap());
        assert!(!s.oauth_claim_refresh("a", 1, "p2", until).unwrap(), "held");
        assert_eq!(
            s.oauth_refreshed("a", "p1", 1, "sealed2", "2030-01-02T00:00:00Z")
                .unwrap(),
            Some(2)
        );
        assert!(
            !s.oauth_claim_refresh("a", 1, "p2", until).unwrap(),
            "generation 1 is gone: p2 takes generation 2 instead of refreshing"
        );
        let (r, sealed) = s.oauth_tokens("a").unwrap();
        let r = r.unwrap();
        assert_eq!(
            (r.generation, r.refreshes, sealed.as_deref()),
            (2, 1, Some("sealed2"))
        );
        assert!(r.refresh_holder.is_none());
        // A lapsed claim (a dead refresher) is taken over.
        assert!(
            s.oauth_claim_refresh("a", 2, "dead", "2000-01-01T00:00:00Z")
                .unwrap()
        );
        assert!(s.oauth_claim_refresh("a", 2, "p2", until).unwrap());
        s.oauth_refresh_failed("a", "p2", "down", false).unwrap();
        let r = s.oauth_tokens("a").unwrap().0.unwrap();
        assert_eq!((r.failures, r.login_needed), (1, None));
        assert!(s.oauth_claim_refresh("a", 2, "p2", until).unwrap());
        s.oauth_refresh_failed("a", "p2", "invalid_grant", true)
            .unwrap();
        assert!(
            !s.oauth_claim_refresh("a", 2, "p3", until).unwrap(),
            "nobody asks again until a sign-in"
        );
        assert_eq!(s.oauth_signed_in("a", "sealed3", until).unwrap(), 3);
        let r = s.oauth_tokens("a").unwrap().0.unwrap();
        assert_eq!((r.failures, r.login_needed), (0, None));
        s.oauth_forget("a").unwrap();
        assert_eq!((None, None), s.oauth_tokens("a").unwrap());
    }
}
