//! The home directory and `config.toml`: settings only, never state or secrets.
//!
//! Reading is strict (unknown keys are errors, so a typo never silently falls back to a default);
//! writing goes through `toml_edit` so a user's comments and layout survive CLI edits.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AppError, Code, Result};

mod alerts;
pub mod host;
mod merge;
pub mod shared;
pub use alerts::{AlertChannel, AlertsConfig, ChannelKind, DEFAULT_ALERT_TIMEOUT_SECS, EventKind};
pub use merge::set_string_list;

/// Everything of one installation lives under one directory.
#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    /// `--home`, else `MAILROOM_HOME` (clap fills both into `explicit`), else `$XDG_DATA_HOME/mailroom`.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Home> {
        let root = match explicit {
            Some(p) => p,
            None => directories::BaseDirs::new()
                .map(|b| b.data_dir().join("mailroom"))
                .ok_or_else(|| {
                    AppError::usage(
                        "cannot find a home directory",
                        "pass --home DIR or set MAILROOM_HOME",
                    )
                })?,
        };
        Ok(Home { root })
    }

    /// Creates the home (0700) if missing.
    pub fn ensure(&self) -> Result<()> {
        if !self.root.exists() {
            fs::create_dir_all(&self.root).map_err(|e| {
                AppError::local(
                    format!("cannot create the home {}", self.root.display()),
                    e.to_string(),
                    "choose a writable --home",
                )
                .with_code(Code::HomeUnwritable)
            })?;
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// The home must exist: what every command but the console, `account add` and `customers
    /// add|import` asks first, so a mistyped `--home` is an error rather than a fresh, empty,
    /// "healthy" installation (and nothing is created there).
    pub fn require(&self) -> Result<()> {
        if self.root.is_dir() {
            return Ok(());
        }
        let detail = if self.root.exists() {
            "it is not a directory"
        } else {
            "the directory does not exist; only the console, the daemon, `account add` and `customers add|import` create a home"
        };
        Err(AppError::local(
            format!("no mailroom home at {}", self.root.display()),
            detail,
            "check --home (or MAILROOM_HOME); to start a new installation there, run `mailroom account add NAME --email … --imap … --smtp …`",
        )
        .with_code(Code::HomeMissing))
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn db_path(&self) -> PathBuf {
        self.root.join("mailroom.db")
    }
    /// Where the state lives: `MAILROOM_STORE` (which `--store` sets), else `[store] url` in
    /// config.toml, else the home's own SQLite file.
    pub fn store_url(&self) -> Result<StoreUrl> {
        if let Ok(url) = std::env::var("MAILROOM_STORE")
            && !url.trim().is_empty()
        {
            return StoreUrl::parse(url.trim());
        }
        if let Some(url) = Config::load_host(self)?.store.url {
            return StoreUrl::parse(&url);
        }
        Ok(StoreUrl::Sqlite(self.db_path()))
    }
    pub fn key_path(&self) -> PathBuf {
        self.root.join("key")
    }
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    #[default]
    Tls,
    Starttls,
    #[serde(alias = "plain")]
    None,
}

impl Security {
    pub fn parse(s: &str) -> Result<Security> {
        match s.to_ascii_lowercase().as_str() {
            "tls" | "ssl" => Ok(Security::Tls),
            "starttls" => Ok(Security::Starttls),
            "none" | "plain" => Ok(Security::None),
            _ => Err(AppError::usage(
                format!("unknown connection security {s:?}"),
                "use tls, starttls or none",
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::Starttls => "starttls",
            Security::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub security: Security,
}

impl Server {
    /// Parses `HOST[:PORT]`, `[v6]:PORT`; the port defaults from the security.
    pub fn parse(
        spec: &str,
        security: Security,
        default_port: impl Fn(Security) -> u16,
    ) -> Result<Server> {
        let spec = spec.trim();
        let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| {
                AppError::usage(
                    format!("bad server address {spec:?}"),
                    "write [v6addr]:port",
                )
            })?;
            (h.to_string(), after.strip_prefix(':').map(str::to_string))
        } else if let Some((h, p)) = spec.rsplit_once(':') {
            (h.to_string(), Some(p.to_string()))
        } else {
            (spec.to_string(), None)
        };
        if host.is_empty() {
            return Err(AppError::usage(
                format!("bad server address {spec:?}"),
                "write HOST or HOST:PORT",
            ));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| {
                AppError::usage(
                    format!("bad port in {spec:?}"),
                    "the port is a number from 1 to 65535",
                )
            })?,
            None => default_port(security),
        };
        Ok(Server {
            host,
            port,
            security,
        })
    }

    pub fn display(&self) -> String {
        format!("{}:{} ({})", self.host, self.port, self.security.as_str())
    }
}

pub fn default_imap_port(s: Security) -> u16 {
    match s {
        Security::Tls => 993,
        _ => 143,
    }
}
pub fn default_smtp_port(s: Security) -> u16 {
    match s {
        Security::Tls => 465,
        Security::Starttls => 587,
        Security::None => 25,
    }
}

/// How an account signs in to its servers (`auth` in config.toml): a password, or OAuth2 tokens
/// (`[accounts.NAME.oauth2]` says where from; the tokens are sealed in the database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    #[default]
    Password,
    #[serde(rename = "oauth2")]
    OAuth2,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Password => "password",
            AuthKind::OAuth2 => "oauth2",
        }
    }
    pub fn is_password(&self) -> bool {
        *self == AuthKind::Password
    }
    /// `--auth` as given.
    pub fn parse(s: &str) -> Result<AuthKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "password" => Ok(AuthKind::Password),
            "oauth2" | "oauth" => Ok(AuthKind::OAuth2),
            _ => Err(AppError::usage(
                format!("unknown --auth {s:?}"),
                "use password (the default) or oauth2",
            )),
        }
    }
}

/// Which OAuth2 flow `account login` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuthFlow {
    /// The device authorization grant (RFC 8628): a code to enter on another device.
    Device,
    /// Authorization code with PKCE and a loopback redirect (RFC 8252).
    Browser,
}

