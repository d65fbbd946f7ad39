//! Issue 14 (part C): the account edit form's new settings against the real servers, through
//! the ops the console uses (its I/O layer, in-process) and through the CLI twin — a rename
//! keeps the id, the cached mail, the state and the customer pairings; display name, SMTP
//! mechanism, enabled and the CA file (cleared and set again) take effect. 14D: the OAuth2
//! settings (tenant, flow, endpoints, scopes) are stored and read back, refused alike by the
//! form and the CLI when invalid; a password command typed into the form is what the next
//! login to Dovecot uses.

use std::time::Duration;

use mailroom::tui::action::Command;
use mailroom::tui::app::{
    Data, F_AUTH_URL, F_CLIENT_ID, F_DISPLAY, F_ENABLED, F_FLOW, F_NAME, F_OAUTH, F_PW_COMMAND,
    F_SCOPES, F_SMTP_AUTH, F_TENANT, F_TOKEN_URL, SetupForm,
};
use serde_json::json;

use super::common::*;

/// Drives the console's I/O for the home in-process as operator `tester` (as the CLI runs).
struct Console {
    _rt: tokio::runtime::Runtime,
    io: mailroom::tui::io::Direct,
    rx: tokio::sync::mpsc::UnboundedReceiver<Data>,
}

impl Console {
    fn new(home: &Home) -> Console {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let jobs = mailroom::tui::io::Jobs::new(rt.handle().clone(), tx.clone());
        let h = mailroom::config::Home {
            root: home.path().to_path_buf(),
        };
        let cx = mailroom::ops::Ctx::new(h, "tester");
        let io = mailroom::tui::io::Direct::new(&cx, jobs, tx);
        Console { _rt: rt, io, rx }
    }

    /// The edit form of `name`, as `e` on the dashboard opens it.
    fn edit_form(&mut self, name: &str) -> SetupForm {
        match self.io.execute(Command::LoadEdit {
            job: 1,
            name: name.into(),
        }) {
            Some(Data::EditLoaded(1, r)) => {
                let (view, owner) = (*r).expect("the account loads");
                assert!(owner, "tester owns {name}");
                SetupForm::for_edit(&view, 1, owner)
            }
            other => panic!("{other:?}"),
        }
    }

    /// ctrl-s on the form: `account edit` with what changed; the name it has now.
    fn save(&mut self, form: &SetupForm) -> Result<String, mailroom::error::AppError> {
        let req = form.to_edit().expect("a valid form");
        match self.io.execute(Command::SaveEdit {
            job: 2,
            req: Box::new(req),
        }) {
            Some(Data::Saved(2, r)) => r,
            other => panic!("{other:?}"),
        }
    }

    /// The next answer of a job (login steps, its end), within `timeout`.
    fn next(&mut self, timeout: Duration) -> Data {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.rx.try_recv() {
                Ok(d) => return d,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("no answer within {timeout:?}: {e}"),
            }
        }
    }
}

fn show(home: &Home, name: &str) -> serde_json::Value {
    let (code, v) = home.json(&["account", "show", name]);
    assert_eq!(code, 0, "account show {name}: {v}");
    v["account"].clone()
}

