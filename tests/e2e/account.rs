//! Issue 2: account add / test / status against the real servers.

use super::common::*;

fn add_args<'a>(name: &'a str, user: &'a str, imap: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "account",
        "add",
        name,
        "--email",
        user,
        "--imap",
        imap,
        "--smtp",
        "127.0.0.1:1587",
        "--password-stdin",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn account_test_passes_every_step_on_imaps_and_starttls() {
    let s = servers();
    let user = new_user("acct-ok");
    let home = Home::new();
    let ca = s.ca.to_string_lossy().to_string();
    let imaps = format!("127.0.0.1:{IMAPS}");
    let out = home.run_stdin(
        &add_args("tls", &user, &imaps, &["--ca-file", &ca]),
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let starttls = format!("127.0.0.1:{IMAP_STARTTLS}");
    let out = home.run_stdin(
        &add_args(
            "st",
            &user,
            &starttls,
            &["--ca-file", &ca, "--imap-security", "starttls"],
        ),
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["tls", "st"] {
        let (code, v) = home.json(&["account", "test", name]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["ok"], true);
        let ids: Vec<&str> = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "connect",
                "tls",
                "login",
                "list",
                "sent_folder",
                "sent_write",
                "smtp_connect",
                "smtp_tls",
                "smtp_auth"
            ]
        );
        assert!(
            v["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["status"] == "ok"),
            "{v}"
        );
    }
    // The write probe removed itself: Sent is empty again.
    let out = doveadm(&["search", "-u", &user, "mailbox", "Sent", "all"]);
    assert!(
        stdout(&out).trim().is_empty(),
        "probe left behind: {}",
        stdout(&out)
    );
}

#[test]
fn wrong_password_fails_clearly_and_stores_no_secret_in_clear() {
    let s = servers();
    let user = new_user("acct-badpw");
    let home = Home::new();
    let ca = s.ca.to_string_lossy().to_string();
    let imaps = format!("127.0.0.1:{IMAPS}");
    let out = home.run_stdin(
        &add_args("w", &user, &imaps, &["--ca-file", &ca]),
        "not-the-password",
    );
    assert!(out.status.success());
    let out = home.run(&["account", "test", "w"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("FAILED  login"), "{err}");
    assert!(err.contains("set-password"), "the fix is named: {err}");
    let (_, v) = home.json(&["account", "test", "w"]);
    let login = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "login")
        .unwrap()
        .clone();
    assert_eq!(login["status"], "failed");
    assert!(
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .skip_while(|s| s["id"] != "login")
            .skip(1)
            .all(|s| s["status"] == "skipped")
    );
    // `add --test` with a wrong password stores nothing.
    let out = home.run_stdin(
        &add_args("w2", &user, &imaps, &["--ca-file", &ca, "--test"]),
        "wrong",
    );
    assert_eq!(out.status.code(), Some(1));
    let (_, list) = home.json(&["account", "list"]);
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1, "{list}");
    // The full protocol trace goes to the debug log in the home, with LOGIN redacted.
    let out = home
        .cmd()
        .args(["account", "test", "w"])
        .env("MAILROOM_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let log =
        std::fs::read_to_string(home.path().join("logs/mailroom.log")).expect("debug log written");
    assert!(
        log.contains("LOGIN [REDACTED]"),
        "the trace shows the redacted LOGIN"
    );
    assert!(!stderr(&out).contains("not-the-password"));
    // No clear-text password anywhere in the home (config, database, WAL, key, debug log).
    for entry in walk(home.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !contains(&bytes, b"not-the-password"),
            "password in clear in {}",
            entry.display()
        );
    }
}

