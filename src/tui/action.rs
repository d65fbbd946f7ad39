//! What the operator asked for (Action, from the keymap) and what the console asks the I/O layer
//! to do (Command). `update` turns one into the other; nothing here touches the terminal or disk.

use secrecy::SecretString;

use crate::ops::compose::{DraftContent, DraftKind};
use crate::ops::logs::EventFilter;
use crate::ops::mailbox::{Source, Window};
use crate::ops::messages::FlagChange;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PaneId {
    Dashboard,
    Setup,
    Folders,
    Triage,
    Message,
    Customers,
    Compose,
    Outbox,
    Log,
    Mail,
}

impl PaneId {
    /// Tab order (the message view is reached from lists, not as a tab).
    pub const TABS: [PaneId; 9] = [
        PaneId::Dashboard,
        PaneId::Setup,
        PaneId::Folders,
        PaneId::Triage,
        PaneId::Customers,
        PaneId::Compose,
        PaneId::Outbox,
        PaneId::Log,
        PaneId::Mail,
    ];

    pub fn key(self) -> &'static str {
        match self {
            PaneId::Dashboard => "dashboard",
            PaneId::Setup => "setup",
            PaneId::Folders => "folders",
            PaneId::Triage => "triage",
            PaneId::Message => "message",
            PaneId::Customers => "customers",
            PaneId::Compose => "compose",
            PaneId::Outbox => "outbox",
            PaneId::Log => "log",
            PaneId::Mail => "mail",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            PaneId::Dashboard => "Dashboard",
            PaneId::Setup => "Setup",
            PaneId::Folders => "Folders",
            PaneId::Triage => "Triage",
            PaneId::Message => "Message",
            PaneId::Customers => "Customers",
            PaneId::Compose => "Compose",
            PaneId::Outbox => "Outbox",
            PaneId::Log => "Log",
            PaneId::Mail => "Mail",
        }
    }

    pub fn short_title(self) -> &'static str {
        match self {
            PaneId::Dashboard => "Dash",
            PaneId::Customers => "Cust",
            PaneId::Compose => "Write",
            PaneId::Folders => "Fold",
            p => p.title(),
        }
    }

    /// Panes that are lists use the shared `nav` key table.
    pub fn is_list(self) -> bool {
        !matches!(self, PaneId::Setup | PaneId::Compose)
    }
}

/// Named operator intents. Names (`Action::name`) are what config.toml binds keys to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    NextPane,
    PrevPane,
    GoTo(PaneId),
    Back,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Search,
    FocusTimeline,
    Refresh,
    // dashboard
    TestAccount,
    SyncNow,
    NewAccount,
    /// The dashboard's account in the edit form.
    EditAccount,
    /// The log pane: the protocol trace / the events.
    ToggleTraceView,
    /// The trace of the shown account on/off.
    ToggleTrace,
    /// Keep message literals in full in the account's trace, or stop (asks first).
    ToggleLiterals,
    /// The trace of the next account (then every account).
    TraceAccount,
    /// Export the shown account's trace (asks where).
    ExportTrace,
    RemoveAccount,
    /// `account login NAME` for an OAuth2 account.
    LoginAccount,
    // forms
    NextField,
    PrevField,
    ChoiceNext,
    ChoicePrev,
    ClearField,
    TestConnection,
    SaveAccount,
    // folders
    ToggleSync,
    LoadFolders,
    Plan,
    SetSent,
    NextAccount,
    PlanUnreadOnly,
    PlanSince,
    ApplyScope,
    // triage
    Pair,
    AddCustomer,
    Block,
    BlockDomain,
    Delete,
    Undo,
    // message
    Reply,
    ReplyAll,
    Forward,
    SaveAttachment,
    NextAttachment,
    // mail
    FocusTree,
    FocusIndex,
    ToggleThread,
    ToggleThreads,
    ToggleRead,
    ToggleFlag,
    MoveMessage,
    DeleteMessage,
    Archive,
    NextHit,
    PrevHit,
    ComposeNew,
    // compose
    Send,
    Editor,
    Complete,
    SaveDraft,
    DiscardDraft,
    OpenDrafts,
    // outbox
    Retry,
    CancelItem,
    Resend,
    DropItem,
    // log
    CycleLevel,
    ToggleQuarantine,
    QuarantineRetry,
    QuarantineSkip,
    QuarantineSave,
    // dialogs
    Confirm,
    Dismiss,
    // raw text input (forms, search)
    Input(char),
    Backspace,
    Newline,
    // the terminal changed size
    Resize(u16, u16),
}

