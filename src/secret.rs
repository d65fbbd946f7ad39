//! Credentials at rest and in memory.
//!
//! Passwords are `SecretString` from the moment they are read; at rest they are sealed with
//! XChaCha20-Poly1305 under a 32-byte key kept in a 0600 key file in the home (or `MAILROOM_KEY`,
//! base64, for setups that keep the key elsewhere). The account id and the credential kind are the
//! associated data, so a sealed password cannot be swapped onto another account unnoticed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Home;
use crate::error::{AppError, Result};

#[derive(Clone)]
pub struct Vault {
    cipher: XChaCha20Poly1305,
}

impl Vault {
    /// Loads the key from `MAILROOM_KEY`, else the key file (`[store] key_file`, else the
    /// home's `key`), creating the file (0600) on first use. On PostgreSQL the key must be the
    /// installation's: the database keeps a check of it (a known value sealed with it, never
    /// the key), and a host whose key does not open that check gets no vault at all.
    pub fn open(home: &Home) -> Result<Vault> {
        let source = KeySource::of(home)?;
        let url = home.store_url()?;
        if url.is_postgres() {
            return open_checked(home, &url, &source);
        }
        let key = match source.existing()? {
            Some(k) => k,
            None => source.create(home)?,
        };
        Vault::from_key(&key)
    }

    fn from_key(key: &[u8; 32]) -> Result<Vault> {
        let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| {
            AppError::local(
                "bad key length",
                "",
                "delete the key file and set passwords again",
            )
            .with_code(crate::error::Code::SecretKey)
        })?;
        Ok(Vault { cipher })
    }

    pub fn seal(&self, context: &str, secret: &SecretString) -> Result<String> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| {
            AppError::local(
                "no randomness available",
                e.to_string(),
                "check /dev/urandom",
            )
        })?;
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose_secret().as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                AppError::local("cannot encrypt the password", "", "report this as a bug")
            })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(B64.encode(out))
    }

    pub fn open_sealed(&self, context: &str, sealed: &str) -> Result<SecretString> {
        let fix = "the key file changed or the database was copied without it: set the password again with `mailroom account set-password NAME`";
        let raw = B64.decode(sealed).map_err(|_| {
            AppError::needs_user("the stored password is damaged", "", fix)
                .with_code(crate::error::Code::SecretDamaged)
        })?;
        if raw.len() < 24 {
            return Err(
                AppError::needs_user("the stored password is damaged", "", fix)
                    .with_code(crate::error::Code::SecretDamaged),
            );
        }
        let (nonce, ct) = raw.split_at(24);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                AppError::needs_user("the stored password cannot be decrypted", "", fix)
                    .with_code(crate::error::Code::SecretDamaged)
            })?;
        let s = String::from_utf8(plain).map_err(|_| {
            AppError::needs_user("the stored password is damaged", "", fix)
                .with_code(crate::error::Code::SecretDamaged)
        })?;
        Ok(SecretString::from(s))
    }
}

/// What an account signs in to its servers with: a password, or OAuth2 tokens that a
/// [`TokenSource`] keeps fresh (IMAP and SMTP ask it at every sign-in). Cheap to clone.
#[derive(Clone)]
pub enum Credential {
    Password(SecretString),
    OAuth2(std::sync::Arc<dyn TokenSource>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password(_) => f.write_str("Credential::Password([REDACTED])"),
            Credential::OAuth2(_) => f.write_str("Credential::OAuth2([REDACTED])"),
        }
    }
}

/// An OAuth2 access token and which one it is: `generation` counts the tokens an account has
/// had, so a token a server refused is told apart from one another process fetched since.
#[derive(Clone)]
pub struct AccessToken {
    pub token: SecretString,
    pub generation: i64,
}

