//! A home written by an earlier mailroom (tests/fixtures/home-v1, made by the commit its README
//! names) opens with today's binary, migrates, and keeps everything: mail, customers, pairings,
//! triage actions, the deny list, the outbox and the audit log.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;

/// Copies the fixture into a fresh home, pointing its CA file at this machine's test CA (the
/// only path in it that depends on where it was made).
fn fixture_home() -> Home {
    let home = Home::new();
    let src = repo().join("tests/fixtures/home-v1");
    for f in ["config.toml", "key", "mailroom.db"] {
        std::fs::copy(src.join(f), home.path().join(f)).expect("copy fixture");
    }
    let config = home.path().join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let ca = servers().ca.to_string_lossy().to_string();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("ca_file") {
                format!("ca_file = {ca:?}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text + "\n").expect("write config");
    home
}

fn recorded_counts() -> BTreeMap<String, i64> {
    let text =
        std::fs::read_to_string(repo().join("tests/fixtures/home-v1/COUNTS")).expect("COUNTS");
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

fn table_count(db: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(db)
        .expect("db")
        .query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
        .expect("count")
}

#[test]
fn a_home_from_before_the_service_layer_opens_migrates_and_keeps_everything() {
    if sqlite_file_only("an old home's database file") {
        return;
    }
    let home = fixture_home();
    let as_op = |op: &str, args: &[&str]| {
        let mut full = vec!["--operator", op];
        full.extend_from_slice(args);
        home.json(&full)
    };
    // Every screen's headless twin reads it.
    let (code, v) = as_op("alice", &["status"]);
    assert!(code == 0 || code == 1, "status: {v}");
    let work = v["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .find(|a| a["name"] == "work")
        .cloned()
        .expect("work in status");
    assert_eq!(work["counts"]["messages"], 40, "{work}");
    let (code, v) = as_op("alice", &["messages", "work", "--limit", "100"]);
    assert_eq!(code, 0, "{v}");
    // 40 synced; the one from the blocked domain stays stored but hidden.
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(39), "{v}");
    let flagged = v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["id"] == 36)
        .cloned()
        .expect("message 36");
    assert!(
        flagged["flags"].to_string().contains("\\\\Flagged"),
        "{flagged}"
    );
    let (code, v) = as_op("bob", &["messages", "private", "--limit", "100"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(5), "{v}");
    let (code, v) = as_op("alice", &["triage", "list"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(37), "{v}");
    let (code, v) = as_op("alice", &["customers", "list"]);
    assert_eq!(code, 0, "{v}");
    let names: Vec<&str> = v["customers"]
        .as_array()
        .expect("customers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{v}");
    assert!(names.contains(&"Ada Lovelace") && names.contains(&"Paul O'Brien"));
    let (code, v) = as_op("alice", &["outbox"]);
    assert_eq!(code, 0, "{v}");
    let mut states: Vec<(i64, String)> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| (i["id"].as_i64().unwrap_or(0), i["state"].to_string()))
        .collect();
    states.sort();
    assert_eq!(
        states,
        vec![
            (1, "\"queued\"".to_string()),
            (2, "\"verified\"".to_string())
        ]
    );
    let (code, v) = as_op("alice", &["deny", "list", "--account", "work"]);
    assert_eq!(code, 0, "{v}");
    assert!(v.to_string().contains("globex.net"), "{v}");
    // Undo still reaches alice's last triage action (the domain block), and it is undoable.
    let (code, v) = as_op("alice", &["undo"]);
    assert_eq!(code, 0, "{v}");
    assert!(v.to_string().contains("globex.net"), "{v}");

    // Nothing was lost in the migration: every table the old schema had holds at least what it
    // held (the undo above adds audit rows and un-denies one message; nothing is removed).
    let db = home.path().join("mailroom.db");
    for (table, before) in recorded_counts() {
        if table == "messages_fts" {
            continue;
        }
        let now = table_count(&db, &table);
        match table.as_str() {
            "audit" | "events" | "pending_ops" => {
                assert!(now >= before, "{table}: {before} before, {now} now")
            }
            _ => assert_eq!(now, before, "{table}: {before} before, {now} now"),
        }
    }
}
