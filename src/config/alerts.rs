//! `[alerts]` in config.toml: who is told when sync or sending goes wrong, and how quietly.
//!
//! ```toml
//! [alerts]
//! min_interval_secs = 600          # at most one alert per account in this window (+ a digest)
//!
//! [[alerts.channels]]
//! id = 1
//! command = "/usr/local/bin/page-me"
//! on = ["error", "disconnected", "recovered"]
//!
//! [[alerts.channels]]
//! id = 2
//! account = "work"                 # only this account's events
//! mail_to = "ops@example.com"      # through the system SMTP profile, or `via = "ACCOUNT"`
//!
//! [[alerts.channels]]
//! id = 3
//! webhook = "https://hooks.example.com/…"   # the full URL is sealed in the database
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{AppError, Code, Result};

/// What an alert is about (`--on`, `on = […]`, the event JSON's `event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Degraded,
    Disconnected,
    Error,
    Recovered,
    OutboxFailed,
    OutboxUncertain,
    CopyFailed,
    Quarantined,
    /// An `error` whose fix is `mailroom account login NAME` (OAuth2 sign-in needed again).
    LoginNeeded,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Degraded,
        EventKind::Disconnected,
        EventKind::Error,
        EventKind::Recovered,
        EventKind::OutboxFailed,
        EventKind::OutboxUncertain,
        EventKind::CopyFailed,
        EventKind::Quarantined,
        EventKind::LoginNeeded,
    ];

    /// What a channel hears when it names no events.
    pub const DEFAULT: [EventKind; 5] = [
        EventKind::Error,
        EventKind::Disconnected,
        EventKind::Recovered,
        EventKind::OutboxFailed,
        EventKind::OutboxUncertain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Degraded => "degraded",
            EventKind::Disconnected => "disconnected",
            EventKind::Error => "error",
            EventKind::Recovered => "recovered",
            EventKind::OutboxFailed => "outbox_failed",
            EventKind::OutboxUncertain => "outbox_uncertain",
            EventKind::CopyFailed => "copy_failed",
            EventKind::Quarantined => "quarantined",
            EventKind::LoginNeeded => "login_needed",
        }
    }

    pub fn parse(s: &str) -> Result<EventKind> {
        let t = s.trim().to_ascii_lowercase().replace('-', "_");
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == t)
            .ok_or_else(|| {
                AppError::usage(
                    format!("unknown alert event {s:?}"),
                    format!(
                        "use {} (or all)",
                        EventKind::ALL.map(EventKind::as_str).join(", ")
                    ),
                )
            })
    }

    /// `error,disconnected` or `all`.
    pub fn parse_list(s: &str) -> Result<Vec<EventKind>> {
        if s.trim().eq_ignore_ascii_case("all") {
            return Ok(EventKind::ALL.to_vec());
        }
        let mut out: Vec<EventKind> = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let k = EventKind::parse(part)?;
            if !out.contains(&k) {
                out.push(k);
            }
        }
        if out.is_empty() {
            return Err(AppError::usage(
                "--on names no event",
                "name one or more, e.g. --on error,disconnected,recovered (or all)",
            ));
        }
        Ok(out)
    }

    /// An account state that is a failure (the ones `recovered` ends).
    pub fn is_failure_state(self) -> bool {
        matches!(
            self,
            EventKind::Degraded
                | EventKind::Disconnected
                | EventKind::Error
                | EventKind::LoginNeeded
        )
    }
}

/// The `[alerts]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// At most one alert per account within this many seconds; what comes meanwhile is held
    /// back and sent as one digest when the window ends.
    pub min_interval_secs: u64,
    /// The first retry of an alert that could not be delivered; doubling up to `retry_max_secs`.
    pub retry_min_secs: u64,
    pub retry_max_secs: u64,
    /// An alert still undelivered after this long is given up (logged, shown, audited).
    pub give_up_secs: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<AlertChannel>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            min_interval_secs: 600,
            retry_min_secs: 10,
            retry_max_secs: 15 * 60,
            give_up_secs: 24 * 3600,
            channels: Vec::new(),
        }
    }
}

impl AlertsConfig {
    pub fn is_default(&self) -> bool {
        *self == AlertsConfig::default()
    }

    pub fn channel(&self, id: u32) -> Option<&AlertChannel> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// Every channel is one of the three kinds and ids are unique (what loading checks).
    pub fn check(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for c in &self.channels {
            if !seen.insert(c.id) {
                return Err(invalid(
                    c.id,
                    "the id is used twice; give each channel its own",
                ));
            }
            c.kind()?;
        }
        Ok(())
    }
}

/// One `[[alerts.channels]]` entry: exactly one of `command`, `mail_to`, `webhook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertChannel {
    pub id: u32,
    /// Only this account's events (its name); none: every account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Run through `sh -c` with the event JSON on stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Mail the event to this address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_to: Option<String>,
    /// Send that mail through this account's SMTP server (else the system SMTP profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The mail's sender (default: the `via` account's address, else mailroom@HOST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// POST the event JSON here (https, or plain http to a loopback address only). A URL with
    /// a path or query is sealed in the database and shown here without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// The events this channel wants; absent: [`EventKind::DEFAULT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<Vec<EventKind>>,
    /// How long the command or the webhook may take (default 30 s; a mail: each SMTP step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// What a channel does, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind<'a> {
    Command(&'a str),
    Mail {
        to: &'a str,
        via: Option<&'a str>,
        from: Option<&'a str>,
    },
    Webhook(&'a str),
}

impl ChannelKind<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            ChannelKind::Command(_) => "command",
            ChannelKind::Mail { .. } => "mail",
            ChannelKind::Webhook(_) => "webhook",
        }
    }
}

