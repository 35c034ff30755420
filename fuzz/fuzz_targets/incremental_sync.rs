//! An incremental-sync answer (docs/protocol.md#incremental-sync): after a full release,
//! a notification makes the client fetch again with its release key, and the fuzzer's
//! bytes are the answer (the seeds carry `configSyncType` and `configurationChanges`).
#![no_main]

use apolloconf_fuzz::{Driver, configs_body, is_configs, is_poll};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let mut d = Driver::direct(&["application"]);
    let base = configs_body("application", "20240101000000-0000000000000001", "a", "1");
    d.answer(Some(is_configs), Ok((200, &base)));
    d.advance(2_000);
    let note = br#"[{"namespaceName":"application","notificationId":5}]"#;
    d.answer(Some(is_poll), Ok((200, note)));
    d.answer(Some(is_configs), Ok((200, body)));
    // Whatever happened, a later full answer is taken.
    d.advance(60_000);
    let full = configs_body("application", "20240101000000-0000000000000009", "z", "9");
    while d.answer(Some(is_configs), Ok((200, &full))) {}
});
