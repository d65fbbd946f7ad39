//! Every message of the real-world MIME corpus (tests/corpus, see each SOURCE.txt for origin and
//! licence) goes through the parsing and sanitising pipeline without a panic, and whatever comes
//! out is safe to print.

use std::path::{Path, PathBuf};

use mailroom::mail::parse::{content_hash, parse_body, parse_headers};
use mailroom::mail::sanitize::{clean, clean_line};

pub fn corpus_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let index = std::fs::read_to_string(root.join("INDEX.tsv")).expect("tests/corpus/INDEX.tsv");
    index
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .map(|p| root.join(p))
        .collect()
}

fn printable(s: &str) -> bool {
    !s.chars()
        .any(|c| c == '\u{1b}' || (c.is_control() && c != '\n' && c != '\t'))
}

#[test]
fn every_corpus_message_parses_without_panic_and_sanitises() {
    let files = corpus_files();
    assert!(files.len() > 250, "corpus present: {}", files.len());
    let mut with_headers = 0;
    for path in &files {
        let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Some(env) = parse_headers(&raw) {
            with_headers += 1;
            assert_eq!(env.content_hash, content_hash(&env), "{}", path.display());
            for s in [
                env.subject.clone().unwrap_or_default(),
                env.from
                    .as_ref()
                    .and_then(|a| a.name.clone())
                    .unwrap_or_default(),
            ] {
                assert!(printable(&clean_line(&s)), "{}", path.display());
            }
        }
        if let Some(body) = parse_body(&raw) {
            assert!(printable(&clean(&body.text)), "{}", path.display());
            for a in &body.attachments {
                assert!(
                    printable(&clean_line(a.name.as_deref().unwrap_or(""))),
                    "{}",
                    path.display()
                );
            }
        }
    }
    // Nearly all of the corpus is real mail with headers; a parser that returned None for
    // everything would pass the loop above, so check it recognised most of it.
    assert!(
        with_headers * 10 >= files.len() * 9,
        "{with_headers} of {} parsed",
        files.len()
    );
}
