//! Work that uses the store throughout while it waits on servers — the outbox engine, a body
//! fetched on demand, local changes pushed at once — runs on a thread of its own with a
//! current-thread runtime, so no worker of a shared tokio runtime ever waits on the database.

use tokio::runtime::Runtime;

use super::Ctx;
use crate::error::{AppError, Result};

impl Ctx {
    /// Runs `f` on a new thread named `name`, with a runtime of its own for the async steps it
    /// drives (`rt.block_on`); the caller awaits the answer without blocking its runtime.
    pub async fn on_own_thread<T, F>(&self, name: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Ctx, &Runtime) -> Result<T> + Send + 'static,
    {
        let cx = self.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let r = current_thread_runtime().and_then(|rt| f(&cx, &rt));
                let _ = tx.send(r);
            })
            .map_err(|e| {
                AppError::local(
                    "cannot start a background task",
                    e.to_string(),
                    "check system limits (threads)",
                )
            })?;
        rx.await.map_err(|_| {
            AppError::local(
                "a background task stopped",
                "it ended without an answer",
                "see the debug log (logs/mailroom.log); every committed step stays done",
            )
        })?
    }
}

/// A runtime for one thread's own network waits.
pub(crate) fn current_thread_runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            AppError::local(
                "cannot start a background task",
                e.to_string(),
                "check system limits (threads, file descriptors)",
            )
        })
}
