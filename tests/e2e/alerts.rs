//! Issue 19: alerts, end to end against the real servers. The server is taken away through the
//! test's proxy; a command channel writes each event it gets (the JSON from stdin, and its
//! environment) to files in the test's home; a mail alert goes through the test Postfix relay
//! into a fresh mailbox; a webhook reaches an HTTP listener inside the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::*;
use super::proxy::{Mode, Proxy};
use super::sync::{account_for, user};

/// `sync.timeout_secs` of these tests' accounts.
const T: u64 = 3;
const RELAY: u16 = 6025;

/// An account `name` on `user` through `proxy`, quick to notice and to retry.
fn account(home: &Home, name: &str, user: &str, proxy: &Proxy, poll: i64) {
    account_for(home, name, user, proxy.port);
    for (k, v) in [
        ("sync.timeout_secs", T as i64),
        ("sync.body_prefetch_max_bytes", 0),
        ("sync.backoff_min_secs", 1),
        ("sync.backoff_max_secs", 2),
        ("sync.poll_secs", poll),
    ] {
        home.set_account_option(name, k, toml_edit::value(v));
    }
}

/// Sets `[alerts] KEY = VALUE` in the settings.
fn alerts_option(home: &Home, key: &str, value: i64) {
    home.set_option(&format!("alerts.{key}"), toml_edit::value(value));
}

/// `alerts set ARGS` must succeed; returns the channel.
fn set(home: &Home, args: &[&str]) -> Value {
    let mut full = vec!["alerts", "set"];
    full.extend_from_slice(args);
    let (code, v) = home.json(&full);
    assert_eq!(code, 0, "alerts set {args:?}: {v}");
    v["channel"].clone()
}

/// A command channel that appends each event JSON to `events.jsonl` and its environment to
/// `env.txt` in the home.
fn recorder(home: &Home) -> String {
    let dir = home.path().display();
    format!(
        "cat >> '{dir}/events.jsonl'; echo \"$MAILROOM_EVENT|$MAILROOM_ACCOUNT|$MAILROOM_STATE|${{MAILROOM_KEY:-no key}}\" >> '{dir}/env.txt'"
    )
}

