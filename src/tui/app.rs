//! The console's state and its one entry for change: `update(action)` and `apply(data)` mutate
//! state and return the Commands the I/O layer should run. No I/O, no drawing here.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use secrecy::{ExposeSecret, SecretString};

use super::action::{AccountForm, Action, Command, Draft, PaneId};
use super::keymap::{Key, Keymap};
use super::theme::Theme;
use crate::check::{Report, Step, StepStatus};
use crate::cli::status::Status;
use crate::error::AppError;
use crate::store::EventRow;
use crate::store::console::{
    CustomerRow, EventFilter, FolderRow, MessageDetail, MessageSummary, OutboxRow, QuarantineRow,
};

/// Rows fetched per page request: several screens, so scrolling rarely waits on the store.
pub const PAGE: usize = 200;

/// Answers from the I/O layer.
#[derive(Debug)]
pub enum Data {
    Dashboard(Result<Status, AppError>, Vec<AccountInfo>),
    Triage(Page<MessageSummary>),
    Folders(u64, Result<Vec<FolderRow>, AppError>),
    Message(u64, Box<Result<Option<MessageDetail>, AppError>>),
    Customers(Page<CustomerRow>),
    Timeline(Page<MessageSummary>),
    Outbox(Page<OutboxRow>),
    Events(Page<EventRow>),
    Quarantine(Page<QuarantineRow>),
    CheckStep(u64, Step),
    CheckDone(u64, Result<Report, AppError>),
    Saved(u64, Result<String, AppError>),
    Completions(u64, Result<Vec<(String, String)>, AppError>),
    /// The body came back from $EDITOR.
    Edited(Result<String, AppError>),
    /// A result to tell the operator about (ok text, or the error with its fix).
    Notice(Result<String, AppError>),
    /// The first-sync plan (`sync --plan --json`'s account object).
    Plan(u64, Result<serde_json::Value, AppError>),
    /// Search results for the pair picker.
    Picker(u64, Result<Vec<CustomerRow>, AppError>),
    /// How many cached messages a block would hide: ask before doing it.
    BlockPlan(i64, bool, Result<String, AppError>),
    /// A triage action (or undo) finished: tell, and re-read the queue.
    TriageDone(Result<String, AppError>),
    /// Suggestions for triage messages (message id → customers).
    Suggestions(Vec<(i64, Vec<Suggestion>)>),
    /// `send`/`reply` answered (queued, sent…).
    Sent(Result<String, AppError>),
    /// An account was removed.
    AccountRemoved(Result<String, AppError>),
    /// A body fetch finished (Ok: the store has it now).
    BodyFetched(i64, Result<(), AppError>),
    /// A quarantine action finished; re-read the list.
    QuarantineDone(Result<String, AppError>),
    /// The folder list or choice changed (by us): re-read it, and sync the account.
    FoldersChanged(String, Result<String, AppError>),
    /// Another process committed to the database.
    DbChanged,
}

#[derive(Debug)]
pub struct Page<T> {
    pub generation: u64,
    pub offset: usize,
    pub result: Result<(usize, Vec<T>), AppError>,
}

/// What the console needs to know of a configured account (from config.toml).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountInfo {
    pub name: String,
    pub id: String,
    pub email: String,
    pub aliases: Vec<String>,
}

/// A window of a long list: only `rows` (starting at `offset`) are in memory.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub total: usize,
    pub offset: usize,
    pub rows: Vec<T>,
    pub selected: usize,
    pub generation: u64,
    pub loaded: bool,
    pub error: Option<AppError>,
}

impl<T> Default for Paged<T> {
    fn default() -> Self {
        Paged {
            total: 0,
            offset: 0,
            rows: Vec::new(),
            selected: 0,
            generation: 0,
            loaded: false,
            error: None,
        }
    }
}

