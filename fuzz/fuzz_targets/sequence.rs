//! The core driven by an arbitrary sequence of inputs: time passing, answers of every kind
//! (valid, error statuses, transport failures, raw bytes) to whichever request is pending,
//! watching more namespaces, refreshing, cache files, closing. The driver checks the
//! core's promises after every step (see the crate docs).
#![no_main]

use apolloconf_core::{Input, RequestKind, TransportErrorKind};
use apolloconf_fuzz::{Driver, configs_body};
use libfuzzer_sys::fuzz_target;

const EXTRA: [&str; 5] = ["extra", "extra.yaml", "FX.apollo", "application", "a.json"];
const STATUS: [u16; 8] = [304, 404, 500, 503, 401, 400, 302, 200];
const TRANSPORT: [TransportErrorKind; 5] = [
    TransportErrorKind::Connect,
    TransportErrorKind::Timeout,
    TransportErrorKind::Io,
    TransportErrorKind::TooLarge,
    TransportErrorKind::Tls,
];

/// Reads the program.
struct Program<'a>(&'a [u8]);

impl Program<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fuzz_target!(|data: &[u8]| {
    let mut p = Program(data);
    let Some(setup) = p.byte() else { return };
    let namespaces: &[&str] = if setup & 2 == 0 {
        &["application"]
    } else {
        &["application", "app.yaml"]
    };
    let mut d = if setup & 1 == 0 {
        Driver::direct(namespaces)
    } else {
        Driver::meta(namespaces)
    };
    let mut release = 0u32;
    let mut note_id = 0i64;
    let mut steps = 0;
    while let Some(op) = p.byte() {
        steps += 1;
        if steps > 200 {
            break;
        }
        match op % 9 {
            0 => d.advance(u64::from(p.byte().unwrap_or(0)) * 97),
            1 => {
                // A valid answer to the oldest request, whatever it is.
                let Some(r) = d.pending.first().cloned() else {
                    continue;
                };
                release += 1;
                let body = match &r.kind {
                    RequestKind::Configs { namespace } => configs_body(
                        namespace,
                        &format!("20240101{:06}-{release:016x}", release % 1_000_000),
                        "k",
                        &release.to_string(),
                    ),
                    RequestKind::Notifications => {
                        note_id += i64::from(p.byte().unwrap_or(1));
                        let ns = namespaces[usize::from(op / 9) % namespaces.len()];
                        format!(r#"[{{"namespaceName":"{ns}","notificationId":{note_id}}}]"#)
                            .into_bytes()
                    }
                    _ => {
                        br#"[{"homepageUrl":"http://cs0:8080/"},{"homepageUrl":"http://cs1:8080"}]"#
                            .to_vec()
                    }
                };
                d.answer(None, Ok((200, &body)));
            }
            2 => {
                let status = STATUS[usize::from(op / 9) % STATUS.len()];
                d.answer(None, Ok((status, b"")));
            }
            3 => {
                let kind = TRANSPORT[usize::from(op / 9) % TRANSPORT.len()];
                d.answer(None, Err(kind));
            }
            4 => {
                let n = usize::from(p.byte().unwrap_or(0));
                let raw = p.bytes(n).to_vec();
                d.answer(None, Ok((200, &raw)));
            }
            5 => {
                let ns = EXTRA[usize::from(op / 9) % EXTRA.len()];
                let _ = d.client.watch(ns);
                d.drain();
            }
            6 => {
                let now = apolloconf_core::Instant::from_millis(d.now);
                let max_age =
                    core::time::Duration::from_millis(u64::from(p.byte().unwrap_or(0)) * 100);
                d.client.refresh(now, max_age);
                d.drain();
            }
            7 => {
                let n = usize::from(p.byte().unwrap_or(0));
                let raw = p.bytes(n).to_vec();
                let _ = d.client.handle_input(Input::CacheFile {
                    namespace: "application",
                    contents: &raw,
                });
                d.drain();
            }
            _ => {
                if op / 9 == 27 {
                    d.client.close();
                    d.drain();
                    assert!(d.client.is_closed());
                } else {
                    // Answer a random pending request late (out of order).
                    let i = usize::from(op / 9) % d.pending.len().max(1);
                    if i < d.pending.len() {
                        let r = d.pending.remove(i);
                        d.pending.insert(0, r);
                    }
                }
            }
        }
    }
});
