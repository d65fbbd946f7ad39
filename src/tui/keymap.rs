//! Key bindings: one table per pane, each entry a named action, its keys and a description.
//! The same table resolves key presses and draws the `?` help overlay, so the help can never
//! disagree with the keys. Defaults ship here; `[ui.keys.<pane>] action = "key other-key"` in
//! config.toml replaces the keys of the actions it names; unknown panes, actions or keys are
//! errors at start.

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{Action, PaneId};
use crate::error::{AppError, Result};

/// (table, action, default keys, description). Tables: `global`, `nav` (every list pane), and
/// one per pane. A pane's own table wins over `nav`, which wins over `global`.
pub const DEFAULTS: &[(&str, &str, &str, &str)] = &[
    ("global", "quit", "q ctrl-c", "Quit"),
    ("global", "help", "? f1", "Keys of this pane"),
    ("global", "next_pane", "tab", "Next pane"),
    ("global", "prev_pane", "backtab", "Previous pane"),
    ("global", "go_dashboard", "1", "Dashboard"),
    ("global", "go_setup", "2", "Account setup"),
    ("global", "go_folders", "3", "Folders"),
    ("global", "go_triage", "4", "Triage inbox"),
    ("global", "go_customers", "5", "Customers"),
    ("global", "go_compose", "6", "Compose"),
    ("global", "go_outbox", "7", "Outbox"),
    ("global", "go_log", "8", "Debug log"),
    ("global", "go_mail", "9", "Mail: folders, messages, search"),
    ("global", "refresh", "ctrl-r", "Reload from the database"),
    ("nav", "up", "k up", "Up"),
    ("nav", "down", "j down", "Down"),
    ("nav", "page_up", "pageup ctrl-b", "Page up"),
    ("nav", "page_down", "pagedown ctrl-f", "Page down"),
    ("nav", "top", "g home", "First"),
    ("nav", "bottom", "G end", "Last"),
    ("nav", "open", "enter", "Open"),
    ("nav", "back", "esc", "Back"),
    (
        "dashboard",
        "test_account",
        "t",
        "Test connection of the account",
    ),
    ("dashboard", "sync_now", "s", "Sync the account now"),
    ("dashboard", "new_account", "n", "Add an account"),
    (
        "dashboard",
        "edit_account",
        "e",
        "Edit the account (every setting, password, test)",
    ),
    (
        "dashboard",
        "remove_account",
        "D",
        "Remove the account (asks first)",
    ),
    ("dashboard", "open", "enter", "Folders of the account"),
    (
        "dashboard",
        "login",
        "L",
        "Sign an OAuth2 account in (again)",
    ),
    ("setup", "next_field", "tab down", "Next field"),
    ("setup", "prev_field", "backtab up", "Previous field"),
    (
        "setup",
        "choice_next",
        "right space",
        "Next choice (preset, security, yes/no)",
    ),
    ("setup", "choice_prev", "left", "Previous choice"),
    ("setup", "clear_field", "ctrl-u", "Clear the field"),
    (
        "setup",
        "test_connection",
        "ctrl-t f5",
        "Test connection (every step)",
    ),
    ("setup", "save_account", "ctrl-s", "Save the account"),
    (
        "setup",
        "login",
        "ctrl-l",
        "Edit form: sign an OAuth2 account in again",
    ),
    ("setup", "back", "esc", "Leave the form"),
    ("folders", "toggle_sync", "space", "Sync this folder on/off"),
    (
        "folders",
        "load_folders",
        "L",
        "Load folders from the server",
    ),
    ("folders", "plan", "P", "First-sync plan"),
    ("folders", "set_sent", "S", "Use as the Sent folder"),
    ("folders", "next_account", "a", "Next account"),
    (
        "folders",
        "plan_unread_only",
        "u",
        "Plan: unread only on/off",
    ),
    (
        "folders",
        "plan_since",
        "d",
        "Plan: only since a date (asks)",
    ),
    ("folders", "apply_scope", "A", "Apply scope to sync (asks)"),
    ("triage", "open", "enter", "Open the message"),
    ("triage", "pair", "p", "Pair with a customer"),
    (
        "triage",
        "add_customer",
        "c",
        "Add the sender as a customer",
    ),
    (
        "triage",
        "block",
        "b",
        "Block the sender's address (asks first)",
    ),
    (
        "triage",
        "block_domain",
        "B",
        "Block the sender's domain (asks first)",
    ),
    ("triage", "delete", "d", "Delete (to Trash, asks first)"),
    ("triage", "undo", "u", "Undo the last action"),
    ("message", "reply", "r", "Reply"),
    ("message", "reply_all", "R", "Reply to all"),
    (
        "message",
        "save_attachment",
        "s",
        "Save the marked attachment (asks where)",
    ),
    (
        "message",
        "next_attachment",
        "a",
        "Mark the next attachment",
    ),
    ("message", "forward", "F", "Forward"),
    ("message", "toggle_read", "u", "Mark read / unread"),
    ("message", "toggle_flag", "f", "Flag / unflag"),
    ("message", "move_message", "m", "Move to a folder (choose)"),
    ("message", "delete_message", "d", "Delete (to Trash)"),
    ("message", "archive", "e", "Archive"),
    (
        "message",
        "next_hit",
        "n",
        "Next message of the list (search hit)",
    ),
    ("message", "prev_hit", "N", "Previous message of the list"),
    ("message", "back", "esc", "Back to the list"),
    ("mail", "search", "/", "Search (words, from: since: is: …)"),
    ("mail", "next_hit", "n", "Next message / search hit"),
    ("mail", "prev_hit", "N", "Previous message / search hit"),
    ("mail", "focus_tree", "h left", "To the folder tree"),
    ("mail", "focus_index", "l right", "To the message list"),
    ("mail", "open", "enter", "Open the folder / the message"),
    ("mail", "toggle_thread", "space", "Open or close the thread"),
    ("mail", "toggle_threads", "T", "Threads / every message"),
    ("mail", "toggle_read", "u", "Mark read / unread"),
    ("mail", "toggle_flag", "f", "Flag / unflag"),
    ("mail", "move_message", "m", "Move to a folder (choose)"),
    ("mail", "delete_message", "d", "Delete (to Trash)"),
    ("mail", "archive", "e", "Archive"),
    ("mail", "reply", "r", "Reply"),
    ("mail", "reply_all", "R", "Reply to all"),
    ("mail", "forward", "F", "Forward"),
    ("mail", "compose_new", "c", "Write a new message"),
    ("mail", "back", "esc", "Back (list → tree → dashboard)"),
    ("customers", "search", "/", "Fuzzy search"),
    (
        "customers",
        "open",
        "enter",
        "Timeline of the customer / open the message",
    ),
    (
        "customers",
        "focus_timeline",
        "t",
        "Move between the list and the timeline",
    ),
    ("compose", "next_field", "tab", "Next field"),
    ("compose", "prev_field", "backtab", "Previous field"),
    (
        "compose",
        "newline",
        "enter",
        "New line (body) / next field",
    ),
    (
        "compose",
        "complete",
        "ctrl-n",
        "Take the suggested address",
    ),
    ("compose", "choice_next", "right", "Next sender (From)"),
    ("compose", "choice_prev", "left", "Previous sender (From)"),
    ("compose", "send", "ctrl-s", "Send"),
    ("compose", "editor", "ctrl-e", "Edit the body in $EDITOR"),
    (
        "compose",
        "save_draft",
        "ctrl-d",
        "Save the draft (here and in Drafts)",
    ),
    (
        "compose",
        "discard_draft",
        "ctrl-x",
        "Discard the draft (asks)",
    ),
    (
        "compose",
        "open_drafts",
        "ctrl-o",
        "Saved drafts (open one)",
    ),
    ("compose", "clear_field", "ctrl-u", "Clear the field"),
    ("compose", "back", "esc", "Leave compose"),
    ("outbox", "retry", "r", "Retry now"),
    (
        "outbox",
        "cancel_item",
        "c",
        "Cancel (before SMTP accepted)",
    ),
    (
        "outbox",
        "resend",
        "R",
        "Send an uncertain item again (asks)",
    ),
    (
        "outbox",
        "drop_item",
        "D",
        "Drop an uncertain item: assume delivered (asks)",
    ),
    ("log", "cycle_level", "l", "Lowest level shown"),
    ("log", "trace_view", "T", "Protocol trace / events"),
    (
        "log",
        "toggle_trace",
        "t",
        "Trace: the account's trace on/off",
    ),
    ("log", "trace_account", "a", "Trace: next account (or all)"),
    (
        "log",
        "toggle_literals",
        "L",
        "Trace: message literals in full on/off (owner; asks)",
    ),
    (
        "log",
        "export_trace",
        "E",
        "Trace: export to a file (asks where)",
    ),
    ("log", "search", "/", "Search"),
    ("log", "toggle_quarantine", "Q", "Events / quarantine"),
    (
        "log",
        "quarantine_retry",
        "r",
        "Retry the quarantined message",
    ),
    (
        "log",
        "quarantine_skip",
        "x",
        "Skip the quarantined message",
    ),
    (
        "log",
        "quarantine_save",
        "w",
        "Save the quarantined message as .eml",
    ),
    ("dialog", "confirm", "y enter", "Yes"),
    ("dialog", "dismiss", "n esc", "No"),
];

