//! Seeded fault simulation: random delays, drops, 5xx, hangs, malformed bodies, lagging
//! instances (304s after notifications), server restarts and publishes at random times.
//! Between the random actions, and after every run, the invariants below are checked.
//! `APOLLOCONF_SEEDS` sets the number of seeds (default 100; `cargo xtask test` runs
//! 1,000); `APOLLOCONF_SEED=n` runs seed `n` alone (1 <= n <= the number of seeds).
//!
//! The summary line counts what actually happened: the seeds that ran to the end, the
//! simulated time read from the harness clock, and one invariant check per assertion
//! evaluated (see [`verify!`]).

mod sim;

use std::collections::{BTreeMap, BTreeSet};

use apolloconf_core::{ChangeKind, Event, Source, Timing};
use sim::{Harness, Mode, Sim};

/// `assert!` that counts itself in `totals.checks`: the summary's "invariant checks" is
/// the number of assertions evaluated, nothing else.
macro_rules! verify {
    ($totals:expr, $cond:expr, $($msg:tt)+) => {{
        $totals.checks += 1;
        assert!($cond, $($msg)+);
    }};
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Default)]
struct Totals {
    /// Seeds that ran to the end.
    seeds: u64,
    /// Simulated milliseconds, summed from the harness clock at the end of each seed.
    simulated_ms: u64,
    turns: u64,
    requests: u64,
    events: u64,
    publishes: u64,
    faults: u64,
    checks: u64,
}

const POOL: [&str; 5] = ["application", "shared.db", "feature.yaml", "extra", "late"];

