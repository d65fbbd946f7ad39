//! Issue 14 (part B): the console as a daily driver, in a real terminal against the real
//! servers — the account edit form (a new password, and the next sync logs in with it).

use std::time::Duration;

use super::super::common::*;
use super::{Tmux, mailbox_ready};

#[test]
fn the_edit_form_replaces_the_password_and_the_next_sync_logs_in_with_it() {
    servers();
    let user = new_user("tui-edit");
    mailbox_ready(&user);
    let home = Home::new();
    // Stored with a wrong password (no test): sync is refused.
    let out = home.account_add("work", &user, IMAPS, SUBMISSION, &[], "not-the-password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = home.run(&["sync", "work", "--once"]);
    assert!(!out.status.success(), "a wrong password cannot sync");

    let t = Tmux::start(&home, "edit", &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    t.keys(&["e"]);
    t.wait_screen("Edit account work", Duration::from_secs(10));
    let screen = t.wait_screen("(stored; type to replace)", Duration::from_secs(10));
    assert!(screen.contains(&user), "the account's settings: {screen}");
    // Email → Login → Password; `q` and digits would type here, so the password is typed as is.
    t.keys(&["Tab", "Tab"]);
    t.text(PASSWORD);
    let dots = "•".repeat(PASSWORD.chars().count());
    let screen = t.wait_screen(&dots, Duration::from_secs(10));
    assert!(screen.contains("typing into Password"), "{screen}");
    // No row shows it ("Client secret" is a label, not the password).
    assert!(
        !screen
            .lines()
            .any(|l| l.contains(&format!(" {PASSWORD}")) && !l.contains("Client secret")),
        "masked: {screen}"
    );
    // The live test runs the edited settings: every step passes with the new password.
    t.keys(&["C-t"]);
    t.wait_screen("all 9 checks passed", Duration::from_secs(60));
    t.keys(&["C-s"]);
    t.wait_screen("updated account work", Duration::from_secs(20));
    t.wait_screen("Accounts — overall", Duration::from_secs(10));
    t.keys(&["C-c"]);
    assert_eq!(t.exit_code(Duration::from_secs(10)), 0);

    // The next sync logs in with the new password; the settings are as they were.
    let (code, v) = home.json(&["sync", "work", "--once"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = home.json(&["account", "show", "work"]);
    assert_eq!(code, 0);
    assert_eq!(v["account"]["imap"]["port"], IMAPS, "{v}");
    let audit = home.run(&["audit", "--json"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.contains("account_edit"), "{audit}");
    assert!(!audit.contains(PASSWORD), "no password in the audit log");
}

/// Every file of the home's database (the database and its write-ahead log); on PostgreSQL
/// every row of its tables.
fn database_bytes(home: &Home) -> Vec<u8> {
    if e2e_on_postgres() {
        // No file in the home: every row of every table, as text.
        let db = home.db();
        return db
            .tables()
            .iter()
            .flat_map(|t| db.dump(t))
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes();
    }
    let mut all = Vec::new();
    for entry in std::fs::read_dir(home.path()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("mailroom.db") {
            all.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_trace_switched_on_in_the_console_shows_a_daemons_redacted_login() {
    use crate::proxy::{Mode, Proxy};
    use base64::Engine;
    servers();
    let user = new_user("tui-trace");
    mailbox_ready(&user);
    // The daemon reaches the server through the test's proxy, so the test can cut it.
    let proxy = Proxy::start(IMAPS, Mode::Pass);
    let home = Home::new();
    let out = home.account_add("d", &user, proxy.port, SUBMISSION, &[], PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (k, v) in [("sync.backoff_min_secs", 1), ("sync.backoff_max_secs", 2)] {
        home.set_account_option("d", k, toml_edit::value(v));
    }
    // `mailroom sync d` in another process holds the account's sync.
    let child = home
        .cmd()
        .args(["sync", "d"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _sync = Daemon(child);
    wait_for("the first sync", Duration::from_secs(60), || {
        let (_, v) = home.json(&["status"]);
        (v["accounts"][0]["state"] == "idle").then_some(())
    });

    // The console: Debug log → protocol trace → account d → trace on.
    let t = Tmux::start(&home, "trace", &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    t.keys(&["8"]);
    t.keys(&["T"]);
    t.wait_screen("[protocol trace]", Duration::from_secs(10));
    t.keys(&["a"]);
    t.wait_screen(" d (a) · off", Duration::from_secs(10));
    t.keys(&["t"]);
    t.wait_screen(" d (a) · tracing", Duration::from_secs(10));
    // The daemon re-reads the switch every second; then its connection is cut and it logs in
    // again, traced.
    std::thread::sleep(Duration::from_millis(1500)); // the switch's refresh interval passing
    proxy.go_away(false);
    proxy.come_back();
    let screen = t.wait_screen("LOGIN <redacted>", Duration::from_secs(60));
    assert!(!screen.contains(PASSWORD), "{screen}");
    // SMTP from this shell is traced too, its AUTH redacted.
    let out = home.run_stdin(&["send", "--to", &user, "--subject", "traced"], "hello\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.wait_screen("AUTH PLAIN <redacted>", Duration::from_secs(30));
    t.keys(&["C-c"]);
    assert_eq!(t.exit_code(Duration::from_secs(10)), 0);

    // The export to share with a provider: the redacted lines, never the password.
    let file = home.path().join("trace.txt");
    let (code, v) = home.json(&["trace", "export", "d", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{v}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("LOGIN <redacted>"), "{text}");
    assert!(text.contains("AUTH PLAIN <redacted>"), "{text}");
    let sasl = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{PASSWORD}"));
    let quoted = format!("\"{PASSWORD}\"");
    for secret in [PASSWORD, sasl.as_str(), quoted.as_str()] {
        assert!(!text.contains(secret), "{secret} in the export");
    }
    let db = database_bytes(&home);
    assert!(
        contains(&db, b"LOGIN <redacted>"),
        "the ring is in the store"
    );
    for secret in [
        sasl.as_bytes(),
        quoted.as_bytes(),
        format!("LOGIN {user}").as_bytes(),
    ] {
        assert!(!contains(&db, secret), "a credential in the store");
    }
    // Another operator who cannot see the account can neither read nor switch its trace.
    let out = home
        .cmd()
        .env("MAILROOM_OPERATOR", "mallory")
        .args(["trace", "show", "d"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such account"));
}

/// The README's Quick tour: its last ```sh block under "## Quick tour".
fn quick_tour() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let tour = readme
        .split("## Quick tour")
        .nth(1)
        .and_then(|t| t.split("\n## ").next())
        .expect("a Quick tour section");
    let blocks: Vec<&str> = tour
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .collect();
    blocks.last().expect("a sh block").to_string()
}

#[test]
fn the_readme_quick_tour_works_when_pasted() {
    servers();
    let tour = quick_tour();
    assert!(tour.contains("mailroom --home $H"), "{tour}");
    // `mailroom` on PATH as the README's install step puts it there (this build's binary).
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("tour.sh");
    let ended = dir.path().join("ended");
    std::fs::write(
        &script,
        format!(
            "set -eu\nexport PATH='{}':\"$PATH\"\nexport MAILROOM_OPERATOR=tester TERM=xterm-256color\n{tour}\necho \"exit=$?\" > '{}'\n",
            bin().parent().unwrap().display(),
            ended.display()
        ),
    )
    .unwrap();
    let t = Tmux::shell(
        "tour",
        &repo(),
        &format!(
            "bash '{}' 2> '{}/err'",
            script.display(),
            dir.path().display()
        ),
    );
    let screen = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        t.wait_screen("Accounts — overall", Duration::from_secs(180))
    })) {
        Ok(s) => s,
        Err(e) => {
            let err = std::fs::read_to_string(dir.path().join("err")).unwrap_or_default();
            eprintln!("tour stderr:\n{err}");
            std::panic::resume_unwind(e)
        }
    };
    assert!(screen.contains("work"), "{screen}");
    assert!(
        screen.contains("idle") || screen.contains("syncing"),
        "{screen}"
    );
    t.keys(&["q"]);
    let code = wait_for("the tour to end", Duration::from_secs(20), || {
        std::fs::read_to_string(&ended).ok()
    });
    assert_eq!(code.trim(), "exit=0");
}
