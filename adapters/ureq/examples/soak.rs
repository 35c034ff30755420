//! Soak and outage, a step of `cargo xtask bench`:
//! `cargo run --release -p apolloconf --example soak -- SERVER_BINARY [--minutes N] [--outage-seconds N]`.
//!
//! The test server runs as a child process (so this process's memory and file
//! descriptors are the client's alone); the native client runs here with the Java default
//! timing and a cache directory.
//!
//! 1. Soak: a publish every 100 ms for `--minutes` (10): RSS and open file descriptors at
//!    start and end, requests per second, and whether the last value arrived.
//! 2. Outage: every endpoint answers 503 for `--outage-seconds` (120): requests per second
//!    during it, then the time from recovery to the first successful request, and whether
//!    a release published during the outage arrives.

#[path = "support/server.rs"]
mod support;

use std::time::{Duration, Instant};

use apolloconf::{Client, Env, Interest};
use support::{Result, Server};

const APP: &str = "SoakApp";

fn publish(server: &Server, value: &str) -> Result<()> {
    server.publish(
        APP,
        "application",
        &format!(r#"{{"n":"{value}","fixed":"x"}}"#),
    )?;
    Ok(())
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Resident memory of this process in KiB (`VmRSS`).
fn rss_kib() -> u64 {
    support::status_kib("VmRSS")
}

/// Open file descriptors of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let binary = args
        .first()
        .ok_or("usage: soak SERVER_BINARY [--minutes N] [--outage-seconds N]")?;
    let minutes = arg(&args, "--minutes", 10);
    let outage = arg(&args, "--outage-seconds", 120);
    let server = Server::start(binary)?;
    publish(&server, "0")?;
    let dir = tempfile::tempdir()?;
    let client = Client::builder()
        .app_id(APP)
        .config_service(&server.url)
        .environment(Env::empty())
        .server_properties(dir.path().join("none"))
        .cache_dir(dir.path())
        .build()?;
    let changes = client.changes(Interest::all());

    // 1. Soak.
    let (rss0, fds0, requests0) = (rss_kib(), fds(), server.request_times()?.len());
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(minutes * 60);
    let mut i = 0u64;
    let mut next = t0;
    while Instant::now() < end {
        i += 1;
        publish(&server, &i.to_string())?;
        next += Duration::from_millis(100);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        while changes.try_recv().is_ok() {}
    }
    let last = i.to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get("n").as_deref() != Some(last.as_str()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t0.elapsed().as_secs_f64();
    let requests = server.request_times()?.len() - requests0;
    println!(
        "soak: {i} publishes, one every 100 ms for {minutes} min: RSS {:.1} -> {:.1} MiB, open fds {fds0} -> {}, \
         {:.2} requests/s, last value {}",
        rss0 as f64 / 1024.0,
        rss_kib() as f64 / 1024.0,
        fds(),
        requests as f64 / took,
        if client.get("n").as_deref() == Some(last.as_str()) {
            "arrived"
        } else {
            "MISSING"
        }
    );

    // 2. Outage.
    std::thread::sleep(Duration::from_secs(2));
    server.admin("DELETE", "requests", "")?;
    let fault = r#"{"endpoint":"any","action":{"type":"status","code":503}}"#;
    // A held poll is not affected by a new fault: drop the connections (a restart with no
    // downtime) so the outage starts now.
    server.admin("POST", "faults", fault)?;
    server.admin("POST", "restart", r#"{"downMs":0}"#)?;
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(outage / 2));
    publish(&server, "during-outage")?;
    std::thread::sleep(Duration::from_secs(outage - outage / 2));
    let during = server.request_times()?.len();
    let down_for = down.elapsed().as_secs_f64();
    let recovered_at = epoch_ms();
    let recovered = Instant::now();
    server.admin("DELETE", "faults", "")?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut first = None;
    while first.is_none() && Instant::now() < deadline {
        first = server
            .request_times()?
            .into_iter()
            .find(|t| *t >= recovered_at);
        std::thread::sleep(Duration::from_millis(20));
    }
    while client.get("n").as_deref() != Some("during-outage")
        && recovered.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "outage: 503 on every endpoint for {down_for:.0} s: {:.2} requests/s during it; first request \
         after recovery {}; the release published during it arrived {:.1} s after recovery",
        during as f64 / down_for,
        first.map_or("never (5 min)".into(), |t| format!(
            "{:.1} s later",
            (t - recovered_at) as f64 / 1000.0
        )),
        recovered.elapsed().as_secs_f64()
    );
    client.close();
    Ok(())
}
