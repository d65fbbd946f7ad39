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

pub struct Vault {
    cipher: XChaCha20Poly1305,
}

impl Vault {
    /// Loads the key from `MAILROOM_KEY` or the home's key file, creating the file (0600) on first use.
    pub fn open(home: &Home) -> Result<Vault> {
        let key = match std::env::var("MAILROOM_KEY") {
            Ok(b64) => decode_key(b64.trim()).ok_or_else(|| {
                AppError::usage(
                    "MAILROOM_KEY is not a base64 32-byte key",
                    "generate one with `head -c32 /dev/urandom | base64`",
                )
            })?,
            Err(_) => load_or_create_key_file(home)?,
        };
        let cipher = XChaCha20Poly1305::new_from_slice(&key).map_err(|_| {
            AppError::local(
                "bad key length",
                "",
                "delete the key file and set passwords again",
            )
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
        let raw = B64
            .decode(sealed)
            .map_err(|_| AppError::needs_user("the stored password is damaged", "", fix))?;
        if raw.len() < 24 {
            return Err(AppError::needs_user(
                "the stored password is damaged",
                "",
                fix,
            ));
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
            })?;
        let s = String::from_utf8(plain)
            .map_err(|_| AppError::needs_user("the stored password is damaged", "", fix))?;
        Ok(SecretString::from(s))
    }
}

fn decode_key(b64: &str) -> Option<[u8; 32]> {
    B64.decode(b64).ok()?.try_into().ok()
}

fn load_or_create_key_file(home: &Home) -> Result<[u8; 32]> {
    let path = home.key_path();
    match fs::read_to_string(&path) {
        Ok(text) => decode_key(text.trim()).ok_or_else(|| {
            AppError::local(
                format!("the key file {} is damaged", path.display()),
                "",
                "restore it from a backup, or delete it and set every password again",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            home.ensure()?;
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
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(B64.encode(key).as_bytes())?;
                    f.sync_all()?;
                    Ok(key)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_key_file(home)
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
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
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(AppError::needs_user(
            format!("the password command failed ({})", out.status),
            err.lines().next().unwrap_or("").to_string(),
            "run the command by hand to see why, or fix password_command in config.toml",
        ));
    }
    let text = String::from_utf8(out.stdout).map_err(|_| {
        AppError::needs_user(
            "the password command printed non-UTF-8",
            "",
            "make it print the password as text",
        )
    })?;
    let first = text.lines().next().unwrap_or("").to_string();
    if first.is_empty() {
        return Err(AppError::needs_user(
            "the password command printed nothing",
            "",
            "make it print the password on its first line",
        ));
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
}
