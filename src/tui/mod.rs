//! The console. For now: the status dashboard, quit with `q`. The full console (issue 6)
//! replaces this with panes, keymaps and themes.

use std::io::IsTerminal;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyCode, KeyEventKind};
use futures::StreamExt;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

use crate::cli::Ctx;
use crate::cli::status::{Status, collect};
use crate::error::{AppError, Result};
use crate::mail::sanitize::clean_line;
use crate::store::Store;

pub async fn run(ctx: &Ctx) -> Result<i32> {
    if !std::io::stdout().is_terminal() {
        return Err(AppError::usage(
            "the console needs a terminal",
            "run a headless command instead, e.g. `mailroom status`",
        ));
    }
    let config = ctx.config()?;
    ctx.home.ensure()?;
    let store = Store::open(&ctx.home.db_path())?;
    let mut terminal = ratatui::init();
    let mut events = EventStream::new();
    let mut last_version = -1;
    let mut status = collect(&config, Some(&store), |a| ctx.visible(a))?;
    let res = loop {
        if let Err(e) = terminal.draw(|f| draw(f, &status)) {
            break Err(AppError::local(
                "cannot draw",
                e.to_string(),
                "check the terminal",
            ));
        }
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press && matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) => break Ok(0),
                Some(Err(e)) => break Err(AppError::local("terminal input failed", e.to_string(), "check the terminal")),
                None => break Ok(0),
                _ => {}
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                // Redraw only when another process committed something.
                let v = store.data_version()?;
                if v != last_version {
                    last_version = v;
                    status = collect(&config, Some(&store), |a| ctx.visible(a))?;
                }
            }
        }
    };
    ratatui::restore();
    res
}

pub fn draw(f: &mut Frame<'_>, status: &Status) {
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(
        Paragraph::new(Line::from(format!(
            "mailroom — overall: {}",
            status.overall
        )))
        .style(Style::new().add_modifier(Modifier::BOLD)),
        head,
    );
    let rows: Vec<Row> = status
        .accounts
        .iter()
        .map(|a| {
            let mut state = a.state.as_str().to_string();
            if a.insecure {
                state.push_str(" [insecure]");
            }
            Row::new(vec![
                clean_line(&a.name),
                state,
                a.last_success_at.clone().unwrap_or_else(|| "never".into()),
                a.counts.messages.to_string(),
                a.unmatched.to_string(),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(16),
            Constraint::Length(22),
            Constraint::Length(22),
            Constraint::Length(10),
            Constraint::Length(10),
        ],
    )
    .header(
        Row::new(vec![
            "Account",
            "State",
            "Last sync",
            "Messages",
            "Unmatched",
        ])
        .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .block(Block::default().borders(Borders::ALL).title("Accounts"));
    f.render_widget(table, body);
    f.render_widget(Paragraph::new("q quit"), foot);
}
