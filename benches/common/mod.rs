//! What the benchmarks share: a small deterministic generator (no external crates, the same
//! data every run).

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick(&mut self, words: &[&'static str]) -> &'static str {
        words[self.below(words.len() as u64) as usize]
    }
}

/// A size from the environment variable `var`, else `full` under `cargo bench` (which passes
/// `--bench`) or `smoke` when `cargo test --all-targets` runs the binary as a quick check.
pub fn size(var: &str, full: usize, smoke: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            full
        } else {
            smoke
        })
}