fn timeline_ids(home: &Home, customer: i64) -> Vec<i64> {
    let (code, v) = home.json(&["customers", "show", &customer.to_string()]);
    assert_eq!(code, 0, "{v}");
    let mut ids: Vec<i64> = v["customer"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["messages"].as_array().unwrap().clone())
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_rename_in_the_form_keeps_mail_state_and_pairings_and_each_new_field_takes_effect() {
    servers();
    let user = new_user("edit-ren");
    let buyer = new_user("edit-buyer");
    smtp_send(&buyer, &user, "Order 1042", "where is it?");
    let home = Home::new();
    home.add_account("work", &user);
    home.add_account("other", &new_user("edit-other"));
    wait_for(
        "the order reaches the cache",
        Duration::from_secs(30),
        || {
            let (code, v) = home.json(&["sync", "work", "--once"]);
            assert_eq!(code, 0, "{v}");
            let (_, m) = home.json(&["search", "Order 1042"]);
            (m["messages"].as_array().map_or(0, |a| a.len()) > 0).then_some(())
        },
    );
    let (code, c) = home.json(&["customers", "add", "--name", "Buyer", "--email", &buyer]);
    assert_eq!(code, 0, "{c}");
    let customer = c["customer"]["id"].as_i64().expect("customer id");
    let paired = timeline_ids(&home, customer);
    assert_eq!(paired.len(), 1, "the order is paired");
    let before = show(&home, "work");
    assert_eq!(before["enabled"], true);

    // The console: rename, display name and the SMTP mechanism in one save.
    let mut console = Console::new(&home);
    let mut form = console.edit_form("work");
    form.values[F_NAME] = "office".into();
    form.values[F_DISPLAY] = "Office Desk".into();
    form.values[F_SMTP_AUTH] = "plain".into();
    assert_eq!(console.save(&form).expect("saved"), "office");
    let after = show(&home, "office");
    assert_eq!(after["id"], before["id"], "the id stays");
    assert_eq!(after["display_name"], "Office Desk");
    assert_eq!(after["smtp_auth"], "plain");
    let (code, _) = home.json(&["account", "show", "work"]);
    assert_eq!(code, 1, "the old name is gone");
    assert_eq!(timeline_ids(&home, customer), paired, "pairings stay");
    let (code, v) = home.json(&["sync", "office", "--once"]);
    assert_eq!(code, 0, "syncs under the new name from its state: {v}");
    let (_, m) = home.json(&["search", "Order 1042"]);
    assert_eq!(
        m["messages"].as_array().unwrap().len(),
        1,
        "no refetch: {m}"
    );
    let (code, v) = home.json(&["account", "test", "office"]);
    assert_eq!((code, v["ok"].as_bool()), (0, Some(true)), "PLAIN: {v}");

    // A duplicate name is refused (console and CLI alike); nothing changes.
    let mut form = console.edit_form("office");
    form.values[F_NAME] = "other".into();
    let e = console.save(&form).unwrap_err();
    assert!(e.summary.contains("already exists"), "{e}");
    let out = home.run(&["account", "edit", "office", "--rename", "other"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    // Disabled in the form: status says so; the cached mail stays.
    let mut form = console.edit_form("office");
    form.values[F_ENABLED] = "no".into();
    console.save(&form).expect("saved");
    assert_eq!(show(&home, "office")["enabled"], false);
    assert_eq!(timeline_ids(&home, customer), paired);

    // The CLI twin: rename again, drop the display name and the CA file, enable.
    let out = home.run(&[
        "account",
        "edit",
        "office",
        "--rename",
        "desk",
        "--display-name",
        "",
        "--no-ca-file",
        "--enabled",
        "true",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("now named desk"), "{}", stdout(&out));
    let v = show(&home, "desk");
    assert_eq!(v["id"], before["id"]);
    assert!(v["display_name"].is_null() && v["ca_file"].is_null(), "{v}");
    assert_eq!(v["enabled"], true);
    // Without the test CA the server's certificate is not trusted: proof the CA file went.
    let (code, v) = home.json(&["account", "test", "desk"]);
    assert_eq!((code, v["ok"].as_bool()), (1, Some(false)), "{v}");
    assert_eq!(step(&v, "tls")["status"], "failed", "{v}");
    // Set again in the form (a path typed into the CA file field), everything passes.
    let mut form = console.edit_form("desk");
    form.values[mailroom::tui::app::F_CA] = servers().ca.to_string_lossy().to_string();
    console.save(&form).expect("saved");
    let (code, v) = home.json(&["account", "test", "desk"]);
    assert_eq!((code, v["ok"].as_bool()), (0, Some(true)), "{v}");
    assert_eq!(timeline_ids(&home, customer), paired);
    let audit = stdout(&home.run(&["audit", "--json"]));
    assert!(audit.contains("\"name\""), "the rename is audited: {audit}");
}

/// "Log in again" on the edit form of an OAuth2 account runs the same sign-in as `account login
/// NAME` (its device code arrives as the console shows it); a new client id and secret typed
/// into the form are what it signs in with.
#[test]
fn log_in_again_from_the_form_signs_in_with_the_client_id_typed_there() {
    use super::oauth2::{IMAPS, SUBMISSION, account_test, admin, client, count, signed_in};
    super::oauth2::oauth2_servers();
    let user = new_user("edit-oauth");
    let (first, second) = (client("edit1", json!({})), client("edit2", json!({})));
    let home = Home::new();
    signed_in(&home, "w", &user, &first, (IMAPS, SUBMISSION));
    let mut console = Console::new(&home);
    let mut form = console.edit_form("w");
    assert_eq!(form.values[F_OAUTH], "yes");
    assert_eq!(form.values[F_CLIENT_ID], first);
    assert!(form.stored_oauth(), "the form offers log in again");
    form.values[F_CLIENT_ID] = second.clone();
    form.client_secret = secrecy::SecretString::from("app-s3cret".to_string());
    assert_eq!(console.save(&form).expect("saved"), "w");
    let o = show(&home, "w")["oauth2"].clone();
    assert_eq!(o["client_id"], second.as_str(), "{o}");
    assert_eq!(o["client_secret_stored"], true, "{o}");
    let config = home.settings_text();
    assert!(
        !config.contains("app-s3cret"),
        "the secret is sealed, not written"
    );

    // ctrl-l: the console's login command; the code shows, the person approves it.
    assert!(
        console
            .io
            .execute(Command::Login {
                job: 3,
                name: "w".into()
            })
            .is_none(),
        "the sign-in runs as a job"
    );
    let mut lines = Vec::new();
    let done = loop {
        match console.next(Duration::from_secs(60)) {
            Data::LoginStep(3, line) => {
                if let Some(code) = line
                    .strip_prefix("and enter the code ")
                    .and_then(|r| r.split_whitespace().next())
                {
                    admin(
                        "device/approve",
                        json!({"user_code": code, "username": user}),
                    );
                }
                lines.push(line);
            }
            Data::LoginDone(3, r) => break r,
            _ => {}
        }
    };
    let done = done.unwrap_or_else(|e| panic!("{e}: {lines:?}"));
    assert!(done.contains("signed in"), "{done}");
    assert!(lines.iter().any(|l| l.starts_with("open ")), "{lines:?}");
    assert_eq!(
        count(&second, "token.device_code.ok"),
        1,
        "the new client id"
    );
    assert_eq!(
        count(&first, "token.device_code.ok"),
        1,
        "only the first sign-in"
    );
    account_test(&home, "w");
}

/// The OAuth2 settings typed into the form are stored and read back (the form opens with them
/// again); an invalid one is refused by the form's save and the CLI alike (the same ops check),
/// and the account still signs in to the real servers after the edit.
#[test]
fn the_oauth2_settings_of_the_form_are_stored_read_back_and_checked_as_the_cli_checks_them() {
    use super::oauth2::{IMAPS, SUBMISSION, account_test, client, signed_in};
    super::oauth2::oauth2_servers();
    let user = new_user("edit-oset");
    let cid = client("oset", json!({}));
    let home = Home::new();
    signed_in(&home, "w", &user, &cid, (IMAPS, SUBMISSION));
    let mut console = Console::new(&home);
    let form = console.edit_form("w");
    assert_eq!(form.values[F_FLOW], "device");
    assert_eq!(form.values[F_SCOPES], "imap smtp");
    let token_url = form.values[F_TOKEN_URL].clone();
    assert!(token_url.ends_with("/token"), "{token_url}");
    let base = token_url.trim_end_matches("/token").to_string();

    // Plain http away from loopback: refused by the form's save and by the CLI alike.
    let mut bad = form.clone();
    bad.values[F_TOKEN_URL] = "http://idp.example/token".into();
    let e = console.save(&bad).unwrap_err();
    let out = home.run(&[
        "account",
        "edit",
        "w",
        "--oauth-token-url",
        "http://idp.example/token",
    ]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&e.summary), "{e} / {}", stderr(&out));
    assert_eq!(show(&home, "w")["oauth2"]["token_url"], token_url.as_str());

    // Tenant, flow, authorization endpoint and scopes in one save.
    let mut form = form;
    form.values[F_TENANT] = "contoso".into();
    form.values[F_FLOW] = "browser".into();
    form.values[F_AUTH_URL] = format!("{base}/authorize?prompt=consent");
    form.values[F_SCOPES] = "smtp imap".into();
    assert_eq!(console.save(&form).expect("saved"), "w");
    let o = show(&home, "w")["oauth2"].clone();
    assert_eq!(o["tenant"], "contoso", "{o}");
    assert_eq!(o["flow"], "browser", "{o}");
    assert_eq!(
        o["auth_url"],
        format!("{base}/authorize?prompt=consent").as_str(),
        "{o}"
    );
    assert_eq!(o["scopes"], json!(["smtp", "imap"]), "{o}");
    assert_eq!(o["token_url"], token_url.as_str(), "untouched: {o}");
    let again = console.edit_form("w");
    for f in [F_TENANT, F_FLOW, F_AUTH_URL, F_SCOPES, F_TOKEN_URL] {
        assert_eq!(again.values[f], form.values[f], "field {f} read back");
    }
    // The tokens still sign in to Dovecot and Postfix.
    account_test(&home, "w");
}

/// A password command typed into the form replaces the stored password (as `account edit
/// --password-command`): the next login to Dovecot uses what the command prints; a password
/// typed into the form later replaces the command.
#[test]
fn a_password_command_from_the_form_is_what_the_next_login_uses() {
    servers();
    let user = new_user("edit-pwcmd");
    let home = Home::new();
    home.add_account("work", &user);
    let file = home.path().join("pw.txt");
    std::fs::write(&file, "not-the-password\n").unwrap();
    let mut console = Console::new(&home);
    let mut form = console.edit_form("work");
    assert!(!form.command_set);
    form.values[F_PW_COMMAND] = format!("cat '{}'", file.display());
    assert_eq!(console.save(&form).expect("saved"), "work");
    assert_eq!(show(&home, "work")["password_source"], "command");
    // The command prints a wrong password: the login fails although the stored one is right.
    let (code, v) = home.json(&["account", "test", "work"]);
    assert_eq!((code, v["ok"].as_bool()), (1, Some(false)), "{v}");
    assert_eq!(step(&v, "login")["status"], "failed", "{v}");
    // It prints the right one: the login passes, and sync runs with it.
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let (code, v) = home.json(&["account", "test", "work"]);
    assert_eq!((code, v["ok"].as_bool()), (0, Some(true)), "{v}");
    let (code, v) = home.json(&["sync", "work", "--once"]);
    assert_eq!(code, 0, "{v}");
    // The form opens knowing there is a command, never showing it.
    let mut form = console.edit_form("work");
    assert!(form.command_set);
    assert_eq!(form.values[F_PW_COMMAND], "");
    // A password typed into the form replaces the command (sealed, as --password-stdin).
    std::fs::write(&file, "not-the-password\n").unwrap();
    form.password = secrecy::SecretString::from(PASSWORD.to_string());
    console.save(&form).expect("saved");
    assert_eq!(show(&home, "work")["password_source"], "stored");
    let (code, v) = home.json(&["account", "test", "work"]);
    assert_eq!((code, v["ok"].as_bool()), (0, Some(true)), "{v}");
}

/// The first connection of a process is traced when the switch is on (the switch is read
/// before it connects): a fresh `sync --once` process's greeting, its LOGIN (redacted) and
/// the commands after it are all in the trace; with `--literals` the CLI warns, and only the
/// owner may switch literals on.
#[test]
fn a_fresh_process_traces_its_first_connection_from_the_greeting_on() {
    servers();
    let user = new_user("trace-first");
    seed(&user, 3);
    let home = Home::new();
    home.add_account("work", &user);
    let (code, v) = home.json(&["trace", "on", "work"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = home.json(&["sync", "work", "--once"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = home.json(&["trace", "show", "work", "--limit", "5000"]);
    assert_eq!(code, 0, "{v}");
    let lines: Vec<(String, String, String)> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            (s("proto"), s("dir"), s("line"))
        })
        .collect();
    let imap: Vec<&(String, String, String)> =
        lines.iter().filter(|(p, _, _)| p == "imap").collect();
    // The first connection, whole: from its "connected" note to the next one.
    assert!(
        imap.first()
            .is_some_and(|(_, _, l)| l.starts_with("connected to")),
        "the trace starts with the process's first connection: {imap:?}"
    );
    let end = imap
        .iter()
        .skip(1)
        .position(|(_, _, l)| l.starts_with("connected to"))
        .map_or(imap.len(), |i| i + 1);
    let first = &imap[..end];
    assert!(
        first
            .iter()
            .any(|(_, d, l)| d == "S" && l.starts_with("* OK")),
        "its greeting: {first:?}"
    );
    let login = first
        .iter()
        .position(|(_, d, l)| d == "C" && l.ends_with("LOGIN <redacted>"))
        .expect("its LOGIN, redacted");
    assert!(
        first[login + 1..]
            .iter()
            .any(|(_, d, l)| d == "C" && l.contains("ENABLE QRESYNC")),
        "the commands after LOGIN: {first:?}"
    );
    assert!(!format!("{lines:?}").contains(PASSWORD), "no password");

    // Literals: the CLI warns; an operator the account is not owned by is refused.
    let out = home.run(&["trace", "on", "work", "--literals"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: message literals are kept in full"));
    let out = home
        .cmd()
        .env("MAILROOM_OPERATOR", "mallory")
        .args(["trace", "on", "work", "--literals"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "not mallory's to switch");
}
