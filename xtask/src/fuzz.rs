//! Coverage-guided fuzzing of the core on stable Rust (`fuzz/`).
//!
//! The engine is libFuzzer, which the `libfuzzer-sys` crate builds from its C++ source; the
//! coverage it steers by comes from LLVM's SanitizerCoverage pass, switched on with stable
//! `-C passes` / `-C llvm-args` flags (no nightly `-Z` flag is needed: no sanitizer runs,
//! the targets check the core's promises themselves). The flags only apply to the target
//! triple given with `--target`, so build scripts stay plain.
//!
//! - `cargo xtask fuzz [--seconds N] [TARGET…]`: runs each target for N seconds (default
//!   60) from its corpus in `fuzz/corpus/TARGET/` (kept in the repository), merges what
//!   found new coverage back into it, prints executions, speed and coverage per target, and
//!   fails on the first crash (the input is left in `target/fuzz/artifacts/TARGET/`).
//! - a step of `cargo xtask test` replays every corpus once, so an input that once
//!   crashed (added to the corpus with its fix) stays fixed.

use std::path::PathBuf;
use std::process::Command;

use crate::step::cmd;
use crate::workspace::{cargo_cmd, root, s, target_dir};

/// Every fuzz target (a `[[bin]]` of `fuzz/Cargo.toml`).
pub const TARGETS: [&str; 7] = [
    "configs",
    "incremental_sync",
    "notifications",
    "services",
    "properties",
    "yaml",
    "sequence",
];

/// SanitizerCoverage as cargo-fuzz sets it up, plus `--cfg fuzzing`.
const COVERAGE_FLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing";

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

fn out_dir() -> PathBuf {
    target_dir().join("fuzz")
}

/// The host triple, from `rustc -vV`.
fn host() -> Option<String> {
    let out = cmd("rustc", &["-vV"]).output()?;
    out.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
}

/// Build every target with coverage instrumentation; returns the folder of the binaries.
pub fn build() -> Option<PathBuf> {
    let host = host()?;
    let manifest = s(&fuzz_dir().join("Cargo.toml"));
    let ok = cargo_cmd(&[
        "build",
        "--release",
        "--manifest-path",
        &manifest,
        "--target",
        &host,
        "--bins",
    ])
    .env("RUSTFLAGS", COVERAGE_FLAGS)
    .env("CARGO_TARGET_DIR", &s(&out_dir()))
    .ok();
    ok.then(|| out_dir().join(host).join("release"))
}

/// What libFuzzer reported at the end of a run.
#[derive(Default)]
struct Stats {
    executions: u64,
    per_second: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
    peak_rss_mb: u64,
}

fn parse_stats(stderr: &str) -> Stats {
    let mut st = Stats::default();
    let stat =
        |line: &str, name: &str| -> Option<u64> { line.strip_prefix(name)?.trim().parse().ok() };
    for line in stderr.lines() {
        if let Some(v) = stat(line, "stat::number_of_executed_units:") {
            st.executions = v;
        } else if let Some(v) = stat(line, "stat::average_exec_per_sec:") {
            st.per_second = v;
        } else if let Some(v) = stat(line, "stat::peak_rss_mb:") {
            st.peak_rss_mb = v;
        }
        // Progress lines: `#1234 NEW cov: 567 ft: 890 corp: 12/345b ...`.
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            let value = || -> Option<u64> {
                let mut it = words.clone();
                it.next()?.split('/').next()?.parse().ok()
            };
            match w {
                "cov:" => st.coverage = value().unwrap_or(st.coverage),
                "ft:" => st.features = value().unwrap_or(st.features),
                "corp:" => st.corpus = value().unwrap_or(st.corpus),
                _ => {}
            }
        }
    }
    st
}

/// Run one binary, echoing nothing but returning (success, stderr).
fn run_binary(bin: &PathBuf, args: &[String]) -> (bool, String) {
    match Command::new(bin).args(args).current_dir(root()).output() {
        Ok(out) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        Err(e) => (false, format!("cannot run {}: {e}", bin.display())),
    }
}

/// Print the tail of a failed run: libFuzzer's report of the crash and its input.
fn report_failure(target: &str, stderr: &str) {
    eprintln!("fuzz target {target} failed:");
    let lines: Vec<&str> = stderr.lines().collect();
    for l in &lines[lines.len().saturating_sub(40)..] {
        eprintln!("  {l}");
    }
}

/// `cargo xtask fuzz [--seconds N] [TARGET…]`.
pub fn fuzz(args: &[String]) -> bool {
    let mut seconds = 60u64;
    let mut chosen: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--seconds" {
            match it.next().and_then(|n| n.parse().ok()) {
                Some(n) => seconds = n,
                None => {
                    eprintln!("--seconds wants a whole number of seconds");
                    return false;
                }
            }
        } else if let Some(t) = TARGETS.iter().find(|t| **t == a.as_str()) {
            chosen.push(t);
        } else {
            eprintln!("unknown fuzz target {a:?}; targets: {}", TARGETS.join(", "));
            return false;
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.to_vec();
    }
    let Some(bins) = build() else { return false };
    let mut rows = Vec::new();
    for target in chosen {
        let corpus = fuzz_dir().join("corpus").join(target);
        let scratch = out_dir().join("corpus").join(target);
        let artifacts = out_dir().join("artifacts").join(target);
        for d in [&corpus, &scratch, &artifacts] {
            if let Err(e) = std::fs::create_dir_all(d) {
                eprintln!("{}: {e}", d.display());
                return false;
            }
        }
        let bin = bins.join(target);
        println!("fuzzing {target} for {seconds} s");
        let (ok, stderr) = run_binary(
            &bin,
            &[
                s(&scratch),
                s(&corpus),
                format!("-max_total_time={seconds}"),
                "-print_final_stats=1".into(),
                "-timeout=10".into(),
                "-rss_limit_mb=2048".into(),
                "-max_len=65536".into(),
                format!("-artifact_prefix={}/", s(&artifacts)),
            ],
        );
        if !ok {
            report_failure(target, &stderr);
            return false;
        }
        let st = parse_stats(&stderr);
        // Keep in the repository only what adds coverage to its corpus.
        let (merged, merge_err) = run_binary(&bin, &["-merge=1".into(), s(&corpus), s(&scratch)]);
        if !merged {
            report_failure(target, &merge_err);
            return false;
        }
        let kept = std::fs::read_dir(&corpus).map_or(0, |d| d.count());
        rows.push((target, st, kept));
    }
    println!();
    println!(
        "{:<14} {:>12} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "target", "executions", "exec/s", "coverage", "features", "corpus", "rss MB"
    );
    for (target, st, kept) in &rows {
        println!(
            "{:<14} {:>12} {:>9} {:>9} {:>9} {:>8} {:>8}",
            target, st.executions, st.per_second, st.coverage, st.features, kept, st.peak_rss_mb
        );
    }
    println!("(coverage: instrumented edges reached; features: libFuzzer's finer signal)");
    true
}

/// Replay every committed corpus once (a step of `cargo xtask test`).
pub fn replay() -> bool {
    let Some(bins) = build() else { return false };
    for target in TARGETS {
        let corpus = fuzz_dir().join("corpus").join(target);
        let (ok, stderr) = run_binary(
            &bins.join(target),
            &[s(&corpus), "-runs=0".into(), "-timeout=10".into()],
        );
        if !ok {
            report_failure(target, &stderr);
            return false;
        }
        let st = parse_stats(&stderr);
        println!("{target}: corpus replayed (coverage {})", st.coverage);
    }
    true
}
