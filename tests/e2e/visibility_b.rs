//! Visibility of messages, search, send/reply and the outbox (contract: Operators). alice owns
//! `work` and shares it with carol; eve has no access: every command naming something of
//! `work` is refused to eve exactly like a missing id (one audit row, nothing else changed),
//! her lists leave `work` out, and alice and carol read and act on its mail — in the CLI and in
//! the console's panes alike.

use std::time::Duration;

use crate::common::*;
use crate::team::{Team, team};

/// A word of the subject of one of alice's messages (what a search finds).
fn subject_word(t: &Team, id: i64) -> String {
    let (code, v) = t.json_as("alice", &["message", "show", &id.to_string()]);
    assert_eq!(code, 0, "{v}");
    v["message"]["subject"]
        .as_str()
        .expect("a subject")
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| w.len() >= 4)
        .expect("a word of four letters or more")
        .to_string()
}

fn search_ids(t: &Team, op: &str, word: &str) -> Vec<i64> {
    let (code, v) = t.json_as(op, &["search", word]);
    assert_eq!(code, 0, "{op}: {v}");
    v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect()
}

fn outbox_ids(t: &Team, op: &str) -> Vec<i64> {
    let (code, v) = t.json_as(op, &["outbox"]);
    assert_eq!(code, 0, "{op}: {v}");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect()
}

/// `op` queues a message from `work` (nothing goes on the wire); its outbox id.
fn queue(t: &Team, op: &str, subject: &str) -> i64 {
    let (code, v) = t.json_as(
        op,
        &[
            "send",
            "--account",
            "work",
            "--queue-only",
            "--to",
            "bob@example.test",
            "--subject",
            subject,
        ],
    );
    assert_eq!(code, 0, "{op}: {v}");
    assert_eq!(v["state"], "queued", "{v}");
    assert_eq!(v["account"], "work", "{v}");
    v["id"].as_i64().expect("outbox id")
}

#[test]
fn messages_search_and_sending_are_refused_to_a_stranger_like_missing_ids() {
    let t = team();
    let ids = t.message_ids();
    let id = ids[0].to_string();
    let word = subject_word(&t, ids[0]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.bin");
    let path = path.to_str().expect("utf-8 path");
    let missing = "999999";
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["messages", "work"], vec!["messages", "nosuch"]),
        (
            vec!["messages", "--account", "work"],
            vec!["messages", "-a", "nosuch"],
        ),
        (
            vec!["message", "show", &id],
            vec!["message", "show", missing],
        ),
        (
            vec!["message", "show", &id, "--raw"],
            vec!["message", "show", missing, "--raw"],
        ),
        (
            vec!["message", "save-attachment", &id, "0", path],
            vec!["message", "save-attachment", missing, "0", path],
        ),
        (
            vec!["message", "flag", &id, "--flagged"],
            vec!["message", "flag", missing, "--flagged"],
        ),
        (
            vec!["message", "move", &id, "Archive"],
            vec!["message", "move", missing, "Archive"],
        ),
        (
            vec!["message", "delete", &id],
            vec!["message", "delete", missing],
        ),
        (
            vec!["reply", &id, "--subject", "hi"],
            vec!["reply", missing, "--subject", "hi"],
        ),
        (
            vec!["search", &word, "--account", "work"],
            vec!["search", &word, "--account", "nosuch"],
        ),
        (
            vec![
                "send",
                "--account",
                "work",
                "--to",
                "bob@example.test",
                "--subject",
                "s",
            ],
            vec![
                "send",
                "--account",
                "nosuch",
                "--to",
                "bob@example.test",
                "--subject",
                "s",
            ],
        ),
        (
            vec![
                "send",
                "--in-reply-to",
                &id,
                "--account",
                "nosuch",
                "--subject",
                "s",
            ],
            vec![
                "send",
                "--in-reply-to",
                missing,
                "--account",
                "nosuch",
                "--subject",
                "s",
            ],
        ),
    ];
    for (hidden, missing) in &cases {
        t.assert_refused_like_missing("eve", hidden, missing);
    }
    assert!(!std::path::Path::new(path).exists(), "nothing was saved");
    // Her list leaves work's mail out; the owner and the operator it is shared with find it.
    assert!(search_ids(&t, "eve", &word).is_empty());
    for op in ["alice", "carol"] {
        let found = search_ids(&t, op, &word);
        assert!(found.contains(&ids[0]), "{op}: {found:?}");
    }
}

