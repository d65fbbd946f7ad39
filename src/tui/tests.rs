//! Whole-screen snapshots of every pane (typical, empty, error) at 80×24 and 160×48 in the dark
//! and monochrome themes, plus the safety checks (hostile escapes, wide Unicode). States are
//! built from fixed data — no clock, no network — so the snapshots are deterministic.
//!
//! Snapshot format: the screen text, then a run-length style map per line (`A12 .5`: 12 cells
//! of style A, 5 unstyled) and the legend — so a theme change shows up in review.

use std::collections::HashMap;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

use super::action::{Action, PaneId};
use super::app::*;
use super::keymap::Keymap;
use super::theme::Theme;
use super::view;
use crate::error::AppError;
use crate::ops::accounts::{Report, Step, StepStatus};
use crate::ops::folders::{FolderEntry, FolderRow, Role};
use crate::ops::messages::{Addr, LocationView, MessageView};
use crate::ops::outbox::{CopyState, Item, LastError, OutboxState};
use crate::ops::quarantine::{QuarantineRow, QuarantineState};
use crate::ops::status::{AccountStatus, Counts, Health, Overall, Progress, Status};
use crate::ops::sync::{AccountPlan, FolderPlan, PlanTotal};
use crate::store::console::*;
use crate::store::{AccountState, CustomerRow, ErrorInfo, EventRow, OutboxCounts, Store};

// The mail pane's tests (named tests.rs so scripts/check-layers treats them as tests).
#[path = "tests/mail/tests.rs"]
mod mail;
// Forms, the edit form, the dashboard and the protocol trace (issue 14, part B).
#[path = "tests/daily/tests.rs"]
mod daily;
// The edit form's every setting, read-only for a shared operator, and 80×24 on every pane
// (issue 14, part C).
#[path = "tests/edit/tests.rs"]
mod edit;

fn render_buffer(app: &App, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::draw(f, app)).unwrap();
    t.backend().buffer().clone()
}

fn screen_text(buf: &Buffer) -> Vec<String> {
    let w = buf.area.width as usize;
    buf.content
        .chunks(w)
        .map(|cells| {
            let mut line = String::new();
            let mut skip = 0usize;
            for c in cells {
                if skip == 0 {
                    line.push_str(c.symbol());
                }
                skip = skip.max(unicode_cell_width(c.symbol())).saturating_sub(1);
            }
            line
        })
        .collect()
}

fn unicode_cell_width(s: &str) -> usize {
    ratatui::text::Span::raw(s).width()
}

