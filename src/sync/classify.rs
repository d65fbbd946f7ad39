//! What happens to one fetched header: stored, skipped (filters, probes, \Deleted) or
//! quarantined. Every message is stored whatever header fields it lacks: a bare MIME part, a
//! delivery report or a message with only MIME-Version and Content-Type has none of the fields
//! sync asks for, and is stored with empty subject, from and to and its INTERNALDATE as its
//! date. Quarantine is only for a message whose bytes the server will not give (NIL) or whose
//! response cannot be read (see `newmail.rs`).

use super::engine::PassOptions;
use super::writer::Verdict;
use crate::account::PROBE_ID_PREFIX;
use crate::imap::fetch::HeaderItem;
use crate::mail::parse::{self, Envelope};
use crate::store::{FlagRow, NewMessage};

/// Why a message the server answered NIL for is quarantined.
pub const NIL_REASON: &str = "the server sent no bytes for this message (NIL)";

/// The envelope of a header block; one with none of the fields sync asks for (or nothing a
/// parser can read) is an empty envelope dated by the INTERNALDATE.
pub fn envelope(header: &[u8], internal_date: Option<&str>) -> Envelope {
    if let Some(env) = parse::parse_headers(header) {
        return env;
    }
    let mut env = Envelope {
        date: internal_date.map(str::to_string),
        ..Envelope::default()
    };
    env.content_hash = parse::content_hash(&env);
    env
}

/// Decides what to do with one fetched header: store, skip (filters, probes) or quarantine.
pub fn classify(it: &HeaderItem, opts: &PassOptions, direction: &'static str) -> Verdict {
    if it.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Deleted")) {
        return Verdict::Skip;
    }
    let Some(header) = &it.header else {
        return Verdict::Quarantine(NIL_REASON.into(), Vec::new());
    };
    let env = envelope(header, it.internal_date.as_deref());
    if env
        .message_id
        .as_deref()
        .is_some_and(|m| m.starts_with(PROBE_ID_PREFIX))
    {
        return Verdict::Skip;
    }
    if let Some(since) = opts.scope.cutoff() {
        let when = it
            .internal_date
            .as_deref()
            .or(env.date.as_deref())
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok());
        if when.is_some_and(|w| w < since) {
            return Verdict::Skip;
        }
    }
    if opts.unread_only && it.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen")) {
        return Verdict::Skip;
    }
    let denied = env
        .from
        .as_ref()
        .is_some_and(|a| parse::denied(&a.address, &opts.deny));
    Verdict::Store(Box::new(NewMessage {
        uid: it.uid,
        flags: it.flags.clone(),
        size: it.size,
        internal_date: it.internal_date.clone(),
        modseq: it.modseq,
        env,
        headers: header.clone(),
        denied,
        direction,
        body: None,
    }))
}