impl<T> Paged<T> {
    pub fn get(&self, i: usize) -> Option<&T> {
        i.checked_sub(self.offset).and_then(|j| self.rows.get(j))
    }
    pub fn current(&self) -> Option<&T> {
        self.get(self.selected)
    }
    fn apply(&mut self, page: Page<T>) -> bool {
        if page.generation != self.generation {
            return false; // an answer to an older question
        }
        self.loaded = true;
        match page.result {
            Ok((total, rows)) => {
                self.total = total;
                self.offset = page.offset;
                self.rows = rows;
                self.error = None;
                if self.selected >= total {
                    self.selected = total.saturating_sub(1);
                }
            }
            Err(e) => self.error = Some(e),
        }
        true
    }
    /// Moves the selection; returns the offset to load when it left the rows in memory.
    fn move_to(&mut self, target: isize, view: usize) -> Option<usize> {
        let max = self.total.saturating_sub(1) as isize;
        self.selected = target.clamp(0, max.max(0)) as usize;
        let lo = self.selected.saturating_sub(view);
        let hi = (self.selected + view).min(self.total);
        let have_lo = self.offset;
        let have_hi = self.offset + self.rows.len();
        if lo < have_lo || hi > have_hi {
            Some(self.selected.saturating_sub(PAGE / 2))
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
pub struct CheckRun {
    pub job: u64,
    pub title: String,
    pub steps: Vec<Step>,
    pub done: Option<bool>,
    pub error: Option<AppError>,
}

impl CheckRun {
    fn new(job: u64, title: String) -> CheckRun {
        CheckRun {
            job,
            title,
            steps: Vec::new(),
            done: None,
            error: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Secret,
    Preset,
    Security,
    Toggle,
}

pub const SETUP_FIELDS: &[(&str, FieldKind)] = &[
    ("Provider", FieldKind::Preset),
    ("Name", FieldKind::Text),
    ("Email", FieldKind::Text),
    ("Login", FieldKind::Text),
    ("Password", FieldKind::Secret),
    ("IMAP host", FieldKind::Text),
    ("IMAP port", FieldKind::Text),
    ("IMAP security", FieldKind::Security),
    ("SMTP host", FieldKind::Text),
    ("SMTP port", FieldKind::Text),
    ("SMTP security", FieldKind::Security),
    ("CA file", FieldKind::Text),
    ("Skip cert check", FieldKind::Toggle),
    ("Aliases", FieldKind::Text),
    ("Share with", FieldKind::Text),
];
pub const F_PRESET: usize = 0;
pub const F_NAME: usize = 1;
pub const F_EMAIL: usize = 2;
pub const F_LOGIN: usize = 3;
pub const F_PASSWORD: usize = 4;
pub const F_IMAP_HOST: usize = 5;
pub const F_IMAP_PORT: usize = 6;
pub const F_IMAP_SEC: usize = 7;
pub const F_SMTP_HOST: usize = 8;
pub const F_SMTP_PORT: usize = 9;
pub const F_SMTP_SEC: usize = 10;
pub const F_CA: usize = 11;
pub const F_INSECURE: usize = 12;
pub const F_ALIASES: usize = 13;
pub const F_SHARE: usize = 14;

const SECURITIES: [&str; 3] = ["tls", "starttls", "none"];

#[derive(Clone)]
pub struct SetupForm {
    pub field: usize,
    pub values: Vec<String>,
    pub password: SecretString,
    /// 0 = custom; n = presets::PRESETS[n-1].
    pub preset: usize,
    pub run: Option<CheckRun>,
    pub saving: Option<u64>,
    pub message: Option<Result<String, AppError>>,
}

impl std::fmt::Debug for SetupForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupForm")
            .field("field", &self.field)
            .field("values", &self.values)
            .finish_non_exhaustive()
    }
}

impl Default for SetupForm {
    fn default() -> Self {
        let mut values = vec![String::new(); SETUP_FIELDS.len()];
        values[F_IMAP_PORT] = "993".into();
        values[F_IMAP_SEC] = "tls".into();
        values[F_SMTP_PORT] = "587".into();
        values[F_SMTP_SEC] = "starttls".into();
        values[F_INSECURE] = "no".into();
        SetupForm {
            field: F_PRESET,
            values,
            password: SecretString::from(String::new()),
            preset: 0,
            run: None,
            saving: None,
            message: None,
        }
    }
}

impl SetupForm {
    pub fn password_len(&self) -> usize {
        self.password.expose_secret().chars().count()
    }
    pub fn hint(&self) -> Option<&'static str> {
        self.preset
            .checked_sub(1)
            .and_then(|i| crate::presets::PRESETS.get(i))
            .and_then(|p| p.hint)
    }
    pub fn preset_label(&self) -> &'static str {
        self.preset
            .checked_sub(1)
            .and_then(|i| crate::presets::PRESETS.get(i))
            .map(|p| p.label)
            .unwrap_or("Custom (type the servers)")
    }
    /// The form as `account add` flags; the I/O layer runs the CLI's own validation on it.
    pub fn to_form(&self) -> AccountForm {
        let v = &self.values;
        AccountForm {
            name: v[F_NAME].trim().to_string(),
            email: v[F_EMAIL].trim().to_string(),
            user: v[F_LOGIN].trim().to_string(),
            password: self.password.clone(),
            imap: host_port(&v[F_IMAP_HOST], &v[F_IMAP_PORT]),
            imap_security: v[F_IMAP_SEC].clone(),
            smtp: host_port(&v[F_SMTP_HOST], &v[F_SMTP_PORT]),
            smtp_security: v[F_SMTP_SEC].clone(),
            ca_file: v[F_CA].trim().to_string(),
            insecure: v[F_INSECURE] == "yes",
            preset: self
                .preset
                .checked_sub(1)
                .and_then(|i| crate::presets::PRESETS.get(i))
                .map(|p| p.id.to_string()),
            aliases: v[F_ALIASES].clone(),
            share_with: v[F_SHARE].clone(),
        }
    }
    fn apply_preset(&mut self) {
        let Some(p) = self
            .preset
            .checked_sub(1)
            .and_then(|i| crate::presets::PRESETS.get(i))
        else {
            return;
        };
        self.values[F_IMAP_HOST] = p.imap_host.into();
        self.values[F_IMAP_PORT] = p.imap_port.to_string();
        self.values[F_IMAP_SEC] = p.imap_security.as_str().into();
        self.values[F_SMTP_HOST] = p.smtp_host.into();
        self.values[F_SMTP_PORT] = p.smtp_port.to_string();
        self.values[F_SMTP_SEC] = p.smtp_security.as_str().into();
    }
}

fn host_port(host: &str, port: &str) -> String {
    let (h, p) = (host.trim(), port.trim());
    if h.is_empty() || p.is_empty() {
        h.to_string()
    } else if h.contains(':') && !h.starts_with('[') {
        format!("[{h}]:{p}")
    } else {
        format!("{h}:{p}")
    }
}

pub const COMPOSE_FIELDS: &[&str] = &["From", "To", "Cc", "Subject", "Attach", "Body"];

pub const F_TO: usize = 1;
pub const F_CC: usize = 2;

#[derive(Debug, Clone, Default)]
pub struct ComposeForm {
    pub field: usize,
    pub from: usize,
    pub values: Vec<String>,
    pub reply_to: Option<i64>,
    /// (name, address) of customers matching the address being typed.
    pub suggestions: Vec<(String, String)>,
    pub completion_generation: u64,
    /// For a reply: the To the CLI will compute itself (passed on only when edited).
    pub prefilled_to: Option<String>,
    pub reply_all: bool,
    pub sending: bool,
}

#[derive(Debug, Default)]
pub struct DashboardPane {
    pub status: Option<Status>,
    pub error: Option<AppError>,
    pub selected: usize,
    pub run: Option<CheckRun>,
}

/// The first-sync plan as `sync --plan --json` reports it, for one account.
#[derive(Debug, Clone, Default)]
pub struct PlanView {
    pub job: u64,
    pub since: Option<String>,
    pub unread_only: bool,
    pub result: Option<Result<serde_json::Value, AppError>>,
}

#[derive(Debug, Clone, Default)]
pub struct FoldersPane {
    pub plan: Option<PlanView>,
    pub account: usize,
    pub rows: Vec<FolderRow>,
    pub selected: usize,
    pub generation: u64,
    pub loaded: bool,
    pub error: Option<AppError>,
}

#[derive(Debug, Clone, Default)]
pub struct MessagePane {
    pub detail: Option<MessageDetail>,
    /// The message whose body was asked from the server (asked once per opening).
    pub fetching: Option<i64>,
    pub attachment: usize,
    pub generation: u64,
    pub loaded: bool,
    pub error: Option<AppError>,
    pub scroll: u16,
    pub back: Option<PaneId>,
}

#[derive(Debug, Clone, Default)]
pub struct CustomersPane {
    pub query: String,
    pub searching: bool,
    pub list: Paged<CustomerRow>,
    pub timeline: Paged<MessageSummary>,
    pub timeline_of: Option<i64>,
}

pub const LEVELS: [&str; 4] = ["error", "warn", "info", "debug"];

#[derive(Debug, Clone, Default)]
pub struct LogPane {
    /// Index into LEVELS of the lowest level shown.
    pub level: usize,
    pub search: String,
    pub searching: bool,
    pub quarantine: bool,
    pub events: Paged<EventRow>,
    pub quar: Paged<QuarantineRow>,
}

impl LogPane {
    pub fn filter(&self) -> EventFilter {
        EventFilter {
            levels: LEVELS[..=self.level.min(3)].to_vec(),
            search: self.search.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dialog {
    pub text: String,
    pub then: Pending,
}

/// A destructive action waiting for "yes".
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    Block { id: i64, domain: bool },
    Delete { id: i64 },
    RemoveAccount { name: String },
    Resend { id: i64 },
    Drop { id: i64 },
}

/// A customer suggested for a triage message, and why (same domain, same thread…).
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub customer_id: i64,
    pub name: String,
    pub reason: String,
}

/// The fuzzy customer picker for "pair": suggestions first, then the search results.
#[derive(Debug, Clone, Default)]
pub struct Picker {
    pub message_id: i64,
    pub query: String,
    pub suggestions: Vec<Suggestion>,
    pub results: Vec<CustomerRow>,
    pub generation: u64,
    pub selected: usize,
}

impl Picker {
    pub fn len(&self) -> usize {
        self.suggestions.len() + self.results.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// (customer id, name) of the selected entry.
    pub fn chosen(&self) -> Option<(i64, String)> {
        match self.suggestions.get(self.selected) {
            Some(s) => Some((s.customer_id, s.name.clone())),
            None => self
                .results
                .get(self.selected - self.suggestions.len())
                .map(|r| (r.id, r.name.clone())),
        }
    }
}

/// A one-line question (a path to save to), answered with Enter or dropped with Esc.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub label: String,
    pub value: String,
    pub then: PromptFor,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PromptFor {
    SaveAttachment { id: i64, index: usize },
    QuarantineSave { id: i64 },
    PlanSince,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    pub text: String,
    pub error: bool,
}

pub struct App {
    pub pane: PaneId,
    pub help: bool,
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
    pub outbox: Paged<OutboxRow>,
    pub log: LogPane,
    next_gen: u64,
}

impl App {
    pub fn new(theme: Theme, keymap: Keymap, size: (u16, u16)) -> App {
        App {
            pane: PaneId::Dashboard,
            help: false,
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
            compose: ComposeForm {
                values: vec![String::new(); COMPOSE_FIELDS.len()],
                ..Default::default()
            },
            outbox: Paged::default(),
            log: LogPane {
                level: 2,
                ..Default::default()
            },
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
            PaneId::Setup => !matches!(
                SETUP_FIELDS[self.setup.field].1,
                FieldKind::Preset | FieldKind::Security | FieldKind::Toggle
            ),
            PaneId::Compose => self.compose.field != 0,
            PaneId::Customers => self.customers.searching,
            PaneId::Log => self.log.searching,
            _ => false,
        }
    }

