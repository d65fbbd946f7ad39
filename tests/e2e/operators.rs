//! Operators as PostgreSQL roles (issue 18, must-show): an operator without access sees no
//! invisible mail, through the CLI and with plain SQL through its own role; sharing makes the
//! mail appear; a different `--operator` on an operator's connection is refused.

use std::process::Output;

use mailroom::store::sql::{Conn, PgConn, pg_config};

use crate::common::*;

/// Roles are cluster-wide: dropped (their grants in the home's database first) at the end.
struct Roles {
    url: String,
    names: Vec<String>,
}

impl Drop for Roles {
    fn drop(&mut self) {
        if let Ok(c) = pg_config(&self.url).and_then(PgConn::connect).map(Conn::Pg) {
            for n in &self.names {
                let _ = c.batch(&format!("DROP OWNED BY \"{n}\""));
                let _ = c.batch(&format!("DROP ROLE IF EXISTS \"{n}\""));
            }
        }
    }
}

/// One operator as `operator add` set it up: its store URL and password file.
struct Operator {
    url: String,
    pgpass: String,
}

impl Operator {
    fn add(home: &Home, name: &str) -> Operator {
        let (code, v) = home.json(&["operator", "add", name]);
        assert_eq!(code, 0, "operator add {name}: {v}");
        let op = &v["operator"];
        assert_eq!(op["engine"], "postgres", "{v}");
        let pgpass = op["pgpass"].as_str().expect("a password file").to_string();
        assert!(
            !v.to_string().contains(&password_in(&pgpass)),
            "the password is printed: {v}"
        );
        Operator {
            url: op["store_url"].as_str().expect("store_url").to_string(),
            pgpass,
        }
    }

    /// `mailroom ARGS` on the home through this operator's own connection (no --operator).
    fn run(&self, home: &Home, args: &[&str]) -> Output {
        home.cmd()
            .env_remove("MAILROOM_OPERATOR")
            .env("MAILROOM_STORE", &self.url)
            .env("PGPASSFILE", &self.pgpass)
            .args(args)
            .output()
            .expect("mailroom runs")
    }

    fn json(&self, home: &Home, args: &[&str]) -> (i32, serde_json::Value) {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(home, &full);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let v = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {text:?} {}", stderr(&out)));
        (out.status.code().unwrap_or(-1), v)
    }

    /// Plain SQL through this operator's role: `SELECT COUNT(*) FROM table`.
    fn count(&self, table: &str) -> i64 {
        let mut cfg = pg_config(&self.url).expect("config");
        cfg.password(password_in(&self.pgpass));
        let c = Conn::Pg(PgConn::connect(cfg).expect("the operator connects"));
        c.one(&format!("SELECT COUNT(*) FROM {table}"), &[], |r| r.get(0))
            .expect("count")
    }
}

