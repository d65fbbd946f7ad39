//! Deny lists: global (`general.deny`) and per account (`accounts.NAME.deny`), addresses and
//! domains (a domain includes its subdomains). Sync asks `DenyLists::denied` for each new
//! message; blocked mail is still stored (marked denied, hidden) so an undo can bring it back.

use std::collections::HashMap;

use super::address::{Normalizer, Pattern, domain_and_parents, domain_of};
use crate::config::Config;
use crate::error::{AppError, Result};

/// One set of patterns, looked up by hash (a domain pattern is found by walking the sender's
/// domain up through its parents), so checking 100k messages against a long list stays cheap.
#[derive(Debug, Default, Clone)]
pub struct DenySet {
    addresses: std::collections::HashSet<String>,
    domains: std::collections::HashSet<String>,
}

impl DenySet {
    pub fn from_patterns<'a>(patterns: impl IntoIterator<Item = &'a String>) -> DenySet {
        let mut set = DenySet::default();
        for p in patterns {
            match Pattern::parse(p) {
                Some(Pattern::Address(a)) => {
                    set.addresses.insert(a);
                }
                Some(Pattern::Domain(d)) => {
                    set.domains.insert(d);
                }
                // Config validation elsewhere names bad entries; here they simply match nothing.
                None => {}
            }
        }
        set
    }
    /// The pattern that denies `addr` (canonical, not plus-folded), if any.
    pub fn hit(&self, addr: &str) -> Option<String> {
        if self.addresses.contains(addr) {
            return Some(addr.to_string());
        }
        domain_and_parents(domain_of(addr))
            .find(|d| self.domains.contains(*d))
            .map(str::to_string)
    }
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.domains.is_empty()
    }
}

/// The global list plus each account's, keyed by account id.
#[derive(Debug, Default, Clone)]
pub struct DenyLists {
    global: DenySet,
    by_account: HashMap<String, DenySet>,
}

impl DenyLists {
    pub fn from_config(config: &Config) -> DenyLists {
        DenyLists {
            global: DenySet::from_patterns(&config.general.deny),
            by_account: config
                .accounts
                .values()
                .map(|a| (a.id.clone(), DenySet::from_patterns(&a.deny)))
                .collect(),
        }
    }

    /// Whether mail from `from` (any form) seen in `account_id` is denied.
    pub fn denied(&self, account_id: &str, from: &str) -> bool {
        let Some(addr) = Normalizer::default().address(from) else {
            return false;
        };
        self.denied_canonical(account_id, &addr)
    }

    pub(crate) fn denied_canonical(&self, account_id: &str, addr: &str) -> bool {
        self.global.hit(addr).is_some()
            || self
                .by_account
                .get(account_id)
                .is_some_and(|s| s.hit(addr).is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.by_account.values().all(DenySet::is_empty)
    }

    /// Whether some list denies this canonical sender, whichever account holds the mail: what
    /// may be denied, without knowing where a message lies.
    pub(crate) fn may_deny(&self, addr: &str) -> bool {
        self.global.hit(addr).is_some() || self.by_account.values().any(|s| s.hit(addr).is_some())
    }

    /// Which accounts holding a message the deny decision needs: none while no list has an
    /// entry, only whether there is one while only the global list has, else each of them.
    pub fn holders_wanted(&self) -> crate::store::HoldersWanted {
        use crate::store::HoldersWanted;
        if self.by_account.values().any(|s| !s.is_empty()) {
            HoldersWanted::Each
        } else if !self.global.is_empty() {
            HoldersWanted::Any
        } else {
            HoldersWanted::No
        }
    }
}

/// Where a deny entry lives in config.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Global,
    Account(String),
}

impl Scope {
    pub fn label(&self) -> String {
        match self {
            Scope::Global => "global".into(),
            Scope::Account(a) => a.clone(),
        }
    }
}

/// Adds a canonical pattern to config.toml; false when it was already there.
pub fn add(home: &crate::config::Home, scope: &Scope, pattern: &Pattern) -> Result<bool> {
    edit_list(home, scope, |list| {
        if list
            .iter()
            .any(|p| Pattern::parse(p).as_ref() == Some(pattern))
        {
            false
        } else {
            list.push(pattern.as_str().to_string());
            true
        }
    })
}

/// Removes every spelling of a pattern from config.toml; false when it was not there.
pub fn remove(home: &crate::config::Home, scope: &Scope, pattern: &Pattern) -> Result<bool> {
    edit_list(home, scope, |list| {
        let before = list.len();
        list.retain(|p| Pattern::parse(p).as_ref() != Some(pattern));
        before != list.len()
    })
}

fn edit_list(
    home: &crate::config::Home,
    scope: &Scope,
    f: impl FnOnce(&mut Vec<String>) -> bool,
) -> Result<bool> {
    let mut changed = false;
    crate::config::edit(home, |doc| {
        let table = match scope {
            Scope::Global => {
                if doc.get("general").is_none() {
                    doc["general"] = toml_edit::table();
                }
                &mut doc["general"]
            }
            Scope::Account(name) => doc
                .get_mut("accounts")
                .and_then(|a| a.get_mut(name))
                .ok_or_else(|| {
                    AppError::not_found("account", name, "see `mailroom account list`")
                })?,
        };
        let mut list: Vec<String> = table
            .get("deny")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        changed = f(&mut list);
        if changed {
            crate::config::set_string_list(table, "deny", &list);
        }
        Ok(())
    })?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_and_account_lists_apply_separately() {
        let mut cfg = Config::default();
        cfg.general.deny = vec!["Spam.Test".into()];
        let toml = r#"
id = "acc1"
email = "me@example.test"
user = "me"
imap = { host = "h", port = 1 }
smtp = { host = "h", port = 2 }
deny = ["bob@example.org"]
"#;
        cfg.accounts
            .insert("a".into(), toml::from_str(toml).unwrap());
        let d = DenyLists::from_config(&cfg);
        assert!(d.denied("acc1", "X <x@mail.spam.test>"));
        assert!(d.denied("other", "x@spam.test"));
        assert!(d.denied("acc1", "BOB@example.org"));
        assert!(!d.denied("other", "bob@example.org"));
        assert!(!d.denied("acc1", "alice@example.org"));
    }

    #[test]
    fn edits_keep_other_entries_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().into(),
        };
        std::fs::write(
            home.config_path(),
            "# mine\n[general]\ndeny = [\"keep.test\"]\n",
        )
        .unwrap();
        let p = Pattern::parse("Spam.test").unwrap();
        assert!(add(&home, &Scope::Global, &p).unwrap());
        assert!(!add(&home, &Scope::Global, &p).unwrap());
        let cfg = Config::load(&home).unwrap();
        assert_eq!(cfg.general.deny, ["keep.test", "spam.test"]);
        assert!(remove(&home, &Scope::Global, &p).unwrap());
        assert!(!remove(&home, &Scope::Global, &p).unwrap());
        let text = std::fs::read_to_string(home.config_path()).unwrap();
        assert!(
            text.contains("# mine") && text.contains("keep.test") && !text.contains("spam.test")
        );
        let err = add(&home, &Scope::Account("nope".into()), &p).unwrap_err();
        assert!(err.summary.contains("nope"));
    }
}
