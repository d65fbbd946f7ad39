//! Benchmark for issue 5: matching 100k cached messages against 10k customers, and `triage list`
//! / `search` at 100k messages. Run with `scripts/bench-crm` (or `cargo bench --bench crm`);
//! `CRM_BENCH_MESSAGES` / `CRM_BENCH_CUSTOMERS` scale it.
//!
//! Library timings measure the work itself; "cli" timings run the real binary against the same
//! home and include process start, config load and opening the database.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use mailroom::config::{Config, Home};
use mailroom::crm::{self, Desk};
use mailroom::store::{FixtureMessage, Store};

mod common;
use common::{Rng, size};

const WORDS: &[&str] = &[
    "invoice",
    "order",
    "delivery",
    "meeting",
    "contract",
    "quote",
    "payment",
    "shipping",
    "update",
    "question",
    "support",
    "renewal",
    "license",
    "account",
    "schedule",
    "report",
    "project",
    "feedback",
    "proposal",
    "discount",
    "warranty",
    "return",
    "pallet",
    "container",
    "customs",
];

fn timed<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let v = f();
    println!("{label:<58} {:>9.1} ms", t.elapsed().as_secs_f64() * 1000.0);
    v
}

fn cli(home: &Path, args: &[&str]) -> (f64, String) {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("--home")
        .arg(home)
        .arg("--operator")
        .arg("bench")
        .args(args)
        .output()
        .expect("mailroom runs");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (ms, String::from_utf8_lossy(&out.stdout).to_string())
}