fn snapshot(buf: &Buffer) -> String {
    let mut out = String::new();
    for l in screen_text(buf) {
        out.push_str(&format!("|{l}|\n"));
    }
    out.push_str("--- styles\n");
    let mut legend: Vec<String> = Vec::new();
    let mut ids: HashMap<String, char> = HashMap::new();
    let w = buf.area.width as usize;
    for (y, cells) in buf.content.chunks(w).enumerate() {
        let mut runs: Vec<(char, usize)> = Vec::new();
        for c in cells {
            let key = format!("{:?}/{:?}/{:?}", c.fg, c.bg, c.modifier);
            let id = if key == "Reset/Reset/NONE" {
                '.'
            } else {
                let n = ids.len();
                *ids.entry(key.clone()).or_insert_with(|| {
                    let ch = (b'A' + (n % 26) as u8) as char;
                    legend.push(format!("{ch} = {key}"));
                    ch
                })
            };
            match runs.last_mut() {
                Some((c, n)) if *c == id => *n += 1,
                _ => runs.push((id, 1)),
            }
        }
        let line: Vec<String> = runs.iter().map(|(c, n)| format!("{c}{n}")).collect();
        out.push_str(&format!("{y:02} {}\n", line.join(" ")));
    }
    out.push_str("--- legend\n");
    for l in legend {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn app(theme: &str) -> App {
    let mut a = App::new(Theme::builtin(theme).unwrap(), Keymap::defaults(), (80, 24));
    a.accounts = accounts();
    a
}

fn accounts() -> Vec<AccountInfo> {
    vec![
        AccountInfo {
            name: "work".into(),
            id: "acc-work".into(),
            email: "alice@example.test".into(),
            aliases: vec!["support@example.test".into()],
            since: None,
            unread_only: false,
        },
        AccountInfo {
            name: "home".into(),
            id: "acc-home".into(),
            email: "bob@example.test".into(),
            aliases: vec![],
            since: None,
            unread_only: false,
        },
    ]
}

fn status() -> Status {
    Status {
        overall: Overall::Failing,
        accounts: vec![
            AccountStatus {
                name: "work".into(),
                email: "alice@example.test".into(),
                enabled: true,
                state: AccountState::Syncing,
                insecure: false,
                last_success_at: Some("2026-11-25T09:58:00Z".into()),
                last_error: None,
                counts: Counts {
                    messages: 10234,
                    unread: 17,
                },
                progress: Some(Progress {
                    folder: "INBOX".into(),
                    done: 420,
                    total: 1000,
                }),
                health: Health {
                    success_rate: Some(0.98),
                    last_duration_ms: Some(812),
                    bytes: 52_400_000,
                    messages: 10234,
                },
                outbox: OutboxCounts {
                    queued: 1,
                    uncertain: 0,
                    copy_pending: 1,
                },
                unmatched: 12,
                bodies: Default::default(),
                synced_by: None,
                waiting: None,
            },
            AccountStatus {
                name: "home".into(),
                email: "bob@example.test".into(),
                enabled: true,
                state: AccountState::Error,
                insecure: true,
                last_success_at: None,
                last_error: Some(ErrorInfo {
                    at: "2026-11-25T08:00:00Z".into(),
                    what: "login rejected".into(),
                    fix: "set the right password: `mailroom account set-password home`".into(),
                }),
                counts: Counts {
                    messages: 0,
                    unread: 0,
                },
                progress: None,
                health: Health {
                    success_rate: None,
                    last_duration_ms: None,
                    bytes: 0,
                    messages: 0,
                },
                outbox: OutboxCounts::default(),
                unmatched: 0,
                bodies: Default::default(),
                synced_by: None,
                waiting: None,
            },
        ],
        alerts: Default::default(),
    }
}

fn msg(id: i64, from: &str, subject: &str, seen: bool) -> MessageSummary {
    MessageSummary {
        id,
        from_name: Some(from.split('@').next().unwrap_or("").to_string()),
        from_addr: Some(from.to_string()),
        subject: Some(subject.to_string()),
        date: Some(format!(
            "2026-11-{:02}T10:{:02}:00Z",
            25 - (id % 20),
            id % 60
        )),
        seen,
        account_id: Some(if id % 4 == 0 { "acc-home" } else { "acc-work" }.into()),
        why: Some(if id % 2 == 0 {
            "email: the sender's address".into()
        } else {
            "domain: example.test".into()
        }),
        has_attachments: id % 3 == 0,
        direction: if id % 5 == 0 {
            "out".into()
        } else {
            "in".into()
        },
        size: Some(2048),
    }
}

fn customer(
    id: i64,
    name: &str,
    company: Option<&str>,
    emails: &[&str],
    domains: &[&str],
) -> CustomerRow {
    CustomerRow {
        id,
        name: name.into(),
        company: company.map(Into::into),
        notes: None,
        emails: emails.iter().map(|s| s.to_string()).collect(),
        domains: domains.iter().map(|s| s.to_string()).collect(),
        created_at: "2026-11-25T09:00:00Z".into(),
        updated_at: "2026-11-25T09:00:00Z".into(),
    }
}

fn messages(n: i64) -> Vec<MessageSummary> {
    (1..=n)
        .map(|i| {
            msg(
                i,
                &format!("sender{i}@client{}.example", i % 4),
                &format!("Question about order #{}", 1000 + i),
                i % 2 == 0,
            )
        })
        .collect()
}

/// The message view of a list row, fetched, in work/INBOX.
fn detail(m: MessageSummary) -> MessageView {
    MessageView {
        message: crate::ops::messages::MessageSummary {
            id: m.id,
            message_id: Some("abc@client.example".into()),
            thread_id: Some(m.id),
            from: m.from_addr.map(|address| Addr {
                name: m.from_name,
                address,
            }),
            to: vec![Addr {
                name: Some("Alice".into()),
                address: "alice@example.test".into(),
            }],
            cc: vec![],
            subject: m.subject,
            date: m.date,
            flags: vec![],
            size: m.size,
            locations: vec![LocationView {
                account: "work".into(),
                account_id: "acc-work".into(),
                folder: "INBOX".into(),
                uidvalidity: 1,
                uid: m.id as u32,
                flags: vec![],
            }],
            customer_id: None,
        },
        text: Some("Hello,\n\nwhere is my order? It was due last week.\n\nThanks,\nSam".into()),
        attachments: vec![],
        in_reply_to: None,
        references: None,
        body_fetched: true,
        has_attachments: m.has_attachments,
        customer: None,
    }
}

fn outbox_item(
    id: i64,
    to: &str,
    subject: &str,
    state: OutboxState,
    copy_state: Option<CopyState>,
    attempts: i64,
) -> Item {
    Item {
        id,
        account: "work".into(),
        state,
        copy_state,
        from: "alice@example.test".into(),
        to: vec![to.into()],
        subject: Some(subject.into()),
        message_id: format!("{id}@example.test"),
        attempts,
        copy_attempts: 0,
        last_error: Some(LastError {
            at: Some("2026-11-25T10:00:00Z".into()),
            what: "SMTP refused the login".into(),
            fix: Some("`mailroom account set-password work`".into()),
        }),
        next_attempt_at: Some("2026-11-25T10:30:00Z".into()),
        created_at: "2026-11-25T09:00:00Z".into(),
        updated_at: "2026-11-25T10:00:00Z".into(),
        sent_at: None,
        verified_at: None,
        copy_folder: None,
        copy_uid: None,
        copy_note: None,
        size: Some(2048),
        in_reply_to: None,
        thread_message_id: None,
    }
}

fn paged<T>(rows: Vec<T>, selected: usize) -> Paged<T> {
    Paged {
        total: rows.len(),
        offset: 0,
        rows,
        selected,
        generation: 0,
        loaded: true,
        error: None,
    }
}

fn err() -> AppError {
    AppError::local(
        "cannot read the database",
        "database disk image is malformed",
        "restore a backup of mailroom.db or move it away to rebuild the cache",
    )
}

fn folder(id: i64, name: &str, role: Option<Role>, sync: bool) -> FolderEntry {
    FolderEntry {
        folder: FolderRow {
            id,
            account_id: "acc-work".into(),
            name: name.into(),
            wire_name: name.into(),
            delimiter: Some("/".into()),
            attributes: String::new(),
            role,
            role_source: None,
            sync_enabled: sync,
            selectable: true,
            uidvalidity: None,
            uidnext: None,
            highestmodseq: None,
            exists_count: Some(100 * id as u32),
            first_sync_done: true,
            checkpoint_uid: None,
            mark_read_from_uid: None,
            last_synced_at: Some("2026-11-25T09:58:00Z".into()),
            present: true,
            total_bytes: Some(1_500_000 * id),
        },
        cached: 90 * id,
    }
}

fn plan_folder(name: &str, messages: u32, to_sync: u64, bytes: u64) -> FolderPlan {
    FolderPlan {
        folder: name.into(),
        role: None,
        messages,
        unread: 0,
        to_sync,
        bytes,
        estimate_secs: 0.2,
    }
}

fn step(id: &'static str, status: StepStatus, detail: &str, fix: Option<&str>) -> Step {
    Step {
        id,
        status,
        detail: detail.into(),
        fix: fix.map(String::from),
        code: None,
    }
}

#[derive(Clone, Copy, Debug)]
enum State {
    Typical,
    Empty,
    Error,
}

/// Builds the app for one pane in one state.
fn scene(theme: &str, pane: PaneId, state: State) -> App {
    let mut a = app(theme);
    a.pane = pane;
    a.dashboard.status = Some(status());
    match (pane, state) {
        (PaneId::Dashboard, State::Typical) => {
            a.dashboard.run = Some(CheckRun {
                job: 1,
                title: "Test work".into(),
                account: Some("work".into()),
                steps: vec![
                    step("connect", StepStatus::Ok, "reached 127.0.0.1:1993", None),
                    step("tls", StepStatus::Ok, "TLS up, certificate verified", None),
                ],
                done: None,
                error: None,
            });
        }
        (PaneId::Dashboard, State::Empty) => {
            a.dashboard.status = Some(Status {
                overall: Overall::Healthy,
                accounts: vec![],
                alerts: Default::default(),
            });
            a.accounts.clear();
        }
        (PaneId::Dashboard, State::Error) => a.dashboard.error = Some(err()),
        (PaneId::Setup, State::Typical) => {
            for (c, action) in [(Action::ChoiceNext, 1), (Action::NextField, 1)] {
                for _ in 0..action {
                    a.update(c.clone());
                }
            }
            for ch in "work".chars() {
                a.update(Action::Input(ch));
            }
            a.update(Action::NextField);
            for ch in "alice@gmail.com".chars() {
                a.update(Action::Input(ch));
            }
            a.update(Action::NextField);
            a.update(Action::NextField);
            for ch in "hunter2".chars() {
                a.update(Action::Input(ch));
            }
            a.setup.run = Some(CheckRun {
                account: None,
                job: 1,
                title: "Test connection".into(),
                steps: vec![
                    step(
                        "connect",
                        StepStatus::Ok,
                        "reached imap.gmail.com:993",
                        None,
                    ),
                    step("tls", StepStatus::Ok, "TLS up, certificate verified", None),
                    step(
                        "login",
                        StepStatus::Failed,
                        "login rejected: [AUTHENTICATIONFAILED] Invalid credentials",
                        Some("use an app password (myaccount.google.com → Security)"),
                    ),
                ],
                done: None,
                error: None,
            });
        }
        (PaneId::Setup, State::Empty) => {}
        (PaneId::Setup, State::Error) => {
            a.setup.message = Some(Err(AppError::usage(
                "invalid account name \"\"",
                "use letters, digits, - _ . @",
            )));
        }
        (PaneId::Folders, State::Typical) => {
            a.folders.loaded = true;
            a.folders.rows = vec![
                folder(1, "Archive", Some(Role::Archive), false),
                folder(2, "INBOX", Some(Role::Inbox), true),
                folder(3, "INBOX/Projects", None, true),
                folder(4, "INBOX/Projects/Zürich 2026", None, false),
                folder(5, "Sent", Some(Role::Sent), true),
                folder(6, "Trash", Some(Role::Trash), false),
            ];
            a.folders.selected = 2;
            a.folders.plan = Some(PlanView {
                job: 1,
                since: Some("2026-01-01".into()),
                unread_only: false,
                result: Some(Ok(AccountPlan {
                    name: "work".into(),
                    folders: vec![
                        plan_folder("INBOX", 1200, 800, 12_500_000),
                        plan_folder("Sent", 300, 120, 900_000),
                    ],
                    total: PlanTotal {
                        to_sync: 920,
                        bytes: 13_400_000,
                        estimate_secs: 0.4,
                    },
                    since: Some("2026-01-01".into()),
                    unread_only: false,
                })),
            });
        }
        (PaneId::Folders, State::Empty) => a.folders.loaded = true,
        (PaneId::Folders, State::Error) => a.folders.error = Some(err()),
        (PaneId::Triage, State::Typical) => {
            a.triage = paged(messages(40), 2);
            a.preview.detail = Some(detail(a.triage.rows[2].clone()));
            a.preview.loaded = true;
        }
        (PaneId::Triage, State::Empty) => a.triage.loaded = true,
        (PaneId::Triage, State::Error) => a.triage.error = Some(err()),
        (PaneId::Message, State::Typical) => {
            a.message.detail = Some(detail(msg(
                7,
                "sam@client.example",
                "Where is my order?",
                false,
            )));
            a.message.loaded = true;
            a.message.back = Some(PaneId::Triage);
        }
        (PaneId::Message, State::Empty) => {
            let mut d = detail(msg(8, "x@y.example", "Only headers so far", true));
            d.text = None;
            d.body_fetched = false;
            a.message.detail = Some(d);
            a.message.loaded = true;
        }
        (PaneId::Message, State::Error) => {
            a.message.loaded = true;
            a.message.error = Some(AppError::needs_user(
                "the message is gone",
                "it was removed from the cache since the list was read",
                "go back and pick another",
            ));
        }
        (PaneId::Customers, State::Typical) => {
            a.customers.query = "acm".into();
            a.customers.list = paged(
                vec![
                    customer(
                        1,
                        "ACME Corp",
                        Some("ACME"),
                        &["buyer@acme.example", "ceo@acme.example"],
                        &["acme.example"],
                    ),
                    customer(2, "Academy of Music", None, &["office@aom.example"], &[]),
                ],
                0,
            );
            a.customers.timeline_of = Some(1);
            a.customers.timeline = paged(messages(6), 0);
        }
        (PaneId::Customers, State::Empty) => a.customers.list.loaded = true,
        (PaneId::Customers, State::Error) => a.customers.list.error = Some(err()),
        (PaneId::Compose, State::Typical) => {
            a.compose.values[F_TO] = "sam@client.example".into();
            a.compose.values[F_BCC] = "boss@example.test".into();
            a.compose.values[F_REPLY_TO] = "support@example.test".into();
            a.compose.values[F_SUBJECT] = "Re: Where is my order?".into();
            a.compose.values[F_ATTACH] = "/home/alice/invoice-1042.pdf".into();
            a.compose.values[F_BODY] = "Hi Sam,\n\nit ships today.\n\nAlice".into();
            a.compose.draft_id = Some(3);
            a.compose.uploaded = Some("Drafts".into());
            a.compose.field = 5;
        }
        (PaneId::Compose, State::Empty) => a.accounts.clear(),
        (PaneId::Compose, State::Error) => {
            a.compose.values[F_TO] = "sam@client.example".into();
            a.compose.values[F_SUBJECT] = "Hello".into();
            a.update(Action::Send);
            a.apply(Data::Sent(Err(AppError::needs_user(
                "the SMTP server refused the login",
                "535 5.7.8 authentication failed",
                "`mailroom account set-password work`",
            ))));
        }
        (PaneId::Outbox, State::Typical) => {
            a.outbox = paged(
                vec![
                    outbox_item(
                        3,
                        "sam@client.example",
                        "Re: Where is my order?",
                        OutboxState::Failed,
                        None,
                        3,
                    ),
                    Item {
                        next_attempt_at: None,
                        last_error: None,
                        updated_at: "2026-11-25T09:00:00Z".into(),
                        ..outbox_item(
                            2,
                            "bob@example.test",
                            "Invoice",
                            OutboxState::Verified,
                            Some(CopyState::Appended),
                            1,
                        )
                    },
                ],
                0,
            );
        }
        (PaneId::Outbox, State::Empty) => a.outbox.loaded = true,
        (PaneId::Outbox, State::Error) => a.outbox.error = Some(err()),
        (PaneId::Log, State::Typical) => {
            a.log.events = paged(
                vec![
                    EventRow {
                        id: 3,
                        at: "2026-11-25T10:00:00Z".into(),
                        account_id: Some("acc-home".into()),
                        level: "error".into(),
                        what: "account test failed at login".into(),
                        detail: Some("login rejected: [AUTHENTICATIONFAILED]".into()),
                        fix: Some("`mailroom account set-password home`".into()),
                    },
                    EventRow {
                        id: 2,
                        at: "2026-11-25T09:59:00Z".into(),
                        account_id: Some("acc-work".into()),
                        level: "warn".into(),
                        what: "connection dropped, retrying in 5 s".into(),
                        detail: None,
                        fix: None,
                    },
                    EventRow {
                        id: 1,
                        at: "2026-11-25T09:58:00Z".into(),
                        account_id: None,
                        level: "info".into(),
                        what: "synced INBOX: 12 new".into(),
                        detail: None,
                        fix: None,
                    },
                ],
                0,
            );
        }
        (PaneId::Log, State::Empty) => a.log.events.loaded = true,
        (PaneId::Log, State::Error) => a.log.events.error = Some(err()),
        (PaneId::Mail, state) => mail::mail_scene(&mut a, state),
    }
    a
}

const PANES: [PaneId; 10] = [
    PaneId::Dashboard,
    PaneId::Setup,
    PaneId::Folders,
    PaneId::Triage,
    PaneId::Message,
    PaneId::Customers,
    PaneId::Compose,
    PaneId::Outbox,
    PaneId::Log,
    PaneId::Mail,
];

#[test]
fn every_pane_state_size_and_theme() {
    for theme in ["dark", "monochrome"] {
        for pane in PANES {
            for state in [State::Typical, State::Empty, State::Error] {
                for (w, h) in [(80u16, 24u16), (160, 48)] {
                    let mut a = scene(theme, pane, state);
                    a.size = (w, h);
                    let name = format!(
                        "{}_{}_{w}x{h}_{theme}",
                        pane.key(),
                        format!("{state:?}").to_lowercase()
                    );
                    insta::assert_snapshot!(name, snapshot(&render_buffer(&a, w, h)));
                }
            }
        }
    }
}

#[test]
fn overlays_help_confirm_quarantine() {
    for theme in ["dark", "monochrome"] {
        let mut a = scene(theme, PaneId::Triage, State::Typical);
        a.update(Action::Help);
        insta::assert_snapshot!(
            format!("help_triage_80x24_{theme}"),
            snapshot(&render_buffer(&a, 80, 24))
        );
        let mut a = scene(theme, PaneId::Triage, State::Typical);
        a.update(Action::Delete);
        assert!(a.dialog.is_some(), "delete asks first");
        insta::assert_snapshot!(
            format!("confirm_delete_80x24_{theme}"),
            snapshot(&render_buffer(&a, 80, 24))
        );
        let mut a = scene(theme, PaneId::Log, State::Typical);
        a.log.quarantine = true;
        a.log.quar = paged(
            vec![QuarantineRow {
                id: 1,
                account_id: "acc-work".into(),
                folder: Some("INBOX".into()),
                folder_id: Some(1),
                uidvalidity: Some(1),
                uid: Some(4711),
                error: "cannot parse: multipart without closing boundary".into(),
                state: QuarantineState::Open,
                created_at: "2026-11-25T09:00:00Z".into(),
                attempts: 1,
                size: 2048,
            }],
            0,
        );
        insta::assert_snapshot!(
            format!("quarantine_80x24_{theme}"),
            snapshot(&render_buffer(&a, 80, 24))
        );
    }
}

/// Alerts that did not get out are named on the dashboard's title (issue 19).
#[test]
fn the_dashboard_says_when_alerts_are_not_delivered() {
    let mut a = scene("dark", PaneId::Dashboard, State::Typical);
    let text = screen_text(&render_buffer(&a, 120, 40)).join("\n");
    assert!(!text.contains("NOT DELIVERED"), "{text}");
    if let Some(st) = a.dashboard.status.as_mut() {
        st.alerts.undelivered = 2;
    }
    let text = screen_text(&render_buffer(&a, 120, 40)).join("\n");
    assert!(
        text.contains("2 alert(s) NOT DELIVERED: `mailroom alerts list`"),
        "{text}"
    );
}

/// A subject carrying OSC (set title) and CSI (clear screen) must reach the screen as text only.
#[test]
fn escape_sequences_in_a_subject_are_drawn_inert() {
    let hostile = "Invoice \u{1b}]0;pwned title\u{7}due\u{1b}[2J now\u{9b}31m!";
    let mut a = app("dark");
    a.pane = PaneId::Triage;
    let mut m = msg(1, "evil\u{1b}[31m@attacker.example", hostile, false);
    m.from_name = Some("Evil \u{1b}]8;;http://x\u{1b}\\Corp".into());
    a.triage = paged(vec![m.clone()], 0);
    let mut d = detail(m);
    d.text = Some("body \u{1b}[2J\u{1b}]52;c;AAAA\u{7}text".into());
    a.preview.detail = Some(d);
    for (w, h) in [(80, 24), (160, 48)] {
        let buf = render_buffer(&a, w, h);
        for c in buf.content.iter() {
            for ch in c.symbol().chars() {
                assert!(
                    !ch.is_control() && ch != '\u{9b}',
                    "control character {ch:?} reached the screen"
                );
            }
        }
        let text = screen_text(&buf).join("\n");
        assert!(text.contains("Invoice due now!"), "{text}");
        assert!(!text.contains("pwned"), "OSC payload drawn: {text}");
        assert!(!text.contains("[2J"), "{text}");
        assert!(text.contains("body text"), "{text}");
        assert!(!text.contains("AAAA"), "{text}");
    }
}

/// Wide (CJK, emoji) and combining characters keep every row the same width and the frame
/// intact.
#[test]
fn wide_and_combining_unicode_keep_the_layout() {
    let mut a = app("dark");
    a.pane = PaneId::Triage;
    a.triage = paged(
        vec![
            msg(
                1,
                "山田太郎@例え.jp",
                "請求書の件について、至急ご確認ください🙏🙏🙏🙏🙏🙏🙏🙏🙏",
                false,
            ),
            msg(
                2,
                "zoe@example.test",
                "Ze\u{301}ro cafe\u{301} — Z\u{0336}a\u{0336}l\u{0336}g\u{0336}o\u{0336}",
                true,
            ),
            msg(3, "👨‍👩‍👧‍👦@family.example", "👨‍👩‍👧‍👦 family 👨‍👩‍👧‍👦", true),
        ],
        0,
    );
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let buf = render_buffer(&a, w, h);
        let lines = screen_text(&buf);
        for (y, l) in lines.iter().enumerate() {
            let width = ratatui::text::Line::from(l.as_str()).width();
            assert_eq!(width, w as usize, "row {y} is {width} wide: {l:?}");
        }
        // The list's right border sits in the same column on every body row.
        let list_right = if w >= 140 { None } else { Some(w as usize - 1) };
        if let Some(x) = list_right {
            for y in 2..10 {
                let sym = buf[(x as u16, y as u16)].symbol();
                assert_eq!(sym, "│", "row {y}: {:?}", lines[y]);
            }
        }
        insta::assert_snapshot!(format!("unicode_triage_{w}x{h}"), snapshot(&buf));
    }
}

#[test]
fn paging_asks_only_for_the_window_and_drops_stale_answers() {
    let mut a = app("dark");
    a.pane = PaneId::Triage;
    let cmds = a.reload();
    let generation = cmds
        .iter()
        .find_map(|c| match c {
            super::action::Command::LoadTriage {
                generation, limit, ..
            } => {
                assert_eq!(*limit, PAGE as i64);
                Some(*generation)
            }
            _ => None,
        })
        .unwrap();
    // A stale answer (older generation) is dropped.
    a.apply(Data::Triage(Page {
        generation: generation - 1,
        offset: 0,
        result: Ok((5, messages(5))),
    }));
    assert_eq!(a.triage.total, 0);
    a.apply(Data::Triage(Page {
        generation,
        offset: 0,
        result: Ok((100_000, messages(PAGE as i64))),
    }));
    assert_eq!(a.triage.total, 100_000);
    // Moving within the window asks for nothing; jumping to the end asks for one page there.
    let c = a.update(Action::Down);
    assert!(
        !c.iter()
            .any(|c| matches!(c, super::action::Command::LoadTriage { .. }))
    );
    let c = a.update(Action::Bottom);
    let offset = c
        .iter()
        .find_map(|c| match c {
            super::action::Command::LoadTriage { offset, .. } => Some(*offset),
            _ => None,
        })
        .expect("a page is requested");
    assert_eq!(offset, 100_000 - 1 - (PAGE as i64) / 2);
    // Rows not yet in memory draw as "loading…", not garbage.
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("loading…"), "{text}");
}