/// Splits flag updates into messages marked \Deleted (treated as gone) and the rest.
pub fn split_deleted(it: impl Iterator<Item = FlagRow>) -> (Vec<u32>, Vec<FlagRow>) {
    let mut deleted = Vec::new();
    let mut rest = Vec::new();
    for (uid, flags, ms) in it {
        if flags.iter().any(|f| f.eq_ignore_ascii_case("\\Deleted")) {
            deleted.push(uid);
        } else {
            rest.push((uid, flags, ms));
        }
    }
    (deleted, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HistoryScope;

    fn opts() -> PassOptions {
        PassOptions {
            deny: vec!["spam.test".into()],
            scope: HistoryScope::parse("2026-01-01").unwrap(),
            unread_only: false,
            mark_read: false,
            batch_size: 10,
            body_prefetch_max_bytes: 0,
            tty_progress: false,
            max_connections: 4,
            reserved_connections: 0,
            bodies_all: false,
            bodies: Default::default(),
        }
    }

    fn item(uid: u32, header: &str, flags: &[&str], date: &str) -> HeaderItem {
        HeaderItem {
            uid,
            flags: flags.iter().map(|s| s.to_string()).collect(),
            size: 10,
            internal_date: Some(date.into()),
            modseq: None,
            header: Some(header.as_bytes().to_vec()),
        }
    }

    #[test]
    fn classify_applies_filters_probes_deny_and_quarantine() {
        let o = opts();
        let ok = "Message-ID: <a@x>\r\nFrom: a@x.test\r\nSubject: hi\r\n\r\n";
        assert!(matches!(
            classify(&item(1, ok, &[], "2026-05-01T00:00:00Z"), &o, "in"),
            Verdict::Store(_)
        ));
        // Older than `since`.
        assert!(matches!(
            classify(&item(2, ok, &[], "2025-05-01T00:00:00Z"), &o, "in"),
            Verdict::Skip
        ));
        // `account test` probes are never synced.
        let probe = format!(
            "Message-ID: <{}1@x>\r\nFrom: a@x.test\r\n\r\n",
            crate::account::PROBE_ID_PREFIX
        );
        assert!(matches!(
            classify(&item(3, &probe, &[], "2026-05-01T00:00:00Z"), &o, "in"),
            Verdict::Skip
        ));
        // \Deleted counts as gone.
        assert!(matches!(
            classify(
                &item(4, ok, &["\\Deleted"], "2026-05-01T00:00:00Z"),
                &o,
                "in"
            ),
            Verdict::Skip
        ));
        // Unread only skips \Seen mail.
        let mut uo = opts();
        uo.unread_only = true;
        assert!(matches!(
            classify(&item(5, ok, &["\\Seen"], "2026-05-01T00:00:00Z"), &uo, "in"),
            Verdict::Skip
        ));
        // A denied sender (subdomain of a denied domain) is stored hidden.
        let denied = "Message-ID: <d@x>\r\nFrom: bad@mail.spam.test\r\n\r\n";
        match classify(&item(6, denied, &[], "2026-05-01T00:00:00Z"), &o, "in") {
            Verdict::Store(m) => assert!(m.denied),
            _ => panic!("denied mail is stored, hidden"),
        }
        // NIL from the server: its bytes cannot be had, so it is quarantined.
        let mut none = item(7, ok, &[], "2026-05-01T00:00:00Z");
        none.header = None;
        assert!(matches!(classify(&none, &o, "in"), Verdict::Quarantine(..)));
    }

    #[test]
    fn mail_without_any_fetched_field_is_stored_dated_by_internaldate() {
        let o = opts();
        for header in ["\r\n", "", "garbage without a colon\r\n"] {
            match classify(&item(8, header, &[], "2026-05-01T10:00:00Z"), &o, "in") {
                Verdict::Store(m) => {
                    assert_eq!(m.env.subject, None);
                    assert_eq!(m.env.from, None);
                    assert!(m.env.to.is_empty());
                    assert_eq!(m.env.date.as_deref(), Some("2026-05-01T10:00:00Z"));
                    assert_eq!(m.env.content_hash, parse::content_hash(&m.env));
                }
                _ => panic!("headerless mail is stored: {header:?}"),
            }
        }
    }

    #[test]
    fn classify_cuts_at_midnight_utc_of_the_since_date_and_new_only_filters_nothing() {
        let o = opts();
        let ok = "Message-ID: <a@x>\r\nFrom: a@x.test\r\n\r\n";
        // SINCE on the server is day-granular in its own time zone; the exact cut is here.
        assert!(matches!(
            classify(&item(1, ok, &[], "2026-01-01T00:00:00Z"), &o, "in"),
            Verdict::Store(_)
        ));
        assert!(matches!(
            classify(&item(2, ok, &[], "2025-12-31T23:59:59Z"), &o, "in"),
            Verdict::Skip
        ));
        // Under `new`, whatever a later pass fetches arrived after the start: all of it counts,
        // whatever its INTERNALDATE (e.g. an old message moved in from another folder).
        let mut n = opts();
        n.scope = HistoryScope::NewOnly;
        assert!(matches!(
            classify(&item(3, ok, &[], "2001-01-01T00:00:00Z"), &n, "in"),
            Verdict::Store(_)
        ));
    }
}
