//! Visibility of accounts, folders, sync and the quarantine (contract: Operators). alice owns
//! `work` and shares it with carol; eve has no access. For every command that names the
//! account or a quarantined message: eve's call reads exactly like a missing name or id
//! (nothing printed, nothing changed, one audit row), alice's works, and carol's works for mail
//! and is refused for settings.

use std::process::Output;

use crate::common::*;
use crate::team::{Team, team};

/// `op` runs `args` on something they may see but not configure: exit 1 with the not-owner
/// words, nothing on stdout, every table unchanged but for one audit row.
fn assert_not_owner(t: &Team, op: &str, args: &[&str]) {
    let before = t.sums();
    let audit_before = t.last_audit_id();
    let out = t.run_as(op, args);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
    assert!(
        stdout(&out).is_empty(),
        "{args:?} printed {:?}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(&format!("operator {op} may not change the settings")),
        "{args:?}: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("ask alice"), "{}", stderr(&out));
    let rows = t.audit_since(audit_before);
    assert_eq!(rows.len(), 1, "{args:?}: one audit row: {rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), (op, "refused"));
    let mut after = t.sums();
    let mut expected = before;
    after.remove("audit");
    expected.remove("audit");
    assert_eq!(after, expected, "{args:?} changed a table");
}

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", stderr(out));
}

/// `op ARGS` with `text` on stdin.
fn run_stdin_as(t: &Team, op: &str, args: &[&str], text: &str) -> Output {
    let mut full = vec!["--operator", op];
    full.extend_from_slice(args);
    t.home.run_stdin(&full, text)
}

#[test]
fn account_settings_are_the_owners_and_invisible_accounts_do_not_exist() {
    let t = team();
    let settings: [(&[&str], &[&str]); 8] = [
        (&["account", "show", "work"], &["account", "show", "nope"]),
        (
            &["account", "edit", "work", "--user", "x"],
            &["account", "edit", "nope", "--user", "x"],
        ),
        (
            &["account", "set-password", "work", "--password-stdin"],
            &["account", "set-password", "nope", "--password-stdin"],
        ),
        (
            &["account", "enable", "work"],
            &["account", "enable", "nope"],
        ),
        (
            &["account", "disable", "work"],
            &["account", "disable", "nope"],
        ),
        (
            &["account", "disable", "work", "--remove-history"],
            &["account", "disable", "nope", "--remove-history"],
        ),
        (&["account", "test", "work"], &["account", "test", "nope"]),
        (
            &["account", "remove", "work", "--purge"],
            &["account", "remove", "nope", "--purge"],
        ),
    ];
    for (hidden, missing) in settings {
        t.assert_refused_like_missing("eve", hidden, missing);
        assert_not_owner(&t, "carol", hidden);
    }
    let config = t.home.settings_text();
    assert!(config.contains("[accounts.work]"), "{config}");
    assert!(
        !config.contains("user = \"x\""),
        "a refused edit changed nothing: {config}"
    );

    // Lists: eve sees nothing of work, carol sees it.
    let (code, v) = t.json_as("eve", &["account", "list"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["accounts"], serde_json::json!([]), "{v}");
    let (_, v) = t.json_as("carol", &["account", "list"]);
    assert_eq!(v["accounts"][0]["name"], "work", "{v}");
    // Names are installation-wide: eve cannot take `work` either.
    let out = run_stdin_as(
        &t,
        "eve",
        &[
            "account",
            "add",
            "work",
            "--email",
            "e@example.test",
            "--imap",
            "127.0.0.1:1993",
            "--smtp",
            "127.0.0.1:1587",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    // The owner does all of it.
    let (code, v) = t.json_as("alice", &["account", "show", "work"]);
    assert_eq!(
        (code, &v["account"]["owner"]),
        (0, &serde_json::json!("alice"))
    );
    let (code, v) = t.json_as("alice", &["account", "test", "work"]);
    assert_eq!((code, &v["ok"]), (0, &serde_json::json!(true)), "{v}");
    ok(
        &t.run_as(
            "alice",
            &["account", "edit", "work", "--mark-read", "false"],
        ),
        "edit",
    );
    ok(
        &run_stdin_as(
            &t,
            "alice",
            &["account", "set-password", "work", "--password-stdin"],
            PASSWORD,
        ),
        "set-password",
    );
    ok(
        &t.run_as("alice", &["account", "disable", "work"]),
        "disable",
    );
    ok(&t.run_as("alice", &["account", "enable", "work"]), "enable");
    ok(&t.run_as("alice", &["account", "remove", "work"]), "remove");
    let (_, v) = t.json_as("alice", &["account", "list"]);
    assert_eq!(v["accounts"], serde_json::json!([]), "{v}");
}

#[test]
fn folders_and_sync_by_who_may_see_act_or_configure() {
    let t = team();
    let eve: [(&[&str], &[&str]); 8] = [
        (&["folders", "work"], &["folders", "nope"]),
        (
            &["folders", "work", "--sync", "INBOX"],
            &["folders", "nope", "--sync", "INBOX"],
        ),
        (
            &["folders", "work", "--sent", "Sent"],
            &["folders", "nope", "--sent", "Sent"],
        ),
        (
            &["folders", "work", "--role", "trash=Trash"],
            &["folders", "nope", "--role", "trash=Trash"],
        ),
        (
            &["folders", "work", "--refresh"],
            &["folders", "nope", "--refresh"],
        ),
        (&["sync", "work", "--plan"], &["sync", "nope", "--plan"]),
        (&["sync", "work", "--once"], &["sync", "nope", "--once"]),
        // Without --once it would run until interrupted: refused before it starts.
        (&["sync", "work"], &["sync", "nope"]),
    ];
    for (hidden, missing) in eve {
        t.assert_refused_like_missing("eve", hidden, missing);
    }
    // `--account NAME` is the same as the positional name.
    t.assert_refused_like_missing(
        "eve",
        &["folders", "--account", "work"],
        &["folders", "--account", "nope"],
    );

    // carol reads and syncs the mail of work, but chooses nothing.
    for settings in [
        &["folders", "work", "--sync", "INBOX"][..],
        &["folders", "work", "--sent", "Sent"],
        &["folders", "work", "--role", "trash=Trash"],
        &["folders", "work", "--refresh"],
    ] {
        assert_not_owner(&t, "carol", settings);
    }
    let (code, v) = t.json_as("carol", &["folders", "work"]);
    assert_eq!(code, 0, "{v}");
    let inbox = v["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "INBOX")
        .unwrap()
        .clone();
    assert_eq!(
        (&inbox["sync"], &inbox["messages"]),
        (&true.into(), &5.into())
    );
    let (code, v) = t.json_as("carol", &["sync", "work", "--plan"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["accounts"][0]["name"], "work", "{v}");
    let (code, v) = t.json_as("carol", &["sync", "work", "--once"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["accounts"][0]["ok"], true, "{v}");
    // eve's `sync` and `sync --plan` without a name find nothing of hers to sync.
    let out = t.run_as("eve", &["sync", "--once"]);
    assert!(
        stderr(&out).contains("no enabled account to sync"),
        "{}",
        stderr(&out)
    );

    // The owner chooses.
    let (code, v) = t.json_as(
        "alice",
        &["folders", "work", "--sync", "INBOX,Sent", "--sent", "Sent"],
    );
    assert_eq!(code, 0, "{v}");
    let sent = v["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Sent")
        .unwrap()
        .clone();
    assert_eq!(
        (&sent["sync"], &sent["role"]),
        (&true.into(), &"sent".into())
    );
}

/// A quarantined message of work (as sync leaves one that does not parse), for the commands
/// that name one.
fn quarantine_item(t: &Team) -> i64 {
    let db = t.home.db();
    let (account, folder, uv): (String, i64, i64) = db.row(
        "SELECT account_id, id, uidvalidity FROM folders WHERE name = 'INBOX'",
        &[],
    );
    db.insert(
        "INSERT INTO quarantine (account_id, folder_id, folder_name, uidvalidity, uid, raw, error, created_at)
         VALUES (?1, ?2, 'INBOX', ?3, 999, ?4, 'no header', '2026-11-01T00:00:00Z') RETURNING id",
        args![account, folder, uv, b"not a message".to_vec()],
    )
}

#[test]
fn quarantine_of_an_invisible_account_does_not_exist() {
    let t = team();
    let id = quarantine_item(&t);
    let (hid, mis) = (id.to_string(), (id + 1000).to_string());
    let path = t.home.path().join("q.eml");
    let path = path.to_str().unwrap();
    for verb in ["retry", "skip"] {
        t.assert_refused_like_missing(
            "eve",
            &["quarantine", verb, &hid],
            &["quarantine", verb, &mis],
        );
    }
    t.assert_refused_like_missing(
        "eve",
        &["quarantine", "save", &hid, path],
        &["quarantine", "save", &mis, path],
    );
    assert!(
        !std::path::Path::new(path).exists(),
        "nothing was saved for eve"
    );
    let (code, v) = t.json_as("eve", &["quarantine", "list"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["quarantine"], serde_json::json!([]), "{v}");

    // Quarantined mail is mail: carol (shared) looks at it and acts on it like alice.
    let (_, v) = t.json_as("carol", &["quarantine", "list"]);
    assert_eq!(v["quarantine"][0]["id"], id, "{v}");
    let (code, v) = t.json_as("carol", &["quarantine", "retry", &hid]);
    assert_eq!((code, &v["ok"]), (1, &false.into()), "still fails: {v}");
    let (code, v) = t.json_as("carol", &["quarantine", "save", &hid, path]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(std::fs::read(path).unwrap(), b"not a message");
    let (code, _) = t.json_as("alice", &["quarantine", "skip", &hid]);
    assert_eq!(code, 0);
    let (_, v) = t.json_as("alice", &["quarantine", "list"]);
    assert_eq!(v["quarantine"][0]["state"], "skipped", "{v}");
    let audit = t.audit_since(0);
    assert!(
        audit.iter().any(|(op, action, target)| op == "alice"
            && action == "quarantine_skip"
            && target.as_deref() == Some(hid.as_str())),
        "{audit:?}"
    );
}
