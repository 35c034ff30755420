//! Checks of the scenario files that need no server and no subject: every file follows the
//! runner's typed schema, mistakes in a file are errors that name the file and the step,
//! and `lifecycle/every-timing-knob` sets exactly the knobs the core knows. The runner's
//! marks are unit-tested here too (`runner/mark.rs`).

#[path = "runner/mark.rs"]
mod mark;

#[path = "runner/scenario.rs"]
#[allow(dead_code)]
mod scenario;

use std::path::{Path, PathBuf};

use apolloconf_testserver::RecordedRequest;
use mark::Mark;
use scenario::{Step, load_all, load_file, parse_step};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

#[test]
fn every_scenario_file_parses() {
    let all = load_all(&root()).unwrap_or_else(|e| panic!("{e}"));
    assert!(all.len() > 100, "only {} scenarios", all.len());
}

/// A new knob in the core must be added to the scenario (and so to every host) too.
#[test]
fn every_timing_knob_sets_exactly_the_core_knobs() {
    let path = root().join("lifecycle/every-timing-knob.json");
    let text = std::fs::read_to_string(&path).expect("read");
    let v: Value = serde_json::from_str(&text).expect("json");
    let timing = v["client"]["timing"]
        .as_object()
        .expect("client.timing is an object");
    let mut listed: Vec<&str> = timing.keys().map(String::as_str).collect();
    listed.sort_unstable();
    let mut core: Vec<&str> = apolloconf_core::Timing::NAMES.to_vec();
    core.sort_unstable();
    assert_eq!(
        listed,
        core,
        "{} must set exactly apolloconf_core::Timing::NAMES",
        path.display()
    );
    // Each value is one the core accepts for that knob.
    let mut t = apolloconf_core::Timing::default();
    for (name, value) in timing {
        let n = value
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {value} is not a whole number"));
        assert!(t.set(name, n), "{name}");
    }
}

fn step_err(v: Value) -> String {
    match parse_step(&v) {
        Ok(s) => panic!("{v} parsed as {s:?}"),
        Err(e) => e,
    }
}

#[test]
fn misspelt_ops_and_fields_are_errors() {
    let e = step_err(json!({"op": "publsh", "configurations": {}}));
    assert!(e.contains("publsh") && e.contains("unknown variant"), "{e}");
    let e = step_err(json!({"op": "publish", "configuration": {"a": "1"}}));
    assert!(
        e.contains("`configuration`") && e.contains("\"publish\""),
        "{e}"
    );
    let e = step_err(json!({"op": "start", "expecterror": "CONFIG"}));
    assert!(e.contains("expecterror"), "{e}");
    // A value of the wrong kind.
    let e = step_err(json!({"op": "start", "expectError": "CONFIGURATION"}));
    assert!(e.contains("CONFIGURATION"), "{e}");
    let e = step_err(json!({"op": "expect", "values": {"a": 1}}));
    assert!(e.contains("expect"), "{e}");
    // Conditions of expect, nested ones included.
    let e = step_err(json!({"op": "expect", "timeOutMs": 5}));
    assert!(e.contains("timeOutMs"), "{e}");
    let e = step_err(
        json!({"op": "expect", "requests": [{"endpoint": "configs"}, {"endpont": "configs"}]}),
    );
    assert!(e.contains("endpont"), "{e}");
    let e = step_err(json!({"op": "expect", "snapshot": {"application": {"staus": "loaded"}}}));
    assert!(e.contains("staus"), "{e}");
    let e = step_err(json!({"op": "expect", "snapshot": {"application": {"status": "ready"}}}));
    assert!(e.contains("ready"), "{e}");
    let e =
        step_err(json!({"op": "expect", "events": {"changes": [{"key": "a", "kind": "changed"}]}}));
    assert!(e.contains("changed"), "{e}");
    // Fault actions are checked by the test server's own types.
    let e = step_err(
        json!({"op": "fault", "endpoint": "configs", "action": {"type": "status", "cod": 503}}),
    );
    assert!(e.contains("cod"), "{e}");
    let e = step_err(json!({"op": "fault", "endpoint": "config", "action": {"type": "hang"}}));
    assert!(e.contains("config"), "{e}");
    // A field that does not apply to this op (the scope fields apply to admin steps only).
    let e = step_err(json!({"op": "wait_ms", "ms": 5, "on": 1}));
    assert!(e.contains("`on`"), "{e}");
    let e = step_err(json!({"op": "clear_events", "namespace": "a"}));
    assert!(e.contains("`namespace`"), "{e}");
    // What the types cannot say.
    let e = step_err(json!({"op": "publish"}));
    assert!(e.contains("configurations"), "{e}");
    let e = step_err(json!({"op": "expect", "namespace": "extra", "events": {"count": 0}}));
    assert!(e.contains("values"), "{e}");
    let e = step_err(json!({"op": "start", "errorContains": "x"}));
    assert!(e.contains("expectError"), "{e}");
}

