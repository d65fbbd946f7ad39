//! Issue 5: customers, matching, triage, deny lists, visibility and search — against the real
//! Dovecot/Postfix, through the real binary.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use super::common::*;

/// A fresh mailbox Dovecot already knows (its passwd file is re-read at most once a second).
fn user(prefix: &str) -> String {
    let u = new_user(prefix);
    wait_for(
        "dovecot to see the new user",
        Duration::from_secs(10),
        || doveadm(&["user", &u]).status.success().then_some(()),
    );
    u
}

fn ok(home: &Home, args: &[&str]) -> Value {
    let (code, v) = home.json(args);
    assert_eq!(code, 0, "mailroom {args:?} failed: {v}");
    v
}

fn sync_once(home: &Home, name: &str) {
    ok(home, &["sync", name, "--once"]);
}

/// (id, from_addr, message_id) of every cached message, from the database itself.
fn cached(home: &Home) -> Vec<(i64, String, String)> {
    home.db().rows(
        "SELECT id, COALESCE(from_addr, ''), COALESCE(message_id, '') FROM messages ORDER BY id",
        &[],
    )
}

/// The senders of the cached messages, each once, in the order of their first message.
fn distinct_senders(msgs: &[(i64, String, String)]) -> Vec<String> {
    let mut senders: Vec<String> = Vec::new();
    for (_, from, _) in msgs {
        if !from.is_empty() && !senders.contains(from) {
            senders.push(from.clone());
        }
    }
    senders
}

/// Imports a customer book given as CSV text; the import's report.
fn import_book(home: &Home, csv: &str) -> Value {
    let f = home.path().join("customers.csv");
    std::fs::write(&f, csv).unwrap();
    ok(home, &["customers", "import", f.to_str().unwrap()])
}

