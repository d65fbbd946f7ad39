//! Answers from the I/O layer (`Data`) folded into the state; stale ones are dropped.

use crate::error::AppError;
use crate::tui::action::{Command, PaneId};

use super::*;

impl App {
    /// Applies an answer from the I/O layer; returns follow-up commands.
    pub fn apply(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::DbChanged => self.reload(),
            Data::Idle => vec![],
            Data::Notice(r) => {
                match r {
                    Ok(text) => self.toast(text, false),
                    Err(e) => self.toast(format!("{} — fix: {}", e.summary, e.fix), true),
                }
                vec![]
            }
            d @ (Data::Dashboard(..)
            | Data::CheckStep(..)
            | Data::CheckDone(..)
            | Data::LoginStep(..)
            | Data::LoginDone(..)
            | Data::Saved(..)
            | Data::EditLoaded(..)
            | Data::AccountRemoved(..)) => self.apply_accounts(d),
            d @ (Data::Triage(..)
            | Data::Picker(..)
            | Data::BlockPlan(..)
            | Data::TriageDone(..)
            | Data::Suggestions(..)
            | Data::Matched(..)) => self.apply_triage(d),
            d @ (Data::Folders(..)
            | Data::Plan(..)
            | Data::FoldersChanged(..)
            | Data::ScopeApplied(..)) => self.apply_folders(d),
            d @ (Data::Message(..)
            | Data::BodyFetched(..)
            | Data::BodyWaiting(..)
            | Data::Changes(..)) => self.apply_message(d),
            d @ (Data::MailTree(..)
            | Data::MailIndex(..)
            | Data::Thread(..)
            | Data::MailActed(..)) => self.apply_mail(d),
            d @ (Data::DraftSaved(..)
            | Data::DraftUploaded(..)
            | Data::DraftForgotten(..)
            | Data::Drafts(..)
            | Data::PathCompletions(..)) => self.apply_drafts(d),
            d @ (Data::Customers(..) | Data::Timeline(..)) => self.apply_customers(d),
            d @ (Data::Completions(..) | Data::Edited(..) | Data::Sent(..) | Data::Outbox(..)) => {
                self.apply_compose(d)
            }
            Data::Trace(page, states) => {
                self.log.trace_states = states;
                self.log.traces.apply(page);
                vec![]
            }
            d @ (Data::Events(..) | Data::Quarantine(..) | Data::QuarantineDone(..)) => {
                self.apply_log(d)
            }
        }
    }

    /// Answers for the dashboard and account setup: status, checks, saves, removals.
    fn apply_accounts(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::Dashboard(status, accounts) => {
                let changed = accounts != self.accounts;
                self.accounts = accounts;
                match status {
                    Ok(s) => {
                        self.dashboard.selected = self
                            .dashboard
                            .selected
                            .min(s.accounts.len().saturating_sub(1));
                        self.dashboard.status = Some(s);
                        self.dashboard.error = None;
                    }
                    Err(e) => self.dashboard.error = Some(e),
                }
                if changed && self.pane == PaneId::Folders && !self.folders.loaded {
                    return self.load_pane(PaneId::Folders);
                }
            }
            Data::CheckStep(job, step) => {
                for run in [&mut self.setup.run, &mut self.dashboard.run]
                    .into_iter()
                    .flatten()
                {
                    if run.job == job {
                        run.steps.push(step.clone());
                    }
                }
            }
            Data::CheckDone(job, report) => {
                for run in [&mut self.setup.run, &mut self.dashboard.run]
                    .into_iter()
                    .flatten()
                {
                    if run.job == job {
                        match &report {
                            Ok(r) => {
                                run.done = Some(r.ok);
                                // The report is the truth; live steps were a preview of it.
                                run.steps = r.steps.clone();
                            }
                            Err(e) => {
                                run.done = Some(false);
                                run.error = Some(e.clone());
                            }
                        }
                    }
                }
            }
            Data::LoginStep(job, line) => {
                if let Some(l) = self.dashboard.login.as_mut().filter(|l| l.job == job) {
                    l.lines.push(line);
                }
            }
            Data::LoginDone(job, r) => {
                if let Some(l) = self.dashboard.login.as_mut().filter(|l| l.job == job) {
                    let ok = r.as_ref().ok().cloned();
                    l.done = Some(r);
                    if let Some(text) = ok {
                        self.toast(text, false);
                    }
                    return self.reload();
                }
            }
            Data::AccountRemoved(r) => {
                let ok = r.is_ok();
                self.apply(Data::Notice(r));
                if ok {
                    let mut c = self.reload();
                    c.push(Command::RestartSync);
                    return c;
                }
            }
            Data::Saved(job, r) if self.setup.saving == Some(job) => {
                self.setup.saving = None;
                let ok = r.is_ok();
                if let Ok(name) = &r {
                    let verb = if self.setup.edit.is_some() {
                        "updated"
                    } else {
                        "added"
                    };
                    self.toast(format!("{verb} account {name}"), false);
                }
                let oauth = self.setup.values[F_OAUTH] == "yes";
                let name = r.as_ref().ok().cloned();
                self.setup.message = Some(r);
                if ok {
                    self.setup = SetupForm {
                        message: self.setup.message.take(),
                        ..SetupForm::default()
                    };
                    self.pane = PaneId::Dashboard;
                    let mut c = self.reload();
                    c.push(Command::RestartSync);
                    // An OAuth2 account signs in right away; the dashboard shows the code.
                    if let Some(name) = name.filter(|_| oauth) {
                        c.extend(self.start_login(name));
                    }
                    return c;
                }
            }
            Data::EditLoaded(job, r) => {
                if self.setup.edit.as_ref().map(|e| e.job) != Some(job) {
                    return vec![]; // the form was left or another account asked for
                }
                match *r {
                    Ok((view, owner)) => self.setup = SetupForm::for_edit(&view, job, owner),
                    Err(e) => {
                        self.setup = SetupForm::default();
                        self.apply(Data::Notice(Err(e)));
                        return self.go(PaneId::Dashboard);
                    }
                }
            }
            _ => {}
        }
        vec![]
    }

    /// Answers for the triage inbox: pages, the pair picker, block plans, actions, suggestions, matching.
    fn apply_triage(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::Matched(Err(e)) => {
                self.toast(format!("{} — fix: {}", e.summary, e.fix), true);
            }
            Data::Triage(p) => {
                let new_selection = self.triage.apply(p);
                if new_selection {
                    return self.load_preview();
                }
            }
            Data::Picker(generation, r) => {
                if let Some(p) = self.picker.as_mut()
                    && p.generation == generation
                {
                    match r {
                        Ok(rows) => {
                            p.results = rows;
                            p.selected = p.selected.min(p.len().saturating_sub(1));
                        }
                        Err(e) => self.toast(e.summary, true),
                    }
                }
            }
            Data::BlockPlan(id, domain, r) => match r {
                Ok(text) => {
                    self.dialog = Some(Dialog {
                        text,
                        then: Pending::Block { id, domain },
                    })
                }
                Err(e) => self.toast(format!("{} — fix: {}", e.summary, e.fix), true),
            },
            Data::TriageDone(r) => {
                self.apply(Data::Notice(r));
                let mut c = self.load_pane(PaneId::Triage);
                c.push(Command::LoadDashboard);
                return c;
            }
            Data::Suggestions(list) => {
                for (id, s) in list {
                    if let Some(p) = self.picker.as_mut()
                        && p.message_id == id
                    {
                        p.suggestions = s.clone();
                    }
                    self.suggestions.insert(id, s);
                }
            }
            _ => {}
        }
        vec![]
    }

    /// Answers for the folder picker: folders, the first-sync plan, choices and scope.
    fn apply_folders(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::Folders(generation, r) if generation == self.folders.generation => {
                self.folders.loaded = true;
                match r {
                    Ok(rows) => {
                        self.folders.selected =
                            self.folders.selected.min(rows.len().saturating_sub(1));
                        self.folders.rows = rows;
                        self.folders.error = None;
                    }
                    Err(e) => self.folders.error = Some(e),
                }
            }
            Data::Plan(job, r) => {
                if let Some(p) = self.folders.plan.as_mut()
                    && p.job == job
                {
                    p.result = Some(r);
                }
            }
            Data::FoldersChanged(account_id, r) => {
                let ok = r.is_ok();
                self.apply(Data::Notice(r));
                if ok {
                    let mut c = self.load_pane(PaneId::Folders);
                    c.push(Command::KickSync { account_id });
                    return c;
                }
            }
            Data::ScopeApplied(r) => {
                let ok = r.is_ok();
                self.apply(Data::Notice(r));
                if ok {
                    // The accounts (and their scope) come back with the dashboard; the sync
                    // tasks restart from the changed config.
                    let mut c = self.reload();
                    c.push(Command::RestartSync);
                    return c;
                }
            }
            _ => {}
        }
        vec![]
    }

    /// Answers for the message view and the previews: the message, its body, its changes.
    fn apply_message(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::Message(generation, r) => {
                let mut fetch = None;
                for pane in [&mut self.message, &mut self.mail.preview] {
                    if pane.generation != generation {
                        continue;
                    }
                    // Every reload asks again (the I/O layer runs one fetch per message),
                    // unless it failed for a reason that needs the operator.
                    let failed = matches!(pane.body, BodyState::Failed(_));
                    if let Ok(d) = r.as_ref()
                        && !d.body_fetched
                        && !(failed && pane.fetching == Some(d.message.id))
                    {
                        if pane.fetching != Some(d.message.id) || failed {
                            pane.body = BodyState::Fetching;
                        }
                        pane.fetching = Some(d.message.id);
                        fetch = Some(d.message.id);
                    }
                }
                for pane in [&mut self.message, &mut self.preview, &mut self.mail.preview] {
                    if pane.generation == generation {
                        pane.loaded = true;
                        match r.as_ref() {
                            Ok(d) => {
                                if d.body_fetched {
                                    pane.body = BodyState::Idle;
                                }
                                pane.detail = Some(d.clone());
                                pane.error = None;
                            }
                            Err(e) => pane.error = Some(e.clone()),
                        }
                    }
                }
                if let Some(id) = fetch {
                    return vec![Command::FetchBody { id }];
                }
            }
            Data::BodyWaiting(id, error, retry_secs) => {
                for pane in [&mut self.message, &mut self.mail.preview] {
                    if pane.fetching == Some(id) {
                        let attempt = match &pane.body {
                            BodyState::Waiting { attempt, .. } => attempt + 1,
                            _ => 1,
                        };
                        pane.body = BodyState::Waiting {
                            error: error.clone(),
                            retry_secs,
                            attempt,
                        };
                    }
                }
            }
            Data::BodyFetched(id, r) => return self.body_fetched(id, r),
            Data::Changes(generation, r) => {
                for pane in [&mut self.message, &mut self.mail.preview] {
                    if pane.changes_generation == generation
                        && let Ok(c) = r.as_ref()
                    {
                        pane.changes = c.clone();
                    }
                }
            }
            _ => {}
        }
        vec![]
    }

    /// A body arrived (read the message again) or cannot be fetched (say why).
    fn body_fetched(&mut self, id: i64, r: Result<(), AppError>) -> Vec<Command> {
        let mut cmds = Vec::new();
        let mut generations = Vec::new();
        for pane in [&mut self.message, &mut self.mail.preview] {
            if pane.fetching != Some(id) {
                continue;
            }
            match &r {
                Ok(()) => pane.body = BodyState::Idle,
                Err(e) => pane.body = BodyState::Failed(e.clone()),
            }
            generations.push(r.is_ok());
        }
        if r.is_ok() {
            if self.message.fetching == Some(id) {
                let generation = self.next_generation();
                self.message.generation = generation;
                cmds.push(Command::LoadMessage { generation, id });
            }
            if self.mail.preview.fetching == Some(id) {
                let generation = self.next_generation();
                self.mail.preview.generation = generation;
                cmds.push(Command::LoadMessage { generation, id });
            }
        } else if generations.is_empty()
            && let Err(e) = r
        {
            self.toast(format!("{} — fix: {}", e.summary, e.fix), true);
        }
        cmds
    }

    /// Answers for the mail pane: the tree, index windows, threads, done changes.
    fn apply_mail(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::MailTree(generation, r) if generation == self.mail.tree_generation => {
                self.mail.tree_loaded = true;
                match r {
                    Ok(tree) => {
                        self.mail.tree = tree;
                        self.mail.tree_error = None;
                        let n = self.mail.nodes().len();
                        self.mail.node = self.mail.node.min(n.saturating_sub(1));
                        // The first visit: the first account's INBOX opens by itself.
                        if self.mail.source.is_none() && n > 1 {
                            self.mail.node = 1;
                            return self.update_mail(crate::tui::action::Action::Open);
                        }
                    }
                    Err(e) => self.mail.tree_error = Some(e),
                }
            }
            Data::MailIndex(p) => {
                let new = self.mail.index.apply(p);
                return if new {
                    self.load_mail_preview()
                } else {
                    vec![]
                };
            }
            Data::Thread(generation, thread_id, r) => {
                if let Some(e) = self.mail.expanded.as_mut()
                    && e.generation == generation
                    && e.thread_id == thread_id
                {
                    match r {
                        Ok(rows) => e.rows = rows,
                        Err(err) => {
                            self.mail.expanded = None;
                            self.toast(format!("{} — fix: {}", err.summary, err.fix), true);
                        }
                    }
                }
            }
            Data::MailActed(r) => return self.mail_acted(r),
            _ => {}
        }
        vec![]
    }

    /// A change to a message is done locally: say whether it reached the server; if it waits
    /// in the queue, the account's sync runs now to push it.
    fn mail_acted(&mut self, r: Result<MailActed, AppError>) -> Vec<Command> {
        match r {
            Ok(a) => {
                let mut cmds = Vec::new();
                let text = match (&a.queued_for, &a.not_pushed) {
                    (None, _) => format!("{} — on the server", a.text),
                    (Some(_), Some(e)) => {
                        format!(
                            "{} — queued: the server did not take it yet ({})",
                            a.text, e.summary
                        )
                    }
                    (Some(_), None) => format!("{} — queued for the server", a.text),
                };
                self.toast(text, a.not_pushed.is_some());
                if let Some(account_id) = a.queued_for {
                    cmds.push(Command::KickSync { account_id });
                }
                cmds.extend(self.load_pane(self.pane));
                if self.pane == PaneId::Message && self.message.back == Some(PaneId::Mail) {
                    cmds.extend(self.load_mail());
                }
                cmds
            }
            Err(e) => {
                self.toast(format!("{} — fix: {}", e.summary, e.fix), true);
                vec![]
            }
        }
    }

    /// Answers for drafts and completions of paths.
    fn apply_drafts(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::DraftSaved(r) => {
                self.compose.saving = false;
                match r {
                    Ok(id) => {
                        self.compose.draft_id = Some(id);
                        if self.compose.dirty {
                            return self.draft_changed();
                        }
                    }
                    Err(e) => self.toast(
                        format!("the draft was not saved: {} — fix: {}", e.summary, e.fix),
                        true,
                    ),
                }
            }
            Data::DraftUploaded(r) => match r {
                Ok(u) => {
                    if self.compose.draft_id.is_none() || self.compose.draft_id == Some(u.id) {
                        self.compose.draft_id = Some(u.id);
                        self.compose.uploaded = Some(u.folder.clone());
                    }
                    self.toast(format!("draft saved, and stored in {}", u.folder), false);
                }
                Err(e) => self.toast(
                    format!(
                        "draft saved here; not in the Drafts folder: {} — fix: {}",
                        e.summary, e.fix
                    ),
                    true,
                ),
            },
            Data::DraftForgotten(r) => {
                self.apply(Data::Notice(r));
            }
            Data::Drafts(r) => match r {
                Ok(drafts) if self.pane == PaneId::Compose || !drafts.is_empty() => {
                    // At start: the newest draft back into an empty compose form.
                    if self.drafts_pick.is_none() && self.pane != PaneId::Compose {
                        if self.compose.is_blank()
                            && self.compose.draft_id.is_none()
                            && let Some(d) = drafts.first()
                        {
                            self.open_draft(d);
                            self.toast(
                                format!(
                                    "a draft was restored: \"{}\" (6 compose; ctrl-o lists {} draft(s))",
                                    crate::mail::sanitize::clean_line(&d.content.subject),
                                    drafts.len()
                                ),
                                false,
                            );
                        }
                    } else {
                        self.drafts_pick = Some(DraftsPick {
                            drafts,
                            selected: 0,
                        });
                    }
                }
                Ok(_) => {}
                Err(e) => self.toast(format!("{} — fix: {}", e.summary, e.fix), true),
            },
            Data::PathCompletions(generation, paths)
                if generation == self.compose.completion_generation =>
            {
                self.compose.suggestions = paths.into_iter().map(|p| (String::new(), p)).collect();
            }
            _ => {}
        }
        vec![]
    }

    /// Answers for customers and their timelines.
    fn apply_customers(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::Customers(p) => {
                let fresh = self.customers.list.apply(p);
                if fresh && self.customers.open_on_load {
                    self.customers.open_on_load = false;
                    return self.update_customers(crate::tui::action::Action::Open);
                }
            }
            Data::Timeline(p) => {
                self.customers.timeline.apply(p);
            }
            _ => {}
        }
        vec![]
    }

    /// Answers for compose and the outbox: completions, the edited body, sends, outbox pages.
    fn apply_compose(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::Outbox(p) => {
                self.outbox.apply(p);
            }
            Data::Sent(r) => {
                let ok = r.is_ok();
                self.compose.sending = false;
                self.apply(Data::Notice(r));
                if ok {
                    // Sent: its draft goes (here and in the Drafts folder); watch it go
                    // through the outbox's states.
                    let draft = self.compose.draft_id;
                    self.compose = ComposeForm::default();
                    let mut c = self.go(PaneId::Outbox);
                    c.push(Command::LoadDashboard);
                    if let Some(id) = draft {
                        c.push(Command::ForgetDraft { id, tell: false });
                    }
                    return c;
                }
            }
            Data::Completions(generation, r)
                if generation == self.compose.completion_generation =>
            {
                match r {
                    Ok(s) => self.compose.suggestions = s,
                    Err(e) => self.toast(e.summary, true),
                }
            }
            Data::Edited(r) => match r {
                Ok(text) => {
                    self.compose.values[F_BODY] = text;
                    self.compose.field = F_BODY;
                    return self.draft_changed();
                }
                Err(e) => self.toast(format!("{} — {}", e.summary, e.fix), true),
            },
            _ => {}
        }
        vec![]
    }

    /// Answers for the log: events and the quarantine.
    fn apply_log(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::Events(p) => {
                self.log.events.apply(p);
            }
            Data::Quarantine(p) => {
                self.log.quar.apply(p);
            }
            Data::QuarantineDone(r) => {
                self.apply(Data::Notice(r));
                return self.load_pane(PaneId::Log);
            }
            _ => {}
        }
        vec![]
    }
}
