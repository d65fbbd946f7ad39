//! One message: headers, readable text (search words marked), where it is stored, its customer,
//! its queued changes and their state, and — when its body is not cached — what is happening
//! to it: being fetched, or the server unreachable (with the reason, tried again by itself).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{draw_empty, draw_error, frame, kv, opt, safe, short_time};
use crate::mail::sanitize::clean;
use crate::ops::mailbox::Change;
use crate::ops::messages::{Addr, MessageView};
use crate::tui::action::PaneId;
use crate::tui::app::{App, BodyState, MessagePane};
use crate::tui::theme::Theme;

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

/// The title: the message, and where it stands in the mail pane's list (n/N walk it).
fn title(app: &App, pane: &MessagePane, title: &str, id: i64, focused: bool) -> String {
    if focused && pane.back == Some(PaneId::Mail) {
        let m = &app.mail;
        let total = m.index.total + m.extra_rows();
        if m.current().map(|r| r.id) == Some(id) && total > 0 {
            let what = match m.source.as_ref().map(|s| &s.source) {
                Some(crate::ops::mailbox::Source::Search { .. }) => "hit",
                _ => "message",
            };
            return format!(
                "{title} #{id} — {what} {} of {total} (n/N)",
                m.index.selected + m.sub + 1
            );
        }
    }
    format!("{title} #{id}")
}

pub fn draw_detail(
    f: &mut Frame<'_>,
    area: Rect,
    app: &App,
    pane: &MessagePane,
    title_text: &str,
    focused: bool,
) {
    let theme = &app.theme;
    if let Some(e) = &pane.error {
        draw_error(f, area, app, title_text, e);
        return;
    }
    let Some(d) = &pane.detail else {
        draw_empty(
            f,
            area,
            app,
            title_text,
            if pane.loaded {
                "No message."
            } else {
                "reading…"
            },
        );
        return;
    };
    // A short preview keeps the headers to two lines so the body shows.
    let compact = !focused && area.height < 16;
    let mut lines = if compact {
        compact_headers(theme, d)
    } else {
        headers(theme, d, pane, focused)
    };
    let width = area.width.saturating_sub(2) as usize;
    lines.extend(change_lines(theme, &pane.changes, compact, width));
    lines.push(Line::from(""));
    lines.extend(body_lines(theme, d, pane));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((pane.scroll, 0))
            .block(frame(
                theme,
                title(app, pane, title_text, d.message.id, focused),
                focused,
            )),
        area,
    );
}

/// From and date on one line, the subject on the next.
fn compact_headers<'a>(theme: &Theme, d: &MessageView) -> Vec<Line<'a>> {
    let s = &d.message;
    let from = s.from.as_ref().map(mailbox).unwrap_or_default();
    vec![
        Line::from(vec![
            Span::styled(from, theme.style("header.value")),
            Span::styled(
                format!("  {}", short_time(&s.date)),
                theme.style("list.dim"),
            ),
        ]),
        Line::from(Span::styled(opt(&s.subject), theme.style("header.name"))),
    ]
}

fn headers<'a>(theme: &Theme, d: &MessageView, pane: &MessagePane, focused: bool) -> Vec<Line<'a>> {
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
                .map(|l| {
                    let flags: Vec<&str> = l
                        .flags
                        .iter()
                        .filter_map(|f| match f.as_str() {
                            "\\Seen" => Some("read"),
                            "\\Flagged" => Some("flagged"),
                            "\\Answered" => Some("answered"),
                            _ => None,
                        })
                        .collect();
                    let unread = if flags.contains(&"read") {
                        ""
                    } else {
                        "unread"
                    };
                    let marks: Vec<&str> = std::iter::once(unread)
                        .chain(flags.into_iter().filter(|f| *f != "read"))
                        .filter(|x| !x.is_empty())
                        .collect();
                    safe(&format!(
                        "{}/{} ({})",
                        l.account,
                        l.folder,
                        marks.join(", ")
                    ))
                    .replace(" ()", "")
                })
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
    lines
}

