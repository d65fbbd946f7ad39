//! The per-account counts `status` and the triage queue's total read (migration 14): how many
//! messages an account has, how many are unread, how many are in its triage queue. Maintained
//! in the transaction of every change (triggers; sync's bulk INSERT on SQLite adds its own at
//! commit), so a read is one row instead of a count over every location: at 100k messages
//! ~100 ms of CPU became well under a millisecond.
//!
//! The queue count kept is the queue's rule without the own addresses (configuration, not
//! data): readers subtract the queued messages from own addresses through the sender index.

use super::Store;
use crate::args;
use crate::error::Result;

/// Which folders' mail is never in the triage queue.
pub(super) const OUTSIDE_QUEUE: &str =
    "(SELECT id FROM folders WHERE role IN ('sent', 'trash', 'junk', 'drafts'))";
/// A message (`m`) that can be in the triage queue, own addresses aside.
pub(super) const QUEUE_MESSAGE: &str =
    "m.direction = 'in' AND m.customer_id IS NULL AND m.denied = 0 AND m.triage_state IS NULL";

/// SQLite: a location's date and thread (migration 7) and its counts for every writer but
/// sync's bulk one, which sets both itself. A TEMP trigger, created by each connection (see
/// `Store::install_fill_trigger`): any trigger on `locations` makes SQLite keep a statement
/// journal for every INSERT into it, even when its WHEN is false, which doubled the CPU of a
/// first header sync. PostgreSQL keeps its two triggers in the schema (migrations 7 and 12).
const FILL_TRIGGER: &str = r#"
CREATE TEMP TRIGGER IF NOT EXISTS locations_fill_sort AFTER INSERT ON main.locations WHEN NEW.thread_id IS NULL
BEGIN
    UPDATE locations SET
        sort_date = COALESCE((SELECT m.date FROM messages m WHERE m.id = NEW.message_id), ''),
        thread_id = (SELECT COALESCE(m.thread_id, m.id) FROM messages m WHERE m.id = NEW.message_id)
    WHERE id = NEW.id;
    INSERT INTO account_counts (account_id, messages, unread, queued) VALUES (
        NEW.account_id,
        NOT EXISTS (SELECT 1 FROM locations o WHERE o.message_id = NEW.message_id
                    AND o.account_id = NEW.account_id AND o.id <> NEW.id),
        NEW.seen = 0 AND NOT EXISTS (SELECT 1 FROM locations o WHERE o.message_id = NEW.message_id
                    AND o.account_id = NEW.account_id AND o.id <> NEW.id AND o.seen = 0),
        NEW.folder_id NOT IN (SELECT id FROM folders WHERE role IN ('sent', 'trash', 'junk', 'drafts'))
        AND EXISTS (SELECT 1 FROM messages m WHERE m.id = NEW.message_id AND m.direction = 'in'
                    AND m.customer_id IS NULL AND m.denied = 0 AND m.triage_state IS NULL)
        AND NOT EXISTS (SELECT 1 FROM locations o WHERE o.message_id = NEW.message_id
                    AND o.account_id = NEW.account_id AND o.id <> NEW.id
                    AND o.folder_id NOT IN (SELECT id FROM folders WHERE role IN ('sent', 'trash', 'junk', 'drafts'))))
    ON CONFLICT (account_id) DO UPDATE SET messages = messages + excluded.messages,
        unread = unread + excluded.unread, queued = queued + excluded.queued;
END;
"#;

/// An account's maintained counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountCounts {
    /// Distinct messages with a location in the account.
    pub messages: i64,
    /// Of those, with an unseen location in it.
    pub unread: i64,
    /// In its triage queue, own addresses not subtracted.
    pub queued: i64,
}

impl Store {
    /// Creates the TEMP trigger `FILL_TRIGGER` on this connection (SQLite; after migrating).
    pub(super) fn install_fill_trigger(&self) -> Result<()> {
        match self.conn.lite() {
            Some(c) => Ok(c.execute_batch(FILL_TRIGGER)?),
            None => Ok(()),
        }
    }

