//! Visibility of triage, undo, deny lists, customers, log, audit and status (issue 11, group C):
//! alice owns `work` and shares it with carol; eve may not see it. Whatever of `work` eve names
//! is refused exactly like a missing id (and audited once); her lists show nothing of it;
//! carol acts on its mail but changes none of its settings; `status` shows every account's
//! health to everyone.

use serde_json::Value;

use crate::common::*;
use crate::team::{Team, team};

/// A message id that does not exist.
const MISSING: &str = "999999";

fn ok(t: &Team, op: &str, args: &[&str]) -> Value {
    let (code, v) = t.json_as(op, args);
    assert_eq!(code, 0, "{op} {args:?}: {v}");
    v
}

/// The ids in `op`'s triage queue.
fn queue(t: &Team, op: &str) -> Vec<i64> {
    ok(t, op, &["triage", "list"])["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect()
}

fn work_id(t: &Team) -> String {
    t.home
        .db()
        .value("SELECT id FROM accounts WHERE name = 'work'", &[])
}

/// The sender of a cached message.
fn sender(t: &Team, id: i64) -> String {
    t.home
        .db()
        .value("SELECT from_addr FROM messages WHERE id = ?1", args![id])
}

#[test]
fn eve_cannot_name_works_mail_or_actions_and_carol_triages_it() {
    let t = team();
    let q = queue(&t, "alice");
    assert!(q.len() >= 4, "alice's queue: {q:?}");
    assert_eq!(queue(&t, "carol"), q, "carol sees work's queue");
    assert!(queue(&t, "eve").is_empty(), "eve sees nothing of work");
    let c = ok(&t, "alice", &["customers", "add", "--name", "Acme"]);
    let cid = c["customer"]["id"]
        .as_i64()
        .expect("customer id")
        .to_string();
    let m = q[0].to_string();

    t.assert_refused_like_missing(
        "eve",
        &["triage", "list", "--account", "work"],
        &["triage", "list", "--account", "nosuch"],
    );
    for verb in [
        &["triage", "show"][..],
        &["triage", "add-customer"],
        &["triage", "block"],
        &["triage", "block", "--domain", "--dry-run"],
        &["triage", "delete"],
    ] {
        let hidden: Vec<&str> = verb.iter().copied().chain([m.as_str()]).collect();
        let missing: Vec<&str> = verb.iter().copied().chain([MISSING]).collect();
        t.assert_refused_like_missing("eve", &hidden, &missing);
    }
    t.assert_refused_like_missing(
        "eve",
        &["triage", "pair", &m, "--customer", &cid],
        &["triage", "pair", MISSING, "--customer", &cid],
    );

    // The owner reads it; carol (shared) acts on it, and undoes it.
    let shown = ok(&t, "alice", &["triage", "show", &m]);
    assert_eq!(shown["message"]["account"], "work", "{shown}");
    let plan = ok(&t, "carol", &["triage", "block", &m, "--dry-run"]);
    assert_eq!(plan["plan"]["account"], "work", "{plan}");
    let paired = ok(&t, "carol", &["triage", "pair", &m, "--customer", &cid]);
    let action = paired["action_id"].as_i64().expect("action id").to_string();
    assert!(
        !queue(&t, "alice").contains(&q[0]),
        "paired mail left the queue"
    );

    // carol's action does not exist for eve; the owner may undo it.
    t.assert_refused_like_missing("eve", &["undo", &action], &["undo", MISSING]);
    let undone = ok(&t, "alice", &["undo", &action]);
    assert_eq!(
        undone["undone"]["action_id"].to_string(),
        action,
        "{undone}"
    );
    assert!(queue(&t, "alice").contains(&q[0]), "unpaired mail is back");

    // alice's delete: eve cannot undo it, carol can.
    let d = ok(&t, "alice", &["triage", "delete", &q[1].to_string()]);
    let action = d["action_id"].as_i64().expect("action id").to_string();
    t.assert_refused_like_missing("eve", &["undo", &action], &["undo", MISSING]);
    ok(&t, "carol", &["undo", &action]);
    assert!(
        queue(&t, "carol").contains(&q[1]),
        "the delete was withdrawn"
    );

    // carol adds a sender as a customer and blocks another: mail actions, not settings.
    let added = ok(&t, "carol", &["triage", "add-customer", &q[2].to_string()]);
    assert!(added["customer_id"].as_i64().is_some(), "{added}");
    let blocked = ok(&t, "carol", &["triage", "block", &q[3].to_string()]);
    assert_eq!(blocked["plan"]["account"], "work", "{blocked}");
    assert!(
        !queue(&t, "alice").contains(&q[3]),
        "blocked mail is hidden"
    );
    // eve's own undo finds nothing of hers; carol's undo takes the block back.
    let (code, v) = t.json_as("eve", &["undo"]);
    assert_eq!(code, 1, "{v}");
    ok(&t, "carol", &["undo"]);
    assert!(queue(&t, "alice").contains(&q[3]), "unblocked mail is back");
}

#[test]
fn a_deny_list_of_work_is_its_owners_setting() {
    let t = team();
    let added = ok(
        &t,
        "alice",
        &["deny", "add", "spam@junk.test", "--account", "work"],
    );
    assert_eq!(added["changed"], true, "{added}");
    let listed = ok(&t, "alice", &["deny", "list", "--account", "work"]).to_string();
    assert!(listed.contains("spam@junk.test"), "{listed}");

    // eve: no such account, for every deny command that names it.
    for (hidden, missing) in [
        (
            &["deny", "add", "x@junk.test", "--account", "work"][..],
            &["deny", "add", "x@junk.test", "--account", "nosuch"][..],
        ),
        (
            &["deny", "remove", "spam@junk.test", "--account", "work"],
            &["deny", "remove", "spam@junk.test", "--account", "nosuch"],
        ),
        (
            &["deny", "list", "--account", "work"],
            &["deny", "list", "--account", "nosuch"],
        ),
    ] {
        t.assert_refused_like_missing("eve", hidden, missing);
    }
    let all = ok(&t, "eve", &["deny", "list"]).to_string();
    assert!(!all.contains("spam@junk.test"), "{all}");

    // carol: she may act on work's mail, but its deny list is a setting.
    for args in [
        &["deny", "add", "x@junk.test", "--account", "work"][..],
        &["deny", "remove", "spam@junk.test", "--account", "work"],
        &["deny", "list", "--account", "work"],
    ] {
        let before = t.sums();
        let out = t.run_as("carol", args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("may not change the settings of account work"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        let mut after = t.sums();
        let mut before = before;
        after.remove("audit");
        before.remove("audit");
        assert_eq!(after, before, "{args:?} changed a table");
    }
    let all = ok(&t, "carol", &["deny", "list"]).to_string();
    assert!(!all.contains("spam@junk.test"), "{all}");
    let config = t.home.settings_text();
    assert!(!config.contains("x@junk.test"), "{config}");

    // The global list is everyone's, as before; the owner removes her entry.
    ok(&t, "eve", &["deny", "add", "global@junk.test", "--global"]);
    ok(
        &t,
        "alice",
        &["deny", "remove", "spam@junk.test", "--account", "work"],
    );
    let listed = ok(&t, "alice", &["deny", "list"]).to_string();
    assert!(
        listed.contains("global@junk.test") && !listed.contains("spam@junk.test"),
        "{listed}"
    );
}

#[test]
fn eve_sees_no_timeline_log_or_audit_of_work_but_its_health() {
    let t = team();
    let work = work_id(&t);
    let q = queue(&t, "alice");
    let from = sender(&t, q[0]);
    let c = ok(
        &t,
        "alice",
        &["customers", "add", "--name", "Known", "--email", &from],
    );
    let cid = c["customer"]["id"].as_i64().expect("id").to_string();

    // The book is shared; the timeline shows only mail eve may see.
    let timeline = |op: &str| {
        ok(&t, op, &["customers", "show", &cid])["customer"]["timeline"]
            .as_array()
            .expect("timeline")
            .len()
    };
    assert!(timeline("alice") > 0);
    assert!(timeline("carol") > 0);
    assert_eq!(timeline("eve"), 0);
    let book = ok(&t, "eve", &["customers", "list"]).to_string();
    assert!(book.contains("Known"), "{book}");

    // An event about work, and one about nothing in particular.
    t.home.db().exec(
        "INSERT INTO events (at, account_id, level, what) VALUES ('2026-01-01T00:00:00Z', ?1, 'error', 'work login failed'),
                                                              ('2026-01-01T00:00:01Z', NULL, 'error', 'disk nearly full')",
        args![work],
    );
    let log = |op: &str| ok(&t, op, &["log", "--level", "debug"]).to_string();
    assert!(log("alice").contains("work login failed"));
    assert!(log("carol").contains("work login failed"));
    let eve_log = log("eve");
    assert!(!eve_log.contains("work login failed"), "{eve_log}");
    assert!(!eve_log.contains(&work), "{eve_log}");
    assert!(eve_log.contains("disk nearly full"), "{eve_log}");

    // eve's refusal is audited against work: its owner reads it, eve does not.
    let (code, _) = t.json_as("eve", &["triage", "show", &q[0].to_string()]);
    assert_eq!(code, 1);
    let audit = |op: &str| ok(&t, op, &["audit"]);
    let rows = audit("alice");
    assert!(
        rows["audit"]
            .as_array()
            .expect("audit")
            .iter()
            .any(|r| r["operator"] == "eve" && r["action"] == "refused"),
        "{rows}"
    );
    let eve_audit = audit("eve");
    let eve_rows = eve_audit["audit"].as_array().expect("audit");
    assert!(
        eve_rows.iter().all(|r| r["account_id"] != work.as_str()),
        "{eve_audit}"
    );
    assert!(
        eve_rows.iter().any(|r| r["action"] == "customers.add"),
        "rows about no account are everyone's: {eve_audit}"
    );

    // status: every account's health, to every operator (no mail in it).
    for op in ["alice", "carol", "eve"] {
        let (code, st) = t.json_as(op, &["status"]);
        assert!(code <= 1, "{op}: {st}");
        let accounts = st["accounts"].as_array().expect("accounts");
        assert_eq!(accounts.len(), 1, "{op}: {st}");
        assert_eq!(accounts[0]["name"], "work", "{op}: {st}");
        assert_eq!(accounts[0]["counts"]["messages"], 5, "{op}: {st}");
    }
}

/// The console (in-process, as its I/O thread runs it) shows eve nothing of work's mail in the
/// triage, customer and log panes; the dashboard shows work's health.
#[test]
fn the_console_shows_eve_nothing_of_works_mail() {
    use mailroom::ops::logs::EventFilter;
    use mailroom::tui::action::Command;
    use mailroom::tui::app::Data;

    let t = team();
    let work = work_id(&t);
    let q = queue(&t, "alice");
    let from = sender(&t, q[0]);
    let c = ok(
        &t,
        "alice",
        &["customers", "add", "--name", "Known", "--email", &from],
    );
    let cid = c["customer"]["id"].as_i64().expect("id");
    t.home.db().exec(
        "INSERT INTO events (at, account_id, level, what) VALUES ('2026-01-01T00:00:00Z', ?1, 'error', 'work login failed')",
        args![work],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let jobs = mailroom::tui::io::Jobs::new(rt.handle().clone(), tx.clone());
    let home = mailroom::config::Home {
        root: t.home.path().to_path_buf(),
    };
    let console = |op: &str| {
        let cx = mailroom::ops::Ctx::new(home.clone(), op);
        mailroom::tui::io::Direct::new(&cx, jobs.clone(), tx.clone())
    };
    for (op, sees) in [("alice", true), ("eve", false)] {
        let mut io = console(op);
        let triage = match io.execute(Command::LoadTriage {
            generation: 1,
            offset: 0,
            limit: 200,
            after: None,
        }) {
            Some(Data::Triage(p)) => p.result.expect("triage page"),
            other => panic!("{other:?}"),
        };
        assert_eq!(triage.0 > 0, sees, "{op}: triage total {}", triage.0);
        assert_eq!(triage.1.is_empty(), !sees, "{op}: triage rows");
        let timeline = match io.execute(Command::LoadTimeline {
            generation: 1,
            customer_id: cid,
            offset: 0,
            limit: 200,
            after: None,
        }) {
            Some(Data::Timeline(p)) => p.result.expect("timeline"),
            other => panic!("{other:?}"),
        };
        assert_eq!(timeline.0 > 0, sees, "{op}: timeline total {}", timeline.0);
        let events = match io.execute(Command::LoadEvents {
            generation: 1,
            filter: EventFilter::default(),
            offset: 0,
            limit: 200,
        }) {
            Some(Data::Events(p)) => p.result.expect("events").1,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            events
                .iter()
                .any(|e| e.account_id.as_deref() == Some(&work)),
            sees,
            "{op}: {events:?}"
        );
        match io.execute(Command::LoadDashboard) {
            Some(Data::Dashboard(Ok(status), _)) => {
                assert_eq!(status.accounts.len(), 1, "{op}: the dashboard shows work");
                assert_eq!(status.accounts[0].counts.messages, 5, "{op}");
            }
            other => panic!("{other:?}"),
        }
        // The pair picker's suggestions of a hidden message: no such message.
        match io.execute(Command::LoadSuggestions { id: q[0] }) {
            Some(Data::Suggestions(_)) => assert!(sees, "{op} got suggestions"),
            Some(Data::Notice(Err(e))) => {
                assert!(!sees, "{op}: {e:?}");
                assert_eq!(
                    e.summary,
                    format!("no such message visible to operator {op}")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