#[test]
fn untrusted_certificate_is_refused_with_both_fixes_and_insecure_is_shown() {
    servers();
    let user = new_user("acct-cert");
    let home = Home::new();
    let imaps = format!("127.0.0.1:{IMAPS}");
    let out = home.run_stdin(&add_args("nocert", &user, &imaps, &[]), PASSWORD);
    assert!(out.status.success());
    let (code, v) = home.json(&["account", "test", "nocert"]);
    assert_eq!(code, 1);
    let tls = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "tls")
        .unwrap()
        .clone();
    assert_eq!(tls["status"], "failed");
    assert!(
        tls["detail"].as_str().unwrap().contains("certificate"),
        "{tls}"
    );
    let fix = tls["fix"].as_str().unwrap();
    assert!(
        fix.contains("--ca-file") && fix.contains("--insecure-skip-verify"),
        "{fix}"
    );

    let out = home.run_stdin(
        &add_args("insecure", &user, &imaps, &["--insecure-skip-verify"]),
        PASSWORD,
    );
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("insecure"),
        "the add warns: {}",
        stdout(&out)
    );
    let (code, v) = home.json(&["account", "test", "insecure"]);
    assert_eq!(code, 0, "{v}");
    let (_, st) = home.json(&["status"]);
    let acct = st["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "insecure")
        .unwrap()
        .clone();
    assert_eq!(acct["insecure"], true);
    let other = st["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "nocert")
        .unwrap()
        .clone();
    assert_eq!(other["insecure"], false);
}

#[test]
fn closed_port_names_the_fix() {
    servers();
    let home = Home::new();
    // Port 1 on loopback: nothing listens.
    let out = home.run_stdin(
        &add_args("closed", "x@example.test", "127.0.0.1:1", &[]),
        PASSWORD,
    );
    assert!(out.status.success());
    let (code, v) = home.json(&["account", "test", "closed"]);
    assert_eq!(code, 1);
    let c = &v["steps"][0];
    assert_eq!(c["id"], "connect");
    assert_eq!(c["status"], "failed");
    assert!(c["fix"].as_str().unwrap().contains("port"), "{c}");
}

#[test]
fn status_lists_accounts_and_exit_codes_follow_health() {
    let s = servers();
    let user = new_user("acct-status");
    let home = Home::new();
    // Nothing to monitor is not healthy (issue 13).
    let (code, v) = home.json(&["status"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "accounts.none", "{v}");
    home.add_account("main", &user);
    let (code, v) = home.json(&["status"]);
    assert_eq!(code, 0, "{v}");
    let a = &v["accounts"][0];
    assert_eq!(a["name"], "main");
    assert_eq!(a["state"], "pending");
    for key in [
        "email",
        "enabled",
        "insecure",
        "last_success_at",
        "last_error",
        "counts",
        "progress",
        "health",
        "outbox",
        "unmatched",
    ] {
        assert!(a.get(key).is_some(), "missing {key}: {a}");
    }
    // A duplicate name exits 1; a usage error exits 64.
    let out = home.run_stdin(
        &add_args(
            "main",
            &user,
            "127.0.0.1:1993",
            &["--ca-file", &s.ca.to_string_lossy()],
        ),
        PASSWORD,
    );
    assert_eq!(out.status.code(), Some(1));
    let out = home.run(&["account", "add"]);
    assert_eq!(out.status.code(), Some(64));
    // A damaged database file: exit 3.
    if sqlite_file_only("a damaged database file") {
        return;
    }
    std::fs::write(
        home.path().join("mailroom.db"),
        b"this is not sqlite at all, not even close........",
    )
    .unwrap();
    let _ = std::fs::remove_file(home.path().join("mailroom.db-wal"));
    let _ = std::fs::remove_file(home.path().join("mailroom.db-shm"));
    let out = home.run(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("mailroom.db is damaged") && err.contains("move"),
        "names the file and the way out: {err}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn plan_then_scope_the_first_sync_with_account_edit() {
    let user = new_user("acct-scope");
    seed(&user, 200);
    let home = Home::new();
    home.add_account("s", &user);
    let (code, plan) = home.json(&[
        "sync",
        "s",
        "--plan",
        "--since",
        "2026-05-01",
        "--unread-only",
    ]);
    assert_eq!(code, 0, "{plan}");
    let inbox = plan["accounts"][0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == "INBOX")
        .unwrap()
        .clone();
    let planned = inbox["to_sync"].as_i64().unwrap();
    assert!(
        planned > 0 && planned < 200,
        "the scope narrows the plan: {inbox}"
    );
    // Nothing was synced by planning.
    let (_, msgs) = home.json(&["messages", "s", "--limit", "500"]);
    assert_eq!(msgs["messages"].as_array().unwrap().len(), 0);

    let out = home.run(&[
        "account",
        "edit",
        "s",
        "--since",
        "2026-05-01",
        "--process",
        "unread-only",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, shown) = home.json(&["account", "show", "s"]);
    assert_eq!(shown["account"]["sync"]["since"], "2026-05-01", "{shown}");
    assert_eq!(
        shown["account"]["sync"]["process"], "unread_only",
        "{shown}"
    );
    let out = home.run(&["account", "edit", "s", "--since", "May 1st"]);
    assert_eq!(out.status.code(), Some(64), "a bad date is a usage error");
    let out = home.run(&["sync", "s", "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, msgs) = home.json(&["messages", "s", "--folder", "INBOX", "--limit", "500"]);
    let msgs = msgs["messages"].as_array().unwrap().clone();
    assert_eq!(
        msgs.len() as i64,
        planned,
        "the sync took exactly what the plan showed"
    );
    assert!(
        msgs.iter()
            .all(|m| !m["flags"].as_array().unwrap().iter().any(|f| f == "\\Seen")),
        "unread only"
    );
}

fn create_folder(user: &str, name: &str) {
    let out = doveadm(&["mailbox", "create", "-u", user, name]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn per_type_sent_copy_folders_that_exist_pass() {
    servers();
    let user = new_user("acct-pertype-ok");
    create_folder(&user, "Replies");
    create_folder(&user, "Envoyés");
    let home = Home::new();
    home.add_account("p", &user);
    home.set_account_option("p", "sent_copy.folders.reply", toml_edit::value("Replies"));
    // A non-ASCII name: compared after decoding the LIST answer from modified UTF-7.
    home.set_account_option("p", "sent_copy.folders.new", toml_edit::value("Envoyés"));
    let (code, v) = home.json(&["account", "test", "p"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    let sent = step(&v, "sent_folder");
    assert_eq!(sent["status"], "ok", "{v}");
    let detail = sent["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Sent "),
        "the default is checked: {detail}"
    );
    assert!(
        detail.contains("sent_copy.folders.reply: Replies")
            && detail.contains("sent_copy.folders.new: Envoyés"),
        "each override is named: {detail}"
    );
    assert!(sent["fix"].is_null());
    assert_eq!(step(&v, "sent_write")["status"], "ok", "{v}");
}

#[test]
fn a_missing_reply_folder_fails_the_sent_step_with_the_setting_and_fix() {
    servers();
    let user = new_user("acct-pertype-missing");
    let home = Home::new();
    home.add_account("m", &user);
    home.set_account_option("m", "sent_copy.folders.reply", toml_edit::value("Replys"));
    let (code, v) = home.json(&["account", "test", "m"]);
    assert_eq!(code, 1, "a failed test exits 1: {v}");
    assert_eq!(v["ok"], false, "{v}");
    let ids: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 9, "every step is reported: {v}");
    for id in ["connect", "tls", "login", "list"] {
        assert_eq!(step(&v, id)["status"], "ok", "{v}");
    }
    let sent = step(&v, "sent_folder");
    assert_eq!(sent["status"], "failed", "{v}");
    let detail = sent["detail"].as_str().unwrap();
    assert!(
        detail.contains("\"Replys\"") && detail.contains("sent_copy.folders.reply"),
        "names the folder and the setting: {detail}"
    );
    let fix = sent["fix"].as_str().unwrap();
    assert!(
        fix.contains("sent_copy.folders.reply")
            && fix.contains("\"Sent\"")
            && fix.contains("mailroom folders m"),
        "names the setting, the existing Sent folder and where to see all: {fix}"
    );
    for id in ["sent_write", "smtp_connect", "smtp_tls", "smtp_auth"] {
        assert_eq!(step(&v, id)["status"], "skipped", "{v}");
    }
    // The human output shows the same failure.
    let out = home.run(&["account", "test", "m"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("FAILED  sent_folder"), "{err}");

    // Creating the folder is the fix.
    create_folder(&user, "Replys");
    let (code, v) = home.json(&["account", "test", "m"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(step(&v, "sent_folder")["status"], "ok", "{v}");
}

#[test]
fn sent_copy_off_skips_the_sent_steps_and_passes() {
    servers();
    let user = new_user("acct-copy-off");
    let home = Home::new();
    home.add_account("o", &user);
    home.set_account_option("o", "sent_copy.enabled", toml_edit::value(false));
    home.set_account_option("o", "sent_copy.folders.reply", toml_edit::value("Nowhere"));
    let (code, v) = home.json(&["account", "test", "o"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    for id in ["sent_folder", "sent_write"] {
        let s = step(&v, id);
        assert_eq!(s["status"], "skipped", "{v}");
        assert!(
            s["detail"]
                .as_str()
                .unwrap()
                .contains("sent_copy.enabled = false"),
            "{v}"
        );
    }
    assert_eq!(step(&v, "smtp_auth")["status"], "ok", "{v}");
}

#[test]
fn account_edit_keeps_the_users_comments_and_layout() {
    let home = Home::new();
    home.add_account("c", "cfg-edit@example.test");
    // config.toml, or on PostgreSQL the shared settings' document: both are edited in place.
    let written = home.settings_text();
    // `account add` wrote only what differs from the defaults; the user annotates that and adds
    // settings of their own.
    assert!(!written.contains("[accounts.c.sync]"), "{written}");
    let own = "enabled = true\ndeny = []\n\n# keep it gentle on the server\n[accounts.c.sync]\n\
               poll_secs = 300   # five minutes\nmark_read = false # for now\nbatch_size = 10000\n";
    let commented = format!("# my mail setup\n\n{written}{own}\n# end of my settings\n").replacen(
        "[accounts.c]\n",
        "# the customer inbox\n[accounts.c]\n",
        1,
    );
    home.write_settings(&commented);

    let out = home.run(&[
        "account",
        "edit",
        "c",
        "--since",
        "2026-01-01",
        "--mark-read",
        "true",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = home.settings_text();
    // Exactly two lines differ: one value changed in place, one key added to its table.
    let marked = commented.replacen(
        "mark_read = false # for now",
        "mark_read = true # for now",
        1,
    );
    let want = marked.replacen(
        "batch_size = 10000\n",
        "batch_size = 10000\nsince = \"2026-01-01\"\n",
        1,
    );
    assert_eq!(text, want);
    let (code, shown) = home.json(&["account", "show", "c"]);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(shown["account"]["sync"]["since"], "2026-01-01", "{shown}");
    assert_eq!(shown["account"]["sync"]["mark_read"], true, "{shown}");

    // Back to the whole history: the key goes, nothing else moves.
    let out = home.run(&["account", "edit", "c", "--since", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(home.settings_text(), marked);
    let (_, shown) = home.json(&["account", "show", "c"]);
    assert!(shown["account"]["sync"]["since"].is_null(), "{shown}");
    assert_eq!(shown["account"]["sync"]["mark_read"], true, "{shown}");

    // The other account-level edits leave the rest alone too, and undo to the same bytes.
    for args in [
        &["account", "disable", "c"][..],
        &["account", "enable", "c"],
        &["deny", "add", "--account", "c", "spam.example"],
        &["deny", "remove", "--account", "c", "spam.example"],
    ] {
        let out = home.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(home.settings_text(), marked);
    let out = home.run(&[
        "account",
        "set-password",
        "c",
        "--password-command",
        "echo secret",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = home.settings_text();
    assert_eq!(
        text,
        marked.replacen(
            "deny = []\n",
            "deny = []\npassword_command = \"echo secret\"\n",
            1
        )
    );
    let out = home.run_stdin(
        &["account", "set-password", "c", "--password-stdin"],
        "secret\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(home.settings_text(), marked);

    // A preset only fills in a new account; edit refuses it instead of ignoring it.
    let out = home.run(&["account", "edit", "c", "--preset", "gmail"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("only applies to `account add`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(home.settings_text(), marked);
}

/// Messages of a folder as (flags, subject), from the server itself.
fn folder_messages(user: &str, folder: &str) -> Vec<(String, String)> {
    server_fetch(user, folder, &["flags", "hdr.subject"])
        .into_iter()
        .map(|m| (m[0].clone(), m[1].clone()))
        .collect()
}

#[test]
fn the_write_probe_reaches_every_copy_folder_and_never_expunges_the_users_deleted_mail() {
    servers();
    let user = new_user("acct-probe-all");
    // The user's own mail in Sent, marked \Deleted by another client and not expunged yet.
    smtp_send(&user, &user, "kept while marked deleted", "hello\n");
    wait_for("delivered", std::time::Duration::from_secs(30), || {
        (folder_messages(&user, "INBOX").len() == 1).then_some(())
    });
    let out = doveadm(&["move", "-u", &user, "Sent", "mailbox", "INBOX", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = doveadm(&[
        "flags",
        "add",
        "-u",
        &user,
        "\\Deleted",
        "mailbox",
        "Sent",
        "all",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    create_folder(&user, "Replies");

    // The bare server: IMAP4rev1 only (no UIDPLUS, no UNSELECT), so the probes stay behind as
    // \Deleted messages and show where they went.
    let home = Home::new();
    let imap = format!("127.0.0.1:{BARE_IMAPS}");
    let ca = servers().ca.to_string_lossy().to_string();
    let out = home.run_stdin(&add_args("b", &user, &imap, &["--ca-file", &ca]), PASSWORD);
    assert!(out.status.success(), "{}", stderr(&out));
    home.set_account_option("b", "sent_copy.folders.reply", toml_edit::value("Replies"));
    let (code, v) = home.json(&["account", "test", "b"]);
    assert_eq!(code, 0, "{v}");
    let write = step(&v, "sent_write");
    assert_eq!(write["status"], "ok", "{v}");
    let detail = write["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Sent: ") && detail.contains("Replies (sent_copy.folders.reply)"),
        "both folders were written: {detail}"
    );

    let probe = "mailroom write check (safe to delete)";
    let sent = folder_messages(&user, "Sent");
    assert!(
        sent.iter()
            .any(|(f, s)| s == "kept while marked deleted" && f.contains("\\Deleted")),
        "the user's \\Deleted mail is still there (no CLOSE, no EXPUNGE): {sent:?}"
    );
    assert_eq!(sent.len(), 2, "{sent:?}");
    let replies = folder_messages(&user, "Replies");
    assert_eq!(
        replies.len(),
        1,
        "one probe in the reply folder: {replies:?}"
    );
    assert!(
        replies[0].1 == probe && replies[0].0.contains("\\Deleted"),
        "{replies:?}"
    );

    // On the full server (UIDPLUS, UNSELECT) the probes remove exactly themselves.
    let full = Home::new();
    full.add_account("f", &user);
    full.set_account_option("f", "sent_copy.folders.reply", toml_edit::value("Replies"));
    let (code, v) = full.json(&["account", "test", "f"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(folder_messages(&user, "Sent"), sent, "Sent unchanged");
    assert_eq!(
        folder_messages(&user, "Replies"),
        replies,
        "Replies unchanged"
    );
}

#[test]
fn implicit_tls_against_a_starttls_port_says_so_and_names_the_setting() {
    let s = servers();
    let user = new_user("acct-tls-mismatch");
    let ca = s.ca.to_string_lossy().to_string();
    let home = Home::new();
    // IMAP: the STARTTLS port with the default implicit TLS.
    let imap = format!("127.0.0.1:{IMAP_STARTTLS}");
    let out = home.run_stdin(
        &add_args("i", &user, &imap, &["--ca-file", &ca, "--test"]),
        PASSWORD,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("did not answer with TLS") && err.contains("--imap-security starttls"),
        "{err}"
    );
    // SMTP: implicit TLS asked of the submission (STARTTLS) port.
    let out = home.run_stdin(
        &add_args(
            "s",
            &user,
            "127.0.0.1:1993",
            &["--ca-file", &ca, "--smtp-security", "tls", "--test"],
        ),
        PASSWORD,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("SMTP server at 127.0.0.1:1587 did not answer with TLS")
            && err.contains("--smtp-security starttls")
            && !err.contains("Connection error: Connection error"),
        "{err}"
    );
    // The suggested settings work.
    let out = home.run_stdin(
        &add_args(
            "ok",
            &user,
            &imap,
            &["--ca-file", &ca, "--imap-security", "starttls", "--test"],
        ),
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A hostile IMAP server on 127.0.0.1 (plain text): greets, then refuses every command with a
/// text full of terminal escapes (a window title, a screen clear, colour).
fn hostile_imap_server() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn
                    .write_all(b"* OK [CAPABILITY IMAP4rev1] \x1b]0;mailroom-pwned\x07ready\r\n");
                let Ok(read) = conn.try_clone() else { return };
                for line in BufReader::new(read).lines() {
                    let Ok(line) = line else { return };
                    let tag = line.split_whitespace().next().unwrap_or("*").to_string();
                    let reply = format!(
                        "{tag} NO \x1b]0;mailroom-pwned\x07login refused \x1b[2J\x1b[31mred\x1b[0m\r\n"
                    );
                    if conn.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_servers_refusal_reaches_the_terminal_without_its_escape_sequences() {
    let port = hostile_imap_server();
    let home = Home::new();
    let imap = format!("127.0.0.1:{port}");
    let out = home.run_stdin(
        &add_args(
            "h",
            "h@example.test",
            &imap,
            &["--imap-security", "none", "--test"],
        ),
        PASSWORD,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("login refused"),
        "the server's words are shown: {err:?}"
    );
    assert!(
        !err.contains('\x1b') && !err.contains('\x07') && !err.contains("\\u{1b}"),
        "no escape sequence passes, not even spelled out: {err:?}"
    );
    assert!(
        err.contains("login refused red") && !err.contains("info: Some"),
        "the words as the server meant them: {err:?}"
    );
}
