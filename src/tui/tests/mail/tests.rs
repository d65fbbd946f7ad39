//! The mail pane, the message view's new states, compose with drafts and the outbox's actions:
//! snapshots of every state at 80×24 and 160×48, and the key → command behaviour (keyset
//! windows, the queue of changes, drafts, offline bodies) — the last against a real store
//! through the console's own I/O layer.

use super::*;
use crate::ops::compose::{Draft as SavedDraft, DraftContent, DraftKind};
use crate::ops::mailbox::{
    Change, ChangeState, IndexRow, Key, Source, TreeAccount, TreeFolder, Window,
};
use crate::tui::action::{Command, MailDest};

fn folder_node(
    id: i64,
    name: &str,
    role: Option<Role>,
    total: i64,
    unread: i64,
    sync: bool,
) -> TreeFolder {
    TreeFolder {
        id,
        name: name.into(),
        delimiter: Some("/".into()),
        role,
        sync_enabled: sync,
        selectable: true,
        total,
        unread,
    }
}

pub(super) fn tree() -> Vec<TreeAccount> {
    vec![
        TreeAccount {
            name: "work".into(),
            id: "acc-work".into(),
            folders: vec![
                folder_node(2, "INBOX", Some(Role::Inbox), 1200, 17, true),
                folder_node(3, "INBOX/Projects", None, 40, 0, true),
                folder_node(1, "Archive", Some(Role::Archive), 5400, 0, true),
                folder_node(5, "Sent", Some(Role::Sent), 300, 0, true),
                folder_node(6, "Trash", Some(Role::Trash), 0, 0, false),
            ],
        },
        TreeAccount {
            name: "home".into(),
            id: "acc-home".into(),
            folders: vec![folder_node(7, "INBOX", Some(Role::Inbox), 12, 2, true)],
        },
    ]
}

pub(super) fn index_row(i: i64) -> IndexRow {
    let date = format!(
        "2026-11-{:02}T{:02}:{:02}:00Z",
        25 - (i / 8) % 20,
        10 + i % 8,
        i % 60
    );
    IndexRow {
        id: 100 + i,
        thread_id: 100 + i,
        account: "work".into(),
        account_id: "acc-work".into(),
        folder: Some("INBOX".into()),
        date: Some(date.clone()),
        from: Some(Addr {
            name: Some(format!("Sender {}", i % 5)),
            address: format!("sender{}@client.example", i % 5),
        }),
        to: vec![Addr {
            name: None,
            address: "alice@example.test".into(),
        }],
        subject: Some(format!("Order #{} — where is it?", 1000 + i)),
        size: Some(4096),
        has_attachments: i % 4 == 0,
        outgoing: false,
        seen: i % 3 != 0,
        flagged: i % 7 == 2,
        answered: false,
        thread_count: if i % 5 == 1 { 3 } else { 1 },
        change: match i {
            4 => Some(ChangeState::Queued { changes: 1 }),
            6 => Some(ChangeState::Failing {
                changes: 1,
                attempts: 2,
                reason: "the server said NO: [CANNOT] mailbox is read-only".into(),
            }),
            _ => None,
        },
        key: Key {
            date: Some(date),
            id: 100 + i,
        },
    }
}

fn index(n: i64, selected: usize) -> Paged<IndexRow> {
    paged((0..n).map(index_row).collect(), selected)
}

fn changes() -> Vec<Change> {
    vec![
        Change {
            id: 9,
            what: "set \\Flagged".into(),
            queued_at: "2026-11-25T10:01:00Z".into(),
            state: "failing",
            attempts: 2,
            last_error: Some("the server said NO: [CANNOT] mailbox is read-only".into()),
            pushed_at: None,
        },
        Change {
            id: 8,
            what: "set \\Seen".into(),
            queued_at: "2026-11-25T10:00:00Z".into(),
            state: "pushed",
            attempts: 0,
            last_error: None,
            pushed_at: Some("2026-11-25T10:00:02Z".into()),
        },
    ]
}

fn inbox_source(threads: bool) -> MailSource {
    MailSource {
        source: Source::Folder { id: 2, threads },
        title: "work/INBOX".into(),
        account: Some("work".into()),
        account_id: Some("acc-work".into()),
        outgoing: false,
    }
}

