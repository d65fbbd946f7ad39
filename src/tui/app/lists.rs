//! Keys on the list panes: dashboard, folders (and the first-sync plan), triage, message,
//! customers, outbox, log.

use crate::tui::action::{Action, Command, PaneId};

use super::*;

impl App {
    pub(super) fn update_dashboard(&mut self, action: Action) -> Vec<Command> {
        let n = self
            .dashboard
            .status
            .as_ref()
            .map(|s| s.accounts.len())
            .unwrap_or(0);
        if let Some(t) = self.nav_target(&action, self.dashboard.selected, n) {
            self.dashboard.selected = t.clamp(0, n.saturating_sub(1) as isize) as usize;
            return vec![];
        }
        let name = self
            .dashboard
            .status
            .as_ref()
            .and_then(|s| s.accounts.get(self.dashboard.selected))
            .map(|a| a.name.clone());
        match action {
            Action::NewAccount => {
                if self.setup.edit.is_some() {
                    self.setup = SetupForm::default();
                }
                self.go(PaneId::Setup)
            }
            Action::EditAccount => match name {
                Some(name) => {
                    let job = self.next_generation();
                    self.setup = SetupForm {
                        edit: Some(EditOf {
                            name: name.clone(),
                            job,
                            original: None,
                            read_only: None,
                        }),
                        field: F_EMAIL,
                        ..SetupForm::default()
                    };
                    self.pane = PaneId::Setup;
                    vec![Command::LoadEdit { job, name }]
                }
                None => vec![],
            },
            Action::TestAccount => match name {
                Some(name) => {
                    let job = self.next_generation();
                    let mut run = CheckRun::new(job, format!("Test {name}"));
                    run.account = Some(name.clone());
                    self.dashboard.run = Some(run);
                    vec![Command::TestStored { job, name }]
                }
                None => vec![],
            },
            Action::Open => {
                if let Some(i) = name
                    .as_ref()
                    .and_then(|n| self.accounts.iter().position(|a| &a.name == n))
                {
                    self.folders.account = i;
                }
                self.go(PaneId::Folders)
            }
            Action::SyncNow => {
                let id = name
                    .as_ref()
                    .and_then(|n| self.accounts.iter().find(|a| &a.name == n))
                    .map(|a| a.id.clone());
                match id {
                    Some(account_id) => {
                        self.toast(
                            format!("sync of {} asked for", name.unwrap_or_default()),
                            false,
                        );
                        vec![Command::KickSync { account_id }]
                    }
                    None => vec![],
                }
            }
            Action::LoginAccount => match name {
                Some(name) => self.start_login(name),
                None => vec![],
            },
            Action::RemoveAccount => {
                if let Some(name) = name {
                    self.dialog = Some(Dialog {
                        text: format!(
                            "Remove account {name}? Its cached mail goes; pairings, outbox and audit log stay."
                        ),
                        then: Pending::RemoveAccount { name },
                    });
                }
                vec![]
            }
            _ => vec![],
        }
    }

    /// Starts `account login NAME`; the dashboard shows what to do as it comes.
    pub(super) fn start_login(&mut self, name: String) -> Vec<Command> {
        let job = self.next_generation();
        self.dashboard.login = Some(LoginRun {
            job,
            name: name.clone(),
            lines: Vec::new(),
            done: None,
        });
        vec![Command::Login { job, name }]
    }

