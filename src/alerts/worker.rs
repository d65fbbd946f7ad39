//! The alerts worker: one per process that syncs (daemon, console, `sync NAME`), on a thread of
//! its own. Every second — at once when this process raised something — it routes the new
//! events of the accounts whose sync lease this process holds, then claims their due
//! deliveries and runs each as a task of its own with its time limit. Results are recorded as
//! they come (delivered, retried with backoff, or given up), each in the event log and the
//! audit log. Nothing here ever waits on a sync task, and no sync task waits on this.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::task::JoinSet;

use super::deliver::{self, Outcome};
use super::route::{self, Outcome as Routing, Routed};
use super::{Payload, WAKE};
use crate::config::{Config, Home};
use crate::error::{AppError, Result};
use crate::secret::Vault;
use crate::store::{DeliveryRow, Failure, Finish, Level, Store};

/// Where the worker reads the settings (the service layer's cached config.toml).
pub type ConfigSource = Arc<dyn Fn() -> Result<Arc<Config>> + Send + Sync>;

/// How often the worker looks for work raised by other processes, and for digests that are due.
const TICK: Duration = Duration::from_secs(1);

/// At most this many deliveries run at once per process.
const IN_FLIGHT: usize = 16;

pub struct Settings {
    pub home: Home,
    /// Who the audit log says acted: the operator running this process.
    pub operator: String,
    pub config: ConfigSource,
}

struct Worker {
    store: Store,
    vault: Option<Vault>,
    settings: Settings,
    running: JoinSet<(DeliveryRow, u32, Outcome)>,
    busy: HashSet<i64>,
    /// The last failure to read the settings (logged once).
    config_error: Option<String>,
}

/// Runs until `shutdown` turns true; deliveries still running then get a few seconds to end
/// (an aborted one is claimed again by whoever routes next, after its claim expires).
pub async fn run(
    settings: Settings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut w = Worker::new(settings)?;
    loop {
        if *shutdown.borrow() {
            break;
        }
        w.tick();
        let finished = tokio::select! {
            _ = tokio::time::sleep(TICK) => None,
            _ = WAKE.notified() => None,
            Some(done) = w.running.join_next(), if !w.running.is_empty() => Some(done),
            r = shutdown.changed() => {
                if r.is_err() { break; }
                None
            }
        };
        if let Some(done) = finished {
            w.finished(done);
        }
    }
    let grace = async {
        while let Some(done) = w.running.join_next().await {
            w.finished(done);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), grace).await;
    w.running.abort_all();
    Ok(())
}

/// A one-shot sync (`sync --once`, a cron job) holds the account's lease for its pass only:
/// before it lets go, the account's alerts are routed and what is due is delivered, each
/// delivery waited for at most its time limit. A failed one waits for the next run (or a
/// daemon) to be retried.
pub async fn drain(home: &Home, operator: &str, config: &Config, account_id: &str) -> Result<()> {
    let config = Arc::new(config.clone());
    let mut w = Worker::new(Settings {
        home: home.clone(),
        operator: operator.to_string(),
        config: Arc::new(move || Ok(config.clone())),
    })?;
    let config = (w.settings.config)()?;
    w.work(&config, &[account_id.to_string()])?;
    while let Some(done) = w.running.join_next().await {
        w.finished(done);
    }
    Ok(())
}

impl Worker {
    fn new(settings: Settings) -> Result<Worker> {
        Ok(Worker {
            store: Store::open(&settings.home.db_path())?,
            vault: Vault::open(&settings.home).ok(),
            settings,
            running: JoinSet::new(),
            busy: HashSet::new(),
            config_error: None,
        })
    }

    fn tick(&mut self) {
        let config = match (self.settings.config)() {
            Ok(c) => {
                self.config_error = None;
                c
            }
            Err(e) => {
                if self.config_error.as_deref() != Some(e.summary.as_str()) {
                    tracing::warn!("alerts wait for a usable config.toml: {e}");
                    self.config_error = Some(e.summary.clone());
                }
                return;
            }
        };
        let work = self
            .store
            .alert_leased_accounts()
            .and_then(|leased| self.work(&config, &leased));
        if let Err(e) = work {
            tracing::warn!("the alerts worker: {e}");
        }
    }

    /// Routes the new events of `leased` (the accounts this process syncs) and starts their due
    /// deliveries.
    fn work(&mut self, config: &Config, leased: &[String]) -> Result<()> {
        if leased.is_empty() {
            return Ok(());
        }
        for account in self.store.alert_accounts_open(leased)? {
            let routed = route::route_account(&mut self.store, config, &account, Utc::now())?;
            for r in &routed {
                self.log_routed(r);
            }
        }
        let room = IN_FLIGHT.saturating_sub(self.running.len());
        if room == 0 {
            return Ok(());
        }
        for d in self
            .store
            .alert_due(leased, (room + self.busy.len()) as i64)?
        {
            if self.busy.contains(&d.id) || self.running.len() >= IN_FLIGHT {
                continue;
            }
            self.start(config, d)?;
        }
        Ok(())
    }

