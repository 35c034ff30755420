//! A `/configs` answer: the fuzzer's bytes as the body of the first answer of a properties
//! namespace and of a YAML namespace (status 200), then of a JSON namespace's refresh.
//!
//! The configurations the core reads straight from the body's text must be the ones a
//! parse into a JSON document gives (docs/protocol.md#json-bodies: scalars as their text,
//! `null` skipped, a key given twice keeps its last value).
#![no_main]

use std::collections::BTreeMap;

use apolloconf_fuzz::{Driver, is_configs};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The configurations of a full answer, read through a parsed document.
fn reference(body: &[u8]) -> Option<BTreeMap<String, String>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    text(obj.get("releaseKey")?)?;
    let sync = obj
        .get("configSyncType")
        .and_then(Value::as_str)
        .map(str::trim);
    if !matches!(sync, None | Some("")) && !sync?.eq_ignore_ascii_case("FullSync") {
        return None;
    }
    let mut out = BTreeMap::new();
    for (k, v) in obj.get("configurations")?.as_object()? {
        if !v.is_null() {
            out.insert(k.clone(), text(v)?);
        }
    }
    Some(out)
}

fuzz_target!(|body: &[u8]| {
    let mut one = Driver::direct(&["application"]);
    one.answer(Some(is_configs), Ok((200, body)));
    let held = one
        .client
        .namespace("application")
        .map(|ns| ns.configurations().to_map())
        .unwrap_or_default();
    match reference(body) {
        Some(expected) => assert_eq!(held, expected, "configurations differ from a parse"),
        None => assert!(
            held.is_empty(),
            "values from a body that is not a full answer"
        ),
    }

    let mut d = Driver::direct(&["application", "app.yaml", "data.json"]);
    for _ in 0..3 {
        d.answer(Some(is_configs), Ok((200, body)));
    }
    // The long poll, then five minutes: the periodic refresh asks again.
    d.advance(2_000);
    d.advance(300_000);
    while d.answer(Some(is_configs), Ok((200, body))) {}
});
