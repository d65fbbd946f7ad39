//! `mailroom send`, `reply`, `outbox`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use std::sync::Arc;

use serde::Serialize;

use super::Ctx;
use super::output::{emit, note, table};
use crate::account::Account;
use crate::error::{AppError, Result};
use crate::mail::compose::{self, CopyPlan, Draft};
use crate::mail::sanitize::clean_line;
use crate::outbox::{CopyConnections, DriveOptions, DriveReport, Outbox, Progress, check_sender};
use crate::store::OutboxRow;
use crate::store::{CopyState, OutboxState};

#[derive(Debug, Args, Clone, Default)]
pub struct ComposeArgs {
    #[arg(short = 'a', long)]
    pub account: Option<String>,
    /// Send from this alias of the account.
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Vec<String>,
    #[arg(long)]
    pub cc: Vec<String>,
    #[arg(long)]
    pub bcc: Vec<String>,
    #[arg(long)]
    pub reply_to: Option<String>,
    #[arg(long)]
    pub subject: Option<String>,
    /// Text body from a file (default: stdin).
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    #[arg(long)]
    pub html_file: Option<PathBuf>,
    #[arg(long)]
    pub attach: Vec<PathBuf>,
    /// Queue only; the daemon or `outbox flush` sends it.
    #[arg(long)]
    pub queue_only: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub compose: ComposeArgs,
    /// Message-ID (or local id) this replies to.
    #[arg(long)]
    pub in_reply_to: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplyArgs {
    /// Local id of the message to reply to.
    pub id: i64,
    /// Reply to all recipients.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub compose: ComposeArgs,
}

#[derive(Debug, Args)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub cmd: Option<OutboxCmd>,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// Try a failed or waiting item again now.
    Retry { id: i64 },
    /// Cancel an item that SMTP has not accepted yet.
    Cancel { id: i64 },
    /// Send an `uncertain` item again (it may then arrive twice).
    Resend { id: i64 },
    /// Give up on an `uncertain` item (assume it was delivered).
    Drop { id: i64 },
    /// Drive every due item now.
    Flush {
        /// Benchmark knob: one SMTP and IMAP connection per message instead of one per pass.
        #[arg(long, hide = true)]
        per_message_connections: bool,
    },
}

/// Prints each state an item reaches on stderr (never stdout, which is for the result).
fn printer() -> Arc<dyn Fn(&Progress) + Send + Sync> {
    Arc::new(|p: &Progress| {
        let copy = p
            .copy_state
            .map(|c| format!(" [copy: {c}]"))
            .unwrap_or_default();
        note(format!(
            "#{} {}{copy}: {}",
            p.id,
            p.state,
            clean_line(&p.note)
        ));
    })
}

fn open(ctx: &Ctx) -> Result<Outbox> {
    Ok(Outbox::open(&ctx.home, &ctx.operator)?.with_observer(printer()))
}

fn read_text(path: &std::path::Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        AppError::usage(
            format!("cannot read the {what} {} ({e})", path.display()),
            format!("check the --{what} path"),
        )
    })?;
    String::from_utf8(bytes).map_err(|_| {
        AppError::usage(
            format!("the {what} {} is not UTF-8 text", path.display()),
            "save it as UTF-8",
        )
    })
}

/// The text body: --body-file, else stdin (empty when stdin is a terminal or closed).
fn body_text(c: &ComposeArgs) -> Result<String> {
    if let Some(p) = &c.body_file {
        return read_text(p, "body-file");
    }
    use std::io::{IsTerminal, Read};
    if std::io::stdin().is_terminal() {
        note("type the message, end with Ctrl-D:");
    }
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).map_err(|e| {
        AppError::usage(
            format!("cannot read the body from stdin ({e})"),
            "pass --body-file FILE with UTF-8 text",
        )
    })?;
    Ok(s)
}