#[test]
fn setup_form_masks_the_password_and_fills_presets() {
    let mut a = app("dark");
    a.pane = PaneId::Setup;
    a.update(Action::ChoiceNext); // Gmail
    assert_eq!(a.setup.values[F_IMAP_HOST], "imap.gmail.com");
    a.setup.field = F_PASSWORD;
    for ch in "hunter2".chars() {
        a.update(Action::Input(ch));
    }
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(!text.contains("hunter2"), "password drawn in clear");
    assert!(text.contains("•••••••"), "{text}");
    assert!(
        text.contains("app password"),
        "the preset's hint is shown: {text}"
    );
    assert!(!format!("{:?}", a.setup).contains("hunter2"));
    assert!(!format!("{:?}", a.setup.to_form()).contains("hunter2"));
    // Security choice follows the conventional port.
    a.setup.field = F_IMAP_SEC;
    a.update(Action::ChoiceNext);
    assert_eq!(a.setup.values[F_IMAP_SEC], "starttls");
    assert_eq!(a.setup.values[F_IMAP_PORT], "143");
}

#[test]
fn check_steps_stream_in_and_the_report_wins() {
    let mut a = app("dark");
    a.pane = PaneId::Setup;
    let cmds = a.update(Action::TestConnection);
    let job = match &cmds[..] {
        [super::action::Command::TestNew { job, .. }] => *job,
        other => panic!("{other:?}"),
    };
    a.apply(Data::CheckStep(
        job,
        step("connect", StepStatus::Ok, "reached", None),
    ));
    a.apply(Data::CheckStep(
        job + 99,
        step("tls", StepStatus::Ok, "other job", None),
    ));
    assert_eq!(a.setup.run.as_ref().unwrap().steps.len(), 1);
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(
        text.contains("…       tls"),
        "the running step is shown: {text}"
    );
    let steps: Vec<Step> = crate::check::STEP_IDS
        .iter()
        .map(|id| step(id, StepStatus::Ok, "fine", None))
        .collect();
    a.apply(Data::CheckDone(job, Ok(Report { ok: true, steps })));
    let text = screen_text(&render_buffer(&a, 160, 48)).join("\n");
    assert!(text.contains("all 9 checks passed"), "{text}");
}

