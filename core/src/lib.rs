//! apolloconf-core: the sans-IO protocol engine of an Apollo configuration client.
//!
//! The whole client protocol of the Apollo configuration center (meta-server discovery
//! and failover, `/configs` with `releaseKey` and 304, one `/notifications/v2` long poll
//! with `messages`, the fallback refresh, retries with back-off and rate limits,
//! access-key signing, gray-release `label`/`ip`, namespace formats, merged views, change
//! events and the Java cache-file codec) as a `#![no_std]` state machine. It does no IO,
//! reads no clock and draws no randomness of its own: a host (blocking threads, a
//! JavaScript event loop, a simulation) feeds it inputs and carries out its outputs.
//!
//! # The run loop
//!
//! Everything enters through [`Client::handle_input`] (answers, time, cache files) and
//! leaves through [`Client::poll_output`]. After every input or command the host drains
//! `poll_output` until it returns [`Output::Timeout`]:
//!
//! ```no_run
//! # use apolloconf_core::*;
//! # fn now() -> Instant { Instant::ZERO }
//! # fn send(_: HttpRequest) {}
//! # fn wait_for_answer_or(_: Option<Instant>) -> Option<(RequestId, Result<(u16, Vec<u8>), TransportError>)> { None }
//! let config = Config::builder("SampleApp").meta_server("http://127.0.0.1:8080").build();
//! let mut client = Client::new(config, now()).expect("valid configuration");
//! loop {
//!     let deadline = loop {
//!         match client.poll_output() {
//!             Output::Request(request) => send(request), // GET request.url with its headers and timeouts
//!             Output::Event(event) => println!("{event:?}"), // values changed, persist the cache, ...
//!             Output::Timeout(deadline) => break deadline, // nothing else to do before then
//!             _ => {}
//!         }
//!     };
//!     if client.is_closed() {
//!         break;
//!     }
//!     match wait_for_answer_or(deadline) {
//!         Some((id, Ok((status, body)))) => {
//!             let result = Ok(HttpResponse { status, body: &body });
//!             client.handle_input(Input::Response { id, now: now(), result }).expect("an id we issued");
//!         }
//!         Some((id, Err(e))) => {
//!             client.handle_input(Input::Response { id, now: now(), result: Err(e) }).expect("an id we issued");
//!         }
//!         None => client.handle_input(Input::Timeout(now())).expect("timeouts are always fine"),
//!     }
//! }
//! ```
//!
//! Transport errors, HTTP statuses and malformed bodies are inputs: the core reports them
//! as [`Event::Error`] and schedules its own retries. [`Client::handle_input`] fails only
//! for misuse (an id it never issued). Reads ([`Client::get`], [`Client::namespace`]) are
//! plain lookups in memory.
//!
//! # A whole lifecycle
//!
//! Discovery, the initial load, the long poll, a publish and the change event, with the
//! exact requests the core emits:
//!
//! ```
//! use apolloconf_core::*;
//!
//! let mut timing = Timing::default();
//! timing.long_poll_initial_delay = core::time::Duration::ZERO;
//! let config = Config::builder("SampleApp")
//!     .meta_server("http://meta:8080")
//!     .namespace("application")
//!     .timing(timing)
//!     .build();
//! let mut client = Client::new(config, Instant::ZERO).unwrap();
//!
//! // Drain until the deadline; collect requests and events.
//! fn drain(c: &mut Client) -> (Vec<HttpRequest>, Vec<Event>) {
//!     let (mut reqs, mut events) = (vec![], vec![]);
//!     loop {
//!         match c.poll_output() {
//!             Output::Request(r) => reqs.push(r),
//!             Output::Event(e) => events.push(e),
//!             Output::Timeout(_) => return (reqs, events),
//!             _ => {}
//!         }
//!     }
//! }
//! fn answer(c: &mut Client, r: &HttpRequest, ms: u64, status: u16, body: &str) {
//!     let result = Ok(HttpResponse { status, body: body.as_bytes() });
//!     c.handle_input(Input::Response { id: r.id, now: Instant::from_millis(ms), result }).unwrap();
//! }
//!
//! // 1. Discovery through the meta server.
//! let (reqs, _) = drain(&mut client);
//! assert_eq!(reqs.len(), 1);
//! assert_eq!(reqs[0].url, "http://meta:8080/services/config?appId=SampleApp");
//! answer(&mut client, &reqs[0], 5, 200,
//!     r#"[{"appName":"apollo-configservice","instanceId":"cs","homepageUrl":"http://cs:8080/"}]"#);
//!
//! // 2. The initial load and the long poll (ids start at -1), in flight together.
//! let (reqs, events) = drain(&mut client);
//! assert!(matches!(&events[..], [Event::ServicesChanged { .. }]));
//! assert_eq!(reqs[0].url, "http://cs:8080/configs/SampleApp/default/application");
//! assert_eq!(reqs[1].url, "http://cs:8080/notifications/v2?cluster=default&appId=SampleApp\
//!     &notifications=%5B%7B%22namespaceName%22%3A%22application%22%2C%22notificationId%22%3A-1%7D%5D");
//! assert_eq!(reqs[1].timeout, core::time::Duration::from_secs(90));
//! answer(&mut client, &reqs[0], 10, 200,
//!     r#"{"appId":"SampleApp","cluster":"default","namespaceName":"application","configurations":{"timeout":"100"},"releaseKey":"20261121101010-aaaaaaaaaaaaaaaa"}"#);
//! let (_, events) = drain(&mut client);
//! assert!(events.contains(&Event::Ready));
//! assert_eq!(client.get("timeout"), Some("100"));
//!
//! // 3. A publish: the held poll answers with one notification ...
//! answer(&mut client, &reqs[1], 20_000, 200,
//!     r#"[{"namespaceName":"application","notificationId":7,"messages":{"details":{"SampleApp+default+application":7}}}]"#);
//! let (reqs, _) = drain(&mut client);
//! // ... the namespace is fetched from the notifying server with its release key and the
//! // messages (every reserved character escaped), and the next poll asks for news after 7.
//! assert_eq!(reqs[0].url, "http://cs:8080/configs/SampleApp/default/application\
//!     ?messages=%7B%22details%22%3A%7B%22SampleApp%2Bdefault%2Bapplication%22%3A7%7D%7D\
//!     &releaseKey=20261121101010-aaaaaaaaaaaaaaaa");
//! assert!(reqs[1].url.ends_with("%22notificationId%22%3A7%7D%5D"));
//! answer(&mut client, &reqs[0], 20_010, 200,
//!     r#"{"appId":"SampleApp","cluster":"default","namespaceName":"application","configurations":{"timeout":"200"},"releaseKey":"20261121101530-bbbbbbbbbbbbbbbb"}"#);
//!
//! // 4. The change event, the cache file to write, the new value.
//! let (_, events) = drain(&mut client);
//! let change = events.iter().find_map(|e| match e { Event::Changed(c) => Some(c), _ => None }).unwrap();
//! assert_eq!(change.changes, [Change {
//!     key: "timeout".into(), old: Some("100".into()), new: Some("200".into()), kind: ChangeKind::Modified,
//! }]);
//! assert!(events.iter().any(|e| matches!(e, Event::PersistCache(w) if w.file_name == "SampleApp+default+application.properties")));
//! assert_eq!(client.get("timeout"), Some("200"));
//! assert_eq!(client.namespace("application").unwrap().notification_id(), 7);
//!
//! // 5. Close: nothing is left but the final event.
//! client.close();
//! assert_eq!(client.poll_output(), Output::Event(Event::Closed));
//! assert_eq!(client.poll_output(), Output::Timeout(None));
//! ```
//!
//! # Features
//!
//! - `yaml` (default): YAML namespaces are also flattened to dotted keys with the Java
//!   client's rules ([`yaml::flatten`]). It uses a `std` YAML parser, so a build for a
//!   target without `std` turns it off (`default-features = false`); every target with
//!   `std`, `wasm32-unknown-unknown` included, keeps it.
#![no_std]
#![warn(
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core,
    clippy::exhaustive_enums
)]

extern crate alloc;

pub mod cache;
mod client;
mod config;
mod event;
mod io;
pub mod namespace;
pub mod properties;
mod protocol;
pub mod sign;
mod time;
pub mod url;
mod values;
pub mod view;
#[cfg(feature = "yaml")]
pub mod yaml;

pub use client::{Client, Counter, Metrics, Namespace, Status};
pub use config::{
    Config, ConfigBuilder, ConfigError, Servers, Timing, YamlFlattener, effective_cluster,
};
pub use event::{
    CacheWrite, Change, ChangeEvent, ChangeKind, ClientError, ErrorCause, Event, Interest, Source,
    diff,
};
pub use io::{
    HttpRequest, HttpResponse, Input, InputError, Output, RequestId, RequestKind, TransportError,
    TransportErrorKind,
};
pub use namespace::Format;
pub use time::Instant;
pub use values::{Iter, Values, ValuesBuilder, ValuesError};