    /// Claims one delivery and starts it (or records at once why it cannot go).
    fn start(&mut self, config: &Config, d: DeliveryRow) -> Result<()> {
        let Some(ch) = config.alerts.channel(d.channel) else {
            if self.store.alert_claim(d.id, &claim_tag(), &until(60))? {
                self.store.alert_finish(
                    d.id,
                    &Finish::Cancelled {
                        why: "the channel was removed".into(),
                    },
                )?;
            }
            return Ok(());
        };
        let limit = ch.timeout().as_secs() * 3 + 60;
        if !self.store.alert_claim(d.id, &claim_tag(), &until(limit))? {
            return Ok(());
        }
        if self.vault.is_none() {
            self.vault = Vault::open(&self.settings.home).ok();
        }
        let prepared = deliver::prepare(
            config,
            &self.store,
            self.vault.as_ref(),
            ch,
            d.account_id.as_deref(),
        );
        let route = match prepared {
            Ok(r) => r,
            Err(e) => return self.fail_now(d, ch.id, e),
        };
        let payload: Payload = match serde_json::from_str(&d.payload) {
            Ok(p) => p,
            Err(e) => {
                let e = AppError::local(
                    "an alert's stored event cannot be read",
                    e.to_string(),
                    "report this as a bug",
                );
                return self.fail_now(d, ch.id, e);
            }
        };
        let channel = ch.id;
        self.busy.insert(d.id);
        self.running.spawn(async move {
            let o = deliver::deliver(&route, &payload).await;
            (d, channel, o)
        });
        Ok(())
    }

    fn fail_now(&mut self, d: DeliveryRow, channel: u32, e: AppError) -> Result<()> {
        let o = Outcome::failed("not sent", None, e);
        self.record(&d, channel, &o);
        Ok(())
    }

    fn finished(
        &mut self,
        done: std::result::Result<(DeliveryRow, u32, Outcome), tokio::task::JoinError>,
    ) {
        match done {
            Ok((d, channel, o)) => {
                self.busy.remove(&d.id);
                self.record(&d, channel, &o);
            }
            // A panicked delivery: its claim expires and it is tried again.
            Err(e) => tracing::warn!("an alert delivery stopped: {e}"),
        }
    }

    /// Stores how an attempt ended, with its log and audit entries.
    fn record(&mut self, d: &DeliveryRow, channel: u32, o: &Outcome) {
        let alerts = (self.settings.config)()
            .map(|c| c.alerts.clone())
            .unwrap_or_default();
        let finish = finish_of(d, o, &alerts);
        if let Err(e) = self.store.alert_finish(d.id, &finish) {
            tracing::warn!("cannot record an alert delivery: {e}");
        }
        let event = serde_json::from_str::<Payload>(&d.payload)
            .map(|p| p.title())
            .unwrap_or_else(|_| format!("alert #{}", d.event_id));
        let (level, words, action) = match &finish {
            Finish::Delivered { .. } => (Level::Info, "delivered".to_string(), "alert_delivered"),
            Finish::Retry { next_at, .. } => (
                Level::Warn,
                format!("not delivered, retried at {next_at}"),
                "alert_failed",
            ),
            Finish::GaveUp { .. } => (
                Level::Error,
                format!("not delivered, given up after {} attempts", d.attempts + 1),
                "alert_gave_up",
            ),
            Finish::Cancelled { why } => {
                (Level::Info, format!("cancelled: {why}"), "alert_cancelled")
            }
        };
        let what = format!(
            "alert {event} through channel {channel}: {words} ({})",
            o.result
        );
        let (detail, fix) = match &o.error {
            Some(e) => (Some(e.to_string()), Some(e.fix.clone())),
            None => (o.output.clone(), None),
        };
        let acct = d.account_id.as_deref();
        let _ = self
            .store
            .log_event(acct, level, &what, detail.as_deref(), fix.as_deref());
        let _ = self.store.audit(
            &self.settings.operator,
            action,
            acct,
            Some(&format!("alert:{}", d.event_id)),
            &json!({
                "channel": channel, "delivery": d.id, "attempt": d.attempts + 1,
                "result": o.result, "output": o.output,
                "error": o.error.as_ref().map(|e| e.summary.clone()),
                "code": o.error.as_ref().map(|e| e.code.as_str()),
            }),
        );
        tracing::info!("{what}");
    }

