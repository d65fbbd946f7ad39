//! Keys on the mail pane: the account/folder tree, the index (threads collapsible, newest
//! first, read in keyset windows), the preview, search with `/` and `n`/`N`, and the changes
//! that go to the server through the pending-ops queue (read/unread, flag, move, delete,
//! archive).

use crate::ops::mailbox::{IndexRow, Source, Window};
use crate::ops::messages::FlagChange;
use crate::tui::action::{Action, Command, MailDest, PaneId};

use super::*;

impl App {
    /// What the mail pane reads when it is shown (or the database changed): the tree, the
    /// index from where it is, and the selected message.
    pub(super) fn load_mail(&mut self) -> Vec<Command> {
        let generation = self.next_generation();
        self.mail.tree_generation = generation;
        let mut c = vec![Command::LoadMailTree { generation }];
        if self.mail.source.is_some() {
            let (window, anchor) = match self.mail.index.rows.first() {
                Some(r) if self.mail.index.offset > 0 => {
                    (Window::From(r.key.clone()), self.mail.index.offset as i64)
                }
                _ => (Window::Top, 0),
            };
            c.extend(self.load_index(window, anchor));
        }
        c
    }

    /// The mail pane shown again: its tree, index and the previewed message read anew.
    pub(super) fn load_mail_pane(&mut self) -> Vec<Command> {
        let mut c = self.load_mail();
        if let Some(id) = self.mail.preview.detail.as_ref().map(|d| d.message.id) {
            let generation = self.next_generation();
            self.mail.preview.generation = generation;
            let changes = self.next_generation();
            self.mail.preview.changes_generation = changes;
            c.push(Command::LoadMessage { generation, id });
            c.push(Command::LoadChanges {
                generation: changes,
                id,
            });
        }
        c
    }

    fn load_index(&mut self, window: Window, anchor: i64) -> Vec<Command> {
        let Some(src) = self.mail.source.clone() else {
            return vec![];
        };
        let generation = self.next_generation();
        self.mail.index.generation = generation;
        vec![Command::LoadMailIndex {
            generation,
            source: src.source,
            window,
            anchor,
            limit: PAGE as i64,
        }]
    }

    /// Shows `source` in the index from its top.
    fn show_source(&mut self, src: MailSource) -> Vec<Command> {
        self.mail.source = Some(src);
        self.mail.index = Paged::default();
        self.mail.expanded = None;
        self.mail.sub = 0;
        self.mail.preview = MessagePane::default();
        self.load_index(Window::Top, 0)
    }

    /// The source of the folder at tree node `node`.
    fn folder_source(&self, node: TreeNode) -> Option<MailSource> {
        let (a, f) = match node {
            TreeNode::Folder(a, f) => (a, f),
            TreeNode::Account(a) => (a, 0),
        };
        let acct = self.mail.tree.get(a)?;
        let folder = acct.folders.get(f)?;
        Some(MailSource {
            source: Source::Folder {
                id: folder.id,
                threads: self.mail.threads,
            },
            title: format!("{}/{}", acct.name, folder.name),
            account: Some(acct.name.clone()),
            account_id: Some(acct.id.clone()),
            outgoing: matches!(
                folder.role,
                Some(crate::ops::folders::Role::Sent) | Some(crate::ops::folders::Role::Drafts)
            ),
        })
    }

