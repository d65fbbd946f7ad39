//! The mail pane's reads (issue 14): a folder's index newest first in keyset pages (flat, or
//! one row per thread), a thread's members in a folder, unread and total counts per folder,
//! the state of each message's queued changes, and known senders for address completion.
//!
//! Every page is read from `locations_by_folder_date` (folder, date, message) by a key, never
//! by skipping rows: the first page, the next one after the last row held, the one before the
//! first row held, and the last one are each one index seek however deep they lie.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter};

use super::Store;
use super::crm::placeholders;
use super::messages::flags_vec;
use crate::error::Result;

/// Where a row sits in newest-first order: its date ('' or None when unknown) and id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Key {
    pub date: Option<String>,
    pub id: i64,
}

/// Which rows of a newest-first list a read returns (`limit` of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// The newest.
    Top,
    /// Those right after (older than) this row.
    After(Key),
    /// Those right before (newer than) this row, still returned newest first.
    Before(Key),
    /// This row and those after it (a reload that keeps its place).
    From(Key),
    /// The oldest, returned newest first.
    Bottom,
}

/// One row of the mail index or of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct MailRow {
    pub id: i64,
    /// The thread's root message id.
    pub thread_id: i64,
    /// The account of this copy (a search: the first visible one).
    pub account_id: String,
    /// A search: the folder of that copy.
    pub folder: Option<String>,
    pub date: Option<String>,
    pub from_addr: Option<String>,
    pub from_name: Option<String>,
    /// `[{"name","address"}]` of To.
    pub to_json: String,
    pub subject: Option<String>,
    pub size: Option<i64>,
    pub has_attachments: bool,
    pub direction: String,
    /// This copy's flags (a search: the union of the visible copies').
    pub flags: Vec<String>,
    /// Read (a search: every visible copy is).
    pub seen: bool,
    /// Messages of its thread in this folder (the thread view's heads; 1 otherwise).
    pub thread_count: i64,
    /// The customer it is paired with.
    pub customer_id: Option<i64>,
    pub key: Key,
}

/// A message's queued changes that have not reached the server yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenChanges {
    pub queued: i64,
    /// Attempts that failed so far, and the last reason.
    pub failed_attempts: i64,
    pub last_error: Option<String>,
}

/// One queued change of a message (the message view's history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    pub id: i64,
    pub account_id: String,
    /// add_flags|remove_flags|move
    pub op: String,
    /// The flags, or the target folder (JSON target's `arg`).
    pub arg: String,
    pub created_at: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub done_at: Option<String>,
}

const ROW_COLS: &str = "m.id, COALESCE(l.thread_id, m.thread_id, m.id), l.account_id, NULL, m.date,
    m.from_addr, m.from_name, m.to_json, m.subject, m.size, m.has_attachments, m.direction,
    l.flags, l.seen, l.sort_date, m.customer_id";

/// Messages of thread `l.thread_id` in `l.folder_id` (the root's copies and the replies').
/// Each lookup goes by message (the root, then the replies through the partial index), never
/// along the folder, so its cost does not grow with the folder.
const THREAD_COUNT: &str = "(SELECT COUNT(*) FROM locations l2 INDEXED BY locations_by_message
        WHERE l2.message_id = l.thread_id AND l2.folder_id = l.folder_id)
    + (SELECT COUNT(*) FROM messages m2 INDEXED BY messages_thread_members
        CROSS JOIN locations l2 INDEXED BY locations_by_message ON l2.message_id = m2.id
        WHERE m2.thread_id = l.thread_id AND m2.thread_id <> m2.id AND l2.folder_id = l.folder_id)";

/// `l` is the newest copy of its thread in its folder (looked up by message, as above).
const THREAD_HEAD: &str = "NOT EXISTS (SELECT 1 FROM locations l2 INDEXED BY locations_by_message
        WHERE l2.message_id = l.thread_id AND l2.folder_id = l.folder_id
          AND (l2.sort_date, l2.message_id) > (l.sort_date, l.message_id))
    AND NOT EXISTS (SELECT 1 FROM messages m2 INDEXED BY messages_thread_members
        CROSS JOIN locations l2 INDEXED BY locations_by_message ON l2.message_id = m2.id
        WHERE m2.thread_id = l.thread_id AND m2.thread_id <> m2.id AND l2.folder_id = l.folder_id
          AND (l2.sort_date, l2.message_id) > (l.sort_date, l.message_id))";

