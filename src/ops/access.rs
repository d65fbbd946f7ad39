//! Who may see and change what — the one gate (contract: Operators).
//!
//! An account has an owner and a list of operators it is shared with. The owner configures,
//! shares, disables and removes it; an operator it is shared with reads and acts on its mail but
//! changes no settings; anyone else sees nothing of it (an account without an owner, from before
//! owners existed, belongs to everyone). Two exceptions live with their operations: account names
//! are installation-wide (a duplicate is refused whoever owns it), and `status` shows every
//! account's health, without mail.
//!
//! Every operation that names something held by an account — the account itself, a message, a
//! folder, an outbox or quarantine item, a triage action, a log entry — resolves which accounts
//! hold it and calls [`check`]. Something invisible is refused with exactly the words a
//! nonexistent id gets, nothing else is read or changed, and the refusal is written to the audit
//! log. Lists and counts ask [`visible_account_ids`] instead.

use crate::config::{AccountConfig, Config};
use crate::error::{AppError, Result};
use crate::store::Store;

use super::Ctx;

/// What an operation needs of the account(s) holding its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// See it: mail, folders, outbox, quarantine, log entries.
    Read,
    /// Act on its mail: triage, flag, move, delete, reply, retry a send.
    Act,
    /// Change its settings: edit, share, enable, disable, remove, choose folders.
    Configure,
}

impl Need {
    fn as_str(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::Act => "act",
            Need::Configure => "configure",
        }
    }
}

/// An operator's standing on one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Owns it (or it has no owner): everything.
    Owner,
    /// Shared with them: read and act on mail.
    Shared,
    /// Not theirs: it does not exist for them.
    Stranger,
}

impl Standing {
    pub fn of(acct: &AccountConfig, operator: &str) -> Standing {
        match &acct.owner {
            None => Standing::Owner,
            Some(o) if o == operator => Standing::Owner,
            Some(_) if acct.shared_with.iter().any(|s| s == operator) => Standing::Shared,
            Some(_) => Standing::Stranger,
        }
    }

    pub fn allows(self, need: Need) -> bool {
        match self {
            Standing::Owner => true,
            Standing::Shared => need <= Need::Act,
            Standing::Stranger => false,
        }
    }
}

/// What an operation names, as the user named it.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Account(&'a str),
    Folder { account: &'a str, folder: &'a str },
    Message(i64),
    Outbox(i64),
    Quarantine(i64),
    Action(i64),
    Event(i64),
}

impl Target<'_> {
    /// The noun of the refusal ("no such message visible to operator eve").
    pub fn noun(&self) -> &'static str {
        match self {
            Target::Account(_) => "account",
            Target::Folder { .. } => "folder",
            Target::Message(_) => "message",
            Target::Outbox(_) => "outbox item",
            Target::Quarantine(_) => "quarantined message",
            Target::Action(_) => "action",
            Target::Event(_) => "log entry",
        }
    }

    /// How the target reads in the detail and the audit log.
    pub fn text(&self) -> String {
        match self {
            Target::Account(name) => format!("account {name}"),
            Target::Folder { account, folder } => format!("folder {folder} of {account}"),
            Target::Message(id) => format!("message {id}"),
            Target::Outbox(id) => format!("outbox:{id}"),
            Target::Quarantine(id) => format!("quarantine:{id}"),
            Target::Action(id) => format!("action:{id}"),
            Target::Event(id) => format!("event:{id}"),
        }
    }

    /// What the database's own refusal audit (`Store::audit_hidden_refusal`) calls this
    /// target, for those a role can be kept from seeing; None for accounts and folders (named
    /// from the configuration, whose refusals the app audits itself) and actions.
    fn hidden_kind(&self) -> Option<(&'static str, i64)> {
        match self {
            Target::Message(id) => Some(("message", *id)),
            Target::Outbox(id) => Some(("outbox", *id)),
            Target::Quarantine(id) => Some(("quarantine", *id)),
            Target::Event(id) => Some(("event", *id)),
            Target::Account(_) | Target::Folder { .. } | Target::Action(_) => None,
        }
    }

    /// Where the user finds what they can name instead.
    fn listing(&self) -> &'static str {
        match self {
            Target::Account(_) => "mailroom account list",
            Target::Folder { .. } => "mailroom folders NAME",
            Target::Message(_) => "mailroom messages",
            Target::Outbox(_) => "mailroom outbox",
            Target::Quarantine(_) => "mailroom quarantine list",
            Target::Action(_) => "mailroom audit",
            Target::Event(_) => "mailroom log",
        }
    }
}

