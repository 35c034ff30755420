//! A `/configs` answer: the fuzzer's bytes as the body of the first answer of a properties
//! namespace and of a YAML namespace (status 200), then of a JSON namespace's refresh.
#![no_main]

use apolloconf_fuzz::{Driver, is_configs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let mut d = Driver::direct(&["application", "app.yaml", "data.json"]);
    for _ in 0..3 {
        d.answer(Some(is_configs), Ok((200, body)));
    }
    // The long poll, then five minutes: the periodic refresh asks again.
    d.advance(2_000);
    d.advance(300_000);
    while d.answer(Some(is_configs), Ok((200, body))) {}
});
