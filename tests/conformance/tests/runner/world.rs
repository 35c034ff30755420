//! The test servers of one scenario run, and the admin steps that act on them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use apolloconf_testserver::{
    AccessKeyMode, Admin, Endpoint, Fault, FaultAction, Format, GrayRule, ServiceInstance, Store,
    Switches, TestServer,
};
use serde_json::Value;

use super::util::{field_str, field_u64, opt_str};

/// One config-service instance (it also answers discovery, as the real server does).
pub struct Inst {
    pub server: Option<TestServer>,
    pub addr: SocketAddr,
    hold: Duration,
    lag: Duration,
}

/// Every instance of the scenario's one logical Apollo.
pub struct Servers {
    pub insts: Vec<Inst>,
    pub store: Store,
    data_file: Option<PathBuf>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Servers {
    /// Starts the instances described by the scenario's `server` object.
    pub fn start(spec: &Value, data_dir: &std::path::Path) -> Result<Servers, String> {
        let hold = spec.get("holdMs").and_then(Value::as_u64).unwrap_or(30_000);
        let persist = spec
            .get("persist")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let list: Vec<Value> = match spec.get("instances") {
            None => vec![Value::Null],
            Some(Value::Number(n)) => vec![Value::Null; n.as_u64().unwrap_or(1) as usize],
            Some(Value::Array(a)) => a.clone(),
            Some(other) => return Err(format!("server.instances: unexpected {other}")),
        };
        let data_file = persist.then(|| data_dir.join("apollo-state.json"));
        let store = match &data_file {
            Some(p) => Store::with_data_file(p).map_err(|e| format!("data file: {e}"))?,
            None => Store::new(),
        };
        let mut insts = Vec::new();
        for item in &list {
            let h = item.get("holdMs").and_then(Value::as_u64).unwrap_or(hold);
            let l = item.get("lagMs").and_then(Value::as_u64).unwrap_or(0);
            let server = TestServer::builder()
                .hold(ms(h))
                .lag(ms(l))
                .store(store.clone())
                .start()
                .map_err(|e| format!("cannot start a test server: {e}"))?;
            insts.push(Inst {
                addr: server.addr(),
                server: Some(server),
                hold: ms(h),
                lag: ms(l),
            });
        }
        let s = Servers {
            insts,
            store,
            data_file,
        };
        if let Some(sw) = spec.get("switches") {
            s.store.set_switches(switches(sw, s.store.switches())?);
        }
        Ok(s)
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://{}", self.insts[i].addr)
    }

    pub fn admin(&self, i: usize) -> Result<&Admin, String> {
        let inst = self
            .insts
            .get(i)
            .ok_or_else(|| format!("no server instance {i}"))?;
        inst.server
            .as_ref()
            .map(TestServer::admin)
            .ok_or_else(|| format!("server instance {i} is killed"))
    }

    fn kill(&mut self, i: usize) -> Result<(), String> {
        let inst = self.insts.get_mut(i).ok_or("no such instance")?;
        if let Some(s) = inst.server.take() {
            s.shutdown();
        }
        Ok(())
    }

    fn revive(&mut self, i: usize, from_data: bool) -> Result<(), String> {
        if from_data {
            let p = self
                .data_file
                .clone()
                .ok_or("revive fromData needs \"persist\": true in server")?;
            if self.insts.iter().any(|x| x.server.is_some()) {
                return Err("revive fromData needs every instance killed first".into());
            }
            self.store = Store::with_data_file(&p).map_err(|e| format!("data file: {e}"))?;
        }
        let store = self.store.clone();
        let inst = self.insts.get_mut(i).ok_or("no such instance")?;
        if inst.server.is_some() {
            return Err(format!("instance {i} is running"));
        }
        // The port was just released; binding it again may need a moment.
        let mut last = String::new();
        for _ in 0..50 {
            match TestServer::builder()
                .port(inst.addr.port())
                .hold(inst.hold)
                .lag(inst.lag)
                .store(store.clone())
                .start()
            {
                Ok(s) => {
                    inst.server = Some(s);
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(ms(100));
        }
        Err(format!("cannot restart instance {i} on its port: {last}"))
    }

    /// Runs one admin step; returns what it produced for `as` (release key, branch, key id)
    /// and, for publishes, the message id.
    pub fn admin_step(
        &mut self,
        op: &str,
        step: &Value,
        default_app: &str,
    ) -> Result<Option<(String, Option<i64>)>, String> {
        let on = step.get("on").and_then(Value::as_u64).unwrap_or(0) as usize;
        let app = opt_str(step, "app").unwrap_or(default_app).to_string();
        let cluster = opt_str(step, "cluster").unwrap_or("default").to_string();
        let ns = opt_str(step, "namespace")
            .unwrap_or("application")
            .to_string();
        let e = |x: apolloconf_testserver::AdminError| format!("{op}: {x}");
        let release = |r: apolloconf_testserver::Release| Some((r.release_key, Some(r.message_id)));
        let mid = |id: i64| Some((id.to_string(), Some(id)));
        Ok(match op {
            "create_app" => {
                self.store.create_app(&app).map_err(e)?;
                None
            }
            "create_namespace" => {
                let format = match opt_str(step, "format") {
                    Some(f) => Format::parse(f).ok_or_else(|| format!("unknown format {f}"))?,
                    None => Format::of_namespace(field_str(step, "name")?),
                };
                let public = step.get("public").and_then(Value::as_bool).unwrap_or(false);
                let name = self
                    .store
                    .create_namespace(&app, field_str(step, "name")?, format, public)
                    .map_err(e)?;
                Some((name, None))
            }
            "publish" => {
                let a = &self.store;
                let r = if let Some(c) = opt_str(step, "content") {
                    a.publish_content(&app, &cluster, &ns, c).map_err(e)?
                } else {
                    a.publish(&app, &cluster, &ns, items(step)?).map_err(e)?
                };
                release(r)
            }
            "publish_burst" => {
                let count = field_u64(step, "count")?;
                let key = opt_str(step, "key").unwrap_or("n");
                let a = &self.store;
                let mut last = None;
                for i in 1..=count {
                    let mut it = items(step).unwrap_or_default();
                    it.push((key.to_string(), i.to_string()));
                    last = Some(a.publish(&app, &cluster, &ns, it).map_err(e)?);
                }
                last.and_then(release)
            }
            "rollback" => release(self.store.rollback(&app, &cluster, &ns).map_err(e)?),
            "gray_branch" => {
                let b = self.store.create_branch(&app, &cluster, &ns).map_err(e)?;
                Some((b, None))
            }
            "gray_publish" => release(
                self.store
                    .gray_publish(&app, &cluster, &ns, items(step)?)
                    .map_err(e)?,
            ),
            "gray_rules" => {
                let rules: Vec<GrayRule> = serde_json::from_value(
                    step.get("rules").cloned().unwrap_or(Value::Array(vec![])),
                )
                .map_err(|x| format!("gray_rules: {x}"))?;
                mid(self
                    .store
                    .set_gray_rules(&app, &cluster, &ns, rules)
                    .map_err(e)?)
            }
            "gray_active" => {
                let active = step.get("active").and_then(Value::as_bool).unwrap_or(true);
                mid(self
                    .store
                    .set_branch_active(&app, &cluster, &ns, active)
                    .map_err(e)?)
            }
            "gray_merge" => release(self.store.merge_branch(&app, &cluster, &ns).map_err(e)?),
            "gray_delete" => mid(self.store.delete_branch(&app, &cluster, &ns).map_err(e)?),
            "access_key_add" => {
                let mode = match opt_str(step, "mode").unwrap_or("FILTER") {
                    "FILTER" => AccessKeyMode::Filter,
                    "OBSERVER" => AccessKeyMode::Observer,
                    m => return Err(format!("unknown access key mode {m}")),
                };
                let k = self
                    .store
                    .add_access_key(&app, field_str(step, "secret")?, mode)
                    .map_err(e)?;
                let enabled = step.get("enabled").and_then(Value::as_bool).unwrap_or(true);
                if !enabled {
                    self.store
                        .set_access_key_enabled(&app, k.id, false)
                        .map_err(e)?;
                }
                Some((k.id.to_string(), None))
            }
            "access_key_enable" => {
                let id = key_id(step)?;
                let enabled = step.get("enabled").and_then(Value::as_bool).unwrap_or(true);
                self.store
                    .set_access_key_enabled(&app, id, enabled)
                    .map_err(e)?;
                None
            }
            "access_key_remove" => {
                let id = key_id(step)?;
                self.store.remove_access_key(&app, id).map_err(e)?;
                None
            }
            "switches" => {
                let a = &self.store;
                a.set_switches(switches(step, a.switches())?);
                None
            }
            "fault" => {
                let endpoint: Endpoint =
                    serde_json::from_value(step.get("endpoint").cloned().unwrap_or(Value::Null))
                        .map_err(|x| format!("fault.endpoint: {x}"))?;
                let action: FaultAction =
                    serde_json::from_value(step.get("action").cloned().unwrap_or(Value::Null))
                        .map_err(|x| format!("fault.action: {x}"))?;
                let mut f = Fault::new(endpoint, action);
                if let Some(n) = step.get("times").and_then(Value::as_u64) {
                    f = f.times(n as u32);
                }
                self.admin(on)?.inject_fault(f);
                None
            }
            "clear_faults" => {
                self.admin(on)?.clear_faults();
                None
            }
            "hold" => {
                self.admin(on)?.set_hold(ms(field_u64(step, "ms")?));
                self.insts[on].hold = ms(field_u64(step, "ms")?);
                None
            }
            "lag" => {
                self.admin(on)?.set_lag(ms(field_u64(step, "ms")?));
                self.insts[on].lag = ms(field_u64(step, "ms")?);
                None
            }
            "services" => {
                let list: Vec<ServiceInstance> = step
                    .get("config")
                    .and_then(Value::as_array)
                    .ok_or("services: config must be a list of URLs")?
                    .iter()
                    .filter_map(Value::as_str)
                    .map(ServiceInstance::config_service)
                    .collect();
                self.admin(on)?.set_config_services(list);
                None
            }
            "pause" => {
                self.admin(on)?.pause();
                None
            }
            "resume" => {
                self.admin(on)?
                    .resume()
                    .map_err(|x| format!("resume: {x}"))?;
                None
            }
            "restart" => {
                let down = step.get("downMs").and_then(Value::as_u64).unwrap_or(0);
                self.admin(on)?
                    .restart(ms(down))
                    .map_err(|x| format!("restart: {x}"))?;
                None
            }
            "kill" => {
                self.kill(on)?;
                None
            }
            "revive" => {
                let from_data = step
                    .get("fromData")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                self.revive(on, from_data)?;
                None
            }
            "clear_requests" => {
                self.admin(on)?.clear_requests();
                None
            }
            _ => return Err(format!("unknown step op {op:?}")),
        })
    }
}

/// Whether `op` is an admin step handled by [`Servers::admin_step`].
pub fn is_admin_op(op: &str) -> bool {
    matches!(
        op,
        "create_app"
            | "create_namespace"
            | "publish"
            | "publish_burst"
            | "rollback"
            | "gray_branch"
            | "gray_publish"
            | "gray_rules"
            | "gray_active"
            | "gray_merge"
            | "gray_delete"
            | "access_key_add"
            | "access_key_enable"
            | "access_key_remove"
            | "switches"
            | "fault"
            | "clear_faults"
            | "hold"
            | "lag"
            | "services"
            | "pause"
            | "resume"
            | "restart"
            | "kill"
            | "revive"
            | "clear_requests"
    )
}

fn key_id(step: &Value) -> Result<u64, String> {
    match step.get("key") {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| "bad key id".to_string()),
        Some(Value::String(s)) => s.parse().map_err(|_| format!("bad key id {s:?}")),
        _ => Err("access key step needs \"key\" (an id or ${name})".into()),
    }
}

/// The items of a publish: `configurations` (in order), then `generated`
/// (`{"count": N, "prefix": "k", "valueSize": S}`: keys `k0..`, values of S characters).
fn items(step: &Value) -> Result<Vec<(String, String)>, String> {
    let map = step.get("configurations").and_then(Value::as_object);
    let generated = step.get("generated");
    if map.is_none() && generated.is_none() {
        return Err("needs \"configurations\" (an object), \"generated\" or \"content\"".into());
    }
    let mut out: Vec<(String, String)> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect();
    if let Some(g) = generated {
        let count = g.get("count").and_then(Value::as_u64).unwrap_or(0);
        let prefix = g.get("prefix").and_then(Value::as_str).unwrap_or("k");
        let size = g.get("valueSize").and_then(Value::as_u64).unwrap_or(8) as usize;
        for i in 0..count {
            let mut v = format!("{i}-");
            while v.len() < size {
                v.push('x');
            }
            out.push((format!("{prefix}{i}"), v));
        }
    }
    Ok(out)
}

fn switches(v: &Value, mut s: Switches) -> Result<Switches, String> {
    if let Some(b) = v.get("incrementalSync").and_then(Value::as_bool) {
        s.incremental_sync = b;
    }
    if let Some(b) = v.get("releaseCache").and_then(Value::as_bool) {
        s.release_cache = b;
    }
    if let Some(n) = v.get("accessKeyToleranceMs").and_then(Value::as_u64) {
        s.access_key_tolerance_ms = n;
    }
    Ok(s)
}

/// The scenario variables that name servers: `url0`.., `urls`, `dead`, `dead2`.
pub fn server_vars(s: &Servers, vars: &mut HashMap<String, String>) {
    let urls: Vec<String> = (0..s.insts.len()).map(|i| s.url(i)).collect();
    for (i, u) in urls.iter().enumerate() {
        vars.insert(format!("url{i}"), u.clone());
    }
    vars.insert("urls".into(), urls.join(","));
    vars.insert("dead".into(), format!("http://127.0.0.1:{}", dead_port()));
    vars.insert("dead2".into(), format!("http://127.0.0.1:{}", dead_port()));
}

/// A loopback port nobody listens on (bound, then released).
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(9, |a| a.port())
}