fn run_seed(seed: u64, totals: &mut Totals) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let instances = 1 + rng.below(3) as usize;
    let mut sim = Sim::new("app", instances);
    sim.hold_ms = [500, 5_000, 30_000, 60_000][rng.below(4) as usize];
    sim.incremental = rng.chance(30);
    let count = 1 + rng.below(POOL.len() as u64) as usize;
    let names: Vec<&str> = POOL[..count].to_vec();
    for n in &names {
        if *n != "late" && rng.chance(85) {
            sim.publish(0, n, &values(&mut rng, n, 0));
        }
    }
    let mut timing = Timing::default();
    timing.long_poll_initial_delay = std::time::Duration::from_millis(rng.below(2_500));
    // Either a fast fallback refresh (many fetches, many chances to meet a lagging
    // instance) or a slow one that cannot mask a lost update within the heal window.
    let fast_refresh = rng.chance(50);
    timing.refresh_interval = std::time::Duration::from_secs(if fast_refresh { 30 } else { 3_600 });
    let use_meta = rng.chance(40);
    let builder = if use_meta {
        Harness::config_meta(&sim)
    } else {
        Harness::config_direct(&sim)
    };
    let cfg = builder
        .namespaces(names.iter().copied())
        .seed(seed)
        .timing(timing)
        .build();
    let mut h = Harness::new(cfg, sim);

    let mut last_publish: BTreeMap<&str, u64> = BTreeMap::new();
    let mut seen = Seen::default();
    let fault_end = 20 * 60_000;
    while h.now < fault_end {
        let step = 50 + rng.below(20_000);
        h.run_for(step);
        check(seed, &h, &names, &mut seen, totals);
        // One random action.
        match rng.below(11) {
            0..=3 => {
                let n = names[rng.below(names.len() as u64) as usize];
                // At most one publish per namespace per second (release keys carry seconds).
                if last_publish.get(n).is_none_or(|t| h.now >= t + 1_000) {
                    let v = values(&mut rng, n, h.now);
                    h.sim.publish(h.now, n, &v);
                    last_publish.insert(n, h.now);
                    totals.publishes += 1;
                }
            }
            4 | 5 => {
                let i = rng.below(instances as u64) as usize;
                h.sim.instances[i].mode = match rng.below(6) {
                    0 => Mode::Down,
                    1 => Mode::Status([500, 502, 503, 429, 400][rng.below(5) as usize]),
                    2 => Mode::Hang,
                    3 => Mode::Malformed,
                    _ => Mode::Normal,
                };
                totals.faults += 1;
            }
            6 => {
                let i = rng.below(instances as u64) as usize;
                // At most one lagging instance at a time, lagging up to 20 s.
                for inst in h.sim.instances.iter_mut() {
                    inst.lag_ms = 0;
                }
                h.sim.instances[i].lag_ms = rng.below(20_000);
                h.sim.instances[i].honors_messages = rng.chance(50);
                totals.faults += 1;
            }
            9 => {
                // /configs fails on one instance for a while, its long poll keeps working:
                // the notified fetch must fail over and must not be dropped.
                let i = rng.below(instances as u64) as usize;
                h.sim.instances[i].fail_configs = 1 + rng.below(6) as u32;
                totals.faults += 1;
            }
            7 => {
                // A restart: held polls are dropped, state (and message ids) survive.
                h.drop_parked();
                totals.faults += 1;
            }
            8 => {
                let up = rng.chance(50);
                h.sim.metas[0].up = up;
                // Mostly quick answers; sometimes slow ones (1-3 s), so that fetches are
                // still in flight when the next publish is notified (a fetch answers
                // for the state it was served with, not for later notifications).
                let slow = rng.chance(25);
                for inst in h.sim.instances.iter_mut() {
                    inst.latency_ms = if slow {
                        1_000 + rng.below(2_000)
                    } else {
                        1 + rng.below(300)
                    };
                }
                totals.faults += 1;
            }
            _ => {}
        }
    }
    // Faults stop: everything heals; the client must converge.
    for inst in h.sim.instances.iter_mut() {
        inst.mode = Mode::Normal;
        inst.fail_configs = 0;
        inst.lag_ms = 0;
        inst.latency_ms = 5;
    }
    h.sim.metas[0].up = true;
    // Long-poll back-off may sit at 120 s, plus one hold and the fetch back-off.
    h.run_for(4 * 60_000);
    check(seed, &h, &names, &mut seen, totals);
    // A closing burst on a healthy but slow service: every namespace is published, and
    // again 1.1 s later while the first fetch (served before the second publish) is still
    // in flight. The second notification needs a fetch of its own; with the slow refresh
    // nothing else would repair a lost update within the final two minutes.
    for inst in h.sim.instances.iter_mut() {
        inst.latency_ms = 1_500 + rng.below(1_500);
    }
    for round in 0..2 {
        for n in &names {
            if last_publish.get(n).is_none_or(|t| h.now >= t + 1_000) {
                let v = values(&mut rng, n, h.now + round);
                h.sim.publish(h.now, n, &v);
                last_publish.insert(n, h.now);
                totals.publishes += 1;
            }
        }
        h.run_for(1_100);
    }
    h.run_for(2 * 60_000);
    check(seed, &h, &names, &mut seen, totals);
    for n in &names {
        let want = h.sim.latest(n).map(|r| r.key.clone());
        let ns = h.client.namespace(n).expect("a configured namespace");
        let have = ns.release_key().map(str::to_string);
        verify!(
            totals,
            have == want,
            "seed {seed}: {n} converged to {have:?}, not to the latest release {want:?}"
        );
        if let Some(r) = h.sim.latest(n) {
            // Raw values (for YAML the `content` text) are the latest release's.
            verify!(
                totals,
                ns.configurations() == &r.values,
                "seed {seed}: {n} values {:?}, latest release {:?}",
                ns.configurations(),
                r.values
            );
            // The properties view is the one computed here from the releases loaded.
            let expected = seen.view.get(*n);
            verify!(
                totals,
                expected.is_some_and(|e| ns.properties() == e),
                "seed {seed}: {n} properties {:?}, expected {expected:?}",
                ns.properties()
            );
        }
    }
    let (d, p, c) = h.max_in_flight;
    verify!(
        totals,
        d <= 1 && p <= 1 && c <= 1,
        "seed {seed}: in flight discovery {d}, poll {p}, configs per ns {c}"
    );
    totals.seeds += 1;
    totals.simulated_ms += h.now;
    totals.turns += h.turns;
    totals.requests += h.log.len() as u64;
    totals.events += h.events.len() as u64;
}

