use super::*;
use crate::store::fixture::FixtureMessage;
use crate::store::sql::{Conn, PgConn, engines::PgScratch, pg_config};

/// Three accounts: `a1` owned by `a`, shared with `s`; `b1` owned by `b`; `u1` without owner.
fn config(a: &str, b: &str, s: &str) -> Config {
    let acct = |id: &str, owner: Option<&str>, shared: &[&str]| {
        let owner = owner
            .map(|o| format!("owner = \"{o}\"\n"))
            .unwrap_or_default();
        let shared: Vec<String> = shared.iter().map(|s| format!("\"{s}\"")).collect();
        format!(
            "id = \"{id}\"\nemail = \"{id}@example.test\"\nuser = \"{id}\"\n{owner}shared_with = [{}]\nimap = {{ host = \"h\", port = 993, security = \"tls\" }}\nsmtp = {{ host = \"h\", port = 587, security = \"starttls\" }}\n",
            shared.join(", ")
        )
    };
    toml::from_str(&format!(
        "[accounts.one]\n{}\n[accounts.two]\n{}\n[accounts.open]\n{}",
        acct("a1", Some(a), &[s]),
        acct("b1", Some(b), &[]),
        acct("u1", None, &[])
    ))
    .unwrap()
}

/// Two messages in a1, three in b1, one in u1 (each with a body).
fn mail(store: &Store) {
    for (acct, n) in [("a1", 2), ("b1", 3), ("u1", 1)] {
        let folder = store.fixture_folder(acct, "INBOX", Some("inbox")).unwrap();
        for uid in 1..=n {
            store
                .fixture_message(
                    acct,
                    folder,
                    uid,
                    &FixtureMessage {
                        from_addr: format!("x{uid}@{acct}.test"),
                        subject: format!("{acct} #{uid}"),
                        date: "2026-01-01T00:00:00Z".into(),
                        body: Some(b"Subject: s\r\n\r\nhello".to_vec()),
                        text_body: Some("hello".into()),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
    }
}

/// Test roles are cluster-wide: dropped (with their grants in the scratch database) at the end.
struct Roles<'a> {
    pg: &'a PgScratch,
    names: Vec<String>,
}

impl Drop for Roles<'_> {
    fn drop(&mut self) {
        if let Ok(c) = pg_config(&self.pg.url)
            .and_then(PgConn::connect)
            .map(Conn::Pg)
        {
            for n in &self.names {
                let _ = c.batch(&format!("DROP OWNED BY \"{n}\""));
                let _ = c.batch(&format!("DROP ROLE IF EXISTS \"{n}\""));
            }
        }
    }
}

fn connect_as(pg: &PgScratch, user: &str, password: &str) -> Store {
    let mut cfg = pg_config(&pg.url).unwrap();
    cfg.user(user).password(password);
    Store {
        conn: Conn::Pg(PgConn::connect(cfg).unwrap()),
    }
}

fn count(store: &Store, table: &str) -> i64 {
    store
        .conn
        .one(&format!("SELECT COUNT(*) FROM {table}"), &[], |r| r.get(0))
        .unwrap()
}

#[test]
fn access_rows_follow_owner_sharing_and_unowned() {
    let rows = access_rows(&config("ann", "bob", "sue"));
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|a| (a.account_id.as_str(), a.operator.as_str(), a.standing))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a1", "ann", "owner"),
            ("a1", "sue", "shared"),
            ("b1", "bob", "owner"),
            ("u1", "*", "owner"),
        ]
    );
}