pub(super) fn mail_row(
    r: &rusqlite::Row<'_>,
    thread_count: Option<usize>,
) -> rusqlite::Result<MailRow> {
    let flags = flags_vec(&r.get::<_, Option<String>>(12)?.unwrap_or_default());
    let date: Option<String> = r.get(4)?;
    let sort: Option<String> = r.get(14)?;
    let id: i64 = r.get(0)?;
    Ok(MailRow {
        id,
        thread_id: r.get(1)?,
        account_id: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        folder: r.get(3)?,
        date,
        from_addr: r.get(5)?,
        from_name: r.get(6)?,
        to_json: r.get(7)?,
        subject: r.get(8)?,
        size: r.get(9)?,
        has_attachments: r.get::<_, Option<i64>>(10)?.unwrap_or(0) != 0,
        direction: r.get(11)?,
        flags,
        seen: r.get::<_, Option<i64>>(13)?.unwrap_or(0) != 0,
        thread_count: match thread_count {
            Some(i) => r.get(i)?,
            None => 1,
        },
        customer_id: r.get(15)?,
        key: Key { date: sort, id },
    })
}

/// The ORDER BY direction and the keyset condition of a window over (`date_col`, `id_col`),
/// whose values are never NULL; the condition's parameters are pushed to `p`.
fn keyset(w: &Window, date_col: &str, id_col: &str, p: &mut Vec<Value>) -> (String, &'static str) {
    let mut cond = |op: &str, k: &Key| {
        p.push(k.date.clone().unwrap_or_default().into());
        p.push(k.id.into());
        format!("AND ({date_col}, {id_col}) {op} (?, ?)")
    };
    match w {
        Window::Top => (String::new(), "DESC"),
        Window::After(k) => (cond("<", k), "DESC"),
        Window::From(k) => (cond("<=", k), "DESC"),
        Window::Before(k) => (cond(">", k), "ASC"),
        Window::Bottom => (String::new(), "ASC"),
    }
}

