//! Issue 13: SMTP authentication choices (`--smtp-auth`), the relay without AUTH, the system
//! SMTP profile from the CLI, `account show` for people and settings from the CLI — against
//! the real Postfix (submission 1587: STARTTLS required, AUTH only after it; relay 6025: no AUTH).

use std::time::Duration;

use super::common::*;
use super::send::user;

const RELAY: u16 = 6025;

/// The header block of every message in `folder` whose subject is `subject`, as the server has it.
fn headers_of(user: &str, folder: &str, subject: &str) -> Vec<String> {
    let out = doveadm(&[
        "fetch", "-u", user, "hdr", "mailbox", folder, "subject", subject,
    ]);
    assert!(out.status.success(), "doveadm fetch: {}", stderr(&out));
    stdout(&out)
        .split("hdr:\n")
        .filter(|h| !h.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Waits until `n` messages with `subject` are in `folder`, then checks there are exactly `n`.
fn wait_arrived(user: &str, folder: &str, subject: &str, n: usize) -> Vec<String> {
    wait_for(
        &format!("{n} message(s) {subject:?} in {folder}"),
        Duration::from_secs(30),
        || (headers_of(user, folder, subject).len() >= n).then_some(()),
    );
    let found = headers_of(user, folder, subject);
    assert_eq!(found.len(), n, "exactly {n} in {folder}: {found:?}");
    found
}

fn step<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {v}"))
}

fn send(home: &Home, account: &str, to: &str, subject: &str) -> (i32, serde_json::Value) {
    let out = home.run_stdin(
        &[
            "--json",
            "send",
            "--account",
            account,
            "--to",
            to,
            "--subject",
            subject,
        ],
        "hello through the relay\n",
    );
    let v = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn a_relay_without_auth_sends_and_files_the_copy_with_smtp_auth_none() {
    let me = user("relay");
    let home = Home::new();
    let out = home.account_add(
        "r",
        &me,
        IMAPS,
        RELAY,
        &["--smtp-security", "none", "--smtp-auth", "none"],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = home.settings_text();
    assert!(text.contains("\nsmtp_auth = \"none\"\n"), "{text}");

    // account test honours the choice: no AUTH is tried, and it says why.
    let (code, v) = home.json(&["account", "test", "r"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(step(&v, "smtp_tls")["status"], "ok", "{v}");
    let auth = step(&v, "smtp_auth");
    assert_eq!(auth["status"], "skipped", "{v}");
    assert!(
        auth["detail"]
            .as_str()
            .unwrap()
            .contains("smtp_auth = none"),
        "{v}"
    );

    let (code, v) = send(&home, "r", &me, "relay without auth");
    assert_eq!(code, 0, "{v}");
    // Delivered without a login (Postfix writes ESMTPSA for an authenticated submission).
    let inbox = wait_arrived(&me, "INBOX", "relay without auth", 1);
    assert!(
        inbox[0].contains("with ESMTP id") && !inbox[0].contains("ESMTPSA"),
        "{}",
        inbox[0]
    );
    // And the Sent copy is made and verified.
    let id = v["id"].as_i64().unwrap_or_else(|| panic!("{v}"));
    wait_for("the copy verified", Duration::from_secs(60), || {
        home.run(&["outbox", "flush"]);
        let (_, o) = home.json(&["outbox"]);
        let item = o["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .cloned()
            .unwrap();
        (item["state"] == "verified").then_some(())
    });
    wait_arrived(&me, "Sent", "relay without auth", 1);
}

#[test]
fn security_none_against_a_server_that_offers_auth_only_after_starttls_names_the_fix() {
    let me = user("auth-after-tls");
    let home = Home::new();
    let out = home.account_add(
        "n",
        &me,
        IMAPS,
        SUBMISSION,
        &["--smtp-security", "none"],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, v) = home.json(&["account", "test", "n"]);
    assert_eq!(code, 1, "{v}");
    let auth = step(&v, "smtp_auth");
    assert_eq!(auth["status"], "failed", "{v}");
    let detail = auth["detail"].as_str().unwrap();
    assert!(
        detail.contains("offers authentication only after STARTTLS")
            && detail.contains("security is none")
            && detail.contains("after STARTTLS it offers AUTH PLAIN LOGIN"),
        "{v}"
    );
    assert!(
        auth["fix"]
            .as_str()
            .unwrap()
            .starts_with("use `mailroom account edit n --smtp-security starttls`"),
        "{v}"
    );
    // Sending fails the same way, with the same words, and no mysterious internals.
    let (code, v) = send(&home, "n", &me, "never leaves");
    assert_eq!(code, 1, "{v}");
    let e = &v["error"];
    assert!(
        e["summary"]
            .as_str()
            .unwrap()
            .contains("offers authentication only after STARTTLS"),
        "{v}"
    );
    assert!(
        e["fix"]
            .as_str()
            .unwrap()
            .contains("--smtp-security starttls"),
        "{v}"
    );
    let all = v.to_string();
    assert!(
        !all.contains("internal client error") && !all.contains("No compatible"),
        "{all}"
    );
    // The named fix works.
    let out = home.run(&["account", "edit", "n", "--smtp-security", "starttls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, v) = home.json(&["account", "test", "n"]);
    assert_eq!(code, 0, "{v}");
    assert!(
        step(&v, "smtp_auth")["detail"]
            .as_str()
            .unwrap()
            .contains("(PLAIN)"),
        "{v}"
    );
}

#[test]
fn the_mechanism_is_chosen_per_account_and_oauth_needs_oauth2_sign_in() {
    let me = user("mech");
    let home = Home::new();
    let out = home.account_add(
        "l",
        &me,
        IMAPS,
        SUBMISSION,
        &["--smtp-auth", "login"],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, v) = home.json(&["account", "test", "l"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        step(&v, "smtp_auth")["detail"],
        format!("authenticated as {me} (LOGIN)"),
        "{v}"
    );
    let (code, v) = send(&home, "l", &me, "signed in with LOGIN");
    assert_eq!(code, 0, "{v}");
    let got = wait_arrived(&me, "INBOX", "signed in with LOGIN", 1);
    assert!(got[0].contains("ESMTPSA"), "authenticated: {}", got[0]);

    // An OAuth2 mechanism with a password account: a usage error naming OAuth2 sign-in, on add
    // and on edit, and nothing changes.
    for m in ["xoauth2", "oauthbearer"] {
        let out = home.account_add("o", &me, IMAPS, SUBMISSION, &["--smtp-auth", m], PASSWORD);
        assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("needs OAuth2 sign-in"),
            "{}",
            stderr(&out)
        );
        let (code, v) = home.json(&["account", "edit", "l", "--smtp-auth", m]);
        assert_eq!(code, 64, "{v}");
        assert!(
            v["error"]["summary"]
                .as_str()
                .unwrap()
                .contains("needs OAuth2 sign-in"),
            "{v}"
        );
    }
    let (_, v) = home.json(&["account", "show", "l"]);
    assert_eq!(v["account"]["smtp_auth"], "login", "{v}");
    assert_eq!(v["account"]["auth"], "password", "{v}");
    let (code, v) = home.json(&["account", "edit", "l", "--smtp-auth", "cram-md5"]);
    assert_eq!(code, 64, "{v}");
    // `default` goes back to what the server offers, PLAIN first.
    let out = home.run(&["account", "edit", "l", "--smtp-auth", "default"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = home.settings_text();
    assert!(!text.contains("smtp_auth"), "{text}");
    let (_, v) = home.json(&["account", "show", "l"]);
    assert_eq!(v["account"]["smtp_auth"], serde_json::Value::Null, "{v}");
}

#[test]
fn the_system_smtp_profile_is_set_from_the_cli_and_an_account_sends_through_it() {
    let me = user("sysprof");
    let home = Home::new();
    home.add_account("a", &me);
    // No profile yet: turning it on says how to set one.
    let (code, v) = home.json(&["account", "edit", "a", "--use-system-smtp", "true"]);
    assert_eq!(code, 64, "{v}");
    assert!(
        v["error"]["fix"]
            .as_str()
            .unwrap()
            .contains("mailroom system-smtp set"),
        "{v}"
    );
    let (code, v) = home.json(&["system-smtp", "show"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["system_smtp"], serde_json::Value::Null, "{v}");

    let relay = format!("127.0.0.1:{RELAY}");
    let (code, v) = home.json(&[
        "system-smtp",
        "set",
        "--smtp",
        &relay,
        "--smtp-security",
        "none",
        "--smtp-auth",
        "none",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["system_smtp"]["server"]["port"], RELAY, "{v}");
    assert_eq!(v["system_smtp"]["password_source"], "not_needed", "{v}");
    let out = home.run(&["account", "edit", "a", "--use-system-smtp", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, v) = home.json(&["system-smtp", "show"]);
    assert_eq!(v["used_by"], serde_json::json!(["a"]), "{v}");

    // account test checks the profile's server; sending goes through it.
    let (code, v) = home.json(&["account", "test", "a"]);
    assert_eq!(code, 0, "{v}");
    assert!(
        step(&v, "smtp_connect")["detail"]
            .as_str()
            .unwrap()
            .contains(&relay),
        "{v}"
    );
    assert_eq!(step(&v, "smtp_auth")["status"], "skipped", "{v}");
    let (code, v) = send(&home, "a", &me, "through the system profile");
    assert_eq!(code, 0, "{v}");
    let got = wait_arrived(&me, "INBOX", "through the system profile", 1);
    assert!(
        !got[0].contains("ESMTPSA"),
        "the relay, no login: {}",
        got[0]
    );

    // account show names the profile, in words and as data.
    let out = home.run(&["account", "show", "a"]);
    let text = stderr(&out) + &stdout(&out);
    assert!(
        text.contains(&format!("yes: sends through {relay} (none)")),
        "{text}"
    );
    let (_, v) = home.json(&["account", "show", "a"]);
    assert_eq!(v["account"]["use_system_smtp"], true, "{v}");
    assert_eq!(v["account"]["system_smtp"]["smtp_auth"], "none", "{v}");

    // Removing waits for the account to switch back.
    let (code, v) = home.json(&["system-smtp", "remove"]);
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"]["fix"]
            .as_str()
            .unwrap()
            .contains("mailroom account edit a --use-system-smtp false"),
        "{v}"
    );
    assert!(
        home.run(&["account", "edit", "a", "--use-system-smtp", "false"])
            .status
            .success()
    );
    let (code, v) = home.json(&["system-smtp", "remove"]);
    assert_eq!(code, 0, "{v}");
    let text = home.settings_text();
    assert!(!text.contains("[system_smtp]"), "{text}");
}