/// The error for something that does not exist for this operator — the same words whether it
/// is missing or hidden.
pub fn no_such(cx: &Ctx, target: &Target) -> AppError {
    AppError::needs_user(
        format!(
            "no such {} visible to operator {}",
            target.noun(),
            cx.operator
        ),
        target.text(),
        format!("see `{}` for what you can use", target.listing()),
    )
    .with_code(crate::error::Code::NotFound)
}

/// The one decision. `holders` are the ids of the accounts that hold the target (empty: it does
/// not exist). Granted when any holder allows `need`. A refusal of something that exists is
/// audited (against the first holder, so its owner sees who tried) and reads like a missing id,
/// unless the operator may see it but not change settings: then it says so.
pub fn check(
    cx: &Ctx,
    config: &Config,
    store: &Store,
    target: &Target,
    holders: &[String],
    need: Need,
) -> Result<()> {
    let standings: Vec<Standing> = holders
        .iter()
        .filter_map(|id| config.account_by_id(id))
        .map(|(_, a)| Standing::of(a, &cx.operator))
        .collect();
    if standings.iter().any(|s| s.allows(need)) {
        return Ok(());
    }
    if holders.is_empty() {
        // Missing, or hidden from this role by row-level security (PostgreSQL): then the
        // database audits it against the account that holds it.
        if let Some((kind, id)) = target.hidden_kind() {
            store.audit_hidden_refusal(kind, id, &target.text(), need.as_str())?;
        }
        return Err(no_such(cx, target));
    }
    let sees = standings.iter().any(|s| s.allows(Need::Read));
    store.audit(
        &cx.operator,
        "refused",
        holders.first().map(String::as_str),
        Some(&target.text()),
        &serde_json::json!({"need": need.as_str()}),
    )?;
    if sees {
        let owner = holders
            .iter()
            .filter_map(|id| config.account_by_id(id))
            .find_map(|(_, a)| a.owner.clone())
            .unwrap_or_default();
        return Err(AppError::needs_user(
            format!(
                "operator {} may not change the settings of {}",
                cx.operator,
                target.text()
            ),
            format!(
                "it is shared with {}; only its owner changes settings",
                cx.operator
            ),
            format!("ask {owner} (the owner) to make this change"),
        )
        .with_code(crate::error::Code::AccessDenied));
    }
    Err(no_such(cx, target))
}

/// The ids of every account this operator may see: what lists and counts are limited to.
pub fn visible_account_ids(cx: &Ctx, config: &Config) -> Vec<String> {
    account_ids(cx, config, Need::Read)
}

/// The ids of every account this operator may do `need` on (a list of settings shows the
/// accounts the operator may configure).
pub fn account_ids(cx: &Ctx, config: &Config, need: Need) -> Vec<String> {
    config
        .accounts
        .values()
        .filter(|a| Standing::of(a, &cx.operator).allows(need))
        .map(|a| a.id.clone())
        .collect()
}

