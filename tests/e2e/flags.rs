//! Issue 13: flags live on each copy of a message. One logical message with three copies (two
//! UIDs in INBOX, one in Archive) flagged differently on the server: `messages --json` shows
//! each copy's own flags beside their union, `message flag` says which copies it changes
//! (every copy by default, or one folder's with --folder), and neither a flag change nor a
//! sync, nor a rebuilt folder, ever carries a flag from one copy to another. The server's side
//! is read with doveadm.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::common::*;
use super::send::user;

/// Saves `raw` into `folder` of `user` on the server, as another client would.
fn save(user: &str, folder: &str, raw: &str) {
    let mut child = Command::new(repo().join("scripts/mailserver"))
        .args(["doveadm", "save", "-u", user, "-m", folder])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "doveadm save: {}", stderr(&out));
}

fn doveadm_ok(args: &[&str]) {
    let out = doveadm(args);
    assert!(out.status.success(), "doveadm {args:?}: {}", stderr(&out));
}

/// (folder, uid, sorted flags) of every copy of `mid` on the server (\Recent aside: it is per
/// session).
fn server_copies(user: &str, mid: &str) -> Vec<(String, u32, Vec<String>)> {
    let mut out = Vec::new();
    for folder in ["INBOX", "Archive"] {
        for r in server_fetch(user, folder, &["uid", "flags", "hdr.message-id"]) {
            if r[2] != format!("<{mid}>") {
                continue;
            }
            let mut flags: Vec<String> = r[1]
                .split_whitespace()
                .filter(|f| *f != "\\Recent")
                .map(str::to_string)
                .collect();
            flags.sort();
            out.push((folder.to_string(), r[0].parse().unwrap(), flags));
        }
    }
    out.sort();
    out
}

/// The message as `messages --json` lists it: its union of flags and its copies'
/// (folder, uid, flags).
type Listed = (Vec<String>, Vec<(String, u32, Vec<String>)>);

fn listed(home: &Home, mid: &str) -> Listed {
    let (code, v) = home.json(&["messages", "f", "--limit", "1000"]);
    assert_eq!(code, 0, "{v}");
    let ours: Vec<&serde_json::Value> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["message_id"] == mid)
        .collect();
    assert_eq!(ours.len(), 1, "one logical message: {v}");
    let strings = |a: &serde_json::Value| -> Vec<String> {
        a.as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect()
    };
    let mut copies: Vec<(String, u32, Vec<String>)> = ours[0]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let mut f = strings(&l["flags"]);
            f.sort();
            (
                l["folder"].as_str().unwrap().to_string(),
                l["uid"].as_u64().unwrap() as u32,
                f,
            )
        })
        .collect();
    copies.sort();
    (strings(&ours[0]["flags"]), copies)
}

fn flags(f: &[&str]) -> Vec<String> {
    f.iter().map(|s| s.to_string()).collect()
}

/// The cache and the server agree on every copy's own flags, and the message's flags are
/// their union.
fn assert_copies(home: &Home, user: &str, mid: &str, want: &[(&str, u32, &[&str])]) {
    let want: Vec<(String, u32, Vec<String>)> = want
        .iter()
        .map(|(f, u, fl)| (f.to_string(), *u, flags(fl)))
        .collect();
    assert_eq!(server_copies(user, mid), want, "the server's copies");
    let (union, copies) = listed(home, mid);
    assert_eq!(copies, want, "the cached copies");
    let mut all: Vec<String> = want.iter().flat_map(|(_, _, f)| f.clone()).collect();
    all.sort();
    all.dedup();
    assert_eq!(
        union, all,
        "the message's flags are the union of its copies'"
    );
}

fn sync(home: &Home) {
    let (code, v) = home.json(&["sync", "f", "--once"]);
    assert_eq!(code, 0, "{v}");
}

