//! Issue 6: the real console binary in a real terminal (tmux), against the local servers.
//! Keys go in with `send-keys`; the screen comes back with `capture-pane`; every wait has a
//! deadline (`wait_for`), never a sleep.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::common::*;

// Issue 14, part B: the edit form, the protocol trace, the Quick tour.
#[path = "tui_daily.rs"]
mod daily;

/// One tmux server per test (own socket), one window running the console.
pub struct Tmux {
    socket: String,
    exit_file: PathBuf,
}

impl Tmux {
    pub fn start(home: &Home, name: &str, extra_env: &[(&str, &str)], args: &[&str]) -> Tmux {
        Tmux::start_between(home, name, extra_env, args, "true", "sleep 600")
    }

    /// `before` runs in the pane's shell before the console, `after` once it has ended (after
    /// the exit code is recorded and CONSOLE-ENDED printed).
    pub fn start_between(
        home: &Home,
        name: &str,
        extra_env: &[(&str, &str)],
        args: &[&str],
        before: &str,
        after: &str,
    ) -> Tmux {
        // One tmux server per test: a shared one would die with the first test that ends.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("mailroom-e2e-{name}-{}-{n}", std::process::id());
        let exit_file = home.path().join("console-exit");
        let args: String = args.iter().map(|a| format!(" '{a}'")).collect();
        let mut env = String::new();
        for (k, v) in extra_env {
            env.push_str(&format!("{k}='{v}' "));
        }
        // The shell records the exit code, then stays so the restored screen can be read.
        let cmd = format!(
            "{before}; env -u MAILROOM_HOME MAILROOM_OPERATOR=tester TERM=xterm-256color {env}'{}' --home '{}'{args}; echo \"exit=$?\" > '{}'; echo CONSOLE-ENDED; {after}",
            bin().display(),
            home.path().display(),
            exit_file.display()
        );
        let out = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                "sh",
                "-c",
                &cmd,
            ])
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmux { socket, exit_file }
    }

    /// A shell command in a tmux window of its own (`cwd` its directory), e.g. a README block.
    pub fn shell(name: &str, cwd: &std::path::Path, cmd: &str) -> Tmux {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("mailroom-e2e-{name}-{}-{n}", std::process::id());
        let exit_file = cwd.join(format!(".never-{socket}"));
        let out = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
            ])
            .args([
                "-c",
                &cwd.display().to_string(),
                "sh",
                "-c",
                &format!("{cmd}; sleep 600"),
            ])
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmux { socket, exit_file }
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["-L", self.socket.as_str(), "send-keys"];
        args.extend_from_slice(keys);
        let out = Command::new("tmux")
            .args(&args)
            .output()
            .expect("tmux send-keys");
        assert!(
            out.status.success(),
            "send-keys {keys:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn text(&self, s: &str) {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-l", s])
            .output()
            .expect("tmux send-keys -l");
        assert!(out.status.success());
    }

    pub fn wait_screen(&self, what: &str, timeout: Duration) -> String {
        let mut last = String::new();
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(what, timeout, || {
                last = self.screen();
                last.contains(what).then(|| last.clone())
            })
        }));
        match found {
            Ok(s) => s,
            Err(_) => panic!("timed out waiting for {what:?}; screen:\n{last}"),
        }
    }

    pub fn exit_code(&self, timeout: Duration) -> i32 {
        wait_for("the console to exit", timeout, || {
            std::fs::read_to_string(&self.exit_file)
                .ok()
                .and_then(|s| s.trim().strip_prefix("exit=").and_then(|c| c.parse().ok()))
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        // The server is gone; its socket file stays behind unless removed.
        let dir = std::env::var("TMUX_TMPDIR").unwrap_or_else(|_| "/tmp".into());
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let _ = std::fs::remove_file(format!("{dir}/tmux-{uid}/{}", self.socket));
    }
}

/// SGR parameters that set a colour (30–49, 90–107) in a `capture-pane -e` dump.
fn sgr_colours(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("\u{1b}[") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find('m') else { break };
        let params = &rest[..end];
        if params.chars().all(|c| c.is_ascii_digit() || c == ';') {
            for p in params.split(';') {
                if let Ok(n) = p.parse::<u32>()
                    && ((30..=49).contains(&n) && n != 39 && n != 49 || (90..=107).contains(&n))
                {
                    found.push(params.to_string());
                }
            }
        }
        rest = &rest[end..];
    }
    found
}