/// Hands out an account's OAuth2 access tokens, refreshing them when needed. Implemented a
/// floor up (`tokens.rs`: the store, the lease, the authorization server); IMAP and SMTP only
/// ask.
pub trait TokenSource: Send + Sync {
    /// A token that is good for a while yet.
    fn current(&self) -> futures::future::BoxFuture<'_, Result<AccessToken>>;
    /// A server refused `used`: a newer token (refreshed once for this, or already refreshed
    /// by another process), or the error that says to sign in again.
    fn after_rejection<'a>(
        &'a self,
        used: &'a AccessToken,
    ) -> futures::future::BoxFuture<'a, Result<AccessToken>>;
    /// A server refused a fresh token as well; `server` and `words` say who and how. Recorded
    /// (so nobody asks again until the user signs in), and the error names the fix.
    fn refused<'a>(
        &'a self,
        server: &'a str,
        words: &'a str,
    ) -> futures::future::BoxFuture<'a, AppError>;
}

fn decode_key(b64: &str) -> Option<[u8; 32]> {
    B64.decode(b64).ok()?.try_into().ok()
}

/// Where this host's sealing key comes from.
enum KeySource {
    Env([u8; 32]),
    File(std::path::PathBuf),
}

impl KeySource {
    fn of(home: &Home) -> Result<KeySource> {
        if let Ok(b64) = std::env::var("MAILROOM_KEY") {
            return decode_key(b64.trim()).map(KeySource::Env).ok_or_else(|| {
                AppError::usage(
                    "MAILROOM_KEY is not a base64 32-byte key",
                    "generate one with `head -c32 /dev/urandom | base64`",
                )
                .with_code(crate::error::Code::SecretKey)
            });
        }
        let configured = crate::config::Config::load_host(home)?.store.key_file;
        Ok(KeySource::File(
            configured.unwrap_or_else(|| home.key_path()),
        ))
    }

    fn describe(&self) -> String {
        match self {
            KeySource::Env(_) => "MAILROOM_KEY".into(),
            KeySource::File(p) => format!("the key file {}", p.display()),
        }
    }