/// The From header: the account's address (with its display name) or a permitted alias.
fn sender(account: &Account, from: Option<&str>) -> Result<String> {
    match from {
        None => Ok(match &account.cfg.display_name {
            Some(n) if !n.is_empty() => format!("{n} <{}>", account.cfg.email),
            _ => account.cfg.email.clone(),
        }),
        Some(f) => {
            let addr = compose::bare_address(f)?;
            check_sender(&account.cfg, &addr)?;
            Ok(f.to_string())
        }
    }
}

/// Where a reply hooks into its conversation.
#[derive(Default)]
struct Threading {
    in_reply_to: Option<String>,
    references: Vec<String>,
    thread_message_id: Option<i64>,
}

fn threading_from_base(base: &crate::store::ReplyBase) -> Threading {
    let mut refs: Vec<String> = base
        .refs
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(|r| r.trim_matches(['<', '>']).to_string())
        .filter(|r| !r.is_empty())
        .collect();
    if let Some(m) = &base.message_id
        && !refs.contains(m)
    {
        refs.push(m.clone());
    }
    Threading {
        in_reply_to: base.message_id.clone(),
        references: refs,
        thread_message_id: Some(base.id),
    }
}

/// Builds, queues and (unless --queue-only) drives one message; prints the result.
async fn compose_and_send(
    ctx: &Ctx,
    ob: Outbox,
    account: Account,
    c: &ComposeArgs,
    mut draft: Draft,
    threading: Threading,
) -> Result<i32> {
    draft.in_reply_to = threading.in_reply_to.clone();
    draft.references = threading.references.clone();
    if let Some(h) = &c.html_file {
        draft.html = Some(read_text(h, "html-file")?);
    }
    for p in &c.attach {
        draft.attachments.push(compose::read_attachment(p)?);
    }
    let sc = &account.cfg.sent_copy;
    let plan = CopyPlan {
        content: sc.content,
        drop_attachments_over_bytes: sc.drop_attachments_over_bytes,
    };
    let built = compose::build(&draft, &plan)?;
    let id = ob.enqueue(
        &account,
        &built,
        &draft.subject,
        threading.in_reply_to.clone(),
        threading.thread_message_id,
    )?;
    if !c.queue_only {
        // Not forced: a batched copy keeps its batch time.
        ob.drive(&DriveOptions {
            only: Some(id),
            ..Default::default()
        })
        .await?;
    }
    finish(ctx, &ob, id, c.queue_only)
}

#[derive(Serialize)]
struct LastError {
    at: Option<String>,
    what: String,
    fix: Option<String>,
}

#[derive(Serialize)]
struct ItemJson {
    id: i64,
    account: String,
    state: OutboxState,
    copy_state: Option<CopyState>,
    from: String,
    to: Vec<String>,
    subject: Option<String>,
    message_id: String,
    attempts: i64,
    copy_attempts: i64,
    last_error: Option<LastError>,
    next_attempt_at: Option<String>,
    created_at: String,
    sent_at: Option<String>,
    verified_at: Option<String>,
    copy_folder: Option<String>,
    copy_uid: Option<i64>,
    copy_note: Option<String>,
    size: Option<i64>,
    in_reply_to: Option<String>,
    thread_message_id: Option<i64>,
}

fn item_json(ob: &Outbox, r: &OutboxRow) -> ItemJson {
    ItemJson {
        id: r.id,
        account: ob
            .config
            .account_by_id(&r.account_id)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| r.account_id.clone()),
        state: r.state,
        copy_state: r.copy_state,
        from: r.from_addr.clone(),
        to: r.rcpts.clone(),
        subject: r.subject.clone(),
        message_id: r.message_id.clone(),
        attempts: r.attempts,
        copy_attempts: r.copy_attempts,
        last_error: r.last_error_what.as_ref().map(|w| LastError {
            at: r.last_error_at.clone(),
            what: w.clone(),
            fix: r.last_error_fix.clone(),
        }),
        next_attempt_at: r.next_attempt_at.clone(),
        created_at: r.created_at.clone(),
        sent_at: r.sent_at.clone(),
        verified_at: r.verified_at.clone(),
        copy_folder: r.copy_folder.clone(),
        copy_uid: r.copy_uid,
        copy_note: r.copy_note.clone(),
        size: r.size,
        in_reply_to: r.in_reply_to.clone(),
        thread_message_id: r.thread_message_id,
    }
}

