//! Unmatched mail from unknown senders, newest first, with a preview of the selected one.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;

use super::{draw_empty, draw_error, opt, paged_table, short_time};
use crate::ops::triage::MessageSummary;
use crate::tui::app::App;
use crate::tui::theme::Theme;

/// The cells of a message row: date, sender, subject, marks.
pub fn message_cells(
    theme: &Theme,
    m: &MessageSummary,
) -> (Vec<Span<'static>>, ratatui::style::Style) {
    let who = match (&m.from_name, &m.from_addr) {
        (Some(n), _) if !n.trim().is_empty() => opt(&Some(n.clone())),
        (_, a) => opt(a),
    };
    let marks = format!(
        "{}{}",
        if m.has_attachments { "@" } else { " " },
        if m.direction == "out" { "→" } else { " " }
    );
    let role = if m.seen { "list.read" } else { "list.unread" };
    (
        vec![
            Span::raw(short_time(&m.date)),
            Span::raw(who),
            Span::raw(opt(&m.subject)),
            Span::raw(marks),
        ],
        theme.style(role),
    )
}

pub const WIDTHS: [Constraint; 4] = [
    Constraint::Length(16),
    Constraint::Percentage(28),
    Constraint::Min(10),
    Constraint::Length(2),
];

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let list = &app.triage;
    if let Some(e) = &list.error {
        draw_error(f, area, app, "Triage", e);
        return;
    }
    if list.total == 0 {
        let text = if list.loaded {
            "Nothing to triage: every message matches a customer, was paired, blocked or deleted."
        } else {
            "reading…"
        };
        draw_empty(f, area, app, "Triage", text);
        return;
    }
    let (a, b) = if area.width >= 140 {
        let [a, b] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Min(30)]).areas(area);
        (a, b)
    } else {
        let [a, b] = Layout::vertical([Constraint::Percentage(55), Constraint::Min(5)]).areas(area);
        (a, b)
    };
    paged_table(
        f,
        a,
        app,
        "Triage: unknown senders".into(),
        true,
        list,
        &["Date", "From", "Subject", ""],
        &WIDTHS,
        |m| message_cells(&app.theme, m),
    );
    super::message::draw_detail(f, b, app, &app.preview, "Preview", false);
}
