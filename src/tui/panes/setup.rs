//! The account setup form with provider presets; Test connection streams each step here.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::dashboard::{check_lines, login_lines};
use super::{error_lines, frame, safe};
use crate::tui::action::{Action, PaneId};
use crate::tui::app::{App, F_CLIENT_SECRET, F_PRESET, FieldKind, SETUP_FIELDS, SetupForm};

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let split = if area.width >= 100 { 50 } else { 55 };
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(split), Constraint::Min(20)]).areas(area);
    draw_form(f, left, app);
    draw_side(f, right, app);
}

/// The fields, scrolled so the focused one is in view, and the keys below them.
fn draw_form(f: &mut Frame<'_>, area: Rect, app: &App) {
    let (theme, form) = (&app.theme, &app.setup);
    let title = match &form.edit {
        Some(e) if e.read_only.is_some() => format!("Account {} (read-only)", safe(&e.name)),
        Some(e) => format!("Edit account {}", safe(&e.name)),
        None => "New account".to_string(),
    };
    let block = frame(theme, &title, true);
    let inner = block.inner(area);
    f.render_widget(block, area);
    if form.edit.as_ref().is_some_and(|e| e.original.is_none()) {
        f.render_widget(
            Paragraph::new(Span::styled(
                "reading the account…",
                theme.style("list.empty"),
            )),
            inner,
        );
        return;
    }
    let label_w = 16usize;
    let order = form.order();
    let keys = keys_lines(app, inner.width as usize);
    // The fields scroll so the focused one is always in view (the edit form is long).
    let rows = (inner.height as usize)
        .saturating_sub(1 + keys.len())
        .max(1);
    let at = order.iter().position(|i| *i == form.field).unwrap_or(0);
    let top = at.saturating_sub(rows.saturating_sub(1));
    let mut lines: Vec<Line> = order
        .iter()
        .skip(top)
        .take(rows)
        .map(|&i| {
            let role = if i == form.field {
                "form.input.focused"
            } else {
                "form.input"
            };
            Line::from(vec![
                Span::styled(
                    format!("{:<label_w$}", SETUP_FIELDS[i].0),
                    theme.style("form.label"),
                ),
                Span::styled(safe(&field_value(form, i)), theme.style(role)),
            ])
        })
        .collect();
    let more = if top + rows < order.len() {
        "↓ more"
    } else {
        ""
    };
    lines.push(Line::from(Span::styled(more, theme.style("form.hint"))));
    for k in keys {
        lines.push(Line::from(Span::styled(k, theme.style("form.hint"))));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

/// Field `i` as drawn: a secret as dots, a choice between ‹ ›, the focused text with a cursor.
fn field_value(form: &SetupForm, i: usize) -> String {
    let kind = SETUP_FIELDS[i].1;
    let focused = i == form.field;
    let value = match kind {
        FieldKind::Secret if form.edit.is_some() && form.secret_len(i) == 0 && !focused => {
            match i {
                F_CLIENT_SECRET => "(type a new one to replace)",
                _ => "(stored; type to replace)",
            }
            .to_string()
        }
        FieldKind::Secret => "•".repeat(form.secret_len(i)),
        FieldKind::Preset if i == F_PRESET => form.preset_label().to_string(),
        _ => form.values[i].clone(),
    };
    match kind {
        FieldKind::Text | FieldKind::Secret if focused => format!("{value}▏"),
        FieldKind::Text | FieldKind::Secret => value,
        _ => format!("‹ {value} ›"),
    }
}

/// The form's keys: test, save (not read-only), log in again (a stored OAuth2 account), leave —
/// on as many lines of `width` as they need.
fn keys_lines(app: &App, width: usize) -> Vec<String> {
    let form = &app.setup;
    let key = |a: &Action| app.keymap.key_for(PaneId::Setup, a);
    let mut parts = Vec::new();
    if !form.read_only() {
        parts.push(format!("{} test", key(&Action::TestConnection)));
        parts.push(format!("{} save", key(&Action::SaveAccount)));
        if form.stored_oauth() {
            parts.push(format!("{} log in again", key(&Action::LoginAccount)));
        }
    }
    parts.push("esc leave".into());
    let (mut lines, mut cur) = (Vec::new(), String::new());
    for p in parts {
        if cur.is_empty() {
            cur = p;
        } else if cur.chars().count() + 3 + p.chars().count() <= width {
            cur = format!("{cur} · {p}");
        } else {
            lines.push(std::mem::replace(&mut cur, p));
        }
    }
    lines.push(cur);
    lines
}

/// Beside the form: the provider's hint (always in view), then what saving, a sign-in or the
/// test said — that part scrolls so its newest line stays in view.
fn draw_side(f: &mut Frame<'_>, area: Rect, app: &App) {
    let (theme, form) = (&app.theme, &app.setup);
    let block = frame(theme, "Check", false);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let hint = form.hint().unwrap_or("");
    // The hint keeps at most half the panel (and a blank line after it); the rest is for the
    // steps.
    let hint_h = match hint.is_empty() {
        true => 0,
        false => {
            (super::wrapped_height(hint, inner.width as usize) + 1).min(inner.height as usize / 2)
        }
    } as u16;
    let hint = Line::from(Span::styled(hint.to_string(), theme.style("form.hint")));
    let [top, rest] =
        Layout::vertical([Constraint::Length(hint_h), Constraint::Min(1)]).areas(inner);
    f.render_widget(Paragraph::new(hint).wrap(Wrap { trim: false }), top);
    let side = side_lines(app);
    // A long checklist on a small screen scrolls so its newest step stays in view.
    let scroll = super::scroll_to_end(&side, rest.width, rest.height);
    f.render_widget(
        Paragraph::new(side)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        rest,
    );
}

fn side_lines(app: &App) -> Vec<Line<'static>> {
    let (theme, form) = (&app.theme, &app.setup);
    let mut side: Vec<Line> = Vec::new();
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
    let login = app.dashboard.login.as_ref();
    if let Some(l) = login.filter(|l| form.edit.as_ref().is_some_and(|e| e.name == l.name)) {
        side.extend(login_lines(theme, l));
        side.push(Line::from(""));
    }
    match &form.run {
        Some(run) => side.extend(check_lines(theme, run)),
        None if side.is_empty() => side.push(Line::from(Span::styled(
            match &form.edit {
                Some(e) if e.read_only.is_some() => {
                    "Shared with you: you see the settings; only the owner changes them."
                }
                Some(_) => {
                    "Change what you need (an empty Password keeps the stored one; an empty CA file means none), test, then save."
                }
                None => {
                    "Choose a provider (←/→) or type the servers, then test the connection before saving."
                }
            },
            theme.style("list.empty"),
        ))),
        None => {}
    }
    side
}
