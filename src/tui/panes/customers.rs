//! The customer book with fuzzy search; Enter shows a customer's timeline (in and out).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::triage::{TIMELINE_WIDTHS, timeline_cells};
use super::{draw_empty, draw_error, opt, paged_table, safe};
use crate::tui::app::App;

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let c = &app.customers;
    let [search, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let cursor = if c.searching { "▏" } else { "" };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" / search: ", theme.style("form.label")),
            Span::styled(
                format!("{}{cursor}", safe(&c.query)),
                theme.style(if c.searching {
                    "form.input.focused"
                } else {
                    "form.input"
                }),
            ),
        ])),
        search,
    );
    if let Some(e) = &c.list.error {
        draw_error(f, body, app, "Customers", e);
        return;
    }
    if c.list.total == 0 {
        let text = match (c.list.loaded, c.query.is_empty()) {
            (false, _) => "reading…",
            (true, true) => {
                "No customers yet: `mailroom customers add` or `customers import FILE.csv`."
            }
            (true, false) => "No customer matches the search.",
        };
        draw_empty(f, body, app, "Customers", text);
        return;
    }
    let (list_area, tl_area) = match c.timeline_of {
        Some(_) if body.width >= 140 => {
            let [a, b] =
                Layout::horizontal([Constraint::Percentage(45), Constraint::Min(30)]).areas(body);
            (a, Some(b))
        }
        Some(_) => {
            let [a, b] =
                Layout::vertical([Constraint::Percentage(45), Constraint::Min(5)]).areas(body);
            (a, Some(b))
        }
        None => (body, None),
    };
    paged_table(
        f,
        list_area,
        app,
        "Customers".into(),
        !c.timeline_focus,
        &c.list,
        &["Name", "Company", "Addresses"],
        &[
            Constraint::Percentage(30),
            Constraint::Percentage(25),
            Constraint::Min(10),
        ],
        |r| {
            let addrs = [&r.emails, &r.domains]
                .map(|v| crate::mail::sanitize::clean_line(&v.join(", ")))
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            (
                vec![
                    Span::raw(safe(&r.name)),
                    Span::raw(opt(&r.company)),
                    Span::raw(addrs),
                ],
                theme.style("base"),
            )
        },
    );
    if let Some(tl) = tl_area {
        let t = &c.timeline;
        if let Some(e) = &t.error {
            draw_error(f, tl, app, "Timeline", e);
        } else if t.total == 0 {
            draw_empty(
                f,
                tl,
                app,
                "Timeline",
                if t.loaded {
                    "No mail with this customer yet."
                } else {
                    "reading…"
                },
            );
        } else {
            paged_table(
                f,
                tl,
                app,
                "Timeline".into(),
                c.timeline_focus,
                t,
                &["Date", "From", "Subject", "Why it matched", ""],
                &TIMELINE_WIDTHS,
                |m| timeline_cells(theme, m),
            );
        }
    }
}
