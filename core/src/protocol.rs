//! JSON bodies of the client protocol, parsed tolerantly (docs/protocol.md#json-bodies): the
//! `/configs` body (#response-body, #incremental-sync), the long-poll answer (#poll-answer)
//! and the service list (#servicesconfig).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::values::{Values, ValuesBuilder, ValuesError};

/// A `/configs` 200 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigBody {
    pub release_key: String,
    pub payload: ConfigPayload,
}

/// Full configurations or incremental changes (docs/protocol.md#incremental-sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigPayload {
    Full(Values),
    Incremental(Vec<IncrementalChange>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IncrementalChange {
    pub key: String,
    /// The key's new value; None: the key is deleted.
    pub value: Option<String>,
}

/// Gson turns numbers and booleans into strings when the target is a `String`.
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parse a `/configs` 200 body. The configurations go straight from the body's text
/// into a [`Values`] as they are read, so a release of a million keys costs its compact
/// form, not a parsed document besides it (docs/protocol.md#held-values).
pub(crate) fn parse_config(body: &[u8]) -> Result<ConfigBody, String> {
    // The whole body must be UTF-8, the fields skipped too (a parse into a document
    // checks every string; skipping does not).
    let text = core::str::from_utf8(body).map_err(|e| alloc::format!("body is not UTF-8: {e}"))?;
    let raw: RawConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let release_key = raw
        .release_key
        .as_ref()
        .and_then(scalar_string)
        .ok_or("missing releaseKey")?;
    let sync = String::from(
        raw.sync_type
            .as_ref()
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or(""),
    );
    if sync.is_empty() || sync.eq_ignore_ascii_case("FullSync") {
        return match raw.configurations {
            Some(Confs::Object(values)) => Ok(ConfigBody {
                release_key,
                payload: ConfigPayload::Full(values),
            }),
            Some(Confs::BadValue) => Err("configuration value is not a string".into()),
            Some(Confs::TooLarge) => Err(ValuesError::TooLarge.to_string()),
            Some(Confs::NotObject) | None => Err("full sync without configurations".into()),
        };
    }
    if !sync.eq_ignore_ascii_case("IncrementalSync") {
        return Err(alloc::format!("invalid config sync type {sync:?}"));
    }
    let list = raw
        .changes
        .as_ref()
        .and_then(Value::as_array)
        .ok_or("incremental sync without configurationChanges")?;
    let mut changes = Vec::with_capacity(list.len());
    for item in list {
        let key = item
            .get("key")
            .and_then(scalar_string)
            .ok_or("change without key")?;
        let kind = item
            .get("configurationChangeType")
            .and_then(Value::as_str)
            .map(str::trim)
            .ok_or("change without configurationChangeType")?;
        let new_value = item.get("newValue").and_then(scalar_string);
        let value = if kind.eq_ignore_ascii_case("DELETED") {
            None
        } else if kind.eq_ignore_ascii_case("ADDED") || kind.eq_ignore_ascii_case("MODIFIED") {
            if new_value.is_none() {
                return Err(alloc::format!("{kind} change of {key:?} without newValue"));
            }
            new_value
        } else {
            return Err(alloc::format!("unknown change type {kind:?}"));
        };
        changes.push(IncrementalChange { key, value });
    }
    Ok(ConfigBody {
        release_key,
        payload: ConfigPayload::Incremental(changes),
    })
}

/// The fields of a `/configs` body the client reads; every other field is skipped
/// without being kept. A field given twice keeps its last value, as in a parsed map.
#[derive(Default)]
struct RawConfig {
    release_key: Option<Value>,
    sync_type: Option<Value>,
    configurations: Option<Confs>,
    changes: Option<Value>,
}

/// What the `configurations` field held.
enum Confs {
    /// An object of scalar values (a `null` value drops its key).
    Object(Values),
    /// Not an object (fine for an incremental answer, which does not read it).
    NotObject,
    /// An object with an array or object as a value.
    BadValue,
    /// More text than a [`Values`] can hold.
    TooLarge,
}

impl<'de> Deserialize<'de> for RawConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = RawConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawConfig, A::Error> {
                let mut raw = RawConfig::default();
                while let Some(field) = m.next_key::<String>()? {
                    match field.as_str() {
                        "releaseKey" => raw.release_key = Some(m.next_value()?),
                        "configSyncType" => raw.sync_type = Some(m.next_value()?),
                        "configurationChanges" => raw.changes = Some(m.next_value()?),
                        "configurations" => {
                            // The previous one (if the field came twice) is dropped first.
                            raw.configurations = None;
                            raw.configurations = Some(m.next_value_seed(ConfsSeed)?);
                        }
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(raw)
            }
        }
        d.deserialize_map(Fields)
    }
}

