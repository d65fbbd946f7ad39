//! Shared settings in the database, for installations on PostgreSQL (many hosts, one
//! installation).
//!
//! Every section but the host settings ([`HOST_KEYS`]: `[store]` and `[ui]`) is shared: the
//! accounts, aliases, sharing, deny lists, the system SMTP profile, alerts. On PostgreSQL they
//! live in the table `shared_settings` as one TOML document with a version; config.toml keeps
//! the host settings only, and [`super::Config::load`] merges the two. On SQLite nothing here
//! runs: config.toml holds everything, as it always did.
//!
//! One source of truth: a host file that still has shared sections (an installation moved to
//! PostgreSQL) seeds an installation that has none yet, once; the file is never rewritten, and
//! the admin is told to remove the sections. Equal to the installation's, they are read past
//! (with the same advice), but nothing can be changed from that host until they are gone;
//! different, every command refuses with `config.split` and names the fix.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::{Config, Home, StoreUrl};
use crate::error::{AppError, Code, Result};
use crate::store::{Db, SharedDoc, Store};

/// The sections each host keeps for itself; everything else is shared.
pub const HOST_KEYS: &[&str] = &["store", "ui"];

/// The database of a PostgreSQL installation, one pool per URL for the whole process (for
/// what reads settings without a service context: the supervisor, the outbox, the vault).
pub fn db(url: &StoreUrl) -> Result<Db> {
    static POOLS: OnceLock<Mutex<HashMap<String, Db>>> = OnceLock::new();
    let key = url.display();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(db) = pools.lock().ok().and_then(|p| p.get(&key).cloned()) {
        return Ok(db);
    }
    let db = Db::open_url(url)?;
    if let Ok(mut p) = pools.lock() {
        p.insert(key, db.clone());
    }
    Ok(db)
}

/// The merged settings: this host's file (`host_text`) and the installation's document.
pub fn load(home: &Home, host_text: &str, store: &Store) -> Result<Config> {
    let (host_text, shared) = reconcile(home, host_text, store)?;
    let doc = shared.map(|s| s.doc).unwrap_or_default();
    merge(&host_text, &doc)
}

/// The shared settings as the installation holds them (empty while never written).
pub fn current(home: &Home, store: &Store) -> Result<SharedDoc> {
    let host_text = super::read_host_text(home)?;
    let (_, shared) = reconcile(home, &host_text, store)?;
    Ok(shared.unwrap_or(SharedDoc {
        version: 0,
        doc: String::new(),
    }))
}

/// Edits the shared document under the row lock: two hosts' edits run one after the other,
/// and neither loses the other's change. The edited document must merge into valid settings.
pub fn edit(
    home: &Home,
    store: &Store,
    f: impl FnOnce(&mut toml_edit::DocumentMut) -> Result<()>,
) -> Result<i64> {
    let host_text = super::read_host_text(home)?;
    let (host_only, _) = reconcile(home, &host_text, store)?;
    require_clean_host_file(home, &host_text)?;
    let host_text = host_only;
    require_admin(store)?;
    store.in_transaction(|| {
        let locked = store.lock_shared_settings()?;
        let mut doc: toml_edit::DocumentMut = locked.doc.parse().map_err(|e| {
            invalid_shared("the installation's shared settings are not valid TOML", e)
        })?;
        f(&mut doc)?;
        if let Some(k) = HOST_KEYS.iter().find(|k| doc.contains_key(k)) {
            return Err(AppError::local(
                format!("an edit of the shared settings wrote the host setting [{k}]"),
                "",
                "report this as a bug",
            ));
        }
        let text = doc.to_string();
        let merged = merge(&host_text, &text).map_err(|e| {
            AppError::local(
                "the edited configuration would be invalid",
                e.detail,
                "report this as a bug",
            )
        })?;
        publish(store, locked.version + 1, &text, &merged)?;
        Ok(locked.version + 1)
    })
}

/// Replaces the shared document with `text` (already validated), under the row lock.
pub fn replace(home: &Home, store: &Store, text: &str) -> Result<i64> {
    let host_text = super::read_host_text(home)?;
    let (host_only, _) = reconcile(home, &host_text, store)?;
    require_clean_host_file(home, &host_text)?;
    let merged = merge(&host_only, text)?;
    require_admin(store)?;
    store.in_transaction(|| {
        let locked = store.lock_shared_settings()?;
        publish(store, locked.version + 1, text, &merged)?;
        Ok(locked.version + 1)
    })
}

