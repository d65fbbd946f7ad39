//! Issue 14: the console as a daily driver, driven in tmux against the real servers — browse a
//! folder, flag, move, delete and archive (the server checked with doveadm), search with
//! filters, compose with Bcc, an attachment and Reply-To (recipients, the Sent copy and the
//! Drafts copy checked), resend an uncertain outbox item, and a body that appears by itself
//! once the server (behind the test's proxy) is back. Also the CLI's search language.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::common::*;
use super::send::user;
use super::tui::Tmux;

/// How many messages of `folder` have this subject, on the server.
fn on_server(user: &str, folder: &str, subject: &str) -> usize {
    let out = doveadm(&["search", "-u", user, "mailbox", folder, "subject", subject]);
    stdout(&out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// The server's flags of the message with this subject in `folder`.
fn server_flags(user: &str, folder: &str, subject: &str) -> String {
    let out = doveadm(&[
        "fetch", "-u", user, "flags", "mailbox", folder, "subject", subject,
    ]);
    stdout(&out)
}

/// The whole message (headers and body) as the server stores it.
fn server_text(user: &str, folder: &str, subject: &str) -> String {
    let out = doveadm(&[
        "fetch", "-u", user, "text", "mailbox", folder, "subject", subject,
    ]);
    stdout(&out)
}

fn wait_count(user: &str, folder: &str, subject: &str, n: usize) {
    wait_for(
        &format!("{n} × {subject:?} in {folder} of {user}"),
        Duration::from_secs(40),
        || (on_server(user, folder, subject) == n).then_some(()),
    );
}

fn delivered(user: &str, at_least: usize) {
    wait_for("the mail delivered", Duration::from_secs(30), || {
        let out = doveadm(&["search", "-u", user, "mailbox", "INBOX", "all"]);
        (stdout(&out).lines().count() >= at_least).then_some(())
    });
}

/// `/` in the mail pane: the search, and its hits shown.
fn search(t: &Tmux, query: &str) {
    t.keys(&["/"]);
    t.wait_screen("Search: words", Duration::from_secs(10));
    t.keys(&["C-u"]);
    t.text(query);
    t.keys(&["Enter"]);
    t.wait_screen(&format!("Search: {query}"), Duration::from_secs(10));
}

/// A console on `home` with its mail pane open on the account's INBOX.
fn mail_pane(home: &Home, name: &str, first: &str) -> Tmux {
    let t = Tmux::start(home, name, &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    t.keys(&["9"]);
    t.wait_screen("/INBOX", Duration::from_secs(30));
    t.wait_screen(first, Duration::from_secs(60));
    t
}

#[test]
fn mail_pane_browses_a_folder_and_flags_moves_deletes_and_archives_on_the_server() {
    servers();
    let me = user("mail-browse");
    seed(&me, 12);
    for s in [
        "Flag me e2e",
        "Move me e2e",
        "Delete me e2e",
        "Archive me e2e",
    ] {
        smtp_send("alice@example.test", &me, s, "a message to act on\n");
    }
    delivered(&me, 16);
    let home = Home::new();
    home.add_account("main", &me);
    home.set_account_option("main", "sync.poll_secs", toml_edit::value(1));
    let t = mail_pane(&home, "mail-browse", "Archive me e2e");

    // Browse: the folder tree with the account and its unread count, the index by thread.
    let screen = t.wait_screen("main/INBOX · threads", Duration::from_secs(10));
    assert!(screen.contains("▾ main"), "{screen}");
    assert!(screen.contains("Sent"), "{screen}");
    // Every message instead (T), and back.
    t.keys(&["T"]);
    t.wait_screen("main/INBOX ", Duration::from_secs(10));
    // The title comes before the rows ("reading…" under a loaded machine): wait for them.
    t.wait_screen("Flag me e2e", Duration::from_secs(10));
    t.keys(&["T"]);
    t.wait_screen("main/INBOX · threads", Duration::from_secs(10));

    // Flag: on the server through the queue, and the message says it got there.
    search(&t, "subject:\"Flag me e2e\"");
    t.wait_screen("1/1", Duration::from_secs(10));
    t.keys(&["f"]);
    wait_for("\\Flagged on the server", Duration::from_secs(40), || {
        server_flags(&me, "INBOX", "Flag me e2e")
            .contains("\\Flagged")
            .then_some(())
    });
    t.wait_screen("on the server since", Duration::from_secs(20));
    // Read: \Seen on the server.
    assert!(!server_flags(&me, "INBOX", "Flag me e2e").contains("\\Seen"));
    t.keys(&["u"]);
    wait_for("\\Seen on the server", Duration::from_secs(40), || {
        server_flags(&me, "INBOX", "Flag me e2e")
            .contains("\\Seen")
            .then_some(())
    });

    // Move with the folder picker.
    search(&t, "subject:\"Move me e2e\"");
    t.wait_screen("1/1", Duration::from_secs(10));
    t.keys(&["m"]);
    t.wait_screen("Move to a folder of main", Duration::from_secs(10));
    t.text("Archive");
    t.keys(&["Enter"]);
    wait_count(&me, "Archive", "Move me e2e", 1);
    wait_count(&me, "INBOX", "Move me e2e", 0);

    // Delete: to Trash.
    search(&t, "subject:\"Delete me e2e\"");
    t.wait_screen("1/1", Duration::from_secs(10));
    t.keys(&["d"]);
    wait_count(&me, "Trash", "Delete me e2e", 1);
    wait_count(&me, "INBOX", "Delete me e2e", 0);

    // Archive: to the Archive folder.
    search(&t, "subject:\"Archive me e2e\"");
    t.wait_screen("1/1", Duration::from_secs(10));
    t.keys(&["e"]);
    wait_count(&me, "Archive", "Archive me e2e", 1);
    wait_count(&me, "INBOX", "Archive me e2e", 0);
    // Nothing was left queued.
    wait_for("the queue empty", Duration::from_secs(30), || {
        let open: i64 = home.db().count(
            "SELECT COUNT(*) FROM pending_ops WHERE done_at IS NULL",
            mailroom::args![],
        );
        (open == 0).then_some(())
    });

    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);
}

#[test]
fn search_from_and_since_in_the_console_and_the_cli() {
    servers();
    let me = user("mail-search");
    seed(&me, 20);
    smtp_send(
        "alice@example.test",
        &me,
        "Fresh from alice",
        "the invoice is attached\n",
    );
    smtp_send(
        "bob@example.test",
        &me,
        "Fresh from bob",
        "re: hello there\n",
    );
    delivered(&me, 22);
    let home = Home::new();
    home.add_account("main", &me);
    let out = home.run(&["sync", "main", "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let today = chrono::Utc::now().date_naive().to_string();

    // The CLI: filters narrow, words search, a bad date says so with the fix.
    let (code, v) = home.json(&["search", "from:alice", &format!("since:{today}")]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["messages"][0]["subject"], "Fresh from alice", "{v}");
    assert_eq!(v["messages"][0]["folder"], "INBOX", "{v}");
    let (_, v) = home.json(&["search", "subject:Fresh"]);
    assert_eq!(v["total"], 2, "{v}");
    // The seeded mail is older than today.
    let (_, v) = home.json(&["search", &format!("before:{today}")]);
    assert_eq!(v["total"], 20, "{v}");
    let (_, v) = home.json(&["search", "is:unread", "from:bob"]);
    assert_eq!(v["total"], 1, "{v}");
    // Text that only looks like a filter is words: "re:" and "hello" (bob's body).
    let (code, v) = home.json(&["search", "re: hello"]);
    assert_eq!(code, 0, "{v}");
    assert!(
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["subject"] == "Fresh from bob"),
        "{v}"
    );
    let (code, v) = home.json(&["search", "since:2026-13-01"]);
    assert_eq!(code, 64, "{v}");
    assert!(
        v["error"]["summary"]
            .as_str()
            .unwrap()
            .contains("since:2026-13-01"),
        "{v}"
    );
    assert!(
        v["error"]["fix"].as_str().unwrap().contains("YYYY-MM-DD"),
        "{v}"
    );
    let (code, v) = home.json(&["search", "account:nosuch", "x"]);
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"]["summary"]
            .as_str()
            .unwrap()
            .contains("no such account"),
        "{v}"
    );
    // Human output: the hit with where it is.
    let out = home.run(&["search", "from:\"alice\"", "Fresh"]);
    assert!(stdout(&out).contains("main/INBOX"), "{}", stdout(&out));

    // The console: the same search at `/`.
    let t = mail_pane(&home, "mail-search", "Fresh from bob");
    search(&t, &format!("from:alice since:{today}"));
    let screen = t.wait_screen("Fresh from alice", Duration::from_secs(10));
    assert!(screen.contains(" 1/1 "), "{screen}");
    assert!(!screen.contains("Fresh from bob"), "{screen}");
    // A bad date: the error and its fix, in place of the hits.
    search(&t, "before:soon");
    let screen = t.wait_screen("not a date", Duration::from_secs(10));
    assert!(screen.contains("fix: write a day"), "{screen}");
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);
}

#[test]
fn compose_sends_with_bcc_attachment_and_reply_to_and_keeps_a_draft_until_sent() {
    servers();
    let me = user("mail-compose");
    let bob = user("mail-compose-to");
    let carol = user("mail-compose-bcc");
    let home = Home::new();
    home.add_account("main", &me);
    home.set_account_option("main", "sync.poll_secs", toml_edit::value(1));
    let file = home.path().join("report-e2e.txt");
    std::fs::write(&file, "attached from the console\n").unwrap();
    let subject = "Console compose e2e";

    let t = Tmux::start(&home, "mail-compose", &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    // The account's folders are known (Drafts among them) once it synced.
    wait_for("the folders listed", Duration::from_secs(30), || {
        let (_, v) = home.json(&["folders", "main"]);
        v.to_string().contains("\"drafts\"").then_some(())
    });
    t.keys(&["6"]);
    t.wait_screen("Compose: New message", Duration::from_secs(10));
    // From (the account) → To → Cc → Bcc → Reply-To → Subject → Attach → Body.
    t.keys(&["Tab"]);
    t.text(&bob);
    t.keys(&["Tab", "Tab"]);
    t.text(&carol);
    t.keys(&["Tab"]);
    t.text("replies@example.test");
    t.keys(&["Tab"]);
    t.text(subject);
    t.keys(&["Tab"]);
    t.text(&file.display().to_string());
    t.keys(&["Tab"]);
    t.text("Body from the console.");
    // Saved as typed; ctrl-d stores it in the Drafts folder too.
    wait_for("the draft saved", Duration::from_secs(10), || {
        let n: i64 = home.db().count(
            "SELECT COUNT(*) FROM drafts WHERE subject = ?1 AND body LIKE '%console.'",
            mailroom::args![subject],
        );
        (n == 1).then_some(())
    });
    t.keys(&["C-d"]);
    t.wait_screen("stored in Drafts", Duration::from_secs(30));
    wait_count(&me, "Drafts", subject, 1);

    t.keys(&["C-s"]);
    t.wait_screen("Outbox 1/", Duration::from_secs(30));
    t.wait_screen("verified", Duration::from_secs(60));
    // Every recipient, the Bcc included, is on the item.
    let (_, list) = home.json(&["outbox"]);
    let to = list["items"][0]["to"].to_string();
    assert!(to.contains(&bob) && to.contains(&carol), "{list}");

    // bob: Reply-To and the attachment, no trace of the Bcc.
    wait_count(&bob, "INBOX", subject, 1);
    let text = server_text(&bob, "INBOX", subject);
    assert!(text.contains("Reply-To: replies@example.test"), "{text}");
    assert!(text.contains("report-e2e.txt"), "{text}");
    assert!(text.contains("Body from the console."), "{text}");
    assert!(!text.contains(&carol) && !text.contains("Bcc:"), "{text}");
    // carol got it through the Bcc; the Sent copy holds the same message.
    wait_count(&carol, "INBOX", subject, 1);
    wait_count(&me, "Sent", subject, 1);
    let sent = server_text(&me, "Sent", subject);
    assert!(sent.contains("report-e2e.txt") && sent.contains("Reply-To: replies@example.test"));
    // Sent: its draft is gone, here and in the Drafts folder.
    wait_count(&me, "Drafts", subject, 0);
    let drafts: i64 = home
        .db()
        .count("SELECT COUNT(*) FROM drafts", mailroom::args![]);
    assert_eq!(drafts, 0);
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);
}

#[test]
fn a_draft_typed_before_a_quit_is_there_on_the_next_start() {
    let home = Home::new();
    let me = user("mail-draft");
    home.add_account("main", &me);
    let t = Tmux::start(&home, "mail-draft", &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    t.keys(&["6"]);
    t.wait_screen("Compose: New message", Duration::from_secs(10));
    t.keys(&["Tab", "Tab", "Tab", "Tab", "Tab"]);
    t.text("Kept across a quit");
    t.wait_screen("draft saved", Duration::from_secs(10));
    // Quit from the From field (letters are keys there), as an operator would after Esc.
    t.keys(&["Escape"]);
    t.wait_screen("Accounts — overall", Duration::from_secs(10));
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);
    drop(t);
    let t = Tmux::start(&home, "mail-draft2", &[], &[]);
    t.wait_screen("a draft was restored", Duration::from_secs(20));
    t.keys(&["6"]);
    t.wait_screen("Kept across a quit", Duration::from_secs(10));
    t.keys(&["Escape"]);
    t.wait_screen("Accounts — overall", Duration::from_secs(10));
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);
}

