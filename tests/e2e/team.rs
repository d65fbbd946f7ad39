//! One installation, several operators (contract: Operators): the harness of the visibility
//! tests. alice owns account `work` and shares it with carol; eve has no access to it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::Output;

use crate::common::*;

pub struct Team {
    pub home: Home,
    /// The mailbox behind `work`.
    pub user: String,
}

/// A home where alice owns `work` (5 synced messages), shared with carol.
pub fn team() -> Team {
    let user = new_user("team");
    seed(&user, 5);
    let home = Home::new();
    let ca = servers().ca.to_string_lossy().to_string();
    let out = home
        .cmd()
        .args(["--operator", "alice", "account", "add", "work", "--email"])
        .arg(&user)
        .args([
            "--imap",
            &format!("127.0.0.1:{IMAPS}"),
            "--smtp",
            &format!("127.0.0.1:{SUBMISSION}"),
            "--ca-file",
            &ca,
            "--password-stdin",
            "--share-with",
            "carol",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(PASSWORD.as_bytes())?;
            c.wait_with_output()
        })
        .expect("account add runs");
    assert!(out.status.success(), "account add: {}", stderr(&out));
    let team = Team { home, user };
    let out = team.run_as("alice", &["sync", "work", "--once"]);
    assert!(out.status.success(), "sync: {}", stderr(&out));
    team
}

impl Team {
    /// `mailroom --operator OP ARGS`.
    pub fn run_as(&self, op: &str, args: &[&str]) -> Output {
        let mut full = vec!["--operator", op];
        full.extend_from_slice(args);
        self.home.run(&full)
    }

    /// `mailroom --operator OP --json ARGS`: exit code and the one JSON object.
    pub fn json_as(&self, op: &str, args: &[&str]) -> (i32, serde_json::Value) {
        let mut full = vec!["--operator", op];
        full.extend_from_slice(args);
        self.home.json(&full)
    }

    /// The ids of the cached messages (as alice sees them).
    pub fn message_ids(&self) -> Vec<i64> {
        let (code, v) = self.json_as("alice", &["messages", "work", "--limit", "100"]);
        assert_eq!(code, 0, "{v}");
        v["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["id"].as_i64())
            .collect()
    }

    /// A fingerprint of every table (its rows' text, sorted), to prove a refused command
    /// changed nothing. The search index follows `messages` and is left out.
    pub fn sums(&self) -> BTreeMap<String, String> {
        let db = self.home.db();
        db.tables()
            .into_iter()
            .map(|t| {
                let rows = db.dump(&t).join("\n");
                (t, rows)
            })
            .collect()
    }

    /// The audit rows after `after` (by id), as (operator, action, target).
    pub fn audit_since(&self, after: i64) -> Vec<(String, String, Option<String>)> {
        self.home.db().rows(
            "SELECT operator, action, target FROM audit WHERE id > ?1 ORDER BY id",
            args![after],
        )
    }

    pub fn last_audit_id(&self) -> i64 {
        self.home
            .db()
            .count("SELECT COALESCE(MAX(id), 0) FROM audit", &[])
    }

    /// `op` runs `hidden` (naming something of an account they may not see) and `missing` (the
    /// same command naming something that does not exist): both exit 1 with the same summary
    /// and fix, print nothing on stdout, and change nothing — except exactly one audit row for
    /// the refusal of `hidden`. The same holds with --json (the error object on stdout).
    pub fn assert_refused_like_missing(&self, op: &str, hidden: &[&str], missing: &[&str]) {
        let before = self.sums();
        let audit_before = self.last_audit_id();
        let h = self.run_as(op, hidden);
        let after_hidden = self.sums();
        let m = self.run_as(op, missing);
        assert_eq!(h.status.code(), Some(1), "{hidden:?}: {}", stderr(&h));
        assert_eq!(m.status.code(), Some(1), "{missing:?}: {}", stderr(&m));
        assert!(stdout(&h).is_empty(), "{hidden:?} printed {:?}", stdout(&h));
        assert!(
            stdout(&m).is_empty(),
            "{missing:?} printed {:?}",
            stdout(&m)
        );
        let first = |o: &Output| stderr(o).lines().next().unwrap_or_default().to_string();
        let fix = |o: &Output| {
            stderr(o)
                .lines()
                .find(|l| l.trim_start().starts_with("fix:"))
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(first(&h), first(&m), "{hidden:?} vs {missing:?}");
        assert_eq!(fix(&h), fix(&m), "{hidden:?} vs {missing:?}");
        assert!(
            first(&h).contains(&format!("visible to operator {op}")),
            "{hidden:?}: {}",
            stderr(&h)
        );
        let rows = self.audit_since(audit_before);
        assert_eq!(
            rows.len(),
            1,
            "{hidden:?}: one audit row for the refusal: {rows:?}"
        );
        assert_eq!(rows[0].0, op);
        assert_eq!(rows[0].1, "refused");
        let mut expected = before.clone();
        expected.remove("audit");
        let mut got = after_hidden;
        got.remove("audit");
        assert_eq!(got, expected, "{hidden:?} changed a table");
        let mut after_missing = self.sums();
        after_missing.remove("audit");
        assert_eq!(after_missing, expected, "{missing:?} changed a table");
        // The same with --json: the error object, nothing else.
        let (hc, hv) = self.json_as(op, hidden);
        let (mc, mv) = self.json_as(op, missing);
        assert_eq!((hc, mc), (1, 1), "{hv} / {mv}");
        assert_eq!(hv["error"]["summary"], mv["error"]["summary"]);
        assert_eq!(hv["error"]["fix"], mv["error"]["fix"]);
    }
}