/// On PostgreSQL the settings document is one row for every account, so only the tables'
/// owner (the admin role) writes it: an operator's role that could would be able to point
/// another owner's account at a server of its choosing (row-level security cannot split a row).
fn require_admin(store: &Store) -> Result<()> {
    match store.pg_role()? {
        Some(role) if !role.admin => Err(AppError::needs_user(
            format!("operator {} cannot change the installation's settings on PostgreSQL", role.name),
            "on PostgreSQL the settings are one document for every account, so only the admin role writes them",
            "connect as the installation's admin role (the tables' owner) to change settings, or ask the admin to run the command",
        )
        .with_code(Code::OperatorMismatch)),
        _ => Ok(()),
    }
}

/// The one door every write of the shared settings on PostgreSQL passes through, inside the
/// transaction that holds the row lock: `doc` becomes `version`, and `merged` is what the
/// installation's settings are from then on (for anything kept in step with them).
pub fn publish(store: &Store, version: i64, doc: &str, merged: &Config) -> Result<()> {
    store.write_shared_settings(version, doc, &crate::store::hostname())?;
    store.refresh_account_access_in_tx(merged)?;
    Ok(())
}

/// Host file + shared document → settings, by the same strict rules as config.toml (unknown
/// keys are errors; a mistake names its line and column in the document that holds it).
pub fn merge(host_text: &str, shared_text: &str) -> Result<Config> {
    let shared = parse_shared(shared_text, "the installation's shared settings")?;
    let mut table: toml::Table =
        toml::from_str(host_text).map_err(|e| invalid_shared("config.toml is not valid", e))?;
    for (k, v) in shared {
        table.insert(k, v);
    }
    let config: Config = toml::Value::Table(table)
        .try_into()
        .map_err(|e| invalid_shared("the settings are not valid", e))?;
    config.alerts.check()?;
    Ok(config)
}

/// Parses a shared-settings document (`what` names it in errors): valid settings on their own,
/// and no host section in it.
pub fn parse_shared(text: &str, what: &str) -> Result<toml::Table> {
    let config: Config = toml::from_str(text).map_err(|e| invalid_shared(what, e))?;
    config.alerts.check()?;
    let table: toml::Table = toml::from_str(text).map_err(|e| invalid_shared(what, e))?;
    if let Some(k) = HOST_KEYS.iter().find(|k| table.contains_key(**k)) {
        return Err(AppError::usage(
            format!("{what} hold the host setting [{k}]"),
            format!("[{k}] belongs in each host's config.toml; remove it from the shared settings"),
        )
        .with_code(Code::ConfigInvalid));
    }
    Ok(table)
}

fn invalid_shared(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::local(
        what.to_string(),
        e.to_string(),
        "fix the named key (unknown keys are rejected); `mailroom config export` shows the shared settings",
    )
    .with_code(Code::ConfigInvalid)
}

/// The names of the shared sections a host file holds.
pub fn shared_sections(doc: &toml_edit::DocumentMut) -> Vec<String> {
    doc.iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| !HOST_KEYS.contains(&k.as_str()))
        .collect()
}

/// The shared part of a TOML document (its host sections removed), comments kept.
pub fn shared_part(doc: &toml_edit::DocumentMut) -> String {
    let mut shared = doc.clone();
    for k in HOST_KEYS {
        shared.remove(k);
    }
    shared.to_string()
}

/// Makes the host file and the database one source of truth (see the module's words); returns
/// the host file's own sections as text and the installation's document.
fn reconcile(home: &Home, host_text: &str, store: &Store) -> Result<(String, Option<SharedDoc>)> {
    let doc: toml_edit::DocumentMut = super::host_document(host_text)?;
    let sections = shared_sections(&doc);
    if sections.is_empty() {
        return Ok((host_text.to_string(), store.shared_settings()?));
    }
    let from_file = shared_part(&doc);
    let path = home.config_path();
    let (shared, seeded) = store.in_transaction(|| {
        let locked = store.lock_shared_settings()?;
        if locked.version == 0 {
            let merged = merge(host_text, "")?;
            publish(store, 1, &from_file, &merged)?;
            let doc = SharedDoc {
                version: 1,
                doc: from_file.clone(),
            };
            return Ok((doc, true));
        }
        let same = parse_shared(&from_file, "config.toml's shared sections")?
            == parse_shared(&locked.doc, "the installation's shared settings")?;
        if !same {
            return Err(split_error(&path, &sections));
        }
        Ok((locked, false))
    })?;
    warn_once(&path, &sections, seeded);
    let mut host = doc;
    for k in &sections {
        host.remove(k);
    }
    Ok((host.to_string(), Some(shared)))
}