/// Reads `configurations` into a [`ValuesBuilder`], one pair at a time.
struct ConfsSeed;

impl<'de> DeserializeSeed<'de> for ConfsSeed {
    type Value = Confs;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Confs, D::Error> {
        d.deserialize_any(ConfsVisitor)
    }
}

struct ConfsVisitor;

impl<'de> Visitor<'de> for ConfsVisitor {
    type Value = Confs;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the configurations")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Confs, A::Error> {
        let mut b = ValuesBuilder::new();
        let mut failed = None;
        loop {
            let start = b.mark();
            let key = if failed.is_none() {
                m.next_key_seed(TextSeed(&mut b))?
            } else {
                // Past a failure nothing is kept; the rest is only checked to be JSON.
                m.next_key::<IgnoredAny>()?.map(|_| Ok(()))
            };
            let Some(key) = key else { break };
            let scalar = if failed.is_none() && key.is_ok() {
                m.next_value_seed(ScalarSeed(&mut b))?
            } else {
                m.next_value::<IgnoredAny>()?;
                Scalar::TooLarge
            };
            match scalar {
                Scalar::Appended => b.commit(start),
                Scalar::Bad => {
                    failed = Some(Confs::BadValue);
                    b = ValuesBuilder::new();
                }
                Scalar::TooLarge => {
                    failed.get_or_insert(Confs::TooLarge);
                    b = ValuesBuilder::new();
                }
            }
        }
        Ok(failed.unwrap_or_else(|| Confs::Object(b.finish())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Confs, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Confs::NotObject)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Confs, E> {
        Ok(Confs::NotObject)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Confs, E> {
        Ok(Confs::NotObject)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Confs, E> {
        Ok(Confs::NotObject)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Confs, E> {
        Ok(Confs::NotObject)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Confs, E> {
        Ok(Confs::NotObject)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Confs, E> {
        Ok(Confs::NotObject)
    }
}

/// Appends a map key's text to the builder.
struct TextSeed<'a>(&'a mut ValuesBuilder);

impl<'de> DeserializeSeed<'de> for TextSeed<'_> {
    type Value = Result<(), ValuesError>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for TextSeed<'_> {
    type Value = Result<(), ValuesError>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(self.0.append_key(s))
    }
}

/// What one configuration value was.
enum Scalar {
    /// Its text was appended (for `null`, a removal of the key: as a parsed map would,
    /// the key's earlier value is replaced, then skipped).
    Appended,
    /// An array or an object.
    Bad,
    TooLarge,
}

/// Appends a configuration value's text (numbers and booleans as Gson writes them into
/// a `String`) to the builder.
struct ScalarSeed<'a>(&'a mut ValuesBuilder);

impl ScalarSeed<'_> {
    fn text(self, s: &str) -> Scalar {
        appended(self.0.append_value(s))
    }
}

fn appended(r: Result<(), ValuesError>) -> Scalar {
    match r {
        Ok(()) => Scalar::Appended,
        Err(_) => Scalar::TooLarge,
    }
}

impl<'de> DeserializeSeed<'de> for ScalarSeed<'_> {
    type Value = Scalar;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed<'_> {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a configuration value")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar, E> {
        Ok(self.text(s))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(self.text(if v { "true" } else { "false" }))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(self.text(&serde_json::Number::from(v).to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(self.text(&serde_json::Number::from(v).to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(match serde_json::Number::from_f64(v) {
            Some(n) => self.text(&n.to_string()),
            None => Scalar::Bad,
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(appended(self.0.append_removal()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Scalar, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Bad)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Scalar, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Bad)
    }
}

/// One entry of a `/notifications/v2` 200 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    pub namespace: String,
    pub id: i64,
    pub messages: BTreeMap<String, i64>,
}

/// The most `messages.details` entries taken from one notification, and kept per
/// namespace. A namespace has a few watch keys (its cluster, data center and `default`,
/// for public namespaces the owner's too); a notification listing more than this is not
/// trusted for them (its fetch goes without `messages`), so what the client later sends
/// on `/configs` stays small (docs/protocol.md#messages-and-stale-caches).
pub(crate) const MAX_MESSAGE_DETAILS: usize = 16;

pub(crate) fn parse_notifications(body: &[u8]) -> Result<Vec<Notification>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let arr = v.as_array().ok_or("body is not a JSON array")?;
    let mut out = Vec::with_capacity(arr.len());
    for item in arr {
        let namespace = item
            .get("namespaceName")
            .and_then(Value::as_str)
            .ok_or("notification without namespaceName")?
            .to_string();
        let id = item
            .get("notificationId")
            .and_then(Value::as_i64)
            .ok_or("notification without numeric notificationId")?;
        let mut messages = BTreeMap::new();
        if let Some(details) = item
            .get("messages")
            .and_then(|m| m.get("details"))
            .and_then(Value::as_object)
            .filter(|d| d.len() <= MAX_MESSAGE_DETAILS)
        {
            for (k, v) in details {
                if let Some(n) = v.as_i64() {
                    messages.insert(k.clone(), n);
                }
            }
        }
        out.push(Notification {
            namespace,
            id,
            messages,
        });
    }
    Ok(out)
}

/// The most config services taken from one `/services/config` answer. A real Apollo lists
/// a handful; beyond this the rest of the list is ignored, so a huge answer costs no more
/// than its parse (docs/protocol.md#discovery).
pub(crate) const MAX_SERVICES: usize = 1_000;

/// Home page URLs from a `/services/config` body, each ending in `/`, without repeats, in
/// the order listed (at most [`MAX_SERVICES`]). The list is read item by item, keeping only
/// each item's `homepageUrl`: a huge answer costs its parse, not a parsed copy of it all.
pub(crate) fn parse_services(body: &[u8]) -> Result<Vec<String>, String> {
    serde_json::from_slice::<ServiceList>(body)
        .map(|l| l.0)
        .map_err(|e| e.to_string())
}

/// The kept URLs of a service list (see [`parse_services`]).
struct ServiceList(Vec<String>);

impl<'de> Deserialize<'de> for ServiceList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ServiceList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON array of services")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<ServiceList, A::Error> {
                let mut out: Vec<String> = Vec::new();
                let mut seen: alloc::collections::BTreeSet<String> =
                    alloc::collections::BTreeSet::new();
                while out.len() < MAX_SERVICES {
                    // One item at a time: only its own parse is held.
                    let Some(item) = s.next_element::<Value>()? else {
                        return Ok(ServiceList(out));
                    };
                    let Some(url) = item.get("homepageUrl").and_then(Value::as_str) else {
                        continue;
                    };
                    let url = url.trim();
                    if crate::url::is_http_url(url) {
                        let u = with_slash(url);
                        if seen.insert(u.clone()) {
                            out.push(u);
                        }
                    }
                }
                // The rest is checked to be JSON but not kept.
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ServiceList(out))
            }
        }
        d.deserialize_seq(V)
    }
}

