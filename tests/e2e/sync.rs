//! Issue 3: the sync engine against the real Dovecot (and Postfix for new mail).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::common::*;

/// A fresh mailbox that Dovecot already knows: its passwd-file is re-read at most once a
/// second, so a user added a moment ago may not exist yet for doveadm/seed.
pub(super) fn user(prefix: &str) -> String {
    let u = new_user(prefix);
    wait_for(
        "dovecot to see the new user",
        Duration::from_secs(10),
        || doveadm(&["user", &u]).status.success().then_some(()),
    );
    u
}

pub(super) fn sync_once(home: &Home, name: &str) -> Value {
    let (code, v) = home.json(&["sync", name, "--once"]);
    assert_eq!(code, 0, "sync failed: {v}");
    v
}

pub(super) fn folder_summary<'a>(v: &'a Value, folder: &str) -> &'a Value {
    v["accounts"][0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == folder)
        .unwrap_or_else(|| panic!("no {folder} in {v}"))
}

pub(super) fn all_messages(home: &Home, name: &str, folder: Option<&str>) -> Vec<Value> {
    let mut args = vec!["messages", name, "--limit", "1000000"];
    if let Some(f) = folder {
        args.extend_from_slice(&["--folder", f]);
    }
    let (code, v) = home.json(&args);
    assert_eq!(code, 0, "{v}");
    v["messages"].as_array().unwrap().clone()
}

/// (uid, flags) of every message in a folder, from the server itself.
pub(super) fn server_flags(user: &str, folder: &str) -> Vec<(u32, String)> {
    server_fetch(user, folder, &["uid", "flags"])
        .into_iter()
        .map(|m| (m[0].parse().unwrap(), m[1].clone()))
        .collect()
}

/// Every server message is cached with the server's flags (\Recent aside: it is per session).
fn assert_flags_match(msgs: &[Value], server: &[(u32, String)]) {
    for (uid, flags) in server {
        let m = msgs
            .iter()
            .find(|m| m["locations"][0]["uid"] == *uid)
            .unwrap_or_else(|| panic!("uid {uid} missing"));
        let mut want: Vec<&str> = flags
            .split_whitespace()
            .filter(|f| *f != "\\Recent")
            .collect();
        want.sort();
        let got: Vec<&str> = m["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert_eq!(got, want, "flags of uid {uid}");
    }
}

pub(super) fn account_for(home: &Home, name: &str, user: &str, port: u16) {
    let out = home.account_add(name, user, port, SUBMISSION, &[], PASSWORD);
    assert!(out.status.success(), "account add failed: {}", stderr(&out));
}

pub(super) fn assert_unique_uids(msgs: &[Value]) {
    let mut seen = HashSet::new();
    for m in msgs {
        for l in m["locations"].as_array().unwrap() {
            let key = (l["folder"].to_string(), l["uid"].as_u64().unwrap());
            assert!(seen.insert(key.clone()), "location {key:?} listed twice");
        }
    }
    let ids: HashSet<i64> = msgs.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), msgs.len(), "a message is listed twice");
}

#[test]
fn initial_sync_stores_every_message_once_with_flags_and_headers() {
    let user = user("sync-init");
    seed(&user, 250);
    doveadm(&[
        "flags",
        "add",
        "-u",
        &user,
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "7",
    ]);
    doveadm(&[
        "flags", "remove", "-u", &user, "\\Seen", "mailbox", "INBOX", "uid", "8",
    ]);
    let home = Home::new();
    home.add_account("w", &user);
    let (code, f) = home.json(&["folders", "w"]);
    assert_eq!(code, 0, "{f}");
    let on: Vec<&str> = f["folders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["sync"] == true)
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        on,
        vec!["INBOX", "Sent"],
        "a new account syncs INBOX and Sent: {f}"
    );
    let v = sync_once(&home, "w");
    assert_eq!(folder_summary(&v, "INBOX")["new"], 250, "{v}");
    let msgs = all_messages(&home, "w", None);
    assert_eq!(msgs.len(), 250);
    assert_unique_uids(&msgs);
    // Flags and headers agree with the server, message by message.
    let server = server_flags(&user, "INBOX");
    assert_eq!(server.len(), 250);
    assert_flags_match(&msgs, &server);
    let out = doveadm(&[
        "fetch",
        "-u",
        &user,
        "hdr.message-id",
        "mailbox",
        "INBOX",
        "uid",
        "7",
    ]);
    let mid = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("hdr.message-id: "))
        .unwrap()
        .trim()
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    let m7 = msgs.iter().find(|m| m["locations"][0]["uid"] == 7).unwrap();
    assert_eq!(m7["message_id"], mid.as_str());
    assert!(
        m7["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "\\Flagged")
    );
    // Newest first, and the page shape of the contract.
    let dates: Vec<&str> = msgs.iter().filter_map(|m| m["date"].as_str()).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "not newest first");
    for key in [
        "id",
        "message_id",
        "thread_id",
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "flags",
        "size",
        "locations",
        "customer_id",
    ] {
        assert!(m7.get(key).is_some(), "missing {key} in {m7}");
    }
    let (_, page) = home.json(&["messages", "w", "--limit", "10", "--offset", "5"]);
    assert_eq!(page["messages"][0]["id"], msgs[5]["id"]);
    // A second pass finds nothing new; status shows the counts.
    let v = sync_once(&home, "w");
    assert_eq!(folder_summary(&v, "INBOX")["new"], 0);
    let (_, st) = home.json(&["status"]);
    assert_eq!(st["accounts"][0]["counts"]["messages"], 250, "{st}");
    assert_eq!(st["accounts"][0]["state"], "idle");
    // `message show` fetches (or has prefetched) the body and shows readable text.
    let id = m7["id"].as_i64().unwrap().to_string();
    let (code, shown) = home.json(&["message", "show", &id]);
    assert_eq!(code, 0, "{shown}");
    assert!(!shown["text"].as_str().unwrap().is_empty(), "{shown}");
}

