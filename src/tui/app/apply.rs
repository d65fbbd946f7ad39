//! Answers from the I/O layer (`Data`) folded into the state; stale ones are dropped.

use crate::tui::action::{Command, PaneId};

use super::*;

impl App {
    /// Applies an answer from the I/O layer; returns follow-up commands.
    pub fn apply(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::DbChanged => self.reload(),
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
            d @ (Data::Message(..) | Data::BodyFetched(..)) => self.apply_message(d),
            d @ (Data::Customers(..) | Data::Timeline(..)) => self.apply_customers(d),
            d @ (Data::Completions(..) | Data::Edited(..) | Data::Sent(..) | Data::Outbox(..)) => {
                self.apply_compose(d)
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
                    self.toast(format!("added account {name}"), false);
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

    /// Answers for the message view: the message and its body.
    fn apply_message(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::Message(generation, r) => {
                let mut fetch = None;
                if self.message.generation == generation
                    && let Ok(d) = r.as_ref()
                    && !d.body_fetched
                    && self.message.fetching != Some(d.message.id)
                {
                    self.message.fetching = Some(d.message.id);
                    fetch = Some(d.message.id);
                }
                for pane in [&mut self.message, &mut self.preview] {
                    if pane.generation == generation {
                        pane.loaded = true;
                        match r.as_ref() {
                            Ok(d) => {
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
            Data::BodyFetched(id, r) => {
                let current = self.message.detail.as_ref().map(|d| d.message.id);
                match r {
                    Ok(()) if current == Some(id) => {
                        let generation = self.next_generation();
                        self.message.generation = generation;
                        return vec![Command::LoadMessage { generation, id }];
                    }
                    Ok(()) => {}
                    Err(e) => {
                        self.toast(format!("{} — fix: {}", e.summary, e.fix), true);
                    }
                }
            }
            _ => {}
        }
        vec![]
    }

    /// Answers for customers and their timelines.
    fn apply_customers(&mut self, data: Data) -> Vec<Command> {
        match data {
            Data::Customers(p) => {
                self.customers.list.apply(p);
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
                    // Watch it go through the outbox's states.
                    self.compose = ComposeForm {
                        values: vec![String::new(); COMPOSE_FIELDS.len()],
                        ..Default::default()
                    };
                    let mut c = self.go(PaneId::Outbox);
                    c.push(Command::LoadDashboard);
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
                    let body = COMPOSE_FIELDS.len() - 1;
                    self.compose.values[body] = text;
                    self.compose.field = body;
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