    /// Key → Action through the keymap (text input first where a field has focus).
    pub fn action_for_key(&self, ev: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(ev);
        if self.picker.is_some() {
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
            if searching && matches!(ev.code, KeyCode::Enter | KeyCode::Esc) {
                return Some(Action::Back);
            }
        }
        if self.help {
            return match ev.code {
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?') | KeyCode::F(1) => {
                    Some(Action::Help)
                }
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
                }];
                c.extend(self.load_preview());
                c
            }
            PaneId::Folders => match self
                .accounts
                .get(self.folders.account)
                .map(|a| a.id.clone())
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
            PaneId::Message => match self.message.detail.as_ref().map(|d| d.summary.id) {
                Some(id) => {
                    let generation = self.next_generation();
                    self.message.generation = generation;
                    vec![Command::LoadMessage { generation, id }]
                }
                None => vec![],
            },
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
            Some(id) if self.preview.detail.as_ref().map(|d| d.summary.id) != Some(id) => {
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
        self.pane = pane;
        self.help = false;
        self.load_pane(pane)
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
                vec![]
            }
            _ if self.picker.is_some() => self.update_picker(action),
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

    fn update_dashboard(&mut self, action: Action) -> Vec<Command> {
        let n = self
            .dashboard
            .status
            .as_ref()
            .map(|s| s.accounts.len())
            .unwrap_or(0);
        if let Some(t) = self.nav_target(&action, self.dashboard.selected, n) {
            self.dashboard.selected = t.clamp(0, n.saturating_sub(1) as isize) as usize;
            return vec![];
        }
        let name = self
            .dashboard
            .status
            .as_ref()
            .and_then(|s| s.accounts.get(self.dashboard.selected))
            .map(|a| a.name.clone());
        match action {
            Action::NewAccount => self.go(PaneId::Setup),
            Action::TestAccount => match name {
                Some(name) => {
                    let job = self.next_generation();
                    self.dashboard.run = Some(CheckRun::new(job, format!("Test {name}")));
                    vec![Command::TestStored { job, name }]
                }
                None => vec![],
            },
            Action::Open => {
                if let Some(i) = name
                    .as_ref()
                    .and_then(|n| self.accounts.iter().position(|a| &a.name == n))
                {
                    self.folders.account = i;
                }
                self.go(PaneId::Folders)
            }
            Action::SyncNow => {
                let id = name
                    .as_ref()
                    .and_then(|n| self.accounts.iter().find(|a| &a.name == n))
                    .map(|a| a.id.clone());
                match id {
                    Some(account_id) => {
                        self.toast(
                            format!("sync of {} asked for", name.unwrap_or_default()),
                            false,
                        );
                        vec![Command::KickSync { account_id }]
                    }
                    None => vec![],
                }
            }
            Action::RemoveAccount => {
                if let Some(name) = name {
                    self.dialog = Some(Dialog {
                        text: format!(
                            "Remove account {name}? Its cached mail goes; pairings, outbox and audit log stay."
                        ),
                        then: Pending::RemoveAccount { name },
                    });
                }
                vec![]
            }
            _ => vec![],
        }
    }

