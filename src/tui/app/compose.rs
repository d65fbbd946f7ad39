//! Keys on the compose pane: From (account or alias), To/Cc/Bcc/Reply-To with completion from
//! customers and known senders, subject, attachments with path completion, the body inline or
//! in $EDITOR; reply, reply-all and forward; the draft saved as it is typed (and to the Drafts
//! folder on leaving or `ctrl-d`), restored on the next start.

use crate::ops::compose::{Draft as SavedDraft, DraftContent, split_addresses};
use crate::ops::messages::Addr;
use crate::tui::action::{Action, Command, Draft, PaneId};

use super::*;

impl App {
    pub(super) fn update_compose(&mut self, action: Action) -> Vec<Command> {
        let n = COMPOSE_FIELDS.len();
        let choices = from_choices(&self.accounts).len().max(1);
        let c = &mut self.compose;
        let mut typed = false;
        match action {
            Action::Back => return self.leave_compose(),
            Action::NextField => c.field = (c.field + 1) % n,
            Action::PrevField => c.field = (c.field + n - 1) % n,
            Action::Input(ch) if c.field != F_FROM => {
                c.values[c.field].push(ch);
                typed = true;
            }
            Action::ChoiceNext if c.field == F_FROM => {
                c.from = (c.from + 1) % choices;
                typed = true;
            }
            Action::ChoicePrev if c.field == F_FROM => {
                c.from = (c.from + choices - 1) % choices;
                typed = true;
            }
            Action::Newline if c.field == F_BODY => {
                c.values[F_BODY].push('\n');
                typed = true;
            }
            Action::Newline => c.field = (c.field + 1) % n,
            Action::Backspace if c.field != F_FROM => {
                c.values[c.field].pop();
                typed = true;
            }
            Action::ClearField if c.field != F_FROM => {
                c.values[c.field].clear();
                typed = true;
            }
            Action::Complete if take_suggestion(c) => typed = true,
            Action::Send => return self.send_draft(),
            Action::Editor => {
                return vec![Command::EditBody {
                    text: self.compose.values[F_BODY].clone(),
                }];
            }
            Action::SaveDraft => return self.upload_draft(),
            Action::DiscardDraft => {
                self.dialog = Some(Dialog {
                    text: "Discard this draft? It is removed here and from the Drafts folder."
                        .into(),
                    then: Pending::DiscardDraft {
                        id: self.compose.draft_id,
                    },
                });
                return vec![];
            }
            Action::OpenDrafts => return vec![Command::LoadDrafts],
            _ => {}
        }
        let mut cmds = if typed { self.draft_changed() } else { vec![] };
        cmds.extend(self.complete_field(typed));
        cmds
    }

    /// Asks for completions of what is being typed in the focused field.
    fn complete_field(&mut self, typed: bool) -> Vec<Command> {
        let c = &mut self.compose;
        if !address_field(c.field) && c.field != F_ATTACH {
            c.suggestions.clear();
            return vec![];
        }
        if !typed {
            return vec![];
        }
        // The address (or path) being typed: after the last comma.
        let token = c.values[c.field]
            .rsplit([',', ';'])
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if token.is_empty() {
            c.suggestions.clear();
            return vec![];
        }
        let attach = c.field == F_ATTACH;
        let generation = self.next_generation();
        self.compose.completion_generation = generation;
        if attach {
            vec![Command::CompletePath {
                generation,
                prefix: token,
            }]
        } else {
            vec![Command::LoadCompletions {
                generation,
                prefix: token,
            }]
        }
    }

    /// The form changed: save it as the draft (one save at a time; a change made while one
    /// is on its way is saved when it answers).
    pub(super) fn draft_changed(&mut self) -> Vec<Command> {
        let c = &mut self.compose;
        c.saved = false;
        if c.is_blank() && c.draft_id.is_none() {
            return vec![];
        }
        if c.saving {
            c.dirty = true;
            return vec![];
        }
        c.saving = true;
        c.dirty = false;
        vec![Command::SaveDraft {
            id: self.compose.draft_id,
            content: Box::new(self.draft_content()),
        }]
    }

