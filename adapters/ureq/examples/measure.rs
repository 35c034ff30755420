//! Measurements: `cargo run --release -p apolloconf --example measure`.
//!
//! 1. publish → listener latency over 200 publishes (median, p99), with the long poll held
//!    before each publish (the steady state of a running client);
//! 2. start-up time with 20 namespaces (server up, cache off);
//! 3. start-up time from the cache with the server down.

use std::time::{Duration, Instant};

use apolloconf::{Client, Env, Interest, Source, Timing};
use apolloconf_testserver::TestServer;

fn timing() -> Timing {
    let mut t = Timing::default();
    t.long_poll_initial_delay = Duration::ZERO;
    // The Java defaults rate-limit long polls and fetches to 2/s; back-to-back publishes
    // would then measure the limiter, not the client. `--java-rates` keeps the defaults
    // (each round then waits for the held poll, so the limiter is not on the path either).
    if !std::env::args().any(|a| a == "--java-rates") {
        t.long_poll_qps = 1000;
        t.load_config_qps = 1000;
    }
    t
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const APP: &str = "SampleApp";
    let server = TestServer::start()?;
    let admin = server.admin().clone();
    admin.publish(APP, "default", "application", [("n", "0")])?;
    let dir = tempfile::tempdir()?;
    let base = || {
        Client::builder()
            .app_id(APP)
            .config_service(server.url())
            .environment(Env::empty())
            .server_properties(dir.path().join("none"))
            .timing(timing())
    };

    // 1. Latency.
    let client = base().cache(false).build()?;
    let rx = client.changes(Interest::all());
    let java_rates = std::env::args().any(|a| a == "--java-rates");
    let mut lat = Vec::new();
    for i in 1..=200 {
        if java_rates {
            // Let the 2/s long-poll limiter release the next poll first (the steady state
            // of publishes that are not back to back).
            std::thread::sleep(Duration::from_millis(600));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while admin.held_polls() == 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let t0 = Instant::now();
        admin.publish(APP, "default", "application", [("n", i.to_string())])?;
        let ev = rx.recv_timeout(Duration::from_secs(10))?;
        lat.push(t0.elapsed());
        assert_eq!(ev.changes[0].new.as_deref(), Some(i.to_string().as_str()));
    }
    client.close();
    lat.sort();
    println!(
        "publish -> listener over {} publishes: median {:?}, p99 {:?}, max {:?}",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1]
    );

    // 2. Start-up with 20 namespaces.
    let names: Vec<String> = (0..20).map(|i| format!("ns{i:02}")).collect();
    for n in &names {
        admin.publish(APP, "default", n, [("key", n.as_str())])?;
    }
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let c = base()
            .cache_dir(dir.path())
            .namespaces(names.iter().cloned())
            .build()?;
        runs.push(t0.elapsed());
        assert!(c.is_ready() && c.namespaces_loaded(&names));
        c.close();
    }
    runs.sort();
    println!(
        "start-up with 20 namespaces (5 runs): median {:?}, min {:?}, max {:?}",
        runs[2], runs[0], runs[4]
    );

    // 3. Start-up from cache, server down.
    admin.pause();
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let c = base()
            .cache_dir(dir.path())
            .namespaces(names.iter().cloned())
            .build()?;
        runs.push(t0.elapsed());
        let snap = c.snapshot();
        assert!(snap.namespaces().all(|n| n.source() == Source::Cache));
        c.close();
    }
    runs.sort();
    println!(
        "start-up from cache, server down, 20 namespaces (5 runs): median {:?}, min {:?}, max {:?}",
        runs[2], runs[0], runs[4]
    );
    Ok(())
}

trait Loaded {
    fn namespaces_loaded(&self, names: &[String]) -> bool;
}

impl Loaded for Client {
    fn namespaces_loaded(&self, names: &[String]) -> bool {
        let snap = self.snapshot();
        names.iter().all(|n| {
            snap.namespace(n)
                .is_some_and(|ns| ns.source() == Source::Server)
        })
    }
}