/// The message's latest changes and where they are: queued, failing (why), on the server.
fn change_lines<'a>(
    theme: &Theme,
    changes: &[Change],
    compact: bool,
    width: usize,
) -> Vec<Line<'a>> {
    if compact {
        // One line: the open changes, cut to the width.
        let open: Vec<&Change> = changes.iter().filter(|c| c.state != "pushed").collect();
        let Some(first) = open.first() else {
            return vec![];
        };
        let (text, role) = match first.state {
            "failing" => (
                format!(
                    "⚠ {} failing: {}",
                    safe(&first.what),
                    safe(first.last_error.as_deref().unwrap_or(""))
                ),
                "state.error",
            ),
            _ => (
                format!("⟳ {} queued for the server", safe(&first.what)),
                "state.busy",
            ),
        };
        let more = if open.len() > 1 {
            format!(" (+{})", open.len() - 1)
        } else {
            String::new()
        };
        let text: String = format!("{text}{more}").chars().take(width.max(1)).collect();
        return vec![Line::from(Span::styled(text, theme.style(role)))];
    }
    changes
        .iter()
        .take(4)
        .map(|c| {
            let (text, role) = match c.state {
                "pushed" => (
                    format!("on the server since {}", short_time(&c.pushed_at.clone())),
                    "state.ok",
                ),
                "failing" => (
                    format!(
                        "queued; {} attempt(s) failed: {} — retried with the next sync",
                        c.attempts,
                        safe(c.last_error.as_deref().unwrap_or(""))
                    ),
                    "state.error",
                ),
                _ => (
                    "queued for the server (pushed by the next sync)".to_string(),
                    "state.busy",
                ),
            };
            Line::from(vec![
                Span::styled(format!("{:<10} ", "Change"), theme.style("header.name")),
                Span::styled(format!("{}: ", safe(&c.what)), theme.style("header.value")),
                Span::styled(text, theme.style(role)),
            ])
        })
        .collect()
}

/// The readable text, or what is happening to a body that is not cached.
fn body_lines<'a>(theme: &Theme, d: &MessageView, pane: &MessagePane) -> Vec<Line<'a>> {
    if let Some(body) = &d.text {
        return clean(body)
            .lines()
            .map(|l| marked_line(theme, l, &pane.highlights))
            .collect();
    }
    if d.body_fetched {
        return vec![Line::from(Span::styled(
            "(no readable text)",
            theme.style("list.empty"),
        ))];
    }
    match &pane.body {
        BodyState::Waiting {
            error,
            retry_secs,
            attempt,
        } => {
            let mut v = vec![Line::from(Span::styled(
                format!("The server cannot be reached: {}", safe(&error.summary)),
                theme.style("state.warn"),
            ))];
            if !error.detail.is_empty() {
                v.push(Line::from(Span::styled(
                    safe(&error.detail),
                    theme.style("base"),
                )));
            }
            v.push(Line::from(Span::styled(
                format!(
                    "The headers above are from the cache; the body is not cached yet. It appears by itself when the server is back (tried {attempt} time(s); next try in {retry_secs} s)."
                ),
                theme.style("list.empty"),
            )));
            v
        }
        BodyState::Failed(e) => {
            let mut v = vec![Line::from(Span::styled(
                "The body could not be fetched:",
                theme.style("state.error"),
            ))];
            v.extend(super::error_lines(theme, e));
            v
        }
        BodyState::Fetching => vec![Line::from(Span::styled(
            "fetching the body from the server…",
            theme.style("list.empty"),
        ))],
        BodyState::Idle => vec![Line::from(Span::styled(
            "(body not fetched yet: open the message to fetch it)",
            theme.style("list.empty"),
        ))],
    }
}

/// A text line with the search's words marked (case-insensitive, whole occurrences).
fn marked_line<'a>(theme: &Theme, line: &str, words: &[String]) -> Line<'a> {
    let base: Style = theme.style("base");
    if words.is_empty() {
        return Line::from(Span::styled(line.to_string(), base));
    }
    let lower = line.to_lowercase();
    // Marking by byte positions is safe only when lower-casing kept the lengths.
    if lower.len() != line.len() {
        return Line::from(Span::styled(line.to_string(), base));
    }
    let mut spans = Vec::new();
    let mut at = 0;
    while at < line.len() {
        let next = words
            .iter()
            .filter(|w| !w.is_empty())
            .filter_map(|w| lower[at..].find(w.as_str()).map(|i| (at + i, w.len())))
            .min_by_key(|(i, _)| *i);
        match next {
            Some((i, n)) if line.is_char_boundary(i) && line.is_char_boundary(i + n) => {
                if i > at {
                    spans.push(Span::styled(line[at..i].to_string(), base));
                }
                spans.push(Span::styled(
                    line[i..i + n].to_string(),
                    theme.style("mail.hit"),
                ));
                at = i + n;
            }
            _ => {
                spans.push(Span::styled(line[at..].to_string(), base));
                break;
            }
        }
    }
    Line::from(spans)
}
