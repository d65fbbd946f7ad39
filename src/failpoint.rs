//! Test-only crash points: `MAILROOM_FAILPOINT=name` aborts the process at the named point, like
//! `kill -9` there, so crash-recovery tests are deterministic. Unset, a hit costs one env lookup.

/// Aborts the process (no destructors, no flushing) when `MAILROOM_FAILPOINT` equals `name`.
pub fn hit(name: &str) {
    if std::env::var("MAILROOM_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("mailroom: failpoint {name} hit, aborting");
        std::process::abort();
    }
}
