//! JSON handed to the JavaScript wrapper (an internal contract with `pkg/src/client.js`).
//!
//! One message per drain, written by hand (few allocations, no serde derive):
//!
//! ```text
//! { "requests": [[id, url, timeoutMs, yaml, [header, value, ...]], ...],   to perform
//!   "timer":  ms | null,                            when the core's deadline moved
//!   "names":  ["application", ...],                 the namespaces, when the list grew
//!   "ns":     [{ "name", "releaseKey", "source", "status",
//!                "content"?,                        after a load (non-properties formats)
//!                "values"? }],                      a namespace's first values, whole
//!   "merged": [[key, value | null], ...],           the merged lookup of every key that changed
//!   "events": [{ "type": "change", "namespace", "releaseKey", "source",
//!                "changes": [{ "key", "oldValue", "newValue", "type" }],
//!                "hits": [[listener, index...], ...] },   no index: every change
//!              { "type": "ready" | "refreshed" | "closed" },
//!              { "type": "persist", "namespace", "fileName", "path", "bytes": i },
//!              { "type": "error", "error": {...} }] }
//! ```
//!
//! The wrapper starts the `requests` (answering each with `respond` or `fail`; `yaml` is 1
//! for a YAML namespace's `/configs`, whose answer waits while the YAML module loads) and
//! re-arms its timer for `timer` (null: none). It applies `ns`, then the changes of every change event (its namespaces' maps
//! change in place), then `merged`, and only then delivers the events: listeners see the
//! state after the whole drain. Fields without content are left out; a drain with nothing
//! for the wrapper sends nothing. Every rule is the core's: the merged values come from
//! `Client::get`, the listeners of a change from `Interest::filter`, the spellings from the
//! `as_str`/`java_name` of the core's types.

use std::fmt::Write;

use apolloconf_core::{
    Change, ChangeEvent, Client, ClientError, Counter, ErrorCause, Event, HttpRequest, Interest,
    Metrics, RequestKind, Source, Status,
};

/// What the wrapper holds of one namespace.
pub struct Mirror {
    status: Status,
    source: Source,
    release_key: Option<String>,
    /// Whether it holds the namespace's values (from then on, changes keep them current).
    values: bool,
}

/// Append `s` as a JSON string.
fn string(out: &mut String, s: &str) {
    out.push('"');
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // `b` is ASCII, so `i` is a char boundary.
        out.push_str(s.get(from..i).unwrap_or_default());
        if escaped.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        from = i + 1;
    }
    out.push_str(s.get(from..).unwrap_or_default());
    out.push('"');
}

fn opt_string(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.push_str("null"),
    }
}

/// Start `"name":` in an object: a comma unless it is the first field.
fn field(out: &mut String, name: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    string(out, name);
    out.push(':');
}

/// `"name":"value"` in an object.
fn text_field(out: &mut String, name: &str, value: &str) {
    field(out, name);
    string(out, value);
}

/// `"name":"value"` or `"name":null` in an object.
fn opt_field(out: &mut String, name: &str, value: Option<&str>) {
    field(out, name);
    opt_string(out, value);
}

/// Start an element of an array: a comma unless it is the first.
fn element(out: &mut String) {
    if !out.ends_with('[') {
        out.push(',');
    }
}

fn change(out: &mut String, c: &Change) {
    element(out);
    out.push('{');
    text_field(out, "key", &c.key);
    opt_field(out, "oldValue", c.old.as_deref());
    opt_field(out, "newValue", c.new.as_deref());
    text_field(out, "type", c.kind.java_name());
    out.push('}');
}

/// `[[listener, index...], ...]`: the listeners whose interest selects changes of `ev`, with
/// the indexes of those changes (none when it is every change).
fn hits(out: &mut String, interests: &[(u32, Interest)], ev: &ChangeEvent) {
    out.push('[');
    for (id, interest) in interests {
        let Some(selected) = interest.filter(ev) else {
            continue;
        };
        element(out);
        let _ = write!(out, "[{id}");
        if selected.len() < ev.changes.len() {
            // `filter` keeps the event's order: one pass matches them up.
            let mut next = selected.iter().peekable();
            for (i, c) in ev.changes.iter().enumerate() {
                if next.next_if(|s| std::ptr::eq(**s, c)).is_some() {
                    let _ = write!(out, ",{i}");
                }
            }
        }
        out.push(']');
    }
    out.push(']');
}