#[test]
fn each_copy_keeps_its_own_flags_through_flag_changes_syncs_and_a_rebuild() {
    let u = user("flags-copies");
    let mid = format!("copies-{}@example.test", std::process::id());
    save(
        &u,
        "INBOX",
        &format!(
            "Message-ID: <{mid}>\r\nDate: Mon, 02 Feb 2026 10:00:00 +0000\r\nFrom: Carol <carol@example.org>\r\nTo: {u}\r\nSubject: one message, three copies\r\n\r\nhello\r\n"
        ),
    );
    // Another client copies it into Archive and once more into INBOX (two UIDs in one
    // folder), then flags the copies differently.
    doveadm_ok(&["copy", "-u", &u, "Archive", "mailbox", "INBOX", "uid", "1"]);
    doveadm_ok(&["copy", "-u", &u, "INBOX", "mailbox", "INBOX", "uid", "1"]);
    doveadm_ok(&[
        "flags", "add", "-u", &u, "\\Seen", "mailbox", "INBOX", "uid", "1",
    ]);
    doveadm_ok(&[
        "flags",
        "add",
        "-u",
        &u,
        "\\Flagged",
        "mailbox",
        "Archive",
        "uid",
        "1",
    ]);
    let home = Home::new();
    home.add_account("f", &u);
    let (code, v) = home.json(&["folders", "f", "--sync", "INBOX,Sent,Archive"]);
    assert_eq!(code, 0, "{v}");
    sync(&home);
    assert_copies(
        &home,
        &u,
        &mid,
        &[
            ("Archive", 1, &["\\Flagged"]),
            ("INBOX", 1, &["\\Seen"]),
            ("INBOX", 2, &[]),
        ],
    );
    let (_, v) = home.json(&["messages", "f", "--limit", "1000"]);
    let id = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == mid.as_str())
        .unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();

    // One folder's copy: says which copy changed and which were left; nothing else moves.
    let out = home.run(&["message", "flag", &id, "--seen", "--folder", "Archive"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("changed 1 copy"), "{text}");
    assert!(
        text.contains("f/Archive (uid 1): \\Flagged \\Seen"),
        "{text}"
    );
    let left = text.split("left as they are:").nth(1).unwrap_or_default();
    assert!(
        left.contains("f/INBOX (uid 1): \\Seen") && left.contains("f/INBOX (uid 2): (no flags)"),
        "{text}"
    );
    let want: &[(&str, u32, &[&str])] = &[
        ("Archive", 1, &["\\Flagged", "\\Seen"]),
        ("INBOX", 1, &["\\Seen"]),
        ("INBOX", 2, &[]),
    ];
    assert_copies(&home, &u, &mid, want);
    sync(&home);
    assert_copies(&home, &u, &mid, want);

    // The default: every copy, each keeping its other flags (JSON lists them).
    let (code, r) = home.json(&["message", "flag", &id, "--unflagged"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["changed"].as_array().unwrap().len(), 3, "{r}");
    assert_eq!(r["unchanged"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["pushed"], true, "{r}");
    let want: &[(&str, u32, &[&str])] = &[
        ("Archive", 1, &["\\Seen"]),
        ("INBOX", 1, &["\\Seen"]),
        ("INBOX", 2, &[]),
    ];
    assert_copies(&home, &u, &mid, want);
    assert_eq!(r["flags"], serde_json::json!(["\\Seen"]), "{r}");

    // Another client flags one INBOX copy: only that one, after a sync.
    doveadm_ok(&[
        "flags",
        "add",
        "-u",
        &u,
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "2",
    ]);
    sync(&home);
    let want: &[(&str, u32, &[&str])] = &[
        ("Archive", 1, &["\\Seen"]),
        ("INBOX", 1, &["\\Seen"]),
        ("INBOX", 2, &["\\Flagged"]),
    ];
    assert_copies(&home, &u, &mid, want);

    // A rebuilt folder (UIDVALIDITY changed on the server) brings its copies back with their
    // own flags, and the others keep theirs.
    doveadm_ok(&[
        "mailbox",
        "update",
        "-u",
        &u,
        "--uid-validity",
        "4242",
        "Archive",
    ]);
    wait_for("the rebuild to settle", Duration::from_secs(30), || {
        sync(&home);
        (listed(&home, &mid).1.len() == 3).then_some(())
    });
    assert_copies(&home, &u, &mid, want);
    let (_, v) = home.json(&["messages", "f", "--limit", "1000"]);
    let archive = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == mid.as_str())
        .unwrap()["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["folder"] == "Archive")
        .cloned()
        .unwrap();
    assert_eq!(archive["uidvalidity"], 4242, "{archive}");

    // A folder without a copy is refused with the copies there are.
    let (code, e) = home.json(&["message", "flag", &id, "--seen", "--folder", "Sent"]);
    assert_eq!(code, 64, "{e}");
    let fix = e["error"]["fix"].as_str().unwrap();
    for copy in ["f/INBOX (uid 1)", "f/INBOX (uid 2)", "f/Archive (uid 1)"] {
        assert!(fix.contains(copy), "{e}");
    }
    assert_copies(&home, &u, &mid, want);
}
