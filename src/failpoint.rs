//! Test-only crash points: `MAILROOM_FAILPOINT=name` aborts the process when code passes the
//! point with that name, so crash-recovery tests are deterministic instead of racing a kill.

/// Aborts (like `kill -9`: no destructors, no flush) when `MAILROOM_FAILPOINT` names this point.
/// `name@N` aborts on the N-th pass through the point instead of the first.
pub fn hit(name: &str) {
    let Ok(want) = std::env::var("MAILROOM_FAILPOINT") else {
        return;
    };
    let (point, nth) = match want.split_once('@') {
        Some((p, n)) => (p.to_string(), n.parse::<usize>().unwrap_or(1)),
        None => (want.clone(), 1),
    };
    if point != name {
        return;
    }
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let seen = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if seen >= nth {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
