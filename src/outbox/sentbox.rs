//! The Sent folder over IMAP for the copy step: find it, look a Message-ID up and tell our own
//! copies (they carry `X-Mailroom-Copy: TOKEN`) from the server's, APPEND a copy and take back a
//! duplicate we made when the server filed its own copy late.

use crate::secret::Credential;
use futures::TryStreamExt;

use crate::config::CopyFolder;
use crate::error::{AppError, Result};
use crate::imap::discovery::{self, FolderInfo};
use crate::imap::{ImapSession, ImapTarget, append, connect};

/// The header our Sent copies carry, first in the message, with the item's copy token.
pub const COPY_HEADER: &str = "X-Mailroom-Copy";

/// The copy as appended: `X-Mailroom-Copy: TOKEN` before the bytes SMTP got (or the copy's own).
pub fn with_copy_token(bytes: &[u8], token: &str) -> Vec<u8> {
    let token: String = token.chars().filter(char::is_ascii_alphanumeric).collect();
    let mut out = Vec::with_capacity(bytes.len() + COPY_HEADER.len() + token.len() + 4);
    out.extend_from_slice(format!("{COPY_HEADER}: {token}\r\n").as_bytes());
    out.extend_from_slice(bytes);
    out
}

/// The copy token in a header section (`X-Mailroom-Copy`, any case), if there is one.
pub fn copy_token_in(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let name = COPY_HEADER.to_ascii_lowercase();
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim().to_ascii_lowercase() == name)
            .then(|| v.trim().to_string())
            .filter(|v| !v.is_empty())
    })
}

/// How to recognise our own copy: its token, and (for a copy appended before tokens existed)
/// the UID the APPEND reported.
#[derive(Debug, Clone, Default)]
pub struct Ours {
    pub token: Option<String>,
    /// (UIDVALIDITY, UID)
    pub uid: Option<(u32, u32)>,
}

/// The copies of one message found in the selected folder, ours told from the server's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copies {
    /// Appended by mailroom for this item (its token, or its recorded UID).
    pub ours: Vec<u32>,
    /// Without our token: the server filed them (or someone else put them there).
    pub theirs: Vec<u32>,
}

impl Copies {
    pub fn is_empty(&self) -> bool {
        self.ours.is_empty() && self.theirs.is_empty()
    }
}

pub struct SentBox {
    session: ImapSession,
    /// The server's folders, listed once per connection: switching folders needs no new LIST.
    folders: Vec<FolderInfo>,
    /// What was asked for (None = the Sent folder), to tell whether a switch is due.
    pub wanted: Option<String>,
    /// The Sent folder the user chose with `folders NAME --sent`; else the server's \Sent.
    chosen_sent: Option<String>,
    /// Decoded name (for people).
    pub folder: String,
    /// Wire name (modified UTF-7).
    wire: String,
    pub uidvalidity: u32,
    uidplus: bool,
}

fn perr(what: &str) -> impl FnOnce(async_imap::error::Error) -> AppError + '_ {
    move |e| connect::protocol_error(what, e)
}

impl SentBox {
    /// Connects, lists the folders and selects the copy folder (`folder` overrides the Sent
    /// folder: `chosen_sent` when the user chose one, else the one the server marks or names).
    pub async fn open(
        target: &ImapTarget,
        credential: &Credential,
        folder: Option<&CopyFolder>,
        chosen_sent: Option<String>,
    ) -> Result<SentBox> {
        let mut session = connect::connect(target, credential).await?;
        let caps = session.capabilities().await.map_err(perr("CAPABILITY"))?;
        let uidplus = caps.has_str("UIDPLUS");
        let folders = match discovery::list_folders(&mut session).await {
            Ok(f) => f,
            Err(e) => {
                connect::logout(session).await;
                return Err(e);
            }
        };
        let mut b = SentBox {
            session,
            folders,
            wanted: None,
            chosen_sent,
            folder: String::new(),
            wire: String::new(),
            uidvalidity: 0,
            uidplus,
        };
        if let Err(e) = b.select(folder).await {
            b.close().await;
            return Err(e);
        }
        Ok(b)
    }