/// The item's final word: exit 0 once SMTP accepted it (the copy may still be pending).
fn finish(ctx: &Ctx, ob: &Outbox, id: i64, queue_only: bool) -> Result<i32> {
    let row = ob
        .store()
        .outbox_get(id)?
        .ok_or_else(|| AppError::local("the queued item vanished", "", "report this as a bug"))?;
    let accepted = row.state.accepted();
    if accepted || (queue_only && row.state == OutboxState::Queued) {
        let item = item_json(ob, &row);
        emit(ctx.json, &item, || {
            let mut s = format!("#{id} {}", row.state);
            if let Some(c) = &row.copy_state {
                s.push_str(&format!(" (copy: {c})"));
            }
            if let (Some(w), false) = (&row.last_error_what, row.state == OutboxState::Verified) {
                s.push_str(&format!("\n  note: {}", clean_line(w)));
            }
            s
        });
        return Ok(0);
    }
    let what = row
        .last_error_what
        .clone()
        .unwrap_or_else(|| format!("outbox #{id} is {}", row.state));
    let fix = row.last_error_fix.clone().unwrap_or_default();
    let detail = match row.state {
        OutboxState::Queued => format!(
            "outbox #{id} stays queued (attempt {}); next attempt at {}",
            row.attempts,
            row.next_attempt_at.as_deref().unwrap_or("the next flush")
        ),
        OutboxState::Failed => {
            format!("outbox #{id} failed; fix it, then `mailroom outbox retry {id}` or cancel it")
        }
        OutboxState::Uncertain => format!("outbox #{id} is uncertain"),
        s => format!("outbox #{id} is {s}"),
    };
    Err(AppError::needs_user(what, detail, fix))
}

pub async fn send(ctx: &Ctx, args: SendArgs) -> Result<i32> {
    let c = &args.compose;
    let ob = open(ctx)?;
    let mut threading = Threading::default();
    if let Some(irt) = &args.in_reply_to {
        let irt = irt.trim().trim_matches(['<', '>']).to_string();
        let local = match irt.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => ob.store().message_by_message_id(&irt)?,
        };
        let base = match local {
            Some(n) => ob.store().reply_base(n)?,
            None => None,
        };
        threading = match base {
            Some(b) => threading_from_base(&b),
            None if irt.parse::<i64>().is_ok() => {
                return Err(AppError::usage(
                    format!("no cached message with id {irt}"),
                    "pass a Message-ID, or a local id from `mailroom messages`",
                ));
            }
            None => Threading {
                in_reply_to: Some(irt.clone()),
                references: vec![irt],
                thread_message_id: None,
            },
        };
    }
    let (name, _) = ob.config.pick_account(c.account.as_deref())?;
    let account = Account::from_config(&ob.config, &name.clone())?;
    let subject = c
        .subject
        .clone()
        .ok_or_else(|| AppError::usage("the message has no subject", "add --subject TEXT"))?;
    let from = sender(&account, c.from.as_deref())?;
    let draft = Draft {
        message_id: compose::new_message_id(&compose::bare_address(&from)?),
        from,
        to: c.to.clone(),
        cc: c.cc.clone(),
        bcc: c.bcc.clone(),
        reply_to: c.reply_to.clone(),
        subject,
        text: body_text(c)?,
        html: None,
        attachments: vec![],
        in_reply_to: None,
        references: vec![],
        date: std::time::SystemTime::now(),
    };
    compose_and_send(ctx, ob, account, c, draft, threading).await
}

