//! Plain data types of the public API (also used in admin JSON and the state file).

use serde::{Deserialize, Serialize};

/// Format of a namespace (docs/protocol.md#names-and-formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Key/value namespace, stored without suffix.
    #[default]
    Properties,
    /// `.xml` namespace (single `content` key).
    Xml,
    /// `.json` namespace (single `content` key).
    Json,
    /// `.yml` namespace (single `content` key).
    Yml,
    /// `.yaml` namespace (single `content` key).
    Yaml,
    /// `.txt` namespace (single `content` key).
    Txt,
}

impl Format {
    /// The format's suffix without the dot (`properties`, `yaml`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Properties => "properties",
            Format::Xml => "xml",
            Format::Json => "json",
            Format::Yml => "yml",
            Format::Yaml => "yaml",
            Format::Txt => "txt",
        }
    }

    /// Parses a suffix (case-insensitive) into a format.
    pub fn parse(s: &str) -> Option<Format> {
        let all = [
            Format::Properties,
            Format::Xml,
            Format::Json,
            Format::Yml,
            Format::Yaml,
            Format::Txt,
        ];
        all.into_iter().find(|f| f.as_str().eq_ignore_ascii_case(s))
    }

    /// Detects the format of a stored namespace name: the lower-cased name ends with
    /// `.` + format, otherwise properties.
    pub fn of_namespace(name: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        for f in [
            Format::Xml,
            Format::Json,
            Format::Yml,
            Format::Yaml,
            Format::Txt,
        ] {
            if lower.ends_with(&format!(".{}", f.as_str())) {
                return f;
            }
        }
        Format::Properties
    }
}

/// The result of a publish: the new release's key and the id of the release message sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// Release key in the real format (`yyyyMMddHHmmss-` + 16 lower-case hex).
    pub release_key: String,
    /// Global, increasing release-message (notification) id.
    pub message_id: i64,
}

/// Mode of an access key (docs/protocol.md#server-check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum AccessKeyMode {
    /// Requests without a valid signature are rejected with 401.
    #[default]
    Filter,
    /// Signatures are checked but failures are only logged.
    Observer,
}

/// One access key of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey {
    /// Id of the key, unique per server state.
    pub id: u64,
    /// The shared secret.
    pub secret: String,
    /// FILTER or OBSERVER.
    pub mode: AccessKeyMode,
    /// Disabled keys are ignored.
    pub enabled: bool,
}

impl AccessKey {
    /// The key as the admin API shows it: the secret never in full, only its first
    /// characters (a quarter of it, at most 4) followed by `****`, e.g. `df23****`.
    pub fn masked(&self) -> AccessKey {
        AccessKey {
            secret: mask_secret(&self.secret),
            ..self.clone()
        }
    }
}

/// `df23df3f59884980844ff3dada30fa97` → `df23****`; `abc` → `****`.
pub(crate) fn mask_secret(secret: &str) -> String {
    let shown = (secret.chars().count() / 4).min(4);
    let mut s: String = secret.chars().take(shown).collect();
    s.push_str("****");
    s
}

/// One item of a gray-release rule (docs/protocol.md#gray-releases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GrayRule {
    /// The client app id the rule applies to (compared case-insensitively).
    pub client_app_id: String,
    /// Client ips (`*` matches every client).
    #[serde(default)]
    pub ips: Vec<String>,
    /// Client labels (`*` matches every client, also one without label).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// Behaviour switches of a logical Apollo (shared by all instances serving one [`crate::Store`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Switches {
    /// `config-service.incremental.change.enabled` (docs/protocol.md#incremental-sync).
    pub incremental_sync: bool,
    /// `config-service.cache.enabled`: `/configs` honours `messages` (docs/protocol.md#messages-and-stale-caches).
    pub release_cache: bool,
    /// `apollo.access-key.auth-time-diff-tolerance` in milliseconds (default 60 000).
    pub access_key_tolerance_ms: u64,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            incremental_sync: false,
            release_cache: false,
            access_key_tolerance_ms: 60_000,
        }
    }
}

/// One entry of `/services/config` or `/services/admin` (field order as the real server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInstance {
    /// e.g. `apollo-configservice`.
    pub app_name: String,
    /// e.g. `http://127.0.0.1:8080/`.
    pub instance_id: String,
    /// e.g. `http://127.0.0.1:8080/`.
    pub homepage_url: String,
}

impl ServiceInstance {
    /// A config-service entry whose instance id and homepage are `url` (a `/` is appended
    /// when missing), as database discovery writes it.
    pub fn config_service(url: &str) -> ServiceInstance {
        let mut u = url.to_string();
        if !u.ends_with('/') {
            u.push('/');
        }
        ServiceInstance {
            app_name: "apollo-configservice".into(),
            instance_id: u.clone(),
            homepage_url: u,
        }
    }
}

/// One request received by an instance (admin and static-file requests are not recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Raw path plus `?` and raw query (if any), exactly as received.
    pub path: String,
    /// Header names (lower case) and values in received order.
    pub headers: Vec<(String, String)>,
    /// Milliseconds since the Unix epoch when the request head arrived.
    pub time_ms: u64,
    /// Endpoint kind: `configs`, `notifications`, `services`, `configfiles` or `other`.
    pub endpoint: String,
}

