//! Test-only crash points: `MAILROOM_FAILPOINT=name` makes the process fail where code passes the
//! point with that name, so crash-recovery tests are deterministic instead of racing a kill.
//! Without the variable every point is inert.

/// The text a panic point carries: terminal escapes (a title change, a screen clear, a colour)
/// the way a panic over a hostile subject would, so tests prove the panic report is cleaned.
pub const PANIC_PAYLOAD: &str = "simulated bug over hostile data \u{1b}]2;mailroom-pwned\u{7}\u{1b}[2J\u{1b}[31mred\u{1b}[0m end";

/// Aborts (like `kill -9`: no destructors, no flush) when `MAILROOM_FAILPOINT` names this point.
/// `name@N` aborts on the N-th pass through the point instead of the first.
pub fn hit(name: &str) {
    if reached(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Panics (an ordinary unwinding panic, as a bug would) when `MAILROOM_FAILPOINT` names this
/// point; `name@N` on the N-th pass. The message carries [`PANIC_PAYLOAD`] and the caller's
/// location, as a bug there would.
#[track_caller]
// A test-only point that exists to panic: inert unless MAILROOM_FAILPOINT names it.
#[allow(clippy::panic)]
pub fn panic_point(name: &str) {
    if reached(name) {
        panic!("failpoint {name}: {PANIC_PAYLOAD}");
    }
}

fn reached(name: &str) -> bool {
    let Ok(want) = std::env::var("MAILROOM_FAILPOINT") else {
        return false;
    };
    let Some(nth) = wanted_pass(&want, name) else {
        return false;
    };
    // One counter is enough: the variable names a single point.
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let seen = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    seen >= nth
}

/// The pass (1-based) at which `spec` (`name` or `name@N`) wants `name` to fail, if it names it.
fn wanted_pass(spec: &str, name: &str) -> Option<usize> {
    let (point, nth) = match spec.split_once('@') {
        Some((p, n)) => (p, n.parse::<usize>().unwrap_or(1)),
        None => (spec, 1),
    };
    (point == name).then_some(nth)
}

#[cfg(test)]
mod tests {
    use super::wanted_pass;

    #[test]
    fn a_spec_names_one_point_and_optionally_the_pass() {
        assert_eq!(wanted_pass("console_panic", "console_panic"), Some(1));
        assert_eq!(wanted_pass("console_panic@3", "console_panic"), Some(3));
        assert_eq!(wanted_pass("console_panic@x", "console_panic"), Some(1));
        assert_eq!(wanted_pass("after_append", "console_panic"), None);
        assert_eq!(wanted_pass("console_panic_io", "console_panic"), None);
        assert_eq!(wanted_pass("", "console_panic"), None);
    }
}