/// The events the recorder got, in order.
fn recorded(home: &Home) -> Vec<Value> {
    std::fs::read_to_string(home.path().join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect()
}

fn state(home: &Home, name: &str) -> String {
    let (_, st) = home.json(&["status"]);
    st["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == name))
        .map(|a| a["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// The daemon, with the installation's key in MAILROOM_KEY (an alert command must never see
/// it), output to a file; killed when dropped.
fn daemon(home: &Home) -> Daemon {
    let key = std::fs::read_to_string(home.path().join("key")).expect("the key file");
    let log = std::fs::File::create(home.path().join("daemon.err")).unwrap();
    let child = home
        .cmd()
        .arg("daemon")
        .env("MAILROOM_KEY", key.trim())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the daemon starts");
    Daemon(child)
}

fn wait_idle(home: &Home, name: &str, within: Duration) {
    wait_for(&format!("{name} idle"), within, || {
        (state(home, name) == "idle").then_some(())
    });
}

/// The channel's last delivery state in `alerts list`.
fn last_state(home: &Home, id: u64) -> Option<String> {
    let (_, v) = home.json(&["alerts", "list"]);
    v["channels"].as_array()?.iter().find(|c| c["id"] == id)?["last"]["state"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn a_command_alert_runs_once_for_disconnected_and_once_for_recovered() {
    let user = user("alert-cmd");
    seed(&user, 5);
    let proxy = Proxy::start(IMAPS, Mode::Pass);
    let home = Home::new();
    account(&home, "d", &user, &proxy, 600);
    alerts_option(&home, "min_interval_secs", 1);
    let ch = set(&home, &["--command", &recorder(&home)]);
    assert_eq!(ch["id"], 1, "{ch}");
    let _d = daemon(&home);
    wait_idle(&home, "d", Duration::from_secs(30));
    // Let the watcher settle into IDLE.
    std::thread::sleep(Duration::from_millis(500)); // waiting for something NOT to happen
    assert!(recorded(&home).is_empty(), "a healthy start raises nothing");

    // Black-holed: the connections stay open and silent, so only the liveness probe can
    // tell (the harder case; a closed connection is noticed at once).
    let gone = Instant::now();
    proxy.go_away(true);
    let first = wait_for(
        "the disconnected alert",
        Duration::from_secs(4 * T + 10),
        || recorded(&home).first().cloned(),
    );
    let took = gone.elapsed();
    eprintln!("server gone: the alert command ran after {took:?}");
    assert!(
        took <= Duration::from_secs(2 * T),
        "within 2 × timeout_secs: {took:?}"
    );
    assert_eq!(first["event"], "disconnected", "{first}");
    assert_eq!(first["account"], "d", "{first}");
    assert_eq!(first["state"], "disconnected", "{first}");
    assert!(
        first["what"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{}", proxy.port)),
        "names the server: {first}"
    );
    assert!(
        first["fix"].as_str().unwrap().contains("retries"),
        "{first}"
    );
    assert!(
        first["code"].as_str().unwrap().starts_with("net."),
        "{first}"
    );
    for key in [
        "event", "account", "state", "at", "what", "fix", "code", "id", "host",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }

    proxy.come_back();
    wait_for("the recovered alert", Duration::from_secs(30), || {
        (recorded(&home).len() >= 2).then_some(())
    });
    // Retries while it was gone, and the passes since: no more alerts.
    std::thread::sleep(Duration::from_secs(3)); // waiting for something NOT to happen
    let events = recorded(&home);
    assert_eq!(kinds(&events), ["disconnected", "recovered"], "{events:?}");
    let back = &events[1];
    assert_eq!(
        (back["account"].as_str(), back["state"].as_str()),
        (Some("d"), Some("idle"))
    );
    assert_eq!(back["code"], Value::Null);
    assert_ne!(back["id"], first["id"]);
    let env = std::fs::read_to_string(home.path().join("env.txt")).unwrap();
    assert_eq!(
        env.lines().collect::<Vec<_>>(),
        [
            "disconnected|d|disconnected|no key",
            "recovered|d|idle|no key"
        ],
        "the environment names event, account and state; the sealing key stays out"
    );

    // Recorded: the channel's last delivery, the event log, the audit log.
    wait_for("the delivery recorded", Duration::from_secs(10), || {
        (last_state(&home, 1).as_deref() == Some("delivered")).then_some(())
    });
    let (_, log) = home.json(&["log"]);
    let log = log.to_string();
    assert!(log.contains("alert d: disconnected"), "{log}");
    assert!(
        log.contains("alert d: recovered through channel 1: delivered (exit 0)"),
        "{log}"
    );
    let (_, audit) = home.json(&["audit"]);
    let actions: Vec<String> = audit["audit"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["action"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        actions.iter().filter(|a| *a == "alert").count(),
        2,
        "{audit}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "alert_delivered").count(),
        2,
        "{audit}"
    );
    let (_, st) = home.json(&["status"]);
    assert_eq!(st["alerts"]["undelivered"], 0, "{st}");
}

/// An HTTP listener in the test: records each POST (path, body) and answers the statuses in
/// `script` in turn (then 200).
struct Hook {
    port: u16,
    got: Arc<Mutex<Vec<(String, String)>>>,
}

impl Hook {
    fn start(script: Vec<u16>) -> Hook {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let (g, n) = (got.clone(), Arc::new(AtomicUsize::new(0)));
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let status = script
                    .get(n.fetch_add(1, Ordering::SeqCst))
                    .copied()
                    .unwrap_or(200);
                if let Some(req) = serve(s, status) {
                    g.lock().unwrap().push(req);
                }
            }
        });
        Hook { port, got }
    }

    fn requests(&self) -> Vec<(String, String)> {
        self.got.lock().unwrap().clone()
    }
}

fn serve(mut s: TcpStream, status: u16) -> Option<(String, String)> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, len) = loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            break (i + 4, len);
        }
    };
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    let reason = if status == 200 { "OK" } else { "Oops" };
    let _ = s.write_all(
        format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    Some((path, body))
}

/// The alert mails in `user`'s INBOX whose subject names `account`: (subject, text).
fn alert_mails(user: &str, account: &str) -> Vec<(String, String)> {
    let out = doveadm(&[
        "fetch",
        "-u",
        user,
        "hdr.subject text",
        "mailbox",
        "INBOX",
        "all",
    ]);
    let text = stdout(&out);
    let mut mails = Vec::new();
    // doveadm separates messages with a form feed line.
    for m in text.split('\u{c}') {
        let Some(subject) = m.lines().find_map(|l| l.strip_prefix("hdr.subject: ")) else {
            continue;
        };
        if subject.contains(&format!("[mailroom] {account}:")) {
            mails.push((subject.trim().to_string(), m.to_string()));
        }
    }
    mails
}

#[test]
fn a_mail_alert_arrives_once_and_a_webhook_gets_the_same_event() {
    let user = user("alert-mail");
    let rcpt = user_named("alert-rcpt");
    seed(&user, 3);
    let proxy = Proxy::start(IMAPS, Mode::Pass);
    let home = Home::new();
    let name = format!("m{}", std::process::id());
    account(&home, &name, &user, &proxy, 600);
    alerts_option(&home, "retry_min_secs", 1);
    let relay = format!("127.0.0.1:{RELAY}");
    let (code, v) = home.json(&[
        "system-smtp",
        "set",
        "--smtp",
        &relay,
        "--smtp-security",
        "none",
        "--smtp-auth",
        "none",
    ]);
    assert_eq!(code, 0, "{v}");
    let mail = set(
        &home,
        &["--mail-to", &rcpt, "--from", "alerts@example.test"],
    );
    assert_eq!(
        (mail["kind"].as_str(), mail["target"].as_str()),
        (Some("mail"), Some(rcpt.as_str()))
    );
    // The webhook answers 500 first: the alert is retried with backoff and gets through.
    let hook = Hook::start(vec![500]);
    let url = format!("http://127.0.0.1:{}/hook/s3cr3t-token", hook.port);
    let wh = set(&home, &["--webhook", &url, "--account", &name]);
    assert_eq!(
        wh["target"],
        format!("http://127.0.0.1:{}/…", hook.port),
        "{wh}"
    );
    let config = home.settings_text();
    assert!(
        !config.contains("s3cr3t"),
        "the URL's token is sealed, not written: {config}"
    );
    let listed = home.run(&["alerts", "list"]);
    assert!(!stdout(&listed).contains("s3cr3t"), "{}", stdout(&listed));

    let _d = daemon(&home);
    wait_idle(&home, &name, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500)); // waiting for something NOT to happen
    proxy.go_away(false);

    let mails = wait_for("the alert mail", Duration::from_secs(60), || {
        let m = alert_mails(&rcpt, &name);
        (!m.is_empty()).then_some(m)
    });
    let posts = wait_for(
        "the webhook's second (successful) try",
        Duration::from_secs(30),
        || {
            let r = hook.requests();
            (r.len() >= 2).then_some(r)
        },
    );
    let (path, body) = &posts[1];
    assert_eq!(path, "/hook/s3cr3t-token", "the full URL is used");
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (event["event"].as_str(), event["account"].as_str()),
        (Some("disconnected"), Some(name.as_str())),
        "{event}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&posts[0].1).unwrap(),
        event,
        "a retry is the same event"
    );
    let (subject, text) = &mails[0];
    assert_eq!(subject, &format!("[mailroom] {name}: disconnected"));
    assert!(
        text.contains("What:  ") && text.contains(&format!("127.0.0.1:{}", proxy.port)),
        "what failed, naming the server: {text}"
    );
    assert!(
        text.contains(&format!("\"id\": {}", event["id"])),
        "the mail carries the same event as the webhook: {text}"
    );
    // Once: no second mail, no third POST, while the server stays away and sync retries.
    std::thread::sleep(Duration::from_secs(4)); // waiting for something NOT to happen
    assert_eq!(alert_mails(&rcpt, &name).len(), 1);
    assert_eq!(hook.requests().len(), 2);
    let (_, l) = home.json(&["alerts", "list"]);
    let chans = l["channels"].as_array().unwrap();
    assert_eq!(chans[0]["last"]["state"], "delivered", "{l}");
    assert!(
        chans[0]["last"]["result"]
            .as_str()
            .unwrap()
            .contains("through the system SMTP profile"),
        "{l}"
    );
    assert_eq!(chans[1]["last"]["state"], "delivered", "{l}");
    assert_eq!(chans[1]["last"]["result"], "HTTP 200 OK", "{l}");
    let (_, log) = home.json(&["log", "--level", "warn"]);
    assert!(
        log.to_string().contains("answered HTTP 500 Oops"),
        "the failed try is logged: {log}"
    );
    proxy.come_back();
}

/// A fresh mailbox that Dovecot already knows (the relay delivers to it at once).
fn user_named(prefix: &str) -> String {
    user(prefix)
}

#[test]
fn flapping_five_times_yields_at_most_two_alerts_and_one_digest() {
    let user = user("alert-flap");
    seed(&user, 3);
    let proxy = Proxy::start(IMAPS, Mode::Pass);
    let home = Home::new();
    account(&home, "f", &user, &proxy, 600);
    alerts_option(&home, "min_interval_secs", 40);
    set(&home, &["--command", &recorder(&home)]);
    let _d = daemon(&home);
    wait_idle(&home, "f", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500)); // waiting for something NOT to happen
    let started = Instant::now();
    for i in 0..5 {
        proxy.go_away(false);
        wait_for(
            &format!("flap {i}: disconnected"),
            Duration::from_secs(4 * T + 5),
            || (state(&home, "f") == "disconnected").then_some(()),
        );
        proxy.come_back();
        wait_idle(&home, "f", Duration::from_secs(20));
    }
    let flapped = started.elapsed();
    eprintln!("five flaps took {flapped:?}");
    assert!(
        flapped < Duration::from_secs(60),
        "within a minute: {flapped:?}"
    );
    let digest = wait_for("the digest", Duration::from_secs(60), || {
        recorded(&home).into_iter().find(|e| e["event"] == "digest")
    });
    std::thread::sleep(Duration::from_secs(3)); // waiting for something NOT to happen
    let events = recorded(&home);
    let alerts: Vec<&Value> = events.iter().filter(|e| e["event"] != "digest").collect();
    let digests = events.len() - alerts.len();
    eprintln!("flapping: {:?}", kinds(&events));
    assert!(
        alerts.len() <= 2,
        "at most two alerts: {:?}",
        kinds(&events)
    );
    assert_eq!(digests, 1, "one digest: {:?}", kinds(&events));
    assert_eq!(alerts[0]["event"], "disconnected");
    // The digest holds what was held back: the rest of the ten transitions.
    let held = digest["held"].as_array().unwrap();
    assert_eq!(held.len() + alerts.len(), 10, "{digest}");
    assert!(
        digest["what"].as_str().unwrap().contains("held back"),
        "{digest}"
    );
    assert_eq!(digest["state"], "idle", "{digest}");
    assert_eq!(digest["account"], "f");
}

