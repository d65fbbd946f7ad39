//! Unit tests of matching and triage on rows written directly (no server).

use super::*;
use crate::config::{Config, Home};
use crate::store::{FixtureMessage, Store};

struct World {
    store: Store,
    home: Home,
    _dir: tempfile::TempDir,
    inbox: i64,
    sent: i64,
    uid: i64,
}

const ACCOUNT: &str = r#"
[accounts.work]
id = "acc-work"
email = "me@ours.test"
aliases = ["sales@ours.test"]
user = "me"
imap = { host = "h", port = 1 }
smtp = { host = "h", port = 2 }

[accounts.private]
id = "acc-priv"
email = "boss@ours.test"
owner = "boss"
user = "boss"
imap = { host = "h", port = 1 }
smtp = { host = "h", port = 2 }
"#;

/// Runs `body` on a world over each engine's store (PostgreSQL when configured).
fn each(body: impl Fn(World)) {
    body(World::new(Store::open_in_memory().unwrap()));
    if let Some(pg) = crate::store::sql::engines::PgScratch::new() {
        let url = crate::config::StoreUrl::Postgres(pg.url.clone());
        body(World::new(Store::open_url(&url).unwrap()));
    }
}

impl World {
    fn new(store: Store) -> World {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().into(),
        };
        std::fs::write(home.config_path(), ACCOUNT).unwrap();
        let inbox = store
            .fixture_folder("acc-work", "INBOX", Some("inbox"))
            .unwrap();
        let sent = store
            .fixture_folder("acc-work", "Sent", Some("sent"))
            .unwrap();
        store
            .fixture_folder("acc-work", "Trash", Some("trash"))
            .unwrap();
        World {
            store,
            home,
            _dir: dir,
            inbox,
            sent,
            uid: 0,
        }
    }
    fn config(&self) -> Config {
        Config::load(&self.home).unwrap()
    }
    fn msg(&mut self, from: &str, subject: &str, date: &str) -> FixtureMessage {
        let _ = self;
        FixtureMessage {
            message_id: Some(format!("{subject}@test")),
            from_addr: from.into(),
            to: vec!["me@ours.test".into()],
            subject: subject.into(),
            date: format!("2025-01-{date}T10:00:00Z"),
            direction: "in",
            ..Default::default()
        }
    }
    fn put(&mut self, m: FixtureMessage) -> i64 {
        self.uid += 1;
        let folder = if m.direction == "out" {
            self.sent
        } else {
            self.inbox
        };
        let id = self
            .store
            .fixture_message("acc-work", folder, self.uid, &m)
            .unwrap();
        match_messages(&self.store, &[id], &self.config()).unwrap();
        id
    }
    fn customer(&self, name: &str, emails: &[&str], domains: &[&str]) -> i64 {
        book::add(
            &self.store,
            &self.config(),
            book::CustomerInput {
                name: name.into(),
                emails: emails.iter().map(|s| s.to_string()).collect(),
                domains: domains.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        )
        .unwrap()
        .customer
        .id
    }
    fn why(&self, id: i64) -> Vec<(i64, String)> {
        let mut v: Vec<(i64, String)> = self
            .store
            .matches_of(Some(&[id]))
            .unwrap()
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .map(|m| (m.customer_id, m.rule))
            .collect();
        v.sort();
        v
    }
    fn desk(&self, operator: &'static str) -> Desk<'_> {
        let config = self.config();
        let accounts = visible_accounts(&config, operator);
        Desk::new(&self.store, &self.home, config, operator, accounts)
    }
    fn queue(&self, operator: &'static str) -> Vec<i64> {
        self.desk(operator)
            .list(None, 100, 0)
            .unwrap()
            .messages
            .iter()
            .map(|m| m.id)
            .collect()
    }
}

#[test]
fn matches_by_address_domain_idn_and_recipients() {
    each(|mut w| {
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        let acme = w.customer("ACME", &[], &["acme.test"]);
        let idn = w.customer("Müller", &["info@müller.de"], &[]);
        let m = w.msg("ANNA@Example.org", "a1", "01");
        let a1 = w.put(m);
        let m = w.msg("bob@eu.acme.test", "a2", "02");
        let a2 = w.put(m);
        let m = w.msg("info@xn--mller-kva.de", "a3", "03");
        let a3 = w.put(m);
        let mut out = w.msg("me@ours.test", "a4", "04");
        out.direction = "out";
        out.to = vec!["anna@example.org".into(), "x@acme.test".into()];
        let a4 = w.put(out);
        let m = w.msg("stranger@nowhere.test", "a5", "05");
        let a5 = w.put(m);
        assert_eq!(w.why(a1), [(anna, "address".to_string())]);
        assert_eq!(w.why(a2), [(acme, "domain".to_string())]);
        assert_eq!(w.why(a3), [(idn, "address".to_string())]);
        // Outbound mail matches its recipients by address first; the domain rule is a fallback.
        assert_eq!(w.why(a4), [(anna, "address".to_string())]);
        assert!(w.why(a5).is_empty());
        assert_eq!(w.queue("tester"), [a5]);
        // The timeline explains each match.
        let tl = w.store.timeline(anna, &["acc-work".into()]).unwrap();
        assert_eq!(tl.iter().map(|t| t.id).collect::<Vec<_>>(), [a1, a4]);
        assert_eq!(tl[0].detail.as_deref(), Some("sender anna@example.org"));
    });
}

#[test]
fn plus_folding_is_a_setting() {
    each(|mut w| {
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        let m = w.msg("anna+news@example.org", "p1", "01");
        let p1 = w.put(m);
        assert!(w.why(p1).is_empty());
        std::fs::write(
            w.home.config_path(),
            format!("[general]\nfold_plus_addresses = true\n{ACCOUNT}"),
        )
        .unwrap();
        rematch_all(&w.store, &w.config()).unwrap();
        assert_eq!(w.why(p1), [(anna, "address".to_string())]);
    });
}

#[test]
fn thread_rule_pairs_only_participants() {
    each(|mut w| {
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        let m = w.msg("anna@example.org", "t1", "01");
        let t1 = w.put(m);
        // Anna's colleague, copied on our reply, answers in the thread: a participant.
        let mut reply = w.msg("me@ours.test", "t2", "02");
        reply.direction = "out";
        reply.to = vec!["anna@example.org".into()];
        reply.cc = vec!["colleague@other.test".into()];
        reply.in_reply_to = Some("t1@test".into());
        let t2 = w.put(reply);
        let mut c = w.msg("colleague@other.test", "t3", "03");
        c.in_reply_to = Some("t2@test".into());
        c.refs = Some("<t1@test> <t2@test>".into());
        let t3 = w.put(c);
        // A helpdesk stranger replying into the thread on headers alone: not paired.
        let mut h = w.msg("agent@helpdesk.test", "t4", "04");
        h.in_reply_to = Some("t1@test".into());
        let t4 = w.put(h);
        assert_eq!(w.why(t1), [(anna, "address".to_string())]);
        assert_eq!(w.why(t2), [(anna, "address".to_string())]);
        assert_eq!(w.why(t3), [(anna, "thread".to_string())]);
        assert!(w.why(t4).is_empty());
        assert_eq!(w.queue("tester"), [t4]);
        // A full rematch reaches the same result (parents are decided before replies).
        let s = rematch_all(&w.store, &w.config()).unwrap();
        assert_eq!(s.changed, 0, "{s:?}");
    });
}

#[test]
fn a_reply_stored_before_its_parent_is_matched_when_the_parent_arrives() {
    each(|mut w| {
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        let mut c = w.msg("colleague@example.net", "r2", "02");
        c.in_reply_to = Some("r1@test".into());
        let r2 = w.put(c);
        assert!(w.why(r2).is_empty());
        let mut parent = w.msg("anna@example.org", "r1", "01");
        parent.cc = vec!["colleague@example.net".into()];
        w.put(parent);
        assert_eq!(w.why(r2), [(anna, "thread".to_string())]);
    });
}

#[test]
fn triage_hides_own_denied_and_private_mail() {
    each(|mut w| {
        let m = w.msg("sales@ours.test", "o1", "01");
        w.put(m);
        let m = w.msg("x@spam.test", "s1", "02");
        let s1 = w.put(m);
        let m = w.msg("y@ok.test", "k1", "03");
        let k1 = w.put(m);
        let priv_inbox = w
            .store
            .fixture_folder("acc-priv", "INBOX", Some("inbox"))
            .unwrap();
        let m = w.msg("z@ok.test", "p1", "04");
        let p1 = w
            .store
            .fixture_message("acc-priv", priv_inbox, 1, &m)
            .unwrap();
        match_messages(&w.store, &[p1], &w.config()).unwrap();
        assert_eq!(w.queue("tester"), [k1, s1]);
        assert_eq!(w.queue("boss"), [p1, k1, s1]);
        // Denied by the global list: stored, hidden.
        deny::add(
            &w.home,
            &deny::Scope::Global,
            &address::Pattern::parse("spam.test").unwrap(),
        )
        .unwrap();
        rematch_all(&w.store, &w.config()).unwrap();
        assert_eq!(w.queue("tester"), [k1]);
        assert!(w.store.message_detail(s1).unwrap().unwrap().denied);
        // Actions on a message the operator may not see fail as "not found".
        assert!(w.desk("tester").show(p1).is_err());
        assert!(w.desk("boss").show(p1).is_ok());
    });
}

#[test]
fn actions_and_undo() {
    each(|mut w| {
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        let mut m = w.msg("new@example.org", "n1", "01");
        m.from_name = Some("\"Nina New\"".into());
        let n1 = w.put(m);
        let m = w.msg("new@example.org", "n2", "02");
        let n2 = w.put(m);
        let m = w.msg("x@spam.test", "s1", "03");
        let s1 = w.put(m);
        let m = w.msg("y@spam.test", "s2", "04");
        let s2 = w.put(m);
        let m = w.msg("gone@else.test", "g1", "05");
        let g1 = w.put(m);
        // Suggestion: same domain as Anna's address.
        let view = w.desk("tester").show(n1).unwrap();
        assert_eq!(view.suggestions.first().map(|s| s.customer_id), Some(anna));

        // pair: the address joins Anna, both messages match; undo restores both.
        let mut desk = w.desk("tester");
        let p = desk.pair(n1, anna).unwrap();
        assert_eq!(w.why(n1), [(anna, "manual".to_string())]);
        assert_eq!(w.why(n2), [(anna, "address".to_string())]);
        let u = w.desk("tester").undo(None, &[]).unwrap();
        assert_eq!(u.action_id, p.action_id);
        assert!(w.why(n1).is_empty() && w.why(n2).is_empty());
        assert!(
            !w.store
                .customer(anna)
                .unwrap()
                .unwrap()
                .emails
                .contains(&"new@example.org".to_string())
        );

        // add-customer: name from the display name.
        let a = w.desk("tester").add_customer(n1, None).unwrap();
        let cid = a.customer_id.unwrap();
        assert_eq!(w.store.customer(cid).unwrap().unwrap().name, "Nina New");
        assert_eq!(w.why(n2), [(cid, "address".to_string())]);
        w.desk("tester").undo(Some(a.action_id), &[]).unwrap();
        assert!(w.store.customer(cid).unwrap().is_none());
        assert!(
            w.desk("tester").undo(Some(a.action_id), &[]).is_err(),
            "an action is undone once"
        );

        // block --domain: count first, then config + hidden; undo brings both back.
        let plan = w.desk("tester").block_plan(s1, true).unwrap();
        assert_eq!((plan.pattern.as_str(), plan.affected), ("spam.test", 2));
        let (_, b) = w.desk("tester").block(s1, true).unwrap();
        assert_eq!(w.config().accounts["work"].deny, ["spam.test"]);
        assert!(!w.queue("tester").contains(&s1) && !w.queue("tester").contains(&s2));
        // Mail arriving later from the domain is hidden as it is matched.
        let m = w.msg("z@mail.spam.test", "s3", "06");
        let s3 = w.put(m);
        assert!(w.store.message_detail(s3).unwrap().unwrap().denied);
        w.desk("tester").undo(Some(b.action_id), &[]).unwrap();
        assert!(w.config().accounts["work"].deny.is_empty());
        assert!(w.queue("tester").contains(&s1) && w.queue("tester").contains(&s3));

        // delete: queued for the server, gone from the queue; undo before sync withdraws it.
        let d = w.desk("tester").delete(g1).unwrap();
        assert!(!w.queue("tester").contains(&g1));
        // The location leaves the cache at once; the op remembers where the message was.
        assert!(w.store.message_locations(g1).unwrap().is_empty());
        let op_id = w.store.action(d.action_id).unwrap().unwrap().payload["ops"][0]["op_id"]
            .as_i64()
            .unwrap();
        let op = w.store.pending_op(op_id).unwrap().unwrap();
        assert_eq!(op.op, "delete");
        let target: serde_json::Value = serde_json::from_str(op.arg.as_deref().unwrap()).unwrap();
        assert_eq!(
            (target["wire_name"].as_str(), target["arg"].as_str()),
            (Some("INBOX"), Some("Trash"))
        );
        let u = w.desk("tester").undo(None, &[]).unwrap();
        assert_eq!(u.action_id, d.action_id);
        assert!(
            w.store.pending_op(op_id).unwrap().is_none(),
            "the op is withdrawn"
        );
        assert_eq!(w.store.message_locations(g1).unwrap().len(), 1);
        assert!(w.queue("tester").contains(&g1));
        // Another operator's undo finds nothing of theirs.
        assert!(w.desk("boss").undo(None, &[]).is_err());
        // Every action and undo is in the audit log.
        let audit: Vec<String> = w
            .store
            .audit_rows(100)
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect();
        assert_eq!(
            audit.iter().filter(|a| *a == "undo").count(),
            4,
            "{audit:?}"
        );
        assert!(
            audit.contains(&"triage.block".to_string())
                && audit.contains(&"triage.delete".to_string())
        );
    });
}

#[test]
fn undo_of_a_replayed_delete_moves_the_message_back() {
    each(|mut w| {
        let m = w.msg("gone@else.test", "g1", "05");
        let g1 = w.put(m);
        let m = w.msg("gone@else.test", "g2", "06");
        let g2 = w.put(m);
        // g1: Trash is synced, so the cache knows the message's new place.
        let d = w.desk("tester").delete(g1).unwrap();
        let op_id = w.store.action(d.action_id).unwrap().unwrap().payload["ops"][0]["op_id"]
            .as_i64()
            .unwrap();
        w.store.fixture_mark_op_done(op_id).unwrap();
        let a = w.desk("tester").resolve_action(None).unwrap();
        assert_eq!(
            w.desk("tester").trash_lookups(&a).unwrap().len(),
            1,
            "not in the cache's Trash yet"
        );
        let err = w.desk("tester").undo(None, &[]).unwrap_err();
        assert!(err.fix.contains("sync"), "{err}");
        w.store
            .fixture_add_location(g1, "acc-work", "trash", 77)
            .unwrap();
        assert!(w.desk("tester").trash_lookups(&a).unwrap().is_empty());
        w.desk("tester").undo(None, &[]).unwrap();
        let back = w.store.pending_op(op_id + 1).unwrap().unwrap();
        let t: serde_json::Value = serde_json::from_str(back.arg.as_deref().unwrap()).unwrap();
        assert_eq!(
            (
                back.op.as_str(),
                t["wire_name"].as_str(),
                t["uid"].as_i64(),
                t["arg"].as_str()
            ),
            ("move", Some("Trash"), Some(77), Some("INBOX"))
        );
        // g2: Trash is not synced; the server lookup's answer is used.
        let d = w.desk("tester").delete(g2).unwrap();
        let op_id = w.store.action(d.action_id).unwrap().unwrap().payload["ops"][0]["op_id"]
            .as_i64()
            .unwrap();
        w.store.fixture_mark_op_done(op_id).unwrap();
        let hit = triage::TrashHit {
            account_id: "acc-work".into(),
            folder_id: 3,
            wire_name: "Trash".into(),
            uidvalidity: 9,
            uid: 5,
        };
        w.desk("tester").undo(None, &[hit]).unwrap();
        let back = w.store.pending_op(op_id + 1).unwrap().unwrap();
        let t: serde_json::Value = serde_json::from_str(back.arg.as_deref().unwrap()).unwrap();
        assert_eq!(
            (t["uidvalidity"].as_i64(), t["uid"].as_i64()),
            (Some(9), Some(5))
        );
        assert_eq!(
            w.store.message_detail(g2).unwrap().unwrap().triage_state,
            None
        );
    });
}

#[test]
fn timeline_threads_both_directions_by_headers_not_subject() {
    each(|mut w| {
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        let m = w.msg("anna@example.org", "q1", "01");
        let q1 = w.put(m);
        let mut r = w.msg("me@ours.test", "q2", "02");
        r.direction = "out";
        r.to = vec!["anna@example.org".into()];
        r.in_reply_to = Some("q1@test".into());
        let q2 = w.put(r);
        let mut again = w.msg("anna@example.org", "q3", "04");
        again.refs = Some("<q1@test> <q2@test>".into());
        again.subject = "q1".into(); // same subject as q1, but that is not what threads it
        let q3 = w.put(again);
        // Same subject, no references: its own thread.
        let mut lone = w.msg("anna@example.org", "q4", "03");
        lone.subject = "q1".into();
        let q4 = w.put(lone);
        let rows = w.store.timeline(anna, &["acc-work".into()]).unwrap();
        let threads = timeline::threads(rows);
        let shape: Vec<(i64, Vec<i64>)> = threads
            .iter()
            .map(|t| (t.thread_id, t.messages.iter().map(|m| m.id).collect()))
            .collect();
        assert_eq!(shape, [(q1, vec![q1, q2, q3]), (q4, vec![q4])]);
        assert_eq!(threads[0].messages[1].direction, "out");
        assert_eq!(threads[0].messages[1].why.rule, "address");
    });
}

#[test]
fn match_pending_catches_mail_stored_without_matching_even_with_reused_ids() {
    each(|mut w| {
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        let m = w.msg("anna@example.org", "u1", "01");
        // Stored the way a sync without the hook would: no matching.
        let id = w
            .store
            .fixture_message("acc-work", w.inbox, 900, &m)
            .unwrap();
        assert!(w.why(id).is_empty());
        let s = match_pending(&w.store, &w.config()).unwrap();
        assert_eq!((s.examined, s.matched), (1, 1));
        assert_eq!(w.why(id), [(anna, "address".to_string())]);
        assert_eq!(
            match_pending(&w.store, &w.config()).unwrap().examined,
            0,
            "examined once"
        );
        // The highest row deleted (history removed) and its id reused by the next stored message.
        w.store.fixture_delete_message(id).unwrap();
        let again = w
            .store
            .fixture_message("acc-work", w.inbox, 901, &m)
            .unwrap();
        if w.store.engine() == crate::store::sql::Engine::Sqlite {
            assert_eq!(again, id, "SQLite reuses the id of a deleted last row");
        }
        assert!(w.why(again).is_empty());
        match_pending(&w.store, &w.config()).unwrap();
        assert_eq!(w.why(again), [(anna, "address".to_string())]);
    });
}

#[test]
fn targeted_rematch_of_triage_actions_agrees_with_a_full_rematch() {
    each(|mut w| {
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        let dom = w.customer("Other", &[], &["example.net"]);
        // A stranger writes; we answer (cc a colleague); the colleague replies in the thread.
        let mut m = w.msg("new@example.net", "x1", "01");
        m.cc = vec!["colleague@else.test".into()];
        let x1 = w.put(m);
        let mut out = w.msg("me@ours.test", "x2", "02");
        out.direction = "out";
        out.to = vec!["NEW@example.net".into()];
        out.in_reply_to = Some("x1@test".into());
        let x2 = w.put(out);
        let mut reply = w.msg("colleague@else.test", "x3", "03");
        reply.in_reply_to = Some("x2@test".into());
        reply.refs = Some("<x1@test> <x2@test>".into());
        let x3 = w.put(reply);
        let full = |w: &World| rematch_all(&w.store, &w.config()).unwrap().changed;
        assert_eq!(w.why(x1), [(dom, "domain".to_string())]);
        assert_eq!(full(&w), 0);

        // Pairing moves the sender from the domain customer to Anna, with our reply and the thread.
        let p = w.desk("tester").pair(x1, anna).unwrap();
        assert_eq!(w.why(x1), [(anna, "manual".to_string())]);
        assert_eq!(w.why(x2), [(anna, "address".to_string())]);
        assert_eq!(w.why(x3), [(anna, "thread".to_string())]);
        assert_eq!(full(&w), 0, "targeted rematch after pair missed something");
        w.desk("tester").undo(Some(p.action_id), &[]).unwrap();
        assert_eq!(w.why(x1), [(dom, "domain".to_string())]);
        assert_eq!(full(&w), 0, "targeted rematch after undo missed something");

        let a = w.desk("tester").add_customer(x1, Some("Nina")).unwrap();
        let nina = a.customer_id.unwrap();
        assert_eq!(w.why(x2), [(nina, "address".to_string())]);
        assert_eq!(
            full(&w),
            0,
            "targeted rematch after add-customer missed something"
        );
        w.desk("tester").undo(Some(a.action_id), &[]).unwrap();
        assert_eq!(
            full(&w),
            0,
            "targeted rematch after undoing add-customer missed something"
        );
        assert_eq!(w.why(x3), [(dom, "thread".to_string())]);
    });
}

#[test]
fn targeted_rematch_of_book_edits_agrees_with_a_full_rematch() {
    each(|mut w| {
        let dom = w.customer("Domain", &[], &["example.net"]);
        let m = w.msg("a@example.net", "b1", "01");
        let b1 = w.put(m);
        let mut out = w.msg("me@ours.test", "b2", "02");
        out.direction = "out";
        out.to = vec!["b@example.net".into()];
        let b2 = w.put(out);
        let full = |w: &World| rematch_all(&w.store, &w.config()).unwrap().changed;
        let cfg = w.config();
        let c = book::add(
            &w.store,
            &cfg,
            book::CustomerInput {
                name: "A".into(),
                emails: vec!["a@example.net".into(), "b@example.net".into()],
                ..Default::default()
            },
        )
        .unwrap()
        .customer
        .id;
        assert_eq!(w.why(b1), [(c, "address".to_string())]);
        assert_eq!(w.why(b2), [(c, "address".to_string())]);
        assert_eq!(full(&w), 0);
        book::edit(
            &w.store,
            &cfg,
            c,
            book::CustomerEdit {
                remove_emails: vec!["a@example.net".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(w.why(b1), [(dom, "domain".to_string())]);
        assert_eq!(full(&w), 0);
        book::remove(&w.store, &cfg, c).unwrap();
        assert_eq!(w.why(b2), [(dom, "domain".to_string())]);
        assert_eq!(full(&w), 0);
    });
}

/// `match_pending` takes one streamed pass over the cache when most of it is new (a first
/// sync) and targeted lookups otherwise; both must reach what a full rematch reaches.
#[test]
fn match_pending_agrees_with_a_full_rematch_on_both_paths() {
    each(|mut w| {
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        let unmatched = |w: &mut World, m: FixtureMessage| {
            w.uid += 1;
            w.store
                .fixture_message("acc-work", w.inbox, w.uid, &m)
                .unwrap()
        };
        // A first sync: everything pending, a reply stored before its (older) parent.
        let mut reply = w.msg("colleague@example.net", "p2", "02");
        reply.in_reply_to = Some("p1@test".into());
        let p2 = unmatched(&mut w, reply);
        let mut parent = w.msg("anna@example.org", "p1", "01");
        parent.cc = vec!["colleague@example.net".into()];
        let p1 = unmatched(&mut w, parent);
        let s = match_pending(&w.store, &w.config()).unwrap();
        assert_eq!(
            (s.examined, s.matched),
            (2, 2),
            "one pass over the whole cache"
        );
        assert_eq!(w.why(p1), [(anna, "address".to_string())]);
        assert_eq!(w.why(p2), [(anna, "thread".to_string())]);
        // Later mail: a few new messages in a bigger cache take the targeted path.
        for d in ["03", "04", "05", "06"] {
            let m = w.msg("someone@else.test", &format!("x{d}"), d);
            w.put(m);
        }
        match_pending(&w.store, &w.config()).unwrap();
        let mut late = w.msg("colleague@example.net", "p3", "07");
        late.in_reply_to = Some("p2@test".into());
        let p3 = unmatched(&mut w, late);
        let s = match_pending(&w.store, &w.config()).unwrap();
        assert_eq!(s.examined, 1, "only the new message: {s:?}");
        assert_eq!(w.why(p3), [(anna, "thread".to_string())]);
        assert_eq!(rematch_all(&w.store, &w.config()).unwrap().changed, 0);
    });
}

/// An empty book and no deny list: a first sync's matching marks the mail examined in one
/// statement; a customer added later still matches it (the book's rematch), and mail stored
/// after that takes the usual path.
#[test]
fn match_pending_with_an_empty_book_examines_everything_at_once_and_a_later_customer_still_matches()
{
    each(|mut w| {
        let stored = |w: &mut World, from: &str, subject: &str| {
            let m = w.msg(from, subject, "01");
            w.uid += 1;
            w.store
                .fixture_message("acc-work", w.inbox, w.uid, &m)
                .unwrap()
        };
        let a = stored(&mut w, "anna@example.org", "e1");
        let b = stored(&mut w, "bob@example.net", "e2");
        let s = match_pending(&w.store, &w.config()).unwrap();
        assert_eq!((s.examined, s.matched, s.changed), (2, 0, 0));
        assert!(w.store.unexamined_ids().unwrap().is_empty());
        let mut queue = w.queue("me");
        queue.sort();
        assert_eq!(queue, [a, b], "both wait in triage");
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        assert_eq!(w.why(a), [(anna, "address".to_string())]);
        // The book is not empty any more: new mail is matched as usual.
        let c = stored(&mut w, "anna@example.org", "e3");
        let s = match_pending(&w.store, &w.config()).unwrap();
        assert_eq!((s.examined, s.matched), (1, 1));
        assert_eq!(w.why(c), [(anna, "address".to_string())]);
        assert_eq!(rematch_all(&w.store, &w.config()).unwrap().changed, 0);
    });
}

/// (message, customer, denied, its matches' customers and rules).
type Decision = (i64, Option<i64>, bool, Vec<(i64, String)>);

/// A snapshot of what matching decided for every message.
fn decisions(w: &World) -> Vec<Decision> {
    let mut out = Vec::new();
    w.store
        .for_each_match_input(crate::store::HoldersWanted::No, |m| {
            out.push((m.id, m.customer_id, m.denied, w.why(m.id)))
        })
        .unwrap();
    out.sort();
    out
}

/// A first sync's matching decides only the mail that can match (`match_bulk`) and chases the
/// replies; on a mailbox with every kind of case it must reach exactly what one pass over the
/// whole cache reaches: the pass after it changes nothing.
#[test]
fn bulk_matching_of_a_first_sync_equals_a_full_pass() {
    each(|mut w| {
        std::fs::write(
            w.home.config_path(),
            format!("[general]\ndeny = [\"spammer@nowhere.test\"]\n{ACCOUNT}"),
        )
        .unwrap();
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        let acme = w.customer("ACME", &[], &["acme.test"]);
        // Mail matched before this sync: Anna's, examined already.
        let m = w.msg("anna@example.org", "old1", "01");
        w.put(m);
        let m = w.msg("stranger0@nowhere.test", "old2", "02");
        let old2 = w.put(m);
        w.store.match_manual(old2, acme, "paired by hand").unwrap();
        match_pending(&w.store, &w.config()).unwrap();
        // The first sync: 400 messages, mostly strangers, threads among them.
        let strangers = [
            "stranger0@nowhere.test",
            "stranger1@nowhere.test",
            "stranger2@nowhere.test",
            "stranger3@nowhere.test",
            "stranger4@nowhere.test",
            "stranger5@nowhere.test",
        ];
        // One in six messages comes from someone matching cares about.
        let special = [
            "colleague@example.net",
            "anna@example.org",
            "bob@eu.acme.test",
            "spammer@nowhere.test",
            "me@ours.test",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) as usize) % n
        };
        let mut subjects: Vec<String> = vec!["old1".into(), "old2".into()];
        for i in 0..400 {
            let subject = format!("s{i}");
            let from = match next(6) {
                0 => special[next(special.len())],
                _ => strangers[next(strangers.len())],
            };
            let mut m = w.msg(from, &subject, "01");
            m.date = format!("2025-02-01T{:02}:{:02}:00Z", i / 60, i % 60);
            if from == "me@ours.test" || next(20) == 0 {
                m.direction = "out";
                let to = [&special[..], &strangers[..]].concat();
                m.to = vec![to[next(to.len())].into()];
            }
            if next(3) == 0 {
                m.cc = vec!["colleague@example.net".into()];
            }
            match next(4) {
                // A reply to an earlier message (In-Reply-To and References).
                0 | 1 => {
                    let parent = subjects[next(subjects.len())].clone();
                    let grand = subjects[next(subjects.len())].clone();
                    m.in_reply_to = Some(format!("<{parent}@test>"));
                    m.refs = Some(format!("<{grand}@test> <{parent}@test>"));
                }
                // References only: the thread is known through an older message.
                2 if next(2) == 0 => {
                    let grand = subjects[next(subjects.len())].clone();
                    m.refs = Some(format!("<{grand}@test>"));
                }
                _ => {}
            }
            let folder = if m.direction == "out" {
                w.sent
            } else {
                w.inbox
            };
            w.uid += 1;
            w.store
                .fixture_message("acc-work", folder, w.uid, &m)
                .unwrap();
            subjects.push(subject);
        }
        let config = w.config();
        let matcher = matching::Matcher::new(&w.store, &config).unwrap();
        let pending = w.store.unexamined_ids().unwrap();
        assert_eq!(pending.len(), 400);
        let cached = w.store.message_count().unwrap();
        let s = matching::match_bulk(&w.store, &matcher, &pending, cached)
            .unwrap()
            .expect("few messages can match: the bulk path");
        assert_eq!(s.examined, 400);
        assert!(w.store.unexamined_ids().unwrap().is_empty());
        let bulk = decisions(&w);
        // Every kind of outcome happened, so the comparison below means something.
        let rules: Vec<&str> = bulk
            .iter()
            .flat_map(|d| d.3.iter().map(|(_, r)| r.as_str()))
            .collect();
        for rule in ["address", "domain", "thread", "manual"] {
            assert!(rules.contains(&rule), "no {rule} match: {bulk:?}");
        }
        assert!(bulk.iter().any(|d| d.2), "nothing denied");
        assert!(bulk.iter().any(|d| d.1 == Some(anna)));
        let full = rematch_all(&w.store, &config).unwrap();
        assert_eq!(
            full.changed, 0,
            "the full pass changed {} messages",
            full.changed
        );
        assert_eq!(decisions(&w), bulk);
    });
}

/// When much of the new mail can match, one pass over the cache is cheaper: `match_bulk`
/// declines and `match_pending` takes the pass, with the same result.
#[test]
fn bulk_matching_declines_when_most_mail_can_match() {
    each(|mut w| {
        let anna = w.customer("Anna", &["anna@example.org"], &[]);
        for i in 0..10 {
            let m = w.msg("anna@example.org", &format!("a{i}"), "01");
            w.uid += 1;
            w.store
                .fixture_message("acc-work", w.inbox, w.uid, &m)
                .unwrap();
        }
        let config = w.config();
        let matcher = matching::Matcher::new(&w.store, &config).unwrap();
        let pending = w.store.unexamined_ids().unwrap();
        let cached = w.store.message_count().unwrap();
        assert!(
            matching::match_bulk(&w.store, &matcher, &pending, cached)
                .unwrap()
                .is_none()
        );
        assert!(
            !w.store.unexamined_ids().unwrap().is_empty(),
            "left pending"
        );
        let s = match_pending(&w.store, &config).unwrap();
        assert_eq!((s.examined, s.matched), (10, 10));
        assert!(decisions(&w).iter().all(|d| d.1 == Some(anna)));
    });
}