/// Changing the system SMTP profile (`[system_smtp]`) changes how every account that sends
/// through it sends, so it is a setting of each of them: allowed when this operator may
/// configure every account that uses it (anyone, while none does). A refusal is audited and
/// names the accounts the operator can see; the others are only counted.
pub fn system_smtp(cx: &Ctx, config: &Config, store: &Store) -> Result<()> {
    let users: Vec<(&String, &AccountConfig)> = config
        .accounts
        .iter()
        .filter(|(_, a)| a.use_system_smtp)
        .collect();
    let barred: Vec<&(&String, &AccountConfig)> = users
        .iter()
        .filter(|(_, a)| !Standing::of(a, &cx.operator).allows(Need::Configure))
        .collect();
    if barred.is_empty() {
        return Ok(());
    }
    store.audit(
        &cx.operator,
        "refused",
        barred.first().map(|(_, a)| a.id.as_str()),
        Some("system SMTP profile"),
        &serde_json::json!({"need": Need::Configure.as_str()}),
    )?;
    let seen: Vec<&str> = barred
        .iter()
        .filter(|(_, a)| Standing::of(a, &cx.operator).allows(Need::Read))
        .map(|(n, _)| n.as_str())
        .collect();
    let hidden = barred.len() - seen.len();
    let mut who = seen.join(", ");
    if hidden > 0 {
        who = match who.is_empty() {
            true => format!("{hidden} account(s) you cannot see"),
            false => format!("{who} and {hidden} account(s) you cannot see"),
        };
    }
    Err(AppError::needs_user(
        format!(
            "operator {} may not change the system SMTP profile",
            cx.operator
        ),
        format!("accounts of other owners send through it: {who}"),
        "ask their owners to make this change (only the owner of every account that uses the profile may change it)",
    ))
}

/// Whether this operator may configure every account (anyone, while there is none): what a
/// setting of the whole installation needs, such as an alert channel for every account.
pub fn configures_all(cx: &Ctx, config: &Config) -> bool {
    config
        .accounts
        .values()
        .all(|a| Standing::of(a, &cx.operator).allows(Need::Configure))
}

/// An alert channel for every account hears every account's events (what failed, outbox
/// items, quarantined mail): setting, changing, removing or testing one needs the right to
/// configure every account. A refusal is audited and says how to get a channel of one's own.
pub fn alerts_global(cx: &Ctx, config: &Config, store: &Store) -> Result<()> {
    if configures_all(cx, config) {
        return Ok(());
    }
    store.audit(
        &cx.operator,
        "refused",
        None,
        Some("alert channels for every account"),
        &serde_json::json!({"need": Need::Configure.as_str()}),
    )?;
    Err(AppError::needs_user(
        format!(
            "operator {} may not change alert channels for every account",
            cx.operator
        ),
        "such a channel hears the events of accounts of other owners",
        "set a channel for an account you own: `mailroom alerts set --account NAME …`",
    )
    .with_code(crate::error::Code::AccessDenied))
}

/// An account named by the user, if this operator may do `need` on it.
pub fn account<'c>(
    cx: &Ctx,
    config: &'c Config,
    store: &Store,
    name: &str,
    need: Need,
) -> Result<(&'c String, &'c AccountConfig)> {
    let target = Target::Account(name);
    match config.accounts.get_key_value(name) {
        Some((n, a)) => {
            check(
                cx,
                config,
                store,
                &target,
                std::slice::from_ref(&a.id),
                need,
            )?;
            Ok((n, a))
        }
        None => Err(no_such(cx, &target)),
    }
}

/// `--account NAME`, or the only account this operator may see when none is named.
pub fn pick_account<'c>(
    cx: &Ctx,
    config: &'c Config,
    store: &Store,
    name: Option<&str>,
    need: Need,
) -> Result<(&'c String, &'c AccountConfig)> {
    if let Some(n) = name {
        return account(cx, config, store, n, need);
    }
    let mut mine = config
        .accounts
        .iter()
        .filter(|(_, a)| Standing::of(a, &cx.operator).allows(Need::Read));
    match (mine.next(), mine.next()) {
        (Some((n, a)), None) => {
            check(
                cx,
                config,
                store,
                &Target::Account(n),
                std::slice::from_ref(&a.id),
                need,
            )?;
            Ok((n, a))
        }
        (None, _) => Err(AppError::usage(
            "no account is configured",
            "add one with `mailroom account add NAME --email … --imap … --smtp …`",
        )
        .with_code(crate::error::Code::AccountsNone)),
        _ => Err(AppError::usage(
            "several accounts are configured",
            "name one with --account NAME",
        )),
    }
}

/// A message named by id; returns the ids of the accounts holding it that this operator may do
/// `need` on (an action touches only those copies).
pub fn message(
    cx: &Ctx,
    config: &Config,
    store: &Store,
    id: i64,
    need: Need,
) -> Result<Vec<String>> {
    let holders = store.message_account_ids(id)?;
    check(cx, config, store, &Target::Message(id), &holders, need)?;
    Ok(holders
        .into_iter()
        .filter(|h| {
            config
                .account_by_id(h)
                .is_some_and(|(_, a)| Standing::of(a, &cx.operator).allows(need))
        })
        .collect())
}