/// The mail pane in one state (the shared snapshot test's Mail rows).
pub(super) fn mail_scene(a: &mut App, state: State) {
    match state {
        State::Typical => {
            a.mail.tree = tree();
            a.mail.tree_loaded = true;
            a.mail.node = 1;
            a.mail.focus = MailFocus::Index;
            a.mail.source = Some(inbox_source(true));
            a.mail.index = index(60, 6);
            a.mail.index.total = 1180;
            let r = &a.mail.index.rows[6];
            let date = r.date.clone();
            let mut d = detail(msg(
                r.id,
                "sender1@client.example",
                "Order #1006 — where is it?",
                true,
            ));
            d.message.date = date;
            d.text = Some(
                "Hello,\n\nwhere is my order #1006? It was due last week.\n\nThanks,\nSam".into(),
            );
            a.mail.preview.detail = Some(d);
            a.mail.preview.loaded = true;
            a.mail.preview.changes = changes();
        }
        State::Empty => {
            a.mail.tree = tree();
            a.mail.tree_loaded = true;
            a.mail.node = 5;
            a.mail.focus = MailFocus::Index;
            a.mail.source = Some(MailSource {
                source: Source::Folder {
                    id: 6,
                    threads: true,
                },
                title: "work/Trash".into(),
                account: Some("work".into()),
                account_id: Some("acc-work".into()),
                outgoing: false,
            });
            a.mail.index.loaded = true;
        }
        State::Error => {
            a.mail.tree = tree();
            a.mail.tree_loaded = true;
            a.mail.focus = MailFocus::Index;
            a.mail.source = Some(MailSource {
                source: Source::Search {
                    query: "since:2026-13-01".into(),
                },
                title: "Search: since:2026-13-01".into(),
                account: None,
                account_id: None,
                outgoing: false,
            });
            a.mail.index.loaded = true;
            a.mail.index.error = Some(AppError::usage(
                "since:2026-13-01 is not a date mailroom understands",
                "write a day as YYYY-MM-DD (since:2026-03-01), a month as YYYY-MM, today or yesterday, or an age like 7d, 4w, 6m, 1y",
            ));
        }
    }
}

