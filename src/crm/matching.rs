//! Matching cached mail to customers. Inbound mail is matched by its sender, outbound mail (from
//! Sent, or from one of our own addresses) by its recipients; first by address, then by a
//! customer's domain, then by thread. Every match records its rule and a detail, so it can
//! explain itself (`why`).
//!
//! The thread rule is deliberately narrow: a reply joins the customer of the thread it answers
//! only when its sender is that customer or already took part in that thread. Helpdesks that pair
//! on headers alone put one customer's mail into another's record when someone forwards or
//! replies into a foreign thread; we leave such mail in triage instead.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::address::{Normalizer, domain_and_parents, domain_of};
use super::deny::DenyLists;
use crate::config::Config;
use crate::error::Result;
use crate::store::{MatchInput, MatchRow, MatchUpdate, Store};

/// The customer book as lookup tables.
#[derive(Debug, Default)]
pub struct Book {
    norm: Normalizer,
    emails: HashMap<String, i64>,
    by_customer: HashMap<i64, Vec<String>>,
    domains: HashMap<String, Vec<i64>>,
}

impl Book {
    /// No address and no domain: nothing matches by rule.
    pub fn is_empty(&self) -> bool {
        self.emails.is_empty() && self.domains.is_empty()
    }

    pub fn load(store: &Store, norm: Normalizer) -> Result<Book> {
        let rows = store.book_rows()?;
        let mut b = Book {
            norm,
            ..Default::default()
        };
        for (e, c) in rows.emails {
            let key = norm.address(&e).unwrap_or(e);
            b.by_customer.entry(c).or_default().push(key.clone());
            b.emails.insert(key, c);
        }
        for (d, c) in rows.domains {
            b.domains.entry(d).or_default().push(c);
        }
        Ok(b)
    }

    /// The key a canonical address is looked up by: itself, or plus-folded when the setting
    /// asks for it.
    pub fn key(&self, canonical: &str) -> String {
        match self.norm.fold_plus {
            true => self
                .norm
                .address(canonical)
                .unwrap_or_else(|| canonical.to_string()),
            false => canonical.to_string(),
        }
    }

    /// The customer owning this canonical (possibly plus-folded) address.
    pub fn by_address(&self, addr: &str) -> Option<i64> {
        self.emails.get(addr).copied()
    }

    /// Customers owning the address's domain or a parent of it, with the domain that matched.
    pub fn by_domain<'a>(&'a self, addr: &'a str) -> Option<(&'a str, &'a [i64])> {
        domain_and_parents(domain_of(addr))
            .find_map(|d| self.domains.get(d).map(|c| (d, c.as_slice())))
    }

    /// Customers owning an address in `domain` (triage suggestions).
    pub fn with_address_domain(&self, domain: &str) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .emails
            .iter()
            .filter(|(e, _)| domain_of(e) == domain)
            .map(|(_, c)| *c)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn normalizer(&self) -> Normalizer {
        self.norm
    }
}

/// Everything that decides a match apart from the message itself.
pub struct Matcher {
    pub book: Book,
    own: HashSet<String>,
    deny: DenyLists,
}

/// What is known about an earlier message of a thread.
#[derive(Debug, Clone, Default)]
struct ThreadNode {
    customer: Option<i64>,
    participants: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct MatchSummary {
    pub examined: usize,
    pub matched: usize,
    pub changed: usize,
    pub denied: usize,
}

/// Our own addresses (every account's address and aliases), canonical.
pub fn own_addresses(config: &Config) -> HashSet<String> {
    let n = Normalizer::default();
    config
        .accounts
        .values()
        .flat_map(|a| std::iter::once(&a.email).chain(a.aliases.iter()))
        .filter_map(|a| n.address(a))
        .collect()
}

/// Canonical addresses of a `[{"name":..,"address":..}]` list.
pub fn json_addresses(json: &str, n: Normalizer) -> Vec<String> {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|it| it.get("address").and_then(|a| a.as_str()))
            .filter_map(|a| n.address(a))
            .collect(),
        _ => Vec::new(),
    }
}

/// Message-IDs a message refers to, nearest first (In-Reply-To, then References backwards).
pub fn referenced_ids(in_reply_to: Option<&str>, refs: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in references(in_reply_to, refs) {
        if !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    out
}

/// The same Message-IDs as `referenced_ids`, borrowed, in that order, repeats included.
fn references<'a>(
    in_reply_to: Option<&'a str>,
    refs: Option<&'a str>,
) -> impl Iterator<Item = &'a str> {
    let irt = in_reply_to.into_iter().flat_map(str::split_whitespace);
    let refs = refs.into_iter().flat_map(|r| r.split_whitespace().rev());
    irt.chain(refs)
        .map(|s| s.trim_start_matches('<').trim_end_matches('>'))
        .filter(|s| !s.is_empty())
}

