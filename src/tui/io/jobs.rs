//! The console's background work: jobs on the console's one tokio runtime, each with an id, the
//! pane that owns it and a handle to cancel it. A job's answer comes back as Data; a pane that
//! goes away (or asks again) cancels what it no longer wants.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;

use crate::tui::action::PaneId;
use crate::tui::app::Data;

/// Jobs running on the console's runtime. Cloning shares the same set.
#[derive(Clone)]
pub struct Jobs {
    rt: tokio::runtime::Handle,
    out: UnboundedSender<Data>,
    next: Arc<AtomicU64>,
    live: Arc<Mutex<HashMap<u64, (PaneId, tokio::task::AbortHandle)>>>,
}

impl Jobs {
    /// Jobs on the runtime behind `rt`; answers go to `out`.
    pub fn new(rt: tokio::runtime::Handle, out: UnboundedSender<Data>) -> Jobs {
        Jobs {
            rt,
            out,
            next: Arc::new(AtomicU64::new(1)),
            live: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Starts `work` for `owner`; its Data goes to the UI when it is done (unless cancelled).
    pub fn spawn<F>(&self, owner: PaneId, work: F) -> u64
    where
        F: std::future::Future<Output = Data> + Send + 'static,
    {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let out = self.out.clone();
        let live = self.live.clone();
        // Held until the job is registered, so a job that ends at once still finds its entry.
        let mut map = self.live.lock().ok();
        let handle = self.rt.spawn(async move {
            let data = work.await;
            if let Ok(mut m) = live.lock() {
                m.remove(&id);
            }
            let _ = out.send(data);
        });
        if let Some(m) = map.as_mut() {
            m.insert(id, (owner, handle.abort_handle()));
        }
        id
    }

    /// Cancels every job `owner` started (its pane closed, or it asked again).
    pub fn cancel_owned_by(&self, owner: PaneId) {
        if let Ok(mut m) = self.live.lock() {
            m.retain(|_, (o, h)| {
                let keep = *o != owner;
                if !keep {
                    h.abort();
                }
                keep
            });
        }
    }

    /// How many jobs are running (for the status line and tests).
    pub fn running(&self) -> usize {
        self.live.lock().map(|m| m.len()).unwrap_or(0)
    }
}
