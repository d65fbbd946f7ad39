//! Mail content is hostile: anything that came from a message or a server is stripped of
//! terminal control and escape sequences before it is printed or drawn.

/// Removes ANSI/VT escape sequences (CSI, OSC, DCS, …) and control characters, keeping `\n` and
/// `\t`. Bidi overrides are removed too, so text cannot reorder what the operator sees.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // C1 CSI / OSC / DCS etc. introduce sequences on some terminals.
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\n' | '\t' => out.push(c),
            '\r' => {}
            c if c.is_control() => {}
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {}
            c => out.push(c),
        }
    }
    out
}

/// `clean`, then folds newlines and tabs into spaces: for one-line fields (subject, names).
pub fn clean_line(s: &str) -> String {
    clean(s)
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect()
}

fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.peek().copied() {
        Some('[') => {
            chars.next();
            skip_csi(chars);
        }
        Some(']') | Some('P') | Some('X') | Some('^') | Some('_') => {
            chars.next();
            skip_string(chars);
        }
        // Two-character sequences (ESC c, ESC 7, ESC ( B …): drop the next char(s).
        Some('(') | Some(')') | Some('*') | Some('+') | Some('#') | Some('%') => {
            chars.next();
            chars.next();
        }
        Some(_) => {
            chars.next();
        }
        None => {}
    }
}

fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    // Parameters and intermediates until a final byte in @..~.
    for c in chars.by_ref() {
        if ('@'..='~').contains(&c) {
            break;
        }
    }
}

fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    // OSC/DCS/…: until BEL, ST (ESC \) or C1 ST.
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                break;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_osc_title_and_clear_screen() {
        assert_eq!(
            clean_line("Hi \u{1b}]0;pwned\u{7}there\u{1b}[2J!"),
            "Hi there!"
        );
        assert_eq!(clean("a\u{1b}[31mred\u{1b}[0m\nb"), "ared\nb");
        assert_eq!(clean("x\u{9b}31my"), "xy");
        assert_eq!(clean("bell\u{7}\u{8}\r"), "bell");
        assert_eq!(clean("\u{202e}evil"), "evil");
        assert_eq!(clean("日本語 é"), "日本語 é");
        assert_eq!(clean("\u{1b}P1;2|secret\u{1b}\\ok"), "ok");
    }
}