/// A Message-ID as a key of the reply graph a bulk match builds: 8 bytes instead of a string
/// per reference. Two IDs sharing a key only make a reply be decided once more.
fn id_key(message_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    message_id.hash(&mut h);
    h.finish()
}

impl Matcher {
    pub fn new(store: &Store, config: &Config) -> Result<Matcher> {
        let norm = Normalizer::new(config.general.fold_plus_addresses);
        Ok(Matcher {
            book: Book::load(store, norm)?,
            own: own_addresses(config),
            deny: DenyLists::from_config(config),
        })
    }

    pub fn is_own(&self, addr: &str) -> bool {
        self.own.contains(addr)
    }

    /// Decides one message. `thread` knows earlier messages by Message-ID; `referenced` says
    /// whether a later message answers this one (then its participants are needed).
    fn decide(
        &self,
        m: &MatchInput,
        thread: &HashMap<String, ThreadNode>,
        referenced: bool,
    ) -> (Vec<MatchRow>, Vec<String>, bool) {
        let plain = Normalizer::default();
        let norm = self.book.norm;
        let from_plain = m.from_addr.as_deref().and_then(|a| plain.address(a));
        let outbound =
            m.direction == "out" || from_plain.as_deref().is_some_and(|f| self.is_own(f));
        // Recipients matter for outbound mail and for thread participants only; most inbound
        // mail skips parsing them (the bulk of a full rematch).
        let (to, cc) = if outbound || referenced {
            (
                json_addresses(&m.to_json, plain),
                json_addresses(&m.cc_json, plain),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let mut participants: Vec<String> = Vec::new();
        if referenced {
            participants.extend(from_plain.iter().cloned());
            participants.extend(to.iter().cloned());
            participants.extend(cc.iter().cloned());
        }
        let counterparts: Vec<&String> = if outbound {
            to.iter()
                .chain(cc.iter())
                .filter(|a| !self.is_own(a))
                .collect()
        } else {
            from_plain.iter().collect()
        };
        // Same rule as sync applies when it stores mail: the sender decides, whatever the folder.
        let denied = from_plain.as_deref().is_some_and(|f| {
            m.accounts
                .iter()
                .any(|acc| self.deny.denied_canonical(acc, f))
        });

        let mut found: Vec<MatchRow> = Vec::new();
        let push = |found: &mut Vec<MatchRow>, c: i64, rule: &str, detail: String| {
            if !found.iter().any(|f| f.customer_id == c) {
                found.push(MatchRow {
                    customer_id: c,
                    rule: rule.into(),
                    detail: Some(detail),
                });
            }
        };
        for a in &counterparts {
            let key = self.book.key(a);
            if let Some(c) = self.book.by_address(&key) {
                let detail = if &key == *a {
                    format!("{} {a}", if outbound { "recipient" } else { "sender" })
                } else {
                    format!(
                        "{} {a} (plus-folded to {key})",
                        if outbound { "recipient" } else { "sender" }
                    )
                };
                push(&mut found, c, "address", detail);
            }
        }
        if found.is_empty() {
            for a in &counterparts {
                if let Some((d, cs)) = self.book.by_domain(a) {
                    for c in cs {
                        push(
                            &mut found,
                            *c,
                            "domain",
                            format!("{a} is in the customer's domain {d}"),
                        );
                    }
                }
            }
        }
        if found.is_empty() {
            let sender = from_plain.as_deref().unwrap_or("");
            let refs = referenced_ids(m.in_reply_to.as_deref(), m.refs.as_deref());
            let known: Vec<(&String, &ThreadNode)> = refs
                .iter()
                .filter_map(|r| thread.get(r).map(|n| (r, n)))
                .collect();
            let in_thread: HashSet<&str> = known
                .iter()
                .flat_map(|(_, n)| n.participants.iter().map(String::as_str))
                .collect();
            if let Some((r, c)) = known.iter().find_map(|(r, n)| n.customer.map(|c| (r, c))) {
                let is_customer = self.book.by_customer.get(&c).is_some_and(|emails| {
                    norm.address(sender).is_some_and(|s| emails.contains(&s))
                });
                if !sender.is_empty() && (is_customer || in_thread.contains(sender)) {
                    let who = if is_customer {
                        "the customer"
                    } else {
                        "a participant of the thread"
                    };
                    push(
                        &mut found,
                        c,
                        "thread",
                        format!("reply in the thread of <{r}>; sender {sender} is {who}"),
                    );
                }
            }
        }
        (found, participants, denied)
    }
}

/// Matches the given messages (call after sync stored a batch): sets `matches`,
/// `messages.customer_id` and `messages.denied`. Replies already cached whose parent is in this
/// batch are matched again too (INBOX is often synced before Sent).
pub fn match_messages(store: &Store, ids: &[i64], config: &Config) -> Result<MatchSummary> {
    let matcher = Matcher::new(store, config)?;
    match_with(store, &matcher, ids)
}

fn match_with(store: &Store, matcher: &Matcher, ids: &[i64]) -> Result<MatchSummary> {
    let (mut summary, _) = run(store, matcher, Some(ids))?;
    // Replies whose customer follows from these messages (cached before their parent was
    // matched, or thread-matched to a customer that changed); a few generations deep at most.
    let mut parents: Vec<i64> = ids.to_vec();
    for _ in 0..8 {
        let msgids: Vec<String> = store
            .match_inputs(&parents)?
            .into_iter()
            .filter_map(|m| m.message_id)
            .collect();
        let orphans = store.thread_replies_to(&msgids)?;
        if orphans.is_empty() {
            break;
        }
        let (s2, _) = run(store, matcher, Some(&orphans))?;
        summary.changed += s2.changed;
        summary.matched += s2.matched;
        if s2.changed == 0 {
            break;
        }
        parents = orphans;
    }
    Ok(summary)
}

/// Matches again only what a change to these addresses can affect: mail from or to them, plus
/// `also` (e.g. the mail of a customer that lost them) and the replies that follow. What the
/// triage actions use, so pairing stays quick on a large cache; falls back to a full rematch
/// when plus-folding makes "mail from this address" a pattern rather than a lookup.
pub fn rematch_addresses(
    store: &Store,
    config: &Config,
    emails: &[String],
    also: &[i64],
) -> Result<MatchSummary> {
    if config.general.fold_plus_addresses {
        return rematch_all(store, config);
    }
    let mut forms: Vec<String> = Vec::new();
    for e in emails {
        forms.push(e.clone());
        // Sync may have stored the domain in Unicode, as the header spelled it.
        if let Some((local, domain)) = e.rsplit_once('@') {
            let (uni, res) = idna::domain_to_unicode(domain);
            if res.is_ok() && uni != domain {
                forms.push(format!("{local}@{uni}"));
            }
        }
    }
    let mut ids = store.messages_mentioning(&forms)?;
    ids.extend_from_slice(also);
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(MatchSummary::default());
    }
    let matcher = Matcher::new(store, config)?;
    match_with(store, &matcher, &ids)
}

/// Matches every message matching has not examined yet: what sync calls after a pass (it
/// needs no ids), and what readers call first so the queue is never stale.
pub fn match_pending(store: &Store, config: &Config) -> Result<MatchSummary> {
    let mut ids = store.unexamined_ids()?;
    if ids.is_empty() {
        return Ok(MatchSummary::default());
    }
    let matcher = Matcher::new(store, config)?;
    // An empty book and no deny list: nothing to decide for mail that is not denied (a first
    // sync with an empty book costs one UPDATE instead of a pass over the whole cache).
    let mut plain = 0;
    if matcher.book.is_empty()
        && matcher.deny.is_empty()
        && let Some(n) = store.examine_without_book()?
    {
        plain = n;
        ids = store.unexamined_ids()?;
        if ids.is_empty() {
            return Ok(MatchSummary {
                examined: plain,
                ..MatchSummary::default()
            });
        }
    }
    let mut s = match_examined(store, &matcher, &ids)?;
    s.examined += plain;
    Ok(s)
}

/// Matches the given unexamined messages and marks them examined.
fn match_examined(store: &Store, matcher: &Matcher, ids: &[i64]) -> Result<MatchSummary> {
    // After a first sync nearly everything is new: one pass over the whole cache (two table
    // scans, threads resolved in date order) beats looking 100k messages up by id in chunks
    // and chasing their replies (1.15 s -> see docs/crm.md).
    let cached = store.message_count()?;
    if ids.len() * 2 >= cached {
        if let Some(s) = match_bulk(store, matcher, ids, cached)? {
            return Ok(s);
        }
        let (s, _) = run(store, matcher, None)?;
        store.set_examined(ids)?;
        return Ok(s);
    }
    let mut summary = MatchSummary::default();
    for chunk in ids.chunks(5_000) {
        let s = match_with(store, matcher, chunk)?;
        store.set_examined(chunk)?;
        summary.examined += s.examined;
        summary.matched += s.matched;
        summary.changed += s.changed;
        summary.denied += s.denied;
    }
    Ok(summary)
}

/// Matching of mail that is mostly new (a first sync) when little of it can match anything:
/// only the messages that can are decided — their sender is in the book, one of ours or on a
/// deny list, they are outbound, matching marked them before, or they refer to a customer's
/// mail — then the replies to whatever changed, generation by generation. The rest has no
/// customer, no match and is not denied, which is what it holds already, so it is only marked
/// examined. Reads the sender index and the references instead of every row (a 100k first
/// sync with a 20-customer book: 0.36–0.43 s → 0.11–0.15 s). `None` when so much can match
/// that one pass over the cache is cheaper.
pub(super) fn match_bulk(
    store: &Store,
    matcher: &Matcher,
    pending: &[i64],
    cached: usize,
) -> Result<Option<MatchSummary>> {
    let mut sorted = pending.to_vec();
    sorted.sort_unstable();
    let is_pending = |id: &i64| sorted.binary_search(id).is_ok();
    // Decided per distinct sender (a mailbox has far fewer senders than messages).
    let plain = Normalizer::default();
    let senders: Vec<String> = store
        .distinct_senders()?
        .into_iter()
        .filter(|from| {
            let Some(f) = plain.address(from) else {
                return false;
            };
            matcher.book.by_address(&matcher.book.key(&f)).is_some()
                || matcher.is_own(&f)
                || matcher.book.by_domain(&f).is_some()
                || matcher.deny.may_deny(&f)
        })
        .collect();
    let mut seeds: HashSet<i64> = store.messages_from(&senders)?.into_iter().collect();
    let marked = store.outbound_ids()?.into_iter();
    seeds.extend(marked.chain(store.ids_with_match_state()?));
    seeds.retain(is_pending);
    let customer_mail: HashSet<u64> = store
        .customers_mail_ids()?
        .iter()
        .map(|m| id_key(m))
        .collect();
    // Who refers to whom, for the replies: a reply to a customer's mail is a seed itself.
    let mut replies: HashMap<u64, Vec<i64>> = HashMap::new();
    if !seeds.is_empty() || !customer_mail.is_empty() {
        store.for_each_reference(|id, irt, refs| {
            for r in references(irt, refs) {
                let key = id_key(r);
                if customer_mail.contains(&key) && is_pending(&id) {
                    seeds.insert(id);
                }
                replies.entry(key).or_default().push(id);
            }
        })?;
    }
    if seeds.len() * 4 > cached {
        tracing::debug!(
            can_match = seeds.len(),
            pending = pending.len(),
            "matching: much of the new mail can match; one pass over the cache"
        );
        return Ok(None);
    }
    tracing::debug!(
        can_match = seeds.len(),
        pending = pending.len(),
        "matching: deciding only the new mail that can match"
    );
    let mut summary = MatchSummary::default();
    let mut ids: Vec<i64> = seeds.into_iter().collect();
    ids.sort_unstable();
    // A reference cycle could flip decisions back and forth; real threads are far shallower.
    for _ in 0..32 {
        if ids.is_empty() {
            break;
        }
        let (s, changed) = run(store, matcher, Some(&ids))?;
        summary.matched += s.matched;
        summary.changed += s.changed;
        summary.denied += s.denied;
        ids = changed
            .iter()
            .filter_map(|mid| replies.get(&id_key(mid)))
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
    }
    store.set_examined(pending)?;
    summary.examined = pending.len();
    Ok(Some(summary))
}

/// Matches every cached message again (after the customer book or the deny list changed).
pub fn rematch_all(store: &Store, config: &Config) -> Result<MatchSummary> {
    let matcher = Matcher::new(store, config)?;
    // Read before matching: a message stored meanwhile stays unexamined and is caught later.
    let pending = store.unexamined_ids()?;
    let (s, _) = run(store, &matcher, None)?;
    store.set_examined(&pending)?;
    Ok(s)
}

/// One pass over the given messages (or all): its summary and the Message-IDs of the messages
/// whose decision changed.
fn run(
    store: &Store,
    matcher: &Matcher,
    ids: Option<&[i64]>,
) -> Result<(MatchSummary, Vec<String>)> {
    let Some(ids) = ids else {
        return run_all(store, matcher);
    };
    let inputs = store.match_inputs(ids)?;
    let batch_ids: HashSet<&str> = inputs
        .iter()
        .filter_map(|m| m.message_id.as_deref())
        .collect();
    // Only messages something refers to need a thread node.
    let wanted: HashSet<String> = inputs
        .iter()
        .flat_map(|m| referenced_ids(m.in_reply_to.as_deref(), m.refs.as_deref()))
        .collect();
    let mut pass = Pass::new(matcher, wanted, store.matches_of(Some(ids))?);
    let outside: Vec<String> = pass
        .wanted
        .iter()
        .filter(|w| !batch_ids.contains(w.as_str()))
        .cloned()
        .collect();
    let plain = Normalizer::default();
    for n in store.messages_by_message_ids(&outside)? {
        let Some(mid) = n.message_id.clone() else {
            continue;
        };
        let node = pass.thread.entry(mid).or_default();
        if node.customer.is_none() {
            node.customer = n.customer_id;
        }
        node.participants
            .extend(n.from_addr.as_deref().and_then(|a| plain.address(a)));
        node.participants.extend(json_addresses(&n.to_json, plain));
        node.participants.extend(json_addresses(&n.cc_json, plain));
    }
    for m in &inputs {
        pass.examine(m);
    }
    pass.finish(store)
}

/// Every cached message, streamed oldest first (thread parents are decided before their
/// replies): memory holds the thread nodes and the changes, never the whole cache.
fn run_all(store: &Store, matcher: &Matcher) -> Result<(MatchSummary, Vec<String>)> {
    let mut wanted: HashSet<String> = HashSet::new();
    store.for_each_reference(|_, irt, refs| {
        wanted.extend(referenced_ids(irt, refs));
    })?;
    let mut pass = Pass::new(matcher, wanted, store.matches_of(None)?);
    store.for_each_match_input(matcher.deny.holders_wanted(), |m| pass.examine(&m))?;
    pass.finish(store)
}

/// Whether two lists hold the same matches, in any order.
fn same_matches(a: &[MatchRow], b: &[MatchRow]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// One matching pass: what is known about threads so far and the changes to write.
struct Pass<'a> {
    matcher: &'a Matcher,
    /// Message-IDs some message refers to (only those need a thread node).
    wanted: HashSet<String>,
    thread: HashMap<String, ThreadNode>,
    existing: HashMap<i64, Vec<MatchRow>>,
    updates: Vec<MatchUpdate>,
    /// Message-IDs of the updated messages (whose replies may decide differently now).
    changed: Vec<String>,
    summary: MatchSummary,
}

impl<'a> Pass<'a> {
    fn new(
        matcher: &'a Matcher,
        wanted: HashSet<String>,
        existing: HashMap<i64, Vec<MatchRow>>,
    ) -> Pass<'a> {
        Pass {
            matcher,
            wanted,
            thread: HashMap::new(),
            existing,
            updates: Vec::new(),
            changed: Vec::new(),
            summary: MatchSummary::default(),
        }
    }

