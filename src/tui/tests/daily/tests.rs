//! The console as a daily driver: forms that behave (keys, presets), the account edit form,
//! the dashboard's detail and columns, the protocol trace in the log pane — snapshots at 80×24
//! and 160×48 and the key → command behaviour.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::ops::accounts::AccountView;
use crate::tui::action::Command;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// Presses a key as the terminal would deliver it: through the keymap, then update.
fn press(a: &mut App, code: KeyCode) -> Vec<Command> {
    match a.action_for_key(&key(code)) {
        Some(action) => a.update(action),
        None => vec![],
    }
}

fn type_text(a: &mut App, s: &str) {
    for c in s.chars() {
        press(a, KeyCode::Char(c));
    }
}

pub(super) fn account_view() -> AccountView {
    let cfg: crate::config::AccountConfig = toml::from_str(
        r#"
id = "acc-work"
email = "alice@example.test"
user = "alice@example.test"
imap = { host = "127.0.0.1", port = 1993, security = "tls" }
smtp = { host = "127.0.0.1", port = 1587, security = "starttls" }
ca_file = "/home/alice/ca.pem"
aliases = ["support@example.test"]
shared_with = ["bob"]
"#,
    )
    .unwrap();
    let mut v = AccountView::of("work", &cfg, None);
    v.sync.folders = Some(vec!["INBOX".into(), "Sent".into()]);
    v
}

pub(super) fn edit_app(theme: &str) -> App {
    edit_app_with(theme, account_view(), true)
}

/// The edit form loaded with `v` (`may_configure`: whether this operator may change it).
pub(super) fn edit_app_with(
    theme: &str,
    v: crate::ops::accounts::AccountView,
    may_configure: bool,
) -> App {
    let mut a = app(theme);
    a.dashboard.status = Some(status());
    a.update(Action::EditAccount);
    assert_eq!(a.pane, PaneId::Setup);
    let job = a.setup.edit.as_ref().map(|e| e.job).unwrap();
    a.apply(Data::EditLoaded(job, Box::new(Ok((v, may_configure)))));
    a
}

#[test]
fn a_text_field_takes_every_printable_key_and_tab_moves_between_fields() {
    let mut a = app("dark");
    a.pane = PaneId::Setup;
    press(&mut a, KeyCode::Tab); // Provider → Name
    assert_eq!(a.setup.field, F_NAME);
    type_text(&mut a, "q?3 1x");
    assert_eq!(a.setup.values[F_NAME], "q?3 1x", "q, ?, digits type");
    assert_eq!(a.pane, PaneId::Setup);
    assert!(!a.quit && !a.help);
    let footer = screen_text(&render_buffer(&a, 80, 24)).pop().unwrap();
    assert!(footer.contains("typing into Name"), "{footer}");
    assert!(!footer.contains("q quit"), "q types here: {footer}");
    press(&mut a, KeyCode::Tab);
    assert_eq!(a.setup.field, F_EMAIL);
    let back = KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT);
    let act = a.action_for_key(&back).unwrap();
    a.update(act);
    assert_eq!(a.setup.field, F_NAME);
    // Shift-Tab from the first field wraps to the last; Tab from the last to the first.
    a.setup.field = F_PRESET;
    a.update(a.action_for_key(&back).unwrap());
    assert_eq!(a.setup.field, *NEW_ORDER.last().unwrap());
    press(&mut a, KeyCode::Tab);
    assert_eq!(a.setup.field, F_PRESET);
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.pane, PaneId::Dashboard, "esc leaves the form");
}

#[test]
fn another_preset_clears_what_the_previous_one_filled_in() {
    let mut a = app("dark");
    a.pane = PaneId::Setup;
    press(&mut a, KeyCode::Right); // Gmail
    assert_eq!(a.setup.values[F_IMAP_HOST], "imap.gmail.com");
    press(&mut a, KeyCode::Right); // the next preset: its own host
    assert_eq!(
        a.setup.values[F_IMAP_HOST],
        crate::presets::PRESETS[1].imap_host
    );
    // Back to Custom: nothing of the presets is left, so typing gives exactly what is typed.
    let n = crate::presets::PRESETS.len();
    for _ in 0..n - 1 {
        press(&mut a, KeyCode::Right);
    }
    assert_eq!(a.setup.preset, 0, "custom");
    assert_eq!(a.setup.values[F_IMAP_HOST], "");
    assert_eq!(a.setup.values[F_IMAP_PORT], "993");
    a.setup.field = F_IMAP_HOST;
    type_text(&mut a, "127.0.0.1");
    assert_eq!(a.setup.values[F_IMAP_HOST], "127.0.0.1");
    // A value typed over a preset's stays when the preset changes.
    a.setup.field = F_PRESET;
    press(&mut a, KeyCode::Right);
    a.setup.values[F_SMTP_HOST] = "smtp.mine.test".into();
    press(&mut a, KeyCode::Right);
    assert_eq!(a.setup.values[F_SMTP_HOST], {
        let p = &crate::presets::PRESETS[1];
        if p.smtp_host.is_empty() {
            "smtp.mine.test"
        } else {
            p.smtp_host
        }
    });
}

