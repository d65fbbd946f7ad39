//! The console's state types: one per pane, the paged list window, dialogs and prompts.

use secrecy::{ExposeSecret, SecretString};

use crate::error::AppError;
use crate::ops::accounts::{Report, Step};
use crate::ops::compose::{Draft as SavedDraft, DraftKind, Uploaded};
use crate::ops::customers::CustomerRow;
use crate::ops::folders::FolderEntry;
use crate::ops::logs::{EventFilter, EventRow};
use crate::ops::mailbox::{Change, IndexRow, Source, TreeAccount};
use crate::ops::messages::MessageView;
use crate::ops::outbox::Item;
use crate::ops::quarantine::QuarantineRow;
use crate::ops::status::Status;
use crate::ops::sync::AccountPlan;
use crate::ops::triage::MessageSummary;
use crate::tui::action::{AccountForm, PaneId};

/// Rows fetched per page request: several screens, so scrolling rarely waits on the store.
pub const PAGE: usize = 200;

/// Answers from the I/O layer.
#[derive(Debug)]
pub enum Data {
    Dashboard(Result<Status, AppError>, Vec<AccountInfo>),
    Triage(Page<MessageSummary>),
    Folders(u64, Result<Vec<FolderEntry>, AppError>),
    Message(u64, Box<Result<MessageView, AppError>>),
    Customers(Page<CustomerRow>),
    Timeline(Page<MessageSummary>),
    Outbox(Page<Item>),
    Events(Page<EventRow>),
    Quarantine(Page<QuarantineRow>),
    CheckStep(u64, Step),
    CheckDone(u64, Result<Report, AppError>),
    /// What an OAuth2 sign-in asks of the person (the code and where to enter it), as it
    /// comes; then how it ended.
    LoginStep(u64, String),
    LoginDone(u64, Result<String, AppError>),
    Saved(u64, Result<String, AppError>),
    Completions(u64, Result<Vec<(String, String)>, AppError>),
    /// The body came back from $EDITOR.
    Edited(Result<String, AppError>),
    /// A result to tell the operator about (ok text, or the error with its fix).
    Notice(Result<String, AppError>),
    /// The first-sync plan of one account (`sync NAME --plan`).
    Plan(u64, Result<AccountPlan, AppError>),
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
    /// `account edit --since/--process` answered: tell, and re-read the account's scope.
    ScopeApplied(Result<String, AppError>),
    /// Another process committed to the database.
    DbChanged,
    /// Matching caught up in the background (a change it made comes back as `DbChanged`).
    Matched(Result<(), AppError>),
    /// The mail pane's account and folder tree.
    MailTree(u64, Result<Vec<TreeAccount>, AppError>),
    /// A window of the mail index.
    MailIndex(Page<IndexRow>),
    /// The messages of a thread (generation, thread id).
    Thread(u64, i64, Result<Vec<IndexRow>, AppError>),
    /// A message's queued changes.
    Changes(u64, Result<Vec<Change>, AppError>),
    /// A flag, move, delete or archive finished locally (and was pushed, or stays queued).
    MailActed(Result<MailActed, AppError>),
    /// The body could not be fetched for a reason that may pass (the server unreachable): the
    /// next try is in `secs` seconds.
    BodyWaiting(i64, AppError, u64),
    /// The compose form was saved as draft `id`.
    DraftSaved(Result<i64, AppError>),
    /// The draft's copy is in the Drafts folder.
    DraftUploaded(Result<Uploaded, AppError>),
    /// A draft was discarded (the text says what happened to its server copy).
    DraftForgotten(Result<String, AppError>),
    /// The operator's saved drafts.
    Drafts(Result<Vec<SavedDraft>, AppError>),
    /// Paths completing what is typed in the Attach field.
    PathCompletions(u64, Vec<String>),
    /// `account show` answered for the edit form (its job).
    EditLoaded(
        u64,
        /// The account, and whether this operator may change it (else the form is read-only).
        Box<Result<(crate::ops::accounts::AccountView, bool), AppError>>,
    ),
    /// A page of the protocol trace, and every visible account's switch.
    Trace(
        Page<crate::ops::trace::TraceEntry>,
        Vec<crate::ops::trace::TraceState>,
    ),
    /// A job ended with nothing to tell (its question went away).
    Idle,
}

