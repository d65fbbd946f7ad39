//! The console's state and its one entry for change: `update(action)` and `apply(data)` mutate
//! state and return the Commands the I/O layer should run. No I/O, no drawing here.

mod apply;
mod compose;
mod forms;
mod lists;
mod mail;
mod state;
mod trace;

pub use lists::scope_text;
pub use mail::MessageTarget;
pub use state::*;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{Action, Command, PaneId};
use super::keymap::{Key, Keymap};
use super::theme::Theme;
use crate::ops::accounts::StepStatus;
use crate::ops::compose::DraftKind;
use crate::ops::outbox::Item;
use crate::ops::triage::MessageSummary;

pub struct App {
    pub pane: PaneId,
    pub help: bool,
    /// The first row of the help shown, when it is taller than the screen (↑/↓ scroll it).
    pub help_scroll: usize,
    pub dialog: Option<Dialog>,
    pub prompt: Option<Prompt>,
    pub picker: Option<Picker>,
    /// Suggestions per triage message id (from the triage list).
    pub suggestions: std::collections::HashMap<i64, Vec<Suggestion>>,
    pub toast: Option<Toast>,
    pub size: (u16, u16),
    pub quit: bool,
    pub theme: Theme,
    pub keymap: Keymap,
    pub accounts: Vec<AccountInfo>,
    pub dashboard: DashboardPane,
    pub setup: SetupForm,
    pub folders: FoldersPane,
    pub triage: Paged<MessageSummary>,
    pub preview: MessagePane,
    pub message: MessagePane,
    pub customers: CustomersPane,
    pub compose: ComposeForm,
    pub outbox: Paged<Item>,
    pub log: LogPane,
    pub mail: MailPane,
    /// The operator's drafts, to open one (compose's `ctrl-o`).
    pub drafts_pick: Option<DraftsPick>,
    next_gen: u64,
}

impl App {
    pub fn new(theme: Theme, keymap: Keymap, size: (u16, u16)) -> App {
        App {
            pane: PaneId::Dashboard,
            help: false,
            help_scroll: 0,
            dialog: None,
            prompt: None,
            picker: None,
            suggestions: Default::default(),
            toast: None,
            size,
            quit: false,
            theme,
            keymap,
            accounts: Vec::new(),
            dashboard: DashboardPane::default(),
            setup: SetupForm::default(),
            folders: FoldersPane::default(),
            triage: Paged::default(),
            preview: MessagePane::default(),
            message: MessagePane::default(),
            customers: CustomersPane::default(),
            compose: ComposeForm::default(),
            outbox: Paged::default(),
            log: LogPane {
                level: 2,
                ..Default::default()
            },
            mail: MailPane::default(),
            drafts_pick: None,
            next_gen: 0,
        }
    }

