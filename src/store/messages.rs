//! Logical messages and their locations. Identity: the same Message-ID with the same content
//! hash is one message, wherever it is seen; without a Message-ID a message is never merged
//! (except with its own old location while a folder is rebuilt after a UIDVALIDITY change).

use serde::Serialize;

use super::search::{FtsDoc, fts_write};
use super::sql::{Arg, Conn, Engine, Kind, ToArg};
use super::{Store, now};
use crate::args;
use crate::error::Result;
use crate::mail::parse::{Addr, Envelope};

/// One fetched message header, ready to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub uid: u32,
    pub flags: Vec<String>,
    pub size: u32,
    pub internal_date: Option<String>,
    pub modseq: Option<u64>,
    pub env: Envelope,
    pub headers: Vec<u8>,
    pub denied: bool,
    /// "out" for mail found in Sent.
    pub direction: &'static str,
    /// The whole message, when it was fetched whole (full offline mode): stored as its body,
    /// its words in the search index with the header's.
    pub body: Option<WholeBody>,
}

/// A message fetched whole, and what the sync writer read out of it.
#[derive(Debug, Clone, Default)]
pub struct WholeBody {
    pub raw: Vec<u8>,
    /// Its readable text (HTML converted), for the search index.
    pub text: String,
    pub attachments: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOutcome {
    /// Locations added.
    pub added: u64,
    /// Of those, logical messages created (the rest joined an existing message).
    pub created: u64,
    /// Bodies stored (messages fetched whole).
    pub bodies: u64,
}

/// One place a message is stored (the contract's `locations` item).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocationView {
    /// The account's name.
    pub account: String,
    /// Its id (what visibility is decided on).
    #[serde(skip)]
    pub account_id: String,
    pub folder: String,
    pub uidvalidity: u32,
    pub uid: u32,
    /// This copy's own flags.
    pub flags: Vec<String>,
}

/// A message as the list shows it (the contract's `messages` item).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageSummary {
    pub id: i64,
    pub message_id: Option<String>,
    pub thread_id: Option<i64>,
    pub from: Option<Addr>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub flags: Vec<String>,
    pub size: Option<i64>,
    pub locations: Vec<LocationView>,
    pub customer_id: Option<i64>,
}

/// A location with what is needed to act on it on the server.
#[derive(Debug, Clone, Serialize)]
pub struct LocationRow {
    pub id: i64,
    pub message_id: i64,
    pub account_id: String,
    pub folder_id: i64,
    pub folder: String,
    pub wire_name: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub flags: Vec<String>,
}

/// Everything stored about one message: the list's view of it, its bytes and text.
#[derive(Debug, Clone)]
pub struct MessageFull {
    pub summary: MessageSummary,
    pub headers: Option<Vec<u8>>,
    /// None until the body is fetched.
    pub body: Option<Vec<u8>>,
    pub text_body: Option<String>,
    pub in_reply_to: Option<String>,
    pub refs: Option<String>,
    /// From the headers (before the body is fetched) or the parsed body.
    pub has_attachments: bool,
    /// The name of the customer it is paired with.
    pub customer: Option<String>,
}

/// A flag update from the server: (UID, flags, MODSEQ).
pub type FlagRow = (u32, Vec<String>, Option<u64>);

/// A body to prefetch: (message id, folder id, wire folder name, UIDVALIDITY, UID).
pub type PrefetchItem = (i64, i64, String, u32, u32);

pub fn flags_text(flags: &[String]) -> String {
    flags.join(" ")
}

pub fn flags_vec(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Page cache of a sync writer connection (KiB): at least the floor, plus an eighth of the
/// database as it stands, up to the ceiling (`writer_cache_kib`).
const WRITER_CACHE_MIN_KIB: i64 = 16 * 1024;
const WRITER_CACHE_MAX_KIB: i64 = 32 * 1024;
/// WAL size (pages) at which a sync writer connection checkpoints by itself (when its
/// Checkpointer falls behind).
const WRITER_WAL_PAGES: i64 = 32 * 1024;

/// The writer's page cache for a database of `db_bytes`. What the random inserts touch grows
/// with the indexes, and so with the database: a 100k first sync into an empty store (121 MB
/// at its end) ran as fast with 16 MB as with 32 MB (6 MB spilled to pread/pwrite), peak RSS
/// 63 MB instead of 80; 100k more into that store was a little slower with 16 MB.
pub(super) fn writer_cache_kib(db_bytes: i64) -> i64 {
    (WRITER_CACHE_MIN_KIB + db_bytes / 8 / 1024).clamp(WRITER_CACHE_MIN_KIB, WRITER_CACHE_MAX_KIB)
}

fn has_seen(flags: &[String]) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen"))
}

fn addresses_text(env: &Envelope) -> String {
    let mut out = Vec::new();
    for a in env.from.iter().chain(env.to.iter()).chain(env.cc.iter()) {
        if let Some(n) = &a.name {
            out.push(n.clone());
        }
        out.push(a.address.clone());
    }
    out.join(" ")
}