/// A quarantined message named by id, with its kept bytes, if this operator may do `need` on
/// its account.
pub fn quarantine_item(
    cx: &Ctx,
    config: &Config,
    store: &Store,
    id: i64,
    need: Need,
) -> Result<(crate::store::QuarantineRow, Vec<u8>)> {
    let target = Target::Quarantine(id);
    let item = store.quarantine_get(id)?;
    let holders: Vec<String> = item.iter().map(|(r, _)| r.account_id.clone()).collect();
    check(cx, config, store, &target, &holders, need)?;
    item.ok_or_else(|| no_such(cx, &target))
}

/// A triage action (for `undo`): `holders` are the accounts it is about — where its message is
/// now and where the action found it. An action about no account any more (its message left
/// the cache) stays its author's; anyone else gets the missing-id answer.
pub fn action(
    cx: &Ctx,
    config: &Config,
    store: &Store,
    action: &crate::store::ActionRow,
    holders: &[String],
    need: Need,
) -> Result<()> {
    if holders.is_empty() && action.operator == cx.operator {
        return Ok(());
    }
    check(cx, config, store, &Target::Action(action.id), holders, need)
}

/// An outbox item named by id, if this operator may do `need` on the account it belongs to.
pub fn outbox_item(cx: &Ctx, config: &Config, store: &Store, id: i64, need: Need) -> Result<()> {
    let holders: Vec<String> = store.outbox_account_id(id)?.into_iter().collect();
    check(cx, config, store, &Target::Outbox(id), &holders, need)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(owner: Option<&str>, shared: &[&str]) -> AccountConfig {
        let mut a: AccountConfig = toml::from_str(
            r#"id = "a1"
email = "x@example.test"
user = "x@example.test"
imap = { host = "h", port = 993, security = "tls" }
smtp = { host = "h", port = 587, security = "starttls" }"#,
        )
        .unwrap();
        a.owner = owner.map(str::to_string);
        a.shared_with = shared.iter().map(|s| s.to_string()).collect();
        a
    }

    #[test]
    fn owners_configure_shared_operators_act_strangers_see_nothing() {
        let a = acct(Some("alice"), &["carol"]);
        assert!(Standing::of(&a, "alice").allows(Need::Configure));
        assert!(Standing::of(&a, "carol").allows(Need::Act));
        assert!(!Standing::of(&a, "carol").allows(Need::Configure));
        assert!(!Standing::of(&a, "eve").allows(Need::Read));
        let legacy = acct(None, &[]);
        assert!(Standing::of(&legacy, "anyone").allows(Need::Configure));
    }

    #[test]
    fn a_hidden_message_reads_like_a_missing_one_and_the_refusal_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        let cx = Ctx::new(home, "eve");
        let mut config = Config::default();
        config
            .accounts
            .insert("work".into(), acct(Some("alice"), &[]));
        let store = cx.store().unwrap();
        let folder = store.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
        let id = store
            .fixture_message(
                "a1",
                folder,
                1,
                &crate::store::FixtureMessage {
                    from_addr: "x@example.org".into(),
                    subject: "s".into(),
                    date: "2026-01-01T00:00:00Z".into(),
                    direction: "in",
                    ..Default::default()
                },
            )
            .unwrap();
        let hidden = message(&cx, &config, &store, id, Need::Read).unwrap_err();
        let missing = message(&cx, &config, &store, id + 1000, Need::Read).unwrap_err();
        assert_eq!(hidden.summary, "no such message visible to operator eve");
        assert_eq!(hidden.summary, missing.summary);
        assert_eq!(hidden.fix, missing.fix);
        let audit = store.audit_rows(10).unwrap();
        assert_eq!(audit.len(), 1, "only the refusal of what exists is audited");
        assert_eq!(audit[0].action, "refused");
        assert_eq!(audit[0].operator, "eve");
        let alice = cx.as_operator("alice");
        assert_eq!(
            message(&alice, &config, &store, id, Need::Act).unwrap(),
            vec!["a1".to_string()]
        );
    }
}
