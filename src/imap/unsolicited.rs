//! Mailbox changes the server announces while answering something else: EXISTS (mail arrived),
//! EXPUNGE (by sequence number), VANISHED (by UID, under QRESYNC) and FETCH with flags. They
//! arrive in the middle of our FETCH, SEARCH or NOOP and must end up in the cache by the end of
//! the same pass, so they are recorded here (on the connection, see `stream::Link`) and sync
//! applies them after each folder's fetch.
//!
//! async-imap's own commands put such responses into `Session::unsolicited_responses`, a
//! channel that holds 100 and silently drops the rest: [`drain`] moves them here and, when the
//! channel was full, marks the record as `lost`, which makes sync reconcile the whole folder.

use async_imap::imap_proto::{AttributeValue, MailboxDatum, Response};

use super::ImapSession;
use super::fetch::FlagUpdate;

/// What the server announced about the selected folder since the record was last taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Announced {
    /// The last EXISTS count (lowered by each EXPUNGE and VANISHED UID).
    pub exists: Option<u32>,
    /// An EXISTS raised the count: mail arrived.
    pub grew: bool,
    /// EXPUNGEs by sequence number (the UIDs are not known).
    pub expunges: u32,
    /// UIDs announced gone (VANISHED).
    pub vanished: Vec<u32>,
    /// Flag changes that named their UID.
    pub flags: Vec<FlagUpdate>,
    /// Flag changes without a UID (only the sequence number).
    pub flags_without_uid: u32,
    /// A command answered `[EXPUNGEISSUED]`: some of what it asked for was expunged meanwhile.
    pub expunge_issued: bool,
    /// Some announcements may have been dropped (the library's channel was full).
    pub lost: bool,
}

impl Announced {
    /// Adds what another record heard (a connection replaced by a new one).
    pub fn merge(&mut self, other: Announced) {
        self.grew |= other.grew;
        self.expunges += other.expunges;
        self.vanished.extend(other.vanished);
        self.flags.extend(other.flags);
        self.flags_without_uid += other.flags_without_uid;
        self.expunge_issued |= other.expunge_issued;
        self.lost |= other.lost;
    }

    /// Nothing worth acting on.
    pub fn is_quiet(&self) -> bool {
        !self.grew
            && self.expunges == 0
            && self.vanished.is_empty()
            && self.flags.is_empty()
            && self.flags_without_uid == 0
            && !self.expunge_issued
            && !self.lost
    }

    /// Expunges whose UIDs are unknown, or announcements possibly lost: only comparing the
    /// folder's UIDs with the cache tells what vanished.
    pub fn needs_uid_diff(&self) -> bool {
        self.expunges > 0 || self.expunge_issued || self.lost
    }

    /// Records one response that was not part of the command's own answer. Returns whether it
    /// was a mailbox change.
    pub fn record(&mut self, r: &Response<'_>) -> bool {
        match r {
            Response::MailboxData(MailboxDatum::Exists(n)) => {
                self.grew |= self.exists.is_none_or(|e| *n > e);
                self.exists = Some(*n);
            }
            Response::Expunge(_) => {
                self.expunges += 1;
                if let Some(e) = self.exists.as_mut() {
                    *e = e.saturating_sub(1);
                }
            }
            Response::Vanished { uids, .. } => {
                for r in uids {
                    let n = r.clone().count() as u32;
                    if let Some(e) = self.exists.as_mut() {
                        *e = e.saturating_sub(n);
                    }
                    self.vanished.extend(r.clone());
                }
            }
            Response::Fetch(_, attrs) => match flag_update(attrs) {
                Some(u) => self.flags.push(u),
                None if has_flags(attrs) => self.flags_without_uid += 1,
                None => return false,
            },
            _ => return false,
        }
        true
    }
}