    fn next_generation(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    /// Rows a list pane shows at the current size (chrome: tabs, status line, borders, header).
    pub fn view_rows(&self) -> usize {
        (self.size.1 as usize).saturating_sub(6).max(1)
    }

    /// Whether plain characters are text input right now.
    pub fn editing(&self) -> bool {
        match self.pane {
            PaneId::Setup => self.setup.typing(),
            PaneId::Compose => self.compose.field != F_FROM,
            PaneId::Customers => self.customers.searching,
            PaneId::Log => self.log.searching,
            _ => false,
        }
    }

    /// Key → Action through the keymap (text input first where a field has focus).
    pub fn action_for_key(&self, ev: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(ev);
        if self.picker.is_some() || self.mail.pick.is_some() || self.drafts_pick.is_some() {
            let plain = !ev
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
            return match ev.code {
                KeyCode::Enter => Some(Action::Confirm),
                KeyCode::Esc => Some(Action::Dismiss),
                KeyCode::Backspace => Some(Action::Backspace),
                KeyCode::Up => Some(Action::Up),
                KeyCode::Down => Some(Action::Down),
                KeyCode::Char(c) if plain => Some(Action::Input(c)),
                _ => self
                    .keymap
                    .resolve(self.pane, false, key)
                    .filter(|a| *a == Action::Quit),
            };
        }
        if self.prompt.is_some() {
            let plain = !ev
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
            return match ev.code {
                KeyCode::Char('u') if ev.modifiers.contains(KeyModifiers::CONTROL) => {
                    Some(Action::ClearField)
                }
                KeyCode::Enter => Some(Action::Confirm),
                KeyCode::Esc => Some(Action::Dismiss),
                KeyCode::Backspace => Some(Action::Backspace),
                KeyCode::Char(c) if plain => Some(Action::Input(c)),
                _ => self
                    .keymap
                    .resolve(self.pane, false, key)
                    .filter(|a| *a == Action::Quit),
            };
        }
        let dialog = self.dialog.is_some();
        if !dialog && !self.help && self.editing() {
            let plain = !ev
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
            match ev.code {
                KeyCode::Char(c) if plain => return Some(Action::Input(c)),
                KeyCode::Backspace => return Some(Action::Backspace),
                _ => {}
            }
            let searching = match self.pane {
                PaneId::Customers => self.customers.searching,
                PaneId::Log => self.log.searching,
                _ => false,
            };
            if searching && ev.code == KeyCode::Enter && self.pane == PaneId::Customers {
                return Some(Action::Open);
            }
            if searching && matches!(ev.code, KeyCode::Enter | KeyCode::Esc) {
                return Some(Action::Back);
            }
        }
        if self.help {
            return match ev.code {
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?') | KeyCode::F(1) => {
                    Some(Action::Help)
                }
                KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
                KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
                KeyCode::PageDown | KeyCode::Char(' ') => Some(Action::PageDown),
                KeyCode::PageUp => Some(Action::PageUp),
                _ => self
                    .keymap
                    .resolve(self.pane, false, key)
                    .filter(|a| *a == Action::Quit),
            };
        }
        self.keymap.resolve(self.pane, dialog, key)
    }

    /// The commands that (re)load what the current pane shows, plus the dashboard (status line).
    pub fn reload(&mut self) -> Vec<Command> {
        let mut cmds = vec![Command::LoadDashboard];
        cmds.extend(self.load_pane(self.pane));
        if self.pane == PaneId::Message && self.message.back == Some(PaneId::Mail) {
            // The index behind the message view follows too (n/N walk it).
            cmds.extend(self.load_mail());
        }
        cmds
    }

    /// What the console asks for when it starts: the first screens, and the drafts left by
    /// a quit or a crash (the newest is restored into compose).
    pub fn startup(&mut self) -> Vec<Command> {
        let mut cmds = self.reload();
        cmds.push(Command::LoadDrafts);
        cmds
    }

