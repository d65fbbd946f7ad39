//! Issue 13: status fit for monitoring — a missing home is an error that creates nothing, a
//! home without accounts is not "healthy", and an account's last error shows only while it is
//! current, with this account's way out.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::common::*;

/// `mailroom --home HOME ARGS` for a home that may not exist.
fn run_at(home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("MAILROOM_HOME")
        .env("MAILROOM_OPERATOR", "tester")
        .stdin(Stdio::null())
        .output()
        .expect("mailroom runs")
}

/// The single JSON object on stdout.
fn one_json(out: &Output) -> Value {
    let text = stdout(out);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {text:?}\n{}", stderr(out)))
}

#[test]
fn a_missing_home_fails_every_reader_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("typo");
    let home = parent.join("x");
    let words = format!("no mailroom home at {}", home.display());

    // The monitoring check: the error object on stdout, exit 3 (cannot look).
    let out = run_at(&home, &["--json", "status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v = one_json(&out);
    assert_eq!(v["error"]["code"], "home.missing", "{v}");
    assert_eq!(v["error"]["summary"], words.as_str(), "{v}");
    assert!(
        v["error"]["fix"].as_str().unwrap().contains("--home"),
        "{v}"
    );
    let out = run_at(&home, &["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains(&words), "{}", stderr(&out));

    // Every other reader: exit 1, the same words and the fix; with --json the same object.
    let readers: &[&[&str]] = &[
        &["messages"],
        &["search", "invoice"],
        &["triage", "list"],
        &["customers", "list"],
        &["customers", "show", "1"],
        &["customers", "export"],
        &["outbox"],
        &["log"],
        &["audit"],
        &["folders"],
        &["quarantine", "list"],
        &["account", "list"],
        &["account", "show", "w"],
        &["deny", "list"],
        &["message", "show", "1"],
    ];
    for args in readers {
        let out = run_at(&home, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&words) && err.contains("fix:") && err.contains("code: home.missing"),
            "{args:?}: {err}"
        );
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        let mut json = vec!["--json"];
        json.extend_from_slice(args);
        let out = run_at(&home, &json);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let v = one_json(&out);
        assert_eq!(v["error"]["code"], "home.missing", "{args:?}: {v}");
        assert_eq!(v["error"]["summary"], words.as_str(), "{args:?}: {v}");
    }
    assert!(!parent.exists(), "no reader created the home or its parent");

    // What creates a home still does: customers add (and import), account add, the console.
    let out = run_at(&home, &["--json", "customers", "add", "--name", "First"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(home.join("mailroom.db").exists());
    let other = parent.join("y");
    let out = Command::new(bin())
        .arg("--home")
        .arg(&other)
        .args([
            "account",
            "add",
            "w",
            "--email",
            "w@example.test",
            "--imap",
            "127.0.0.1:1993",
            "--smtp",
            "127.0.0.1:1587",
            "--password-stdin",
        ])
        .env_remove("MAILROOM_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(PASSWORD.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(other.join("config.toml").exists());
}

#[test]
fn a_home_without_accounts_is_not_healthy() {
    let home = Home::new();
    let (code, v) = home.json(&["status"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "accounts.none", "{v}");
    assert_eq!(v["error"]["summary"], "no accounts configured", "{v}");
    assert!(
        v["error"]["fix"].as_str().unwrap().contains("account add"),
        "{v}"
    );
    let out = home.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no accounts configured"));
    // status looked and created nothing.
    assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
}

fn account<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {st}"))
}

#[test]
fn last_error_shows_while_current_and_names_this_accounts_way_out() {
    let s = servers();
    let user = new_user("mon-err");
    let home = Home::new();
    let out = home.account_add("w", &user, IMAPS, SUBMISSION, &[], "wrong password");
    assert!(out.status.success(), "{}", stderr(&out));
    // No CA file: the private test CA is not trusted.
    let imaps = format!("127.0.0.1:{IMAPS}");
    let out = home.run_stdin(
        &[
            "account",
            "add",
            "nocert",
            "--email",
            &user,
            "--imap",
            &imaps,
            "--smtp",
            "127.0.0.1:1587",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let (code, v) = home.json(&["sync", "w", "--once"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "auth.rejected", "{v}");
    let (code, v) = home.json(&["sync", "nocert", "--once"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "tls.untrusted", "{v}");

    let (code, st) = home.json(&["status"]);
    assert_eq!(code, 2, "an account in error fails the check: {st}");
    let w = account(&st, "w");
    assert_eq!(w["state"], "error", "{w}");
    let fix = w["last_error"]["fix"].as_str().unwrap();
    assert!(fix.contains("`mailroom account set-password w`"), "{w}");
    assert!(!fix.contains("NAME"), "{w}");
    let nocert = account(&st, "nocert");
    assert_eq!(nocert["state"], "error", "{nocert}");
    let fix = nocert["last_error"]["fix"].as_str().unwrap();
    assert!(
        fix.contains("--ca-file") && fix.contains("`mailroom account enable nocert`"),
        "{nocert}"
    );
    let text = stderr(&home.run(&["status"])) + &stdout(&home.run(&["status"]));
    assert!(text.contains("w: last error at"), "{text}");

    // The user acts; a later success makes both errors history.
    let out = home.run_stdin(
        &["account", "set-password", "w", "--password-stdin"],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ca = s.ca.to_string_lossy().to_string();
    let out = home.run(&["account", "edit", "nocert", "--ca-file", &ca]);
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["w", "nocert"] {
        let (code, v) = home.json(&["sync", name, "--once"]);
        assert_eq!(code, 0, "{name}: {v}");
    }
    let (code, st) = home.json(&["status"]);
    assert_eq!(code, 0, "{st}");
    for name in ["w", "nocert"] {
        let a = account(&st, name);
        assert_eq!(a["state"], "idle", "{a}");
        assert!(a["last_error"].is_null(), "no longer current: {a}");
    }
    let out = home.run(&["status"]);
    assert!(!stdout(&out).contains("last error"), "{}", stdout(&out));
    // The log keeps them.
    let (_, log) = home.json(&["log", "--level", "error"]);
    let whats: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["what"].as_str())
        .collect();
    assert!(
        whats.iter().any(|w| w.contains("rejected the login")),
        "{whats:?}"
    );
    assert!(
        whats
            .iter()
            .any(|w| w.contains("certificate is not trusted")),
        "{whats:?}"
    );
}
