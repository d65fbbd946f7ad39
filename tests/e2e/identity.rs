//! Who acts by default: the passwd entry of the process's user id, not `$USER`; under sudo, the
//! invoking user (issue 13).

use crate::common::*;

fn add_as(home: &Home, env: &[(&str, &str)]) -> String {
    let user = new_user("ident");
    let ca = servers().ca.to_string_lossy().to_string();
    let mut cmd = home.cmd();
    cmd.env_remove("MAILROOM_OPERATOR")
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("SUDO_USER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let imap = format!("127.0.0.1:{IMAPS}");
    let smtp = format!("127.0.0.1:{SUBMISSION}");
    let name = "mine";
    let out = cmd
        .args(["account", "add", name, "--email", &user, "--imap", &imap])
        .args([
            "--smtp",
            &smtp,
            "--ca-file",
            &ca,
            "--password-command",
            "echo secret",
        ])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let config = home.settings_text();
    let doc: toml_edit::DocumentMut = config.parse().expect("toml");
    doc["accounts"][name]["owner"]
        .as_str()
        .expect("owner written")
        .to_string()
}

#[test]
fn the_default_operator_is_the_process_user_or_the_sudo_invoker() {
    // SAFETY: reading the real uid of this test process.
    let uid = unsafe { libc::getuid() };
    let home = Home::new();
    let me = add_as(&home, &[]);
    if uid == 0 {
        assert_eq!(me, "root");
        // `sudo mailroom account add …` run by ada: ada owns it, not root.
        let home = Home::new();
        assert_eq!(add_as(&home, &[("SUDO_USER", "ada")]), "ada");
    } else {
        assert_ne!(me, "operator");
        assert!(!me.is_empty());
    }
}