/// Everything the console asks of the outside world; executed by `io` off the draw path.
/// Each load carries the generation it was asked under, so a late answer to an old question is
/// dropped instead of overwriting newer state.
#[derive(Debug)]
pub enum Command {
    LoadDashboard,
    LoadTriage {
        generation: u64,
        offset: i64,
        limit: i64,
        /// (date, id) of the row just before `offset`, when known: the page is then read from
        /// there (keyset) instead of skipping `offset` rows.
        after: Option<(String, i64)>,
    },
    LoadFolders {
        generation: u64,
        /// The account's name.
        account: String,
    },
    LoadMessage {
        generation: u64,
        id: i64,
    },
    LoadCustomers {
        generation: u64,
        query: String,
        offset: i64,
        limit: i64,
    },
    LoadTimeline {
        generation: u64,
        customer_id: i64,
        offset: i64,
        limit: i64,
        /// (date, id) of the row just before `offset`, when known (keyset paging).
        after: Option<(Option<String>, i64)>,
    },
    LoadOutbox {
        generation: u64,
        offset: i64,
        limit: i64,
    },
    LoadEvents {
        generation: u64,
        filter: EventFilter,
        offset: i64,
        limit: i64,
    },
    LoadQuarantine {
        generation: u64,
        offset: i64,
        limit: i64,
    },
    /// Runs `account test` steps for the form's settings, streaming each step back.
    TestNew {
        job: u64,
        form: Box<AccountForm>,
    },
    /// Runs `account test` for a stored account.
    TestStored {
        job: u64,
        name: String,
    },
    SaveNew {
        job: u64,
        form: Box<AccountForm>,
    },
    /// A page of the protocol trace.
    LoadTrace {
        generation: u64,
        query: crate::ops::trace::Query,
        offset: i64,
        limit: i64,
    },
    /// `trace on|off ACCOUNT`.
    SetTrace {
        account: String,
        on: bool,
        /// Keep message literals in full (owner only).
        literals: bool,
    },
    /// `trace export ACCOUNT PATH`.
    ExportTrace {
        account: String,
        path: String,
    },
    /// `account show NAME` for the edit form.
    LoadEdit {
        job: u64,
        name: String,
    },
    /// The account test with the edit form's changes (nothing stored).
    TestEdit {
        job: u64,
        req: Box<crate::tui::app::EditRequest>,
    },
    /// `account edit NAME` with the edit form's changes (and the folders to sync).
    SaveEdit {
        job: u64,
        req: Box<crate::tui::app::EditRequest>,
    },
    /// Customer addresses starting with `prefix` (compose's To/Cc completion).
    LoadCompletions {
        generation: u64,
        prefix: String,
    },
    /// Suspends the screen and edits the body in $VISUAL/$EDITOR (run by the event loop, which
    /// owns the terminal).
    EditBody {
        text: String,
    },
    /// Customers for the pair picker (fuzzy).
    LoadPicker {
        generation: u64,
        query: String,
    },
    /// Triage actions, as `triage pair|add-customer|block|delete` and `undo`.
    TriagePair {
        id: i64,
        customer_id: i64,
    },
    TriageAddCustomer {
        id: i64,
        /// The customer's name (`--name`); empty lets the CLI take the display name.
        name: String,
    },
    TriageBlockPlan {
        id: i64,
        domain: bool,
    },
    TriageBlock {
        id: i64,
        domain: bool,
    },
    TriageDelete {
        id: i64,
    },
    TriageUndo,
    /// The crm suggestions of a triage message (`triage show ID`).
    LoadSuggestions {
        id: i64,
    },
    /// `outbox retry|cancel ID`.
    OutboxRetry {
        id: i64,
    },
    OutboxCancel {
        id: i64,
    },
    OutboxResend {
        id: i64,
    },
    OutboxDrop {
        id: i64,
    },
    /// `send …` or `reply ID …` with the compose pane's draft.
    Send {
        draft: Box<Draft>,
    },
    /// `account remove NAME` (after confirmation).
    RemoveAccount {
        name: String,
    },
    /// `account login NAME`: the sign-in's code or address streams back as it comes.
    Login {
        job: u64,
        name: String,
    },
    /// Fetch a message's body from the server (when opened and not fetched yet).
    FetchBody {
        id: i64,
    },
    /// Save attachment `index` of message `id` to `path` (never overwriting).
    SaveAttachment {
        id: i64,
        index: usize,
        path: String,
    },
    /// Quarantine actions, as `quarantine skip|save|retry ID`.
    QuarantineSkip {
        id: i64,
    },
    QuarantineSave {
        id: i64,
        path: String,
    },
    QuarantineRetry {
        id: i64,
    },
    /// `sync NAME --plan [--since D] [--unread-only]`: counts, sizes, estimate; changes nothing.
    Plan {
        job: u64,
        account: String,
        since: Option<String>,
        unread_only: bool,
    },
    /// `account edit NAME --since DATE|all --process all|unread-only`: the previewed scope
    /// becomes the account's sync scope.
    ApplyScope {
        account: String,
        since: Option<String>,
        unread_only: bool,
    },
    /// Re-read the account's folders from the server (`folders --refresh`).
    RefreshFolders {
        job: u64,
        account: String,
    },
    /// Exactly these folders sync (`folders --sync A,B`).
    SetFolderSync {
        account_id: String,
        account: String,
        names: Vec<String>,
    },
    /// Use this folder as Sent (`folders --sent S`).
    SetSent {
        account_id: String,
        account: String,
        folder: String,
    },
    /// Run a sync pass of the account now (the loop owns the sync tasks).
    KickSync {
        account_id: String,
    },
    /// Restart the sync tasks from the current config (an account was added).
    RestartSync,
    /// The mail pane's account and folder tree with counts.
    LoadMailTree {
        generation: u64,
    },
    /// A window of the mail index: a folder's messages or threads, or a search's hits.
    /// `anchor` is the position the window is measured from: the first row's for Top, After
    /// and From; the row after the window's for Before; the total for Bottom.
    LoadMailIndex {
        generation: u64,
        source: Source,
        window: Window,
        anchor: i64,
        limit: i64,
    },
    /// The messages of a thread in a folder.
    LoadThread {
        generation: u64,
        folder_id: i64,
        thread_id: i64,
    },
    /// A message's queued changes and their state.
    LoadChanges {
        generation: u64,
        id: i64,
    },
    /// Read/unread, flag (`message flag`), through the pending-ops queue.
    MailFlag {
        id: i64,
        account_id: String,
        change: FlagChange,
    },
    /// Move, delete (to Trash) or archive (`message move|delete`), through the queue.
    MailMove {
        id: i64,
        account_id: String,
        to: MailDest,
    },
    /// The message view was left: stop retrying its body.
    StopBodyFetch,
    /// Save the compose form as the operator's draft (`id` None: a new one).
    SaveDraft {
        id: Option<i64>,
        content: Box<DraftContent>,
    },
    /// Save, then store the draft in the account's Drafts folder.
    UploadDraft {
        id: Option<i64>,
        content: Box<DraftContent>,
    },
    /// A draft sent or discarded: gone locally and from the Drafts folder.
    ForgetDraft {
        id: i64,
        /// Say so (a discard) or not (after a send).
        tell: bool,
    },
    /// The operator's saved drafts.
    LoadDrafts,
    /// Files whose path starts with `prefix` (compose's Attach field).
    CompletePath {
        generation: u64,
        prefix: String,
    },
}

