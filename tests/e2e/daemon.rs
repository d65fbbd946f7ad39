//! The daemon drives the outbox too: mail queued by another process goes out, is copied to Sent
//! and verified without anyone running `outbox flush`.

use std::process::Stdio;
use std::time::Duration;

use super::common::*;

#[test]
fn daemon_sends_mail_queued_by_another_process_and_verifies_the_copy() {
    let sender = new_user("daemon-out");
    let rcpt = new_user("daemon-rcpt");
    let home = Home::new();
    home.add_account("d", &sender);
    home.set_account_option("d", "sync.poll_secs", toml_edit::value(1));
    let path = home.path().join("config.toml");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    doc["general"]["outbox_poll_secs"] = toml_edit::value(1);
    std::fs::write(&path, doc.to_string()).unwrap();

    let child = home
        .cmd()
        .arg("daemon")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _d = Daemon(child);

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