fn main() {
    let n_msgs: usize = size("CRM_BENCH_MESSAGES", 100_000, 2_000);
    let n_cust: usize = size("CRM_BENCH_CUSTOMERS", 10_000, 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home {
        root: dir.path().to_path_buf(),
    };
    std::fs::write(
        home.config_path(),
        "[accounts.work]\nid = \"acc-work\"\nemail = \"me@ours.test\"\nuser = \"me\"\n\
         imap = { host = \"127.0.0.1\", port = 1993 }\nsmtp = { host = \"127.0.0.1\", port = 1587 }\n",
    )
    .expect("config");
    let config = Config::load(&home).expect("config loads");
    let store = Store::open(&home.db_path()).expect("db");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    println!("crm benchmark: {n_msgs} messages, {n_cust} customers\n");

    // The customer book: one or two addresses each, every tenth with a domain.
    let mut csv = String::from("name,company,emails,domains\n");
    for i in 0..n_cust {
        let extra = if i % 3 == 0 {
            format!(";c{i}.alt@cust{i}.example")
        } else {
            String::new()
        };
        let domain = if i % 10 == 0 {
            format!("corp{i}.example")
        } else {
            String::new()
        };
        csv.push_str(&format!(
            "Customer {i},Company {},c{i}@cust{i}.example{extra},{domain}\n",
            i % 997
        ));
    }
    let report = timed(
        &format!("import {n_cust} customers from CSV (incl. rematch of 0 msgs)"),
        || crm::csvio::import(&store, &config, csv.as_bytes()).expect("import"),
    );
    assert_eq!(report.imported, n_cust, "{:?}", report.errors.first());

    // The cache: 30% from customer addresses, 10% from customer domains, 10% outbound to
    // customers, 10% replies by thread participants, 40% strangers (the triage queue).
    let inbox = store
        .fixture_folder("acc-work", "INBOX", Some("inbox"))
        .expect("folder");
    let sent = store
        .fixture_folder("acc-work", "Sent", Some("sent"))
        .expect("folder");
    let mut ids = Vec::with_capacity(n_msgs);
    timed(
        &format!("insert {n_msgs} fixture messages (setup, not crm work)"),
        || {
            store
                .atomically(|s| {
                    for i in 0..n_msgs {
                        let c = rng.below(n_cust as u64);
                        let kind = rng.below(10);
                        let body: Vec<&str> = (0..60).map(|_| rng.pick(WORDS)).collect();
                        let mut m = FixtureMessage {
                            message_id: Some(format!("m{i}@bench")),
                            from_addr: format!("c{c}@cust{c}.example"),
                            to: vec!["me@ours.test".into()],
                            subject: format!("{} {} #{i}", rng.pick(WORDS), rng.pick(WORDS)),
                            date: format!(
                                "2024-{:02}-{:02}T{:02}:{:02}:00Z",
                                1 + i * 12 / n_msgs,
                                1 + i % 28,
                                i % 24,
                                i % 60
                            ),
                            direction: "in",
                            text_body: Some(body.join(" ")),
                            ..Default::default()
                        };
                        let mut folder = inbox;
                        match kind {
                            0..=2 => {}
                            3 => m.from_addr = format!("someone{i}@corp{}.example", c - c % 10),
                            4 => {
                                m.direction = "out";
                                m.from_addr = "me@ours.test".into();
                                m.to = vec![format!("c{c}@cust{c}.example")];
                                folder = sent;
                            }
                            5 if i > 10 => {
                                let parent = i - 1 - rng.below(10) as usize;
                                m.from_addr = "me@ours.test".into();
                                m.in_reply_to = Some(format!("m{parent}@bench"));
                                m.direction = "out";
                                folder = sent;
                            }
                            _ => {
                                m.from_addr = format!(
                                    "stranger{}@unknown{}.example",
                                    rng.below(50_000),
                                    rng.below(5_000)
                                )
                            }
                        }
                        ids.push(s.fixture_message("acc-work", folder, i as i64 + 1, &m)?);
                    }
                    Ok(())
                })
                .expect("insert");
        },
    );

    println!();
    timed("search index build for all messages (fts_reindex)", || {
        store.atomically(|s| s.fts_reindex(&ids)).expect("fts")
    });
    let s = timed(
        &format!("rematch_all: {n_msgs} msgs x {n_cust} customers, first run"),
        || crm::rematch_all(&store, &config).expect("rematch"),
    );
    println!(
        "    → matched {} of {}, wrote {} changes",
        s.matched, s.examined, s.changed
    );
    let s2 = timed("rematch_all again, nothing changed", || {
        crm::rematch_all(&store, &config).expect("rematch")
    });
    assert_eq!(s2.changed, 0);
    let batch: Vec<i64> = ids[ids.len() - 500..].to_vec();
    store
        .atomically(|s| s.fixture_unexamine(&ids))
        .expect("reset");
    let s3 = timed(
        &format!("match_pending: all {n_msgs} as after an initial sync"),
        || crm::match_pending(&store, &config).expect("pending"),
    );
    assert_eq!(s3.examined, n_msgs);
    timed("match_messages: one sync batch of 500", || {
        crm::match_messages(&store, &batch, &config).expect("match")
    });

    println!();
    let visible = crm::visible_accounts(&config, "bench");
    let mut desk = Desk::new(&store, &home, config.clone(), "bench", visible);
    let page = timed("triage list, first page of 100 (library)", || {
        desk.list(None, 100, 0).expect("list")
    });
    println!("    → {} in the queue", page.total);
    timed("triage list, page 100 of the queue (offset 10000)", || {
        desk.list(None, 100, 10_000).expect("list")
    });
    let accounts = vec!["acc-work".to_string()];
    for q in [
        "invoice",
        "customs pallet",
        "\"warranty return\"",
        "stranger123",
        "#4242",
    ] {
        let (total, _) = timed(&format!("search {q:<20} (library, first 50)"), || {
            let today = chrono::Utc::now().date_naive();
            let parsed = crm::query::parse(q, today).expect("query");
            crm::search::search(&store, &parsed, &accounts, 50).expect("search")
        });
        println!("    → {total} hits");
    }

    println!();
    let first = page.messages.first().expect("a queue").id;
    timed(
        "triage pair (adds the address, rematches what it affects)",
        || desk.pair(first, 1).expect("pair"),
    );
    timed("undo of that pair", || desk.undo(None, &[]).expect("undo"));
    drop(desk);
    drop(store);
    let (ms, _) = cli(dir.path(), &["--json", "triage", "list"]);
    println!("{:<58} {ms:>9.1} ms", "cli: mailroom --json triage list");
    let (ms, out) = cli(dir.path(), &["--json", "search", "invoice", "delivery"]);
    let total = serde_json::from_str::<serde_json::Value>(out.trim())
        .map(|v| v["total"].clone())
        .unwrap_or_default();
    println!(
        "{:<58} {ms:>9.1} ms   ({total} hits)",
        "cli: mailroom --json search invoice delivery"
    );
    let (ms, _) = cli(dir.path(), &["--json", "customers", "show", "42"]);
    println!(
        "{:<58} {ms:>9.1} ms",
        "cli: mailroom --json customers show 42 (timeline)"
    );
    let (ms, _) = cli(
        dir.path(),
        &[
            "--json",
            "customers",
            "add",
            "--name",
            "New",
            "--email",
            "stranger7@unknown7.example",
        ],
    );
    println!(
        "{:<58} {ms:>9.1} ms",
        "cli: customers add --email (rematches what it affects)"
    );
}
