//! The step-by-step account check (`account test`, the console's Test connection): each step
//! ok/failed with a plain-language fix; steps after a failure are skipped.

use serde::Serialize;

use crate::account::{Account, PROBE_ID_PREFIX};
use crate::config::Config;
use crate::error::AppError;
use crate::imap::{append, connect, discovery};
use crate::secret::Credential;
use crate::smtp;

mod copy_folders;

pub const STEP_IDS: [&str; 9] = [
    "connect",
    "tls",
    "login",
    "list",
    "sent_folder",
    "sent_write",
    "smtp_connect",
    "smtp_tls",
    "smtp_auth",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub id: &'static str,
    pub status: StepStatus,
    pub detail: String,
    pub fix: Option<String>,
    /// A failed step's error code (`auth.rejected`, `tls.untrusted`…); null otherwise.
    pub code: Option<crate::error::Code>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub steps: Vec<Step>,
}

/// Collects steps and tells a listener about each as it happens (the console shows them live).
struct Recorder<'a> {
    steps: Vec<Step>,
    listener: &'a mut (dyn FnMut(&Step) + Send),
}

impl Recorder<'_> {
    fn push(&mut self, id: &'static str, res: Result<String, AppError>) -> bool {
        let step = match res {
            Ok(detail) => Step {
                id,
                status: StepStatus::Ok,
                detail,
                fix: None,
                code: None,
            },
            Err(e) => Step {
                id,
                status: StepStatus::Failed,
                detail: if e.detail.is_empty() {
                    e.summary.clone()
                } else {
                    format!("{}: {}", e.summary, e.detail)
                },
                fix: Some(e.fix.clone()),
                code: Some(e.code),
            },
        };
        let ok = step.status == StepStatus::Ok;
        (self.listener)(&step);
        self.steps.push(step);
        ok
    }
    fn skip(&mut self, id: &'static str, why: &str) {
        let step = Step {
            id,
            status: StepStatus::Skipped,
            detail: why.into(),
            fix: None,
            code: None,
        };
        (self.listener)(&step);
        self.steps.push(step);
    }
    fn finish(mut self) -> Report {
        for id in STEP_IDS {
            if !self.steps.iter().any(|s| s.id == id) {
                self.skip(id, "skipped after an earlier failure");
            }
        }
        // A step skipped by a setting (not after a failure) does not fail the check.
        Report {
            ok: !self.steps.iter().any(|s| s.status == StepStatus::Failed),
            steps: self.steps,
        }
    }
}

/// Runs every check against the real servers. The credentials are resolved by the caller
/// (`smtp` None: the SMTP server is used without a login); an OAuth2 account's are one token
/// source for both.
/// `chosen_sent`: the Sent folder the user chose with `folders NAME --sent` (from the store).
pub async fn run(
    config: &Config,
    acct: &Account,
    imap: &Credential,
    smtp: Option<&Credential>,
    chosen_sent: Option<String>,
    listener: &mut (dyn FnMut(&Step) + Send),
) -> Report {
    let mut rec = Recorder {
        steps: Vec::new(),
        listener,
    };
    if imap_checks(acct, imap, chosen_sent, &mut rec).await {
        smtp_checks(config, acct, smtp, &mut rec).await;
    }
    rec.finish()
}

async fn imap_checks(
    acct: &Account,
    cred: &Credential,
    chosen_sent: Option<String>,
    rec: &mut Recorder<'_>,
) -> bool {
    let target = acct.imap_target();
    let mut steps: Vec<(&'static str, Result<(), AppError>)> = Vec::new();
    let client = connect::open_client(&target, |id, r| steps.push((id, r.clone()))).await;
    for (id, r) in steps {
        let detail = match id {
            "connect" => format!("reached {}:{}", target.server.host, target.server.port),
            _ if target.tls.insecure_skip_verify => {
                "TLS up, certificate NOT verified (insecure)".into()
            }
            _ if target.server.security == crate::config::Security::None => {
                "no TLS (security none)".into()
            }
            _ => "TLS up, certificate verified".into(),
        };
        if !rec.push(id, r.map(|_| detail)) {
            return false;
        }
    }
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            // Failed after TLS (e.g. no greeting): report under the step it belongs to.
            let id = if rec.steps.iter().any(|s| s.id == "tls") {
                "login"
            } else {
                "tls"
            };
            rec.push(id, Err(e));
            return false;
        }
    };
    let mut how = "LOGIN";
    let signed_in =
        connect::sign_in_reporting(client, &target, cred, &mut |m: &'static str| how = m).await;
    let mut session = match signed_in {
        Ok(s) => {
            let words = match how {
                "LOGIN" => format!("logged in as {}", target.user),
                m => format!("signed in as {} ({m}, OAuth2 token)", target.user),
            };
            rec.push("login", Ok(words));
            s
        }
        Err(e) => {
            rec.push("login", Err(e));
            return false;
        }
    };
    let folders = match discovery::list_folders(&mut session).await {
        Ok(f) => {
            rec.push("list", Ok(format!("{} folders", f.len())));
            f
        }
        Err(e) => {
            rec.push("list", Err(e));
            connect::logout(session).await;
            return false;
        }
    };
    if !acct.cfg.sent_copy.enabled {
        // Nothing is ever copied, so neither the folders nor write access matter.
        for id in ["sent_folder", "sent_write"] {
            rec.skip(id, "Sent copies are off (sent_copy.enabled = false)");
        }
        connect::logout(session).await;
        return true;
    }
    let sent = match copy_folders::resolve(
        &acct.cfg.sent_copy,
        &folders,
        &acct.name,
        chosen_sent.as_deref(),
    ) {
        Ok(r) => {
            rec.push("sent_folder", Ok(r.detail.clone()));
            r
        }
        Err(e) => {
            rec.push("sent_folder", Err(e));
            connect::logout(session).await;
            return false;
        }
    };
    let write = probe_every_copy_folder(&mut session, &sent, &acct.cfg.email).await;
    let ok = rec.push("sent_write", write);
    connect::logout(session).await;
    ok
}

