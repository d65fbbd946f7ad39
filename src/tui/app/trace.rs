//! The log pane's protocol trace: one account's lines (or every visible account's), live as
//! any process writes them; the switch per account, a level filter and an export.

use crate::ops::trace::Query;
use crate::tui::action::{Action, Command, PaneId};

use super::*;

impl App {
    /// The account the trace view is about: the chosen one, else the first visible.
    pub fn trace_account(&self) -> Option<&crate::ops::trace::TraceState> {
        let i = self.log.trace_account.unwrap_or(0);
        self.log.trace_states.get(i)
    }

    /// What the trace view asks for: the chosen account (or all) at the chosen level.
    pub fn trace_query(&self) -> Query {
        Query {
            account: self
                .log
                .trace_account
                .and_then(|i| self.log.trace_states.get(i))
                .map(|s| s.account.clone()),
            level: Some(if self.log.level >= 3 { "debug" } else { "info" }.into()),
        }
    }

    pub(super) fn load_trace(&mut self) -> Vec<Command> {
        let generation = self.next_generation();
        self.log.traces.generation = generation;
        vec![Command::LoadTrace {
            generation,
            query: self.trace_query(),
            offset: self.log.traces.offset as i64,
            limit: PAGE as i64,
        }]
    }

    fn reload_trace_from_top(&mut self) -> Vec<Command> {
        self.log.traces.selected = 0;
        self.log.traces.offset = 0;
        self.load_trace()
    }

    pub(super) fn update_trace(&mut self, action: Action) -> Vec<Command> {
        let view = self.view_rows();
        let (sel, total) = (self.log.traces.selected, self.log.traces.total);
        if let Some(t) = self.nav_target(&action, sel, total) {
            if let Some(offset) = self.log.traces.move_to(t, view) {
                self.log.traces.offset = offset;
                return self.load_trace();
            }
            return vec![];
        }
        match action {
            Action::CycleLevel => {
                // info (commands and answers) ⇄ debug (untagged data and literals too).
                self.log.level = if self.log.level >= 3 { 2 } else { 3 };
                self.reload_trace_from_top()
            }
            Action::TraceAccount => {
                let n = self.log.trace_states.len();
                self.log.trace_account = match self.log.trace_account {
                    None if n > 0 => Some(0),
                    Some(i) if i + 1 < n => Some(i + 1),
                    _ => None,
                };
                self.reload_trace_from_top()
            }
            Action::ToggleTrace => match self.trace_account() {
                Some(s) => {
                    let (account, on) = (s.account.clone(), !s.enabled);
                    let verb = if on { "on" } else { "off" };
                    self.toast(format!("trace of {account} {verb}…"), false);
                    vec![Command::SetTrace {
                        account,
                        on,
                        literals: false,
                    }]
                }
                None => vec![],
            },
            Action::ToggleLiterals => match self.trace_account() {
                Some(s) if s.literals => {
                    // Back to elided literals; the trace stays on.
                    let account = s.account.clone();
                    self.toast(format!("trace of {account}: literals elided…"), false);
                    vec![Command::SetTrace {
                        account,
                        on: true,
                        literals: false,
                    }]
                }
                Some(s) => {
                    let account = s.account.clone();
                    self.dialog = Some(Dialog {
                        text: format!(
                            "Trace {account} with message literals in full? Warning: {}.",
                            crate::ops::trace::LITERALS_WARNING
                        ),
                        then: Pending::TraceLiterals { account },
                    });
                    vec![]
                }
                None => vec![],
            },
            Action::ExportTrace => {
                if let Some(s) = self.trace_account() {
                    let account = s.account.clone();
                    self.prompt = Some(Prompt {
                        label: format!("Export the protocol trace of {account} to"),
                        value: format!("mailroom-trace-{account}.txt"),
                        then: PromptFor::TraceExport { account },
                    });
                }
                vec![]
            }
            Action::Back => self.go(PaneId::Dashboard),
            _ => vec![],
        }
    }
}
