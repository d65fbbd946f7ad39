//! `mailroom status`: health of every account from the database alone, fast enough for a
//! monitoring check over SSH (it opens the DB read-only and never waits on the network).

use serde::Serialize;

use super::Ctx;
use super::output::{emit, table};
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::store::{AccountState, ErrorInfo, OutboxCounts, Store};

#[derive(Debug, Serialize)]
pub struct Counts {
    pub messages: i64,
    pub unread: i64,
}

#[derive(Debug, Serialize)]
pub struct Progress {
    pub folder: String,
    pub done: i64,
    pub total: i64,
}

#[derive(Debug, Serialize)]
pub struct Health {
    pub success_rate: Option<f64>,
    pub last_duration_ms: Option<i64>,
    pub bytes: i64,
    pub messages: i64,
}

#[derive(Debug, Serialize)]
pub struct AccountStatus {
    pub name: String,
    pub email: String,
    pub enabled: bool,
    pub state: AccountState,
    pub insecure: bool,
    pub last_success_at: Option<String>,
    pub last_error: Option<ErrorInfo>,
    pub counts: Counts,
    pub progress: Option<Progress>,
    pub health: Health,
    pub outbox: OutboxCounts,
    pub unmatched: i64,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub overall: &'static str,
    pub accounts: Vec<AccountStatus>,
}

/// Reads every visible account's status; shared by the CLI and the console's dashboard.
pub fn collect(
    config: &Config,
    store: Option<&Store>,
    visible: impl Fn(&crate::config::AccountConfig) -> bool,
) -> Result<Status> {
    let mut accounts = Vec::new();
    let own = crate::crm::matching::own_addresses(config);
    for (name, a) in config.accounts.iter().filter(|(_, a)| visible(a)) {
        let row = match store {
            Some(s) => s.account(&a.id)?,
            None => None,
        };
        let (messages, unread) = match store {
            Some(s) => s.account_counts(&a.id)?,
            None => (0, 0),
        };
        let mut state = if !a.enabled {
            AccountState::Disabled
        } else {
            row.as_ref()
                .map(|r| r.state)
                .unwrap_or(AccountState::Pending)
        };
        let mut last_error = row.as_ref().and_then(|r| r.last_error.clone());
        let mut progress = row.as_ref().and_then(|r| r.progress.clone());
        if let (AccountState::Syncing, Some(s), Some(r)) = (state, store, row.as_ref())
            && s.sync_holder_gone(&a.id)?
        {
            // The pass ended without recording how: killed, or the disk was too full to write
            // its outcome. "syncing" would be a lie, and "healthy" with it.
            state = AccountState::Degraded;
            progress = None;
            last_error = Some(ErrorInfo {
                at: r.state_since.clone(),
                what: "the last sync stopped without recording how it ended".into(),
                fix: format!(
                    "check free disk space (a full disk refuses that record too), then run `mailroom sync {name}`"
                ),
            });
        }
        accounts.push(AccountStatus {
            name: name.clone(),
            email: a.email.clone(),
            enabled: a.enabled,
            state,
            insecure: a.insecure_skip_verify,
            last_success_at: row.as_ref().and_then(|r| r.last_success_at.clone()),
            last_error,
            counts: Counts { messages, unread },
            progress: progress.map(|(folder, done, total)| Progress {
                folder,
                done,
                total,
            }),
            health: Health {
                success_rate: row
                    .as_ref()
                    .filter(|r| r.runs_total > 0)
                    .map(|r| r.runs_ok as f64 / r.runs_total as f64),
                last_duration_ms: row.as_ref().and_then(|r| r.last_duration_ms),
                bytes: row.as_ref().map(|r| r.bytes_total).unwrap_or(0),
                messages: row.as_ref().map(|r| r.messages_total).unwrap_or(0),
            },
            outbox: match store {
                Some(s) => s.outbox_counts(&a.id)?,
                None => OutboxCounts::default(),
            },
            // The triage queue's own rule (own addresses and aliases, Sent/Drafts/Trash/Junk
            // excluded), so status and `triage list` always agree.
            unmatched: match store {
                Some(s) => s.triage_count(&crate::store::TriageFilter {
                    accounts: vec![a.id.clone()],
                    own: own.iter().cloned().collect(),
                })?,
                None => 0,
            },
        });
    }
    let overall = overall(&accounts);
    Ok(Status { overall, accounts })
}