fn change_event(out: &mut String, interests: &[(u32, Interest)], ev: &ChangeEvent) {
    out.push('{');
    text_field(out, "type", "change");
    text_field(out, "namespace", &ev.namespace);
    opt_field(out, "releaseKey", ev.release_key.as_deref());
    text_field(out, "source", ev.source.as_str());
    field(out, "changes");
    out.push('[');
    for c in &ev.changes {
        change(out, c);
    }
    out.push(']');
    field(out, "hits");
    hits(out, interests, ev);
    out.push('}');
}

/// The I/O of one drain: the requests to perform and the timer.
pub struct Io<'a> {
    pub requests: &'a [HttpRequest],
    /// Some when the deadline moved: the delay in ms, or None for no timer.
    pub timer: Option<Option<u64>>,
}

fn requests(out: &mut String, requests: &[HttpRequest]) {
    field(out, "requests");
    out.push('[');
    for r in requests {
        element(out);
        let limit = (r.connect_timeout + r.timeout).as_millis();
        let yaml = matches!(&r.kind, RequestKind::Configs { namespace } if crate::yaml::is_yaml(namespace));
        let _ = write!(out, "[{},", r.id.get());
        string(out, &r.url);
        let _ = write!(out, ",{limit},{},[", u8::from(yaml));
        for (k, v) in &r.headers {
            element(out);
            string(out, k);
            out.push(',');
            string(out, v);
        }
        out.push_str("]]");
    }
    out.push(']');
}

/// The message of one drain (see the module docs) and the bytes of its cache writes, or
/// None when there is nothing for the wrapper.
pub fn drain<'e>(
    client: &Client,
    mirror: &mut Vec<Mirror>,
    interests: &[(u32, Interest)],
    persist: bool,
    io: &Io<'_>,
    events: &'e [Event],
) -> Option<(String, Vec<&'e [u8]>)> {
    // Small lists: a set type of their own would cost KBs of wasm. `changed` may repeat a
    // key; the wrapper sets the same value twice then.
    let mut loaded = Vec::new();
    let mut changed = Vec::new();
    let mut blobs = Vec::new();
    let mut list = String::from("[");
    for e in events {
        match e {
            Event::Loaded { namespace, .. } => {
                loaded.push(namespace.as_str());
            }
            Event::Changed(c) => {
                changed.extend(c.changes.iter().map(|c| c.key.as_str()));
                element(&mut list);
                change_event(&mut list, interests, c);
            }
            Event::Ready => simple(&mut list, "ready"),
            Event::Refreshed => simple(&mut list, "refreshed"),
            Event::Closed => simple(&mut list, "closed"),
            Event::PersistCache(w) if persist => {
                element(&mut list);
                list.push('{');
                text_field(&mut list, "type", "persist");
                text_field(&mut list, "namespace", &w.namespace);
                text_field(&mut list, "fileName", &w.file_name);
                let path = client.cache_path(&w.namespace);
                opt_field(&mut list, "path", path.as_deref());
                let _ = write!(list, ",\"bytes\":{}}}", blobs.len());
                blobs.push(w.contents.as_slice());
            }
            Event::Error(err) => {
                element(&mut list);
                list.push_str("{\"type\":\"error\",\"error\":");
                error(&mut list, err);
                list.push('}');
            }
            // Services and loads reach the wrapper as state (below); the rest is not its.
            _ => {}
        }
    }
    list.push(']');

    let mut out = String::from("{");
    if !io.requests.is_empty() {
        requests(&mut out, io.requests);
    }
    if let Some(timer) = io.timer {
        field(&mut out, "timer");
        match timer {
            Some(ms) => {
                let _ = write!(out, "{ms}");
            }
            None => out.push_str("null"),
        }
    }
    let grew = client.namespaces().count() > mirror.len();
    if grew {
        field(&mut out, "names");
        out.push('[');
        for ns in client.namespaces() {
            element(&mut out);
            string(&mut out, ns.name());
        }
        out.push(']');
    }
    let mut ns_list = String::from("[");
    for (i, ns) in client.namespaces().enumerate() {
        let new = mirror.len() <= i;
        if new {
            mirror.push(Mirror {
                status: ns.status(),
                source: ns.source(),
                release_key: ns.release_key().map(str::to_string),
                values: false,
            });
        }
        let Some(m) = mirror.get_mut(i) else { continue };
        let now_loaded = loaded.contains(&ns.name());
        let full = now_loaded && !m.values;
        let moved = m.status != ns.status()
            || m.source != ns.source()
            || m.release_key.as_deref() != ns.release_key();
        if !(new || moved || now_loaded) {
            continue;
        }
        m.status = ns.status();
        m.source = ns.source();
        if m.release_key.as_deref() != ns.release_key() {
            m.release_key = ns.release_key().map(str::to_string);
        }
        m.values |= now_loaded;
        element(&mut ns_list);
        ns_list.push('{');
        text_field(&mut ns_list, "name", ns.name());
        opt_field(&mut ns_list, "releaseKey", ns.release_key());
        text_field(&mut ns_list, "source", ns.source().as_str());
        text_field(&mut ns_list, "status", ns.status().as_str());
        if let (true, Some(content)) = (now_loaded, ns.content()) {
            text_field(&mut ns_list, "content", content);
        }
        if full {
            // Its first values: the wrapper held none, so the merged view only gains keys.
            field(&mut ns_list, "values");
            ns_list.push('{');
            for (k, v) in ns.properties() {
                text_field(&mut ns_list, k, v);
                changed.push(k);
            }
            ns_list.push('}');
        }
        ns_list.push('}');
    }
    ns_list.push(']');
    if ns_list.len() > 2 {
        field(&mut out, "ns");
        out.push_str(&ns_list);
    }
    if !changed.is_empty() {
        field(&mut out, "merged");
        out.push('[');
        for key in changed {
            element(&mut out);
            out.push('[');
            string(&mut out, key);
            out.push(',');
            opt_string(&mut out, client.get(key));
            out.push(']');
        }
        out.push(']');
    }
    if list.len() > 2 {
        field(&mut out, "events");
        out.push_str(&list);
    }
    out.push('}');
    (out.len() > 2).then_some((out, blobs))
}

