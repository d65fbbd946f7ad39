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

/// Reports an error and returns its exit code; the debug log gets it whole, with its code.
pub fn fail(json: bool, e: &AppError) -> i32 {
    tracing::debug!(code = %e.code, "command failed: {e}");
    if json {
        line(&e.to_json().to_string());
    } else {
        e.eprint();
    }
    e.exit_code()
}

/// A table with aligned columns for human output, aligned by display width (a CJK character
/// takes two columns, a combining mark none). Every cell is cleaned of control characters and
/// escape sequences, so nothing from mail or a server reaches the terminal raw.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| crate::mail::sanitize::clean_line(c))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(width(c));
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| pad(c, widths.get(i).copied().unwrap_or(0)))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in &rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// Columns `s` takes on a terminal.
pub fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

fn pad(s: &str, to: usize) -> String {
    let w = width(s);
    let mut out = s.to_string();
    out.extend(std::iter::repeat_n(' ', to.saturating_sub(w)));
    out
}

/// `s` cut to at most `max` columns, ending in `…` when something was cut (never in the middle
/// of a wide character or before a combining mark that belongs to the kept text).
pub fn fit(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w > max.saturating_sub(1) {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_by_display_width_and_long_values_are_cut() {
        let t = table(
            &["NAME", "CITY"],
            &[
                vec!["Nguyễn 太郎".into(), "Hà Nội".into()],
                vec!["Ada".into(), "London".into()],
                vec!["e\u{301}mile 👩‍🔬".into(), "Paris".into()],
            ],
        );
        let starts: Vec<usize> = t
            .lines()
            .map(|l| {
                let at = l.rfind("  ").map(|i| i + 2).unwrap_or(0);
                width(&l[..at])
            })
            .collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{t}\n{starts:?}");
        assert_eq!(fit("太郎太郎太郎", 7), "太郎太…");
        assert_eq!(width(&fit("太郎太郎太郎", 7)), 7);
        assert_eq!(fit("short", 7), "short");
        assert_eq!(fit("abcdefghij", 5), "abcd…");
        assert!(!table(&["X"], &[vec!["a\x1b[31mred".into()]]).contains('\x1b'));
    }
}
