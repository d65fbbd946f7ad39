//! `store copy` (issue 17): an installation moves to the other engine and back with every
//! table's rows, and reads the same afterwards; a target that holds data is refused.

use serde_json::Value;

use crate::common::*;
use crate::sync::{sync_once, user};

/// `mailroom --json [--store URL] ARGS` in the home.
fn json_on(home: &Home, store: &str, args: &[&str]) -> (i32, Value) {
    let mut full = vec!["--store", store];
    full.extend_from_slice(args);
    home.json(&full)
}

fn copy(home: &Home, from: &str, to: &str) -> (i32, Value) {
    home.json(&["store", "copy", "--from", from, "--to", to])
}

/// Every table copied, as many rows on each side.
fn assert_counts_equal(v: &Value) -> i64 {
    let tables = v["tables"].as_array().expect("tables");
    assert!(tables.len() >= 26, "{v}");
    for t in tables {
        assert_eq!(t["source"], t["target"], "{t}");
    }
    tables
        .iter()
        .find(|t| t["table"] == "messages")
        .and_then(|t| t["target"].as_i64())
        .expect("messages counted")
}

#[test]
fn an_installation_moves_to_the_other_engine_and_back_with_equal_counts() {
    let Some(pg) = PgDatabase::fresh() else {
        eprintln!("skipped: no PostgreSQL (MAILROOM_TEST_PG_URL)");
        return;
    };
    let user = user("store-copy");
    seed(&user, 40);
    let home = Home::new();
    home.add_account("w", &user);
    sync_once(&home, "w");
    let out = home.run(&[
        "customers",
        "add",
        "--name",
        "Client Co",
        "--email",
        "someone@client.example",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The home's own store, the other engine's, and a third of the home's engine.
    let first = match &home.pg {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", home.path().join("mailroom.db").display()),
    };
    let spare = tempfile::tempdir().unwrap();
    let back_pg = home.pg.as_ref().and_then(|_| PgDatabase::fresh());
    let (other, back) = match &back_pg {
        // Home on PostgreSQL: over to SQLite, back to a new PostgreSQL database.
        Some(db) => (
            format!("sqlite://{}", spare.path().join("moved.db").display()),
            db.url.clone(),
        ),
        None => (
            pg.url.clone(),
            format!("sqlite://{}", spare.path().join("back.db").display()),
        ),
    };
    let (code, there) = copy(&home, &first, &other);
    assert_eq!(code, 0, "{there}");
    if home.pg.is_some() {
        // On PostgreSQL the shared settings live in the database; on SQLite in config.toml:
        // the moving admin takes them along with `config export` (PostgreSQL reads past a
        // host file whose shared sections equal its own).
        let (code, v) = home.json(&["config", "export"]);
        assert_eq!(code, 0, "{v}");
        let path = home.path().join("config.toml");
        let host = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{host}\n{}", v["toml"].as_str().unwrap())).unwrap();
    }
    assert!(assert_counts_equal(&there) >= 40, "{there}");
    let (code, again) = copy(&home, &other, &back);
    assert_eq!(code, 0, "{again}");
    assert_eq!(assert_counts_equal(&again), assert_counts_equal(&there));
    // The moved installation reads the same: messages, search, customers.
    for store in [&other, &back] {
        for args in [
            &["messages", "w", "--limit", "1000"][..],
            &["search", "meeting"][..],
            &["customers", "list"][..],
        ] {
            let (c1, here) = json_on(&home, &first, args);
            let (c2, moved) = json_on(&home, store, args);
            assert_eq!((c1, c2), (0, 0), "{args:?}: {here} / {moved}");
            assert_eq!(here, moved, "{args:?} on {store}");
        }
    }
    // A target that holds data is refused with the fix, and keeps what it had.
    let (code, err) = copy(&home, &first, &other);
    assert_eq!(code, 1, "{err}");
    let text = err["error"].to_string();
    assert!(text.contains("already holds data"), "{err}");
    assert!(text.contains("empty store"), "{err}");
}
