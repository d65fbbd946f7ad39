//! The account edit form covers every setting `account edit` has (rename, display name,
//! enabled, SMTP mechanism, system SMTP, CA file, OAuth2 client id/secret, tenant, flow,
//! endpoints and scopes, password command, log in again), is
//! read-only for an operator the account is shared with, and every pane works at 80×24.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use secrecy::ExposeSecret;

use super::daily::{account_view, edit_app, edit_app_with};
use super::*;
use crate::tui::action::Command;

fn press(a: &mut App, code: KeyCode, mods: KeyModifiers) -> Vec<Command> {
    match a.action_for_key(&KeyEvent::new(code, mods)) {
        Some(action) => a.update(action),
        None => vec![],
    }
}

fn key(a: &mut App, code: KeyCode) -> Vec<Command> {
    press(a, code, KeyModifiers::NONE)
}

fn type_text(a: &mut App, s: &str) {
    for c in s.chars() {
        key(a, KeyCode::Char(c));
    }
}

/// Tab until field `f` has the focus (the edit form's order).
fn focus(a: &mut App, f: usize) {
    for _ in 0..EDIT_ORDER.len() {
        if a.setup.field == f {
            return;
        }
        key(a, KeyCode::Tab);
    }
    panic!("field {f} is not in the edit form");
}

fn oauth_app() -> App {
    let mut v = account_view();
    v.auth = crate::config::AuthKind::OAuth2;
    edit_app_with("dark", v, true)
}

#[test]
fn every_new_field_of_the_edit_form_reaches_account_edit() {
    let mut a = edit_app("dark");
    assert_eq!(a.setup.values[F_ENABLED], "yes");
    assert_eq!(a.setup.values[F_SMTP_AUTH], "default");
    assert_eq!(a.setup.values[F_CA], "/home/alice/ca.pem");
    // Rename: the name is a field now.
    focus(&mut a, F_NAME);
    for _ in 0.."work".len() {
        key(&mut a, KeyCode::Backspace);
    }
    type_text(&mut a, "office");
    focus(&mut a, F_DISPLAY);
    type_text(&mut a, "Office Desk");
    focus(&mut a, F_ENABLED);
    key(&mut a, KeyCode::Char(' '));
    // The SMTP mechanism cycles through exactly the CLI's values, both ways.
    focus(&mut a, F_SMTP_AUTH);
    let mut seen = vec![];
    for _ in 0..SMTP_AUTHS.len() {
        key(&mut a, KeyCode::Right);
        seen.push(a.setup.values[F_SMTP_AUTH].clone());
    }
    assert_eq!(seen.last().unwrap(), "default", "wraps: {seen:?}");
    key(&mut a, KeyCode::Left);
    assert_eq!(a.setup.values[F_SMTP_AUTH], "none");
    focus(&mut a, F_SYSTEM_SMTP);
    key(&mut a, KeyCode::Right);
    // An emptied CA file means "none".
    focus(&mut a, F_CA);
    press(&mut a, KeyCode::Char('u'), KeyModifiers::CONTROL);
    assert_eq!(a.setup.values[F_CA], "");
    let req = a.setup.to_edit().unwrap();
    assert_eq!(req.name, "work", "the stored name is edited");
    let e = &req.edit;
    assert_eq!(e.rename.as_deref(), Some("office"));
    assert_eq!(e.display_name.as_deref(), Some("Office Desk"));
    assert_eq!(e.enabled, Some(false));
    assert_eq!(e.server.smtp_auth.as_deref(), Some("none"));
    assert_eq!(e.server.use_system_smtp, Some(true));
    assert!(e.clear_ca_file && e.server.ca_file.is_none());
    assert!(e.client_secret.is_none() && e.server.auth.is_none());
    // Untouched fields stay out of the change.
    assert!(e.server.email.is_none() && e.server.smtp.is_none() && e.poll_secs.is_none());
    // Saving answers with the new name.
    let cmds = a.update(Action::SaveAccount);
    let job = match &cmds[..] {
        [Command::SaveEdit { job, .. }] => *job,
        other => panic!("{other:?}"),
    };
    a.apply(Data::Saved(job, Ok("office".into())));
    assert!(
        a.toast
            .as_ref()
            .is_some_and(|t| t.text == "updated account office")
    );
}

