//! The server's folders as a tree (decoded names), sync on/off, roles (Sent marked), counts.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Row, Table};

use super::{draw_empty, draw_error, frame, human_bytes, safe, short_time, window_top};
use crate::ops::folders::{FolderEntry, FolderRow, Role};
use crate::ops::sync::AccountPlan;
use crate::tui::app::{AccountInfo, App, scope_text};

/// Depth and leaf name of a folder from its delimiter ("INBOX/Projects/2026" → 2, "2026").
pub fn tree_parts(r: &FolderRow) -> (usize, String) {
    tree_parts_of(&r.name, r.delimiter.as_deref())
}

/// Depth and leaf name of a folder name with this delimiter.
pub fn tree_parts_of(name: &str, delimiter: Option<&str>) -> (usize, String) {
    match delimiter.filter(|d| !d.is_empty()) {
        Some(d) => {
            let parts: Vec<&str> = name.split(d).collect();
            (
                parts.len().saturating_sub(1),
                parts.last().copied().unwrap_or("").to_string(),
            )
        }
        None => (0, name.to_string()),
    }
}

pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let theme = &app.theme;
    let p = &app.folders;
    let Some(acct) = app.accounts.get(p.account) else {
        draw_empty(
            f,
            area,
            app,
            "Folders",
            "No accounts yet: add one in Setup (2).",
        );
        return;
    };
    let title = format!("Folders of {} (a: next account)", safe(&acct.name));
    // The folder this account is syncing right now, with how far it got (from the status).
    let progress = app
        .dashboard
        .status
        .as_ref()
        .and_then(|s| s.accounts.iter().find(|a| a.name == acct.name))
        .and_then(|a| a.progress.as_ref())
        .map(|p| (p.folder.as_str(), p.done, p.total));
    if let Some(e) = &p.error {
        draw_error(f, area, app, &title, e);
        return;
    }
    if p.rows.is_empty() {
        let text = if p.loaded {
            "No folders known yet. Load them from the server (L) or run `mailroom folders NAME --refresh`."
        } else {
            "reading…"
        };
        draw_empty(f, area, app, &title, text);
        return;
    }
    let area = match &p.plan {
        Some(plan) => {
            let want = 5 + plan
                .result
                .as_ref()
                .and_then(|r| r.as_ref().ok())
                .map(|v| v.folders.len() as u16)
                .unwrap_or(1);
            let [top, bottom] = ratatui::layout::Layout::vertical([
                Constraint::Min(5),
                Constraint::Length(want.min(area.height / 2).max(4)),
            ])
            .areas(area);
            draw_plan(f, bottom, app, acct, plan);
            top
        }
        None => area,
    };
    let h = (area.height as usize).saturating_sub(3);
    let top = window_top(p.selected, h);
    let rows: Vec<Row> = p
        .rows
        .iter()
        .enumerate()
        .skip(top)
        .take(h)
        .map(|(i, e)| folder_line(app, e, i == p.selected, progress))
        .collect();
    let t = Table::new(
        rows,
        [
            Constraint::Length(3),
            Constraint::Min(16),
            Constraint::Length(8),
            Constraint::Length(13),
            Constraint::Length(9),
            Constraint::Length(16),
        ],
    )
    .header(
        Row::new(vec![
            "On",
            "Folder",
            "Role",
            "Cached/all",
            "Size",
            "Last sync",
        ])
        .style(theme.style("list.header")),
    )
    .block(frame(theme, title, true));
    f.render_widget(t, area);
}

