//! Issue 4: the send pipeline against the real Postfix + Dovecot — compose, durable outbox, SMTP,
//! copy to Sent, verify, crash recovery. Mailboxes are read back over IMAP byte for byte.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mail_parser::MimeHeaders;

use super::common::*;

/// A fresh mailbox that can log in. Dovecot's passwd-file notices changes by whole-second mtime,
/// so a user added in the same second as an earlier lookup stays unknown until the file changes
/// again: add a throwaway user now and then until the new one can log in.
pub(crate) fn user(prefix: &str) -> String {
    let u = new_user(prefix);
    let mut polls = 0;
    wait_for(
        &format!("{u} to be able to log in"),
        Duration::from_secs(30),
        || {
            let out = doveadm(&["auth", "test", &u, PASSWORD]);
            if out.status.success() && stdout(&out).contains("auth succeeded") {
                return Some(());
            }
            polls += 1;
            if polls % 5 == 0 {
                new_user("nudge");
            }
            None
        },
    );
    u
}

/// One message found over IMAP: its exact bytes and flags.
struct Found {
    raw: Vec<u8>,
    flags: Vec<String>,
}

/// Every message in `folder` of `user` whose Message-ID is `mid` (without <>).
fn imap_find(user: &str, folder: &str, mid: &str) -> Vec<Found> {
    use futures::StreamExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let target = mailroom::imap::ImapTarget {
            server: mailroom::config::Server {
                host: "127.0.0.1".into(),
                port: IMAPS,
                security: mailroom::config::Security::Tls,
            },
            tls: mailroom::imap::TlsOptions {
                ca_file: Some(servers().ca.clone()),
                insecure_skip_verify: false,
            },
            user: user.to_string(),
            timeout: Duration::from_secs(20),
            min_bytes_per_sec: 1024,
            trace_as: None,
        };
        let pw = secrecy::SecretString::from(PASSWORD.to_string());
        let mut s =
            mailroom::imap::connect(&target, &mailroom::secret::Credential::Password(pw.clone()))
                .await
                .expect("imap login");
        s.select(folder).await.expect("select");
        let uids = s
            .uid_search(format!("HEADER Message-ID \"<{mid}>\""))
            .await
            .expect("search");
        let mut out = Vec::new();
        if !uids.is_empty() {
            let set: Vec<String> = uids.iter().map(|u| u.to_string()).collect();
            let mut stream = s
                .uid_fetch(set.join(","), "(FLAGS BODY.PEEK[])")
                .await
                .expect("fetch");
            while let Some(f) = stream.next().await {
                let f = f.expect("fetch item");
                if let Some(body) = f.body() {
                    out.push(Found {
                        raw: body.to_vec(),
                        flags: f.flags().map(|fl| format!("{fl:?}")).collect(),
                    });
                }
            }
        }
        let _ = s.logout().await;
        out
    })
}

fn count(user: &str, folder: &str, mid: &str) -> usize {
    imap_find(user, folder, mid).len()
}

/// `imap_find` for a delivery: waits until the message arrived (or the deadline passes).
fn wait_find(user: &str, folder: &str, mid: &str) -> Vec<Found> {
    let mut found = Vec::new();
    wait_for("delivery to the recipient", Duration::from_secs(30), || {
        found = imap_find(user, folder, mid);
        (!found.is_empty()).then_some(())
    });
    found
}

/// Delivery through Postfix and LMTP is asynchronous: wait until `n` copies arrived, then check
/// that there are exactly `n` (a second delivery would show up as more).
fn assert_delivered(user: &str, mid: &str, n: usize) {
    wait_for("delivery to the recipient", Duration::from_secs(30), || {
        (count(user, "INBOX", mid) >= n).then_some(())
    });
    assert_eq!(
        count(user, "INBOX", mid),
        n,
        "delivered exactly {n} time(s)"
    );
}

pub(crate) fn outbox_item(home: &Home, id: i64) -> serde_json::Value {
    let (code, v) = home.json(&["outbox"]);
    assert_eq!(code, 0, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no item {id} in {v}"))
}

/// Runs `outbox flush` until item `id` reaches `state` (flush is what the daemon runs).
pub(crate) fn flush_until(
    home: &Home,
    id: i64,
    state: &str,
    within: Duration,
) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let out = home.run(&["outbox", "flush"]);
        let last = outbox_item(home, id);
        if last["state"] == state {
            return last;
        }
        assert!(
            start.elapsed() < within,
            "outbox #{id} did not reach {state} within {within:?}: {last}\nlast flush: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn raw_of(home: &Home, id: i64) -> Vec<u8> {
    home.db()
        .value("SELECT raw FROM outbox WHERE id = ?1", args![id])
}

pub(crate) fn send_json(
    home: &Home,
    args: &[&str],
    body: &str,
) -> (i32, serde_json::Value, String) {
    let mut full = vec!["--json", "send"];
    full.extend_from_slice(args);
    let out = home.run_stdin(&full, body);
    let text = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {text:?}\nstderr: {}",
            stderr(&out)
        )
    });
    (out.status.code().unwrap_or(-1), v, stderr(&out))
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub(crate) fn audit_actions(home: &Home, id: i64) -> Vec<String> {
    home.db().column(
        "SELECT action FROM audit WHERE target = ?1 ORDER BY id",
        args![format!("outbox:{id}")],
    )
}