#[test]
fn oauth2_client_id_and_secret_and_log_in_again() {
    // A password account: switching to OAuth2 sends the auth kind and the client id.
    let mut a = edit_app("dark");
    focus(&mut a, F_OAUTH);
    key(&mut a, KeyCode::Right);
    focus(&mut a, F_CLIENT_ID);
    type_text(&mut a, "app-123.apps");
    let req = a.setup.to_edit().unwrap();
    assert_eq!(req.edit.server.auth.as_deref(), Some("oauth2"));
    assert_eq!(
        req.edit.server.oauth.client_id.as_deref(),
        Some("app-123.apps")
    );
    // Log in again needs a stored OAuth2 account: here it says what to do first.
    let cmds = press(&mut a, KeyCode::Char('l'), KeyModifiers::CONTROL);
    assert!(cmds.is_empty());
    assert!(matches!(&a.setup.message, Some(Err(e)) if e.fix.contains("save first")));

    let mut a = oauth_app();
    focus(&mut a, F_CLIENT_SECRET);
    type_text(&mut a, "s3cr3t-q?");
    let req = a.setup.to_edit().unwrap();
    let secret = req.edit.client_secret.as_ref().unwrap();
    assert_eq!(secret.expose_secret(), "s3cr3t-q?");
    assert!(!format!("{req:?}").contains("s3cr3t"), "never printed");
    assert!(
        !screen_text(&render_buffer(&a, 160, 48))
            .concat()
            .contains("s3cr3t"),
        "never drawn"
    );
    assert!(req.password.is_none(), "the password is another secret");
    // ctrl-l runs `account login work`; its code shows beside the form.
    let cmds = press(&mut a, KeyCode::Char('l'), KeyModifiers::CONTROL);
    let job = match &cmds[..] {
        [Command::Login { job, name }] if name == "work" => *job,
        other => panic!("{other:?}"),
    };
    a.apply(Data::LoginStep(
        job,
        "Open https://login.example/device and enter WXYZ-1234".into(),
    ));
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("WXYZ-1234"), "{text}");
    assert!(text.contains("ctrl-l log in again"), "{text}");
}

/// An OAuth2 account's edit form with its endpoints given one by one.
fn oauth_endpoints_app() -> App {
    let mut v = account_view();
    v.auth = crate::config::AuthKind::OAuth2;
    v.oauth2 = Some(crate::ops::signin::OAuthView {
        provider: None,
        client_id: "app-1".into(),
        client_secret_stored: false,
        tenant: None,
        flow: Some(crate::config::OAuthFlow::Device),
        auth_url: None,
        token_url: Some("https://idp.example/token".into()),
        device_url: Some("https://idp.example/device".into()),
        revoke_url: Some("https://idp.example/revoke".into()),
        scopes: vec!["imap".into(), "smtp".into()],
        signed_in: true,
        login_needed: None,
        access_expires_at: None,
        refreshes: 0,
    });
    edit_app_with("dark", v, true)
}

#[test]
fn the_oauth2_settings_show_only_with_oauth2_and_reach_account_edit() {
    // A password account: none of the OAuth2 settings are in the form.
    let mut a = edit_app("dark");
    for f in OAUTH_ONLY {
        assert!(!a.setup.order().contains(f), "field {f} hidden");
    }
    assert!(a.setup.order().contains(&F_PW_COMMAND));
    // Switched on, they appear (and the password command goes).
    focus(&mut a, F_OAUTH);
    key(&mut a, KeyCode::Right);
    for f in OAUTH_ONLY {
        assert!(a.setup.order().contains(f), "field {f} shown");
    }
    assert!(!a.setup.order().contains(&F_PW_COMMAND));

    let mut a = oauth_endpoints_app();
    assert_eq!(a.setup.values[F_FLOW], "device");
    assert_eq!(a.setup.values[F_TOKEN_URL], "https://idp.example/token");
    assert_eq!(a.setup.values[F_SCOPES], "imap smtp");
    assert_eq!(a.setup.values[F_REVOKE_URL], "https://idp.example/revoke");
    // Untouched: nothing of OAuth2 is sent.
    let req = a.setup.to_edit().unwrap();
    assert_eq!(
        format!("{:?}", req.edit.server.oauth),
        format!("{:?}", crate::ops::signin::OAuthSpec::default())
    );
    focus(&mut a, F_TENANT);
    type_text(&mut a, "contoso");
    // The flow cycles through the CLI's values, both ways.
    focus(&mut a, F_FLOW);
    key(&mut a, KeyCode::Right);
    assert_eq!(a.setup.values[F_FLOW], "browser");
    key(&mut a, KeyCode::Right);
    assert_eq!(a.setup.values[F_FLOW], "device");
    key(&mut a, KeyCode::Left);
    assert_eq!(a.setup.values[F_FLOW], "browser");
    focus(&mut a, F_AUTH_URL);
    type_text(&mut a, "https://idp.example/authorize");
    focus(&mut a, F_DEVICE_URL);
    press(&mut a, KeyCode::Char('u'), KeyModifiers::CONTROL);
    type_text(&mut a, "https://idp.example/device2");
    focus(&mut a, F_REVOKE_URL);
    press(&mut a, KeyCode::Char('u'), KeyModifiers::CONTROL);
    type_text(&mut a, "https://idp.example/revoke2");
    focus(&mut a, F_SCOPES);
    type_text(&mut a, " offline_access");
    let req = a.setup.to_edit().unwrap();
    let o = &req.edit.server.oauth;
    assert_eq!(o.tenant.as_deref(), Some("contoso"));
    assert_eq!(o.flow.as_deref(), Some("browser"));
    assert_eq!(o.auth_url.as_deref(), Some("https://idp.example/authorize"));
    assert_eq!(o.device_url.as_deref(), Some("https://idp.example/device2"));
    assert_eq!(o.revoke_url.as_deref(), Some("https://idp.example/revoke2"));
    assert_eq!(o.scopes.as_deref(), Some("imap smtp offline_access"));
    assert!(o.token_url.is_none() && o.client_id.is_none(), "unchanged");
    assert!(req.edit.password_command.is_none());
    // The ops' own check: a flow the endpoints do not allow is refused by `account edit`
    // (through the same function as the CLI), not by the form.
    assert!(matches!(
        &a.update(Action::SaveAccount)[..],
        [Command::SaveEdit { .. }]
    ));
}

