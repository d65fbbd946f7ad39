//! `mailroom messages`, `message …`, `search`: the headless twin of the message list and view.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{emit, note, table};
use super::{AccountSel, Ctx};
use crate::error::{AppError, Result};
use crate::mail::sanitize::{clean, clean_line};
use crate::ops::messages::{
    self as ops, CopyChoice, Destination, FlagChange, LocationView, MessageView,
};

#[derive(Debug, Args)]
pub struct MessagesArgs {
    /// The account (or --account).
    pub name: Option<String>,
    #[command(flatten)]
    pub sel: AccountSel,
    #[arg(long)]
    pub folder: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    #[arg(long, default_value_t = 0)]
    pub offset: i64,
}

#[derive(Debug, Subcommand)]
pub enum MessageCmd {
    /// Headers, readable text and attachments of one message (fetches the body if needed).
    Show {
        id: i64,
        /// Print the raw RFC 5322 bytes.
        #[arg(long)]
        raw: bool,
    },
    /// Save attachment INDEX (from `message show`) to PATH.
    SaveAttachment {
        id: i64,
        index: usize,
        path: PathBuf,
    },
    /// Change flags locally and on the server: on every copy of the message in the accounts
    /// you may act on, or only the copies in one folder (--folder) or account (--account).
    /// Each copy keeps its own flags; the output lists the copies changed.
    Flag {
        id: i64,
        #[arg(long)]
        seen: bool,
        #[arg(long)]
        unseen: bool,
        #[arg(long)]
        flagged: bool,
        #[arg(long)]
        unflagged: bool,
        /// Only the copies in this folder.
        #[arg(long, value_name = "FOLDER")]
        folder: Option<String>,
        #[command(flatten)]
        sel: AccountSel,
    },
    /// Move to another folder (locally at once, on the server through the queue).
    Move { id: i64, folder: String },
    /// Move to Trash.
    Delete { id: i64 },
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words, "quoted phrases" and filters: from:X to:X subject:X since:DATE before:DATE
    /// is:unread|read|flagged|unflagged folder:NAME account:NAME (DATE: YYYY-MM-DD, YYYY-MM,
    /// today, yesterday, 7d, 4w, 6m, 1y).
    pub query: Vec<String>,
    #[command(flatten)]
    pub sel: AccountSel,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

pub fn list(ctx: &Ctx, args: MessagesArgs) -> Result<i32> {
    let account = args.name.as_deref().or(args.sel.account.as_deref());
    let page = ops::list(
        ctx,
        account,
        args.folder.as_deref(),
        args.limit,
        args.offset,
    )?;
    emit(ctx.json, &json!({"messages": page}), || {
        let rows: Vec<Vec<String>> = page
            .iter()
            .map(|m| {
                vec![
                    m.id.to_string(),
                    m.date
                        .clone()
                        .unwrap_or_default()
                        .chars()
                        .take(16)
                        .collect(),
                    clean_line(
                        &m.from
                            .as_ref()
                            .map(|a| a.name.clone().unwrap_or_else(|| a.address.clone()))
                            .unwrap_or_default(),
                    )
                    .chars()
                    .take(28)
                    .collect(),
                    clean_line(m.subject.as_deref().unwrap_or(""))
                        .chars()
                        .take(60)
                        .collect(),
                    short_flags(&m.flags),
                ]
            })
            .collect();
        table(&["ID", "DATE", "FROM", "SUBJECT", "FLAGS"], &rows)
    });
    Ok(0)
}

fn short_flags(flags: &[String]) -> String {
    let mut s = String::new();
    if !flags.iter().any(|f| f == "\\Seen") {
        s.push('N');
    }
    if flags.iter().any(|f| f == "\\Flagged") {
        s.push('F');
    }
    if flags.iter().any(|f| f == "\\Answered") {
        s.push('A');
    }
    s
}

pub async fn run(ctx: &Ctx, cmd: MessageCmd) -> Result<i32> {
    match cmd {
        MessageCmd::Show { id, raw: true } => {
            let body = ops::raw(ctx, id).await?;
            use std::io::Write;
            let mut out = std::io::stdout();
            out.write_all(&body)?;
            out.flush()?;
        }
        MessageCmd::Show { id, raw: false } => {
            let v = ops::show(ctx, id).await?;
            emit(ctx.json, &v, || show_text(&v));
        }
        MessageCmd::SaveAttachment { id, index, path } => {
            let s = ops::save_attachment(ctx, id, index, &path).await?;
            emit(ctx.json, &s, || {
                format!("saved {} bytes to {}", s.bytes, s.saved.display())
            });
        }
        MessageCmd::Flag {
            id,
            seen,
            unseen,
            flagged,
            unflagged,
            folder,
            sel,
        } => {
            let which = CopyChoice {
                account: sel.account,
                folder,
            };
            flag(ctx, id, [seen, unseen, flagged, unflagged], which).await?
        }
        MessageCmd::Move { id, folder } => move_to(ctx, id, Destination::Folder(folder)).await?,
        MessageCmd::Delete { id } => move_to(ctx, id, Destination::Trash).await?,
    }
    Ok(0)
}

/// Headers, where it is stored, attachments, then the text.
fn show_text(v: &MessageView) -> String {
    let s = &v.message;
    let mut out = String::new();
    out.push_str(&format!(
        "From:    {}\n",
        clean_line(
            &s.from
                .as_ref()
                .map(|a| match &a.name {
                    Some(n) => format!("{n} <{}>", a.address),
                    None => a.address.clone(),
                })
                .unwrap_or_default()
        )
    ));
    let to: Vec<String> = s.to.iter().map(|a| a.address.clone()).collect();
    out.push_str(&format!("To:      {}\n", clean_line(&to.join(", "))));
    out.push_str(&format!(
        "Subject: {}\n",
        clean_line(s.subject.as_deref().unwrap_or(""))
    ));
    out.push_str(&format!(
        "Date:    {}\n",
        s.date.clone().unwrap_or_default()
    ));
    let also: Vec<String> = s
        .locations
        .iter()
        .map(|l| format!("{}/{}", l.account, l.folder))
        .collect();
    out.push_str(&format!("In:      {}\n", clean_line(&also.join(", "))));
    for a in &v.attachments {
        out.push_str(&format!(
            "Attach:  [{}] {} ({}, {} bytes)\n",
            a.index,
            clean_line(a.name.as_deref().unwrap_or("(unnamed)")),
            a.content_type,
            a.size
        ));
    }
    out.push('\n');
    out.push_str(&clean(v.text.as_deref().unwrap_or("")));
    out
}

/// " (queued for the server)" unless the change reached it; why not goes to stderr.
fn queued_note(pushed: bool, why: Option<&AppError>) -> &'static str {
    if let Some(e) = why {
        note(format!("queued; not pushed yet: {}", e.summary));
    }
    if pushed {
        ""
    } else {
        " (queued for the server)"
    }
}

