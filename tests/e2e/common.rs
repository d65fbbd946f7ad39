//! Shared harness for end-to-end tests: the real local Dovecot + Postfix (scripts/mailserver),
//! a throwaway mailroom home per test, a fresh mailbox per test, and the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "secret";
pub const IMAPS: u16 = 1993;
pub const IMAP_STARTTLS: u16 = 1143;
pub const SUBMISSION: u16 = 1587;
pub const SUBMISSIONS: u16 = 1465;
pub const BARE_IMAPS: u16 = 2993;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mailroom"))
}

pub struct Servers {
    pub ca: PathBuf,
}

fn mailserver(args: &[&str]) -> Output {
    Command::new(repo().join("scripts/mailserver"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("scripts/mailserver runs")
}

/// Starts the local servers once per test process (a no-op when they already run).
pub fn servers() -> &'static Servers {
    static S: OnceLock<Servers> = OnceLock::new();
    S.get_or_init(|| {
        let out = mailserver(&["start"]);
        assert!(
            out.status.success(),
            "scripts/mailserver start failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let st = mailserver(&["status"]);
        let text = String::from_utf8_lossy(&st.stdout).to_string();
        let ca = text
            .lines()
            .find_map(|l| l.strip_prefix("ca: "))
            .map(|s| PathBuf::from(s.trim()))
            .expect("status prints the CA path");
        Servers { ca }
    })
}

/// Starts the bare (IMAP4rev1-only, no special-use) profile too.
pub fn bare_servers() -> &'static Servers {
    static B: OnceLock<()> = OnceLock::new();
    let s = servers();
    B.get_or_init(|| {
        let out = mailserver(&["start", "--bare"]);
        assert!(
            out.status.success(),
            "scripts/mailserver start --bare failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    s
}

/// A brand-new mailbox for one test, so tests never see each other's mail.
pub fn new_user(prefix: &str) -> String {
    servers();
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let user = format!("{prefix}-{}-{n}-{nanos}@example.test", std::process::id());
    // The script serialises on a lock; under parallel tests a call can lose a race, so retry.
    let mut last = String::new();
    for _ in 0..5 {
        let out = mailserver(&["adduser", &user]);
        if out.status.success() {
            return user;
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("adduser {user} failed: {last}");
}

pub fn seed(user: &str, count: usize) {
    let out = mailserver(&["seed", "--user", user, "--count", &count.to_string()]);
    assert!(
        out.status.success(),
        "seed failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Adds messages `offset..offset+count` of the seed sequence (more mail, no duplicate
/// Message-IDs; dates are spread over the two years before 2026-11-01 like the rest).
pub fn seed_offset(user: &str, count: usize, offset: usize) {
    let out = mailserver(&[
        "seed",
        "--user",
        user,
        "--count",
        &count.to_string(),
        "--offset",
        &offset.to_string(),
    ]);
    assert!(
        out.status.success(),
        "seed failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn doveadm(args: &[&str]) -> Output {
    let mut a = vec!["doveadm"];
    a.extend_from_slice(args);
    mailserver(&a)
}

/// The server's own view of a folder: for each message (`doveadm fetch … all`), the values of
/// `fields` (doveadm names: "uid", "flags", "hdr.subject", "date.received.unixtime"…) in that
/// order. Single-line values only.
pub fn server_fetch(user: &str, folder: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let out = doveadm(&[
        "fetch",
        "-u",
        user,
        &fields.join(" "),
        "mailbox",
        folder,
        "all",
    ]);
    assert!(out.status.success(), "doveadm fetch: {}", stderr(&out));
    let mut res: Vec<Vec<String>> = Vec::new();
    for line in stdout(&out).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let Some(i) = fields.iter().position(|f| *f == name) else {
            continue;
        };
        if i == 0 {
            res.push(vec![String::new(); fields.len()]);
        }
        if let Some(row) = res.last_mut() {
            row[i] = value.trim().to_string();
        }
    }
    res
}

/// A throwaway mailroom home; runs the real binary against it. With
/// `MAILROOM_E2E_STORE=postgres` its store is a fresh PostgreSQL database of its own (dropped
/// with the home), else the home's SQLite file.
pub struct Home {
    pub dir: tempfile::TempDir,
    /// The home's PostgreSQL database, when the tests run on PostgreSQL.
    pub pg: Option<PgDatabase>,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        let pg = PgDatabase::for_e2e();
        if let Some(db) = &pg {
            // Commands get MAILROOM_STORE (see `cmd`); this is for what a test runs in-process
            // on the home (a supervisor, the console's I/O), which reads config.toml.
            std::fs::write(
                dir.path().join("config.toml"),
                format!("[store]\nurl = \"{}\"\n", db.url),
            )
            .expect("write config.toml");
        }
        Home { dir, pg }
    }
    /// A home on a fresh PostgreSQL database whichever engine the other homes use; None
    /// without a test server (MAILROOM_TEST_PG_URL).
    pub fn on_postgres() -> Option<Home> {
        let db = PgDatabase::fresh()?;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("config.toml"),
            format!("[store]\nurl = \"{}\"\n", db.url),
        )
        .expect("write config.toml");
        Some(Home { dir, pg: Some(db) })
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--home")
            .arg(self.dir.path())
            .env_remove("MAILROOM_HOME")
            .env_remove("MAILROOM_STORE")
            .env("MAILROOM_OPERATOR", "tester")
            .stdin(Stdio::null());
        if let Some(db) = &self.pg {
            c.env("MAILROOM_STORE", &db.url);
        }
        c
    }
    /// Runs `mailroom ARGS`, returning the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("mailroom runs")
    }
    /// Runs with stdin text.
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mailroom runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("mailroom finishes")
    }
    /// Runs `mailroom --json ARGS` and parses the single JSON object.
    pub fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let v = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "not one JSON object ({e}): {text:?}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }
    /// `account add NAME` for `user` against the local IMAPS + submission servers, CA verified.
    pub fn add_account(&self, name: &str, user: &str) {
        let out = self.account_add(name, user, IMAPS, SUBMISSION, &[], PASSWORD);
        assert!(
            out.status.success(),
            "account add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    /// `account add` against 127.0.0.1 on these ports with the test CA, `extra` flags and this
    /// password on stdin; the caller judges the outcome.
    pub fn account_add(
        &self,
        name: &str,
        user: &str,
        imap_port: u16,
        smtp_port: u16,
        extra: &[&str],
        password: &str,
    ) -> Output {
        let ca = servers().ca.to_string_lossy().to_string();
        let (imap, smtp) = (
            format!("127.0.0.1:{imap_port}"),
            format!("127.0.0.1:{smtp_port}"),
        );
        let mut args = vec![
            "account",
            "add",
            name,
            "--email",
            user,
            "--imap",
            &imap,
            "--smtp",
            &smtp,
            "--ca-file",
            &ca,
            "--password-stdin",
        ];
        args.extend_from_slice(extra);
        self.run_stdin(&args, password)
    }
    /// Sets a top-level config value (e.g. "alerts.min_interval_secs", 1) as a hand edit of the
    /// settings would: config.toml, or on PostgreSQL the shared settings in the database.
    pub fn set_option(&self, dotted: &str, value: toml_edit::Item) {
        let mut doc: toml_edit::DocumentMut = self.settings_text().parse().expect("valid toml");
        let (tables, key) = dotted.rsplit_once('.').expect("a dotted key");
        let mut item = doc.as_item_mut();
        for t in tables.split('.') {
            if item.get(t).is_none() {
                item[t] = toml_edit::table();
            }
            item = &mut item[t];
        }
        item[key] = value;
        self.write_settings(&doc.to_string());
    }
    /// Sets a config value under the account with `toml_edit` semantics (e.g. "sync.poll_secs", 1),
    /// as a hand edit of the settings would (no access check).
    pub fn set_account_option(&self, name: &str, dotted: &str, value: toml_edit::Item) {
        self.set_option(&format!("accounts.{name}.{dotted}"), value);
    }
    /// The settings a hand edit changes: config.toml, or on PostgreSQL the shared settings'
    /// document in the database (config.toml there keeps [store] and [ui] only).
    pub fn settings_text(&self) -> String {
        match &self.pg {
            Some(_) => self
                .db()
                .maybe("SELECT doc FROM shared_settings WHERE id = 1", &[])
                .unwrap_or_default(),
            None => std::fs::read_to_string(self.path().join("config.toml")).unwrap_or_default(),
        }
    }
    /// Writes what [`Home::settings_text`] read, as an admin's hand edit would (on PostgreSQL
    /// a new version of the shared document, which every process follows).
    pub fn write_settings(&self, text: &str) {
        match &self.pg {
            Some(_) => {
                let db = self.db();
                db.exec(
                    "INSERT INTO shared_settings (id, version, doc, updated_at, updated_by)
                     VALUES (1, 0, '', '', '') ON CONFLICT (id) DO NOTHING",
                    &[],
                );
                db.exec(
                    "UPDATE shared_settings SET doc = ?1, version = version + 1 WHERE id = 1",
                    mailroom::args![text],
                );
            }
            None => std::fs::write(self.path().join("config.toml"), text).expect("write config"),
        }
    }
    /// The home's store for direct checks, on either engine.
    pub fn db(&self) -> Db {
        match &self.pg {
            Some(pg) => Db::postgres(&pg.url),
            None => Db::sqlite(&self.path().join("mailroom.db")),
        }
    }
}

pub use crate::db::{Db, PgDatabase, e2e_on_postgres};

/// True (and says so) when the tests run on PostgreSQL: for a test about the SQLite file
/// itself (its disk running full, its bytes damaged, an old file upgraded), which has no
/// PostgreSQL twin.
pub fn sqlite_file_only(what: &str) -> bool {
    let skip = e2e_on_postgres();
    if skip {
        eprintln!("skipped on PostgreSQL: {what} is about the SQLite file");
    }
    skip
}
pub use mailroom::args;

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Polls `f` until it returns Some or the deadline passes (never a bare sleep in assertions).
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends a message through the local submission server as `from` (for "new mail arrives" tests).
pub fn smtp_send(from: &str, to: &str, subject: &str, body: &str) {
    use lettre::Message;
    use lettre::message::Mailbox;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let pem = std::fs::read(&servers().ca).expect("CA readable");
    let tls = TlsParameters::builder("127.0.0.1".into())
        .add_root_certificate(Certificate::from_pem(&pem).expect("CA pem"))
        .build_rustls()
        .expect("tls");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
        let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(SUBMISSION)
            .tls(Tls::Required(tls))
            .credentials(Credentials::new(from.to_string(), PASSWORD.to_string()))
            .build();
        let msg = Message::builder()
            .from(from.parse::<Mailbox>().expect("from"))
            .to(to.parse::<Mailbox>().expect("to"))
            .subject(subject)
            .body(body.to_string())
            .expect("message");
        t.send(msg).await.expect("SMTP send");
    });
}

/// A background `mailroom daemon` (or any child) that is killed when the test ends, pass or fail.
pub struct Daemon(pub std::process::Child);

impl Daemon {
    /// `mailroom daemon` on this home, output discarded; killed when dropped.
    pub fn start(home: &Home) -> Daemon {
        let child = home
            .cmd()
            .arg("daemon")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the daemon starts");
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tmpfs mounted over a test's home, so the disk can run full on purpose; unmounted when
/// the test ends, pass or fail. Needs root (as the tests run here and in CI).
pub struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &std::path::Path, kib: u64) -> Tmpfs {
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Tmpfs {
                dir: dir.to_path_buf(),
            },
            Ok(o) => panic!(
                "this test needs root: it mounts a small tmpfs to fill the disk on purpose \
                 (`mount -t tmpfs` failed: {})",
                stderr(&o).trim()
            ),
            Err(e) => panic!("this test needs root and `mount` (mounting a tmpfs failed: {e})"),
        }
    }

    pub fn resize(&self, kib: u64) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount failed: {}", stderr(&out));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds a file there: detach it rather than leave it mounted.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.dir)
                .status();
        }
    }
}

/// The step `id` of an `account test --json` report.
pub fn step(v: &serde_json::Value, id: &str) -> serde_json::Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id}: {v}"))
        .clone()
}
