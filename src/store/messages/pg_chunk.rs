//! PostgreSQL's bulk writer stores fetched messages a chunk at a time: one statement looks the
//! whole chunk up (locations, identities, thread roots), one inserts its new messages with their
//! search entries, matching marks and locations. One message at a time that was two round trips
//! and two statements' executor start-up per message (locks on some twenty relations each),
//! ~400 µs per message on loopback. Messages the chunk statements do not cover — a message
//! stored already, one without a Message-ID — go through the one-by-one path after the new
//! messages before them are written, so it sees them.

use std::collections::{HashMap, HashSet};

use super::{
    BatchOutcome, Folder, Found, IdSource, NewMessage, Place, has_seen, insert_found, insert_one,
    location_args, message_args, message_values, new_message_id, sorted_flags, thread_parents,
};
use crate::error::Result;
use crate::store::search::{FtsDoc, pg_tsvector};
use crate::store::sql::{Arg, Conn, Kind, ToArg};

/// Messages per chunk: the look-up's and the insert's rows (31 arguments each).
pub(super) const CHUNK: usize = 64;
/// Bytes of headers and whole messages that close a chunk early (one statement carries them).
pub(super) const CHUNK_BYTES: usize = 1 << 20;

/// What the chunk's look-up found of one message.
struct Seen {
    location_stored: bool,
    /// The stored logical message with the same Message-ID and content hash.
    same: Option<i64>,
    /// The first of its thread parents that is stored (its place in `thread_parents`) and
    /// that parent's thread root.
    parent: Option<(usize, i64)>,
}

/// Stores a chunk of one folder's fetched messages (at most `CHUNK`) in the open transaction.
pub(super) fn insert_chunk(
    tx: &Conn,
    at: &Folder<'_>,
    ms: &[NewMessage],
    ids: &mut IdSource,
    out: &mut BatchOutcome,
) -> Result<()> {
    if ms.is_empty() {
        return Ok(());
    }
    let seen = look_up(tx, at, ms)?;
    // What this chunk created: by Message-ID, its id, content hash and thread root.
    let mut created: HashMap<&str, (i64, &str, i64)> = HashMap::new();
    let mut uids: HashSet<u32> = HashSet::new();
    let mut rows: Vec<(&NewMessage, i64, i64)> = Vec::new();
    for (m, s) in ms.iter().zip(seen) {
        if s.location_stored || !uids.insert(m.uid) {
            continue;
        }
        let Some(mid) = m.env.message_id.as_deref() else {
            // Never merged; a UIDVALIDITY rebuild may take its old location over.
            write_rows(tx, at, &mut rows, ids, out)?;
            if insert_one(tx, at.account_id, at.folder_id, at.uidvalidity, m, ids, out)? {
                out.added += 1;
            }
            continue;
        };
        let same = s.same.or_else(|| {
            created
                .get(mid)
                .filter(|(_, hash, _)| *hash == m.env.content_hash)
                .map(|(id, _, _)| *id)
        });
        if let Some(id) = same {
            // Another location of a stored message (or of one created just before).
            write_rows(tx, at, &mut rows, ids, out)?;
            insert_found(tx, at, m, Found { message: Some(id) }, ids, out)?;
            out.added += 1;
            continue;
        }
        let root = thread_root(m, s.parent, &created);
        let id = new_message_id(tx, ids)?;
        let root = root.unwrap_or(id);
        created
            .entry(mid)
            .or_insert((id, &m.env.content_hash, root));
        rows.push((m, id, root));
        out.added += 1;
        out.created += 1;
    }
    write_rows(tx, at, &mut rows, ids, out)
}

/// The thread root of a new message: that of the first of its parents stored, in the database
/// (as the look-up found it) or created earlier in this chunk.
fn thread_root(
    m: &NewMessage,
    stored: Option<(usize, i64)>,
    created: &HashMap<&str, (i64, &str, i64)>,
) -> Option<i64> {
    for (k, parent) in thread_parents(&m.env).enumerate() {
        if let Some((at, root)) = stored
            && at == k
        {
            return Some(root);
        }
        if let Some((_, _, root)) = created.get(parent) {
            return Some(*root);
        }
    }
    None
}

