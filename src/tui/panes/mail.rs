//! The mail pane: the account/folder tree with unread counts, the index of the chosen folder
//! (one row per thread, or every message; newest first) or of a search, and a preview of the
//! selected message with its body lines.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};

use super::{draw_empty, draw_error, frame, safe, window_top};
use crate::ops::mailbox::{ChangeState, IndexRow, Source};
use crate::tui::action::{Action, PaneId};
use crate::tui::app::{App, MailFocus, TreeNode};
use crate::tui::theme::Theme;

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let m = &app.mail;
    if let Some(e) = &m.tree_error {
        draw_error(f, area, app, "Mail", e);
        return;
    }
    if m.tree_loaded && m.tree.is_empty() {
        draw_empty(
            f,
            area,
            app,
            "Mail",
            "No accounts yet: add one in Setup (2).",
        );
        return;
    }
    let wide = area.width >= 140;
    let tree_w = if wide { 30 } else { 22 };
    let [tree, rest] =
        Layout::horizontal([Constraint::Length(tree_w), Constraint::Min(20)]).areas(area);
    draw_tree(f, tree, app, wide);
    let (index, preview) = if wide {
        let [a, b] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Min(30)]).areas(rest);
        (a, b)
    } else {
        let [a, b] = Layout::vertical([Constraint::Percentage(55), Constraint::Min(6)]).areas(rest);
        (a, b)
    };
    draw_index(f, index, app);
    if m.source.is_some() && m.index.total > 0 {
        super::message::draw_detail(f, preview, app, &m.preview, "Preview", false);
    } else {
        draw_hints(f, preview, app);
    }
}

/// Accounts and their folders; the selected node (focused) or the shown folder (marked).
fn draw_tree(f: &mut Frame<'_>, area: Rect, app: &App, wide: bool) {
    let theme = &app.theme;
    let m = &app.mail;
    let focused = m.focus == MailFocus::Tree;
    let nodes = m.nodes();
    let h = (area.height as usize).saturating_sub(2);
    let top = window_top(m.node, h);
    let shown = m.source.as_ref().and_then(|s| match s.source {
        Source::Folder { id, .. } => Some(id),
        Source::Search { .. } => None,
    });
    let mut rows = Vec::new();
    for (i, node) in nodes.iter().enumerate().skip(top).take(h) {
        let (name, count, style) = match *node {
            TreeNode::Account(a) => {
                let acct = &m.tree[a];
                let unread: i64 = acct.folders.iter().map(|f| f.unread).sum();
                (
                    format!("▾ {}", safe(&acct.name)),
                    if unread > 0 {
                        unread.to_string()
                    } else {
                        String::new()
                    },
                    theme.style("mail.account"),
                )
            }
            TreeNode::Folder(a, fi) => {
                let fo = &m.tree[a].folders[fi];
                let (depth, leaf) =
                    super::folders::tree_parts_of(&fo.name, fo.delimiter.as_deref());
                let mark = if Some(fo.id) == shown { "▸" } else { " " };
                let style = if !fo.sync_enabled || !fo.selectable {
                    theme.style("list.dim")
                } else if fo.unread > 0 {
                    theme.style("list.unread")
                } else {
                    theme.style("list.read")
                };
                let count = match (fo.unread, wide) {
                    (0, true) if fo.total > 0 => fo.total.to_string(),
                    (0, _) => String::new(),
                    (u, true) => format!("{u}/{}", fo.total),
                    (u, false) => u.to_string(),
                };
                (
                    format!("{mark}{}{}", "  ".repeat(depth + 1), safe(&leaf)),
                    count,
                    style,
                )
            }
        };
        let style = if i == m.node && focused {
            style.patch(theme.style("list.selected"))
        } else {
            style
        };
        rows.push(Row::new(vec![Line::from(name), Line::from(count)]).style(style));
    }
    let w = if wide { 11 } else { 5 };
    let t = Table::new(rows, [Constraint::Min(8), Constraint::Length(w)])
        .column_spacing(1)
        .block(frame(theme, "Folders", focused));
    f.render_widget(t, area);
}