/// One folder: sync on/off, its name indented by depth, role, counts, size, last sync (or the
/// gauge while it syncs).
fn folder_line<'a>(
    app: &App,
    e: &'a FolderEntry,
    selected: bool,
    // (folder, done, total) of the folder syncing now.
    progress: Option<(&str, i64, i64)>,
) -> Row<'a> {
    let theme = &app.theme;
    let r = &e.folder;
    let (depth, leaf) = tree_parts(r);
    let sync = if r.sync_enabled { "[x]" } else { "[ ]" };
    let name = format!("{}{}", "  ".repeat(depth), safe(&leaf));
    let role = r
        .role
        .map(|x| format!("{x}{}", if x == Role::Sent { " ✉" } else { "" }))
        .unwrap_or_default();
    let base = if !r.selectable {
        theme.style("list.dim")
    } else {
        Style::default()
    };
    let base = if selected {
        base.patch(theme.style("list.selected"))
    } else {
        base
    };
    Row::new(vec![
        Line::from(sync),
        Line::from(name),
        Line::from(Span::styled(role, theme.style("badge.role"))),
        Line::from(format!(
            "{}/{}",
            e.cached,
            r.exists_count
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into())
        )),
        Line::from(r.total_bytes.map(human_bytes).unwrap_or_default()),
        match progress.filter(|(folder, _, _)| *folder == r.name) {
            Some((_, done, total)) => gauge_line(theme, done, total),
            None => Line::from(short_time(&r.last_synced_at)),
        },
    ])
    .style(base)
}

fn draw_plan(
    f: &mut Frame<'_>,
    area: Rect,
    app: &App,
    acct: &AccountInfo,
    plan: &crate::tui::app::PlanView,
) {
    let theme = &app.theme;
    let since = plan.since.as_deref().filter(|s| !s.trim().is_empty());
    let scope = scope_text(since, plan.unread_only);
    // What sync will really take (config.toml), next to what is being previewed.
    let applied = scope_text(acct.since.as_deref(), acct.unread_only);
    let same = acct.since.as_deref() == since && acct.unread_only == plan.unread_only;
    let mut lines = vec![Line::from(vec![
        Span::styled("account syncs: ", theme.style("list.dim")),
        Span::raw(applied),
        Span::styled(
            if same {
                "  (this plan)"
            } else {
                "  (A applies this plan's scope)"
            },
            theme.style("list.dim"),
        ),
    ])];
    match &plan.result {
        None => lines.push(Line::from(Span::styled(
            "asking the server for counts and sizes…",
            theme.style("step.running"),
        ))),
        Some(Err(e)) => lines.extend(super::error_lines(theme, e)),
        Some(Ok(v)) => lines.extend(plan_lines(theme, v)),
    }
    f.render_widget(
        ratatui::widgets::Paragraph::new(lines).block(frame(
            theme,
            format!("First-sync plan: {scope} — u d P A"),
            false,
        )),
        area,
    );
}

/// The plan's folders and its total.
fn plan_lines(theme: &crate::tui::theme::Theme, v: &AccountPlan) -> Vec<Line<'static>> {
    let mut lines: Vec<Line> = v
        .folders
        .iter()
        .map(|fo| {
            Line::from(format!(
                "{:<24} {:>8} messages {:>8} to sync {:>10}  ~{}s",
                safe(&fo.folder),
                fo.messages,
                fo.to_sync,
                human_bytes(fo.bytes as i64),
                fo.estimate_secs
            ))
        })
        .collect();
    let t = &v.total;
    lines.push(Line::from(Span::styled(
        format!(
            "total: {} messages, {}, headers in ~{}s",
            t.to_sync,
            human_bytes(t.bytes as i64),
            t.estimate_secs
        ),
        theme.style("list.header"),
    )));
    lines
}

/// A small text gauge for a folder being synced: `▰▰▰▱▱▱ 42%`.
fn gauge_line(theme: &crate::tui::theme::Theme, done: i64, total: i64) -> Line<'static> {
    let ratio = if total > 0 {
        (done as f64 / total as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = (ratio * 8.0).round() as usize;
    Line::from(vec![
        Span::styled("▰".repeat(filled), theme.style("gauge")),
        Span::styled("▱".repeat(8 - filled), theme.style("list.dim")),
        Span::raw(format!(" {:>3.0}%", ratio * 100.0)),
    ])
}
