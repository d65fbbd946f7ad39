//! Keys on the forms and overlays: account setup, the pair picker and the one-line prompt.

use secrecy::{ExposeSecret, SecretString};

use crate::tui::action::{Action, Command, PaneId};

use super::*;

impl App {
    pub(super) fn update_setup(&mut self, action: Action) -> Vec<Command> {
        let f = &mut self.setup;
        let kind = SETUP_FIELDS[f.field].1;
        if matches!(
            action,
            Action::Input(_) | Action::Backspace | Action::ClearField
        ) && matches!(kind, FieldKind::Text | FieldKind::Secret)
            && !f.typing()
        {
            return vec![]; // the edit form shows the name; it is not edited here
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
                if matches!(
                    kind,
                    FieldKind::Preset | FieldKind::Security | FieldKind::Toggle
                ) =>
            {
                let fwd = action != Action::ChoicePrev;
                match kind {
                    FieldKind::Preset => {
                        let n = crate::presets::PRESETS.len() + 1;
                        f.preset = if fwd {
                            (f.preset + 1) % n
                        } else {
                            (f.preset + n - 1) % n
                        };
                        f.apply_preset();
                    }
                    FieldKind::Security => {
                        let cur = SECURITIES
                            .iter()
                            .position(|s| *s == f.values[f.field])
                            .unwrap_or(0);
                        let next = if fwd { (cur + 1) % 3 } else { (cur + 2) % 3 };
                        f.values[f.field] = SECURITIES[next].into();
                        // Follow the conventional port for the new security unless typed.
                        let (port_field, ports): (usize, [&str; 3]) = if f.field == F_IMAP_SEC {
                            (F_IMAP_PORT, ["993", "143", "143"])
                        } else {
                            (F_SMTP_PORT, ["465", "587", "25"])
                        };
                        if ports.contains(&f.values[port_field].as_str())
                            || f.values[port_field].is_empty()
                        {
                            f.values[port_field] = ports[next].into();
                        }
                    }
                    _ => {
                        f.values[f.field] = if f.values[f.field] == "yes" {
                            "no".into()
                        } else {
                            "yes".into()
                        };
                    }
                }
            }
            Action::Input(c) => match kind {
                FieldKind::Secret => {
                    let mut s = f.password.expose_secret().to_string();
                    s.push(c);
                    f.password = SecretString::from(s);
                }
                FieldKind::Text => {
                    if f.field == F_EMAIL && f.values[F_LOGIN] == f.values[F_EMAIL] {
                        f.values[F_LOGIN].push(c);
                    }
                    f.values[f.field].push(c);
                }
                _ => {}
            },
            Action::Backspace => match kind {
                FieldKind::Secret => {
                    let mut s = f.password.expose_secret().to_string();
                    s.pop();
                    f.password = SecretString::from(s);
                }
                FieldKind::Text => {
                    if f.field == F_EMAIL && f.values[F_LOGIN] == f.values[F_EMAIL] {
                        f.values[F_LOGIN].pop();
                    }
                    f.values[f.field].pop();
                }
                _ => {}
            },
            Action::ClearField => match kind {
                FieldKind::Secret => f.password = SecretString::from(String::new()),
                FieldKind::Text => f.values[f.field].clear(),
                _ => {}
            },
            Action::TestConnection => return self.test_form(),
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