#[test]
fn good_steps_parse_with_variables_unexpanded() {
    for v in [
        json!({"op": "access_key_enable", "key": "${k1}", "enabled": false}),
        json!({"op": "access_key_remove", "key": 3}),
        json!({"op": "fault", "on": 1, "endpoint": "configs",
               "action": {"type": "redirect", "code": 302, "location": "${url1}/configs/x"}}),
        json!({"op": "fault", "endpoint": "configs",
               "action": {"type": "oversized", "bytes": 17000000, "stall": true}}),
        json!({"op": "expect", "requests": {"on": 1, "method": "OPTIONS", "count": 0}}),
        json!({"op": "expect", "snapshot": {"a": {"releaseKey": null, "size": {"min": 1}}}}),
        json!({"op": "start", "options": {"timing": {"noSuchKnobMs": 1}}, "expectError": "CONFIG",
               "errorContains": "noSuchKnobMs"}),
        json!({"op": "clear_events"}),
    ] {
        parse_step(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
    }
    let Ok(Step::Expect(e)) = parse_step(&json!({"op": "expect", "timeoutMs": 1})) else {
        panic!("expect");
    };
    assert_eq!(e.timeout_ms, Some(1));
}

/// Errors name the file and the step.
#[test]
fn file_errors_name_the_file_and_the_step() {
    let dir = tempfile::tempdir().expect("tmp");
    let write = |name: &str, v: Value| {
        let p = dir.path().join(format!("{name}.json"));
        std::fs::write(&p, v.to_string()).expect("write");
        p
    };
    let ok = json!({"name": "x/ok", "description": "d", "steps": [{"op": "start"}]});
    let p = write("ok", ok.clone());
    assert!(load_file(&p, "x/ok").is_ok());
    // The name must match the path.
    let e = load_file(&p, "x/other").expect_err("name mismatch");
    assert!(e.contains("x/other"), "{e}");
    let mut bad = ok.clone();
    bad["steps"] = json!([{"op": "start"}, {"op": "wait_ms", "msec": 5}]);
    let p = write("step", bad);
    let e = load_file(&p, "x/ok").expect_err("bad step");
    assert!(
        e.contains("step.json") && e.contains("steps[1]") && e.contains("msec"),
        "{e}"
    );
    let mut bad = ok.clone();
    bad["server"] =
        json!({"setup": [{"op": "publish", "configurations": {"a": "1"}, "nmespace": "b"}]});
    let p = write("setup", bad);
    let e = load_file(&p, "x/ok").expect_err("bad setup step");
    assert!(
        e.contains("server.setup[0]") && e.contains("nmespace"),
        "{e}"
    );
    for (field, value) in [
        ("knownFailure", json!("x")),
        ("skip", json!({"browser": 1})),
        ("client", json!({"configservice": "http://x"})),
        ("server", json!({"hold": 5})),
    ] {
        let mut bad = ok.clone();
        bad[field] = value;
        let p = write("top", bad);
        assert!(load_file(&p, "x/ok").is_err(), "{field} accepted");
    }
}

/// A request of a mark's log at `time_ms`.
fn at(time_ms: u64, path: &str) -> RecordedRequest {
    RecordedRequest {
        method: "GET".into(),
        path: path.into(),
        headers: Vec::new(),
        time_ms,
        endpoint: "configs".into(),
    }
}

/// A request that arrived in the mark's own millisecond but before the mark is not
/// counted after it (counting by time alone did: a scenario expecting at most one
/// `/configs` after its mark saw the load that came just before it).
#[test]
fn requests_of_the_marks_own_millisecond_count_by_whether_they_were_seen() {
    let earlier = vec![at(99, "a"), at(100, "b")];
    let mark = Mark::new(100, [earlier.clone(), Vec::new()]);
    let mut log = earlier;
    log.extend([at(100, "c"), at(101, "d")]);
    let after: Vec<&str> = mark
        .requests_after(0, &log)
        .iter()
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(after, ["c", "d"]);
    // Another instance had nothing at the mark: all of its mark-millisecond requests
    // came after it; an instance the mark did not know counts the same way.
    let other = vec![at(100, "x"), at(99, "y")];
    for on in [1, 7] {
        let after: Vec<&str> = mark
            .requests_after(on, &other)
            .iter()
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(after, ["x"]);
    }
}
