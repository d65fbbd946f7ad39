//! The durable send queue: each item's state, copy state, attempts and last error with its fix.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{draw_empty, draw_error, frame, opt, paged_table, safe, short_time};
use crate::ops::outbox::OutboxState;
use crate::tui::app::App;

pub fn state_role(s: OutboxState) -> &'static str {
    match s {
        OutboxState::Verified | OutboxState::Copied | OutboxState::Sent => "state.ok",
        OutboxState::Queued | OutboxState::Sending => "state.busy",
        OutboxState::Uncertain => "state.warn",
        OutboxState::Failed => "state.error",
        OutboxState::Cancelled => "state.off",
    }
}

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let o = &app.outbox;
    if let Some(e) = &o.error {
        draw_error(f, area, app, "Outbox", e);
        return;
    }
    if o.total == 0 {
        draw_empty(
            f,
            area,
            app,
            "Outbox",
            if o.loaded {
                "The outbox is empty."
            } else {
                "reading…"
            },
        );
        return;
    }
    let [list, detail] = Layout::vertical([Constraint::Min(5), Constraint::Length(5)]).areas(area);
    paged_table(
        f,
        list,
        app,
        "Outbox".into(),
        true,
        o,
        &["#", "State", "Copy", "Tries", "To", "Subject"],
        &[
            Constraint::Length(5),
            Constraint::Length(10),
            Constraint::Length(15),
            Constraint::Length(5),
            Constraint::Percentage(30),
            Constraint::Min(10),
        ],
        |r| {
            (
                vec![
                    Span::raw(r.id.to_string()),
                    Span::styled(r.state.to_string(), theme.style(state_role(r.state))),
                    Span::raw(opt(&r.copy_state.map(|c| c.to_string()))),
                    Span::raw(r.attempts.to_string()),
                    Span::raw(safe(&r.to.join(", "))),
                    Span::raw(opt(&r.subject)),
                ],
                theme.style("base"),
            )
        },
    );
    let mut lines = Vec::new();
    if let Some(r) = o.current() {
        lines.push(Line::from(format!(
            "from {}  updated {}",
            safe(&r.from),
            short_time(&Some(r.updated_at.clone()))
        )));
        if let Some(w) = r.last_error.as_ref().map(|e| &e.what) {
            lines.push(Line::from(Span::styled(
                safe(w),
                theme.style("state.error"),
            )));
        }
        if let Some(fx) = r.last_error.as_ref().and_then(|e| e.fix.as_ref()) {
            lines.push(Line::from(Span::styled(
                format!("fix: {}", safe(fx)),
                theme.style("fix"),
            )));
        }
        if let Some(n) = &r.next_attempt_at {
            lines.push(Line::from(format!(
                "next attempt {}",
                short_time(&Some(n.clone()))
            )));
        }
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(frame(theme, "Item", false)),
        detail,
    );
}