/// A state of the new screens, by name.
fn state(name: &str) -> App {
    let mut a = scene("dark", PaneId::Mail, State::Typical);
    match name {
        "mail_search" => {
            a.mail.source = Some(MailSource {
                source: Source::Search {
                    query: "order from:sender1 since:2026-11-01".into(),
                },
                title: "Search: order from:sender1 since:2026-11-01".into(),
                account: None,
                account_id: None,
                outgoing: false,
            });
            a.mail.index = index(12, 6);
            a.mail.preview.highlights = vec!["order".into()];
            a.mail.preview.changes.clear();
        }
        "mail_thread" => {
            a.mail.index.selected = 1;
            let head = a.mail.index.rows[1].clone();
            let mut older = index_row(30);
            older.thread_id = head.thread_id;
            older.subject = Some("Re: Order #1001".into());
            let mut oldest = index_row(41);
            oldest.thread_id = head.thread_id;
            oldest.subject = Some("Order #1001".into());
            a.mail.expanded = Some(Expanded {
                thread_id: head.thread_id,
                rows: vec![head, older, oldest],
                generation: 1,
            });
            a.mail.sub = 1;
        }
        "mail_tree_focus" => {
            a.mail.focus = MailFocus::Tree;
            a.mail.node = 3;
        }
        "mail_move" => {
            a.mail.pick = Some(FolderPick {
                message_id: 106,
                account_id: "acc-work".into(),
                account: "work".into(),
                query: "ar".into(),
                folders: vec![
                    "INBOX".into(),
                    "Archive".into(),
                    "Sent".into(),
                    "INBOX/Projects".into(),
                ],
                selected: 0,
            });
        }
        "mail_sent" => {
            a.mail.source = Some(MailSource {
                outgoing: true,
                title: "work/Sent".into(),
                ..inbox_source(false)
            });
        }
        "mail_no_source" => {
            a.mail.source = None;
            a.mail.focus = MailFocus::Tree;
            a.mail.index = Paged::default();
        }
        "mail_help" => {
            a.update(Action::Help);
        }
        "message_offline" => {
            let mut d = detail(msg(7, "sam@client.example", "Where is my order?", false));
            d.text = None;
            d.body_fetched = false;
            a = opened(d, PaneId::Mail);
            a.message.fetching = Some(7);
            a.message.body = BodyState::Waiting {
                error: AppError::transient(
                    "cannot connect to 127.0.0.1:41993",
                    "connection refused",
                    "mailroom retries by itself",
                ),
                retry_secs: 4,
                attempt: 3,
            };
        }
        "message_body_failed" => {
            let mut d = detail(msg(7, "sam@client.example", "Where is my order?", false));
            d.text = None;
            d.body_fetched = false;
            a = opened(d, PaneId::Mail);
            a.message.fetching = Some(7);
            a.message.body = BodyState::Failed(AppError::needs_user(
                "message 7 is no longer on the server",
                "",
                "run `mailroom sync` to refresh the cache",
            ));
        }
        "message_changes" => {
            let d = detail(msg(7, "sam@client.example", "Where is my order?", true));
            a = opened(d, PaneId::Mail);
            a.message.changes = changes();
            a.message.highlights = vec!["order".into()];
        }
        "compose_forward" => {
            a.pane = PaneId::Compose;
            a.compose = ComposeForm {
                field: F_TO,
                kind: DraftKind::Forward,
                source: Some(7),
                ..Default::default()
            };
            a.compose.values[F_TO] = "ann@partner.example, ".into();
            a.compose.values[F_SUBJECT] = "Fwd: Where is my order?".into();
            a.compose.suggestions = vec![
                ("Ann Partner".into(), "ann@partner.example".into()),
                ("sender".into(), "anna@client.example".into()),
            ];
        }
        "compose_drafts" => {
            a.pane = PaneId::Compose;
            a.drafts_pick = Some(DraftsPick {
                drafts: vec![saved(3, "Quote for Q4", true), saved(2, "", false)],
                selected: 0,
            });
        }
        "compose_attach" => {
            a.pane = PaneId::Compose;
            a.compose.field = F_ATTACH;
            a.compose.values[F_ATTACH] = "/home/alice/inv".into();
            a.compose.suggestions = vec![
                (String::new(), "/home/alice/invoice-1042.pdf".into()),
                (String::new(), "/home/alice/invoices/".into()),
            ];
        }
        "outbox_uncertain" => {
            a.pane = PaneId::Outbox;
            let mut item = outbox_item(
                5,
                "sam@client.example",
                "Re: Where is my order?",
                OutboxState::Uncertain,
                None,
                1,
            );
            item.to.push("boss@example.test".into());
            item.last_error = Some(LastError {
                at: Some("2026-11-25T10:00:00Z".into()),
                what: "the connection closed after the message was handed over".into(),
                fix: Some("check the recipient's inbox, then `mailroom outbox resend 5` or `mailroom outbox drop 5`".into()),
            });
            item.next_attempt_at = None;
            a.outbox = paged(vec![item], 0);
        }
        "outbox_resend_confirm" => {
            a = state("outbox_uncertain");
            a.update(Action::Resend);
        }
        other => panic!("no state {other}"),
    }
    a
}

fn opened(d: MessageView, back: PaneId) -> App {
    let mut a = scene("dark", PaneId::Mail, State::Typical);
    a.pane = PaneId::Message;
    a.message.detail = Some(d);
    a.message.loaded = true;
    a.message.back = Some(back);
    a
}

fn saved(id: i64, subject: &str, uploaded: bool) -> SavedDraft {
    SavedDraft {
        id,
        content: DraftContent {
            account: Some("work".into()),
            to: "sam@client.example".into(),
            subject: subject.into(),
            body: "…".into(),
            ..Default::default()
        },
        updated_at: "2026-11-25T09:4{id}:00Z".replace("{id}", &id.to_string()),
        uploaded: uploaded.then(|| ("Drafts".into(), "2026-11-25T09:45:00Z".into())),
    }
}

#[test]
fn every_new_state_at_both_sizes() {
    for name in [
        "mail_search",
        "mail_thread",
        "mail_tree_focus",
        "mail_move",
        "mail_sent",
        "mail_no_source",
        "mail_help",
        "message_offline",
        "message_body_failed",
        "message_changes",
        "compose_forward",
        "compose_drafts",
        "compose_attach",
        "outbox_uncertain",
        "outbox_resend_confirm",
    ] {
        for (w, h) in [(80u16, 24u16), (160, 48)] {
            let mut a = state(name);
            a.size = (w, h);
            insta::assert_snapshot!(
                format!("{name}_{w}x{h}"),
                snapshot(&render_buffer(&a, w, h))
            );
        }
    }
}