/// The password field of a one-line pgpass file.
fn password_in(pgpass: &str) -> String {
    let text = std::fs::read_to_string(pgpass).expect("pgpass");
    text.trim_end()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn list_len(v: &serde_json::Value, key: &str) -> usize {
    v[key].as_array().map_or(0, Vec::len)
}

/// The mail tables an operator must not see another operator's rows of.
const MAIL: &[&str] = &[
    "messages",
    "locations",
    "bodies",
    "folders",
    "messages_fts",
    "pending_ops",
    "actions",
    "matches",
    "outbox",
    "quarantine",
    "credentials",
    "trace_lines",
    "events WHERE account_id IS NOT NULL",
    // Its own refusals an operator may read: they name only an account id, which `status`
    // shows everyone anyway.
    "audit WHERE account_id IS NOT NULL AND action <> 'refused'",
];

#[test]
fn an_operator_without_access_sees_no_invisible_mail_even_with_plain_sql() {
    let Some(home) = Home::on_postgres() else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tag = format!("{}_{nanos}", std::process::id());
    let (a_name, b_name) = (format!("a{tag}"), format!("b{tag}"));
    let _roles = Roles {
        url: home.pg.as_ref().expect("postgres").url.clone(),
        names: vec![a_name.clone(), b_name.clone()],
    };
    let user = new_user("rls");
    seed(&user, 5);
    // The admin adds A's account (owned by A) and syncs it.
    let out = home.account_add(
        "work",
        &user,
        IMAPS,
        SUBMISSION,
        &["--operator", &a_name],
        PASSWORD,
    );
    assert!(out.status.success(), "account add: {}", stderr(&out));
    let out = home.run(&["--operator", &a_name, "sync", "work", "--once"]);
    assert!(out.status.success(), "sync: {}", stderr(&out));
    let a = Operator::add(&home, &a_name);
    let b = Operator::add(&home, &b_name);

    // A's own role sees its mail, through the CLI and plain SQL.
    let (code, v) = a.json(&home, &["messages"]);
    assert_eq!((code, list_len(&v, "messages")), (0, 5), "{v}");
    assert_eq!(a.count("messages"), 5);
    let id = v["messages"][0]["id"].as_i64().expect("id").to_string();
    let subject = v["messages"][0]["subject"].as_str().unwrap_or_default();
    let word = subject
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| w.len() >= 3)
        .expect("a word in the subject")
        .to_string();
    let (_, v) = a.json(&home, &["search", &word]);
    assert!(list_len(&v, "messages") >= 1, "{word}: {v}");

    // A acts on its mail through its role: reads a body, flags, triages, undoes.
    for args in [
        vec!["message", "show", &id],
        vec!["message", "flag", &id, "--flagged"],
        vec!["triage", "add-customer", &id, "--name", "Acme"],
        vec!["undo"],
    ] {
        let (code, v) = a.json(&home, &args);
        assert_eq!(code, 0, "A: {args:?}: {v}");
    }
    assert!(a.count("pending_ops") >= 1);

    // B sees nothing of it: lists, search, triage, a named message, plain SQL.
    // (With no account visible at all, a list says there is none, as for a stranger on
    // SQLite.)
    for args in [
        vec!["messages"],
        vec!["search", &word],
        vec!["triage", "list"],
    ] {
        let (code, v) = b.json(&home, &args);
        assert_eq!(list_len(&v, "messages"), 0, "{args:?}: {v}");
        assert!(
            code == 0 || v["error"]["code"] == "accounts.none",
            "{args:?}: {v}"
        );
    }
    let (code, v) = b.json(&home, &["message", "show", &id]);
    assert_eq!(code, 1, "{v}");
    assert!(
        v.to_string()
            .contains(&format!("no such message visible to operator {b_name}")),
        "{v}"
    );
    // The refusal is audited against the account holding the message (B's role cannot see
    // which that is: the database records it), so A, its owner, sees who tried.
    let refused: Vec<(String, String, String)> = home.db().rows(
        "SELECT operator, target, account_id FROM audit WHERE action = 'refused'",
        &[],
    );
    let work_id: String = home
        .db()
        .value("SELECT id FROM accounts WHERE name = 'work'", &[]);
    assert!(
        refused.contains(&(b_name.clone(), format!("message {id}"), work_id)),
        "{refused:?}"
    );
    let (code, v) = a.json(&home, &["audit"]);
    assert_eq!(code, 0, "{v}");
    assert!(
        v.to_string().contains(&b_name) && v.to_string().contains("refused"),
        "A's audit shows B's refusal: {v}"
    );
    for table in MAIL {
        assert_eq!(b.count(table), 0, "{table} through B's role");
    }
    // Every account's health stays visible to everyone (status).
    assert_eq!(b.count("accounts"), 1);

    // On B's connection the operator is B: another name is refused.
    let out = b.run(&home, &["--json", "--operator", &a_name, "messages"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("operator.mismatch"),
        "{}",
        stdout(&out)
    );

    // A shares the account with B: B's role sees the mail.
    let out = home.run(&[
        "--operator",
        &a_name,
        "account",
        "edit",
        "work",
        "--share-with",
        &b_name,
    ]);
    assert!(out.status.success(), "share: {}", stderr(&out));
    assert_eq!(b.count("messages"), 5);
    let (code, v) = b.json(&home, &["messages"]);
    assert_eq!((code, list_len(&v, "messages")), (0, 5), "{v}");
}