/// The shared server's user list is rewritten while other tests add users; make sure this
/// mailbox accepts logins before the console's own check is judged.
fn mailbox_ready(user: &str) {
    let scratch = Home::new();
    scratch.add_account("probe", user);
    wait_for(
        "the new mailbox to accept logins",
        Duration::from_secs(30),
        || {
            let (code, _) = scratch.json(&["account", "test", "probe"]);
            (code == 0).then_some(())
        },
    );
}

/// Moves the setup form's focus to field `n` (0 = Provider) from field `from`.
fn tab_to(t: &Tmux, from: usize, n: usize) {
    for _ in from..n {
        t.keys(&["Tab"]);
    }
}

#[test]
fn console_adds_an_account_through_the_form_tests_it_and_quits_cleanly() {
    let s = servers();
    let user = new_user("tui-setup");
    mailbox_ready(&user);
    let home = Home::new();
    let t = Tmux::start(&home, "setup", &[], &[]);
    t.wait_screen("No accounts yet", Duration::from_secs(20));

    // The setup form, filled the way an operator would.
    t.keys(&["2"]);
    t.wait_screen("New account", Duration::from_secs(10));
    tab_to(&t, 0, 1);
    t.text("local");
    tab_to(&t, 1, 2);
    t.text(&user);
    tab_to(&t, 2, 4); // Login follows the email.
    t.text(PASSWORD);
    tab_to(&t, 4, 5);
    t.text("127.0.0.1");
    tab_to(&t, 5, 6);
    t.keys(&["C-u"]);
    t.text(&IMAPS.to_string());
    tab_to(&t, 6, 8);
    t.text("127.0.0.1");
    tab_to(&t, 8, 9);
    t.keys(&["C-u"]);
    t.text(&SUBMISSION.to_string());
    tab_to(&t, 9, 11);
    t.text(&s.ca.display().to_string());
    let screen = t.wait_screen("•••••• ", Duration::from_secs(10));
    assert!(
        !screen.contains(PASSWORD),
        "the password is masked:\n{screen}"
    );

    // Test connection: every step streams in and passes.
    t.keys(&["C-t"]);
    let screen = t.wait_screen("all 9 checks passed", Duration::from_secs(60));
    for id in [
        "connect",
        "tls",
        "login",
        "list",
        "sent_folder",
        "sent_write",
        "smtp_connect",
        "smtp_tls",
        "smtp_auth",
    ] {
        assert!(
            screen
                .lines()
                .any(|l| l.contains(" ok ") && l.contains(id)
                    || l.contains(&format!("ok      {id}"))),
            "step {id} not shown ok:\n{screen}"
        );
    }
    assert!(!screen.contains("FAILED"), "{screen}");

    // Save: back on the dashboard with the new account.
    t.keys(&["C-s"]);
    t.wait_screen("added account local", Duration::from_secs(20));
    let screen = t.wait_screen("Accounts — overall", Duration::from_secs(10));
    assert!(screen.contains("local"), "{screen}");

    // The default (dark) theme does draw in colour: the NO_COLOR check elsewhere can fail.
    let raw = Command::new("tmux")
        .args(["-L", &t.socket, "capture-pane", "-p", "-e"])
        .output()
        .unwrap();
    assert!(!sgr_colours(&String::from_utf8_lossy(&raw.stdout)).is_empty());
    // The help overlay lists this pane's keys, from the keymap.
    t.keys(&["?"]);
    let screen = t.wait_screen("Keys: Dashboard", Duration::from_secs(10));
    assert!(
        screen.contains("Test connection of the account"),
        "{screen}"
    );
    t.keys(&["Escape"]);

    // The stored account is what `account add` would have stored: the CLI sees and uses it.
    let (code, v) = home.json(&["account", "list"]);
    assert_eq!(code, 0);
    let a = &v["accounts"][0];
    assert_eq!(a["name"], "local");
    assert_eq!(a["email"], user.as_str());
    assert_eq!(a["imap"]["port"], IMAPS);
    assert_eq!(a["smtp"]["port"], SUBMISSION);
    assert_eq!(a["owner"], "tester");
    let (code, report) = home.json(&["account", "test", "local"]);
    assert_eq!(code, 0, "{report}");

    // Quit: exit code 0 and the terminal is back (the shell's text is on the normal screen).
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(10)), 0);
    let screen = t.wait_screen("CONSOLE-ENDED", Duration::from_secs(10));
    assert!(
        !screen.contains("Accounts — overall"),
        "alternate screen left behind:\n{screen}"
    );
}

