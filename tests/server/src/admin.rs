//! The admin API under `/__admin/` (JSON over HTTP; not part of Apollo). Every route is
//! documented with examples in the crate's README.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::http_util::{Resp, path_decode, reply};
use crate::server::{Instance, MAX_OVERSIZED_BYTES, lock};
use crate::store::AdminError;
use crate::types::{
    AccessKey, AccessKeyMode, Fault, FaultAction, Format, GrayRule, ServiceInstance, Switches,
};

const ADMIN_JSON: &str = "application/json";

/// Key/value pairs of a JSON object in document order (values that are not strings are
/// written as their JSON text).
#[derive(Debug, Default)]
pub(crate) struct OrderedItems(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedItems {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedItems;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of configuration items")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedItems, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                // Position of each key: a repeated key keeps its first place, last value.
                let mut at: std::collections::HashMap<String, usize> =
                    std::collections::HashMap::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    match at.get(&k) {
                        Some(&i) => out[i].1 = v,
                        None => {
                            at.insert(k.clone(), out.len());
                            out.push((k, v));
                        }
                    }
                }
                Ok(OrderedItems(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn ok_json<T: Serialize>(v: &T) -> Resp {
    match serde_json::to_string(v) {
        Ok(s) => reply(200, Some(ADMIN_JSON), s),
        Err(e) => err(500, &e.to_string()),
    }
}

/// An admin API error: `{"error": msg}`.
pub(crate) fn err(status: u16, msg: &str) -> Resp {
    let body = serde_json::json!({ "error": msg }).to_string();
    reply(status, Some(ADMIN_JSON), body)
}

fn admin_err(e: AdminError) -> Resp {
    err(e.status(), &e.to_string())
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Resp> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| err(400, &format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppReq {
    app_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NamespaceReq {
    name: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    public: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PublishReq {
    #[serde(default)]
    configurations: Option<OrderedItems>,
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RulesReq {
    rules: Vec<GrayRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActiveReq {
    active: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyReq {
    secret: String,
    #[serde(default)]
    mode: AccessKeyMode,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyUpdate {
    enabled: bool,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct SettingsBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lag_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SwitchesBody {
    incremental_sync: Option<bool>,
    release_cache: Option<bool>,
    access_key_tolerance_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServicesBody {
    config: Option<Vec<ServiceInstance>>,
    admin: Option<Vec<ServiceInstance>>,
}

#[derive(Serialize)]
struct ServicesOut {
    admin: Vec<ServiceInstance>,
    config: Vec<ServiceInstance>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PauseBody {
    resume_after_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RestartBody {
    down_ms: Option<u64>,
}

fn release_json(r: &crate::types::Release) -> Resp {
    ok_json(r)
}

/// Publishes from a `{configurations}` / `{content}` body.
fn do_publish(
    inst: &Instance,
    app: &str,
    cluster: &str,
    ns: &str,
    body: &[u8],
    gray: bool,
) -> Resp {
    let req: PublishReq = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let items = match (req.configurations, req.content) {
        (Some(items), None) => items.0,
        (None, Some(content)) => {
            if Format::of_namespace(ns) == Format::Properties {
                return err(400, "content is only for non-properties namespaces");
            }
            vec![("content".to_string(), content)]
        }
        (None, None) => return err(400, "body needs configurations or content"),
        (Some(_), Some(_)) => return err(400, "body needs configurations or content, not both"),
    };
    let r = if gray {
        inst.store.gray_publish(app, cluster, ns, items)
    } else {
        inst.store.publish(app, cluster, ns, items)
    };
    match r {
        Ok(r) => release_json(&r),
        Err(e) => admin_err(e),
    }
}

/// Handles one admin request.
pub(crate) async fn handle(inst: Arc<Instance>, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    if method == Method::OPTIONS {
        // Never a CORS answer: pages of other origins do not get to use the admin API.
        let mut r = reply(200, None, "");
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET,HEAD,POST,PUT,DELETE,OPTIONS"),
        );
        return r;
    }
    let raw_path = req.uri().path().to_string();
    let body = match Limited::new(req.into_body(), 64 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return err(400, &format!("could not read body: {e}")),
    };
    let mut segs: Vec<String> = Vec::new();
    for s in raw_path
        .trim_start_matches("/__admin")
        .split('/')
        .filter(|s| !s.is_empty())
    {
        match path_decode(s) {
            Some(d) => segs.push(d),
            None => return err(400, "bad percent-encoding in path"),
        }
    }
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    route(&inst, &method, &segs, &body).await
}

async fn route(inst: &Arc<Instance>, method: &Method, segs: &[&str], body: &[u8]) -> Resp {
    let m = method.as_str();
    match (m, segs) {
        ("GET", ["state"]) => reply(200, Some(ADMIN_JSON), inst.store.dump_json_masked()),
        ("GET", ["stats"]) => ok_json(&serde_json::json!({
            "heldPolls": inst.hub.held(),
            "lastMessageId": inst.store.last_message_id(),
            "paused": inst.is_paused(),
            "url": inst.url(),
        })),
        ("POST", ["apps"]) => match parse::<AppReq>(body) {
            Ok(r) => match inst.store.create_app(&r.app_id) {
                Ok(()) => ok_json(&serde_json::json!({ "appId": r.app_id })),
                Err(e) => admin_err(e),
            },
            Err(r) => r,
        },
        ("POST", ["apps", app, "namespaces"]) => match parse::<NamespaceReq>(body) {
            Ok(r) => {
                let format = match r.format.as_deref() {
                    None => Format::of_namespace(&r.name),
                    Some(f) => match Format::parse(f) {
                        Some(f) => f,
                        None => return err(400, &format!("unknown format: {f}")),
                    },
                };
                match inst.store.create_namespace(app, &r.name, format, r.public) {
                    Ok(name) => ok_json(&serde_json::json!({
                        "appId": app, "namespaceName": name,
                        "format": format.as_str(), "public": r.public,
                    })),
                    Err(e) => admin_err(e),
                }
            }
            Err(r) => r,
        },
        (
            "POST",
            [
                "apps",
                app,
                "clusters",
                cluster,
                "namespaces",
                ns,
                "releases",
            ],
        ) => do_publish(inst, app, cluster, ns, body, false),
        (
            "POST",
            [
                "apps",
                app,
                "clusters",
                cluster,
                "namespaces",
                ns,
                "rollback",
            ],
        ) => match inst.store.rollback(app, cluster, ns) {
            Ok(r) => release_json(&r),
            Err(e) => admin_err(e),
        },
        ("POST", ["apps", app, "clusters", cluster, "namespaces", ns, "gray"]) => {
            match inst.store.create_branch(app, cluster, ns) {
                Ok(b) => ok_json(&serde_json::json!({ "branchName": b })),
                Err(e) => admin_err(e),
            }
        }
        ("DELETE", ["apps", app, "clusters", cluster, "namespaces", ns, "gray"]) => {
            match inst.store.delete_branch(app, cluster, ns) {
                Ok(id) => ok_json(&serde_json::json!({ "messageId": id })),
                Err(e) => admin_err(e),
            }
        }
        (
            "POST",
            [
                "apps",
                app,
                "clusters",
                cluster,
                "namespaces",
                ns,
                "gray",
                "releases",
            ],
        ) => do_publish(inst, app, cluster, ns, body, true),
        (
            "PUT",
            [
                "apps",
                app,
                "clusters",
                cluster,
                "namespaces",
                ns,
                "gray",
                "rules",
            ],
        ) => match parse::<RulesReq>(body) {
            Ok(r) => match inst.store.set_gray_rules(app, cluster, ns, r.rules) {
                Ok(id) => ok_json(&serde_json::json!({ "messageId": id })),
                Err(e) => admin_err(e),
            },
            Err(r) => r,
        },
        (
            "PUT",
            [
                "apps",
                app,
                "clusters",
                cluster,
                "namespaces",
                ns,
                "gray",
                "active",
            ],
        ) => match parse::<ActiveReq>(body) {
            Ok(r) => match inst.store.set_branch_active(app, cluster, ns, r.active) {
                Ok(id) => ok_json(&serde_json::json!({ "messageId": id })),
                Err(e) => admin_err(e),
            },
            Err(r) => r,
        },
        (
            "POST",
            [
                "apps",
                app,
                "clusters",
                cluster,
                "namespaces",
                ns,
                "gray",
                "merge",
            ],
        ) => match inst.store.merge_branch(app, cluster, ns) {
            Ok(r) => release_json(&r),
            Err(e) => admin_err(e),
        },
        ("GET", ["apps", app, "accesskeys"]) => ok_json(
            &inst
                .store
                .access_keys(app)
                .iter()
                .map(AccessKey::masked)
                .collect::<Vec<_>>(),
        ),
        ("POST", ["apps", app, "accesskeys"]) => match parse::<KeyReq>(body) {
            Ok(r) => match inst.store.add_access_key(app, &r.secret, r.mode) {
                Ok(k) if !r.enabled => match inst.store.set_access_key_enabled(app, k.id, false) {
                    Ok(k) => ok_json(&k.masked()),
                    Err(e) => admin_err(e),
                },
                Ok(k) => ok_json(&k.masked()),
                Err(e) => admin_err(e),
            },
            Err(r) => r,
        },
        ("PUT", ["apps", app, "accesskeys", id]) => {
            let Ok(id) = id.parse::<u64>() else {
                return err(400, "access key id must be a number");
            };
            match parse::<KeyUpdate>(body) {
                Ok(r) => match inst.store.set_access_key_enabled(app, id, r.enabled) {
                    Ok(k) => ok_json(&k.masked()),
                    Err(e) => admin_err(e),
                },
                Err(r) => r,
            }
        }
        ("DELETE", ["apps", app, "accesskeys", id]) => {
            let Ok(id) = id.parse::<u64>() else {
                return err(400, "access key id must be a number");
            };
            match inst.store.remove_access_key(app, id) {
                Ok(()) => ok_json(&serde_json::json!({})),
                Err(e) => admin_err(e),
            }
        }
        ("GET", ["settings"]) => settings_json(inst),
        ("PUT", ["settings"]) => match parse::<SettingsBody>(body) {
            Ok(r) => {
                let mut s = lock(&inst.settings);
                if let Some(h) = r.hold_ms {
                    s.hold = Duration::from_millis(h);
                }
                if let Some(l) = r.lag_ms {
                    s.lag = Duration::from_millis(l);
                }
                drop(s);
                settings_json(inst)
            }
            Err(r) => r,
        },
        ("GET", ["switches"]) => ok_json(&inst.store.switches()),
        ("PUT", ["switches"]) => match parse::<SwitchesBody>(body) {
            Ok(r) => {
                let mut s: Switches = inst.store.switches();
                if let Some(v) = r.incremental_sync {
                    s.incremental_sync = v;
                }
                if let Some(v) = r.release_cache {
                    s.release_cache = v;
                }
                if let Some(v) = r.access_key_tolerance_ms {
                    s.access_key_tolerance_ms = v;
                }
                inst.store.set_switches(s.clone());
                ok_json(&s)
            }
            Err(r) => r,
        },
        ("GET", ["services"]) => {
            let s = lock(&inst.settings);
            let admin = s.admin_services.clone();
            drop(s);
            ok_json(&ServicesOut {
                admin,
                config: inst.config_services(),
            })
        }
        ("PUT", ["services"]) => match parse::<ServicesBody>(body) {
            Ok(r) => {
                let mut s = lock(&inst.settings);
                if let Some(c) = r.config {
                    s.config_services = Some(c);
                }
                if let Some(a) = r.admin {
                    s.admin_services = a;
                }
                let admin = s.admin_services.clone();
                drop(s);
                ok_json(&ServicesOut {
                    admin,
                    config: inst.config_services(),
                })
            }
            Err(r) => r,
        },
        ("GET", ["requests"]) => ok_json(lock(&inst.log).entries()),
        ("DELETE", ["requests"]) => {
            lock(&inst.log).clear();
            ok_json(&serde_json::json!({}))
        }
        ("GET", ["faults"]) => ok_json(&*lock(&inst.faults)),
        ("POST", ["faults"]) => match parse::<Fault>(body) {
            Ok(Fault {
                action: FaultAction::Oversized { bytes } | FaultAction::OversizedStall { bytes },
                ..
            }) if bytes > MAX_OVERSIZED_BYTES => err(
                400,
                &format!("an oversized fault writes at most {MAX_OVERSIZED_BYTES} bytes"),
            ),
            Ok(f) => {
                let mut faults = lock(&inst.faults);
                faults.push(f);
                ok_json(&*faults)
            }
            Err(r) => r,
        },
        ("DELETE", ["faults"]) => {
            lock(&inst.faults).clear();
            ok_json(&serde_json::json!([]))
        }
        ("POST", ["pause"]) => match parse::<PauseBody>(body) {
            Ok(r) => {
                schedule_pause(inst, r.resume_after_ms);
                ok_json(&serde_json::json!({ "paused": true, "resumeAfterMs": r.resume_after_ms }))
            }
            Err(r) => r,
        },
        ("POST", ["restart"]) => match parse::<RestartBody>(body) {
            Ok(r) => {
                let ms = r.down_ms.unwrap_or(0);
                schedule_pause(inst, Some(ms));
                ok_json(&serde_json::json!({ "paused": true, "resumeAfterMs": ms }))
            }
            Err(r) => r,
        },
        ("POST", ["reset"]) => {
            reset_instance(inst);
            ok_json(&serde_json::json!({}))
        }
        _ => err(
            404,
            &format!("no admin route {m} /__admin/{}", segs.join("/")),
        ),
    }
}

fn settings_json(inst: &Instance) -> Resp {
    let s = lock(&inst.settings);
    ok_json(&SettingsBody {
        hold_ms: Some(s.hold.as_millis() as u64),
        lag_ms: Some(s.lag.as_millis() as u64),
    })
}

/// Pauses shortly after the answer went out, optionally resuming later.
fn schedule_pause(inst: &Arc<Instance>, resume_after_ms: Option<u64>) {
    let me = inst.clone();
    inst.rt.spawn(async move {
        // Let the admin answer reach the client first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        me.pause_async().await;
        if let Some(ms) = resume_after_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if let Err(e) = me.resume_async().await {
                log::error!("resume failed: {e}");
            }
        }
    });
}

/// Clears the store and this instance's faults, request log and settings overrides.
pub(crate) fn reset_instance(inst: &Instance) {
    inst.store.reset();
    lock(&inst.faults).clear();
    lock(&inst.log).clear();
    let mut s = lock(&inst.settings);
    s.hold = inst.initial_hold;
    s.lag = Duration::ZERO;
}