/// A local change to a message, done.
#[derive(Debug, Clone)]
pub struct MailActed {
    pub text: String,
    /// The account whose queue holds it, when it is not on the server yet (its sync is
    /// asked to run now).
    pub queued_for: Option<String>,
    /// Why the immediate push failed, if it was tried.
    pub not_pushed: Option<AppError>,
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
    /// The sync scope in config.toml (`account edit --since/--process`): none = all history.
    pub since: Option<String>,
    pub unread_only: bool,
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
    pub(crate) fn apply(&mut self, page: Page<T>) -> bool {
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
    pub(crate) fn move_to(&mut self, target: isize, view: usize) -> Option<usize> {
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
    /// The stored account it tests (the dashboard shows it only under that account).
    pub account: Option<String>,
    pub steps: Vec<Step>,
    pub done: Option<bool>,
    pub error: Option<AppError>,
}

impl CheckRun {
    pub(crate) fn new(job: u64, title: String) -> CheckRun {
        CheckRun {
            job,
            title,
            account: None,
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
    /// The SMTP AUTH mechanism: one of SMTP_AUTHS.
    SmtpAuth,
    /// The OAuth2 sign-in flow: one of OAUTH_FLOWS.
    Flow,
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
    ("OAuth2 sign-in", FieldKind::Toggle),
    ("OAuth client id", FieldKind::Text),
    // The edit form's own: the sync and Sent-copy settings of a stored account.
    ("Since", FieldKind::Text),
    ("Unread only", FieldKind::Toggle),
    ("Mark read", FieldKind::Toggle),
    ("Poll (secs)", FieldKind::Text),
    ("Prefetch bytes", FieldKind::Text),
    ("Sync folders", FieldKind::Text),
    ("Sent copy", FieldKind::Toggle),
    ("Display name", FieldKind::Text),
    ("Enabled", FieldKind::Toggle),
    ("SMTP auth", FieldKind::SmtpAuth),
    ("System SMTP", FieldKind::Toggle),
    ("Client secret", FieldKind::Secret),
    ("OAuth tenant", FieldKind::Text),
    ("OAuth flow", FieldKind::Flow),
    ("Auth URL", FieldKind::Text),
    ("Token URL", FieldKind::Text),
    ("Device URL", FieldKind::Text),
    ("Scopes", FieldKind::Text),
    ("Password cmd", FieldKind::Text),
    ("Revoke URL", FieldKind::Text),
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
pub const F_OAUTH: usize = 15;
pub const F_CLIENT_ID: usize = 16;
pub const F_SINCE: usize = 17;
pub const F_UNREAD: usize = 18;
pub const F_MARK_READ: usize = 19;
pub const F_POLL: usize = 20;
pub const F_PREFETCH: usize = 21;
pub const F_FOLDERS: usize = 22;
pub const F_SENT_COPY: usize = 23;
pub const F_DISPLAY: usize = 24;
pub const F_ENABLED: usize = 25;
pub const F_SMTP_AUTH: usize = 26;
pub const F_SYSTEM_SMTP: usize = 27;
pub const F_CLIENT_SECRET: usize = 28;
pub const F_TENANT: usize = 29;
pub const F_FLOW: usize = 30;
pub const F_AUTH_URL: usize = 31;
pub const F_TOKEN_URL: usize = 32;
pub const F_DEVICE_URL: usize = 33;
pub const F_SCOPES: usize = 34;
pub const F_PW_COMMAND: usize = 35;
pub const F_REVOKE_URL: usize = 36;

/// The edit form's fields shown only while OAuth2 sign-in is on.
pub const OAUTH_ONLY: &[usize] = &[
    F_CLIENT_ID,
    F_CLIENT_SECRET,
    F_TENANT,
    F_FLOW,
    F_AUTH_URL,
    F_TOKEN_URL,
    F_DEVICE_URL,
    F_REVOKE_URL,
    F_SCOPES,
];

/// The OAuth2 flows as `account edit --oauth-flow` takes them.
pub const OAUTH_FLOWS: [&str; 2] = ["device", "browser"];

/// The SMTP AUTH choices as `account edit --smtp-auth` takes them (`default`: follow the auth
/// kind).
pub const SMTP_AUTHS: [&str; 6] = [
    "default",
    "plain",
    "login",
    "xoauth2",
    "oauthbearer",
    "none",
];

/// The fields of a new account's form, in Tab order.
pub const NEW_ORDER: &[usize] = &[
    F_PRESET,
    F_NAME,
    F_EMAIL,
    F_LOGIN,
    F_PASSWORD,
    F_IMAP_HOST,
    F_IMAP_PORT,
    F_IMAP_SEC,
    F_SMTP_HOST,
    F_SMTP_PORT,
    F_SMTP_SEC,
    F_CA,
    F_INSECURE,
    F_ALIASES,
    F_SHARE,
    F_OAUTH,
    F_CLIENT_ID,
];
/// The fields of the edit form, in Tab order (a preset only fills in a new account; a changed
/// name renames it).
pub const EDIT_ORDER: &[usize] = &[
    F_NAME,
    F_DISPLAY,
    F_ENABLED,
    F_EMAIL,
    F_LOGIN,
    F_PASSWORD,
    F_PW_COMMAND,
    F_IMAP_HOST,
    F_IMAP_PORT,
    F_IMAP_SEC,
    F_SMTP_HOST,
    F_SMTP_PORT,
    F_SMTP_SEC,
    F_SMTP_AUTH,
    F_SYSTEM_SMTP,
    F_CA,
    F_INSECURE,
    F_ALIASES,
    F_SHARE,
    F_OAUTH,
    F_CLIENT_ID,
    F_CLIENT_SECRET,
    F_TENANT,
    F_FLOW,
    F_AUTH_URL,
    F_TOKEN_URL,
    F_DEVICE_URL,
    F_REVOKE_URL,
    F_SCOPES,
    F_SINCE,
    F_UNREAD,
    F_MARK_READ,
    F_POLL,
    F_PREFETCH,
    F_FOLDERS,
    F_SENT_COPY,
];

/// The stored account an edit form changes: its name and the values it opened with (only what
/// differs is sent to `account edit`).
#[derive(Debug, Clone, PartialEq)]
pub struct EditOf {
    pub name: String,
    pub job: u64,
    /// None until `account show` answered.
    pub original: Option<Vec<String>>,
    /// Set when this operator may only look (the account is shared with them): its owner.
    pub read_only: Option<String>,
}

pub(crate) const SECURITIES: [&str; 3] = ["tls", "starttls", "none"];

#[derive(Clone)]
pub struct SetupForm {
    pub field: usize,
    pub values: Vec<String>,
    pub password: SecretString,
    /// A new client secret of the OAuth2 app registration (edit form; sealed on save).
    pub client_secret: SecretString,
    /// 0 = custom; n = presets::PRESETS[n-1].
    pub preset: usize,
    pub run: Option<CheckRun>,
    pub saving: Option<u64>,
    pub message: Option<Result<String, AppError>>,
    /// Editing a stored account (else a new one).
    pub edit: Option<EditOf>,
    /// What the chosen preset filled in (field, value): choosing another clears what is
    /// still as the preset left it.
    pub filled: Vec<(usize, String)>,
    /// The edited account gets its password from a command (which is never shown).
    pub command_set: bool,
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
        values[F_OAUTH] = "no".into();
        SetupForm {
            field: F_PRESET,
            values,
            password: SecretString::from(String::new()),
            client_secret: SecretString::from(String::new()),
            preset: 0,
            run: None,
            saving: None,
            message: None,
            edit: None,
            filled: Vec::new(),
            command_set: false,
        }
    }
}

impl SetupForm {
    /// The fields shown, in Tab order: the edit form shows the OAuth2 settings only while
    /// OAuth2 sign-in is on, the password command only while it is off.
    pub fn order(&self) -> Vec<usize> {
        if self.edit.is_none() {
            return NEW_ORDER.to_vec();
        }
        let oauth = self.values[F_OAUTH] == "yes";
        EDIT_ORDER
            .iter()
            .copied()
            .filter(|f| match oauth {
                true => *f != F_PW_COMMAND,
                false => !OAUTH_ONLY.contains(f),
            })
            .collect()
    }
    /// Moves the focus `step` fields on (wrapping), in Tab order.
    pub(crate) fn move_field(&mut self, step: isize) {
        let order = self.order();
        let n = order.len() as isize;
        let at = order.iter().position(|f| *f == self.field).unwrap_or(0) as isize;
        self.field = order[((at + step) % n + n) as usize % order.len()];
    }
    /// Whether the focused field takes typed text (the footer says so).
    pub fn typing(&self) -> bool {
        let kind = SETUP_FIELDS[self.field].1;
        matches!(kind, FieldKind::Text | FieldKind::Secret)
    }
    /// Whether this is the edit form of an account shared with this operator (look, no change).
    pub fn read_only(&self) -> bool {
        self.edit.as_ref().is_some_and(|e| e.read_only.is_some())
    }
    /// The secret a Secret field holds.
    pub(crate) fn secret_mut(&mut self, field: usize) -> &mut SecretString {
        match field {
            F_CLIENT_SECRET => &mut self.client_secret,
            _ => &mut self.password,
        }
    }
    /// How many characters the secret of field `field` has (drawn as dots, never shown).
    pub fn secret_len(&self, field: usize) -> usize {
        let s = match field {
            F_CLIENT_SECRET => &self.client_secret,
            _ => &self.password,
        };
        s.expose_secret().chars().count()
    }
    /// Whether the edited account signs in with OAuth2 (as stored: "log in again" needs it).
    pub fn stored_oauth(&self) -> bool {
        self.edit
            .as_ref()
            .and_then(|e| e.original.as_ref())
            .is_some_and(|o| o[F_OAUTH] == "yes")
    }
    /// The edit form of a stored account, filled with its settings. `owner`: whether this
    /// operator may change it (else it is shown read-only).
    pub fn for_edit(view: &crate::ops::accounts::AccountView, job: u64, owner: bool) -> SetupForm {
        let mut v = vec![String::new(); SETUP_FIELDS.len()];
        let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
        v[F_NAME] = view.name.clone();
        v[F_DISPLAY] = view.display_name.clone().unwrap_or_default();
        v[F_ENABLED] = yes(view.enabled);
        v[F_SMTP_AUTH] = view
            .smtp_auth
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| "default".into());
        v[F_SYSTEM_SMTP] = yes(view.use_system_smtp);
        v[F_OAUTH] = yes(view.auth == crate::config::AuthKind::OAuth2);
        oauth_values(&mut v, view.oauth2.as_ref());
        v[F_EMAIL] = view.email.clone();
        v[F_LOGIN] = view.user.clone();
        v[F_IMAP_HOST] = view.imap.host.clone();
        v[F_IMAP_PORT] = view.imap.port.to_string();
        v[F_IMAP_SEC] = view.imap.security.as_str().into();
        v[F_SMTP_HOST] = view.smtp.host.clone();
        v[F_SMTP_PORT] = view.smtp.port.to_string();
        v[F_SMTP_SEC] = view.smtp.security.as_str().into();
        v[F_CA] = view
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        v[F_INSECURE] = yes(view.insecure);
        v[F_ALIASES] = view.aliases.join(", ");
        v[F_SHARE] = view.shared_with.join(", ");
        v[F_SINCE] = view.sync.since.clone().unwrap_or_else(|| "all".into());
        v[F_UNREAD] = yes(view.sync.process == crate::config::ProcessScope::UnreadOnly);
        v[F_MARK_READ] = yes(view.sync.mark_read);
        v[F_POLL] = view.sync.poll_secs.to_string();
        v[F_PREFETCH] = view.sync.body_prefetch_max_bytes.to_string();
        v[F_FOLDERS] = view.sync.folders.clone().unwrap_or_default().join(", ");
        v[F_SENT_COPY] = yes(view.sent_copy.enabled);
        SetupForm {
            field: F_EMAIL,
            values: v.clone(),
            edit: Some(EditOf {
                name: view.name.clone(),
                job,
                original: Some(v),
                read_only: (!owner).then(|| view.owner.clone().unwrap_or_default()),
            }),
            command_set: view.password_source == crate::ops::accounts::PasswordSource::Command,
            ..SetupForm::default()
        }
    }
    /// The edit form as `account edit` takes it: only what differs from the stored settings.
    pub fn to_edit(&self) -> Result<EditRequest, AppError> {
        let (Some(of), v) = (self.edit.as_ref(), &self.values) else {
            return Err(AppError::local(
                "not an edit form",
                "",
                "report this as a bug",
            ));
        };
        let o = of.original.clone().unwrap_or_else(|| v.clone());
        let ch = |i: usize| v[i].trim() != o[i].trim();
        let text = |i: usize| ch(i).then(|| v[i].trim().to_string());
        let yes = |i: usize| ch(i).then(|| v[i] == "yes");
        let number = |i: usize, what: &str| -> Result<Option<u64>, AppError> {
            text(i)
                .map(|t| {
                    t.parse::<u64>().map_err(|_| {
                        AppError::usage(
                            format!("{what} must be a number, not {t:?}"),
                            format!("type the {what} as digits"),
                        )
                    })
                })
                .transpose()
        };
        let mut e = crate::ops::accounts::Edit::default();
        let mut s = crate::ops::accounts::ServerSpec {
            email: text(F_EMAIL),
            user: text(F_LOGIN),
            ..Default::default()
        };
        if ch(F_IMAP_HOST) || ch(F_IMAP_PORT) {
            s.imap = Some(host_port(&v[F_IMAP_HOST], &v[F_IMAP_PORT]));
        }
        s.imap_security = text(F_IMAP_SEC);
        if ch(F_SMTP_HOST) || ch(F_SMTP_PORT) {
            s.smtp = Some(host_port(&v[F_SMTP_HOST], &v[F_SMTP_PORT]));
        }
        s.smtp_security = text(F_SMTP_SEC);
        s.smtp_auth = text(F_SMTP_AUTH);
        s.use_system_smtp = yes(F_SYSTEM_SMTP);
        // An emptied CA file means "none" (the system's roots), not "unchanged".
        match text(F_CA) {
            Some(c) if c.is_empty() => e.clear_ca_file = true,
            c => s.ca_file = c.map(std::path::PathBuf::from),
        }
        s.auth = yes(F_OAUTH).map(|o| if o { "oauth2" } else { "password" }.to_string());
        // Hidden fields send nothing: the OAuth2 settings while OAuth2 is off, the password
        // command while it is on.
        if v[F_OAUTH] == "yes" {
            s.oauth = crate::ops::signin::OAuthSpec {
                client_id: text(F_CLIENT_ID),
                tenant: text(F_TENANT),
                flow: text(F_FLOW),
                auth_url: text(F_AUTH_URL),
                token_url: text(F_TOKEN_URL),
                device_url: text(F_DEVICE_URL),
                scopes: text(F_SCOPES),
                revoke_url: text(F_REVOKE_URL),
            };
        } else {
            e.password_command = text(F_PW_COMMAND).filter(|c| !c.is_empty());
        }
        e.rename = text(F_NAME);
        e.display_name = text(F_DISPLAY);
        e.enabled = yes(F_ENABLED);
        e.client_secret =
            (self.secret_len(F_CLIENT_SECRET) > 0).then(|| self.client_secret.clone());
        match yes(F_INSECURE) {
            Some(true) => s.insecure_skip_verify = true,
            Some(false) => e.verify_certificates = true,
            None => {}
        }
        if ch(F_ALIASES) {
            s.aliases = list(&v[F_ALIASES]);
            e.clear_aliases = s.aliases.is_empty();
        }
        if ch(F_SHARE) {
            s.share_with = Some(list(&v[F_SHARE]));
        }
        e.since = text(F_SINCE);
        e.process = yes(F_UNREAD).map(|u| if u { "unread-only" } else { "all" }.to_string());
        e.mark_read = yes(F_MARK_READ);
        e.poll_secs = number(F_POLL, "poll interval (seconds)")?;
        e.prefetch_max_bytes = number(F_PREFETCH, "prefetch size (bytes)")?;
        e.sent_copy = yes(F_SENT_COPY);
        e.server = s;
        let password = (self.password_len() > 0).then(|| self.password.clone());
        if password.is_some() && e.password_command.is_some() {
            return Err(AppError::usage(
                "a password and a password command were both given",
                "keep one: empty the Password field or the Password cmd field",
            ));
        }
        Ok(EditRequest {
            name: of.name.clone(),
            edit: e,
            password,
            folders: ch(F_FOLDERS).then(|| list(&v[F_FOLDERS])),
        })
    }

    pub fn password_len(&self) -> usize {
        self.secret_len(F_PASSWORD)
    }
    pub fn hint(&self) -> Option<&'static str> {
        let p = self
            .preset
            .checked_sub(1)
            .and_then(|i| crate::presets::PRESETS.get(i))?;
        match self.values[F_OAUTH] == "yes" {
            true => p.oauth_hint.or(p.hint),
            false => p.hint,
        }
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
            oauth: v[F_OAUTH] == "yes",
            client_id: v[F_CLIENT_ID].trim().to_string(),
        }
    }
    /// Fills in the chosen preset's servers, first clearing what the previous preset filled
    /// in and nobody changed since (typing after a switch never appends to its host).
    pub(crate) fn apply_preset(&mut self) {
        let blank = SetupForm::default().values;
        for (i, v) in std::mem::take(&mut self.filled) {
            if self.values[i] == v {
                self.values[i] = blank[i].clone();
            }
        }
        let Some(p) = self
            .preset
            .checked_sub(1)
            .and_then(|i| crate::presets::PRESETS.get(i))
        else {
            return;
        };
        let fill = [
            (F_IMAP_HOST, p.imap_host.to_string()),
            (F_IMAP_PORT, p.imap_port.to_string()),
            (F_IMAP_SEC, p.imap_security.as_str().to_string()),
            (F_SMTP_HOST, p.smtp_host.to_string()),
            (F_SMTP_PORT, p.smtp_port.to_string()),
            (F_SMTP_SEC, p.smtp_security.as_str().to_string()),
        ];
        for (i, v) in fill {
            self.values[i] = v.clone();
            self.filled.push((i, v));
        }
    }
}

/// The OAuth2 settings' fields of the edit form as `account show` tells them (the provider's
/// endpoints when none were given one by one).
fn oauth_values(v: &mut [String], o: Option<&crate::ops::signin::OAuthView>) {
    let Some(o) = o else {
        return;
    };
    v[F_CLIENT_ID] = o.client_id.clone();
    v[F_TENANT] = o.tenant.clone().unwrap_or_default();
    v[F_FLOW] = o.flow.map(|f| f.as_str().to_string()).unwrap_or_default();
    v[F_AUTH_URL] = o.auth_url.clone().unwrap_or_default();
    v[F_TOKEN_URL] = o.token_url.clone().unwrap_or_default();
    v[F_DEVICE_URL] = o.device_url.clone().unwrap_or_default();
    v[F_REVOKE_URL] = o.revoke_url.clone().unwrap_or_default();
    v[F_SCOPES] = o.scopes.join(" ");
}

/// A comma- or space-separated list as typed.
fn list(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// What the edit form saves or tests: `account edit`'s change, a new password if typed, and
/// the folders to sync if changed.
#[derive(Clone)]
pub struct EditRequest {
    pub name: String,
    pub edit: crate::ops::accounts::Edit,
    pub password: Option<SecretString>,
    pub folders: Option<Vec<String>>,
}

impl std::fmt::Debug for EditRequest {
    // Never print the password, even in a debug dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EditRequest")
            .field("name", &self.name)
            .field("edit", &self.edit)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("folders", &self.folders)
            .finish()
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

pub const COMPOSE_FIELDS: &[&str] = &[
    "From", "To", "Cc", "Bcc", "Reply-To", "Subject", "Attach", "Body",
];

pub const F_FROM: usize = 0;
pub const F_TO: usize = 1;
pub const F_CC: usize = 2;
pub const F_BCC: usize = 3;
pub const F_REPLY_TO: usize = 4;
pub const F_SUBJECT: usize = 5;
pub const F_ATTACH: usize = 6;
pub const F_BODY: usize = 7;

/// Whether compose's field `i` holds addresses (completed from customers and senders).
pub fn address_field(i: usize) -> bool {
    matches!(i, F_TO | F_CC | F_BCC | F_REPLY_TO)
}

#[derive(Debug, Clone)]
pub struct ComposeForm {
    pub field: usize,
    pub from: usize,
    pub values: Vec<String>,
    /// What it answers or forwards, and which message.
    pub kind: DraftKind,
    pub source: Option<i64>,
    /// Completions for the field being typed: (label, value) — addresses (name or where they
    /// are known from) or paths.
    pub suggestions: Vec<(String, String)>,
    pub completion_generation: u64,
    /// For a reply: the To the service computes itself (passed on only when edited).
    pub prefilled_to: Option<String>,
    pub sending: bool,
    /// The saved draft this form is (None until the first save answers).
    pub draft_id: Option<i64>,
    /// A save is on its way; `dirty`: typed since it left.
    pub saving: bool,
    pub dirty: bool,
    /// When it was last saved here, and uploaded to the Drafts folder ("" if not).
    pub saved: bool,
    pub uploaded: Option<String>,
}

impl Default for ComposeForm {
    fn default() -> Self {
        ComposeForm {
            field: 0,
            from: 0,
            values: vec![String::new(); COMPOSE_FIELDS.len()],
            kind: DraftKind::New,
            source: None,
            suggestions: Vec::new(),
            completion_generation: 0,
            prefilled_to: None,
            sending: false,
            draft_id: None,
            saving: false,
            dirty: false,
            saved: false,
            uploaded: None,
        }
    }
}

impl ComposeForm {
    /// Nothing typed that a draft would keep.
    pub fn is_blank(&self) -> bool {
        self.kind == DraftKind::New && self.values.iter().skip(1).all(|v| v.trim().is_empty())
    }
}

#[derive(Debug, Default)]
pub struct DashboardPane {
    pub status: Option<Status>,
    pub error: Option<AppError>,
    pub selected: usize,
    pub run: Option<CheckRun>,
    /// An OAuth2 sign-in under way or just ended.
    pub login: Option<LoginRun>,
}

/// An OAuth2 sign-in run from the console: what the person must do, then how it ended.
#[derive(Debug, Clone)]
pub struct LoginRun {
    pub job: u64,
    pub name: String,
    pub lines: Vec<String>,
    pub done: Option<Result<String, AppError>>,
}

/// The first-sync plan of the pane's account, for the scope being previewed.
#[derive(Debug, Clone, Default)]
pub struct PlanView {
    pub job: u64,
    pub since: Option<String>,
    pub unread_only: bool,
    pub result: Option<Result<AccountPlan, AppError>>,
}

#[derive(Debug, Clone, Default)]
pub struct FoldersPane {
    pub plan: Option<PlanView>,
    pub account: usize,
    pub rows: Vec<FolderEntry>,
    pub selected: usize,
    pub generation: u64,
    pub loaded: bool,
    pub error: Option<AppError>,
}

/// Where an uncached body is.
#[derive(Debug, Clone, Default)]
pub enum BodyState {
    /// Cached, or not asked for.
    #[default]
    Idle,
    /// Being fetched.
    Fetching,
    /// The server could not be reached; tried again by itself (`retry_secs`, the `attempt`).
    Waiting {
        error: AppError,
        retry_secs: u64,
        attempt: u32,
    },
    /// Failed for a reason that needs the operator.
    Failed(AppError),
}

#[derive(Debug, Clone, Default)]
pub struct MessagePane {
    pub detail: Option<MessageView>,
    /// The message whose body was asked from the server (asked once per opening).
    pub fetching: Option<i64>,
    pub body: BodyState,
    /// Its queued changes (flag, move…) and their state.
    pub changes: Vec<Change>,
    pub changes_generation: u64,
    /// Words of the search it was found by, marked in the text.
    pub highlights: Vec<String>,
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
    /// Keys move and open in the timeline instead of the customer list.
    pub timeline_focus: bool,
    /// Enter ended the search: open the first customer of the final query's answer.
    pub open_on_load: bool,
}

pub const LEVELS: [&str; 4] = ["error", "warn", "info", "debug"];

#[derive(Debug, Clone, Default)]
pub struct LogPane {
    /// Index into LEVELS of the lowest level shown.
    pub level: usize,
    /// The protocol trace instead of the events.
    pub trace: bool,
    pub traces: Paged<crate::ops::trace::TraceEntry>,
    /// Each visible account's trace switch (the first the trace's account when none chosen).
    pub trace_states: Vec<crate::ops::trace::TraceState>,
    /// The account whose trace is shown (an index into `trace_states`); None: every one.
    pub trace_account: Option<usize>,
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
    Block {
        id: i64,
        domain: bool,
    },
    Delete {
        id: i64,
    },
    RemoveAccount {
        name: String,
    },
    Resend {
        id: i64,
    },
    Drop {
        id: i64,
    },
    ApplyScope {
        account: String,
        since: Option<String>,
        unread_only: bool,
    },
    DiscardDraft {
        id: Option<i64>,
    },
    /// Save the account form although its last test failed.
    SaveAccount,
    /// Trace the account with message literals in full (after the warning).
    TraceLiterals {
        account: String,
    },
}

/// A customer suggested for a triage message, and why (same domain, same thread…).
pub use crate::ops::triage::Suggestion;

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
    SaveAttachment {
        id: i64,
        index: usize,
    },
    QuarantineSave {
        id: i64,
    },
    PlanSince,
    AddCustomer {
        id: i64,
    },
    /// The mail pane's `/`.
    MailSearch,
    /// Where to export an account's protocol trace.
    TraceExport {
        account: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    pub text: String,
    pub error: bool,
}

/// Which part of the mail pane takes the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MailFocus {
    #[default]
    Tree,
    Index,
}

/// What the mail index shows, and what to call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSource {
    pub source: Source,
    pub title: String,
    /// The account (name) of a folder; None for a search.
    pub account: Option<String>,
    pub account_id: Option<String>,
    /// Sent or Drafts: the index shows recipients instead of senders.
    pub outgoing: bool,
}

/// The thread opened under its head in the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    pub thread_id: i64,
    /// Newest first; the head is one of them.
    pub rows: Vec<IndexRow>,
    pub generation: u64,
}

