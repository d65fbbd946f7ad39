//! One message: headers, readable text, where it is stored, its customer.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{draw_empty, draw_error, frame, kv, opt, safe, short_time};
use crate::mail::sanitize::clean;
use crate::ops::messages::Addr;
use crate::tui::app::{App, MessagePane};

/// `Name <addr>` (or the bare address), sanitised.
fn mailbox(a: &Addr) -> String {
    match a.name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => format!("{} <{}>", safe(n), safe(&a.address)),
        None => safe(&a.address),
    }
}

/// `Name <addr>, …`, sanitised.
pub fn addresses(list: &[Addr]) -> String {
    list.iter().map(mailbox).collect::<Vec<_>>().join(", ")
}

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    draw_detail(f, area, app, &app.message, "Message", true);
}

pub fn draw_detail(
    f: &mut Frame<'_>,
    area: Rect,
    app: &App,
    pane: &MessagePane,
    title: &str,
    focused: bool,
) {
    let theme = &app.theme;
    if let Some(e) = &pane.error {
        draw_error(f, area, app, title, e);
        return;
    }
    let Some(d) = &pane.detail else {
        draw_empty(
            f,
            area,
            app,
            title,
            if pane.loaded {
                "No message."
            } else {
                "reading…"
            },
        );
        return;
    };
    let s = &d.message;
    let from = s.from.as_ref().map(mailbox).unwrap_or_else(|| opt(&None));
    let mut lines = vec![kv(theme, "From", from), kv(theme, "To", addresses(&s.to))];
    let cc = addresses(&s.cc);
    if !cc.is_empty() {
        lines.push(kv(theme, "Cc", cc));
    }
    lines.push(kv(theme, "Subject", opt(&s.subject)));
    lines.push(kv(theme, "Date", short_time(&s.date)));
    if !s.locations.is_empty() {
        lines.push(kv(
            theme,
            "In",
            s.locations
                .iter()
                .map(|l| safe(&format!("{}/{}", l.account, l.folder)))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    if let Some(c) = &d.customer {
        lines.push(kv(theme, "Customer", safe(c)));
    }
    if !d.attachments.is_empty() {
        for (i, a) in d.attachments.iter().enumerate() {
            let marked = focused && i == pane.attachment;
            let text = format!(
                "{}[{}] {} ({}, {})",
                if marked { "▸" } else { " " },
                a.index,
                a.name
                    .as_deref()
                    .map(safe)
                    .unwrap_or_else(|| "(unnamed)".into()),
                safe(&a.content_type),
                super::human_bytes(a.size as i64)
            );
            let role = if marked {
                "list.selected"
            } else {
                "header.value"
            };
            lines.push(Line::from(vec![
                Span::styled(
                    format!("{:<10} ", if i == 0 { "Attached" } else { "" }),
                    theme.style("header.name"),
                ),
                Span::styled(text, theme.style(role)),
            ]));
        }
    } else if d.has_attachments {
        lines.push(kv(
            theme,
            "Attached",
            "yes (listed once the body is fetched)".into(),
        ));
    }
    lines.push(Line::from(""));
    match &d.text {
        Some(body) => {
            for l in clean(body).lines() {
                lines.push(Line::from(Span::styled(l.to_string(), theme.style("base"))));
            }
        }
        None => lines.push(Line::from(Span::styled(
            match (d.body_fetched, pane.fetching == Some(s.id)) {
                (true, _) => "(no readable text)",
                (false, true) => "fetching the body from the server…",
                (false, false) => "(body not fetched yet: open the message to fetch it)",
            },
            theme.style("list.empty"),
        ))),
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((pane.scroll, 0))
            .block(frame(theme, format!("{title} #{}", s.id), focused)),
        area,
    );
}