fn has_flags(attrs: &[AttributeValue<'_>]) -> bool {
    attrs.iter().any(|a| matches!(a, AttributeValue::Flags(_)))
}

/// UID, flags and MODSEQ of a FETCH response that carries flags and its UID.
pub fn flag_update(attrs: &[AttributeValue<'_>]) -> Option<FlagUpdate> {
    let mut uid = None;
    let mut flags = None;
    let mut modseq = None;
    for a in attrs {
        match a {
            AttributeValue::Uid(u) => uid = Some(*u),
            AttributeValue::Flags(f) => flags = Some(clean_flags(f)),
            AttributeValue::ModSeq(m) => modseq = Some(*m),
            _ => {}
        }
    }
    Some(FlagUpdate {
        uid: uid?,
        flags: flags?,
        modseq,
    })
}

/// Flags as stored: `\Recent` is per-session noise, not a property of the message.
pub fn clean_flags(f: &[std::borrow::Cow<'_, str>]) -> Vec<String> {
    f.iter()
        .filter(|x| !x.eq_ignore_ascii_case("\\Recent"))
        .map(|x| x.to_string())
        .collect()
}

/// Capacity of async-imap's unsolicited channel: at this length it may have dropped some.
const CHANNEL_CAPACITY: usize = 100;

/// Moves what async-imap's own commands left in its channel into the connection's record.
pub fn drain(session: &mut ImapSession) {
    use async_imap::types::UnsolicitedResponse as U;
    let full = session.unsolicited_responses.len() >= CHANNEL_CAPACITY;
    let mut items = Vec::new();
    while let Ok(u) = session.unsolicited_responses.try_recv() {
        items.push(u);
    }
    let rec = &mut session.get_mut().link_mut().announced;
    rec.lost |= full;
    for u in items {
        match u {
            U::Exists(n) => {
                rec.record(&Response::MailboxData(MailboxDatum::Exists(n)));
            }
            U::Expunge(n) => {
                rec.record(&Response::Expunge(n));
            }
            U::Other(data) => {
                rec.record(data.parsed());
            }
            _ => {}
        }
    }
}

/// Takes the record (leaving an empty one that remembers the EXISTS count).
pub fn take(session: &mut ImapSession) -> Announced {
    let rec = &mut session.get_mut().link_mut().announced;
    let exists = rec.exists;
    let out = std::mem::take(rec);
    rec.exists = exists;
    out
}

/// Starts a fresh record for a newly selected folder: its SELECT re-reads the folder's state,
/// so what was announced (or dropped) before it no longer matters.
pub fn reset(session: &mut ImapSession, exists: u32) {
    let rec = &mut session.get_mut().link_mut().announced;
    *rec = Announced {
        exists: Some(exists),
        ..Announced::default()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn records_changes_and_ignores_the_rest() {
        let mut a = Announced::default();
        assert!(a.record(&Response::MailboxData(MailboxDatum::Exists(10))));
        assert!(a.grew);
        a.grew = false;
        assert!(a.record(&Response::Expunge(3)));
        assert_eq!(a.exists, Some(9));
        assert!(a.record(&Response::Vanished {
            earlier: false,
            uids: vec![4..=6]
        }));
        assert_eq!(a.vanished, vec![4, 5, 6]);
        assert_eq!(a.exists, Some(6));
        // Three gone, two arrived: the count is below the first, but mail did arrive.
        a.record(&Response::MailboxData(MailboxDatum::Exists(8)));
        assert!(a.grew);
        let flags = vec![Cow::Borrowed("\\Seen"), Cow::Borrowed("\\Recent")];
        assert!(a.record(&Response::Fetch(
            2,
            vec![AttributeValue::Uid(7), AttributeValue::Flags(flags.clone())]
        )));
        assert_eq!(a.flags[0].flags, vec!["\\Seen".to_string()]);
        assert!(a.record(&Response::Fetch(2, vec![AttributeValue::Flags(flags)])));
        assert_eq!(a.flags_without_uid, 1);
        assert!(!a.record(&Response::Fetch(2, vec![AttributeValue::Uid(9)])));
        assert!(a.needs_uid_diff() && !a.is_quiet());
    }
}