#[test]
fn every_new_state_draws_at_any_size() {
    for name in [
        "mail_search",
        "mail_thread",
        "mail_move",
        "message_offline",
        "compose_drafts",
        "outbox_uncertain",
    ] {
        for (w, h) in [(1u16, 1u16), (10, 3), (33, 7), (79, 23), (300, 90)] {
            let mut a = state(name);
            a.update(Action::Resize(w, h));
            render_buffer(&a, w, h);
        }
    }
}

fn index_loads(cmds: &[Command]) -> Vec<(Window, i64)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::LoadMailIndex { window, anchor, .. } => Some((window.clone(), *anchor)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_tree_opens_a_folder_and_the_index_pages_by_key() {
    let mut a = app("dark");
    let cmds = a.update(Action::GoTo(PaneId::Mail));
    let generation = cmds
        .iter()
        .find_map(|c| match c {
            Command::LoadMailTree { generation } => Some(*generation),
            _ => None,
        })
        .expect("the tree is read");
    // The first answer opens the first account's INBOX by itself.
    let cmds = a.apply(Data::MailTree(generation, Ok(tree())));
    assert_eq!(a.mail.focus, MailFocus::Index);
    assert_eq!(index_loads(&cmds), vec![(Window::Top, 0)]);
    let generation = a.mail.index.generation;
    a.apply(Data::MailIndex(Page {
        generation,
        offset: 0,
        result: Ok((100_000, (0..PAGE as i64).map(index_row).collect())),
    }));
    // Within the rows held nothing is read; past them, the next window after the last row
    // held (a key, never an offset).
    assert!(index_loads(&a.update(Action::Down)).is_empty());
    let mut loads = Vec::new();
    for _ in 0..12 {
        loads.extend(index_loads(&a.update(Action::PageDown)));
    }
    let (w, anchor) = loads
        .first()
        .cloned()
        .expect("a window after the rows held");
    let Window::After(k) = w else { panic!("{w:?}") };
    let before = a.mail.index.get(anchor as usize - 1).unwrap();
    assert_eq!(k, before.key);
    // The end: the last window; the top: the first.
    assert_eq!(
        index_loads(&a.update(Action::Bottom)),
        vec![(Window::Bottom, 100_000)]
    );
    let generation = a.mail.index.generation;
    a.apply(Data::MailIndex(Page {
        generation,
        offset: 100_000 - PAGE,
        result: Ok((100_000, (0..PAGE as i64).map(index_row).collect())),
    }));
    assert_eq!(a.mail.index.selected, 99_999);
    // Up from the end: the window before the first row held.
    let mut loads = Vec::new();
    for _ in 0..12 {
        loads.extend(index_loads(&a.update(Action::PageUp)));
    }
    let (w, anchor) = loads
        .first()
        .cloned()
        .expect("a window before the rows held");
    let Window::Before(k) = w else {
        panic!("{w:?}")
    };
    assert_eq!(
        k,
        a.mail.index.get(anchor as usize).unwrap().key,
        "anchored on a held row"
    );
    assert!((anchor as usize) < 100_000, "{anchor}");
    assert_eq!(index_loads(&a.update(Action::Top)), vec![(Window::Top, 0)]);
    // T: every message instead of threads, from the top.
    let cmds = a.update(Action::ToggleThreads);
    assert!(matches!(
        &cmds[..],
        [Command::LoadMailIndex {
            source: Source::Folder { threads: false, .. },
            window: Window::Top,
            ..
        }]
    ));
    // Back: to the tree, then the dashboard.
    a.update(Action::Back);
    assert_eq!(a.mail.focus, MailFocus::Tree);
    a.update(Action::Back);
    assert_eq!(a.pane, PaneId::Dashboard);
}

#[test]
fn changes_go_through_the_queue_and_say_where_they_are() {
    let mut a = scene("dark", PaneId::Mail, State::Typical);
    let r = a.mail.current().cloned().unwrap();
    let cmds = a.update(Action::ToggleFlag);
    assert!(matches!(
        &cmds[..],
        [Command::MailFlag { id, change, .. }] if *id == r.id && change.flagged == Some(!r.flagged) && change.seen.is_none()
    ));
    let cmds = a.update(Action::ToggleRead);
    assert!(
        matches!(&cmds[..], [Command::MailFlag { change, .. }] if change.seen == Some(!r.seen))
    );
    assert!(matches!(
        &a.update(Action::DeleteMessage)[..],
        [Command::MailMove {
            to: MailDest::Trash,
            ..
        }]
    ));
    assert!(matches!(
        &a.update(Action::Archive)[..],
        [Command::MailMove {
            to: MailDest::Archive,
            ..
        }]
    ));
    // m: the account's folders, narrowed as typed; Enter moves there.
    assert!(a.update(Action::MoveMessage).is_empty());
    assert!(a.mail.pick.is_some());
    for c in "arc".chars() {
        a.update(Action::Input(c));
    }
    let cmds = a.update(Action::Confirm);
    assert!(
        matches!(&cmds[..], [Command::MailMove { to: MailDest::Folder(f), .. }] if f == "Archive")
    );
    assert!(a.mail.pick.is_none());
    // Done locally and queued: the account's sync is asked to push it now, the lists reread.
    let cmds = a.apply(Data::MailActed(Ok(MailActed {
        text: "message 106 moved to Archive".into(),
        queued_for: Some("acc-work".into()),
        not_pushed: None,
    })));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::KickSync { account_id } if account_id == "acc-work"))
    );
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::LoadMailIndex { .. }))
    );
    assert!(
        a.toast
            .as_ref()
            .unwrap()
            .text
            .contains("queued for the server")
    );
    // The index marks what is queued (⟳) and what failed (!), the preview says why.
    let text = screen_text(&render_buffer(&a, 160, 48)).join("\n");
    assert!(text.contains("⟳"), "{text}");
    assert!(text.contains("read-only"), "{text}");
}