    /// Drops it again: sync's bulk writer sets a location's date, thread and counts itself.
    pub(super) fn drop_fill_trigger(&self) -> Result<()> {
        match self.conn.lite() {
            Some(c) => Ok(c.execute_batch("DROP TRIGGER IF EXISTS temp.locations_fill_sort")?),
            None => Ok(()),
        }
    }

    /// The account's counts as kept (zeros for an account with nothing stored). A store not
    /// migrated yet (`status` opens read-only and never migrates) has no kept counts: they
    /// are counted then.
    pub fn maintained_counts(&self, account_id: &str) -> Result<AccountCounts> {
        let kept = self.conn.first(
            "SELECT messages, unread, queued FROM account_counts WHERE account_id = ?1",
            args![account_id],
            |r| {
                Ok(AccountCounts {
                    messages: r.get(0)?,
                    unread: r.get(1)?,
                    queued: r.get(2)?,
                })
            },
        );
        match kept {
            Ok(c) => Ok(c.unwrap_or_default()),
            // SQLite: "no such table"; PostgreSQL: "relation … does not exist".
            Err(e) if missing_table(&format!("{e} {}", e.detail)) => {
                self.counted_counts(account_id)
            }
            Err(e) => Err(e),
        }
    }

    /// The same counts, counted over every location (what the maintained ones must equal).
    pub fn counted_counts(&self, account_id: &str) -> Result<AccountCounts> {
        let sql = format!(
            "SELECT (SELECT COUNT(DISTINCT message_id) FROM locations WHERE account_id = ?1),
                    (SELECT COUNT(DISTINCT message_id) FROM locations WHERE account_id = ?1 AND seen = 0),
                    (SELECT COUNT(DISTINCT l.message_id) FROM locations l JOIN messages m ON m.id = l.message_id
                      WHERE l.account_id = ?1 AND l.folder_id NOT IN {OUTSIDE_QUEUE} AND {QUEUE_MESSAGE})"
        );
        self.conn.one(&sql, args![account_id], |r| {
            Ok(AccountCounts {
                messages: r.get(0)?,
                unread: r.get(1)?,
                queued: r.get(2)?,
            })
        })
    }

    /// Counts every account's rows again (after `store copy`, whose rows skip the triggers'
    /// bookkeeping on SQLite and may come several to a statement on PostgreSQL).
    pub(super) fn recount_accounts(&self) -> Result<()> {
        self.conn.exec("DELETE FROM account_counts", &[])?;
        let accounts: Vec<String> =
            self.conn
                .rows("SELECT DISTINCT account_id FROM locations", &[], |r| {
                    r.get(0)
                })?;
        for a in accounts {
            let c = self.counted_counts(&a)?;
            self.conn.exec(
                "INSERT INTO account_counts (account_id, messages, unread, queued) VALUES (?1, ?2, ?3, ?4)",
                args![a, c.messages, c.unread, c.queued],
            )?;
        }
        Ok(())
    }
}