#[test]
fn pair_opens_a_fuzzy_picker_with_suggestions_first() {
    let mut a = scene("dark", PaneId::Triage, State::Typical);
    let id = a.triage.current().unwrap().id;
    a.suggestions.insert(
        id,
        vec![Suggestion {
            customer_id: 7,
            name: "Client Three Ltd".into(),
            reason: "same domain as b@client3.example".into(),
        }],
    );
    let cmds = a.update(Action::Pair);
    let generation = match &cmds[..] {
        [
            super::action::Command::LoadPicker { generation, query },
            super::action::Command::LoadSuggestions { id: sid },
        ] if query.is_empty() && *sid == id => *generation,
        other => panic!("{other:?}"),
    };
    a.apply(Data::Picker(
        generation,
        Ok(vec![customer(
            9,
            "ACME Corp",
            None,
            &["buyer@acme.example"],
            &[],
        )]),
    ));
    for theme in ["dark", "monochrome"] {
        a.theme = Theme::builtin(theme).unwrap();
        insta::assert_snapshot!(
            format!("pair_picker_80x24_{theme}"),
            snapshot(&render_buffer(&a, 80, 24))
        );
    }
    // Typing searches again (a new generation); a late answer to the old one is dropped.
    let cmds = a.update(Action::Input('a'));
    assert!(
        matches!(&cmds[..], [super::action::Command::LoadPicker { query, .. }] if query == "a")
    );
    a.apply(Data::Picker(generation, Ok(vec![])));
    assert_eq!(a.picker.as_ref().unwrap().results.len(), 1);
    a.update(Action::Down);
    let cmds = a.update(Action::Confirm);
    assert!(
        matches!(&cmds[..], [super::action::Command::TriagePair { id: i, customer_id: 9 }] if *i == id)
    );
    assert!(a.picker.is_none());
}