#[test]
fn an_alert_command_that_hangs_or_fails_changes_nothing_in_sync() {
    let user = user("alert-hang");
    seed(&user, 3);
    let proxy = Proxy::start(IMAPS, Mode::Pass);
    let home = Home::new();
    account(&home, "h", &user, &proxy, 600);
    alerts_option(&home, "min_interval_secs", 1);
    alerts_option(&home, "retry_min_secs", 1);
    alerts_option(&home, "retry_max_secs", 2);
    // One channel hangs (killed after its 2 s), one fails at once; both retry all along.
    set(&home, &["--command", "sleep 613", "--timeout-secs", "2"]);
    set(&home, &["--command", "echo broken >&2; exit 3"]);
    let d = daemon(&home);
    wait_idle(&home, "h", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500)); // waiting for something NOT to happen

    let gone = Instant::now();
    proxy.go_away(false);
    wait_for("disconnected", Duration::from_secs(4 * T + 10), || {
        (state(&home, "h") == "disconnected").then_some(())
    });
    let noticed = gone.elapsed();
    assert!(
        noticed <= Duration::from_secs(2 * T),
        "noticed as without alerts: {noticed:?}"
    );
    let back = Instant::now();
    proxy.come_back();
    wait_idle(&home, "h", Duration::from_secs(30));
    let recovered = back.elapsed();
    eprintln!(
        "with a hanging and a failing alert: disconnected after {noticed:?}, idle {recovered:?} after the server came back"
    );
    assert!(
        recovered < Duration::from_millis(2400 + 3000),
        "within one backoff step: {recovered:?}"
    );
    // New mail still arrives while alert commands hang.
    smtp_send(&user, &user, "while an alert hangs", "hello");
    wait_for("the new mail synced", Duration::from_secs(30), || {
        let (_, v) = home.json(&["messages", "h", "--limit", "100"]);
        (v["messages"].as_array().map_or(0, |m| m.len()) == 4).then_some(())
    });
    // Both deliveries failed in words and are retried; status and the list show it.
    let (_, l) = wait_for("both failures recorded", Duration::from_secs(30), || {
        let (c, l) = home.json(&["alerts", "list"]);
        let ch = l["channels"].as_array()?;
        let codes: Vec<&str> = ch
            .iter()
            .filter_map(|c| c["last"]["code"].as_str())
            .collect();
        (codes == ["alert.timeout", "alert.command_failed"]
            && ch.iter().all(|c| c["undelivered"].as_i64() > Some(0)))
        .then_some((c, l))
    });
    let ch = l["channels"].as_array().unwrap();
    assert_eq!(ch[0]["last"]["result"], "timed out", "{l}");
    assert_eq!(ch[1]["last"]["result"], "exit 3", "{l}");
    assert_eq!(ch[0]["last"]["state"], "retrying", "{l}");
    let (_, st) = home.json(&["status"]);
    assert!(st["alerts"]["undelivered"].as_i64() >= Some(2), "{st}");
    assert!(st["alerts"]["last_error"]["fix"].as_str().is_some(), "{st}");
    let human = home.run(&["status"]);
    assert!(
        stdout(&human).contains("not delivered"),
        "{}",
        stdout(&human)
    );
    // Stopped, the daemon leaves no alert command behind (a running one goes with it).
    let mut d = d;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &d.0.id().to_string()])
        .status();
    let ended = wait_for("the daemon to stop", Duration::from_secs(30), || {
        d.0.try_wait().ok().flatten()
    });
    assert!(ended.success(), "{ended:?}");
    let left = std::process::Command::new("pgrep")
        .args(["-f", "sleep 613"])
        .output()
        .unwrap();
    assert!(
        stdout(&left).trim().is_empty(),
        "left behind: {}",
        stdout(&left)
    );
}