#[test]
fn the_edit_form_sends_only_what_changed_and_asks_before_saving_after_a_failed_test() {
    let mut a = edit_app("dark");
    assert_eq!(a.setup.values[F_IMAP_PORT], "1993");
    assert_eq!(a.setup.values[F_FOLDERS], "INBOX, Sent");
    // Nothing changed: an empty change.
    let req = a.setup.to_edit().unwrap();
    assert!(req.password.is_none() && req.folders.is_none());
    assert!(req.edit.server.imap.is_none() && req.edit.poll_secs.is_none());
    // The password, the poll interval and the folders.
    a.setup.field = F_PASSWORD;
    type_text(&mut a, "n3w-s3cret?");
    a.setup.values[F_POLL] = "30".into();
    a.setup.values[F_FOLDERS] = "INBOX".into();
    a.setup.values[F_ALIASES].clear();
    a.setup.field = F_SENT_COPY;
    press(&mut a, KeyCode::Char(' '));
    let req = a.setup.to_edit().unwrap();
    assert_eq!(
        req.password
            .as_ref()
            .map(|p| secrecy::ExposeSecret::expose_secret(p).to_string()),
        Some("n3w-s3cret?".into())
    );
    assert!(!format!("{req:?}").contains("n3w"), "never printed");
    assert_eq!(req.edit.poll_secs, Some(30));
    assert_eq!(req.folders, Some(vec!["INBOX".to_string()]));
    assert!(req.edit.clear_aliases);
    assert_eq!(req.edit.sent_copy, Some(!account_view().sent_copy.enabled));
    assert!(req.edit.server.imap.is_none(), "servers untouched");
    // A bad number is named, nothing is sent.
    a.setup.values[F_POLL] = "soon".into();
    assert!(a.update(Action::SaveAccount).is_empty());
    assert!(matches!(&a.setup.message, Some(Err(e)) if e.summary.contains("poll")));
    a.setup.values[F_POLL] = "30".into();
    // Test: the edited settings are tested, not the stored ones.
    let cmds = a.update(Action::TestConnection);
    let job = match &cmds[..] {
        [Command::TestEdit { job, req }] => {
            assert_eq!(req.name, "work");
            *job
        }
        other => panic!("{other:?}"),
    };
    a.apply(Data::CheckDone(
        job,
        Ok(Report {
            ok: false,
            steps: vec![step(
                "login",
                StepStatus::Failed,
                "rejected",
                Some("check the password"),
            )],
        }),
    ));
    // Saving after a failed test asks first; "no" saves nothing, "yes" saves.
    assert!(a.update(Action::SaveAccount).is_empty());
    assert!(a.dialog.as_ref().is_some_and(|d| d.text.contains("failed")));
    assert!(a.update(Action::Dismiss).is_empty());
    a.update(Action::SaveAccount);
    let cmds = a.update(Action::Confirm);
    let job = match &cmds[..] {
        [Command::SaveEdit { job, req }] => {
            assert_eq!(req.edit.poll_secs, Some(30));
            *job
        }
        other => panic!("{other:?}"),
    };
    let cmds = a.apply(Data::Saved(job, Ok("work".into())));
    assert_eq!(a.pane, PaneId::Dashboard);
    assert!(
        a.toast
            .as_ref()
            .is_some_and(|t| t.text == "updated account work")
    );
    assert!(cmds.iter().any(|c| matches!(c, Command::RestartSync)));
    assert!(
        a.setup.edit.is_none(),
        "the next `2` opens a new account's form"
    );
}