    /// Whether the copy folder `folder` is the one selected now.
    pub fn is_on(&self, folder: Option<&CopyFolder>) -> bool {
        !self.wire.is_empty() && self.wanted.as_deref() == folder.map(|f| f.name.as_str())
    }

    /// Selects another copy folder on the same connection. A folder that does not exist
    /// leaves the current selection as it was.
    pub async fn select(&mut self, folder: Option<&CopyFolder>) -> Result<()> {
        let found = match folder {
            Some(f) => discovery::find_named(&self.folders, &f.name),
            None => discovery::sent_folder(&self.folders, self.chosen_sent.as_deref()),
        };
        let Some(info) = found.cloned() else {
            if let (None, Some(name)) = (folder, &self.chosen_sent) {
                return Err(AppError::needs_user(
                    format!("the Sent folder {name:?} is gone from the server"),
                    "chosen with `mailroom folders NAME --sent`",
                    "choose the Sent folder again with `mailroom folders NAME --sent FOLDER`, or set sent_copy.folder in config.toml",
                ).with_code(crate::error::Code::FolderMissing));
            }
            return Err(match folder {
                Some(f) => AppError::needs_user(
                    format!("the folder {:?} for Sent copies does not exist", f.name),
                    format!("named by {} in config.toml", f.setting),
                    format!(
                        "create the folder {:?} on the server (e.g. in your mail client), or change {} in config.toml",
                        f.name, f.setting
                    ),
                ).with_code(crate::error::Code::FolderMissing),
                None => AppError::needs_user(
                    "no Sent folder was found on the server",
                    "neither a \\Sent special-use flag nor a known Sent name",
                    "set sent_copy.folder in config.toml to the folder that holds sent mail (`mailroom folders NAME` lists them)",
                ).with_code(crate::error::Code::FolderMissing),
            });
        };
        let mb = self
            .session
            .select(&info.wire_name)
            .await
            .map_err(perr("SELECT"))?;
        self.drain();
        self.wanted = folder.map(|f| f.name.clone());
        self.folder = info.name;
        self.wire = info.wire_name;
        self.uidvalidity = mb.uid_validity.unwrap_or(0);
        Ok(())
    }

    fn drain(&mut self) {
        while self.session.unsolicited_responses.try_recv().is_ok() {}
    }

    /// UIDs in Sent carrying this Message-ID (without <>), after letting the server report
    /// mail that arrived since the last command (a server-filed copy lands asynchronously).
    pub async fn find(&mut self, message_id: &str) -> Result<Vec<u32>> {
        self.session.noop().await.map_err(perr("NOOP"))?;
        let q = message_id.replace(['"', '\\', '\r', '\n'], "");
        let found = self
            .session
            .uid_search(format!("HEADER Message-ID \"<{q}>\""))
            .await
            .map_err(perr("UID SEARCH"))?;
        self.drain();
        let mut v: Vec<u32> = found.into_iter().collect();
        v.sort_unstable();
        Ok(v)
    }

