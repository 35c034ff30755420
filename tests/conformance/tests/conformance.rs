//! The conformance runner: plays every scenario of `tests/scenarios/` against the subject
//! named by `APOLLOCONF_SUBJECT` (default `native`).
//!
//! Environment:
//! - `APOLLOCONF_SUBJECT`: `native` (the `native_subject` binary of this crate) or any other
//!   name; for other names `APOLLOCONF_SUBJECT_CMD` is the command line that starts one
//!   subject process (split on whitespace), e.g. `node pkg/test/conformance-subject.mjs node`.
//! - `APOLLOCONF_SCENARIO`: run only scenarios whose name contains this text (a text that
//!   matches no scenario fails the run).
//! - `APOLLOCONF_JOBS`: scenarios run at once (default 4).
//! - `APOLLOCONF_SUITE_TIMEOUT_S`: the whole suite fails after this (default 600).
//!
//! Every scenario file is checked against the typed schema (`runner/scenario.rs`) before
//! anything runs. A scenario marked `known_failure` for the subject that passes fails the
//! run: the mark must go.

mod runner;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use runner::play::play;
use runner::scenario::{ScenarioFile, load_all};
use runner::subject::SubjectCmd;

enum Verdict {
    Ok(Vec<String>),
    Fail(String),
    Skip(String),
    KnownFail(String, String),
}

fn main() {
    let subject = std::env::var("APOLLOCONF_SUBJECT").unwrap_or_else(|_| "native".into());
    let cmd = if subject == "native" {
        SubjectCmd {
            program: env!("CARGO_BIN_EXE_native_subject").to_string(),
            args: Vec::new(),
        }
    } else {
        let line = std::env::var("APOLLOCONF_SUBJECT_CMD").unwrap_or_default();
        let mut parts = line.split_whitespace().map(str::to_string);
        match parts.next() {
            Some(program) => SubjectCmd {
                program,
                args: parts.collect(),
            },
            None => {
                eprintln!(
                    "APOLLOCONF_SUBJECT={subject} needs APOLLOCONF_SUBJECT_CMD (the command that starts one subject)"
                );
                std::process::exit(2);
            }
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let all = match load_all(&root) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot load scenarios: {e}");
            std::process::exit(2);
        }
    };
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let listed = std::fs::read_to_string(&readme).unwrap_or_default();
    let unlisted: Vec<&str> = all
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| !listed.contains(&format!("`{n}`")))
        .collect();
    if !unlisted.is_empty() {
        eprintln!(
            "{} does not list these scenarios: {}",
            readme.display(),
            unlisted.join(" ")
        );
        std::process::exit(2);
    }
    let filter = std::env::var("APOLLOCONF_SCENARIO").unwrap_or_default();
    let chosen: Vec<ScenarioFile> = all
        .into_iter()
        .filter(|s| s.name.contains(filter.as_str()))
        .collect();
    if chosen.is_empty() {
        println!("FAIL suite: APOLLOCONF_SCENARIO={filter:?} matches no scenario");
        std::process::exit(1);
    }
    let jobs: usize = std::env::var("APOLLOCONF_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
        .max(1);
    let budget = Duration::from_secs(
        std::env::var("APOLLOCONF_SUITE_TIMEOUT_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    println!(
        "conformance: subject {subject}, {} scenarios, {jobs} at a time",
        chosen.len()
    );
    let started = Instant::now();
    let chosen = Arc::new(chosen);
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<(usize, Verdict, u128)>();
    for _ in 0..jobs {
        let chosen = chosen.clone();
        let next = next.clone();
        let tx = tx.clone();
        let cmd = cmd.clone();
        let subject = subject.clone();
        std::thread::spawn(move || {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(sc) = chosen.get(i) else { break };
                let t0 = Instant::now();
                let verdict = if let Some(why) = sc.skip_for(&subject) {
                    Verdict::Skip(why.to_string())
                } else {
                    let r =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| play(sc, &cmd)))
                            .unwrap_or_else(|p| {
                                let msg = p
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
                                    .unwrap_or_default();
                                Err(format!("runner panicked: {msg}"))
                            });
                    match (r, sc.known_failure_for(&subject)) {
                        (Ok(notes), None) => Verdict::Ok(notes),
                        (Ok(_), Some(why)) => Verdict::Fail(format!(
                            "marked known_failure for {subject} ({why}) but passes: remove the mark"
                        )),
                        (Err(e), None) => Verdict::Fail(e),
                        (Err(e), Some(why)) => Verdict::KnownFail(why.to_string(), e),
                    }
                };
                if tx.send((i, verdict, t0.elapsed().as_millis())).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let (mut passed, mut failed, mut skipped, mut known) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    let mut done = 0;
    while done < chosen.len() {
        let left = budget.saturating_sub(started.elapsed());
        let (i, verdict, ms) = match rx.recv_timeout(left) {
            Ok(x) => x,
            Err(_) => {
                println!(
                    "FAIL suite: the global timeout of {} s passed with {} scenarios unfinished",
                    budget.as_secs(),
                    chosen.len() - done
                );
                std::process::exit(1);
            }
        };
        done += 1;
        let name = &chosen[i].name;
        match verdict {
            Verdict::Ok(notes) => {
                passed += 1;
                println!("ok   {name} ({ms} ms)");
                for n in notes {
                    println!("       {n}");
                }
            }
            Verdict::Skip(why) => {
                skipped += 1;
                println!("skip {name} ({ms} ms): {why}");
            }
            Verdict::KnownFail(why, e) => {
                known += 1;
                println!("known-failure {name} ({ms} ms): {why}");
                let first = e.lines().next().unwrap_or("");
                println!("       {first}");
            }
            Verdict::Fail(e) => {
                failed += 1;
                println!("FAIL {name} ({ms} ms)");
                for line in e.lines() {
                    println!("       {line}");
                }
                failures.push(name.clone());
            }
        }
    }
    let known_note = if known > 0 {
        format!(", {known} known failures")
    } else {
        String::new()
    };
    println!(
        "{passed} passed, {failed} failed, {skipped} skipped{known_note} ({:.1} s, subject {subject})",
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        println!("failed: {}", failures.join(" "));
        std::process::exit(1);
    }
}
