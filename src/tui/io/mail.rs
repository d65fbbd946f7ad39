//! The console's message view, compose and outbox: pages and actions.

use super::*;

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
            Ok((
                store.view_outbox_total()?,
                store.view_outbox_page(offset, limit)?,
            ))
        })),
        Command::LoadCompletions { generation, prefix } => {
            Data::Completions(generation, store.view_address_completions(&prefix, 5))
        }
        Command::OutboxRetry { id } => {
            outbox_job(ctx, out, "retry", id);
            return None;
        }
        Command::OutboxCancel { id } => {
            outbox_job(ctx, out, "cancel", id);
            return None;
        }
        Command::OutboxResend { id } => {
            outbox_job(ctx, out, "resend", id);
            return None;
        }
        Command::OutboxDrop { id } => {
            outbox_job(ctx, out, "drop", id);
            return None;
        }
        Command::Send { draft } => {
            let ctx = own_ctx(ctx);
            spawn_job(out.clone(), move || {
                Ok(Data::Sent(send_draft(&ctx, &draft)))
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