#[test]
fn opening_reads_the_message_and_n_walks_the_list() {
    let mut a = scene("dark", PaneId::Mail, State::Typical);
    a.mail.index.selected = 0; // index_row(0): unread
    let r = a.mail.current().cloned().unwrap();
    assert!(!r.seen);
    let cmds = a.update(Action::Open);
    assert_eq!(a.pane, PaneId::Message);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::LoadMessage { id, .. } if *id == r.id))
    );
    assert!(cmds.iter().any(|c| matches!(c, Command::MailFlag { id, change, .. } if *id == r.id && change.seen == Some(true))));
    let cmds = a.update(Action::NextHit);
    assert_eq!(a.pane, PaneId::Message);
    assert_eq!(a.mail.index.selected, 1);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::LoadMessage { id, .. } if *id == 101))
    );
    a.update(Action::PrevHit);
    assert_eq!(a.mail.index.selected, 0);
    // Leaving the message stops its body fetch.
    let cmds = a.update(Action::Back);
    assert!(cmds.iter().any(|c| matches!(c, Command::StopBodyFetch)));
    assert_eq!(a.pane, PaneId::Mail);
}

#[test]
fn search_runs_from_the_prompt_and_a_bad_date_says_so() {
    let mut a = scene("dark", PaneId::Mail, State::Typical);
    a.update(Action::Search);
    assert!(a.prompt.is_some());
    for c in "from:sam since:2026-11-01".chars() {
        a.update(Action::Input(c));
    }
    let cmds = a.update(Action::Confirm);
    assert!(matches!(
        &cmds[..],
        [Command::LoadMailIndex { source: Source::Search { query }, window: Window::Top, .. }] if query == "from:sam since:2026-11-01"
    ));
    assert_eq!(a.mail.last_search, "from:sam since:2026-11-01");
    let generation = a.mail.index.generation;
    a.apply(Data::MailIndex(Page {
        generation,
        offset: 0,
        result: Err(AppError::usage(
            "since:2026-13-01 is not a date mailroom understands",
            "write a day as YYYY-MM-DD",
        )),
    }));
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("not a date"), "{text}");
    assert!(text.contains("fix: write a day"), "{text}");
}

