//! Issue 13: answers that are true — `customers add|edit` count the mail matched to that
//! customer, and `triage pair --customer` takes an id, an address or an exact name.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::common::*;

fn ok(home: &Home, args: &[&str]) -> Value {
    let (code, v) = home.json(args);
    assert_eq!(code, 0, "mailroom {args:?} failed: {v}");
    v
}

/// A synced home over a seeded mailbox: (home, cached senders with their message ids).
fn synced(prefix: &str, count: usize) -> (Home, BTreeMap<String, Vec<i64>>) {
    let u = new_user(prefix);
    wait_for(
        "dovecot to see the new user",
        Duration::from_secs(10),
        || doveadm(&["user", &u]).status.success().then_some(()),
    );
    seed(&u, count);
    let home = Home::new();
    home.add_account("w", &u);
    ok(&home, &["sync", "w", "--once"]);
    let db = home.db();
    let mut st = db
        .prepare("SELECT id, from_addr FROM messages WHERE from_addr IS NOT NULL ORDER BY id")
        .unwrap();
    let mut by_sender: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in st
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (id, from) = row.unwrap();
        by_sender.entry(from.to_lowercase()).or_default().push(id);
    }
    drop(st);
    (home, by_sender)
}

#[test]
fn customers_add_and_edit_count_only_that_customers_mail() {
    let (home, senders) = synced("count", 40);
    let mut it = senders.iter().filter(|(_, ids)| !ids.is_empty());
    let (a, a_ids) = it.next().unwrap();
    let (b, b_ids) = it.next().unwrap();
    let (c, c_ids) = it.next().unwrap();
    // Other customers claim plenty of the cache first.
    let v = ok(&home, &["customers", "add", "--name", "Busy", "--email", a]);
    assert_eq!(v["matched"], a_ids.len(), "{v}");
    let v = ok(&home, &["customers", "add", "--name", "Also", "--email", b]);
    assert_eq!(v["matched"], b_ids.len(), "{v}");
    // A customer whose domain nothing in the cache uses matched nothing.
    let v = ok(
        &home,
        &[
            "customers",
            "add",
            "--name",
            "Nobody",
            "--domain",
            "nothing-here.example",
        ],
    );
    assert_eq!(v["matched"], 0, "{v}");
    let out = home.run(&[
        "customers",
        "add",
        "--name",
        "Nobody Two",
        "--domain",
        "nothing-there.example",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("(0 cached message(s) matched)"),
        "{}",
        stdout(&out)
    );
    // Edit: an address of its own brings that sender's mail, and only that is counted.
    let nobody = v["customer"]["id"].as_i64().unwrap().to_string();
    let v = ok(&home, &["customers", "edit", &nobody, "--email", c]);
    assert_eq!(v["matched"], c_ids.len(), "{v}");
    let out = home.run(&["customers", "edit", &nobody, "--notes", "n"]);
    assert!(
        stdout(&out).contains(&format!("({} cached message(s) matched)", c_ids.len())),
        "{}",
        stdout(&out)
    );
}

#[test]
fn triage_pair_takes_an_id_an_address_or_an_exact_name() {
    let (home, _) = synced("pair", 40);
    let queue: Vec<i64> = ok(&home, &["triage", "list", "--limit", "1000"])["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert!(queue.len() >= 4, "{queue:?}");
    let add = |name: &str, email: &str| -> i64 {
        ok(
            &home,
            &["customers", "add", "--name", name, "--email", email],
        )["customer"]["id"]
            .as_i64()
            .unwrap()
    };
    let ada1 = add("Ada Lovelace", "ada@one.example");
    let ada2 = add("Ada Lovelace", "ada@two.example");
    let grace = add("Grace Hopper", "grace@navy.example");
    let customer_of = |msg: i64| -> Option<i64> {
        home.db()
            .query_row(
                "SELECT customer_id FROM matches WHERE message_id = ?1 AND rule = 'manual'",
                [msg],
                |r| r.get(0),
            )
            .ok()
    };
    // Undo after each pairing, so the next message is still in the queue with its sender free.
    let pair = |msg: i64, customer: &str| -> Value {
        let m = msg.to_string();
        home.json(&["triage", "pair", &m, "--customer", customer]).1
    };
    let v = pair(queue[0], "Grace Hopper");
    assert!(v["action_id"].is_i64(), "{v}");
    assert_eq!(customer_of(queue[0]), Some(grace));
    ok(&home, &["undo"]);
    let v = pair(queue[1], "ADA@two.example");
    assert!(v["action_id"].is_i64(), "{v}");
    assert_eq!(customer_of(queue[1]), Some(ada2));
    ok(&home, &["undo"]);
    let v = pair(queue[2], &ada1.to_string());
    assert!(v["action_id"].is_i64(), "{v}");
    assert_eq!(customer_of(queue[2]), Some(ada1));
    ok(&home, &["undo"]);
    // Two customers share the name: an error listing both, nothing paired.
    let m = queue[3].to_string();
    let (code, v) = home.json(&["triage", "pair", &m, "--customer", "Ada Lovelace"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "customer.ambiguous", "{v}");
    let detail = v["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("{ada1} Ada Lovelace"))
            && detail.contains(&format!("{ada2} Ada Lovelace")),
        "{v}"
    );
    assert_eq!(customer_of(queue[3]), None);
    // Nobody by that name: not_found, naming the ways to name one.
    let (code, v) = home.json(&["triage", "pair", &m, "--customer", "Nobody"]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (1, Some("not_found")),
        "{v}"
    );
}
