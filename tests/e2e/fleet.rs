//! Daemons across hosts (issue 18): several homes on one PostgreSQL database are several hosts
//! (each home its own host id); their daemons share the accounts by lease, take over the
//! accounts of one killed with -9, keep within their capacity and say what waits.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::common::*;

/// The lease time of these tests: short, so a takeover is quick.
const LEASE: &str = "4";

/// Homes on `a`'s database (its config.toml: the store URL) with the installation's key: one
/// host each; the accounts are the shared settings in the database.
fn hosts(a: &Home, n: usize) -> Vec<Home> {
    (0..n)
        .map(|_| {
            let dir = tempfile::tempdir().expect("tempdir");
            for f in ["config.toml", "key"] {
                std::fs::copy(a.path().join(f), dir.path().join(f)).expect("copy the home's file");
            }
            Home { dir, pg: None }
        })
        .collect()
}

/// `mailroom daemon --lease-secs 4 EXTRA` on `home`, its stderr kept in the home for a failure.
fn daemon(home: &Home, extra: &[&str]) -> Daemon {
    let log = std::fs::File::create(home.path().join("daemon.log")).expect("log file");
    let child = home
        .cmd()
        .args(["daemon", "--lease-secs", LEASE])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the daemon starts");
    Daemon(child)
}