#[test]
fn an_unreachable_server_is_said_and_the_body_appears_when_it_is_back() {
    let mut a = scene("dark", PaneId::Mail, State::Typical);
    a.mail.index.rows[6].id = 7;
    let cmds = a.update(Action::Open);
    let generation = a.message.generation;
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::LoadMessage { id: 7, .. }))
    );
    let mut d = detail(msg(7, "sam@client.example", "Where is my order?", false));
    d.text = None;
    d.body_fetched = false;
    let cmds = a.apply(Data::Message(generation, Box::new(Ok(d.clone()))));
    assert!(matches!(&cmds[..], [Command::FetchBody { id: 7 }]));
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("fetching the body"), "{text}");
    a.apply(Data::BodyWaiting(
        7,
        AppError::transient(
            "cannot connect to 127.0.0.1:1",
            "connection refused",
            "retried",
        ),
        2,
    ));
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("cannot be reached"), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        text.contains("Where is my order?"),
        "the headers still show:\n{text}"
    );
    // Back: the body arrives, the message is read again and shows it.
    let cmds = a.apply(Data::BodyFetched(7, Ok(())));
    let generation = match &cmds[..] {
        [Command::LoadMessage { generation, id: 7 }] => *generation,
        other => panic!("{other:?}"),
    };
    a.apply(Data::Message(
        generation,
        Box::new(Ok(detail(msg(
            7,
            "sam@client.example",
            "Where is my order?",
            false,
        )))),
    ));
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("where is my order? It was due"), "{text}");
    assert!(!text.contains("cannot be reached"), "{text}");
}

#[test]
fn drafts_save_one_at_a_time_restore_at_start_and_go_when_sent() {
    let mut a = app("dark");
    // At start: the newest draft comes back into compose.
    let cmds = a.startup();
    assert!(cmds.iter().any(|c| matches!(c, Command::LoadDrafts)));
    a.apply(Data::Drafts(Ok(vec![
        saved(3, "Quote for Q4", true),
        saved(2, "older", false),
    ])));
    assert_eq!(a.compose.draft_id, Some(3));
    assert_eq!(a.compose.values[F_SUBJECT], "Quote for Q4");
    assert!(a.toast.as_ref().unwrap().text.contains("restored"));
    // Typing saves over it, one save at a time.
    a.update(Action::GoTo(PaneId::Compose));
    a.compose.field = F_BODY;
    let cmds = a.update(Action::Input('!'));
    assert!(
        matches!(&cmds[..], [Command::SaveDraft { id: Some(3), content }] if content.body.ends_with('!'))
    );
    assert!(
        a.update(Action::Input('?')).is_empty(),
        "a save is on its way"
    );
    let cmds = a.apply(Data::DraftSaved(Ok(3)));
    assert!(
        matches!(&cmds[..], [Command::SaveDraft { id: Some(3), content }] if content.body.ends_with("!?"))
    );
    a.apply(Data::DraftSaved(Ok(3)));
    // Sent: the draft goes (locally and from the Drafts folder).
    a.compose.values[F_TO] = "sam@client.example".into();
    a.update(Action::Send);
    let cmds = a.apply(Data::Sent(Ok("message #9: verified".into())));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::ForgetDraft { id: 3, tell: false }))
    );
    assert!(a.compose.is_blank());
    // Discard asks first.
    a.update(Action::GoTo(PaneId::Compose));
    a.compose.field = F_SUBJECT;
    a.update(Action::Input('x'));
    a.apply(Data::DraftSaved(Ok(11)));
    a.update(Action::DiscardDraft);
    assert!(a.dialog.is_some());
    let cmds = a.update(Action::Confirm);
    assert!(matches!(
        &cmds[..],
        [Command::ForgetDraft { id: 11, tell: true }]
    ));
    // Leaving with something typed stores it in the Drafts folder too.
    a.update(Action::GoTo(PaneId::Compose));
    a.compose.field = F_SUBJECT;
    a.update(Action::Input('y'));
    a.apply(Data::DraftSaved(Ok(12)));
    let cmds = a.update(Action::Back);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::UploadDraft { id: Some(12), .. }))
    );
}

#[test]
fn forward_and_attachments_complete() {
    let mut a = scene("dark", PaneId::Mail, State::Typical);
    let r = a.mail.current().cloned().unwrap();
    a.update(Action::Forward);
    assert_eq!(a.pane, PaneId::Compose);
    assert_eq!(a.compose.kind, DraftKind::Forward);
    assert_eq!(a.compose.source, Some(r.id));
    assert!(a.compose.values[F_SUBJECT].starts_with("Fwd: "));
    a.compose.field = F_ATTACH;
    let cmds = a.update(Action::Input('/'));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::CompletePath { prefix, .. } if prefix == "/"))
    );
    let generation = a.compose.completion_generation;
    a.apply(Data::PathCompletions(generation, vec!["/tmp/".into()]));
    a.update(Action::Complete);
    assert_eq!(
        a.compose.values[F_ATTACH], "/tmp/",
        "a directory goes on completing"
    );
    a.compose.values[F_TO] = "ann@partner.example".into();
    let d = match &a.update(Action::Send)[..] {
        [Command::Send { draft }] => draft.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(d.kind, DraftKind::Forward);
    assert_eq!(d.source, Some(r.id));
}

