//! Printing: with `--json` exactly one object on stdout; otherwise human text on stdout and
//! errors on stderr with the fix.

use std::io::Write;

use serde::Serialize;

use crate::error::AppError;

/// Prints `value` as the single JSON object, or `human` as text.
pub fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string(value) {
            Ok(s) => {
                line(&s);
            }
            Err(e) => note(format!("cannot encode output as JSON: {e}")),
        }
    } else {
        let text = human();
        if !text.is_empty() {
            line(text.trim_end_matches('\n'));
        }
    }
}

/// Writes one line to stdout. A closed pipe (`mailroom triage list | head`) is not an error
/// worth a panic: it returns false so a follower can stop.
pub fn line(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|_| out.flush()).is_ok()
}

/// Progress and notes that are not the command's result: stderr, never stdout. A daemon whose
/// terminal went away (stderr then fails with EIO) must go on rather than panic over a note.
pub fn note(msg: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr().lock(), "{}", msg.as_ref());
}

/// Like `note`, without the line end (a progress line rewritten in place with `\r`).
pub fn note_inline(msg: impl AsRef<str>) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{}", msg.as_ref()).and_then(|_| err.flush());
}

/// Reports an error and returns its exit code.
pub fn fail(json: bool, e: &AppError) -> i32 {
    if json {
        line(&e.to_json().to_string());
    } else {
        e.eprint();
    }
    e.exit_code()
}

/// A table with aligned columns for human output.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<w$}", c, w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}
