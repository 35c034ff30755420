//! Request counts by outcome (our answer to the Java client's monitor).

use alloc::string::String;

use crate::event::ClientError;
use crate::io::{HttpResponse, RequestKind, TransportError};

/// Request counts by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counter {
    /// Requests sent.
    pub sent: u64,
    /// 200 answers.
    pub ok: u64,
    /// 304 answers.
    pub not_modified: u64,
    /// 404 answers.
    pub not_found: u64,
    /// 401 answers.
    pub unauthorized: u64,
    /// Other statuses.
    pub other_status: u64,
    /// Transport failures (including the core's own safety-net timeouts).
    pub transport_error: u64,
    /// Unparseable bodies.
    pub parse_error: u64,
}

impl Counter {
    /// Count the outcome of one answer.
    pub(crate) fn answered(&mut self, result: &Result<HttpResponse<'_>, TransportError>) {
        match result {
            Err(_) => self.transport_error += 1,
            Ok(r) => match r.status {
                200 => self.ok += 1,
                304 => self.not_modified += 1,
                404 => self.not_found += 1,
                401 => self.unauthorized += 1,
                _ => self.other_status += 1,
            },
        }
    }
}

/// What the client has done so far (our answer to the Java client monitor).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Discovery requests.
    pub discovery: Counter,
    /// `/configs` requests.
    pub configs: Counter,
    /// Long polls.
    pub notifications: Counter,
    /// The last failure.
    pub last_error: Option<ClientError>,
    /// The config service the long poll is pinned to.
    pub long_poll_service: Option<String>,
}

impl Metrics {
    /// The counter of one kind of request.
    pub(crate) fn counter(&mut self, kind: &RequestKind) -> &mut Counter {
        match kind {
            RequestKind::Discovery => &mut self.discovery,
            RequestKind::Configs { .. } => &mut self.configs,
            RequestKind::Notifications => &mut self.notifications,
        }
    }
}