#[test]
fn resend_and_drop_are_for_uncertain_items_and_ask_first() {
    let mut a = state("outbox_uncertain");
    assert!(a.update(Action::Resend).is_empty());
    assert!(a.dialog.as_ref().unwrap().text.contains("twice"));
    assert!(matches!(
        &a.update(Action::Confirm)[..],
        [Command::OutboxResend { id: 5 }]
    ));
    a.outbox.rows[0].state = OutboxState::Failed;
    assert!(a.update(Action::Resend).is_empty());
    assert!(a.dialog.is_none(), "a failed item is retried, not resent");
    assert!(a.toast.as_ref().unwrap().error);
    assert!(matches!(
        &a.update(Action::Retry)[..],
        [Command::OutboxRetry { id: 5 }]
    ));
}

/// The console's own I/O layer against a real store: walking the index by keyset windows
/// visits every message once, newest first, in both directions; counts match the tree.
#[test]
fn keyset_windows_through_the_io_layer_visit_every_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = crate::config::Home {
        root: dir.path().to_path_buf(),
    };
    std::fs::write(
        home.config_path(),
        "[accounts.work]\nid = \"acc-work\"\nemail = \"alice@example.test\"\nuser = \"alice@example.test\"\nimap = { host = \"h\", port = 993, security = \"tls\" }\nsmtp = { host = \"h\", port = 587, security = \"starttls\" }\n",
    )
    .unwrap();
    let cx = crate::ops::Ctx::new(home, "alice");
    let n = 2 * PAGE as i64 + 37;
    {
        let store = cx.store().unwrap();
        let inbox = store
            .fixture_folder("acc-work", "INBOX", Some("inbox"))
            .unwrap();
        for i in 0..n {
            store
                .fixture_message(
                    "acc-work",
                    inbox,
                    i + 1,
                    &crate::store::FixtureMessage {
                        message_id: Some(format!("m{i}@x")),
                        from_addr: format!("s{}@x.example", i % 7),
                        subject: format!("m{i}"),
                        // Several share a date: the id breaks the tie.
                        date: format!("2026-0{}-{:02}T10:00:00Z", 1 + i % 9, 1 + (i / 9) % 28),
                        direction: "in",
                        ..Default::default()
                    },
                )
                .unwrap();
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let jobs = crate::tui::io::Jobs::new(rt.handle().clone(), tx.clone());
    let mut io = crate::tui::io::Direct::new(&cx, jobs, tx);
    let mut a = app("dark");
    a.size = (160, 48);
    let mut run = |a: &mut App, mut cmds: Vec<Command>| {
        while !cmds.is_empty() {
            let mut next = Vec::new();
            for c in cmds {
                if matches!(
                    c,
                    Command::LoadMessage { .. }
                        | Command::LoadChanges { .. }
                        | Command::FetchBody { .. }
                ) {
                    continue;
                }
                if let Some(d) = io.execute(c) {
                    next.extend(a.apply(d));
                }
            }
            cmds = next;
        }
    };
    let cmds = a.update(Action::GoTo(PaneId::Mail));
    run(&mut a, cmds);
    assert_eq!(a.mail.tree[0].folders[0].total, n);
    assert_eq!(a.mail.index.total as i64, n, "one thread per message here");
    let mut seen = vec![a.mail.current().unwrap().id];
    for _ in 1..n {
        let cmds = a.update(Action::Down);
        run(&mut a, cmds);
        seen.push(a.mail.current().unwrap().id);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len() as i64, n, "every message once");
    // Newest first: their dates never go up.
    let store = cx.store().unwrap();
    let dates: Vec<String> = seen
        .iter()
        .map(|id| store.message(*id).unwrap().unwrap().summary.date.unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    // And back up from the end, by keys again.
    let mut up = vec![a.mail.current().unwrap().id];
    for _ in 1..n {
        let cmds = a.update(Action::Up);
        run(&mut a, cmds);
        up.push(a.mail.current().unwrap().id);
    }
    up.reverse();
    assert_eq!(up, seen);
    let cmds = a.update(Action::Bottom);
    run(&mut a, cmds);
    assert_eq!(a.mail.current().unwrap().id, *seen.last().unwrap());
    assert_eq!(a.mail.index.selected as i64, n - 1);
}
