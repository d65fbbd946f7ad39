//! Accounts at a glance: state, last sync, counts, outbox, health, last error with its fix.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Row, Table, Wrap};

use super::{draw_error, error_lines, frame, human_bytes, kv, safe, short_time};
use crate::ops::status::{AccountState, AccountStatus};
use crate::tui::app::{App, CheckRun, step_mark};
use crate::tui::theme::Theme;

pub fn state_role(s: AccountState) -> &'static str {
    match s {
        AccountState::Idle => "state.ok",
        AccountState::Syncing => "state.busy",
        AccountState::Pending => "state.warn",
        AccountState::Degraded | AccountState::Disconnected => "state.warn",
        AccountState::Error => "state.error",
        AccountState::Disabled => "state.off",
    }
}

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    if let Some(e) = &app.dashboard.error {
        draw_error(f, area, app, "Dashboard", e);
        return;
    }
    let Some(status) = &app.dashboard.status else {
        super::draw_empty(f, area, app, "Dashboard", "reading the database…");
        return;
    };
    if status.accounts.is_empty() {
        let key = app.keymap.key_for(
            crate::tui::action::PaneId::Dashboard,
            &crate::tui::action::Action::NewAccount,
        );
        super::draw_empty(
            f,
            area,
            app,
            "Dashboard",
            &format!("No accounts yet. Press {key} to add one (or run `mailroom account add`)."),
        );
        return;
    }
    let rows_h = (status.accounts.len() as u16 + 3)
        .min(area.height / 2)
        .max(4);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(rows_h), Constraint::Min(3)]).areas(area);
    // Wide screens also show each account's address.
    let wide = area.width >= 120;
    let (messages, outbox, msg_w, out_w) = columns(status, wide);
    let rows: Vec<Row> = status
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut state = vec![Span::styled(
                a.state.as_str(),
                theme.style(state_role(a.state)),
            )];
            if a.insecure {
                state.push(Span::raw(" "));
                state.push(Span::styled("INSECURE", theme.style("badge.insecure")));
            }
            let base = if i == app.dashboard.selected {
                theme.style("list.selected")
            } else {
                Style::default()
            };
            let mut cells = vec![Line::from(safe(&a.name))];
            if wide {
                cells.push(Line::from(safe(&a.email)));
            }
            cells.extend([
                Line::from(state),
                Line::from(if wide {
                    short_time(&a.last_success_at)
                } else {
                    // Narrow: the month and day are enough next to the time.
                    short_time(&a.last_success_at)
                        .get(5..)
                        .unwrap_or("")
                        .to_string()
                }),
                Line::from(messages[i].clone()),
                Line::from(a.unmatched.to_string()),
                Line::from(outbox[i].clone()),
            ]);
            Row::new(cells).style(base)
        })
        .collect();
    let mut widths = vec![Constraint::Min(8)];
    let mut header = vec!["Account"];
    if wide {
        widths[0] = Constraint::Length(16);
        widths.push(Constraint::Min(10));
        header.push("Email");
    }
    widths.extend([
        Constraint::Length(14),
        Constraint::Length(if wide { 16 } else { 11 }),
        Constraint::Length(msg_w),
        Constraint::Length(9),
        Constraint::Length(out_w),
    ]);
    header.extend(["State", "Last sync", "Messages", "Unmatched", "Outbox"]);
    let t = Table::new(rows, widths)
        .header(Row::new(header).style(theme.style("list.header")))
        .block(frame(
            theme,
            format!(
                "Accounts — overall {}{}",
                status.overall,
                alerts_note(status)
            ),
            true,
        ));
    f.render_widget(t, top);
    if let Some(a) = status.accounts.get(app.dashboard.selected) {
        draw_detail(f, bottom, app, a);
    }
}

/// The Messages and Outbox cells and their widths: columns are as wide as what they hold
/// (100000 messages fit; so does a long outbox).
fn columns(
    status: &crate::ops::status::Status,
    wide: bool,
) -> (Vec<String>, Vec<String>, u16, u16) {
    let messages: Vec<String> = status
        .accounts
        .iter()
        .map(|a| format!("{} ({} new)", a.counts.messages, a.counts.unread))
        .collect();
    let outbox: Vec<String> = status
        .accounts
        .iter()
        .map(|a| {
            if wide {
                outbox_words(a)
            } else {
                outbox_short(a)
            }
        })
        .collect();
    let width_of = |texts: &[String], header: &str| {
        texts
            .iter()
            .map(|t| Line::from(t.as_str()).width())
            .chain([header.len()])
            .max()
            .unwrap_or(0) as u16
    };
    let (msg_w, out_w) = (width_of(&messages, "Messages"), width_of(&outbox, "Outbox"));
    (messages, outbox, msg_w, out_w)
}

/// Alerts that did not get out, on the dashboard's title (`mailroom alerts list` has more).
fn alerts_note(status: &crate::ops::status::Status) -> String {
    match status.alerts.undelivered {
        0 => String::new(),
        n => format!(" — {n} alert(s) NOT DELIVERED: `mailroom alerts list`"),
    }
}