impl OAuthFlow {
    pub fn parse(s: &str) -> Result<OAuthFlow> {
        match s.trim().to_ascii_lowercase().as_str() {
            "device" => Ok(OAuthFlow::Device),
            "browser" => Ok(OAuthFlow::Browser),
            _ => Err(AppError::usage(
                format!("unknown --oauth-flow {s:?}"),
                "use device (a code to enter on any device) or browser (an address to open; paste back where it ends)",
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthFlow::Device => "device",
            OAuthFlow::Browser => "browser",
        }
    }
}

/// Where an OAuth2 account signs in (`[accounts.NAME.oauth2]`): a known provider (`google`,
/// `microsoft`) whose endpoints mailroom knows, any of them overridden, or another provider's
/// endpoints given one by one. The client secret, where there is one, is sealed in the
/// database, never here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth2Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The app registration's client id (the user's own; docs/oauth2.md).
    pub client_id: String,
    /// Microsoft: the directory (tenant) id or domain; `common` when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Unset: the provider's (device for Microsoft, browser for Google).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<OAuthFlow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// The SMTP AUTH mechanism (`--smtp-auth`, `smtp_auth` in config.toml). Unset, it follows the
/// account's [`AuthKind`]: for a password, what the server offers, PLAIN first, else LOGIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpAuth {
    Plain,
    Login,
    Xoauth2,
    Oauthbearer,
    /// No AUTH at all: a relay that takes mail from this host without a login.
    None,
}

impl SmtpAuth {
    pub const VALUES: &'static str = "plain, login, xoauth2, oauthbearer or none";

    pub fn parse(s: &str) -> Result<SmtpAuth> {
        match s.trim().to_ascii_lowercase().as_str() {
            "plain" => Ok(SmtpAuth::Plain),
            "login" => Ok(SmtpAuth::Login),
            "xoauth2" => Ok(SmtpAuth::Xoauth2),
            "oauthbearer" => Ok(SmtpAuth::Oauthbearer),
            "none" => Ok(SmtpAuth::None),
            _ => Err(AppError::usage(
                format!("unknown SMTP authentication {s:?}"),
                format!("use {}", SmtpAuth::VALUES),
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpAuth::Plain => "plain",
            SmtpAuth::Login => "login",
            SmtpAuth::Xoauth2 => "xoauth2",
            SmtpAuth::Oauthbearer => "oauthbearer",
            SmtpAuth::None => "none",
        }
    }
    /// XOAUTH2 and OAUTHBEARER present an OAuth2 token, not a password.
    pub fn is_oauth(self) -> bool {
        matches!(self, SmtpAuth::Xoauth2 | SmtpAuth::Oauthbearer)
    }

    /// Whether `chosen` (None: the default) can sign in with `kind`; the usage error says why
    /// not and what to choose instead.
    pub fn check(chosen: Option<SmtpAuth>, kind: AuthKind) -> Result<()> {
        match (chosen, kind) {
            (Some(m), AuthKind::Password) if m.is_oauth() => Err(AppError::usage(
                format!(
                    "--smtp-auth {} needs OAuth2 sign-in, but this account signs in with a password",
                    m.as_str()
                ),
                "XOAUTH2 and OAUTHBEARER present an OAuth2 token: add the account with --auth oauth2; with a password use --smtp-auth plain or login (or leave it out: PLAIN if the server offers it, else LOGIN), or none for a relay that takes mail without a login",
            )),
            (Some(m @ (SmtpAuth::Plain | SmtpAuth::Login)), AuthKind::OAuth2) => {
                Err(AppError::usage(
                    format!(
                        "--smtp-auth {} needs a password, but this account signs in with OAuth2",
                        m.as_str()
                    ),
                    "use --smtp-auth xoauth2 or oauthbearer (or leave it out: XOAUTH2 if the server offers it, else OAUTHBEARER), or none for a relay; a password login for SMTP goes through the system SMTP profile (--use-system-smtp true)",
                ))
            }
            _ => Ok(()),
        }
    }

    /// In words, as `account show` prints it; None is the default for `kind`.
    pub fn describe(chosen: Option<SmtpAuth>, kind: AuthKind) -> String {
        match (chosen, kind) {
            (None, AuthKind::Password) => {
                "default: password, PLAIN if the server offers it, else LOGIN".into()
            }
            (None, AuthKind::OAuth2) => {
                "default: OAuth2 token, XOAUTH2 if the server offers it, else OAUTHBEARER".into()
            }
            (Some(SmtpAuth::None), _) => "none (no login: a relay)".into(),
            (Some(m), _) => m.as_str().to_ascii_uppercase(),
        }
    }
}

/// Which messages sync processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProcessScope {
    #[default]
    All,
    UnreadOnly,
}

/// How much history a folder's first sync fetches (`sync.since`): all of it, the mail since a
/// date (by INTERNALDATE), or none — only mail that arrives from the first sync on. Config,
/// CLI and console all go through [`HistoryScope::parse`]; in config.toml it is a string
/// (`"2026-01-01"`, `"new"`) and absent for the whole history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryScope {
    #[default]
    All,
    Since(chrono::NaiveDate),
    NewOnly,
}

impl HistoryScope {
    /// `YYYY-MM-DD`, `new`, or `all` / `none` (the whole history).
    pub fn parse(s: &str) -> Result<HistoryScope> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("all") || t.eq_ignore_ascii_case("none") {
            return Ok(HistoryScope::All);
        }
        if t.eq_ignore_ascii_case("new") {
            return Ok(HistoryScope::NewOnly);
        }
        chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map(HistoryScope::Since)
            .map_err(|_| {
                AppError::usage(
                    format!("bad date {s:?}"),
                    "write the date as YYYY-MM-DD, or `new` for only mail arriving from now on, or `all`",
                )
            })
    }

    pub fn is_all(&self) -> bool {
        *self == HistoryScope::All
    }

    /// The value as config.toml and `--json` write it: none for the whole history.
    pub fn value(&self) -> Option<String> {
        match self {
            HistoryScope::All => None,
            HistoryScope::Since(d) => Some(d.format("%Y-%m-%d").to_string()),
            HistoryScope::NewOnly => Some("new".into()),
        }
    }

    /// The exact client-side cutoff: midnight UTC of the date (by INTERNALDATE).
    pub fn cutoff(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            HistoryScope::Since(d) => d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
            _ => None,
        }
    }

    /// In words, as plans and the console show it.
    pub fn describe(&self) -> String {
        match self {
            HistoryScope::All => "all history".into(),
            HistoryScope::Since(d) => format!("since {}", d.format("%Y-%m-%d")),
            HistoryScope::NewOnly => "new mail only".into(),
        }
    }
}

impl Serialize for HistoryScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.value() {
            Some(v) => s.serialize_str(&v),
            None => s.serialize_str("all"),
        }
    }
}