#[test]
fn the_outbox_of_work_is_invisible_to_a_stranger_and_shared_with_carol() {
    let t = team();
    let item = queue(&t, "alice", "from alice");
    let id = item.to_string();
    for verb in ["retry", "cancel", "resend", "drop"] {
        t.assert_refused_like_missing("eve", &["outbox", verb, &id], &["outbox", verb, "999999"]);
    }
    assert!(
        outbox_ids(&t, "eve").is_empty(),
        "eve's outbox leaves work out"
    );
    // eve's flush drives nothing of work's.
    let (code, v) = t.json_as("eve", &["outbox", "flush"]);
    assert_eq!((code, v["sent"].as_i64()), (0, Some(0)), "{v}");
    for op in ["alice", "carol"] {
        assert_eq!(outbox_ids(&t, op), vec![item], "{op}");
    }
    // carol acts on work's outbox: she queues from it and cancels alice's item.
    let hers = queue(&t, "carol", "from carol");
    let (code, v) = t.json_as("carol", &["outbox", "cancel", &id]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["state"], "cancelled", "{v}");
    // alice reaches carol's item (it is not uncertain, so there is nothing to resend).
    let out = t.run_as("alice", &["outbox", "resend", &hers.to_string()]);
    assert!(
        stderr(&out).contains("is not uncertain"),
        "{}",
        stderr(&out)
    );
    let (code, v) = t.json_as("alice", &["outbox", "cancel", &hers.to_string()]);
    assert_eq!(
        (code, &v["state"]),
        (0, &serde_json::json!("cancelled")),
        "{v}"
    );
}

#[test]
fn the_owner_and_the_shared_operator_read_and_act_on_work_mail() {
    let t = team();
    let ids = t.message_ids();
    let (a, b, c) = (ids[0].to_string(), ids[1].to_string(), ids[2].to_string());
    for op in ["alice", "carol"] {
        let (code, v) = t.json_as(op, &["messages", "work"]);
        assert_eq!(code, 0, "{op}: {v}");
        assert_eq!(v["messages"].as_array().map(Vec::len), Some(ids.len()));
        let (code, v) = t.json_as(op, &["message", "show", &a]);
        assert_eq!(code, 0, "{op}: {v}");
        assert_eq!(v["message"]["locations"][0]["account"], "work", "{v}");
    }
    let (code, v) = t.json_as("carol", &["message", "flag", &a, "--flagged"]);
    assert_eq!(code, 0, "{v}");
    assert!(
        v["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "\\Flagged"),
        "{v}"
    );
    let (code, v) = t.json_as("carol", &["message", "move", &b, "Archive"]);
    assert_eq!(
        (code, &v["folder"]),
        (0, &serde_json::json!("Archive")),
        "{v}"
    );
    let (code, v) = t.json_as("alice", &["message", "delete", &c]);
    assert_eq!(
        (code, &v["folder"]),
        (0, &serde_json::json!("Trash")),
        "{v}"
    );
    // carol replies from work (queued only: nothing leaves for the seeded senders).
    let (code, v) = t.json_as(
        "carol",
        &["reply", &a, "--queue-only", "--to", "bob@example.test"],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["account"], "work", "{v}");
    assert_eq!(v["thread_message_id"].as_i64(), Some(ids[0]), "{v}");
    // Each action is audited as the operator who took it.
    let audit = t.audit_since(0);
    for (op, action) in [
        ("carol", "message_flag"),
        ("carol", "message_move"),
        ("alice", "message_move"),
        ("carol", "outbox.queued"),
    ] {
        assert!(
            audit.iter().any(|(o, a, _)| o == op && a == action),
            "{op} {action}: {audit:?}"
        );
    }
    assert!(!audit.iter().any(|(_, a, _)| a == "refused"), "{audit:?}");
}

/// The console's panes of this group, driven in-process as eve: nothing of work's outbox, and
/// a message of work does not exist for her; alice sees both.
#[test]
fn the_console_shows_a_stranger_nothing_of_work() {
    use mailroom::tui::action::Command;
    use mailroom::tui::app::Data;
    let t = team();
    let item = queue(&t, "alice", "console");
    let message = t.message_ids()[0];
    let home = mailroom::config::Home {
        root: t.home.path().to_path_buf(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let jobs = mailroom::tui::io::Jobs::new(rt.handle().clone(), tx.clone());
    let seen = |op: &str| {
        let cx = mailroom::ops::Ctx::new(home.clone(), op);
        let mut io = mailroom::tui::io::Direct::new(&cx, jobs.clone(), tx.clone());
        let outbox = match io.execute(Command::LoadOutbox {
            generation: 1,
            offset: 0,
            limit: 50,
        }) {
            Some(Data::Outbox(p)) => p.result.expect("outbox page"),
            other => panic!("{other:?}"),
        };
        let shown = match io.execute(Command::LoadMessage {
            generation: 2,
            id: message,
        }) {
            Some(Data::Message(_, r)) => *r,
            other => panic!("{other:?}"),
        };
        (outbox, shown)
    };
    let ((total, rows), shown) = seen("eve");
    assert_eq!((total, rows.len()), (0, 0));
    let e = shown.expect_err("work's message does not exist for eve");
    assert_eq!(e.summary, "no such message visible to operator eve");
    let ((total, rows), shown) = seen("alice");
    assert_eq!(total, 1);
    assert_eq!(rows[0].id, item);
    assert_eq!(shown.expect("alice reads it").message.id, message);
    rt.shutdown_timeout(Duration::from_secs(1));
}
