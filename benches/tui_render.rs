//! Console render-path benchmark (issue 6): a database with N cached messages (default 100k,
//! `MAILROOM_BENCH_MESSAGES`), then
//!   - startup: open + migrate the store, load theme and keymap, run the first loads the console
//!     asks for (dashboard + triage page) and draw the first frame;
//!   - keypress → redrawn frame: `update(action)` → run the Commands it returns against the
//!     store (what the I/O thread does) → `apply` → draw, for down/page-down/jump-to-end.
//!
//!   - the mail pane (issue 14): first visit (tree with counts, the INBOX's first page of
//!     threads, the preview), loading a page of the index by key (top, deep, before, bottom;
//!     threads and every message), a search's first page, and keypress → frame there.
//!
//! Frames are drawn to ratatui's TestBackend at 160×48 (the terminal write itself is excluded).
//! Run: `cargo bench --bench tui_render`.

use std::time::{Duration, Instant};

use mailroom::config::Home;
use mailroom::ops::Ctx;
use mailroom::store::Store;
use mailroom::tui::action::{Action, PaneId};
use mailroom::tui::app::App;
use mailroom::tui::{io, keymap::Keymap, theme::Theme, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn seed(path: &std::path::Path, n: usize) {
    drop(Store::open(path).expect("store opens"));
    let mut c = rusqlite::Connection::open(path).expect("db");
    let tx = c.transaction().expect("tx");
    tx.execute_batch(
        "INSERT INTO accounts (id, name, created_at, state, state_since) VALUES ('acc-bench','bench','2026-01-01T00:00:00Z','idle','2026-01-01T00:00:00Z');
         INSERT INTO folders (id, account_id, name, wire_name, role, sync_enabled) VALUES (1,'acc-bench','INBOX','INBOX','inbox',1);",
    )
    .expect("seed accounts");
    {
        let mut m = tx
            .prepare("INSERT INTO messages (id, message_id, content_hash, from_addr, from_name, subject, date, direction, created_at, to_json, thread_id, body, text_body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'in', '2026-01-01T00:00:00Z', '[]', ?8, 'x', ?9)")
            .expect("prepare");
        let mut l = tx
            .prepare("INSERT INTO locations (message_id, account_id, folder_id, uidvalidity, uid, seen) VALUES (?1, 'acc-bench', 1, 1, ?1, ?2)")
            .expect("prepare");
        for i in 0..n as i64 {
            let day = i / 500;
            let date = format!(
                "20{:02}-{:02}-{:02}T{:02}:{:02}:00Z",
                10 + day / 365,
                1 + (day % 365) / 31,
                1 + (day % 31).min(27),
                (i / 60) % 24,
                i % 60
            );
            m.execute(rusqlite::params![
                i + 1,
                format!("m{i}@bench.example"),
                format!("h{i}"),
                format!("sender{}@client{}.example", i % 997, i % 89),
                format!("Sender {}", i % 997),
                format!("Question {i} about the order — ünïcödé 注文"),
                date,
                // Every fourth message answers the one before it (a thread of two).
                if i % 4 == 3 { i } else { i + 1 },
                format!("Hello,\n\nabout order {i}: where is it?\n")
            ])
            .expect("insert message");
            l.execute(rusqlite::params![i + 1, i % 3 == 0])
                .expect("insert location");
        }
    }
    tx.commit().expect("commit");
    // Search reads the full-text index, which sync fills as it stores.
    let store = Store::open(path).expect("store");
    let ids = store.all_message_ids().expect("ids");
    store.fts_reindex(&ids).expect("fts");
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = std::env::var("MAILROOM_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home {
        root: dir.path().to_path_buf(),
    };
    std::fs::write(
        home.config_path(),
        "[accounts.bench]\nid = \"acc-bench\"\nemail = \"bench@example.test\"\nuser = \"bench@example.test\"\nimap = { host = \"127.0.0.1\", port = 993, security = \"tls\" }\nsmtp = { host = \"127.0.0.1\", port = 587, security = \"starttls\" }\n",
    )
    .expect("config");
    let t = Instant::now();
    seed(&home.db_path(), n);
    println!("seeded {n} messages in {:?}", t.elapsed());
    let ctx = Ctx::new(home, "bench");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let jobs = io::Jobs::new(rt.handle().clone(), tx.clone());
    let (w, h) = (160u16, 48u16);

    // Startup, measured several times (cold page cache only on the first run). The console
    // draws its first frame before any query ("reading…"); the second number is the first
    // frame that shows data.
    let mut startups = Vec::new();
    let mut first_frames = Vec::new();
    let mut triage_opens = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        {
            let config = ctx.config().expect("config");
            let theme = mailroom::tui::load_theme(&ctx.home, None, &config).expect("theme");
            let keymap = Keymap::new(&config.ui.keys).expect("keymap");
            let app = App::new(theme, keymap, (w, h));
            let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
            term.draw(|f| view::draw(f, &app)).expect("draw");
            first_frames.push(t.elapsed());
        }
        let t = Instant::now();
        let config = ctx.config().expect("config");
        let theme = mailroom::tui::load_theme(&ctx.home, None, &config).expect("theme");
        let keymap = Keymap::new(&config.ui.keys).expect("keymap");
        let mut io = io::Direct::new(&ctx, jobs.clone(), tx.clone());
        // What the console does at start: the dashboard (and the status line) with data.
        let mut app = App::new(theme, keymap, (w, h));
        let cmds = app.reload();
        run(&mut io, &mut app, cmds);
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        term.draw(|f| view::draw(f, &app)).expect("draw");
        startups.push(t.elapsed());
        assert!(app.dashboard.status.is_some());
        // Then the first visit to the triage inbox (count + first page + preview).
        let t = Instant::now();
        let cmds = app.update(Action::GoTo(PaneId::Triage));
        run(&mut io, &mut app, cmds);
        term.draw(|f| view::draw(f, &app)).expect("draw");
        triage_opens.push(t.elapsed());
        assert_eq!(app.triage.total, n, "every message is in triage");
    }
    let first = startups[0];
    let med = percentile(&mut startups, 0.5);
    let ff = percentile(&mut first_frames, 0.5);
    println!("startup to the first frame (config, theme, keymap, draw): median {ff:?}");
    println!(
        "startup to the first frame with data (store open, dashboard/status): first {first:?}, median {med:?}"
    );
    let to = percentile(&mut triage_opens, 0.5);
    println!("first visit to the triage inbox (count + page + preview, then frame): median {to:?}");
    let store = Store::open(&ctx.home.db_path()).expect("store");
    {
        // Where the startup time goes.
        let config = ctx.config().expect("config");
        let t = Instant::now();
        let _ = mailroom::ops::status::collect(&config, Some(&store)).expect("status");
        let status = t.elapsed();
        let t = Instant::now();
        let f = mailroom::store::TriageFilter {
            accounts: vec!["acc-bench".into()],
            own: vec![],
        };
        let _ = store.triage_count(&f).expect("count");
        let count = t.elapsed();
        let t = Instant::now();
        let first = mailroom::store::TriageWindow::Offset {
            offset: 0,
            limit: 200,
        };
        let _ = store.triage_rows(&f, first).expect("page");
        let page = t.elapsed();
        println!(
            "  of which: status (ops::status::collect) {status:?}, triage count {count:?}, first triage page {page:?}"
        );
    }
    drop(store);

    let mut io = io::Direct::new(&ctx, jobs.clone(), tx.clone());
    let mut app = App::new(Theme::dark(), Keymap::defaults(), (w, h));
    app.update(Action::GoTo(PaneId::Triage));
    let cmds = app.reload();
    run(&mut io, &mut app, cmds);
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    for (label, action, count) in [
        ("down (j)", Action::Down, 2000),
        ("page down", Action::PageDown, 500),
        ("jump end/top (G/g)", Action::Bottom, 100),
    ] {
        let mut times = Vec::new();
        let mut draws = Vec::new();
        for i in 0..count {
            let a = if label.starts_with("jump") && i % 2 == 1 {
                Action::Top
            } else {
                action.clone()
            };
            let t = Instant::now();
            let cmds = app.update(a);
            run(&mut io, &mut app, cmds);
            let td = Instant::now();
            term.draw(|f| view::draw(f, &app)).expect("draw");
            draws.push(td.elapsed());
            times.push(t.elapsed());
            if label.starts_with("page") && app.triage.selected + 1 >= n {
                app.update(Action::Top);
            }
        }
        let p50 = percentile(&mut times, 0.5);
        let p99 = percentile(&mut times, 0.99);
        let max = *times.last().unwrap_or(&Duration::ZERO);
        let d50 = percentile(&mut draws, 0.5);
        println!(
            "keypress → frame, {label:<19} n={count:<5} p50 {p50:?}  p99 {p99:?}  max {max:?}  (draw alone p50 {d50:?})"
        );
    }
    mail_bench(&ctx, &mut io, n);
    daily_bench(&ctx, &mut io, n);
}