    fn update_setup(&mut self, action: Action) -> Vec<Command> {
        let f = &mut self.setup;
        let kind = SETUP_FIELDS[f.field].1;
        match action {
            Action::Back => return self.go(PaneId::Dashboard),
            Action::NextField => f.field = (f.field + 1) % SETUP_FIELDS.len(),
            Action::PrevField => f.field = (f.field + SETUP_FIELDS.len() - 1) % SETUP_FIELDS.len(),
            Action::ChoiceNext | Action::ChoicePrev | Action::Input(' ')
                if matches!(
                    kind,
                    FieldKind::Preset | FieldKind::Security | FieldKind::Toggle
                ) =>
            {
                let fwd = action != Action::ChoicePrev;
                match kind {
                    FieldKind::Preset => {
                        let n = crate::presets::PRESETS.len() + 1;
                        f.preset = if fwd {
                            (f.preset + 1) % n
                        } else {
                            (f.preset + n - 1) % n
                        };
                        f.apply_preset();
                    }
                    FieldKind::Security => {
                        let cur = SECURITIES
                            .iter()
                            .position(|s| *s == f.values[f.field])
                            .unwrap_or(0);
                        let next = if fwd { (cur + 1) % 3 } else { (cur + 2) % 3 };
                        f.values[f.field] = SECURITIES[next].into();
                        // Follow the conventional port for the new security unless typed.
                        let (port_field, ports): (usize, [&str; 3]) = if f.field == F_IMAP_SEC {
                            (F_IMAP_PORT, ["993", "143", "143"])
                        } else {
                            (F_SMTP_PORT, ["465", "587", "25"])
                        };
                        if ports.contains(&f.values[port_field].as_str())
                            || f.values[port_field].is_empty()
                        {
                            f.values[port_field] = ports[next].into();
                        }
                    }
                    _ => {
                        f.values[f.field] = if f.values[f.field] == "yes" {
                            "no".into()
                        } else {
                            "yes".into()
                        };
                    }
                }
            }
            Action::Input(c) => match kind {
                FieldKind::Secret => {
                    let mut s = f.password.expose_secret().to_string();
                    s.push(c);
                    f.password = SecretString::from(s);
                }
                FieldKind::Text => {
                    if f.field == F_EMAIL && f.values[F_LOGIN] == f.values[F_EMAIL] {
                        f.values[F_LOGIN].push(c);
                    }
                    f.values[f.field].push(c);
                }
                _ => {}
            },
            Action::Backspace => match kind {
                FieldKind::Secret => {
                    let mut s = f.password.expose_secret().to_string();
                    s.pop();
                    f.password = SecretString::from(s);
                }
                FieldKind::Text => {
                    if f.field == F_EMAIL && f.values[F_LOGIN] == f.values[F_EMAIL] {
                        f.values[F_LOGIN].pop();
                    }
                    f.values[f.field].pop();
                }
                _ => {}
            },
            Action::ClearField => match kind {
                FieldKind::Secret => f.password = SecretString::from(String::new()),
                FieldKind::Text => f.values[f.field].clear(),
                _ => {}
            },
            Action::TestConnection => {
                let job = self.next_generation();
                let f = &mut self.setup;
                f.run = Some(CheckRun::new(job, "Test connection".into()));
                f.message = None;
                return vec![Command::TestNew {
                    job,
                    form: Box::new(f.to_form()),
                }];
            }
            Action::SaveAccount => {
                let job = self.next_generation();
                let f = &mut self.setup;
                f.saving = Some(job);
                f.message = None;
                return vec![Command::SaveNew {
                    job,
                    form: Box::new(f.to_form()),
                }];
            }
            _ => {}
        }
        vec![]
    }

    fn update_folders(&mut self, action: Action) -> Vec<Command> {
        let n = self.folders.rows.len();
        if let Some(t) = self.nav_target(&action, self.folders.selected, n) {
            self.folders.selected = t.clamp(0, n.saturating_sub(1) as isize) as usize;
            return vec![];
        }
        match action {
            Action::NextAccount => {
                if !self.accounts.is_empty() {
                    self.folders.account = (self.folders.account + 1) % self.accounts.len();
                    self.folders.rows.clear();
                    self.folders.plan = None;
                    self.folders.selected = 0;
                    self.folders.loaded = false;
                }
                self.load_pane(PaneId::Folders)
            }
            Action::Back => self.go(PaneId::Dashboard),
            Action::ToggleSync | Action::SetSent => {
                let Some(acct) = self.accounts.get(self.folders.account).cloned() else {
                    return vec![];
                };
                let Some(row) = self.folders.rows.get(self.folders.selected).cloned() else {
                    return vec![];
                };
                if action == Action::SetSent {
                    return vec![Command::SetSent {
                        account_id: acct.id,
                        account: acct.name,
                        folder: row.name,
                    }];
                }
                // Exactly the folders that sync, as `folders --sync A,B` takes them.
                let mut names: Vec<String> = self
                    .folders
                    .rows
                    .iter()
                    .filter(|f| f.sync_enabled && f.name != row.name)
                    .map(|f| f.name.clone())
                    .collect();
                if !row.sync_enabled {
                    names.push(row.name.clone());
                }
                vec![Command::SetFolderSync {
                    account_id: acct.id,
                    account: acct.name,
                    names,
                }]
            }
            Action::LoadFolders => match self
                .accounts
                .get(self.folders.account)
                .map(|a| a.name.clone())
            {
                Some(account) => {
                    let job = self.next_generation();
                    self.toast(format!("reading the folder list of {account}…"), false);
                    vec![Command::RefreshFolders { job, account }]
                }
                None => vec![],
            },
            Action::Plan => {
                let p = self.folders.plan.clone().unwrap_or_default();
                self.start_plan(p.since, p.unread_only)
            }
            Action::PlanUnreadOnly => {
                let p = self.folders.plan.clone().unwrap_or_default();
                self.start_plan(p.since, !p.unread_only)
            }
            Action::PlanSince => {
                let cur = self.folders.plan.as_ref().and_then(|p| p.since.clone());
                self.prompt = Some(Prompt {
                    label: "Plan: only mail since (YYYY-MM-DD)".into(),
                    value: cur.unwrap_or_default(),
                    then: PromptFor::PlanSince,
                });
                vec![]
            }
            _ => vec![],
        }
    }

