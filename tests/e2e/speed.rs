//! Issue 16, speed where users feel it: few round trips (unchanged folders are not selected),
//! COMPRESS=DEFLATE, new mail in any synced folder noticed within seconds (NOTIFY, or a cheap
//! LIST-STATUS poll), the full offline mode. Against the real Dovecot; round trips and bytes
//! are counted by the link emulator (tools/linkem) between mailroom and the server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::*;
use super::linkem::Linkem;
use super::sync::{all_messages, folder_summary, sync_once, user};

/// Creates `folder` for `user` and moves the messages with these UIDs of INBOX into it.
fn folder_with(user: &str, folder: &str, uids: &str) {
    let out = doveadm(&["mailbox", "create", "-u", user, folder]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = doveadm(&["move", "-u", user, folder, "mailbox", "INBOX", "uid", uids]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Delivers a message straight into `folder` (doveadm save), as a filter on the server would.
fn deliver(user: &str, folder: &str, subject: &str) {
    let msg = format!(
        "From: someone@elsewhere.test\r\nTo: {user}\r\nSubject: {subject}\r\nMessage-ID: \
         <{subject}@speed.test>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n"
    );
    let mut child = Command::new(repo().join("scripts/mailserver"))
        .args(["doveadm", "save", "-u", user, "-m", folder])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(msg.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "doveadm save: {}", stderr(&out));
}

fn has_subject(home: &Home, subject: &str) -> bool {
    home.db()
        .try_count(
            "SELECT COUNT(*) FROM messages WHERE subject = ?1",
            mailroom::args![subject],
        )
        .unwrap_or(0)
        == 1
}

/// An account through the link emulator at `port` (its CA-verified TLS as usual).
fn account_via(home: &Home, name: &str, user: &str, port: u16) {
    let out = home.account_add(name, user, port, SUBMISSION, &[], PASSWORD);
    assert!(out.status.success(), "account add: {}", stderr(&out));
    home.set_account_option(name, "sync.body_prefetch_max_bytes", toml_edit::value(0));
}

fn linkem_port(link: &Linkem) -> u16 {
    link.addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn a_no_change_resync_of_many_folders_selects_none_and_takes_a_few_round_trips() {
    let user = user("speed-rt");
    seed(&user, 300);
    let names: Vec<String> = (1..=6).map(|i| format!("P{i}")).collect();
    for (i, f) in names.iter().enumerate() {
        let a = 1 + 40 * i;
        folder_with(&user, f, &format!("{a}:{}", a + 39));
    }
    let link = Linkem::start(&format!("127.0.0.1:{IMAPS}"), 2, 1000.0);
    let home = Home::new();
    account_via(&home, "r", &user, linkem_port(&link));
    let mut list = vec!["INBOX".to_string()];
    list.extend(names.iter().cloned());
    let out = home.run(&["folders", "r", "--refresh", "--sync", &list.join(",")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = sync_once(&home, "r");
    assert_eq!(folder_summary(&v, "P3")["new"], 40, "{v}");
    assert_eq!(all_messages(&home, "r", None).len(), 300);
    link.connections(1);
    std::fs::write(&link.stats, "").unwrap();
    // Nothing changed: one connection, LOGIN with the listing in its flight, no SELECT.
    let started = Instant::now();
    let out = home
        .cmd()
        .args(["--json", "sync", "r", "--once"])
        .env("MAILROOM_LOG", "mailroom::imap::wire=trace")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let trace = stderr(&out);
    assert!(
        !trace.contains("C: SELECT") && !trace.contains("C: EXAMINE"),
        "no folder is selected"
    );
    let conns = link.connections(1);
    assert_eq!(conns.len(), 1, "{conns:?}");
    let rt = conns[0]["round_trips"].as_u64().unwrap();
    // TCP, TLS, LOGIN + ENABLE + LIST-STATUS, LOGOUT.
    assert!(rt <= 5, "{rt} round trips: {conns:?}");
    eprintln!("no-change resync of 7 folders: {rt} round trips, {took:?}");
    // New mail in one folder: that folder alone is selected (and fetched in the same flight).
    deliver(&user, "P4", "speed-rt-new");
    std::fs::write(&link.stats, "").unwrap();
    let out = home
        .cmd()
        .args(["--json", "sync", "r", "--once"])
        .env("MAILROOM_LOG", "mailroom::imap::wire=trace")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let trace = stderr(&out);
    let selects: Vec<&str> = trace.lines().filter(|l| l.contains("C: SELECT")).collect();
    assert_eq!(selects.len(), 1, "{selects:?}");
    assert!(selects[0].contains("P4"), "{selects:?}");
    assert!(has_subject(&home, "speed-rt-new"));
}

/// The shared Dovecot must run with imap_zlib (scripts/mailserver); say so plainly if a
/// worktree with an older script reloaded it without.
fn require_compress() {
    let conf = std::env::var("MAILSERVER_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo().join(".mailserver"))
        .join("dovecot/main.conf");
    let text = std::fs::read_to_string(&conf).unwrap_or_default();
    assert!(
        text.contains("imap_zlib"),
        "the shared Dovecot runs without imap_zlib ({}); run scripts/mailserver start",
        conf.display()
    );
}

/// Down bytes of every connection the emulator finished so far (and forgets them).
fn down_bytes(link: &Linkem) -> u64 {
    // The emulator writes a connection's line once both directions closed.
    std::thread::sleep(Duration::from_millis(300));
    let n = link
        .connections(1)
        .iter()
        .map(|c| c["down_bytes"].as_u64().unwrap())
        .sum();
    std::fs::write(&link.stats, "").unwrap();
    n
}

#[test]
fn compress_deflate_is_negotiated_and_a_sync_through_it_equals_the_server() {
    servers();
    require_compress();
    let user = user("speed-deflate");
    seed(&user, 1200);
    doveadm(&[
        "flags",
        "add",
        "-u",
        &user,
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "5:25",
    ]);
    let link = Linkem::start(&format!("127.0.0.1:{IMAPS}"), 0, 1000.0);
    let port = linkem_port(&link);
    // The same mailbox twice: deflated, and plain (`auto` is off on loopback).
    let deflated = Home::new();
    account_via(&deflated, "z", &user, port);
    deflated.set_account_option("z", "sync.compress", toml_edit::value("on"));
    let plain = Home::new();
    account_via(&plain, "p", &user, port);
    let out = deflated
        .cmd()
        .args(["--json", "sync", "z", "--once"])
        .env("MAILROOM_LOG", "mailroom::imap::wire=trace")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let trace = stderr(&out);
    assert!(
        trace.contains("C: COMPRESS DEFLATE"),
        "COMPRESS was asked for"
    );
    assert!(
        trace
            .lines()
            .any(|l| l.contains(" OK ") && l.to_lowercase().contains("compression")),
        "the server agreed: {}",
        trace
            .lines()
            .filter(|l| l.contains("COMPRESS") || l.contains("DEFLATE"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let z_down = down_bytes(&link);
    sync_once(&plain, "p");
    let p_down = down_bytes(&link);
    eprintln!("first sync of 1200 headers: {z_down} bytes deflated, {p_down} plain");
    assert!(z_down * 2 < p_down, "{z_down} deflated vs {p_down} plain");
    // The cache equals the server: every UID with its flags.
    let view = |home: &Home, name: &str| {
        let mut v: Vec<(u64, String)> = all_messages(home, name, Some("INBOX"))
            .iter()
            .map(|m| {
                let mut f: Vec<&str> = m["locations"][0]["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect();
                f.sort();
                (m["locations"][0]["uid"].as_u64().unwrap(), f.join(" "))
            })
            .collect();
        v.sort();
        v
    };
    let mut server: Vec<(u64, String)> = server_fetch(&user, "INBOX", &["uid", "flags"])
        .into_iter()
        .map(|r| {
            let mut f: Vec<&str> = r[1]
                .split_whitespace()
                .filter(|f| *f != "\\Recent")
                .collect();
            f.sort();
            (r[0].parse().unwrap(), f.join(" "))
        })
        .collect();
    server.sort();
    assert_eq!(view(&deflated, "z").len(), 1200);
    assert_eq!(
        view(&deflated, "z"),
        server,
        "the deflated cache equals the server"
    );
    // Changes after that travel deflated as well: new mail, flags, an expunge.
    super::sync::seed_more(&user, 3);
    doveadm(&[
        "flags", "add", "-u", &user, "\\Seen", "mailbox", "INBOX", "uid", "30:40",
    ]);
    doveadm(&["expunge", "-u", &user, "mailbox", "INBOX", "uid", "7"]);
    let v = sync_once(&deflated, "z");
    assert_eq!(folder_summary(&v, "INBOX")["new"], 3, "{v}");
    let mut server: Vec<(u64, String)> = server_fetch(&user, "INBOX", &["uid", "flags"])
        .into_iter()
        .map(|r| {
            let mut f: Vec<&str> = r[1]
                .split_whitespace()
                .filter(|f| *f != "\\Recent")
                .collect();
            f.sort();
            (r[0].parse().unwrap(), f.join(" "))
        })
        .collect();
    server.sort();
    assert_eq!(view(&deflated, "z"), server, "still equal after changes");
}

/// New mail delivered into a synced folder other than INBOX is in the cache within 5 s of
/// arriving, with the full poll 10 minutes away.
fn new_mail_anywhere_within_seconds(home: &Home, name: &str, user: &str, folder: &str) {
    home.set_account_option(name, "sync.poll_secs", toml_edit::value(600));
    let out = home.run(&[
        "folders",
        name,
        "--refresh",
        "--sync",
        &format!("INBOX,{folder}"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let _d = Daemon::start(home);
    wait_for("the first pass", Duration::from_secs(30), || {
        (all_messages(home, name, None).len() == 30).then_some(())
    });
    // The watcher is up once the first pass is done; give it its first look.
    std::thread::sleep(Duration::from_millis(1500));
    for i in 0..2 {
        let subject = format!("{name}-pushed-{i}");
        let started = Instant::now();
        deliver(user, folder, &subject);
        wait_for("the new mail in the cache", Duration::from_secs(5), || {
            has_subject(home, &subject).then_some(())
        });
        eprintln!(
            "{name}: new mail in {folder} cached after {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn new_mail_in_any_synced_folder_arrives_within_seconds_via_notify() {
    let user = user("speed-notify");
    seed(&user, 30);
    folder_with(&user, "Projects", "21:30");
    let home = Home::new();
    home.add_account("n", &user);
    new_mail_anywhere_within_seconds(&home, "n", &user, "Projects");
}

#[test]
fn new_mail_in_any_synced_folder_arrives_within_seconds_on_a_server_without_notify() {
    bare_servers();
    let user = user("speed-poll");
    seed(&user, 30);
    let out = mailserver_bare_doveadm(&["mailbox", "create", "-u", &user, "Projects"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = mailserver_bare_doveadm(&[
        "move", "-u", &user, "Projects", "mailbox", "INBOX", "uid", "21:30",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let home = Home::new();
    let out = home.account_add("b", &user, BARE_IMAPS, SUBMISSION, &[], PASSWORD);
    assert!(out.status.success(), "{}", stderr(&out));
    home.set_account_option("b", "sync.status_poll_secs", toml_edit::value(1));
    new_mail_anywhere_within_seconds(&home, "b", &user, "Projects");
}

fn mailserver_bare_doveadm(args: &[&str]) -> std::process::Output {
    Command::new(repo().join("scripts/mailserver"))
        .arg("doveadm-bare")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The server's bytes of every message in `folder`: UID → (size, the message as doveadm gives
/// it).
fn server_messages(user: &str, folder: &str) -> std::collections::HashMap<u64, u64> {
    server_fetch(user, folder, &["uid", "size.virtual"])
        .into_iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
        .collect()
}

/// How a full offline sync gets its bodies: with the headers (messages fetched whole, the
/// default) or by the download after them (what a cap on the space or a date limit chooses).
#[derive(Clone, Copy, PartialEq)]
enum BodiesBy {
    Whole,
    Download,
}

#[test]
fn full_offline_mode_killed_mid_download_resumes_and_every_body_is_there_once() {
    killed_mid_download_resumes(BodiesBy::Whole);
}

#[test]
fn full_offline_mode_with_a_cap_killed_mid_download_resumes_and_every_body_is_there_once() {
    killed_mid_download_resumes(BodiesBy::Download);
}

fn killed_mid_download_resumes(by: BodiesBy) {
    let user = user(match by {
        BodiesBy::Whole => "speed-bodies",
        BodiesBy::Download => "speed-bodies-cap",
    });
    seed(&user, 3000);
    // 40 messages also filed in Archive: the same logical messages, one body each.
    let out = doveadm(&["mailbox", "create", "-u", &user, "Kept"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = doveadm(&[
        "copy",
        "-u",
        &user,
        "Kept",
        "mailbox",
        "INBOX",
        "uid",
        "2901:2940",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let home = Home::new();
    home.add_account("o", &user);
    home.set_account_option("o", "sync.bodies", toml_edit::value("all"));
    let failpoint = match by {
        BodiesBy::Whole => {
            home.set_account_option("o", "sync.batch_size", toml_edit::value(500));
            "after_fetch_batch@1"
        }
        BodiesBy::Download => {
            home.set_account_option("o", "sync.bodies_max_mb", toml_edit::value(1000));
            "after_body_batch@1"
        }
    };
    let out = home.run(&["folders", "o", "--refresh", "--sync", "INBOX,Kept"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Killed like `kill -9` after the first committed batch of bodies.
    let out = home
        .cmd()
        .args(["sync", "o", "--once"])
        .env("MAILROOM_FAILPOINT", failpoint)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the failpoint aborts the process");
    let bodies = |h: &Home| -> i64 { h.db().count("SELECT COUNT(*) FROM bodies", &[]) };
    let partial = bodies(&home);
    assert!(
        partial > 0 && partial < 3000,
        "{partial} bodies before the kill"
    );
    // The next run goes on where the last commit ended.
    let v = sync_once(&home, "o");
    let acct = &v["accounts"][0];
    assert_eq!(
        acct["bodies"].as_i64().unwrap(),
        3000 - partial,
        "only what was missing: {acct}"
    );
    // Every logical message has its body, once; each is the server's message byte for byte
    // (its size, and a sample compared whole).
    let messages: i64 = home.db().count("SELECT COUNT(*) FROM messages", &[]);
    assert_eq!(messages, 3000);
    assert_eq!(bodies(&home), 3000, "one body per logical message");
    let unindexed = home
        .db()
        .count("SELECT COUNT(*) FROM bodies WHERE indexed = 0", &[]);
    assert_eq!(unindexed, 0, "every body's words are in the search index");
    if by == BodiesBy::Whole {
        // Fetched whole, each stored header block is what a header fetch would have brought.
        let headers: Vec<u8> = home
            .db()
            .value("SELECT headers FROM messages ORDER BY id LIMIT 1", &[]);
        let headers = String::from_utf8_lossy(&headers);
        assert!(
            headers.contains("Message-ID:") && headers.ends_with("\r\n\r\n"),
            "{headers}"
        );
        assert!(
            !headers.contains("Content-Type:"),
            "only the fields sync asks for: {headers}"
        );
    }
    let server = server_messages(&user, "INBOX");
    let stored: Vec<(u64, u64)> = home
        .db()
        .rows::<(i64, i64)>(
            "SELECT l.uid, b.size FROM bodies b JOIN locations l ON l.message_id = b.message_id
             JOIN folders f ON f.id = l.folder_id WHERE f.name = 'INBOX'",
            &[],
        )
        .into_iter()
        .map(|(u, n)| (u as u64, n as u64))
        .collect();
    assert_eq!(stored.len(), 3000);
    for (uid, size) in &stored {
        assert_eq!(server.get(uid), Some(size), "UID {uid}");
    }
    // The space is shown in status.
    let (_, st) = home.json(&["status"]);
    assert_eq!(st["accounts"][0]["bodies"]["count"], 3000, "{st}");
    assert!(st["accounts"][0]["bodies"]["bytes"].as_i64().unwrap() > 1_000_000);
    // With the server gone, any message opens whole.
    let out = home.run(&["account", "edit", "o", "--imap", "127.0.0.1:9"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = all_messages(&home, "o", None);
    for m in all.iter().step_by(499) {
        let id = m["id"].to_string();
        let out = home.run(&["message", "show", &id, "--raw"]);
        assert!(out.status.success(), "message {id}: {}", stderr(&out));
        let uid = m["locations"][0]["uid"].as_u64().unwrap();
        assert_eq!(out.stdout.len() as u64, server[&uid], "message {id}");
        let (code, v) = home.json(&["message", "show", &id]);
        assert_eq!(code, 0, "{v}");
    }
    // And the search index has the bodies' words.
    let (code, v) = home.json(&["search", "regards"]);
    assert_eq!(code, 0, "{v}");
    assert!(!v["messages"].as_array().unwrap().is_empty(), "{v}");
}