/// Whether an error says a table does not exist, on either engine.
fn missing_table(text: &str) -> bool {
    text.contains("no such table") || text.contains("does not exist")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::each;
    use crate::store::{FixtureMessage, NewMessage, TriageFilter, TriageState};

    fn fixture(from: &str, n: u32) -> FixtureMessage {
        FixtureMessage {
            message_id: Some(format!("m{n}@x")),
            from_addr: from.to_string(),
            subject: format!("s{n}"),
            date: format!("2026-01-{:02}T00:00:00Z", n % 28 + 1),
            direction: "in",
            ..Default::default()
        }
    }

    fn new_message(uid: u32, mid: &str, from: &str, seen: bool) -> NewMessage {
        let hdr = format!(
            "Message-ID: <{mid}>\r\nFrom: {from}\r\nSubject: about {mid}\r\nDate: Mon, 05 Jan 2026 10:00:00 +0000\r\n\r\n"
        );
        NewMessage {
            uid,
            flags: if seen { vec!["\\Seen".into()] } else { vec![] },
            size: 10,
            internal_date: None,
            modseq: None,
            env: crate::mail::parse::parse_headers(hdr.as_bytes()).unwrap(),
            headers: hdr.into_bytes(),
            denied: false,
            direction: "in",
            body: None,
        }
    }

    /// Every account's kept counts equal the counted ones, and the queue's total (one and
    /// several accounts, with and without own addresses) equals the queue's rows.
    fn exact(s: &Store, step: &str) {
        let accounts = ["a1", "a2", "a3"];
        for a in accounts {
            assert_eq!(
                s.maintained_counts(a).unwrap(),
                s.counted_counts(a).unwrap(),
                "{a} after {step}"
            );
        }
        let own = vec!["me@ours.example".to_string()];
        let filters = [
            vec!["a1"],
            vec!["a2"],
            vec!["a1", "a2"],
            vec!["a2", "a1", "a3"],
        ];
        for accts in filters {
            for own in [Vec::new(), own.clone()] {
                let f = TriageFilter {
                    accounts: accts.iter().map(|a| a.to_string()).collect(),
                    own,
                };
                assert_eq!(
                    s.triage_count(&f).unwrap(),
                    s.triage_count_counted(&f).unwrap(),
                    "{f:?} after {step}"
                );
            }
        }
        // `status` reads every account's rows at once: the same answers as one by one.
        for own in [Vec::new(), own] {
            let all = s.status_rows(&own).unwrap();
            for a in accounts {
                let kept = all.counts.get(a).copied().unwrap_or_default();
                assert_eq!(kept, s.maintained_counts(a).unwrap(), "{a} after {step}");
                let queued = kept.queued - all.own_queued.get(a).copied().unwrap_or(0);
                let f = TriageFilter {
                    accounts: vec![a.to_string()],
                    own: own.clone(),
                };
                assert_eq!(
                    queued,
                    s.triage_count_counted(&f).unwrap(),
                    "{a} {own:?} after {step}"
                );
            }
        }
    }

    #[test]
    fn a_store_without_kept_counts_counts_them() {
        each(|s| {
            let inbox = s.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
            s.fixture_message("a1", inbox, 1, &fixture("z@else.example", 1))
                .unwrap();
            s.conn.exec("DROP TABLE account_counts", &[]).unwrap();
            let c = s.maintained_counts("a1").unwrap();
            assert_eq!((c.messages, c.unread, c.queued), (1, 1, 1));
            let f = TriageFilter {
                accounts: vec!["a1".into()],
                own: vec![],
            };
            assert_eq!(s.triage_count(&f).unwrap(), 1);
        });
    }

    #[test]
    fn kept_counts_equal_counted_ones_after_every_kind_of_change() {
        each(|s| {
            let inbox = s.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
            let sent = s.fixture_folder("a1", "Sent", Some("sent")).unwrap();
            let archive = s.fixture_folder("a1", "Archive", None).unwrap();
            let b_inbox = s.fixture_folder("a2", "INBOX", Some("inbox")).unwrap();
            let c_inbox = s.fixture_folder("a3", "INBOX", Some("inbox")).unwrap();
            exact(s, "nothing");
            // Sync's bulk writer: new mail, the same message twice in one batch, a message
            // also in another account, own mail, seen and unseen.
            let batch = [
                new_message(1, "x1@y", "stranger@else.example", false),
                new_message(2, "x2@y", "me@ours.example", true),
                new_message(3, "x3@y", "other@else.example", true),
                new_message(4, "x1@y", "stranger@else.example", true),
            ];
            s.store_batch("a1", inbox, 1, &batch, Some(4)).unwrap();
            exact(s, "a first batch");
            let kept = AccountCounts {
                messages: 3,
                unread: 1,
                queued: 3,
            };
            assert_eq!(s.maintained_counts("a1").unwrap(), kept);
            s.store_batch("a2", b_inbox, 1, &batch[..2], Some(2))
                .unwrap();
            s.store_batch(
                "a1",
                sent,
                1,
                &[new_message(1, "x3@y", "other@else.example", false)],
                Some(1),
            )
            .unwrap();
            s.store_batch("a1", archive, 1, &[new_message(9, "x9@y", "", false)], None)
                .unwrap();
            exact(s, "batches in other folders and accounts");
            // Other writers: fixtures, a move's delete and undo's restore.
            let ids: Vec<i64> = (10..16)
                .map(|n| {
                    s.fixture_message("a3", c_inbox, n.into(), &fixture("z@else.example", n))
                        .unwrap()
                })
                .collect();
            s.fixture_message("a1", archive, 20, &fixture("me@ours.example", 20))
                .unwrap();
            s.fixture_add_location(ids[0], "a1", "sent", 30).unwrap();
            s.fixture_add_location(ids[1], "a1", "inbox", 31).unwrap();
            exact(s, "fixtures");
            let place = s.message_locations(ids[0]).unwrap().remove(0);
            s.delete_location(place.id).unwrap();
            exact(s, "a deleted location");
            s.restore_location(&place).unwrap();
            s.restore_location(&place).unwrap();
            exact(s, "an undone delete");
            // Flags: seen and unseen again, one and both locations of a message.
            s.apply_flags(inbox, 1, &[(1, vec!["\\Seen".into()], None)])
                .unwrap();
            exact(s, "one location seen");
            s.apply_flags(inbox, 1, &[(4, vec![], None), (1, vec![], None)])
                .unwrap();
            exact(s, "both unseen");
            // Triage: pairing, blocking, deleting, their undo; a customer removed.
            let m1 = s.message_locations(ids[1]).unwrap()[0].message_id;
            s.set_triage_state(m1, Some(TriageState::Deleted)).unwrap();
            exact(s, "deleted from the queue");
            s.set_triage_state(m1, None).unwrap();
            s.set_denied(&[ids[2], ids[3]], true).unwrap();
            exact(s, "blocked");
            s.set_denied(&[ids[2]], false).unwrap();
            s.conn
                .exec(
                    "INSERT INTO customers (id, name, created_at, updated_at) VALUES (7, 'C', 't', 't')",
                    &[],
                )
                .unwrap();
            s.conn
                .exec(
                    "UPDATE messages SET customer_id = 7 WHERE id IN (?1, ?2)",
                    args![ids[4], ids[5]],
                )
                .unwrap();
            exact(s, "paired");
            s.conn
                .exec("DELETE FROM customers WHERE id = 7", &[])
                .unwrap();
            exact(s, "the customer removed");
            // Folder roles and whole folders, messages and accounts going away.
            s.conn
                .exec(
                    "UPDATE folders SET role = 'trash' WHERE id = ?1",
                    args![archive],
                )
                .unwrap();
            exact(s, "a folder becoming Trash");
            s.conn
                .exec(
                    "UPDATE folders SET role = NULL WHERE id = ?1",
                    args![archive],
                )
                .unwrap();
            exact(s, "and back");
            s.drop_stale_locations(inbox, 2).unwrap();
            exact(s, "a UIDVALIDITY change");
            s.conn
                .exec("DELETE FROM messages WHERE id = ?1", args![ids[2]])
                .unwrap();
            s.conn
                .exec("DELETE FROM folders WHERE id = ?1", args![archive])
                .unwrap();
            exact(s, "a message and a folder deleted");
            s.conn
                .exec("DELETE FROM accounts WHERE id = 'a2'", &[])
                .unwrap();
            exact(s, "an account deleted");
            s.recount_accounts().unwrap();
            exact(s, "a recount");
        });
    }
}