    /// Every routing decision in the event log and the audit log.
    fn log_routed(&self, r: &Routed) {
        let e = &r.event;
        let title = format!("{}: {}", r.account, e.event);
        let (level, what, action, detail) = match &r.outcome {
            Routing::Sent(chs) => (
                Level::Warn,
                format!("alert {title} — {}", e.what),
                "alert",
                json!({"channels": chs}),
            ),
            Routing::Held { until } => (
                Level::Info,
                format!(
                    "alert {title} held back until {until} (alerts.min_interval_secs), then sent in a digest"
                ),
                "alert_held",
                json!({"until": until}),
            ),
            Routing::Unrouted => (
                Level::Debug,
                format!("alert {title}: no channel wants it"),
                "alert_unrouted",
                json!({}),
            ),
            Routing::Digest { channels, held } => (
                Level::Warn,
                format!("alert digest of {}: {}", r.account, e.what),
                "alert_digest",
                json!({"channels": channels, "held": held}),
            ),
        };
        if action == "alert_unrouted" {
            tracing::debug!("{what}");
            return;
        }
        let fix = (!e.fix.is_empty()).then_some(e.fix.as_str());
        let acct = e.account_id.as_deref();
        let _ = self.store.log_event(acct, level, &what, None, fix);
        let mut detail = detail;
        detail["event"] = json!(e.event);
        detail["code"] = json!(e.code);
        let _ = self.store.audit(
            &self.settings.operator,
            action,
            acct,
            Some(&format!("alert:{}", e.id)),
            &detail,
        );
    }
}

/// Delivered; or retried after a backoff; or given up once the alert is older than
/// `alerts.give_up_secs`.
fn finish_of(d: &DeliveryRow, o: &Outcome, alerts: &crate::config::AlertsConfig) -> Finish {
    if o.ok {
        return Finish::Delivered {
            result: o.result.clone(),
            output: o.output.clone(),
        };
    }
    let e = o
        .error
        .clone()
        .unwrap_or_else(|| AppError::transient("not delivered", "", ""));
    let failure = Failure {
        result: o.result.clone(),
        output: o.output.clone(),
        what: e.summary.clone(),
        fix: e.fix.clone(),
        code: e.code.as_str().to_string(),
    };
    let age = chrono::DateTime::parse_from_rfc3339(&d.created_at)
        .map(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds())
        .unwrap_or(0);
    let wait =
        crate::outbox::backoff_secs(alerts.retry_min_secs, alerts.retry_max_secs, d.attempts + 1);
    if age.max(0) as u64 + wait > alerts.give_up_secs {
        return Finish::GaveUp { failure };
    }
    Finish::Retry {
        next_at: at_plus(wait),
        failure,
    }
}

fn claim_tag() -> String {
    crate::store::outbox::claim_tag()
}

fn until(secs: u64) -> String {
    at_plus(secs)
}

fn at_plus(secs: u64) -> String {
    (Utc::now() + chrono::Duration::seconds(secs.min(10 * 365 * 86400) as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlertsConfig;

    #[test]
    fn a_failure_is_retried_with_backoff_until_the_give_up_time() {
        let alerts = AlertsConfig {
            retry_min_secs: 10,
            retry_max_secs: 40,
            give_up_secs: 100,
            ..Default::default()
        };
        let d = |attempts: i64, age: i64| DeliveryRow {
            id: 1,
            event_id: 1,
            account_id: None,
            channel: 1,
            payload: "{}".into(),
            attempts,
            created_at: (Utc::now() - chrono::Duration::seconds(age))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let failed = Outcome::failed("exit 1", None, AppError::transient("x", "", "y"));
        let Finish::Retry { next_at, failure } = finish_of(&d(0, 0), &failed, &alerts) else {
            panic!()
        };
        assert_eq!(failure.code, "temporary");
        let secs = (chrono::DateTime::parse_from_rfc3339(&next_at)
            .unwrap()
            .with_timezone(&Utc)
            - Utc::now())
        .num_seconds();
        assert!((8..=10).contains(&secs), "{secs}");
        assert!(matches!(
            finish_of(&d(5, 0), &failed, &alerts),
            Finish::Retry { .. }
        ));
        assert!(matches!(
            finish_of(&d(5, 70), &failed, &alerts),
            Finish::GaveUp { .. }
        ));
        let ok = Outcome {
            ok: true,
            result: "exit 0".into(),
            output: None,
            error: None,
        };
        assert!(matches!(
            finish_of(&d(9, 999), &ok, &alerts),
            Finish::Delivered { .. }
        ));
    }
}
