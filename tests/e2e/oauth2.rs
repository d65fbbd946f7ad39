//! OAuth2 sign-in end to end (issue 15), against the oauth2 profile of the local servers:
//! Dovecot validating every token with the local authorization server (introspection), Postfix
//! authenticating through it, and the authorization server itself (device flow, authorization
//! code + PKCE with a loopback redirect, refresh with rotation, revocation, request counters).
//! Each test uses a client id of its own, so its counters, lifetimes and outages are its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::*;

pub(super) const IMAPS: u16 = 6993;
const IMAPS_BEARER: u16 = 6994;
pub(super) const SUBMISSION: u16 = 6587;
const SUBMISSION_BEARER: u16 = 6588;
const AUTH: &str = "127.0.0.1:6980";

/// Starts the oauth2 profile once per test process (a no-op when it runs).
pub(super) fn oauth2_servers() -> &'static Servers {
    static STARTED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let s = servers();
    STARTED.get_or_init(|| {
        let out = Command::new(repo().join("scripts/mailserver"))
            .args(["start", "--oauth2"])
            .stdin(Stdio::null())
            .output()
            .expect("scripts/mailserver runs");
        assert!(
            out.status.success(),
            "scripts/mailserver start --oauth2 failed: {}",
            stderr(&out)
        );
    });
    s
}

/// One HTTP/1.0 request to the local authorization server; (status, JSON body or a Location).
fn http(method: &str, path: &str, body: Option<&Value>) -> (u16, Value, Option<String>) {
    http_to(AUTH, method, path, body)
}

fn http_to(
    host: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value, Option<String>) {
    let mut s = std::net::TcpStream::connect(host).expect("the authorization server listens");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let location = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::Null),
        location,
    )
}

pub(super) fn admin(path: &str, body: Value) -> Value {
    let (st, v, _) = http("POST", &format!("/admin/{path}"), Some(&body));
    assert_eq!(st, 200, "admin {path}: {v}");
    v
}

/// The authorization server's request counters for one client id.
fn counts(client: &str) -> Value {
    let (_, v, _) = http("GET", &format!("/admin/stats?client_id={client}"), None);
    v["counts"].clone()
}

pub(super) fn count(client: &str, key: &str) -> u64 {
    counts(client)[key].as_u64().unwrap_or(0)
}

/// A client id of this test's own, with these settings on the authorization server.
pub(super) fn client(prefix: &str, settings: Value) -> String {
    let id = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut body = settings;
    body["client_id"] = json!(id);
    admin("config", body);
    id
}

/// `account add NAME --auth oauth2` against the oauth2 profile with the local authorization
/// server as a generic provider; the sign-in runs (its stderr is returned to drive it).
fn add_oauth(
    home: &Home,
    name: &str,
    user: &str,
    client: &str,
    ports: (u16, u16),
    extra: &[&str],
) -> Child {
    let ca = oauth2_servers().ca.to_string_lossy().to_string();
    let (imap, smtp) = (
        format!("127.0.0.1:{}", ports.0),
        format!("127.0.0.1:{}", ports.1),
    );
    let base = format!("http://{AUTH}");
    let (tok, dev, authz, rev) = (
        format!("{base}/token"),
        format!("{base}/device"),
        format!("{base}/authorize"),
        format!("{base}/revoke"),
    );
    let mut args = vec![
        "account",
        "add",
        name,
        "--auth",
        "oauth2",
        "--email",
        user,
        "--imap",
        &imap,
        "--smtp",
        &smtp,
        "--ca-file",
        &ca,
        "--oauth-client-id",
        client,
        "--oauth-token-url",
        &tok,
        "--oauth-device-url",
        &dev,
        "--oauth-auth-url",
        &authz,
        "--oauth-revoke-url",
        &rev,
        "--oauth-scopes",
        "imap smtp",
    ];
    args.extend_from_slice(extra);
    home.cmd()
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mailroom runs")
}

