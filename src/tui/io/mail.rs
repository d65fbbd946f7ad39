//! The console's message view, compose and outbox: pages and actions, through the same
//! operations as the CLI (`ops::messages`, `ops::outbox`).

use std::path::PathBuf;

use super::*;
use crate::ops::outbox::{self, Answers, Decision, Item, SendRequest};
use crate::tui::action::{Draft, PaneId};

pub(super) fn execute(env: &mut Env, cmd: Command) -> Option<Data> {
    let ctx = &env.cx;
    let out = &env.out;
    let mut conn = match ctx.store() {
        Ok(c) => c,
        Err(e) => return Some(Data::Notice(Err(e))),
    };
    let store = &mut *conn;
    Some(match cmd {
        Command::LoadMessage { generation, id } => {
            let r = store.view_message(id).and_then(|d| match d {
                Some(mut d) if d.body_fetched => {
                    d.attachments = attachments_of(store, id)?;
                    Ok(Some(d))
                }
                other => Ok(other),
            });
            Data::Message(generation, Box::new(r))
        }
        Command::LoadOutbox {
            generation,
            offset,
            limit,
        } => Data::Outbox(page(generation, offset, || {
            outbox::page(&env.cx, offset, limit)
        })),
        Command::LoadCompletions { generation, prefix } => {
            Data::Completions(generation, outbox::completions(&env.cx, &prefix, 5))
        }
        Command::OutboxCancel { id } => {
            Data::Notice(outbox::cancel(&env.cx, id, None).map(|i| now_in(&i)))
        }
        Command::OutboxRetry { id } => return decide(env, id, Decision::Retry),
        Command::OutboxResend { id } => return decide(env, id, Decision::Resend),
        Command::OutboxDrop { id } => return decide(env, id, Decision::Drop),
        Command::Send { draft } => {
            let cx = env.cx.clone();
            let req = request(*draft);
            env.jobs.spawn(PaneId::Compose, async move {
                let sent = outbox::send(&cx, req, None).await;
                Data::Sent(sent.map(|i| format!("message #{}: {}", i.id, i.state)))
            });
            return None;
        }
        Command::FetchBody { id } => {
            let ctx = own_ctx(ctx);
            spawn_job(out.clone(), move || {
                let r = block_on(async {
                    let mut store = ctx.store()?;
                    crate::cli::messages::ensure_body(&legacy(&ctx), &mut store, id).await
                });
                Ok(Data::BodyFetched(id, r.map(|_| ())))
            });
            return None;
        }
        Command::SaveAttachment { id, index, path } => {
            let ctx = own_ctx(ctx);
            spawn_job(out.clone(), move || {
                // What `message save-attachment ID INDEX PATH` does.
                let r = block_on(async {
                    let mut store = ctx.store()?;
                    let body =
                        crate::cli::messages::ensure_body(&legacy(&ctx), &mut store, id).await?;
                    let (_, bytes) = crate::mail::parse::attachment_bytes(&body, index)
                        .ok_or_else(|| {
                            AppError::usage(
                                format!("message {id} has no attachment {index}"),
                                "pick one of the listed attachments",
                            )
                        })?;
                    write_new(&path, &bytes)?;
                    Ok(format!("saved {} bytes to {path}", bytes.len()))
                });
                Ok(Data::Notice(r))
            });
            return None;
        }
        _ => return None,
    })
}

/// The compose pane's draft as the request `send` and `reply` take.
fn request(d: Draft) -> SendRequest {
    SendRequest {
        account: Some(d.account),
        from: d.from,
        to: d.to,
        cc: d.cc,
        subject: Some(d.subject),
        text: d.body,
        attachments: d.attachments.into_iter().map(PathBuf::from).collect(),
        answers: match d.reply_to {
            Some(id) => Answers::Message { id, all: d.all },
            None => Answers::Nothing,
        },
        ..Default::default()
    }
}

/// An outbox decision (retry, resend, drop) as a job: it may send, so it runs off this thread.
fn decide(env: &Env, id: i64, d: Decision) -> Option<Data> {
    let cx = env.cx.clone();
    env.jobs.spawn(PaneId::Outbox, async move {
        let r = outbox::decide(&cx, id, d, None).await;
        Data::Notice(r.map(|i| now_in(&i)))
    });
    None
}

/// What an item is now, for a toast.
fn now_in(item: &Item) -> String {
    format!("outbox #{} now {}", item.id, item.state)
}
