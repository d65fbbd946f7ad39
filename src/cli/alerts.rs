//! `mailroom alerts set|list|remove|test`: who is told when sync or sending goes wrong.

use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::Ctx;
use super::output::{emit, table};
use crate::config::EventKind;
use crate::error::Result;
use crate::mail::sanitize::clean_line;
use crate::ops::alerts::{self, ChannelSpec, ChannelView, Listing, Tested};

#[derive(Debug, Subcommand)]
pub enum AlertsCmd {
    /// Add an alert channel — a command, a mail or a webhook — or change the one that goes to
    /// the same place.
    Set(SetArgs),
    /// The channels, the events each wants, and how its last alert went.
    List,
    /// Remove a channel (its alerts still waiting are cancelled).
    Remove {
        /// The channel's id (`mailroom alerts list`).
        id: u32,
    },
    /// Send a test event through every channel and report each result.
    Test,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("channel").required(true).args(["command", "mail_to", "webhook"])))]
pub struct SetArgs {
    /// Only this account's events (default: every account's).
    #[arg(short = 'a', long, value_name = "NAME")]
    pub account: Option<String>,
    /// Run this (through sh -c) with the event JSON on stdin and MAILROOM_EVENT,
    /// MAILROOM_ACCOUNT, MAILROOM_STATE in its environment.
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// Mail the event to this address (through the system SMTP profile, or --via).
    #[arg(long, value_name = "ADDR")]
    pub mail_to: Option<String>,
    /// Send the mail through this account's SMTP server.
    #[arg(long, value_name = "ACCOUNT", requires = "mail_to")]
    pub via: Option<String>,
    /// The mail's sender (default: the --via account's address, else mailroom@HOST).
    #[arg(long, value_name = "ADDR", requires = "mail_to")]
    pub from: Option<String>,
    /// POST the event JSON to this URL (https; plain http only to 127.0.0.1, ::1, localhost).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// The events it wants, comma-separated, or `all` (default: error, disconnected,
    /// recovered, outbox_failed, outbox_uncertain).
    #[arg(long, value_name = "EVENT,…")]
    pub on: Option<String>,
    /// How long the command or webhook may take (default 30).
    #[arg(long, value_name = "SECS")]
    pub timeout_secs: Option<u64>,
}

pub async fn run(ctx: &Ctx, cmd: AlertsCmd) -> Result<i32> {
    match cmd {
        AlertsCmd::Set(a) => {
            let spec = ChannelSpec {
                account: a.account,
                command: a.command,
                mail_to: a.mail_to,
                via: a.via,
                from: a.from,
                webhook: a.webhook,
                on: a.on,
                timeout_secs: a.timeout_secs,
            };
            let s = ctx.blocking(move |cx| alerts::set(cx, &spec)).await?;
            emit(ctx.json, &s, || {
                let verb = if s.created { "added" } else { "changed" };
                format!(
                    "{verb} alert channel {}\n{}\n  try it: `mailroom alerts test`",
                    s.channel.id,
                    describe(&s.channel)
                )
            });
        }
        AlertsCmd::List => {
            let l = ctx.blocking(alerts::list).await?;
            emit(ctx.json, &l, || listing(&l));
        }
        AlertsCmd::Remove { id } => {
            let c = ctx.blocking(move |cx| alerts::remove(cx, id)).await?;
            emit(ctx.json, &json!({"removed": c}), || {
                format!("removed alert channel {}: {}", c.id, one_line(&c))
            });
        }
        AlertsCmd::Test => {
            let results = alerts::test(ctx).await?;
            let failed = results.iter().any(|r| !r.ok);
            emit(ctx.json, &json!({"results": results}), || tested(&results));
            return Ok(i32::from(failed));
        }
    }
    Ok(0)
}

fn events(c: &ChannelView) -> String {
    let list =
        c.on.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ");
    if c.default_events {
        format!("{list} (default)")
    } else if c.on.len() == EventKind::ALL.len() {
        "all".into()
    } else {
        list
    }
}

fn one_line(c: &ChannelView) -> String {
    let mut s = format!("{} {}", c.kind, c.target);
    if c.kind == "mail" {
        match &c.via {
            Some(v) => s.push_str(&format!(" via {v}")),
            None => s.push_str(" via the system SMTP profile"),
        }
    }
    s
}

fn describe(c: &ChannelView) -> String {
    let mut out = format!("  {}\n", one_line(c));
    out.push_str(&format!(
        "  for {}\n",
        c.account
            .as_deref()
            .map_or("every account".to_string(), |a| format!("account {a}"))
    ));
    out.push_str(&format!("  events: {}", events(c)));
    if let Some(p) = &c.problem {
        out.push_str(&format!("\n  problem: {p}"));
    }
    clean_line_keep_newlines(&out)
}

fn clean_line_keep_newlines(s: &str) -> String {
    s.lines().map(clean_line).collect::<Vec<_>>().join("\n")
}

fn listing(l: &Listing) -> String {
    if l.channels.is_empty() {
        return "no alert channels; add one with `mailroom alerts set --command CMD` (or --mail-to ADDR, --webhook URL)".into();
    }
    let rows: Vec<Vec<String>> = l
        .channels
        .iter()
        .map(|c| {
            let last = match &c.last {
                None => "never".to_string(),
                Some(d) => format!(
                    "{} {} ({})",
                    d.state,
                    d.at,
                    d.result.as_deref().unwrap_or("")
                ),
            };
            vec![
                c.id.to_string(),
                c.account.clone().unwrap_or_else(|| "(every)".into()),
                one_line(c),
                events(c),
                last,
            ]
        })
        .collect();
    let mut out = format!(
        "at most one alert per account every {} s (alerts.min_interval_secs), then a digest\n",
        l.min_interval_secs
    );
    out.push_str(&table(
        &["ID", "ACCOUNT", "CHANNEL", "EVENTS", "LAST"],
        &rows,
    ));
    for c in &l.channels {
        if c.undelivered > 0 {
            out.push_str(&format!(
                "channel {}: {} alert(s) not delivered",
                c.id, c.undelivered
            ));
            if let Some(d) = &c.last
                && let Some(e) = &d.error
            {
                out.push_str(&format!(": {}", clean_line(e)));
                if let Some(fix) = &d.fix {
                    out.push_str(&format!("\n  fix: {}", clean_line(fix)));
                }
            }
            out.push('\n');
        }
        if let Some(p) = &c.problem {
            out.push_str(&format!("channel {}: {}\n", c.id, clean_line(p)));
        }
    }
    out
}

fn tested(results: &[Tested]) -> String {
    let mut out = String::new();
    for r in results {
        let head = format!("channel {} ({} {})", r.channel, r.kind, r.target);
        if r.ok {
            out.push_str(&format!(
                "{}: delivered ({})\n",
                clean_line(&head),
                clean_line(&r.result)
            ));
        } else {
            out.push_str(&format!(
                "{}: NOT delivered ({})\n",
                clean_line(&head),
                clean_line(&r.result)
            ));
            if let Some(e) = &r.error {
                let s = |k: &str| clean_line(e[k].as_str().unwrap_or(""));
                out.push_str(&format!("  error: {}\n", s("summary")));
                if !s("detail").is_empty() {
                    out.push_str(&format!("  detail: {}\n", s("detail")));
                }
                out.push_str(&format!("  fix: {}\n  code: {}\n", s("fix"), s("code")));
            }
        }
        if let Some(o) = &r.output {
            out.push_str(&format!("  output: {}\n", clean_line(o)));
        }
    }
    out
}