#[test]
fn two_consoles_and_a_daemon_send_each_alert_once() {
    let user = user("alert-once");
    seed(&user, 3);
    let proxy = Proxy::start(IMAPS, Mode::Pass);
    let home = Home::new();
    // poll_secs 2: a process waiting for the lease asks again every 2 s.
    account(&home, "o", &user, &proxy, 2);
    // No quiet window: every transition is an alert of its own, so each counts here.
    alerts_option(&home, "min_interval_secs", 0);
    set(&home, &["--command", &recorder(&home)]);
    let mut d = daemon(&home);
    wait_idle(&home, "o", Duration::from_secs(30));
    let c1 = super::tui::Tmux::start(&home, "alert-c1", &[], &[]);
    let c2 = super::tui::Tmux::start(&home, "alert-c2", &[], &[]);
    c1.wait_screen("Accounts — overall", Duration::from_secs(20));
    c2.wait_screen("Accounts — overall", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1)); // waiting for something NOT to happen

    // The daemon holds the lease: it alerts; the consoles wait.
    proxy.go_away(false);
    wait_for(
        "the disconnected alert",
        Duration::from_secs(4 * T + 10),
        || (!recorded(&home).is_empty()).then_some(()),
    );
    wait_for("the delivery recorded", Duration::from_secs(10), || {
        (last_state(&home, 1).as_deref() == Some("delivered")).then_some(())
    });
    // The daemon dies; a console takes the lease over and alerts from then on.
    let _ = d.0.kill();
    let _ = d.0.wait();
    proxy.come_back();
    wait_for("the recovered alert", Duration::from_secs(45), || {
        (recorded(&home).len() >= 2).then_some(())
    });
    // Both consoles keep running: nothing is sent twice.
    proxy.go_away(false);
    wait_for(
        "the second disconnected alert",
        Duration::from_secs(4 * T + 10),
        || (recorded(&home).len() >= 3).then_some(()),
    );
    proxy.come_back();
    wait_for(
        "the second recovered alert",
        Duration::from_secs(30),
        || (recorded(&home).len() >= 4).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(4)); // waiting for something NOT to happen
    let events = recorded(&home);
    assert_eq!(
        kinds(&events),
        ["disconnected", "recovered", "disconnected", "recovered"],
        "each alert once: {events:?}"
    );
    let ids: std::collections::HashSet<String> =
        events.iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(ids.len(), 4, "four events: {events:?}");
    // A console holds the lease now (the daemon is gone): it was a console that alerted.
    let holder: i64 = home.db().value("SELECT holder_pid FROM leases", &[]);
    assert_ne!(holder, d.0.id() as i64);
    assert!(
        Path::new(&format!("/proc/{holder}")).exists(),
        "a live console holds it"
    );
    c1.keys(&["q"]);
    c2.keys(&["q"]);
    drop(d);
}