    fn update_triage(&mut self, action: Action) -> Vec<Command> {
        if let Some(t) = self.nav_target(&action, self.triage.selected, self.triage.total) {
            let mut cmds = Vec::new();
            if let Some(offset) = self.triage.move_to(t, self.view_rows()) {
                let generation = self.next_generation();
                self.triage.generation = generation;
                cmds.push(Command::LoadTriage {
                    generation,
                    offset: offset as i64,
                    limit: PAGE as i64,
                });
            }
            cmds.extend(self.load_preview());
            return cmds;
        }
        let current = self.triage.current().cloned();
        match action {
            Action::Open => match current {
                Some(m) => self.open_message(m.id, PaneId::Triage),
                None => vec![],
            },
            Action::Back => self.go(PaneId::Dashboard),
            Action::Pair => match current {
                Some(m) => {
                    let generation = self.next_generation();
                    self.picker = Some(Picker {
                        message_id: m.id,
                        suggestions: self.suggestions.get(&m.id).cloned().unwrap_or_default(),
                        generation,
                        ..Default::default()
                    });
                    vec![
                        Command::LoadPicker {
                            generation,
                            query: String::new(),
                        },
                        Command::LoadSuggestions { id: m.id },
                    ]
                }
                None => vec![],
            },
            Action::AddCustomer => match current {
                Some(m) => vec![Command::TriageAddCustomer { id: m.id }],
                None => vec![],
            },
            Action::Undo => vec![Command::TriageUndo],
            Action::Block | Action::BlockDomain => match current {
                // First ask how many cached messages it affects, then confirm.
                Some(m) => vec![Command::TriageBlockPlan {
                    id: m.id,
                    domain: action == Action::BlockDomain,
                }],
                None => vec![],
            },
            Action::Delete => {
                if let Some(m) = current {
                    self.dialog = Some(Dialog {
                        text: format!(
                            "Delete \"{}\" (move it to Trash on the server)? Undo brings it back.",
                            crate::mail::sanitize::clean_line(m.subject.as_deref().unwrap_or(""))
                        ),
                        then: Pending::Delete { id: m.id },
                    });
                }
                vec![]
            }
            _ => vec![],
        }
    }

    fn start_plan(&mut self, since: Option<String>, unread_only: bool) -> Vec<Command> {
        let Some(account) = self
            .accounts
            .get(self.folders.account)
            .map(|a| a.name.clone())
        else {
            return vec![];
        };
        let job = self.next_generation();
        self.folders.plan = Some(PlanView {
            job,
            since: since.clone(),
            unread_only,
            result: None,
        });
        vec![Command::Plan {
            job,
            account,
            since,
            unread_only,
        }]
    }

    fn update_picker(&mut self, action: Action) -> Vec<Command> {
        let Some(p) = self.picker.as_mut() else {
            return vec![];
        };
        match action {
            Action::Input(c) => p.query.push(c),
            Action::Backspace => {
                p.query.pop();
            }
            Action::Up => {
                p.selected = p.selected.saturating_sub(1);
                return vec![];
            }
            Action::Down => {
                p.selected = (p.selected + 1).min(p.len().saturating_sub(1));
                return vec![];
            }
            Action::Dismiss => {
                self.picker = None;
                return vec![];
            }
            Action::Confirm => {
                let chosen = p.chosen();
                let id = p.message_id;
                self.picker = None;
                return match chosen {
                    Some((customer_id, _)) => vec![Command::TriagePair { id, customer_id }],
                    None => vec![],
                };
            }
            _ => return vec![],
        }
        p.selected = 0;
        let generation = self.next_generation();
        if let Some(p) = self.picker.as_mut() {
            p.generation = generation;
        }
        let query = self
            .picker
            .as_ref()
            .map(|p| p.query.clone())
            .unwrap_or_default();
        vec![Command::LoadPicker { generation, query }]
    }

    fn update_prompt(&mut self, action: Action) -> Vec<Command> {
        let Some(p) = self.prompt.as_mut() else {
            return vec![];
        };
        match action {
            Action::Input(c) => p.value.push(c),
            Action::Backspace => {
                p.value.pop();
            }
            Action::Dismiss => self.prompt = None,
            Action::Confirm => {
                let p = self.prompt.take();
                if let Some(p) = p {
                    let path = p.value.trim().to_string();
                    if path.is_empty() {
                        return vec![];
                    }
                    return vec![match p.then {
                        PromptFor::SaveAttachment { id, index } => {
                            Command::SaveAttachment { id, index, path }
                        }
                        PromptFor::QuarantineSave { id } => Command::QuarantineSave { id, path },
                        PromptFor::PlanSince => {
                            let plan = self.folders.plan.clone().unwrap_or_default();
                            return self.start_plan(Some(path), plan.unread_only);
                        }
                    }];
                }
            }
            _ => {}
        }
        vec![]
    }

    fn open_message(&mut self, id: i64, from: PaneId) -> Vec<Command> {
        let generation = self.next_generation();
        self.message = MessagePane {
            generation,
            back: Some(from),
            ..Default::default()
        };
        self.pane = PaneId::Message;
        vec![Command::LoadMessage { generation, id }]
    }

    fn update_message(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::Back => {
                let back = self.message.back.unwrap_or(PaneId::Triage);
                self.go(back)
            }
            Action::Up => {
                self.message.scroll = self.message.scroll.saturating_sub(1);
                vec![]
            }
            Action::Down => {
                self.message.scroll = self.message.scroll.saturating_add(1);
                vec![]
            }
            Action::PageUp => {
                self.message.scroll = self.message.scroll.saturating_sub(self.view_rows() as u16);
                vec![]
            }
            Action::PageDown => {
                self.message.scroll = self.message.scroll.saturating_add(self.view_rows() as u16);
                vec![]
            }
            Action::Top => {
                self.message.scroll = 0;
                vec![]
            }
            Action::Reply | Action::ReplyAll => self.start_reply(action == Action::ReplyAll),
            Action::NextAttachment => {
                let n = self
                    .message
                    .detail
                    .as_ref()
                    .map(|d| d.attachments.len())
                    .unwrap_or(0);
                if n > 0 {
                    self.message.attachment = (self.message.attachment + 1) % n;
                }
                vec![]
            }
            Action::SaveAttachment => {
                let Some(d) = &self.message.detail else {
                    return vec![];
                };
                match d.attachments.get(self.message.attachment) {
                    Some(a) => {
                        let name = a
                            .name
                            .as_deref()
                            .map(crate::mail::sanitize::clean_line)
                            .map(|n| n.replace(['/', '\\'], "_"))
                            .filter(|n| !n.trim().is_empty() && n != "." && n != "..")
                            .unwrap_or_else(|| format!("attachment-{}", a.index));
                        self.prompt = Some(Prompt {
                            label: format!("Save attachment [{}] to", a.index),
                            value: name,
                            then: PromptFor::SaveAttachment {
                                id: d.summary.id,
                                index: a.index,
                            },
                        });
                    }
                    None => self.toast("this message has no attachments", true),
                }
                vec![]
            }
            _ => vec![],
        }
    }