#[test]
fn destructive_triage_actions_ask_first() {
    let mut a = scene("dark", PaneId::Triage, State::Typical);
    let id = a.triage.current().unwrap().id;
    assert!(
        a.update(Action::Delete).is_empty(),
        "nothing happens before yes"
    );
    assert!(a.dialog.is_some());
    assert!(a.update(Action::Dismiss).is_empty());
    assert!(a.dialog.is_none());
    a.update(Action::Delete);
    let cmds = a.update(Action::Confirm);
    assert!(matches!(&cmds[..], [super::action::Command::TriageDelete { id: i }] if *i == id));
    // Block first asks the store how much it affects, then asks the operator.
    let cmds = a.update(Action::BlockDomain);
    assert!(matches!(
        &cmds[..],
        [super::action::Command::TriageBlockPlan { domain: true, .. }]
    ));
    a.apply(Data::BlockPlan(
        id,
        true,
        Ok("Block domain client3.example? 4 cached messages".into()),
    ));
    insta::assert_snapshot!(
        "confirm_block_80x24_dark",
        snapshot(&render_buffer(&a, 80, 24))
    );
    let cmds = a.update(Action::Confirm);
    assert!(matches!(
        &cmds[..],
        [super::action::Command::TriageBlock { domain: true, .. }]
    ));
}