    /// The copies of a message (by Message-ID) in the selected folder, each told by its
    /// `X-Mailroom-Copy` header: ours, or theirs (no token of ours). A copy whose header could
    /// not be read is never guessed at (nor taken for absent, which would append a second
    /// copy): that is an error, and the copy step tries again later.
    pub async fn copies(&mut self, message_id: &str, ours: &Ours) -> Result<Copies> {
        let uids = self.find(message_id).await?;
        let mut out = Copies::default();
        if uids.is_empty() {
            return Ok(out);
        }
        let set: Vec<String> = uids.iter().map(u32::to_string).collect();
        let query = format!("(UID BODY.PEEK[HEADER.FIELDS ({COPY_HEADER})])");
        let stream = self
            .session
            .uid_fetch(set.join(","), &query)
            .await
            .map_err(perr("UID FETCH"))?;
        let fetched: Vec<_> = stream.try_collect().await.map_err(perr("UID FETCH"))?;
        self.drain();
        for f in &fetched {
            let (Some(uid), Some(header)) = (f.uid, f.header()) else {
                continue;
            };
            if !uids.contains(&uid) || out.ours.contains(&uid) || out.theirs.contains(&uid) {
                continue;
            }
            let token = copy_token_in(header);
            let by_token = token.is_some() && token == ours.token;
            let by_uid = ours.token.is_none() && ours.uid == Some((self.uidvalidity, uid));
            if by_token || by_uid {
                out.ours.push(uid);
            } else {
                out.theirs.push(uid);
            }
        }
        if out.ours.len() + out.theirs.len() < uids.len() {
            return Err(AppError::transient(
                format!(
                    "the copies in {} could not be told apart (their headers did not come back)",
                    self.folder
                ),
                format!(
                    "UID FETCH of {} returned {} answer(s)",
                    set.join(","),
                    fetched.len()
                ),
                "mailroom looks again later; nothing is appended meanwhile",
            ));
        }
        out.ours.sort_unstable();
        out.theirs.sort_unstable();
        Ok(out)
    }

    /// APPENDs with \Seen and the send date; returns the new UID when the server says it.
    pub async fn append(&mut self, bytes: &[u8], sent_at: Option<&str>) -> Result<Option<u32>> {
        let date = sent_at
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| {
                d.with_timezone(&chrono::Utc)
                    .format("%d-%b-%Y %H:%M:%S +0000")
                    .to_string()
            });
        let res = append::append(
            &mut self.session,
            &self.wire,
            "\\Seen",
            date.as_deref(),
            bytes,
        )
        .await?;
        self.drain();
        Ok(match res {
            Some((validity, uid)) => {
                self.uidvalidity = validity;
                Some(uid)
            }
            None => None,
        })
    }

    /// Removes one message we appended (UID EXPUNGE only, never a plain EXPUNGE that would
    /// take other \Deleted mail). Returns false when the server lacks UIDPLUS.
    pub async fn remove(&mut self, uid: u32) -> Result<bool> {
        if !self.uidplus {
            return Ok(false);
        }
        let set = uid.to_string();
        let s = self
            .session
            .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
            .await
            .map_err(perr("UID STORE"))?;
        let _: Vec<_> = s.try_collect().await.map_err(perr("UID STORE"))?;
        let s = self
            .session
            .uid_expunge(&set)
            .await
            .map_err(perr("UID EXPUNGE"))?;
        let _: Vec<_> = s.try_collect().await.map_err(perr("UID EXPUNGE"))?;
        self.drain();
        Ok(true)
    }

    /// LOGOUT, bounded like every other goodbye.
    pub async fn close(self) {
        connect::logout(self.session).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_token_goes_first_and_is_read_back_in_any_case() {
        let raw = b"Message-ID: <a@example.test>\r\nSubject: x\r\n\r\nbody\r\n";
        let copy = with_copy_token(raw, "0a1b2c");
        assert!(copy.starts_with(b"X-Mailroom-Copy: 0a1b2c\r\nMessage-ID:"));
        assert!(copy.ends_with(raw), "the rest byte for byte");
        assert_eq!(copy_token_in(&copy).as_deref(), Some("0a1b2c"));
        assert_eq!(
            copy_token_in(b"x-mailroom-copy:   ff00 \r\n\r\n").as_deref(),
            Some("ff00")
        );
        assert_eq!(copy_token_in(b"\r\n"), None, "the server's copy has none");
        assert_eq!(copy_token_in(b"X-Mailroom-Copy:\r\n"), None);
        // A token is never a way to inject header lines.
        let evil = with_copy_token(b"\r\n", "ab\r\nBcc: x");
        assert!(evil.starts_with(b"X-Mailroom-Copy: abBccx\r\n\r\n"));
    }
}