#[test]
fn edit_form_snapshots() {
    for theme in ["dark", "monochrome"] {
        for (w, h) in [(80u16, 24u16), (160, 48)] {
            let mut a = edit_app(theme);
            a.size = (w, h);
            insta::assert_snapshot!(
                format!("edit_form_{w}x{h}_{theme}"),
                snapshot(&render_buffer(&a, w, h))
            );
            // The end of the form scrolls into view, with a running test beside it.
            a.setup.field = F_SENT_COPY;
            let mut run = CheckRun::new(7, "Test the edited settings".into());
            run.steps = vec![
                step("connect", StepStatus::Ok, "127.0.0.1:1993", None),
                step("tls", StepStatus::Ok, "TLS 1.3", None),
                step(
                    "login",
                    StepStatus::Failed,
                    "rejected",
                    Some("check the password"),
                ),
            ];
            run.done = Some(false);
            a.setup.run = Some(run);
            insta::assert_snapshot!(
                format!("edit_form_tested_{w}x{h}_{theme}"),
                snapshot(&render_buffer(&a, w, h))
            );
        }
    }
}

fn trace_entry(
    id: i64,
    account: &str,
    dir: &str,
    level: &str,
    line: &str,
) -> crate::ops::trace::TraceEntry {
    crate::ops::trace::TraceEntry {
        id,
        account: account.into(),
        at: format!("2026-11-25T09:{:02}:{:02}Z", id / 60, id % 60),
        proto: if line.starts_with("AUTH") || line.starts_with("EHLO") {
            "smtp".into()
        } else {
            "imap".into()
        },
        dir: dir.into(),
        level: level.into(),
        line: line.into(),
    }
}

pub(super) fn trace_app(theme: &str, lines: bool) -> App {
    let mut a = app(theme);
    a.pane = PaneId::Log;
    a.update(Action::ToggleTraceView);
    let states = vec![
        crate::ops::trace::TraceState {
            account: "work".into(),
            enabled: true,
            literals: false,
        },
        crate::ops::trace::TraceState {
            account: "home".into(),
            enabled: false,
            literals: false,
        },
    ];
    let rows = if lines {
        vec![
            trace_entry(9, "work", "S", "info", "A0002 OK Select completed"),
            trace_entry(8, "work", "S", "debug", "* 1200 EXISTS"),
            trace_entry(7, "work", "C", "info", "A0002 SELECT INBOX"),
            trace_entry(
                6,
                "work",
                "S",
                "info",
                "235 2.7.0 Authentication successful",
            ),
            trace_entry(5, "work", "C", "info", "AUTH PLAIN <redacted>"),
            trace_entry(
                4,
                "work",
                "S",
                "info",
                "A0001 OK [CAPABILITY IMAP4rev1 IDLE] Logged in",
            ),
            trace_entry(3, "work", "C", "info", "A0001 LOGIN <redacted>"),
            trace_entry(2, "work", "S", "info", "* OK Dovecot ready. \u{1b}[2Jinert"),
        ]
    } else {
        vec![]
    };
    let generation = a.log.traces.generation;
    a.apply(Data::Trace(
        Page {
            generation,
            offset: 0,
            result: Ok((rows.len(), rows)),
        },
        states,
    ));
    a
}

#[test]
fn the_trace_view_switches_filters_and_exports_through_commands() {
    let mut a = app("dark");
    a.pane = PaneId::Log;
    let cmds = press(&mut a, KeyCode::Char('T'));
    assert!(a.log.trace);
    assert!(matches!(&cmds[..], [Command::LoadTrace { query, .. }] if query.account.is_none()));
    let mut a = trace_app("dark", true);
    // `a`: the first account, then the next, then every account again.
    let cmds = press(&mut a, KeyCode::Char('a'));
    assert!(
        matches!(&cmds[..], [Command::LoadTrace { query, .. }] if query.account.as_deref() == Some("work"))
    );
    // `t` switches the shown account's trace; work is on, so off.
    let cmds = press(&mut a, KeyCode::Char('t'));
    assert!(
        matches!(&cmds[..], [Command::SetTrace { account, on: false, .. }] if account == "work")
    );
    press(&mut a, KeyCode::Char('a'));
    let cmds = press(&mut a, KeyCode::Char('t'));
    assert!(
        matches!(&cmds[..], [Command::SetTrace { account, on: true, .. }] if account == "home")
    );
    // `l`: debug (untagged data, literals) ⇄ info.
    let cmds = press(&mut a, KeyCode::Char('l'));
    assert!(
        matches!(&cmds[..], [Command::LoadTrace { query, .. }] if query.level.as_deref() == Some("debug"))
    );
    // `E` asks where, then exports.
    press(&mut a, KeyCode::Char('E'));
    assert!(a.prompt.is_some());
    let cmds = a.update(Action::Confirm);
    assert!(
        matches!(&cmds[..], [Command::ExportTrace { account, path }] if account == "home" && path == "mailroom-trace-home.txt")
    );
    // The escape in a server's line is drawn inert.
    let a = trace_app("dark", true);
    let text = screen_text(&render_buffer(&a, 160, 48)).join("\n");
    assert!(text.contains("LOGIN <redacted>") && !text.contains('\u{1b}'));
}