    fn update_customers(&mut self, action: Action) -> Vec<Command> {
        let c = &mut self.customers;
        if c.searching {
            match action {
                Action::Input(ch) => c.query.push(ch),
                Action::Backspace => {
                    c.query.pop();
                }
                Action::Back => {
                    c.searching = false;
                    return vec![];
                }
                _ => return vec![],
            }
            c.list.selected = 0;
            c.list.offset = 0;
            return self.load_pane(PaneId::Customers);
        }
        let (sel, total) = (c.list.selected, c.list.total);
        if let Some(t) = self.nav_target(&action, sel, total) {
            let view = self.view_rows();
            if let Some(offset) = self.customers.list.move_to(t, view) {
                let generation = self.next_generation();
                self.customers.list.generation = generation;
                return vec![Command::LoadCustomers {
                    generation,
                    query: self.customers.query.clone(),
                    offset: offset as i64,
                    limit: PAGE as i64,
                }];
            }
            return vec![];
        }
        match action {
            Action::Search => {
                self.customers.searching = true;
                vec![]
            }
            Action::Open => {
                let id = self.customers.list.current().map(|r| r.id);
                self.customers.timeline_of = id;
                self.customers.timeline = Paged::default();
                match id {
                    Some(customer_id) => {
                        let generation = self.next_generation();
                        self.customers.timeline.generation = generation;
                        vec![Command::LoadTimeline {
                            generation,
                            customer_id,
                            offset: 0,
                            limit: PAGE as i64,
                        }]
                    }
                    None => vec![],
                }
            }
            Action::Back => {
                if self.customers.timeline_of.take().is_some() {
                    vec![]
                } else {
                    self.go(PaneId::Dashboard)
                }
            }
            _ => vec![],
        }
    }

    fn update_compose(&mut self, action: Action) -> Vec<Command> {
        let n = COMPOSE_FIELDS.len();
        let body = n - 1;
        let choices = from_choices(&self.accounts).len().max(1);
        let c = &mut self.compose;
        let mut typed = false;
        match action {
            Action::Back => return self.go(PaneId::Dashboard),
            Action::NextField => c.field = (c.field + 1) % n,
            Action::PrevField => c.field = (c.field + n - 1) % n,
            Action::Input(ch) if c.field > 0 => {
                c.values[c.field].push(ch);
                typed = true;
            }
            Action::ChoiceNext if c.field == 0 => c.from = (c.from + 1) % choices,
            Action::ChoicePrev if c.field == 0 => c.from = (c.from + choices - 1) % choices,
            Action::Newline if c.field == body => c.values[body].push('\n'),
            Action::Newline => c.field = (c.field + 1) % n,
            Action::Backspace if c.field > 0 => {
                c.values[c.field].pop();
                typed = true;
            }
            Action::Complete if matches!(c.field, F_TO | F_CC) => {
                if let Some((_, email)) = c.suggestions.first().cloned() {
                    let v = &mut c.values[c.field];
                    let keep = v.rfind(',').map(|i| i + 1).unwrap_or(0);
                    v.truncate(keep);
                    if keep > 0 {
                        v.push(' ');
                    }
                    v.push_str(&email);
                    v.push_str(", ");
                    c.suggestions.clear();
                }
            }
            Action::Send => return self.send_draft(),
            Action::Editor => {
                return vec![Command::EditBody {
                    text: self.compose.values[body].clone(),
                }];
            }
            _ => {}
        }
        let c = &mut self.compose;
        if !matches!(c.field, F_TO | F_CC) {
            c.suggestions.clear();
            return vec![];
        }
        if !typed {
            return vec![];
        }
        // Complete the address being typed (after the last comma) from the customer book.
        let token = c.values[c.field]
            .rsplit(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if token.is_empty() {
            c.suggestions.clear();
            return vec![];
        }
        let generation = self.next_generation();
        self.compose.completion_generation = generation;
        vec![Command::LoadCompletions {
            generation,
            prefix: token,
        }]
    }

    fn send_draft(&mut self) -> Vec<Command> {
        let c = &self.compose;
        if c.sending {
            return vec![];
        }
        let Some((account, from)) = from_account(&self.accounts, c.from) else {
            self.toast("no account to send from: add one in Setup", true);
            return vec![];
        };
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        };
        let body_field = COMPOSE_FIELDS.len() - 1;
        let to = match &c.prefilled_to {
            Some(p) if *p == c.values[F_TO] => vec![],
            _ => list(&c.values[F_TO]),
        };
        let draft = Draft {
            account,
            from,
            to,
            cc: list(&c.values[F_CC]),
            subject: c.values[3].clone(),
            body: c.values[body_field].clone(),
            attachments: list(&c.values[4]),
            reply_to: c.reply_to,
            all: c.reply_all,
        };
        self.compose.sending = true;
        self.toast("sending…", false);
        vec![Command::Send {
            draft: Box::new(draft),
        }]
    }