pub(crate) fn with_slash(url: &str) -> String {
    let mut u = url.to_string();
    if !u.ends_with('/') {
        u.push('/');
    }
    u
}

/// One entry of the long poll's `notifications` parameter.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PollEntry<'a> {
    namespace_name: &'a str,
    notification_id: i64,
}

/// `[{"namespaceName":..,"notificationId":..},...]` as the Java client's Gson writes it.
pub(crate) fn notifications_param<'a>(entries: impl Iterator<Item = (&'a str, i64)>) -> String {
    let list: Vec<PollEntry<'_>> = entries
        .map(|(namespace_name, notification_id)| PollEntry {
            namespace_name,
            notification_id,
        })
        .collect();
    // Strings and integers only: serialising cannot fail.
    serde_json::to_string(&list).unwrap_or_default()
}

/// The `messages` parameter of `/configs`, as `ApolloNotificationMessages` serialises.
#[derive(Serialize)]
struct Messages<'a> {
    details: &'a BTreeMap<String, i64>,
}

/// `{"details":{key:id,...}}` with sorted keys.
pub(crate) fn messages_param(details: &BTreeMap<String, i64>) -> String {
    serde_json::to_string(&Messages { details }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config() {
        let b = br#"{"appId":"a","cluster":"default","namespaceName":"application","configurations":{"k":"v\u003d","n":1},"releaseKey":"20170430092936-dee2d58e74515ff3"}"#;
        let c = parse_config(b).unwrap();
        assert_eq!(c.release_key, "20170430092936-dee2d58e74515ff3");
        let ConfigPayload::Full(m) = c.payload else {
            panic!()
        };
        assert_eq!(m.get("k"), Some("v="));
        assert_eq!(m.get("n"), Some("1"));
    }

    #[test]
    fn incremental_config() {
        let b = br#"{"releaseKey":"k2","configSyncType":"IncrementalSync","configurationChanges":[{"key":"a","newValue":"1","configurationChangeType":"ADDED"},{"key":"b","configurationChangeType":"DELETED"},{"key":"c","newValue":"3","configurationChangeType":" modified "}]}"#;
        let c = parse_config(b).unwrap();
        let ConfigPayload::Incremental(ch) = c.payload else {
            panic!()
        };
        assert_eq!(ch.len(), 3);
        assert_eq!(ch[0].value.as_deref(), Some("1"));
        assert_eq!(ch[1].value, None);
        assert!(parse_config(br#"{"releaseKey":"k","configSyncType":"Weird"}"#).is_err());
        assert!(parse_config(br#"{"releaseKey":"k","configSyncType":"IncrementalSync","configurationChanges":[{"key":"a","configurationChangeType":"X"}]}"#).is_err());
    }

    #[test]
    fn bad_bodies() {
        assert!(parse_config(b"").is_err());
        assert!(parse_config(b"[1]").is_err());
        assert!(parse_config(br#"{"releaseKey":"k"}"#).is_err());
        assert!(parse_notifications(b"{").is_err());
        assert!(parse_services(b"null").is_err());
        // Invalid UTF-8 anywhere, in a field the client skips too.
        assert!(
            parse_config(b"{\"x\":\"\xff\",\"releaseKey\":\"k\",\"configurations\":{}}").is_err()
        );
    }

    fn full(body: &str) -> Result<Values, String> {
        match parse_config(body.as_bytes())?.payload {
            ConfigPayload::Full(v) => Ok(v),
            ConfigPayload::Incremental(_) => Err("incremental".into()),
        }
    }

    #[test]
    fn configurations_read_as_a_parsed_map_would() {
        let v = full(
            r#"{"configurations":{"b":"1","a":2,"c":true,"d":1.5,"e":-3,"b":"again","n":"x","n":null,"u":"\u0041\n"},"releaseKey":"k"}"#,
        )
        .unwrap();
        let got: alloc::vec::Vec<(&str, &str)> = v.iter().collect();
        assert_eq!(
            got,
            [
                ("a", "2"),
                ("b", "again"),
                ("c", "true"),
                ("d", "1.5"),
                ("e", "-3"),
                ("u", "A\n")
            ]
        );
        // The field given twice: the last one counts.
        let v = full(r#"{"configurations":{"a":"1"},"releaseKey":"k","configurations":{"b":"2"}}"#)
            .unwrap();
        assert_eq!(v.iter().collect::<alloc::vec::Vec<_>>(), [("b", "2")]);
        assert_eq!(
            full(r#"{"configurations":{"a":{"x":1}},"releaseKey":"k"}"#),
            Err("configuration value is not a string".into())
        );
        assert_eq!(
            full(r#"{"configurations":{"a":[1]},"releaseKey":"k"}"#),
            Err("configuration value is not a string".into())
        );
        assert_eq!(
            full(r#"{"configurations":[],"releaseKey":"k"}"#),
            Err("full sync without configurations".into())
        );
        // An incremental answer does not read `configurations`, whatever it holds.
        let inc = parse_config(
            br#"{"configurations":{"a":[1]},"releaseKey":"k","configSyncType":"IncrementalSync","configurationChanges":[]}"#,
        )
        .unwrap();
        assert_eq!(
            inc.payload,
            ConfigPayload::Incremental(alloc::vec::Vec::new())
        );
    }

    #[test]
    fn a_notification_with_too_many_messages_carries_none() {
        use alloc::format;
        let details = |n: usize| {
            (0..n)
                .map(|i| format!(r#""app+c{i}+application":{i}"#))
                .collect::<alloc::vec::Vec<_>>()
                .join(",")
        };
        let body = |n: usize| {
            format!(
                r#"[{{"namespaceName":"application","notificationId":7,"messages":{{"details":{{{}}}}}}}]"#,
                details(n)
            )
        };
        let ok = parse_notifications(body(MAX_MESSAGE_DETAILS).as_bytes()).unwrap();
        assert_eq!(ok[0].messages.len(), MAX_MESSAGE_DETAILS);
        let many = parse_notifications(body(100_000).as_bytes()).unwrap();
        assert_eq!(many[0].id, 7, "the notification itself still counts");
        assert!(many[0].messages.is_empty());
    }

    #[test]
    fn notifications_and_params() {
        let b = br#"[{"namespaceName":"application","notificationId":101,"messages":{"details":{"SampleApp+default+application":101}}}]"#;
        let n = parse_notifications(b).unwrap();
        assert_eq!(n[0].id, 101);
        assert_eq!(
            n[0].messages.get("SampleApp+default+application"),
            Some(&101)
        );
        assert_eq!(
            notifications_param([("application", -1)].into_iter()),
            r#"[{"namespaceName":"application","notificationId":-1}]"#
        );
        let mut m = BTreeMap::new();
        m.insert(String::from("b+default+x"), 2);
        m.insert(String::from("a+default+x"), 1);
        assert_eq!(
            messages_param(&m),
            r#"{"details":{"a+default+x":1,"b+default+x":2}}"#
        );
    }

    #[test]
    fn services() {
        let b = br#"[{"appName":"apollo-configservice","instanceId":"x","homepageUrl":"http://10.0.0.1:8080"},{"homepageUrl":"not a url"},{"homepageUrl":"http://10.0.0.1:8080/"}]"#;
        assert_eq!(
            parse_services(b).unwrap(),
            alloc::vec![String::from("http://10.0.0.1:8080/")]
        );
        assert!(parse_services(b"[]").unwrap().is_empty());
    }

    #[test]
    fn services_list_is_capped_and_deduplicated_in_order() {
        use alloc::format;
        let item = |i: usize| {
            format!(
                r#"{{"homepageUrl":"http://10.0.{}.{}:8080"}}"#,
                i / 250,
                i % 250
            )
        };
        // Every address twice (the second time with a slash), then 5,000 more.
        let mut items: alloc::vec::Vec<String> = (0..3).map(item).collect();
        items.push(String::from(r#"{"homepageUrl":"http://10.0.0.1:8080/"}"#));
        items.extend((3..5_000).map(item));
        let body = format!("[{}]", items.join(","));
        let got = parse_services(body.as_bytes()).unwrap();
        assert_eq!(got.len(), MAX_SERVICES);
        assert_eq!(got[0], "http://10.0.0.0:8080/");
        assert_eq!(got[1], "http://10.0.0.1:8080/");
        assert_eq!(got[3], "http://10.0.0.3:8080/");
    }
}