    /// The key, if this host has one (a damaged file is an error, a missing one is None).
    fn existing(&self) -> Result<Option<[u8; 32]>> {
        let path = match self {
            KeySource::Env(k) => return Ok(Some(*k)),
            KeySource::File(p) => p,
        };
        match fs::read_to_string(path) {
            Ok(text) => decode_key(text.trim()).map(Some).ok_or_else(|| {
                AppError::local(
                    format!("the key file {} is damaged", path.display()),
                    "",
                    "restore it from a backup (or copy it from another host of the installation), or delete it and set every password again",
                )
                .with_code(crate::error::Code::SecretKey)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A fresh key in the key file (0600); two processes racing to create it agree on one.
    fn create(&self, home: &Home) -> Result<[u8; 32]> {
        let path = match self {
            KeySource::Env(k) => return Ok(*k),
            KeySource::File(p) => p,
        };
        if *path == home.key_path() {
            home.ensure()?;
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| {
            AppError::local(
                "no randomness available",
                e.to_string(),
                "check /dev/urandom",
            )
        })?;
        // create_new: two processes racing to create the key must not overwrite each other.
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut f) => {
                f.write_all(B64.encode(key).as_bytes())?;
                f.sync_all()?;
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match self.existing()? {
                Some(k) => Ok(k),
                None => self.create(home),
            },
            Err(e) => Err(e.into()),
        }
    }
}

/// What the key check seals: a known value, under a context of its own.
const CHECK_CONTEXT: &str = "mailroom/key-check";
const CHECK_VALUE: &str = "the sealing key of this mailroom installation";

/// On PostgreSQL: the vault, once this host's key is shown to be the installation's. The
/// first key to open a vault records the check; a host without a key never makes one up
/// while a check exists; a mismatch touches nothing.
fn open_checked(home: &Home, url: &crate::config::StoreUrl, source: &KeySource) -> Result<Vault> {
    static VERIFIED: std::sync::Mutex<Vec<(String, [u8; 32])>> = std::sync::Mutex::new(Vec::new());
    let id = url.display();
    if let Some(key) = source.existing()?
        && VERIFIED
            .lock()
            .is_ok_and(|v| v.iter().any(|(u, k)| *u == id && *k == key))
    {
        return Vault::from_key(&key);
    }
    let store = crate::config::shared::db(url)?.conn()?;
    let recorded = store.key_check()?;
    let key = match (&recorded, source.existing()?) {
        (_, Some(k)) => k,
        (Some(_), None) => return Err(key_missing(home, source)),
        (None, None) => source.create(home)?,
    };
    let vault = Vault::from_key(&key)?;
    let check = match recorded {
        Some(c) => c,
        None => {
            let sealed = vault.seal(CHECK_CONTEXT, &SecretString::from(CHECK_VALUE))?;
            store.record_key_check(&sealed, &crate::store::hostname())?
        }
    };
    match vault.open_sealed(CHECK_CONTEXT, &check) {
        Ok(v) if v.expose_secret() == CHECK_VALUE => {
            if let Ok(mut v) = VERIFIED.lock() {
                v.push((id, key));
            }
            Ok(vault)
        }
        _ => Err(key_mismatch(home, source)),
    }
}

fn key_fix(home: &Home) -> String {
    format!(
        "copy the key file from a host where mailroom works to {} (or name it with `key_file = PATH` under [store] in config.toml), or set MAILROOM_KEY to the installation's key",
        home.key_path().display()
    )
}

fn key_mismatch(home: &Home, source: &KeySource) -> AppError {
    AppError::needs_user(
        "this host's sealing key is not the installation's key",
        format!(
            "{} does not open the key check the PostgreSQL store keeps; nothing was read or changed",
            source.describe()
        ),
        key_fix(home),
    )
    .with_code(crate::error::Code::KeyMismatch)
}

fn key_missing(home: &Home, source: &KeySource) -> AppError {
    AppError::needs_user(
        "this host has no sealing key, and the installation has one",
        format!(
            "{} does not exist, and the PostgreSQL store's secrets are sealed with the installation's key (a fresh key would open none of them); nothing was read or changed",
            source.describe()
        ),
        key_fix(home),
    )
    .with_code(crate::error::Code::KeyMismatch)
}

/// Runs a password command (`sh -c`), taking the first line of its output as the password.
pub fn run_password_command(cmd: &str) -> Result<SecretString> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| {
            AppError::needs_user(
                "the password command could not run",
                e.to_string(),
                "check password_command in config.toml",
            )
            .with_code(crate::error::Code::SecretCommand)
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(AppError::needs_user(
            format!("the password command failed ({})", out.status),
            err.lines().next().unwrap_or("").to_string(),
            "run the command by hand to see why, or fix password_command in config.toml",
        )
        .with_code(crate::error::Code::SecretCommand));
    }
    let text = String::from_utf8(out.stdout).map_err(|_| {
        AppError::needs_user(
            "the password command printed non-UTF-8",
            "",
            "make it print the password as text",
        )
        .with_code(crate::error::Code::SecretCommand)
    })?;
    let first = text.lines().next().unwrap_or("").to_string();
    if first.is_empty() {
        return Err(AppError::needs_user(
            "the password command printed nothing",
            "",
            "make it print the password on its first line",
        )
        .with_code(crate::error::Code::SecretCommand));
    }
    Ok(SecretString::from(first))
}

/// Reads a password from stdin (one line, trailing newline removed).
pub fn read_password_stdin() -> Result<SecretString> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        return Err(AppError::usage(
            "no password on stdin",
            "pipe the password in: `printf %s \"$PW\" | mailroom account add … --password-stdin`",
        ));
    }
    Ok(SecretString::from(pw))
}

/// Asks for a password on the terminal without echoing it (Enter ends it, Backspace takes back
/// a character, Ctrl-C or Ctrl-D on an empty line cancels). Without a terminal on stdin it
/// says how to pass one instead.
pub fn prompt_password(prompt: &str) -> Result<SecretString> {
    use std::io::{IsTerminal, Read};
    use std::os::fd::AsRawFd;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(AppError::usage(
            "no terminal to ask for the password",
            "use --password-stdin or --password-command CMD",
        ));
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let fd = stdin.as_raw_fd();
    let _quiet = Quiet::start(fd)?;
    let mut typed: Vec<u8> = Vec::new();
    let mut byte = [0u8; 1];
    let mut input = stdin.lock();
    let outcome = loop {
        match input.read(&mut byte) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(AppError::from(e)),
        }
        match byte[0] {
            b'\r' | b'\n' => break Ok(()),
            // Ctrl-C, or Ctrl-D with nothing typed.
            3 => break Err(AppError::usage("cancelled", "")),
            4 if typed.is_empty() => break Err(AppError::usage("cancelled", "")),
            // Backspace / DEL: one character back (all bytes of a UTF-8 character).
            8 | 127 => while typed.pop().is_some_and(|b| b & 0xC0 == 0x80) {},
            b => typed.push(b),
        }
    };
    drop(_quiet);
    eprintln!();
    outcome?;
    String::from_utf8(typed)
        .map(SecretString::from)
        .map_err(|_| AppError::usage("the password is not valid UTF-8", "type it again"))
}

