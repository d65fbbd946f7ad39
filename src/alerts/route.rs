//! Routing: new events of one account become deliveries, one per channel that wants them, at
//! most one alert per account per `alerts.min_interval_secs`. An event that comes while the
//! window is closed is held back; when the window ends, everything held goes out as one digest
//! (per channel: the held events that channel wants). `recovered` reaches only a channel that
//! was told the account failed (or one that asked for nothing but recoveries). The whole step
//! runs in one transaction, so an event is routed exactly once whoever routes it.

use chrono::{DateTime, Utc};

use super::{Held, Payload, host};
use crate::config::{AlertChannel, Config, EventKind};
use crate::error::Result;
use crate::store::{AlertEventRow, AlertTx, NewAlertEvent, Store};

/// What routing did with an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Queued for these channels.
    Sent(Vec<u32>),
    /// Held back until the quiet window ends.
    Held { until: String },
    /// No channel wants it.
    Unrouted,
    /// A digest of `held` events, queued for these channels.
    Digest { channels: Vec<u32>, held: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub event: AlertEventRow,
    /// The account's name (its id when it is no longer configured).
    pub account: String,
    pub outcome: Outcome,
}

/// Routes the account's new events (and a digest, when one is due) at `now`.
pub fn route_account(
    store: &mut Store,
    config: &Config,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Routed>> {
    let name = config
        .account_by_id(account_id)
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| account_id.to_string());
    let r = Router {
        config,
        account_id,
        name: &name,
        now,
    };
    store.alert_route(|tx| r.run(tx))
}

struct Router<'a> {
    config: &'a Config,
    account_id: &'a str,
    name: &'a str,
    now: DateTime<Utc>,
}

impl Router<'_> {
    fn run(&self, tx: &AlertTx<'_>) -> Result<Vec<Routed>> {
        let min = self.config.alerts.min_interval_secs;
        let last = tx.last_alert_at(self.account_id)?;
        let until = last
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| {
                t.with_timezone(&Utc) + chrono::Duration::seconds(min.min(i64::MAX as u64) as i64)
            });
        let mut open = until.is_none_or(|u| self.now >= u);
        let mut held = tx.events(self.account_id, "held")?;
        let mut out = Vec::new();
        for ev in tx.events(self.account_id, "new")? {
            let channels = self.targets(tx, &ev)?;
            let outcome = if channels.is_empty() {
                tx.set_status(ev.id, "unrouted", None)?;
                Outcome::Unrouted
            } else if open && held.is_empty() {
                for ch in &channels {
                    let payload = self.payload(&ev, Vec::new());
                    tx.insert_delivery(ev.id, Some(self.account_id), *ch, &payload.json())?;
                }
                tx.set_status(ev.id, "sent", None)?;
                tx.set_last_alert(self.account_id, &stamp(self.now))?;
                open = false;
                Outcome::Sent(channels)
            } else {
                tx.set_status(ev.id, "held", None)?;
                held.push(ev.clone());
                Outcome::Held {
                    until: until.map(stamp).unwrap_or_else(|| stamp(self.now)),
                }
            };
            out.push(self.routed(ev, outcome));
        }
        if open && !held.is_empty() {
            out.push(self.digest(tx, &held)?);
        }
        Ok(out)
    }

    fn routed(&self, event: AlertEventRow, outcome: Outcome) -> Routed {
        Routed {
            event,
            account: self.name.to_string(),
            outcome,
        }
    }

    /// The channels that get `ev`, with what each was told updated.
    fn targets(&self, tx: &AlertTx<'_>, ev: &AlertEventRow) -> Result<Vec<u32>> {
        let Ok(kind) = EventKind::parse(&ev.event) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for ch in &self.config.alerts.channels {
            if !ch.wants(kind, self.name) {
                continue;
            }
            if kind == EventKind::Recovered {
                let asked_only_this = !ch.events().iter().any(|k| k.is_failure_state());
                if !asked_only_this && !tx.told(ch.id, self.account_id)? {
                    continue;
                }
                tx.set_told(ch.id, self.account_id, false)?;
            } else if kind.is_failure_state() {
                tx.set_told(ch.id, self.account_id, true)?;
            }
            out.push(ch.id);
        }
        Ok(out)
    }

    fn payload(&self, ev: &AlertEventRow, held: Vec<Held>) -> Payload {
        Payload {
            id: Some(ev.id),
            event: ev.event.clone(),
            account: Some(self.name.to_string()),
            state: ev.state.clone(),
            at: ev.at.clone(),
            what: ev.what.clone(),
            fix: ev.fix.clone(),
            code: ev.code.clone(),
            host: host(),
            held,
        }
    }

    /// One digest of everything held back, per channel the held events it wants.
    fn digest(&self, tx: &AlertTx<'_>, held: &[AlertEventRow]) -> Result<Routed> {
        let state = tx.account_state(self.account_id)?;
        let failing = state
            .as_deref()
            .is_some_and(|s| matches!(s, "degraded" | "disconnected" | "error"));
        let last_failure = held
            .iter()
            .rev()
            .find(|e| EventKind::parse(&e.event).is_ok_and(EventKind::is_failure_state));
        let (fix, code) = match (failing, last_failure) {
            (true, Some(f)) => (f.fix.clone(), f.code.clone()),
            _ => (String::new(), None),
        };
        let what = self.digest_words(held, state.as_deref());
        let new = NewAlertEvent {
            account_id: Some(self.account_id),
            event: "digest",
            state: state.as_deref(),
            what: what.clone(),
            fix: &fix,
            code: code.as_deref(),
        };
        let id = tx.insert_event(&new, "sent")?;
        let mut channels = Vec::new();
        for ch in &self.config.alerts.channels {
            let mine: Vec<&AlertEventRow> =
                held.iter().filter(|e| wanted(ch, e, self.name)).collect();
            if mine.is_empty() {
                continue;
            }
            let own: Vec<AlertEventRow> = mine.iter().map(|e| (*e).clone()).collect();
            let mut p = Payload {
                id: Some(id),
                event: "digest".into(),
                account: Some(self.name.to_string()),
                state: state.clone(),
                at: stamp(self.now),
                what: self.digest_words(&own, state.as_deref()),
                fix: fix.clone(),
                code: code.clone(),
                host: host(),
                held: Vec::new(),
            };
            p.held = mine.iter().map(|e| held_of(e)).collect();
            tx.insert_delivery(id, Some(self.account_id), ch.id, &p.json())?;
            channels.push(ch.id);
        }
        for e in held {
            tx.set_status(e.id, "digested", Some(id))?;
        }
        tx.set_last_alert(self.account_id, &stamp(self.now))?;
        let event = AlertEventRow {
            id,
            account_id: Some(self.account_id.to_string()),
            event: "digest".into(),
            state,
            at: stamp(self.now),
            what,
            fix,
            code,
            status: "sent".into(),
            digest_id: None,
        };
        Ok(self.routed(
            event,
            Outcome::Digest {
                channels,
                held: held.len(),
            },
        ))
    }

    /// `3 alerts held back since T (…): disconnected ×2, recovered ×1; the account is idle now`.
    fn digest_words(&self, held: &[AlertEventRow], state: Option<&str>) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for e in held {
            match counts.iter_mut().find(|(k, _)| *k == e.event) {
                Some((_, n)) => *n += 1,
                None => counts.push((&e.event, 1)),
            }
        }
        let list = counts
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let since = held.first().map(|e| e.at.as_str()).unwrap_or("");
        let n = held.len();
        let mut s = format!(
            "{n} alert{} held back since {since} (at most one alert per account every {} s, alerts.min_interval_secs): {list}",
            if n == 1 { "" } else { "s" },
            self.config.alerts.min_interval_secs
        );
        if let Some(st) = state {
            s.push_str(&format!("; the account is {st} now"));
        }
        s
    }
}