    pub(super) fn update_folders(&mut self, action: Action) -> Vec<Command> {
        let n = self.folders.rows.len();
        if let Some(t) = self.nav_target(&action, self.folders.selected, n) {
            self.folders.selected = t.clamp(0, n.saturating_sub(1) as isize) as usize;
            return vec![];
        }
        match action {
            Action::NextAccount => {
                if !self.accounts.is_empty() {
                    self.folders.account = (self.folders.account + 1) % self.accounts.len();
                    self.folders.rows.clear();
                    self.folders.plan = None;
                    self.folders.selected = 0;
                    self.folders.loaded = false;
                }
                self.load_pane(PaneId::Folders)
            }
            Action::Back => self.go(PaneId::Dashboard),
            Action::ToggleSync | Action::SetSent => {
                let Some(acct) = self.accounts.get(self.folders.account).cloned() else {
                    return vec![];
                };
                let Some(row) = self.folders.rows.get(self.folders.selected).cloned() else {
                    return vec![];
                };
                let row = row.folder;
                if action == Action::SetSent {
                    return vec![Command::SetSent {
                        account_id: acct.id,
                        account: acct.name,
                        folder: row.name,
                    }];
                }
                // Exactly the folders that sync, as `folders --sync A,B` takes them.
                let mut names: Vec<String> = self
                    .folders
                    .rows
                    .iter()
                    .map(|e| &e.folder)
                    .filter(|f| f.sync_enabled && f.name != row.name)
                    .map(|f| f.name.clone())
                    .collect();
                if !row.sync_enabled {
                    names.push(row.name.clone());
                }
                vec![Command::SetFolderSync {
                    account_id: acct.id,
                    account: acct.name,
                    names,
                }]
            }
            Action::LoadFolders => match self
                .accounts
                .get(self.folders.account)
                .map(|a| a.name.clone())
            {
                Some(account) => {
                    let job = self.next_generation();
                    self.toast(format!("reading the folder list of {account}…"), false);
                    vec![Command::RefreshFolders { job, account }]
                }
                None => vec![],
            },
            Action::Plan => {
                let p = self.folders.plan.clone().unwrap_or_default();
                self.start_plan(p.since, p.unread_only)
            }
            Action::PlanUnreadOnly => {
                let p = self.folders.plan.clone().unwrap_or_default();
                self.start_plan(p.since, !p.unread_only)
            }
            Action::PlanSince => {
                let cur = self.folders.plan.as_ref().and_then(|p| p.since.clone());
                self.prompt = Some(Prompt {
                    label: "Plan: only mail since (YYYY-MM-DD, or new: no old mail)".into(),
                    value: cur.unwrap_or_default(),
                    then: PromptFor::PlanSince,
                });
                vec![]
            }
            Action::ApplyScope => {
                let Some(acct) = self.accounts.get(self.folders.account) else {
                    return vec![];
                };
                let Some(plan) = self.folders.plan.as_ref() else {
                    self.toast("preview a scope first: P, then u / d", true);
                    return vec![];
                };
                let since = plan.since.clone().filter(|s| !s.trim().is_empty());
                self.dialog = Some(Dialog {
                    text: format!(
                        "Sync account {} from now on: {}? This only narrows what sync fetches next.",
                        crate::mail::sanitize::clean_line(&acct.name),
                        scope_text(since.as_deref(), plan.unread_only)
                    ),
                    then: Pending::ApplyScope {
                        account: acct.name.clone(),
                        since,
                        unread_only: plan.unread_only,
                    },
                });
                vec![]
            }
            _ => vec![],
        }
    }

    pub(super) fn update_triage(&mut self, action: Action) -> Vec<Command> {
        if let Some(t) = self.nav_target(&action, self.triage.selected, self.triage.total) {
            let mut cmds = Vec::new();
            if let Some(offset) = self.triage.move_to(t, self.view_rows()) {
                let after = offset
                    .checked_sub(1)
                    .and_then(|i| self.triage.get(i))
                    .and_then(|m| Some((m.date.clone()?, m.id)));
                let generation = self.next_generation();
                self.triage.generation = generation;
                cmds.push(Command::LoadTriage {
                    generation,
                    offset: offset as i64,
                    limit: PAGE as i64,
                    after,
                });
            }
            cmds.extend(self.load_preview());
            return cmds;
        }
        let current = self.triage.current().cloned();
        match action {
            Action::Open => match current {
                Some(m) => self.open_message(m.id, PaneId::Triage),
                None => vec![],
            },
            Action::Back => self.go(PaneId::Dashboard),
            Action::Pair => match current {
                Some(m) => {
                    let generation = self.next_generation();
                    self.picker = Some(Picker {
                        message_id: m.id,
                        suggestions: self.suggestions.get(&m.id).cloned().unwrap_or_default(),
                        generation,
                        ..Default::default()
                    });
                    vec![
                        Command::LoadPicker {
                            generation,
                            query: String::new(),
                        },
                        Command::LoadSuggestions { id: m.id },
                    ]
                }
                None => vec![],
            },
            Action::AddCustomer => {
                if let Some(m) = current {
                    // Name it now; the sender's display name is the suggestion.
                    self.prompt = Some(Prompt {
                        label: format!(
                            "New customer from {}: name",
                            crate::mail::sanitize::clean_line(
                                m.from_addr.as_deref().unwrap_or("?")
                            )
                        ),
                        value: crate::mail::sanitize::clean_line(
                            m.from_name.as_deref().unwrap_or(""),
                        ),
                        then: PromptFor::AddCustomer { id: m.id },
                    });
                }
                vec![]
            }
            Action::Undo => vec![Command::TriageUndo],
            Action::Block | Action::BlockDomain => match current {
                // First ask how many cached messages it affects, then confirm.
                Some(m) => vec![Command::TriageBlockPlan {
                    id: m.id,
                    domain: action == Action::BlockDomain,
                }],
                None => vec![],
            },
            Action::Delete => {
                if let Some(m) = current {
                    self.dialog = Some(Dialog {
                        text: format!(
                            "Delete \"{}\" (move it to Trash on the server)? Undo brings it back.",
                            crate::mail::sanitize::clean_line(m.subject.as_deref().unwrap_or(""))
                        ),
                        then: Pending::Delete { id: m.id },
                    });
                }
                vec![]
            }
            _ => vec![],
        }
    }