fn addresses(json: &str) -> Vec<(Option<String>, String)> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    let addr = x["address"].as_str()?.to_string();
                    Some((x["name"].as_str().map(str::to_string), addr))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn mailbox_text(name: Option<&str>, addr: &str) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("\"{}\" <{addr}>", n.replace(['"', '\\'], "")),
        _ => addr.to_string(),
    }
}

pub async fn reply(ctx: &Ctx, args: ReplyArgs) -> Result<i32> {
    let c = &args.compose;
    let ob = open(ctx)?;
    let base = ob.store().reply_base(args.id)?.ok_or_else(|| {
        AppError::usage(
            format!("no cached message with id {}", args.id),
            "see `mailroom messages` for ids",
        )
    })?;
    // The account holding the message, unless one is named.
    let name = match &c.account {
        Some(n) => ob.config.account(n).map(|_| n.clone())?,
        None => match base
            .account_ids
            .iter()
            .find_map(|id| ob.config.account_by_id(id).map(|(n, _)| n.clone()))
        {
            Some(n) => n,
            None => ob.config.pick_account(None)?.0.clone(),
        },
    };
    let account = Account::from_config(&ob.config, &name)?;
    let parsed = base
        .headers
        .as_deref()
        .or(base.body.as_deref())
        .and_then(|h| mail_parser::MessageParser::default().parse_headers(h));
    let reply_to: Option<(Option<String>, String)> = parsed.as_ref().and_then(|m| {
        let a = m.reply_to()?.first()?;
        Some((a.name().map(str::to_string), a.address()?.to_string()))
    });
    let author = base.from_addr.clone().map(|a| (base.from_name.clone(), a));
    let primary = reply_to.or(author).ok_or_else(|| {
        AppError::usage(
            "the message has no sender to reply to",
            "use `mailroom send --to ADDRESS --in-reply-to ID` instead",
        )
    })?;
    let mut own: Vec<String> = vec![account.cfg.email.to_ascii_lowercase()];
    own.extend(account.cfg.aliases.iter().map(|a| a.to_ascii_lowercase()));
    let mut to: Vec<String> = if c.to.is_empty() {
        vec![mailbox_text(primary.0.as_deref(), &primary.1)]
    } else {
        c.to.clone()
    };
    let mut cc = c.cc.clone();
    if args.all {
        let mut seen: Vec<String> = own.clone();
        seen.push(primary.1.to_ascii_lowercase());
        for (n, a) in addresses(&base.to_json)
            .into_iter()
            .chain(addresses(&base.cc_json))
        {
            let l = a.to_ascii_lowercase();
            if !seen.contains(&l) {
                seen.push(l);
                cc.push(mailbox_text(n.as_deref(), &a));
            }
        }
    }
    // Replying to our own message: answer its recipients instead of ourselves.
    if own.contains(&primary.1.to_ascii_lowercase()) && c.to.is_empty() {
        let recipients: Vec<String> = addresses(&base.to_json)
            .into_iter()
            .filter(|(_, a)| !own.contains(&a.to_ascii_lowercase()))
            .map(|(n, a)| mailbox_text(n.as_deref(), &a))
            .collect();
        if !recipients.is_empty() {
            to = recipients;
        }
    }
    let original = base.text_body.clone().or_else(|| {
        let body = base.body.as_deref()?;
        let m = mail_parser::MessageParser::default().parse(body)?;
        m.body_text(0).map(|t| t.to_string())
    });
    let own_text = body_text(c)?;
    let who = mailbox_text(
        base.from_name.as_deref(),
        base.from_addr.as_deref().unwrap_or("unknown"),
    );
    let text = match original {
        Some(o) => compose::quote_body(&own_text, base.date.as_deref(), &who, &o),
        None => own_text,
    };
    let from = sender(&account, c.from.as_deref())?;
    let subject = c
        .subject
        .clone()
        .unwrap_or_else(|| compose::reply_subject(base.subject.as_deref().unwrap_or("")));
    let draft = Draft {
        message_id: compose::new_message_id(&compose::bare_address(&from)?),
        from,
        to,
        cc,
        bcc: c.bcc.clone(),
        reply_to: c.reply_to.clone(),
        subject,
        text,
        html: None,
        attachments: vec![],
        in_reply_to: None,
        references: vec![],
        date: std::time::SystemTime::now(),
    };
    let threading = threading_from_base(&base);
    compose_and_send(ctx, ob, account, c, draft, threading).await
}