#[test]
fn console_follows_another_process_and_ctrl_c_restores_the_terminal() {
    servers();
    let user = new_user("tui-watch");
    let home = Home::new();
    let t = Tmux::start(&home, "watch", &[("NO_COLOR", "1")], &[]);
    t.wait_screen("No accounts yet", Duration::from_secs(20));
    // NO_COLOR: attributes only, not a single colour sequence on the screen.
    let raw = Command::new("tmux")
        .args(["-L", &t.socket, "capture-pane", "-p", "-e"])
        .output()
        .unwrap();
    let colours = sgr_colours(&String::from_utf8_lossy(&raw.stdout));
    assert!(
        colours.is_empty(),
        "colour codes with NO_COLOR: {colours:?}"
    );
    // Another process writes the home and the database; the console notices without a key.
    home.add_account("other", &user);
    t.wait_screen("other", Duration::from_secs(10));
    // A failing test from the CLI lands in the event log, which the log pane shows live.
    t.keys(&["8"]);
    t.wait_screen("[events]", Duration::from_secs(10));
    let out = home.run_stdin(
        &["account", "set-password", "other", "--password-stdin"],
        "wrong",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = home.run(&["account", "test", "other"]);
    assert_eq!(out.status.code(), Some(1));
    t.wait_screen("account test failed at login", Duration::from_secs(10));
    // The selected event's detail pane shows what to do about it.
    t.wait_screen("fix: ", Duration::from_secs(10));
    // Removing an account asks first, then does what `account remove` does.
    t.keys(&["1"]);
    t.wait_screen("Accounts — overall", Duration::from_secs(10));
    t.keys(&["D"]);
    t.wait_screen("Remove account other?", Duration::from_secs(10));
    t.keys(&["n"]);
    t.wait_screen("Accounts — overall", Duration::from_secs(10));
    assert_eq!(
        home.json(&["account", "list"]).1["accounts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    t.keys(&["D"]);
    t.wait_screen("Remove account other?", Duration::from_secs(10));
    t.keys(&["y"]);
    t.wait_screen("No accounts yet", Duration::from_secs(20));
    assert!(
        home.json(&["account", "list"]).1["accounts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let audit = home.json(&["audit"]).1.to_string();
    assert!(audit.contains("account_remove"), "{audit}");
    t.keys(&["C-c"]);
    assert_eq!(t.exit_code(Duration::from_secs(10)), 0);
    let screen = t.wait_screen("CONSOLE-ENDED", Duration::from_secs(10));
    assert!(
        !screen.contains("[events]"),
        "alternate screen left behind:\n{screen}"
    );
}

#[test]
fn console_refuses_a_bad_keymap_or_theme_before_touching_the_terminal() {
    let home = Home::new();
    std::fs::write(
        home.path().join("config.toml"),
        "[ui.keys.triage]\npare = \"p\"\n",
    )
    .unwrap();
    let t = Tmux::start(&home, "badkeys", &[], &[]);
    assert_eq!(t.exit_code(Duration::from_secs(10)), 64);
    let screen = t.wait_screen("CONSOLE-ENDED", Duration::from_secs(10));
    assert!(screen.contains("unknown action \"pare\""), "{screen}");
    assert!(
        screen.contains("pair"),
        "the fix names the valid actions:\n{screen}"
    );
    drop(t);

    let home = Home::new();
    let t = Tmux::start(&home, "badtheme", &[], &["--theme", "neon"]);
    assert_eq!(t.exit_code(Duration::from_secs(10)), 64);
    let screen = t.wait_screen("CONSOLE-ENDED", Duration::from_secs(10));
    assert!(screen.contains("neon"), "{screen}");
    assert!(
        screen.contains("monochrome"),
        "the fix lists the themes:\n{screen}"
    );
}

#[test]
fn compose_hands_the_terminal_to_the_editor_and_takes_it_back() {
    let home = Home::new();
    let editor = home.path().join("fake-editor");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'written in the editor\\n' >> \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let t = Tmux::start(
        &home,
        "editor",
        &[("EDITOR", &editor.display().to_string())],
        &[],
    );
    t.wait_screen("No accounts yet", Duration::from_secs(20));
    t.keys(&["6"]);
    t.wait_screen("$EDITOR", Duration::from_secs(10));
    t.keys(&["Tab", "Tab", "Tab"]);
    t.text("Hello from the console");
    t.keys(&["C-e"]);
    let screen = t.wait_screen("written in the editor", Duration::from_secs(10));
    assert!(
        screen.contains("Hello from the console"),
        "the typed subject survives:\n{screen}"
    );
    assert!(screen.contains("Compose"), "the console is back:\n{screen}");
    // Separate keys: ESC followed at once by q reads as alt-q.
    t.keys(&["Escape"]);
    t.wait_screen("No accounts yet", Duration::from_secs(10));
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(10)), 0);
}

/// Moves the selection down until `line` is on screen (the list's order follows Date headers).
fn select_until(t: &Tmux, line: &str, tries: usize) -> String {
    for _ in 0..tries {
        let s = t.screen();
        if s.contains(line) {
            return s;
        }
        t.keys(&["j"]);
        wait_for("the preview to follow", Duration::from_secs(5), || {
            let now = t.screen();
            (now != s).then_some(())
        });
    }
    t.wait_screen(line, Duration::from_secs(5))
}

#[test]
fn console_syncs_by_itself_shows_mail_inert_fetches_bodies_and_picks_folders() {
    servers();
    let user = new_user("tui-sync");
    mailbox_ready(&user);
    smtp_send(
        "alice@example.test",
        &user,
        "Evil \u{1b}]0;pwned-title\u{7} subject \u{1b}[2J end",
        "hostile\n",
    );
    smtp_send(
        "alice@example.test",
        &user,
        "Console e2e hello",
        "Body line for the console test.\n",
    );
    wait_for("both messages delivered", Duration::from_secs(30), || {
        let out = doveadm(&["search", "-u", &user, "mailbox", "INBOX", "all"]);
        (stdout(&out).lines().count() >= 2).then_some(())
    });
    let home = Home::new();
    home.add_account("main", &user);
    home.set_account_option("main", "sync.poll_secs", toml_edit::value(1));
    // Debug logging on: every log line must go to logs/console.log, never onto the screen.
    let t = Tmux::start(&home, "sync", &[("MAILROOM_LOG", "trace")], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));

    // No daemon runs: the console syncs the account itself; triage fills from the store.
    t.keys(&["4"]);
    let screen = t.wait_screen("Console e2e hello", Duration::from_secs(60));
    let screen = if screen.contains("Evil") {
        screen
    } else {
        t.wait_screen("Evil", Duration::from_secs(10))
    };
    assert!(
        !screen.contains("pwned"),
        "an escape sequence's payload was drawn:\n{screen}"
    );
    assert!(!screen.contains('\u{1b}'));
    let title = Command::new("tmux")
        .args(["-L", &t.socket, "display-message", "-p", "#{pane_title}"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&title.stdout).contains("pwned"),
        "the subject set the terminal title"
    );
    assert!(
        screen.contains("Evil  subject  end") || screen.contains("Evil subject end"),
        "the subject's text is shown:\n{screen}"
    );

    // Open the message: its body is fetched on demand and shown.
    select_until(&t, "Subject    Console e2e hello", 3);
    // (The preview may show the body already: wait for the message pane itself. And a key
    // sent right after ESC would read as alt-key, so every ESC waits for its effect.)
    t.keys(&["Enter"]);
    t.wait_screen("┌ Message #", Duration::from_secs(10));
    t.wait_screen("Body line for the console test.", Duration::from_secs(30));
    t.keys(&["Escape"]);
    t.wait_screen("┌ Preview #", Duration::from_secs(10));

    // Folder picker: the server's folders, Sent marked; switch Archive on.
    t.keys(&["3"]);
    let screen = t.wait_screen("Folders of main", Duration::from_secs(10));
    let screen = if screen.contains("Archive") {
        screen
    } else {
        t.wait_screen("Archive", Duration::from_secs(30))
    };
    assert!(
        screen.contains("sent ✉"),
        "the Sent folder is marked:\n{screen}"
    );
    assert!(
        screen
            .lines()
            .any(|l| l.contains("[x]") && l.contains("INBOX")),
        "{screen}"
    );
    // The first-sync plan: counts and sizes from the server, scoped without changing anything.
    t.keys(&["P"]);
    let screen = t.wait_screen("total: ", Duration::from_secs(30));
    assert!(
        screen.contains("INBOX") && screen.contains("to sync"),
        "{screen}"
    );
    t.keys(&["u"]);
    t.wait_screen("· unread only", Duration::from_secs(10));
    t.wait_screen("total: ", Duration::from_secs(30));
    // Rows are sorted by name; Archive is first.
    t.keys(&["g", "Space"]);
    t.wait_screen("main syncs:", Duration::from_secs(10));
    let (code, v) = home.json(&["folders", "main"]);
    assert_eq!(code, 0, "{v}");
    let on: Vec<&str> = v["folders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["sync"] == true)
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(on.contains(&"Archive") && on.contains(&"INBOX"), "{v}");
    let audit = home.json(&["audit"]).1;
    assert!(audit.to_string().contains("folders_change"), "{audit}");

    let screen = t.screen();
    assert!(
        !screen.contains("DEBUG") && !screen.contains(" INFO "),
        "log lines on the screen:\n{screen}"
    );
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);
    let log = std::fs::read_to_string(home.path().join("logs/console.log")).unwrap_or_default();
    assert!(
        log.contains("DEBUG"),
        "the console's log lines went to logs/console.log: {log:?}"
    );
    // A log file is read with less and grep: no colour codes in it.
    assert!(
        !log.contains('\x1b'),
        "escape codes in console.log: {log:?}"
    );
}

#[test]
fn console_replies_from_the_message_view_and_watches_the_outbox() {
    servers();
    let user = new_user("tui-reply");
    let sender_pair = new_user("tui-pairme");
    let sender_block = new_user("tui-blockme");
    mailbox_ready(&user);
    smtp_send(
        &sender_pair,
        &user,
        "Pair me please",
        "I am a future customer.\n",
    );
    smtp_send(
        &sender_block,
        &user,
        "Block me please",
        "Spam, spam, spam.\n",
    );
    wait_for("both messages delivered", Duration::from_secs(30), || {
        let out = doveadm(&["search", "-u", &user, "mailbox", "INBOX", "all"]);
        (stdout(&out).lines().count() >= 2).then_some(())
    });
    let home = Home::new();
    home.add_account("main", &user);
    home.set_account_option("main", "sync.poll_secs", toml_edit::value(1));
    let t = Tmux::start(&home, "reply", &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    t.keys(&["4"]);
    t.wait_screen("Pair me please", Duration::from_secs(60));
    t.wait_screen("Block me please", Duration::from_secs(10));

    // Reply from the message view; the outbox pane follows it to the server.
    select_until(&t, "Subject    Pair me please", 3);
    t.keys(&["Enter"]);
    t.wait_screen("┌ Message #", Duration::from_secs(10));
    t.wait_screen("I am a future customer.", Duration::from_secs(30));
    t.keys(&["r"]);
    t.wait_screen("Re: Pair me please", Duration::from_secs(10));
    t.text("Welcome aboard.");
    t.keys(&["C-s"]);
    t.wait_screen("Outbox 1/", Duration::from_secs(30));
    t.wait_screen("verified", Duration::from_secs(60));
    wait_for(
        "the reply in the sender's inbox",
        Duration::from_secs(30),
        || {
            let out = doveadm(&[
                "search",
                "-u",
                &sender_pair,
                "mailbox",
                "INBOX",
                "subject",
                "Re: Pair me please",
            ]);
            (stdout(&out).lines().count() == 1).then_some(())
        },
    );
    let out = doveadm(&[
        "search",
        "-u",
        &user,
        "mailbox",
        "Sent",
        "subject",
        "Re: Pair me please",
    ]);
    assert_eq!(stdout(&out).lines().count(), 1, "exactly one copy in Sent");

    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);
}

#[test]
fn console_pairs_and_blocks_through_the_headless_commands() {
    servers();
    let user = new_user("tui-triage");
    let sender_pair = new_user("tui-pairme");
    let sender_block = new_user("tui-blockme");
    mailbox_ready(&user);
    smtp_send(
        &sender_pair,
        &user,
        "Pair me please",
        "I am a future customer.\n",
    );
    smtp_send(
        &sender_block,
        &user,
        "Block me please",
        "Spam, spam, spam.\n",
    );
    wait_for("both messages delivered", Duration::from_secs(30), || {
        let out = doveadm(&["search", "-u", &user, "mailbox", "INBOX", "all"]);
        (stdout(&out).lines().count() >= 2).then_some(())
    });
    let home = Home::new();
    home.add_account("main", &user);
    home.set_account_option("main", "sync.poll_secs", toml_edit::value(1));
    let out = home.run(&[
        "customers",
        "add",
        "--name",
        "Zed Customer",
        "--email",
        "zed@customer.example",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = Tmux::start(&home, "triage", &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    t.keys(&["4"]);
    t.wait_screen("Pair me please", Duration::from_secs(60));
    t.wait_screen("Block me please", Duration::from_secs(10));

    // Pair the first message with a customer found by fuzzy search.
    select_until(&t, "Subject    Pair me please", 3);
    t.keys(&["p"]);
    t.wait_screen("Pair with customer", Duration::from_secs(10));
    t.text("zed");
    t.wait_screen("Zed Customer", Duration::from_secs(10));
    t.keys(&["Enter"]);
    t.wait_screen("action ", Duration::from_secs(20));
    wait_for(
        "the pairing in the database",
        Duration::from_secs(10),
        || {
            let n = home.db().count(
                "SELECT COUNT(*) FROM messages WHERE subject = 'Pair me please' AND customer_id IS NOT NULL",
                &[],
            );
            (n == 1).then_some(())
        },
    );

    // The customer's timeline has it now (customers pane, fuzzy search, Enter).
    t.keys(&["5"]);
    t.wait_screen("/ search:", Duration::from_secs(10));
    t.keys(&["/"]);
    t.text("zed");
    // Enter ends the search and opens the customer it found.
    t.keys(&["Enter"]);
    t.wait_screen("Customers 1/1", Duration::from_secs(10));
    t.wait_screen("Timeline 1/", Duration::from_secs(10));
    t.wait_screen("Pair me please", Duration::from_secs(10));
    t.keys(&["4"]);
    t.wait_screen("Triage: unknown senders", Duration::from_secs(10));
    // Block the other sender: the console says how much it affects and asks first.
    select_until(&t, "Subject    Block me please", 3);
    t.keys(&["b"]);
    t.wait_screen("cached message", Duration::from_secs(20));
    t.keys(&["y"]);
    t.wait_screen("action ", Duration::from_secs(20));
    let (code, deny) = home.json(&["deny", "list", "--account", "main"]);
    assert_eq!(code, 0, "{deny}");
    assert!(deny.to_string().contains(&sender_block), "{deny}");
    let screen = t.wait_screen("Nothing to triage", Duration::from_secs(20));
    assert!(!screen.contains("Block me please"), "{screen}");

    // Undo (the operator's last action): the blocked sender's mail is back in the queue.
    t.keys(&["u"]);
    t.wait_screen("undone", Duration::from_secs(20));
    t.wait_screen("Block me please", Duration::from_secs(20));
    let (_, deny) = home.json(&["deny", "list", "--account", "main"]);
    assert!(!deny.to_string().contains(&sender_block), "{deny}");

    // Add the sender as a customer, named in the prompt: it leaves the queue.
    select_until(&t, "Subject    Block me please", 3);
    t.keys(&["c"]);
    t.wait_screen("New customer from", Duration::from_secs(10));
    t.keys(&["C-u"]);
    t.text("Blocky Ltd");
    t.keys(&["Enter"]);
    t.wait_screen("Nothing to triage", Duration::from_secs(20));
    let (_, list) = home.json(&["customers", "list"]);
    assert!(list.to_string().contains("Blocky Ltd"), "{list}");

    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);
}

#[test]
fn console_applies_the_previewed_scope_and_sync_takes_only_that() {
    servers();
    let user = new_user("tui-scope");
    seed(&user, 200);
    mailbox_ready(&user);
    let home = Home::new();
    home.add_account("s", &user);
    // Disabled, so the console's own sync does not take the whole history before the scope is
    // applied; the folder list comes from the server once.
    let out = home.run(&["account", "disable", "s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = home.run(&["folders", "s", "--refresh"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, plan) = home.json(&["sync", "s", "--plan", "--since", "2026-05-01"]);
    assert_eq!(code, 0, "{plan}");
    let planned = plan["accounts"][0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == "INBOX")
        .and_then(|f| f["to_sync"].as_i64())
        .unwrap();
    assert!(planned > 0 && planned < 200, "the date narrows: {plan}");

    let t = Tmux::start(&home, "scope", &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    t.keys(&["3"]);
    t.wait_screen("Folders of s", Duration::from_secs(10));
    t.wait_screen("INBOX", Duration::from_secs(10));
    t.keys(&["P"]);
    let screen = t.wait_screen("total: ", Duration::from_secs(30));
    assert!(
        screen.contains("account syncs: all history · read and unread"),
        "{screen}"
    );
    t.keys(&["d"]);
    t.wait_screen("Plan: only mail since", Duration::from_secs(10));
    t.text("2026-05-01");
    t.keys(&["Enter"]);
    t.wait_screen(
        "First-sync plan: since 2026-05-01 · read and unread",
        Duration::from_secs(10),
    );
    let screen = t.wait_screen("total: ", Duration::from_secs(30));
    assert!(
        screen
            .lines()
            .any(|l| l.contains("INBOX") && l.contains(&format!(" {planned} to sync"))),
        "the console previews what the CLI plans ({planned}):\n{screen}"
    );
    assert!(screen.contains("(A applies this plan's scope)"), "{screen}");

    // Apply asks first, then runs `account edit --since --process` and shows the new scope.
    t.keys(&["A"]);
    t.wait_screen("Sync account s from now on", Duration::from_secs(10));
    t.keys(&["y"]);
    t.wait_screen("sync scope of s applied", Duration::from_secs(20));
    t.wait_screen(
        "account syncs: since 2026-05-01 · read and unread  (this plan)",
        Duration::from_secs(10),
    );
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);

    let text = home.settings_text();
    let doc: toml_edit::DocumentMut = text.parse().unwrap();
    let sync = &doc["accounts"]["s"]["sync"];
    assert_eq!(sync["since"].as_str(), Some("2026-05-01"), "{text}");
    assert_eq!(
        sync.get("process")
            .and_then(|p| p.as_str())
            .unwrap_or("all"),
        "all",
        "{text}"
    );
    let audit = home.json(&["audit"]).1;
    assert!(audit.to_string().contains("account_edit"), "{audit}");

    let out = home.run(&["sync", "s", "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, msgs) = home.json(&["messages", "s", "--folder", "INBOX", "--limit", "500"]);
    assert_eq!(
        msgs["messages"].as_array().unwrap().len() as i64,
        planned,
        "the sync took exactly what the plan showed"
    );
}

/// What tmux knows about the pane: `#{alternate_on}`, `#{cursor_flag}`, `#{pane_title}`….
fn pane_format(t: &Tmux, format: &str) -> String {
    let out = Command::new("tmux")
        .args(["-L", &t.socket, "display-message", "-p", format])
        .output()
        .expect("tmux display-message");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Starts the console with `failpoint` set, between a shell line before it and a loop after it
/// that echoes each line read (so the tty's mode shows).
fn start_to_panic(home: &Home, name: &str, failpoint: &str) -> Tmux {
    Tmux::start_between(
        home,
        name,
        &[("MAILROOM_FAILPOINT", failpoint)],
        &[],
        "echo BEFORE-CONSOLE",
        "while read -r line; do echo \"echoed:$line\"; done; sleep 600",
    )
}

/// After a panic in `thread` at `file`: the terminal is the shell's again (normal screen with
/// what was printed before, cursor shown, cooked mode), the report sits on it between the
/// shell's lines, cleaned, naming the log to attach, and that log holds the panic.
fn assert_restored_with_report(t: &Tmux, home: &Home, thread: &str, file: &str) {
    let screen = t.wait_screen("CONSOLE-ENDED", Duration::from_secs(10));
    assert_eq!(pane_format(t, "#{alternate_on}"), "0", "{screen}");
    assert!(screen.contains("BEFORE-CONSOLE"), "{screen}");
    assert!(
        !screen.contains("Accounts — overall")
            && !screen.contains("No accounts yet")
            && !screen.contains("Mail before the panic"),
        "the console's screen was left behind:\n{screen}"
    );
    assert_eq!(
        pane_format(t, "#{cursor_flag}"),
        "1",
        "the cursor is hidden"
    );

    // Nothing overwrote the report (a second "leave the alternate screen" moves the cursor
    // back up, and the shell then writes over it), and no escape in the panic's text acted.
    let joined = Command::new("tmux")
        .args(["-L", &t.socket, "capture-pane", "-p", "-J"])
        .output()
        .unwrap();
    let joined = String::from_utf8_lossy(&joined.stdout).to_string();
    let console_log = home.path().join("logs").join("console.log");
    let lines: Vec<&str> = joined.lines().collect();
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("{what:?} not on the screen:\n{joined}"))
    };
    let before = at("BEFORE-CONSOLE");
    let summary = at("the console stopped on an internal error");
    let place = at(&format!("thread {thread} panicked at {file}:"));
    let payload = at("simulated bug over hostile data red end");
    let attach = at(&format!(
        "please report the bug with {}",
        console_log.display()
    ));
    let ended = at("CONSOLE-ENDED");
    assert!(
        before < summary
            && summary < place
            && place <= payload
            && payload < attach
            && attach < ended,
        "the report is out of place:\n{joined}"
    );
    assert!(!joined.contains("mailroom-pwned"), "{joined}");
    assert_ne!(pane_format(t, "#{pane_title}"), "mailroom-pwned");
    let raw = Command::new("tmux")
        .args(["-L", &t.socket, "capture-pane", "-p", "-e"])
        .output()
        .unwrap();
    let colours = sgr_colours(&String::from_utf8_lossy(&raw.stdout));
    assert!(
        colours.is_empty(),
        "the panic text set colours: {colours:?}"
    );

    // Raw mode is off: a typed line is echoed by the tty and ends at Enter.
    t.text("typed after the panic");
    t.keys(&["Enter"]);
    let screen = t.wait_screen("echoed:typed after the panic", Duration::from_secs(10));
    assert!(
        screen
            .lines()
            .any(|l| l.trim_end() == "typed after the panic"),
        "the tty did not echo the line:\n{screen}"
    );

    // The log has the panic: where, the cleaned text (tracing may colour its own level
    // names, but none of the panic's escapes survive), and the backtrace.
    let log = std::fs::read_to_string(&console_log).expect("console.log exists");
    assert!(
        log.contains(&format!("panic in thread {thread} at {file}:")),
        "{log}"
    );
    assert!(
        log.contains("simulated bug over hostile data red end"),
        "{log}"
    );
    assert!(log.contains("backtrace:"), "{log}");
    assert!(
        !log.contains("mailroom-pwned") && !log.contains("\u{1b}]") && !log.contains("\u{1b}[2J"),
        "{log}"
    );
}

/// A real panic in the key handler (the `console_panic` failpoint, second key) while the
/// console syncs a real account: it unwinds out of main with Rust's panic status.
#[test]
fn a_panic_in_the_console_restores_the_terminal_says_where_the_log_is_and_logs_it() {
    servers();
    let user = new_user("tui-panic");
    mailbox_ready(&user);
    smtp_send(
        "alice@example.test",
        &user,
        "Mail before the panic",
        "body\n",
    );
    wait_for("the message delivered", Duration::from_secs(30), || {
        let out = doveadm(&["search", "-u", &user, "mailbox", "INBOX", "all"]);
        (!stdout(&out).trim().is_empty()).then_some(())
    });
    let home = Home::new();
    home.add_account("main", &user);
    home.set_account_option("main", "sync.poll_secs", toml_edit::value(1));
    let t = start_to_panic(&home, "panic", "console_panic@2");
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    // The bug hits while the account's sync task and its connection are live.
    t.keys(&["4"]);
    t.wait_screen("Mail before the panic", Duration::from_secs(60));
    assert_eq!(pane_format(&t, "#{alternate_on}"), "1");
    t.keys(&["j"]);
    assert_eq!(t.exit_code(Duration::from_secs(20)), 101);
    assert_restored_with_report(&t, &home, "main", "src/tui/mod.rs");
}

/// A panic on another thread (the I/O thread, on its first command) leaves the console
/// without its data: the console ends by itself, through its error path (exit 1), with the
/// same report, instead of drawing stale state — or drawing over the shell.
#[test]
fn a_panic_on_the_io_thread_ends_the_console_with_the_same_report() {
    let home = Home::new();
    let t = start_to_panic(&home, "iopanic", "console_io_panic");
    assert_eq!(t.exit_code(Duration::from_secs(20)), 1);
    assert_restored_with_report(&t, &home, "mailroom-console-io", "src/tui/io/mod.rs");
}

#[test]
fn console_syncs_an_account_added_from_another_shell() {
    servers();
    let first = new_user("tui-cfg-a");
    let second = new_user("tui-cfg-b");
    seed(&first, 2);
    seed(&second, 3);
    let home = Home::new();
    home.add_account("a", &first);
    let t = Tmux::start(&home, "cfg", &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    let count = |name: &str| -> usize {
        let (_, v) = home.json(&["messages", name, "--limit", "1000"]);
        v["messages"].as_array().map_or(0, |m| m.len())
    };
    wait_for("a synced by the console", Duration::from_secs(30), || {
        (count("a") == 2).then_some(())
    });
    // No daemon runs: only the console can sync the new account, and it does without a key.
    home.add_account("b", &second);
    wait_for("b synced by the console", Duration::from_secs(30), || {
        (count("b") == 3).then_some(())
    });
    t.wait_screen("b ", Duration::from_secs(10));
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(15)), 0);
}

/// Issue 17: a console on PostgreSQL sees another process's change within a second (the
/// tables NOTIFY, the console's watcher LISTENs where SQLite has `data_version`).
#[test]
fn console_on_postgresql_sees_another_processes_change_within_a_second() {
    let Some(home) = Home::on_postgres() else {
        eprintln!("skipped: no PostgreSQL (MAILROOM_TEST_PG_URL)");
        return;
    };
    let t = Tmux::start(&home, "pgwatch", &[], &[]);
    t.wait_screen("No accounts yet", Duration::from_secs(20));
    t.keys(&["5"]);
    t.wait_screen("No customers yet", Duration::from_secs(10));
    let mut seen = Vec::new();
    for i in 0..3 {
        let name = format!("Probe Customer {i}");
        let out = home.run(&["customers", "add", "--name", &name]);
        assert!(out.status.success(), "{}", stderr(&out));
        // Committed when the command ended; from here the console has to notice by itself.
        let start = std::time::Instant::now();
        t.wait_screen(&name, Duration::from_secs(10));
        seen.push(start.elapsed());
    }
    seen.sort();
    eprintln!("another process's change on screen after {seen:?}");
    assert!(
        seen[1] < Duration::from_secs(1),
        "the median change took {:?} to show: {seen:?}",
        seen[1]
    );
    t.keys(&["C-c"]);
    assert_eq!(t.exit_code(Duration::from_secs(10)), 0);
}