/// What to do before a folder is chosen, or when the index is empty.
fn draw_hints(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let key = |a: Action| app.keymap.key_for(PaneId::Mail, &a);
    let lines = vec![
        Line::from(Span::styled(
            format!(
                "{} open a folder · {} search · {} new message",
                key(Action::Open),
                key(Action::Search),
                key(Action::ComposeNew)
            ),
            theme.style("form.hint"),
        )),
        Line::from(Span::styled(
            "search: words, \"phrases\", from:ann to:bob subject:x since:2026-03-01 before:7d is:unread is:flagged folder:INBOX account:work",
            theme.style("list.dim"),
        )),
    ];
    f.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(frame(theme, "Preview", false)),
        area,
    );
}

fn draw_index(f: &mut Frame<'_>, area: Rect, app: &App) {
    // Columns by the room the index has: full dates from 70 columns, where a hit is from 100.
    let wide = area.width >= 70;
    let m = &app.mail;
    let Some(src) = &m.source else {
        let text = if m.tree_loaded {
            "Choose a folder in the tree (↑↓, enter), or search with /."
        } else {
            "reading…"
        };
        draw_empty(f, area, app, "Messages", text);
        return;
    };
    let title = index_title(app);
    if let Some(e) = &m.index.error {
        draw_error(f, area, app, &title, e);
        return;
    }
    if m.index.total == 0 {
        let text = match (&src.source, m.index.loaded) {
            (_, false) => "reading…".to_string(),
            (Source::Search { query }, true) => format!(
                "Nothing matches {}. Esc goes back to the tree; / searches again.",
                safe(query)
            ),
            (Source::Folder { .. }, true) => not_synced_or_empty(app),
        };
        draw_empty(f, area, app, &title, &text);
        return;
    }
    let theme = &app.theme;
    let focused = m.focus == MailFocus::Index;
    let extra = m.extra_rows();
    let h = (area.height as usize).saturating_sub(3);
    let sel = m.index.selected + m.sub;
    let total = m.index.total + extra;
    let top = window_top(sel, h);
    let search = matches!(src.source, Source::Search { .. });
    let place = search && area.width >= 100;
    let mut rows = Vec::new();
    for d in top..(top + h).min(total) {
        let (row, member) = display_row(app, d, extra);
        let (cells, style) = match row {
            Some(r) => index_cells(theme, r, member, src.outgoing, place, wide),
            None => (
                vec![Span::raw(""), Span::raw("loading…")],
                theme.style("list.dim"),
            ),
        };
        let style = if d == sel && focused {
            style.patch(theme.style("list.selected"))
        } else {
            style
        };
        rows.push(Row::new(cells).style(style));
    }
    let who = if src.outgoing { "To" } else { "From" };
    let mut header = vec!["", "Date", who, "Subject"];
    let mut widths = vec![
        Constraint::Length(3),
        Constraint::Length(if wide { 16 } else { 11 }),
        Constraint::Percentage(if wide { 26 } else { 30 }),
        Constraint::Min(10),
    ];
    if place {
        header.push("In");
        widths.push(Constraint::Length(16));
    }
    let t = Table::new(rows, widths)
        .header(Row::new(header).style(theme.style("list.header")))
        .column_spacing(1)
        .block(
            frame(theme, format!("{title} {}/{}", sel + 1, total), focused)
                .title_bottom(Span::styled(hint_line(app), theme.style("form.hint"))),
        );
    f.render_widget(t, area);
}

/// The index's title: the folder (or search) and how it is shown.
fn index_title(app: &App) -> String {
    let m = &app.mail;
    match &m.source {
        Some(s) => match &s.source {
            Source::Folder { threads: true, .. } => format!("{} · threads", safe(&s.title)),
            Source::Folder { .. } => safe(&s.title),
            Source::Search { .. } => safe(&s.title),
        },
        None => "Messages".into(),
    }
}

/// The keys of the index, short.
fn hint_line(app: &App) -> String {
    let k = |a: Action| app.keymap.key_for(PaneId::Mail, &a);
    format!(
        " {} read {} flag {} move {} del {} archive {} reply {} fwd {} search ",
        k(Action::ToggleRead),
        k(Action::ToggleFlag),
        k(Action::MoveMessage),
        k(Action::DeleteMessage),
        k(Action::Archive),
        k(Action::Reply),
        k(Action::Forward),
        k(Action::Search),
    )
}

