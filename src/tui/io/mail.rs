//! The console's mail: the mail pane (tree, index windows, threads, changes), the message view
//! (its body fetched — and fetched again with backoff while the server is unreachable), compose
//! (drafts, completion, sending) and the outbox, through the same operations as the CLI
//! (`ops::mailbox`, `ops::messages`, `ops::compose`, `ops::outbox`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::ops::compose;
use crate::ops::compose::DraftKind;
use crate::ops::mailbox::{self, Window};
use crate::ops::messages::{self, Destination};
use crate::ops::outbox::{self, Answers, Decision, Item, SendRequest};
use crate::tui::action::{Draft, MailDest, PaneId};
use crate::tui::app::MailActed;

/// The message whose body the console wants now (0: none): a fetch that keeps failing
/// because the server is unreachable tries again until the message is closed. One fetch runs
/// per message however often it is asked for (every reload of the view asks again).
#[derive(Clone, Default)]
pub struct BodyWanted {
    wanted: Arc<AtomicI64>,
    running: Arc<Mutex<HashSet<i64>>>,
}

/// Takes a message out of the running fetches when its job ends, however it ends.
struct Running(Arc<Mutex<HashSet<i64>>>, i64);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut r) = self.0.lock() {
            r.remove(&self.1);
        }
    }
}

