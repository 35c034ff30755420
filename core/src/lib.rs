//! apolloconf-core: the sans-IO protocol engine of an Apollo configuration client.
#![no_std]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core, clippy::exhaustive_enums)]

extern crate alloc;

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
#[cfg(feature = "yaml")]
pub mod yaml;

pub use client::{Client, Counter, Metrics, Namespace, Status};
pub use config::{Config, ConfigBuilder, ConfigError, Servers, Timing};
pub use event::{diff, CacheWrite, Change, ChangeEvent, ChangeKind, ClientError, ErrorCause, Event, Interest, Source};
pub use io::{HttpRequest, HttpResponse, Input, InputError, Output, RequestId, RequestKind, TransportError, TransportErrorKind};
pub use namespace::Format;
pub use time::Instant;
