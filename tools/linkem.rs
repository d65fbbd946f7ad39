//! linkem: an in-tree link emulator for benchmarks (`scripts/bench --wan RTT_MS MBIT`). These
//! machines have no netem, so a TCP proxy stands in for a distant server: every byte takes half
//! the round-trip time to cross in each direction, behind the bytes before it on a link of the
//! given bandwidth (shared by all connections, one link per direction), and a new connection
//! costs one round trip before anything flows (the TCP handshake).
//!
//! It counts round trips per connection the way a client waits for them: the TCP handshake,
//! plus every flight of client bytes that follows something the server sent (bytes sent before
//! the answer to the previous flight arrived travel in the same flight: that is pipelining).
//!
//! ```text
//! linkem --to HOST:PORT --rtt-ms 50 --mbit 20 [--listen 127.0.0.1:0] [--stats FILE]
//! ```
//! Prints `listening ADDR` on stdout once it accepts connections; appends one JSON line per
//! finished connection to the stats file:
//! `{"conn":1,"round_trips":4,"flights":3,"up_bytes":…,"down_bytes":…,"ms":…}`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes read at a time: a chunk is delivered whole when its last byte arrives, so small chunks
/// keep the store-and-forward error below a millisecond at 20 Mbit/s.
const CHUNK: usize = 2048;

struct Options {
    to: String,
    listen: String,
    one_way: Duration,
    rtt: Duration,
    bytes_per_sec: f64,
    stats: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: linkem --to HOST:PORT --rtt-ms MS --mbit MBIT [--listen ADDR] [--stats FILE]"
    );
    std::process::exit(64)
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let (mut to, mut listen, mut rtt_ms, mut mbit, mut stats) =
        (None, "127.0.0.1:0".to_string(), None, None, None);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--to" => to = Some(value()),
            "--listen" => listen = value(),
            "--rtt-ms" => rtt_ms = value().parse::<f64>().ok(),
            "--mbit" => mbit = value().parse::<f64>().ok(),
            "--stats" => stats = Some(value()),
            _ => usage(),
        }
    }
    let (Some(to), Some(rtt_ms), Some(mbit)) = (to, rtt_ms, mbit) else {
        usage()
    };
    if rtt_ms < 0.0 || mbit <= 0.0 {
        usage()
    }
    let rtt = Duration::from_secs_f64(rtt_ms / 1000.0);
    Options {
        to,
        listen,
        one_way: rtt / 2,
        rtt,
        bytes_per_sec: mbit * 1_000_000.0 / 8.0,
        stats,
    }
}

/// One direction of the link: the moment it is free to send the next byte.
struct Link {
    free_at: Mutex<Instant>,
    bytes_per_sec: f64,
}

impl Link {
    /// When a chunk of `n` bytes handed over at `at` has crossed the link (its last byte out).
    fn send(&self, at: Instant, n: usize) -> Instant {
        let mut free = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let start = (*free).max(at);
        *free = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec);
        *free
    }
}

/// What one connection counts.
#[derive(Default)]
struct Counts {
    flights: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
    /// The client has received server bytes since its last flight began.
    answered: std::sync::atomic::AtomicBool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = Arc::new(options());
    let listener = match TcpListener::bind(&o.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("linkem: cannot listen on {}: {e}", o.listen);
            std::process::exit(1)
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("listening {addr}");
    let _ = std::io::stdout().flush();
    let up = Arc::new(Link {
        free_at: Mutex::new(Instant::now()),
        bytes_per_sec: o.bytes_per_sec,
    });
    let down = Arc::new(Link {
        free_at: Mutex::new(Instant::now()),
        bytes_per_sec: o.bytes_per_sec,
    });
    let mut n = 0u64;
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        n += 1;
        let (o, up, down) = (o.clone(), up.clone(), down.clone());
        tokio::spawn(async move {
            if let Err(e) = relay(n, client, &o, up, down).await {
                eprintln!("linkem: connection {n}: {e}");
            }
        });
    }
}

async fn relay(
    n: u64,
    client: TcpStream,
    o: &Options,
    up: Arc<Link>,
    down: Arc<Link>,
) -> std::io::Result<()> {
    let accepted = Instant::now();
    let server = TcpStream::connect(&o.to).await?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let counts = Arc::new(Counts::default());
    // Nothing crosses before the handshake's round trip is over.
    let open_at = accepted + o.rtt;
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let to_server = pump(cr, sw, up, o.one_way, open_at, counts.clone(), true);
    let to_client = pump(sr, cw, down, o.one_way, open_at, counts.clone(), false);
    let _ = tokio::join!(to_server, to_client);
    let flights = counts.flights.load(Ordering::SeqCst);
    let line = serde_json::json!({
        "conn": n,
        "round_trips": flights + 1,
        "flights": flights,
        "up_bytes": counts.up.load(Ordering::SeqCst),
        "down_bytes": counts.down.load(Ordering::SeqCst),
        "ms": accepted.elapsed().as_millis() as u64,
    });
    if let Some(path) = &o.stats {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}

/// Reads one direction, schedules each chunk on the link and delivers it when it has crossed.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Arc<Link>,
    one_way: Duration,
    open_at: Instant,
    counts: Arc<Counts>,
    upstream: bool,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let counts2 = counts.clone();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if bytes.is_empty() {
                break;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
            if !upstream {
                counts2.answered.store(true, Ordering::SeqCst);
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        let now = Instant::now().max(open_at);
        if n == 0 {
            // The close follows the last byte.
            let at = link.send(now, 0) + one_way;
            let _ = tx.send((at, Vec::new()));
            break;
        }
        if upstream {
            counts.up.fetch_add(n as u64, Ordering::SeqCst);
            let first = counts.flights.load(Ordering::SeqCst) == 0;
            if first || counts.answered.swap(false, Ordering::SeqCst) {
                counts.flights.fetch_add(1, Ordering::SeqCst);
            }
        } else {
            counts.down.fetch_add(n as u64, Ordering::SeqCst);
        }
        let at = link.send(now, n) + one_way;
        if tx.send((at, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
