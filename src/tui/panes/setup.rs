//! The account setup form with provider presets; Test connection streams each step here.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::dashboard::check_lines;
use super::{error_lines, frame, safe};
use crate::tui::action::{Action, PaneId};
use crate::tui::app::{App, F_PRESET, FieldKind, SETUP_FIELDS};

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let form = &app.setup;
    let split = if area.width >= 100 { 50 } else { 55 };
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(split), Constraint::Min(20)]).areas(area);
    let title = match &form.edit {
        Some(e) => format!("Edit account {}", safe(&e.name)),
        None => "New account".to_string(),
    };
    let block = frame(theme, &title, true);
    let inner = block.inner(left);
    f.render_widget(block, left);
    if form.edit.as_ref().is_some_and(|e| e.original.is_none()) {
        f.render_widget(
            Paragraph::new(Span::styled(
                "reading the account…",
                theme.style("list.empty"),
            )),
            inner,
        );
    }
    let label_w = 16usize;
    let mut lines = Vec::new();
    let order = form.order();
    // The fields scroll so the focused one is always in view (the edit form is long).
    let rows = (inner.height as usize).saturating_sub(2).max(1);
    let at = order.iter().position(|i| *i == form.field).unwrap_or(0);
    let top = at.saturating_sub(rows.saturating_sub(1));
    for &i in order.iter().skip(top).take(rows) {
        let (label, kind) = &SETUP_FIELDS[i];
        let focused = i == form.field;
        let value = match kind {
            FieldKind::Secret if form.edit.is_some() && form.password_len() == 0 && !focused => {
                "(stored; type to replace)".to_string()
            }
            FieldKind::Secret => "•".repeat(form.password_len()),
            FieldKind::Preset if i == F_PRESET => form.preset_label().to_string(),
            FieldKind::Preset | FieldKind::Security | FieldKind::Toggle => form.values[i].clone(),
            FieldKind::Text => form.values[i].clone(),
        };
        let value = match kind {
            FieldKind::Preset | FieldKind::Security | FieldKind::Toggle => format!("‹ {value} ›"),
            _ if focused => format!("{value}▏"),
            _ => value,
        };
        let role = if focused {
            "form.input.focused"
        } else {
            "form.input"
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{label:<label_w$}"), theme.style("form.label")),
            Span::styled(safe(&value), theme.style(role)),
        ]));
    }
    let test = app.keymap.key_for(PaneId::Setup, &Action::TestConnection);
    let save = app.keymap.key_for(PaneId::Setup, &Action::SaveAccount);
    lines.push(Line::from(""));
    let more = if top + rows < order.len() {
        "↓ more · "
    } else {
        ""
    };
    lines.push(Line::from(Span::styled(
        format!("{more}{test} test · {save} save · esc leave"),
        theme.style("form.hint"),
    )));
    if form.edit.as_ref().is_none_or(|e| e.original.is_some()) {
        f.render_widget(Paragraph::new(lines), inner);
    }

    let mut side: Vec<Line> = Vec::new();
    if let Some(h) = form.hint() {
        side.push(Line::from(Span::styled(
            h.to_string(),
            theme.style("form.hint"),
        )));
        side.push(Line::from(""));
    }
    if form.saving.is_some() {
        side.push(Line::from(Span::styled(
            "saving…",
            theme.style("step.running"),
        )));
    }
    if let Some(Err(e)) = &form.message {
        side.extend(error_lines(theme, e));
        side.push(Line::from(""));
    }
    match &form.run {
        Some(run) => side.extend(check_lines(theme, run)),
        None if side.is_empty() => side.push(Line::from(Span::styled(
            if form.edit.is_some() {
                "Change what you need (an empty Password keeps the stored one), test, then save."
            } else {
                "Choose a provider (←/→) or type the servers, then test the connection before saving."
            },
            theme.style("list.empty"),
        ))),
        None => {}
    }
    // A long checklist on a small screen scrolls so its newest step stays in view.
    let scroll = super::scroll_to_end(
        &side,
        right.width.saturating_sub(2),
        right.height.saturating_sub(2),
    );
    f.render_widget(
        Paragraph::new(side)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0))
            .block(frame(theme, "Check", false)),
        right,
    );
}
