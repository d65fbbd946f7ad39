//! Issue 13: JSON on every failure (argument errors included) and stable error codes on real
//! failures against the real servers.

use serde_json::Value;

use super::common::*;

/// Runs `mailroom ARGS` (the caller places `--json`); (exit code, the one JSON object, stderr).
fn run_json(home: &Home, args: &[&str]) -> (i32, Value, String) {
    let out = home.run(args);
    let text = stdout(&out);
    let v = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not one JSON object ({e}): {text:?}\n{}",
            stderr(&out)
        )
    });
    (out.status.code().unwrap_or(-1), v, stderr(&out))
}

#[test]
fn argument_errors_print_the_error_object_wherever_json_stands() {
    let home = Home::new();
    home.add_account("w", "w@example.test");
    let cases: &[(&[&str], &str)] = &[
        // A flag without its value.
        (
            &["--json", "triage", "pair", "300", "--customer"],
            "mailroom triage pair --help",
        ),
        // An unknown flag, --json after the command.
        (&["status", "--bogus", "--json"], "mailroom status --help"),
        // A value of the wrong kind, --json last.
        (
            &["messages", "--limit", "many", "--json"],
            "mailroom messages --help",
        ),
        // A missing subcommand.
        (&["--json", "account"], "mailroom account --help"),
    ];
    for (args, help) in cases {
        let (code, v, err) = run_json(&home, args);
        assert_eq!(code, 64, "{args:?}: {v}");
        assert_eq!(v["error"]["code"], "usage", "{args:?}: {v}");
        assert!(!v["error"]["summary"].as_str().unwrap().is_empty(), "{v}");
        assert!(
            v["error"]["fix"].as_str().unwrap().contains(help),
            "{args:?}: {v}"
        );
        assert!(v["error"].get("detail").is_some(), "{v}");
        assert!(err.is_empty(), "{args:?}: nothing on stderr: {err}");
    }
    // A bad value mailroom itself checks: the same object.
    let (code, v, _) = run_json(&home, &["--json", "log", "--level", "loud"]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (64, Some("usage")),
        "{v}"
    );
    // Without --json: clap's words on stderr, nothing on stdout, still 64.
    let out = home.run(&["triage", "pair", "300", "--customer"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("--customer"), "{}", stderr(&out));
    // Help is an answer, not a failure.
    assert_eq!(
        home.run(&["--json", "status", "--help"]).status.code(),
        Some(0)
    );
}

#[test]
fn real_failures_carry_their_codes() {
    let s = servers();
    let user = new_user("err-codes");
    let home = Home::new();
    let ca = s.ca.to_string_lossy().to_string();
    let imaps = format!("127.0.0.1:{IMAPS}");
    let add = |name: &'static str, imap: &str, extra: &[&str], pw: &str| {
        let mut args = vec![
            "--json",
            "account",
            "add",
            name,
            "--email",
            &user,
            "--imap",
            imap,
            "--smtp",
            "127.0.0.1:1587",
            "--password-stdin",
            "--test",
        ];
        args.extend_from_slice(extra);
        let out = home.run_stdin(&args, pw);
        let text = stdout(&out);
        let v: Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("{name}: not one JSON object ({e}): {text:?}"));
        (out.status.code().unwrap_or(-1), v)
    };
    // Wrong password.
    let (code, v) = add("badpw", &imaps, &["--ca-file", &ca], "wrong");
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "auth.rejected", "{v}");
    // The private CA, not passed: untrusted.
    let (code, v) = add("nocert", &imaps, &[], PASSWORD);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "tls.untrusted", "{v}");
    // Nothing listens.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (code, v) = add("closed", &format!("127.0.0.1:{closed}"), &[], PASSWORD);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "net.refused", "{v}");
    // `account test` names each failed step's code.
    home.add_account("w", &user);
    let out = home.run_stdin(
        &["account", "set-password", "w", "--password-stdin"],
        "wrong",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, v) = home.json(&["account", "test", "w"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(step(&v, "login")["code"], "auth.rejected", "{v}");
    assert!(step(&v, "connect")["code"].is_null(), "{v}");
    // Human output says the code after the fix.
    let out = home.run(&["sync", "w", "--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("code: auth.rejected"),
        "{}",
        stderr(&out)
    );
    // Something that does not exist.
    let (code, v) = home.json(&["message", "show", "987654"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    // A missing home and a usage error, for completeness of the set the issue names.
    let missing = home.path().join("nope");
    let out = std::process::Command::new(bin())
        .arg("--home")
        .arg(&missing)
        .args(["--json", "status"])
        .env_remove("MAILROOM_HOME")
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(
        (out.status.code(), v["error"]["code"].as_str()),
        (Some(3), Some("home.missing"))
    );
    let (code, v) = home.json(&["messages", "--limit", "-1"]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (64, Some("usage")),
        "{v}"
    );
}