    pub(super) fn update_mail(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::Search => {
                self.prompt = Some(Prompt {
                    label: "Search: words, \"phrases\", from: to: subject: since: before: is: folder: account:".into(),
                    value: self.mail.last_search.clone(),
                    then: PromptFor::MailSearch,
                });
                return vec![];
            }
            Action::ComposeNew => return self.start_new(),
            Action::FocusTree => {
                self.mail.focus = MailFocus::Tree;
                return vec![];
            }
            Action::FocusIndex if self.mail.source.is_some() => {
                self.mail.focus = MailFocus::Index;
                return vec![];
            }
            Action::ToggleThreads => return self.toggle_threads(),
            _ => {}
        }
        match self.mail.focus {
            MailFocus::Tree => self.update_mail_tree(action),
            MailFocus::Index => self.update_mail_index(action),
        }
    }

    fn update_mail_tree(&mut self, action: Action) -> Vec<Command> {
        let nodes = self.mail.nodes();
        if let Some(t) = self.nav_target(&action, self.mail.node, nodes.len()) {
            self.mail.node = t.clamp(0, nodes.len().saturating_sub(1) as isize) as usize;
            return vec![];
        }
        match action {
            Action::Open | Action::FocusIndex => {
                let Some(src) = nodes
                    .get(self.mail.node)
                    .and_then(|n| self.folder_source(*n))
                else {
                    return vec![];
                };
                self.mail.focus = MailFocus::Index;
                if self.mail.source.as_ref() == Some(&src) {
                    return vec![];
                }
                self.show_source(src)
            }
            Action::Back => self.go(PaneId::Dashboard),
            _ => vec![],
        }
    }

    fn toggle_threads(&mut self) -> Vec<Command> {
        self.mail.threads = !self.mail.threads;
        let Some(mut src) = self.mail.source.clone() else {
            return vec![];
        };
        if let Source::Folder { id, .. } = src.source {
            src.source = Source::Folder {
                id,
                threads: self.mail.threads,
            };
            return self.show_source(src);
        }
        vec![]
    }

    fn update_mail_index(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::Down | Action::NextHit => return self.step(1),
            Action::Up | Action::PrevHit => return self.step(-1),
            _ => {}
        }
        let total = self.mail.index.total;
        if let Some(t) = self.nav_target(&action, self.mail.index.selected, total) {
            return self.select_head(t);
        }
        match action {
            Action::Back => {
                self.mail.focus = MailFocus::Tree;
                vec![]
            }
            Action::ToggleThread => self.toggle_thread(),
            Action::Open => match self.mail.current().cloned() {
                Some(r) => self.open_from_mail(&r),
                None => vec![],
            },
            _ => self.act_on_mail(action),
        }
    }

    /// One row down (or up), through the expanded thread's rows.
    pub(super) fn step(&mut self, by: isize) -> Vec<Command> {
        let extra = self.mail.extra_rows();
        let sub = self.mail.sub as isize + by;
        if extra > 0 && (0..=extra as isize).contains(&sub) {
            self.mail.sub = sub as usize;
            return self.load_mail_preview();
        }
        let t = self.mail.index.selected as isize + by;
        self.select_head(t)
    }

    /// Moves the selection to head `t` (collapsing an open thread), loading the window
    /// around it by key when it leaves the rows held.
    fn select_head(&mut self, t: isize) -> Vec<Command> {
        let before = self.mail.index.selected;
        let mut cmds = Vec::new();
        if let Some(o) = self.mail.index.move_to(t, self.view_rows()) {
            let (window, anchor) = self.window_for(o);
            cmds.extend(self.load_index(window, anchor));
        }
        if self.mail.index.selected != before {
            self.mail.sub = 0;
            self.mail.expanded = None;
        }
        cmds.extend(self.load_mail_preview());
        cmds
    }

    /// The keyset window that holds rows `o..o+PAGE`: after the row before them, before the
    /// row after them, or the top or bottom of the list.
    fn window_for(&self, o: usize) -> (Window, i64) {
        let ix = &self.mail.index;
        if o == 0 {
            return (Window::Top, 0);
        }
        if o + PAGE >= ix.total {
            return (Window::Bottom, ix.total as i64);
        }
        if let Some(r) = ix.get(o - 1) {
            return (Window::After(r.key.clone()), o as i64);
        }
        if let Some(r) = ix.get(o + PAGE) {
            return (Window::Before(r.key.clone()), (o + PAGE) as i64);
        }
        // Nothing held near there (a jump): the nearer end.
        if o < ix.total / 2 {
            (Window::Top, 0)
        } else {
            (Window::Bottom, ix.total as i64)
        }
    }

    fn toggle_thread(&mut self) -> Vec<Command> {
        let Some(head) = self.mail.index.current().cloned() else {
            return vec![];
        };
        if self
            .mail
            .expanded
            .as_ref()
            .is_some_and(|e| e.thread_id == head.thread_id)
        {
            self.mail.expanded = None;
            self.mail.sub = 0;
            return self.load_mail_preview();
        }
        let folder_id = match self.mail.source.as_ref().map(|s| &s.source) {
            Some(Source::Folder { id, .. }) => *id,
            _ => return vec![],
        };
        if head.thread_count <= 1 {
            return vec![];
        }
        let generation = self.next_generation();
        self.mail.expanded = Some(Expanded {
            thread_id: head.thread_id,
            rows: vec![],
            generation,
        });
        vec![Command::LoadThread {
            generation,
            folder_id,
            thread_id: head.thread_id,
        }]
    }

    /// Loads the selected message into the preview (unless it is there already).
    pub(super) fn load_mail_preview(&mut self) -> Vec<Command> {
        let Some(id) = self.mail.current().map(|r| r.id) else {
            self.mail.preview = MessagePane::default();
            return vec![];
        };
        if self.mail.preview.detail.as_ref().map(|d| d.message.id) == Some(id) {
            return vec![];
        }
        let generation = self.next_generation();
        self.mail.preview.generation = generation;
        self.mail.preview.fetching = None;
        self.mail.preview.body = BodyState::Idle;
        self.mail.preview.highlights = self.search_highlights();
        let changes = self.next_generation();
        self.mail.preview.changes_generation = changes;
        vec![
            Command::LoadMessage { generation, id },
            Command::LoadChanges {
                generation: changes,
                id,
            },
        ]
    }

    /// The words of the search the index shows, to mark in a message.
    pub(super) fn search_highlights(&self) -> Vec<String> {
        match self.mail.source.as_ref().map(|s| &s.source) {
            Some(Source::Search { query }) => crate::ops::search::highlights(query),
            _ => vec![],
        }
    }

    /// Opens a message of the index; an unread one becomes read (through the queue).
    fn open_from_mail(&mut self, r: &IndexRow) -> Vec<Command> {
        let mut cmds = self.open_message(r.id, PaneId::Mail);
        self.message.highlights = self.search_highlights();
        let changes = self.next_generation();
        self.message.changes_generation = changes;
        cmds.push(Command::LoadChanges {
            generation: changes,
            id: r.id,
        });
        if !r.seen {
            cmds.push(Command::MailFlag {
                id: r.id,
                account_id: r.account_id.clone(),
                change: FlagChange {
                    seen: Some(true),
                    flagged: None,
                },
            });
        }
        cmds
    }

    /// The next (or previous) message of the index, opened in the message view: `n`/`N`
    /// between search hits, or through a folder.
    pub(super) fn open_neighbour(&mut self, by: isize) -> Vec<Command> {
        let here = self.mail.current().map(|r| r.id);
        let mut cmds = self.step(by);
        match self.mail.current().cloned() {
            Some(r) if Some(r.id) != here => {
                cmds.extend(self.open_from_mail(&r));
                cmds
            }
            _ => {
                self.toast(
                    if by > 0 {
                        "no further message"
                    } else {
                        "no earlier message"
                    },
                    false,
                );
                cmds
            }
        }
    }

    /// Read/unread, flag, move, delete, archive, reply, forward on the selected message.
    fn act_on_mail(&mut self, action: Action) -> Vec<Command> {
        let Some(r) = self.mail.current().cloned() else {
            return vec![];
        };
        let target = MessageTarget {
            id: r.id,
            account_id: r.account_id.clone(),
            account: r.account.clone(),
            seen: r.seen,
            flagged: r.flagged,
            subject: r.subject.clone(),
        };
        match action {
            Action::Reply | Action::ReplyAll | Action::Forward => {
                let kind = match action {
                    Action::Reply => DraftKind::Reply,
                    Action::ReplyAll => DraftKind::ReplyAll,
                    _ => DraftKind::Forward,
                };
                self.start_answer(kind, r.id, &r.account, r.from.clone(), r.subject.clone())
            }
            a => self.change_message(a, &target),
        }
    }

    /// A change to one message (from the index or the message view).
    pub(super) fn change_message(&mut self, action: Action, m: &MessageTarget) -> Vec<Command> {
        let flag = |seen, flagged| Command::MailFlag {
            id: m.id,
            account_id: m.account_id.clone(),
            change: FlagChange { seen, flagged },
        };
        let mv = |to| Command::MailMove {
            id: m.id,
            account_id: m.account_id.clone(),
            to,
        };
        let subject = crate::mail::sanitize::clean_line(m.subject.as_deref().unwrap_or(""));
        match action {
            Action::ToggleRead => {
                self.toast(
                    if m.seen {
                        format!("marking \"{subject}\" unread…")
                    } else {
                        format!("marking \"{subject}\" read…")
                    },
                    false,
                );
                vec![flag(Some(!m.seen), None)]
            }
            Action::ToggleFlag => {
                self.toast(
                    if m.flagged {
                        format!("unflagging \"{subject}\"…")
                    } else {
                        format!("flagging \"{subject}\"…")
                    },
                    false,
                );
                vec![flag(None, Some(!m.flagged))]
            }
            Action::DeleteMessage => {
                self.toast(format!("moving \"{subject}\" to Trash…"), false);
                vec![mv(MailDest::Trash)]
            }
            Action::Archive => {
                self.toast(format!("archiving \"{subject}\"…"), false);
                vec![mv(MailDest::Archive)]
            }
            Action::MoveMessage => {
                let folders: Vec<String> = self
                    .mail
                    .tree
                    .iter()
                    .find(|a| a.id == m.account_id)
                    .map(|a| {
                        a.folders
                            .iter()
                            .filter(|f| f.selectable)
                            .map(|f| f.name.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                if folders.is_empty() {
                    self.toast(
                        "no folders known for this account: open the Mail pane (9) once",
                        true,
                    );
                    return vec![];
                }
                self.mail.pick = Some(FolderPick {
                    message_id: m.id,
                    account_id: m.account_id.clone(),
                    account: m.account.clone(),
                    query: String::new(),
                    folders,
                    selected: 0,
                });
                vec![]
            }
            _ => vec![],
        }
    }

    /// Keys while the folder picker is open: type to narrow, ↑↓, Enter moves, Esc drops it.
    pub(super) fn update_folder_pick(&mut self, action: Action) -> Vec<Command> {
        let Some(p) = self.mail.pick.as_mut() else {
            return vec![];
        };
        match action {
            Action::Input(c) => {
                p.query.push(c);
                p.selected = 0;
            }
            Action::Backspace => {
                p.query.pop();
                p.selected = 0;
            }
            Action::Up => p.selected = p.selected.saturating_sub(1),
            Action::Down => p.selected = (p.selected + 1).min(p.matches().len().saturating_sub(1)),
            Action::Dismiss => self.mail.pick = None,
            Action::Confirm => {
                let chosen = p.matches().get(p.selected).map(|f| f.to_string());
                let (id, account_id) = (p.message_id, p.account_id.clone());
                self.mail.pick = None;
                if let Some(folder) = chosen {
                    self.toast(format!("moving to {folder}…"), false);
                    return vec![Command::MailMove {
                        id,
                        account_id,
                        to: MailDest::Folder(folder),
                    }];
                }
            }
            _ => {}
        }
        vec![]
    }

    /// The search typed at `/`: the index shows its hits.
    pub(super) fn run_search(&mut self, query: String) -> Vec<Command> {
        self.mail.last_search = query.clone();
        self.mail.focus = MailFocus::Index;
        self.pane = PaneId::Mail;
        let src = MailSource {
            title: format!("Search: {}", crate::mail::sanitize::clean_line(&query)),
            source: Source::Search { query },
            account: None,
            account_id: None,
            outgoing: false,
        };
        self.show_source(src)
    }
}

/// The message a change is about (from the index or the message view).
#[derive(Debug, Clone)]
pub struct MessageTarget {
    pub id: i64,
    pub account_id: String,
    pub account: String,
    pub seen: bool,
    pub flagged: bool,
    pub subject: Option<String>,
}
