//! TRANSITIONAL (issue 11): the console still reaches some work through the headless commands
//! of this same binary or through cli internals. Each group's conversion to the service layer
//! removes its uses; this file goes when the last one is gone.

use tokio::sync::mpsc::UnboundedSender;

use crate::error::{AppError, Result};
use crate::tui::app::Data;

use super::*;

/// The CLI's context around the service layer's, for the cli internals still called from here.
pub(super) fn legacy(cx: &Ctx) -> crate::cli::Ctx {
    crate::cli::Ctx {
        ops: cx.clone(),
        json: false,
        theme: None,
        verbose: 0,
    }
}

/// A clone of the context for a job thread.
pub(super) fn own_ctx(cx: &Ctx) -> Ctx {
    cx.clone()
}

/// Runs a headless command of this same binary (`mailroom --json ARGS`) and returns its one
/// JSON object. The console acts through exactly the code the CLI runs — nothing of its own —
/// and the command's output never touches the screen.
pub fn run_cli(ctx: &Ctx, args: &[String]) -> Result<serde_json::Value> {
    let exe = std::env::current_exe().map_err(|e| {
        AppError::local(
            "cannot find the mailroom binary",
            e.to_string(),
            "reinstall mailroom",
        )
    })?;
    let out = std::process::Command::new(exe)
        .arg("--home")
        .arg(&ctx.home.root)
        .arg("--operator")
        .arg(&ctx.operator)
        .arg("--json")
        .args(args)
        .env_remove("MAILROOM_HOME")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            AppError::local("cannot run mailroom", e.to_string(), "check system limits")
        })?;
    let what = args.iter().take(2).cloned().collect::<Vec<_>>().join(" ");
    let v: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
    if out.status.success() {
        return v.ok_or_else(|| {
            AppError::local(
                format!("`mailroom {what}` printed no JSON"),
                String::from_utf8_lossy(&out.stderr).to_string(),
                "report this as a bug",
            )
        });
    }
    let e = v.as_ref().map(|v| &v["error"]);
    let text = |k: &str| {
        e.and_then(|e| e[k].as_str())
            .map(crate::mail::sanitize::clean_line)
            .unwrap_or_default()
    };
    let summary = text("summary");
    Err(AppError::needs_user(
        if summary.is_empty() {
            format!("`mailroom {what}` failed")
        } else {
            summary
        },
        {
            let d = text("detail");
            if d.is_empty() && e.is_none() {
                crate::mail::sanitize::clean_line(String::from_utf8_lossy(&out.stderr).trim())
            } else {
                d
            }
        },
        text("fix"),
    ))
}

/// A CLI command on a job thread; its result (the action's own words) comes back as Data.
pub(super) fn cli_job(
    ctx: &Ctx,
    out: &UnboundedSender<Data>,
    args: Vec<String>,
    wrap: fn(Result<String, AppError>) -> Data,
) {
    let ctx = own_ctx(ctx);
    spawn_job(out.clone(), move || {
        Ok(wrap(run_cli(&ctx, &args).map(|v| outcome_text(&v))))
    });
}

/// The human sentence of an action's JSON answer.
pub(super) fn outcome_text(v: &serde_json::Value) -> String {
    let pick = |v: &serde_json::Value| {
        v["detail"].as_str().map(|d| match v["action_id"].as_i64() {
            Some(id) => format!("action {id}: {d}"),
            None => d.to_string(),
        })
    };
    let text = pick(v)
        .or_else(|| pick(&v["undone"]).map(|t| format!("undone: {t}")))
        .or_else(|| v["state"].as_str().map(|s| format!("now {s}")))
        .unwrap_or_else(|| "done".into());
    crate::mail::sanitize::clean_line(&text)
}
