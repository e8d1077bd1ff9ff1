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
    /// Accepted and ignored (cargo bench passes it).
    #[arg(long, hide = true)]
    bench: bool,
}

struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let params: Vec<Value> = serde_json::from_str(&args.params)?;
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let barrier = Arc::new(Barrier::new(args.connections + 1));
    let mut workers = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut c = client::Client::connect(&args.url, Duration::from_secs(10))?;
        let (barrier, method, params) = (barrier.clone(), args.method.clone(), params.clone());
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
                let ok = c.call(&method, params.clone()).is_ok();
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
