//! Drafts (issue 14): what an operator is writing, saved as they type, so nothing is lost to a
//! quit or a crash; and where its copy in the account's Drafts folder is, once uploaded. User
//! data: no rebuild ever removes a draft.

use rusqlite::{OptionalExtension, params};

use super::{Store, now};
use crate::error::Result;

/// A draft's content as the compose form holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewDraft {
    pub account_id: Option<String>,
    pub from_addr: Option<String>,
    pub to: String,
    pub cc: String,
    pub bcc: String,
    pub reply_to: String,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<String>,
    /// new|reply|reply_all|forward
    pub kind: String,
    pub source_id: Option<i64>,
}

/// A stored draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftRow {
    pub id: i64,
    pub operator: String,
    pub content: NewDraft,
    pub created_at: String,
    pub updated_at: String,
    /// Its copy in the Drafts folder: (folder, UIDVALIDITY, UID), once uploaded.
    pub server: Option<(String, u32, u32)>,
    pub server_message_id: Option<String>,
    pub uploaded_at: Option<String>,
}

const COLS: &str = "id, operator, account_id, from_addr, to_text, cc_text, bcc_text, reply_to_text,
    subject, body, attachments_json, kind, source_id, created_at, updated_at, server_folder,
    server_uidvalidity, server_uid, server_message_id, uploaded_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DraftRow> {
    let attachments: String = r.get(10)?;
    let folder: Option<String> = r.get(15)?;
    let uv: Option<i64> = r.get(16)?;
    let uid: Option<i64> = r.get(17)?;
    Ok(DraftRow {
        id: r.get(0)?,
        operator: r.get(1)?,
        content: NewDraft {
            account_id: r.get(2)?,
            from_addr: r.get(3)?,
            to: r.get(4)?,
            cc: r.get(5)?,
            bcc: r.get(6)?,
            reply_to: r.get(7)?,
            subject: r.get(8)?,
            body: r.get(9)?,
            attachments: serde_json::from_str(&attachments).unwrap_or_default(),
            kind: r.get(11)?,
            source_id: r.get(12)?,
        },
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        server: match (folder, uv, uid) {
            (Some(f), Some(v), Some(u)) => Some((f, v as u32, u as u32)),
            _ => None,
        },
        server_message_id: r.get(18)?,
        uploaded_at: r.get(19)?,
    })
}

impl Store {
    /// Saves a draft: a new one (`id` None) or over the operator's own draft `id`. Returns its id.
    pub fn save_draft(&self, operator: &str, id: Option<i64>, d: &NewDraft) -> Result<i64> {
        let attachments = serde_json::to_string(&d.attachments).unwrap_or_else(|_| "[]".into());
        let t = now();
        if let Some(id) = id {
            let n = self.conn.execute(
                "UPDATE drafts SET account_id = ?3, from_addr = ?4, to_text = ?5, cc_text = ?6,
                     bcc_text = ?7, reply_to_text = ?8, subject = ?9, body = ?10,
                     attachments_json = ?11, kind = ?12, source_id = ?13, updated_at = ?14
                 WHERE id = ?1 AND operator = ?2",
                params![
                    id,
                    operator,
                    d.account_id,
                    d.from_addr,
                    d.to,
                    d.cc,
                    d.bcc,
                    d.reply_to,
                    d.subject,
                    d.body,
                    attachments,
                    d.kind,
                    d.source_id,
                    t
                ],
            )?;
            if n == 1 {
                return Ok(id);
            }
        }
        self.conn.execute(
            "INSERT INTO drafts (operator, account_id, from_addr, to_text, cc_text, bcc_text,
                 reply_to_text, subject, body, attachments_json, kind, source_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
            params![
                operator,
                d.account_id,
                d.from_addr,
                d.to,
                d.cc,
                d.bcc,
                d.reply_to,
                d.subject,
                d.body,
                attachments,
                d.kind,
                d.source_id,
                t
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The operator's drafts, most recently changed first.
    pub fn drafts(&self, operator: &str) -> Result<Vec<DraftRow>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM drafts WHERE operator = ?1 ORDER BY updated_at DESC, id DESC"
        ))?;
        let v = st
            .query_map([operator], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// One of the operator's drafts.
    pub fn draft(&self, operator: &str, id: i64) -> Result<Option<DraftRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLS} FROM drafts WHERE id = ?1 AND operator = ?2"),
                params![id, operator],
                row,
            )
            .optional()?)
    }

    /// Removes one of the operator's drafts (sent or discarded); false if it was not there.
    pub fn delete_draft(&self, operator: &str, id: i64) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM drafts WHERE id = ?1 AND operator = ?2",
            params![id, operator],
        )? > 0)
    }

    /// Where the draft's copy in the Drafts folder is now.
    pub fn set_draft_uploaded(
        &self,
        id: i64,
        folder: &str,
        uidvalidity: u32,
        uid: u32,
        message_id: &str,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE drafts SET server_folder = ?2, server_uidvalidity = ?3, server_uid = ?4,
                 server_message_id = ?5, uploaded_at = ?6 WHERE id = ?1",
            params![
                id,
                folder,
                uidvalidity as i64,
                uid as i64,
                message_id,
                now()
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_are_the_operators_own_and_keep_every_field() {
        let s = Store::open_in_memory().unwrap();
        let d = NewDraft {
            account_id: Some("a1".into()),
            to: "sam@client.example, ann@x.example".into(),
            bcc: "boss@example.test".into(),
            reply_to: "support@example.test".into(),
            subject: "Hello".into(),
            body: "line one\nline two".into(),
            attachments: vec!["/tmp/a.pdf".into()],
            kind: "new".into(),
            ..Default::default()
        };
        let id = s.save_draft("alice", None, &d).unwrap();
        assert_eq!(s.drafts("alice").unwrap()[0].content, d);
        assert!(s.drafts("eve").unwrap().is_empty());
        assert!(s.draft("eve", id).unwrap().is_none());
        // eve cannot write over alice's draft: hers becomes a new one.
        let eves = s.save_draft("eve", Some(id), &NewDraft::default()).unwrap();
        assert_ne!(eves, id);
        let d2 = NewDraft {
            body: "changed".into(),
            ..d.clone()
        };
        assert_eq!(s.save_draft("alice", Some(id), &d2).unwrap(), id);
        assert_eq!(
            s.draft("alice", id).unwrap().unwrap().content.body,
            "changed"
        );
        s.set_draft_uploaded(id, "Drafts", 7, 42, "x@y").unwrap();
        assert_eq!(
            s.draft("alice", id).unwrap().unwrap().server,
            Some(("Drafts".into(), 7, 42))
        );
        assert!(!s.delete_draft("eve", id).unwrap());
        assert!(s.delete_draft("alice", id).unwrap());
        assert!(s.drafts("alice").unwrap().is_empty());
    }
}
