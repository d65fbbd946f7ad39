//! The event/error log (level filter, search; each error with its fix) and the quarantine.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{draw_empty, draw_error, frame, opt, paged_table, safe, short_time};
use crate::tui::app::{App, LEVELS};

pub fn level_role(l: &str) -> &'static str {
    match l {
        "error" => "log.error",
        "warn" => "log.warn",
        "debug" => "log.debug",
        _ => "log.info",
    }
}

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let lp = &app.log;
    if lp.trace {
        draw_trace(f, area, app);
        return;
    }
    let [bar, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let cursor = if lp.searching { "▏" } else { "" };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(
                if lp.quarantine {
                    " [quarantine] "
                } else {
                    " [events] "
                },
                theme.style("tabs.active"),
            ),
            Span::styled(
                format!(" level ≥ {} (l) ", LEVELS[lp.level]),
                theme.style("form.label"),
            ),
            Span::styled(" / search: ", theme.style("form.label")),
            Span::styled(
                format!("{}{cursor}", safe(&lp.search)),
                theme.style(if lp.searching {
                    "form.input.focused"
                } else {
                    "form.input"
                }),
            ),
        ])),
        bar,
    );
    if lp.quarantine {
        draw_quarantine(f, body, app);
        return;
    }
    let ev = &lp.events;
    if let Some(e) = &ev.error {
        draw_error(f, body, app, "Log", e);
        return;
    }
    if ev.total == 0 {
        draw_empty(
            f,
            body,
            app,
            "Log",
            if ev.loaded {
                "No events at this level."
            } else {
                "reading…"
            },
        );
        return;
    }
    let [list, detail] = Layout::vertical([Constraint::Min(4), Constraint::Length(7)]).areas(body);
    let names = &app.accounts;
    paged_table(
        f,
        list,
        app,
        "Log (newest first)".into(),
        true,
        ev,
        &["Time", "Level", "Account", "What"],
        &[
            Constraint::Length(16),
            Constraint::Length(5),
            Constraint::Length(10),
            Constraint::Min(10),
        ],
        |e| {
            let acct = e
                .account_id
                .as_ref()
                .and_then(|id| names.iter().find(|a| &a.id == id))
                .map(|a| safe(&a.name))
                .unwrap_or_else(|| "-".into());
            (
                vec![
                    Span::raw(short_time(&Some(e.at.clone()))),
                    Span::raw(safe(&e.level)),
                    Span::raw(acct),
                    Span::raw(safe(&e.what)),
                ],
                theme.style(level_role(&e.level)),
            )
        },
    );
    let mut lines = Vec::new();
    if let Some(e) = ev.current() {
        lines.push(Line::from(Span::styled(
            safe(&e.what),
            theme.style(level_role(&e.level)),
        )));
        // The fix first: it is what the operator acts on; the detail may wrap.
        if let Some(fx) = &e.fix {
            lines.push(Line::from(Span::styled(
                format!("fix: {}", safe(fx)),
                theme.style("fix"),
            )));
        }
        if let Some(d) = &e.detail {
            lines.push(Line::from(safe(d)));
        }
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(frame(theme, "Event", false)),
        detail,
    );
}

fn draw_quarantine(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let q = &app.log.quar;
    if let Some(e) = &q.error {
        draw_error(f, area, app, "Quarantine", e);
        return;
    }
    if q.total == 0 {
        draw_empty(
            f,
            area,
            app,
            "Quarantine",
            if q.loaded {
                "No quarantined messages."
            } else {
                "reading…"
            },
        );
        return;
    }
    paged_table(
        f,
        area,
        app,
        "Quarantine (r retry · x skip · w save .eml)".into(),
        true,
        q,
        &["#", "When", "Account", "Folder", "UID", "State", "Error"],
        &[
            Constraint::Length(5),
            Constraint::Length(16),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Min(10),
        ],
        |r| {
            (
                vec![
                    Span::raw(r.id.to_string()),
                    Span::raw(short_time(&Some(r.created_at.clone()))),
                    Span::raw(super::triage::account_name(
                        app,
                        &Some(r.account_id.clone()),
                    )),
                    Span::raw(opt(&r.folder)),
                    Span::raw(r.uid.map(|u| u.to_string()).unwrap_or_default()),
                    Span::raw(r.state.as_str()),
                    Span::raw(safe(&r.error)),
                ],
                theme.style("base"),
            )
        },
    );
}

/// The protocol trace: which account and whether it is traced, then its lines, newest first.
fn draw_trace(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let lp = &app.log;
    let [bar, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let (who, state) = match (lp.trace_account, app.trace_account()) {
        (Some(_), Some(s)) => (
            safe(&s.account),
            match (s.enabled, s.literals) {
                (true, true) => "tracing + literals",
                (true, false) => "tracing",
                _ => "off",
            },
        ),
        (None, Some(s)) => (
            "every account".to_string(),
            if s.enabled {
                "t: first account on/off"
            } else {
                "off (t: first account on)"
            },
        ),
        _ => ("no account".into(), "off"),
    };
    let level = if lp.level >= 3 { "debug" } else { "info" };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" [protocol trace] ", theme.style("tabs.active")),
            Span::styled(format!(" {who} (a) · "), theme.style("form.label")),
            Span::styled(
                state.to_string(),
                theme.style(if state.starts_with("tracing") {
                    "step.ok"
                } else {
                    "list.dim"
                }),
            ),
            Span::styled(
                format!(" · level {level} (l) · t on/off · E export "),
                theme.style("form.label"),
            ),
        ])),
        bar,
    );
    let tr = &lp.traces;
    if let Some(e) = &tr.error {
        draw_error(f, body, app, "Protocol trace", e);
        return;
    }
    if tr.total == 0 {
        let text = if !tr.loaded {
            "reading…"
        } else {
            "No trace lines. Press t to trace the account: every process that talks to its servers (the daemon too) writes its IMAP and SMTP lines here within a second, passwords and tokens redacted."
        };
        draw_empty(f, body, app, "Protocol trace", text);
        return;
    }
    let many = lp.trace_account.is_none();
    let mut widths = vec![Constraint::Length(8)];
    let mut header = vec!["Time"];
    if many {
        widths.push(Constraint::Length(10));
        header.push("Account");
    }
    widths.extend([Constraint::Length(6), Constraint::Min(10)]);
    header.extend(["Proto", "Line"]);
    paged_table(
        f,
        body,
        app,
        "Protocol trace (newest first)".into(),
        true,
        tr,
        &header,
        &widths,
        |e| {
            let time = e.at.get(11..19).unwrap_or(&e.at).to_string();
            let mut cells = vec![Span::raw(time)];
            if many {
                cells.push(Span::raw(safe(&e.account)));
            }
            cells.push(Span::raw(format!("{} {}", e.proto, e.dir)));
            cells.push(Span::raw(safe(&e.line)));
            let role = match (e.dir.as_str(), e.level.as_str()) {
                (_, "debug") => "log.debug",
                ("C", _) => "log.info",
                _ => "base",
            };
            (cells, theme.style(role))
        },
    );
}