#[test]
fn store_pages_feed_the_panes() {
    // The console's queries against a real (in-memory) store with the v1 schema.
    let s = Store::open_in_memory().unwrap();
    s.insert_account("acc-work", "work", true).unwrap();
    let f = crate::store::TriageFilter {
        accounts: vec!["acc-work".into()],
        own: vec![],
    };
    let first = crate::store::TriageWindow::Offset {
        offset: 0,
        limit: 10,
    };
    assert_eq!(s.triage_count(&f).unwrap(), 0);
    assert!(s.triage_rows(&f, first).unwrap().is_empty());
    // No visible account: an empty queue, not every account's.
    assert_eq!(s.triage_count(&Default::default()).unwrap(), 0);
    assert!(s.folder_entries("acc-work").unwrap().is_empty());
    assert!(
        s.outbox_page(&["acc-work".into()], 0, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.customers_count("").unwrap(), 0);
    assert!(s.customers_page("", 0, 10).unwrap().is_empty());
    assert!(s.message(1).unwrap().is_none());
    assert!(s.quarantine_recent(&[], 0, 10).unwrap().is_empty());
}

#[test]
fn compose_completes_addresses_from_customers_and_drops_stale_answers() {
    let mut a = app("dark");
    a.pane = PaneId::Compose;
    a.update(Action::NextField); // To
    a.compose.values[F_TO] = "bob@x.example, ".into();
    let cmds = a.update(Action::Input('s'));
    let generation = match &cmds[..] {
        [
            super::action::Command::SaveDraft { id: None, .. },
            super::action::Command::LoadCompletions { generation, prefix },
        ] => {
            assert_eq!(prefix, "s");
            *generation
        }
        other => panic!("{other:?}"),
    };
    // The first save is still on its way: the next key saves nothing yet.
    let cmds = a.update(Action::Input('a'));
    assert!(
        matches!(&cmds[..], [super::action::Command::LoadCompletions { prefix, .. }] if prefix == "sa")
    );
    // The answer to "s" arrives late and is dropped.
    a.apply(Data::Completions(
        generation,
        Ok(vec![("Old".into(), "old@x".into())]),
    ));
    assert!(a.compose.suggestions.is_empty());
    a.apply(Data::Completions(
        a.compose.completion_generation,
        Ok(vec![("Sam Client".into(), "sam@client.example".into())]),
    ));
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("sam@client.example (Sam Client)"), "{text}");
    a.update(Action::Complete);
    assert_eq!(
        a.compose.values[F_TO],
        "bob@x.example, sam@client.example, "
    );
    assert!(a.compose.suggestions.is_empty());
}