    /// The form as a draft to save.
    pub(super) fn draft_content(&self) -> DraftContent {
        let c = &self.compose;
        let (account, from) = match from_account(&self.accounts, c.from) {
            Some((a, f)) => (Some(a), f),
            None => (None, None),
        };
        DraftContent {
            account,
            from,
            to: c.values[F_TO].clone(),
            cc: c.values[F_CC].clone(),
            bcc: c.values[F_BCC].clone(),
            reply_to: c.values[F_REPLY_TO].clone(),
            subject: c.values[F_SUBJECT].clone(),
            body: c.values[F_BODY].clone(),
            attachments: split_addresses(&c.values[F_ATTACH]),
            kind: c.kind,
            source_id: c.source,
        }
    }

    /// Leaving compose: a draft with something in it goes to the Drafts folder too.
    fn leave_compose(&mut self) -> Vec<Command> {
        let mut cmds = Vec::new();
        if !self.compose.is_blank() && !self.compose.saved && !self.accounts.is_empty() {
            cmds = self.upload_draft();
        }
        let back = self.go(PaneId::Dashboard);
        cmds.extend(back);
        cmds
    }

    /// Saves the draft and stores it in the account's Drafts folder.
    fn upload_draft(&mut self) -> Vec<Command> {
        if self.compose.is_blank() && self.compose.draft_id.is_none() {
            self.toast("nothing to save yet", false);
            return vec![];
        }
        self.toast("saving the draft (here and in the Drafts folder)…", false);
        self.compose.saved = true;
        vec![Command::UploadDraft {
            id: self.compose.draft_id,
            content: Box::new(self.draft_content()),
        }]
    }

    pub(super) fn send_draft(&mut self) -> Vec<Command> {
        let c = &self.compose;
        if c.sending {
            return vec![];
        }
        let Some((account, from)) = from_account(&self.accounts, c.from) else {
            self.toast("no account to send from: add one in Setup", true);
            return vec![];
        };
        // A reply whose To was left as proposed: the service computes it (Reply-To first).
        let to = match &c.prefilled_to {
            Some(p) if *p == c.values[F_TO] => vec![],
            _ => split_addresses(&c.values[F_TO]),
        };
        let reply_to = Some(c.values[F_REPLY_TO].trim().to_string()).filter(|r| !r.is_empty());
        let draft = Draft {
            account,
            from,
            to,
            cc: split_addresses(&c.values[F_CC]),
            bcc: split_addresses(&c.values[F_BCC]),
            reply_to,
            subject: c.values[F_SUBJECT].clone(),
            body: c.values[F_BODY].clone(),
            attachments: split_addresses(&c.values[F_ATTACH]),
            kind: c.kind,
            source: c.source,
            draft_id: c.draft_id,
        };
        self.compose.sending = true;
        self.toast("sending…", false);
        vec![Command::Send {
            draft: Box::new(draft),
        }]
    }

    /// A new message (from the mail pane's `c`).
    pub(super) fn start_new(&mut self) -> Vec<Command> {
        if !self.compose.is_blank() {
            self.toast(
                "compose holds a draft: finish it, or discard it (ctrl-x) first",
                true,
            );
            return self.go(PaneId::Compose);
        }
        let from = self.mail_account_choice();
        self.compose = ComposeForm {
            field: F_TO,
            from,
            ..Default::default()
        };
        self.go(PaneId::Compose)
    }

    /// The From choice of the account the mail pane shows, if any.
    fn mail_account_choice(&self) -> usize {
        self.mail
            .source
            .as_ref()
            .and_then(|s| s.account.as_deref())
            .map(|a| self.choice_of(a))
            .unwrap_or(0)
    }

    /// The From choice of account `name` (its own address).
    fn choice_of(&self, name: &str) -> usize {
        match self.accounts.iter().position(|a| a.name == name) {
            Some(i) => from_choices(&self.accounts)
                .iter()
                .position(|c| c.starts_with(&format!("{} <", self.accounts[i].name)))
                .unwrap_or(0),
            None => 0,
        }
    }

    /// Reply, reply-all or forward from the message view.
    pub(super) fn start_reply(&mut self, all: bool) -> Vec<Command> {
        self.answer_from_view(if all {
            DraftKind::ReplyAll
        } else {
            DraftKind::Reply
        })
    }

    pub(super) fn answer_from_view(&mut self, kind: DraftKind) -> Vec<Command> {
        let Some(d) = self.message.detail.clone() else {
            return vec![];
        };
        let s = &d.message;
        let account = s
            .locations
            .first()
            .map(|l| l.account.clone())
            .unwrap_or_default();
        self.start_answer(kind, s.id, &account, s.from.clone(), s.subject.clone())
    }

