//! One file per pane; each only reads `App` and draws. Everything that came from a message, a
//! server or the database passes `clean_line`/`clean` before it becomes a Span.

pub mod compose;
pub mod customers;
pub mod dashboard;
pub mod folders;
pub mod log;
pub mod mail;
pub mod message;
pub mod outbox;
pub mod setup;
pub mod triage;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Wrap};

use super::app::{App, Paged};
use super::theme::Theme;
use crate::error::AppError;
use crate::mail::sanitize::clean_line;

/// A pane's frame; the focused one carries the focus roles.
pub fn frame<'a>(theme: &Theme, title: impl Into<String>, focused: bool) -> Block<'a> {
    let (b, t) = if focused {
        ("pane.border.focused", "pane.title.focused")
    } else {
        ("pane.border", "pane.title")
    };
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style(b))
        .title(Span::styled(format!(" {} ", title.into()), theme.style(t)))
}

/// Text for one cell from outside data: escapes stripped, newlines folded.
pub fn safe(s: &str) -> String {
    clean_line(s)
}

pub fn opt(s: &Option<String>) -> String {
    s.as_deref().map(clean_line).unwrap_or_default()
}

/// `2026-11-25T10:00:00Z` → `2026-11-25 10:00` (fixed width; no clock involved).
/// How far a wrapped paragraph of `lines` must scroll for its last line to be in a `w`×`h`
/// area (a checklist keeps its newest step in view on a small screen).
pub fn scroll_to_end(lines: &[Line<'_>], w: u16, h: u16) -> u16 {
    let w = w.max(1) as usize;
    let height: usize = lines.iter().map(|l| l.width().max(1).div_ceil(w)).sum();
    height.saturating_sub(h as usize).min(u16::MAX as usize) as u16
}

pub fn short_time(s: &Option<String>) -> String {
    match s {
        Some(t) if t.len() >= 16 => format!("{} {}", &t[..10], &t[11..16]),
        Some(t) => safe(t),
        None => String::new(),
    }
}

pub fn human_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

/// An error as the console shows it everywhere: what failed, why, and the fix.
pub fn error_lines(theme: &Theme, e: &AppError) -> Vec<Line<'static>> {
    let mut v = vec![Line::from(Span::styled(
        safe(&e.summary),
        theme.style("state.error"),
    ))];
    if !e.detail.is_empty() {
        v.push(Line::from(Span::styled(
            safe(&e.detail),
            theme.style("base"),
        )));
    }
    if !e.fix.is_empty() {
        v.push(Line::from(Span::styled(
            format!("fix: {}", safe(&e.fix)),
            theme.style("fix"),
        )));
    }
    v
}

pub fn draw_error(f: &mut Frame<'_>, area: Rect, app: &App, title: &str, e: &AppError) {
    let p = Paragraph::new(error_lines(&app.theme, e))
        .block(frame(&app.theme, title, true))
        .wrap(Wrap { trim: true });
    f.render_widget(p, area);
}

pub fn draw_empty(f: &mut Frame<'_>, area: Rect, app: &App, title: &str, text: &str) {
    let p = Paragraph::new(Line::from(Span::styled(
        text.to_string(),
        app.theme.style("list.empty"),
    )))
    .block(frame(&app.theme, title, true))
    .wrap(Wrap { trim: true });
    f.render_widget(p, area);
}

/// First visible row for a selection: whole pages, so drawing needs no remembered scroll.
pub fn window_top(selected: usize, height: usize) -> usize {
    selected.checked_div(height).unwrap_or(0) * height
}

/// Draws the visible window of a paged list as a table. Rows not yet in memory show as
/// "loading…" until the I/O layer answers.
#[allow(clippy::too_many_arguments)]
pub fn paged_table<T>(
    f: &mut Frame<'_>,
    area: Rect,
    app: &App,
    title: String,
    focused: bool,
    list: &Paged<T>,
    header: &[&str],
    widths: &[Constraint],
    row: impl Fn(&T) -> (Vec<Span<'static>>, Style),
) {
    let theme = &app.theme;
    let inner_h = (area.height as usize).saturating_sub(3); // borders + header
    let top = window_top(list.selected, inner_h);
    let mut rows = Vec::new();
    for i in top..(top + inner_h).min(list.total) {
        let (cells, style) = match list.get(i) {
            Some(r) => row(r),
            None => (vec![Span::raw("loading…")], theme.style("list.dim")),
        };
        let style = if i == list.selected && focused {
            style.patch(theme.style("list.selected"))
        } else {
            style
        };
        rows.push(Row::new(cells).style(style));
    }
    let pos = if list.total == 0 {
        String::new()
    } else {
        format!(" {}/{}", list.selected + 1, list.total)
    };
    let t = Table::new(rows, widths.to_vec())
        .header(Row::new(header.to_vec()).style(theme.style("list.header")))
        .column_spacing(1)
        .block(frame(theme, format!("{title}{pos}"), focused));
    f.render_widget(t, area);
}

pub fn kv<'a>(theme: &Theme, k: &str, v: String) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{k:<10} "), theme.style("header.name")),
        Span::styled(v, theme.style("header.value")),
    ])
}

/// How many rows `text` takes word-wrapped at `width` (as Paragraph's wrap breaks it).
pub fn wrapped_height(text: &str, width: usize) -> usize {
    use unicode_width::UnicodeWidthStr;
    let width = width.max(1);
    let (mut rows, mut used) = (1, 0usize);
    for word in text.split(' ') {
        let w = word.width();
        let need = if used == 0 { w } else { used + 1 + w };
        if need <= width {
            used = need;
        } else {
            rows += 1 + w.saturating_sub(1) / width;
            used = match w % width {
                0 if w > 0 => width,
                r => r,
            };
        }
    }
    rows
}
