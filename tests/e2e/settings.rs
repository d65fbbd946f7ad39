//! Issue 13: `account show` for people (every setting in words, `--json` the same as data, never a
//! secret) and settings from the CLI (`account edit --poll-secs/--prefetch-max-bytes`), written
//! into config.toml in place and taking effect on the next sync.

use std::time::Duration;

use super::common::*;

fn bodies_cached(home: &Home) -> (i64, i64) {
    home.db().row(
        "SELECT COUNT(*), (SELECT COUNT(*) FROM bodies) FROM messages",
        &[],
    )
}

#[test]
fn account_show_prints_every_setting_in_words_and_as_data_never_a_secret() {
    let me = new_user("show");
    seed(&me, 3);
    let home = Home::new();
    let ca = servers().ca.to_string_lossy().to_string();
    let out = home.run(&[
        "account",
        "add",
        "w",
        "--email",
        &me,
        "--imap",
        "127.0.0.1:1993",
        "--smtp",
        "127.0.0.1:1587",
        "--ca-file",
        &ca,
        "--alias",
        "sales@example.test",
        "--share-with",
        "carol,dave",
        "--password-command",
        "echo secret # s3cr3t-marker",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The user's own notes stay where they are; only the changed keys are written (config.toml,
    // or on PostgreSQL the shared settings' document).
    let before = home
        .settings_text()
        .replacen("[accounts.w]\n", "# work mail\n[accounts.w]\n", 1);
    home.write_settings(&before);
    let out = home.run(&[
        "account",
        "edit",
        "w",
        "--poll-secs",
        "45",
        "--prefetch-max-bytes",
        "0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = home.settings_text();
    assert_eq!(
        after,
        format!("{before}\n[accounts.w.sync]\npoll_secs = 45\nbody_prefetch_max_bytes = 0\n"),
        "only the two settings are added"
    );
    let out = home.run(&["account", "edit", "w", "--poll-secs", "0"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert_eq!(home.settings_text(), after);
    let out = home.run(&["sync", "w", "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // People get words, not JSON.
    let out = home.run(&["account", "show", "w"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.trim_start().starts_with('{'), "{text}");
    for want in [
        &format!("account w <{me}>") as &str,
        "shared with       carol, dave",
        "aliases           sales@example.test",
        "sign-in           password as",
        "password          from a password command (nothing stored)",
        "IMAP              127.0.0.1:1993 (tls)",
        "SMTP              127.0.0.1:1587 (starttls)",
        "SMTP login        default: password, PLAIN if the server offers it, else LOGIN",
        "system SMTP       no",
        "certificates      verified, trusting the CA in",
        "sync              INBOX, Sent",
        "sent: Sent",
        "first sync takes  all history",
        "poll every        45 s",
        "bodies            every body when opened (no prefetch)",
        "IDLE              yes, renewed every 1500 s",
        "timeout           60 s per wait",
        "sent copy",
        "filed by server   no",
        "on failure        retry (first retry after 30 s)",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
    // `--json`: the same settings as data, every key present (null, not missing).
    let (code, v) = home.json(&["account", "show", "w"]);
    assert_eq!(code, 0, "{v}");
    let a = &v["account"];
    for key in [
        "name",
        "id",
        "email",
        "display_name",
        "user",
        "enabled",
        "insecure",
        "imap",
        "smtp",
        "ca_file",
        "auth",
        "smtp_auth",
        "password_source",
        "use_system_smtp",
        "system_smtp",
        "preset",
        "aliases",
        "owner",
        "shared_with",
        "deny",
        "roles",
        "sync",
        "sent_copy",
    ] {
        assert!(a.get(key).is_some(), "{key} missing in {a}");
    }
    assert_eq!(a["sync"]["poll_secs"], 45, "{a}");
    assert_eq!(a["sync"]["body_prefetch_max_bytes"], 0, "{a}");
    assert_eq!(a["sync"]["folders"], serde_json::json!(["INBOX", "Sent"]));
    assert_eq!(a["sync"]["since"], serde_json::Value::Null);
    assert_eq!(a["roles"]["sent"], "Sent", "{a}");
    assert_eq!(a["sent_copy"]["folders"]["reply"], serde_json::Value::Null);
    assert_eq!(a["sent_copy"]["content"], "full");
    assert_eq!(a["password_source"], "command");
    assert_eq!(a["system_smtp"], serde_json::Value::Null);
    assert!(
        !text.contains("s3cr3t") && !v.to_string().contains("s3cr3t"),
        "the password command is never shown"
    );
}

#[test]
fn prefetch_set_from_the_cli_decides_which_bodies_the_next_sync_fetches() {
    let me = new_user("prefetch");
    seed(&me, 4);
    let home = Home::new();
    home.add_account("p", &me);
    let out = home.run(&["account", "edit", "p", "--prefetch-max-bytes", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = home.run(&["sync", "p", "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(bodies_cached(&home), (4, 0), "headers only");
    let out = home.run(&["account", "edit", "p", "--prefetch-max-bytes", "10000000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("the bodies prefetched", Duration::from_secs(60), || {
        let out = home.run(&["sync", "p", "--once"]);
        assert!(out.status.success(), "{}", stderr(&out));
        (bodies_cached(&home) == (4, 4)).then_some(())
    });
}
