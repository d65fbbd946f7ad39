//! The sync writer's share of a first header sync, without the network: N generated header
//! blocks (parsed before the clock starts) stored the way the writer stores a fetch — one
//! open transaction, a commit every 10 000 messages — into a fresh store on disk, beside the
//! same rows inserted into bare tables with no index as the floor of SQLite itself.
//! Run with `cargo bench --bench store_write` (`STORE_BENCH_MESSAGES` scales it, default
//! 100 000; `STORE_BENCH_RUNS` repeats it, default 3; `STORE_BENCH_SQL` is run on the fresh
//! store before the clock starts, to try a schema change). `cargo test --all-targets` runs it
//! at a small size as a smoke test.

use std::time::Instant;

use mailroom::mail::parse::parse_headers;
use mailroom::model::{FolderInfo, Role};
use mailroom::store::{NewMessage, Store};

mod common;
use common::{Rng, size};

const WORDS: &[&str] = &[
    "invoice", "order", "delivery", "meeting", "contract", "quote", "payment", "shipping",
    "update", "question", "support", "renewal", "license", "account", "schedule", "report",
];

/// Header blocks like the sync benchmark's seeded mailbox: 2 000 senders, one or two
/// recipients, a Cc on every fifth, a quarter replies (In-Reply-To and References to earlier
/// mail), dated in arrival order (a few minutes apart) except every tenth, dated anywhere in
/// the two years before (mail moved in from elsewhere).
fn headers(n: usize) -> Vec<String> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    (0..n)
        .map(|i| {
            let from = rng.below(2000);
            let mut h = format!(
                "Date: {}\r\nFrom: Sender {from} <sender{from}@host{}.example>\r\n\
                 To: Desk <desk@ours.example>{}\r\n",
                chrono::DateTime::from_timestamp(
                    if rng.below(10) == 0 {
                        1_700_000_000 + rng.below(63_000_000) as i64
                    } else {
                        1_763_000_000 + i as i64 * 300 + rng.below(300) as i64
                    },
                    0
                )
                    .map(|d| d.to_rfc2822())
                    .unwrap_or_default(),
                from % 300,
                if rng.below(2) == 0 {
                    format!(", Other {0} <other{0}@ours.example>", rng.below(50))
                } else {
                    String::new()
                },
            );
            if i % 5 == 0 {
                h.push_str(&format!("Cc: cc{0}@partner.example\r\n", rng.below(100)));
            }
            h.push_str(&format!(
                "Subject: {} {} #{i}\r\nMessage-ID: <m{i}.{}@bench.example>\r\n",
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.next() % 1_000_000,
            ));
            if i > 10 && rng.below(4) == 0 {
                let parent = rng.below(i as u64);
                h.push_str(&format!(
                    "In-Reply-To: <m{parent}.0@bench.example>\r\nReferences: <m{parent}.0@bench.example>\r\n"
                ));
            }
            h.push_str("\r\n");
            h
        })
        .collect()
}

fn new_messages(blocks: &[String]) -> Vec<NewMessage> {
    blocks
        .iter()
        .enumerate()
        .map(|(i, h)| NewMessage {
            uid: i as u32 + 1,
            flags: if i % 3 == 0 {
                vec![]
            } else {
                vec!["\\Seen".into()]
            },
            size: 2000 + h.len() as u32,
            internal_date: None,
            modseq: Some(i as u64 + 1),
            env: parse_headers(h.as_bytes()).expect("a generated header parses"),
            headers: h.as_bytes().to_vec(),
            denied: false,
            direction: "in",
            body: None,
        })
        .collect()
}

/// Seconds to store `msgs` through the sync writer's path into a fresh store.
fn writer(msgs: &[NewMessage]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = Store::open(&dir.path().join("bench.db")).expect("store");
    main.insert_account("a", "bench", true).expect("account");
    let mut main = main;
    main.upsert_folders(
        "a",
        &[FolderInfo {
            name: "INBOX".into(),
            wire_name: "INBOX".into(),
            delimiter: None,
            attributes: vec![],
            selectable: true,
            role: Some(Role::Inbox),
            role_source: None,
        }],
    )
    .expect("folders");
    let folder = main
        .folder_by_name("a", "INBOX")
        .expect("folder")
        .expect("INBOX")
        .id;
    if let Ok(sql) = std::env::var("STORE_BENCH_SQL") {
        // A schema change tried without a build (an index dropped, one made partial).
        rusqlite::Connection::open(dir.path().join("bench.db"))
            .expect("a second connection to the bench store")
            .execute_batch(&sql)
            .expect("STORE_BENCH_SQL runs");
    }
    let mut store = main.reopen().expect("writer connection");
    let t = Instant::now();
    for batch in msgs.chunks(10_000) {
        let last = batch.last().map(|m| m.uid);
        store
            .store_batch("a", folder, 1, batch, last)
            .expect("stored");
    }
    t.elapsed().as_secs_f64()
}

/// Seconds to insert the same values into two bare tables (no index, no search entry): what
/// SQLite itself needs for the rows.
fn bare(msgs: &[NewMessage]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = rusqlite::Connection::open(dir.path().join("bare.db")).expect("db");
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA page_size = 8192;
         CREATE TABLE m (id INTEGER PRIMARY KEY, message_id TEXT, content_hash TEXT, from_addr TEXT,
            subject TEXT, date TEXT, headers BLOB, refs TEXT, in_reply_to TEXT);
         CREATE TABLE l (id INTEGER PRIMARY KEY, message_id INTEGER, folder_id INTEGER, uid INTEGER,
            flags TEXT, seen INTEGER);",
    )
    .expect("schema");
    let t = Instant::now();
    for batch in msgs.chunks(10_000) {
        let tx = c.unchecked_transaction().expect("begin");
        for m in batch {
            let e = &m.env;
            tx.prepare_cached("INSERT INTO m (message_id, content_hash, from_addr, subject, date, headers, refs, in_reply_to) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .and_then(|mut s| {
                    s.execute(rusqlite::params![
                        e.message_id,
                        e.content_hash,
                        e.from.as_ref().map(|a| a.address.as_str()),
                        e.subject,
                        e.date,
                        m.headers,
                        e.references.join(" "),
                        e.in_reply_to
                    ])
                })
                .expect("row");
            let id = tx.last_insert_rowid();
            tx.prepare_cached("INSERT INTO l (message_id, folder_id, uid, flags, seen) VALUES (?1, 1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(rusqlite::params![id, m.uid, m.flags.join(" "), m.flags.is_empty()]))
                .expect("location");
        }
        tx.commit().expect("commit");
    }
    t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n = size("STORE_BENCH_MESSAGES", 100_000, 2_000);
    let runs = size("STORE_BENCH_RUNS", 3, 1).max(1);
    let msgs = new_messages(&headers(n));
    let mut w = Vec::new();
    let mut b = Vec::new();
    for _ in 0..runs {
        w.push(writer(&msgs));
        b.push(bare(&msgs));
    }
    let (w, b) = (median(w), median(b));
    let per = |s: f64| s * 1e6 / n as f64;
    println!("store_write: {n} messages, median of {runs}");
    println!(
        "  sync writer path    {:>8.3} s  {:>6.2} µs/message",
        w,
        per(w)
    );
    println!(
        "  bare tables (floor) {:>8.3} s  {:>6.2} µs/message",
        b,
        per(b)
    );
    println!("  writer / floor      {:>8.2}x", w / b);
}