/// The mail pane: the tree, the index of the chosen folder (or search) and a preview.
#[derive(Debug, Clone)]
pub struct MailPane {
    pub tree: Vec<TreeAccount>,
    pub tree_loaded: bool,
    pub tree_error: Option<AppError>,
    pub tree_generation: u64,
    /// The selected node of the flattened tree (see `MailPane::nodes`).
    pub node: usize,
    pub focus: MailFocus,
    pub source: Option<MailSource>,
    /// One row per thread (else every message).
    pub threads: bool,
    pub index: Paged<IndexRow>,
    pub expanded: Option<Expanded>,
    /// The selected row inside the expanded thread (0: its head).
    pub sub: usize,
    pub preview: MessagePane,
    /// The last search typed (the `/` prompt starts from it).
    pub last_search: String,
    /// Moving a message: the folder picker.
    pub pick: Option<FolderPick>,
}

impl Default for MailPane {
    fn default() -> Self {
        MailPane {
            tree: Vec::new(),
            tree_loaded: false,
            tree_error: None,
            tree_generation: 0,
            node: 0,
            focus: MailFocus::Tree,
            source: None,
            threads: true,
            index: Paged::default(),
            expanded: None,
            sub: 0,
            preview: MessagePane::default(),
            last_search: String::new(),
            pick: None,
        }
    }
}