impl RecordedRequest {
    /// Value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The raw query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.path.split_once('?').map(|(_, q)| q)
    }
}

/// Which endpoints a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `/configs/...`
    Configs,
    /// `/notifications/v2` and `/notifications`
    Notifications,
    /// `/services/...`
    Services,
    /// `/configfiles/...`
    Configfiles,
    /// every client endpoint above
    Any,
}

impl Endpoint {
    pub(crate) fn matches(self, kind: &str) -> bool {
        match self {
            Endpoint::Any => kind != "other",
            Endpoint::Configs => kind == "configs",
            Endpoint::Notifications => kind == "notifications",
            Endpoint::Services => kind == "services",
            Endpoint::Configfiles => kind == "configfiles",
        }
    }
}

/// What a fault does to a matching request.
///
/// In JSON (admin API, scenarios) an action is an object tagged by `type`; unknown fields
/// are rejected. [`FaultAction::OversizedStall`] is spelt as the `oversized` type with
/// `"stall": true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "FaultActionJson", into = "FaultActionJson")]
pub enum FaultAction {
    /// Answer with this status and a small JSON error body.
    Status {
        /// HTTP status code.
        code: u16,
    },
    /// Wait, then answer normally.
    Delay {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Close the connection without answering.
    Close,
    /// Answer 200 with a truncated, unparseable JSON body.
    Malformed,
    /// Answer 200 with a JSON body of about `bytes` bytes.
    Oversized {
        /// Body size in bytes.
        bytes: usize,
    },
    /// Answer 200, stream `bytes` bytes of a JSON body (chunked, no length) that never
    /// ends, then hold the connection open without finishing the body (until the client
    /// closes it, the instance pauses or stops, or ten minutes pass). A client that reads
    /// the whole body before checking its size only fails at its read timeout.
    OversizedStall {
        /// Bytes written before the stall.
        bytes: usize,
    },
    /// Answer with a redirect: this status (301, 302, 303, 307, 308) with a `Location`
    /// header and an empty body. Nothing is followed by the server.
    Redirect {
        /// HTTP status code.
        code: u16,
        /// The `Location` header.
        location: String,
    },
    /// Never answer (until the client gives up, or the instance pauses or stops).
    Hang,
    /// Answer with this status and exactly this body (`application/json`): any answer a
    /// broken or hostile server could give, for tests of what a client does with it.
    Body {
        /// HTTP status code.
        status: u16,
        /// The body, as sent.
        body: String,
    },
}

/// The JSON shape of [`FaultAction`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", deny_unknown_fields)]
enum FaultActionJson {
    Status {
        code: u16,
    },
    Delay {
        ms: u64,
    },
    Close {},
    Malformed {},
    Oversized {
        bytes: usize,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stall: bool,
    },
    Redirect {
        code: u16,
        location: String,
    },
    Hang {},
    Body {
        status: u16,
        body: String,
    },
}

impl From<FaultActionJson> for FaultAction {
    fn from(j: FaultActionJson) -> FaultAction {
        match j {
            FaultActionJson::Status { code } => FaultAction::Status { code },
            FaultActionJson::Delay { ms } => FaultAction::Delay { ms },
            FaultActionJson::Close {} => FaultAction::Close,
            FaultActionJson::Malformed {} => FaultAction::Malformed,
            FaultActionJson::Oversized {
                bytes,
                stall: false,
            } => FaultAction::Oversized { bytes },
            FaultActionJson::Oversized { bytes, stall: true } => {
                FaultAction::OversizedStall { bytes }
            }
            FaultActionJson::Redirect { code, location } => {
                FaultAction::Redirect { code, location }
            }
            FaultActionJson::Hang {} => FaultAction::Hang,
            FaultActionJson::Body { status, body } => FaultAction::Body { status, body },
        }
    }
}

impl From<FaultAction> for FaultActionJson {
    fn from(a: FaultAction) -> FaultActionJson {
        match a {
            FaultAction::Status { code } => FaultActionJson::Status { code },
            FaultAction::Delay { ms } => FaultActionJson::Delay { ms },
            FaultAction::Close => FaultActionJson::Close {},
            FaultAction::Malformed => FaultActionJson::Malformed {},
            FaultAction::Oversized { bytes } => FaultActionJson::Oversized {
                bytes,
                stall: false,
            },
            FaultAction::OversizedStall { bytes } => {
                FaultActionJson::Oversized { bytes, stall: true }
            }
            FaultAction::Redirect { code, location } => {
                FaultActionJson::Redirect { code, location }
            }
            FaultAction::Hang => FaultActionJson::Hang {},
            FaultAction::Body { status, body } => FaultActionJson::Body { status, body },
        }
    }
}

/// A fault to inject: an action for the next `times` requests to an endpoint kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// Endpoint kind the fault applies to.
    pub endpoint: Endpoint,
    /// What happens.
    pub action: FaultAction,
    /// How many requests it applies to; `None` = until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

impl Fault {
    /// A fault on `endpoint` doing `action` until cleared.
    pub fn new(endpoint: Endpoint, action: FaultAction) -> Fault {
        Fault {
            endpoint,
            action,
            times: None,
        }
    }

    /// Limits the fault to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }
}