    pub(super) fn start_plan(&mut self, since: Option<String>, unread_only: bool) -> Vec<Command> {
        let Some(account) = self
            .accounts
            .get(self.folders.account)
            .map(|a| a.name.clone())
        else {
            return vec![];
        };
        let job = self.next_generation();
        self.folders.plan = Some(PlanView {
            job,
            since: since.clone(),
            unread_only,
            result: None,
        });
        vec![Command::Plan {
            job,
            account,
            since,
            unread_only,
        }]
    }

    pub(super) fn open_message(&mut self, id: i64, from: PaneId) -> Vec<Command> {
        let generation = self.next_generation();
        self.message = MessagePane {
            generation,
            back: Some(from),
            ..Default::default()
        };
        self.pane = PaneId::Message;
        vec![
            Command::StopBodyFetch,
            Command::LoadMessage { generation, id },
        ]
    }

    pub(super) fn update_message(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::Back => {
                let back = self.message.back.unwrap_or(PaneId::Triage);
                self.go(back)
            }
            Action::Up => {
                self.message.scroll = self.message.scroll.saturating_sub(1);
                vec![]
            }
            Action::Down => {
                self.message.scroll = self.message.scroll.saturating_add(1);
                vec![]
            }
            Action::PageUp => {
                self.message.scroll = self.message.scroll.saturating_sub(self.view_rows() as u16);
                vec![]
            }
            Action::PageDown => {
                self.message.scroll = self.message.scroll.saturating_add(self.view_rows() as u16);
                vec![]
            }
            Action::Top => {
                self.message.scroll = 0;
                vec![]
            }
            Action::Reply | Action::ReplyAll => self.start_reply(action == Action::ReplyAll),
            Action::Forward => self.answer_from_view(DraftKind::Forward),
            Action::NextHit | Action::PrevHit if self.message.back == Some(PaneId::Mail) => {
                self.open_neighbour(if action == Action::NextHit { 1 } else { -1 })
            }
            Action::ToggleRead
            | Action::ToggleFlag
            | Action::MoveMessage
            | Action::DeleteMessage
            | Action::Archive => self.change_viewed(action),
            Action::NextAttachment => {
                let n = self
                    .message
                    .detail
                    .as_ref()
                    .map(|d| d.attachments.len())
                    .unwrap_or(0);
                if n > 0 {
                    self.message.attachment = (self.message.attachment + 1) % n;
                }
                vec![]
            }
            Action::SaveAttachment => {
                let Some(d) = &self.message.detail else {
                    return vec![];
                };
                match d.attachments.get(self.message.attachment) {
                    Some(a) => {
                        let name = a
                            .name
                            .as_deref()
                            .map(crate::mail::sanitize::clean_line)
                            .map(|n| n.replace(['/', '\\'], "_"))
                            .filter(|n| !n.trim().is_empty() && n != "." && n != "..")
                            .unwrap_or_else(|| format!("attachment-{}", a.index));
                        self.prompt = Some(Prompt {
                            label: format!("Save attachment [{}] to", a.index),
                            value: name,
                            then: PromptFor::SaveAttachment {
                                id: d.message.id,
                                index: a.index,
                            },
                        });
                    }
                    None => self.toast("this message has no attachments", true),
                }
                vec![]
            }
            _ => vec![],
        }
    }

    /// Read/unread, flag, move, delete or archive the message the view shows (its copy in the
    /// mail pane's account, else its first); a message moved away takes the view back.
    fn change_viewed(&mut self, action: Action) -> Vec<Command> {
        let Some(d) = self.message.detail.clone() else {
            return vec![];
        };
        let m = &d.message;
        let loc = self
            .mail
            .current()
            .filter(|r| r.id == m.id)
            .and_then(|r| m.locations.iter().find(|l| l.account_id == r.account_id))
            .or(m.locations.first());
        let Some(loc) = loc else {
            self.toast("this message is in no folder any more", true);
            return vec![];
        };
        let target = MessageTarget {
            id: m.id,
            account_id: loc.account_id.clone(),
            account: loc.account.clone(),
            seen: loc.flags.iter().any(|f| f == "\\Seen"),
            flagged: loc.flags.iter().any(|f| f == "\\Flagged"),
            subject: m.subject.clone(),
        };
        let leaves = matches!(action, Action::DeleteMessage | Action::Archive);
        let mut cmds = self.change_message(action, &target);
        if leaves {
            let back = self.message.back.unwrap_or(PaneId::Triage);
            cmds.extend(self.go(back));
        }
        cmds
    }

    pub(super) fn update_customers(&mut self, action: Action) -> Vec<Command> {
        let c = &mut self.customers;
        if c.searching {
            match action {
                Action::Input(ch) => c.query.push(ch),
                Action::Backspace => {
                    c.query.pop();
                }
                Action::Back => {
                    c.searching = false;
                    return vec![];
                }
                Action::Open => {
                    // Enter ends the search and takes the customer it selects — of the final
                    // query's answer, which may still be on its way.
                    c.searching = false;
                    c.open_on_load = true;
                }
                _ => return vec![],
            }
            c.list.selected = 0;
            c.list.offset = 0;
            return self.load_pane(PaneId::Customers);
        }
        if c.timeline_focus && c.timeline_of.is_some() {
            let (sel, total) = (c.timeline.selected, c.timeline.total);
            if let Some(t) = self.nav_target(&action, sel, total) {
                let view = self.view_rows();
                if let (Some(offset), Some(customer_id)) = (
                    self.customers.timeline.move_to(t, view),
                    self.customers.timeline_of,
                ) {
                    let after = offset
                        .checked_sub(1)
                        .and_then(|i| self.customers.timeline.get(i))
                        .map(|m| (m.date.clone(), m.id));
                    let generation = self.next_generation();
                    self.customers.timeline.generation = generation;
                    return vec![Command::LoadTimeline {
                        generation,
                        customer_id,
                        offset: offset as i64,
                        limit: PAGE as i64,
                        after,
                    }];
                }
                return vec![];
            }
            match action {
                Action::Open => {
                    return match self.customers.timeline.current().map(|m| m.id) {
                        Some(id) => self.open_message(id, PaneId::Customers),
                        None => vec![],
                    };
                }
                Action::Back | Action::FocusTimeline => {
                    self.customers.timeline_focus = false;
                    return vec![];
                }
                _ => return vec![],
            }
        }
        let c = &mut self.customers;
        let (sel, total) = (c.list.selected, c.list.total);
        if let Some(t) = self.nav_target(&action, sel, total) {
            let view = self.view_rows();
            if let Some(offset) = self.customers.list.move_to(t, view) {
                let generation = self.next_generation();
                self.customers.list.generation = generation;
                return vec![Command::LoadCustomers {
                    generation,
                    query: self.customers.query.clone(),
                    offset: offset as i64,
                    limit: PAGE as i64,
                }];
            }
            return vec![];
        }
        match action {
            Action::Search => {
                self.customers.searching = true;
                vec![]
            }
            Action::Open => {
                let id = self.customers.list.current().map(|r| r.id);
                self.customers.timeline_of = id;
                self.customers.timeline_focus = id.is_some();
                self.customers.timeline = Paged::default();
                match id {
                    Some(customer_id) => {
                        let generation = self.next_generation();
                        self.customers.timeline.generation = generation;
                        vec![Command::LoadTimeline {
                            generation,
                            customer_id,
                            offset: 0,
                            limit: PAGE as i64,
                            after: None,
                        }]
                    }
                    None => vec![],
                }
            }
            Action::FocusTimeline => {
                self.customers.timeline_focus = self.customers.timeline_of.is_some();
                vec![]
            }
            Action::Back => {
                if self.customers.timeline_of.take().is_some() {
                    vec![]
                } else {
                    self.go(PaneId::Dashboard)
                }
            }
            _ => vec![],
        }
    }

    pub(super) fn update_outbox(&mut self, action: Action) -> Vec<Command> {
        if let Some(t) = self.nav_target(&action, self.outbox.selected, self.outbox.total) {
            if let Some(offset) = self.outbox.move_to(t, self.view_rows()) {
                let generation = self.next_generation();
                self.outbox.generation = generation;
                return vec![Command::LoadOutbox {
                    generation,
                    offset: offset as i64,
                    limit: PAGE as i64,
                }];
            }
            return vec![];
        }
        match action {
            Action::Retry | Action::CancelItem => match self.outbox.current().map(|o| o.id) {
                Some(id) if action == Action::Retry => vec![Command::OutboxRetry { id }],
                Some(id) => vec![Command::OutboxCancel { id }],
                None => vec![],
            },
            Action::Resend | Action::DropItem => {
                let item = self.outbox.current().map(|o| (o.id, o.state));
                if let Some((id, state)) = item
                    && state != crate::ops::outbox::OutboxState::Uncertain
                {
                    self.toast(
                        format!(
                            "#{id} is {state}: resend and drop are for an uncertain item (r retries a queued or failed one)"
                        ),
                        true,
                    );
                    return vec![];
                }
                if let Some(id) = item.map(|i| i.0) {
                    let (text, then) = if action == Action::Resend {
                        (
                            format!(
                                "Send #{id} again? If the first attempt did arrive, the recipient gets it twice."
                            ),
                            Pending::Resend { id },
                        )
                    } else {
                        (
                            format!("Give up on #{id} and assume it was delivered?"),
                            Pending::Drop { id },
                        )
                    };
                    self.dialog = Some(Dialog { text, then });
                }
                vec![]
            }
            Action::Back => self.go(PaneId::Dashboard),
            _ => vec![],
        }
    }

    pub(super) fn update_log(&mut self, action: Action) -> Vec<Command> {
        if action == Action::ToggleTraceView {
            self.log.trace = !self.log.trace;
            return self.load_pane(PaneId::Log);
        }
        if self.log.trace {
            return self.update_trace(action);
        }
        if self.log.searching {
            match action {
                Action::Input(ch) => self.log.search.push(ch),
                Action::Backspace => {
                    self.log.search.pop();
                }
                Action::Back => {
                    self.log.searching = false;
                    return vec![];
                }
                _ => return vec![],
            }
            self.log.events.selected = 0;
            self.log.events.offset = 0;
            return self.load_pane(PaneId::Log);
        }
        let view = self.view_rows();
        let list_total = if self.log.quarantine {
            self.log.quar.total
        } else {
            self.log.events.total
        };
        let selected = if self.log.quarantine {
            self.log.quar.selected
        } else {
            self.log.events.selected
        };
        if let Some(t) = self.nav_target(&action, selected, list_total) {
            let moved = if self.log.quarantine {
                self.log.quar.move_to(t, view)
            } else {
                self.log.events.move_to(t, view)
            };
            if let Some(offset) = moved {
                let generation = self.next_generation();
                if self.log.quarantine {
                    self.log.quar.generation = generation;
                    return vec![Command::LoadQuarantine {
                        generation,
                        offset: offset as i64,
                        limit: PAGE as i64,
                    }];
                }
                self.log.events.generation = generation;
                return vec![Command::LoadEvents {
                    generation,
                    filter: self.log.filter(),
                    offset: offset as i64,
                    limit: PAGE as i64,
                }];
            }
            return vec![];
        }
        match action {
            Action::CycleLevel => {
                self.log.level = (self.log.level + 3) % 4; // error → debug → info → warn → error
                self.log.events.selected = 0;
                self.log.events.offset = 0;
                self.load_pane(PaneId::Log)
            }
            Action::Search => {
                self.log.searching = true;
                vec![]
            }
            Action::ToggleQuarantine => {
                self.log.quarantine = !self.log.quarantine;
                self.load_pane(PaneId::Log)
            }
            Action::QuarantineRetry | Action::QuarantineSkip | Action::QuarantineSave
                if self.log.quarantine =>
            {
                let Some(id) = self.log.quar.current().map(|q| q.id) else {
                    return vec![];
                };
                match action {
                    Action::QuarantineRetry => {
                        self.toast(format!("fetching quarantined message {id} again…"), false);
                        vec![Command::QuarantineRetry { id }]
                    }
                    Action::QuarantineSkip => vec![Command::QuarantineSkip { id }],
                    _ => {
                        self.prompt = Some(Prompt {
                            label: format!("Save quarantined message {id} to"),
                            value: format!("quarantine-{id}.eml"),
                            then: PromptFor::QuarantineSave { id },
                        });
                        vec![]
                    }
                }
            }
            Action::Back => self.go(PaneId::Dashboard),
            _ => vec![],
        }
    }
}

/// A sync scope in words, as the plan and the folder picker show it.
pub fn scope_text(since: Option<&str>, unread_only: bool) -> String {
    format!(
        "{} · {}",
        match since.map(|d| (d, crate::config::HistoryScope::parse(d))) {
            None => "all history".into(),
            Some((_, Ok(scope))) => scope.describe(),
            // Typed but not (yet) valid: show it as typed.
            Some((d, Err(_))) => format!("since {}", crate::mail::sanitize::clean_line(d)),
        },
        if unread_only {
            "unread only"
        } else {
            "read and unread"
        }
    )
}
