//! The durable send queue: each item's recipients, its state in words with the reason and the
//! fix, its attempts and Sent copy, and the keys that apply (retry, cancel; resend and drop of
//! an uncertain item ask first).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{draw_empty, draw_error, frame, opt, paged_table, safe, short_time};
use crate::ops::outbox::OutboxState;
use crate::tui::action::{Action, PaneId};
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
    let detail_h = if area.height >= 20 { 11 } else { 7 };
    let [list, detail] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(detail_h)]).areas(area);
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
    let lines = match o.current() {
        Some(r) => item_lines(app, r),
        None => vec![],
    };
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(frame(theme, "Item", false)),
        detail,
    );
}

/// What a state means for the operator, and the keys that apply to it.
fn state_words(app: &App, s: OutboxState) -> (&'static str, String) {
    let k = |a: Action| app.keymap.key_for(PaneId::Outbox, &a);
    match s {
        OutboxState::Queued => (
            "waiting to be sent (tried again by itself)",
            format!(
                "{} send now · {} cancel",
                k(Action::Retry),
                k(Action::CancelItem)
            ),
        ),
        OutboxState::Sending => ("being handed to the SMTP server", String::new()),
        OutboxState::Uncertain => (
            "the connection ended while the server took it: it may or may not have been delivered",
            format!(
                "{} send again (may arrive twice; asks) · {} drop: assume delivered (asks)",
                k(Action::Resend),
                k(Action::DropItem)
            ),
        ),
        OutboxState::Sent => (
            "accepted by the SMTP server; its Sent copy follows",
            format!("{} store the Sent copy now", k(Action::Retry)),
        ),
        OutboxState::Copied => (
            "sent, and a copy stored in Sent; being verified",
            String::new(),
        ),
        OutboxState::Verified => ("sent, and its Sent copy verified", String::new()),
        OutboxState::Failed => (
            "not sent: the server refused it, or it needs you",
            format!(
                "{} try again · {} cancel",
                k(Action::Retry),
                k(Action::CancelItem)
            ),
        ),
        OutboxState::Cancelled => ("cancelled; never sent", String::new()),
    }
}

/// The selected item: who it goes to, its state in words with the reason and fix, and what
/// can be done about it.
fn item_lines(app: &App, r: &crate::ops::outbox::Item) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let (meaning, keys) = state_words(app, r.state);
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("#{} ", r.id), theme.style("header.name")),
            Span::styled(r.state.to_string(), theme.style(state_role(r.state))),
            Span::styled(format!(": {meaning}"), theme.style("base")),
        ]),
        super::kv(theme, "To", format!("{} (Bcc too)", safe(&r.to.join(", ")))),
    ];
    if let Some(e) = &r.last_error {
        lines.push(Line::from(Span::styled(
            format!("why: {}", safe(&e.what)),
            theme.style("state.error"),
        )));
        if let Some(fx) = &e.fix {
            lines.push(Line::from(Span::styled(
                format!("fix: {}", safe(fx)),
                theme.style("fix"),
            )));
        }
    }
    if !keys.is_empty() {
        lines.push(Line::from(Span::styled(keys, theme.style("help.key"))));
    }
    let mut facts = vec![format!("attempts {}", r.attempts)];
    if let Some(n) = &r.next_attempt_at {
        facts.push(format!("next attempt {}", short_time(&Some(n.clone()))));
    }
    if let Some(c) = r.copy_state {
        facts.push(format!(
            "Sent copy {c}{}",
            r.copy_folder
                .as_deref()
                .map(|f| format!(" in {}", safe(f)))
                .unwrap_or_default()
        ));
    }
    facts.push(format!(
        "from {} via {}, updated {}",
        safe(&r.from),
        safe(&r.account),
        short_time(&Some(r.updated_at.clone()))
    ));
    lines.push(Line::from(Span::styled(
        facts.join(" · "),
        theme.style("list.dim"),
    )));
    lines
}
