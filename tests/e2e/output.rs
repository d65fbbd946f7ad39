//! Human output for people: tables aligned by display width (issue 13).

use crate::common::*;

/// Terminal columns of `s` (East Asian wide characters take two, combining marks none).
fn columns(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

#[test]
fn tables_align_by_display_width_with_wide_and_combining_characters() {
    let home = Home::new();
    for (name, company, email) in [
        ("Nguyễn 太郎", "Hà Nội Co", "n@example.vn"),
        ("Ada", "Analytical", "ada@example.org"),
        ("Zoë 山田花子", "株式会社テスト", "z@example.jp"),
        ("Noe\u{0308}l", "Cafe\u{0301}", "noel@example.fr"),
    ] {
        let out = home.run(&[
            "customers",
            "add",
            "--name",
            name,
            "--company",
            company,
            "--email",
            email,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = home.run(&["customers", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    // Where each header's column starts, in display columns; every row's cell starts there too.
    let header = lines[0];
    for col in ["COMPANY", "EMAILS"] {
        let at = columns(&header[..header.find(col).expect("header")]);
        for l in &lines[1..] {
            let mut used = 0;
            let mut byte = l.len();
            for (i, c) in l.char_indices() {
                if used >= at {
                    byte = i;
                    break;
                }
                used += unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
            }
            assert_eq!(used, at, "{col} in {l:?}:\n{text}");
            let prev = l[..byte].chars().last().unwrap_or(' ');
            let next = l[byte..].chars().next().unwrap_or(' ');
            assert!(
                prev == ' ' && next != ' ',
                "{col} misaligned in {l:?}:\n{text}"
            );
        }
    }
}