    fn load_pane(&mut self, pane: PaneId) -> Vec<Command> {
        let limit = PAGE as i64;
        match pane {
            PaneId::Dashboard | PaneId::Setup | PaneId::Compose => vec![],
            PaneId::Triage => {
                let generation = self.next_generation();
                self.triage.generation = generation;
                let offset = self.triage.offset as i64;
                let mut c = vec![Command::LoadTriage {
                    generation,
                    offset,
                    limit,
                    after: None,
                }];
                c.extend(self.load_preview());
                c
            }
            PaneId::Folders => match self
                .accounts
                .get(self.folders.account)
                .map(|a| a.name.clone())
            {
                Some(account) => {
                    let generation = self.next_generation();
                    self.folders.generation = generation;
                    vec![Command::LoadFolders {
                        generation,
                        account,
                    }]
                }
                None => {
                    self.folders.loaded = true;
                    vec![]
                }
            },
            PaneId::Message => match self.message.detail.as_ref().map(|d| d.message.id) {
                Some(id) => {
                    let generation = self.next_generation();
                    self.message.generation = generation;
                    let changes = self.next_generation();
                    self.message.changes_generation = changes;
                    vec![
                        Command::LoadMessage { generation, id },
                        Command::LoadChanges {
                            generation: changes,
                            id,
                        },
                    ]
                }
                None => vec![],
            },
            PaneId::Mail => self.load_mail_pane(),
            PaneId::Customers => {
                let generation = self.next_generation();
                self.customers.list.generation = generation;
                let mut c = vec![Command::LoadCustomers {
                    generation,
                    query: self.customers.query.clone(),
                    offset: self.customers.list.offset as i64,
                    limit,
                }];
                if let Some(id) = self.customers.timeline_of {
                    let generation = self.next_generation();
                    self.customers.timeline.generation = generation;
                    c.push(Command::LoadTimeline {
                        generation,
                        customer_id: id,
                        offset: 0,
                        limit,
                        after: None,
                    });
                }
                c
            }
            PaneId::Outbox => {
                let generation = self.next_generation();
                self.outbox.generation = generation;
                vec![Command::LoadOutbox {
                    generation,
                    offset: self.outbox.offset as i64,
                    limit,
                }]
            }
            PaneId::Log if self.log.trace => self.load_trace(),
            PaneId::Log => {
                let generation = self.next_generation();
                if self.log.quarantine {
                    self.log.quar.generation = generation;
                    vec![Command::LoadQuarantine {
                        generation,
                        offset: self.log.quar.offset as i64,
                        limit,
                    }]
                } else {
                    self.log.events.generation = generation;
                    vec![Command::LoadEvents {
                        generation,
                        filter: self.log.filter(),
                        offset: self.log.events.offset as i64,
                        limit,
                    }]
                }
            }
        }
    }

    fn load_preview(&mut self) -> Vec<Command> {
        match self.triage.current().map(|m| m.id) {
            Some(id) if self.preview.detail.as_ref().map(|d| d.message.id) != Some(id) => {
                let generation = self.next_generation();
                self.preview.generation = generation;
                vec![Command::LoadMessage { generation, id }]
            }
            Some(_) => vec![],
            None => {
                self.preview.detail = None;
                vec![]
            }
        }
    }

    fn toast(&mut self, text: impl Into<String>, error: bool) {
        self.toast = Some(Toast {
            text: text.into(),
            error,
        });
    }

    fn go(&mut self, pane: PaneId) -> Vec<Command> {
        let mut cmds = Vec::new();
        if self.pane == PaneId::Message && pane != PaneId::Message {
            cmds.push(Command::StopBodyFetch);
        }
        self.pane = pane;
        self.help = false;
        cmds.extend(self.load_pane(pane));
        cmds
    }

