//! A closed-loop load generator for any JSON-RPC WebSocket server: N
//! connections (threads with the blocking `client`), one call in flight on
//! each, for a fixed time; reports calls/s and latency percentiles.
//!
//! ```text
//! cargo bench -p daemon --bench tfa-load -- --url ws+unix:///tmp/d.sock \
//!     --method auth.twofactor.config --connections 16 --duration 5
//! ```
//!
//! The last line is machine-readable (`RESULT key=value ...`) for
//! `scripts/daemon-bench`, which runs it against twofactord and against a
//! Python echo server with the same client.
//!
//! Other modes, for the "under attack" run of `scripts/daemon-bench`:
//! `--fresh` opens a new connection for every call (what a new root client
//! or the PAM module sees); `--once` makes one call on a new connection and
//! prints its answer and latency; `--flood` keeps `--in-flight` wrong
//! `auth.login_ex` in flight on each connection until killed (it prints
//! `flooding` once they are all going).

use std::io::Write;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(name = "tfa-load")]
struct Args {
    /// ws+unix:///path or ws://host:port/api/current
    #[arg(long)]
    url: String,
    /// Method to call.
    #[arg(long, default_value = "auth.twofactor.config")]
    method: String,
    /// JSON array of params.
    #[arg(long, default_value = "[]")]
    params: String,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of unmeasured warm-up before it.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// A new connection for every call.
    #[arg(long)]
    fresh: bool,
    /// One call on a new connection; prints `ANSWER <json>` and its latency.
    #[arg(long)]
    once: bool,
    /// Keep wrong logins in flight on every connection until killed.
    #[arg(long)]
    flood: bool,
    /// Calls in flight per connection with --flood.
    #[arg(long, default_value_t = 20)]
    in_flight: usize,
    /// Accepted and ignored (cargo bench passes it).
    #[arg(long, hide = true)]
    bench: bool,
}

struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `--once`: one call on a new connection.
fn once(args: &Args, params: Vec<Value>) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut c = client::Client::connect(&args.url, CONNECT_TIMEOUT)?;
    let answer = c.call(&args.method, params)?;
    let us = t0.elapsed().as_micros();
    println!("ANSWER {answer}");
    println!("{} on a new connection: {us} us", args.method);
    println!("RESULT latency_us={us}");
    Ok(())
}

fn flood_connect(url: &str, in_flight: usize) -> Option<client::Client> {
    let mut c = client::Client::connect(url, CONNECT_TIMEOUT).ok()?;
    for _ in 0..in_flight {
        c.send_request("auth.login_ex", wrong_login()).ok()?;
    }
    Some(c)
}

fn wrong_login() -> Vec<Value> {
    vec![
        serde_json::json!({"mechanism": "PASSWORD_PLAIN", "username": "root", "password": "wrong"}),
    ]
}

/// `--flood`: every answer is replaced by another wrong login; a closed
/// connection is opened again.
fn flood(args: &Args) -> anyhow::Result<()> {
    let ready = Arc::new(Barrier::new(args.connections + 1));
    for _ in 0..args.connections {
        let (url, ready, in_flight) = (args.url.clone(), ready.clone(), args.in_flight);
        std::thread::spawn(move || {
            let mut c = flood_connect(&url, in_flight);
            ready.wait();
            while let Some(conn) = c.as_mut() {
                match conn.read_raw() {
                    Ok(Some(client::Frame::Text(_))) => {
                        if conn.send_request("auth.login_ex", wrong_login()).is_err() {
                            c = flood_connect(&url, in_flight);
                        }
                    }
                    Ok(Some(client::Frame::Binary(_)) | None) => {}
                    Ok(Some(client::Frame::Close { .. })) | Err(_) => {
                        c = flood_connect(&url, in_flight);
                    }
                }
            }
        });
    }
    ready.wait();
    println!("flooding");
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let params: Vec<Value> = serde_json::from_str(&args.params)?;
    if args.once {
        return once(&args, params);
    }
    if args.flood {
        return flood(&args);
    }
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let barrier = Arc::new(Barrier::new(args.connections + 1));
    let mut workers = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut c = Some(client::Client::connect(&args.url, CONNECT_TIMEOUT)?);
        let (barrier, method, params) = (barrier.clone(), args.method.clone(), params.clone());
        let (fresh, url) = (args.fresh, args.url.clone());
        workers.push(std::thread::spawn(move || {
            barrier.wait();
            let start = Instant::now();
            let measure_from = start + warmup;
            let end = measure_from + duration;
            let mut out = Outcome {
                latencies_us: Vec::with_capacity(1 << 16),
                errors: 0,
            };
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                if fresh {
                    c = client::Client::connect(&url, CONNECT_TIMEOUT).ok();
                }
                let ok = c
                    .as_mut()
                    .is_some_and(|c| c.call(&method, params.clone()).is_ok());
                if t0 >= measure_from {
                    if ok {
                        let us = t0.elapsed().as_micros();
                        out.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                    } else {
                        out.errors += 1;
                    }
                }
            }
            out
        }));
    }
    barrier.wait();
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let out = w.join().map_err(|_| anyhow::anyhow!("a worker panicked"))?;
        all.extend(out.latencies_us);
        errors += out.errors;
    }
    all.sort_unstable();
    let pct = |p: f64| -> u32 {
        if all.is_empty() {
            return 0;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        all[i.min(all.len() - 1)]
    };
    let rate = all.len() as f64 / duration.as_secs_f64();
    // A closed pipe (`| head`) is not an error of the measurement.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "{} on {}: {} connections, {:.1} s: {:.0} calls/s, p50 {} us, p99 {} us, max {} us, {} errors",
        args.method,
        args.url,
        args.connections,
        duration.as_secs_f64(),
        rate,
        pct(0.50),
        pct(0.99),
        all.last().copied().unwrap_or(0),
        errors
    );
    let _ = writeln!(
        stdout,
        "RESULT calls_per_sec={rate:.0} p50_us={} p99_us={} max_us={} calls={} errors={errors}",
        pct(0.50),
        pct(0.99),
        all.last().copied().unwrap_or(0),
        all.len()
    );
    Ok(())
}
