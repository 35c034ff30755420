//! What goes in and out of the state machine.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use thiserror::Error;

use crate::event::Event;
use crate::time::Instant;

/// Identifies one request the core asked the host to make.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The number behind the id (unique per client).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a request is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestKind {
    /// `GET {meta}/services/config`.
    Discovery,
    /// `GET /configs/...` of one namespace.
    Configs {
        /// The namespace as the client names it.
        namespace: String,
    },
    /// `GET /notifications/v2` (the long poll).
    Notifications,
}

impl RequestKind {
    /// `discovery`, `configs` or `notifications`: the spelling every host shows.
    pub fn as_str(&self) -> &'static str {
        match self {
            RequestKind::Discovery => "discovery",
            RequestKind::Configs { .. } => "configs",
            RequestKind::Notifications => "notifications",
        }
    }
}

/// An HTTP GET the host must perform and answer with [`Input::Response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Answer with this id.
    pub id: RequestId,
    /// What it is for.
    pub kind: RequestKind,
    /// The absolute URL, already escaped: send it byte for byte.
    pub url: String,
    /// Headers to send (the access-key `Authorization` and `Timestamp`, when signing).
    pub headers: Vec<(String, String)>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for the whole answer once connected (the read timeout).
    pub timeout: Duration,
}

/// An HTTP answer. Only the status and the body matter to the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpResponse<'a> {
    /// Status code.
    pub status: u16,
    /// Body bytes (empty for 304).
    pub body: &'a [u8],
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// Could not connect (refused, unreachable, DNS).
    Connect,
    /// The connect or read timeout passed.
    Timeout,
    /// The connection broke or the answer was not valid HTTP.
    Io,
    /// The answer was larger than the host accepts.
    TooLarge,
    /// The TLS handshake failed: a certificate that is not trusted, has expired or was
    /// issued for another name, or no protocol version in common. Handled like a failed
    /// connect (the next instance is tried, with back-off).
    Tls,
    /// The server answered a redirect that the host did not follow (no host follows
    /// redirects: the `Authorization` header must not travel elsewhere) and could not
    /// report its status (a browser's `fetch` hides it). A host that sees the status
    /// reports the answer itself; the core treats both as a bad response.
    Redirect,
    /// Anything else.
    Other,
}

/// A transport failure reported by the host.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind:?}: {message}")]
pub struct TransportError {
    /// The kind.
    pub kind: TransportErrorKind,
    /// The host's description.
    pub message: String,
}

impl TransportError {
    /// A transport error of `kind` with a message.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> TransportError {
        TransportError {
            kind,
            message: message.into(),
        }
    }
}

/// Everything that enters the core.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Input<'a> {
    /// Time passed; `now` is the host's current time.
    Timeout(Instant),
    /// The answer (or transport failure) of a request.
    Response {
        /// The request's id.
        id: RequestId,
        /// When it completed.
        now: Instant,
        /// The answer.
        result: Result<HttpResponse<'a>, TransportError>,
    },
    /// The bytes of a namespace's cache file, read by the host at start: values are
    /// served from them until the server answers.
    CacheFile {
        /// The namespace as configured.
        namespace: &'a str,
        /// The file's bytes (ISO-8859-1 Java properties, docs/protocol.md#properties-codec).
        contents: &'a [u8],
    },
}

/// Everything that leaves the core. Drain with `poll_output` until [`Output::Timeout`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Perform this request.
    Request(HttpRequest),
    /// Something happened.
    Event(Event),
    /// Nothing more to do now: call `handle_input(Input::Timeout(..))` at this instant
    /// (or earlier, when an answer arrives). `None`: nothing is due until an answer
    /// arrives or the host calls a command (an edge-mode client at rest, a closed one).
    Timeout(Option<Instant>),
}

/// Misuse of the API by the host.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InputError {
    /// A response for a request id this client never issued.
    #[error("unknown request id {0:?}")]
    UnknownRequest(RequestId),
    /// A cache file for a namespace that is not watched.
    #[error("namespace {0:?} is not watched")]
    UnknownNamespace(String),
}
