//! Compose: from (account or alias), to, cc, subject, attachments, body.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{frame, safe};
use crate::tui::action::{Action, PaneId};
use crate::tui::app::{App, COMPOSE_FIELDS, from_choices};

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let c = &app.compose;
    let block = frame(theme, "Compose", true);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let heads = COMPOSE_FIELDS.len() as u16 - 1;
    let [head, body, hint] = Layout::vertical([
        Constraint::Length(heads),
        Constraint::Min(2),
        Constraint::Length(1),
    ])
    .areas(inner);
    let choices = from_choices(&app.accounts);
    let mut lines = Vec::new();
    for (i, label) in COMPOSE_FIELDS
        .iter()
        .enumerate()
        .take(COMPOSE_FIELDS.len() - 1)
    {
        let focused = c.field == i;
        let value = if i == 0 {
            let v = choices
                .get(c.from)
                .cloned()
                .unwrap_or_else(|| "(no account: add one in Setup)".into());
            format!("‹ {} ›", safe(&v))
        } else if focused {
            format!("{}▏", safe(&c.values[i]))
        } else {
            safe(&c.values[i])
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{label:<9}"), theme.style("form.label")),
            Span::styled(
                value,
                theme.style(if focused {
                    "form.input.focused"
                } else {
                    "form.input"
                }),
            ),
        ]));
    }
    f.render_widget(Paragraph::new(lines), head);
    let body_idx = COMPOSE_FIELDS.len() - 1;
    let mut text: Vec<Line> = c.values[body_idx]
        .split('\n')
        .map(|l| {
            Line::from(Span::styled(
                crate::mail::sanitize::clean_line(l),
                theme.style("base"),
            ))
        })
        .collect();
    if c.field == body_idx
        && let Some(last) = text.last_mut()
    {
        last.spans.push(Span::raw("▏"));
    }
    f.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(frame(
            theme,
            "Body",
            c.field == body_idx,
        )),
        body,
    );
    let send = app.keymap.key_for(PaneId::Compose, &Action::Send);
    let ed = app.keymap.key_for(PaneId::Compose, &Action::Editor);
    let hint_line = if c.suggestions.is_empty() {
        Line::from(Span::styled(
            format!("tab next field · {send} send · {ed} $EDITOR · esc leave"),
            theme.style("form.hint"),
        ))
    } else {
        let key = app.keymap.key_for(PaneId::Compose, &Action::Complete);
        let mut spans = vec![Span::styled(format!("{key} → "), theme.style("help.key"))];
        for (i, (name, email)) in c.suggestions.iter().enumerate() {
            let role = if i == 0 {
                "form.input.focused"
            } else {
                "form.hint"
            };
            spans.push(Span::styled(
                format!("{} ({})", safe(email), safe(name)),
                theme.style(role),
            ));
            spans.push(Span::raw("  "));
        }
        Line::from(spans)
    };
    f.render_widget(Paragraph::new(hint_line), hint);
}