/// Keypress → frame for `count` presses of `action` (then `back` every other press when given),
/// as "p50 … p99 …".
fn keys_to_frames(
    io: &mut io::Direct,
    app: &mut App,
    term: &mut Terminal<TestBackend>,
    action: Action,
    back: Option<Action>,
    count: usize,
) -> String {
    let mut times = Vec::new();
    for i in 0..count {
        let a = match (&back, i % 2) {
            (Some(b), 1) => b.clone(),
            _ => action.clone(),
        };
        let t = Instant::now();
        let cmds = app.update(a);
        run(io, app, cmds);
        term.draw(|f| view::draw(f, app)).expect("draw");
        times.push(t.elapsed());
    }
    spread(&mut times)
}

/// Issue 14 part B at 100k: the dashboard, the edit form, the protocol trace (a full ring) and a
/// big customer's timeline (every eighth message matched), keypress → frame at 160×48.
fn daily_bench(ctx: &Ctx, io: &mut io::Direct, n: usize) {
    use mailroom::store::{NewTraceLine, TRACE_RING};
    let (w, h) = (160u16, 48u16);
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    {
        let mut c = rusqlite::Connection::open(ctx.home.db_path()).expect("db");
        let tx = c.transaction().expect("tx");
        tx.execute_batch(
            "INSERT INTO customers (id, name, created_at, updated_at) VALUES (1, 'Big customer', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO matches (message_id, customer_id, rule, detail) SELECT id, 1, 'domain', 'client0.example' FROM messages WHERE id % 8 = 0;
             UPDATE messages SET customer_id = 1 WHERE id % 8 = 0;",
        )
        .expect("seed customer");
        tx.commit().expect("commit");
        let store = Store::open(&ctx.home.db_path()).expect("store");
        let lines: Vec<NewTraceLine> = (0..TRACE_RING)
            .map(|i| NewTraceLine {
                account_id: "acc-bench".into(),
                proto: "imap",
                dir: if i % 2 == 0 { "C" } else { "S" },
                level: if i % 3 == 0 { "debug" } else { "info" },
                line: format!("A{i:05} UID FETCH {i}:* (FLAGS)"),
            })
            .collect();
        store.append_trace(&lines).expect("trace");
    }
    let mut app = App::new(Theme::dark(), Keymap::defaults(), (w, h));
    let cmds = app.reload();
    run(io, &mut app, cmds);
    let d = keys_to_frames(io, &mut app, &mut term, Action::Down, Some(Action::Up), 500);
    println!("keypress → frame, dashboard (j/k)       n=500   {d}");
    app.update(Action::EditAccount);
    let cmds = vec![mailroom::tui::action::Command::LoadEdit {
        job: app.setup.edit.as_ref().map(|e| e.job).unwrap_or(0),
        name: "bench".into(),
    }];
    run(io, &mut app, cmds);
    app.setup.field = mailroom::tui::app::F_LOGIN;
    let d = keys_to_frames(io, &mut app, &mut term, Action::Input('x'), None, 500);
    println!("keypress → frame, edit form typing      n=500   {d}");
    let d = keys_to_frames(io, &mut app, &mut term, Action::NextField, None, 500);
    println!("keypress → frame, edit form tab         n=500   {d}");
    app.update(Action::Back);
    let cmds = app.update(Action::GoTo(PaneId::Log));
    run(io, &mut app, cmds);
    let t = Instant::now();
    let cmds = app.update(Action::ToggleTraceView);
    run(io, &mut app, cmds);
    term.draw(|f| view::draw(f, &app)).expect("draw");
    println!(
        "protocol trace, first page of a full ring ({} lines) + frame: {:?}",
        app.log.traces.total,
        t.elapsed()
    );
    let d = keys_to_frames(io, &mut app, &mut term, Action::PageDown, None, 200);
    println!("keypress → frame, trace page down       n=200   {d}");
    let cmds = app.update(Action::GoTo(PaneId::Customers));
    run(io, &mut app, cmds);
    let t = Instant::now();
    let cmds = app.update(Action::Open);
    run(io, &mut app, cmds);
    term.draw(|f| view::draw(f, &app)).expect("draw");
    println!(
        "customer timeline ({} messages), first page + frame: {:?}",
        app.customers.timeline.total,
        t.elapsed()
    );
    let d = keys_to_frames(io, &mut app, &mut term, Action::PageDown, None, 200);
    println!("keypress → frame, timeline page down    n=200   {d}");
    let d = keys_to_frames(
        io,
        &mut app,
        &mut term,
        Action::Bottom,
        Some(Action::Top),
        50,
    );
    println!("keypress → frame, timeline G/g          n=50    {d}");
    let _ = n;
}