    /// Compose prefilled to answer (or forward) message `id` of `account`: the service quotes
    /// and threads it when sent.
    pub(super) fn start_answer(
        &mut self,
        kind: DraftKind,
        id: i64,
        account: &str,
        from: Option<Addr>,
        subject: Option<String>,
    ) -> Vec<Command> {
        if !self.compose.is_blank() {
            self.toast(
                "compose holds a draft: finish it, or discard it (ctrl-x) first",
                true,
            );
            return self.go(PaneId::Compose);
        }
        let subject = subject.unwrap_or_default();
        let mut values = vec![String::new(); COMPOSE_FIELDS.len()];
        let (field, prefilled_to) = if kind == DraftKind::Forward {
            values[F_SUBJECT] =
                crate::mail::sanitize::clean_line(&crate::ops::outbox::forward_subject(&subject));
            (F_TO, None)
        } else {
            let to = from.map(|a| a.address).unwrap_or_default();
            values[F_TO] = to.clone();
            values[F_SUBJECT] =
                crate::mail::sanitize::clean_line(&crate::mail::compose::reply_subject(&subject));
            (F_BODY, Some(to))
        };
        self.compose = ComposeForm {
            field,
            from: self.choice_of(account),
            values,
            kind,
            source: Some(id),
            prefilled_to,
            ..Default::default()
        };
        self.go(PaneId::Compose)
    }

    /// A saved draft into the form.
    pub(super) fn open_draft(&mut self, d: &SavedDraft) {
        let c = &d.content;
        let mut values = vec![String::new(); COMPOSE_FIELDS.len()];
        values[F_TO] = c.to.clone();
        values[F_CC] = c.cc.clone();
        values[F_BCC] = c.bcc.clone();
        values[F_REPLY_TO] = c.reply_to.clone();
        values[F_SUBJECT] = c.subject.clone();
        values[F_BODY] = c.body.clone();
        values[F_ATTACH] = c.attachments.join(", ");
        let from = match (&c.account, &c.from) {
            (Some(a), Some(alias)) => from_choices(&self.accounts)
                .iter()
                .position(|x| *x == format!("{a} <{alias}>"))
                .unwrap_or_else(|| self.choice_of(a)),
            (Some(a), None) => self.choice_of(a),
            _ => 0,
        };
        self.compose = ComposeForm {
            field: F_TO,
            from,
            values,
            kind: c.kind,
            source: c.source_id,
            draft_id: Some(d.id),
            saved: true,
            uploaded: d.uploaded.as_ref().map(|(f, _)| f.clone()),
            ..Default::default()
        };
    }

    /// Keys while the drafts list is open.
    pub(super) fn update_drafts_pick(&mut self, action: Action) -> Vec<Command> {
        let Some(p) = self.drafts_pick.as_mut() else {
            return vec![];
        };
        match action {
            Action::Up => p.selected = p.selected.saturating_sub(1),
            Action::Down => p.selected = (p.selected + 1).min(p.drafts.len().saturating_sub(1)),
            Action::Dismiss => self.drafts_pick = None,
            Action::Confirm => {
                let chosen = p.drafts.get(p.selected).cloned();
                self.drafts_pick = None;
                if let Some(d) = chosen {
                    if !self.compose.is_blank() && self.compose.draft_id != Some(d.id) {
                        self.toast(
                            "compose holds another draft: it stays saved; opening this one",
                            false,
                        );
                    }
                    self.open_draft(&d);
                    self.pane = PaneId::Compose;
                }
            }
            _ => {}
        }
        vec![]
    }
}

/// Takes the first suggestion into the focused field (the part after the last comma).
fn take_suggestion(c: &mut ComposeForm) -> bool {
    let Some((_, value)) = c.suggestions.first().cloned() else {
        return false;
    };
    let v = &mut c.values[c.field];
    let keep = v.rfind([',', ';']).map(|i| i + 1).unwrap_or(0);
    v.truncate(keep);
    if keep > 0 {
        v.push(' ');
    }
    v.push_str(&value);
    // A directory goes on completing; an address or a file ends the item.
    if !value.ends_with('/') {
        v.push_str(", ");
    }
    c.suggestions.clear();
    true
}