/// healthy / degraded / failing: the worst of the enabled accounts.
fn overall(accounts: &[AccountStatus]) -> &'static str {
    let mut worst = 0;
    for a in accounts.iter().filter(|a| a.enabled) {
        let level = match a.state {
            AccountState::Error => 2,
            AccountState::Degraded | AccountState::Disconnected => 1,
            _ if a.outbox.uncertain > 0 => 1,
            _ => 0,
        };
        worst = worst.max(level);
    }
    ["healthy", "degraded", "failing"][worst]
}

pub fn run(ctx: &Ctx) -> Result<i32> {
    let config = ctx.config()?;
    let db = ctx.home.db_path();
    let store = if db.exists() {
        match Store::open_read_only(&db) {
            Ok(s) => Some(s),
            Err(e) => return Ok(cannot_read(ctx, e)),
        }
    } else {
        None
    };
    let status = match collect(&config, store.as_ref(), |a| ctx.sees(a)) {
        Ok(s) => s,
        Err(e) => return Ok(cannot_read(ctx, crate::store::explain_open_error(e, &db))),
    };
    emit(ctx.json, &status, || human(&status));
    Ok(match status.overall {
        "healthy" => 0,
        "degraded" => 1,
        _ => 2,
    })
}

fn cannot_read(ctx: &Ctx, e: AppError) -> i32 {
    let e = AppError {
        summary: format!("cannot read the database: {}", e.summary),
        ..e
    };
    super::output::fail(ctx.json, &e);
    3
}

fn human(s: &Status) -> String {
    if s.accounts.is_empty() {
        return "no accounts; add one with `mailroom account add NAME --email … --imap … --smtp …`"
            .into();
    }
    let rows: Vec<Vec<String>> = s
        .accounts
        .iter()
        .map(|a| {
            let mut state = a.state.as_str().to_string();
            if let Some(p) = &a.progress {
                state = format!("{state} {} {}/{}", p.folder, p.done, p.total);
            }
            if a.insecure {
                state.push_str(" [insecure]");
            }
            vec![
                a.name.clone(),
                state,
                a.last_success_at.clone().unwrap_or_else(|| "never".into()),
                format!("{} ({} unread)", a.counts.messages, a.counts.unread),
                a.unmatched.to_string(),
                format!(
                    "{}q {}u {}c",
                    a.outbox.queued, a.outbox.uncertain, a.outbox.copy_pending
                ),
            ]
        })
        .collect();
    let mut out = format!("overall: {}\n", s.overall);
    out.push_str(&table(
        &[
            "ACCOUNT",
            "STATE",
            "LAST SYNC",
            "MESSAGES",
            "UNMATCHED",
            "OUTBOX",
        ],
        &rows,
    ));
    for a in &s.accounts {
        if let Some(e) = &a.last_error {
            out.push_str(&format!(
                "{}: last error at {}: {}\n  fix: {}\n",
                a.name,
                e.at,
                crate::mail::sanitize::clean_line(&e.what),
                crate::mail::sanitize::clean_line(&e.fix)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        toml::from_str(
            r#"[accounts.w]
id = "a1"
email = "w@example.test"
user = "w@example.test"
imap = { host = "127.0.0.1", port = 1993, security = "tls" }
smtp = { host = "127.0.0.1", port = 1587, security = "starttls" }
"#,
        )
        .unwrap()
    }

    #[test]
    fn syncing_without_a_live_holder_is_reported_degraded_with_a_fix() {
        let mut store = Store::open_in_memory().unwrap();
        store.insert_account("a1", "w", true).unwrap();
        store.set_state("a1", AccountState::Syncing).unwrap();
        store.set_progress("a1", "INBOX", 2000, 3000).unwrap();
        // While this (live) process holds the lease, the state is what the row says.
        assert!(store.acquire_lease("a1", "t", 60).unwrap().is_ok());
        let st = collect(&config(), Some(&store), |_| true).unwrap();
        assert_eq!(st.accounts[0].state, AccountState::Syncing);
        assert!(st.accounts[0].progress.is_some());
        // The holder is gone without recording the end of its pass (full disk, kill -9).
        store.release_lease("a1", "t").unwrap();
        let st = collect(&config(), Some(&store), |_| true).unwrap();
        let a = &st.accounts[0];
        assert_eq!(a.state, AccountState::Degraded);
        assert_eq!(st.overall, "degraded");
        assert!(a.progress.is_none());
        let e = a.last_error.as_ref().unwrap();
        assert!(
            e.fix.contains("disk space") && e.fix.contains("mailroom sync w"),
            "{e:?}"
        );
    }
}
