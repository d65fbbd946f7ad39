//! The Sent folder over IMAP for the copy step: find it, look a Message-ID up, APPEND a copy and
//! take back a duplicate we made when the server filed its own copy late.

use futures::TryStreamExt;
use secrecy::SecretString;

use crate::config::CopyFolder;
use crate::error::{AppError, Result};
use crate::imap::discovery::{self, FolderInfo};
use crate::imap::{ImapSession, ImapTarget, append, connect};

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
        password: &SecretString,
        folder: Option<&CopyFolder>,
        chosen_sent: Option<String>,
    ) -> Result<SentBox> {
        let mut session = connect::connect(target, password).await?;
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