#[test]
fn send_with_attachment_and_non_ascii_subject_lands_once_and_verifies() {
    let alice = user("send-a");
    let bob = user("send-b");
    let carol = user("send-c");
    let home = Home::new();
    home.add_account("a", &alice);
    let dir = tempfile::tempdir().unwrap();
    let att = dir.path().join("Angebot März.pdf");
    std::fs::write(&att, b"%PDF-1.4 fake but binary \x00\x01\x02\xff").unwrap();
    let html = dir.path().join("b.html");
    std::fs::write(&html, "<p>Grüße aus <b>Köln</b></p>").unwrap();
    let subject = "Grüße — 日本語の件名 ✓";
    let (code, v, err) = send_json(
        &home,
        &[
            "--to",
            &bob,
            "--bcc",
            &carol,
            "--reply-to",
            &alice,
            "--subject",
            subject,
            "--attach",
            att.to_str().unwrap(),
            "--html-file",
            html.to_str().unwrap(),
        ],
        "Hallo Bob,\nanbei das Angebot.\n",
    );
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["state"], "verified", "{v}");
    assert_eq!(v["copy_state"], "appended");
    assert_eq!(v["copy_folder"], "Sent");
    for s in ["queued", "sending", "sent", "copied", "verified"] {
        assert!(
            err.contains(&format!(" {s} ")),
            "state {s} printed on stderr: {err}"
        );
    }
    let mid = v["message_id"].as_str().unwrap().to_string();
    let id = v["id"].as_i64().unwrap();

    let inbox = wait_find(&bob, "INBOX", &mid);
    assert_eq!(inbox.len(), 1, "bob has it once");
    let parsed = mail_parser::MessageParser::default()
        .parse(&inbox[0].raw)
        .unwrap();
    assert_eq!(parsed.subject(), Some(subject));
    assert_eq!(parsed.attachment_count(), 1);
    assert_eq!(
        parsed.attachment(0).unwrap().attachment_name(),
        Some("Angebot März.pdf")
    );
    assert_eq!(
        parsed.attachment(0).unwrap().contents(),
        b"%PDF-1.4 fake but binary \x00\x01\x02\xff"
    );
    assert_eq!(
        parsed.reply_to().unwrap().first().unwrap().address(),
        Some(alice.as_str())
    );
    assert_delivered(&carol, &mid, 1);
    let text = String::from_utf8_lossy(&inbox[0].raw).to_ascii_lowercase();
    assert!(
        !text.contains("\nbcc:") && !text.contains(&carol.to_ascii_lowercase()),
        "Bcc is envelope only"
    );

    let sent = imap_find(&alice, "Sent", &mid);
    assert_eq!(sent.len(), 1, "exactly one copy in Sent");
    let raw = raw_of(&home, id);
    let token: String = home
        .db()
        .value("SELECT copy_token FROM outbox WHERE id = ?1", args![id]);
    let mut expected = format!("X-Mailroom-Copy: {token}\r\n").into_bytes();
    expected.extend_from_slice(&raw);
    assert_eq!(
        sent[0].raw, expected,
        "the Sent copy is what SMTP got byte for byte, after mailroom's token line"
    );
    assert!(
        sent[0].flags.iter().any(|f| f.contains("Seen")),
        "{:?}",
        sent[0].flags
    );

    let actions = audit_actions(&home, id);
    for a in [
        "outbox.queued",
        "outbox.sending",
        "outbox.sent",
        "outbox.copied",
        "outbox.verified",
    ] {
        assert!(actions.iter().any(|x| x == a), "audit has {a}: {actions:?}");
    }
    let (_, st) = home.json(&["status"]);
    assert_eq!(
        st["accounts"][0]["outbox"],
        serde_json::json!({"queued":0,"uncertain":0,"copy_pending":0})
    );
}

#[test]
fn sends_over_implicit_tls_submission_too() {
    let alice = user("send-465");
    let bob = user("send-465-b");
    let home = Home::new();
    let out = home.account_add(
        "a",
        &alice,
        IMAP_STARTTLS,
        SUBMISSIONS,
        &["--imap-security", "starttls", "--smtp-security", "tls"],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, v, err) = send_json(
        &home,
        &[
            "--to",
            &bob,
            "--subject",
            "over 465",
            "--in-reply-to",
            "<elsewhere-1@example.org>",
        ],
        "x",
    );
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["state"], "verified");
    assert_eq!(v["in_reply_to"], "elsewhere-1@example.org");
    let got = wait_find(&bob, "INBOX", v["message_id"].as_str().unwrap());
    assert_eq!(got.len(), 1);
    let m = mail_parser::MessageParser::default()
        .parse(&got[0].raw)
        .unwrap();
    assert_eq!(
        m.in_reply_to().as_text(),
        Some("elsewhere-1@example.org"),
        "--in-reply-to with a Message-ID not in the cache"
    );
}