/// One statement: for each message, whether its location is stored, the stored message it is,
/// and its first stored thread parent. Each is a lateral lookup by index: an `EXISTS` there
/// let PostgreSQL hash every location of the folder for each chunk: a 100k first sync then
/// took 20–22 s instead of 14–15 s, most of the server's time rebuilding that hash table.
fn look_up(tx: &Conn, at: &Folder<'_>, ms: &[NewMessage]) -> Result<Vec<Seen>> {
    let values: Vec<String> = (0..ms.len())
        .map(|i| {
            let b = 3 + i * 5;
            format!("(?{}, ?{}, ?{}, ?{}, ?{})", b, b + 1, b + 2, b + 3, b + 4)
        })
        .collect();
    let sql = format!(
        "SELECT q.n, e.hit IS NOT NULL,
                (SELECT id FROM messages WHERE message_id = q.mid AND content_hash = q.hash LIMIT 1),
                r.k, r.root
         FROM (VALUES {}) AS q(n, uid, mid, hash, parents)
         LEFT JOIN LATERAL (
             SELECT 1 AS hit FROM locations l
             WHERE l.folder_id = ?1 AND l.uidvalidity = ?2 AND l.uid = q.uid LIMIT 1) e ON true
         LEFT JOIN LATERAL (
             SELECT p.k, t.root FROM unnest(string_to_array(q.parents, chr(10))) WITH ORDINALITY AS p(mid, k),
                 LATERAL (SELECT COALESCE(thread_id, id) AS root FROM messages
                          WHERE message_id = p.mid LIMIT 1) t
             ORDER BY p.k LIMIT 1) r ON true",
        values.join(", ")
    );
    let parents: Vec<Option<String>> = ms
        .iter()
        .map(|m| {
            let p: Vec<&str> = thread_parents(&m.env).collect();
            (!p.is_empty()).then(|| p.join("\n"))
        })
        .collect();
    let mut args: Vec<Arg<'_>> = vec![at.folder_id.arg(), at.uidvalidity.arg()];
    for (i, (m, p)) in ms.iter().zip(&parents).enumerate() {
        args.extend([
            Arg::Int(i as i64),
            m.uid.arg(),
            m.env.message_id.arg(),
            m.env.content_hash.arg(),
            p.arg(),
        ]);
    }
    let found: Vec<(i64, Seen)> = tx.rows(&sql, &args, |r| {
        let (k, root): (Option<i64>, Option<i64>) = (r.get(3)?, r.get(4)?);
        Ok((
            r.get(0)?,
            Seen {
                location_stored: r.get(1)?,
                same: r.get(2)?,
                // WITH ORDINALITY counts from 1.
                parent: k
                    .zip(root)
                    .and_then(|(k, root)| Some((usize::try_from(k).ok()?.checked_sub(1)?, root))),
            },
        ))
    })?;
    let mut seen: Vec<Seen> = ms
        .iter()
        .map(|_| Seen {
            location_stored: false,
            same: None,
            parent: None,
        })
        .collect();
    for (n, s) in found {
        if let Some(slot) = usize::try_from(n).ok().and_then(|n| seen.get_mut(n)) {
            *slot = s;
        }
    }
    Ok(seen)
}

/// Arguments per new message in `write_rows`.
const ROW_ARGS: usize = 31;

