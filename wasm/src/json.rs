//! JSON shapes handed to the JavaScript wrapper (an internal contract with `pkg/src/`).

use apolloconf_core::{
    ChangeKind, Client, ClientError, Counter, ErrorCause, Event, Metrics, Namespace, RequestKind,
    Source, Status,
};
use serde_json::{Map, Value, json};

fn source(s: Source) -> &'static str {
    match s {
        Source::Cache => "cache",
        Source::Server => "server",
        _ => "none",
    }
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Loading => "loading",
        Status::Loaded => "loaded",
        Status::NotFound => "not-found",
        Status::Unavailable => "unavailable",
        _ => "unknown",
    }
}

fn kind(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Added => "ADDED",
        ChangeKind::Modified => "MODIFIED",
        ChangeKind::Deleted => "DELETED",
        _ => "MODIFIED",
    }
}

fn request(r: &RequestKind) -> &'static str {
    match r {
        RequestKind::Discovery => "discovery",
        RequestKind::Configs { .. } => "configs",
        RequestKind::Notifications => "notifications",
        _ => "other",
    }
}

fn error(e: &ClientError) -> Value {
    json!({
        "code": e.cause.code(),
        "message": e.to_string(),
        "namespace": e.namespace,
        "request": e.request.as_ref().map(request),
        "url": e.url,
        "status": match e.cause { ErrorCause::Status(s) => Some(s), ErrorCause::Unauthorized => Some(401), ErrorCause::NotFound => Some(404), _ => None },
    })
}

/// An event as JSON, plus the bytes of a cache write.
pub fn event(e: &Event) -> (String, Option<&[u8]>) {
    let mut bytes = None;
    let v = match e {
        Event::ServicesChanged { services } => json!({ "type": "services", "services": services }),
        Event::Loaded {
            namespace,
            source: s,
            release_key,
        } => {
            json!({ "type": "loaded", "namespace": namespace, "source": source(*s), "releaseKey": release_key })
        }
        Event::Changed(c) => {
            let changes: Vec<Value> = c
                .changes
                .iter()
                .map(|ch| json!({ "key": ch.key, "oldValue": ch.old, "newValue": ch.new, "type": kind(ch.kind) }))
                .collect();
            json!({
                "type": "change",
                "namespace": c.namespace,
                "releaseKey": c.release_key,
                "source": source(c.source),
                "changes": changes,
            })
        }
        Event::Ready => json!({ "type": "ready" }),
        Event::PersistCache(w) => {
            bytes = Some(w.contents.as_slice());
            json!({ "type": "persist", "namespace": w.namespace, "fileName": w.file_name })
        }
        Event::Error(err) => json!({ "type": "error", "error": error(err) }),
        Event::Closed => json!({ "type": "closed" }),
        _ => json!({ "type": "other" }),
    };
    (v.to_string(), bytes)
}

fn namespace_value(ns: &Namespace) -> Value {
    let props: Map<String, Value> = ns
        .properties()
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "name": ns.name(),
        "properties": props,
        "isProperties": ns.format().is_properties(),
        "content": ns.content(),
        "releaseKey": ns.release_key(),
        "source": source(ns.source()),
        "status": status(ns.status()),
    })
}

/// One namespace's snapshot.
pub fn namespace(ns: &Namespace) -> String {
    namespace_value(ns).to_string()
}

/// Every namespace's snapshot, in lookup order.
pub fn namespaces(client: &Client) -> String {
    Value::Array(client.namespaces().map(namespace_value).collect()).to_string()
}

fn counter(c: &Counter) -> Value {
    json!({
        "sent": c.sent,
        "ok": c.ok,
        "notModified": c.not_modified,
        "notFound": c.not_found,
        "unauthorized": c.unauthorized,
        "otherStatus": c.other_status,
        "transportError": c.transport_error,
        "parseError": c.parse_error,
    })
}

/// Metrics as JSON.
pub fn metrics(m: &Metrics, services: &[String]) -> String {
    json!({
        "discovery": counter(&m.discovery),
        "configs": counter(&m.configs),
        "notifications": counter(&m.notifications),
        "lastError": m.last_error.as_ref().map(error),
        "longPollService": m.long_poll_service,
        "services": services,
    })
    .to_string()
}
