//! Compose: From (account or alias), To, Cc, Bcc, Reply-To, subject, attachments, body; what
//! it answers or forwards, and whether the draft is saved (here, and in the Drafts folder).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{frame, safe};
use crate::ops::compose::DraftKind;
use crate::tui::action::{Action, PaneId};
use crate::tui::app::{App, COMPOSE_FIELDS, F_BODY, F_FROM, from_choices};

/// The pane's title: what the message is, and where its draft is.
fn title(app: &App) -> String {
    let c = &app.compose;
    let what = match (c.kind, c.source) {
        (DraftKind::Reply, Some(id)) => format!("Reply to #{id}"),
        (DraftKind::ReplyAll, Some(id)) => format!("Reply to all of #{id}"),
        (DraftKind::Forward, Some(id)) => format!("Forward #{id}"),
        _ => "New message".into(),
    };
    let saved = match (&c.uploaded, c.draft_id, c.saving || c.dirty) {
        (_, _, true) => " · saving…".to_string(),
        (Some(folder), Some(_), false) => format!(" · draft saved, in {}", safe(folder)),
        (None, Some(_), false) => " · draft saved".to_string(),
        _ => String::new(),
    };
    format!("Compose: {what}{saved}")
}

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let c = &app.compose;
    let block = frame(theme, title(app), true);
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
    for (i, label) in COMPOSE_FIELDS.iter().enumerate().take(F_BODY) {
        let focused = c.field == i;
        let value = if i == F_FROM {
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
    let mut text: Vec<Line> = c.values[F_BODY]
        .split('\n')
        .map(|l| {
            Line::from(Span::styled(
                crate::mail::sanitize::clean_line(l),
                theme.style("base"),
            ))
        })
        .collect();
    if c.field == F_BODY
        && let Some(last) = text.last_mut()
    {
        last.spans.push(Span::raw("▏"));
    }
    let body_title = match c.kind {
        DraftKind::Reply | DraftKind::ReplyAll => {
            "Body (the original is quoted under it when sent)"
        }
        DraftKind::Forward => "Body (the original's text and attachments go along)",
        DraftKind::New => "Body",
    };
    f.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(frame(
            theme,
            body_title,
            c.field == F_BODY,
        )),
        body,
    );
    f.render_widget(Paragraph::new(hint_line(app)), hint);
}

/// The keys, or the completions for what is being typed.
fn hint_line(app: &App) -> Line<'static> {
    let theme = &app.theme;
    let c = &app.compose;
    let k = |a: Action| app.keymap.key_for(PaneId::Compose, &a);
    if c.suggestions.is_empty() {
        return Line::from(Span::styled(
            format!(
                "tab next field · {} send · {} $EDITOR · {} save draft · {} drafts · {} discard · esc leave",
                k(Action::Send),
                k(Action::Editor),
                k(Action::SaveDraft),
                k(Action::OpenDrafts),
                k(Action::DiscardDraft),
            ),
            theme.style("form.hint"),
        ));
    }
    let mut spans = vec![Span::styled(
        format!("{} → ", k(Action::Complete)),
        theme.style("help.key"),
    )];
    for (i, (label, value)) in c.suggestions.iter().enumerate() {
        let role = if i == 0 {
            "form.input.focused"
        } else {
            "form.hint"
        };
        let text = if label.is_empty() {
            safe(value)
        } else {
            format!("{} ({})", safe(value), safe(label))
        };
        spans.push(Span::styled(text, theme.style(role)));
        spans.push(Span::raw("  "));
    }
    Line::from(spans)
}