#[test]
fn trace_view_snapshots() {
    for theme in ["dark", "monochrome"] {
        for (w, h) in [(80u16, 24u16), (160, 48)] {
            for (state, lines) in [("typical", true), ("empty", false)] {
                let mut a = trace_app(theme, lines);
                a.size = (w, h);
                insta::assert_snapshot!(
                    format!("trace_{state}_{w}x{h}_{theme}"),
                    snapshot(&render_buffer(&a, w, h))
                );
            }
        }
    }
}

/// The dashboard at 100k messages with a test of `work` that failed at login.
fn dashboard_at_100k(theme: &str) -> App {
    let mut a = app(theme);
    let mut s = status();
    s.accounts[0].counts = crate::ops::status::Counts {
        messages: 100_000,
        unread: 16_866,
    };
    s.accounts[0].outbox = OutboxCounts {
        queued: 2,
        uncertain: 1,
        copy_pending: 0,
    };
    a.dashboard.status = Some(s);
    a.update(Action::TestAccount);
    let job = a.dashboard.run.as_ref().unwrap().job;
    let mut steps = vec![
        step("connect", StepStatus::Ok, "127.0.0.1:1993", None),
        step("tls", StepStatus::Ok, "TLS 1.3, certificate verified", None),
        step(
            "login",
            StepStatus::Failed,
            "the server rejected the login for alice@example.test",
            Some("check the user name and password, then `mailroom account set-password work`"),
        ),
    ];
    for id in [
        "list",
        "sent_folder",
        "sent_write",
        "smtp_connect",
        "smtp_tls",
        "smtp_auth",
    ] {
        steps.push(step(
            id,
            StepStatus::Skipped,
            "skipped after a failure",
            None,
        ));
    }
    a.apply(Data::CheckDone(job, Ok(Report { ok: false, steps })));
    a
}

#[test]
fn the_dashboard_detail_follows_the_selection_and_columns_fit_their_content() {
    let mut a = dashboard_at_100k("dark");
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("100000 (16866 new)"), "{text}");
    assert!(text.contains("1 uncertain+"), "the column: {text}");
    let wide = screen_text(&render_buffer(&a, 160, 48)).join("\n");
    assert!(wide.contains("2 queued, 1 uncertain"), "the detail: {wide}");
    assert!(!text.contains("0q"), "{text}");
    // The checklist scrolled: its end (the verdict) is on screen at 80×24.
    assert!(text.contains("checks failed"), "{text}");
    // Another account: its own detail, not work's test.
    a.update(Action::Down);
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("login rejected"), "{text}");
    assert!(!text.contains("Test work"), "{text}");
    assert!(text.contains("empty"), "an empty outbox in words: {text}");
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let mut a = dashboard_at_100k("dark");
        a.size = (w, h);
        insta::assert_snapshot!(
            format!("dashboard_100k_tested_{w}x{h}"),
            snapshot(&render_buffer(&a, w, h))
        );
    }
}

#[test]
fn enter_in_customer_search_selects_and_lists_show_accounts_and_reasons() {
    let mut a = scene("dark", PaneId::Customers, State::Typical);
    press(&mut a, KeyCode::Char('/'));
    assert!(a.customers.searching);
    type_text(&mut a, "q");
    let cmds = press(&mut a, KeyCode::Enter);
    assert!(!a.customers.searching, "enter ends the search");
    // The final query's answer (still on its way) opens its first customer.
    let generation = match &cmds[..] {
        [Command::LoadCustomers { generation, .. }, ..] => *generation,
        other => panic!("{other:?}"),
    };
    let rows = a.customers.list.rows.clone();
    let cmds = a.apply(Data::Customers(Page {
        generation,
        offset: 0,
        result: Ok((rows.len(), rows)),
    }));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::LoadTimeline { .. })),
        "and opens the selected customer: {cmds:?}"
    );
    assert!(a.customers.timeline_focus);
    // The timeline says why each message matched; triage and quarantine name the account.
    let a = scene("dark", PaneId::Customers, State::Typical);
    let text = screen_text(&render_buffer(&a, 160, 48)).join("\n");
    assert!(
        text.contains("Why it matched") && text.contains("domain: example.test"),
        "{text}"
    );
    let a = scene("dark", PaneId::Triage, State::Typical);
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("Account") && text.contains("home"), "{text}");
}