pub(super) fn execute(env: &mut Env, cmd: Command) -> Option<Data> {
    Some(match cmd {
        Command::LoadMessage { generation, id } => {
            Data::Message(generation, Box::new(messages::view(&env.cx, id)))
        }
        Command::LoadChanges { generation, id } => {
            Data::Changes(generation, mailbox::changes(&env.cx, id))
        }
        Command::LoadOutbox {
            generation,
            offset,
            limit,
        } => Data::Outbox(page(generation, offset, || {
            outbox::page(&env.cx, offset, limit)
        })),
        Command::LoadCompletions { generation, prefix } => Data::Completions(
            generation,
            compose::completions(&env.cx, &prefix, 6).map(|list| {
                list.into_iter()
                    .map(|c| (c.name.unwrap_or_else(|| c.source.into()), c.address))
                    .collect()
            }),
        ),
        Command::CompletePath { generation, prefix } => {
            Data::PathCompletions(generation, compose::complete_path(&prefix, 6))
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
            fetch_body(env, id);
            return None;
        }
        Command::StopBodyFetch => {
            env.body_wanted.wanted.store(0, Ordering::SeqCst);
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
        c => return execute_mail(env, c),
    })
}

/// The mail pane's reads and changes, and drafts.
fn execute_mail(env: &mut Env, cmd: Command) -> Option<Data> {
    let cx = &env.cx;
    Some(match cmd {
        Command::LoadMailTree { generation } => {
            Data::MailTree(generation, env.counts.tree(|| mailbox::tree(cx)))
        }
        Command::LoadMailIndex {
            generation,
            source,
            window,
            anchor,
            limit,
        } => {
            let key = format!("mail:{source:?}");
            let counts = &mut env.counts;
            let total = counts.get(key, || mailbox::count(cx, &source));
            let rows =
                total.and_then(|total| Ok((total, mailbox::window(cx, &source, &window, limit)?)));
            Data::MailIndex(index_page(generation, &window, anchor, limit, rows))
        }
        Command::LoadThread {
            generation,
            folder_id,
            thread_id,
        } => Data::Thread(
            generation,
            thread_id,
            mailbox::thread(cx, folder_id, thread_id),
        ),
        Command::MailFlag {
            id,
            account_id,
            change,
        } => {
            let cx = cx.clone();
            env.counts.clear();
            env.jobs.spawn(PaneId::Mail, async move {
                let r = messages::flag(&cx, id, change, messages::CopyChoice::default()).await;
                Data::MailActed(r.map(|f| MailActed {
                    text: format!("message {id}: {}", flags_text(&f.flags)),
                    queued_for: (!f.pushed).then_some(account_id),
                    not_pushed: f.not_pushed,
                }))
            });
            return None;
        }
        Command::MailMove { id, account_id, to } => {
            let cx = cx.clone();
            env.counts.clear();
            env.jobs.spawn(PaneId::Mail, async move {
                let r = match to {
                    MailDest::Folder(f) => messages::move_to(&cx, id, Destination::Folder(f)).await,
                    MailDest::Trash => messages::move_to(&cx, id, Destination::Trash).await,
                    MailDest::Archive => mailbox::archive(&cx, id).await,
                };
                Data::MailActed(r.map(|m| MailActed {
                    text: format!("message {id} moved to {}", m.folder),
                    queued_for: (!m.pushed).then_some(account_id),
                    not_pushed: m.not_pushed,
                }))
            });
            return None;
        }
        c => return execute_drafts(env, c),
    })
}

/// Drafts: saved at once (a store write), uploaded and forgotten as jobs.
fn execute_drafts(env: &mut Env, cmd: Command) -> Option<Data> {
    let cx = &env.cx;
    Some(match cmd {
        Command::SaveDraft { id, content } => Data::DraftSaved(compose::save(cx, id, &content)),
        Command::UploadDraft { id, content } => {
            let saved = compose::save(cx, id, &content);
            if let Ok(id) = saved {
                let cx = cx.clone();
                env.jobs.spawn(PaneId::Compose, async move {
                    Data::DraftUploaded(compose::upload(&cx, id).await)
                });
            }
            Data::DraftSaved(saved)
        }
        Command::ForgetDraft { id, tell } => {
            let cx = cx.clone();
            env.jobs.spawn(PaneId::Compose, async move {
                let r = compose::forget(&cx, id).await;
                Data::DraftForgotten(match (r, tell) {
                    (Ok(f), true) if f.server_removed => {
                        Ok("draft discarded (also from the Drafts folder)".into())
                    }
                    (Ok(f), true) => Ok(match f.server_error {
                        Some(e) => format!(
                            "draft discarded here; its copy in the Drafts folder stays ({})",
                            e.summary
                        ),
                        None => "draft discarded".into(),
                    }),
                    (Ok(_), false) => Ok("the sent message's draft is gone".into()),
                    (Err(e), _) => Err(e),
                })
            });
            return None;
        }
        Command::LoadDrafts => Data::Drafts(compose::list(cx)),
        _ => return None,
    })
}

/// The page of an index window: where it starts, and the total corrected when the list
/// turned out shorter than counted (blocked mail is counted, not shown).
fn index_page<T>(
    generation: u64,
    window: &Window,
    anchor: i64,
    limit: i64,
    result: Result<(i64, Vec<T>)>,
) -> Page<T> {
    let (offset, result) = match result {
        Ok((total, rows)) => {
            let n = rows.len() as i64;
            let offset = match window {
                Window::Top => 0,
                Window::After(_) | Window::From(_) => anchor,
                // Rows before the anchor; fewer than asked: they reach the top.
                Window::Before(_) if n < limit => 0,
                Window::Before(_) | Window::Bottom => (anchor - n).max(0),
            };
            let total = match window {
                Window::Top | Window::After(_) | Window::From(_) if n < limit => offset + n,
                Window::Bottom if n < limit => n,
                _ => total.max(offset + n),
            };
            (offset, Ok((total.max(0) as usize, rows)))
        }
        Err(e) => (anchor.max(0), Err(e)),
    };
    Page {
        generation,
        offset: offset as usize,
        result,
    }
}

fn flags_text(flags: &[String]) -> String {
    let seen = flags.iter().any(|f| f == "\\Seen");
    let flagged = flags.iter().any(|f| f == "\\Flagged");
    format!(
        "{}{}",
        if seen { "read" } else { "unread" },
        if flagged { ", flagged" } else { "" }
    )
}

/// Fetches a body as a job; while the server cannot be reached it tries again with backoff
/// (telling the view each time) for as long as the message is the one wanted.
fn fetch_body(env: &Env, id: i64) {
    let wanted = env.body_wanted.wanted.clone();
    wanted.store(id, Ordering::SeqCst);
    {
        let Ok(mut running) = env.body_wanted.running.lock() else {
            return;
        };
        if !running.insert(id) {
            return; // one is on it already (and now wanted again)
        }
    }
    let running = Running(env.body_wanted.running.clone(), id);
    let cx = env.cx.clone();
    let out = env.out.clone();
    env.jobs.spawn(PaneId::Message, async move {
        let _running = running;
        let (min, max) = mailbox::body_backoff(&cx, id);
        let mut wait = min;
        loop {
            match messages::fetch_body(&cx, id).await {
                Ok(()) => return Data::BodyFetched(id, Ok(())),
                Err(e) if e.recoverable() => {
                    // Closed meanwhile: nobody waits for it any more.
                    if wanted.load(Ordering::SeqCst) != id {
                        return Data::Idle;
                    }
                    let _ = out.send(Data::BodyWaiting(id, e, wait));
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    if wanted.load(Ordering::SeqCst) != id {
                        return Data::Idle;
                    }
                    wait = (wait * 2).min(max);
                }
                Err(e) => return Data::BodyFetched(id, Err(e)),
            }
        }
    });
}

/// The compose pane's draft as the request `send`, `reply` and `forward` take.
fn request(d: Draft) -> SendRequest {
    let answers = match (d.kind, d.source) {
        (DraftKind::Reply, Some(id)) => Answers::Message { id, all: false },
        (DraftKind::ReplyAll, Some(id)) => Answers::Message { id, all: true },
        (DraftKind::Forward, Some(id)) => Answers::Forward { id },
        _ => Answers::Nothing,
    };
    SendRequest {
        account: Some(d.account),
        from: d.from,
        to: d.to,
        cc: d.cc,
        bcc: d.bcc,
        reply_to: d.reply_to,
        subject: Some(d.subject),
        text: d.body,
        attachments: d.attachments.into_iter().map(PathBuf::from).collect(),
        answers,
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
