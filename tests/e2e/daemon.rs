//! The daemon drives the outbox too: mail queued by another process goes out, is copied to Sent
//! and verified without anyone running `outbox flush`.

use std::time::Duration;

use super::common::*;

#[test]
fn daemon_sends_mail_queued_by_another_process_and_verifies_the_copy() {
    let sender = new_user("daemon-out");
    let rcpt = new_user("daemon-rcpt");
    let home = Home::new();
    home.add_account("d", &sender);
    home.set_account_option("d", "sync.poll_secs", toml_edit::value(1));
    let mut doc: toml_edit::DocumentMut = home.settings_text().parse().unwrap();
    doc["general"]["outbox_poll_secs"] = toml_edit::value(1);
    home.write_settings(&doc.to_string());

    let _d = Daemon::start(&home);

    let out = home.run_stdin(
        &[
            "--json",
            "send",
            "--account",
            "d",
            "--to",
            &rcpt,
            "--subject",
            "queued for the daemon",
            "--queue-only",
        ],
        "hello from the queue\n",
    );
    assert!(out.status.success(), "send --queue-only: {}", stderr(&out));
    let item: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(item["state"], "queued", "{item}");
    let message_id = item["message_id"].as_str().unwrap().to_string();

    wait_for(
        "the daemon to send, copy and verify",
        Duration::from_secs(60),
        || {
            let (_, v) = home.json(&["outbox"]);
            let it = v["items"]
                .as_array()?
                .iter()
                .find(|i| i["message_id"] == message_id.as_str())?
                .clone();
            (it["state"] == "verified").then_some(())
        },
    );
    // Delivered once to the recipient, one copy in the sender's Sent.
    let found = |user: &str, folder: &str| -> usize {
        let out = doveadm(&[
            "search",
            "-u",
            user,
            "mailbox",
            folder,
            "header",
            "message-id",
            &message_id,
        ]);
        stdout(&out)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    };
    wait_for("delivery to the recipient", Duration::from_secs(30), || {
        (found(&rcpt, "INBOX") == 1).then_some(())
    });
    assert_eq!(found(&sender, "Sent"), 1);
}

/// Messages the cache holds for an account (0 while it has none or is unknown).
fn cached(home: &Home, name: &str) -> usize {
    let (_, v) = home.json(&["messages", name, "--limit", "100000"]);
    v["messages"].as_array().map_or(0, |m| m.len())
}

#[test]
fn a_running_daemon_follows_account_changes_in_config_toml() {
    let first = new_user("daemon-cfg-a");
    let second = new_user("daemon-cfg-b");
    seed(&first, 3);
    seed(&second, 5);
    let home = Home::new();
    home.add_account("a", &first);
    home.set_account_option("a", "sync.poll_secs", toml_edit::value(1));
    let _d = Daemon::start(&home);
    wait_for("a synced", Duration::from_secs(30), || {
        (cached(&home, "a") == 3).then_some(())
    });

    // Added while the daemon runs: synced without a restart.
    home.add_account("b", &second);
    home.set_account_option("b", "sync.poll_secs", toml_edit::value(1));
    wait_for(
        "b synced by the running daemon",
        Duration::from_secs(30),
        || (cached(&home, "b") == 5).then_some(()),
    );

    // Disabled: the daemon lets go of it; new mail is not fetched until it is enabled again.
    let out = home.run(&["account", "disable", "a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_secs(3));
    smtp_send(&second, &first, "while disabled", "x\n");
    wait_for("delivered", Duration::from_secs(30), || {
        (server_fetch(&first, "INBOX", &["uid"]).len() == 4).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(cached(&home, "a"), 3, "a disabled account is not synced");
    let out = home.run(&["account", "enable", "a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for(
        "a synced again once enabled",
        Duration::from_secs(30),
        || (cached(&home, "a") == 4).then_some(()),
    );

    // A config.toml that no longer reads: the daemon keeps going with what it had, and says so.
    let path = home.path().join("config.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{good}\n[accounts.b\n")).unwrap();
    wait_for("the daemon to notice", Duration::from_secs(30), || {
        let n = home
            .db()
            .try_count(
                "SELECT COUNT(*) FROM events WHERE what LIKE '%keeps the previous settings%'",
                &[],
            )
            .unwrap_or(0);
        (n > 0).then_some(())
    });
    smtp_send(&first, &second, "while config is broken", "y\n");
    wait_for("b still synced", Duration::from_secs(30), || {
        (cached_raw(&home, "b") == 6).then_some(())
    });
    std::fs::write(&path, &good).unwrap();
    let (_, log) = home.json(&["log"]);
    let text = log.to_string();
    assert!(
        text.contains("keeps the previous settings")
            && text.contains("config.toml changed: b: started"),
        "{log}"
    );
}

/// `cached` while config.toml cannot be read: count straight from the database.
fn cached_raw(home: &Home, name: &str) -> usize {
    home.db()
        .try_count(
            "SELECT COUNT(*) FROM locations l JOIN accounts a ON a.id = l.account_id WHERE a.name = ?1",
            args![name],
        )
        .map_or(0, |n| n as usize)
}

#[test]
fn a_daemon_started_before_any_account_waits_for_one() {
    let user = new_user("daemon-first");
    seed(&user, 2);
    let home = Home::new();
    let mut d = Daemon::start(&home);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        d.0.try_wait().ok().flatten().is_none(),
        "the daemon keeps running without accounts"
    );
    home.add_account("w", &user);
    wait_for("the first account synced", Duration::from_secs(30), || {
        (cached(&home, "w") == 2).then_some(())
    });
}

/// Teams on PostgreSQL: a server restart (an upgrade, a failover) ends every session of a
/// running daemon. Its connections open again by themselves and it goes on syncing — before,
/// the account's task stopped for good at the first failed read and new mail waited for the
/// daemon's restart.
#[test]
fn a_daemon_on_postgresql_goes_on_after_the_server_ends_its_sessions() {
    let Some(home) = Home::on_postgres() else {
        eprintln!("skipped: no PostgreSQL (MAILROOM_TEST_PG_URL)");
        return;
    };
    let user = new_user("pg-ended");
    seed(&user, 2);
    home.add_account("d", &user);
    home.set_account_option("d", "sync.poll_secs", toml_edit::value(1));
    let _d = Daemon::start(&home);
    wait_for("the first sync", Duration::from_secs(30), || {
        (cached(&home, "d") == 2).then_some(())
    });
    // What a restart does to the daemon's sessions, without stopping the server the other
    // tests share: the server ends them.
    let ended: i64 = home.db().value(
        // CASE keeps the order: this session is never ended.
        "SELECT CAST(COALESCE(SUM(CASE WHEN pid = pg_backend_pid() THEN 0
                                       WHEN pg_terminate_backend(pid) THEN 1 ELSE 0 END), 0) AS BIGINT)
         FROM pg_stat_activity WHERE datname = current_database()",
        &[],
    );
    assert!(ended >= 1, "the daemon's sessions were ended ({ended})");
    seed_offset(&user, 2, 2);
    wait_for(
        "new mail synced after the sessions ended",
        Duration::from_secs(30),
        || (cached(&home, "d") == 4).then_some(()),
    );
    let (code, v) = home.json(&["status"]);
    assert_eq!(code, 0, "healthy again: {v}");
}