impl<'de> Deserialize<'de> for HistoryScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HistoryScope::parse(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{}: write YYYY-MM-DD, \"new\" or \"all\"",
                e.summary
            ))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncOptions {
    /// Use IDLE on the inbox when the server has it.
    pub idle: bool,
    /// Re-issue IDLE before the server's 29-minute limit.
    pub idle_renew_secs: u64,
    /// Polling interval where IDLE is missing (0 = as fast as possible).
    pub poll_secs: u64,
    pub backoff_min_secs: u64,
    pub backoff_max_secs: u64,
    /// After this long of continuous failure the account goes to `error` and stops retrying.
    pub give_up_secs: u64,
    pub process: ProcessScope,
    /// What a folder's first sync fetches: a date (YYYY-MM-DD, by INTERNALDATE, searched on the
    /// server), `new` (nothing old: only mail arriving later), or absent for all history.
    #[serde(skip_serializing_if = "HistoryScope::is_all")]
    pub since: HistoryScope,
    /// Mark new messages read on the server after processing (only mail that arrived after this
    /// option was switched on).
    pub mark_read: bool,
    /// Bodies up to this size are fetched in the background; bigger ones when opened.
    pub body_prefetch_max_bytes: u64,
    /// Messages per SQLite transaction during fetches.
    pub batch_size: usize,
    /// Bounds every wait on the servers: TLS, the greeting, login, each command's answer, every
    /// SMTP step, `account test` (connecting waits at most 20 s of it, LOGOUT at most 5 s). An
    /// IDLE connection is probed often enough that a dead server shows within twice this.
    pub timeout_secs: u64,
    /// A transfer whose rate over a `timeout_secs` window falls below this counts as stalled
    /// (a trickle cannot keep a pass alive; a slow but steady link still brings big mail).
    pub min_bytes_per_sec: u64,
    /// Where the server has no NOTIFY: how often the watcher compares every synced folder's
    /// counters (LIST-STATUS), so new mail in any folder starts a pass within about this long.
    pub status_poll_secs: u64,
    /// COMPRESS=DEFLATE (RFC 4978) where the server offers it: `auto` turns it on except on
    /// loopback, where deflating only costs CPU.
    pub compress: Compress,
    /// The most connections to the IMAP server at once (the pass, the watcher, the body
    /// download and extra folder fetches share them); providers refuse more than about 15.
    pub max_connections: u32,
    /// `on-demand`: headers, small bodies prefetched, the rest when opened; `all`: every body
    /// in the background after the headers (full offline mode).
    pub bodies: BodiesMode,
    /// With `bodies = "all"`: only mail of the last N days (by INTERNALDATE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bodies_since_days: Option<u32>,
    /// With `bodies = "all"`: stop downloading when the stored bodies take this many MB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bodies_max_mb: Option<u64>,
}

/// `sync.compress`: COMPRESS=DEFLATE where the server offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compress {
    /// On, except on loopback (a local server: deflate only costs CPU there).
    #[default]
    Auto,
    On,
    Off,
}

impl Compress {
    /// Whether a connection to a peer at this address deflates (when the server offers it).
    pub fn wanted(self, peer_is_loopback: bool) -> bool {
        match self {
            Compress::Auto => !peer_is_loopback,
            Compress::On => true,
            Compress::Off => false,
        }
    }
}

/// `sync.bodies`: which bodies the cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum BodiesMode {
    /// Headers; bodies up to `body_prefetch_max_bytes` in the background, the rest when opened.
    #[default]
    #[serde(rename = "on-demand")]
    OnDemand,
    /// Every body in the background after the headers (full offline mode).
    #[serde(rename = "all")]
    All,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            idle: true,
            idle_renew_secs: 25 * 60,
            poll_secs: 5 * 60,
            backoff_min_secs: 5,
            backoff_max_secs: 15 * 60,
            give_up_secs: 2 * 24 * 3600,
            process: ProcessScope::All,
            since: HistoryScope::All,
            mark_read: false,
            body_prefetch_max_bytes: 256 * 1024,
            // Each commit rewrites every index page its messages touched, and Message-ID and
            // sender keys land all over their indexes: a 100k first sync wrote 338 MB of WAL
            // for a 104 MB database at 2000. At 10000 the writer needs ~35 % less time per
            // message; the writer streams into its open transaction, so this costs no memory,
            // and it commits at least every half second anyway (scripts/bench, docs/sync.md).
            batch_size: 10_000,
            timeout_secs: 60,
            min_bytes_per_sec: 1024,
            status_poll_secs: 4,
            compress: Compress::Auto,
            max_connections: 4,
            bodies: BodiesMode::OnDemand,
            bodies_since_days: None,
            bodies_max_mb: None,
        }
    }
}

/// What goes into the copy of a sent message that lands in the Sent folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CopyContent {
    #[default]
    Full,
    TextOnly,
    HeadersOnly,
    NoAttachments,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CopyOnFailure {
    #[default]
    Retry,
    Notify,
    Skip,
    Queue,
}

/// What a sent message is, for choosing the folder of its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    New,
    /// Has In-Reply-To (`reply`, or `send --in-reply-to`).
    Reply,
}

/// `[accounts.NAME.sent_copy.folders]`: a fixed set of keys, so a typo is an error rather
/// than a type that silently never matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CopyFolders {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

impl CopyFolders {
    pub fn is_empty(&self) -> bool {
        self.new.is_none() && self.reply.is_none()
    }
}

/// Where one copy goes: a named folder (and the setting that named it, for error fixes), or
/// None for the detected Sent folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFolder {
    pub name: String,
    pub setting: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SentCopyOptions {
    /// Copy sent mail into the Sent folder at all.
    pub enabled: bool,
    /// Folder to copy into; none = the detected Sent folder.
    pub folder: Option<String>,
    /// Per message type folders; each beats `folder` for its type.
    #[serde(skip_serializing_if = "CopyFolders::is_empty")]
    pub folders: CopyFolders,
    /// The provider files SMTP-sent mail into Sent itself: never append, only verify.
    pub filed_by_server: bool,
    /// 0 = copy at once; otherwise batch copies every N seconds on one connection.
    pub batch_secs: u64,
    pub content: CopyContent,
    /// Attachments bigger than this are dropped from the copy with a note (0 = never).
    pub drop_attachments_over_bytes: u64,
    pub on_failure: CopyOnFailure,
    /// Seconds between copy retries (first), doubling up to backoff_max_secs.
    pub retry_secs: u64,
    /// Once the server was seen filing sent mail into the folder itself, how long after sending
    /// a copy waits for the server's copy before mailroom appends its own (and stops waiting
    /// for later ones until the server files again). Sending never waits for it.
    pub server_copy_wait_secs: u64,
}

