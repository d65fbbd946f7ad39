//! Keys on the forms and overlays: account setup, the pair picker and the one-line prompt.

use secrecy::{ExposeSecret, SecretString};

use crate::error::AppError;

use crate::tui::action::{Action, Command, PaneId};

use super::*;

impl App {
    pub(super) fn update_setup(&mut self, action: Action) -> Vec<Command> {
        let f = &mut self.setup;
        let kind = SETUP_FIELDS[f.field].1;
        let editing = matches!(
            action,
            Action::Input(_) | Action::Backspace | Action::ClearField
        ) || (matches!(action, Action::ChoiceNext | Action::ChoicePrev)
            && kind != FieldKind::Text
            && kind != FieldKind::Secret);
        if editing && f.read_only() {
            let owner = f.edit.as_ref().and_then(|e| e.read_only.clone());
            f.message = Some(Err(read_only_error(owner.as_deref().unwrap_or(""))));
            return vec![];
        }
        match action {
            Action::Back => {
                if f.edit.is_some() {
                    // Leaving the edit form drops it: `2` opens a new account's form again.
                    self.setup = SetupForm::default();
                }
                return self.go(PaneId::Dashboard);
            }
            Action::NextField => f.move_field(1),
            Action::PrevField => f.move_field(-1),
            Action::ChoiceNext | Action::ChoicePrev | Action::Input(' ')
                if !matches!(kind, FieldKind::Text | FieldKind::Secret) =>
            {
                f.choose(kind, action != Action::ChoicePrev);
            }
            Action::Input(_) | Action::Backspace | Action::ClearField => f.type_key(kind, action),
            // A test of a stored account uses its password: the owner's, as in the CLI.
            Action::TestConnection | Action::LoginAccount | Action::SaveAccount
                if f.read_only() =>
            {
                let owner = f.edit.as_ref().and_then(|e| e.read_only.clone());
                f.message = Some(Err(read_only_error(owner.as_deref().unwrap_or(""))));
            }
            Action::TestConnection => return self.test_form(),
            Action::LoginAccount => return self.login_from_form(),
            Action::SaveAccount => {
                let failed = f
                    .run
                    .as_ref()
                    .is_some_and(|r| r.done == Some(false) && r.job != 0);
                if failed {
                    self.dialog = Some(Dialog {
                        text: "The last test of these settings failed. Save them anyway?".into(),
                        then: Pending::SaveAccount,
                    });
                    return vec![];
                }
                return self.save_form();
            }
            _ => {}
        }
        vec![]
    }

    /// "Log in again" from the edit form of an OAuth2 account: the same sign-in as `account
    /// login NAME`; its code or address shows beside the form.
    fn login_from_form(&mut self) -> Vec<Command> {
        let f = &mut self.setup;
        let Some(of) = f.edit.as_ref() else {
            return vec![];
        };
        if let Some(owner) = of.read_only.clone() {
            f.message = Some(Err(read_only_error(&owner)));
            return vec![];
        }
        if !f.stored_oauth() {
            f.message = Some(Err(AppError::usage(
                format!("{} signs in with a password, not OAuth2", of.name),
                "switch OAuth2 sign-in to yes, fill in the client id and save first",
            )));
            return vec![];
        }
        let name = of.name.clone();
        f.message = None;
        self.start_login(name)
    }

    /// Test connection: a new account's settings, or the edited ones of a stored account
    /// (nothing is stored either way); each step shows as it ends.
    fn test_form(&mut self) -> Vec<Command> {
        let job = self.next_generation();
        let f = &mut self.setup;
        f.message = None;
        if f.edit.is_none() {
            f.run = Some(CheckRun::new(job, "Test connection".into()));
            return vec![Command::TestNew {
                job,
                form: Box::new(f.to_form()),
            }];
        }
        match f.to_edit() {
            Ok(req) => {
                f.run = Some(CheckRun::new(job, "Test the edited settings".into()));
                vec![Command::TestEdit {
                    job,
                    req: Box::new(req),
                }]
            }
            Err(e) => {
                f.message = Some(Err(e));
                vec![]
            }
        }
    }

    /// Saves the form: `account add` for a new account, `account edit` (and the folders to
    /// sync) for a stored one.
    pub(super) fn save_form(&mut self) -> Vec<Command> {
        let job = self.next_generation();
        let f = &mut self.setup;
        f.message = None;
        if f.edit.is_none() {
            f.saving = Some(job);
            return vec![Command::SaveNew {
                job,
                form: Box::new(f.to_form()),
            }];
        }
        match f.to_edit() {
            Ok(req) => {
                f.saving = Some(job);
                vec![Command::SaveEdit {
                    job,
                    req: Box::new(req),
                }]
            }
            Err(e) => {
                f.message = Some(Err(e));
                vec![]
            }
        }
    }

