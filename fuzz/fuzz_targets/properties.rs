//! The properties codec of cache files (docs/protocol.md#properties-codec): whatever loads
//! is stored and loads back to the same map, and the bytes as a cache file at start-up
//! never break the client.
#![no_main]

use apolloconf_core::{Input, properties};
use apolloconf_fuzz::Driver;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(map) = properties::load_latin1(bytes) {
        let stored = properties::store_ascii(map.iter(), None, "Thu Jan 01 00:00:00 UTC 2026");
        match properties::load_latin1(stored.as_bytes()) {
            Ok(again) => assert_eq!(again, map, "store then load changed the values"),
            Err(e) => panic!("what the codec stored does not load: {e}"),
        }
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = properties::load(text);
    }
    let mut d = Driver::direct(&["application"]);
    let _ = d.client.handle_input(Input::CacheFile {
        namespace: "application",
        contents: bytes,
    });
    d.drain();
});