#[test]
fn the_editor_hands_the_body_back() {
    let mut a = app("dark");
    a.pane = PaneId::Compose;
    let body = F_BODY;
    a.compose.values[body] = "draft".into();
    let cmds = a.update(Action::Editor);
    assert!(matches!(&cmds[..], [super::action::Command::EditBody { text }] if text == "draft"));
    a.apply(Data::Edited(Ok("draft\nfrom the editor\n".into())));
    assert_eq!(a.compose.values[body], "draft\nfrom the editor\n");
    a.apply(Data::Edited(Err(AppError::needs_user(
        "the editor exited with 1",
        "vi",
        "the body was left unchanged; check $EDITOR",
    ))));
    assert_eq!(a.compose.values[body], "draft\nfrom the editor\n");
    assert!(a.toast.as_ref().unwrap().error);
}

/// Resizing to anything — tiny, odd, huge — never panics and keeps the status line.
#[test]
fn every_pane_draws_at_any_size() {
    for pane in PANES {
        for state in [State::Typical, State::Empty, State::Error] {
            for (w, h) in [
                (1u16, 1u16),
                (10, 3),
                (33, 7),
                (79, 23),
                (81, 25),
                (300, 90),
            ] {
                let mut a = scene("dark", pane, state);
                a.update(Action::Resize(w, h));
                a.help = pane == PaneId::Triage;
                render_buffer(&a, w, h);
            }
        }
    }
}