/// One statement: the new messages gathered so far, their search entries (with the words of
/// their bodies when fetched whole), their marks for matching, their bodies and their
/// locations.
fn write_rows(
    tx: &Conn,
    at: &Folder<'_>,
    rows: &mut Vec<(&NewMessage, i64, i64)>,
    ids: &mut IdSource,
    out: &mut BatchOutcome,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let queue_folder = ids.counts.queue_folder(tx, at.folder_id)?;
    let values: Vec<String> = (0..rows.len())
        .map(|i| {
            let b = 1 + i * ROW_ARGS;
            let slots: Vec<String> = (b..b + ROW_ARGS).map(|n| format!("?{n}")).collect();
            format!("({})", slots.join(", "))
        })
        .collect();
    let sql = format!(
        concat!(
            "WITH v (id, thread_id, message_id, content_hash, in_reply_to, refs, from_addr, from_name,
                     to_json, cc_json, subject, date, size, headers, direction, denied, created_at,
                     doc, pending, account_id, folder_id, uidvalidity, uid, flags, seen, modseq,
                     internal_date, sort_date, has_attachments, raw, raw_size) AS (VALUES {}),
             m AS (INSERT INTO messages (",
            message_columns!(),
            ") SELECT id, thread_id, message_id, content_hash, in_reply_to, refs, from_addr, from_name,
                      to_json, cc_json, subject, date, size, headers, direction, denied, created_at,
                      has_attachments FROM v),
             f AS (INSERT INTO messages_fts (message_id, doc) SELECT id, CAST(doc AS tsvector) FROM v),
             c AS (INSERT INTO crm_pending (message_id) SELECT id FROM v WHERE pending = 1),
             b AS (INSERT INTO bodies (message_id, raw, size, indexed)
                   SELECT id, raw, raw_size, 1 FROM v WHERE raw IS NOT NULL)
             INSERT INTO locations (message_id, account_id, folder_id, uidvalidity, uid, flags, seen,
                                    modseq, internal_date, sort_date, thread_id)
             SELECT id, account_id, folder_id, uidvalidity, uid, flags, seen, modseq, internal_date,
                    sort_date, thread_id FROM v"
        ),
        values.join(", ")
    );
    // Owned per row first: the arguments borrow them.
    let prepared: Vec<_> = rows
        .iter()
        .map(|(m, _, _)| {
            let v = message_values(m);
            let doc = pg_tsvector(&FtsDoc {
                subject: m.env.subject.as_deref().unwrap_or_default(),
                addresses: &v.addresses,
                body: m.body.as_ref().map_or("", |b| b.text.as_str()),
            });
            (v, doc, sorted_flags(m))
        })
        .collect();
    let places: Vec<Place<'_>> = rows
        .iter()
        .map(|(m, _, root)| Place {
            account_id: at.account_id,
            folder_id: at.folder_id,
            uidvalidity: at.uidvalidity,
            seen: has_seen(&m.flags),
            sort_date: m
                .env
                .date
                .as_deref()
                .or(m.internal_date.as_deref())
                .unwrap_or_default(),
            thread_id: *root,
        })
        .collect();
    let created_at = ids.created_at.clone();
    let mut args: Vec<Arg<'_>> = Vec::with_capacity(rows.len() * ROW_ARGS);
    for (((m, id, root), (v, doc, flags)), place) in rows.iter().zip(&prepared).zip(&places) {
        // With an empty book only denied mail waits for matching.
        let pending = !ids.no_book || m.denied;
        let queued = queue_folder && m.direction == "in" && !m.denied;
        ids.counts
            .add(at.account_id, [true, !place.seen, queued].map(i64::from));
        args.extend([id.arg(), root.arg()]);
        args.extend(message_args(m, v, &created_at));
        args.extend([doc.arg(), Arg::Int(i64::from(pending))]);
        args.extend(location_args(m, place, flags));
        match &m.body {
            Some(b) => {
                args.extend([
                    Arg::Int(i64::from(b.attachments)),
                    Arg::Blob(&b.raw),
                    Arg::Int(b.raw.len() as i64),
                ]);
                // Its words went into the index with the header's: stored as indexed.
                out.bodies += 1;
            }
            None => args.extend([Arg::Int(0), Arg::Null(Kind::Blob), Arg::Null(Kind::Int)]),
        }
    }
    tx.exec(&sql, &args)?;
    rows.clear();
    Ok(())
}
