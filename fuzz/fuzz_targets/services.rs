//! A `/services/config` answer: the fuzzer's bytes as the meta server's list.
#![no_main]

use apolloconf_fuzz::{Driver, is_configs, is_discovery};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let mut d = Driver::meta(&["application"]);
    d.answer(Some(is_discovery), Ok((200, body)));
    // Whatever the list was, the fetches it leads to fail and the client moves on.
    for _ in 0..3 {
        d.advance(1_000);
        while d.answer(Some(is_configs), Ok((503, b"{}"))) {}
        d.answer(Some(is_discovery), Ok((200, body)));
    }
    let services = d.client.services();
    assert!(services.len() <= 1_000, "{} services kept", services.len());
    assert!(services.iter().all(|s| s.ends_with('/')));
});