/// Tells the admin (once per process, on stderr and in the log) that config.toml still holds
/// shared settings that now live in the database.
fn warn_once(path: &std::path::Path, sections: &[String], seeded: bool) {
    static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let what = if seeded {
        "were copied into the PostgreSQL store, where every host reads them"
    } else {
        "equal the installation's in the PostgreSQL store"
    };
    let words = format!(
        "the shared settings in {} ({}) {what}; remove them from that file (keep [store] and [ui]) — until then the settings cannot be changed on this host; `mailroom config export` shows them",
        path.display(),
        sections.join(", ")
    );
    tracing::warn!("{words}");
    eprintln!("mailroom: {words}");
}

/// An edit on PostgreSQL needs a host file without shared sections: otherwise the edit would
/// leave the file and the database disagreeing.
fn require_clean_host_file(home: &Home, host_text: &str) -> Result<()> {
    let doc: toml_edit::DocumentMut = super::host_document(host_text)?;
    let sections = shared_sections(&doc);
    if sections.is_empty() {
        return Ok(());
    }
    let path = home.config_path();
    Err(AppError::local(
        format!(
            "{} still holds shared settings ({}), so they cannot be changed from this host",
            path.display(),
            sections.join(", ")
        ),
        "on PostgreSQL the accounts, deny lists, system SMTP profile and alerts live in the database for every host; they are there already, and a change made now would leave this file disagreeing with them",
        format!(
            "remove those sections from {} (keep [store] and [ui]; `mailroom config export` shows the installation's), then run the command again",
            path.display()
        ),
    )
    .with_code(Code::ConfigSplit))
}

