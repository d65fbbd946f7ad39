//! The whole screen: tabs, the current pane, the status line, and overlays (help, confirm).
//! Drawing only reads `App`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, Wrap};

use super::action::PaneId;
use super::app::App;
use super::panes;
use crate::mail::sanitize::clean_line;

pub fn draw(f: &mut Frame<'_>, app: &App) {
    let area = f.area();
    f.render_widget(Block::default().style(app.theme.style("base")), area);
    let [tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_tabs(f, tabs, app);
    match app.pane {
        PaneId::Dashboard => panes::dashboard::draw(f, body, app),
        PaneId::Setup => panes::setup::draw(f, body, app),
        PaneId::Folders => panes::folders::draw(f, body, app),
        PaneId::Triage => panes::triage::draw(f, body, app),
        PaneId::Message => panes::message::draw(f, body, app),
        PaneId::Customers => panes::customers::draw(f, body, app),
        PaneId::Compose => panes::compose::draw(f, body, app),
        PaneId::Outbox => panes::outbox::draw(f, body, app),
        PaneId::Log => panes::log::draw(f, body, app),
        PaneId::Mail => panes::mail::draw(f, body, app),
    }
    draw_status(f, status, app);
    if app.help {
        draw_help(f, body, app);
    }
    if let Some(d) = &app.dialog {
        draw_dialog(f, body, app, &d.text);
    }
    if let Some(p) = &app.prompt {
        draw_prompt(f, body, app, p);
    }
    if let Some(p) = &app.picker {
        draw_picker(f, body, app, p);
    }
    if let Some(p) = &app.mail.pick {
        draw_folder_pick(f, body, app, p);
    }
    if let Some(p) = &app.drafts_pick {
        draw_drafts_pick(f, body, app, p);
    }
}

/// Move a message: the account's folders, narrowed as typed.
fn draw_folder_pick(f: &mut Frame<'_>, area: Rect, app: &App, p: &super::app::FolderPick) {
    let theme = &app.theme;
    let matches = p.matches();
    let h = (matches.len() as u16 + 4).clamp(6, 18);
    let r = centered(area, 56, h);
    f.render_widget(Clear, r);
    let mut lines = vec![Line::from(vec![
        Span::styled("folder: ", theme.style("form.label")),
        Span::styled(
            format!("{}▏", clean_line(&p.query)),
            theme.style("form.input.focused"),
        ),
    ])];
    let rows = (h as usize).saturating_sub(4);
    let top = p.selected.saturating_sub(rows.saturating_sub(1));
    for (i, name) in matches.iter().enumerate().skip(top).take(rows) {
        let role = if i == p.selected {
            "list.selected"
        } else {
            "base"
        };
        lines.push(Line::from(Span::styled(
            format!("  {}", clean_line(name)),
            theme.style(role),
        )));
    }
    if matches.is_empty() {
        lines.push(Line::from(Span::styled(
            "no folder matches",
            theme.style("list.empty"),
        )));
    }
    let para = Paragraph::new(lines).block(dialog_block(
        theme,
        format!(
            " Move to a folder of {} (↑↓ enter · esc) ",
            clean_line(&p.account)
        ),
    ));
    f.render_widget(para, r);
}

/// The operator's saved drafts, newest first.
fn draw_drafts_pick(f: &mut Frame<'_>, area: Rect, app: &App, p: &super::app::DraftsPick) {
    let theme = &app.theme;
    let h = (p.drafts.len() as u16 + 3).clamp(5, 18);
    let r = centered(area, 76, h);
    f.render_widget(Clear, r);
    let mut lines = Vec::new();
    for (i, d) in p.drafts.iter().enumerate() {
        let role = if i == p.selected {
            "list.selected"
        } else {
            "base"
        };
        let subject = if d.content.subject.trim().is_empty() {
            "(no subject)".to_string()
        } else {
            clean_line(&d.content.subject)
        };
        let to = clean_line(&d.content.to);
        let when = panes::short_time(&Some(d.updated_at.clone()));
        let place = if d.uploaded.is_some() {
            " · in Drafts"
        } else {
            ""
        };
        lines.push(Line::from(Span::styled(
            format!("{when}  {subject} — to {to}{place}"),
            theme.style(role),
        )));
    }
    if p.drafts.is_empty() {
        lines.push(Line::from(Span::styled(
            "no saved drafts",
            theme.style("list.empty"),
        )));
    }
    let para =
        Paragraph::new(lines).block(dialog_block(theme, " Saved drafts (↑↓ enter opens · esc) "));
    f.render_widget(para, r);
}

/// Pair with a customer: suggestions (with their reason) first, then the fuzzy search.
fn draw_picker(f: &mut Frame<'_>, area: Rect, app: &App, p: &super::app::Picker) {
    let theme = &app.theme;
    let h = (p.len() as u16 + 6).clamp(8, 20);
    let r = centered(area, 72, h);
    f.render_widget(Clear, r);
    let mut lines = vec![Line::from(vec![
        Span::styled("search: ", theme.style("form.label")),
        Span::styled(
            format!("{}▏", clean_line(&p.query)),
            theme.style("form.input.focused"),
        ),
    ])];
    lines.push(Line::from(""));
    let mut i = 0;
    for s in &p.suggestions {
        let role = if i == p.selected {
            "list.selected"
        } else {
            "list.unread"
        };
        lines.push(Line::from(vec![
            Span::styled(format!("★ {}", clean_line(&s.name)), theme.style(role)),
            Span::styled(
                format!("  — {}", clean_line(&s.reason)),
                theme.style("form.hint"),
            ),
        ]));
        i += 1;
    }
    for c in &p.results {
        let role = if i == p.selected {
            "list.selected"
        } else {
            "base"
        };
        let extra = clean_line(&c.emails.join(", "));
        lines.push(Line::from(vec![
            Span::styled(format!("  {}", clean_line(&c.name)), theme.style(role)),
            Span::styled(format!("  {extra}"), theme.style("list.dim")),
        ]));
        i += 1;
    }
    if p.is_empty() {
        lines.push(Line::from(Span::styled(
            "no customer matches",
            theme.style("list.empty"),
        )));
    }
    let para =
        Paragraph::new(lines).block(dialog_block(theme, " Pair with customer (↑↓ enter · esc) "));
    f.render_widget(para, r);
}

fn draw_prompt(f: &mut Frame<'_>, area: Rect, app: &App, p: &super::app::Prompt) {
    let theme = &app.theme;
    let r = centered(area, 70, 5);
    f.render_widget(Clear, r);
    let para = Paragraph::new(vec![
        Line::from(Span::styled(
            format!("{}▏", clean_line(&p.value)),
            theme.style("form.input.focused"),
        )),
        Line::from(""),
        Line::from(Span::styled(
            "enter save · esc cancel",
            theme.style("help.key"),
        )),
    ])
    .block(dialog_block(theme, format!(" {} ", clean_line(&p.label))));
    f.render_widget(para, r);
}

fn draw_tabs(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let mut spans = Vec::new();
    let current = if app.pane == PaneId::Message {
        app.message.back.unwrap_or(PaneId::Triage)
    } else {
        app.pane
    };
    // Full titles when they fit, else short ones: every tab stays visible at 80 columns.
    let full: usize = PaneId::TABS.iter().map(|p| p.title().len() + 4).sum();
    let short = full > area.width as usize;
    for (i, p) in PaneId::TABS.iter().enumerate() {
        let role = if *p == current {
            "tabs.active"
        } else {
            "tabs.inactive"
        };
        let title = if short { p.short_title() } else { p.title() };
        spans.push(Span::styled(
            format!(" {} {} ", i + 1, title),
            theme.style(role),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The current account and what sync is doing; a notice replaces it until the next key.
fn draw_status(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    if let Some(t) = &app.toast {
        let role = if t.error {
            "status.error"
        } else {
            "status.info"
        };
        f.render_widget(
            Paragraph::new(Span::styled(
                format!(" {}", clean_line(&t.text)),
                theme.style(role),
            ))
            .style(theme.style(role)),
            area,
        );
        return;
    }
    let mut text = String::new();
    if let Some(s) = &app.dashboard.status {
        let sel = s.accounts.get(app.dashboard.selected);
        match sel {
            Some(a) => {
                text.push_str(&format!(" {} · {}", clean_line(&a.name), a.state.as_str()));
                if let Some(p) = &a.progress {
                    text.push_str(&format!(
                        " {} {}/{}",
                        clean_line(&p.folder),
                        p.done,
                        p.total
                    ));
                }
                let busy = s.accounts.iter().filter(|a| a.progress.is_some()).count();
                if busy > 0 {
                    text.push_str(&format!(" · {busy} syncing"));
                }
            }
            None => text.push_str(" no account"),
        }
    }
    let typing = app.editing() && app.dialog.is_none() && !app.help && app.prompt.is_none();
    if typing {
        // Every printable key types into the field now: say so, and how to get out.
        let field = match app.pane {
            PaneId::Setup => crate::tui::app::SETUP_FIELDS[app.setup.field].0,
            PaneId::Compose => crate::tui::app::COMPOSE_FIELDS[app.compose.field],
            _ => "the search",
        };
        text = if matches!(app.pane, PaneId::Setup | PaneId::Compose) {
            format!(" typing into {field} · tab/⇧tab field · esc leave")
        } else {
            format!(" typing into {field} · enter/esc end")
        };
    }
    let right = if typing {
        " ctrl-c quit "
    } else {
        " ? help · q quit "
    };
    let w = area.width as usize;
    let left_w = Line::from(text.as_str()).width();
    let pad = w.saturating_sub(left_w + right.len());
    let line = format!("{text}{}{right}", " ".repeat(pad));
    f.render_widget(
        Paragraph::new(Line::from(line)).style(theme.style("status.line")),
        area,
    );
}

pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [r] = Layout::horizontal([Constraint::Length(w.min(area.width))])
        .flex(Flex::Center)
        .areas(area);
    let [r] = Layout::vertical([Constraint::Length(h.min(area.height))])
        .flex(Flex::Center)
        .areas(r);
    r
}

/// The keys of the current pane, drawn from the same tables that resolve key presses.
fn draw_help(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let mut rows = Vec::new();
    for (table, binds) in app.keymap.tables_for(app.pane, false) {
        rows.push(Row::new(vec![Line::from(Span::styled(
            format!("— {table} —"),
            theme.style("list.header"),
        ))]));
        for b in binds {
            let keys: Vec<String> = b.keys.iter().map(|k| k.label()).collect();
            rows.push(Row::new(vec![
                Line::from(Span::styled(keys.join(" "), theme.style("help.key"))),
                Line::from(Span::styled(b.desc, theme.style("help.desc"))),
            ]));
        }
    }
    // Too tall for the screen (80×24): two columns side by side when every row fits in one
    // uncut; else one wide column that scrolls (↑/↓), so no key is cut off or left out.
    let key_w = app
        .keymap
        .tables_for(app.pane, false)
        .iter()
        .flat_map(|(_, binds)| binds.iter())
        .map(|b| {
            b.keys
                .iter()
                .map(|k| k.label())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(8)
        .max(8) as u16
        + 1;
    let desc_w = app
        .keymap
        .tables_for(app.pane, false)
        .iter()
        .flat_map(|(_, binds)| binds.iter())
        .map(|b| b.desc.chars().count())
        .max()
        .unwrap_or(8) as u16;
    let col_w = area.width.min(120).saturating_sub(3) / 2;
    let tall = rows.len() as u16 + 2 > area.height;
    let two = tall
        && area.width >= 60
        && rows.len() as u16 <= 2 * area.height.saturating_sub(2)
        && key_w + 1 + desc_w <= col_w;
    let per_col = if two {
        rows.len().div_ceil(2)
    } else {
        rows.len()
    };
    let width = match (two, tall) {
        (true, _) => area.width.min(120),
        (false, true) => area.width.min(key_w + desc_w + 3),
        (false, false) => 64.max(key_w + desc_w + 3).min(area.width),
    };
    let h = (per_col as u16 + 2).min(area.height);
    let visible = h.saturating_sub(2) as usize;
    let scroll = match two {
        true => 0,
        false => app.help_scroll.min(rows.len().saturating_sub(visible)),
    };
    let r = centered(area, width, h);
    f.render_widget(Clear, r);
    let more = match (scroll > 0, scroll + visible < per_col) {
        (_, true) if !two => " ↓ more (↑↓ scroll)",
        (true, false) => " ↑ more",
        _ => "",
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style("dialog.border"))
        .title(Span::styled(
            format!(" Keys: {} (esc closes){more} ", app.pane.title()),
            theme.style("pane.title.focused"),
        ));
    let inner = block.inner(r);
    f.render_widget(block, r);
    let key_col = if tall { key_w } else { key_w.max(16) };
    let widths = [Constraint::Length(key_col), Constraint::Min(8)];
    if two {
        let right = rows.split_off(per_col);
        let [a, b] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .spacing(1)
            .areas(inner);
        f.render_widget(Table::new(rows, widths), a);
        f.render_widget(Table::new(right, widths), b);
    } else {
        let rows: Vec<Row> = rows.into_iter().skip(scroll).collect();
        f.render_widget(Table::new(rows, widths), inner);
    }
}

fn draw_dialog(f: &mut Frame<'_>, area: Rect, app: &App, text: &str) {
    let theme = &app.theme;
    // As tall as the question wraps to (a long warning is read whole, keys included).
    let w = area.width.min(60);
    let text_rows =
        super::panes::wrapped_height(&clean_line(text), w.saturating_sub(2) as usize) as u16;
    let r = centered(area, w, text_rows + 4);
    f.render_widget(Clear, r);
    let p = Paragraph::new(vec![
        Line::from(Span::styled(clean_line(text), theme.style("dialog.text"))),
        Line::from(""),
        Line::from(Span::styled("y yes · n no", theme.style("help.key"))),
    ])
    .wrap(Wrap { trim: true })
    .block(dialog_block(theme, " Confirm "));
    f.render_widget(p, r);
}

/// The frame every dialog shares: a bordered box titled in the dialog's colours.
fn dialog_block<'a>(
    theme: &super::theme::Theme,
    title: impl Into<std::borrow::Cow<'a, str>>,
) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style("dialog.border"))
        .title(Span::styled(title, theme.style("dialog.border")))
}