/// Probes the default copy folder, then each folder a per-type setting names: a copy to any of
/// them fails the same way at send time, so each is written once here. A failure names the
/// folder and the setting.
async fn probe_every_copy_folder(
    session: &mut connect::ImapSession,
    sent: &copy_folders::Resolved,
    email: &str,
) -> Result<String, AppError> {
    let mut detail = probe_sent(session, &sent.primary.wire_name, email).await?;
    if sent.others.is_empty() {
        return Ok(detail);
    }
    detail = format!("{}: {detail}", sent.primary.name);
    for (keys, folder) in &sent.others {
        match probe_sent(session, &folder.wire_name, email).await {
            Ok(d) => detail.push_str(&format!("; {} ({keys}): {d}", folder.name)),
            Err(e) => {
                // The probe's own fix is about the folder; the setting is what points there.
                let fix = match e.fix.is_empty() {
                    true => {
                        format!("point {keys} in config.toml at a folder the account can write")
                    }
                    false => format!(
                        "{}; or point {keys} in config.toml at another folder",
                        e.fix
                    ),
                };
                let mut e = e.context(format!("the folder {:?}, named by {keys}", folder.name));
                e.fix = fix;
                return Err(e);
            }
        }
    }
    Ok(detail)
}

/// Appends a probe to Sent and removes exactly that message again (UID EXPUNGE only: a plain
/// EXPUNGE would also remove other mail the user marked \Deleted).
async fn probe_sent(
    session: &mut connect::ImapSession,
    folder: &str,
    email: &str,
) -> Result<String, AppError> {
    let limit = connect::call_limit(session);
    let r = tokio::time::timeout(limit, session.capabilities()).await;
    let caps = connect::called(session, "CAPABILITY", r)?;
    let uidplus = caps.has_str("UIDPLUS");
    let msgid = format!(
        "{PROBE_ID_PREFIX}{}@mailroom.invalid",
        crate::model::new_id()
    );
    let date = chrono::Utc::now().to_rfc2822();
    let probe = format!(
        "From: {email}\r\nTo: {email}\r\nSubject: mailroom write check (safe to delete)\r\nDate: {date}\r\nMessage-ID: <{msgid}>\r\nX-Mailroom-Probe: yes\r\n\r\nmailroom checked that it can write to this folder; this message deletes itself.\r\n"
    );
    let appended = append::append(session, folder, "\\Seen", None, probe.as_bytes()).await?;
    let r = tokio::time::timeout(limit, session.select(folder)).await;
    connect::called(session, "SELECT", r)?;
    let uid = match appended {
        Some((_, uid)) => Some(uid),
        None => {
            let q = format!("HEADER Message-ID \"{msgid}\"");
            let r = tokio::time::timeout(limit, session.uid_search(q)).await;
            connect::called(session, "UID SEARCH", r)?.into_iter().max()
        }
    };
    let Some(uid) = uid else {
        return Err(AppError::needs_user(
            "the probe was stored but cannot be found again",
            "",
            "the server may filter the folder; choose another Sent folder",
        ));
    };
    let r = tokio::time::timeout(limit, async {
        let updates = session
            .uid_store(uid.to_string(), "+FLAGS.SILENT (\\Deleted)")
            .await?;
        futures::TryStreamExt::try_collect::<Vec<_>>(updates).await
    })
    .await;
    connect::called(session, "UID STORE", r)?;
    let detail = if uidplus {
        let r = tokio::time::timeout(limit, async {
            let gone = session.uid_expunge(uid.to_string()).await?;
            futures::TryStreamExt::try_collect::<Vec<_>>(gone).await
        })
        .await;
        connect::called(session, "UID EXPUNGE", r)?;
        "stored a probe and removed it again".to_string()
    } else {
        "stored a probe and marked it \\Deleted (no UIDPLUS: left for your client to expunge)"
            .to_string()
    };
    // Leave the folder without CLOSE: CLOSE expunges every \Deleted message in it, mail the
    // user marked included. UNSELECT (RFC 3691) leaves it alone; without it, EXAMINE of the
    // same folder deselects it read-only, which expunges nothing either.
    let leave = match caps.has_str("UNSELECT") {
        true => "UNSELECT".to_string(),
        false => format!("EXAMINE {}", crate::imap::append::quote(folder)),
    };
    let _ = tokio::time::timeout(limit, session.run_command_and_check_ok(&leave)).await;
    Ok(detail)
}