fn split_error(path: &std::path::Path, sections: &[String]) -> AppError {
    AppError::local(
        format!(
            "{} holds shared settings ({}) that differ from the installation's",
            path.display(),
            sections.join(", ")
        ),
        "on PostgreSQL the accounts, deny lists, system SMTP profile and alerts live in the database for every host; config.toml keeps [store] and [ui] only",
        format!(
            "see the installation's with `mailroom config export`; move the shared sections out of {} (keep [store] and [ui]) into a file of their own and, to make them the installation's, run `mailroom config import FILE`",
            path.display()
        ),
    )
    .with_code(Code::ConfigSplit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::engines::PgScratch;

    const ACCOUNT: &str = "id = \"ID\"\nemail = \"ID@example.test\"\nuser = \"ID@example.test\"\nimap = { host = \"h\", port = 993, security = \"tls\" }\nsmtp = { host = \"h\", port = 587, security = \"starttls\" }\n";

    fn account(name: &str, id: &str) -> String {
        format!("[accounts.{name}]\n{}", ACCOUNT.replace("ID", id))
    }

    /// A home on a fresh PostgreSQL database (None without a test server).
    fn pg_home(extra: &str) -> Option<(PgScratch, tempfile::TempDir, Home)> {
        let pg = PgScratch::new()?;
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        std::fs::write(
            home.config_path(),
            format!(
                "[store]\nurl = \"{}\"\n\n[ui]\ntheme = \"dark\"\n\n{extra}",
                pg.url
            ),
        )
        .unwrap();
        Some((pg, dir, home))
    }

    fn second_home(pg: &PgScratch, extra: &str) -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        std::fs::write(
            home.config_path(),
            format!("[store]\nurl = \"{}\"\n{extra}", pg.url),
        )
        .unwrap();
        (dir, home)
    }

    #[test]
    fn merge_takes_host_settings_from_the_file_and_the_rest_from_the_document() {
        let c = merge(
            "[ui]\ntheme = \"dark\"\n",
            &format!(
                "[general]\nfold_plus_addresses = true\n{}",
                account("work", "a1")
            ),
        )
        .unwrap();
        assert_eq!(c.ui.theme.as_deref(), Some("dark"));
        assert!(c.general.fold_plus_addresses);
        assert_eq!(c.account("work").unwrap().id, "a1");
        // The document may not hold a host section, nor an unknown key (named with its line).
        let err = parse_shared("[ui]\ntheme = \"x\"\n", "the file").unwrap_err();
        assert!(err.summary.contains("[ui]"), "{}", err.summary);
        let err = merge("", "[general]\nfold_plus = true\n").unwrap_err();
        assert_eq!(err.code, Code::ConfigInvalid);
        assert!(err.detail.contains("line 2"), "{}", err.detail);
    }

    #[test]
    fn a_first_load_on_postgres_seeds_the_database_from_config_toml_once() {
        let Some((pg, _dir, home)) = pg_home(&account("work", "a1")) else {
            return;
        };
        let before = std::fs::read_to_string(home.config_path()).unwrap();
        let c = Config::load(&home).unwrap();
        assert_eq!(c.account("work").unwrap().id, "a1");
        assert_eq!(c.ui.theme.as_deref(), Some("dark"));
        assert_eq!(
            std::fs::read_to_string(home.config_path()).unwrap(),
            before,
            "the file is never rewritten"
        );
        // Loaded again: the same settings; the database holds them once.
        assert_eq!(Config::load(&home).unwrap(), c);
        let store = db(&home.store_url().unwrap()).unwrap().conn().unwrap();
        assert_eq!(store.shared_settings_version().unwrap(), 1);
        // Nothing changes from this host until the file keeps host settings only.
        let err = super::super::edit(&home, |_| Ok(())).unwrap_err();
        assert_eq!(err.code, Code::ConfigSplit);
        assert!(err.fix.contains("remove those sections"), "{}", err.fix);
        std::fs::write(
            home.config_path(),
            format!("[store]\nurl = \"{}\"\n", pg.url),
        )
        .unwrap();
        super::super::edit(&home, |doc| {
            doc["general"]["fold_plus_addresses"] = toml_edit::value(true);
            Ok(())
        })
        .unwrap();
        let c = Config::load(&home).unwrap();
        assert!(c.general.fold_plus_addresses && c.accounts.contains_key("work"));
    }

    #[test]
    fn an_edit_on_one_host_is_seen_on_another_and_none_is_lost() {
        let Some((pg, _dir, a)) = pg_home("") else {
            return;
        };
        let (_dir_b, b) = second_home(&pg, "");
        let add = |home: &Home, name: &str, id: &str| {
            let text = account(name, id);
            super::super::edit(home, |doc| {
                let new: toml_edit::DocumentMut = text.parse().unwrap();
                let accounts = doc
                    .entry("accounts")
                    .or_insert(toml_edit::table())
                    .as_table_mut()
                    .unwrap();
                accounts.set_implicit(true);
                accounts.insert(name, new["accounts"][name].clone());
                Ok(())
            })
            .unwrap();
        };
        // Two hosts edit at once: both accounts land (the row lock orders the edits).
        std::thread::scope(|s| {
            s.spawn(|| add(&a, "one", "i1"));
            s.spawn(|| add(&b, "two", "i2"));
        });
        for home in [&a, &b] {
            let c = Config::load(home).unwrap();
            assert_eq!(
                c.accounts.keys().collect::<Vec<_>>(),
                ["one", "two"],
                "{}",
                home.root.display()
            );
        }
        // Host files keep their own host settings only.
        assert!(
            !std::fs::read_to_string(b.config_path())
                .unwrap()
                .contains("accounts")
        );
        assert_eq!(Config::load(&a).unwrap().ui.theme.as_deref(), Some("dark"));
        assert_eq!(Config::load(&b).unwrap().ui.theme, None);
    }

    #[test]
    fn a_host_file_that_disagrees_with_the_database_is_refused_and_an_equal_one_read_past() {
        let Some((pg, _dir, a)) = pg_home(&account("work", "a1")) else {
            return;
        };
        Config::load(&a).unwrap();
        let (_d1, same) = second_home(&pg, &format!("\n{}", account("work", "a1")));
        assert_eq!(
            Config::load(&same).unwrap().account("work").unwrap().id,
            "a1"
        );
        let (_d2, other) = second_home(&pg, &format!("\n{}", account("home", "h1")));
        let err = Config::load(&other).unwrap_err();
        assert_eq!(err.code, Code::ConfigSplit);
        assert!(err.fix.contains("config import"), "{}", err.fix);
        assert!(super::super::edit(&other, |_| Ok(())).is_err());
    }

    #[test]
    fn the_service_context_caches_by_file_and_version() {
        let Some((pg, _dir, a)) = pg_home("") else {
            return;
        };
        let (_d, b) = second_home(&pg, "");
        let cx = crate::ops::Ctx::new(a.clone(), "alice");
        let first = cx.config().unwrap();
        let again = cx.config().unwrap();
        assert!(
            std::sync::Arc::ptr_eq(&first, &again),
            "unchanged: the cached settings"
        );
        super::super::edit(&b, |doc| {
            doc["general"]["fold_plus_addresses"] = toml_edit::value(true);
            Ok(())
        })
        .unwrap();
        let after = cx.config().unwrap();
        assert!(
            after.general.fold_plus_addresses,
            "another host's edit is seen"
        );
        assert!(std::sync::Arc::ptr_eq(&after, &cx.config().unwrap()));
    }
}
