//! YAML flattening (docs/protocol.md#yaml): never a panic, and the output is bounded by
//! the input (16 bytes per input byte plus 1 MiB).
#![no_main]

use apolloconf_core::yaml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(map) = yaml::flatten(text) {
        let size: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(
            size <= 16 * text.len() + (1 << 20),
            "{size} bytes out of {} in",
            text.len()
        );
    }
});