async fn smtp_checks(
    config: &Config,
    acct: &Account,
    cred: Option<&Credential>,
    rec: &mut Recorder<'_>,
) {
    let target = match acct.smtp_target(config) {
        Ok(t) => t,
        Err(e) => {
            rec.push("smtp_connect", Err(e));
            return;
        }
    };
    let reach = connect::tcp_connect(&target.server, target.timeout)
        .await
        .map(|_| format!("reached {}:{}", target.server.host, target.server.port));
    if !rec.push("smtp_connect", reach) {
        return;
    }
    let tls_detail = match target.server.security {
        crate::config::Security::None => "no TLS (security none)",
        _ if target.tls.insecure_skip_verify => "TLS up, certificate NOT verified (insecure)",
        _ => "TLS up, certificate verified",
    };
    if !rec.push(
        "smtp_tls",
        smtp::test(&target).await.map(|_| tls_detail.to_string()),
    ) {
        return;
    }
    if target.auth == smtp::AuthMode::None {
        rec.skip(
            "smtp_auth",
            "no login: smtp_auth = none, so mail goes to the server without AUTH (a relay that takes mail from this host)",
        );
        return;
    }
    // Signing in the way sending does, so the check and a send fail alike.
    let signed_in = match smtp::session::Session::connect(&target).await {
        Ok(mut session) => {
            let r = session.authenticate(cred).await;
            session.quit().await;
            r
        }
        Err(e) => Err(e),
    };
    rec.push(
        "smtp_auth",
        signed_in.map_err(|e| microsoft_smtp_words(acct, e)),
    );
}

/// Microsoft 365 tenants often switch SMTP AUTH off: an OAuth2 account of a Microsoft preset
/// whose SMTP login fails says so, whatever the server's words.
fn microsoft_smtp_words(acct: &Account, mut e: AppError) -> AppError {
    let microsoft = matches!(
        acct.cfg.preset.as_deref(),
        Some("outlook" | "microsoft365" | "godaddy")
    );
    let oauth = acct.cfg.auth == crate::config::AuthKind::OAuth2;
    if microsoft && oauth && e.code != crate::error::Code::AuthSmtpDisabled && !e.recoverable() {
        e.fix = format!(
            "{}; Microsoft 365 tenants often switch SMTP AUTH off: an Exchange admin enables Authenticated SMTP for the mailbox (Set-CASMailbox -Identity {} -SmtpClientAuthenticationDisabled $false), or send through the system SMTP profile (`--use-system-smtp true`)",
            e.fix, acct.cfg.user
        );
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(detail: &str) -> Result<String, AppError> {
        Ok(detail.to_string())
    }

    #[test]
    fn skipped_by_a_setting_passes_skipped_after_a_failure_does_not() {
        let mut seen = Vec::new();
        let mut listener = |s: &Step| seen.push((s.id, s.status));
        let mut rec = Recorder {
            steps: Vec::new(),
            listener: &mut listener,
        };
        for id in ["connect", "tls", "login", "list"] {
            rec.push(id, ok("fine"));
        }
        rec.skip("sent_folder", "Sent copies are off");
        rec.skip("sent_write", "Sent copies are off");
        let report = rec.finish();
        assert!(report.ok, "nothing failed");
        let ids: Vec<&str> = report.steps.iter().map(|s| s.id).collect();
        assert_eq!(ids, STEP_IDS, "every step reported, in order");
        assert_eq!(seen.len(), 9, "the listener saw every step");

        let mut listener = |_: &Step| {};
        let mut rec = Recorder {
            steps: Vec::new(),
            listener: &mut listener,
        };
        rec.push("connect", ok("fine"));
        rec.push(
            "tls",
            Err(AppError::needs_user("bad cert", "expired", "renew it")),
        );
        let report = rec.finish();
        assert!(!report.ok);
        assert_eq!(report.steps[1].detail, "bad cert: expired");
        assert!(
            report.steps[2..]
                .iter()
                .all(|s| s.status == StepStatus::Skipped)
        );
    }
}
