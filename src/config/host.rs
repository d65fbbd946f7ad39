//! This host's identity in a shared store: lease and claim holders carry it, so liveness is
//! never decided by the pid of a process on another machine (or in another container, or of
//! another home on this machine — two homes are two hosts).
//!
//! The id is `MAILROOM_HOST_ID` when set, else a random id kept in the home (`host-id`, made on
//! first use), else — a home that does not exist yet — a random id for this process.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use super::Home;

static HOME: Mutex<Option<PathBuf>> = Mutex::new(None);
static ID: OnceLock<String> = OnceLock::new();

/// The file in the home that keeps its host id.
pub const FILE: &str = "host-id";

/// Makes `home` the one whose `host-id` this process uses (the first call wins; the id itself
/// is read or made on first use, when the home exists).
pub fn use_home(home: &Home) {
    if let Ok(mut h) = HOME.lock()
        && h.is_none()
    {
        *h = Some(home.root.clone());
    }
}

/// This process's host id.
pub fn id() -> &'static str {
    ID.get_or_init(|| {
        if let Ok(v) = std::env::var("MAILROOM_HOST_ID")
            && !v.trim().is_empty()
        {
            return clean(v.trim());
        }
        let home = HOME.lock().ok().and_then(|h| h.clone());
        home.and_then(|root| from_home(&root))
            .unwrap_or_else(|| format!("h-{}", crate::model::new_id()))
    })
}

/// The id kept in the home, made when missing (None: the home does not exist or is not
/// writable; the process then goes by a random id of its own).
fn from_home(root: &std::path::Path) -> Option<String> {
    let path = root.join(FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = clean(text.trim());
        if !id.is_empty() {
            return Some(id);
        }
    }
    if !root.is_dir() {
        return None;
    }
    let id = format!("h-{}", crate::model::new_id());
    // Two processes starting at once: the first file written wins, both read it back.
    let tmp = root.join(format!("{FILE}.{}", std::process::id()));
    std::fs::write(&tmp, format!("{id}\n")).ok()?;
    let _ = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    std::fs::read_to_string(&path)
        .ok()
        .map(|t| clean(t.trim()))
        .filter(|t| !t.is_empty())
}

/// Holder tags are `HOSTID:PID:TOKEN`: no colons or spaces in the id, and a sane length.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_home_keeps_its_id_and_two_homes_differ() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ia = from_home(a.path()).unwrap();
        assert_eq!(from_home(a.path()).unwrap(), ia, "kept");
        assert_ne!(from_home(b.path()).unwrap(), ia, "two homes are two hosts");
        assert!(from_home(&a.path().join("missing")).is_none());
        assert_eq!(clean("web 1:a/b"), "web1ab");
    }
}