/// p50 and p99 of `times`, as text.
fn spread(times: &mut [Duration]) -> String {
    let p50 = percentile(times, 0.5);
    let p99 = percentile(times, 0.99);
    format!("p50 {p50:?}  p99 {p99:?}")
}

/// The mail pane at 100k: page loads by key and keypress → frame.
fn mail_bench(ctx: &Ctx, io: &mut io::Direct, n: usize) {
    use mailroom::ops::mailbox::{self, Source, Window};
    let (w, h) = (160u16, 48u16);
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    let mut opens = Vec::new();
    for _ in 0..10 {
        let mut app = App::new(Theme::dark(), Keymap::defaults(), (w, h));
        let t = Instant::now();
        let cmds = app.update(Action::GoTo(PaneId::Mail));
        run(io, &mut app, cmds);
        term.draw(|f| view::draw(f, &app)).expect("draw");
        opens.push(t.elapsed());
        assert!(app.mail.index.total > 0, "the INBOX opened");
    }
    let first = opens[0];
    println!(
        "mail pane, first visit (tree + counts, INBOX threads count + first page + preview, frame): first {first:?}, then (counts cached until a commit) {}",
        spread(&mut opens[1..])
    );
    let t = Instant::now();
    let inbox = mailbox::tree(ctx).expect("tree")[0].folders[0].id;
    println!("  of which: the tree with unread counts {:?}", t.elapsed());
    for threads in [true, false] {
        let src = Source::Folder { id: inbox, threads };
        let t = Instant::now();
        let total = mailbox::count(ctx, &src).expect("count");
        let count = t.elapsed();
        let top = mailbox::window(ctx, &src, &Window::Top, 200).expect("top");
        let mut loads = Vec::new();
        let mut key = top.last().expect("rows").key.clone();
        // Walk deep by keys, timing every page.
        for _ in 0..(n / 400).min(100) {
            let t = Instant::now();
            let page = mailbox::window(ctx, &src, &Window::After(key.clone()), 200).expect("page");
            loads.push(t.elapsed());
            let Some(last) = page.last() else { break };
            key = last.key.clone();
        }
        let t = Instant::now();
        let bottom = mailbox::window(ctx, &src, &Window::Bottom, 200).expect("bottom");
        let tb = t.elapsed();
        let t = Instant::now();
        let _ = mailbox::window(ctx, &src, &Window::Before(bottom[0].key.clone()), 200)
            .expect("before");
        let tbe = t.elapsed();
        println!(
            "mail index ({}), {total} rows: count {count:?}; page of 200 by key {}; bottom {tb:?}; before the bottom {tbe:?}",
            if threads { "threads" } else { "every message" },
            spread(&mut loads)
        );
    }
    for q in [
        "from:sender5 since:2012-01-01",
        "order 4242",
        "is:unread before:2011-06-01",
    ] {
        let src = Source::Search { query: q.into() };
        let t = Instant::now();
        let total = mailbox::count(ctx, &src).expect("count");
        let count = t.elapsed();
        let t = Instant::now();
        let _ = mailbox::window(ctx, &src, &Window::Top, 200).expect("hits");
        println!(
            "search {q:<32} {total:>6} hits: count {count:?}, first page {:?}",
            t.elapsed()
        );
    }
    let mut app = App::new(Theme::dark(), Keymap::defaults(), (w, h));
    let cmds = app.update(Action::GoTo(PaneId::Mail));
    run(io, &mut app, cmds);
    for (label, action, count) in [
        ("mail down (j)", Action::Down, 2000),
        ("mail page down", Action::PageDown, 500),
        ("mail jump end/top", Action::Bottom, 100),
        ("mail thread open/close", Action::ToggleThread, 200),
    ] {
        let mut times = Vec::new();
        let mut draws = Vec::new();
        for i in 0..count {
            let a = if label.contains("jump") && i % 2 == 1 {
                Action::Top
            } else {
                action.clone()
            };
            let t = Instant::now();
            let cmds = app.update(a);
            run(io, &mut app, cmds);
            let td = Instant::now();
            term.draw(|f| view::draw(f, &app)).expect("draw");
            draws.push(td.elapsed());
            times.push(t.elapsed());
            if label.contains("page") && app.mail.index.selected + 1 >= app.mail.index.total {
                let cmds = app.update(Action::Top);
                run(io, &mut app, cmds);
            }
        }
        println!(
            "keypress → frame, {label:<24} n={count:<5} {}  (draw alone p50 {:?})",
            spread(&mut times),
            percentile(&mut draws, 0.5)
        );
    }
}

/// What the I/O thread does, synchronously, with answers applied at once.
fn run(io: &mut io::Direct, app: &mut App, mut cmds: Vec<mailroom::tui::action::Command>) {
    while !cmds.is_empty() {
        let mut next = Vec::new();
        for c in cmds {
            if let Some(d) = io.execute(c) {
                next.extend(app.apply(d));
            }
        }
        cmds = next;
    }
}