fn report_text(r: &DriveReport) -> String {
    let mut s = format!(
        "sent {}, verified {}, copy pending {}, uncertain {}, failed {}, retry later {}",
        r.sent, r.verified, r.copy_pending, r.uncertain, r.failed, r.retry_later
    );
    for e in &r.errors {
        s.push_str(&format!(
            "\n  #{}: {} — fix: {}",
            e.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            clean_line(&e.what),
            clean_line(&e.fix)
        ));
    }
    s
}

pub async fn run(ctx: &Ctx, args: OutboxArgs) -> Result<i32> {
    let ob = open(ctx)?;
    // retry/resend/drop make the item due now; batching still applies to its copy.
    let one = |id: i64| DriveOptions {
        only: Some(id),
        ..Default::default()
    };
    match args.cmd {
        None => {
            let visible: Vec<String> = ob
                .config
                .accounts
                .values()
                .filter(|a| ctx.sees(a))
                .map(|a| a.id.clone())
                .collect();
            let rows = ob.store().outbox_list(Some(&visible), 1000)?;
            let items: Vec<ItemJson> = rows.iter().map(|r| item_json(&ob, r)).collect();
            emit(ctx.json, &serde_json::json!({ "items": items }), || {
                if items.is_empty() {
                    return "the outbox is empty".into();
                }
                let body: Vec<Vec<String>> = items
                    .iter()
                    .map(|i| {
                        vec![
                            i.id.to_string(),
                            i.state.to_string(),
                            i.copy_state
                                .map(|c| c.to_string())
                                .unwrap_or_else(|| "-".into()),
                            i.attempts.to_string(),
                            i.account.clone(),
                            clean_line(&i.to.join(", ")),
                            clean_line(i.subject.as_deref().unwrap_or("")),
                            i.last_error
                                .as_ref()
                                .map(|e| {
                                    format!(
                                        "{} — {}",
                                        clean_line(&e.what),
                                        clean_line(e.fix.as_deref().unwrap_or(""))
                                    )
                                })
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID",
                        "STATE",
                        "COPY",
                        "TRIES",
                        "ACCOUNT",
                        "TO",
                        "SUBJECT",
                        "LAST ERROR",
                    ],
                    &body,
                )
            });
            Ok(0)
        }
        Some(OutboxCmd::Retry { id }) => {
            ob.retry(id)?;
            ob.drive(&one(id)).await?;
            finish(ctx, &ob, id, false)
        }
        Some(OutboxCmd::Resend { id }) => {
            ob.resend(id)?;
            ob.drive(&one(id)).await?;
            finish(ctx, &ob, id, false)
        }
        Some(OutboxCmd::Drop { id }) => {
            ob.drop_uncertain(id)?;
            ob.drive(&one(id)).await?;
            finish(ctx, &ob, id, false)
        }
        Some(OutboxCmd::Cancel { id }) => {
            ob.cancel(id)?;
            let row = ob.store().outbox_get(id)?;
            let item = row.as_ref().map(|r| item_json(&ob, r));
            emit(ctx.json, &item, || format!("#{id} cancelled"));
            Ok(0)
        }
        Some(OutboxCmd::Flush {
            per_message_connections,
        }) => {
            let report = ob
                .drive(&DriveOptions {
                    connections: if per_message_connections {
                        CopyConnections::PerMessage
                    } else {
                        CopyConnections::Shared
                    },
                    ..Default::default()
                })
                .await?;
            let code = if report.failed > 0 { 1 } else { 0 };
            emit(ctx.json, &report, || report_text(&report));
            Ok(code)
        }
    }
}