/// Reads the child's stderr until a line starts with `prefix`; returns the rest of that line
/// and every line read.
fn read_until(err: &mut BufReader<ChildStderr>, prefix: &str) -> (String, String) {
    let mut seen = String::new();
    let start = Instant::now();
    loop {
        let mut line = String::new();
        let n = err.read_line(&mut line).expect("stderr readable");
        assert!(
            n > 0,
            "no line starting with {prefix:?}; stderr was:\n{seen}"
        );
        seen.push_str(&line);
        if let Some(rest) = line.trim().strip_prefix(prefix) {
            return (rest.trim().to_string(), seen);
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{seen}");
    }
}

/// Approves the device code the child prints and waits for it to finish.
fn approve_device_login(mut child: Child, user: &str) -> (i32, String, String) {
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let (code, mut seen) = read_until(&mut err, "code:");
    admin(
        "device/approve",
        json!({"user_code": code, "username": user}),
    );
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        seen,
    )
}

/// An account signed in with the device flow, against these ports.
pub(super) fn signed_in(home: &Home, name: &str, user: &str, client: &str, ports: (u16, u16)) {
    let child = add_oauth(home, name, user, client, ports, &[]);
    let (rc, out, err) = approve_device_login(child, user);
    assert_eq!(rc, 0, "account add --auth oauth2: {out}\n{err}");
}

pub(super) fn account_test(home: &Home, name: &str) -> Value {
    let (rc, v) = home.json(&["account", "test", name]);
    assert_eq!(rc, 0, "account test: {v}");
    assert_eq!(v["ok"], true, "{v}");
    v
}