/// One node of the tree: an account, or one of its folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeNode {
    Account(usize),
    Folder(usize, usize),
}

impl MailPane {
    /// The tree as rows: each account, then its folders.
    pub fn nodes(&self) -> Vec<TreeNode> {
        let mut v = Vec::new();
        for (a, acct) in self.tree.iter().enumerate() {
            v.push(TreeNode::Account(a));
            v.extend((0..acct.folders.len()).map(|f| TreeNode::Folder(a, f)));
        }
        v
    }

    /// The message the index's selection is on (in the expanded thread, if there).
    pub fn current(&self) -> Option<&IndexRow> {
        let head = self.index.current()?;
        match &self.expanded {
            Some(e) if e.thread_id == head.thread_id && self.sub > 0 => {
                let others: Vec<&IndexRow> = e.rows.iter().filter(|r| r.id != head.id).collect();
                others.get(self.sub - 1).copied()
            }
            _ => Some(head),
        }
    }

    /// Rows of the expanded thread shown under the selected head (its others).
    pub fn extra_rows(&self) -> usize {
        match (&self.expanded, self.index.current()) {
            (Some(e), Some(h)) if e.thread_id == h.thread_id => {
                e.rows.iter().filter(|r| r.id != h.id).count()
            }
            _ => 0,
        }
    }
}

/// Choosing the folder a message moves to: the account's folders, narrowed as typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FolderPick {
    pub message_id: i64,
    pub account_id: String,
    pub account: String,
    pub query: String,
    pub folders: Vec<String>,
    pub selected: usize,
}

impl FolderPick {
    /// The folders that match what is typed (case-insensitive, in order).
    pub fn matches(&self) -> Vec<&String> {
        let q = self.query.to_lowercase();
        self.folders
            .iter()
            .filter(|f| f.to_lowercase().contains(&q))
            .collect()
    }
}

/// The operator's saved drafts, to open one.
#[derive(Debug, Clone, Default)]
pub struct DraftsPick {
    pub drafts: Vec<SavedDraft>,
    pub selected: usize,
}