    fn examine(&mut self, m: &MatchInput) {
        self.summary.examined += 1;
        let referenced = m
            .message_id
            .as_ref()
            .is_some_and(|mid| self.wanted.contains(mid));
        let (mut found, participants, denied) = self.matcher.decide(m, &self.thread, referenced);
        let old = self.existing.remove(&m.id).unwrap_or_default();
        let manual: Option<i64> = old
            .iter()
            .find(|r| r.rule == "manual")
            .map(|r| r.customer_id);
        // A manual pairing already links that customer (one row per message and customer).
        found.retain(|f| Some(f.customer_id) != manual);
        let old_auto: Vec<MatchRow> = old.into_iter().filter(|r| r.rule != "manual").collect();
        let customer_id = manual.or(found.first().map(|f| f.customer_id));
        if customer_id.is_some() {
            self.summary.matched += 1;
        }
        if denied {
            self.summary.denied += 1;
        }
        if referenced && let Some(mid) = &m.message_id {
            let node = self.thread.entry(mid.clone()).or_default();
            node.customer = node.customer.or(customer_id);
            node.participants.extend(participants);
        }
        // The stored rows come back in no particular order (the primary customer is
        // `customer_id`): compare them as a set.
        if !same_matches(&old_auto, &found) || m.customer_id != customer_id || m.denied != denied {
            self.changed.extend(m.message_id.clone());
            self.updates.push(MatchUpdate {
                message_id: m.id,
                matches: found,
                customer_id,
                denied,
            });
        }
    }

    fn finish(mut self, store: &Store) -> Result<(MatchSummary, Vec<String>)> {
        self.summary.changed = self.updates.len();
        if !self.updates.is_empty() {
            store.atomically(|s| self.updates.iter().try_for_each(|u| s.apply_match(u)))?;
        }
        Ok((self.summary, self.changed))
    }
}