/// Where `MailMove` takes a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailDest {
    Folder(String),
    Trash,
    Archive,
}

/// The setup form's values as the CLI's `account add` flags (the same validation runs).
#[derive(Clone, Default)]
pub struct AccountForm {
    pub name: String,
    pub email: String,
    pub user: String,
    pub password: SecretString,
    pub imap: String,
    pub imap_security: String,
    pub smtp: String,
    pub smtp_security: String,
    pub ca_file: String,
    pub insecure: bool,
    pub preset: Option<String>,
    pub aliases: String,
    pub share_with: String,
    /// Sign in with OAuth2 (the preset's provider) instead of a password.
    pub oauth: bool,
    pub client_id: String,
}

impl std::fmt::Debug for AccountForm {
    // Never print the password, even in a debug dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountForm")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("imap", &self.imap)
            .field("smtp", &self.smtp)
            .finish_non_exhaustive()
    }
}

/// What the compose pane hands to `send` / `reply` / `forward`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Draft {
    pub account: String,
    /// An alias of the account, when not its main address.
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    /// The Reply-To header.
    pub reply_to: Option<String>,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<String>,
    /// What it answers or forwards (`reply ID [--all]`, `forward ID`).
    pub kind: DraftKind,
    pub source: Option<i64>,
    /// The saved draft it came from (forgotten once sent).
    pub draft_id: Option<i64>,
}