pub const DEFAULT_ALERT_TIMEOUT_SECS: u64 = 30;

impl AlertChannel {
    pub fn kind(&self) -> Result<ChannelKind<'_>> {
        let k = match (&self.command, &self.mail_to, &self.webhook) {
            (Some(c), None, None) => ChannelKind::Command(c),
            (None, Some(to), None) => ChannelKind::Mail {
                to,
                via: self.via.as_deref(),
                from: self.from.as_deref(),
            },
            (None, None, Some(u)) => ChannelKind::Webhook(u),
            (None, None, None) => {
                return Err(invalid(self.id, "it names no command, mail_to or webhook"));
            }
            _ => {
                return Err(invalid(
                    self.id,
                    "it names more than one of command, mail_to and webhook; one channel is one of them",
                ));
            }
        };
        if !matches!(k, ChannelKind::Mail { .. }) && (self.via.is_some() || self.from.is_some()) {
            return Err(invalid(self.id, "via and from belong to a mail_to channel"));
        }
        Ok(k)
    }

    /// The events it wants.
    pub fn events(&self) -> &[EventKind] {
        self.on.as_deref().unwrap_or(&EventKind::DEFAULT)
    }

    /// Whether it wants `kind` about account `name` (`login_needed` is an `error`, so a
    /// channel that wants errors hears it too).
    pub fn wants(&self, kind: EventKind, name: &str) -> bool {
        let events = self.events();
        self.account.as_deref().is_none_or(|a| a == name)
            && (events.contains(&kind)
                || (kind == EventKind::LoginNeeded && events.contains(&EventKind::Error)))
    }

    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.timeout_secs
                .unwrap_or(DEFAULT_ALERT_TIMEOUT_SECS)
                .max(1),
        )
    }
}

fn invalid(id: u32, why: &str) -> AppError {
    AppError::local(
        format!("alert channel {id} in config.toml is not valid"),
        why.to_string(),
        "correct [[alerts.channels]] in config.toml, or remove it with `mailroom alerts remove ID` and set it again",
    )
    .with_code(Code::ConfigInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_one_kind_each_with_default_events() {
        let a: AlertsConfig = toml::from_str(
            "min_interval_secs = 5\n[[channels]]\nid = 1\ncommand = \"true\"\n\
             [[channels]]\nid = 2\naccount = \"work\"\nmail_to = \"ops@x.test\"\nvia = \"home\"\non = [\"quarantined\", \"error\"]\n",
        )
        .unwrap();
        a.check().unwrap();
        assert_eq!(a.min_interval_secs, 5);
        assert_eq!(a.give_up_secs, 86400, "defaults fill the rest");
        let c1 = a.channel(1).unwrap();
        assert_eq!(c1.kind().unwrap(), ChannelKind::Command("true"));
        assert_eq!(c1.events(), EventKind::DEFAULT);
        assert!(c1.wants(EventKind::Disconnected, "any"));
        assert!(!c1.wants(EventKind::Degraded, "any"));
        assert!(c1.wants(EventKind::LoginNeeded, "any"), "an error");
        let c2 = a.channel(2).unwrap();
        assert!(c2.wants(EventKind::Quarantined, "work"));
        assert!(!c2.wants(EventKind::Quarantined, "home"), "another account");
        assert!(!c2.wants(EventKind::Recovered, "work"));

        let two: AlertsConfig =
            toml::from_str("[[channels]]\nid = 1\ncommand = \"x\"\nwebhook = \"https://h\"\n")
                .unwrap();
        assert!(two.check().unwrap_err().detail.contains("more than one"));
        let none: AlertsConfig = toml::from_str("[[channels]]\nid = 1\n").unwrap();
        assert!(none.check().is_err());
        let dup: AlertsConfig = toml::from_str(
            "[[channels]]\nid = 1\ncommand = \"x\"\n[[channels]]\nid = 1\ncommand = \"y\"\n",
        )
        .unwrap();
        assert!(dup.check().unwrap_err().detail.contains("twice"));
        let via: AlertsConfig =
            toml::from_str("[[channels]]\nid = 1\ncommand = \"x\"\nvia = \"w\"\n").unwrap();
        assert!(via.check().is_err());
        assert!(
            toml::from_str::<AlertsConfig>(
                "[[channels]]\nid = 1\ncommand = \"x\"\non = [\"bogus\"]\n"
            )
            .is_err()
        );
        assert!(toml::from_str::<AlertsConfig>("min_intervall_secs = 1\n").is_err());
    }

    #[test]
    fn event_lists_parse_with_all_and_tell_the_values() {
        assert_eq!(
            EventKind::parse_list("error, Disconnected,error").unwrap(),
            [EventKind::Error, EventKind::Disconnected]
        );
        assert_eq!(EventKind::parse_list("all").unwrap().len(), 9);
        assert_eq!(
            EventKind::parse_list("outbox-failed").unwrap(),
            [EventKind::OutboxFailed]
        );
        let e = EventKind::parse_list("error,nope").unwrap_err();
        assert!(e.fix.contains("login_needed"), "{e}");
        assert!(EventKind::parse_list(" , ").is_err());
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()).unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }
}