#[test]
fn role_names_are_checked() {
    for ok in ["ann", "a_b-2", "_x"] {
        assert!(check_role_name(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "Ann",
        "1a",
        "pg_x",
        "a b",
        "a\"b",
        "public",
        "mailroom",
        &"a".repeat(64),
    ] {
        assert!(check_role_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn sqlite_operators_are_names_only() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.pg_role().unwrap(), None);
    store.add_operator("ann", None, "root").unwrap();
    let again = store.add_operator("ann", None, "root").unwrap_err();
    assert_eq!(again.code, Code::Conflict);
    let ops = store.operators().unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!((ops[0].name.as_str(), ops[0].role), ("ann", None));
    assert_eq!(
        store
            .refresh_account_access(&config("ann", "bob", "sue"))
            .unwrap(),
        4
    );
    assert_eq!(
        store
            .refresh_account_access(&config("ann", "bob", "sue"))
            .unwrap(),
        0
    );
    assert!(store.remove_operator("ann").unwrap());
    assert_eq!(
        store.remove_operator("ann").unwrap_err().code,
        Code::NotFound
    );
}

#[test]
fn row_level_security_hides_other_operators_mail() {
    let Some(pg) = PgScratch::new() else { return };
    let admin = Store::open_url(&crate::config::StoreUrl::Postgres(pg.url.clone())).unwrap();
    let tag = crate::model::new_id().to_lowercase();
    let tag: String = tag
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect();
    let (a, b, s) = (
        format!("ra_{tag}"),
        format!("rb_{tag}"),
        format!("rs_{tag}"),
    );
    let _roles = Roles {
        pg: &pg,
        names: vec![a.clone(), b.clone(), s.clone()],
    };
    for n in [&a, &b, &s] {
        admin.add_operator(n, Some("pw'1"), "admin").unwrap();
    }
    assert!(admin.pg_role().unwrap().unwrap().admin);
    mail(&admin);
    let cfg = config(&a, &b, &s);
    assert_eq!(admin.refresh_account_access(&cfg).unwrap(), 4);

    let sa = connect_as(&pg, &a, "pw'1");
    let sb = connect_as(&pg, &b, "pw'1");
    let ss = connect_as(&pg, &s, "pw'1");
    let role = sa.pg_role().unwrap().unwrap();
    assert_eq!((role.name.as_str(), role.admin), (a.as_str(), false));
    // a sees a1 and u1; b sees b1 and u1; s (shared a1) sees a1 and u1; the admin all.
    for (store, want) in [(&sa, 3), (&sb, 4), (&ss, 3), (&admin, 6)] {
        for table in ["messages", "locations", "bodies"] {
            assert_eq!(count(store, table), want, "{table}");
        }
    }
    assert_eq!(count(&sb, "folders"), 2);
    // Health is everyone's.
    assert_eq!(count(&sb, "accounts"), 3);
    // Writes are limited the same way: b cannot touch a's mail.
    let hit = sb
        .conn
        .exec("UPDATE messages SET triage_state = 'x'", &[])
        .unwrap();
    assert_eq!(hit, 4);
    assert_eq!(
        count(&admin, "messages WHERE triage_state = 'x'"),
        4,
        "only b's and the unowned account's rows changed"
    );
    // b's refresh leaves a's rows alone; b may not make itself see a1.
    assert_eq!(sb.refresh_account_access(&cfg).unwrap(), 0);
    let refused = sb.conn.exec(
        "INSERT INTO account_access (account_id, operator, standing) VALUES ('a1', ?1, 'shared')",
        crate::args![b],
    );
    assert!(refused.is_err(), "b granted itself a1");
    assert_eq!(count(&sb, "messages"), 4);
    // a shares a1 with b (its own account): b sees it.
    let mut shared = cfg.clone();
    if let Some(acct) = shared.accounts.get_mut("one") {
        acct.shared_with.push(b.clone());
    }
    assert_eq!(sa.refresh_account_access(&shared).unwrap(), 1);
    assert_eq!(count(&sb, "messages"), 6);
    // Operators cannot add operators.
    assert!(sa.add_operator("zz_nobody", None, &a).is_err());
}

#[test]
fn every_table_of_an_account_or_a_message_has_row_level_security() {
    let Some(pg) = PgScratch::new() else { return };
    let store = Store::open_url(&crate::config::StoreUrl::Postgres(pg.url.clone())).unwrap();
    // A migration that adds a table keyed by account or message must add its policy too.
    let open: Vec<String> = store
        .conn
        .rows(
            "SELECT DISTINCT c.relname FROM pg_class c
             JOIN information_schema.columns k ON k.table_name = c.relname
                 AND k.table_schema = current_schema()
             WHERE c.relkind = 'r' AND NOT c.relrowsecurity
               AND c.relnamespace = to_regnamespace(current_schema())
               AND k.column_name IN ('account_id', 'message_id', 'folder_id')
             ORDER BY c.relname",
            &[],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        open.is_empty(),
        "tables without row-level security: {open:?}"
    );
}

#[test]
fn an_administrator_role_is_never_made_an_operator() {
    let Some(pg) = PgScratch::new() else { return };
    let admin = Store::open_url(&crate::config::StoreUrl::Postgres(pg.url.clone())).unwrap();
    let tag: String = crate::model::new_id()
        .to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect();
    let boss = format!("boss_{tag}");
    let _roles = Roles {
        pg: &pg,
        names: vec![boss.clone()],
    };
    admin
        .conn
        .batch(&format!("CREATE ROLE {boss} LOGIN CREATEROLE"))
        .unwrap();
    let e = admin.add_operator(&boss, Some("x"), "admin").unwrap_err();
    assert_eq!(e.code, Code::Conflict, "{e:?}");
    assert!(admin.operators().unwrap().is_empty());
    let still: i64 = admin
        .conn
        .one(
            "SELECT COUNT(*) FROM pg_roles WHERE rolname = ?1 AND rolcreaterole",
            crate::args![boss],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(still, 1, "the role kept its rights");
}