/// `[seen, unseen, flagged, unflagged]` as given.
async fn flag(ctx: &Ctx, id: i64, given: [bool; 4], which: CopyChoice) -> Result<()> {
    let [seen, unseen, flagged, unflagged] = given;
    if (seen && unseen) || (flagged && unflagged) {
        return Err(AppError::usage(
            "choose what to change",
            "pass --seen or --unseen and/or --flagged or --unflagged",
        ));
    }
    let either = |on: bool, off: bool| (on || off).then_some(on);
    let change = FlagChange {
        seen: either(seen, unseen),
        flagged: either(flagged, unflagged),
    };
    let f = ops::flag(ctx, id, change, which).await?;
    let queued = queued_note(f.pushed, f.not_pushed.as_ref());
    emit(ctx.json, &f, || flagged_text(&f, queued));
    Ok(())
}

/// Which copies changed and which were left, each with its own flags.
fn flagged_text(f: &ops::Flagged, queued: &str) -> String {
    let n = f.changed.len();
    let mut out = format!(
        "message {}: changed {n} {}{queued}\n",
        f.id,
        if n == 1 { "copy" } else { "copies" }
    );
    let copy = |l: &LocationView| {
        let flags = if l.flags.is_empty() {
            "(no flags)".to_string()
        } else {
            l.flags.join(" ")
        };
        format!(
            "  {}/{} (uid {}): {}\n",
            clean_line(&l.account),
            clean_line(&l.folder),
            l.uid,
            clean_line(&flags)
        )
    };
    for l in &f.changed {
        out.push_str(&copy(l));
    }
    if !f.unchanged.is_empty() {
        out.push_str("left as they are:\n");
        for l in &f.unchanged {
            out.push_str(&copy(l));
        }
    }
    out
}

async fn move_to(ctx: &Ctx, id: i64, to: Destination) -> Result<()> {
    let m = ops::move_to(ctx, id, to).await?;
    let queued = queued_note(m.pushed, m.not_pushed.as_ref());
    emit(ctx.json, &m, || {
        format!("message {id} moved to {}{queued}", clean_line(&m.folder))
    });
    Ok(())
}

pub fn search(ctx: &Ctx, args: SearchArgs) -> Result<i32> {
    super::search::run(ctx, args)
}
