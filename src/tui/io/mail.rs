//! The console's message view, compose and outbox: pages and actions, through the same
//! operations as the CLI (`ops::messages`, `ops::outbox`).

use std::path::{Path, PathBuf};

use super::*;
use crate::ops::messages;
use crate::ops::outbox::{self, Answers, Decision, Item, SendRequest};
use crate::tui::action::{Draft, PaneId};

pub(super) fn execute(env: &mut Env, cmd: Command) -> Option<Data> {
    Some(match cmd {
        Command::LoadMessage { generation, id } => {
            Data::Message(generation, Box::new(messages::view(&env.cx, id)))
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
            let cx = env.cx.clone();
            env.jobs.spawn(PaneId::Message, async move {
                Data::BodyFetched(id, messages::fetch_body(&cx, id).await)
            });
            return None;
        }
        Command::SaveAttachment { id, index, path } => {
            let cx = env.cx.clone();
            env.jobs.spawn(PaneId::Message, async move {
                let saved = messages::save_attachment(&cx, id, index, Path::new(&path)).await;
                Data::Notice(saved.map(|s| format!("saved {} bytes to {path}", s.bytes)))
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