#[test]
fn edit_form_oauth2_80x24_snapshots() {
    let mut a = oauth_endpoints_app();
    focus(&mut a, F_SCOPES);
    for theme in ["dark", "monochrome"] {
        a.theme = Theme::builtin(theme).unwrap();
        insta::assert_snapshot!(
            format!("edit_oauth2_80x24_{theme}"),
            snapshot(&render_buffer(&a, 80, 24))
        );
    }
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    for label in [
        "OAuth tenant",
        "OAuth flow",
        "Token URL",
        "Device URL",
        "Revoke URL",
        "Scopes",
    ] {
        assert!(text.contains(label), "{label}: {text}");
    }
    assert!(text.contains("‹ device ›"), "{text}");
}

#[test]
fn a_password_command_replaces_the_password_and_is_never_shown() {
    let mut a = edit_app("dark");
    assert_eq!(a.setup.values[F_PW_COMMAND], "");
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("Password cmd    (none)"), "{text}");
    focus(&mut a, F_PW_COMMAND);
    type_text(&mut a, "pass show mail/work");
    let req = a.setup.to_edit().unwrap();
    assert_eq!(
        req.edit.password_command.as_deref(),
        Some("pass show mail/work")
    );
    assert!(req.password.is_none());
    // A password and a command both: one must go (as the CLI's flags conflict).
    focus(&mut a, F_PASSWORD);
    type_text(&mut a, "pw");
    let e = a.setup.to_edit().unwrap_err();
    assert!(e.fix.contains("Password cmd"), "{e}");
    assert!(a.update(Action::SaveAccount).is_empty());
    assert!(matches!(&a.setup.message, Some(Err(_))));
    // OAuth2 on: the command is hidden and not sent.
    let mut a = edit_app("dark");
    focus(&mut a, F_PW_COMMAND);
    type_text(&mut a, "pass show x");
    focus(&mut a, F_OAUTH);
    key(&mut a, KeyCode::Right);
    assert!(a.setup.to_edit().unwrap().edit.password_command.is_none());
    // A stored command is never drawn, only that there is one.
    let mut v = account_view();
    v.password_source = crate::ops::accounts::PasswordSource::Command;
    let a = edit_app_with("dark", v, true);
    assert!(a.setup.command_set);
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("(set; type to replace)"), "{text}");
    assert!(a.setup.to_edit().unwrap().edit.password_command.is_none());
}

#[test]
fn a_shared_operator_sees_the_account_read_only() {
    let mut v = account_view();
    v.owner = Some("alice".into());
    let mut a = edit_app_with("dark", v, false);
    assert!(a.setup.read_only());
    focus(&mut a, F_DISPLAY);
    type_text(&mut a, "x");
    assert_eq!(a.setup.values[F_DISPLAY], "", "nothing types");
    assert!(matches!(&a.setup.message, Some(Err(e)) if e.fix.contains("alice")));
    focus(&mut a, F_ENABLED);
    key(&mut a, KeyCode::Right);
    assert_eq!(a.setup.values[F_ENABLED], "yes", "nothing toggles");
    assert!(a.update(Action::SaveAccount).is_empty(), "nothing saves");
    assert!(
        press(&mut a, KeyCode::Char('l'), KeyModifiers::CONTROL).is_empty(),
        "no sign-in"
    );
    // Testing uses the stored password: the owner's too (as `account test`).
    assert!(a.update(Action::TestConnection).is_empty(), "no test");
    a.setup.message = None;
    for theme in ["dark", "monochrome"] {
        a.theme = Theme::builtin(theme).unwrap();
        insta::assert_snapshot!(
            format!("edit_read_only_80x24_{theme}"),
            snapshot(&render_buffer(&a, 80, 24))
        );
    }
}