fn simple(list: &mut String, kind: &str) {
    element(list);
    list.push_str("{\"type\":");
    string(list, kind);
    list.push('}');
}

fn error(out: &mut String, e: &ClientError) {
    out.push('{');
    text_field(out, "code", e.cause.code());
    text_field(out, "message", &e.to_string());
    opt_field(out, "namespace", e.namespace.as_deref());
    opt_field(out, "request", e.request.as_ref().map(|r| r.as_str()));
    opt_field(out, "url", e.url.as_deref());
    field(out, "status");
    match e.cause {
        ErrorCause::Status(s) => {
            let _ = write!(out, "{s}");
        }
        ErrorCause::Unauthorized => out.push_str("401"),
        ErrorCause::NotFound => out.push_str("404"),
        _ => out.push_str("null"),
    }
    out.push('}');
}

fn counter(out: &mut String, name: &str, c: &Counter) {
    field(out, name);
    let _ = write!(
        out,
        "{{\"sent\":{},\"ok\":{},\"notModified\":{},\"notFound\":{},\"unauthorized\":{},\"otherStatus\":{},\"transportError\":{},\"parseError\":{}}}",
        c.sent,
        c.ok,
        c.not_modified,
        c.not_found,
        c.unauthorized,
        c.other_status,
        c.transport_error,
        c.parse_error
    );
}

/// Metrics as JSON.
pub fn metrics(m: &Metrics, services: &[String]) -> String {
    let mut out = String::from("{");
    counter(&mut out, "discovery", &m.discovery);
    counter(&mut out, "configs", &m.configs);
    counter(&mut out, "notifications", &m.notifications);
    field(&mut out, "lastError");
    match &m.last_error {
        Some(e) => error(&mut out, e),
        None => out.push_str("null"),
    }
    opt_field(&mut out, "longPollService", m.long_poll_service.as_deref());
    field(&mut out, "services");
    out.push('[');
    for s in services {
        element(&mut out);
        string(&mut out, s);
    }
    out.push_str("]}");
    out
}
