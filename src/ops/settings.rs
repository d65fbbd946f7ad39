//! `config export|import`: the installation's shared settings (accounts, aliases, sharing,
//! deny lists, system SMTP, alerts, sync and sent-copy options) as one TOML document, for
//! review and editing. On PostgreSQL they are the document in the database; on SQLite the
//! shared sections of config.toml (host sections — `[store]`, `[ui]` — never travel).
//! Both need the right to configure every account: the settings of the whole installation.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use super::{Ctx, access};
use crate::config::{self, AccountConfig, Config, shared};
use crate::error::{AppError, Code, Result};

/// The shared settings as TOML.
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    /// `postgres` (the document in the database) or `sqlite` (config.toml's shared sections).
    pub source: &'static str,
    /// The document's version on PostgreSQL (null on SQLite).
    pub version: Option<i64>,
    pub toml: String,
}

/// What an import changes (or would, with `--dry-run`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ImportReport {
    pub dry_run: bool,
    /// Account names new to the installation.
    pub added: Vec<String>,
    /// Accounts whose settings change.
    pub changed: Vec<String>,
    /// Accounts no longer in the settings (their cached mail is removed as by `account
    /// remove`; pairings, the outbox and the audit log stay).
    pub removed: Vec<String>,
    /// Accounts renamed: the same id under a new name (`{"from","to"}`).
    pub renamed: Vec<Renamed>,
    /// Other sections that change: `general`, `system_smtp`, `alerts`.
    pub sections: Vec<String>,
    /// Added password accounts without a password command: set one with `account
    /// set-password NAME`.
    pub need_password: Vec<String>,
    /// The shared settings' version afterwards (PostgreSQL; null on SQLite or a dry run).
    pub version: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Renamed {
    pub from: String,
    pub to: String,
}

impl ImportReport {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && self.renamed.is_empty()
            && self.sections.is_empty()
    }
}

/// The shared settings' version: moves with every change on PostgreSQL (0 on SQLite, where
/// config.toml's bytes say it).
pub fn version(cx: &Ctx) -> Result<i64> {
    if !cx.home.store_url()?.is_postgres() {
        return Ok(0);
    }
    cx.store()?.shared_settings_version()
}

/// What says that the settings changed elsewhere: config.toml's bytes and, on PostgreSQL,
/// the shared settings' version (another shell's or another host's `account add` moves it,
/// not the file). The daemon and the console compare one stamp with the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    file: Option<Vec<u8>>,
    version: i64,
}

/// The settings' stamp now. A version that cannot be read (the database away for a moment)
/// counts as unchanged from `last`, so a blip is not taken for an edit.
pub async fn stamp(cx: &Ctx, last: Option<&Stamp>) -> Stamp {
    let file = std::fs::read(cx.home.config_path()).ok();
    let version = match cx.blocking(version).await {
        Ok(v) => v,
        Err(_) => last.map_or(0, |s| s.version),
    };
    Stamp { file, version }
}

/// The shared settings as they are now.
pub fn export(cx: &Ctx) -> Result<Export> {
    let config = cx.config()?;
    admin_only(cx, &config, "config_export")?;
    if cx.home.store_url()?.is_postgres() {
        let doc = shared::current(&cx.home, &*cx.store()?)?;
        return Ok(Export {
            source: "postgres",
            version: Some(doc.version),
            toml: doc.doc,
        });
    }
    let doc: toml_edit::DocumentMut = config::host_document(&config::read_host_text(&cx.home)?)?;
    Ok(Export {
        source: "sqlite",
        version: None,
        toml: shared::shared_part(&doc)
            .trim_start_matches('\n')
            .to_string(),
    })
}

/// Makes `text` (the contents of `file`, named in errors) the installation's shared settings:
/// validated by config.toml's rules, account ids kept, every change reported. With `dry_run`
/// nothing changes.
pub fn import(cx: &Ctx, file: &str, text: &str, dry_run: bool) -> Result<ImportReport> {
    let old = cx.config()?;
    admin_only(cx, &old, "config_import")?;
    shared::parse_shared(text, file)?;
    let merged = shared::merge(&host_only_text(cx)?, text)?;
    let mut report = compare(&old, &merged)?;
    report.dry_run = dry_run;
    if dry_run || report.is_empty() {
        return Ok(report);
    }
    let mut store = cx.store()?;
    if cx.home.store_url()?.is_postgres() {
        report.version = Some(shared::replace(&cx.home, &store, text)?);
    } else {
        let new: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            AppError::usage(format!("{file} is not valid TOML: {e}"), "fix the file")
        })?;
        config::edit_file(&cx.home, |doc| {
            for k in shared::shared_sections(doc) {
                doc.remove(&k);
            }
            for (k, item) in new.iter() {
                doc.insert(k, item.clone());
            }
            Ok(())
        })?;
    }
    apply_to_store(cx, &mut store, &old, &merged, &report)?;
    Ok(report)
}

/// config.toml's host sections alone (what the imported document is merged with).
fn host_only_text(cx: &Ctx) -> Result<String> {
    let mut doc: toml_edit::DocumentMut =
        config::host_document(&config::read_host_text(&cx.home)?)?;
    for k in shared::shared_sections(&doc) {
        doc.remove(&k);
    }
    Ok(doc.to_string())
}