/// The host id a home's processes go by (made by its first command).
fn host_id(home: &Home) -> String {
    wait_for("the home's host id", Duration::from_secs(10), || {
        std::fs::read_to_string(home.path().join("host-id"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
}

/// `status --json`'s accounts by name.
fn accounts(home: &Home) -> BTreeMap<String, serde_json::Value> {
    let (_, v) = home.json(&["status"]);
    v["accounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| (x["name"].as_str().unwrap_or("").to_string(), x.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn holder(a: &serde_json::Value) -> Option<String> {
    a["synced_by"]["host_id"].as_str().map(str::to_string)
}

/// Accounts held per host id.
fn spread(st: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for a in st.values() {
        if let Some(h) = holder(a) {
            *by.entry(h).or_insert(0) += 1;
        }
    }
    by
}

/// Adds `n` accounts `{prefix}0..` on fresh mailboxes seeded with `seeded` messages each.
fn accounts_on(home: &Home, prefix: &str, n: usize, seeded: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let user = new_user(&format!("fleet-{prefix}{i}"));
            seed(&user, seeded);
            let name = format!("{prefix}{i}");
            home.add_account(&name, &user);
            home.set_account_option(&name, "sync.poll_secs", toml_edit::value(2));
            (name, user)
        })
        .collect()
}

/// The Message-IDs per UID of a folder in the cache.
fn cached(home: &Home, name: &str, folder: &str) -> BTreeSet<(i64, String)> {
    home.db()
        .rows::<(i64, String)>(
            "SELECT l.uid, COALESCE(m.message_id, '') FROM locations l
               JOIN messages m ON m.id = l.message_id
               JOIN folders f ON f.id = l.folder_id
               JOIN accounts a ON a.id = l.account_id
             WHERE a.name = ?1 AND f.name = ?2",
            args![name, folder],
        )
        .into_iter()
        .collect()
}

fn has_subject(home: &Home, name: &str, subject: &str) -> bool {
    home.db().count(
        "SELECT COUNT(*) FROM messages m JOIN locations l ON l.message_id = m.id
           JOIN accounts a ON a.id = l.account_id WHERE a.name = ?1 AND m.subject = ?2",
        args![name, subject],
    ) > 0
}

/// The same as the server lists it.
fn on_server(user: &str, folder: &str) -> BTreeSet<(i64, String)> {
    server_fetch(user, folder, &["uid", "hdr.message-id"])
        .into_iter()
        .map(|r| {
            let id = r[1].trim().trim_start_matches('<').trim_end_matches('>');
            (r[0].parse().unwrap_or(-1), id.to_string())
        })
        .collect()
}

/// How many copies of a Message-ID a mailbox's INBOX holds.
fn delivered(user: &str, message_id: &str) -> usize {
    let out = doveadm(&[
        "search",
        "-u",
        user,
        "mailbox",
        "INBOX",
        "header",
        "message-id",
        message_id,
    ]);
    stdout(&out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Queues a message from `account` to `to`; returns its Message-ID.
fn queue(home: &Home, account: &str, to: &str, subject: &str) -> String {
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
            "--queue-only",
        ],
        "queued before the kill\n",
    );
    assert!(out.status.success(), "send --queue-only: {}", stderr(&out));
    let item: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    item["message_id"].as_str().expect("message_id").to_string()
}

fn outbox_states(home: &Home) -> BTreeMap<String, String> {
    let (_, v) = home.json(&["outbox"]);
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        i["message_id"].as_str().unwrap_or("").to_string(),
                        i["state"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn logs(homes: &[&Home]) -> String {
    homes
        .iter()
        .map(|h| std::fs::read_to_string(h.path().join("daemon.log")).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[test]
fn three_daemons_share_the_accounts_and_take_over_from_one_killed() {
    let Some(a) = Home::on_postgres() else {
        eprintln!("skipped: needs MAILROOM_TEST_PG_URL");
        return;
    };
    let rcpt = new_user("fleet-rcpt");
    let accts = accounts_on(&a, "t", 6, 20);
    let mut doc: toml_edit::DocumentMut = a.settings_text().parse().unwrap();
    doc["general"]["outbox_poll_secs"] = toml_edit::value(1);
    a.write_settings(&doc.to_string());
    let others = hosts(&a, 2);
    let (b, c) = (&others[0], &others[1]);
    // Started one after another: none ends up holding everything.
    let _da = daemon(&a, &[]);
    let mut db = daemon(b, &[]);
    let _dc = daemon(c, &[]);
    let ids = [host_id(&a), host_id(b), host_id(c)];
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 3, "three hosts");
    let st = wait_for(
        "every account synced, two per daemon",
        Duration::from_secs(90),
        || {
            let st = accounts(&a);
            let synced = st.values().all(|x| x["counts"]["messages"] == 20);
            let even = spread(&st).values().filter(|n| **n == 2).count() == 3;
            (synced && even).then_some(st)
        },
    );
    let victims: Vec<&(String, String)> = accts
        .iter()
        .filter(|(n, _)| holder(&st[n]).as_deref() == Some(ids[1].as_str()))
        .collect();
    assert_eq!(victims.len(), 2, "{st:?}");

    // Mail queued for the victim's accounts, then the victim is killed without a word.
    let mut queued = Vec::new();
    for (name, _) in &victims {
        for k in 0..3 {
            queued.push(queue(&a, name, &rcpt, &format!("{name} queued {k}")));
        }
    }
    db.0.kill().expect("kill -9");
    let _ = db.0.wait();
    let killed = Instant::now();
    for (name, user) in &victims {
        smtp_send(&rcpt, user, &format!("{name} after the kill"), "resumed?");
    }

    // Within 40 s the other daemons hold the accounts and have fetched the new mail.
    wait_for(
        "the killed daemon's accounts resumed elsewhere",
        Duration::from_secs(40),
        || {
            let st = accounts(&a);
            victims
                .iter()
                .all(|(n, _)| {
                    let held = holder(&st[n]).is_some_and(|h| h != ids[1]);
                    held && has_subject(&a, n, &format!("{n} after the kill"))
                })
                .then_some(())
        },
    );
    eprintln!("taken over in {:?}", killed.elapsed());
    let st = accounts(&a);
    assert!(
        !spread(&st).contains_key(&ids[1]),
        "nothing left on the dead host: {st:?}"
    );

    // Every queued item ends sent (once) or, caught mid-DATA, uncertain (at most once).
    let states = wait_for(
        "every queued message handled",
        Duration::from_secs(60),
        || {
            let s = outbox_states(&a);
            queued
                .iter()
                .all(|m| {
                    matches!(
                        s.get(m).map(String::as_str),
                        Some("sent" | "copied" | "verified" | "uncertain")
                    )
                })
                .then_some(s)
        },
    );
    for m in &queued {
        if states[m] == "uncertain" {
            assert!(delivered(&rcpt, m) <= 1, "{m} delivered twice");
        } else {
            wait_for("delivery", Duration::from_secs(30), || {
                (delivered(&rcpt, m) >= 1).then_some(())
            });
            assert_eq!(delivered(&rcpt, m), 1, "{m}: exactly once");
        }
    }

    // Every cache equals its server, folder by folder (the Sent copies included).
    for (name, user) in &accts {
        for folder in ["INBOX", "Sent"] {
            wait_for(
                &format!("{name}/{folder} cached as on the server"),
                Duration::from_secs(60),
                || (cached(&a, name, folder) == on_server(user, folder)).then_some(()),
            );
        }
    }
}

#[test]
fn accounts_beyond_capacity_wait_for_a_slot_until_a_daemon_joins() {
    let Some(a) = Home::on_postgres() else {
        eprintln!("skipped: needs MAILROOM_TEST_PG_URL");
        return;
    };
    let accts = accounts_on(&a, "c", 4, 5);
    let b = hosts(&a, 1).remove(0);
    let _da = daemon(&a, &["--max-accounts", "2"]);
    let ida = host_id(&a);
    wait_for(
        "two synced, two waiting for a sync slot",
        Duration::from_secs(40),
        || {
            let st = accounts(&a);
            let synced = st
                .values()
                .filter(|x| holder(x).as_deref() == Some(ida.as_str()))
                .filter(|x| x["counts"]["messages"] == 5)
                .count();
            let waiting = st
                .values()
                .filter(|x| x["state"] == "pending" && x["waiting"] == "waiting for a sync slot")
                .filter(|x| x["synced_by"].is_null())
                .count();
            (synced == 2 && waiting == 2).then_some(())
        },
    );
    let out = a.run(&["status"]);
    assert!(
        stdout(&out).contains("waiting for a sync slot"),
        "{}",
        stdout(&out)
    );

    let mut db = daemon(&b, &[]);
    let idb = host_id(&b);
    let st = wait_for(
        "all four synced once a daemon joined",
        Duration::from_secs(40),
        || {
            let st = accounts(&a);
            let all = accts
                .iter()
                .all(|(n, _)| st[n]["counts"]["messages"] == 5 && holder(&st[n]).is_some());
            (all && st.values().all(|x| x["waiting"].is_null())).then_some(st)
        },
    );
    assert!(spread(&st)[&ida] <= 2, "within its capacity: {st:?}");
    assert!(spread(&st)[&idb] >= 2, "{st:?}");

    // A clean exit lets go at once: no lease of that host is left to run out.
    let pid = db.0.id().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let _ = db.0.wait();
    let left = a.db().count(
        "SELECT COUNT(*) FROM leases WHERE holder_host_id = ?1",
        args![idb.as_str()],
    );
    assert_eq!(left, 0, "{}", logs(&[&b]));
}