#[test]
fn the_trace_view_keeps_literals_only_after_the_warning() {
    let mut a = super::daily::trace_app("dark", true);
    key(&mut a, KeyCode::Char('a')); // work: traced, literals elided
    assert!(key(&mut a, KeyCode::Char('L')).is_empty(), "asks first");
    let d = a.dialog.as_ref().expect("a warning");
    assert!(
        d.text.contains(crate::ops::trace::LITERALS_WARNING),
        "{}",
        d.text
    );
    insta::assert_snapshot!(
        "trace_literals_warning_80x24",
        snapshot(&render_buffer(&a, 80, 24))
    );
    assert!(a.update(Action::Dismiss).is_empty(), "no: nothing changes");
    key(&mut a, KeyCode::Char('L'));
    let cmds = a.update(Action::Confirm);
    assert!(matches!(
        &cmds[..],
        [Command::SetTrace { account, on: true, literals: true }] if account == "work"
    ));
    // Already keeping literals: L goes back to elided ones at once, the trace stays on.
    a.log.trace_states[0].literals = true;
    let text = screen_text(&render_buffer(&a, 80, 24)).join("\n");
    assert!(text.contains("tracing + literals"), "{text}");
    let cmds = key(&mut a, KeyCode::Char('L'));
    assert!(matches!(
        &cmds[..],
        [Command::SetTrace {
            on: true,
            literals: false,
            ..
        }]
    ));
    assert!(a.dialog.is_none());
}

/// Every pane's help at 80×24: every key of the pane and the global ones can be read whole —
/// in two columns when they fit uncut, else in one column that ↓ scrolls.
#[test]
fn help_of_every_pane_fits_80x24() {
    for pane in PANES {
        let mut a = scene("monochrome", pane, State::Typical);
        a.update(Action::Help);
        assert!(a.help);
        let first = render_buffer(&a, 80, 24);
        let mut text = screen_text(&first).join("\n");
        for _ in 0..4 {
            key(&mut a, KeyCode::PageDown);
            text.push_str(&screen_text(&render_buffer(&a, 80, 24)).join("\n"));
        }
        assert!(a.help, "scrolling keeps the help open");
        for (_, binds) in a.keymap.tables_for(a.pane, false) {
            for b in binds {
                assert!(
                    text.contains(b.desc),
                    "{pane:?}: {:?} missing or cut",
                    b.desc
                );
            }
        }
        insta::assert_snapshot!(format!("help_{}_80x24", pane.key()), snapshot(&first));
    }
}

/// The new account form scrolled to its end with a long checklist beside it: the provider's
/// hint stays in view, the newest step too.
#[test]
fn the_provider_hint_stays_while_the_form_and_the_checklist_scroll() {
    let mut a = scene("dark", PaneId::Setup, State::Typical);
    a.setup.field = *NEW_ORDER.last().unwrap();
    let mut run = CheckRun::new(1, "Test connection".into());
    run.steps = crate::ops::accounts::STEP_IDS
        .iter()
        .map(|id| {
            step(
                id,
                StepStatus::Ok,
                "a long detail that wraps onto a second line",
                None,
            )
        })
        .collect();
    run.done = Some(true);
    a.setup.run = Some(run);
    let buf = render_buffer(&a, 80, 24);
    let text = screen_text(&buf).join("\n");
    assert!(text.contains("2-step verification"), "the hint: {text}");
    assert!(text.contains("smtp_auth"), "the newest step: {text}");
    assert!(
        text.contains("OAuth client id"),
        "the focused field: {text}"
    );
    insta::assert_snapshot!("setup_scrolled_hint_80x24", snapshot(&buf));
}

/// A reply at 80×24: the quoted message and the fields fit.
#[test]
fn a_reply_fits_80x24() {
    let mut a = scene("dark", PaneId::Compose, State::Typical);
    a.compose.kind = crate::ops::compose::DraftKind::Reply;
    a.compose.source = Some(7);
    a.compose.values[F_TO] = "sam@client.example".into();
    a.compose.values[F_SUBJECT] = "Re: Where is my order?".into();
    a.compose.values[F_BODY] =
        "It ships today.\n\nOn 2026-11-25 Sam wrote:\n> Where is my order #1042?\n> Thanks".into();
    a.compose.field = F_BODY;
    let buf = render_buffer(&a, 80, 24);
    let text = screen_text(&buf).join("\n");
    assert!(text.contains("Re: Where is my order?"), "{text}");
    assert!(text.contains("> Where is my order #1042?"), "{text}");
    insta::assert_snapshot!("compose_reply_80x24", snapshot(&buf));
}