fn values(rng: &mut Rng, ns: &str, now: u64) -> Vec<(&'static str, &'static str)> {
    let keys = ["a", "b", "c", "timeout", "db.url"];
    let vals = ["1", "2", "x", "y", "z", ""];
    if ns.ends_with(".yaml") {
        let docs = [
            "a: 1\n",
            "a: 2\nb: [x, y]\n",
            "c:\n  d: yes\n",
            "a: [unclosed\n",
        ];
        return vec![("content", docs[(rng.below(4) + now % 2) as usize % 4])];
    }
    let mut out = vec![];
    for k in keys {
        if rng.chance(60) {
            out.push((k, vals[rng.below(vals.len() as u64) as usize]));
        }
    }
    out
}

/// The flattened properties of each YAML document [`values`] publishes, written out by
/// hand from docs/protocol.md#yaml-flattening (`yes` is a YAML 1.1 boolean, list items are `key[i]`); `None`
/// for the one that does not parse.
#[cfg(feature = "yaml")]
fn flattened(doc: &str) -> Option<BTreeMap<String, String>> {
    let pairs: &[(&str, &str)] = match doc {
        "a: 1\n" => &[("a", "1")],
        "a: 2\nb: [x, y]\n" => &[("a", "2"), ("b[0]", "x"), ("b[1]", "y")],
        "c:\n  d: yes\n" => &[("c.d", "true")],
        "a: [unclosed\n" => return None,
        other => panic!("no expectation written for the YAML document {other:?}"),
    };
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The properties view a namespace must show after loading `values`, given the view it
/// showed before: a YAML namespace keeps its previous view when the text is invalid (as
/// the Java client does); without the `yaml` feature the text is not flattened.
fn next_view(
    namespace: &str,
    values: &BTreeMap<String, String>,
    previous: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    #[cfg(feature = "yaml")]
    if namespace.ends_with(".yaml") {
        let text = values.get("content").map_or("", String::as_str);
        return flattened(text).unwrap_or_else(|| previous.cloned().unwrap_or_default());
    }
    let _ = (namespace, previous);
    values.clone()
}

/// Key -> (old, new) value of the keys that differ between two views.
type ViewDiff = BTreeMap<String, (Option<String>, Option<String>)>;

/// What the checks remember between calls, for one seed.
#[derive(Default)]
struct Seen {
    /// Events checked so far.
    events: usize,
    /// Highest release version loaded per namespace.
    version: BTreeMap<String, u32>,
    /// (namespace, release key) of every change event so far.
    changes: BTreeSet<(String, Option<String>)>,
    /// The expected properties view per namespace, from the releases loaded so far.
    view: BTreeMap<String, BTreeMap<String, String>>,
    /// The last load of any namespace: (namespace, release key, key -> (old, new) of the
    /// expected views before and after it).
    last_load: Option<(String, String, ViewDiff)>,
}

/// The difference between two views: key -> (old, new) where they differ.
fn view_diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> ViewDiff {
    let mut out = BTreeMap::new();
    for k in old.keys().chain(new.keys()) {
        let (o, n) = (old.get(k), new.get(k));
        if o != n {
            out.insert(k.clone(), (o.cloned(), n.cloned()));
        }
    }
    out
}

/// Invariants over the events since the last check, and over the client's state now.
fn check(seed: u64, h: &Harness, names: &[&str], seen: &mut Seen, totals: &mut Totals) {
    let releases: BTreeMap<&str, &sim::Release> = h
        .sim
        .ns
        .values()
        .flat_map(|d| d.releases.iter().map(|r| (r.key.as_str(), r)))
        .collect();
    for (t, e) in &h.events[seen.events..] {
        match e {
            Event::Loaded {
                namespace,
                source: Source::Server,
                release_key: Some(k),
            } => {
                let r = releases.get(k.as_str());
                verify!(
                    totals,
                    r.is_some(),
                    "seed {seed}: at {t} ms {namespace} loaded {k}, a release never published"
                );
                let Some(r) = r else { continue };
                let prev = seen.version.entry(namespace.clone()).or_insert(0);
                verify!(
                    totals,
                    r.version >= *prev,
                    "seed {seed}: at {t} ms {namespace} went back from version {prev} to {} ({k})",
                    r.version
                );
                *prev = r.version;
                let old = seen.view.get(namespace).cloned().unwrap_or_default();
                let new = next_view(namespace, &r.values, seen.view.get(namespace));
                seen.last_load = Some((namespace.clone(), k.clone(), view_diff(&old, &new)));
                seen.view.insert(namespace.clone(), new);
            }
            Event::Changed(c) => {
                verify!(
                    totals,
                    !c.changes.is_empty(),
                    "seed {seed}: at {t} ms empty change event for {}",
                    c.namespace
                );
                verify!(
                    totals,
                    seen.changes
                        .insert((c.namespace.clone(), c.release_key.clone())),
                    "seed {seed}: at {t} ms duplicate change event for {} {:?}",
                    c.namespace,
                    c.release_key
                );
                // A change event follows the load it reports and lists exactly the keys
                // whose expected view differs across that load.
                let (ns, key, diff) = seen.last_load.take().unwrap_or_default();
                verify!(
                    totals,
                    c.source == Source::Server
                        && c.namespace == ns
                        && c.release_key.as_deref() == Some(key.as_str()),
                    "seed {seed}: at {t} ms change event for {} {:?} does not follow its load ({ns} {key})",
                    c.namespace,
                    c.release_key
                );
                let listed: ViewDiff = c
                    .changes
                    .iter()
                    .map(|ch| (ch.key.clone(), (ch.old.clone(), ch.new.clone())))
                    .collect();
                verify!(
                    totals,
                    listed.len() == c.changes.len() && listed == diff,
                    "seed {seed}: at {t} ms {} changes {:?}, expected {diff:?}",
                    c.namespace,
                    c.changes
                );
                for ch in &c.changes {
                    let kind = match (&ch.old, &ch.new) {
                        (None, Some(_)) => ChangeKind::Added,
                        (Some(_), None) => ChangeKind::Deleted,
                        _ => ChangeKind::Modified,
                    };
                    verify!(
                        totals,
                        ch.kind == kind,
                        "seed {seed}: at {t} ms {} {:?}",
                        c.namespace,
                        ch
                    );
                }
            }
            _ => {}
        }
    }
    seen.events = h.events.len();
    // The values held are exactly those of the release they claim, and the properties
    // view is the one expected from the releases loaded.
    for n in names {
        let ns = h.client.namespace(n).expect("a configured namespace");
        match ns.release_key() {
            Some(k) => {
                let r = releases.get(k);
                verify!(
                    totals,
                    r.is_some_and(|r| ns.configurations() == &r.values),
                    "seed {seed}: at {} ms {n} holds {:?} under {k}, released as {:?}",
                    h.now,
                    ns.configurations(),
                    r.map(|r| &r.values)
                );
                let expected = seen.view.get(*n);
                verify!(
                    totals,
                    expected.is_some_and(|e| ns.properties() == e),
                    "seed {seed}: at {} ms {n} properties {:?}, expected {expected:?}",
                    h.now,
                    ns.properties()
                );
            }
            None => verify!(
                totals,
                ns.configurations().is_empty() && ns.properties().is_empty(),
                "seed {seed}: at {} ms {n} holds values without a release",
                h.now
            ),
        }
    }
}

/// A number from the environment: `None` when unset; a value that is not a number fails
/// (a typo must not silently run the default).
fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

#[test]
fn seeded_fault_simulation() {
    let seeds = env_number("APOLLOCONF_SEEDS").unwrap_or(100);
    assert!(seeds > 0, "APOLLOCONF_SEEDS=0 runs nothing");
    let only = env_number("APOLLOCONF_SEED");
    if let Some(o) = only {
        assert!(
            (1..=seeds).contains(&o),
            "APOLLOCONF_SEED={o} is not one of the seeds 1..={seeds}"
        );
    }
    let mut totals = Totals::default();
    let start = std::time::Instant::now();
    let mut expected = 0;
    for seed in 1..=seeds {
        if only.is_some_and(|o| o != seed) {
            continue;
        }
        expected += 1;
        run_seed(seed, &mut totals);
    }
    println!(
        "fault simulation: {} seeds, {} simulated minutes, {} loop turns, {} requests, {} events, {} publishes, {} faults, {} invariant checks, {:.1} s",
        totals.seeds,
        totals.simulated_ms / 60_000,
        totals.turns,
        totals.requests,
        totals.events,
        totals.publishes,
        totals.faults,
        totals.checks,
        start.elapsed().as_secs_f64()
    );
    assert!(totals.seeds > 0, "no seed ran");
    assert_eq!(totals.seeds, expected, "every selected seed ran to the end");
}
