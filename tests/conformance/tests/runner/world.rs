//! The test servers of one scenario run, and the admin steps that act on them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use apolloconf_testserver::{
    AccessKeyMode, Admin, Fault, Format, ServiceInstance, Store, Switches, TestServer,
};
use serde_json::Value;

use super::scenario::{
    Generated, InstanceSpec, Instances, KeyMode, KeyRef, Obj, ServerSpec, Step, SwitchesSpec,
};

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

/// The browser subject's page is on another origin than the servers: it needs the test
/// server's CORS extension (off by default, as the real server has none).
fn cors() -> bool {
    std::env::var("APOLLOCONF_SUBJECT").is_ok_and(|s| s == "browser")
}

impl Servers {
    /// Starts the instances described by the scenario's `server` object.
    pub fn start(spec: &ServerSpec, data_dir: &std::path::Path) -> Result<Servers, String> {
        let hold = spec.hold_ms.unwrap_or(30_000);
        let list: Vec<InstanceSpec> = match &spec.instances {
            None => vec![InstanceSpec::default()],
            Some(Instances::Count(n)) => (0..*n).map(|_| InstanceSpec::default()).collect(),
            Some(Instances::List(l)) => l.clone(),
        };
        let data_file = spec.persist.then(|| data_dir.join("apollo-state.json"));
        let store = match &data_file {
            Some(p) => Store::with_data_file(p).map_err(|e| format!("data file: {e}"))?,
            None => Store::new(),
        };
        let mut insts = Vec::new();
        for item in &list {
            let h = item.hold_ms.unwrap_or(hold);
            let l = item.lag_ms.unwrap_or(0);
            let server = TestServer::builder()
                .hold(ms(h))
                .lag(ms(l))
                .store(store.clone())
                .cors(cors())
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
        if let Some(sw) = &spec.switches {
            s.store.set_switches(switches(sw, s.store.switches()));
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
                .cors(cors())
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

    /// Runs `step` if it is an admin step: `None` if it is not one, else what it produced
    /// for `as` (release key, branch, key id, stored name) and, for releases, the message id.
    pub fn admin_step(
        &mut self,
        step: &Step,
        default_app: &str,
    ) -> Option<Result<Produced, String>> {
        let r = match step {
            Step::CreateApp { app } => {
                let app = app.as_deref().unwrap_or(default_app);
                self.store
                    .create_app(app)
                    .map(|()| None)
                    .map_err(e("create_app"))
            }
            Step::CreateNamespace {
                app,
                name,
                format,
                public,
                ..
            } => (|| {
                let app = app.as_deref().unwrap_or(default_app);
                let format = match format {
                    Some(f) => Format::parse(f).ok_or_else(|| format!("unknown format {f}"))?,
                    None => Format::of_namespace(name),
                };
                let stored = self
                    .store
                    .create_namespace(app, name, format, *public)
                    .map_err(e("create_namespace"))?;
                Ok(Some((stored, None)))
            })(),
            Step::Publish {
                app,
                cluster,
                namespace,
                configurations,
                generated,
                content,
                ..
            } => (|| {
                let (app, cluster, ns) = scope(app, cluster, namespace, default_app);
                // `parse_step` made sure that exactly one of the two kinds is given.
                let r = match content {
                    Some(c) => self.store.publish_content(app, cluster, ns, c),
                    None => self.store.publish(
                        app,
                        cluster,
                        ns,
                        items(configurations.as_ref(), generated.as_ref()),
                    ),
                };
                Ok(release(r.map_err(e("publish"))?))
            })(),
            Step::PublishBurst {
                app,
                cluster,
                namespace,
                count,
                key,
                configurations,
                gap_ms,
                ..
            } => (|| {
                let (app, cluster, ns) = scope(app, cluster, namespace, default_app);
                let key = key.as_deref().unwrap_or("n");
                let mut last = None;
                for i in 1..=*count {
                    if i > 1 && *gap_ms > 0 {
                        std::thread::sleep(std::time::Duration::from_millis(*gap_ms));
                    }
                    let mut it = items(configurations.as_ref(), None);
                    it.push((key.to_string(), i.to_string()));
                    last = Some(
                        self.store
                            .publish(app, cluster, ns, it)
                            .map_err(e("publish_burst"))?,
                    );
                }
                Ok(last.and_then(release))
            })(),
            Step::Rollback {
                app,
                cluster,
                namespace,
                ..
            } => {
                let (app, cluster, ns) = scope(app, cluster, namespace, default_app);
                self.store
                    .rollback(app, cluster, ns)
                    .map(release)
                    .map_err(e("rollback"))
            }
            Step::GrayBranch {
                app,
                cluster,
                namespace,
                ..
            } => {
                let (app, cluster, ns) = scope(app, cluster, namespace, default_app);
                self.store
                    .create_branch(app, cluster, ns)
                    .map(|b| Some((b, None)))
                    .map_err(e("gray_branch"))
            }
            Step::GrayPublish {
                app,
                cluster,
                namespace,
                configurations,
                generated,
                ..
            } => {
                let (app, cluster, ns) = scope(app, cluster, namespace, default_app);
                self.store
                    .gray_publish(
                        app,
                        cluster,
                        ns,
                        items(configurations.as_ref(), generated.as_ref()),
                    )
                    .map(release)
                    .map_err(e("gray_publish"))
            }
            Step::GrayRules {
                app,
                cluster,
                namespace,
                rules,
                ..
            } => {
                let (app, cluster, ns) = scope(app, cluster, namespace, default_app);
                self.store
                    .set_gray_rules(app, cluster, ns, rules.clone())
                    .map(message)
                    .map_err(e("gray_rules"))
            }
            Step::GrayActive {
                app,
                cluster,
                namespace,
                active,
                ..
            } => {
                let (app, cluster, ns) = scope(app, cluster, namespace, default_app);
                self.store
                    .set_branch_active(app, cluster, ns, *active)
                    .map(message)
                    .map_err(e("gray_active"))
            }
            Step::GrayMerge {
                app,
                cluster,
                namespace,
                ..
            } => {
                let (app, cluster, ns) = scope(app, cluster, namespace, default_app);
                self.store
                    .merge_branch(app, cluster, ns)
                    .map(release)
                    .map_err(e("gray_merge"))
            }
            Step::GrayDelete {
                app,
                cluster,
                namespace,
                ..
            } => {
                let (app, cluster, ns) = scope(app, cluster, namespace, default_app);
                self.store
                    .delete_branch(app, cluster, ns)
                    .map(message)
                    .map_err(e("gray_delete"))
            }
            Step::AccessKeyAdd {
                app,
                secret,
                mode,
                enabled,
                ..
            } => (|| {
                let app = app.as_deref().unwrap_or(default_app);
                let mode = match mode {
                    None | Some(KeyMode::Filter) => AccessKeyMode::Filter,
                    Some(KeyMode::Observer) => AccessKeyMode::Observer,
                };
                let k = self
                    .store
                    .add_access_key(app, secret, mode)
                    .map_err(e("access_key_add"))?;
                if !enabled {
                    self.store
                        .set_access_key_enabled(app, k.id, false)
                        .map_err(e("access_key_add"))?;
                }
                Ok(Some((k.id.to_string(), None)))
            })(),
            Step::AccessKeyEnable { app, key, enabled } => (|| {
                let app = app.as_deref().unwrap_or(default_app);
                self.store
                    .set_access_key_enabled(app, key_id(key)?, *enabled)
                    .map_err(e("access_key_enable"))?;
                Ok(None)
            })(),
            Step::AccessKeyRemove { app, key } => (|| {
                let app = app.as_deref().unwrap_or(default_app);
                self.store
                    .remove_access_key(app, key_id(key)?)
                    .map_err(e("access_key_remove"))?;
                Ok(None)
            })(),
            Step::Switches(sw) => {
                self.store.set_switches(switches(sw, self.store.switches()));
                Ok(None)
            }
            Step::Fault {
                on,
                endpoint,
                action,
                times,
            } => self.admin(*on).map(|a| {
                let mut f = Fault::new(*endpoint, action.clone());
                if let Some(n) = times {
                    f = f.times(*n);
                }
                a.inject_fault(f);
                None
            }),
            Step::ClearFaults { on } => self.admin(*on).map(|a| {
                a.clear_faults();
                None
            }),
            Step::Hold { on, ms: n } => self.admin(*on).map(|a| a.set_hold(ms(*n))).map(|()| {
                self.insts[*on].hold = ms(*n);
                None
            }),
            Step::Lag { on, ms: n } => self.admin(*on).map(|a| a.set_lag(ms(*n))).map(|()| {
                self.insts[*on].lag = ms(*n);
                None
            }),
            Step::Services { on, config } => self.admin(*on).map(|a| {
                a.set_config_services(
                    config
                        .iter()
                        .map(|u| ServiceInstance::config_service(u))
                        .collect(),
                );
                None
            }),
            Step::Pause { on } => self.admin(*on).map(|a| {
                a.pause();
                None
            }),
            Step::Resume { on } => self
                .admin(*on)
                .and_then(|a| a.resume().map_err(|x| format!("resume: {x}")))
                .map(|()| None),
            Step::Restart { on, down_ms } => self
                .admin(*on)
                .and_then(|a| a.restart(ms(*down_ms)).map_err(|x| format!("restart: {x}")))
                .map(|()| None),
            Step::Kill { on } => self.kill(*on).map(|()| None),
            Step::Revive { on, from_data } => self.revive(*on, *from_data).map(|()| None),
            Step::ClearRequests { on } => self.admin(*on).map(|a| {
                a.clear_requests();
                None
            }),
            _ => return None,
        };
        Some(r)
    }
}

fn e(op: &'static str) -> impl Fn(apolloconf_testserver::AdminError) -> String {
    move |x| format!("{op}: {x}")
}

/// What an admin step produced for `as`: the value and, for releases, the message id.
pub type Produced = Option<(String, Option<i64>)>;

fn release(r: apolloconf_testserver::Release) -> Produced {
    Some((r.release_key, Some(r.message_id)))
}

fn message(id: i64) -> Produced {
    Some((id.to_string(), Some(id)))
}

/// App, cluster and namespace of an admin step, with their defaults.
fn scope<'a>(
    app: &'a Option<String>,
    cluster: &'a Option<String>,
    namespace: &'a Option<String>,
    default_app: &'a str,
) -> (&'a str, &'a str, &'a str) {
    (
        app.as_deref().unwrap_or(default_app),
        cluster.as_deref().unwrap_or("default"),
        namespace.as_deref().unwrap_or("application"),
    )
}

fn key_id(key: &KeyRef) -> Result<u64, String> {
    key.0
        .parse()
        .map_err(|_| format!("bad access key id {:?}", key.0))
}

/// The items of a publish: `configurations` (in order; non-string values as JSON text),
/// then `generated` (keys `{prefix}0..`, values of `valueSize` characters).
fn items(configurations: Option<&Obj>, generated: Option<&Generated>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = configurations
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
        for i in 0..g.count {
            let mut v = format!("{i}-");
            while v.len() < g.value_size {
                v.push('x');
            }
            out.push((format!("{}{i}", g.prefix), v));
        }
    }
    out
}

fn switches(v: &SwitchesSpec, mut s: Switches) -> Switches {
    if let Some(b) = v.incremental_sync {
        s.incremental_sync = b;
    }
    if let Some(b) = v.release_cache {
        s.release_cache = b;
    }
    if let Some(n) = v.access_key_tolerance_ms {
        s.access_key_tolerance_ms = n;
    }
    s
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
