//! The console enforces the same visibility as the CLI (issue 11): an operator without access to
//! an account sees nothing of its mail in any pane — only its health on the dashboard, as
//! `status` shows every account's health to every operator.

use std::time::Duration;

use crate::common::*;
use crate::team::team;
use crate::tui::Tmux;

#[test]
fn an_operator_without_access_sees_no_mail_of_that_account_in_any_pane() {
    let team = team();
    // Something of work's in every kind of list: mail (triage, timelines), a queued send
    // (outbox), a customer paired with work's mail (the customer book is shared; its timeline
    // must not show work's mail to eve), an event in the log.
    let (code, v) = team.json_as("alice", &["messages", "work", "--limit", "100"]);
    assert_eq!(code, 0, "{v}");
    let msgs = v["messages"].as_array().cloned().expect("messages");
    let subjects: Vec<String> = msgs
        .iter()
        .filter_map(|m| m["subject"].as_str().map(str::to_string))
        .filter(|s| s.len() > 4)
        .collect();
    let senders: Vec<String> = msgs
        .iter()
        .filter_map(|m| m["from"]["address"].as_str().map(str::to_string))
        .collect();
    assert!(!subjects.is_empty() && !senders.is_empty());
    let first = msgs[0]["id"].as_i64().expect("id").to_string();
    // The customer made from that message keeps its sender's address: the book is shared.
    let book_address = msgs[0]["from"]["address"]
        .as_str()
        .expect("from")
        .to_string();
    let out = team.home.run_stdin(
        &[
            "--operator",
            "alice",
            "send",
            "--account",
            "work",
            "--to",
            "secret-recipient@example.org",
            "--subject",
            "Alice private outbox subject",
            "--queue-only",
        ],
        "private\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = team.run_as(
        "alice",
        &[
            "triage",
            "add-customer",
            &first,
            "--name",
            "Shared Book Person",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let t = Tmux::start(&team.home, "vis", &[("MAILROOM_OPERATOR", "eve")], &[]);
    let mut screens = vec![t.wait_screen("overall", Duration::from_secs(20))];
    for (key, shows) in [
        ("2", "New account"),
        ("3", "Folders"),
        ("4", "Triage"),
        ("5", "Customers"),
        ("6", "Compose"),
        ("7", "Outbox"),
        ("8", "[events]"),
    ] {
        t.keys(&[key]);
        screens.push(t.wait_screen(shows, Duration::from_secs(10)));
        // The setup form takes typed keys: leave it before the next pane's key.
        if key == "2" {
            t.keys(&["Escape"]);
        }
    }
    // The shared customer: opening it shows a timeline without work's mail.
    t.keys(&["5"]);
    t.wait_screen("Shared Book Person", Duration::from_secs(10));
    t.keys(&["Enter"]);
    screens.push(t.wait_screen("No mail with this customer yet", Duration::from_secs(10)));
    let all = screens.join("\n----\n");
    for s in subjects
        .iter()
        .chain(senders.iter().filter(|a| **a != book_address))
    {
        assert!(!all.contains(s.as_str()), "eve saw {s:?}:\n{all}");
    }
    for secret in [
        "Alice private outbox subject",
        "secret-recipient@example.org",
    ] {
        assert!(!all.contains(secret), "eve saw {secret:?}:\n{all}");
    }
    // The dashboard still shows work's health (the status exception).
    assert!(screens[0].contains("work"), "{}", screens[0]);
    t.keys(&["q"]);
    assert_eq!(t.exit_code(Duration::from_secs(10)), 0);
}