impl Default for SentCopyOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            folder: None,
            folders: CopyFolders::default(),
            filed_by_server: false,
            batch_secs: 0,
            content: CopyContent::Full,
            drop_attachments_over_bytes: 0,
            on_failure: CopyOnFailure::Retry,
            retry_secs: 30,
            server_copy_wait_secs: 60,
        }
    }
}

impl SentCopyOptions {
    /// The per-type folder, else `folder`, else None (the detected Sent folder).
    pub fn folder_for(&self, kind: MessageKind) -> Option<CopyFolder> {
        let per_type = match kind {
            MessageKind::New => self
                .folders
                .new
                .as_ref()
                .map(|f| (f, "sent_copy.folders.new")),
            MessageKind::Reply => self
                .folders
                .reply
                .as_ref()
                .map(|f| (f, "sent_copy.folders.reply")),
        };
        per_type
            .or_else(|| self.folder.as_ref().map(|f| (f, "sent_copy.folder")))
            .map(|(name, setting)| CopyFolder {
                name: name.clone(),
                setting,
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Immutable id; the database keys everything by it, so renaming an account is safe.
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub user: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub imap: Server,
    pub smtp: Server,
    /// How the account signs in: `password` (the default) or `oauth2`.
    #[serde(default, skip_serializing_if = "AuthKind::is_password")]
    pub auth: AuthKind,
    /// Where an `oauth2` account signs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Settings>,
    /// The SMTP AUTH mechanism; unset, it follows `auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_auth: Option<SmtpAuth>,
    /// Use `[system_smtp]` instead of this account's own SMTP server.
    #[serde(default)]
    pub use_system_smtp: bool,
    /// Certificate checks off for this account (shown as insecure everywhere).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Run this to get the password instead of storing it (e.g. `pass show work/imap`).
    #[serde(default)]
    pub password_command: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The operator who owns this account; others see it only if named in `shared_with`.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub shared_with: Vec<String>,
    /// Addresses and domains whose mail this account skips.
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub preset: Option<String>,
    #[serde(default)]
    pub sync: SyncOptions,
    #[serde(default)]
    pub sent_copy: SentCopyOptions,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSmtp {
    pub server: Server,
    /// The login (unused with `smtp_auth = "none"`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The SMTP AUTH mechanism; unset: PLAIN if the server offers it, else LOGIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_auth: Option<SmtpAuth>,
    #[serde(default)]
    pub password_command: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    pub theme: Option<String>,
    /// Per-pane key overrides: `[ui.keys.triage] pair = "p"`.
    pub keys: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct General {
    /// Fold `user+tag@domain` to `user@domain` when matching customers.
    pub fold_plus_addresses: bool,
    /// Global deny list (addresses and domains, a domain includes its subdomains).
    pub deny: Vec<String>,
    /// How often the daemon looks for outbox work queued by other processes.
    pub outbox_poll_secs: u64,
}

impl Default for General {
    fn default() -> Self {
        Self {
            fold_plus_addresses: false,
            deny: Vec::new(),
            outbox_poll_secs: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub general: General,
    #[serde(default)]
    pub system_smtp: Option<SystemSmtp>,
    #[serde(default)]
    pub ui: UiConfig,
    /// Who is told when sync or sending goes wrong (`mailroom alerts …`).
    #[serde(default, skip_serializing_if = "AlertsConfig::is_default")]
    pub alerts: AlertsConfig,
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountConfig>,
    /// Where the state lives (`[store] url`); `MAILROOM_STORE` / `--store` win over it.
    #[serde(default)]
    pub store: StoreSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE` (no password: PGPASSFILE).
    pub url: Option<String>,
    /// The installation's sealing key file, distributed by the admin to every host (else the
    /// home's `key`; `MAILROOM_KEY` wins over both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// Where an installation's state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The embedded default: one SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, for teams across hosts.
    Postgres(String),
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(AppError::usage(
                    "the store URL sqlite:// names no file",
                    "write it as sqlite:///absolute/path/mailroom.db",
                ));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_string()));
        }
        Err(AppError::usage(
            format!("{url:?} is not a store URL mailroom knows"),
            "use sqlite:///path/mailroom.db (the default) or postgres://USER@HOST:PORT/DATABASE",
        ))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, StoreUrl::Postgres(_))
    }

    /// How the URL reads for people (it never holds a password).
    pub fn display(&self) -> String {
        match self {
            StoreUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            StoreUrl::Postgres(u) => u.clone(),
        }
    }
}

impl Config {
    /// The installation's settings: config.toml; on PostgreSQL, this host's file merged with
    /// the shared settings in the database (see [`shared`]).
    pub fn load(home: &Home) -> Result<Config> {
        let text = read_host_text(home)?;
        match postgres_url(home, &text)? {
            None => parse_file(home, &text),
            Some(url) => shared::load(home, &text, &*shared::db(&url)?.conn()?),
        }
    }

    /// [`Config::load`] through a connection the caller holds (the service context's pool).
    pub fn load_with(home: &Home, store: &crate::store::Store) -> Result<Config> {
        let text = read_host_text(home)?;
        match postgres_url(home, &text)? {
            None => parse_file(home, &text),
            Some(_) => shared::load(home, &text, store),
        }
    }

    /// config.toml alone, whatever the store: what says where the store is.
    pub fn load_host(home: &Home) -> Result<Config> {
        parse_file(home, &read_host_text(home)?)
    }

    pub fn account(&self, name: &str) -> Result<&AccountConfig> {
        self.accounts
            .get(name)
            .ok_or_else(|| AppError::not_found("account", name, "see `mailroom account list`"))
    }

    pub fn account_by_id(&self, id: &str) -> Option<(&String, &AccountConfig)> {
        self.accounts.iter().find(|(_, a)| a.id == id)
    }

    /// Resolves the `--account` choice: a name, or the only account when there is one.
    pub fn pick_account(&self, name: Option<&str>) -> Result<(&String, &AccountConfig)> {
        match name {
            Some(n) => self
                .accounts
                .get_key_value(n)
                .ok_or_else(|| AppError::not_found("account", n, "see `mailroom account list`")),
            None => {
                let mut it = self.accounts.iter();
                match (it.next(), it.next()) {
                    (Some(one), None) => Ok(one),
                    (None, _) => Err(AppError::usage(
                        "no account is configured",
                        "add one with `mailroom account add NAME --email … --imap … --smtp …`",
                    )
                    .with_code(Code::AccountsNone)),
                    _ => Err(AppError::usage(
                        "several accounts are configured",
                        "name one with --account NAME",
                    )),
                }
            }
        }
    }
}

/// config.toml's text (empty when there is none).
pub(crate) fn read_host_text(home: &Home) -> Result<String> {
    let path = home.config_path();
    match fs::read_to_string(&path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(AppError::local(
            format!("cannot read {}", path.display()),
            e.to_string(),
            "check the file's permissions",
        )
        .with_code(Code::ConfigInvalid)),
    }
}

/// config.toml's text as an editable document (comments and layout kept).
pub(crate) fn host_document(text: &str) -> Result<toml_edit::DocumentMut> {
    text.parse().map_err(|e: toml_edit::TomlError| {
        AppError::local(
            "config.toml is not valid TOML",
            e.to_string(),
            "fix the file by hand",
        )
        .with_code(Code::ConfigInvalid)
    })
}

fn parse_file(home: &Home, text: &str) -> Result<Config> {
    let config = parse_host(home, text)?;
    config.alerts.check()?;
    Ok(config)
}

/// The host file's settings as written, before any check of their values.
fn parse_host(home: &Home, text: &str) -> Result<Config> {
    toml::from_str(text).map_err(|e| {
        AppError::local(
            format!("{} is not valid", home.config_path().display()),
            e.to_string(),
            "fix the named key (unknown keys are rejected), or move the file away to start fresh",
        )
        .with_code(Code::ConfigInvalid)
    })
}

/// The PostgreSQL store this home uses, if it uses one (`MAILROOM_STORE`, else `[store] url`
/// in the host file `text`).
fn postgres_url(home: &Home, text: &str) -> Result<Option<StoreUrl>> {
    let url = match std::env::var("MAILROOM_STORE") {
        Ok(u) if !u.trim().is_empty() => StoreUrl::parse(u.trim())?,
        _ => match parse_host(home, text)?.store.url {
            Some(u) => StoreUrl::parse(&u)?,
            None => return Ok(None),
        },
    };
    Ok(url.is_postgres().then_some(url))
}

/// Edits the settings in place, preserving comments and formatting: config.toml on SQLite
/// (written atomically); on PostgreSQL the shared document in the database, under its row
/// lock (see [`shared::edit`]).
pub fn edit(home: &Home, f: impl FnOnce(&mut toml_edit::DocumentMut) -> Result<()>) -> Result<()> {
    if let Some(url) = postgres_url(home, &read_host_text(home)?)? {
        shared::edit(home, &*shared::db(&url)?.conn()?, f)?;
        return Ok(());
    }
    edit_file(home, f)
}

/// Edits `config.toml` in place, preserving comments and formatting, then writes it atomically.
pub fn edit_file(
    home: &Home,
    f: impl FnOnce(&mut toml_edit::DocumentMut) -> Result<()>,
) -> Result<()> {
    home.ensure()?;
    let path = home.config_path();
    // A new file starts with a header line; it is added on writing, since a document holding
    // only a comment would keep it as trailing text, below everything the edit adds.
    let (text, header) = match fs::read_to_string(&path) {
        Ok(t) => (t, ""),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            String::new(),
            "# mailroom settings; state lives in mailroom.db, secrets never here.\n",
        ),
        Err(e) => return Err(e.into()),
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        AppError::local(
            format!("{} is not valid TOML", path.display()),
            e.to_string(),
            "fix the file by hand",
        )
        .with_code(Code::ConfigInvalid)
    })?;
    f(&mut doc)?;
    let body = doc.to_string();
    let out = if header.is_empty() {
        body
    } else {
        format!("{header}\n{}", body.trim_start_matches('\n'))
    };
    // Validate before writing: an edit never leaves a config that fails to load.
    toml::from_str::<Config>(&out).map_err(|e| {
        AppError::local(
            "the edited configuration would be invalid",
            e.to_string(),
            "report this as a bug",
        )
    })?;
    write_atomic(&path, out.as_bytes(), 0o600)
}

/// Serialises an account for writing a new one: short tables (the servers) inline, the option
/// tables `[accounts.NAME.sync]` and `[accounts.NAME.sent_copy]` as their own sections, so the
/// file reads like the documentation and a user can add comments anywhere.
pub fn account_table(acct: &AccountConfig) -> Result<toml_edit::Item> {
    let mut table = serialize_account(acct)?;
    prune_defaults(&mut table)?;
    expand_long_inline_tables(&mut table);
    Ok(toml_edit::Item::Table(table))
}

/// A new account is written with the options that differ from the defaults only: a value
/// written out is frozen, so a better default in a later release (say `sync.batch_size`) would
/// never reach the account. `account show` prints the effective values; docs/guide.md lists
/// the defaults.
fn prune_defaults(table: &mut toml_edit::Table) -> Result<()> {
    let same = merge::same_item;
    for (key, default) in [
        ("enabled", toml_edit::value(true)),
        ("use_system_smtp", toml_edit::value(false)),
        ("insecure_skip_verify", toml_edit::value(false)),
    ] {
        if table.get(key).is_some_and(|v| same(v, &default)) {
            table.remove(key);
        }
    }
    for key in ["aliases", "shared_with", "deny"] {
        if table
            .get(key)
            .and_then(|v| v.as_array())
            .is_some_and(|a| a.is_empty())
        {
            table.remove(key);
        }
    }
    let defaults = [
        ("sync", serialize_table(&SyncOptions::default())?),
        ("sent_copy", serialize_table(&SentCopyOptions::default())?),
    ];
    for (key, default) in defaults {
        let Some(sub) = table.get_mut(key).and_then(|i| i.as_table_like_mut()) else {
            continue;
        };
        for (k, v) in default.iter() {
            if sub.get(k).is_some_and(|mine| same(mine, v)) {
                sub.remove(k);
            }
        }
        if sub.is_empty() {
            table.remove(key);
        }
    }
    Ok(())
}

fn serialize_table<T: Serialize>(value: &T) -> Result<toml_edit::Table> {
    let doc = toml_edit::ser::to_document(value).map_err(|e| {
        AppError::local(
            "cannot serialise the default settings",
            e.to_string(),
            "report this as a bug",
        )
    })?;
    Ok(doc.as_table().clone())
}

fn serialize_account(acct: &AccountConfig) -> Result<toml_edit::Table> {
    let doc = toml_edit::ser::to_document(acct).map_err(|e| {
        AppError::local(
            "cannot serialise the account",
            e.to_string(),
            "report this as a bug",
        )
    })?;
    Ok(doc.as_table().clone())
}

/// An inline table of more than three keys no longer fits one readable line.
fn expand_long_inline_tables(table: &mut toml_edit::Table) {
    for (_, item) in table.iter_mut() {
        if let toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) = item
            && t.len() > 3
        {
            let mut sub = std::mem::take(t).into_table();
            expand_long_inline_tables(&mut sub);
            *item = toml_edit::Item::Table(sub);
        }
    }
}

/// Writes the change `old` → `new` of account `name` into `doc`: only the settings that differ
/// are touched, in place, so the user's comments, key order and table style survive.
pub fn update_account(
    doc: &mut toml_edit::DocumentMut,
    name: &str,
    old: &AccountConfig,
    new: &AccountConfig,
) -> Result<()> {
    let old = serialize_account(old)?;
    let new = serialize_account(new)?;
    let target = doc
        .get_mut("accounts")
        .and_then(|a| a.get_mut(name))
        .filter(|t| t.is_table_like())
        .ok_or_else(|| {
            AppError::not_found(
                "account",
                name,
                "it was removed from config.toml meanwhile; see `mailroom account list`",
            )
        })?;
    merge::apply_changes(target, &old, &new);
    Ok(())
}

/// Renames account `from` to `to` in `doc`: its table moves (comments and layout kept) and
/// alert channels naming it (`account`, `via`) follow.
pub fn rename_account(doc: &mut toml_edit::DocumentMut, from: &str, to: &str) -> Result<()> {
    let accounts = doc
        .get_mut("accounts")
        .and_then(|a| a.as_table_like_mut())
        .ok_or_else(|| {
            AppError::not_found(
                "account",
                from,
                "it was removed from config.toml meanwhile; see `mailroom account list`",
            )
        })?;
    let Some(table) = accounts.remove(from) else {
        return Err(AppError::not_found(
            "account",
            from,
            "it was removed from config.toml meanwhile; see `mailroom account list`",
        ));
    };
    accounts.insert(to, table);
    let channels = doc
        .get_mut("alerts")
        .and_then(|a| a.get_mut("channels"))
        .and_then(|c| c.as_array_of_tables_mut());
    for ch in channels.into_iter().flat_map(|c| c.iter_mut()) {
        for key in ["account", "via"] {
            if ch.get(key).and_then(|v| v.as_str()) == Some(from) {
                ch[key] = toml_edit::value(to);
            }
        }
    }
    Ok(())
}

/// Writes the system SMTP profile: a new one as a `[system_smtp]` section (defaults left out),
/// a change only where it differs, in place, so comments and layout survive.
pub fn update_system_smtp(
    doc: &mut toml_edit::DocumentMut,
    old: Option<&SystemSmtp>,
    new: &SystemSmtp,
) -> Result<()> {
    let new_table = serialize_table(new)?;
    if let (Some(old), Some(target)) = (
        old,
        doc.get_mut("system_smtp").filter(|t| t.is_table_like()),
    ) {
        merge::apply_changes(target, &serialize_table(old)?, &new_table);
        return Ok(());
    }
    let mut table = new_table;
    if table
        .get("insecure_skip_verify")
        .is_some_and(|v| merge::same_item(v, &toml_edit::value(false)))
    {
        table.remove("insecure_skip_verify");
    }
    doc["system_smtp"] = toml_edit::Item::Table(table);
    Ok(())
}

/// Writes via a temporary file and rename, so a crash or full disk never leaves half a file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_parse_defaults_ports() {
        let s = Server::parse("imap.example.com", Security::Tls, default_imap_port).unwrap();
        assert_eq!(s.port, 993);
        let s = Server::parse("127.0.0.1:1143", Security::Starttls, default_imap_port).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 1143));
        let s = Server::parse("[::1]:25", Security::None, default_smtp_port).unwrap();
        assert_eq!(s.host, "::1");
        assert!(Server::parse("host:notaport", Security::Tls, default_imap_port).is_err());
    }

    #[test]
    fn unknown_keys_are_rejected_and_edits_keep_comments() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        fs::write(
            home.config_path(),
            "# keep me\n[general]\nfold_plus_addresses = true\n",
        )
        .unwrap();
        edit(&home, |doc| {
            doc["general"]["deny"] = toml_edit::value(toml_edit::Array::from_iter(["spam.test"]));
            Ok(())
        })
        .unwrap();
        let text = fs::read_to_string(home.config_path()).unwrap();
        assert!(text.contains("# keep me"));
        let cfg = Config::load(&home).unwrap();
        assert_eq!(cfg.general.deny, vec!["spam.test".to_string()]);
        fs::write(home.config_path(), "[general]\nfold_plus_adresses = true\n").unwrap();
        let err = Config::load(&home).unwrap_err();
        assert!(err.detail.contains("fold_plus_adresses"), "{err}");
    }

    #[test]
    fn sent_copy_folder_per_type_beats_folder_beats_detected() {
        let sc: SentCopyOptions =
            toml::from_str("folder = \"Archive/Sent\"\n[folders]\nreply = \"Sent/Replies\"\n")
                .unwrap();
        let reply = sc.folder_for(MessageKind::Reply).unwrap();
        assert_eq!(
            (reply.name.as_str(), reply.setting),
            ("Sent/Replies", "sent_copy.folders.reply")
        );
        let new = sc.folder_for(MessageKind::New).unwrap();
        assert_eq!(
            (new.name.as_str(), new.setting),
            ("Archive/Sent", "sent_copy.folder")
        );
        assert_eq!(
            SentCopyOptions::default().folder_for(MessageKind::Reply),
            None
        );
        let err = toml::from_str::<SentCopyOptions>("[folders]\nforward = \"Fwd\"\n").unwrap_err();
        assert!(err.to_string().contains("forward"), "{err}");
    }

    #[test]
    fn history_scope_parses_dates_new_and_all_in_one_place() {
        let date = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(
            HistoryScope::parse("2026-01-05").unwrap(),
            HistoryScope::Since(date(2026, 1, 5))
        );
        assert_eq!(
            HistoryScope::parse(" 2026-01-05\n").unwrap(),
            HistoryScope::Since(date(2026, 1, 5))
        );
        assert_eq!(HistoryScope::parse("new").unwrap(), HistoryScope::NewOnly);
        assert_eq!(HistoryScope::parse(" NEW ").unwrap(), HistoryScope::NewOnly);
        assert_eq!(HistoryScope::parse("all").unwrap(), HistoryScope::All);
        assert_eq!(HistoryScope::parse("none").unwrap(), HistoryScope::All);
        for bad in [
            "May 1st",
            "2026-13-01",
            "2026-02-30",
            "",
            "newest",
            "01/05/2026",
        ] {
            let e = HistoryScope::parse(bad).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Usage, "{bad:?}: {e}");
            assert!(e.fix.contains("YYYY-MM-DD") && e.fix.contains("new"), "{e}");
        }
        // The exact client-side cut is midnight UTC of the date; `new` and all have none.
        assert_eq!(
            HistoryScope::parse("2026-01-05")
                .unwrap()
                .cutoff()
                .map(|t| t.to_rfc3339()),
            Some("2026-01-05T00:00:00+00:00".to_string())
        );
        assert_eq!(HistoryScope::NewOnly.cutoff(), None);
        assert_eq!(HistoryScope::All.cutoff(), None);
        assert_eq!(HistoryScope::NewOnly.value().as_deref(), Some("new"));
        assert_eq!(HistoryScope::All.value(), None);
    }

    #[test]
    fn history_scope_in_config_toml() {
        let o: SyncOptions = toml::from_str("since = \"new\"\n").unwrap();
        assert_eq!(o.since, HistoryScope::NewOnly);
        let o: SyncOptions = toml::from_str("since = \"2026-03-01\"\n").unwrap();
        assert_eq!(o.since.value().as_deref(), Some("2026-03-01"));
        assert_eq!(
            toml::from_str::<SyncOptions>("since = \"all\"\n")
                .unwrap()
                .since,
            HistoryScope::All
        );
        assert_eq!(SyncOptions::default().since, HistoryScope::All);
        // A bad value is an error at load time, naming the key, not a silent "all history".
        let e = toml::from_str::<SyncOptions>("since = \"yesterday\"\n").unwrap_err();
        assert!(
            e.to_string().contains("since") && e.to_string().contains("yesterday"),
            "{e}"
        );
        // Written back as the same string; the whole history is simply absent.
        let mut o = SyncOptions::default();
        assert!(!toml_edit::ser::to_string(&o).unwrap().contains("since"));
        o.since = HistoryScope::NewOnly;
        assert!(
            toml_edit::ser::to_string(&o)
                .unwrap()
                .contains("since = \"new\""),
        );
        o.since = HistoryScope::parse("2026-03-01").unwrap();
        let text = toml_edit::ser::to_string(&o).unwrap();
        assert_eq!(toml::from_str::<SyncOptions>(&text).unwrap(), o);
    }

    const COMMENTED: &str = r#"# mailroom settings; state lives in mailroom.db, secrets never here.

[general]
fold_plus_addresses = true   # we use plus addresses for newsletters

# Work: the big one.
[accounts.work]
id = "acc-work"
email = "me@work.test"
user   = "me@work.test"   # login name
imap = { host = "imap.work.test", port = 993, security = "tls" }
smtp = { host = "smtp.work.test", port = 587, security = "starttls" }
aliases = [
    "sales@work.test", # shared inbox
    "me@work.test",
]

# Sync tuned for the slow server.
[accounts.work.sync]
poll_secs = 60 # every minute
since = "2025-06-01"
idle = false

[accounts.work.sent_copy]
# The provider files sent mail itself.
filed_by_server = true

# Home: written inline.
[accounts.home]
id = "acc-home"
email = "me@home.test"
user = "me"
imap = { host = "imap.home.test", port = 0x3e1, security = "plain" }
smtp = { host = "smtp.home.test", port = 465, security = "tls" }
sync = { poll_secs = 300, mark_read = false }

[accounts.bare]
id = "acc-bare"
email = "me@bare.test"
user = "me@bare.test"
imap = { host = "imap.bare.test", port = 993 }
smtp = { host = "smtp.bare.test", port = 587 }

# end of file
"#;

    /// What `account edit` does: load, change, write the difference.
    fn edit_account(home: &Home, name: &str, change: impl FnOnce(&mut AccountConfig)) {
        let old = Config::load(home).unwrap().account(name).unwrap().clone();
        let mut new = old.clone();
        change(&mut new);
        edit(home, |doc| update_account(doc, name, &old, &new)).unwrap();
    }

    #[test]
    fn account_edits_change_only_what_changed_and_keep_comments_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        fs::write(home.config_path(), COMMENTED).unwrap();
        let since = |s| HistoryScope::parse(s).unwrap();

        // Sub-tables: one value changed, one removed (`--since all`), one added; a new top key.
        edit_account(&home, "work", |a| {
            a.sync.since = HistoryScope::All;
            a.sync.poll_secs = 30;
            a.sync.mark_read = true;
            a.enabled = false;
            a.user = "me".into();
            a.imap.port = 1993;
            a.aliases.push("boss@work.test".into());
        });
        // Inline tables: changed in place, a key added inside; a spelled-differently but
        // unchanged value (`0x3e1`, "plain") stays as written.
        edit_account(&home, "home", |a| {
            a.sync.mark_read = true;
            a.sync.since = since("2026-01-01");
        });
        // No sync table yet: one is created as a normal sub-table.
        edit_account(&home, "bare", |a| a.sync.since = since("new"));
        // Nothing changed: nothing is written differently.
        edit_account(&home, "work", |_| {});

        let text = fs::read_to_string(home.config_path()).unwrap();
        let want = r#"# mailroom settings; state lives in mailroom.db, secrets never here.

[general]
fold_plus_addresses = true   # we use plus addresses for newsletters

# Work: the big one.
[accounts.work]
id = "acc-work"
email = "me@work.test"
user   = "me"   # login name
imap = { host = "imap.work.test", port = 1993, security = "tls" }
smtp = { host = "smtp.work.test", port = 587, security = "starttls" }
aliases = [
    "sales@work.test", # shared inbox
    "me@work.test",
    "boss@work.test",
]
enabled = false

# Sync tuned for the slow server.
[accounts.work.sync]
poll_secs = 30 # every minute
idle = false
mark_read = true

[accounts.work.sent_copy]
# The provider files sent mail itself.
filed_by_server = true

# Home: written inline.
[accounts.home]
id = "acc-home"
email = "me@home.test"
user = "me"
imap = { host = "imap.home.test", port = 0x3e1, security = "plain" }
smtp = { host = "smtp.home.test", port = 465, security = "tls" }
sync = { poll_secs = 300, mark_read = true, since = "2026-01-01" }

[accounts.bare]
id = "acc-bare"
email = "me@bare.test"
user = "me@bare.test"
imap = { host = "imap.bare.test", port = 993 }
smtp = { host = "smtp.bare.test", port = 587 }

[accounts.bare.sync]
since = "new"

# end of file
"#;
        assert_eq!(text, want);

        let cfg = Config::load(&home).unwrap();
        let work = cfg.account("work").unwrap();
        assert_eq!(work.sync.since, HistoryScope::All);
        assert_eq!(work.sync.poll_secs, 30);
        assert!(work.sync.mark_read && !work.sync.idle && !work.enabled);
        assert!(work.sent_copy.filed_by_server);
        assert_eq!(work.imap.port, 1993);
        assert_eq!(work.aliases.len(), 3);
        let home_acct = cfg.account("home").unwrap();
        assert_eq!(home_acct.sync.since, since("2026-01-01"));
        assert!(home_acct.sync.mark_read);
        assert_eq!(home_acct.sync.poll_secs, 300);
        assert_eq!(home_acct.imap.security, Security::None);
        assert_eq!(
            cfg.account("bare").unwrap().sync.since,
            HistoryScope::NewOnly
        );
    }

    #[test]
    fn a_new_account_is_written_readably() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        let acct: AccountConfig = toml::from_str(
            "id = \"acc1\"\nemail = \"me@example.test\"\nuser = \"me\"\n\
             imap = { host = \"imap.example.test\", port = 993 }\n\
             smtp = { host = \"smtp.example.test\", port = 587, security = \"starttls\" }\n",
        )
        .unwrap();
        let item = account_table(&acct).unwrap();
        edit(&home, |doc| {
            doc["accounts"] = toml_edit::table();
            if let Some(t) = doc["accounts"].as_table_mut() {
                t.set_implicit(true);
            }
            doc["accounts"]["new"] = item;
            Ok(())
        })
        .unwrap();
        let text = fs::read_to_string(home.config_path()).unwrap();
        assert!(text.starts_with("# mailroom settings"), "{text}");
        assert!(text.contains("\n[accounts.new]\n"), "{text}");
        assert!(
            text.contains(
                "\nimap = { host = \"imap.example.test\", port = 993, security = \"tls\" }\n"
            ),
            "{text}"
        );
        // Defaults are not written out (a later, better default must reach the account).
        for default in [
            "enabled",
            "idle",
            "batch_size",
            "sent_copy",
            "aliases",
            "[accounts.new.sync]",
        ] {
            assert!(!text.contains(default), "{default} in {text}");
        }
        assert_eq!(Config::load(&home).unwrap().account("new").unwrap(), &acct);

        // What differs from the defaults is written, as sections.
        let mut acct = acct;
        acct.sync.poll_secs = 60;
        acct.sync.process = ProcessScope::UnreadOnly;
        acct.sent_copy.retry_secs = 30 + 1;
        acct.aliases = vec!["sales@example.test".into()];

        // Added to a user's file: below the other accounts, nothing else moves.
        fs::write(home.config_path(), COMMENTED).unwrap();
        let item = account_table(&acct).unwrap();
        edit(&home, |doc| {
            doc["accounts"]["new"] = item;
            Ok(())
        })
        .unwrap();
        let text = fs::read_to_string(home.config_path()).unwrap();
        let before_end = COMMENTED.trim_end_matches("# end of file\n");
        assert!(text.starts_with(before_end), "{text}");
        // A short table stays on one line; a long one becomes a section.
        assert!(
            text.ends_with("sent_copy = { retry_secs = 31 }\n\n# end of file\n"),
            "{text}"
        );
        assert!(
            text.contains("\nsync = { poll_secs = 60, process = \"unread_only\" }\n"),
            "{text}"
        );
        assert!(
            text.contains("aliases = [\"sales@example.test\"]"),
            "{text}"
        );
        assert_eq!(Config::load(&home).unwrap().account("new").unwrap(), &acct);
        let added = &text[before_end.len()..];
        assert!(
            added.starts_with("[accounts.new]\nid = \"acc1\"\n"),
            "{text}"
        );
        assert!(
            added.find("sync = {") < added.find("sent_copy = {"),
            "{text}"
        );
    }

    #[test]
    fn smtp_auth_is_stored_per_account_and_oauth_needs_oauth2_sign_in() {
        let base = "id = \"a\"\nemail = \"me@x.test\"\nuser = \"me\"\n\
                    imap = { host = \"i\", port = 993 }\nsmtp = { host = \"s\", port = 25 }\n";
        let a: AccountConfig = toml::from_str(base).unwrap();
        assert_eq!((a.auth, a.smtp_auth), (AuthKind::Password, None));
        let text = toml_edit::ser::to_string(&a).unwrap();
        assert!(!text.contains("auth"), "defaults are not written: {text}");
        let a: AccountConfig = toml::from_str(&format!(
            "{base}smtp_auth = \"none\"\nauth = \"password\"\n"
        ))
        .unwrap();
        assert_eq!(a.smtp_auth, Some(SmtpAuth::None));
        assert!(
            toml_edit::ser::to_string(&a)
                .unwrap()
                .contains("smtp_auth = \"none\"")
        );
        // `oauth2` is the other kind; an unknown one is an error naming the key.
        let a: AccountConfig = toml::from_str(&format!(
            "{base}auth = \"oauth2\"\n[oauth2]\nprovider = \"microsoft\"\nclient_id = \"c1\"\n"
        ))
        .unwrap();
        assert_eq!(a.auth, AuthKind::OAuth2);
        assert_eq!(a.oauth2.as_ref().unwrap().client_id, "c1");
        let e =
            toml::from_str::<AccountConfig>(&format!("{base}auth = \"kerberos\"\n")).unwrap_err();
        assert!(e.to_string().contains("kerberos"), "{e}");
        assert!(SmtpAuth::check(Some(SmtpAuth::Plain), AuthKind::OAuth2).is_err());
        assert!(SmtpAuth::check(Some(SmtpAuth::Oauthbearer), AuthKind::OAuth2).is_ok());
        for m in ["plain", "LOGIN", " none ", "xoauth2", "oauthbearer"] {
            assert_eq!(
                SmtpAuth::parse(m).unwrap().as_str(),
                m.trim().to_lowercase()
            );
        }
        let e = SmtpAuth::parse("cram-md5").unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Usage);
        assert!(
            e.fix.contains("plain, login, xoauth2, oauthbearer or none"),
            "{e}"
        );
        for m in [SmtpAuth::Xoauth2, SmtpAuth::Oauthbearer] {
            let e = SmtpAuth::check(Some(m), AuthKind::Password).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Usage);
            assert!(e.summary.contains("needs OAuth2 sign-in"), "{e}");
        }
        for m in [
            None,
            Some(SmtpAuth::Plain),
            Some(SmtpAuth::Login),
            Some(SmtpAuth::None),
        ] {
            assert!(SmtpAuth::check(m, AuthKind::Password).is_ok());
        }
    }

    #[test]
    fn empty_per_type_folders_are_not_written_out() {
        let table = toml_edit::ser::to_string(&SentCopyOptions::default()).unwrap();
        assert!(!table.contains("folders"), "{table}");
    }
}
