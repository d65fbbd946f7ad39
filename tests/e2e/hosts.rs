//! Many hosts, one installation (issue 18): two homes on one PostgreSQL database share their
//! settings (an account added through one is synced by a daemon started from the other) and
//! one sealing key (a host with another key says so and touches nothing). And `config
//! export|import` on either engine.

use std::time::Duration;

use super::common::*;

/// A second host's home on `a`'s database: its own config.toml with the store URL only, its
/// own key file (none until the test gives it one).
fn second_host(a: &Home) -> Home {
    let url = &a.pg.as_ref().expect("a home on PostgreSQL").url;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[store]\nurl = \"{url}\"\n\n[ui]\ntheme = \"light\"\n"),
    )
    .expect("write config.toml");
    Home { dir, pg: None }
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v["accounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn cached(home: &Home, name: &str) -> usize {
    let (_, v) = home.json(&["messages", name, "--limit", "100000"]);
    v["messages"].as_array().map_or(0, |m| m.len())
}

fn table_counts(home: &Home) -> Vec<i64> {
    let db = home_db(home);
    [
        "accounts",
        "credentials",
        "locations",
        "events",
        "audit",
        "leases",
    ]
    .iter()
    .map(|t| db.count(&format!("SELECT COUNT(*) FROM {t}"), &[]))
    .collect()
}

fn home_db(home: &Home) -> Db {
    Db::postgres(&home.pg.as_ref().expect("on PostgreSQL").url)
}