    pub(super) fn update_picker(&mut self, action: Action) -> Vec<Command> {
        let Some(p) = self.picker.as_mut() else {
            return vec![];
        };
        match action {
            Action::Input(c) => p.query.push(c),
            Action::Backspace => {
                p.query.pop();
            }
            Action::Up => {
                p.selected = p.selected.saturating_sub(1);
                return vec![];
            }
            Action::Down => {
                p.selected = (p.selected + 1).min(p.len().saturating_sub(1));
                return vec![];
            }
            Action::Dismiss => {
                self.picker = None;
                return vec![];
            }
            Action::Confirm => {
                let chosen = p.chosen();
                let id = p.message_id;
                self.picker = None;
                return match chosen {
                    Some((customer_id, _)) => vec![Command::TriagePair { id, customer_id }],
                    None => vec![],
                };
            }
            _ => return vec![],
        }
        p.selected = 0;
        let generation = self.next_generation();
        if let Some(p) = self.picker.as_mut() {
            p.generation = generation;
        }
        let query = self
            .picker
            .as_ref()
            .map(|p| p.query.clone())
            .unwrap_or_default();
        vec![Command::LoadPicker { generation, query }]
    }

    pub(super) fn update_prompt(&mut self, action: Action) -> Vec<Command> {
        let Some(p) = self.prompt.as_mut() else {
            return vec![];
        };
        match action {
            Action::Input(c) => p.value.push(c),
            Action::Backspace => {
                p.value.pop();
            }
            Action::ClearField => p.value.clear(),
            Action::Dismiss => self.prompt = None,
            Action::Confirm => {
                let p = self.prompt.take();
                if let Some(p) = p {
                    let path = p.value.trim().to_string();
                    if path.is_empty() && !matches!(p.then, PromptFor::AddCustomer { .. }) {
                        return vec![];
                    }
                    if p.then == PromptFor::MailSearch {
                        return self.run_search(path);
                    }
                    return vec![match p.then {
                        PromptFor::AddCustomer { id } => {
                            Command::TriageAddCustomer { id, name: path }
                        }
                        PromptFor::SaveAttachment { id, index } => {
                            Command::SaveAttachment { id, index, path }
                        }
                        PromptFor::QuarantineSave { id } => Command::QuarantineSave { id, path },
                        PromptFor::TraceExport { account } => {
                            Command::ExportTrace { account, path }
                        }
                        PromptFor::PlanSince => {
                            let plan = self.folders.plan.clone().unwrap_or_default();
                            return self.start_plan(Some(path), plan.unread_only);
                        }
                        PromptFor::MailSearch => return vec![],
                    }];
                }
            }
            _ => {}
        }
        vec![]
    }
}

/// Why a shared operator's edit form does not change anything.
fn read_only_error(owner: &str) -> AppError {
    AppError::needs_user(
        "this account is shared with you: you may look, not change it",
        "",
        format!("ask its owner {owner} to change it"),
    )
}

impl SetupForm {
    /// ←/→/space on a choice: the next (or previous) preset, security, SMTP mechanism, yes/no.
    pub(crate) fn choose(&mut self, kind: FieldKind, fwd: bool) {
        let cycle = |cur: usize, n: usize| {
            if fwd {
                (cur + 1) % n
            } else {
                (cur + n - 1) % n
            }
        };
        match kind {
            FieldKind::Preset => {
                self.preset = cycle(self.preset, crate::presets::PRESETS.len() + 1);
                self.apply_preset();
            }
            FieldKind::SmtpAuth => {
                let cur = SMTP_AUTHS
                    .iter()
                    .position(|s| *s == self.values[self.field]);
                self.values[self.field] =
                    SMTP_AUTHS[cycle(cur.unwrap_or(0), SMTP_AUTHS.len())].into();
            }
            FieldKind::Security => {
                let cur = SECURITIES
                    .iter()
                    .position(|s| *s == self.values[self.field])
                    .unwrap_or(0);
                let next = cycle(cur, 3);
                self.values[self.field] = SECURITIES[next].into();
                // Follow the conventional port for the new security unless typed.
                let (port_field, ports): (usize, [&str; 3]) = if self.field == F_IMAP_SEC {
                    (F_IMAP_PORT, ["993", "143", "143"])
                } else {
                    (F_SMTP_PORT, ["465", "587", "25"])
                };
                if ports.contains(&self.values[port_field].as_str())
                    || self.values[port_field].is_empty()
                {
                    self.values[port_field] = ports[next].into();
                }
            }
            FieldKind::Toggle => {
                let v = &mut self.values[self.field];
                *v = if v == "yes" { "no" } else { "yes" }.into();
            }
            FieldKind::Text | FieldKind::Secret => {}
        }
    }

    /// A key typed into a text or secret field (the login follows the email while the same).
    pub(crate) fn type_key(&mut self, kind: FieldKind, action: Action) {
        let field = self.field;
        if kind == FieldKind::Secret {
            let secret = self.secret_mut(field);
            let mut s = secret.expose_secret().to_string();
            match action {
                Action::Input(c) => s.push(c),
                Action::Backspace => {
                    s.pop();
                }
                _ => s.clear(),
            }
            *secret = SecretString::from(s);
            return;
        }
        if kind != FieldKind::Text {
            return;
        }
        let follow = field == F_EMAIL && self.values[F_LOGIN] == self.values[F_EMAIL];
        let targets: &[usize] = if follow && action != Action::ClearField {
            &[F_EMAIL, F_LOGIN]
        } else {
            &[field][..]
        };
        for &i in targets {
            match action {
                Action::Input(c) => self.values[i].push(c),
                Action::Backspace => {
                    self.values[i].pop();
                }
                _ => self.values[i].clear(),
            }
        }
    }
}