/// The terminal with echo, line editing and signal keys off, restored when dropped (also when
/// the prompt fails).
struct Quiet {
    fd: i32,
    saved: libc::termios,
}

impl Quiet {
    fn start(fd: i32) -> Result<Quiet> {
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr fills the struct it is given; it is read only when the call worked.
        if unsafe { libc::tcgetattr(fd, saved.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let saved = unsafe { saved.assume_init() };
        let mut quiet = saved;
        quiet.c_lflag &= !(libc::ECHO | libc::ICANON | libc::ISIG);
        quiet.c_cc[libc::VMIN] = 1;
        quiet.c_cc[libc::VTIME] = 0;
        // SAFETY: a valid termios for an open terminal descriptor.
        if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(Quiet { fd, saved })
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        // SAFETY: puts back the settings read from the same descriptor.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSAFLUSH, &self.saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_roundtrip_and_context_binding() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        let v = Vault::open(&home).unwrap();
        let s = v
            .seal("acct1/imap", &SecretString::from("hunter2"))
            .unwrap();
        assert!(!s.contains("hunter2"));
        assert_eq!(
            v.open_sealed("acct1/imap", &s).unwrap().expose_secret(),
            "hunter2"
        );
        assert!(v.open_sealed("acct2/imap", &s).is_err());
        // The key persists: a second vault opens what the first sealed.
        let v2 = Vault::open(&home).unwrap();
        assert_eq!(
            v2.open_sealed("acct1/imap", &s).unwrap().expose_secret(),
            "hunter2"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(home.key_path()).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    /// On PostgreSQL the first key records the check; another key, or none, is refused with
    /// `key.mismatch` and no key file is made up; the right key opens what the first sealed.
    #[test]
    fn on_postgres_one_key_per_installation() {
        let Some(pg) = crate::store::sql::engines::PgScratch::new() else {
            return;
        };
        let home_at = |dir: &tempfile::TempDir| {
            let home = Home {
                root: dir.path().to_path_buf(),
            };
            fs::write(
                home.config_path(),
                format!("[store]\nurl = \"{}\"\n", pg.url),
            )
            .unwrap();
            home
        };
        let (da, db, dc) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (a, b, c) = (home_at(&da), home_at(&db), home_at(&dc));
        let sealed = Vault::open(&a)
            .unwrap()
            .seal("a1/imap", &SecretString::from("pw"))
            .unwrap();
        // b has no key: refused, and none is created.
        let err = Vault::open(&b).err().unwrap();
        assert_eq!(err.code, crate::error::Code::KeyMismatch);
        assert!(err.fix.contains("copy the key file"), "{}", err.fix);
        assert!(!b.key_path().exists(), "no key is made up");
        // c has a key of its own: refused with the words that say so.
        fs::write(c.key_path(), B64.encode([7u8; 32])).unwrap();
        let err = Vault::open(&c).err().unwrap();
        assert_eq!(
            err.summary,
            "this host's sealing key is not the installation's key"
        );
        // The installation's key, distributed through [store] key_file: it works.
        fs::write(
            c.config_path(),
            format!(
                "[store]\nurl = \"{}\"\nkey_file = \"{}\"\n",
                pg.url,
                a.key_path().display()
            ),
        )
        .unwrap();
        let v = Vault::open(&c).unwrap();
        assert_eq!(
            v.open_sealed("a1/imap", &sealed).unwrap().expose_secret(),
            "pw"
        );
    }
}