    pub fn update(&mut self, action: Action) -> Vec<Command> {
        if !matches!(action, Action::Resize(..)) {
            // A keypress acknowledges the last notice.
            if self.dialog.is_none() {
                self.toast = None;
            }
        }
        match action {
            Action::Quit => {
                self.quit = true;
                vec![]
            }
            Action::Resize(w, h) => {
                self.size = (w, h);
                vec![]
            }
            Action::Help => {
                self.help = !self.help;
                self.help_scroll = 0;
                vec![]
            }
            // A help taller than the screen scrolls (the view clamps at its end).
            Action::Up | Action::Down | Action::PageUp | Action::PageDown if self.help => {
                let page = (self.size.1 as usize).saturating_sub(4).max(1);
                self.help_scroll = match action {
                    Action::Up => self.help_scroll.saturating_sub(1),
                    Action::Down => self.help_scroll + 1,
                    Action::PageUp => self.help_scroll.saturating_sub(page),
                    _ => self.help_scroll + page,
                };
                vec![]
            }
            _ if self.picker.is_some() => self.update_picker(action),
            _ if self.mail.pick.is_some() => self.update_folder_pick(action),
            _ if self.drafts_pick.is_some() => self.update_drafts_pick(action),
            _ if self.prompt.is_some() => self.update_prompt(action),
            Action::Refresh => self.reload(),
            Action::Confirm | Action::Dismiss if self.dialog.is_some() => {
                let d = self.dialog.take();
                match (action, d) {
                    (Action::Confirm, Some(d)) => vec![match d.then {
                        Pending::Block { id, domain } => Command::TriageBlock { id, domain },
                        Pending::Delete { id } => Command::TriageDelete { id },
                        Pending::RemoveAccount { name } => Command::RemoveAccount { name },
                        Pending::Resend { id } => Command::OutboxResend { id },
                        Pending::Drop { id } => Command::OutboxDrop { id },
                        Pending::ApplyScope {
                            account,
                            since,
                            unread_only,
                        } => Command::ApplyScope {
                            account,
                            since,
                            unread_only,
                        },
                        Pending::SaveAccount => return self.save_form(),
                        Pending::TraceLiterals { account } => Command::SetTrace {
                            account,
                            on: true,
                            literals: true,
                        },
                        Pending::DiscardDraft { id } => {
                            self.compose = ComposeForm::default();
                            match id {
                                Some(id) => Command::ForgetDraft { id, tell: true },
                                None => {
                                    self.toast("draft discarded", false);
                                    return vec![];
                                }
                            }
                        }
                    }],
                    _ => vec![],
                }
            }
            Action::NextPane | Action::PrevPane => {
                let cur = PaneId::TABS
                    .iter()
                    .position(|p| *p == self.pane)
                    .unwrap_or(0);
                let n = PaneId::TABS.len();
                let next = if action == Action::NextPane {
                    (cur + 1) % n
                } else {
                    (cur + n - 1) % n
                };
                self.go(PaneId::TABS[next])
            }
            Action::GoTo(p) => self.go(p),
            _ => match self.pane {
                PaneId::Dashboard => self.update_dashboard(action),
                PaneId::Setup => self.update_setup(action),
                PaneId::Folders => self.update_folders(action),
                PaneId::Triage => self.update_triage(action),
                PaneId::Message => self.update_message(action),
                PaneId::Customers => self.update_customers(action),
                PaneId::Compose => self.update_compose(action),
                PaneId::Outbox => self.update_outbox(action),
                PaneId::Log => self.update_log(action),
                PaneId::Mail => self.update_mail(action),
            },
        }
    }

    fn nav_target(&self, action: &Action, selected: usize, total: usize) -> Option<isize> {
        let view = self.view_rows() as isize;
        let s = selected as isize;
        Some(match action {
            Action::Up => s - 1,
            Action::Down => s + 1,
            Action::PageUp => s - view,
            Action::PageDown => s + view,
            Action::Top => 0,
            Action::Bottom => total as isize - 1,
            _ => return None,
        })
    }
}

/// The account name and (for an alias) the From address of compose's choice `i`.
pub fn from_account(accounts: &[AccountInfo], i: usize) -> Option<(String, Option<String>)> {
    let mut n = 0;
    for a in accounts {
        if n == i {
            return Some((a.name.clone(), None));
        }
        n += 1;
        for al in &a.aliases {
            if n == i {
                return Some((a.name.clone(), Some(al.clone())));
            }
            n += 1;
        }
    }
    None
}

/// "account <address>" choices for compose: each account's address and its aliases.
pub fn from_choices(accounts: &[AccountInfo]) -> Vec<String> {
    let mut v = Vec::new();
    for a in accounts {
        v.push(format!("{} <{}>", a.name, a.email));
        for al in &a.aliases {
            v.push(format!("{} <{}>", a.name, al));
        }
    }
    v
}

/// Glyph and theme role of a check step.
pub fn step_mark(s: StepStatus) -> (&'static str, &'static str) {
    match s {
        StepStatus::Ok => ("ok", "step.ok"),
        StepStatus::Failed => ("FAILED", "step.failed"),
        StepStatus::Skipped => ("skipped", "step.skipped"),
    }
}