fn wanted(ch: &AlertChannel, e: &AlertEventRow, name: &str) -> bool {
    EventKind::parse(&e.event).is_ok_and(|k| ch.wants(k, name))
}

fn held_of(e: &AlertEventRow) -> Held {
    Held {
        id: e.id,
        event: e.event.clone(),
        state: e.state.clone(),
        at: e.at.clone(),
        what: e.what.clone(),
        fix: e.fix.clone(),
        code: e.code.clone(),
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{AppError, Code};
    use crate::store::AccountState;

    const CONFIG: &str = r#"
[alerts]
min_interval_secs = 60

[[alerts.channels]]
id = 1
command = "x"

[[alerts.channels]]
id = 2
account = "work"
command = "y"
on = ["degraded", "recovered"]

[[alerts.channels]]
id = 3
account = "home"
command = "z"
on = ["recovered"]

[accounts.work]
id = "a1"
email = "w@example.test"
user = "w"
imap = { host = "h", port = 1 }
smtp = { host = "h", port = 2 }
"#;

    fn setup() -> (Store, Config) {
        let s = Store::open_in_memory().unwrap();
        s.insert_account("a1", "work", true).unwrap();
        (s, toml::from_str(CONFIG).unwrap())
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-01T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::seconds(secs)
    }

    fn flap(s: &Store, state: AccountState) {
        let e =
            AppError::transient("cannot connect to h:1", "", "wait").with_code(Code::NetRefused);
        s.set_state("a1", state).unwrap();
        super::super::state_changed(s, "a1", state, (state != AccountState::Idle).then_some(&e));
    }

    #[test]
    fn one_alert_per_window_then_one_digest_of_what_was_held() {
        let (mut s, config) = setup();
        flap(&s, AccountState::Disconnected);
        let r = route_account(&mut s, &config, "a1", at(0)).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].outcome,
            Outcome::Sent(vec![1]),
            "channel 2 wants no disconnected"
        );
        assert_eq!(r[0].account, "work");
        // Flapping: four more transitions within the window are held back.
        for (i, st) in [
            AccountState::Idle,
            AccountState::Degraded,
            AccountState::Idle,
            AccountState::Disconnected,
        ]
        .into_iter()
        .enumerate()
        {
            flap(&s, st);
            let r = route_account(&mut s, &config, "a1", at(10 + i as i64)).unwrap();
            assert!(matches!(r[0].outcome, Outcome::Held { .. }), "{r:?}");
        }
        // Nothing new, window still closed: nothing happens.
        assert!(
            route_account(&mut s, &config, "a1", at(59))
                .unwrap()
                .is_empty()
        );
        // The window ends: one digest.
        let r = route_account(&mut s, &config, "a1", at(60)).unwrap();
        assert_eq!(r.len(), 1);
        let Outcome::Digest { channels, held } = &r[0].outcome else {
            panic!("{r:?}")
        };
        assert_eq!((channels.clone(), *held), (vec![1, 2], 4));
        assert!(
            r[0].event.what.contains("recovered ×2"),
            "{}",
            r[0].event.what
        );
        assert!(
            r[0].event.what.contains("disconnected now"),
            "{}",
            r[0].event.what
        );
        assert_eq!(
            r[0].event.code.as_deref(),
            Some("net.refused"),
            "still failing"
        );
        let d = s.alert_deliveries_of(r[0].event.id).unwrap();
        let p1: Payload = serde_json::from_str(&d[0].2).unwrap();
        let p2: Payload = serde_json::from_str(&d[1].2).unwrap();
        assert_eq!(p1.event, "digest");
        assert_eq!(
            p1.held.iter().map(|h| h.event.as_str()).collect::<Vec<_>>(),
            ["recovered", "recovered", "disconnected"],
            "channel 1 wants no degraded"
        );
        assert_eq!(
            p2.held.iter().map(|h| h.event.as_str()).collect::<Vec<_>>(),
            ["recovered", "degraded", "recovered"],
        );
        // The digest opened a new window.
        flap(&s, AccountState::Idle);
        let r = route_account(&mut s, &config, "a1", at(61)).unwrap();
        assert!(matches!(r[0].outcome, Outcome::Held { .. }), "{r:?}");
        let every = s.alert_events().unwrap();
        assert!(every.iter().all(|e| e.status != "new"));
    }

    #[test]
    fn two_processes_routing_and_claiming_at_once_deliver_each_alert_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let config: Config = toml::from_str(CONFIG).unwrap();
        let s = Store::open(&path).unwrap();
        s.insert_account("a1", "work", true).unwrap();
        for i in 0..20 {
            let st = if i % 2 == 0 {
                AccountState::Disconnected
            } else {
                AccountState::Idle
            };
            flap(&s, st);
        }
        // Two "processes" (connections) route and claim the same account as fast as they can.
        let run = |who: &'static str| {
            let (path, config) = (path.clone(), config.clone());
            std::thread::spawn(move || {
                let mut s = Store::open(&path).unwrap();
                let mut claimed = Vec::new();
                for k in 0..30 {
                    route_account(&mut s, &config, "a1", at(k * 61)).unwrap();
                    for d in s.alert_due(&["a1".to_string()], 100).unwrap() {
                        if s.alert_claim(d.id, who, "2999-01-01T00:00:00Z").unwrap() {
                            claimed.push(d.id);
                        }
                    }
                }
                claimed
            })
        };
        let (a, b) = (run("a"), run("b"));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        let mut all: Vec<i64> = a.iter().chain(b.iter()).copied().collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "no delivery claimed twice");
        let events = s.alert_events().unwrap();
        let mut deliveries = 0;
        for e in &events {
            deliveries += s.alert_deliveries_of(e.id).unwrap().len();
            assert_ne!(e.status, "new", "every event routed");
        }
        assert_eq!(deliveries, n, "every delivery claimed once");
        assert!(events.iter().filter(|e| e.status == "sent").count() >= 1);
    }

    #[test]
    fn recovered_only_reaches_channels_told_of_the_failure() {
        let (mut s, mut config) = setup();
        config.alerts.min_interval_secs = 1;
        // degraded: only channel 2 wants it.
        flap(&s, AccountState::Degraded);
        let r = route_account(&mut s, &config, "a1", at(0)).unwrap();
        assert_eq!(r[0].outcome, Outcome::Sent(vec![2]));
        flap(&s, AccountState::Idle);
        let r = route_account(&mut s, &config, "a1", at(5)).unwrap();
        assert_eq!(
            r[0].outcome,
            Outcome::Sent(vec![2]),
            "channel 1 never heard of the failure; channel 3 is another account's"
        );
        // An outbox event nobody wants is recorded as unrouted, and opens no window.
        config.alerts.channels.retain(|c| c.id == 2);
        super::super::outbox(
            &s,
            "a1",
            EventKind::OutboxFailed,
            3,
            &AppError::needs_user("refused", "", "fix"),
        );
        let r = route_account(&mut s, &config, "a1", at(6)).unwrap();
        assert_eq!(r[0].outcome, Outcome::Unrouted);
    }
}
