//! A `/notifications/v2` answer: the fuzzer's bytes as the body of a 200 to the long poll
//! of a client with several namespaces; every fetch that follows gets a valid answer.
#![no_main]

use apolloconf_fuzz::{Driver, configs_body, is_configs, is_poll};
use libfuzzer_sys::fuzz_target;

const NAMESPACES: [&str; 3] = ["application", "FX.apollo", "app.yaml"];

fuzz_target!(|body: &[u8]| {
    let mut d = Driver::direct(&NAMESPACES);
    for (i, ns) in NAMESPACES.iter().enumerate() {
        let b = configs_body(ns, &format!("20240101000000-000000000000000{i}"), "k", "v");
        d.answer(Some(is_configs), Ok((200, &b)));
    }
    d.advance(2_000);
    d.answer(Some(is_poll), Ok((200, body)));
    for round in 0..4 {
        d.advance(1_000);
        while let Some(r) = d.pending.iter().find(|r| is_configs(&r.kind)).cloned() {
            let ns = match &r.kind {
                apolloconf_core::RequestKind::Configs { namespace } => namespace.clone(),
                _ => String::new(),
            };
            let b = configs_body(
                &ns,
                &format!("20240101000001-00000000000001{round}0"),
                "k",
                "w",
            );
            d.answer(Some(is_configs), Ok((200, &b)));
        }
        // The next poll answers the same bytes once more.
        if round == 0 {
            d.answer(Some(is_poll), Ok((200, body)));
        }
    }
});