#[test]
fn changes_by_another_client_are_reflected_and_local_changes_reach_the_server() {
    let user = user("sync-2way");
    seed(&user, 40);
    let home = Home::new();
    home.add_account("w", &user);
    home.json(&["folders", "w", "--sync", "INBOX,Sent,Archive"]);
    sync_once(&home, "w");
    let before = all_messages(&home, "w", None);
    let id_of = |msgs: &[Value], uid: u64| {
        msgs.iter()
            .find(|m| m["locations"][0]["folder"] == "INBOX" && m["locations"][0]["uid"] == uid)
            .map(|m| m["id"].as_i64().unwrap())
    };
    let moved_id = id_of(&before, 5).unwrap();
    // Another client: flag 3, expunge 4, move 5 to Archive.
    doveadm(&[
        "flags",
        "add",
        "-u",
        &user,
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "3",
    ]);
    doveadm(&["expunge", "-u", &user, "mailbox", "INBOX", "uid", "4"]);
    let out = doveadm(&[
        "move", "-u", &user, "Archive", "mailbox", "INBOX", "uid", "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = sync_once(&home, "w");
    assert_eq!(folder_summary(&v, "INBOX")["vanished"], 2, "{v}");
    assert_eq!(folder_summary(&v, "INBOX")["updated"], 1, "{v}");
    let after = all_messages(&home, "w", None);
    assert_eq!(after.len(), 39);
    assert_unique_uids(&after);
    let m3 = after
        .iter()
        .find(|m| m["id"].as_i64() == id_of(&before, 3))
        .unwrap();
    assert!(
        m3["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "\\Flagged")
    );
    let moved = after
        .iter()
        .find(|m| m["id"].as_i64() == Some(moved_id))
        .expect("the moved message keeps its local id");
    assert_eq!(moved["locations"][0]["folder"], "Archive");
    // Local changes: flag, move, delete (to Trash) reach the server.
    let m10 = id_of(&after, 10).unwrap().to_string();
    let (code, r) = home.json(&["message", "flag", &m10, "--flagged", "--unseen"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["pushed"], true, "{r}");
    let f10 = server_flags(&user, "INBOX")
        .into_iter()
        .find(|(u, _)| *u == 10)
        .unwrap()
        .1;
    assert!(
        f10.contains("\\Flagged") && !f10.contains("\\Seen"),
        "server flags: {f10}"
    );
    let m11 = id_of(&after, 11).unwrap().to_string();
    let (code, r) = home.json(&["message", "delete", &m11]);
    assert_eq!(code, 0, "{r}");
    let m12 = id_of(&after, 12).unwrap().to_string();
    let (code, r) = home.json(&["message", "move", &m12, "Archive"]);
    assert_eq!(code, 0, "{r}");
    let inbox: Vec<u32> = server_flags(&user, "INBOX")
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert!(!inbox.contains(&11) && !inbox.contains(&12), "{inbox:?}");
    assert_eq!(server_flags(&user, "Trash").len(), 1);
    assert_eq!(server_flags(&user, "Archive").len(), 2);
    // The next pass agrees and keeps the local flag change (no flip-flop).
    sync_once(&home, "w");
    let last = all_messages(&home, "w", None);
    assert_unique_uids(&last);
    let again = last
        .iter()
        .find(|m| m["id"].as_i64().map(|i| i.to_string()) == Some(m10.clone()))
        .unwrap();
    let fl: Vec<&str> = again["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(fl, vec!["\\Flagged"]);
    let moved12 = last
        .iter()
        .find(|m| m["id"].as_i64().map(|i| i.to_string()) == Some(m12.clone()))
        .unwrap();
    assert_eq!(moved12["locations"][0]["folder"], "Archive");
}

#[test]
fn uidvalidity_reset_rebuilds_without_duplicates_and_keeps_local_ids() {
    let user = user("sync-uidv");
    seed(&user, 30);
    let home = Home::new();
    home.add_account("w", &user);
    sync_once(&home, "w");
    let before = all_messages(&home, "w", None);
    // Local data attached to the logical message must survive.
    let keep = before[0]["id"].as_i64().unwrap();
    let db = home.db();
    let customer = db.insert(
        "INSERT INTO customers (name, created_at, updated_at) VALUES ('C', 'x', 'x') RETURNING id",
        &[],
    );
    db.exec(
        "UPDATE messages SET customer_id = ?2 WHERE id = ?1",
        args![keep, customer],
    );
    drop(db);
    let out = doveadm(&[
        "mailbox",
        "update",
        "-u",
        &user,
        "--uid-validity",
        "12345",
        "INBOX",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    sync_once(&home, "w");
    let after = all_messages(&home, "w", None);
    assert_eq!(after.len(), 30);
    assert_unique_uids(&after);
    assert!(
        after
            .iter()
            .all(|m| m["locations"].as_array().unwrap().len() == 1
                && m["locations"][0]["uidvalidity"] == 12345)
    );
    let a: HashSet<i64> = after.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    let b: HashSet<i64> = before.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(a, b, "local ids changed");
    assert_eq!(
        after.iter().find(|m| m["id"] == keep).unwrap()["customer_id"],
        1
    );
}

#[test]
fn bare_server_without_extensions_reaches_the_same_end_state() {
    bare_servers();
    let user = user("sync-bare");
    seed(&user, 60);
    let home = Home::new();
    account_for(&home, "b", &user, BARE_IMAPS);
    let (_, f) = home.json(&["folders", "b"]);
    assert!(
        f["folders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "Sent" && x["role"] == "sent"),
        "Sent found by name: {f}"
    );
    sync_once(&home, "b");
    assert_eq!(all_messages(&home, "b", None).len(), 60);
    doveadm(&[
        "flags",
        "add",
        "-u",
        &user,
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "2",
    ]);
    doveadm(&["expunge", "-u", &user, "mailbox", "INBOX", "uid", "3"]);
    let v = sync_once(&home, "b");
    assert_eq!(folder_summary(&v, "INBOX")["vanished"], 1, "{v}");
    assert_eq!(folder_summary(&v, "INBOX")["updated"], 1, "{v}");
    let msgs = all_messages(&home, "b", None);
    assert_eq!(msgs.len(), 59);
    assert_unique_uids(&msgs);
    // Local move without MOVE/UIDPLUS: COPY + \Deleted; the original is hidden, not doubled.
    let m = msgs.iter().find(|m| m["locations"][0]["uid"] == 9).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let (code, r) = home.json(&["message", "delete", &m]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(server_flags(&user, "Trash").len(), 1);
    sync_once(&home, "b");
    let msgs = all_messages(&home, "b", Some("INBOX"));
    assert_eq!(msgs.len(), 58);
    // Same flags as the server for every visible message.
    let server = server_flags(&user, "INBOX");
    for m in &msgs {
        let uid = m["locations"][0]["uid"].as_u64().unwrap() as u32;
        let (_, f) = server.iter().find(|(u, _)| *u == uid).unwrap();
        for flag in m["flags"].as_array().unwrap() {
            assert!(f.contains(flag.as_str().unwrap()), "uid {uid}: {f} vs {m}");
        }
    }
}

/// A TCP proxy that cuts the first connection after `cut_after` bytes from the server.
fn cutting_proxy(target: u16, cut_after: usize) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let conns = Arc::new(AtomicUsize::new(0));
    let c2 = conns.clone();
    std::thread::spawn(move || {
        for client in l.incoming() {
            let Ok(client) = client else { continue };
            let n = c2.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let limit = if n == 0 { Some(cut_after) } else { None };
            let (mut c_r, mut s_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_r, &mut s_w);
            });
            let (mut s_r, mut c_w) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                let mut sent = 0usize;
                while let Ok(k) = s_r.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    if let Some(l) = limit.filter(|l| sent + k >= *l) {
                        let _ = c_w.write_all(&buf[..l - sent]);
                        let _ = c_w.shutdown(std::net::Shutdown::Both);
                        let _ = s_r.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if c_w.write_all(&buf[..k]).is_err() {
                        break;
                    }
                    sent += k;
                }
            });
        }
    });
    (port, conns)
}

#[test]
fn connection_cut_mid_fetch_then_next_run_completes_without_gaps_or_doubles() {
    let user = user("sync-cut");
    seed(&user, 1500);
    let (port, conns) = cutting_proxy(IMAPS, 300_000);
    let home = Home::new();
    account_for(&home, "c", &user, port);
    home.set_account_option("c", "sync.batch_size", toml_edit::value(100));
    home.set_account_option("c", "sync.body_prefetch_max_bytes", toml_edit::value(0));
    let (code, v) = home.json(&["sync", "c", "--once"]);
    assert_eq!(code, 1, "the cut must fail the pass: {v}");
    // A one-shot command does not retry, and says so: run it again.
    let fix = v["error"]["fix"].as_str().unwrap_or("");
    assert!(
        !fix.contains("retries") && fix.contains("mailroom sync c --once` again"),
        "{v}"
    );
    assert!(
        v["error"]["summary"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("127.0.0.1:{port}")),
        "the server is named: {v}"
    );
    let partial = all_messages(&home, "c", None).len();
    assert!(
        partial < 1500,
        "the cut came too late to test anything ({partial})"
    );
    let (_, st) = home.json(&["status"]);
    assert!(
        st["accounts"][0]["last_error"]["what"].as_str().is_some(),
        "{st}"
    );
    let v = sync_once(&home, "c");
    assert!(conns.load(Ordering::SeqCst) >= 2);
    assert_eq!(
        folder_summary(&v, "INBOX")["new"].as_u64().unwrap() as usize,
        1500 - partial,
        "{v}"
    );
    let msgs = all_messages(&home, "c", None);
    assert_eq!(msgs.len(), 1500);
    assert_unique_uids(&msgs);
}

#[test]
fn crash_during_initial_sync_resumes_without_gaps_or_duplicates() {
    let user = user("sync-crash");
    // Enough for several commits; small enough for PostgreSQL's slower first sync in CI.
    const N: i64 = 4000;
    seed(&user, N as usize);
    let home = Home::new();
    home.add_account("k", &user);
    home.set_account_option("k", "sync.batch_size", toml_edit::value(400));
    home.set_account_option("k", "sync.body_prefetch_max_bytes", toml_edit::value(0));
    // The daemon dies like `kill -9` (abort: no cleanup, lease left behind) after 3 commits.
    let mut child = home
        .cmd()
        .arg("daemon")
        .env("MAILROOM_FAILPOINT", "after_fetch_batch@3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_for(
        "the daemon to abort at the failpoint",
        Duration::from_secs(60),
        || child.try_wait().unwrap(),
    );
    assert!(!status.success(), "the failpoint must abort the process");
    let cp = home.db().count(
        "SELECT COALESCE(checkpoint_uid, 0) FROM folders WHERE name = 'INBOX'",
        &[],
    );
    // Three commits happened: a batch of 400, or less when the writer committed on time (it
    // also commits after half a second or a pause of the fetch, which a loaded machine makes
    // common). Mid-pass either way, and what was committed is whole.
    assert!(
        cp > 0 && cp < N,
        "the abort came mid-pass (checkpoint {cp})"
    );
    let stored = home.db().count("SELECT COUNT(*) FROM locations", &[]);
    assert_eq!(
        stored, cp,
        "a committed batch is whole, an uncommitted one is absent"
    );
    // Restart: the dead holder's lease is taken over, the sync resumes at the checkpoint.
    let v = sync_once(&home, "k");
    assert_eq!(
        folder_summary(&v, "INBOX")["new"],
        N - cp,
        "resumed from the checkpoint: {v}"
    );
    let msgs = all_messages(&home, "k", None);
    assert_eq!(msgs.len() as i64, N);
    assert_unique_uids(&msgs);
    let uids: HashSet<u64> = msgs
        .iter()
        .map(|m| m["locations"][0]["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(uids, (1..=N as u64).collect::<HashSet<u64>>(), "no gaps");
}

#[test]
fn daemon_sees_new_mail_within_seconds_via_idle_and_holds_the_lease() {
    let user = user("sync-idle");
    seed(&user, 5);
    let home = Home::new();
    home.add_account("d", &user);
    // Polling is far away: only IDLE can explain a quick arrival.
    home.set_account_option("d", "sync.poll_secs", toml_edit::value(600));
    home.set_account_option("d", "sync.idle_renew_secs", toml_edit::value(20));
    let _d = Daemon::start(&home);
    let count = |h: &Home| -> i64 {
        h.db()
            .try_count("SELECT COUNT(*) FROM locations", &[])
            .unwrap_or(0)
    };
    wait_for(
        "initial sync by the daemon",
        Duration::from_secs(30),
        || (count(&home) == 5).then_some(()),
    );
    // A second process for the same account is refused with exit 75, naming the holder.
    let out = home.run(&["sync", "d", "--once"]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(stderr(&out).contains("pid"), "{}", stderr(&out));
    let (_, st) = home.json(&["status"]);
    assert!(
        matches!(
            st["accounts"][0]["state"].as_str(),
            Some("idle") | Some("syncing")
        ),
        "{st}"
    );
    smtp_send(&user, &user, "pushed by IDLE", "hello");
    wait_for("new mail in the DB", Duration::from_secs(15), || {
        let n = home
            .db()
            .try_count(
                "SELECT COUNT(*) FROM messages WHERE subject = 'pushed by IDLE'",
                &[],
            )
            .unwrap_or(0);
        (n == 1).then_some(())
    });
}

#[test]
fn plan_counts_without_changing_anything() {
    let user = user("sync-plan");
    seed(&user, 80);
    doveadm(&[
        "flags", "remove", "-u", &user, "\\Seen", "mailbox", "INBOX", "uid", "1:10",
    ]);
    let home = Home::new();
    home.add_account("p", &user);
    let (code, v) = home.json(&["sync", "p", "--plan"]);
    assert_eq!(code, 0, "{v}");
    let inbox = v["accounts"][0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == "INBOX")
        .unwrap()
        .clone();
    assert_eq!(inbox["messages"], 80);
    assert_eq!(inbox["to_sync"], 80);
    assert!(inbox["bytes"].as_u64().unwrap() > 0);
    let (_, v) = home.json(&["sync", "p", "--plan", "--unread-only"]);
    let inbox = v["accounts"][0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == "INBOX")
        .unwrap()
        .clone();
    assert!(
        inbox["to_sync"].as_u64().unwrap() >= 10 && inbox["to_sync"].as_u64().unwrap() < 80,
        "{inbox}"
    );
    let n = home.db().count("SELECT COUNT(*) FROM messages", &[]);
    assert_eq!(n, 0, "--plan stored messages");
}

#[test]
fn sync_options_deny_list_unread_only_and_mark_read_for_new_mail_only() {
    let user = user("sync-opts");
    seed(&user, 20);
    let home = Home::new();
    home.add_account("o", &user);
    home.set_account_option("o", "sync.mark_read", toml_edit::value(true));
    let deny = toml_edit::Array::from_iter([user.split('@').nth(1).unwrap().to_string()]);
    home.set_account_option("o", "deny", toml_edit::value(deny));
    let unread_before: usize = server_flags(&user, "INBOX")
        .iter()
        .filter(|(_, f)| !f.contains("\\Seen"))
        .count();
    sync_once(&home, "o");
    // Old mail is never marked read.
    let unread_after: usize = server_flags(&user, "INBOX")
        .iter()
        .filter(|(_, f)| !f.contains("\\Seen"))
        .count();
    assert_eq!(unread_before, unread_after);
    // New mail after switch-on: from a denied domain → stored hidden, not marked read.
    smtp_send(&user, &user, "from a denied sender", "x");
    wait_for("delivery", Duration::from_secs(10), || {
        (server_flags(&user, "INBOX").len() == 21).then_some(())
    });
    sync_once(&home, "o");
    assert_eq!(
        all_messages(&home, "o", None).len(),
        20,
        "denied mail is hidden"
    );
    let hidden = home
        .db()
        .count("SELECT COUNT(*) FROM messages WHERE denied = 1", &[]);
    assert_eq!(hidden, 1);
    // Lift the deny list: the next new message is marked read on the server.
    home.set_account_option("o", "deny", toml_edit::value(toml_edit::Array::new()));
    smtp_send(&user, &user, "mark me read", "x");
    wait_for("delivery", Duration::from_secs(10), || {
        (server_flags(&user, "INBOX").len() == 22).then_some(())
    });
    sync_once(&home, "o");
    let (uid, f) = server_flags(&user, "INBOX")
        .into_iter()
        .max_by_key(|(u, _)| *u)
        .unwrap();
    assert!(f.contains("\\Seen"), "uid {uid} not marked read: {f}");
    let unread_final: usize = server_flags(&user, "INBOX")
        .iter()
        .filter(|(_, f)| !f.contains("\\Seen"))
        .count();
    assert_eq!(
        unread_final,
        unread_before + 1,
        "only the new, non-denied message was marked read"
    );
}

/// Stores raw bytes as a message in a folder on the server (another client's APPEND).
pub(super) fn server_save(user: &str, folder: &str, raw: &[u8]) {
    let mut child = std::process::Command::new(repo().join("scripts/mailserver"))
        .args(["doveadm", "save", "-u", user, "-m", folder])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(raw).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn mail_without_any_header_field_we_fetch_is_stored_not_quarantined() {
    let user = user("sync-headerless");
    seed(&user, 10);
    // No Date, From, To, Cc, Subject or Message-ID: what sync asks for comes back empty.
    let raw = b"this is not a mail header at all\r\njust text\r\n";
    server_save(&user, "INBOX", raw);
    let bare =
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nonly a body\r\n";
    server_save(&user, "INBOX", bare);
    seed_more(&user, 5);
    let home = Home::new();
    home.add_account("q", &user);
    let v = sync_once(&home, "q");
    assert_eq!(folder_summary(&v, "INBOX")["quarantined"], 0, "{v}");
    assert_eq!(
        folder_summary(&v, "INBOX")["new"],
        17,
        "every message stored: {v}"
    );
    let (_, q) = home.json(&["quarantine", "list"]);
    assert_eq!(q["quarantine"].as_array().unwrap().len(), 0, "{q}");
    // Stored with empty fields, dated by INTERNALDATE, and readable.
    let received = received_times(&user, "INBOX");
    for uid in [11u32, 12] {
        let m = all_messages(&home, "q", None)
            .into_iter()
            .find(|m| m["locations"][0]["uid"] == uid)
            .unwrap_or_else(|| panic!("uid {uid} stored"));
        assert_eq!(m["subject"], Value::Null, "{m}");
        assert_eq!(m["from"], Value::Null, "{m}");
        let (_, t) = received.iter().find(|(u, _)| *u == uid).unwrap();
        let date = chrono::DateTime::parse_from_rfc3339(m["date"].as_str().unwrap()).unwrap();
        assert_eq!(date.timestamp(), *t, "INTERNALDATE is its date: {m}");
        let id = m["id"].to_string();
        let (code, shown) = home.json(&["message", "show", &id]);
        assert_eq!(code, 0, "{shown}");
    }
    // The next pass changes nothing.
    let v = sync_once(&home, "q");
    assert_eq!(folder_summary(&v, "INBOX")["new"], 0, "{v}");
}

pub(super) fn seed_more(user: &str, n: usize) {
    for i in 0..n {
        let msg = format!(
            "Message-ID: <more-{i}@example.test>\r\nFrom: x@example.test\r\nTo: {user}\r\nSubject: more {i}\r\nDate: Mon, 2 Nov 2026 10:00:0{i} +0000\r\n\r\nbody {i}\r\n"
        );
        server_save(user, "INBOX", msg.as_bytes());
    }
}

#[test]
fn condstore_without_qresync_finds_flag_changes_and_expunges() {
    let user = user("sync-condstore");
    seed(&user, 30);
    let home = Home::new();
    home.add_account("c", &user);
    let run = |home: &Home| {
        let out = home
            .cmd()
            .args(["--json", "sync", "c", "--once"])
            .env("MAILROOM_NO_QRESYNC", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str::<Value>(stdout(&out).trim()).unwrap()
    };
    run(&home);
    let v = run(&home);
    assert_eq!(
        folder_summary(&v, "INBOX")["updated"],
        0,
        "no change, no update: {v}"
    );
    doveadm(&[
        "flags",
        "add",
        "-u",
        &user,
        "\\Answered",
        "mailbox",
        "INBOX",
        "uid",
        "4",
    ]);
    doveadm(&["expunge", "-u", &user, "mailbox", "INBOX", "uid", "6"]);
    let v = run(&home);
    assert_eq!(folder_summary(&v, "INBOX")["updated"], 1, "{v}");
    assert_eq!(folder_summary(&v, "INBOX")["vanished"], 1, "{v}");
    let msgs = all_messages(&home, "c", None);
    assert_eq!(msgs.len(), 29);
    let m4 = msgs.iter().find(|m| m["locations"][0]["uid"] == 4).unwrap();
    assert!(
        m4["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "\\Answered")
    );
}

#[test]
fn failing_accounts_back_off_then_give_up_and_say_how_to_fix() {
    let user = user("sync-fail");
    let home = Home::new();
    // A port where nothing listens.
    let port = {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    account_for(&home, "down", &user, port);
    for (k, v) in [
        ("sync.backoff_min_secs", 1),
        ("sync.backoff_max_secs", 1),
        ("sync.give_up_secs", 3),
    ] {
        home.set_account_option("down", k, toml_edit::value(v));
    }
    let out = home.account_add("badpw", &user, IMAPS, SUBMISSION, &[], "wrong-password");
    assert!(out.status.success());
    let _d = Daemon::start(&home);
    let mut states = HashSet::new();
    let st = wait_for("both accounts in error", Duration::from_secs(30), || {
        let (_, st) = home.json(&["status"]);
        for a in st["accounts"].as_array().unwrap() {
            states.insert(format!(
                "{}:{}",
                a["name"].as_str().unwrap(),
                a["state"].as_str().unwrap()
            ));
        }
        st["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["state"] == "error")
            .then_some(st)
    });
    assert!(
        states.contains("down:disconnected"),
        "the unreachable account retried first: {states:?}"
    );
    let badpw = st["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "badpw")
        .unwrap();
    assert!(
        badpw["last_error"]["fix"]
            .as_str()
            .unwrap()
            .contains("set-password"),
        "{badpw}"
    );
    let down = st["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "down")
        .unwrap();
    assert!(
        !down["last_error"]["fix"].as_str().unwrap().is_empty(),
        "{down}"
    );
    assert!(
        down["health"]["success_rate"].as_f64().unwrap_or(1.0) < 0.01,
        "{down}"
    );
    let gave_up = home.db().count("SELECT COUNT(*) FROM events WHERE what LIKE 'gave up syncing down%' AND fix LIKE '%account enable%'", &[]);
    assert_eq!(gave_up, 1);
    // Once in error, no more attempts until the user acts.
    let runs = |h: &Home| -> i64 {
        h.db()
            .value("SELECT runs_total FROM accounts WHERE name = 'down'", &[])
    };
    let before = runs(&home);
    std::thread::sleep(Duration::from_secs(2)); // waiting for something NOT to happen
    assert_eq!(
        runs(&home),
        before,
        "an account in error must not retry by itself"
    );
}

#[test]
fn folder_names_are_decoded_and_chosen_by_their_decoded_name() {
    let user = user("sync-utf7");
    let out = doveadm(&["mailbox", "create", "-u", &user, "Envoyés"]);
    assert!(out.status.success(), "{}", stderr(&out));
    server_save(
        &user,
        "Envoyés",
        b"Message-ID: <utf7@x>\r\nFrom: a@example.test\r\nSubject: in a UTF-7 folder\r\n\r\nhi\r\n",
    );
    let home = Home::new();
    home.add_account("u", &user);
    let (code, f) = home.json(&["folders", "u", "--sync", "INBOX,Envoyés"]);
    assert_eq!(code, 0, "{f}");
    let env = f["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "Envoyés")
        .unwrap_or_else(|| panic!("decoded name missing: {f}"));
    assert_eq!(env["sync"], true);
    let (code, bad) = home.json(&["folders", "u", "--sync", "Nope"]);
    assert_eq!(code, 64, "{bad}");
    assert!(
        bad["error"]["fix"].as_str().unwrap().contains("Envoyés"),
        "{bad}"
    );
    sync_once(&home, "u");
    let msgs = all_messages(&home, "u", Some("Envoyés"));
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["subject"], "in a UTF-7 folder");
}

#[test]
fn daemon_pushes_changes_queued_by_another_process() {
    let user = user("sync-queue");
    seed(&user, 5);
    let home = Home::new();
    home.add_account("q", &user);
    home.set_account_option("q", "sync.poll_secs", toml_edit::value(600));
    let _d = Daemon::start(&home);
    let count = |h: &Home| -> i64 {
        h.db()
            .try_count("SELECT COUNT(*) FROM locations", &[])
            .unwrap_or(0)
    };
    wait_for(
        "initial sync by the daemon",
        Duration::from_secs(30),
        || (count(&home) == 5).then_some(()),
    );
    let msgs = all_messages(&home, "q", None);
    let m = msgs.iter().find(|m| m["locations"][0]["uid"] == 2).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    // The daemon holds the lease: the CLI queues the change and the daemon pushes it.
    let (code, r) = home.json(&["message", "flag", &m, "--flagged"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["pushed"], false, "{r}");
    wait_for(
        "the daemon to push the flag",
        Duration::from_secs(30),
        || {
            server_flags(&user, "INBOX")
                .into_iter()
                .any(|(u, f)| u == 2 && f.contains("\\Flagged"))
                .then_some(())
        },
    );
}

#[test]
fn in_process_supervisor_reports_typed_events_for_the_console() {
    use mailroom::sync::{Supervisor, SyncEvent};
    let user = user("sync-events");
    seed(&user, 12);
    let home = Home::new();
    home.add_account("e", &user);
    home.set_account_option("e", "sync.poll_secs", toml_edit::value(600));
    let mhome = mailroom::config::Home {
        root: home.path().to_path_buf(),
    };
    let config = mailroom::config::Config::load(&mhome).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (seen, states) = rt.block_on(async {
        let sup = Supervisor::start(&mhome, &config);
        let mut rx = sup.subscribe();
        let mut seen = Vec::new();
        let mut states = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ev = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("events within 30 s")
                .expect("channel open");
            match &ev {
                SyncEvent::StateChanged { state, .. } => states.push(format!("{state:?}")),
                SyncEvent::FolderChanged { folder, .. } => seen.push(format!("changed:{folder}")),
                SyncEvent::Progress {
                    folder,
                    done,
                    total,
                    ..
                } if done == total && *total > 0 => seen.push(format!("progress:{folder}:{total}")),
                SyncEvent::PassDone { new, .. } => {
                    seen.push(format!("done:{new}"));
                    break;
                }
                _ => {}
            }
        }
        sup.shutdown().await;
        (seen, states)
    });
    assert!(seen.contains(&"changed:INBOX".to_string()), "{seen:?}");
    assert!(seen.contains(&"progress:INBOX:12".to_string()), "{seen:?}");
    assert!(seen.contains(&"done:12".to_string()), "{seen:?}");
    assert_eq!(
        states.first().map(String::as_str),
        Some("Syncing"),
        "{states:?}"
    );
    assert_eq!(
        states.last().map(String::as_str),
        Some("Idle"),
        "{states:?}"
    );
    // Shutdown released the lease: a CLI pass runs at once.
    sync_once(&home, "e");
}

/// (uid, INTERNALDATE as unix time) of every message in a folder, from the server itself.
pub(super) fn received_times(user: &str, folder: &str) -> Vec<(u32, i64)> {
    server_fetch(user, folder, &["uid", "date.received.unixtime"])
        .into_iter()
        .map(|m| (m[0].parse().unwrap(), m[1].parse().unwrap()))
        .collect()
}

/// The INBOX UIDs the cache holds.
fn stored_uids(home: &Home, name: &str) -> HashSet<u32> {
    let msgs = all_messages(home, name, Some("INBOX"));
    assert_unique_uids(&msgs);
    msgs.iter()
        .map(|m| m["locations"][0]["uid"].as_u64().unwrap() as u32)
        .collect()
}

fn edit_since(home: &Home, name: &str, scope: &[&str]) {
    let mut args = vec!["account", "edit", name];
    args.extend_from_slice(scope);
    let out = home.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `since = "new"`: the first pass stores nothing of a full mailbox and starts at UIDNEXT; what
/// arrives afterwards (delivered, or appended with an old INTERNALDATE) is stored, exactly once.
fn since_new_takes_only_mail_arriving_after_the_first_sync(port: u16, prefix: &str) {
    let user = user(prefix);
    seed(&user, 40);
    let home = Home::new();
    account_for(&home, "n", &user, port);
    edit_since(&home, "n", &["--since", "new"]);
    let (_, shown) = home.json(&["account", "show", "n"]);
    assert_eq!(shown["account"]["sync"]["since"], "new", "{shown}");
    let config = home.settings_text();
    assert!(config.contains("since = \"new\""), "{config}");

    // The plan says so: no historical message in any folder.
    let (code, plan) = home.json(&["sync", "n", "--plan"]);
    assert_eq!(code, 0, "{plan}");
    assert_eq!(plan["accounts"][0]["since"], "new", "{plan}");
    let folders = plan["accounts"][0]["folders"].as_array().unwrap();
    assert!(
        folders
            .iter()
            .any(|f| f["folder"] == "INBOX" && f["messages"] == 40)
    );
    assert!(folders.iter().all(|f| f["to_sync"] == 0), "{plan}");
    assert_eq!(plan["accounts"][0]["total"]["to_sync"], 0, "{plan}");
    let text = home.run(&["sync", "n", "--plan"]);
    assert!(
        stdout(&text).contains("0 historical messages"),
        "{}",
        stdout(&text)
    );

    let v = sync_once(&home, "n");
    assert_eq!(folder_summary(&v, "INBOX")["new"], 0, "{v}");
    assert!(stored_uids(&home, "n").is_empty());
    let n = home.db().count("SELECT COUNT(*) FROM messages", &[]);
    assert_eq!(n, 0, "nothing old was stored");

    // Mail arrives: one delivered now, three appended with old dates (new UIDs all the same).
    smtp_send(&user, &user, "after the start", "x");
    wait_for("delivery", Duration::from_secs(10), || {
        (server_flags(&user, "INBOX").len() == 41).then_some(())
    });
    seed_offset(&user, 3, 40);
    let after: HashSet<u32> = server_flags(&user, "INBOX")
        .into_iter()
        .map(|(u, _)| u)
        .filter(|u| *u > 40)
        .collect();
    assert_eq!(after.len(), 4);
    let v = sync_once(&home, "n");
    assert_eq!(folder_summary(&v, "INBOX")["new"], 4, "{v}");
    assert_eq!(stored_uids(&home, "n"), after);
    assert!(
        all_messages(&home, "n", Some("INBOX"))
            .iter()
            .any(|m| m["subject"] == "after the start")
    );
    let v = sync_once(&home, "n");
    assert_eq!(folder_summary(&v, "INBOX")["new"], 0, "{v}");
    assert_eq!(stored_uids(&home, "n").len(), 4);
}

/// A date scope: the first pass asks the server (UID SEARCH SINCE) and stores exactly the mail
/// with INTERNALDATE on or after the date, having been sent only those headers; later passes
/// still filter new arrivals by date.
fn since_date_fetches_only_the_mail_in_scope(port: u16, prefix: &str) {
    let user = user(prefix);
    seed(&user, 300);
    let times = received_times(&user, "INBOX");
    assert_eq!(times.len(), 300);
    // A date keeping about the newest tenth, computed from the seeded INTERNALDATEs: the day
    // after a message's, so the day before the cut has mail.
    let mut sorted: Vec<i64> = times.iter().map(|(_, t)| *t).collect();
    sorted.sort_unstable();
    let date = chrono::DateTime::from_timestamp(sorted[270], 0)
        .unwrap()
        .date_naive()
        .succ_opt()
        .unwrap();
    let cutoff = date.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    let in_scope = |times: &[(u32, i64)]| -> HashSet<u32> {
        times
            .iter()
            .filter(|(_, t)| *t >= cutoff)
            .map(|(u, _)| *u)
            .collect()
    };
    let expected = in_scope(&times);
    assert!(
        (10..100).contains(&expected.len()),
        "{} of 300 since {date}",
        expected.len()
    );
    let date = date.format("%Y-%m-%d").to_string();

    // The whole mailbox, for comparison (bodies off: `bytes` is then the headers sent).
    let full = Home::new();
    account_for(&full, "f", &user, port);
    full.set_account_option("f", "sync.body_prefetch_max_bytes", toml_edit::value(0));
    let vf = sync_once(&full, "f");
    assert_eq!(folder_summary(&vf, "INBOX")["new"], 300, "{vf}");

    let home = Home::new();
    account_for(&home, "d", &user, port);
    home.set_account_option("d", "sync.body_prefetch_max_bytes", toml_edit::value(0));
    edit_since(&home, "d", &["--since", &date]);
    // The server is searched from the day before (its SINCE day is not the UTC day); the plan
    // still counts exactly what the sync keeps, so mail of that day must be there to drop.
    let day = 24 * 3600;
    assert!(
        times
            .iter()
            .any(|(_, t)| (cutoff - day..cutoff).contains(t)),
        "no seeded mail on the day before {date}"
    );
    let (_, plan) = home.json(&["sync", "d", "--plan"]);
    assert_eq!(plan["accounts"][0]["since"], date.as_str(), "{plan}");
    let planned = plan["accounts"][0]["folders"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["folder"] == "INBOX"))
        .map(|f| f["to_sync"].clone());
    assert_eq!(planned, Some(serde_json::json!(expected.len())), "{plan}");
    let v = sync_once(&home, "d");
    assert_eq!(
        folder_summary(&v, "INBOX")["new"].as_u64().unwrap() as usize,
        expected.len(),
        "{v}"
    );
    assert_eq!(stored_uids(&home, "d"), expected);
    // The server sent only those headers: the traffic is about their share of the full sync
    // (a client-side filter alone would fetch every header and match the full sync's bytes).
    let (bytes, full_bytes) = (v["bytes"].as_u64().unwrap(), vf["bytes"].as_u64().unwrap());
    assert!(bytes > 0, "{v}");
    assert!(
        bytes * 300 < full_bytes * expected.len() as u64 * 2,
        "{bytes} bytes for {} of 300 messages vs {full_bytes} for all",
        expected.len()
    );

    // Unread only on top: the server is asked SINCE … UNSEEN.
    let unread = Home::new();
    account_for(&unread, "u", &user, port);
    unread.set_account_option("u", "sync.body_prefetch_max_bytes", toml_edit::value(0));
    edit_since(
        &unread,
        "u",
        &["--since", &date, "--process", "unread-only"],
    );
    let unseen: HashSet<u32> = server_flags(&user, "INBOX")
        .into_iter()
        .filter(|(_, f)| !f.contains("\\Seen"))
        .map(|(u, _)| u)
        .collect();
    let both: HashSet<u32> = expected.intersection(&unseen).copied().collect();
    assert!(!both.is_empty() && both.len() < expected.len(), "{both:?}");
    let (_, plan) = unread.json(&["sync", "u", "--plan"]);
    assert_eq!(
        plan["accounts"][0]["total"]["to_sync"],
        serde_json::json!(both.len()),
        "{plan}"
    );
    let vu = sync_once(&unread, "u");
    assert_eq!(stored_uids(&unread, "u"), both, "{vu}");
    assert!(vu["bytes"].as_u64().unwrap() < bytes, "{vu}");

    // Later passes fetch what is new and keep the exact date cut: of 40 more seeded messages
    // (new UIDs, dates spread like the rest) only those on or after the date are stored.
    seed_offset(&user, 40, 300);
    let times = received_times(&user, "INBOX");
    assert_eq!(times.len(), 340);
    let v = sync_once(&home, "d");
    let expected = in_scope(&times);
    assert!(
        expected.iter().any(|u| *u > 300),
        "some new mail is in scope"
    );
    assert!(
        times.iter().any(|(u, t)| *u > 300 && *t < cutoff),
        "some new mail is older than the date"
    );
    assert_eq!(stored_uids(&home, "d"), expected, "{v}");
}

#[test]
fn since_new_fetches_no_old_mail_then_exactly_what_arrives() {
    since_new_takes_only_mail_arriving_after_the_first_sync(IMAPS, "sync-new");
}

#[test]
fn since_date_is_searched_on_the_server_and_fetches_only_those_headers() {
    since_date_fetches_only_the_mail_in_scope(IMAPS, "sync-since");
}

#[test]
fn bare_server_since_new_fetches_no_old_mail_then_exactly_what_arrives() {
    bare_servers();
    since_new_takes_only_mail_arriving_after_the_first_sync(BARE_IMAPS, "sync-bare-new");
}

#[test]
fn bare_server_since_date_is_searched_on_the_server_and_fetches_only_those_headers() {
    bare_servers();
    since_date_fetches_only_the_mail_in_scope(BARE_IMAPS, "sync-bare-since");
}

/// Plain IMAP of the bare profile (login without TLS is allowed), so a proxy can edit responses.
const BARE_IMAP_PLAIN: u16 = 2143;

/// A plain-text IMAP proxy that drops the `* OK [UIDNEXT n]` line of every SELECT, like an old
/// server that does not send it. Returns the port and how many lines it dropped.
fn no_uidnext_proxy(target: u16) -> (u16, Arc<AtomicUsize>) {
    use std::io::BufRead;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let dropped = Arc::new(AtomicUsize::new(0));
    let d2 = dropped.clone();
    std::thread::spawn(move || {
        for client in l.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (mut c_r, mut s_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_r, &mut s_w);
            });
            let d3 = d2.clone();
            std::thread::spawn(move || {
                let mut s_r = std::io::BufReader::new(server);
                let mut c_w = client;
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match s_r.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if line.starts_with(b"* OK [UIDNEXT ") {
                        d3.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    if c_w.write_all(&line).is_err() {
                        break;
                    }
                }
                let _ = c_w.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (port, dropped)
}

#[test]
fn server_without_uidnext_since_new_starts_at_the_highest_uid() {
    bare_servers();
    let user = user("sync-nouidnext");
    seed(&user, 25);
    let (port, dropped) = no_uidnext_proxy(BARE_IMAP_PLAIN);
    let home = Home::new();
    let out = home.account_add(
        "x",
        &user,
        port,
        SUBMISSION,
        &["--imap-security", "none"],
        PASSWORD,
    );
    assert!(out.status.success(), "account add failed: {}", stderr(&out));
    edit_since(&home, "x", &["--since", "new"]);
    let v = sync_once(&home, "x");
    assert!(dropped.load(Ordering::SeqCst) > 0, "the proxy hid UIDNEXT");
    assert_eq!(folder_summary(&v, "INBOX")["new"], 0, "{v}");
    // The start was the highest UID (UID FETCH *): only the next message is new.
    smtp_send(&user, &user, "after a start without UIDNEXT", "x");
    wait_for("delivery", Duration::from_secs(10), || {
        (server_flags(&user, "INBOX").len() == 26).then_some(())
    });
    let v = sync_once(&home, "x");
    assert_eq!(folder_summary(&v, "INBOX")["new"], 1, "{v}");
    assert_eq!(stored_uids(&home, "x"), HashSet::from([26]));
}

#[test]
fn uidvalidity_reset_under_since_new_keeps_what_the_cache_had() {
    let user = user("sync-new-uidv");
    seed(&user, 30);
    let home = Home::new();
    home.add_account("w", &user);
    edit_since(&home, "w", &["--since", "new"]);
    sync_once(&home, "w");
    smtp_send(&user, &user, "kept across the reset", "x");
    wait_for("delivery", Duration::from_secs(10), || {
        (server_flags(&user, "INBOX").len() == 31).then_some(())
    });
    sync_once(&home, "w");
    let before = all_messages(&home, "w", Some("INBOX"));
    assert_eq!(before.len(), 1);
    let id = before[0]["id"].clone();
    let out = doveadm(&[
        "mailbox",
        "update",
        "-u",
        &user,
        "--uid-validity",
        "4242",
        "INBOX",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The rebuild fetches from the day of the oldest message the cache held, not nothing
    // (which would empty the folder) and not the whole history.
    let times = received_times(&user, "INBOX");
    let (_, arrived) = *times.iter().find(|(u, _)| *u == 31).unwrap();
    let day = chrono::DateTime::from_timestamp(arrived, 0)
        .unwrap()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    let expected: HashSet<u32> = times
        .iter()
        .filter(|(_, t)| *t >= day)
        .map(|(u, _)| *u)
        .collect();
    assert!(
        expected.contains(&31) && expected.len() < 31,
        "{expected:?}"
    );
    sync_once(&home, "w");
    let after = all_messages(&home, "w", Some("INBOX"));
    assert_eq!(stored_uids(&home, "w"), expected);
    let kept = after
        .iter()
        .find(|m| m["subject"] == "kept across the reset")
        .expect("the message the cache had is still there");
    assert_eq!(kept["id"], id, "it kept its local id");
    assert_eq!(kept["locations"][0]["uidvalidity"], 4242);
    // And from then on only new mail again.
    let v = sync_once(&home, "w");
    assert_eq!(folder_summary(&v, "INBOX")["new"], 0, "{v}");
}

#[test]
fn cut_during_a_date_scoped_first_sync_resumes_within_the_scope() {
    let user = user("sync-since-cut");
    seed(&user, 1500);
    let times = received_times(&user, "INBOX");
    let mut sorted: Vec<i64> = times.iter().map(|(_, t)| *t).collect();
    sorted.sort_unstable();
    let date = chrono::DateTime::from_timestamp(sorted[750], 0)
        .unwrap()
        .date_naive();
    let cutoff = date.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    let expected: HashSet<u32> = times
        .iter()
        .filter(|(_, t)| *t >= cutoff)
        .map(|(u, _)| *u)
        .collect();
    let (port, conns) = cutting_proxy(IMAPS, 100_000);
    let home = Home::new();
    account_for(&home, "c", &user, port);
    home.set_account_option("c", "sync.batch_size", toml_edit::value(50));
    home.set_account_option("c", "sync.body_prefetch_max_bytes", toml_edit::value(0));
    edit_since(
        &home,
        "c",
        &["--since", &date.format("%Y-%m-%d").to_string()],
    );
    let (code, v) = home.json(&["sync", "c", "--once"]);
    assert_eq!(code, 1, "the cut must fail the pass: {v}");
    let partial = stored_uids(&home, "c");
    assert!(
        !partial.is_empty() && partial.len() < expected.len(),
        "the cut came at the wrong time to test anything ({} of {})",
        partial.len(),
        expected.len()
    );
    assert!(partial.is_subset(&expected));
    let v = sync_once(&home, "c");
    assert!(conns.load(Ordering::SeqCst) >= 2);
    assert_eq!(
        folder_summary(&v, "INBOX")["new"].as_u64().unwrap() as usize,
        expected.len() - partial.len(),
        "{v}"
    );
    assert_eq!(
        stored_uids(&home, "c"),
        expected,
        "no gaps, nothing out of scope"
    );
}

/// Message-IDs of every message in a folder, from the server itself (without the brackets).
fn server_message_ids(user: &str, folder: &str) -> Vec<String> {
    server_fetch(user, folder, &["hdr.message-id"])
        .into_iter()
        .map(|m| m[0].trim_matches(|c| c == '<' || c == '>').to_string())
        .collect()
}

#[test]
fn full_disk_fails_the_sync_with_the_fix_and_the_next_run_loses_nothing() {
    if sqlite_file_only("a full disk under the database") {
        return;
    }
    const SEEDED: usize = 3000;
    let user = user("sync-diskfull");
    seed(&user, SEEDED);
    let home = Home::new();
    // Measured: a first header sync of this mailbox ends with a 3.4 MB database and peaks at
    // ~8.9 MB with its WAL (config, key and the empty database take 0.4 MB). 3 MiB (~35 % of
    // the peak) cannot hold the end result whatever the checkpoint timing, so the disk always
    // runs full part-way; at 4–5 MiB it sometimes did not. Declared after `home`, so it is
    // unmounted before the temporary directory goes.
    let disk = Tmpfs::mount(home.path(), 3 * 1024);
    home.add_account("f", &user);
    // Several commits before the disk runs full, so committed batches must survive it.
    home.set_account_option("f", "sync.batch_size", toml_edit::value(500));
    // Headers only: bodies would make where the disk runs full depend on timing.
    home.set_account_option("f", "sync.body_prefetch_max_bytes", toml_edit::value(0));
    // The debug log is written to the same full disk.
    let out = home
        .cmd()
        .args(["--json", "sync", "f", "--once"])
        .env("MAILROOM_LOG", "mailroom=debug")
        .output()
        .unwrap();
    let err_text = stderr(&out);
    let v: Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {out:?}"));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a full disk fails the sync: {v}"
    );
    assert!(!err_text.contains("panicked"), "{err_text}");
    assert_eq!(v["error"]["summary"], "the disk is full", "{v}");
    assert!(
        v["error"]["fix"]
            .as_str()
            .unwrap_or("")
            .starts_with("free some disk space"),
        "{v}"
    );
    // Reading a full disk works: status and the messages stored so far.
    // Whether or not the full disk let the failure be recorded, status does not claim a
    // healthy account that is still syncing.
    let (code, st) = home.json(&["status"]);
    assert_eq!(
        code, 1,
        "status reads a full disk and says the account is degraded: {st}"
    );
    let acc = &st["accounts"][0];
    assert_eq!(acc["state"], "degraded", "{st}");
    assert!(
        acc["last_error"]["fix"].as_str().unwrap().contains("disk"),
        "{st}"
    );
    let partial = all_messages(&home, "f", None).len();
    assert!(
        partial < SEEDED,
        "the disk ran full too late to test anything ({partial} stored)"
    );

    disk.resize(64 * 1024);
    let v = sync_once(&home, "f");
    assert_eq!(
        folder_summary(&v, "INBOX")["new"].as_u64().unwrap() as usize,
        SEEDED - partial,
        "resumed after the last commit: {v}"
    );
    let msgs = all_messages(&home, "f", None);
    assert_eq!(msgs.len(), SEEDED);
    assert_unique_uids(&msgs);
    // Every seeded message exactly once, by Message-ID.
    let mut server_ids = server_message_ids(&user, "INBOX");
    let mut local_ids: Vec<String> = msgs
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect();
    server_ids.sort();
    local_ids.sort();
    assert_eq!(server_ids.len(), SEEDED);
    assert_eq!(
        local_ids, server_ids,
        "stored Message-IDs differ from the server's"
    );
    // Flags agree with the server, message by message.
    let server = server_flags(&user, "INBOX");
    assert_flags_match(&msgs, &server);
    let top = server.iter().map(|(u, _)| *u).max().unwrap();
    let db = home.db();
    let (cp, locations, distinct): (i64, i64, i64) = db.row(
        "SELECT (SELECT checkpoint_uid FROM folders WHERE name = 'INBOX'),
                (SELECT COUNT(*) FROM locations),
                (SELECT COUNT(DISTINCT uid) FROM locations)",
        &[],
    );
    assert_eq!(cp, top as i64, "the checkpoint is the highest UID");
    assert_eq!((locations, distinct), (SEEDED as i64, SEEDED as i64));
    let check: String = db.value("PRAGMA integrity_check", &[]);
    assert_eq!(check, "ok");
    // The WAL written around the full disk can be copied back completely.
    let (busy, _, _): (i64, i64, i64) = db.row("PRAGMA wal_checkpoint(TRUNCATE)", &[]);
    assert_eq!(busy, 0, "the WAL cannot be checkpointed");
}

#[test]
fn a_damaged_cache_changes_nothing_on_the_server_and_the_documented_fix_rebuilds_it() {
    if sqlite_file_only("a damaged database file") {
        return;
    }
    let user = user("sync-damaged");
    seed(&user, 40);
    let home = Home::new();
    account_for(&home, "d", &user, IMAPS);
    sync_once(&home, "d");
    let before = server_flags(&user, "INBOX");
    assert_eq!(before.len(), 40);

    // Scribble over the file's header, as a failing disk might.
    let db = home.path().join("mailroom.db");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..100].fill(0x5a);
    std::fs::write(&db, &bytes).unwrap();
    let _ = std::fs::remove_file(home.path().join("mailroom.db-wal"));
    let _ = std::fs::remove_file(home.path().join("mailroom.db-shm"));
    let out = home.run(&["sync", "d", "--once"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("is damaged") && err.contains("move"), "{err}");
    assert_eq!(
        server_flags(&user, "INBOX"),
        before,
        "the server is untouched"
    );

    // The fix as the message and docs/troubleshooting.md give it.
    std::fs::rename(&db, home.path().join("mailroom.db.broken")).unwrap();
    let out = home.run(&["sync", "d", "--once"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("set-password"), "{}", stderr(&out));
    let out = home.run_stdin(
        &["account", "set-password", "d", "--password-stdin"],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v = sync_once(&home, "d");
    assert_eq!(folder_summary(&v, "INBOX")["new"], 40, "{v}");
    assert_eq!(server_flags(&user, "INBOX"), before);
}
