//! `mailroom messages`, `message …`, `search`: the headless twin of the message list and view.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{emit, note, table};
use super::{AccountSel, Ctx};
use crate::account::Account;
use crate::error::{AppError, Result};
use crate::mail::parse;
use crate::mail::sanitize::{clean, clean_line};
use crate::model::Role;
use crate::store::Store;

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
    /// Change flags locally and on the server.
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
    },
    /// Move to another folder (locally at once, on the server through the queue).
    Move { id: i64, folder: String },
    /// Move to Trash.
    Delete { id: i64 },
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Plain words; "quoted phrases" allowed.
    pub query: Vec<String>,
    #[command(flatten)]
    pub sel: AccountSel,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

pub fn list(ctx: &Ctx, args: MessagesArgs) -> Result<i32> {
    let account = super::folders::pick(ctx, args.name.as_deref(), &args.sel)?;
    if args.limit < 0 || args.offset < 0 {
        return Err(AppError::usage(
            "--limit and --offset cannot be negative",
            "pass 0 or more",
        ));
    }
    let store = ctx.store()?;
    let page = store.messages_page(
        account.id(),
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

/// The account a message is in (its first location), as configured.
fn account_of(ctx: &Ctx, store: &Store, id: i64) -> Result<Account> {
    let config = ctx.config()?;
    let locs = store.locations_of(id)?;
    for l in &locs {
        if let Some((name, _)) = config.account_by_id(&l.account_id) {
            return Account::from_config(&config, name);
        }
    }
    Err(AppError::usage(
        format!("message {id} is not in any synced folder of a configured account"),
        "pick an id from `mailroom messages`",
    ))
}

fn not_found(id: i64) -> AppError {
    AppError::usage(
        format!("no message with id {id}"),
        "pick an id from `mailroom messages`",
    )
}

/// Makes sure the body is cached, fetching it from the server when needed.
/// Shared with the console's message view (issue 6).
pub async fn ensure_body(ctx: &Ctx, store: &mut Store, id: i64) -> Result<Vec<u8>> {
    let m = store.message(id)?.ok_or_else(|| not_found(id))?;
    if let Some(b) = m.body {
        return Ok(b);
    }
    let account = account_of(ctx, store, id)?;
    let pw = account.password(store, &ctx.vault()?)?;
    let mut ss = crate::sync::open_session(&account, &pw).await?;
    let got = crate::sync::engine::fetch_body_now(store, &account, &mut ss, id).await?;
    let _ = ss.session.logout().await;
    if !got {
        return Err(AppError::needs_user(
            format!("message {id} is no longer on the server"),
            "",
            "run `mailroom sync` to refresh the cache",
        ));
    }
    store
        .message(id)?
        .and_then(|m| m.body)
        .ok_or_else(|| not_found(id))
}

/// Pushes queued changes now if no other process syncs this account; otherwise (or when
/// offline) they stay queued for the next sync. Returns whether they reached the server.
async fn push_now(ctx: &Ctx, store: &mut Store, account: &Account) -> bool {
    let token = crate::model::new_id();
    match store.acquire_lease(
        account.id(),
        &token,
        crate::sync::supervisor::LEASE_STALE_SECS,
    ) {
        Ok(Ok(())) => {}
        _ => return false,
    }
    let res = async {
        let pw = account.password(store, &ctx.vault()?)?;
        let mut ss = crate::sync::open_session(account, &pw).await?;
        let list = crate::imap::discovery::list_folders(&mut ss.session).await?;
        store.upsert_folders(account.id(), &list)?;
        let n = crate::sync::ops::push_ops(store, account, &mut ss).await?;
        let _ = ss.session.logout().await;
        Ok::<u64, AppError>(n)
    }
    .await;
    let _ = store.release_lease(account.id(), &token);
    match res {
        Ok(_) => store
            .open_ops_count(account.id())
            .map(|n| n == 0)
            .unwrap_or(false),
        Err(e) => {
            note(format!("queued; not pushed yet: {}", e.summary));
            false
        }
    }
}

pub async fn run(ctx: &Ctx, cmd: MessageCmd) -> Result<i32> {
    let mut store = ctx.store()?;
    match cmd {
        MessageCmd::Show { id, raw } => {
            let body = ensure_body(ctx, &mut store, id).await?;
            if raw {
                use std::io::Write;
                let mut out = std::io::stdout();
                out.write_all(&body)?;
                out.flush()?;
                return Ok(0);
            }
            let m = store.message(id)?.ok_or_else(|| not_found(id))?;
            let attachments = parse::parse_body(&body)
                .map(|b| b.attachments)
                .unwrap_or_default();
            let text = m.text_body.clone().unwrap_or_default();
            emit(
                ctx.json,
                &json!({"message": m.summary, "text": text, "attachments": attachments, "in_reply_to": m.in_reply_to, "references": m.refs}),
                || {
                    let s = &m.summary;
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
                    for a in &attachments {
                        out.push_str(&format!(
                            "Attach:  [{}] {} ({}, {} bytes)\n",
                            a.index,
                            clean_line(a.name.as_deref().unwrap_or("(unnamed)")),
                            a.content_type,
                            a.size
                        ));
                    }
                    out.push('\n');
                    out.push_str(&clean(&text));
                    out
                },
            );
            Ok(0)
        }
        MessageCmd::SaveAttachment { id, index, path } => {
            let body = ensure_body(ctx, &mut store, id).await?;
            let (_, bytes) = parse::attachment_bytes(&body, index).ok_or_else(|| {
                AppError::usage(
                    format!("message {id} has no attachment {index}"),
                    "see the attachment numbers in `mailroom message show ID`",
                )
            })?;
            if path.exists() {
                return Err(AppError::usage(
                    format!("{} already exists", path.display()),
                    "choose another path (nothing is overwritten)",
                ));
            }
            crate::config::write_atomic(&path, &bytes, 0o600)?;
            emit(
                ctx.json,
                &json!({"saved": path, "bytes": bytes.len()}),
                || format!("saved {} bytes to {}", bytes.len(), path.display()),
            );
            Ok(0)
        }
        MessageCmd::Flag {
            id,
            seen,
            unseen,
            flagged,
            unflagged,
        } => {
            if (seen && unseen)
                || (flagged && unflagged)
                || !(seen || unseen || flagged || unflagged)
            {
                return Err(AppError::usage(
                    "choose what to change",
                    "pass --seen or --unseen and/or --flagged or --unflagged",
                ));
            }
            store.message(id)?.ok_or_else(|| not_found(id))?;
            let account = account_of(ctx, &store, id)?;
            let mut add = Vec::new();
            let mut remove = Vec::new();
            if seen {
                add.push("\\Seen".to_string());
            }
            if unseen {
                remove.push("\\Seen".to_string());
            }
            if flagged {
                add.push("\\Flagged".to_string());
            }
            if unflagged {
                remove.push("\\Flagged".to_string());
            }
            let ops = store.local_set_flags(id, &add, &remove)?;
            store.audit(
                &ctx.operator,
                "message_flag",
                Some(account.id()),
                Some(&id.to_string()),
                &json!({"add": add, "remove": remove}),
            )?;
            let pushed = push_now(ctx, &mut store, &account).await;
            let flags = store
                .message_summary(id, None)?
                .map(|m| m.flags)
                .unwrap_or_default();
            emit(
                ctx.json,
                &json!({"id": id, "flags": flags, "ops": ops, "pushed": pushed}),
                || {
                    format!(
                        "message {id}: {}{}",
                        flags.join(" "),
                        if pushed {
                            ""
                        } else {
                            " (queued for the server)"
                        }
                    )
                },
            );
            Ok(0)
        }
        MessageCmd::Move { id, folder } => {
            move_to(ctx, &mut store, id, Target::Folder(folder)).await
        }
        MessageCmd::Delete { id } => move_to(ctx, &mut store, id, Target::Trash).await,
    }
}

enum Target {
    Folder(String),
    Trash,
}

async fn move_to(ctx: &Ctx, store: &mut Store, id: i64, target: Target) -> Result<i32> {
    store.message(id)?.ok_or_else(|| not_found(id))?;
    let account = account_of(ctx, store, id)?;
    let folder = match target {
        Target::Folder(f) => f,
        Target::Trash => store
            .folder_by_role(account.id(), Role::Trash)?
            .map(|f| f.name)
            .ok_or_else(|| {
                AppError::needs_user(
                    format!("account {} has no Trash folder", account.name),
                    "",
                    format!(
                        "choose one with `mailroom folders {} --role trash=FOLDER`",
                        account.name
                    ),
                )
            })?,
    };
    let op = store.local_move(id, account.id(), &folder)?;
    store.audit(
        &ctx.operator,
        "message_move",
        Some(account.id()),
        Some(&id.to_string()),
        &json!({"folder": folder}),
    )?;
    let pushed = push_now(ctx, store, &account).await;
    emit(
        ctx.json,
        &json!({"id": id, "folder": folder, "op": op, "pushed": pushed}),
        || {
            format!(
                "message {id} moved to {}{}",
                clean_line(&folder),
                if pushed {
                    ""
                } else {
                    " (queued for the server)"
                }
            )
        },
    );
    Ok(0)
}

pub fn search(ctx: &Ctx, args: SearchArgs) -> Result<i32> {
    super::search::run(ctx, args)
}
