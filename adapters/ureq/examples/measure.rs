//! Measurements: `cargo run --release -p apolloconf --example measure` (a step of
//! `cargo xtask bench`). Prints numbers, asserts only that the work was done.
//!
//! 1. publish → listener latency over 200 publishes (median, p99), with the long poll held
//!    before each publish and the rate limits raised (the protocol path itself);
//! 2. with the Java client's default rate limits (2/s, docs/protocol.md#rate-limits-and-back-off):
//!    three publishes in a row after a quiet second, the fan-out of one publish in each of
//!    20 namespaces, and the requests of a sustained hammer;
//! 3. start-up with 20 namespaces × 51 keys (server up), and from the cache with the
//!    server down;
//! 4. `get()` against a `HashMap` lookup, in the same run.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use apolloconf::{Client, ClientBuilder, Env, Interest, Source, Timing};
use apolloconf_testserver::{Admin, TestServer};

const APP: &str = "SampleApp";
const NAMESPACES: usize = 20;
const KEYS: usize = 50;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The Java defaults with the first long poll at once; `fast` raises the rate limits out
/// of the way (back-to-back publishes would otherwise measure the limiter).
fn timing(fast: bool) -> Timing {
    let mut t = Timing::default();
    t.long_poll_initial_delay = Duration::ZERO;
    if fast {
        t.long_poll_qps = 1000;
        t.load_config_qps = 1000;
    }
    t
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Waits (bounded) until the server holds a long poll.
fn wait_held(admin: &Admin) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.held_polls() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Long polls and `/configs` requests the server received so far.
fn request_counts(admin: &Admin) -> (usize, usize) {
    let log = admin.requests();
    let count = |e: &str| log.iter().filter(|r| r.endpoint == e).count();
    (count("notifications"), count("configs"))
}

/// A release of namespace `n`: its 50 keys and `{n}.fan` = `fan`.
fn items(n: &str, fan: &str) -> Vec<(String, String)> {
    (0..KEYS)
        .map(|k| (format!("{n}.key{k:02}"), format!("value-{n}-{k:02}")))
        .chain([(format!("{n}.fan"), fan.to_string())])
        .collect()
}

fn names() -> Vec<String> {
    (0..NAMESPACES).map(|i| format!("ns{i:02}")).collect()
}

fn main() -> Result<()> {
    let server = TestServer::start()?;
    let admin = server.admin().clone();
    admin.publish(APP, "default", "application", [("n", "0")])?;
    let names = names();
    for n in &names {
        admin.publish(APP, "default", n, items(n, "start"))?;
    }
    let dir = tempfile::tempdir()?;
    let base = |fast: bool| -> ClientBuilder {
        Client::builder()
            .app_id(APP)
            .config_service(server.url())
            .environment(Env::empty())
            .server_properties(dir.path().join("none"))
            .timing(timing(fast))
    };

    latency(&admin, base(true).cache(false).build()?)?;
    burst(&admin, base(false).cache(false).build()?)?;
    fan_out(
        &admin,
        &names,
        base(false)
            .cache(false)
            .namespaces(names.iter().cloned())
            .build()?,
    )?;
    hammer(&admin, base(false).cache(false).build()?)?;
    startup(&admin, &names, || {
        base(false)
            .cache_dir(dir.path())
            .namespaces(names.iter().cloned())
            .build()
    })?;
    reads(
        &base(false)
            .cache_dir(dir.path())
            .namespaces(names.iter().cloned())
            .build()?,
    );
    Ok(())
}

/// 1. publish → listener with the limits raised.
fn latency(admin: &Admin, client: Client) -> Result<()> {
    let rx = client.changes(Interest::all());
    let mut lat = Vec::new();
    for i in 1..=200 {
        wait_held(admin);
        let t0 = Instant::now();
        admin.publish(APP, "default", "application", [("n", i.to_string())])?;
        let ev = rx.recv_timeout(Duration::from_secs(10))?;
        lat.push(t0.elapsed());
        assert_eq!(ev.changes[0].new.as_deref(), Some(i.to_string().as_str()));
    }
    client.close();
    lat.sort();
    println!(
        "publish -> listener, 200 publishes (rate limits raised): median {}, p99 {}, max {}",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(lat[lat.len() - 1])
    );
    Ok(())
}

/// 2a. Three publishes in a row after a quiet second, Java rates.
fn burst(admin: &Admin, client: Client) -> Result<()> {
    let rx = client.changes(Interest::all());
    let mut rounds = Vec::new();
    for round in 0..5 {
        // Two quiet seconds: the limiter has stored a second's worth of permits.
        std::thread::sleep(Duration::from_secs(2));
        while rx.try_recv().is_ok() {}
        let mut seen = Vec::new();
        for i in 0..3 {
            wait_held(admin);
            let value = format!("burst-{round}-{i}");
            let t0 = Instant::now();
            admin.publish(APP, "default", "application", [("n", value.as_str())])?;
            loop {
                let ev = rx.recv_timeout(Duration::from_secs(10))?;
                if ev.changes.iter().any(|c| c.new.as_deref() == Some(&value)) {
                    break;
                }
            }
            seen.push(ms(t0.elapsed()));
        }
        rounds.push(seen.join(", "));
    }
    client.close();
    println!(
        "Java rates (2/s): three publishes in a row after 2 quiet seconds, 5 rounds: [{}]",
        rounds.join("] [")
    );
    Ok(())
}

/// 2b. One publish in each of 20 namespaces (51 keys each), back to back, Java rates.
fn fan_out(admin: &Admin, names: &[String], client: Client) -> Result<()> {
    let rx = client.changes(Interest::all());
    let mut times = Vec::new();
    for round in 0..7 {
        std::thread::sleep(Duration::from_secs(2));
        while rx.try_recv().is_ok() {}
        wait_held(admin);
        let value = format!("fan-{round}");
        let t0 = Instant::now();
        for n in names {
            admin.publish(APP, "default", n, items(n, &value))?;
        }
        let mut left: Vec<&String> = names.iter().collect();
        while !left.is_empty() {
            let ev = rx.recv_timeout(Duration::from_secs(10))?;
            if ev.changes.iter().any(|c| c.new.as_deref() == Some(&value)) {
                left.retain(|n| **n != ev.namespace);
            }
        }
        times.push(t0.elapsed());
    }
    client.close();
    times.sort();
    println!(
        "Java rates (2/s): one publish in each of {NAMESPACES} namespaces at once, 7 rounds: \
         all seen after median {}, min {}, max {}",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    Ok(())
}

/// 2c. A sustained hammer: 100 publishes 20 ms apart, Java rates.
fn hammer(admin: &Admin, client: Client) -> Result<()> {
    let rx = client.changes(Interest::all());
    std::thread::sleep(Duration::from_secs(2));
    let (polls0, configs0) = request_counts(admin);
    let t0 = Instant::now();
    for i in 0..100 {
        admin.publish(
            APP,
            "default",
            "application",
            [("n", format!("hammer-{i}"))],
        )?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let last = String::from("hammer-99");
    loop {
        let ev = rx.recv_timeout(Duration::from_secs(10))?;
        if ev.changes.iter().any(|c| c.new.as_deref() == Some(&last)) {
            break;
        }
    }
    let took = t0.elapsed().as_secs_f64();
    let (polls1, configs1) = request_counts(admin);
    client.close();
    println!(
        "Java rates (2/s): 100 publishes 20 ms apart ({took:.2} s until the last was seen): \
         {} long polls, {} config loads ({:.2}/s and {:.2}/s; the Java limiter allows 2/s plus \
         3 at once)",
        polls1 - polls0,
        configs1 - configs0,
        (polls1 - polls0) as f64 / took,
        (configs1 - configs0) as f64 / took
    );
    Ok(())
}

/// 3. Start-up with 20 × 51 keys, then from the cache with the server down.
fn startup(
    admin: &Admin,
    names: &[String],
    build: impl Fn() -> std::result::Result<Client, apolloconf::Error>,
) -> Result<()> {
    let mut runs = Vec::new();
    for _ in 0..7 {
        let t0 = Instant::now();
        let c = build()?;
        runs.push(t0.elapsed());
        assert!(c.is_ready() && loaded_from(&c, names, Source::Server));
        c.close();
    }
    runs.sort();
    println!(
        "start-up, {NAMESPACES} namespaces x {} keys, server up (7 runs): median {}, min {}, max {}",
        KEYS + 1,
        ms(runs[3]),
        ms(runs[0]),
        ms(runs[6])
    );
    admin.pause();
    let mut runs = Vec::new();
    for _ in 0..7 {
        let t0 = Instant::now();
        let c = build()?;
        runs.push(t0.elapsed());
        assert!(loaded_from(&c, names, Source::Cache));
        c.close();
    }
    admin.resume()?;
    runs.sort();
    println!(
        "start-up from the cache, server down, {NAMESPACES} x {} keys (7 runs): median {}, min {}, max {}",
        KEYS + 1,
        ms(runs[3]),
        ms(runs[0]),
        ms(runs[6])
    );
    Ok(())
}

fn loaded_from(c: &Client, names: &[String], source: Source) -> bool {
    let snap = c.snapshot();
    names.iter().all(|n| {
        snap.namespace(n)
            .is_some_and(|ns| ns.source() == source && ns.properties().len() == KEYS + 1)
    })
}

/// Part 4, reads: `Client::get`, a held snapshot's `get`, and a `HashMap<String, String>`
/// of the same 1,020 keys, over the same key sequence.
fn reads(client: &Client) {
    let snap = client.snapshot();
    let map: HashMap<String, String> = snap
        .merged()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(map.len(), NAMESPACES * (KEYS + 1));
    let keys: Vec<String> = map.keys().cloned().collect();
    let first: Vec<String> = (0..KEYS).map(|k| format!("ns00.key{k:02}")).collect();
    let last: Vec<String> = (0..KEYS).map(|k| format!("ns19.key{k:02}")).collect();
    const ROUNDS: usize = 2_000;
    let per_op = |keys: &[String], f: &dyn Fn(&str) -> usize| {
        let t0 = Instant::now();
        let mut sink = 0usize;
        for _ in 0..ROUNDS {
            for k in keys {
                sink = sink.wrapping_add(f(black_box(k)));
            }
        }
        black_box(sink);
        t0.elapsed().as_secs_f64() * 1e9 / (ROUNDS * keys.len()) as f64
    };
    let hash = per_op(&keys, &|k| map.get(k).map_or(0, String::len));
    let client_all = per_op(&keys, &|k| client.get(k).map_or(0, |v| v.len()));
    let client_first = per_op(&first, &|k| client.get(k).map_or(0, |v| v.len()));
    let client_last = per_op(&last, &|k| client.get(k).map_or(0, |v| v.len()));
    let snap_all = per_op(&keys, &|k| snap.get(k).map_or(0, str::len));
    println!(
        "reads over {} keys in {NAMESPACES} namespaces: HashMap::get {hash:.1} ns/op; \
         Client::get {client_all:.1} ns/op ({:.1}x; key in the first namespace {client_first:.1}, \
         in the last {client_last:.1}); Snapshot::get {snap_all:.1} ns/op",
        keys.len(),
        client_all / hash
    );
    client.close();
}