impl Store {
    /// A second connection to the same store, tuned as a bulk writer for a thread of its own;
    /// pair it with a `Checkpointer`. (PostgreSQL: a plain second connection.)
    pub fn reopen(&self) -> Result<Store> {
        let store = self.reopen_plain()?;
        // No trigger on `locations` for this connection (see `counts::FILL_TRIGGER`).
        store.drop_fill_trigger()?;
        if let Some(c) = store.conn.lite() {
            // A bulk writer: the identity and date indexes are hit at random positions, and
            // SQLite's default 2 MB page cache makes every batch re-read and spill them (a
            // third of a 100k-message first sync went to pread/pwrite). The cache only grows
            // as pages are touched, so small folders stay small.
            let db_bytes: i64 = c.query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |r| r.get(0),
            )?;
            c.pragma_update(None, "cache_size", -writer_cache_kib(db_bytes))?;
            // Checkpoints are the Checkpointer's job; this is only a backstop on the WAL's size.
            c.pragma_update(None, "wal_autocheckpoint", WRITER_WAL_PAGES)?;
        }
        Ok(store)
    }

    /// A second connection to the same store, configured like the first: the same database
    /// file, or the same PostgreSQL database with the same settings.
    pub fn reopen_plain(&self) -> Result<Store> {
        let lite = match &self.conn {
            super::sql::Conn::Pg(p) => {
                return Ok(Store {
                    conn: super::sql::Conn::Pg(p.reconnect()?),
                });
            }
            super::sql::Conn::Lite(c) => c,
        };
        match lite.path().filter(|p| !p.is_empty()) {
            // One thread owns this connection: SQLite's per-call mutexes are pure overhead.
            Some(p) => {
                let store = Store::configure(rusqlite::Connection::open_with_flags(
                    p,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?)?;
                store.install_fill_trigger()?;
                Ok(store)
            }
            None => Err(crate::error::AppError::local(
                "an in-memory database cannot be shared with a writer thread",
                "",
                "use a database file",
            )),
        }
    }

    /// Stores one batch of fetched headers of one folder in one transaction and moves the
    /// folder's checkpoint to the highest UID in it. Idempotent: a location already stored is
    /// skipped, so replaying a batch after a crash never doubles anything.
    pub fn store_batch(
        &mut self,
        account_id: &str,
        folder_id: i64,
        uidvalidity: u32,
        items: &[NewMessage],
        checkpoint: Option<u32>,
    ) -> Result<BatchOutcome> {
        let mut bulk = self.bulk_begin()?;
        let stored = items
            .iter()
            .try_for_each(|m| self.bulk_insert(&mut bulk, account_id, folder_id, uidvalidity, m));
        match stored.and_then(|()| self.bulk_commit(&mut bulk, folder_id, checkpoint)) {
            Ok(()) => Ok(bulk.out),
            Err(e) => {
                self.bulk_rollback();
                Err(e)
            }
        }
    }

    /// Opens the write transaction of a bulk insert (BEGIN IMMEDIATE: the write lock is taken
    /// up front). Messages then go in one by one as they arrive (`bulk_insert`), and
    /// `bulk_commit` makes them durable together with the folder's checkpoint; a sync writer
    /// streams a fetch this way instead of collecting batches in memory.
    pub fn bulk_begin(&self) -> Result<BulkInsert> {
        let begun = match self.engine() {
            Engine::Sqlite => self.conn.batch("BEGIN IMMEDIATE"),
            // One bulk writer at a time, as SQLite's write lock gives: two accounts storing the
            // same new message must not both create it.
            // Its new locations are counted here, not by the row trigger (migration 19).
            Engine::Postgres => self
                .conn
                .batch("BEGIN; SELECT pg_advisory_xact_lock(1717); SET LOCAL mailroom.bulk = 'on'"),
        };
        begun?;
        // The transaction holds the write lock, so ids are handed out here, as SQLite would
        // (max + 1): a new message gets its thread root in the INSERT itself, not in a second
        // UPDATE. PostgreSQL's ids come from the table's own sequence (other writers use it).
        // With an empty customer book (checked under the write lock: a customer added later
        // rematches everything stored before it) matching decides nothing for mail that is not
        // denied, so such mail is stored as examined and matching never rewrites its rows.
        let next = self.conn.one(
            "SELECT COALESCE(MAX(id), 0) + 1,
                    NOT EXISTS (SELECT 1 FROM customer_emails)
                    AND NOT EXISTS (SELECT 1 FROM customer_domains)
                    AND NOT EXISTS (SELECT 1 FROM matches)
                    AND NOT EXISTS (SELECT 1 FROM messages WHERE customer_id IS NOT NULL)
             FROM messages",
            &[],
            |r| {
                let next = match self.engine() {
                    Engine::Sqlite => Some(r.get(0)?),
                    Engine::Postgres => None,
                };
                Ok((next, r.get(1)?))
            },
        );
        match next {
            Ok((next, no_book)) => Ok(BulkInsert {
                ids: IdSource {
                    next,
                    reserved: Vec::new(),
                    created_at: now(),
                    no_book,
                    // Sync's INSERT skips the trigger that keeps `account_counts` (migration
                    // 14; on PostgreSQL since 19) and adds its counts at commit.
                    counts: CountDelta::default(),
                    high_uid: None,
                },
                out: BatchOutcome::default(),
                chunk: Vec::new(),
                chunk_at: None,
                chunk_bytes: 0,
            }),
            Err(e) => {
                self.bulk_rollback();
                Err(e)
            }
        }
    }

    /// Inserts one message into the open bulk transaction (a location stored already is
    /// skipped; `bulk.out` counts what was added).
    pub fn bulk_insert(
        &self,
        bulk: &mut BulkInsert,
        account_id: &str,
        folder_id: i64,
        uidvalidity: u32,
        m: &NewMessage,
    ) -> Result<()> {
        if self.engine() == Engine::Postgres {
            // Gathered into chunks (see `pg_chunk`): stored when the chunk is full, when the
            // folder changes and at the latest by `bulk_commit`.
            let at = (account_id.to_string(), folder_id, uidvalidity);
            if bulk.chunk_at.as_ref().is_some_and(|a| *a != at) {
                self.bulk_flush(bulk)?;
            }
            bulk.chunk_at = Some(at);
            bulk.chunk_bytes += m.headers.len() + m.body.as_ref().map_or(0, |b| b.raw.len());
            bulk.chunk.push(m.clone());
            if bulk.chunk.len() >= pg_chunk::CHUNK || bulk.chunk_bytes >= pg_chunk::CHUNK_BYTES {
                self.bulk_flush(bulk)?;
            }
            return Ok(());
        }
        let added = insert_one(
            &self.conn,
            account_id,
            folder_id,
            uidvalidity,
            m,
            &mut bulk.ids,
            &mut bulk.out,
        )?;
        if added {
            bulk.out.added += 1;
        }
        Ok(())
    }

    /// PostgreSQL: stores the messages gathered for the open bulk transaction.
    fn bulk_flush(&self, bulk: &mut BulkInsert) -> Result<()> {
        let chunk = std::mem::take(&mut bulk.chunk);
        bulk.chunk_bytes = 0;
        let Some((account_id, folder_id, uidvalidity)) = &bulk.chunk_at else {
            return Ok(());
        };
        if chunk.is_empty() {
            return Ok(());
        }
        let at = Folder {
            account_id,
            folder_id: *folder_id,
            uidvalidity: *uidvalidity,
        };
        pg_chunk::insert_chunk(&self.conn, &at, &chunk, &mut bulk.ids, &mut bulk.out)
    }

    /// Moves the folder's checkpoint (when given), adds what the transaction's new locations
    /// change in `account_counts` and commits the bulk transaction.
    pub fn bulk_commit(
        &self,
        bulk: &mut BulkInsert,
        folder_id: i64,
        checkpoint: Option<u32>,
    ) -> Result<()> {
        self.bulk_flush(bulk)?;
        for (account, [m, u, q]) in bulk.ids.counts.accounts.drain(..) {
            self.conn.exec(SQL_ADD_COUNTS, args![account, m, u, q])?;
        }
        if let Some(cp) = checkpoint {
            self.conn.exec(
                "UPDATE folders SET checkpoint_uid = CASE WHEN COALESCE(checkpoint_uid, 0) > ?2
                     THEN checkpoint_uid ELSE ?2 END WHERE id = ?1",
                args![folder_id, cp],
            )?;
        }
        self.conn.batch("COMMIT")
    }

    /// Abandons the open bulk transaction (nothing of it is kept, the checkpoint included).
    pub fn bulk_rollback(&self) {
        if self.conn.in_tx() {
            let _ = self.conn.batch("ROLLBACK");
        }
    }

    /// UIDs stored for a folder under this UIDVALIDITY, ascending.
    pub fn folder_uids(&self, folder_id: i64, uidvalidity: u32) -> Result<Vec<u32>> {
        self.conn.rows(
            "SELECT uid FROM locations WHERE folder_id = ?1 AND uidvalidity = ?2 ORDER BY uid",
            args![folder_id, uidvalidity],
            |r| r.get(0),
        )
    }

    /// Applies server flags to stored locations; returns how many changed. Locations with a
    /// local change still waiting in the queue keep their local flags (the queue wins).
    pub fn apply_flags(
        &mut self,
        folder_id: i64,
        uidvalidity: u32,
        updates: &[FlagRow],
    ) -> Result<u64> {
        self.conn.tx(|| {
            let mut changed = 0u64;
            for (uid, flags, modseq) in updates {
                let mut sorted = flags.clone();
                sorted.sort();
                changed += self.conn.exec(
                    "UPDATE locations SET flags = ?3, seen = ?4, modseq = COALESCE(?5, modseq)
                     WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?6 AND flags <> ?3
                       AND NOT EXISTS (SELECT 1 FROM pending_ops p WHERE p.location_id = locations.id AND p.done_at IS NULL)",
                    args![
                        folder_id,
                        uidvalidity,
                        flags_text(&sorted),
                        has_seen(&sorted),
                        modseq.map(|m| m as i64),
                        *uid
                    ],
                )?;
            }
            Ok(changed)
        })
    }

    /// Removes locations the server no longer has. The logical messages stay (invisible without
    /// a location) so pairings survive and a move seen later re-attaches to the same id.
    pub fn remove_locations(
        &mut self,
        folder_id: i64,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<u64> {
        self.conn.tx(|| {
            let mut n = 0u64;
            for uid in uids {
                n += self.conn.exec(
                    "DELETE FROM locations WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3",
                    args![folder_id, uidvalidity, *uid],
                )?;
            }
            Ok(n)
        })
    }

    /// After a rebuild finished: locations under an old UIDVALIDITY are gone from the server.
    pub fn drop_stale_locations(&self, folder_id: i64, uidvalidity: u32) -> Result<u64> {
        self.conn.exec(
            "DELETE FROM locations WHERE folder_id = ?1 AND uidvalidity <> ?2",
            args![folder_id, uidvalidity],
        )
    }

    /// Unseen locations at or above `from_uid` (for "mark as read after processing").
    pub fn unseen_uids_from(
        &self,
        folder_id: i64,
        uidvalidity: u32,
        from_uid: u32,
    ) -> Result<Vec<u32>> {
        self.conn.rows(
            "SELECT l.uid FROM locations l JOIN messages m ON m.id = l.message_id
             WHERE l.folder_id = ?1 AND l.uidvalidity = ?2 AND l.uid >= ?3 AND l.seen = 0 AND m.denied = 0",
            args![folder_id, uidvalidity, from_uid],
            |r| r.get(0),
        )
    }

    /// Marks locations seen locally (after the server accepted it).
    pub fn mark_seen_local(
        &mut self,
        folder_id: i64,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<()> {
        self.conn.tx(|| {
            for u in uids {
                self.conn.exec(
                    "UPDATE locations SET flags = TRIM(flags || ' \\Seen'), seen = 1 WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3 AND seen = 0",
                    args![folder_id, uidvalidity, *u],
                )?;
            }
            Ok(())
        })
    }

    /// One page of an account's messages, newest first (optionally one folder only). Denied
    /// mail is hidden.
    pub fn messages_page(
        &self,
        account_id: &str,
        folder: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<MessageSummary>> {
        let ids: Vec<i64> = self.conn.rows(
            "SELECT m.id FROM messages m
             WHERE m.denied = 0 AND EXISTS (SELECT 1 FROM locations l JOIN folders f ON f.id = l.folder_id
                 WHERE l.message_id = m.id AND l.account_id = ?1 AND (?2 IS NULL OR f.name = ?2))
             ORDER BY m.date DESC NULLS LAST, m.id DESC LIMIT ?3 OFFSET ?4",
            args![account_id, folder, limit, offset],
            |r| r.get(0),
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(s) = self.message_summary(id, Some(account_id))? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Number of visible messages of an account (optionally one folder).
    pub fn messages_count(&self, account_id: &str, folder: Option<&str>) -> Result<i64> {
        self.conn.one(
            "SELECT COUNT(DISTINCT l.message_id) FROM locations l JOIN folders f ON f.id = l.folder_id JOIN messages m ON m.id = l.message_id
             WHERE l.account_id = ?1 AND (?2 IS NULL OR f.name = ?2) AND m.denied = 0",
            args![account_id, folder],
            |r| r.get(0),
        )
    }

    /// The list view of one message; flags come from its location(s) in `account_id` (any
    /// account when None).
    pub fn message_summary(
        &self,
        id: i64,
        account_id: Option<&str>,
    ) -> Result<Option<MessageSummary>> {
        let base = self.conn.first(
                "SELECT message_id, thread_id, from_addr, from_name, to_json, cc_json, subject, date, size, customer_id FROM messages WHERE id = ?1",
                args![id],
                |r| {
                let from_addr: Option<String> = r.get(2)?;
                let from_name: Option<String> = r.get(3)?;
                Ok(MessageSummary {
                    id,
                    message_id: r.get(0)?,
                    thread_id: r.get(1)?,
                    from: from_addr.map(|address| Addr { name: from_name, address }),
                    to: serde_json::from_str(&r.get::<String>(4)?).unwrap_or_default(),
                    cc: serde_json::from_str(&r.get::<String>(5)?).unwrap_or_default(),
                    subject: r.get(6)?,
                    date: r.get(7)?,
                    flags: vec![],
                    size: r.get(8)?,
                    locations: vec![],
                    customer_id: r.get(9)?,
                })
            })?;
        let Some(mut s) = base else { return Ok(None) };
        let locs = self.locations_of(id)?;
        let mut flags: Vec<String> = Vec::new();
        for l in &locs {
            if account_id.is_none_or(|a| a == l.account_id) {
                for f in &l.flags {
                    if !flags.contains(f) {
                        flags.push(f.clone());
                    }
                }
            }
        }
        flags.sort();
        s.flags = flags;
        let names: std::collections::HashMap<String, String> = self
            .conn
            .rows("SELECT id, name FROM accounts", &[], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .into_iter()
            .collect();
        s.locations = locs
            .iter()
            .map(|l| LocationView {
                account: names
                    .get(&l.account_id)
                    .cloned()
                    .unwrap_or_else(|| l.account_id.clone()),
                account_id: l.account_id.clone(),
                folder: l.folder.clone(),
                uidvalidity: l.uidvalidity,
                uid: l.uid,
                flags: l.flags.clone(),
            })
            .collect();
        Ok(Some(s))
    }

    /// The accounts holding a copy of this message (empty: no such message). What the
    /// visibility gate asks before anything names a message.
    pub fn message_account_ids(&self, message_id: i64) -> Result<Vec<String>> {
        self.conn.rows(
            "SELECT DISTINCT account_id FROM locations WHERE message_id = ?1 ORDER BY account_id",
            args![message_id],
            |r| r.get(0),
        )
    }

    pub fn locations_of(&self, message_id: i64) -> Result<Vec<LocationRow>> {
        self.conn.rows(
            "SELECT l.id, l.message_id, l.account_id, l.folder_id, f.name, f.wire_name, l.uidvalidity, l.uid, l.flags
             FROM locations l JOIN folders f ON f.id = l.folder_id WHERE l.message_id = ?1 ORDER BY l.id",
            args![message_id],
            |r| {
                Ok(LocationRow {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    account_id: r.get(2)?,
                    folder_id: r.get(3)?,
                    folder: r.get(4)?,
                    wire_name: r.get(5)?,
                    uidvalidity: r.get(6)?,
                    uid: r.get(7)?,
                    flags: flags_vec(&r.get::<String>(8)?),
                })
            },
        )
    }

    /// Everything stored about one message (for `message show` and the console's reader).
    pub fn message(&self, id: i64) -> Result<Option<MessageFull>> {
        let Some(summary) = self.message_summary(id, None)? else {
            return Ok(None);
        };
        let mut full = self.conn.one(
            "SELECT m.headers, COALESCE(b.raw, m.body), COALESCE(b.text, m.text_body), m.in_reply_to, m.refs,
                    m.has_attachments, c.name
             FROM messages m LEFT JOIN customers c ON c.id = m.customer_id
             LEFT JOIN bodies b ON b.message_id = m.id WHERE m.id = ?1",
            args![id],
            |r| {
                Ok(MessageFull {
                    summary,
                    headers: r.get(0)?,
                    body: r.get(1)?,
                    text_body: r.get(2)?,
                    in_reply_to: r.get(3)?,
                    refs: r.get(4)?,
                    has_attachments: r.get(5)?,
                    customer: r.get(6)?,
                })
            },
        )?;
        // A body downloaded in bulk (full offline mode) has its text taken out when read.
        if full.text_body.is_none()
            && let Some(raw) = full.body.as_deref()
        {
            let parsed = crate::mail::parse::parse_body(raw);
            full.has_attachments |= parsed.as_ref().is_some_and(|b| !b.attachments.is_empty());
            full.text_body = Some(parsed.map(|b| b.text).unwrap_or_default());
        }
        Ok(Some(full))
    }

    /// Stores a fetched body and its readable text; the text joins the search index.
    pub fn set_body(
        &mut self,
        id: i64,
        raw: &[u8],
        text: &str,
        has_attachments: bool,
    ) -> Result<()> {
        self.conn.tx(|| {
            self.conn.exec(
                "INSERT INTO bodies (message_id, raw, text, size, indexed) VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (message_id) DO UPDATE SET raw = excluded.raw, text = excluded.text,
                     size = excluded.size, indexed = excluded.indexed",
                args![id, raw, text, raw.len()],
            )?;
            self.conn.exec(
                "UPDATE messages SET has_attachments = ?2 WHERE id = ?1",
                args![id, has_attachments],
            )?;
            let (subject, from_addr, from_name, to_json, cc_json): (Option<String>, Option<String>, Option<String>, String, String) = self.conn.one(
                "SELECT subject, from_addr, from_name, to_json, cc_json FROM messages WHERE id = ?1",
                args![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            let env = Envelope {
                from: from_addr.map(|address| Addr { name: from_name, address }),
                to: serde_json::from_str(&to_json).unwrap_or_default(),
                cc: serde_json::from_str(&cc_json).unwrap_or_default(),
                ..Default::default()
            };
            let doc = FtsDoc {
                subject: subject.as_deref().unwrap_or_default(),
                addresses: &addresses_text(&env),
                body: text,
            };
            fts_write(&self.conn, id, &doc, true)
        })
    }

    /// Messages of synced folders without a body, small enough to prefetch: (id, folder_id,
    /// wire folder, uidvalidity, uid).
    pub fn bodies_to_prefetch(
        &self,
        account_id: &str,
        max_bytes: u64,
        limit: i64,
    ) -> Result<Vec<PrefetchItem>> {
        // One row per message: its first copy in a synced folder (SQLite takes any row of
        // the group; PostgreSQL wants the copy named).
        let sql = match self.engine() {
            Engine::Sqlite => {
                "SELECT m.id, l.folder_id, f.wire_name, l.uidvalidity, l.uid FROM messages m
                 JOIN locations l ON l.message_id = m.id JOIN folders f ON f.id = l.folder_id
                 WHERE l.account_id = ?1 AND NOT EXISTS (SELECT 1 FROM bodies b WHERE b.message_id = m.id) AND m.size <= ?2 AND f.sync_enabled = 1 AND l.uidvalidity = f.uidvalidity
                 GROUP BY m.id ORDER BY l.folder_id, l.uid LIMIT ?3"
            }
            Engine::Postgres => {
                "SELECT id, folder_id, wire_name, uidvalidity, uid FROM (
                     SELECT DISTINCT ON (m.id) m.id, l.folder_id, f.wire_name, l.uidvalidity, l.uid
                     FROM messages m
                     JOIN locations l ON l.message_id = m.id JOIN folders f ON f.id = l.folder_id
                     WHERE l.account_id = ?1 AND NOT EXISTS (SELECT 1 FROM bodies b WHERE b.message_id = m.id) AND m.size <= ?2 AND f.sync_enabled = 1 AND l.uidvalidity = f.uidvalidity
                     ORDER BY m.id, l.id) one
                 ORDER BY folder_id, uid LIMIT ?3"
            }
        };
        self.conn
            .rows(sql, args![account_id, max_bytes, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
    }

    /// How many locations an account has in total (for diagnostics and tests).
    pub fn location_count(&self, folder_id: i64) -> Result<i64> {
        self.conn.one(
            "SELECT COUNT(*) FROM locations WHERE folder_id = ?1",
            args![folder_id],
            |r| r.get(0),
        )
    }
}

/// An open bulk transaction (see `Store::bulk_begin`): ids to hand out and what was added.
pub struct BulkInsert {
    ids: IdSource,
    pub out: BatchOutcome,
    /// PostgreSQL: fetched messages not stored yet, and the folder they are for.
    chunk: Vec<NewMessage>,
    chunk_at: Option<(String, i64, u32)>,
    /// Bytes of headers and whole messages in `chunk`.
    chunk_bytes: usize,
}

/// Ids and the creation time for the messages of one transaction.
struct IdSource {
    /// SQLite: the next id (max + 1 under the write lock); PostgreSQL: None, ids come from
    /// the table's sequence.
    next: Option<i64>,
    /// PostgreSQL: ids taken from the sequence and not used yet (a block at a time).
    reserved: Vec<i64>,
    created_at: String,
    /// The customer book was empty when the transaction began: mail that is not denied is
    /// stored as examined by matching (nothing to decide).
    no_book: bool,
    /// What the transaction's locations add to `account_counts`, written at commit.
    counts: CountDelta,
    /// The highest UID stored in a folder under a UIDVALIDITY (folder, UIDVALIDITY, UID) as
    /// the one-by-one path knows it: read once under the write lock and raised by each of its
    /// inserts. A fetch streams UIDs in ascending order, so a first sync's or new mail's UIDs
    /// lie above it and need no lookup of their location. (PostgreSQL's chunks decide from
    /// their own look-up and leave it behind; it is then only lower than the truth, which
    /// costs a lookup, never a doubled location.)
    high_uid: Option<(i64, u32, u32)>,
}

/// Per account: messages, unread, queued added by one bulk transaction; and whether the last
/// folder looked at is one whose mail can be in the triage queue.
#[derive(Default)]
struct CountDelta {
    accounts: Vec<(String, [i64; 3])>,
    folder: Option<(i64, bool)>,
}

impl CountDelta {
    fn add(&mut self, account_id: &str, d: [i64; 3]) {
        let at = match self.accounts.iter().position(|(a, _)| a == account_id) {
            Some(i) => i,
            None => {
                self.accounts.push((account_id.to_string(), [0; 3]));
                self.accounts.len() - 1
            }
        };
        for (n, x) in self.accounts[at].1.iter_mut().zip(d) {
            *n += x;
        }
    }

    /// Whether mail in `folder_id` can be in the queue (not Sent, Trash, Junk or Drafts).
    fn queue_folder(&mut self, tx: &Conn, folder_id: i64) -> Result<bool> {
        if let Some((_, q)) = self.folder.filter(|(f, _)| *f == folder_id) {
            return Ok(q);
        }
        let q = tx
            .first(SQL_FOLDER_OUTSIDE_QUEUE, args![folder_id], |_| Ok(()))?
            .is_none();
        self.folder = Some((folder_id, q));
        Ok(q)
    }
}

/// Adds one bulk transaction's counts (the trigger's UPSERT, for many locations at once).
const SQL_ADD_COUNTS: &str = "INSERT INTO account_counts (account_id, messages, unread, queued)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (account_id) DO UPDATE SET messages = account_counts.messages + excluded.messages,
         unread = account_counts.unread + excluded.unread, queued = account_counts.queued + excluded.queued";
const SQL_FOLDER_OUTSIDE_QUEUE: &str =
    "SELECT 1 FROM folders WHERE id = ?1 AND role IN ('sent', 'trash', 'junk', 'drafts')";
/// What a new location of stored message ?1 in account ?2 adds: the message to the account,
/// to its unread (if the location is unseen) and to its queue (if the folder is a queue one).
const SQL_COUNT_DELTA: &str = "SELECT
     NOT EXISTS (SELECT 1 FROM locations o WHERE o.message_id = ?1 AND o.account_id = ?2),
     NOT EXISTS (SELECT 1 FROM locations o WHERE o.message_id = ?1 AND o.account_id = ?2 AND o.seen = 0),
     EXISTS (SELECT 1 FROM messages m WHERE m.id = ?1 AND m.direction = 'in' AND m.customer_id IS NULL
             AND m.denied = 0 AND m.triage_state IS NULL)
     AND NOT EXISTS (SELECT 1 FROM locations o WHERE o.message_id = ?1 AND o.account_id = ?2
             AND o.folder_id NOT IN (SELECT id FROM folders WHERE role IN ('sent', 'trash', 'junk', 'drafts')))";

/// The logical message a fetched one is (same Message-ID and content hash). No `ORDER BY id`
/// and no `MIN(id)`: with either, SQLite marks the bound values as plan-relevant, and since
/// rusqlite clears the bindings of a cached statement, it re-prepared this one on every
/// execution (11 % of a first sync's CPU; `sync_statements_are_prepared_once` guards it).
/// The Message-ID index holds equal keys in rowid order, so the first hit is the oldest row.
const SQL_SAME_MESSAGE: &str =
    "SELECT id FROM messages WHERE message_id = ?1 AND content_hash = ?2 LIMIT 1";
const SQL_HIGHEST_UID: &str =
    "SELECT COALESCE(MAX(uid), 0) FROM locations WHERE folder_id = ?1 AND uidvalidity = ?2";
const SQL_LOCATION_EXISTS: &str =
    "SELECT 1 FROM locations WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3";
/// An identical message without Message-ID stored under the folder's previous UIDVALIDITY.
const SQL_STALE_TWIN: &str =
    "SELECT l.id, l.message_id FROM locations l JOIN messages m ON m.id = l.message_id
     WHERE l.folder_id = ?1 AND l.uidvalidity <> ?2 AND m.message_id IS NULL AND m.content_hash = ?3
     ORDER BY l.uid LIMIT 1";
/// The date and thread a stored message's new location copies.
const SQL_SORT_KEY: &str =
    "SELECT COALESCE(date, ''), COALESCE(thread_id, id) FROM messages WHERE id = ?1";
const SQL_THREAD_ROOT: &str =
    "SELECT COALESCE(thread_id, id) FROM messages WHERE message_id = ?1 LIMIT 1";

/// The thread root of a new message: that of the first of its references (or the message it
/// replies to) already stored. (PostgreSQL's chunks ask the same in SQL: `pg_chunk::look_up`.)
fn thread_root_of(tx: &Conn, env: &Envelope) -> Result<Option<i64>> {
    for parent in thread_parents(env) {
        let found = tx.first(SQL_THREAD_ROOT, args![parent], |r| r.get(0))?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// The messages a new one may join the thread of, in the order that decides: References
/// (oldest first), then In-Reply-To.
fn thread_parents(env: &Envelope) -> impl Iterator<Item = &str> {
    env.references
        .iter()
        .chain(env.in_reply_to.iter())
        .map(String::as_str)
}

/// Ids taken from PostgreSQL's sequence at a time (one round trip instead of one per
/// message; what a transaction leaves unused is a gap in the ids, nothing more).
const PG_ID_BLOCK: i64 = 64;

/// The id of a message about to be created.
fn new_message_id(tx: &Conn, ids: &mut IdSource) -> Result<i64> {
    if let Some(next) = &mut ids.next {
        let id = *next;
        *next += 1;
        return Ok(id);
    }
    if ids.reserved.is_empty() {
        ids.reserved = tx.rows(
            "SELECT nextval(pg_get_serial_sequence('messages', 'id')) FROM generate_series(1, ?1)",
            args![PG_ID_BLOCK],
            |r| r.get(0),
        )?;
        // Handed out from the end: smallest first.
        ids.reserved.sort_unstable_by(|a, b| b.cmp(a));
    }
    ids.reserved.pop().ok_or_else(|| {
        crate::error::AppError::local(
            "the database handed out no message id",
            "",
            "run the sync again",
        )
    })
}

/// What is stored already of a fetched message.
struct Found {
    /// The logical message it is (same Message-ID and content hash), if stored.
    message: Option<i64>,
}

/// Looks a fetched message up: None if its location is stored already.
fn look_up(
    tx: &Conn,
    folder_id: i64,
    uidvalidity: u32,
    m: &NewMessage,
    ids: &mut IdSource,
) -> Result<Option<Found>> {
    let env = &m.env;
    let high = match ids.high_uid {
        Some((f, v, high)) if f == folder_id && v == uidvalidity => high,
        _ => {
            let high = tx.one(SQL_HIGHEST_UID, args![folder_id, uidvalidity], |r| r.get(0))?;
            ids.high_uid = Some((folder_id, uidvalidity, high));
            high
        }
    };
    let exists = m.uid <= high
        && tx
            .first(
                SQL_LOCATION_EXISTS,
                args![folder_id, uidvalidity, m.uid],
                |_| Ok(()),
            )?
            .is_some();
    if exists {
        return Ok(None);
    }
    if let Some((_, _, high)) = &mut ids.high_uid {
        // Stored below, in this transaction (an error rolls the whole of it back).
        *high = (*high).max(m.uid);
    }
    let mut message = None;
    if let Some(mid) = &env.message_id {
        message = tx.first(SQL_SAME_MESSAGE, args![mid, env.content_hash], |r| r.get(0))?;
    } else {
        // Rebuild after a UIDVALIDITY change: the same folder's old location of an identical
        // message without Message-ID is this message; take it over instead of duplicating.
        let stale: Option<(i64, i64)> = tx.first(
            SQL_STALE_TWIN,
            args![folder_id, uidvalidity, env.content_hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if let Some((loc, mid)) = stale {
            tx.exec("DELETE FROM locations WHERE id = ?1", args![loc])?;
            message = Some(mid);
        }
    }
    Ok(Some(Found { message }))
}

/// Inserts one location (and its logical message if new). False if it was already stored.
fn insert_one(
    tx: &Conn,
    account_id: &str,
    folder_id: i64,
    uidvalidity: u32,
    m: &NewMessage,
    ids: &mut IdSource,
    out: &mut BatchOutcome,
) -> Result<bool> {
    let Some(found) = look_up(tx, folder_id, uidvalidity, m, ids)? else {
        return Ok(false);
    };
    let at = Folder {
        account_id,
        folder_id,
        uidvalidity,
    };
    insert_found(tx, &at, m, found, ids, out)?;
    Ok(true)
}

/// The folder a bulk transaction stores fetched messages into.
struct Folder<'a> {
    account_id: &'a str,
    folder_id: i64,
    uidvalidity: u32,
}

/// Inserts a fetched message whose location is not stored yet, given what is stored of it.
fn insert_found(
    tx: &Conn,
    at: &Folder<'_>,
    m: &NewMessage,
    found: Found,
    ids: &mut IdSource,
    out: &mut BatchOutcome,
) -> Result<()> {
    let Folder {
        account_id,
        folder_id,
        uidvalidity,
    } = *at;
    let env = &m.env;
    let Found { message: msg_id } = found;
    let seen = has_seen(&m.flags);
    let queue_folder = ids.counts.queue_folder(tx, folder_id)?;
    let place = |sort_date, thread_id| Place {
        account_id,
        folder_id,
        uidvalidity,
        seen,
        sort_date,
        thread_id,
    };
    match msg_id {
        Some(id) => {
            // The message's date and thread, copied onto the location (the mail index's order).
            let (sort_date, thread_id): (String, i64) =
                tx.one(SQL_SORT_KEY, args![id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            if let Some(b) = &m.body {
                // A message stored before (another folder, another account): its index entry
                // has no body words yet; the pass's indexing adds them.
                out.bodies += u64::from(super::bodies::insert_raw(tx, id, &b.raw, false)?);
            }
            let d: [bool; 3] = tx.one(SQL_COUNT_DELTA, args![id, account_id], |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?])
            })?;
            ids.counts.add(
                account_id,
                [d[0], d[1] && !seen, d[2] && queue_folder].map(i64::from),
            );
            insert_location(tx, id, m, &place(&sort_date, thread_id))?;
        }
        None => {
            let thread_root = thread_root_of(tx, env)?;
            let id = new_message_id(tx, ids)?;
            // With an empty book only denied mail waits for matching.
            let pending = !ids.no_book || m.denied;
            let queued = queue_folder && m.direction == "in" && !m.denied;
            ids.counts
                .add(account_id, [true, !seen, queued].map(i64::from));
            out.created += 1;
            let sort_date = env.date.as_deref().or(m.internal_date.as_deref());
            let place = place(sort_date.unwrap_or_default(), thread_root.unwrap_or(id));
            if tx.engine() == Engine::Postgres && m.body.is_none() {
                insert_new_pg(tx, m, id, &ids.created_at, pending, &place)?;
                return Ok(());
            }
            insert_message(tx, m, id, place.thread_id, &ids.created_at)?;
            if pending {
                tx.exec(
                    "INSERT INTO crm_pending (message_id) VALUES (?1)",
                    args![id],
                )?;
            }
            if let Some(b) = &m.body {
                // Its words went into the index with the header's: stored as indexed.
                out.bodies += u64::from(super::bodies::insert_raw(tx, id, &b.raw, true)?);
            }
            insert_location(tx, id, m, &place)?;
        }
    }
    Ok(())
}

/// Where a fetched message lies: its location's row apart from the message and the UID.
struct Place<'a> {
    account_id: &'a str,
    folder_id: i64,
    uidvalidity: u32,
    seen: bool,
    /// The message's date and thread, copied onto the location (the mail index's order).
    sort_date: &'a str,
    thread_id: i64,
}

const SQL_INSERT_LOCATION: &str = "INSERT INTO locations (message_id, account_id, folder_id, uidvalidity, uid, flags, seen, modseq, internal_date, sort_date, thread_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

fn sorted_flags(m: &NewMessage) -> String {
    let mut flags = m.flags.clone();
    flags.sort();
    flags_text(&flags)
}

/// A location's values from `account_id` to `sort_date`, in SQL_INSERT_LOCATION's order.
fn location_args<'a>(m: &'a NewMessage, p: &'a Place<'a>, flags: &'a str) -> [Arg<'a>; 9] {
    [
        p.account_id.arg(),
        p.folder_id.arg(),
        p.uidvalidity.arg(),
        m.uid.arg(),
        flags.arg(),
        p.seen.arg(),
        m.modseq.arg(),
        m.internal_date.arg(),
        p.sort_date.arg(),
    ]
}

fn insert_location(tx: &Conn, id: i64, m: &NewMessage, p: &Place<'_>) -> Result<()> {
    let flags = sorted_flags(m);
    tx.exec(
        SQL_INSERT_LOCATION,
        &[
            &[id.arg()][..],
            &location_args(m, p, &flags),
            &[p.thread_id.arg()],
        ]
        .concat(),
    )?;
    Ok(())
}

/// The columns of a new message row that are computed from the fetched message.
struct MessageValues {
    refs: Option<String>,
    to: String,
    cc: String,
    date: Option<String>,
    addresses: String,
}

fn message_values(m: &NewMessage) -> MessageValues {
    let env = &m.env;
    MessageValues {
        refs: (!env.references.is_empty()).then(|| env.references.join(" ")),
        to: serde_json::to_string(&env.to).unwrap_or_else(|_| "[]".into()),
        cc: serde_json::to_string(&env.cc).unwrap_or_else(|_| "[]".into()),
        date: env.date.clone().or_else(|| m.internal_date.clone()),
        addresses: addresses_text(env),
    }
}

/// The values of `message_columns!` from the third (`message_id`) to the seventeenth
/// (`created_at`): what both inserts of a new message bind alike.
fn message_args<'a>(m: &'a NewMessage, v: &'a MessageValues, created_at: &'a str) -> [Arg<'a>; 15] {
    let env = &m.env;
    [
        env.message_id.arg(),
        env.content_hash.arg(),
        env.in_reply_to.arg(),
        v.refs.arg(),
        env.from
            .as_ref()
            .map_or(Arg::Null(Kind::Text), |a| Arg::Text(&a.address)),
        env.from
            .as_ref()
            .and_then(|a| a.name.as_deref())
            .map_or(Arg::Null(Kind::Text), Arg::Text),
        v.to.arg(),
        v.cc.arg(),
        env.subject.arg(),
        v.date.arg(),
        m.size.arg(),
        m.headers.arg(),
        m.direction.arg(),
        m.denied.arg(),
        created_at.arg(),
    ]
}

/// The columns both inserts of a new message fill, in their order.
macro_rules! message_columns {
    () => {
        "id, thread_id, message_id, content_hash, in_reply_to, refs, from_addr, from_name, to_json, cc_json, subject, date, size, headers, direction, denied, created_at, has_attachments"
    };
}

/// The logical message row of a newly fetched message, and its search index entry.
fn insert_message(
    tx: &Conn,
    m: &NewMessage,
    id: i64,
    thread_root: i64,
    created_at: &str,
) -> Result<()> {
    let env = &m.env;
    let v = message_values(m);
    tx.exec(
        concat!(
            "INSERT INTO messages (",
            message_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
        ),
        &[
            &[id.arg(), thread_root.arg()][..],
            &message_args(m, &v, created_at),
            args![m.body.as_ref().is_some_and(|b| b.attachments)],
        ]
        .concat(),
    )?;
    let doc = FtsDoc {
        subject: env.subject.as_deref().unwrap_or_default(),
        addresses: &v.addresses,
        body: m.body.as_ref().map_or("", |b| b.text.as_str()),
    };
    fts_write(tx, id, &doc, false)
}

/// PostgreSQL: a new message (without a body), its search entry, its place among the mail
/// matching has not examined and its location, in one statement. Each statement is a round
/// trip to the server; four of them per message were most of a first sync's time there.
fn insert_new_pg(
    tx: &Conn,
    m: &NewMessage,
    id: i64,
    created_at: &str,
    pending: bool,
    p: &Place<'_>,
) -> Result<()> {
    let env = &m.env;
    let v = message_values(m);
    let doc = FtsDoc {
        subject: env.subject.as_deref().unwrap_or_default(),
        addresses: &v.addresses,
        body: "",
    };
    tx.exec(
        concat!(
            "WITH m AS (INSERT INTO messages (",
            message_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, 0)),
             f AS (INSERT INTO messages_fts (message_id, doc) VALUES (?1, CAST(?18 AS tsvector))),
             c AS (INSERT INTO crm_pending (message_id) SELECT ?1 WHERE ?19 = 1)
             INSERT INTO locations (message_id, account_id, folder_id, uidvalidity, uid, flags, seen, modseq, internal_date, sort_date, thread_id)
             VALUES (?1, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?2)"
        ),
        &[
            &[id.arg(), p.thread_id.arg()][..],
            &message_args(m, &v, created_at),
            args![super::search::pg_tsvector(&doc), pending],
            &location_args(m, p, &sorted_flags(m)),
        ]
        .concat(),
    )?;
    Ok(())
}

mod pg_chunk;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::parse_headers;
    use crate::model::{FolderInfo, Role};

    fn setup(s: &mut Store) -> (i64, i64) {
        s.insert_account("a", "acct", true).unwrap();
        let mk = |n: &str, r| FolderInfo {
            name: n.into(),
            wire_name: n.into(),
            delimiter: None,
            attributes: vec![],
            selectable: true,
            role: r,
            role_source: None,
        };
        s.upsert_folders("a", &[mk("INBOX", Some(Role::Inbox)), mk("Archive", None)])
            .unwrap();
        let inbox = s.folder_by_name("a", "INBOX").unwrap().unwrap().id;
        let arch = s.folder_by_name("a", "Archive").unwrap().unwrap().id;
        (inbox, arch)
    }

    fn nm(uid: u32, hdr: &str) -> NewMessage {
        NewMessage {
            uid,
            flags: vec!["\\Seen".into()],
            size: 100,
            internal_date: None,
            modseq: None,
            env: parse_headers(hdr.as_bytes()).unwrap(),
            headers: hdr.as_bytes().to_vec(),
            denied: false,
            direction: "in",
            body: None,
        }
    }

    /// Each fetched message runs these lookups; a statement SQLite re-prepares on every
    /// execution (see SQL_SAME_MESSAGE) costs a first sync a tenth of its CPU.
    #[test]
    fn sync_statements_are_prepared_once() {
        let mut s = Store::open_in_memory().unwrap();
        let (inbox, _) = setup(&mut s);
        // SQL_STALE_TWIN is left out: it does get re-prepared, but runs only for mail without a
        // Message-ID during a UIDVALIDITY rebuild.
        let msg = |i: u32, id: bool| {
            let mid = if id {
                format!("Message-ID: <{i}@x>\r\n")
            } else {
                String::new()
            };
            nm(
                i,
                &format!(
                    "{mid}In-Reply-To: <{}@x>\r\nFrom: a{i}@x\r\nSubject: s{i}\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\n",
                    i - 1
                ),
            )
        };
        let first: Vec<NewMessage> = (1..=20).map(|i| msg(i, i % 5 != 0)).collect();
        s.store_batch("a", inbox, 1, &first, Some(20)).unwrap();
        let again: Vec<NewMessage> = (1..=20).map(|i| msg(i, i % 5 != 0)).collect();
        s.store_batch("a", inbox, 2, &again, Some(20)).unwrap();
        // A replay under the same UIDVALIDITY: only these UIDs are looked up one by one.
        s.store_batch("a", inbox, 2, &again, Some(20)).unwrap();
        for sql in [SQL_LOCATION_EXISTS, SQL_SAME_MESSAGE, SQL_THREAD_ROOT] {
            let st = s.conn.lite().unwrap().prepare_cached(sql).unwrap();
            assert!(
                st.get_status(rusqlite::StatementStatus::Run) > 1,
                "{sql} ran"
            );
            assert_eq!(
                st.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }

    /// UIDs above the folder's highest stored one are not looked up; at or below it they are,
    /// so a replayed batch, a batch out of order and a UID twice in one batch double nothing.
    #[test]
    fn locations_are_looked_up_only_at_or_below_the_highest_stored_uid() {
        let mut s = Store::open_in_memory().unwrap();
        let (inbox, _) = setup(&mut s);
        let msg = |i: u32| {
            nm(
                i,
                &format!("Message-ID: <{i}@x>\r\nFrom: a{i}@x\r\nSubject: s{i}\r\n\r\n"),
            )
        };
        let batch = |uids: &[u32]| uids.iter().map(|&u| msg(u)).collect::<Vec<_>>();
        let probes = |s: &Store| {
            s.conn
                .lite()
                .unwrap()
                .prepare_cached(SQL_LOCATION_EXISTS)
                .unwrap()
                .get_status(rusqlite::StatementStatus::Run)
        };
        let added = |s: &mut Store, uids: &[u32]| {
            s.store_batch("a", inbox, 7, &batch(uids), None)
                .unwrap()
                .added
        };
        assert_eq!(added(&mut s, &[1, 2, 3, 4, 5]), 5);
        assert_eq!(probes(&s), 0, "a first sync looks no location up");
        assert_eq!(added(&mut s, &[3, 4, 5, 6, 7]), 2, "replayed in part");
        assert_eq!(probes(&s), 3, "3, 4 and 5 were looked up; 6 and 7 not");
        assert_eq!(added(&mut s, &[10, 8, 10, 9]), 3, "out of order, 10 twice");
        assert_eq!(
            probes(&s),
            6,
            "8, the second 10 and 9: below 10, stored first"
        );
        assert_eq!(added(&mut s, &[1, 2]), 0);
        let (locations, messages): (i64, i64) = s
            .conn
            .one(
                "SELECT (SELECT COUNT(*) FROM locations), (SELECT COUNT(*) FROM messages)",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((locations, messages), (10, 10));
        // Another UIDVALIDITY of the folder starts from nothing stored.
        assert_eq!(
            s.store_batch("a", inbox, 8, &batch(&[1, 2]), None)
                .unwrap()
                .added,
            2
        );
        assert_eq!(
            probes(&s),
            8,
            "1 and 2 again; none under the new UIDVALIDITY"
        );
    }

    /// What PostgreSQL's chunked writer must decide within one chunk (and SQLite one by one):
    /// a duplicate joins the message created just before it, a UID twice is stored once, a
    /// message without Message-ID in between changes nothing for the replies after it, the
    /// first stored parent wins whether it was stored before or in the same chunk, and a
    /// thread longer than a chunk stays one thread.
    #[test]
    fn a_chunk_decides_identity_and_threads_as_one_message_at_a_time_would() {
        crate::store::testing::each(|s| {
            let (inbox, _) = setup(s);
            let msg = |id: &str, extra: &str| {
                format!(
                    "Message-ID: <{id}>\r\nFrom: a@x\r\nSubject: {id}\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n{extra}\r\n"
                )
            };
            let reply = |id: &str, refs: &str| msg(id, &format!("References: {refs}\r\n"));
            s.store_batch("a", inbox, 1, &[nm(1, &msg("b@x", ""))], Some(1))
                .unwrap();
            let batch = [
                nm(2, &msg("a@x", "")),
                nm(3, &msg("a@x", "")),
                nm(3, &msg("twice@x", "")),
                nm(4, "From: c@x\r\nSubject: no id\r\n\r\n"),
                nm(5, &reply("r1@x", "<a@x>")),
                nm(6, &reply("r2@x", "<b@x> <a@x>")),
                nm(7, &reply("r3@x", "<a@x> <b@x>")),
            ];
            let out = s.store_batch("a", inbox, 1, &batch, Some(7)).unwrap();
            assert_eq!((out.added, out.created), (6, 5), "{out:?}");
            fn one(s: &Store, sql: &str, mid: &str) -> i64 {
                s.conn.one(sql, args![mid], |r| r.get(0)).unwrap()
            }
            let root_of = |s: &Store, mid: &str| {
                one(
                    s,
                    "SELECT COALESCE(thread_id, id) FROM messages WHERE message_id = ?1",
                    mid,
                )
            };
            let id_of =
                |s: &Store, mid: &str| one(s, "SELECT id FROM messages WHERE message_id = ?1", mid);
            assert_eq!(
                one(
                    s,
                    "SELECT COUNT(*) FROM locations l JOIN messages m ON m.id = l.message_id WHERE m.message_id = ?1",
                    "a@x"
                ),
                2,
                "the duplicate is a second location of one message"
            );
            assert_eq!(
                one(
                    s,
                    "SELECT COUNT(*) FROM messages WHERE message_id = ?1",
                    "twice@x"
                ),
                0,
                "UID 3 was stored by the first message that had it"
            );
            assert_eq!(root_of(s, "r1@x"), id_of(s, "a@x"));
            assert_eq!(
                root_of(s, "r2@x"),
                id_of(s, "b@x"),
                "stored before, and first"
            );
            assert_eq!(
                root_of(s, "r3@x"),
                id_of(s, "a@x"),
                "created in the chunk, and first"
            );
            // A thread of 128 messages, each replying to the one before: two whole chunks
            // (nothing left over to store at the commit).
            let long: Vec<NewMessage> = (0..128u32)
                .map(|i| {
                    let parent = if i == 0 {
                        String::new()
                    } else {
                        format!("In-Reply-To: <t{}@x>\r\n", i - 1)
                    };
                    nm(100 + i, &msg(&format!("t{i}@x"), &parent))
                })
                .collect();
            s.store_batch("a", inbox, 1, &long, Some(227)).unwrap();
            assert_eq!(
                one(
                    s,
                    "SELECT COUNT(DISTINCT COALESCE(thread_id, id)) FROM messages WHERE message_id LIKE ?1",
                    "t%@x"
                ),
                1
            );
            let (messages, kept): (i64, i64) = s
                .conn
                .one(
                    "SELECT (SELECT COUNT(*) FROM messages), (SELECT messages FROM account_counts WHERE account_id = 'a')",
                    &[],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((messages, kept), (134, 134), "kept counts follow");
        });
    }

    /// Messages fetched whole (full offline mode) store their body once and their words with
    /// the header's, a chunk at a time on PostgreSQL as one by one on SQLite.
    #[test]
    fn whole_messages_store_body_and_words_once() {
        crate::store::testing::each(|s| {
            let (inbox, arch) = setup(s);
            let whole = |uid: u32, id: &str, text: &str, attachments: bool| {
                let hdr = format!("Message-ID: <{id}>\r\nFrom: a@x\r\nSubject: {id}\r\n\r\n");
                let mut m = nm(uid, &hdr);
                m.body = Some(WholeBody {
                    raw: format!("{hdr}{text}\r\n").into_bytes(),
                    text: text.into(),
                    attachments,
                });
                m
            };
            let batch = [
                whole(1, "w1@x", "invoice pelican", true),
                whole(2, "w2@x", "plain words", false),
                whole(3, "w1@x", "invoice pelican", true),
            ];
            let out = s.store_batch("a", inbox, 1, &batch, Some(3)).unwrap();
            assert_eq!((out.added, out.created, out.bodies), (3, 2, 2), "{out:?}");
            let again = [whole(7, "w2@x", "plain words", false)];
            let out = s.store_batch("a", arch, 1, &again, Some(7)).unwrap();
            assert_eq!((out.added, out.created, out.bodies), (1, 0, 0), "{out:?}");
            let (bodies, attached): (i64, i64) = s
                .conn
                .one(
                    "SELECT (SELECT COUNT(*) FROM bodies WHERE indexed = 1),
                            (SELECT COUNT(*) FROM messages WHERE has_attachments = 1)",
                    &[],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((bodies, attached), (2, 1));
            let f = crate::store::SearchFilter {
                fts: Some("\"pelican\"".into()),
                accounts: vec!["a".into()],
                ..Default::default()
            };
            assert_eq!(
                s.search_count(&f).unwrap(),
                1,
                "the body's words are searchable"
            );
        });
    }

    /// With an empty customer book there is nothing for matching to decide about mail that is
    /// not denied: it is stored as examined (matching never rewrites 100k rows after a first
    /// sync); once the book has an entry, new mail waits for matching again.
    #[test]
    fn mail_is_stored_examined_only_while_the_customer_book_is_empty() {
        crate::store::testing::each(|s| {
            let (inbox, _) = setup(s);
            let hdr =
                |i: u32| format!("Message-ID: <{i}@x>\r\nFrom: a{i}@x\r\nSubject: s{i}\r\n\r\n");
            let mut denied = nm(2, &hdr(2));
            denied.denied = true;
            s.store_batch("a", inbox, 1, &[nm(1, &hdr(1)), denied], Some(2))
                .unwrap();
            let unexamined = s.unexamined_ids().unwrap();
            assert_eq!(
                unexamined.len(),
                1,
                "only the denied one waits: {unexamined:?}"
            );
            let c = s.customer_insert("C", None, None).unwrap();
            s.conn
                .exec(
                    "INSERT INTO customer_emails (email, customer_id) VALUES ('a3@x', ?1)",
                    args![c],
                )
                .unwrap();
            s.store_batch("a", inbox, 1, &[nm(3, &hdr(3))], Some(3))
                .unwrap();
            assert_eq!(s.unexamined_ids().unwrap().len(), 2);
        });
    }

    #[test]
    fn identity_merges_by_id_and_hash_only() {
        crate::store::testing::each(|s| {
            let (inbox, arch) = setup(s);
            let a = "Message-ID: <1@x>\r\nFrom: a@x\r\nSubject: one\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\n";
            let reused = "Message-ID: <1@x>\r\nFrom: a@x\r\nSubject: different\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\n";
            let noid = "From: a@x\r\nSubject: noid\r\n\r\n";
            let o = s
                .store_batch(
                    "a",
                    inbox,
                    1,
                    &[nm(1, a), nm(2, reused), nm(3, noid)],
                    Some(3),
                )
                .unwrap();
            assert_eq!((o.added, o.created), (3, 3));
            // Same message in another folder: one logical message, two locations.
            let o = s
                .store_batch("a", arch, 7, &[nm(1, a), nm(2, noid)], Some(2))
                .unwrap();
            assert_eq!((o.added, o.created), (2, 1));
            // Replaying a batch doubles nothing.
            let o = s.store_batch("a", inbox, 1, &[nm(1, a)], Some(1)).unwrap();
            assert_eq!(o.added, 0);
            let page = s.messages_page("a", None, 10, 0).unwrap();
            assert_eq!(page.len(), 4);
            let merged = page
                .iter()
                .find(|m| m.subject.as_deref() == Some("one"))
                .unwrap();
            assert_eq!(merged.locations.len(), 2);
            assert_eq!(
                s.messages_page("a", Some("Archive"), 10, 0).unwrap().len(),
                2
            );
        });
    }

    /// A new message joins the thread of the first of its References (oldest first), else of
    /// the message it replies to, that is stored — earlier in the same batch included; on each
    /// engine (PostgreSQL asks it in the same statement as the identity lookup).
    #[test]
    fn new_mail_joins_the_thread_of_its_first_stored_reference() {
        crate::store::testing::each(|s| {
            let (inbox, _) = setup(s);
            let msg = |id: &str, extra: &str| {
                format!(
                    "Message-ID: <{id}>\r\nFrom: a@x\r\nSubject: {id}\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n{extra}\r\n"
                )
            };
            let batch = [
                nm(1, &msg("root@x", "")),
                nm(2, &msg("other@x", "")),
                // Its parent came earlier in this very batch.
                nm(
                    3,
                    &msg("r1@x", "In-Reply-To: <root@x>\r\nReferences: <root@x>\r\n"),
                ),
                // References unknown except the one it replies to.
                nm(
                    4,
                    &msg(
                        "r2@x",
                        "In-Reply-To: <r1@x>\r\nReferences: <gone@x> <r1@x>\r\n",
                    ),
                ),
                // The first stored reference wins over In-Reply-To.
                nm(
                    5,
                    &msg(
                        "r3@x",
                        "In-Reply-To: <other@x>\r\nReferences: <gone@x> <root@x>\r\n",
                    ),
                ),
                nm(6, &msg("lost@x", "In-Reply-To: <gone@x>\r\n")),
            ];
            s.store_batch("a", inbox, 1, &batch, Some(6)).unwrap();
            let root_of = |mid: &str| -> (i64, i64) {
                s.conn
                    .one(
                        "SELECT id, COALESCE(thread_id, id) FROM messages WHERE message_id = ?1",
                        args![mid],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .unwrap()
            };
            let (root, _) = root_of("root@x");
            let (lost, lost_root) = root_of("lost@x");
            assert_eq!(root_of("r1@x").1, root);
            assert_eq!(root_of("r2@x").1, root, "through r1's thread");
            assert_eq!(root_of("r3@x").1, root, "References before In-Reply-To");
            assert_eq!(root_of("other@x").1, root_of("other@x").0);
            assert_eq!(
                lost_root, lost,
                "nothing stored to join: a thread of its own"
            );
        });
    }

    #[test]
    fn rebuild_after_uidvalidity_change_keeps_ids() {
        crate::store::testing::each(|s| {
            let (inbox, _) = setup(s);
            let a = "Message-ID: <1@x>\r\nFrom: a@x\r\nSubject: one\r\n\r\n";
            let noid = "From: a@x\r\nSubject: noid\r\n\r\n";
            s.store_batch("a", inbox, 1, &[nm(1, a), nm(2, noid)], Some(2))
                .unwrap();
            let before: Vec<i64> = s
                .messages_page("a", None, 10, 0)
                .unwrap()
                .iter()
                .map(|m| m.id)
                .collect();
            s.reset_folder_for_rebuild(inbox, 2).unwrap();
            s.store_batch("a", inbox, 2, &[nm(10, a), nm(11, noid)], Some(11))
                .unwrap();
            s.drop_stale_locations(inbox, 2).unwrap();
            let after = s.messages_page("a", None, 10, 0).unwrap();
            let mut ids: Vec<i64> = after.iter().map(|m| m.id).collect();
            ids.sort();
            let mut b = before.clone();
            b.sort();
            assert_eq!(ids, b);
            assert!(
                after
                    .iter()
                    .all(|m| m.locations.len() == 1 && m.locations[0].uidvalidity == 2)
            );
        });
    }

    #[test]
    fn flags_vanish_and_bodies() {
        crate::store::testing::each(|s| {
            let (inbox, _) = setup(s);
            let a = "Message-ID: <1@x>\r\nFrom: a@x\r\nSubject: hello\r\n\r\n";
            s.store_batch(
                "a",
                inbox,
                1,
                &[nm(1, a), nm(2, "Message-ID: <2@x>\r\nSubject: b\r\n\r\n")],
                Some(2),
            )
            .unwrap();
            assert_eq!(
                s.apply_flags(inbox, 1, &[(1, vec!["\\Flagged".into()], Some(5))])
                    .unwrap(),
                1
            );
            assert_eq!(
                s.apply_flags(inbox, 1, &[(1, vec!["\\Flagged".into()], Some(5))])
                    .unwrap(),
                0
            );
            assert_eq!(s.account_counts("a").unwrap(), (2, 1));
            assert_eq!(s.remove_locations(inbox, 1, &[2]).unwrap(), 1);
            assert_eq!(s.folder_uids(inbox, 1).unwrap(), vec![1]);
            let id = s.messages_page("a", None, 10, 0).unwrap()[0].id;
            s.set_body(id, b"raw", "searchable words", false).unwrap();
            let f = crate::store::SearchFilter {
                fts: Some("\"searchable\"".into()),
                accounts: vec!["a".into()],
                ..Default::default()
            };
            assert_eq!(s.search_count(&f).unwrap(), 1);
        });
    }
}