pub fn action_by_name(name: &str) -> Option<Action> {
    Some(match name {
        "quit" => Action::Quit,
        "help" => Action::Help,
        "next_pane" => Action::NextPane,
        "prev_pane" => Action::PrevPane,
        "go_dashboard" => Action::GoTo(PaneId::Dashboard),
        "go_setup" => Action::GoTo(PaneId::Setup),
        "go_folders" => Action::GoTo(PaneId::Folders),
        "go_triage" => Action::GoTo(PaneId::Triage),
        "go_customers" => Action::GoTo(PaneId::Customers),
        "go_compose" => Action::GoTo(PaneId::Compose),
        "go_outbox" => Action::GoTo(PaneId::Outbox),
        "go_log" => Action::GoTo(PaneId::Log),
        "go_mail" => Action::GoTo(PaneId::Mail),
        "refresh" => Action::Refresh,
        "up" => Action::Up,
        "down" => Action::Down,
        "page_up" => Action::PageUp,
        "page_down" => Action::PageDown,
        "top" => Action::Top,
        "bottom" => Action::Bottom,
        "open" => Action::Open,
        "back" => Action::Back,
        "search" => Action::Search,
        "focus_timeline" => Action::FocusTimeline,
        "test_account" => Action::TestAccount,
        "sync_now" => Action::SyncNow,
        "new_account" => Action::NewAccount,
        "edit_account" => Action::EditAccount,
        "trace_view" => Action::ToggleTraceView,
        "toggle_trace" => Action::ToggleTrace,
        "toggle_literals" => Action::ToggleLiterals,
        "trace_account" => Action::TraceAccount,
        "export_trace" => Action::ExportTrace,
        "remove_account" => Action::RemoveAccount,
        "login" => Action::LoginAccount,
        "next_field" => Action::NextField,
        "prev_field" => Action::PrevField,
        "choice_next" => Action::ChoiceNext,
        "choice_prev" => Action::ChoicePrev,
        "clear_field" => Action::ClearField,
        "test_connection" => Action::TestConnection,
        "save_account" => Action::SaveAccount,
        "toggle_sync" => Action::ToggleSync,
        "load_folders" => Action::LoadFolders,
        "plan" => Action::Plan,
        "set_sent" => Action::SetSent,
        "next_account" => Action::NextAccount,
        "plan_unread_only" => Action::PlanUnreadOnly,
        "plan_since" => Action::PlanSince,
        "apply_scope" => Action::ApplyScope,
        "pair" => Action::Pair,
        "add_customer" => Action::AddCustomer,
        "block" => Action::Block,
        "block_domain" => Action::BlockDomain,
        "delete" => Action::Delete,
        "undo" => Action::Undo,
        "reply" => Action::Reply,
        "reply_all" => Action::ReplyAll,
        "forward" => Action::Forward,
        "focus_tree" => Action::FocusTree,
        "focus_index" => Action::FocusIndex,
        "toggle_thread" => Action::ToggleThread,
        "toggle_threads" => Action::ToggleThreads,
        "toggle_read" => Action::ToggleRead,
        "toggle_flag" => Action::ToggleFlag,
        "move_message" => Action::MoveMessage,
        "delete_message" => Action::DeleteMessage,
        "archive" => Action::Archive,
        "next_hit" => Action::NextHit,
        "prev_hit" => Action::PrevHit,
        "compose_new" => Action::ComposeNew,
        "save_draft" => Action::SaveDraft,
        "discard_draft" => Action::DiscardDraft,
        "open_drafts" => Action::OpenDrafts,
        "save_attachment" => Action::SaveAttachment,
        "next_attachment" => Action::NextAttachment,
        "send" => Action::Send,
        "editor" => Action::Editor,
        "complete" => Action::Complete,
        "newline" => Action::Newline,
        "retry" => Action::Retry,
        "cancel_item" => Action::CancelItem,
        "resend" => Action::Resend,
        "drop_item" => Action::DropItem,
        "cycle_level" => Action::CycleLevel,
        "toggle_quarantine" => Action::ToggleQuarantine,
        "quarantine_retry" => Action::QuarantineRetry,
        "quarantine_skip" => Action::QuarantineSkip,
        "quarantine_save" => Action::QuarantineSave,
        "confirm" => Action::Confirm,
        "dismiss" => Action::Dismiss,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    /// Shift is part of the character for printable keys ('G'), so it is ignored there.
    pub fn from_event(ev: &KeyEvent) -> Key {
        let mut mods = ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        if !matches!(ev.code, KeyCode::Char(_) | KeyCode::BackTab) {
            mods |= ev.modifiers & KeyModifiers::SHIFT;
        }
        let code = match ev.code {
            KeyCode::Char(c) if mods.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            c => c,
        };
        Key { code, mods }
    }

    pub fn parse(spec: &str) -> Option<Key> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = spec;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                mods |= KeyModifiers::CONTROL;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                mods |= KeyModifiers::ALT;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("shift-") {
                mods |= KeyModifiers::SHIFT;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "space" => KeyCode::Char(' '),
            "backspace" => KeyCode::Backspace,
            "delete" => KeyCode::Delete,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            f if f.len() > 1 && f.starts_with('f') => KeyCode::F(f[1..].parse().ok()?),
            c if c.chars().count() == 1 => {
                let ch = c.chars().next()?;
                if mods.contains(KeyModifiers::CONTROL) {
                    KeyCode::Char(ch.to_ascii_lowercase())
                } else {
                    KeyCode::Char(ch)
                }
            }
            _ => return None,
        };
        if matches!(code, KeyCode::Char(_) | KeyCode::BackTab) {
            mods.remove(KeyModifiers::SHIFT);
        }
        Some(Key { code, mods })
    }

    pub fn label(&self) -> String {
        let mut s = String::new();
        if self.mods.contains(KeyModifiers::CONTROL) {
            s.push_str("ctrl-");
        }
        if self.mods.contains(KeyModifiers::ALT) {
            s.push_str("alt-");
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            s.push_str("shift-");
        }
        match self.code {
            KeyCode::Char(' ') => s.push_str("space"),
            KeyCode::Char(c) => s.push(c),
            KeyCode::Enter => s.push_str("enter"),
            KeyCode::Esc => s.push_str("esc"),
            KeyCode::Tab => s.push_str("tab"),
            KeyCode::BackTab => s.push_str("shift-tab"),
            KeyCode::Backspace => s.push_str("backspace"),
            KeyCode::Delete => s.push_str("delete"),
            KeyCode::Up => s.push('↑'),
            KeyCode::Down => s.push('↓'),
            KeyCode::Left => s.push('←'),
            KeyCode::Right => s.push('→'),
            KeyCode::Home => s.push_str("home"),
            KeyCode::End => s.push_str("end"),
            KeyCode::PageUp => s.push_str("pgup"),
            KeyCode::PageDown => s.push_str("pgdn"),
            KeyCode::F(n) => s.push_str(&format!("F{n}")),
            _ => s.push('?'),
        }
        s
    }
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub action: Action,
    pub name: &'static str,
    pub keys: Vec<Key>,
    pub desc: &'static str,
}

#[derive(Debug, Clone)]
pub struct Keymap {
    tables: BTreeMap<&'static str, Vec<Binding>>,
}

impl Keymap {
    /// The defaults with the user's overrides applied; every override is validated.
    pub fn new(overrides: &BTreeMap<String, BTreeMap<String, String>>) -> Result<Keymap> {
        let mut tables: BTreeMap<&'static str, Vec<Binding>> = BTreeMap::new();
        for (table, name, keys, desc) in DEFAULTS {
            let action = action_by_name(name).ok_or_else(|| {
                AppError::local("a built-in key binding is broken", *name, "report a bug")
            })?;
            let keys = keys.split_whitespace().filter_map(Key::parse).collect();
            tables.entry(table).or_default().push(Binding {
                action,
                name,
                keys,
                desc,
            });
        }
        for (table, binds) in overrides {
            let Some(entries) = tables.get_mut(table.as_str()) else {
                let names: Vec<&str> = tables.keys().copied().collect();
                return Err(AppError::usage(
                    format!("config.toml [ui.keys.{table}]: no such key table"),
                    format!("use one of: {}", names.join(", ")),
                ));
            };
            for (action, spec) in binds {
                let Some(b) = entries.iter_mut().find(|b| b.name == action) else {
                    let names: Vec<&str> = entries.iter().map(|b| b.name).collect();
                    return Err(AppError::usage(
                        format!("config.toml [ui.keys.{table}]: unknown action {action:?}"),
                        format!("use one of: {}", names.join(", ")),
                    ));
                };
                let mut keys = Vec::new();
                for k in spec.split_whitespace() {
                    keys.push(Key::parse(k).ok_or_else(|| {
                        AppError::usage(
                            format!("config.toml [ui.keys.{table}] {action}: bad key {k:?}"),
                            "write keys like \"x\", \"ctrl-x\", \"alt-x\", \"enter\", \"f5\", \"space\"; separate several with spaces",
                        )
                    })?);
                }
                if keys.is_empty() {
                    return Err(AppError::usage(
                        format!("config.toml [ui.keys.{table}] {action}: no key given"),
                        "name at least one key",
                    ));
                }
                b.keys = keys;
            }
        }
        Ok(Keymap { tables })
    }

    pub fn defaults() -> Keymap {
        // The defaults are checked by the tests; if one were broken, an empty map still runs.
        Keymap::new(&BTreeMap::new()).unwrap_or(Keymap {
            tables: BTreeMap::new(),
        })
    }

    /// The tables consulted for a pane, most specific first.
    pub fn tables_for(&self, pane: PaneId, dialog: bool) -> Vec<(&'static str, &[Binding])> {
        let mut names: Vec<&'static str> = Vec::new();
        if dialog {
            names.push("dialog");
        } else {
            names.push(pane.key());
            if pane.is_list() {
                names.push("nav");
            }
            names.push("global");
        }
        names
            .into_iter()
            .filter_map(|n| self.tables.get(n).map(|t| (n, t.as_slice())))
            .collect()
    }

    pub fn resolve(&self, pane: PaneId, dialog: bool, key: Key) -> Option<Action> {
        for (_, table) in self.tables_for(pane, dialog) {
            if let Some(b) = table.iter().find(|b| b.keys.contains(&key)) {
                return Some(b.action.clone());
            }
        }
        None
    }

    /// First key of an action in a pane's tables (for hints in the status line).
    pub fn key_for(&self, pane: PaneId, action: &Action) -> String {
        for (_, table) in self.tables_for(pane, false) {
            if let Some(b) = table.iter().find(|b| &b.action == action) {
                return b.keys.first().map(Key::label).unwrap_or_default();
            }
        }
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, mods: KeyModifiers) -> Key {
        Key::from_event(&KeyEvent::new(code, mods))
    }

    #[test]
    fn defaults_resolve_and_pane_tables_win() {
        let km = Keymap::defaults();
        let k = ev(KeyCode::Char('j'), KeyModifiers::NONE);
        assert_eq!(km.resolve(PaneId::Triage, false, k), Some(Action::Down));
        let g = ev(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(km.resolve(PaneId::Log, false, g), Some(Action::Bottom));
        let c = ev(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(km.resolve(PaneId::Setup, false, c), Some(Action::Quit));
        let tab = ev(KeyCode::Tab, KeyModifiers::NONE);
        assert_eq!(
            km.resolve(PaneId::Setup, false, tab),
            Some(Action::NextField)
        );
        assert_eq!(
            km.resolve(PaneId::Triage, false, tab),
            Some(Action::NextPane)
        );
        let y = ev(KeyCode::Char('y'), KeyModifiers::NONE);
        assert_eq!(km.resolve(PaneId::Triage, true, y), Some(Action::Confirm));
        let bt = ev(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(
            km.resolve(PaneId::Dashboard, false, bt),
            Some(Action::PrevPane)
        );
    }

    #[test]
    fn overrides_replace_keys_and_bad_ones_are_named() {
        let mut o = BTreeMap::new();
        o.insert(
            "triage".to_string(),
            BTreeMap::from([("pair".to_string(), "P ctrl-p".to_string())]),
        );
        let km = Keymap::new(&o).unwrap();
        let p = ev(KeyCode::Char('p'), KeyModifiers::NONE);
        assert_eq!(km.resolve(PaneId::Triage, false, p), None);
        let cp = ev(KeyCode::Char('p'), KeyModifiers::CONTROL);
        assert_eq!(km.resolve(PaneId::Triage, false, cp), Some(Action::Pair));

        o.insert(
            "triage".to_string(),
            BTreeMap::from([("pare".to_string(), "p".to_string())]),
        );
        let e = Keymap::new(&o).unwrap_err();
        assert!(e.summary.contains("unknown action"), "{e:?}");
        assert!(e.fix.contains("pair"));
        let bad = BTreeMap::from([(
            "nope".to_string(),
            BTreeMap::from([("x".to_string(), "x".to_string())]),
        )]);
        assert!(
            Keymap::new(&bad)
                .unwrap_err()
                .summary
                .contains("no such key table")
        );
        let badkey = BTreeMap::from([(
            "nav".to_string(),
            BTreeMap::from([("up".to_string(), "hyper-k".to_string())]),
        )]);
        assert!(
            Keymap::new(&badkey)
                .unwrap_err()
                .summary
                .contains("bad key")
        );
    }

    #[test]
    fn every_default_action_has_a_name_and_a_key() {
        for (t, name, keys, _) in DEFAULTS {
            assert!(action_by_name(name).is_some(), "{t}.{name}");
            for k in keys.split_whitespace() {
                assert!(Key::parse(k).is_some(), "{t}.{name}: {k}");
            }
        }
    }
}