#[test]
fn an_uncertain_item_is_resent_from_the_outbox_pane_after_asking() {
    servers();
    let me = user("mail-unc");
    let bob = user("mail-unc-b");
    let home = Home::new();
    home.add_account("main", &me);
    // The process dies after SMTP accepted the message, before it could say so.
    let out = home
        .cmd()
        .env("MAILROOM_FAILPOINT", "before_sent_commit")
        .args(["send", "--to", &bob, "--subject", "Uncertain e2e"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    home.run(&["outbox", "flush"]);
    home.run(&["outbox", "flush"]);
    let (_, list) = home.json(&["outbox"]);
    let item = list["items"][0].clone();
    assert_eq!(item["state"], "uncertain", "{item}");
    wait_count(&bob, "INBOX", "Uncertain e2e", 1);

    let t = Tmux::start(&home, "mail-unc", &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    t.keys(&["7"]);
    // (The dashboard says "1 uncertain" too: wait for the Outbox pane's own words.)
    let screen = t.wait_screen(
        "may or may not have been delivered",
        Duration::from_secs(10),
    );
    assert!(screen.contains(&bob), "the recipients show:\n{screen}");
    assert!(
        screen.contains("may or may not have been delivered"),
        "{screen}"
    );
    t.keys(&["R"]);
    t.wait_screen("gets it twice", Duration::from_secs(10));
    t.keys(&["n"]);
    t.wait_screen("Outbox 1/1", Duration::from_secs(10));
    assert_eq!(on_server(&bob, "INBOX", "Uncertain e2e"), 1, "no means no");
    t.keys(&["R"]);
    t.wait_screen("gets it twice", Duration::from_secs(10));
    t.keys(&["y"]);
    t.wait_screen("verified", Duration::from_secs(60));
    wait_count(&bob, "INBOX", "Uncertain e2e", 2);
    wait_count(&me, "Sent", "Uncertain e2e", 1);
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);
}

/// A TCP proxy the test switches off (the listener closed, live connections cut: the server
/// is unreachable) and on again (the same port).
struct Switch {
    port: u16,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Switch {
    fn start(target: u16) -> Switch {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let up = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (u, s) = (up.clone(), stop.clone());
        std::thread::spawn(move || serve(port, target, u, s));
        let sw = Switch { port, up, stop };
        sw.wait_listening(true);
        sw
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        self.wait_listening(up);
    }

    fn wait_listening(&self, up: bool) {
        wait_for("the proxy to switch", Duration::from_secs(10), || {
            let ok = TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            (ok == up).then_some(())
        });
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(port: u16, target: u16, up: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let mut listener: Option<TcpListener> = None;
    while !stop.load(Ordering::SeqCst) {
        if !up.load(Ordering::SeqCst) {
            listener = None;
            for c in live.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        if listener.is_none() {
            listener = TcpListener::bind(("127.0.0.1", port)).ok();
            if let Some(l) = &listener {
                l.set_nonblocking(true).unwrap();
            }
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        match l.accept() {
            Ok((client, _)) => {
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut v = live.lock().unwrap();
                v.push(client.try_clone().unwrap());
                v.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn a_body_the_server_cannot_send_now_says_why_and_appears_when_it_is_back() {
    servers();
    let me = user("mail-offline");
    smtp_send(
        "alice@example.test",
        &me,
        "Offline body e2e",
        "This body came once the server was back.\n",
    );
    delivered(&me, 1);
    let proxy = Switch::start(IMAPS);
    let home = Home::new();
    let out = home.account_add("main", &me, proxy.port, SUBMISSION, &[], PASSWORD);
    assert!(out.status.success(), "{}", stderr(&out));
    // Headers only (no body prefetch), short backoffs.
    home.set_account_option("main", "sync.body_prefetch_max_bytes", toml_edit::value(0));
    home.set_account_option("main", "sync.backoff_min_secs", toml_edit::value(1));
    home.set_account_option("main", "sync.poll_secs", toml_edit::value(1));
    let t = Tmux::start(&home, "mail-offline", &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    // The console's sync stores the headers (no body: nothing opened it yet).
    wait_for("the headers cached", Duration::from_secs(60), || {
        let n: i64 = home.db().count(
            "SELECT COUNT(*) FROM messages WHERE subject = 'Offline body e2e'",
            mailroom::args![],
        );
        (n == 1).then_some(())
    });
    let body_cached: i64 = home
        .db()
        .count("SELECT COUNT(*) FROM bodies", mailroom::args![]);
    assert_eq!(body_cached, 0, "only the headers are cached");

    // The server goes away; the message opened now shows its headers and says why the body
    // is missing — never "fetching…" for ever.
    proxy.set(false);
    t.keys(&["9"]);
    t.wait_screen("Offline body e2e", Duration::from_secs(20));
    search(&t, "subject:\"Offline body e2e\"");
    t.wait_screen("1/1", Duration::from_secs(10));
    t.keys(&["Enter"]);
    t.wait_screen("┌ Message #", Duration::from_secs(10));
    let screen = t.wait_screen("The server cannot be reached", Duration::from_secs(60));
    assert!(
        screen.contains("Offline body e2e"),
        "the headers show:\n{screen}"
    );
    assert!(screen.contains("appears by itself"), "{screen}");
    assert!(!screen.contains("This body came"), "{screen}");

    // Back: the body appears by itself while the message stays open.
    proxy.set(true);
    let screen = t.wait_screen(
        "This body came once the server was back.",
        Duration::from_secs(60),
    );
    assert!(!screen.contains("cannot be reached"), "{screen}");
    t.keys(&["Escape"]);
    t.wait_screen("Search: subject", Duration::from_secs(10));
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);
}