/// Every token-looking string (`mra_…`, `mrr_…`, `mrc_…`, `mrd_…`) under `dir`.
fn tokens_in(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap_or_default();
            for w in bytes.windows(4) {
                if w[0] == b'm' && w[1] == b'r' && b"arcd".contains(&w[2]) && w[3] == b'_' {
                    let at = w.as_ptr() as usize - bytes.as_ptr() as usize;
                    let tail: String = bytes[at..]
                        .iter()
                        .take(24)
                        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
                        .map(|b| *b as char)
                        .collect();
                    if tail.len() >= 12 {
                        found.push(format!("{}: {tail}", p.display()));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn device_flow_then_every_check_passes_with_xoauth2_and_remove_revokes() {
    oauth2_servers();
    let user = new_user("oauth-dev");
    let cid = client("dev", json!({}));
    let home = Home::new();
    signed_in(&home, "w", &user, &cid, (IMAPS, SUBMISSION));
    assert_eq!(count(&cid, "token.device_code.ok"), 1);

    let v = account_test(&home, "w");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 9);
    assert!(steps.iter().all(|s| s["status"] == "ok"), "{v}");
    assert!(
        step(&v, "login")["detail"]
            .as_str()
            .unwrap()
            .contains("XOAUTH2"),
        "{v}"
    );
    assert!(
        step(&v, "smtp_auth")["detail"]
            .as_str()
            .unwrap()
            .contains("XOAUTH2"),
        "{v}"
    );
    // Nothing refreshed: the token is fresh.
    assert_eq!(count(&cid, "token.refresh_token"), 0);
    let (_, show) = home.json(&["account", "show", "w"]);
    let o = &show["account"]["oauth2"];
    assert_eq!(
        (o["signed_in"].as_bool(), o["client_id"].as_str()),
        (Some(true), Some(cid.as_str()))
    );
    assert_eq!(show["account"]["password_source"], "oauth2");

    // Removing the account revokes its grant at the provider (RFC 7009).
    let (rc, v) = home.json(&["account", "remove", "w", "--purge"]);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["revoked"]["outcome"], "revoked", "{v}");
    assert_eq!(count(&cid, "revoke"), 1);
    let (_, stats, _) = http("GET", &format!("/admin/stats?client_id={cid}"), None);
    assert_eq!(stats["tokens"]["refresh"], 0, "{stats}");
    assert!(tokens_in(home.path()).is_empty());
}

#[test]
fn browser_flow_follows_the_loopback_redirect_or_takes_the_pasted_address() {
    oauth2_servers();
    let user = new_user("oauth-web");
    let cid = client("web", json!({}));
    let home = Home::new();

    // The browser runs here: the test follows the redirect to mailroom's loopback listener.
    let mut child = add_oauth(
        &home,
        "w",
        &user,
        &cid,
        (IMAPS, SUBMISSION),
        &["--oauth-flow", "browser"],
    );
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let (_, _) = read_until(&mut err, "To sign in, open this address");
    let (url, _) = read_until(&mut err, "http");
    let url = format!("http{url}");
    let path = url
        .strip_prefix(&format!("http://{AUTH}"))
        .expect("the authorize URL")
        .to_string();
    assert!(
        path.contains("code_challenge_method=S256") && path.contains("login_hint="),
        "{path}"
    );
    let (st, _, loc) = http("GET", &path, None);
    assert_eq!(st, 302);
    let loc = loc.expect("a redirect");
    let back = loc.strip_prefix("http://").unwrap();
    let (hostport, rest) = back.split_once('/').unwrap();
    let (st, _, _) = http_to(hostport, "GET", &format!("/{rest}"), None);
    assert_eq!(st, 200, "mailroom's loopback page");
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{rest}");
    assert_eq!(count(&cid, "token.authorization_code.ok"), 1);
    account_test(&home, "w");

    // Headless: the browser is elsewhere; the address it ended on is pasted back.
    let user2 = new_user("oauth-paste");
    let mut child = add_oauth(
        &home,
        "p",
        &user2,
        &cid,
        (IMAPS, SUBMISSION),
        &["--oauth-flow", "browser"],
    );
    let mut err = BufReader::new(child.stderr.take().unwrap());
    read_until(&mut err, "To sign in, open this address");
    let (url, _) = read_until(&mut err, "http");
    let path = format!("http{url}")
        .strip_prefix(&format!("http://{AUTH}"))
        .unwrap()
        .to_string();
    let (_, _, loc) = http("GET", &path, None);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "not an address").unwrap();
    writeln!(stdin, "{}", loc.unwrap()).unwrap();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{rest}");
    assert!(rest.contains("note: that is not the address"), "{rest}");
    let v = account_test(&home, "p");
    assert!(
        step(&v, "login")["detail"]
            .as_str()
            .unwrap()
            .contains(&user2)
    );
}

#[test]
fn an_oauthbearer_only_server_path_signs_in_with_oauthbearer() {
    oauth2_servers();
    let user = new_user("oauth-bearer");
    let cid = client("bearer", json!({}));
    let home = Home::new();
    signed_in(&home, "b", &user, &cid, (IMAPS_BEARER, SUBMISSION_BEARER));
    let v = account_test(&home, "b");
    assert!(
        step(&v, "login")["detail"]
            .as_str()
            .unwrap()
            .contains("OAUTHBEARER"),
        "{v}"
    );
    assert!(
        step(&v, "smtp_auth")["detail"]
            .as_str()
            .unwrap()
            .contains("OAUTHBEARER"),
        "{v}"
    );
    // Forcing XOAUTH2 where only OAUTHBEARER is offered names the one that works.
    let out = home.run(&["account", "edit", "b", "--smtp-auth", "xoauth2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, v) = home.json(&["account", "test", "b"]);
    let s = step(&v, "smtp_auth");
    assert_eq!(s["status"], "failed", "{v}");
    assert!(
        s["fix"]
            .as_str()
            .unwrap()
            .contains("--smtp-auth oauthbearer"),
        "{s}"
    );
    // A password mechanism is refused for an OAuth2 account.
    let out = home.run(&["account", "edit", "b", "--smtp-auth", "plain"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));

    // --no-login stores without any network I/O; sync then says to sign in.
    let user2 = new_user("oauth-later");
    let devices = count(&cid, "device");
    let child = add_oauth(
        &home,
        "later",
        &user2,
        &cid,
        (IMAPS, SUBMISSION),
        &["--no-login"],
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        count(&cid, "device"),
        devices,
        "nothing asked of the provider"
    );
    let (rc, v) = home.json(&["sync", "later", "--once"]);
    assert_eq!(rc, 1, "{v}");
    assert_eq!(v["error"]["code"], "auth.login_needed", "{v}");
    assert!(
        v["error"]["fix"]
            .as_str()
            .unwrap()
            .contains("mailroom account login later"),
        "{v}"
    );
    // `account login` then, and `account add --test` checks after signing in.
    let child = home
        .cmd()
        .args(["account", "login", "later"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (rc, _, err) = approve_device_login(child, &user2);
    assert_eq!(rc, 0, "{err}");
    let (rc, v) = home.json(&["sync", "later", "--once"]);
    assert_eq!(rc, 0, "{v}");
    let user3 = new_user("oauth-tested");
    let child = add_oauth(&home, "t", &user3, &cid, (IMAPS, SUBMISSION), &["--test"]);
    let (rc, out, err) = approve_device_login(child, &user3);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(
        err.contains("smtp_auth") && err.contains("XOAUTH2"),
        "{err}"
    );
}

#[test]
fn two_processes_needing_a_fresh_token_at_once_cause_one_refresh() {
    oauth2_servers();
    let user = new_user("oauth-race");
    // Tokens live 8 s: a quarter of it is the margin, so after 6 s both processes need one.
    let cid = client("race", json!({"access_token_lifetime": 8}));
    let home = Home::new();
    signed_in(&home, "r", &user, &cid, (IMAPS, SUBMISSION));
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(count(&cid, "token.refresh_token"), 0);
    let spawn = || {
        home.cmd()
            .args(["--json", "account", "test", "r"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        assert_eq!(v["ok"], true, "{v}\n{}", stderr(&out));
    }
    let c = counts(&cid);
    eprintln!("measured: two processes, {c}");
    assert_eq!(c["token.refresh_token"], 1, "one refresh for both: {c}");
    assert_eq!(c["token.refresh_token.ok"], 1, "{c}");
    assert!(c["token.refresh_token.reused"].is_null(), "{c}");
}

/// A daemon of its own, with its debug and protocol trace in the home's log.
fn traced_daemon(home: &Home) -> Daemon {
    let trace = std::fs::File::create(home.path().join("daemon-stderr.txt")).unwrap();
    let child = home
        .cmd()
        .args(["-vvv", "daemon"])
        .stdout(Stdio::null())
        .stderr(trace)
        .spawn()
        .unwrap();
    Daemon(child)
}

/// Drops the user's connections so the daemon signs in again. Between passes the daemon may hold
/// none (doveadm then says "no users kicked", exit 68); its next connection presents the token
/// the same way, so that is not a failure.
fn kick(user: &str) {
    let out = Command::new(repo().join("scripts/mailserver"))
        .args(["doveadm-oauth2", "kick", user])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let nobody_connected = out.status.code() == Some(68);
    assert!(
        out.status.success() || nobody_connected,
        "kick: {} {}",
        stdout(&out),
        stderr(&out)
    );
}

fn state(home: &Home, name: &str) -> Value {
    let (_, v) = home.json(&["status"]);
    v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn fast(home: &Home, name: &str) {
    for (k, v) in [
        ("sync.poll_secs", 2),
        ("sync.timeout_secs", 10),
        ("sync.backoff_min_secs", 1),
        ("sync.backoff_max_secs", 3),
        ("sent_copy.batch_secs", 0),
    ] {
        home.set_account_option(name, k, toml_edit::value(v));
    }
    home.set_option("general.outbox_poll_secs", toml_edit::value(1));
}

/// The account events at warn or error level, for a failure's message.
fn warnings(home: &Home) -> Vec<String> {
    home.db()
        .rows::<(String, String, String, String)>(
            "SELECT at, level, what, COALESCE(detail, '') FROM events
             WHERE level IN ('warn', 'error') AND account_id IS NOT NULL ORDER BY id",
            &[],
        )
        .into_iter()
        .map(|(at, level, what, detail)| format!("{at} {level} {what} | {detail}"))
        .collect()
}

/// The daemon trace's WARN and ERROR lines, for a failure's message.
fn trace_problems(home: &Home) -> String {
    let trace = std::fs::read_to_string(home.path().join("daemon-stderr.txt")).unwrap_or_default();
    trace
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn short_lived_tokens_are_refreshed_across_reconnects_without_a_failed_pass_or_a_leak() {
    oauth2_servers();
    let user = new_user("oauth-long");
    let rcpt = new_user("oauth-long-rcpt");
    let cid = client("long", json!({"access_token_lifetime": 20}));
    let home = Home::new();
    signed_in(&home, "l", &user, &cid, (IMAPS, SUBMISSION));
    fast(&home, "l");
    let _d = traced_daemon(&home);
    wait_for("the first pass", Duration::from_secs(60), || {
        (state(&home, "l")["state"] == "idle").then_some(())
    });
    let begin = Instant::now();
    let mut sent = Vec::new();
    let mut kicks = 0;
    // About 75 s: four token lifetimes. Every ~12 s the server drops every connection, so the
    // daemon signs in again, with a token refreshed whenever the last one is near its end.
    while begin.elapsed() < Duration::from_secs(75) {
        std::thread::sleep(Duration::from_secs(12));
        kick(&user);
        kicks += 1;
        if kicks % 2 == 1 {
            let subject = format!("while refreshing {kicks}");
            let out = home.run_stdin(
                &[
                    "--json",
                    "send",
                    "--account",
                    "l",
                    "--to",
                    &rcpt,
                    "--subject",
                    &subject,
                    "--queue-only",
                ],
                "hello\n",
            );
            assert!(out.status.success(), "{}", stderr(&out));
            let item: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
            sent.push(item["message_id"].as_str().unwrap().to_string());
        }
    }
    for id in &sent {
        wait_for(
            "the daemon to send, copy and verify",
            Duration::from_secs(60),
            || {
                let (_, v) = home.json(&["outbox"]);
                let it = v["items"]
                    .as_array()?
                    .iter()
                    .find(|i| i["message_id"] == id.as_str())?
                    .clone();
                (it["state"] == "verified").then_some(())
            },
        );
    }
    wait_for("idle after the last kick", Duration::from_secs(60), || {
        (state(&home, "l")["state"] == "idle").then_some(())
    });
    let c = counts(&cid);
    let refreshed = c["token.refresh_token.ok"].as_u64().unwrap_or(0);
    eprintln!(
        "measured: {kicks} forced reconnects, {} mails sent, {refreshed} refreshes in {:?}: {c}",
        sent.len(),
        begin.elapsed()
    );
    assert!(
        refreshed >= 3,
        "refreshes counted on the authorization server: {c}"
    );
    assert!(
        c["token.refresh_token.reused"].is_null(),
        "never two refreshes of one token: {c}"
    );
    assert!(
        c["introspect.inactive"].is_null(),
        "no expired token presented: {c}"
    );
    // No failed pass: every run succeeded, and the error log is empty for the account.
    let s = state(&home, "l");
    assert_eq!(
        s["health"]["success_rate"],
        1.0,
        "{s}\n{}\n{}",
        warnings(&home).join("\n"),
        trace_problems(&home)
    );
    let errors: i64 = home.db().count(
        "SELECT COUNT(*) FROM events WHERE level = 'error' AND account_id IS NOT NULL",
        &[],
    );
    assert_eq!(errors, 0, "no failure was logged");
    // The trace shows the sign-in redacted, and no token is anywhere in the home.
    let trace = std::fs::read_to_string(home.path().join("daemon-stderr.txt")).unwrap();
    assert!(
        trace.contains("AUTHENTICATE [REDACTED]"),
        "the trace has the sign-in"
    );
    let leaks = tokens_in(home.path());
    assert!(leaks.is_empty(), "tokens found: {leaks:?}");
}

#[test]
fn a_revoked_refresh_token_means_error_with_the_fix_without_a_storm_and_an_outage_does_not() {
    oauth2_servers();
    let user = new_user("oauth-revoked");
    let cid = client("revoked", json!({}));
    let home = Home::new();
    signed_in(&home, "v", &user, &cid, (IMAPS, SUBMISSION));
    fast(&home, "v");
    let _d = Daemon::start(&home);
    wait_for("the first pass", Duration::from_secs(60), || {
        (state(&home, "v")["state"] == "idle").then_some(())
    });

    // The authorization server is down: temporary, never `error`.
    admin("down", json!({"client_id": cid}));
    admin("expire", json!({"client_id": cid, "kind": "access"}));
    kick(&user);
    let s = wait_for("a temporary failure", Duration::from_secs(60), || {
        let s = state(&home, "v");
        matches!(s["state"].as_str(), Some("degraded" | "disconnected")).then_some(s)
    });
    assert_ne!(s["state"], "error", "{s}");
    admin("up", json!({"client_id": cid}));
    wait_for(
        "recovered after the outage",
        Duration::from_secs(60),
        || (state(&home, "v")["state"] == "idle").then_some(()),
    );

    // The grant is revoked at the provider: the next sign-in fails, one refresh is refused,
    // and the account goes to `error` with the fix.
    admin("stats/reset", json!({"client_id": cid}));
    admin("revoke", json!({"client_id": cid}));
    kick(&user);
    let s = wait_for("state error", Duration::from_secs(60), || {
        let s = state(&home, "v");
        (s["state"] == "error").then_some(s)
    });
    let fix = s["last_error"]["fix"].as_str().unwrap_or("");
    assert!(fix.contains("mailroom account login v"), "{s}");
    assert!(
        s["last_error"]["what"]
            .as_str()
            .unwrap_or("")
            .contains("must sign in again"),
        "{s}"
    );
    std::thread::sleep(Duration::from_secs(8));
    let c = counts(&cid);
    let tries = c["token"].as_u64().unwrap_or(0);
    eprintln!("measured: {tries} token requests after the revocation: {c}");
    assert!(
        (1..=3).contains(&tries),
        "a handful of token requests, no storm: {c}"
    );
    // Signing in again brings it back.
    let child = home
        .cmd()
        .args(["account", "login", "v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (rc, _, err) = approve_device_login(child, &user);
    assert_eq!(rc, 0, "{err}");
    wait_for(
        "idle after signing in again",
        Duration::from_secs(60),
        || (state(&home, "v")["state"] == "idle").then_some(()),
    );
}

/// Issue 19's `login_needed`: a revoked grant puts the account in `error` with `account login`
/// as its fix, and an alert channel that wants errors gets that event once, naming the account.
#[test]
fn a_revoked_grant_raises_one_login_needed_alert() {
    oauth2_servers();
    let user = new_user("oauth-alert");
    let cid = client("alert", json!({}));
    let home = Home::new();
    signed_in(&home, "la", &user, &cid, (IMAPS, SUBMISSION));
    fast(&home, "la");
    let dir = home.path().display().to_string();
    let cmd = format!("cat >> '{dir}/events.jsonl'; echo \"$MAILROOM_EVENT\" >> '{dir}/env.txt'");
    let (code, v) = home.json(&["alerts", "set", "--command", &cmd]);
    assert_eq!(code, 0, "{v}");
    let _d = Daemon::start(&home);
    wait_for("the first pass", Duration::from_secs(60), || {
        (state(&home, "la")["state"] == "idle").then_some(())
    });
    admin("revoke", json!({"client_id": cid}));
    kick(&user);
    let events = wait_for("the login_needed alert", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(home.path().join("events.jsonl")).unwrap_or_default();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        events
            .iter()
            .any(|e| e["event"] == "login_needed")
            .then_some(events)
    });
    let e = events
        .iter()
        .find(|e| e["event"] == "login_needed")
        .cloned()
        .unwrap_or_default();
    assert_eq!(e["account"], "la", "{e}");
    assert_eq!(e["state"], "error", "{e}");
    assert!(
        e["fix"]
            .as_str()
            .unwrap_or("")
            .contains("mailroom account login la"),
        "{e}"
    );
    // One transition, one alert: later passes that fail the same way add none.
    std::thread::sleep(Duration::from_secs(6));
    let text = std::fs::read_to_string(home.path().join("env.txt")).unwrap_or_default();
    let n = text.lines().filter(|l| *l == "login_needed").count();
    assert_eq!(n, 1, "{text}");
    assert!(
        !text.lines().any(|l| l == "error"),
        "an error that needs a login is told as login_needed only: {text}"
    );
}