#[test]
fn compose_builds_the_draft_send_and_reply_take() {
    let mut a = app("dark");
    a.pane = PaneId::Compose;
    a.update(Action::ChoiceNext); // work <support@…>, the alias
    a.compose.values[F_TO] = "sam@client.example, bob@x.example".into();
    a.compose.values[F_BCC] = "boss@example.test".into();
    a.compose.values[F_REPLY_TO] = "support@example.test".into();
    a.compose.values[F_SUBJECT] = "Invoice".into();
    a.compose.values[F_ATTACH] = "/tmp/a.pdf".into();
    a.compose.values[F_BODY] = "Hello".into();
    let cmds = a.update(Action::Send);
    let d = match &cmds[..] {
        [super::action::Command::Send { draft }] => draft.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(d.account, "work");
    assert_eq!(d.from.as_deref(), Some("support@example.test"));
    assert_eq!(d.to, vec!["sam@client.example", "bob@x.example"]);
    assert_eq!(d.attachments, vec!["/tmp/a.pdf"]);
    assert_eq!(d.bcc, vec!["boss@example.test"]);
    assert_eq!(d.reply_to.as_deref(), Some("support@example.test"));
    assert_eq!(d.kind, crate::ops::compose::DraftKind::New);
    // A second press while sending does not send twice.
    assert!(a.update(Action::Send).is_empty());
    a.apply(Data::Sent(Ok("message #4: queued".into())));
    assert_eq!(a.pane, PaneId::Outbox, "the outbox shows it going through");

    // Reply from the message view: threaded by `reply ID`, To left to the CLI unless edited.
    let mut a = scene("dark", PaneId::Message, State::Typical);
    a.update(Action::Reply);
    assert_eq!(a.pane, PaneId::Compose);
    assert_eq!(a.compose.values[F_SUBJECT], "Re: Where is my order?");
    a.compose.values[F_BODY] = "It ships today.".into();
    let cmds = a.update(Action::Send);
    let d = match &cmds[..] {
        [super::action::Command::Send { draft }] => draft.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(d.source, Some(7));
    assert_eq!(d.kind, crate::ops::compose::DraftKind::Reply);
    assert!(
        d.to.is_empty(),
        "the CLI answers the sender (or Reply-To) itself"
    );
    assert_eq!(d.account, "work");
}

#[test]
fn timeline_takes_the_keys_and_opens_a_message() {
    let mut a = scene("dark", PaneId::Customers, State::Typical);
    a.update(Action::FocusTimeline);
    assert!(a.customers.timeline_focus);
    a.update(Action::Down);
    assert_eq!(a.customers.timeline.selected, 1);
    assert_eq!(a.customers.list.selected, 0, "the list stays put");
    let id = a.customers.timeline.current().unwrap().id;
    let cmds = a.update(Action::Open);
    assert!(
        matches!(&cmds[..], [super::action::Command::StopBodyFetch, super::action::Command::LoadMessage { id: i, .. }] if *i == id)
    );
    assert_eq!(a.pane, PaneId::Message);
    a.update(Action::Back);
    assert_eq!(a.pane, PaneId::Customers);
}

#[test]
fn add_customer_asks_for_the_name_with_the_display_name_suggested() {
    let mut a = scene("dark", PaneId::Triage, State::Typical);
    let m = a.triage.current().unwrap().clone();
    assert!(a.update(Action::AddCustomer).is_empty());
    assert_eq!(
        a.prompt.as_ref().unwrap().value,
        m.from_name.clone().unwrap()
    );
    a.update(Action::Backspace);
    a.update(Action::Input('X'));
    let cmds = a.update(Action::Confirm);
    let want = format!("{}X", &m.from_name.unwrap()[..6]);
    assert!(
        matches!(&cmds[..], [super::action::Command::TriageAddCustomer { id, name }] if *id == m.id && *name == want),
        "{cmds:?}"
    );
}

#[test]
fn folders_apply_the_previewed_scope_through_account_edit_and_show_it() {
    use super::action::Command;
    for theme in ["dark", "monochrome"] {
        let mut a = scene(theme, PaneId::Folders, State::Typical);
        a.update(Action::Help);
        let help = screen_text(&render_buffer(&a, 80, 24)).join("\n");
        assert!(
            help.lines()
                .any(|l| l.contains("│A            Apply scope to sync (asks)")),
            "the help lists the key:\n{help}"
        );
        a.update(Action::Help);
        let before = screen_text(&render_buffer(&a, 80, 24)).join("\n");
        assert!(
            before.contains("account syncs: all history · read and unread"),
            "{before}"
        );
        // Asks first; nothing runs before yes.
        assert!(a.update(Action::ApplyScope).is_empty());
        assert!(a.dialog.as_ref().unwrap().text.contains("since 2026-01-01"));
        let cmds = a.update(Action::Confirm);
        assert!(
            matches!(&cmds[..], [Command::ApplyScope { account, since: Some(d), unread_only: false }]
                if account == "work" && d == "2026-01-01"),
            "{cmds:?}"
        );
        // Done: the accounts (with the scope from config) are re-read, the sync tasks restart.
        let cmds = a.apply(Data::ScopeApplied(Ok("sync scope of work applied".into())));
        assert!(cmds.iter().any(|c| matches!(c, Command::LoadDashboard)));
        assert!(cmds.iter().any(|c| matches!(c, Command::RestartSync)));
        let mut accts = accounts();
        accts[0].since = Some("2026-01-01".into());
        a.apply(Data::Dashboard(Ok(status()), accts));
        let buf = render_buffer(&a, 80, 24);
        let text = screen_text(&buf).join("\n");
        assert!(
            text.contains("account syncs: since 2026-01-01 · read and unread  (this plan)"),
            "{text}"
        );
        insta::assert_snapshot!(
            format!("folders_scope_applied_80x24_{theme}"),
            snapshot(&buf)
        );
    }
    // The CLI's refusal comes back with its fix; nothing is re-read.
    let mut a = scene("dark", PaneId::Folders, State::Typical);
    let cmds = a.apply(Data::ScopeApplied(Err(AppError::usage(
        "invalid date \"May 1st\"",
        "use YYYY-MM-DD",
    ))));
    assert!(cmds.is_empty());
    let t = a.toast.as_ref().unwrap();
    assert!(t.error && t.text.contains("use YYYY-MM-DD"), "{t:?}");
    // Without a previewed scope there is nothing to apply.
    a.folders.plan = None;
    assert!(a.update(Action::ApplyScope).is_empty());
    assert!(a.dialog.is_none());
}

#[test]
fn an_account_that_must_sign_in_offers_login_and_shows_the_code_live() {
    let mut a = scene("dark", PaneId::Dashboard, State::Typical);
    let mut st = status();
    st.accounts[1].last_error = Some(ErrorInfo {
        at: "2026-11-25T08:00:00Z".into(),
        what: "account home must sign in again (OAuth2)".into(),
        fix: "`mailroom account login home`".into(),
    });
    a.apply(Data::Dashboard(Ok(st), accounts()));
    a.dashboard.selected = 1;
    let text = screen_text(&render_buffer(&a, 120, 40)).join("\n");
    assert!(text.contains("press L to sign in from here"), "{text}");
    let cmds = a.update(Action::LoginAccount);
    let job = match &cmds[..] {
        [super::action::Command::Login { job, name }] if name == "home" => *job,
        other => panic!("{other:?}"),
    };
    a.apply(Data::LoginStep(
        job,
        "open https://microsoft.com/devicelogin on any device".into(),
    ));
    a.apply(Data::LoginStep(
        job,
        "and enter the code ABCD-EFGH (within 15 min)".into(),
    ));
    a.apply(Data::LoginStep(job + 7, "a stale job".into()));
    let text = screen_text(&render_buffer(&a, 120, 40)).join("\n");
    assert!(
        text.contains("ABCD-EFGH") && text.contains("waiting for the sign-in"),
        "{text}"
    );
    assert!(!text.contains("a stale job"), "{text}");
    a.apply(Data::LoginDone(
        job,
        Ok("home signed in as bob@example.test".into()),
    ));
    let text = screen_text(&render_buffer(&a, 120, 40)).join("\n");
    assert!(
        text.contains("home signed in as bob@example.test"),
        "{text}"
    );
    // The setup form's OAuth2 sign-in needs no password and carries the client id.
    a.pane = PaneId::Setup;
    a.setup.field = F_OAUTH;
    a.update(Action::ChoiceNext);
    a.setup.values[F_CLIENT_ID] = "cid-1".into();
    let form = a.setup.to_form();
    assert!(form.oauth && form.client_id == "cid-1");
}
