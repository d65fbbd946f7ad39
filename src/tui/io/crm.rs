//! The console's customer, triage, dashboard and log pages and actions, through the service
//! layer: pages are read at once (reads only — matching never runs inside a page load); triage
//! actions run as jobs on the console's runtime; matching catches up in a job of its own when
//! the database changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::mail::sanitize::clean_line;
use crate::ops::triage::{ActionOutcome, BlockPlan, UndoOutcome};
use crate::ops::{customers, logs, status, triage};
use crate::tui::action::PaneId;

pub(super) fn execute(env: &mut Env, cmd: Command) -> Option<Data> {
    let cx = &env.cx;
    let counts = &mut env.counts;
    Some(match cmd {
        Command::LoadDashboard => {
            let accounts = cx.config().map(|c| accounts_of(cx, &c)).unwrap_or_default();
            Data::Dashboard(status::dashboard(cx), accounts)
        }
        Command::LoadTriage {
            generation,
            offset,
            limit,
            after,
        } => Data::Triage(page(generation, offset, || {
            let total = counts.get("triage".into(), || triage::count(cx))?;
            let after = after.as_ref().map(|(date, id)| (date.as_str(), *id));
            Ok((total, triage::window(cx, total, offset, limit, after)?))
        })),
        Command::LoadCustomers {
            generation,
            query,
            offset,
            limit,
        } => Data::Customers(page(generation, offset, || {
            Ok((
                counts.get(format!("customers:{query}"), || {
                    customers::count(cx, &query)
                })?,
                customers::page(cx, &query, offset, limit)?,
            ))
        })),
        Command::LoadTimeline {
            generation,
            customer_id,
            offset,
            limit,
            after,
        } => Data::Timeline(page(generation, offset, || {
            let total = counts.get(format!("timeline:{customer_id}"), || {
                customers::timeline_count(cx, customer_id)
            })?;
            let after = after.map(|(date, id)| customers::TimelineKey { date, id });
            Ok((
                total,
                customers::timeline(cx, customer_id, total, offset, limit, after.as_ref())?,
            ))
        })),
        Command::LoadPicker { generation, query } => {
            Data::Picker(generation, customers::page(cx, &query, 0, 20))
        }
        Command::LoadSuggestions { id } => match triage::suggestions(cx, id) {
            Ok(list) => Data::Suggestions(vec![(id, list)]),
            Err(e) => Data::Notice(Err(e)),
        },
        Command::LoadEvents {
            generation,
            filter,
            offset,
            limit,
        } => Data::Events(page(generation, offset, || {
            Ok((
                counts.get(format!("events:{filter:?}"), || logs::count(cx, &filter))?,
                logs::page(cx, &filter, offset, limit)?,
            ))
        })),
        c => {
            act(env, c);
            return None;
        }
    })
}

/// A triage action as a job on the console's runtime (its store work on the blocking pool);
/// the outcome comes back as `Data::TriageDone`, or as `Data::BlockPlan` for the question
/// before a block.
fn act(env: &Env, cmd: Command) {
    match cmd {
        Command::TriagePair { id, customer_id } => triage_job(env, move |cx| {
            Ok(action_text(&triage::pair(cx, id, customer_id)?))
        }),
        Command::TriageAddCustomer { id, name } => triage_job(env, move |cx| {
            let name = Some(name.trim()).filter(|n| !n.is_empty());
            Ok(action_text(&triage::add_customer(cx, id, name)?))
        }),
        Command::TriageBlock { id, domain } => triage_job(env, move |cx| {
            Ok(action_text(&triage::block(cx, id, domain)?.outcome))
        }),
        Command::TriageDelete { id } => {
            triage_job(env, move |cx| Ok(action_text(&triage::delete(cx, id)?)))
        }
        Command::TriageUndo => {
            let cx = env.cx.clone();
            env.jobs.spawn(PaneId::Triage, async move {
                Data::TriageDone(triage::undo(&cx, None).await.map(|u| undone_text(&u)))
            });
        }
        Command::TriageBlockPlan { id, domain } => {
            let cx = env.cx.clone();
            env.jobs.spawn(PaneId::Triage, async move {
                let plan = cx
                    .blocking(move |cx| triage::block_plan(cx, id, domain))
                    .await;
                Data::BlockPlan(id, domain, plan.map(|p| block_question(&p)))
            });
        }
        _ => {}
    }
}

fn triage_job(env: &Env, work: impl FnOnce(&Ctx) -> Result<String> + Send + 'static) {
    let cx = env.cx.clone();
    env.jobs.spawn(PaneId::Triage, async move {
        Data::TriageDone(cx.blocking(work).await)
    });
}

/// What an action did, as the toast says it: `action 12: paired with …`.
fn action_text(o: &ActionOutcome) -> String {
    clean_line(&format!("action {}: {}", o.action_id, o.detail))
}

fn undone_text(u: &UndoOutcome) -> String {
    clean_line(&format!("undone: action {}: {}", u.action_id, u.detail))
}

/// The question before a block: what it hides, and that undo brings it back.
fn block_question(p: &BlockPlan) -> String {
    format!(
        "Block {} {} for account {}? It hides {} cached message(s); undo brings them back.",
        p.kind,
        clean_line(&p.pattern),
        clean_line(&p.account),
        p.affected
    )
}

/// Matching as a background job: at most one runs; a change while it runs sends it round once
/// more, so mail stored meanwhile is not left unmatched.
#[derive(Clone, Default)]
pub struct Matching {
    running: Arc<AtomicBool>,
    again: Arc<AtomicBool>,
}

/// Clears `running` however the job ends (an aborted job included).
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The database changed (or the console started): catch up on mail stored without matching.
pub(super) fn catch_up(env: &Env) {
    let m = env.matching.clone();
    m.again.store(true, Ordering::SeqCst);
    if m.running.swap(true, Ordering::SeqCst) {
        return;
    }
    let cx = env.cx.clone();
    env.jobs.spawn(PaneId::Triage, async move {
        let mut guard = Running(m.running.clone());
        loop {
            m.again.store(false, Ordering::SeqCst);
            let r = cx.blocking(triage::catch_up_when_idle).await;
            if let Err(e) = r {
                return Data::Matched(Err(e));
            }
            drop(guard);
            // A change arrived while matching (and no other round has started): go again.
            if !m.again.load(Ordering::SeqCst) || m.running.swap(true, Ordering::SeqCst) {
                return Data::Matched(Ok(()));
            }
            guard = Running(m.running.clone());
        }
    });
}
