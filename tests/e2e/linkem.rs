//! The link emulator `scripts/bench --wan` measures through (tools/linkem.rs): its one-way
//! delay, its bandwidth cap and its count of round trips, against a local echo server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Linkem {
    child: Child,
    pub addr: String,
    pub stats: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Linkem {
    /// linkem in front of `to`, with this round-trip time and bandwidth.
    pub fn start(to: &str, rtt_ms: u64, mbit: f64) -> Linkem {
        let dir = tempfile::tempdir().unwrap();
        let stats = dir.path().join("stats.jsonl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_linkem"))
            .args(["--to", to, "--rtt-ms", &rtt_ms.to_string()])
            .args(["--mbit", &mbit.to_string(), "--stats"])
            .arg(&stats)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().strip_prefix("listening ").unwrap().to_string();
        Linkem {
            child,
            addr,
            stats,
            _dir: dir,
        }
    }

    /// The stats lines of finished connections, waiting up to a few seconds for `n` of them.
    pub fn connections(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.stats).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                // The emulator may be writing the last line right now: a partial one waits.
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Linkem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server that echoes everything on one connection.
fn echo_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    addr
}

fn exchange(c: &mut TcpStream, data: &[u8]) -> Duration {
    let started = Instant::now();
    let mut w = c.try_clone().unwrap();
    let out = data.to_vec();
    let sender = std::thread::spawn(move || w.write_all(&out).unwrap());
    let mut got = vec![0u8; data.len()];
    c.read_exact(&mut got).unwrap();
    sender.join().unwrap();
    assert_eq!(got, data);
    started.elapsed()
}

#[test]
fn the_link_emulator_delays_caps_the_rate_and_counts_round_trips() {
    let link = Linkem::start(&echo_server(), 100, 8.0);
    let mut c = TcpStream::connect(&link.addr).unwrap();
    c.set_nodelay(true).unwrap();
    // The lower bounds are what is tested (the delay and the rate are there); the upper ones
    // only catch a gross excess, with room for a loaded machine's scheduling.
    // The first exchange pays for the TCP handshake too: two round trips.
    let first = exchange(&mut c, b"ping");
    assert!(
        first >= Duration::from_millis(195) && first < Duration::from_millis(700),
        "{first:?}"
    );
    let second = exchange(&mut c, b"pong");
    assert!(
        second >= Duration::from_millis(98) && second < Duration::from_millis(500),
        "{second:?}"
    );
    // 500 kB at 8 Mbit/s (1 MB/s) takes half a second on the way up; the echo streams back
    // behind it on the other link, so the last byte is back about one round trip later.
    let bulk: Vec<u8> = (0..500_000u32).map(|i| (i % 251) as u8).collect();
    let t = exchange(&mut c, &bulk);
    assert!(
        t >= Duration::from_millis(590) && t < Duration::from_millis(2000),
        "{t:?}"
    );
    drop(c);
    let conns = link.connections(1);
    assert_eq!(conns.len(), 1, "{conns:?}");
    let s = &conns[0];
    // Handshake + three flights of ours, each sent after the answer to the last.
    assert_eq!(s["round_trips"], 4, "{s}");
    assert_eq!(s["up_bytes"], 8 + 500_000, "{s}");
    assert_eq!(s["down_bytes"], 8 + 500_000, "{s}");
}
