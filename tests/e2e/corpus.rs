//! The whole real-world corpus through the real pipeline: APPENDed into a Dovecot mailbox,
//! synced, and each message opened. Nothing panics, and every message is stored: mail that
//! lacks every header field sync fetches (tagged `headerless` in INDEX.tsv: a bare part, a
//! delivery report, only MIME-Version and Content-Type) with empty fields, dated by its
//! INTERNALDATE. Quarantine is for responses that cannot be read, which Dovecot never sends.

use super::common::*;

/// (path, tags) of every corpus file.
fn corpus_files() -> Vec<(std::path::PathBuf, String)> {
    let root = repo().join("tests/corpus");
    let index = std::fs::read_to_string(root.join("INDEX.tsv")).expect("INDEX.tsv");
    index
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (root.join(cols[0]), cols.get(3).unwrap_or(&"").to_string())
        })
        .collect()
}

#[test]
fn whole_corpus_syncs_and_opens_without_loss() {
    let s = servers();
    let user = new_user("corpus");
    let files = corpus_files();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let headerless = rt.block_on(async {
        let target = mailroom::imap::ImapTarget {
            server: mailroom::config::Server {
                host: "127.0.0.1".into(),
                port: IMAPS,
                security: mailroom::config::Security::Tls,
            },
            tls: mailroom::imap::TlsOptions {
                ca_file: Some(s.ca.clone()),
                insecure_skip_verify: false,
            },
            user: user.clone(),
            timeout: std::time::Duration::from_secs(20),
            min_bytes_per_sec: 1024,
            trace_as: None,
        };
        let mut session = mailroom::imap::connect(
            &target,
            &mailroom::secret::Credential::Password(secrecy::SecretString::from(PASSWORD)),
        )
        .await
        .unwrap();
        let mut uids = Vec::new();
        for (f, tags) in &files {
            let mut raw = std::fs::read(f).unwrap();
            if raw.is_empty() {
                raw = b"\r\n".to_vec();
            }
            let got = mailroom::imap::append::append(&mut session, "INBOX", "", None, &raw)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if tags.split(',').any(|t| t == "headerless") {
                uids.push((f.clone(), got.expect("APPENDUID").1));
            }
        }
        let _ = session.logout().await;
        uids
    });
    let home = Home::new();
    home.add_account("c", &user);
    let out = home.run(&["--json", "sync", "c", "--once"]);
    assert!(
        out.status.success(),
        "sync failed: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let db = home.db();
    let stored = db.count("SELECT COUNT(*) FROM locations l JOIN folders f ON f.id = l.folder_id WHERE f.name = 'INBOX'", &[]);
    let quarantined = db.count("SELECT COUNT(*) FROM quarantine", &[]);
    assert_eq!(
        (stored, quarantined),
        (files.len() as i64, 0),
        "every message stored, none quarantined"
    );
    assert!(
        headerless.len() >= 30,
        "{} headerless files",
        headerless.len()
    );
    for (f, uid) in &headerless {
        let rows: Vec<(Option<String>, Option<String>, String, String)> = db.rows(
            "SELECT m.subject, m.from_addr, m.date, l.internal_date FROM locations l
             JOIN messages m ON m.id = l.message_id WHERE l.uid = ?1",
            args![uid],
        );
        let Some((subject, from, date, received)) = rows.into_iter().next() else {
            panic!("{} (uid {uid}) is not stored", f.display());
        };
        assert_eq!((subject, from), (None, None), "{}", f.display());
        assert_eq!(date, received, "{}: dated by INTERNALDATE", f.display());
    }
    let ids: Vec<i64> = db.column("SELECT DISTINCT message_id FROM locations", &[]);
    for id in ids {
        let out = home.run(&["--json", "message", "show", &id.to_string()]);
        assert!(
            out.status.success(),
            "message show {id} failed: {}",
            stderr(&out)
        );
        let text = stdout(&out);
        assert!(
            !text.contains('\u{1b}'),
            "escape sequence leaked from message {id}"
        );
    }
}