/// The installation's settings are the business of an operator who configures every account.
fn admin_only(cx: &Ctx, config: &Config, action: &str) -> Result<()> {
    if access::configures_all(cx, config) {
        return Ok(());
    }
    cx.store()?.audit(
        &cx.operator,
        "refused",
        None,
        Some(action),
        &json!({"need": "configure every account"}),
    )?;
    Err(AppError::needs_user(
        format!(
            "operator {} may not export or import the installation's settings",
            cx.operator
        ),
        "they hold the settings of accounts of other owners",
        "ask an operator who owns (or configures) every account; `mailroom account show NAME` shows the settings of your own accounts",
    )
    .with_code(Code::AccessDenied))
}

/// What changes from `old` to `new`; refuses a change of an account's id (the database keys
/// everything by it) and two accounts with one id.
fn compare(old: &Config, new: &Config) -> Result<ImportReport> {
    let mut r = ImportReport::default();
    let mut ids: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, a) in &new.accounts {
        if let Some(other) = ids.insert(&a.id, name) {
            return Err(AppError::usage(
                format!("accounts {other} and {name} have the same id {}", a.id),
                "every account has an id of its own: give the new account another id (the existing ones are in `mailroom config export`)",
            )
            .with_code(Code::ConfigInvalid));
        }
        match old.accounts.get(name) {
            Some(o) if o.id != a.id => return Err(rekeyed(name, o, a)),
            Some(o) if o != a => r.changed.push(name.clone()),
            Some(_) => {}
            None => match old.account_by_id(&a.id) {
                Some((from, o)) => {
                    r.renamed.push(Renamed {
                        from: from.clone(),
                        to: name.clone(),
                    });
                    if o != a {
                        r.changed.push(name.clone());
                    }
                }
                None => {
                    r.added.push(name.clone());
                    if a.auth.is_password() && a.password_command.is_none() {
                        r.need_password.push(name.clone());
                    }
                }
            },
        }
    }
    for (name, o) in &old.accounts {
        if !new.accounts.contains_key(name) && new.account_by_id(&o.id).is_none() {
            r.removed.push(name.clone());
        }
    }
    if old.general != new.general {
        r.sections.push("general".into());
    }
    if old.system_smtp != new.system_smtp {
        r.sections.push("system_smtp".into());
    }
    if old.alerts != new.alerts {
        r.sections.push("alerts".into());
    }
    Ok(r)
}

fn rekeyed(name: &str, old: &AccountConfig, new: &AccountConfig) -> AppError {
    AppError::usage(
        format!(
            "account {name} has id {} in the installation and {} in the file",
            old.id, new.id
        ),
        format!(
            "an account's id never changes (its mail, outbox and history are kept by it): write id = \"{}\" for {name}, or add the other account under a new name",
            old.id
        ),
    )
    .with_code(Code::ConfigInvalid)
}

/// The store follows the settings: new and renamed accounts get their state row (under the new
/// name), removed ones lose their cached mail as with `account remove`; one audit record.
fn apply_to_store(
    cx: &Ctx,
    store: &mut crate::store::Conn,
    old: &Config,
    new: &Config,
    r: &ImportReport,
) -> Result<()> {
    for name in r.added.iter().chain(r.renamed.iter().map(|x| &x.to)) {
        if let Some(a) = new.accounts.get(name) {
            store.insert_account(&a.id, name, a.enabled)?;
        }
    }
    for name in &r.removed {
        if let Some(a) = old.accounts.get(name) {
            store.remove_account_data(&a.id, false)?;
            store.set_state(&a.id, crate::store::AccountState::Disabled)?;
        }
    }
    store.audit(
        &cx.operator,
        "config_import",
        None,
        None,
        &serde_json::to_value(r).unwrap_or_default(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(accounts: &[(&str, &str, &str)]) -> Config {
        let mut text = String::new();
        for (name, id, email) in accounts {
            text.push_str(&format!(
                "[accounts.{name}]\nid = \"{id}\"\nemail = \"{email}\"\nuser = \"{email}\"\nimap = {{ host = \"h\", port = 993, security = \"tls\" }}\nsmtp = {{ host = \"h\", port = 587, security = \"starttls\" }}\n"
            ));
        }
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn compare_names_added_changed_removed_and_renamed_accounts() {
        let old = config(&[("a", "1", "a@x"), ("b", "2", "b@x"), ("c", "3", "c@x")]);
        let mut new = config(&[("a", "1", "a2@x"), ("bee", "2", "b@x"), ("d", "4", "d@x")]);
        new.general.fold_plus_addresses = true;
        let r = compare(&old, &new).unwrap();
        assert_eq!(r.added, ["d"]);
        assert_eq!(r.changed, ["a"]);
        assert_eq!(r.removed, ["c"]);
        assert_eq!(
            r.renamed,
            [Renamed {
                from: "b".into(),
                to: "bee".into()
            }]
        );
        assert_eq!(r.sections, ["general"]);
        assert_eq!(r.need_password, ["d"]);
        assert!(compare(&old, &old).unwrap().is_empty());
    }

    #[test]
    fn compare_refuses_a_new_id_for_an_account_and_two_accounts_with_one_id() {
        let old = config(&[("a", "1", "a@x")]);
        let err = compare(&old, &config(&[("a", "9", "a@x")])).unwrap_err();
        assert_eq!(err.code, Code::ConfigInvalid);
        assert!(err.fix.contains("id = \"1\""), "{}", err.fix);
        let err = compare(&old, &config(&[("a", "1", "a@x"), ("b", "1", "b@x")])).unwrap_err();
        assert!(err.summary.contains("same id"), "{}", err.summary);
    }
}
