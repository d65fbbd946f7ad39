//! Unmatched mail from unknown senders, newest first, with a preview of the selected one.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;

use super::{draw_empty, draw_error, opt, paged_table, safe, short_time};
use crate::ops::triage::MessageSummary;
use crate::tui::app::App;
use crate::tui::theme::Theme;

/// The name of the account a row is in (its id when not configured any more).
pub fn account_name(app: &App, id: &Option<String>) -> String {
    let Some(id) = id else { return String::new() };
    let first = id.split(',').next().unwrap_or(id);
    app.accounts
        .iter()
        .find(|a| a.id == first)
        .map(|a| safe(&a.name))
        .unwrap_or_else(|| safe(first))
}

/// A triage row: date, account, sender, subject, marks.
fn triage_cells(app: &App, m: &MessageSummary) -> (Vec<Span<'static>>, ratatui::style::Style) {
    let (mut cells, style) = message_cells(&app.theme, m);
    cells.insert(1, Span::raw(account_name(app, &m.account_id)));
    (cells, style)
}

/// A timeline row: date, sender, subject, why it matched, marks.
pub fn timeline_cells(
    theme: &Theme,
    m: &MessageSummary,
) -> (Vec<Span<'static>>, ratatui::style::Style) {
    let (mut cells, style) = message_cells(theme, m);
    cells.insert(3, Span::raw(opt(&m.why)));
    (cells, style)
}

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

pub const WIDTHS: [Constraint; 5] = [
    Constraint::Length(16),
    Constraint::Length(10),
    Constraint::Percentage(26),
    Constraint::Min(10),
    Constraint::Length(2),
];

pub const TIMELINE_WIDTHS: [Constraint; 5] = [
    Constraint::Length(16),
    Constraint::Percentage(24),
    Constraint::Min(10),
    Constraint::Percentage(24),
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
        &["Date", "Account", "From", "Subject", ""],
        &WIDTHS,
        |m| triage_cells(app, m),
    );
    super::message::draw_detail(f, b, app, &app.preview, "Preview", false);
}
