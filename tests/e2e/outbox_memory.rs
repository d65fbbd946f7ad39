//! Issue 13: the outbox's memory after a crash. A copy mailroom appended carries
//! `X-Mailroom-Copy: TOKEN` (committed before the APPEND), so a run that dies between the APPEND
//! and its commit recognises its own copy afterwards; "this server files Sent itself" is learned
//! only from a copy without our token and unlearned when an expected server copy does not show
//! up in time. Sending never waits for any of it. The server's folders are read with doveadm.

use std::time::{Duration, Instant};

use super::common::*;
use super::send::{audit_actions, flush_until, outbox_item, raw_of, send_json, user};

/// The copies of Message-ID `mid` (without <>) in `folder` of `user`, as the server has them:
/// (UID, the X-Mailroom-Copy token or "").
fn copies(user: &str, folder: &str, mid: &str) -> Vec<(u32, String)> {
    let want = format!("<{mid}>");
    server_fetch(
        user,
        folder,
        &["uid", "hdr.message-id", "hdr.x-mailroom-copy"],
    )
    .into_iter()
    .filter(|r| r[1] == want)
    .map(|r| (r[0].parse().expect("a UID"), r[2].clone()))
    .collect()
}

/// The item's copy token as committed.
fn token_of(home: &Home, id: i64) -> Option<String> {
    home.db()
        .query_row("SELECT copy_token FROM outbox WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
}

/// `send` (JSON), timed: (item, how long the command took).
fn timed_send(home: &Home, to: &str, subject: &str) -> (serde_json::Value, Duration) {
    let start = Instant::now();
    let (code, v, err) = send_json(home, &["--to", to, "--subject", subject], "hello");
    let took = start.elapsed();
    assert_eq!(code, 0, "{v}\n{err}");
    (v, took)
}

/// What "no wait" means here: far below the old 3.5 minutes per copy, with room for a loaded
/// machine (a send and its copy take well under a second on loopback).
const NO_WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_crash_right_after_the_append_is_remembered_and_later_sends_never_wait() {
    let alice = user("obmem-a");
    let bob = user("obmem-b");
    let home = Home::new();
    home.add_account("a", &alice);
    let out = home
        .cmd()
        .env("MAILROOM_FAILPOINT", "after_append")
        .args([
            "send",
            "--to",
            &bob,
            "--subject",
            "crash right after the APPEND",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the failpoint aborts the process");
    let (_, list) = home.json(&["outbox"]);
    let item = list["items"][0].clone();
    let id = item["id"].as_i64().unwrap();
    let mid = item["message_id"].as_str().unwrap().to_string();
    assert_eq!(
        (item["state"].as_str(), item["copy_state"].as_str()),
        (Some("sent"), Some("pending")),
        "the APPEND went through, its commit did not: {item}"
    );
    let token = token_of(&home, id).expect("the token was committed before the APPEND");
    let on_server = copies(&alice, "Sent", &mid);
    assert_eq!(on_server.len(), 1, "{on_server:?}");
    assert_eq!(on_server[0].1, token, "the copy carries the item's token");

    // The next run recognises its own copy: appended, not filed by the server, not twice.
    let item = flush_until(&home, id, "verified", Duration::from_secs(30));
    assert_eq!(item["copy_state"], "appended", "{item}");
    assert_eq!(item["copy_uid"], on_server[0].0, "{item}");
    assert_eq!(
        copies(&alice, "Sent", &mid),
        on_server,
        "still that one copy"
    );
    let actions = audit_actions(&home, id);
    assert!(
        actions.iter().any(|a| a == "outbox.copy_recognised"),
        "{actions:?}"
    );
    assert_eq!(item["attempts"], 1, "sent once");

    // Nothing was learned from our own copy: three more sends each verify at once.
    for n in 1..=3 {
        let (v, took) = timed_send(&home, &bob, &format!("after the crash {n}"));
        let id = v["id"].as_i64().unwrap();
        let mid = v["message_id"].as_str().unwrap();
        assert_eq!(
            (v["state"].as_str(), v["copy_state"].as_str()),
            (Some("verified"), Some("appended")),
            "send {n} waited for nothing: {v}"
        );
        assert!(took < NO_WAIT, "send {n} took {took:?}");
        eprintln!("send {n} after the crash: verified with its copy in {took:?}");
        let sent = copies(&alice, "Sent", mid);
        assert_eq!(sent.len(), 1, "exactly one copy of send {n}: {sent:?}");
        assert_eq!(Some(sent[0].1.clone()), token_of(&home, id));
        assert!(
            !audit_actions(&home, id)
                .iter()
                .any(|a| a == "outbox.copy_waiting"),
            "send {n} never waited for a server copy"
        );
    }
    let (_, st) = home.json(&["status"]);
    assert_eq!(st["accounts"][0]["outbox"]["copy_pending"], 0, "{st}");
    let (_, list) = home.json(&["outbox"]);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["copy_state"] == "appended"),
        "nothing is labelled filed_by_server: {list}"
    );
}

#[test]
fn filing_is_learned_from_a_copy_we_did_not_append_and_unlearned_when_the_server_does_not_file() {
    let alice = user("obmem-learn-a");
    let bob = user("obmem-learn-b");
    let home = Home::new();
    home.add_account("a", &alice);
    // Batch times count in whole seconds: 3 s leaves the copy not yet due when `send` ends;
    // the wait is long enough that a loaded machine still sees the copy step wait.
    const WAIT: u64 = 15;
    home.set_account_option("a", "sent_copy.batch_secs", toml_edit::value(3));
    home.set_account_option("a", "sent_copy.retry_secs", toml_edit::value(1));
    home.set_account_option(
        "a",
        "sent_copy.server_copy_wait_secs",
        toml_edit::value(WAIT as i64),
    );

    // 1. A copy that mailroom did not append shows up before its own: positive evidence.
    let (v, _) = timed_send(&home, &bob, "filed by someone else");
    assert_eq!(v["state"], "sent", "batched: the copy waits {v}");
    let first = v["id"].as_i64().unwrap();
    let mid = v["message_id"].as_str().unwrap().to_string();
    let saved = std::process::Command::new(repo().join("scripts/mailserver"))
        .args(["doveadm", "save", "-u", &alice, "-m", "Sent"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&raw_of(&home, first))?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(saved.status.success(), "{}", stderr(&saved));
    let item = flush_until(&home, first, "verified", Duration::from_secs(30));
    assert_eq!(item["copy_state"], "filed_by_server", "{item}");
    assert_eq!(
        copies(&alice, "Sent", &mid),
        vec![(item["copy_uid"].as_u64().unwrap() as u32, String::new())],
        "only the copy without a token; none appended"
    );

    // 2. Now a copy waits for the server's — but the send itself goes out at once.
    let (v, took) = timed_send(&home, &bob, "the server does not file this one");
    let second = v["id"].as_i64().unwrap();
    let mid2 = v["message_id"].as_str().unwrap().to_string();
    assert_eq!(v["state"], "sent", "{v}");
    assert!(took < NO_WAIT, "sending did not wait: {took:?}");
    let sent_at = Instant::now();
    wait_for("the delivery", Duration::from_secs(30), || {
        (server_fetch(&bob, "INBOX", &["uid", "hdr.message-id"])
            .iter()
            .any(|r| r[1] == format!("<{mid2}>")))
        .then_some(())
    });
    // Once its batch time is over, the copy step looks for the server's copy and waits.
    let waiting = wait_for("the copy step to look", Duration::from_secs(30), || {
        home.run(&["outbox", "flush"]);
        let item = outbox_item(&home, second);
        (item["copy_attempts"].as_i64() >= Some(1)).then_some(item)
    });
    assert_eq!(
        (waiting["state"].as_str(), waiting["copy_state"].as_str()),
        (Some("sent"), Some("pending")),
        "{waiting}"
    );
    assert!(
        waiting["last_error"]["what"]
            .as_str()
            .unwrap_or_default()
            .contains("waiting for the server to file"),
        "{waiting}"
    );
    // The server never files it: after the wait, mailroom appends its own and unlearns.
    let item = flush_until(&home, second, "verified", Duration::from_secs(60));
    let waited = sent_at.elapsed();
    eprintln!("send took {took:?}; its copy waited and was appended {waited:?} after it");
    assert_eq!(item["copy_state"], "appended", "{item}");
    assert!(
        waited >= Duration::from_secs(WAIT - 3),
        "not before server_copy_wait_secs: {waited:?}"
    );
    let sent = copies(&alice, "Sent", &mid2);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(Some(sent[0].1.clone()), token_of(&home, second));
    let (_, log) = home.json(&["log"]);
    assert!(
        log.to_string().contains("appends its own copies again"),
        "the unlearning is told: {log}"
    );

    // 3. Unlearned: the next copy is appended without waiting.
    let (v, _) = timed_send(&home, &bob, "no more waiting");
    let third = v["id"].as_i64().unwrap();
    let item = flush_until(&home, third, "verified", Duration::from_secs(30));
    assert_eq!(item["copy_state"], "appended", "{item}");
    assert!(
        !audit_actions(&home, third)
            .iter()
            .any(|a| a == "outbox.copy_waiting"),
        "{:?}",
        audit_actions(&home, third)
    );
    assert_eq!(
        copies(&alice, "Sent", v["message_id"].as_str().unwrap()).len(),
        1
    );
    assert_eq!(outbox_item(&home, first)["copy_state"], "filed_by_server");
}

#[test]
fn a_server_that_files_sent_mail_is_waited_for_never_raced() {
    // Any filer-* user has its SMTP-sent mail filed into Sent by the server (Postfix
    // sender_bcc_maps): a real server that files, owned by this test.
    let filer = user("filer-obmem");
    let bob = user("obmem-filer-b");
    let home = Home::new();
    home.add_account("f", &filer);
    home.set_account_option("f", "sent_copy.batch_secs", toml_edit::value(3));
    home.set_account_option("f", "sent_copy.retry_secs", toml_edit::value(1));
    let (v, _) = timed_send(&home, &bob, "teaches that the server files");
    assert_eq!(v["state"], "sent", "batched: the copy waits {v}");
    let first = v["id"].as_i64().unwrap();
    let mid = v["message_id"].as_str().unwrap().to_string();
    wait_for(
        "the server to file its copy",
        Duration::from_secs(30),
        || (!copies(&filer, "Sent", &mid).is_empty()).then_some(()),
    );
    let item = flush_until(&home, first, "verified", Duration::from_secs(30));
    assert_eq!(item["copy_state"], "filed_by_server", "{item}");
    assert_eq!(copies(&filer, "Sent", &mid).len(), 1);

    // Learned: with no batch time the copy step runs right after SMTP, before the server's
    // copy lands; it waits for it instead of appending a duplicate.
    home.set_account_option("f", "sent_copy.batch_secs", toml_edit::value(0));
    for n in 1..=2 {
        let (v, took) = timed_send(&home, &bob, &format!("filed by the server {n}"));
        assert!(took < NO_WAIT, "{took:?}");
        let id = v["id"].as_i64().unwrap();
        let mid = v["message_id"].as_str().unwrap().to_string();
        let item = flush_until(&home, id, "verified", Duration::from_secs(30));
        assert_eq!(item["copy_state"], "filed_by_server", "{item}");
        let found = copies(&filer, "Sent", &mid);
        assert_eq!(found.len(), 1, "never a duplicate: {found:?}");
        assert_eq!(found[0].1, "", "the server's copy, not one of ours");
    }
}