    /// Reply from the message view: compose prefilled; `reply ID` quotes and threads it.
    fn start_reply(&mut self, all: bool) -> Vec<Command> {
        let Some(d) = self.message.detail.clone() else {
            return vec![];
        };
        let s = &d.summary;
        let account = d
            .locations
            .first()
            .and_then(|l| l.split('/').next())
            .and_then(|n| self.accounts.iter().position(|a| a.name == n));
        let from = account
            .map(|i| {
                from_choices(&self.accounts)
                    .iter()
                    .position(|c| c.starts_with(&format!("{} <", self.accounts[i].name)))
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let subject = s.subject.clone().unwrap_or_default();
        let subject = if subject.to_ascii_lowercase().starts_with("re:") {
            subject
        } else {
            format!("Re: {subject}")
        };
        let to = s.from_addr.clone().unwrap_or_default();
        let mut values = vec![String::new(); COMPOSE_FIELDS.len()];
        values[F_TO] = to.clone();
        values[3] = crate::mail::sanitize::clean_line(&subject);
        self.compose = ComposeForm {
            field: COMPOSE_FIELDS.len() - 1,
            from,
            values,
            reply_to: Some(s.id),
            prefilled_to: Some(to),
            reply_all: all,
            ..Default::default()
        };
        self.go(PaneId::Compose)
    }

    fn update_outbox(&mut self, action: Action) -> Vec<Command> {
        if let Some(t) = self.nav_target(&action, self.outbox.selected, self.outbox.total) {
            if let Some(offset) = self.outbox.move_to(t, self.view_rows()) {
                let generation = self.next_generation();
                self.outbox.generation = generation;
                return vec![Command::LoadOutbox {
                    generation,
                    offset: offset as i64,
                    limit: PAGE as i64,
                }];
            }
            return vec![];
        }
        match action {
            Action::Retry | Action::CancelItem => match self.outbox.current().map(|o| o.id) {
                Some(id) if action == Action::Retry => vec![Command::OutboxRetry { id }],
                Some(id) => vec![Command::OutboxCancel { id }],
                None => vec![],
            },
            Action::Resend | Action::DropItem => {
                if let Some(id) = self.outbox.current().map(|o| o.id) {
                    let (text, then) = if action == Action::Resend {
                        (
                            format!(
                                "Send #{id} again? If the first attempt did arrive, the recipient gets it twice."
                            ),
                            Pending::Resend { id },
                        )
                    } else {
                        (
                            format!("Give up on #{id} and assume it was delivered?"),
                            Pending::Drop { id },
                        )
                    };
                    self.dialog = Some(Dialog { text, then });
                }
                vec![]
            }
            Action::Back => self.go(PaneId::Dashboard),
            _ => vec![],
        }
    }

    fn update_log(&mut self, action: Action) -> Vec<Command> {
        if self.log.searching {
            match action {
                Action::Input(ch) => self.log.search.push(ch),
                Action::Backspace => {
                    self.log.search.pop();
                }
                Action::Back => {
                    self.log.searching = false;
                    return vec![];
                }
                _ => return vec![],
            }
            self.log.events.selected = 0;
            self.log.events.offset = 0;
            return self.load_pane(PaneId::Log);
        }
        let view = self.view_rows();
        let list_total = if self.log.quarantine {
            self.log.quar.total
        } else {
            self.log.events.total
        };
        let selected = if self.log.quarantine {
            self.log.quar.selected
        } else {
            self.log.events.selected
        };
        if let Some(t) = self.nav_target(&action, selected, list_total) {
            let moved = if self.log.quarantine {
                self.log.quar.move_to(t, view)
            } else {
                self.log.events.move_to(t, view)
            };
            if let Some(offset) = moved {
                let generation = self.next_generation();
                if self.log.quarantine {
                    self.log.quar.generation = generation;
                    return vec![Command::LoadQuarantine {
                        generation,
                        offset: offset as i64,
                        limit: PAGE as i64,
                    }];
                }
                self.log.events.generation = generation;
                return vec![Command::LoadEvents {
                    generation,
                    filter: self.log.filter(),
                    offset: offset as i64,
                    limit: PAGE as i64,
                }];
            }
            return vec![];
        }
        match action {
            Action::CycleLevel => {
                self.log.level = (self.log.level + 3) % 4; // error → debug → info → warn → error
                self.log.events.selected = 0;
                self.log.events.offset = 0;
                self.load_pane(PaneId::Log)
            }
            Action::Search => {
                self.log.searching = true;
                vec![]
            }
            Action::ToggleQuarantine => {
                self.log.quarantine = !self.log.quarantine;
                self.load_pane(PaneId::Log)
            }
            Action::QuarantineRetry | Action::QuarantineSkip | Action::QuarantineSave
                if self.log.quarantine =>
            {
                let Some(id) = self.log.quar.current().map(|q| q.id) else {
                    return vec![];
                };
                match action {
                    Action::QuarantineRetry => {
                        self.toast(format!("fetching quarantined message {id} again…"), false);
                        vec![Command::QuarantineRetry { id }]
                    }
                    Action::QuarantineSkip => vec![Command::QuarantineSkip { id }],
                    _ => {
                        self.prompt = Some(Prompt {
                            label: format!("Save quarantined message {id} to"),
                            value: format!("quarantine-{id}.eml"),
                            then: PromptFor::QuarantineSave { id },
                        });
                        vec![]
                    }
                }
            }
            Action::Back => self.go(PaneId::Dashboard),
            _ => vec![],
        }
    }

    /// Applies an answer from the I/O layer; returns follow-up commands.
    pub fn apply(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::DbChanged => return self.reload(),
            Data::Dashboard(status, accounts) => {
                let changed = accounts != self.accounts;
                self.accounts = accounts;
                match status {
                    Ok(s) => {
                        self.dashboard.selected = self
                            .dashboard
                            .selected
                            .min(s.accounts.len().saturating_sub(1));
                        self.dashboard.status = Some(s);
                        self.dashboard.error = None;
                    }
                    Err(e) => self.dashboard.error = Some(e),
                }
                if changed && self.pane == PaneId::Folders && !self.folders.loaded {
                    return self.load_pane(PaneId::Folders);
                }
            }
            Data::Triage(p) => {
                if self.triage.apply(p) {
                    return self.load_preview();
                }
            }
            Data::Folders(generation, r) => {
                if generation == self.folders.generation {
                    self.folders.loaded = true;
                    match r {
                        Ok(rows) => {
                            self.folders.selected =
                                self.folders.selected.min(rows.len().saturating_sub(1));
                            self.folders.rows = rows;
                            self.folders.error = None;
                        }
                        Err(e) => self.folders.error = Some(e),
                    }
                }
            }
            Data::Message(generation, r) => {
                let mut fetch = None;
                if self.message.generation == generation
                    && let Ok(Some(d)) = r.as_ref()
                    && !d.body_fetched
                    && self.message.fetching != Some(d.summary.id)
                {
                    self.message.fetching = Some(d.summary.id);
                    fetch = Some(d.summary.id);
                }
                for pane in [&mut self.message, &mut self.preview] {
                    if pane.generation == generation {
                        pane.loaded = true;
                        match r.as_ref() {
                            Ok(Some(d)) => {
                                pane.detail = Some(d.clone());
                                pane.error = None;
                            }
                            Ok(None) => {
                                pane.detail = None;
                                pane.error = Some(AppError::needs_user(
                                    "the message is gone",
                                    "it was removed from the cache since the list was read",
                                    "go back and pick another",
                                ));
                            }
                            Err(e) => pane.error = Some(e.clone()),
                        }
                    }
                }
                if let Some(id) = fetch {
                    return vec![Command::FetchBody { id }];
                }
            }
            Data::Customers(p) => {
                self.customers.list.apply(p);
            }
            Data::Timeline(p) => {
                self.customers.timeline.apply(p);
            }
            Data::Outbox(p) => {
                self.outbox.apply(p);
            }
            Data::Events(p) => {
                self.log.events.apply(p);
            }
            Data::Quarantine(p) => {
                self.log.quar.apply(p);
            }
            Data::CheckStep(job, step) => {
                for run in [&mut self.setup.run, &mut self.dashboard.run]
                    .into_iter()
                    .flatten()
                {
                    if run.job == job {
                        run.steps.push(step.clone());
                    }
                }
            }
            Data::CheckDone(job, report) => {
                for run in [&mut self.setup.run, &mut self.dashboard.run]
                    .into_iter()
                    .flatten()
                {
                    if run.job == job {
                        match &report {
                            Ok(r) => {
                                run.done = Some(r.ok);
                                // The report is the truth; live steps were a preview of it.
                                run.steps = r.steps.clone();
                            }
                            Err(e) => {
                                run.done = Some(false);
                                run.error = Some(e.clone());
                            }
                        }
                    }
                }
            }
            Data::Plan(job, r) => {
                if let Some(p) = self.folders.plan.as_mut()
                    && p.job == job
                {
                    p.result = Some(r);
                }
            }
            Data::Picker(generation, r) => {
                if let Some(p) = self.picker.as_mut()
                    && p.generation == generation
                {
                    match r {
                        Ok(rows) => {
                            p.results = rows;
                            p.selected = p.selected.min(p.len().saturating_sub(1));
                        }
                        Err(e) => self.toast(e.summary, true),
                    }
                }
            }
            Data::BlockPlan(id, domain, r) => match r {
                Ok(text) => {
                    self.dialog = Some(Dialog {
                        text,
                        then: Pending::Block { id, domain },
                    })
                }
                Err(e) => self.toast(format!("{} — fix: {}", e.summary, e.fix), true),
            },
            Data::TriageDone(r) => {
                self.apply(Data::Notice(r));
                let mut c = self.load_pane(PaneId::Triage);
                c.push(Command::LoadDashboard);
                return c;
            }
            Data::Suggestions(list) => {
                for (id, s) in list {
                    if let Some(p) = self.picker.as_mut()
                        && p.message_id == id
                    {
                        p.suggestions = s.clone();
                    }
                    self.suggestions.insert(id, s);
                }
            }
            Data::Sent(r) => {
                let ok = r.is_ok();
                self.compose.sending = false;
                self.apply(Data::Notice(r));
                if ok {
                    // Watch it go through the outbox's states.
                    self.compose = ComposeForm {
                        values: vec![String::new(); COMPOSE_FIELDS.len()],
                        ..Default::default()
                    };
                    let mut c = self.go(PaneId::Outbox);
                    c.push(Command::LoadDashboard);
                    return c;
                }
            }
            Data::AccountRemoved(r) => {
                let ok = r.is_ok();
                self.apply(Data::Notice(r));
                if ok {
                    let mut c = self.reload();
                    c.push(Command::RestartSync);
                    return c;
                }
            }
            Data::BodyFetched(id, r) => {
                let current = self.message.detail.as_ref().map(|d| d.summary.id);
                match r {
                    Ok(()) if current == Some(id) => {
                        let generation = self.next_generation();
                        self.message.generation = generation;
                        return vec![Command::LoadMessage { generation, id }];
                    }
                    Ok(()) => {}
                    Err(e) => {
                        self.toast(format!("{} — fix: {}", e.summary, e.fix), true);
                    }
                }
            }
            Data::QuarantineDone(r) => {
                self.apply(Data::Notice(r));
                return self.load_pane(PaneId::Log);
            }
            Data::FoldersChanged(account_id, r) => {
                let ok = r.is_ok();
                self.apply(Data::Notice(r));
                if ok {
                    let mut c = self.load_pane(PaneId::Folders);
                    c.push(Command::KickSync { account_id });
                    return c;
                }
            }
            Data::Notice(r) => match r {
                Ok(text) => self.toast(text, false),
                Err(e) => self.toast(format!("{} — fix: {}", e.summary, e.fix), true),
            },
            Data::Completions(generation, r) => {
                if generation == self.compose.completion_generation {
                    match r {
                        Ok(s) => self.compose.suggestions = s,
                        Err(e) => self.toast(e.summary, true),
                    }
                }
            }
            Data::Edited(r) => match r {
                Ok(text) => {
                    let body = COMPOSE_FIELDS.len() - 1;
                    self.compose.values[body] = text;
                    self.compose.field = body;
                }
                Err(e) => self.toast(format!("{} — {}", e.summary, e.fix), true),
            },
            Data::Saved(job, r) => {
                if self.setup.saving == Some(job) {
                    self.setup.saving = None;
                    let ok = r.is_ok();
                    if let Ok(name) = &r {
                        self.toast(format!("added account {name}"), false);
                    }
                    self.setup.message = Some(r);
                    if ok {
                        self.setup = SetupForm {
                            message: self.setup.message.take(),
                            ..SetupForm::default()
                        };
                        self.pane = PaneId::Dashboard;
                        let mut c = self.reload();
                        c.push(Command::RestartSync);
                        return c;
                    }
                }
            }
        }
        vec![]
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
