//! A customer's communication timeline: both directions, grouped into threads by Message-ID,
//! In-Reply-To and References (not by subject: "Re: invoice" threads of two customers must not
//! merge). Threads are ordered by their latest message, newest first; messages within a thread
//! oldest first, as a conversation reads.

use std::collections::HashMap;

use serde::Serialize;

use super::address::Normalizer;
use super::matching::{json_addresses, referenced_ids};
use crate::store::TimelineRow;

#[derive(Debug, Clone, Serialize)]
pub struct Why {
    pub rule: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineMessage {
    pub id: i64,
    pub date: Option<String>,
    pub direction: String,
    pub account_id: Option<String>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub to: Vec<String>,
    pub subject: Option<String>,
    pub why: Why,
}

#[derive(Debug, Clone, Serialize)]
pub struct Thread {
    /// The local id of the thread's first message.
    pub thread_id: i64,
    pub subject: Option<String>,
    pub last_date: Option<String>,
    pub messages: Vec<TimelineMessage>,
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Groups rows (oldest first, as the store returns them) into threads.
pub fn threads(rows: Vec<TimelineRow>) -> Vec<Thread> {
    let mut parent: Vec<usize> = (0..rows.len()).collect();
    let by_msgid: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.message_id.as_deref().map(|m| (m, i)))
        .collect();
    for (i, r) in rows.iter().enumerate() {
        for re in referenced_ids(r.in_reply_to.as_deref(), r.refs.as_deref()) {
            if let Some(&j) = by_msgid.get(re.as_str()) {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                // The older root stays the root, so a thread is named by its first message.
                if a != b {
                    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                    parent[hi] = lo;
                }
            }
        }
    }
    let n = Normalizer::default();
    let mut groups: Vec<Thread> = Vec::new();
    let mut index: HashMap<usize, usize> = HashMap::new();
    for i in 0..rows.len() {
        let root = find(&mut parent, i);
        let r = &rows[i];
        let msg = TimelineMessage {
            id: r.id,
            date: r.date.clone(),
            direction: r.direction.clone(),
            account_id: r.account_id.clone(),
            from: r.from_addr.clone(),
            from_name: r.from_name.clone(),
            to: json_addresses(&r.to_json, n),
            subject: r.subject.clone(),
            why: Why {
                rule: r.rule.clone(),
                detail: r.detail.clone(),
            },
        };
        let g = *index.entry(root).or_insert_with(|| {
            groups.push(Thread {
                thread_id: rows[root].id,
                subject: rows[root].subject.clone(),
                last_date: None,
                messages: Vec::new(),
            });
            groups.len() - 1
        });
        groups[g].last_date = r.date.clone().or(groups[g].last_date.take());
        groups[g].messages.push(msg);
    }
    groups.sort_by(|a, b| {
        b.last_date
            .cmp(&a.last_date)
            .then(b.thread_id.cmp(&a.thread_id))
    });
    groups
}
