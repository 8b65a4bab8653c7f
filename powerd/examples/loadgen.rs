//! A loopback load generator for powerd (used by scripts/bench-powerd.sh): N concurrent
//! keep-alive clients issue requests until a count or a time limit is reached, then
//! requests/s and latency percentiles are printed as one line, against the targets.
//!
//!   loadgen --url http://127.0.0.1:9750 --token T --mode get|power|mixed [--concurrency 16]
//!           [--requests 20000] [--seconds 10] [--outlets a,b,c]
//!           [--target-rps 2000] [--target-p99-ms 10]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use powerd_client::{Client, Credentials, Method};
use serde_json::json;

struct Args {
    url: String,
    token: String,
    mode: String,
    concurrency: usize,
    requests: usize,
    seconds: u64,
    outlets: Vec<String>,
    target_rps: f64,
    target_p99_ms: f64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        url: "http://127.0.0.1:9750".into(),
        token: String::new(),
        mode: "get".into(),
        concurrency: 16,
        requests: 20_000,
        seconds: 10,
        outlets: vec![],
        target_rps: 2000.0,
        target_p99_ms: 10.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => a.url = value,
            "--token" => a.token = value,
            "--mode" => a.mode = value,
            "--concurrency" => a.concurrency = value.parse()?,
            "--requests" => a.requests = value.parse()?,
            "--seconds" => a.seconds = value.parse()?,
            "--outlets" => a.outlets = value.split(',').map(str::to_string).collect(),
            "--target-rps" => a.target_rps = value.parse()?,
            "--target-p99-ms" => a.target_p99_ms = value.parse()?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    if !matches!(a.mode.as_str(), "get" | "power" | "mixed") {
        bail!("--mode is get, power or mixed");
    }
    if a.mode != "get" && a.outlets.is_empty() {
        bail!("--mode {} needs --outlets", a.mode);
    }
    Ok(a)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::new(&args.url, Credentials::Bearer(args.token.clone()))?;
    let issued = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let args = Arc::new(args);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..args.concurrency {
        let (client, issued, args) = (client.clone(), issued.clone(), args.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut on = true;
            let mut n = 0usize;
            while issued.fetch_add(1, Ordering::Relaxed) < args.requests
                && Instant::now() < deadline
            {
                let t = Instant::now();
                // mixed: 6 reads to 4 power changes
                n += 1;
                let read = args.mode == "get" || (args.mode == "mixed" && n % 10 < 6);
                let resp = if read {
                    client.call(Method::GET, "/v1/outlets", None).await
                } else {
                    // each worker drives one outlet, alternating, so every request is a transition
                    let id = &args.outlets[w % args.outlets.len()];
                    let body = json!({"state": if on { "on" } else { "off" }});
                    on = !on;
                    client
                        .call(Method::PUT, &format!("/v1/outlets/{id}/power"), Some(&body))
                        .await
                };
                match resp {
                    Ok(r) if r.status.is_success() => latencies.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for r in workers.join_all().await {
        latencies.extend(r.0);
        errors += r.1;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let rps = latencies.len() as f64 / elapsed.as_secs_f64();
    let (p50, p99, max) = (pct(0.50), pct(0.99), pct(1.0));
    let name = match args.mode.as_str() {
        "get" => "GET /v1/outlets",
        "mixed" => "60% GET, 40% PUT power",
        _ => "PUT /v1/outlets/{id}/power",
    };
    let ok = rps >= args.target_rps && p99 <= args.target_p99_ms && errors == 0;
    println!(
        "{name:<28} {rps:>8.0} req/s ({:.1}x the {} target)  p50 {p50:.2} ms  p99 {p99:.2} ms ({:.1}x under {} ms)  max {max:.1} ms  n={} errors={errors}  {}",
        rps / args.target_rps,
        args.target_rps,
        args.target_p99_ms / p99.max(1e-9),
        args.target_p99_ms,
        latencies.len(),
        if ok { "ok" } else { "MISSED TARGET" },
    );
    Ok(())
}
