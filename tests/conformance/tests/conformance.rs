//! The conformance runner: plays every scenario of `tests/scenarios/` against the subject
//! named by `APOLLOCONF_SUBJECT` (default `native`).
//!
//! Environment:
//! - `APOLLOCONF_SUBJECT`: `native` (the `native_subject` binary of this crate) or any other
//!   name; for other names `APOLLOCONF_SUBJECT_CMD` is the command line that starts one
//!   subject process (split on whitespace), e.g. `node pkg/test/conformance-subject.mjs node`.
//! - `APOLLOCONF_SCENARIO`: run only scenarios whose name contains this text.
//! - `APOLLOCONF_JOBS`: scenarios run at once (default 4).
//! - `APOLLOCONF_SUITE_TIMEOUT_S`: the whole suite fails after this (default 600).

mod runner;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use runner::play::play;
use runner::subject::SubjectCmd;
use serde_json::Value;

struct Scenario {
    name: String,
    json: Value,
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    Ok(())
}

fn load(root: &Path) -> Result<Vec<Scenario>, String> {
    let mut files = Vec::new();
    collect(root, &mut files).map_err(|e| format!("{}: {e}", root.display()))?;
    files.sort();
    let mut list = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        let rel = f
            .strip_prefix(root)
            .unwrap_or(&f)
            .with_extension("")
            .display()
            .to_string();
        let name = json
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{}: no \"name\"", f.display()))?;
        if name != rel {
            return Err(format!(
                "{}: \"name\" is {name:?} but the file says {rel:?}",
                f.display()
            ));
        }
        let allowed = [
            "name",
            "description",
            "server",
            "client",
            "steps",
            "skip",
            "known_failure",
        ];
        if let Some(k) = json
            .as_object()
            .and_then(|o| o.keys().find(|k| !allowed.contains(&k.as_str())))
        {
            return Err(format!("{}: unknown field {k:?}", f.display()));
        }
        let server_fields = ["instances", "holdMs", "switches", "persist", "setup"];
        if let Some(k) = json
            .get("server")
            .and_then(Value::as_object)
            .and_then(|o| o.keys().find(|k| !server_fields.contains(&k.as_str())))
        {
            return Err(format!("{}: unknown field server.{k}", f.display()));
        }
        if json.get("description").and_then(Value::as_str).is_none() {
            return Err(format!("{}: no \"description\"", f.display()));
        }
        list.push(Scenario {
            name: name.to_string(),
            json,
        });
    }
    Ok(list)
}

/// A per-subject note in the data: `"skip": {"browser": "why"}`; `known_failure` may also
/// be a plain string (every subject).
fn note_for(v: &Value, key: &str, subject: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get(subject).and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

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
    let all = match load(&root) {
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
    let chosen: Vec<Scenario> = all
        .into_iter()
        .filter(|s| s.name.contains(filter.as_str()))
        .collect();
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
                let verdict = if let Some(why) = note_for(&sc.json, "skip", &subject) {
                    Verdict::Skip(why)
                } else {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        play(&sc.json, &cmd)
                    }))
                    .unwrap_or_else(|p| {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
                            .unwrap_or_default();
                        Err(format!("runner panicked: {msg}"))
                    });
                    match (r, note_for(&sc.json, "known_failure", &subject)) {
                        (Ok(notes), None) => Verdict::Ok(notes),
                        (Ok(mut notes), Some(why)) => {
                            notes.push(format!("marked known_failure ({why}) but passes now"));
                            Verdict::Ok(notes)
                        }
                        (Err(e), None) => Verdict::Fail(e),
                        (Err(e), Some(why)) => Verdict::KnownFail(why, e),
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
