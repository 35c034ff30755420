//! Bounded cost (issue 11): inputs that are huge or deeply nested end in typed errors,
//! never in a crash.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use apolloconf::bind::{self, MAX_DEPTH};
use common::{builder, dead_port, fast_timing, server};

/// A key of `n` levels: `a.a.a...`.
fn deep_key(n: usize) -> String {
    vec!["a"; n].join(".")
}

#[test]
fn binding_a_key_of_50000_levels_is_an_error_not_a_stack_overflow() {
    let key = deep_key(50_000);
    let r: Result<BTreeMap<String, serde_json::Value>, _> =
        bind::from_properties([(key.as_str(), "x"), ("b", "1")]);
    let e = r.expect_err("too deep");
    let text = e.to_string();
    assert!(text.contains("50000 levels"), "{text}");
    assert!(
        text.len() < 300,
        "the message does not repeat the key: {text}"
    );
    // Indexes count as levels too.
    let key = format!("a{}", "[0]".repeat(50_000));
    let r: Result<serde_json::Value, _> = bind::from_properties([(key.as_str(), "x")]);
    assert!(r.is_err());
    // Even a type that ignores the key says so (the tree is never built that deep).
    #[derive(serde::Deserialize, Debug)]
    struct Small {
        #[allow(dead_code)]
        b: u8,
    }
    let key = deep_key(50_000);
    let r: Result<Small, _> = bind::from_properties([(key.as_str(), "x"), ("b", "1")]);
    assert!(r.is_err());
}

#[test]
fn keys_up_to_the_limit_still_bind() {
    // On a thread with a small (1 MiB) stack, in a debug build: the limit leaves room.
    let h = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(|| {
            let key = deep_key(MAX_DEPTH);
            let v: serde_json::Value = bind::from_properties([(key.as_str(), "x")]).unwrap();
            let mut at = &v;
            for _ in 0..MAX_DEPTH {
                at = &at["a"];
            }
            assert_eq!(at, "x");
        })
        .unwrap();
    h.join().expect("no overflow at the limit");
}

#[test]
fn a_start_up_timeout_of_duration_max_waits_without_overflow() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path())
        .startup_timeout(Duration::MAX)
        .build()
        .expect("starts");
    assert_eq!(c.get("timeout").as_deref(), Some("100"));
    c.close();

    // Nothing answers: the first round of attempts still ends the wait.
    let url = format!("http://127.0.0.1:{}", dead_port());
    let c = builder(&url, dir.path())
        .cache(false)
        .startup_timeout(Duration::MAX)
        .build()
        .expect("starts");
    assert_eq!(c.get("timeout"), None);
}

#[test]
fn request_timeouts_of_duration_max_do_not_overflow() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let mut t = fast_timing();
    t.connect_timeout = Duration::MAX;
    t.read_timeout = Duration::MAX;
    let c = builder(&s.url(), dir.path())
        .timing(t)
        .startup_timeout(Duration::from_secs(10))
        .build()
        .expect("starts");
    assert_eq!(c.get("timeout").as_deref(), Some("100"));
    assert!(c.metrics().configs.ok >= 1);
}
