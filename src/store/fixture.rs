//! Rows written directly, for unit tests and benchmarks of the crm module (issue 5): the sync
//! engine is the real writer of folders/messages/locations; this mirrors the schema so crm code
//! can be exercised without a server. Not used by the application itself. Works on either
//! engine.

use super::{Store, now};
use crate::args;
use crate::error::Result;

/// One cached message as sync would store it.
#[derive(Debug, Clone, Default)]
pub struct FixtureMessage {
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub refs: Option<String>,
    pub from_addr: String,
    pub from_name: Option<String>,
    /// Addresses only; names are left empty.
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub date: String,
    pub direction: &'static str,
    pub text_body: Option<String>,
    pub body: Option<Vec<u8>>,
}

impl Store {
    /// A folder (creating the account row if missing); returns the folder id.
    pub fn fixture_folder(&self, account_id: &str, name: &str, role: Option<&str>) -> Result<i64> {
        self.conn.exec(
            "INSERT INTO accounts (id, name, created_at, state, state_since) VALUES (?1, ?1, ?2, 'idle', ?2)
             ON CONFLICT DO NOTHING",
            args![account_id, now()],
        )?;
        self.conn.one(
            "INSERT INTO folders (account_id, name, wire_name, role, sync_enabled, uidvalidity) VALUES (?1, ?2, ?2, ?3, 1, 1)
             RETURNING id",
            args![account_id, name, role],
            |r| r.get(0),
        )
    }

    /// A message with one location in `folder_id`; returns the logical message id.
    pub fn fixture_message(
        &self,
        account_id: &str,
        folder_id: i64,
        uid: i64,
        m: &FixtureMessage,
    ) -> Result<i64> {
        let addrs = |v: &[String]| {
            serde_json::Value::Array(
                v.iter()
                    .map(|a| serde_json::json!({"name": null, "address": a}))
                    .collect(),
            )
            .to_string()
        };
        let id: i64 = self.conn.one(
            "INSERT INTO messages (message_id, content_hash, in_reply_to, refs, from_addr, from_name, to_json, cc_json,
                 subject, date, size, text_body, direction, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1000, ?11, ?12, ?13)
             RETURNING id",
            args![
                m.message_id,
                crate::model::new_id(),
                m.in_reply_to,
                m.refs,
                m.from_addr,
                m.from_name,
                addrs(&m.to),
                addrs(&m.cc),
                m.subject,
                m.date,
                if m.body.is_some() { None } else { m.text_body.clone() },
                if m.direction.is_empty() { "in" } else { m.direction },
                now()
            ],
            |r| r.get(0),
        )?;
        // Not examined by matching yet, as sync stores new mail.
        self.conn.exec(
            "INSERT INTO crm_pending (message_id) VALUES (?1)",
            args![id],
        )?;
        if let Some(raw) = &m.body {
            self.conn.exec(
                "INSERT INTO bodies (message_id, raw, text, size, indexed) VALUES (?1, ?2, ?3, ?4, 1)",
                args![id, raw, m.text_body, raw.len()],
            )?;
        }
        self.conn.exec(
            "INSERT INTO locations (message_id, account_id, folder_id, uidvalidity, uid) VALUES (?1, ?2, ?3, 1, ?4)",
            args![id, account_id, folder_id, uid],
        )?;
        Ok(id)
    }
}

impl Store {
    /// What the sync engine does when it has replayed an op.
    pub fn fixture_mark_op_done(&self, op_id: i64) -> Result<()> {
        self.conn.exec(
            "UPDATE pending_ops SET done_at = ?2 WHERE id = ?1",
            args![op_id, now()],
        )?;
        Ok(())
    }

    /// A further location of a message, in the folder with `role` (what sync adds when it
    /// sees the message there).
    pub fn fixture_add_location(
        &self,
        message_id: i64,
        account_id: &str,
        role: &str,
        uid: i64,
    ) -> Result<()> {
        self.conn.exec(
            "INSERT INTO locations (message_id, account_id, folder_id, uidvalidity, uid)
             VALUES (?1, ?2, (SELECT id FROM folders WHERE account_id = ?2 AND role = ?3), 1, ?4)",
            args![message_id, account_id, role, uid],
        )?;
        Ok(())
    }

    /// Removes a message and everything hanging on it (what removing history does).
    pub fn fixture_delete_message(&self, id: i64) -> Result<()> {
        self.conn
            .exec("DELETE FROM messages WHERE id = ?1", args![id])?;
        Ok(())
    }

    /// Marks messages as never examined by matching (as a sync without the hook leaves them).
    pub fn fixture_unexamine(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(super::crm::CHUNK) {
            self.conn.exec(
                &format!(
                    "INSERT INTO crm_pending (message_id) SELECT id FROM messages WHERE id IN ({})
                     ON CONFLICT (message_id) DO NOTHING",
                    super::sql::in_list(1, chunk.len())
                ),
                &super::crm::list_args(chunk),
            )?;
        }
        Ok(())
    }
}
