//! Issue 14 (part B): the console as a daily driver, in a real terminal against the real
//! servers — the account edit form (a new password, and the next sync logs in with it).

use std::time::Duration;

use super::super::common::*;
use super::{Tmux, mailbox_ready};

#[test]
fn the_edit_form_replaces_the_password_and_the_next_sync_logs_in_with_it() {
    servers();
    let user = new_user("tui-edit");
    mailbox_ready(&user);
    let home = Home::new();
    // Stored with a wrong password (no test): sync is refused.
    let out = home.account_add("work", &user, IMAPS, SUBMISSION, &[], "not-the-password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = home.run(&["sync", "work", "--once"]);
    assert!(!out.status.success(), "a wrong password cannot sync");

    let t = Tmux::start(&home, "edit", &[], &[]);
    t.wait_screen("Accounts — overall", Duration::from_secs(20));
    t.keys(&["e"]);
    t.wait_screen("Edit account work", Duration::from_secs(10));
    let screen = t.wait_screen("(stored; type to replace)", Duration::from_secs(10));
    assert!(screen.contains(&user), "the account's settings: {screen}");
    // Email → Login → Password; `q` and digits would type here, so the password is typed as is.
    t.keys(&["Tab", "Tab"]);
    t.text(PASSWORD);
    let screen = t.wait_screen("typing into Password", Duration::from_secs(10));
    assert!(
        !screen.contains(&format!(" {PASSWORD}")),
        "masked: {screen}"
    );
    // The live test runs the edited settings: every step passes with the new password.
    t.keys(&["C-t"]);
    t.wait_screen("all 9 checks passed", Duration::from_secs(60));
    t.keys(&["C-s"]);
    t.wait_screen("updated account work", Duration::from_secs(20));
    t.wait_screen("Accounts — overall", Duration::from_secs(10));
    t.keys(&["C-c"]);
    assert_eq!(t.exit_code(Duration::from_secs(10)), 0);

    // The next sync logs in with the new password; the settings are as they were.
    let (code, v) = home.json(&["sync", "work", "--once"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = home.json(&["account", "show", "work"]);
    assert_eq!(code, 0);
    assert_eq!(v["account"]["imap"]["port"], IMAPS, "{v}");
    let audit = home.run(&["audit", "--json"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.contains("account_edit"), "{audit}");
    assert!(!audit.contains(PASSWORD), "no password in the audit log");
}