#[test]
fn an_account_added_on_host_a_is_synced_by_a_daemon_started_on_host_b() {
    let Some(a) = Home::on_postgres() else {
        eprintln!("skipped: no PostgreSQL test server (MAILROOM_TEST_PG_URL)");
        return;
    };
    let (first, second) = (new_user("hosts-one"), new_user("hosts-two"));
    seed(&first, 4);
    seed(&second, 3);
    a.add_account("one", &first);
    a.set_account_option("one", "sync.poll_secs", toml_edit::value(1));
    let b = second_host(&a);

    // B has no key yet: what needs no secret works, what needs one refuses and touches nothing.
    let (code, v) = b.json(&["account", "list"]);
    assert_eq!((code, names(&v)), (0, vec!["one".to_string()]), "{v}");
    let before = table_counts(&a);
    let (code, v) = b.json(&["sync", "--once", "one"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "key.mismatch", "{v}");
    assert!(!b.path().join("key").exists(), "no key is made up");
    // A key of its own: refused in so many words; the daemon does not start either.
    std::fs::write(
        b.path().join("key"),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )
    .unwrap();
    let (code, v) = b.json(&["sync", "--once", "one"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        v["error"]["summary"],
        "this host's sealing key is not the installation's key"
    );
    assert!(
        v["error"]["fix"]
            .as_str()
            .unwrap()
            .contains("copy the key file"),
        "{v}"
    );
    let out = b.run(&["daemon"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not the installation's key"));
    assert_eq!(
        table_counts(&a),
        before,
        "a host with the wrong key changed nothing"
    );
    // The right host still opens its credentials.
    let (code, v) = a.json(&["account", "test", "one"]);
    assert_eq!(code, 0, "{v}");

    // The installation's key, distributed: B sees A's account and its daemon syncs it.
    std::fs::copy(a.path().join("key"), b.path().join("key")).unwrap();
    let (_, v) = b.json(&["status"]);
    assert_eq!(names(&v), vec!["one".to_string()], "{v}");
    let _d = Daemon::start(&b);
    wait_for("B's daemon syncs one", Duration::from_secs(60), || {
        (cached(&b, "one") == 4).then_some(())
    });
    // Added on A while B's daemon runs: B follows the shared settings and syncs it.
    a.add_account("two", &second);
    a.set_account_option("two", "sync.poll_secs", toml_edit::value(1));
    wait_for("B's daemon syncs two", Duration::from_secs(60), || {
        (cached(&b, "two") == 3).then_some(())
    });
    for (name, user) in [("one", &first), ("two", &second)] {
        assert_eq!(
            cached(&a, name),
            server_fetch(user, "INBOX", &["uid"]).len(),
            "{name}: the cache equals the server"
        );
    }
    // An edit on B is seen on A; each host keeps its own host settings.
    let out = b.run(&["deny", "add", "--global", "spam.example"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, v) = a.json(&["config", "export"]);
    assert!(v["toml"].as_str().unwrap().contains("spam.example"), "{v}");
    let host_b = std::fs::read_to_string(b.path().join("config.toml")).unwrap();
    assert!(
        !host_b.contains("accounts") && host_b.contains("theme = \"light\""),
        "{host_b}"
    );
}

#[test]
fn config_export_edit_import_round_trip_on_postgres() {
    let Some(a) = Home::on_postgres() else {
        eprintln!("skipped: no PostgreSQL test server (MAILROOM_TEST_PG_URL)");
        return;
    };
    round_trip(&a);
}

#[test]
fn config_export_edit_import_round_trip_on_sqlite() {
    let home = Home {
        dir: tempfile::tempdir().unwrap(),
        pg: None,
    };
    round_trip(&home);
    // The host settings stay where they were.
    let text = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    assert!(text.contains("[accounts.kept]") && !text.contains("[accounts.gone]"));
}

/// Export, edit (one account changed, one removed, one added), dry run, import; refusals.
fn round_trip(home: &Home) {
    let (kept, gone) = (new_user("rt-kept"), new_user("rt-gone"));
    home.add_account("kept", &kept);
    home.add_account("gone", &gone);
    let file = home.path().join("shared.toml");
    let out = home.run(&["config", "export", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("[store]") && text.contains("[accounts.kept]"),
        "{text}"
    );
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    doc["accounts"]["kept"]["display_name"] = toml_edit::value("Kept");
    let mut added = doc["accounts"]["gone"].clone();
    doc["accounts"].as_table_mut().unwrap().remove("gone");
    added["id"] = toml_edit::value("new-id-1");
    doc["accounts"]["added"] = added;
    std::fs::write(&file, doc.to_string()).unwrap();
    let path = file.to_str().unwrap();

    let (code, v) = home.json(&["config", "import", path, "--dry-run"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["added"], serde_json::json!(["added"]), "{v}");
    assert_eq!(v["changed"], serde_json::json!(["kept"]), "{v}");
    assert_eq!(v["removed"], serde_json::json!(["gone"]), "{v}");
    let (_, list) = home.json(&["account", "list"]);
    assert_eq!(names(&list).len(), 2, "a dry run changes nothing: {list}");

    let (code, v) = home.json(&["config", "import", path]);
    assert_eq!(
        (code, &v["need_password"]),
        (0, &serde_json::json!(["added"])),
        "{v}"
    );
    let (_, list) = home.json(&["account", "list"]);
    assert_eq!(names(&list), vec!["added", "kept"], "{list}");
    let (code, v) = home.json(&["config", "import", path]);
    assert_eq!((code, &v["changed"]), (0, &serde_json::json!([])), "{v}");

    // Refused: a mistake (named by line and column), a re-keyed account, a non-admin.
    std::fs::write(&file, format!("{}\n[accounts.kept]\nbogus = 1\n", doc)).unwrap();
    let (code, v) = home.json(&["config", "import", path]);
    assert_eq!(
        (code, &v["error"]["code"]),
        (1, &serde_json::json!("config.invalid")),
        "{v}"
    );
    assert!(
        v["error"]["detail"].as_str().unwrap().contains("line"),
        "{v}"
    );
    doc["accounts"]["kept"]["id"] = toml_edit::value("another-id");
    std::fs::write(&file, doc.to_string()).unwrap();
    let (code, v) = home.json(&["config", "import", path]);
    assert_eq!(code, 64, "{v}");
    assert!(
        v["error"]["summary"].as_str().unwrap().contains("has id"),
        "{v}"
    );
    let out = home
        .cmd()
        .args(["--json", "--operator", "mallory", "config", "export"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("access.denied"), "{}", stdout(&out));
}