#[test]
fn alerts_set_list_test_and_remove_say_what_they_did() {
    let home = Home::new();
    let user = new_user("alert-cli");
    home.add_account("w", &user);
    // Usage: one kind per channel, known events, plain http only to loopback.
    let out = home.run(&["alerts", "set", "--command", "x", "--webhook", "https://h/"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let (code, v) = home.json(&["alerts", "set", "--command", "x", "--on", "error,nope"]);
    assert_eq!(code, 64, "{v}");
    assert!(
        v["error"]["fix"].as_str().unwrap().contains("login_needed"),
        "{v}"
    );
    let (code, v) = home.json(&["alerts", "set", "--webhook", "http://hooks.example.test/x"]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (64, Some("alert.plain_http")),
        "{v}"
    );
    let (code, v) = home.json(&["alerts", "set", "--mail-to", "ops@example.test"]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (64, Some("alert.no_route")),
        "{v}"
    );
    let (code, v) = home.json(&[
        "alerts",
        "set",
        "--mail-to",
        "ops@example.test",
        "--via",
        "w",
    ]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (64, Some("alert.no_route")),
        "alone through the failing account: {v}"
    );
    let (code, v) = home.json(&["alerts", "test"]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (1, Some("nothing_to_do")),
        "{v}"
    );

    let dir = home.path().display().to_string();
    let ok = set(
        &home,
        &[
            "--command",
            &format!("cat > '{dir}/test.json'"),
            "--on",
            "all",
        ],
    );
    assert_eq!(ok["on"].as_array().unwrap().len(), 9);
    set(&home, &["--account", "w", "--command", "echo nope; exit 2"]);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    set(&home, &["--webhook", &format!("http://127.0.0.1:{port}/x")]);
    let (code, v) = home.json(&["alerts", "test"]);
    assert_eq!(code, 1, "one failed: {v}");
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 3, "{v}");
    assert_eq!(
        (r[0]["ok"].as_bool(), r[0]["result"].as_str()),
        (Some(true), Some("exit 0")),
        "{v}"
    );
    assert_eq!(
        (r[1]["ok"].as_bool(), r[1]["result"].as_str()),
        (Some(false), Some("exit 2")),
        "{v}"
    );
    assert_eq!(r[1]["output"], "nope", "{v}");
    assert_eq!(r[1]["error"]["code"], "alert.command_failed", "{v}");
    assert_eq!(r[2]["error"]["code"], "net.refused", "{v}");
    let got: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&dir).join("test.json")).unwrap())
            .unwrap();
    assert_eq!(
        (got["event"].as_str(), got["account"].clone()),
        (Some("test"), Value::Null),
        "{got}"
    );
    let human = home.run(&["alerts", "test"]);
    assert!(
        stdout(&human).contains("NOT delivered (exit 2)"),
        "{}",
        stdout(&human)
    );
    assert!(
        stdout(&human).contains("fix: run it by hand"),
        "{}",
        stdout(&human)
    );

    // Without a readable sealing key a command still runs (it needs no secret); the rest say
    // what is wrong with the key.
    let keyless = home
        .cmd()
        .args(["--json", "alerts", "test"])
        .env("MAILROOM_KEY", "not a key")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&keyless.stdout).unwrap_or(Value::Null);
    let r = v["results"].as_array().expect("results without a key");
    assert_eq!(r[0]["ok"], true, "{v}");
    assert_eq!(r[1]["result"], "exit 2", "{v}");

    let list = stdout(&home.run(&["alerts", "list"]));
    assert!(
        list.contains("at most one alert per account every 600 s"),
        "{list}"
    );
    assert!(
        list.contains("(every)") && list.contains("command echo nope; exit 2"),
        "{list}"
    );
    let (code, v) = home.json(&["alerts", "remove", "2"]);
    assert_eq!((code, v["removed"]["id"].as_u64()), (0, Some(2)), "{v}");
    let (code, v) = home.json(&["alerts", "remove", "2"]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (1, Some("not_found")),
        "{v}"
    );
    let (_, v) = home.json(&["alerts", "list"]);
    assert_eq!(v["channels"].as_array().unwrap().len(), 2, "{v}");
    let (_, audit) = home.json(&["audit"]);
    assert!(audit.to_string().contains("alert_test"), "{audit}");
}

#[test]
fn a_one_shot_sync_delivers_the_alerts_of_its_pass_before_it_ends() {
    // What a cron job running `sync --once` relies on: no daemon, and still told.
    let user = user("alert-cron");
    seed(&user, 2);
    let proxy = Proxy::start(IMAPS, Mode::Pass);
    let home = Home::new();
    account(&home, "c", &user, &proxy, 600);
    alerts_option(&home, "min_interval_secs", 0);
    set(&home, &["--command", &recorder(&home)]);
    let ok = home.run(&["sync", "c", "--once"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(recorded(&home).is_empty());
    proxy.go_away(false);
    let failed = home.run(&["sync", "c", "--once"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert_eq!(
        kinds(&recorded(&home)),
        ["disconnected"],
        "delivered before the command ended"
    );
    let again = home.run(&["sync", "c", "--once"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(recorded(&home).len(), 1, "a second failure is no news");
    proxy.come_back();
    let ok = home.run(&["sync", "c", "--once"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(kinds(&recorded(&home)), ["disconnected", "recovered"]);
}