fn draw_detail(f: &mut Frame<'_>, area: Rect, app: &App, a: &AccountStatus) {
    let theme = &app.theme;
    let block = frame(theme, safe(&a.name), false);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let gauge_h = u16::from(a.progress.is_some());
    let [g, text] =
        Layout::vertical([Constraint::Length(gauge_h), Constraint::Min(1)]).areas(inner);
    if let Some(p) = &a.progress {
        let ratio = if p.total > 0 {
            (p.done as f64 / p.total as f64).clamp(0.0, 1.0)
        } else {
            0.0
        };
        f.render_widget(
            Gauge::default()
                .gauge_style(theme.style("gauge"))
                .ratio(ratio)
                .label(format!("{} {}/{}", safe(&p.folder), p.done, p.total)),
            g,
        );
    }
    let mut lines = vec![kv(theme, "email", safe(&a.email))];
    lines.push(kv(
        theme,
        "outbox",
        format!("{} · {} unmatched sender(s)", outbox_words(a), a.unmatched),
    ));
    let h = &a.health;
    lines.push(kv(
        theme,
        "health",
        format!(
            "success {}  last run {}  {} synced  {}",
            h.success_rate
                .map(|r| format!("{:.0}%", r * 100.0))
                .unwrap_or_else(|| "–".into()),
            h.last_duration_ms
                .map(|d| format!("{d} ms"))
                .unwrap_or_else(|| "–".into()),
            h.messages,
            human_bytes(h.bytes),
        ),
    ));
    if let Some(e) = &a.last_error {
        lines.push(kv(
            theme,
            "error",
            format!("{} {}", short_time(&Some(e.at.clone())), safe(&e.what)),
        ));
        lines.push(Line::from(Span::styled(
            format!("{:<10} {}", "fix", safe(&e.fix)),
            theme.style("fix"),
        )));
        if e.fix.contains("mailroom account login") {
            let key = app.keymap.key_for(
                crate::tui::action::PaneId::Dashboard,
                &crate::tui::action::Action::LoginAccount,
            );
            lines.push(Line::from(Span::styled(
                format!("{:<10} press {key} to sign in from here", ""),
                theme.style("form.hint"),
            )));
        }
    }
    if let Some(l) = app.dashboard.login.as_ref().filter(|l| l.name == a.name) {
        lines.push(Line::from(""));
        lines.extend(login_lines(theme, l));
    }
    // The test of this account (not of the one selected before).
    if let Some(run) = &app.dashboard.run
        && run.account.as_deref() == Some(a.name.as_str())
    {
        lines.push(Line::from(""));
        lines.extend(check_lines(theme, run));
    }
    // A small screen scrolls to the newest lines (the test's latest step stays in view).
    let scroll = super::scroll_to_end(&lines, text.width, text.height);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        text,
    );
}

/// The outbox in a narrow column: what needs the operator most, `+` when there is more.
fn outbox_short(a: &AccountStatus) -> String {
    let o = &a.outbox;
    let all = [
        (o.uncertain, "uncertain"),
        (o.queued, "queued"),
        (o.copy_pending, "copying"),
    ];
    let mut some = all.iter().filter(|(n, _)| *n > 0);
    match some.next() {
        None => "empty".into(),
        Some((n, w)) => format!("{n} {w}{}", if some.next().is_some() { "+" } else { "" }),
    }
}

/// The outbox of an account in words: what waits, what is uncertain, what is being copied.
fn outbox_words(a: &AccountStatus) -> String {
    let o = &a.outbox;
    let parts: Vec<String> = [
        (o.queued, "queued"),
        (o.uncertain, "uncertain"),
        (o.copy_pending, "copying"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, w)| format!("{n} {w}"))
    .collect();
    if parts.is_empty() {
        "empty".into()
    } else {
        parts.join(", ")
    }
}

/// An OAuth2 sign-in: what to do, then how it ended.
pub fn login_lines(theme: &Theme, l: &crate::tui::app::LoginRun) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(Span::styled(
        format!("Sign in {}", safe(&l.name)),
        theme.style("list.header"),
    ))];
    for t in &l.lines {
        lines.push(Line::from(Span::styled(safe(t), theme.style("base"))));
    }
    match &l.done {
        None => lines.push(Line::from(Span::styled(
            "…       waiting for the sign-in",
            theme.style("step.running"),
        ))),
        Some(Ok(t)) => lines.push(Line::from(Span::styled(safe(t), theme.style("state.ok")))),
        Some(Err(e)) => lines.extend(error_lines(theme, e)),
    }
    lines
}

/// The live steps of a connection test (shared with the setup form).
pub fn check_lines(theme: &Theme, run: &CheckRun) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(Span::styled(
        run.title.clone(),
        theme.style("list.header"),
    ))];
    for s in &run.steps {
        let (mark, role) = step_mark(s.status);
        lines.push(Line::from(vec![
            Span::styled(format!("{mark:<7} "), theme.style(role)),
            Span::styled(format!("{:<12} ", s.id), theme.style("form.label")),
            Span::styled(safe(&s.detail), theme.style("base")),
        ]));
        if let Some(fix) = &s.fix {
            lines.push(Line::from(Span::styled(
                format!("        fix: {}", safe(fix)),
                theme.style("fix"),
            )));
        }
    }
    match run.done {
        None => {
            let next = crate::ops::accounts::STEP_IDS
                .get(run.steps.len())
                .copied()
                .unwrap_or("");
            lines.push(Line::from(Span::styled(
                format!("…       {next}"),
                theme.style("step.running"),
            )));
        }
        Some(true) => {
            // Steps a setting turns off (sent_copy.enabled = false) are skipped, not passed.
            let skipped = run
                .steps
                .iter()
                .filter(|s| s.status == crate::ops::accounts::StepStatus::Skipped)
                .count();
            let passed = run.steps.len() - skipped;
            let text = match skipped {
                0 => format!("all {passed} checks passed"),
                n => format!("all {passed} checks passed, {n} skipped"),
            };
            lines.push(Line::from(Span::styled(text, theme.style("state.ok"))))
        }
        Some(false) => {
            if let Some(e) = &run.error {
                lines.extend(error_lines(theme, e));
            } else {
                lines.push(Line::from(Span::styled(
                    "checks failed",
                    theme.style("state.error"),
                )));
            }
        }
    }
    lines
}