impl Store {
    /// One window of a folder's index, newest first: every message (`threads` false) or the
    /// newest of each thread with the thread's size. Blocked senders' mail is left out.
    pub fn folder_index(
        &self,
        folder_id: i64,
        threads: bool,
        window: &Window,
        limit: i64,
    ) -> Result<Vec<MailRow>> {
        let mut p: Vec<Value> = vec![folder_id.into()];
        let (cond, dir) = keyset(window, "l.sort_date", "l.message_id", &mut p);
        p.push(limit.into());
        let (count, head) = if threads {
            (format!(", {THREAD_COUNT}"), format!("AND {THREAD_HEAD}"))
        } else {
            (String::new(), String::new())
        };
        let sql = format!(
            "SELECT {ROW_COLS}{count} FROM locations l INDEXED BY locations_by_folder_date
             JOIN messages m ON m.id = l.message_id
             WHERE l.folder_id = ? AND m.denied = 0 {cond} {head}
             ORDER BY l.sort_date {dir}, l.message_id {dir} LIMIT ?"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let tc = threads.then_some(16);
        let mut rows = st
            .query_map(params_from_iter(p), |r| mail_row(r, tc))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if dir == "ASC" {
            rows.reverse();
        }
        // Two copies of one message in one folder (two UIDs) show once.
        rows.dedup_by_key(|r| r.id);
        Ok(rows)
    }

    /// How many rows `folder_index` has in all: messages, or threads.
    pub fn folder_index_count(&self, folder_id: i64, threads: bool) -> Result<i64> {
        if threads {
            return Ok(self.conn.query_row(
                "SELECT COUNT(DISTINCT thread_id) FROM locations INDEXED BY locations_by_folder_date
                 WHERE folder_id = ?1",
                [folder_id],
                |r| r.get(0),
            )?);
        }
        let all: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM locations INDEXED BY locations_by_folder_date WHERE folder_id = ?1",
            [folder_id],
            |r| r.get(0),
        )?;
        let denied: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM messages m INDEXED BY messages_denied JOIN locations l ON l.message_id = m.id
             WHERE m.denied = 1 AND l.folder_id = ?1",
            [folder_id],
            |r| r.get(0),
        )?;
        Ok(all - denied)
    }

    /// The messages of a thread in a folder, newest first.
    pub fn thread_rows(&self, folder_id: i64, thread_id: i64) -> Result<Vec<MailRow>> {
        let sql = format!(
            "SELECT {ROW_COLS} FROM locations l INDEXED BY locations_by_message
             JOIN messages m ON m.id = l.message_id
             WHERE l.folder_id = ?1 AND m.denied = 0 AND l.message_id IN
                 (SELECT ?2 UNION ALL SELECT id FROM messages WHERE thread_id = ?2 AND thread_id <> id)
             ORDER BY l.sort_date DESC, l.message_id DESC"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st
            .query_map(params![folder_id, thread_id], |r| mail_row(r, None))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.dedup_by_key(|r| r.id);
        Ok(rows)
    }

    /// (total, unread) per folder, blocked senders' mail left out.
    pub fn folder_counts(&self, folder_ids: &[i64]) -> Result<HashMap<i64, (i64, i64)>> {
        let mut out: HashMap<i64, (i64, i64)> = HashMap::new();
        if folder_ids.is_empty() {
            return Ok(out);
        }
        for chunk in folder_ids.chunks(super::crm::CHUNK) {
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT folder_id, COUNT(*), TOTAL(seen = 0) FROM locations INDEXED BY locations_by_folder_date
                 WHERE folder_id IN ({}) GROUP BY folder_id",
                placeholders(chunk.len())
            ))?;
            let rows = st.query_map(params_from_iter(chunk), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)? as i64,
                ))
            })?;
            for row in rows {
                let (f, total, unread) = row?;
                out.insert(f, (total, unread));
            }
        }
        let mut st = self.conn.prepare_cached(
            "SELECT l.folder_id, COUNT(*), TOTAL(l.seen = 0) FROM messages m INDEXED BY messages_denied
             JOIN locations l ON l.message_id = m.id WHERE m.denied = 1 GROUP BY l.folder_id",
        )?;
        let denied = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, f64>(2)? as i64,
            ))
        })?;
        for row in denied {
            let (f, total, unread) = row?;
            if let Some(c) = out.get_mut(&f) {
                c.0 -= total;
                c.1 -= unread;
            }
        }
        Ok(out)
    }

    /// The open (not yet pushed) changes of each of `ids` that has any.
    pub fn open_changes(&self, ids: &[i64]) -> Result<HashMap<i64, OpenChanges>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(super::crm::CHUNK) {
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT message_id, COUNT(*), TOTAL(attempts),
                        (SELECT p2.last_error FROM pending_ops p2 WHERE p2.message_id = p.message_id
                           AND p2.done_at IS NULL AND p2.last_error IS NOT NULL ORDER BY p2.id DESC LIMIT 1)
                 FROM pending_ops p WHERE message_id IN ({}) AND done_at IS NULL GROUP BY message_id",
                placeholders(chunk.len())
            ))?;
            let rows = st.query_map(params_from_iter(chunk), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    OpenChanges {
                        queued: r.get(1)?,
                        failed_attempts: r.get::<_, f64>(2)? as i64,
                        last_error: r.get(3)?,
                    },
                ))
            })?;
            for row in rows {
                let (id, c) = row?;
                out.insert(id, c);
            }
        }
        Ok(out)
    }

    /// A message's latest queued changes (done or not), newest first.
    pub fn message_changes(&self, id: i64, limit: i64) -> Result<Vec<ChangeRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, account_id, op, arg, created_at, attempts, last_error, done_at
             FROM pending_ops WHERE message_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![id, limit], |r| {
                let arg: Option<String> = r.get(3)?;
                let arg = arg
                    .as_deref()
                    .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
                    .and_then(|v| v.get("arg").and_then(|a| a.as_str()).map(str::to_string))
                    .unwrap_or_default();
                Ok(ChangeRow {
                    id: r.get(0)?,
                    account_id: r.get(1)?,
                    op: r.get(2)?,
                    arg,
                    created_at: r.get(4)?,
                    attempts: r.get(5)?,
                    last_error: r.get(6)?,
                    done_at: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Senders whose address starts with `prefix` (addresses are stored lower-case), with a
    /// name they used, from mail of `accounts`: (name, address).
    pub fn known_senders(
        &self,
        prefix: &str,
        accounts: &[String],
        limit: i64,
    ) -> Result<Vec<(Option<String>, String)>> {
        let prefix = prefix.trim().to_lowercase();
        if prefix.is_empty() || accounts.is_empty() {
            return Ok(Vec::new());
        }
        // A range on the address index: everything that starts with the prefix.
        let upper = format!("{prefix}\u{10ffff}");
        let mut p: Vec<Value> = vec![prefix.into(), upper.into()];
        p.extend(accounts.iter().map(|a| Value::from(a.clone())));
        p.push(limit.into());
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT MAX(m.from_name), m.from_addr FROM messages m INDEXED BY messages_by_from
             WHERE m.from_addr >= ? AND m.from_addr < ? AND m.denied = 0
               AND EXISTS (SELECT 1 FROM locations l WHERE l.message_id = m.id AND l.account_id IN ({}))
             GROUP BY m.from_addr ORDER BY m.from_addr LIMIT ?",
            placeholders(accounts.len())
        ))?;
        let rows = st
            .query_map(params_from_iter(p), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FixtureMessage;

    fn msg(i: i64, reply_to: Option<i64>) -> FixtureMessage {
        FixtureMessage {
            message_id: Some(format!("m{i}@x")),
            in_reply_to: reply_to.map(|r| format!("m{r}@x")),
            from_addr: format!("sender{}@client.example", i % 3),
            from_name: Some(format!("Sender {}", i % 3)),
            subject: format!("message {i}"),
            date: format!("2026-01-{:02}T10:00:00Z", 1 + i % 28),
            direction: "in",
            ..Default::default()
        }
    }

    /// 30 messages in INBOX of account a1; every fifth is a reply to the one before.
    fn inbox() -> (Store, i64, Vec<i64>) {
        let s = Store::open_in_memory().unwrap();
        let f = s.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
        let mut ids = Vec::new();
        for i in 0..30 {
            let id = s.fixture_message("a1", f, i + 1, &msg(i, None)).unwrap();
            ids.push(id);
        }
        // Threads: make each fifth message a reply in the thread of the message before it.
        for i in (5..30).step_by(5) {
            let root = ids[i - 1];
            s.conn
                .execute(
                    "UPDATE messages SET thread_id = ?1 WHERE id = ?2",
                    params![root, ids[i]],
                )
                .unwrap();
            s.conn
                .execute(
                    "UPDATE locations SET thread_id = ?1 WHERE message_id = ?2",
                    params![root, ids[i]],
                )
                .unwrap();
        }
        (s, f, ids)
    }

    fn ids(rows: &[MailRow]) -> Vec<i64> {
        rows.iter().map(|r| r.id).collect()
    }

    #[test]
    fn keyset_windows_walk_the_whole_folder_both_ways() {
        let (s, f, all) = inbox();
        let total = s.folder_index_count(f, false).unwrap();
        assert_eq!(total, 30);
        // Forward, 7 at a time, by key only.
        let mut seen = Vec::new();
        let mut w = Window::Top;
        loop {
            let page = s.folder_index(f, false, &w, 7).unwrap();
            if page.is_empty() {
                break;
            }
            seen.extend(ids(&page));
            w = Window::After(page.last().unwrap().key.clone());
        }
        assert_eq!(seen.len(), 30);
        let mut sorted = seen.clone();
        sorted.sort();
        let mut expect = all.clone();
        expect.sort();
        assert_eq!(sorted, expect, "every message once");
        // Newest first: the keys never go up.
        let rows = s.folder_index(f, false, &Window::Top, 30).unwrap();
        assert!(rows.windows(2).all(|w| w[0].key.date >= w[1].key.date));
        // Backward from the bottom gives the same order.
        let bottom = s.folder_index(f, false, &Window::Bottom, 7).unwrap();
        assert_eq!(ids(&bottom), ids(&rows[23..]));
        let before = s
            .folder_index(f, false, &Window::Before(bottom[0].key.clone()), 7)
            .unwrap();
        assert_eq!(ids(&before), ids(&rows[16..23]));
        let from = s
            .folder_index(f, false, &Window::From(rows[10].key.clone()), 3)
            .unwrap();
        assert_eq!(ids(&from), ids(&rows[10..13]));
    }

    #[test]
    fn threads_show_their_newest_message_with_their_size() {
        let (s, f, all) = inbox();
        let heads = s.folder_index(f, true, &Window::Top, 100).unwrap();
        assert_eq!(heads.len() as i64, s.folder_index_count(f, true).unwrap());
        assert_eq!(heads.len(), 25, "five replies joined their threads");
        let threaded: Vec<&MailRow> = heads.iter().filter(|r| r.thread_count == 2).collect();
        assert_eq!(threaded.len(), 5);
        for h in threaded {
            let members = s.thread_rows(f, h.thread_id).unwrap();
            assert_eq!(members.len(), 2);
            assert_eq!(members[0].id, h.id, "the head is the newest");
        }
        // The reply of message 4 (message 5) is newer (day 6 vs day 5): it heads the thread.
        let t = heads.iter().find(|r| r.thread_id == all[4]).unwrap();
        assert_eq!(t.id, all[5]);
    }

    #[test]
    fn counts_leave_out_blocked_mail_and_changes_show_their_state() {
        let (mut s, f, all) = inbox();
        s.conn
            .execute("UPDATE messages SET denied = 1 WHERE id = ?1", [all[0]])
            .unwrap();
        s.conn
            .execute(
                "UPDATE locations SET seen = 1, flags = '\\Seen' WHERE message_id IN (?1, ?2)",
                params![all[1], all[2]],
            )
            .unwrap();
        let c = s.folder_counts(&[f]).unwrap();
        assert_eq!(c[&f], (29, 27));
        assert_eq!(s.folder_index_count(f, false).unwrap(), 29);
        assert!(!ids(&s.folder_index(f, false, &Window::Top, 100).unwrap()).contains(&all[0]));
        let copies: Vec<i64> = s
            .locations_of(all[3])
            .unwrap()
            .iter()
            .map(|l| l.id)
            .collect();
        let ops = s
            .local_set_flags(all[3], &copies, &["\\Flagged".into()], &[])
            .unwrap();
        s.op_failed(ops[0], "the server said NO").unwrap();
        let open = s.open_changes(&[all[3], all[4]]).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[&all[3]].queued, 1);
        assert_eq!(open[&all[3]].failed_attempts, 1);
        assert_eq!(
            open[&all[3]].last_error.as_deref(),
            Some("the server said NO")
        );
        let hist = s.message_changes(all[3], 10).unwrap();
        assert_eq!(hist[0].op, "add_flags");
        assert_eq!(hist[0].arg, "\\Flagged");
        s.op_done(ops[0], None).unwrap();
        assert!(s.open_changes(&[all[3]]).unwrap().is_empty());
        let rows = s.folder_index(f, false, &Window::Top, 100).unwrap();
        let r = rows.iter().find(|r| r.id == all[3]).unwrap();
        assert!(r.flags.iter().any(|x| x == "\\Flagged"));
    }

    #[test]
    fn search_windows_walk_every_hit_both_ways_undated_mail_last() {
        let (s, _f, all) = inbox();
        // Three messages without a date (they sort last, by id).
        for id in &all[..3] {
            s.conn
                .execute("UPDATE messages SET date = NULL WHERE id = ?1", [id])
                .unwrap();
        }
        s.fts_reindex(&all).unwrap();
        // Walked along the dates, and (with few full-text matches) read by match and sorted:
        // the same hits in the same order.
        let plain = crate::store::SearchFilter {
            accounts: vec!["a1".into()],
            read: Some(false),
            ..Default::default()
        };
        let words = crate::store::SearchFilter {
            fts: Some("\"message\"*".into()),
            ..plain.clone()
        };
        let a = walk_both_ways(&s, &plain, &all);
        let b = walk_both_ways(&s, &words, &all);
        assert_eq!(a, b);
    }

    fn walk_both_ways(s: &Store, f: &crate::store::SearchFilter, all: &[i64]) -> Vec<i64> {
        assert_eq!(s.search_count(f).unwrap(), 30);
        let mut forward = Vec::new();
        let mut w = Window::Top;
        loop {
            let page = s.search_window(f, &w, 7).unwrap();
            if page.is_empty() {
                break;
            }
            forward.extend(page.iter().map(|r| r.id));
            w = Window::After(page.last().unwrap().key.clone());
        }
        assert_eq!(forward.len(), 30, "{forward:?}");
        assert_eq!(
            &forward[27..],
            &[all[2], all[1], all[0]],
            "undated last, newest id first"
        );
        let mut backward = Vec::new();
        let mut w = Window::Bottom;
        loop {
            let page = s.search_window(f, &w, 7).unwrap();
            if page.is_empty() {
                break;
            }
            backward.splice(0..0, page.iter().map(|r| r.id));
            w = Window::Before(page.first().unwrap().key.clone());
        }
        assert_eq!(backward, forward);
        let from = s
            .search_window(
                f,
                &Window::From(Key {
                    date: None,
                    id: all[1],
                }),
                5,
            )
            .unwrap();
        assert_eq!(
            from.iter().map(|r| r.id).collect::<Vec<_>>(),
            [all[1], all[0]]
        );
        forward
    }

    #[test]
    fn known_senders_complete_by_prefix_from_visible_mail() {
        let (s, _f, _) = inbox();
        let got = s.known_senders("SENDER1", &["a1".into()], 5).unwrap();
        assert_eq!(
            got,
            vec![(
                Some("Sender 1".to_string()),
                "sender1@client.example".to_string()
            )]
        );
        assert!(
            s.known_senders("sender", &["other".into()], 5)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.known_senders("sender", &["a1".into()], 5).unwrap().len(),
            3
        );
    }
}

#[cfg(test)]
mod plans {
    use super::*;

    fn plan(s: &Store, sql: &str, p: Vec<Value>) -> Vec<String> {
        let mut st = s
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        st.query_map(params_from_iter(p), |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    /// The thread view's per-row lookups go by message; one that walked the folder (a range
    /// on locations_by_folder_date inside a correlated subquery) made a page of a 100k folder
    /// take seconds.
    #[test]
    fn thread_lookups_go_by_message_never_along_the_folder() {
        let s = Store::open_in_memory().unwrap();
        for w in [
            Window::Top,
            Window::After(Key {
                date: Some("2026".into()),
                id: 5,
            }),
        ] {
            let mut p: Vec<Value> = vec![1.into()];
            let (cond, dir) = keyset(&w, "l.sort_date", "l.message_id", &mut p);
            p.push(200.into());
            let sql = format!(
                "SELECT {ROW_COLS}, {THREAD_COUNT} FROM locations l INDEXED BY locations_by_folder_date
                 JOIN messages m ON m.id = l.message_id
                 WHERE l.folder_id = ? AND m.denied = 0 {cond} AND {THREAD_HEAD}
                 ORDER BY l.sort_date {dir}, l.message_id {dir} LIMIT ?"
            );
            let steps = plan(&s, &sql, p);
            let along: Vec<&String> = steps
                .iter()
                .filter(|l| l.contains("l2 USING") && l.contains("locations_by_folder_date"))
                .collect();
            assert!(along.is_empty(), "{steps:#?}");
            assert!(
                !steps.iter().any(|l| l.contains("TEMP B-TREE")),
                "{steps:#?}"
            );
        }
    }

    /// A search page is read along the date index in order (no sort of every hit).
    #[test]
    fn a_search_page_reads_the_date_index_in_order() {
        let s = Store::open_in_memory().unwrap();
        let f = crate::store::SearchFilter {
            fts: Some("\"x\"*".into()),
            from: vec!["ann".into()],
            read: Some(false),
            folders: vec!["INBOX".into()],
            accounts: vec!["a".into()],
            ..Default::default()
        };
        s.search_window(
            &f,
            &Window::After(Key {
                date: Some("2026".into()),
                id: 5,
            }),
            10,
        )
        .unwrap();
        // The shape of its keyset part (the store's statement adds the filters' EXISTS terms).
        let sql = "SELECT m.id FROM messages m INDEXED BY messages_by_date
             WHERE m.date IS NOT NULL AND m.denied = 0
               AND m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'x')
               AND m.date <= '2026' AND (m.date < '2026' OR m.id < 5)
             ORDER BY m.date DESC, m.id DESC LIMIT 10";
        let steps = plan(&s, sql, vec![]);
        assert!(
            steps
                .iter()
                .any(|l| l.contains("USING INDEX messages_by_date") && l.contains("date<?")),
            "{steps:#?}"
        );
        assert!(
            !steps.iter().any(|l| l.contains("MULTI-INDEX OR")),
            "{steps:#?}"
        );
        // At most the ties of one date are sorted, never every hit.
        assert!(
            !steps.iter().any(|l| l.contains("TEMP B-TREE FOR ORDER BY")),
            "{steps:#?}"
        );
    }
}