fn triage_ids(home: &Home, extra: &[&str]) -> Vec<i64> {
    let mut args = vec!["triage", "list", "--limit", "100000"];
    args.extend_from_slice(extra);
    let v = ok(home, &args);
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

/// Message ids on a customer's timeline with their `why` rule.
fn timeline(home: &Home, customer: i64, extra: &[&str]) -> BTreeMap<i64, String> {
    let mut args = vec!["customers", "show"];
    let id = customer.to_string();
    args.push(&id);
    args.extend_from_slice(extra);
    let v = ok(home, &args);
    let mut out = BTreeMap::new();
    for t in v["customer"]["timeline"].as_array().unwrap() {
        for m in t["messages"].as_array().unwrap() {
            out.insert(
                m["id"].as_i64().unwrap(),
                m["why"]["rule"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

fn server_count(user: &str, mailbox: &str, query: &[&str]) -> usize {
    let mut args = vec!["search", "-u", user, "mailbox", mailbox];
    args.extend_from_slice(query);
    let out = doveadm(&args);
    stdout(&out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn csv_import_takes_good_rows_names_bad_ones_and_reads_odd_encodings() {
    let home = Home::new();
    let dir = home.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    // UTF-8 with a BOM, a header in odd case, a quoted field with a comma, bad rows.
    let mut utf8 = b"\xEF\xBB\xBFName,Company,EMAILS,Domains,Notes\n".to_vec();
    utf8.extend_from_slice(
        "Jürgen Groß,\"Müller-Bau, GmbH\",juergen@müller-bau.de;JG@Example.ORG,müller-bau.de,VIP\n\
         ,Nameless Ltd,nameless@example.org,,\n\
         Broken Mail,,not-an-address,,\n\
         Dup Person,,jg@example.org,,\n\
         Too Many,,many@example.org,,,,extra,fields\n\
         Plain Anna,,anna@example.net,,\n"
            .as_bytes(),
    );
    let f1 = dir.join("utf8.csv");
    std::fs::write(&f1, &utf8).unwrap();
    let r = ok(&home, &["customers", "import", f1.to_str().unwrap()]);
    assert_eq!(
        (
            r["imported"].as_u64(),
            r["updated"].as_u64(),
            r["unchanged"].as_u64()
        ),
        (Some(2), Some(0), Some(0)),
        "{r}"
    );
    let errs: Vec<(u64, String)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        errs.iter().map(|e| e.0).collect::<Vec<_>>(),
        [3, 4, 5, 6],
        "{r}"
    );
    assert!(errs[0].1.contains("name"), "{errs:?}");
    assert!(errs[1].1.contains("not-an-address"), "{errs:?}");
    assert!(
        errs[2].1.contains("line 2"),
        "the duplicate names the first line: {errs:?}"
    );
    let r = ok(&home, &["customers", "import", f1.to_str().unwrap()]);
    assert_eq!(
        (
            r["imported"].as_u64(),
            r["updated"].as_u64(),
            r["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(2)),
        "re-import is idempotent: {r}"
    );
    // Windows-1252 (what Excel writes), including a row that updates a customer by address.
    let f2 = dir.join("cp1252.csv");
    std::fs::write(&f2, b"name,emails,company\nFran\xE7ois L\xE9ger,francois@example.fr,Caf\xE9 SA\nAnna Plain,ANNA@example.net,\n").unwrap();
    let r = ok(&home, &["customers", "import", f2.to_str().unwrap()]);
    assert_eq!(
        (
            r["imported"].as_u64(),
            r["updated"].as_u64(),
            r["encoding"].as_str()
        ),
        (Some(1), Some(1), Some("windows-1252")),
        "{r}"
    );
    let list = ok(&home, &["customers", "list"]);
    let by_name: BTreeMap<String, Value> = list["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c.clone()))
        .collect();
    assert_eq!(
        by_name.keys().cloned().collect::<Vec<_>>(),
        ["Anna Plain", "François Léger", "Jürgen Groß"],
        "{list}"
    );
    let j = &by_name["Jürgen Groß"];
    assert_eq!(j["company"], "Müller-Bau, GmbH");
    assert_eq!(
        j["emails"],
        serde_json::json!(["jg@example.org", "juergen@xn--mller-bau-q9a.de"])
    );
    assert_eq!(j["domains"], serde_json::json!(["xn--mller-bau-q9a.de"]));
    assert_eq!(by_name["François Léger"]["company"], "Café SA");
    // Re-importing changes nothing; an export reads back unchanged.
    let r = ok(&home, &["customers", "import", f2.to_str().unwrap()]);
    assert_eq!(
        (
            r["imported"].as_u64(),
            r["updated"].as_u64(),
            r["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(2)),
        "{r}"
    );
    // Excel's `sep=;` first line, CRLF: the line decides the delimiter, errors keep the
    // file's line numbers.
    let f3 = dir.join("sep.csv");
    std::fs::write(&f3, "sep=;\r\nname;emails\r\nNo Address;not-an-address\r\n").unwrap();
    let r = ok(&home, &["customers", "import", f3.to_str().unwrap()]);
    assert_eq!(
        (
            r["imported"].as_u64(),
            r["delimiter"].as_str(),
            r["errors"][0]["line"].as_u64()
        ),
        (Some(0), Some(";"), Some(3)),
        "{r}"
    );
    let out = home.path().join("out.csv");
    ok(&home, &["customers", "export", out.to_str().unwrap()]);
    let r = ok(&home, &["customers", "import", out.to_str().unwrap()]);
    assert_eq!(
        (
            r["imported"].as_u64(),
            r["updated"].as_u64(),
            r["unchanged"].as_u64(),
            r["errors"].as_array().unwrap().len()
        ),
        (Some(0), Some(0), Some(3), 0),
        "{r}"
    );
    // A file without a name column is refused as a whole, with the fix.
    let f3 = dir.join("noname.csv");
    std::fs::write(&f3, "emails\nx@example.org\n").unwrap();
    let (code, v) = home.json(&["customers", "import", f3.to_str().unwrap()]);
    assert_eq!(code, 64, "{v}");
    assert!(v["error"]["fix"].as_str().unwrap().contains("name"), "{v}");
}

/// What German or French Excel writes as "CSV (semicolon)": Windows-1252, CRLF, `;` between
/// columns, cells holding several values quoted.
#[test]
fn csv_import_reads_semicolon_separated_windows_1252_files() {
    let home = Home::new();
    let f = home.path().join("kunden.csv");
    std::fs::write(
        &f,
        b"Name;Company;Emails;Domains;Notes\r\n\
          J\xFCrgen Gro\xDF;M\xFCller-Bau, GmbH;\"juergen@m\xFCller-bau.de;JG@Example.ORG\";m\xFCller-bau.de;VIP\r\n\
          Fran\xE7ois L\xE9ger;Caf\xE9 SA;francois@example.fr;;\xE0 rappeler; lundi\r\n\
          Zo\xEB Kowalska;;zoe@example.pl;;\"\"\r\n",
    )
    .unwrap();
    let path = f.to_str().unwrap();
    let r = ok(&home, &["customers", "import", path]);
    assert_eq!(
        (
            r["imported"].as_u64(),
            r["updated"].as_u64(),
            r["encoding"].as_str(),
            r["delimiter"].as_str()
        ),
        (Some(2), Some(0), Some("windows-1252"), Some(";")),
        "{r}"
    );
    // The unquoted `;` in François's notes makes a sixth field: refused on its line, not shifted.
    let errs = r["errors"].as_array().unwrap();
    assert_eq!(errs.len(), 1, "{r}");
    assert_eq!(errs[0]["line"], 3, "{r}");
    let reason = errs[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("6 fields") && reason.contains("quoted"),
        "{reason}"
    );

    let list = ok(&home, &["customers", "list"]);
    let by_name: BTreeMap<String, Value> = list["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c.clone()))
        .collect();
    assert_eq!(
        by_name.keys().cloned().collect::<Vec<_>>(),
        ["Jürgen Groß", "Zoë Kowalska"],
        "{list}"
    );
    let j = &by_name["Jürgen Groß"];
    assert_eq!(j["company"], "Müller-Bau, GmbH");
    assert_eq!(
        j["emails"],
        serde_json::json!(["jg@example.org", "juergen@xn--mller-bau-q9a.de"])
    );
    assert_eq!(j["domains"], serde_json::json!(["xn--mller-bau-q9a.de"]));
    assert_eq!(j["notes"], "VIP");
    assert_eq!(
        by_name["Zoë Kowalska"]["emails"],
        serde_json::json!(["zoe@example.pl"])
    );

    // Human output names the delimiter and the bad line; a re-import changes nothing.
    let out = home.run(&["customers", "import", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("unchanged 2") && stdout(&out).contains("separated by `;`"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("line 3: 6 fields"),
        "{}",
        stderr(&out)
    );

    // Export stays comma-separated.
    let out = home.run(&["customers", "export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("name,company,emails,domains,notes\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn seeded_mailbox_and_imported_customers_give_timelines_and_triage() {
    let u = user("crm-match");
    seed(&u, 60);
    let home = Home::new();
    home.add_account("w", &u);
    sync_once(&home, "w");
    let msgs = cached(&home);
    assert_eq!(msgs.len(), 60);
    // Customers: the senders of the first few distinct addresses, one of them by domain only.
    let senders = distinct_senders(&msgs);
    assert!(senders.len() >= 6, "{senders:?}");
    let by_domain = senders[5].rsplit_once('@').unwrap().1.to_string();
    let csv = format!(
        "name,emails,domains\nFirst,{},\nSecond,{};{},\nThird,{},\nByDomain,,{by_domain}\n",
        senders[0], senders[1], senders[2], senders[3]
    );
    let r = import_book(&home, &csv);
    assert_eq!(r["imported"], 4, "{r}");
    let list = ok(&home, &["customers", "list"]);
    let ids: BTreeMap<String, i64> = list["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["id"].as_i64().unwrap(),
            )
        })
        .collect();
    let domain_of = |a: &str| {
        a.rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_default()
    };
    let expect = |addrs: &[&String]| -> HashSet<i64> {
        msgs.iter()
            .filter(|(_, f, _)| addrs.contains(&f))
            .map(|(id, _, _)| *id)
            .collect()
    };
    // Timelines hold exactly each customer's mail, explained.
    let first = timeline(&home, ids["First"], &[]);
    assert_eq!(
        first.keys().copied().collect::<HashSet<_>>(),
        expect(&[&senders[0]])
    );
    assert!(first.values().all(|r| r == "address"), "{first:?}");
    let second = timeline(&home, ids["Second"], &[]);
    assert_eq!(
        second.keys().copied().collect::<HashSet<_>>(),
        expect(&[&senders[1], &senders[2]])
    );
    let bd = timeline(&home, ids["ByDomain"], &[]);
    let in_domain: HashSet<i64> = msgs
        .iter()
        .filter(|(_, f, _)| {
            domain_of(f) == by_domain
                && ![&senders[0], &senders[1], &senders[2], &senders[3]].contains(&f)
        })
        .map(|(id, _, _)| *id)
        .collect();
    assert_eq!(bd.keys().copied().collect::<HashSet<_>>(), in_domain);
    assert!(bd.values().all(|r| r == "domain"), "{bd:?}");
    // Triage holds exactly the rest, newest first.
    let matched: HashSet<i64> = first
        .keys()
        .chain(second.keys())
        .chain(bd.keys())
        .chain(timeline(&home, ids["Third"], &[]).keys())
        .copied()
        .collect();
    let queue = triage_ids(&home, &[]);
    let rest: HashSet<i64> = msgs
        .iter()
        .map(|m| m.0)
        .filter(|id| !matched.contains(id))
        .collect();
    assert_eq!(queue.iter().copied().collect::<HashSet<_>>(), rest);
    assert!(!queue.is_empty());
    // Mail arriving later is matched by the sync pass itself: no crm command runs in between.
    let known = user("crm-known");
    let k = ok(
        &home,
        &[
            "customers",
            "add",
            "--name",
            "Known Sender",
            "--email",
            &known,
        ],
    );
    smtp_send(&known, &u, "Order follow-up", "as discussed");
    wait_for("the SMTP mail in INBOX", Duration::from_secs(20), || {
        (server_count(&u, "INBOX", &["subject", "follow-up"]) == 1).then_some(())
    });
    sync_once(&home, "w");
    let cid: Option<i64> = home.db().value(
        "SELECT customer_id FROM messages WHERE subject = 'Order follow-up'",
        &[],
    );
    assert_eq!(cid, k["customer"]["id"].as_i64());
    // status agrees on the count, straight after a sync.
    smtp_send(&known, &u, "Another one", "x");
    let stranger = user("crm-stranger");
    smtp_send(&stranger, &u, "Unknown author", "who am I");
    wait_for("both SMTP mails in INBOX", Duration::from_secs(20), || {
        (server_count(&u, "INBOX", &["subject", "Another"]) == 1
            && server_count(&u, "INBOX", &["subject", "Unknown author"]) == 1)
            .then_some(())
    });
    sync_once(&home, "w");
    let st = ok(&home, &["status"]);
    assert_eq!(
        st["accounts"][0]["unmatched"].as_u64(),
        Some(rest.len() as u64 + 1),
        "{st}"
    );
    // Search: words from a subject find it; FTS syntax in the input is just words.
    let subject: String = home.db().value(
        "SELECT subject FROM messages WHERE id = ?1",
        args![queue[0]],
    );
    let word = subject
        .split_whitespace()
        .find(|w| w.len() > 3 && w.chars().all(char::is_alphanumeric))
        .unwrap_or("the")
        .to_string();
    let v = ok(&home, &["search", &word]);
    assert!(
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == queue[0]),
        "{word}: {v}"
    );
    for hostile in ["\"unbalanced", "a OR", "NEAR(x y)", "subject:foo", "*"] {
        let (code, v) = home.json(&["search", hostile]);
        assert!(code == 0 || code == 64, "{hostile}: {v}");
        assert!(
            v.get("error").is_none()
                || v["error"]["summary"].as_str().unwrap().contains("no words"),
            "{hostile}: {v}"
        );
    }
}

#[test]
fn triage_actions_reach_the_server_and_undo_restores_them() {
    let u = user("crm-act");
    let sender = user("crm-snd");
    seed(&u, 20);
    let home = Home::new();
    home.add_account("w", &u);
    // Trash must exist on the server for delete (Dovecot creates special-use folders on demand).
    doveadm(&["mailbox", "create", "-u", &u, "Trash"]);
    smtp_send(&sender, &u, "Hello from a stranger", "Do you sell widgets?");
    wait_for("the SMTP mail in INBOX", Duration::from_secs(20), || {
        (server_count(&u, "INBOX", &["subject", "stranger"]) == 1).then_some(())
    });
    sync_once(&home, "w");
    let queue = triage_ids(&home, &[]);
    assert_eq!(queue.len(), 21);
    let msgs = cached(&home);
    let stranger = msgs
        .iter()
        .find(|m| m.1 == sender)
        .unwrap_or_else(|| panic!("{sender} not in {msgs:?}"))
        .0;

    // show: headers, readable text, suggestions (none yet).
    let v = ok(&home, &["triage", "show", &stranger.to_string()]);
    assert_eq!(v["message"]["from"], sender.as_str());
    if v["message"]["body_fetched"] == true {
        assert!(
            v["message"]["text"].as_str().unwrap().contains("widgets"),
            "{v}"
        );
    }

    // pair: the sender's address joins the customer, so it leaves triage; undo brings it back.
    let c = ok(
        &home,
        &[
            "customers",
            "add",
            "--name",
            "Widget Buyer",
            "--email",
            "buyer@example.com",
        ],
    );
    let cid = c["customer"]["id"].as_i64().unwrap();
    let p = ok(
        &home,
        &[
            "triage",
            "pair",
            &stranger.to_string(),
            "--customer",
            &cid.to_string(),
        ],
    );
    assert!(p["action_id"].as_i64().is_some(), "{p}");
    assert!(!triage_ids(&home, &[]).contains(&stranger));
    assert_eq!(
        timeline(&home, cid, &[]).get(&stranger).map(String::as_str),
        Some("manual")
    );
    let show = ok(&home, &["customers", "show", &cid.to_string()]);
    assert!(
        show["customer"]["emails"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == sender.as_str()),
        "{show}"
    );
    let un = ok(&home, &["undo"]);
    assert_eq!(un["undone"]["action_id"], p["action_id"]);
    assert!(triage_ids(&home, &[]).contains(&stranger));

    // add-customer: named after the display name; undo removes the customer again.
    let other = *queue.iter().find(|id| **id != stranger).unwrap();
    let a = ok(&home, &["triage", "add-customer", &other.to_string()]);
    let new_c = a["customer_id"].as_i64().unwrap();
    let name: String = home.db().value(
        "SELECT COALESCE(from_name, '') FROM messages WHERE id = ?1",
        args![other],
    );
    let shown = ok(&home, &["customers", "show", &new_c.to_string()]);
    if !name.is_empty() {
        assert_eq!(shown["customer"]["name"], name.trim_matches('"'), "{shown}");
    }
    assert!(!triage_ids(&home, &[]).contains(&other));
    ok(
        &home,
        &["undo", &a["action_id"].as_i64().unwrap().to_string()],
    );
    let (code, _) = home.json(&["customers", "show", &new_c.to_string()]);
    assert_eq!(code, 1);
    assert!(triage_ids(&home, &[]).contains(&other));

    // delete: to Trash on the server through the sync queue; undo moves it back.
    let victim = *queue
        .iter()
        .find(|id| **id != stranger && **id != other)
        .unwrap();
    let victim_mid = msgs.iter().find(|m| m.0 == victim).unwrap().2.clone();
    let hdr = format!("<{victim_mid}>");
    let d = ok(&home, &["triage", "delete", &victim.to_string()]);
    assert!(!triage_ids(&home, &[]).contains(&victim));
    sync_once(&home, "w");
    assert_eq!(
        server_count(&u, "Trash", &["header", "message-id", &hdr]),
        1,
        "in Trash on the server"
    );
    assert_eq!(
        server_count(&u, "INBOX", &["header", "message-id", &hdr]),
        0,
        "gone from INBOX"
    );
    let un = ok(&home, &["undo"]);
    assert_eq!(un["undone"]["action_id"], d["action_id"]);
    sync_once(&home, "w");
    assert_eq!(
        server_count(&u, "INBOX", &["header", "message-id", &hdr]),
        1,
        "back in INBOX"
    );
    assert_eq!(
        server_count(&u, "Trash", &["header", "message-id", &hdr]),
        0
    );
    assert!(triage_ids(&home, &[]).contains(&victim), "back in triage");

    // block --domain: the count first, then the account's deny list; mail sent afterwards from
    // that domain is stored but never reaches triage; undo shows it all again.
    let sdomain = sender.rsplit_once('@').unwrap().1.to_string();
    let plan = ok(
        &home,
        &[
            "triage",
            "block",
            &stranger.to_string(),
            "--domain",
            "--dry-run",
        ],
    );
    assert_eq!(
        (
            plan["plan"]["pattern"].as_str(),
            plan["plan"]["affected"].as_u64()
        ),
        (Some(sdomain.as_str()), Some(1)),
        "{plan}"
    );
    let b = ok(
        &home,
        &["triage", "block", &stranger.to_string(), "--domain"],
    );
    let deny = ok(&home, &["deny", "list", "--account", "w"]);
    assert_eq!(
        deny["deny"],
        serde_json::json!([{"scope": "w", "pattern": sdomain}])
    );
    assert!(!triage_ids(&home, &[]).contains(&stranger));
    smtp_send(&sender, &u, "Second try after block", "widgets again");
    wait_for(
        "the second SMTP mail in INBOX",
        Duration::from_secs(20),
        || (server_count(&u, "INBOX", &["subject", "Second try"]) == 1).then_some(()),
    );
    sync_once(&home, "w");
    let later: i64 = home.db().value(
        "SELECT id FROM messages WHERE subject = 'Second try after block'",
        &[],
    );
    let denied: i64 = home
        .db()
        .value("SELECT denied FROM messages WHERE id = ?1", args![later]);
    assert_eq!(denied, 1, "stored, marked denied");
    let q = triage_ids(&home, &[]);
    assert!(!q.contains(&later) && !q.contains(&stranger));
    ok(
        &home,
        &["undo", &b["action_id"].as_i64().unwrap().to_string()],
    );
    let q = triage_ids(&home, &[]);
    assert!(
        q.contains(&later) && q.contains(&stranger),
        "undo brings blocked mail back"
    );
    assert!(
        ok(&home, &["deny", "list", "--account", "w"])["deny"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Every action and undo is in the audit log.
    let audit = ok(&home, &["audit"]);
    let kinds: Vec<String> = audit["entries"]
        .as_array()
        .or(audit["audit"].as_array())
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for k in [
        "triage.pair",
        "triage.add_customer",
        "triage.delete",
        "triage.block",
        "undo",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
}

#[test]
fn an_operator_without_access_sees_nothing_of_a_private_account() {
    let u = user("crm-priv");
    seed(&u, 10);
    let home = Home::new();
    home.add_account("p", &u);
    home.set_account_option("p", "owner", toml_edit::value("owner1"));
    home.set_account_option(
        "p",
        "shared_with",
        toml_edit::value(toml_edit::Array::from_iter(["friend"])),
    );
    ok(&home, &["--operator", "owner1", "sync", "p", "--once"]);
    let msgs = cached(&home);
    assert_eq!(msgs.len(), 10);
    let c = ok(
        &home,
        &["customers", "add", "--name", "Known", "--email", &msgs[0].1],
    );
    let cid = c["customer"]["id"].as_i64().unwrap();
    for who in ["owner1", "friend"] {
        assert!(
            !triage_ids(&home, &["--operator", who]).is_empty(),
            "{who} sees the queue"
        );
        assert!(
            !timeline(&home, cid, &["--operator", who]).is_empty(),
            "{who} sees the timeline"
        );
    }
    // The intruder sees no queue, no timeline entries, no search hits, no message.
    assert!(triage_ids(&home, &["--operator", "intruder"]).is_empty());
    assert!(timeline(&home, cid, &["--operator", "intruder"]).is_empty());
    let subject: String = home.db().value(
        "SELECT subject FROM messages WHERE id = ?1",
        args![msgs[0].0],
    );
    let word = subject
        .split_whitespace()
        .find(|w| w.len() > 3 && w.chars().all(char::is_alphanumeric))
        .unwrap_or("the")
        .to_string();
    assert!(
        ok(&home, &["--operator", "friend", "search", &word])["total"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert_eq!(
        ok(&home, &["--operator", "intruder", "search", &word])["total"],
        0
    );
    let (code, v) = home.json(&[
        "--operator",
        "intruder",
        "triage",
        "show",
        &msgs[1].0.to_string(),
    ]);
    assert_eq!(code, 1, "{v}");
    let (code, _) = home.json(&[
        "--operator",
        "intruder",
        "triage",
        "delete",
        &msgs[1].0.to_string(),
    ]);
    assert_eq!(code, 1);
    let (code, _) = home.json(&["--operator", "intruder", "triage", "list", "--account", "p"]);
    assert_eq!(code, 1);
    // The owner's action does not exist for the intruder's undo; the friend it is shared with
    // may undo it.
    let v = ok(
        &home,
        &[
            "--operator",
            "owner1",
            "triage",
            "block",
            &msgs[3].0.to_string(),
        ],
    );
    let action = v["action_id"].as_i64().unwrap().to_string();
    let (code, v) = home.json(&["--operator", "intruder", "undo", &action]);
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"]["summary"]
            .as_str()
            .unwrap()
            .contains("no such action"),
        "{v}"
    );
    ok(&home, &["--operator", "friend", "undo", &action]);
}

/// Sends exact bytes through the local submission server (for crafted MIME).
fn smtp_send_raw(from: &str, to: &str, raw: &[u8]) {
    use lettre::address::Envelope;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let pem = std::fs::read(&servers().ca).unwrap();
    let tls = TlsParameters::builder("127.0.0.1".into())
        .add_root_certificate(Certificate::from_pem(&pem).unwrap())
        .build_rustls()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(SUBMISSION)
            .tls(Tls::Required(tls))
            .credentials(Credentials::new(from.to_string(), PASSWORD.to_string()))
            .build();
        let env = Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
        t.send_raw(&env, raw).await.unwrap();
    });
}

#[test]
fn triage_show_converts_html_lists_attachments_and_strips_escapes() {
    let u = user("crm-show");
    let sender = user("crm-html");
    let home = Home::new();
    home.add_account("w", &u);
    let raw = format!(
        "From: =?UTF-8?Q?Evil=1B]0;pwned=07_Corp?= <{sender}>\r\nTo: <{u}>\r\n\
         Subject: =?UTF-8?Q?Quote=1B[2J_request?=\r\nMessage-ID: <html-1@crm.test>\r\n\
         Date: Tue, 03 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <html><body><p>Hello <b>there</b>,</p><ul><li>ten widgets</li></ul>\
         <script>alert(1)</script></body></html>\r\n\
         --b1\r\nContent-Type: application/pdf; name=\"offer.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"offer.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJSBtYWlscm9vbQo=\r\n--b1--\r\n"
    );
    smtp_send_raw(&sender, &u, raw.as_bytes());
    wait_for("the crafted mail in INBOX", Duration::from_secs(20), || {
        (server_count(&u, "INBOX", &["header", "message-id", "html-1@crm.test"]) == 1).then_some(())
    });
    sync_once(&home, "w");
    let queue = triage_ids(&home, &[]);
    assert_eq!(queue.len(), 1);
    let id = queue[0].to_string();
    let v = ok(&home, &["triage", "show", &id]);
    let m = &v["message"];
    assert_eq!(m["attachments"][0]["name"], "offer.pdf", "{v}");
    assert_eq!(
        m["attachments"][0]["content_type"], "application/pdf",
        "{v}"
    );
    let text = m["text"].as_str().unwrap_or_else(|| panic!("no text: {v}"));
    assert!(
        text.contains("Hello") && text.contains("ten widgets"),
        "{text}"
    );
    assert!(
        !text.contains("<p>") && !text.contains("<b>"),
        "HTML converted: {text}"
    );
    // Human output never carries terminal escapes from the message.
    let out = home.run(&["triage", "show", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let human = stdout(&out);
    assert!(
        !human.contains('\u{1b}') && !human.contains('\u{7}'),
        "{human:?}"
    );
    assert!(
        human.contains("offer.pdf") && human.contains("Quote"),
        "{human}"
    );
    let out = home.run(&["triage", "list"]);
    assert!(!stdout(&out).contains('\u{1b}'), "{}", stdout(&out));
}

#[test]
fn removing_history_keeps_pairings_and_a_resync_brings_them_back() {
    let u = user("crm-hist");
    seed(&u, 8);
    let home = Home::new();
    home.add_account("w", &u);
    sync_once(&home, "w");
    let queue = triage_ids(&home, &[]);
    let x = queue[0];
    let c = ok(
        &home,
        &[
            "customers",
            "add",
            "--name",
            "Kept",
            "--email",
            "kept@example.com",
        ],
    );
    let cid = c["customer"]["id"].as_i64().unwrap();
    ok(
        &home,
        &[
            "triage",
            "pair",
            &x.to_string(),
            "--customer",
            &cid.to_string(),
        ],
    );
    // Disabling with --keep-history keeps everything.
    ok(&home, &["account", "disable", "w", "--keep-history"]);
    assert_eq!(cached(&home).len(), 8);
    ok(&home, &["account", "enable", "w"]);
    // --remove-history drops the cache, never the pairing, the customer or the audit log.
    ok(&home, &["account", "disable", "w", "--remove-history"]);
    let db = home.db();
    let manual = db.count(
        "SELECT COUNT(*) FROM matches WHERE message_id = ?1 AND customer_id = ?2 AND rule = 'manual'",
        args![x, cid],
    );
    assert_eq!(manual, 1);
    let left = db.count("SELECT COUNT(*) FROM locations", &[]);
    assert_eq!(left, 0);
    assert!(
        ok(&home, &["customers", "list"])["customers"]
            .as_array()
            .unwrap()
            .len()
            == 1
    );
    let audit = ok(&home, &["audit"]);
    assert!(audit.to_string().contains("triage.pair"), "{audit}");
    // Re-enabled and synced again: the same logical message, still paired, no duplicates.
    ok(&home, &["account", "enable", "w"]);
    sync_once(&home, "w");
    let msgs = cached(&home);
    assert_eq!(msgs.len(), 8, "{msgs:?}");
    assert!(msgs.iter().any(|m| m.0 == x));
    assert_eq!(
        timeline(&home, cid, &[]).get(&x).map(String::as_str),
        Some("manual")
    );
    assert!(!triage_ids(&home, &[]).contains(&x));
}

#[test]
fn deny_lists_global_and_per_account_hide_mail_and_apply_during_sync() {
    let u = user("crm-deny");
    let s = user("crm-den2");
    seed(&u, 40);
    let home = Home::new();
    home.add_account("w", &u);
    sync_once(&home, "w");
    let msgs = cached(&home);
    // A three-label sender domain (x.co.uk, x.co.jp): denying its parent covers it.
    let (_, deep, _) = msgs
        .iter()
        .find(|(_, f, _)| {
            f.rsplit_once('@')
                .is_some_and(|(_, d)| d.matches('.').count() >= 2)
        })
        .expect("the seed has a three-label domain")
        .clone();
    let domain = deep.rsplit_once('@').unwrap().1.to_string();
    let parent = domain.split_once('.').unwrap().1.to_string();
    let hit: HashSet<i64> = msgs
        .iter()
        .filter(|(_, f, _)| {
            f.ends_with(&format!(".{parent}")) || f.ends_with(&format!("@{parent}"))
        })
        .map(|m| m.0)
        .collect();
    assert!(!hit.is_empty());
    let before = triage_ids(&home, &[]);
    let v = ok(
        &home,
        &[
            "deny",
            "add",
            &format!("@{}", parent.to_uppercase()),
            "--global",
        ],
    );
    assert_eq!(v["pattern"], parent.as_str(), "{v}");
    let after = triage_ids(&home, &[]);
    assert_eq!(after.len(), before.len() - hit.len());
    assert!(after.iter().all(|id| !hit.contains(id)));
    let list = ok(&home, &["deny", "list"]);
    assert_eq!(
        list["deny"],
        serde_json::json!([{"scope": "global", "pattern": parent}])
    );
    let config = home.settings_text();
    assert!(
        config.contains(&format!("deny = [\"{parent}\"]")),
        "{config}"
    );
    // A per-account address entry applies to mail that sync stores afterwards.
    ok(&home, &["deny", "add", &s, "--account", "w"]);
    smtp_send(&s, &u, "Denied by address", "x");
    wait_for("the SMTP mail in INBOX", Duration::from_secs(20), || {
        (server_count(&u, "INBOX", &["subject", "Denied by address"]) == 1).then_some(())
    });
    sync_once(&home, "w");
    let (id, denied): (i64, i64) = home.db().row(
        "SELECT id, denied FROM messages WHERE subject = 'Denied by address'",
        &[],
    );
    assert_eq!(denied, 1);
    assert!(!triage_ids(&home, &[]).contains(&id));
    // Removing entries brings the mail back.
    ok(&home, &["deny", "remove", &parent, "--global"]);
    ok(&home, &["deny", "remove", &s, "--account", "w"]);
    let back = triage_ids(&home, &[]);
    assert!(hit.iter().all(|h| back.contains(h)) && back.contains(&id));
    // Bad input is a usage error with the fix; removing what is not there says so.
    let (code, v) = home.json(&["deny", "add", "not a domain", "--global"]);
    assert_eq!(code, 64, "{v}");
    let (code, v) = home.json(&["deny", "remove", "never.test", "--global"]);
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"]["fix"].as_str().unwrap().contains("deny list"),
        "{v}"
    );
}

/// (Message-ID, customer, rule) of every pairing.
type Pairs = Vec<(String, i64, String)>;
/// (Message-ID, customer or 0, denied) of every message.
type Flags = Vec<(String, i64, i64)>;

/// Every pairing in the cache by Message-ID, and each message's customer and denied flag.
fn pairings(home: &Home) -> (Pairs, Flags) {
    let db = home.db();
    (
        db.rows(
            "SELECT m.message_id, x.customer_id, x.rule FROM matches x
             JOIN messages m ON m.id = x.message_id ORDER BY 1, 2",
            &[],
        ),
        db.rows(
            "SELECT message_id, COALESCE(customer_id, 0), denied FROM messages ORDER BY 1",
            &[],
        ),
    )
}

/// Issue 16: a first sync with the customer book in place decides only the mail that can match
/// (its sender is in the book) and then the replies; the same mailbox synced without a book and
/// matched afterwards by importing it (one pass over every message) ends with the same pairings.
#[test]
fn a_first_sync_with_a_book_pairs_like_a_full_pass_afterwards() {
    let u = user("crm-bulk");
    seed(&u, 400);
    let later = Home::new();
    later.add_account("w", &u);
    sync_once(&later, "w");
    let msgs = cached(&later);
    assert_eq!(msgs.len(), 400);
    let senders = distinct_senders(&msgs);
    assert!(senders.len() >= 6, "{senders:?}");
    let domain = senders[5].rsplit_once('@').unwrap().1.to_string();
    let csv = format!(
        "name,emails,domains\nFirst,{},\nSecond,{},\nByDomain,,{domain}\n",
        senders[0], senders[1]
    );
    let first = Home::new();
    first.add_account("w", &u);
    for home in [&later, &first] {
        let r = import_book(home, &csv);
        assert_eq!(r["imported"], 3, "{r}");
    }
    // The first sync with the book in place takes the path that decides only what can match.
    let out = first.run(&["-vv", "--json", "sync", "w", "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("deciding only the new mail that can match"),
        "{}",
        stderr(&out)
    );
    assert!(
        first
            .db()
            .rows::<i64>("SELECT message_id FROM crm_pending", &[])
            .is_empty(),
        "everything examined"
    );
    let (got, flags) = pairings(&first);
    let rules: HashSet<&str> = got.iter().map(|p| p.2.as_str()).collect();
    assert!(
        rules.contains("address") && rules.contains("domain"),
        "{got:?}"
    );
    eprintln!(
        "measured: {} pairings after a first sync with a book, rules {rules:?}",
        got.len()
    );
    assert_eq!((got, flags), pairings(&later));
}
