//! Network work on short-lived threads with their own runtime; answers come back as Data.

use tokio::sync::mpsc::UnboundedSender;

use crate::account::Account;
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::tui::app::Data;

/// Runs async work on a job thread's own small runtime.
pub(super) fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            AppError::local(
                "cannot start a background task",
                e.to_string(),
                "check system limits (threads, file descriptors)",
            )
        })?
        .block_on(f)
}

/// A network job on its own thread; its answer (or its failure) comes back as Data.
pub(super) fn spawn_job(
    out: UnboundedSender<Data>,
    job: impl FnOnce() -> Result<Data> + Send + 'static,
) {
    let err_out = out.clone();
    let spawned = std::thread::Builder::new()
        .name("mailroom-console-job".into())
        .spawn(move || {
            let d = job().unwrap_or_else(|e| Data::Notice(Err(e)));
            let _ = out.send(d);
        });
    if let Err(e) = spawned {
        let _ = err_out.send(Data::Notice(Err(AppError::local(
            "cannot start a background task",
            e.to_string(),
            "check system limits (threads)",
        ))));
    }
}

/// What a check needs: the config, the account, its IMAP and SMTP passwords, and the Sent
/// folder chosen with `folders --sent` (from the store).
pub(super) type Prepared = (
    Config,
    Account,
    secrecy::SecretString,
    secrecy::SecretString,
    Option<String>,
);

/// Runs `check::run` on its own thread and runtime (the check's listener is not Send), streaming
/// each step to the UI as it completes.
pub(super) fn spawn_check(
    out: UnboundedSender<Data>,
    job: u64,
    prepare: impl FnOnce() -> Result<Prepared> + Send + 'static,
    on_done: impl FnOnce(&crate::check::Report) + Send + 'static,
) {
    let err_out = out.clone();
    let spawned = std::thread::Builder::new()
        .name("mailroom-console-check".into())
        .spawn(move || {
            let result = (|| {
                let (config, acct, ip, sp, chosen_sent) = prepare()?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        AppError::local(
                            "cannot start a background task",
                            e.to_string(),
                            "check system limits (threads, file descriptors)",
                        )
                    })?;
                let step_out = out.clone();
                let report = rt.block_on(crate::check::run(
                    &config,
                    &acct,
                    &ip,
                    &sp,
                    chosen_sent,
                    &mut |s| {
                        let _ = step_out.send(Data::CheckStep(job, s.clone()));
                    },
                ));
                on_done(&report);
                Ok(report)
            })();
            let _ = out.send(Data::CheckDone(job, result));
        });
    if let Err(e) = spawned {
        // Without a thread nothing else will answer this job.
        let _ = err_out.send(Data::CheckDone(
            job,
            Err(AppError::local(
                "cannot start a background task",
                e.to_string(),
                "check system limits (threads)",
            )),
        ));
    }
}