#[test]
fn sender_must_be_the_account_or_an_alias_and_queue_only_can_be_cancelled() {
    let alice = user("send-alias");
    let bob = user("send-alias-b");
    let home = Home::new();
    home.add_account("a", &alice);
    let out = home.run_stdin(
        &[
            "send",
            "--from",
            "ceo@example.test",
            "--to",
            &bob,
            "--subject",
            "x",
        ],
        "x",
    );
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("alias"), "{}", stderr(&out));
    let alias = format!("sales-{}", alice);
    home.set_account_option(
        "a",
        "aliases",
        toml_edit::value(toml_edit::Array::from_iter([alias.as_str()])),
    );
    let (code, v, err) = send_json(
        &home,
        &[
            "--from",
            &format!("Sales Desk <{alias}>"),
            "--to",
            &bob,
            "--subject",
            "from alias",
            "--queue-only",
        ],
        "hi",
    );
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["state"], "queued");
    assert_eq!(v["from"], alias.as_str());
    let id = v["id"].as_i64().unwrap();
    let out = home.run(&["outbox", "cancel", &id.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(outbox_item(&home, id)["state"], "cancelled");
    home.run(&["outbox", "flush"]);
    assert_eq!(
        count(&bob, "INBOX", v["message_id"].as_str().unwrap()),
        0,
        "a cancelled message is never sent"
    );
    // Sent mail cannot be cancelled.
    let (code, v, _) = send_json(
        &home,
        &["--from", &alias, "--to", &bob, "--subject", "sent one"],
        "hi",
    );
    assert_eq!(code, 0);
    let out = home.run(&["outbox", "cancel", &v["id"].to_string()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("accepted"), "{}", stderr(&out));
}

#[test]
fn server_filed_copy_is_never_duplicated() {
    // filer@ has its SMTP-sent mail filed into Sent by the server itself (a fixed user: count by
    // this test's own Message-IDs).
    let filer = "filer@example.test";
    let bob = user("send-filer-b");
    servers();
    // 1. The per-account setting: mailroom never appends, it only verifies.
    let home = Home::new();
    home.add_account("f", filer);
    home.set_account_option("f", "sent_copy.filed_by_server", toml_edit::value(true));
    home.set_account_option("f", "sent_copy.retry_secs", toml_edit::value(1));
    let (code, v, err) = send_json(
        &home,
        &["--to", &bob, "--subject", "filed by the server"],
        "x",
    );
    assert_eq!(code, 0, "{v} {err}");
    let id = v["id"].as_i64().unwrap();
    let mid = v["message_id"].as_str().unwrap().to_string();
    let item = flush_until(&home, id, "verified", Duration::from_secs(30));
    assert_eq!(item["copy_state"], "filed_by_server");
    assert_eq!(count(filer, "Sent", &mid), 1);

    // 2. No setting: the copy step looks for the Message-ID before appending.
    let home = Home::new();
    home.add_account("f", filer);
    home.set_account_option("f", "sent_copy.batch_secs", toml_edit::value(1));
    let (code, v, err) = send_json(&home, &["--to", &bob, "--subject", "detected"], "x");
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["state"], "sent", "batched: the copy waits");
    let id = v["id"].as_i64().unwrap();
    let mid = v["message_id"].as_str().unwrap().to_string();
    wait_for(
        "the server to file its copy",
        Duration::from_secs(30),
        || (count(filer, "Sent", &mid) == 1).then_some(()),
    );
    let item = flush_until(&home, id, "verified", Duration::from_secs(30));
    assert_eq!(item["copy_state"], "filed_by_server");
    assert_eq!(count(filer, "Sent", &mid), 1, "still exactly one copy");
}

#[test]
fn imap_down_after_smtp_accepted_queues_the_copy_until_imap_is_back() {
    let alice = user("send-imapdown");
    let bob = user("send-imapdown-b");
    let home = Home::new();
    home.add_account("a", &alice);
    let dead = closed_port();
    home.set_account_option("a", "imap.port", toml_edit::value(dead as i64));
    home.set_account_option("a", "sent_copy.retry_secs", toml_edit::value(1));
    let (code, v, err) = send_json(&home, &["--to", &bob, "--subject", "imap is down"], "x");
    assert_eq!(code, 0, "SMTP accepted, so send succeeds: {v} {err}");
    assert_eq!(v["state"], "sent");
    assert_eq!(v["copy_state"], "pending");
    assert!(
        v["last_error"]["what"]
            .as_str()
            .unwrap()
            .contains("copy to Sent failed"),
        "{v}"
    );
    let id = v["id"].as_i64().unwrap();
    let mid = v["message_id"].as_str().unwrap().to_string();
    assert_delivered(&bob, &mid, 1);
    let (code, st) = home.json(&["status"]);
    assert!(code <= 1, "{st}");
    assert_eq!(st["accounts"][0]["outbox"]["copy_pending"], 1, "{st}");
    // Still down: flushing changes nothing but the attempt count; never a second delivery.
    home.run(&["outbox", "flush"]);
    assert_eq!(outbox_item(&home, id)["state"], "sent");
    // IMAP is back.
    home.set_account_option("a", "imap.port", toml_edit::value(IMAPS as i64));
    let item = flush_until(&home, id, "verified", Duration::from_secs(30));
    assert_eq!(item["copy_state"], "appended");
    assert_eq!(count(&alice, "Sent", &mid), 1);
    assert_delivered(&bob, &mid, 1);
    let (_, st) = home.json(&["status"]);
    assert_eq!(st["accounts"][0]["outbox"]["copy_pending"], 0, "{st}");
}

#[test]
fn smtp_refusal_keeps_the_message_queued_with_the_fix_and_backoff() {
    let alice = user("send-refused");
    let bob = user("send-refused-b");
    let home = Home::new();
    let out = home.account_add("a", &alice, IMAPS, SUBMISSION, &[], "wrong-password");
    assert!(out.status.success());
    home.set_account_option("a", "sync.backoff_min_secs", toml_edit::value(60));
    let out = home.run_stdin(&["send", "--to", &bob, "--subject", "refused"], "x");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("rejected the login"), "{err}");
    assert!(err.contains("set-password"), "the fix is named: {err}");
    assert!(err.contains("stays queued"), "{err}");
    let (_, list) = home.json(&["outbox"]);
    let item = &list["items"][0];
    let id = item["id"].as_i64().unwrap();
    assert_eq!(item["state"], "queued");
    assert_eq!(item["attempts"], 1);
    assert!(
        item["last_error"]["fix"]
            .as_str()
            .unwrap()
            .contains("set-password")
    );
    assert!(item["next_attempt_at"].is_string());
    // Backoff: an immediate flush does not hammer the server.
    home.run(&["outbox", "flush"]);
    assert_eq!(outbox_item(&home, id)["attempts"], 1);
    // An explicit retry does try again (and fails the same way), counting the attempt.
    let out = home.run(&["outbox", "retry", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(outbox_item(&home, id)["attempts"], 2);
    // The user fixes the password; the queued message goes out.
    let out = home.run_stdin(
        &["account", "set-password", "a", "--password-stdin"],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = home.run(&["outbox", "retry", &id.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(outbox_item(&home, id)["state"], "verified");

    // Server down (closed port): transient, with a fix about the port.
    home.set_account_option("a", "smtp.port", toml_edit::value(closed_port() as i64));
    let out = home.run_stdin(&["send", "--to", &bob, "--subject", "server down"], "x");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot connect") || err.contains("SMTP"),
        "{err}"
    );
    assert!(err.contains("fix:"), "{err}");
    let (_, list) = home.json(&["outbox"]);
    assert_eq!(list["items"][0]["state"], "queued");
    let (_, st) = home.json(&["status"]);
    assert_eq!(st["accounts"][0]["outbox"]["queued"], 1, "{st}");
}

#[test]
fn kill_between_sent_and_copied_gives_one_delivery_and_one_copy() {
    let alice = user("send-kill");
    let bob = user("send-kill-b");
    let home = Home::new();
    home.add_account("a", &alice);
    let out = home
        .cmd()
        .env("MAILROOM_FAILPOINT", "after_smtp_accepted")
        .args(["send", "--to", &bob, "--subject", "crash after sent"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the failpoint aborts the process");
    let (_, list) = home.json(&["outbox"]);
    let item = &list["items"][0];
    let id = item["id"].as_i64().unwrap();
    let mid = item["message_id"].as_str().unwrap().to_string();
    assert_eq!(item["state"], "sent", "{item}");
    assert_eq!(item["copy_state"], "pending");
    let item = flush_until(&home, id, "verified", Duration::from_secs(30));
    assert_eq!(item["attempts"], 1, "never sent twice");
    assert_delivered(&bob, &mid, 1);
    assert_eq!(count(&alice, "Sent", &mid), 1, "one copy");
}

#[test]
fn kill_between_append_and_its_commit_never_duplicates_the_copy() {
    let alice = user("send-kill-append");
    let bob = user("send-kill-append-b");
    let home = Home::new();
    home.add_account("a", &alice);
    let out = home
        .cmd()
        .env("MAILROOM_FAILPOINT", "after_append")
        .args(["send", "--to", &bob, "--subject", "crash after append"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the failpoint aborts the process");
    let (_, list) = home.json(&["outbox"]);
    let item = &list["items"][0];
    let id = item["id"].as_i64().unwrap();
    let mid = item["message_id"].as_str().unwrap().to_string();
    assert_eq!(
        (item["state"].as_str(), item["copy_state"].as_str()),
        (Some("sent"), Some("pending")),
        "{item}"
    );
    assert_eq!(
        count(&alice, "Sent", &mid),
        1,
        "the APPEND went through before the crash"
    );
    flush_until(&home, id, "verified", Duration::from_secs(30));
    assert_eq!(
        count(&alice, "Sent", &mid),
        1,
        "found by Message-ID, not appended twice"
    );
    assert_delivered(&bob, &mid, 1);
}

#[test]
fn crash_during_data_is_uncertain_until_the_user_resends_or_drops() {
    let alice = user("send-unc");
    let bob = user("send-unc-b");
    let home = Home::new();
    home.add_account("a", &alice);
    let crash = |subject: &str| -> (i64, String) {
        let out = home
            .cmd()
            .env("MAILROOM_FAILPOINT", "before_sent_commit")
            .args(["send", "--to", &bob, "--subject", subject])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let (_, list) = home.json(&["outbox"]);
        let item = list["items"][0].clone();
        assert_eq!(item["state"], "sending", "{item}");
        (
            item["id"].as_i64().unwrap(),
            item["message_id"].as_str().unwrap().to_string(),
        )
    };
    let (id, mid) = crash("uncertain one");
    // The next run finds the dead process's item: uncertain, and it is not sent again.
    home.run(&["outbox", "flush"]);
    home.run(&["outbox", "flush"]);
    let item = outbox_item(&home, id);
    assert_eq!(item["state"], "uncertain", "{item}");
    assert!(
        item["last_error"]["fix"]
            .as_str()
            .unwrap()
            .contains("resend"),
        "{item}"
    );
    let (code, st) = home.json(&["status"]);
    assert_eq!(st["accounts"][0]["outbox"]["uncertain"], 1, "{st}");
    assert_eq!(code, 1, "status is degraded while something is uncertain");
    wait_for("the one delivery", Duration::from_secs(20), || {
        (count(&bob, "INBOX", &mid) == 1).then_some(())
    });
    assert_eq!(
        count(&alice, "Sent", &mid),
        0,
        "a normal server does not file it: still uncertain"
    );
    let out = home.run(&["outbox", "retry", &id.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "retry refuses an uncertain item"
    );
    // resend: the user's choice, so it goes out again.
    let out = home.run(&["outbox", "resend", &id.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(outbox_item(&home, id)["state"], "verified");
    wait_for("the resent copy", Duration::from_secs(20), || {
        (count(&bob, "INBOX", &mid) == 2).then_some(())
    });
    assert_eq!(count(&alice, "Sent", &mid), 1);

    // drop: assume it was delivered; it is filed into Sent, never sent again.
    let (id, mid) = crash("uncertain two");
    home.run(&["outbox", "flush"]);
    assert_eq!(outbox_item(&home, id)["state"], "uncertain");
    let out = home.run(&["outbox", "drop", &id.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let item = outbox_item(&home, id);
    assert_eq!(item["state"], "verified", "{item}");
    assert_eq!(item["attempts"], 0, "drop never sends");
    assert_delivered(&bob, &mid, 1);
    assert_eq!(count(&alice, "Sent", &mid), 1);
    let actions = audit_actions(&home, id);
    assert!(
        actions.iter().any(|a| a == "outbox.uncertain")
            && actions.iter().any(|a| a == "outbox.dropped"),
        "{actions:?}"
    );
}

#[test]
fn uncertain_resolves_itself_when_the_server_filed_the_message() {
    let filer = "filer@example.test";
    let bob = user("send-unc-filer-b");
    let home = Home::new();
    home.add_account("f", filer);
    home.set_account_option("f", "sent_copy.retry_secs", toml_edit::value(1));
    let out = home
        .cmd()
        .env("MAILROOM_FAILPOINT", "before_sent_commit")
        .args(["send", "--to", &bob, "--subject", "resolves itself"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (_, list) = home.json(&["outbox"]);
    let id = list["items"][0]["id"].as_i64().unwrap();
    let mid = list["items"][0]["message_id"].as_str().unwrap().to_string();
    let item = flush_until(&home, id, "verified", Duration::from_secs(30));
    assert_eq!(item["copy_state"], "filed_by_server");
    assert_eq!(count(filer, "Sent", &mid), 1);
    assert_delivered(&bob, &mid, 1);
    assert!(
        audit_actions(&home, id)
            .iter()
            .any(|a| a == "outbox.uncertain_resolved")
    );
}

#[test]
fn big_attachment_is_delivered_whole_and_left_out_of_the_copy_with_a_note() {
    let alice = user("send-big");
    let bob = user("send-big-b");
    let home = Home::new();
    home.add_account("a", &alice);
    home.set_account_option(
        "a",
        "sent_copy.drop_attachments_over_bytes",
        toml_edit::value(10 * 1024 * 1024),
    );
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("scan.bin");
    let data: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    let small = dir.path().join("notes.txt");
    std::fs::write(&small, "keep me").unwrap();
    let (code, v, err) = send_json(
        &home,
        &[
            "--to",
            &bob,
            "--subject",
            "20 MB",
            "--attach",
            big.to_str().unwrap(),
            "--attach",
            small.to_str().unwrap(),
        ],
        "see attached",
    );
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["state"], "verified", "{v}");
    assert!(v["copy_note"].as_str().unwrap().contains("scan.bin"), "{v}");
    let mid = v["message_id"].as_str().unwrap().to_string();
    let inbox = wait_find(&bob, "INBOX", &mid);
    assert_eq!(inbox.len(), 1);
    let m = mail_parser::MessageParser::default()
        .parse(&inbox[0].raw)
        .unwrap();
    let got = m
        .attachments()
        .find(|a| a.attachment_name() == Some("scan.bin"))
        .expect("delivered with the attachment");
    assert!(got.contents() == data.as_slice(), "delivered whole");
    let sent = imap_find(&alice, "Sent", &mid);
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].raw.len() < 1024 * 1024,
        "the copy is small: {}",
        sent[0].raw.len()
    );
    let c = mail_parser::MessageParser::default()
        .parse(&sent[0].raw)
        .unwrap();
    let names: Vec<_> = c
        .attachments()
        .filter_map(|a| a.attachment_name())
        .collect();
    assert_eq!(names, ["notes.txt"], "only the big attachment is left out");
    assert!(
        String::from_utf8_lossy(&sent[0].raw).contains("Left out of this Sent copy"),
        "the copy says so"
    );
}

#[test]
fn reply_threads_to_the_cached_message_with_a_quote() {
    let alice = user("send-reply");
    let bob = user("send-reply-b");
    let carol = user("send-reply-c");
    let home = Home::new();
    home.add_account("a", &alice);
    // Until sync fills the cache, put the message there the way sync stores it.
    let orig = format!("orig-{}", alice);
    let db = home.db();
    let account_id: String = db.value("SELECT id FROM accounts", &[]);
    let folder_id = db.insert("INSERT INTO folders (account_id, name, wire_name, role, sync_enabled) VALUES (?1, 'INBOX', 'INBOX', 'inbox', 1) RETURNING id", args![account_id]);
    let to_json = serde_json::json!([{"name": "Alice", "address": alice}, {"name": "Carol", "address": carol}]).to_string();
    let msg_id = db.insert(
        "INSERT INTO messages (message_id, content_hash, thread_id, refs, from_addr, from_name, to_json, subject, date, text_body, direction, created_at) VALUES (?1, 'h', NULL, 'root@example.test', ?2, 'Bob B', ?3, 'Frage zum Angebot', '2026-11-20T10:00:00Z', 'Line one\n\nLine two', 'in', '2026-11-20T10:00:00Z') RETURNING id",
        args![orig, bob, to_json],
    );
    db.exec(
        "UPDATE messages SET thread_id = id WHERE id = ?1",
        args![msg_id],
    );
    db.exec("INSERT INTO locations (message_id, account_id, folder_id, uidvalidity, uid) VALUES (?1, ?2, ?3, 1, 1)", args![msg_id, account_id, folder_id]);
    drop(db);
    let out = home.run_stdin(
        &["--json", "reply", &msg_id.to_string(), "--all"],
        "Thanks, Bob.",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["state"], "verified", "{v}");
    assert_eq!(v["thread_message_id"], msg_id);
    assert_eq!(v["in_reply_to"], orig.as_str());
    let mid = v["message_id"].as_str().unwrap().to_string();
    let inbox = wait_find(&bob, "INBOX", &mid);
    assert_eq!(inbox.len(), 1);
    let m = mail_parser::MessageParser::default()
        .parse(&inbox[0].raw)
        .unwrap();
    assert_eq!(m.subject(), Some("Re: Frage zum Angebot"));
    assert_eq!(m.in_reply_to().as_text(), Some(orig.as_str()));
    let refs: Vec<String> = m
        .references()
        .as_text_list()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(refs, vec!["root@example.test".to_string(), orig.clone()]);
    let body = m.body_text(0).unwrap().to_string();
    assert!(body.starts_with("Thanks, Bob."), "{body}");
    assert!(
        body.contains("> Line one") && body.contains("> Line two"),
        "{body}"
    );
    assert_delivered(&carol, &mid, 1);
    assert_eq!(count(&alice, "INBOX", &mid), 0, "never to ourselves");
}

#[test]
fn copy_failure_policies_notify_and_skip_never_block_sending() {
    let alice = user("send-policy");
    let bob = user("send-policy-b");
    for policy in ["notify", "skip"] {
        let home = Home::new();
        home.add_account("a", &alice);
        home.set_account_option("a", "imap.port", toml_edit::value(closed_port() as i64));
        home.set_account_option("a", "sent_copy.on_failure", toml_edit::value(policy));
        let (code, v, err) = send_json(
            &home,
            &["--to", &bob, "--subject", &format!("policy {policy}")],
            "x",
        );
        assert_eq!(code, 0, "sending is never blocked by the copy: {v} {err}");
        assert_eq!(v["state"], "sent");
        let id = v["id"].as_i64().unwrap();
        let (_, st) = home.json(&["status"]);
        if policy == "notify" {
            assert_eq!(v["copy_state"], "failed", "{v}");
            let (_, log) = home.json(&["log", "--level", "error"]);
            assert!(
                log.to_string().contains("copy to Sent failed"),
                "the failure is in the log: {log}"
            );
            assert_eq!(st["accounts"][0]["outbox"]["copy_pending"], 1, "{st}");
            // After the user fixes IMAP, a retry files the copy.
            home.set_account_option("a", "imap.port", toml_edit::value(IMAPS as i64));
            let out = home.run(&["outbox", "retry", &id.to_string()]);
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(outbox_item(&home, id)["state"], "verified");
        } else {
            assert_eq!(v["copy_state"], "skipped", "{v}");
            assert_eq!(st["accounts"][0]["outbox"]["copy_pending"], 0, "{st}");
            home.set_account_option("a", "imap.port", toml_edit::value(IMAPS as i64));
            home.run(&["outbox", "flush"]);
            assert_eq!(
                outbox_item(&home, id)["state"],
                "sent",
                "a skipped copy is not retried by itself"
            );
        }
    }
}

#[test]
fn batched_copies_ride_together_on_one_pass() {
    let alice = user("send-batch");
    let bob = user("send-batch-b");
    let home = Home::new();
    home.add_account("a", &alice);
    // Due 3 s after the send: a send slowed by a loaded machine still returns before its batch.
    home.set_account_option("a", "sent_copy.batch_secs", toml_edit::value(3));
    let (code, first, _) = send_json(&home, &["--to", &bob, "--subject", "batch 1"], "x");
    assert_eq!(code, 0);
    assert_eq!(
        first["state"], "sent",
        "batched: the copy waits for the batch"
    );
    // Later messages are far from their own batch time.
    home.set_account_option("a", "sent_copy.batch_secs", toml_edit::value(3600));
    let mut later = Vec::new();
    for i in 2..=3 {
        let (code, v, _) = send_json(
            &home,
            &["--to", &bob, "--subject", &format!("batch {i}")],
            "x",
        );
        assert_eq!(code, 0);
        assert_eq!(v["state"], "sent");
        later.push(v);
    }
    flush_until(
        &home,
        first["id"].as_i64().unwrap(),
        "verified",
        Duration::from_secs(30),
    );
    for v in &later {
        assert_eq!(
            outbox_item(&home, v["id"].as_i64().unwrap())["state"],
            "verified",
            "rode along with the due batch"
        );
        assert_eq!(count(&alice, "Sent", v["message_id"].as_str().unwrap()), 1);
    }
}

#[test]
fn reply_to_a_synced_message_and_the_sent_copy_joins_its_thread() {
    let alice = user("send-reply-sync");
    let bob = user("send-reply-sync-b");
    let home = Home::new();
    home.add_account("a", &alice);
    smtp_send(
        &bob,
        &alice,
        "Lieferung nächste Woche?",
        "Hallo Alice,\nklappt die Lieferung?\n",
    );
    let id = wait_for("bob's message to sync", Duration::from_secs(30), || {
        let (code, _) = home.json(&["sync", "a", "--once"]);
        assert_eq!(code, 0);
        let (_, v) = home.json(&["messages", "a", "--folder", "INBOX"]);
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["subject"] == "Lieferung nächste Woche?")
            .map(|m| m["id"].as_i64().unwrap())
    });
    let out = home.run_stdin(&["--json", "reply", &id.to_string()], "Ja, Dienstag.");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["state"], "verified", "{v}");
    assert_eq!(v["thread_message_id"], id);
    let mid = v["message_id"].as_str().unwrap().to_string();
    let got = wait_find(&bob, "INBOX", &mid);
    assert_eq!(got.len(), 1);
    let m = mail_parser::MessageParser::default()
        .parse(&got[0].raw)
        .unwrap();
    assert_eq!(m.subject(), Some("Re: Lieferung nächste Woche?"));
    assert!(m.body_text(0).unwrap().contains("> klappt die Lieferung?"));
    // Sync picks up the Sent copy and threads it with the original.
    home.json(&["sync", "a", "--once"]);
    let (_, all) = home.json(&["messages", "a", "--limit", "100"]);
    let msgs = all["messages"].as_array().unwrap();
    let orig = msgs.iter().find(|x| x["id"] == id).unwrap();
    let mine = msgs
        .iter()
        .find(|x| x["message_id"] == mid.as_str())
        .unwrap_or_else(|| panic!("the Sent copy is synced: {all}"));
    assert_eq!(
        mine["thread_id"], orig["thread_id"],
        "one conversation: {mine} / {orig}"
    );
}

#[test]
fn background_worker_drives_queued_mail_until_shut_down() {
    let alice = user("send-worker");
    let bob = user("send-worker-b");
    let home = Home::new();
    home.add_account("a", &alice);
    let (code, v, _) = send_json(
        &home,
        &["--to", &bob, "--subject", "via the worker", "--queue-only"],
        "x",
    );
    assert_eq!(code, 0);
    let id = v["id"].as_i64().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let mh = mailroom::config::Home {
        root: home.path().to_path_buf(),
    };
    // What the daemon and the console run: a Send future on a multi-threaded runtime.
    let task = rt.spawn(mailroom::outbox::run_worker(
        mh,
        "tester".into(),
        rx,
        wake.clone(),
        None,
        Duration::from_secs(1),
    ));
    wake.notify_one();
    wait_for(
        "the worker to verify the message",
        Duration::from_secs(30),
        || (outbox_item(&home, id)["state"] == "verified").then_some(()),
    );
    tx.send(true).unwrap();
    let res = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await });
    assert!(
        matches!(res, Ok(Ok(Ok(())))),
        "the worker stops when told: {res:?}"
    );
    assert_delivered(&bob, v["message_id"].as_str().unwrap(), 1);
}

#[test]
fn sent_copy_folder_per_message_type_files_replies_apart() {
    let alice = user("send-pertype");
    let bob = user("send-pertype-b");
    let home = Home::new();
    home.add_account("a", &alice);
    home.set_account_option("a", "sent_copy.folders.reply", toml_edit::value("Replies"));
    home.set_account_option("a", "sent_copy.retry_secs", toml_edit::value(1));
    // The folder does not exist yet: the reply is still sent, its copy fails with the fix.
    let (code, v, err) = send_json(
        &home,
        &[
            "--to",
            &bob,
            "--subject",
            "Re: per type",
            "--in-reply-to",
            "<orig-pertype@example.test>",
        ],
        "a reply",
    );
    assert_eq!(code, 0, "sending is never blocked by the copy: {v} {err}");
    assert_eq!(v["state"], "sent", "{v}");
    assert_eq!(v["copy_state"], "pending", "{v}");
    let what = v["last_error"]["what"].as_str().unwrap();
    let fix = v["last_error"]["fix"].as_str().unwrap();
    assert!(what.contains("\"Replies\""), "names the folder: {what}");
    assert!(
        fix.contains("create the folder \"Replies\"") && fix.contains("sent_copy.folders.reply"),
        "names the fix: {fix}"
    );
    let reply_id = v["id"].as_i64().unwrap();
    let reply_mid = v["message_id"].as_str().unwrap().to_string();
    assert_delivered(&bob, &reply_mid, 1);

    let out = doveadm(&["mailbox", "create", "-u", &alice, "Replies"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let item = flush_until(&home, reply_id, "verified", Duration::from_secs(30));
    assert_eq!(item["copy_folder"], "Replies", "{item}");
    assert_eq!(item["copy_state"], "appended");
    assert_eq!(count(&alice, "Replies", &reply_mid), 1);
    assert_eq!(count(&alice, "Sent", &reply_mid), 0, "not in Sent");

    // A new message goes to the detected Sent folder (no `new` entry, no `folder`).
    let (code, v, err) = send_json(&home, &["--to", &bob, "--subject", "fresh"], "new");
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["state"], "verified", "{v}");
    assert_eq!(v["copy_folder"], "Sent");
    let new_mid = v["message_id"].as_str().unwrap().to_string();
    assert_eq!(count(&alice, "Sent", &new_mid), 1);
    assert_eq!(count(&alice, "Replies", &new_mid), 0);

    // A reply and a new message copied in one batch (one connection): each to its own folder.
    // (Batch times count in whole seconds: 2 s, so a send that ends just before a second
    // turns over still finds its copy not yet due.)
    let mut mids = Vec::new();
    let mut ids = Vec::new();
    for (batch, subject, irt) in [
        (2, "Re: two", Some("<orig2@example.test>")),
        (3600, "three", None),
    ] {
        home.set_account_option("a", "sent_copy.batch_secs", toml_edit::value(batch));
        let mut args = vec!["--to", bob.as_str(), "--subject", subject];
        if let Some(i) = irt {
            args.extend(["--in-reply-to", i]);
        }
        let (code, v, err) = send_json(&home, &args, "x");
        assert_eq!(code, 0, "{v} {err}");
        assert_eq!(v["state"], "sent", "batched: {v}");
        ids.push(v["id"].as_i64().unwrap());
        mids.push(v["message_id"].as_str().unwrap().to_string());
    }
    flush_until(&home, ids[0], "verified", Duration::from_secs(30));
    let second = outbox_item(&home, ids[1]);
    assert_eq!(second["state"], "verified", "rode along: {second}");
    assert_eq!(second["copy_folder"], "Sent");
    assert_eq!(count(&alice, "Replies", &mids[0]), 1);
    assert_eq!(count(&alice, "Sent", &mids[0]), 0);
    assert_eq!(count(&alice, "Sent", &mids[1]), 1);
    assert_eq!(count(&alice, "Replies", &mids[1]), 0);
}

/// Writes `len` bytes of incompressible-looking data in 1 MiB chunks (never all in memory).
fn write_big_file(path: &std::path::Path, len: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut chunk = vec![0u8; 1024 * 1024];
    let mut x: u32 = 0x9e37_79b9;
    let mut left = len;
    while left > 0 {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

#[test]
fn message_over_the_servers_size_limit_fails_before_data_and_is_not_retried() {
    let alice = user("send-size");
    let bob = user("send-size-b");
    let home = Home::new();
    home.add_account("a", &alice);
    // Postfix announces SIZE 62914560 (60 MB); 47 MiB base64-encoded is about 67 MB.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("huge.bin");
    write_big_file(&big, 47 * 1024 * 1024);
    let out = home.run_stdin(
        &[
            "send",
            "--to",
            &bob,
            "--subject",
            "too big",
            "--attach",
            big.to_str().unwrap(),
        ],
        "x",
    );
    std::fs::remove_file(&big).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("accepts at most 60.0 MB"),
        "names the limit: {err}"
    );
    assert!(err.contains("shrink attachments"), "names the fix: {err}");
    let (_, list) = home.json(&["outbox"]);
    let item = &list["items"][0];
    let id = item["id"].as_i64().unwrap();
    let mid = item["message_id"].as_str().unwrap().to_string();
    assert_eq!(item["state"], "failed", "{item}");
    assert_eq!(item["attempts"], 1);
    assert!(
        item["next_attempt_at"].is_null(),
        "no retry scheduled: {item}"
    );
    assert!(
        item["last_error"]["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("outbox retry {id}`")),
        "the fix names this item: {item}"
    );
    // Never marked `sending`: it stopped before DATA.
    let actions = audit_actions(&home, id);
    assert!(actions.iter().any(|a| a == "outbox.failed"), "{actions:?}");
    assert!(
        !actions.iter().any(|a| a == "outbox.sending"),
        "{actions:?}"
    );
    // Not retried by later passes.
    let out = home.run(&["outbox", "flush"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let item = outbox_item(&home, id);
    assert_eq!(item["state"], "failed");
    assert_eq!(item["attempts"], 1, "never retried on its own");
    // Nothing delivered. A small message sent after it does arrive, so the mailbox is live
    // and an empty search means something.
    let (code, v, e) = send_json(&home, &["--to", &bob, "--subject", "small"], "x");
    assert_eq!(code, 0, "{v} {e}");
    let small = v["message_id"].as_str().unwrap().to_string();
    assert_delivered(&bob, &small, 1);
    assert_eq!(count(&bob, "INBOX", &mid), 0, "nothing delivered");
}

/// A TCP proxy that cuts its first connection once `cut_after` bytes went from the client to
/// the server (later connections pass through); counts the bytes it let through.
fn upload_cutting_proxy(target: u16, cut_after: usize) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let uploaded = Arc::new(AtomicUsize::new(0));
    let up = uploaded.clone();
    std::thread::spawn(move || {
        for (n, client) in l.incoming().enumerate() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (mut s_r, mut c_w) = (server.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_r, &mut c_w);
            });
            let (mut c_r, mut s_w) = (client, server);
            let limit = (n == 0).then_some(cut_after);
            let up = up.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                let mut sent = 0usize;
                while let Ok(k) = c_r.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    let k = limit.map_or(k, |l| k.min(l - sent));
                    if s_w.write_all(&buf[..k]).is_err() {
                        break;
                    }
                    sent += k;
                    if n == 0 {
                        up.store(sent, Ordering::SeqCst);
                    }
                    if limit.is_some_and(|l| sent >= l) {
                        let _ = s_w.shutdown(std::net::Shutdown::Both);
                        let _ = c_r.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                }
            });
        }
    });
    (port, uploaded)
}

#[test]
fn connection_cut_during_data_is_uncertain_with_the_items_own_commands() {
    let alice = user("send-cut");
    let bob = user("send-cut-b");
    // ~400 KB of attachment: the cut at 150 KB from the client lands inside DATA, after
    // EHLO, STARTTLS, AUTH, MAIL and RCPT went through.
    let (port, uploaded) = upload_cutting_proxy(SUBMISSION, 150_000);
    let home = Home::new();
    let out = home.account_add("a", &alice, IMAPS, port, &[], PASSWORD);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.bin");
    write_big_file(&file, 400_000);
    let (code, v, err) = send_json(
        &home,
        &[
            "--to",
            &bob,
            "--subject",
            "cut during data",
            "--attach",
            file.to_str().unwrap(),
        ],
        "see attached\n",
    );
    assert_ne!(code, 0, "{v} {err}");
    assert_eq!(
        uploaded.load(Ordering::SeqCst),
        150_000,
        "the proxy cut the upload"
    );
    let (_, list) = home.json(&["outbox"]);
    let item = list["items"][0].clone();
    let id = item["id"].as_i64().unwrap();
    assert_eq!(item["state"], "uncertain", "{item}");
    // The fix is copy-pasteable: it names this item, in the item and in the error log alike.
    let resend = format!("mailroom outbox resend {id}`");
    let fix = item["last_error"]["fix"].as_str().unwrap_or_default();
    assert!(fix.contains(&resend) && !fix.contains(" ID`"), "{item}");
    let (_, log) = home.json(&["log"]);
    let logged = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["what"]
                .as_str()
                .is_some_and(|w| w.starts_with(&format!("outbox #{id}:")))
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(logged["level"], "warn", "{log}");
    let detail = logged["detail"].as_str().unwrap_or_default();
    assert!(
        (detail.contains("closed the connection") || detail.contains("reset the connection"))
            && !detail.contains("https://")
            && !detail.contains("os error"),
        "says what happened, without a crate's manual link: {logged}"
    );
    let logged_fix = logged["fix"].as_str().unwrap_or_default();
    assert!(
        logged_fix.contains(&resend) && !logged_fix.contains(" ID`"),
        "{logged}"
    );
    // Postfix dropped the half message: nothing arrived, and nothing is retried on its own.
    home.run(&["outbox", "flush"]);
    assert_eq!(outbox_item(&home, id)["state"], "uncertain");
    let mid = item["message_id"].as_str().unwrap().to_string();
    assert_eq!(count(&bob, "INBOX", &mid), 0);
    // The user's call: resend, through the proxy that now lets everything pass.
    let out = home.run(&["outbox", "resend", &id.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_delivered(&bob, &mid, 1);
}

#[test]
fn the_sent_folder_chosen_with_folders_sent_receives_the_copies() {
    let alice = user("send-chosen");
    let bob = user("send-chosen-b");
    // A name no list of well-known Sent names has: only the user can say it is the Sent folder.
    let out = doveadm(&["mailbox", "create", "-u", &alice, "Outgoing Mail"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let home = Home::new();
    home.add_account("a", &alice);
    let (code, v) = home.json(&["folders", "a", "--sent", "Outgoing Mail"]);
    assert_eq!(code, 0, "{v}");
    let (_, v) = home.json(&["account", "test", "a"]);
    let sent_step = step(&v, "sent_folder");
    assert_eq!(
        sent_step["detail"], "Outgoing Mail (chosen with `mailroom folders --sent`)",
        "{v}"
    );

    let (code, v, err) = send_json(&home, &["--to", &bob, "--subject", "chosen"], "hi");
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["state"], "verified", "{v}");
    assert_eq!(v["copy_folder"], "Outgoing Mail", "{v}");
    let mid = v["message_id"].as_str().unwrap().to_string();
    assert_eq!(count(&alice, "Outgoing Mail", &mid), 1);
    assert_eq!(count(&alice, "Sent", &mid), 0, "not in the server's Sent");
    assert_delivered(&bob, &mid, 1);

    // The folder goes away on the server: the check says so and how to choose again.
    let out = doveadm(&["mailbox", "delete", "-u", &alice, "-s", "Outgoing Mail"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, v) = home.json(&["account", "test", "a"]);
    assert_eq!(code, 1, "{v}");
    let gone = step(&v, "sent_folder");
    assert_eq!(gone["status"], "failed", "{v}");
    assert!(
        gone["detail"]
            .as_str()
            .unwrap()
            .contains("\"Outgoing Mail\" is gone"),
        "{gone}"
    );
    assert!(
        gone["fix"]
            .as_str()
            .unwrap()
            .contains("mailroom folders a --sent FOLDER"),
        "{gone}"
    );
    // A send still goes out; its copy waits with the same fix instead of landing elsewhere.
    let (code, v, err) = send_json(&home, &["--to", &bob, "--subject", "after"], "hi");
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["copy_state"], "pending", "{v}");
    assert!(
        v["last_error"]["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("--sent FOLDER"),
        "{v}"
    );
    assert_eq!(count(&alice, "Sent", v["message_id"].as_str().unwrap()), 0);
    // Still so after a sync noticed the folder is gone.
    let (code, v) = home.json(&["sync", "a", "--once"]);
    assert_eq!(code, 0, "{v}");
    let (_, list) = home.json(&["outbox"]);
    let waiting = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["copy_state"] == "pending")
        .cloned()
        .unwrap();
    let id = waiting["id"].as_i64().unwrap();
    home.run(&["outbox", "flush"]);
    let item = outbox_item(&home, id);
    assert_eq!(item["copy_state"], "pending", "{item}");
    assert_eq!(
        count(&alice, "Sent", item["message_id"].as_str().unwrap()),
        0
    );
}

#[test]
fn a_full_disk_refuses_the_send_with_the_fix_and_sends_nothing() {
    if sqlite_file_only("a full disk under the database") {
        return;
    }
    let alice = user("send-full");
    let bob = user("send-full-b");
    let home = Home::new();
    let disk = Tmpfs::mount(home.path(), 2 * 1024);
    home.add_account("a", &alice);
    // Fill what is left: the database cannot even grow its WAL and shared-memory files.
    let fill = home.path().join("fill");
    let mut f = std::fs::File::create(&fill).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    drop(f);

    let out = home.run_stdin(
        &["send", "--to", &bob, "--subject", "on a full disk"],
        "body\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("is full") && err.contains("free some disk space"),
        "says what failed and the fix: {err}"
    );
    // status too names the cause instead of a bare I/O error.
    let out = home.run(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("is full"), "{}", stderr(&out));

    // Nothing went out: a send that cannot be recorded is not made.
    std::thread::sleep(Duration::from_secs(1));
    assert!(server_fetch(&bob, "INBOX", &["hdr.subject"]).is_empty());

    // Room again: the same command works, once.
    std::fs::remove_file(&fill).unwrap();
    let (code, v, err) = send_json(
        &home,
        &["--to", &bob, "--subject", "on a full disk"],
        "body\n",
    );
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["state"], "verified", "{v}");
    assert_delivered(&bob, v["message_id"].as_str().unwrap(), 1);
    let (_, list) = home.json(&["outbox"]);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    drop(disk);
}