/// An empty folder: why (it does not sync) or simply empty.
fn not_synced_or_empty(app: &App) -> String {
    let m = &app.mail;
    let folder = m.source.as_ref().and_then(|s| match s.source {
        Source::Folder { id, .. } => m
            .tree
            .iter()
            .flat_map(|a| a.folders.iter())
            .find(|f| f.id == id),
        Source::Search { .. } => None,
    });
    match folder {
        Some(f) if !f.sync_enabled => format!(
            "{} does not sync, so nothing of it is cached: switch it on in Folders (3, space).",
            safe(&f.name)
        ),
        _ => "No mail in this folder.".into(),
    }
}

/// Display row `d` of the index: a head, or (after the selected head) a member of its open
/// thread; the bool says which.
fn display_row(app: &App, d: usize, extra: usize) -> (Option<&IndexRow>, bool) {
    let m = &app.mail;
    let sel = m.index.selected;
    if extra == 0 || d <= sel {
        return (m.index.get(d), false);
    }
    if d <= sel + extra {
        let head = m.index.current().map(|h| h.id);
        let members: Vec<&IndexRow> = m
            .expanded
            .iter()
            .flat_map(|e| e.rows.iter())
            .filter(|r| Some(r.id) != head)
            .collect();
        return (members.get(d - sel - 1).copied(), true);
    }
    (m.index.get(d - extra), false)
}

/// Marks: a change not on the server yet (⟳ queued, ! failing), flagged, attachment.
fn marks<'a>(theme: &Theme, r: &IndexRow) -> Span<'a> {
    let change = match &r.change {
        Some(ChangeState::Failing { .. }) => Some(("!", "state.error")),
        Some(ChangeState::Queued { .. }) => Some(("⟳", "state.busy")),
        None => None,
    };
    let text = format!(
        "{}{}{}",
        change
            .map(|c| c.0)
            .unwrap_or(if r.seen { " " } else { "●" }),
        if r.flagged { "★" } else { " " },
        if r.has_attachments { "@" } else { " " }
    );
    let role = match (change, r.flagged) {
        (Some((_, role)), _) => role,
        (None, true) => "mail.flagged",
        _ => "base",
    };
    Span::styled(text, theme.style(role))
}

/// The cells of one index row: marks, date, sender (or recipients), subject (with its
/// thread's size), and for a search where it is.
fn index_cells(
    theme: &Theme,
    r: &IndexRow,
    member: bool,
    outgoing: bool,
    place: bool,
    wide: bool,
) -> (Vec<Span<'static>>, Style) {
    let who = if outgoing {
        r.to.first()
            .map(|a| a.name.clone().unwrap_or_else(|| a.address.clone()))
            .unwrap_or_default()
    } else {
        r.from
            .as_ref()
            .map(
                |a| match a.name.as_deref().filter(|n| !n.trim().is_empty()) {
                    Some(n) => n.to_string(),
                    None => a.address.clone(),
                },
            )
            .unwrap_or_default()
    };
    let date = match &r.date {
        Some(d) if d.len() >= 16 && wide => format!("{} {}", &d[..10], &d[11..16]),
        Some(d) if d.len() >= 16 => format!("{} {}", &d[5..10], &d[11..16]),
        Some(d) => safe(d),
        None => String::new(),
    };
    let subject = safe(r.subject.as_deref().unwrap_or("(no subject)"));
    let subject = if member {
        format!("  └ {subject}")
    } else if r.thread_count > 1 {
        format!("({}) {subject}", r.thread_count)
    } else {
        subject
    };
    let mut cells = vec![
        marks(theme, r),
        Span::raw(date),
        Span::raw(safe(&who)),
        Span::raw(subject),
    ];
    if place {
        cells.push(Span::raw(safe(&format!(
            "{}/{}",
            r.account,
            r.folder.as_deref().unwrap_or("")
        ))));
    }
    let role = if r.seen { "list.read" } else { "list.unread" };
    (cells, theme.style(role))
}
