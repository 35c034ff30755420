//! [`Store`]: the shared, mutable state of one logical Apollo and its mutation operations.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::server::Instance;
use crate::state::{AppDef, BranchRec, Data, NsDef, ReleaseRec, now_ms, valid_app_id, valid_name};
use crate::types::{AccessKey, AccessKeyMode, Format, GrayRule, Release, Switches};

/// Error of an admin operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The request is invalid (HTTP 400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Something named by the request does not exist (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request conflicts with the current state (HTTP 409).
    #[error("conflict: {0}")]
    Conflict(String),
}

impl AdminError {
    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> u16 {
        match self {
            AdminError::BadRequest(_) => 400,
            AdminError::NotFound(_) => 404,
            AdminError::Conflict(_) => 409,
        }
    }
}

type Result<T> = std::result::Result<T, AdminError>;

struct StoreInner {
    data: Mutex<Data>,
    instances: Mutex<Vec<Weak<Instance>>>,
    persist: Option<PathBuf>,
}

/// The state of one logical Apollo: apps, namespaces, releases, release messages, gray
/// branches, access keys and switches. Cloning gives another handle to the same state, so
/// several server instances can serve it (see [`crate::TestServerBuilder::store`]).
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Items of a publish: key/value pairs in order.
pub type Items = Vec<(String, String)>;

impl Store {
    /// An empty in-memory store.
    pub fn new() -> Store {
        Store {
            inner: Arc::new(StoreInner {
                data: Mutex::new(Data::default()),
                instances: Mutex::new(Vec::new()),
                persist: None,
            }),
        }
    }

    /// A store persisted to `path`: loaded from it if it exists, rewritten atomically (temp
    /// file + rename) after every change.
    pub fn with_data_file(path: &Path) -> std::io::Result<Store> {
        let data = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<Data>(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Data::default(),
            Err(e) => return Err(e),
        };
        let store = Store {
            inner: Arc::new(StoreInner {
                data: Mutex::new(data),
                instances: Mutex::new(Vec::new()),
                persist: Some(path.to_path_buf()),
            }),
        };
        store.save(&lock(&store.inner.data))?;
        Ok(store)
    }

    pub(crate) fn data(&self) -> MutexGuard<'_, Data> {
        lock(&self.inner.data)
    }

    pub(crate) fn attach(&self, inst: &Arc<Instance>) {
        let mut v = lock(&self.inner.instances);
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(inst));
    }

    fn save(&self, data: &Data) -> std::io::Result<()> {
        let Some(path) = &self.inner.persist else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(data).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }

    /// Runs a mutation, persists, then wakes instances for the messages it returned.
    fn mutate<T>(
        &self,
        f: impl FnOnce(&mut Data, u64) -> Result<(T, Vec<(String, i64)>)>,
    ) -> Result<T> {
        let (value, messages) = {
            let mut data = self.data();
            let (value, messages) = f(&mut data, now_ms())?;
            if let Err(e) = self.save(&data) {
                log::error!("could not write the state file: {e}");
            }
            (value, messages)
        };
        if !messages.is_empty() {
            let instances: Vec<Arc<Instance>> = lock(&self.inner.instances)
                .iter()
                .filter_map(Weak::upgrade)
                .collect();
            for (key, id) in &messages {
                for inst in &instances {
                    inst.on_message(key, *id);
                }
            }
        }
        Ok(value)
    }

    /// Creates an app (with its private `application` namespace). Creating an existing app
    /// is not an error.
    pub fn create_app(&self, app: &str) -> Result<()> {
        if !valid_app_id(app) {
            return Err(AdminError::BadRequest(format!("invalid app id: {app}")));
        }
        self.mutate(|d, _| {
            ensure_app(d, app);
            Ok(((), vec![]))
        })
    }

    /// Creates a namespace of an app and returns its stored name. A non-properties name
    /// gets the format suffix appended when missing (`foo` + yaml → `foo.yaml`). Public
    /// names are unique across apps (case-insensitive).
    pub fn create_namespace(
        &self,
        app: &str,
        name: &str,
        format: Format,
        public: bool,
    ) -> Result<String> {
        if !valid_app_id(app) {
            return Err(AdminError::BadRequest(format!("invalid app id: {app}")));
        }
        let base = crate::state::strip_properties(name);
        if !valid_name(base) {
            return Err(AdminError::BadRequest(format!(
                "invalid namespace name: {name}"
            )));
        }
        let stored = if format == Format::Properties {
            if Format::of_namespace(base) != Format::Properties {
                return Err(AdminError::BadRequest(format!(
                    "a properties namespace may not end with a format suffix: {name}"
                )));
            }
            base.to_string()
        } else if Format::of_namespace(base) == format {
            base.to_string()
        } else {
            format!("{base}.{}", format.as_str())
        };
        self.mutate(|d, _| {
            if let Some(n) = d.own_namespace(app, &stored) {
                if n.public != public || n.format != format {
                    return Err(AdminError::Conflict(format!(
                        "namespace {stored} exists with other settings"
                    )));
                }
                return Ok((n.name.clone(), vec![]));
            }
            if public {
                if let Some((owner, _)) = d.public_namespace(&stored) {
                    return Err(AdminError::Conflict(format!(
                        "public namespace {stored} already exists in app {owner}"
                    )));
                }
            }
            let a = ensure_app(d, app);
            a.namespaces.push(NsDef {
                name: stored.clone(),
                format,
                public,
            });
            Ok((stored, vec![]))
        })
    }

    /// Publishes a release of (app, cluster, namespace) with the given items. Missing apps
    /// and private namespaces are created on the fly; a name that is another app's public
    /// namespace publishes the app's associated override of it.
    pub fn publish(&self, app: &str, cluster: &str, ns: &str, items: Items) -> Result<Release> {
        check_ids(app, cluster, ns)?;
        self.mutate(|d, now| {
            let canonical = resolve_namespace(d, app, ns);
            let r = add_release(d, app, cluster, &canonical, items, now);
            let msg = format!("{app}+{cluster}+{canonical}");
            let id = d.add_message(msg.clone(), now);
            Ok((
                Release {
                    release_key: r,
                    message_id: id,
                },
                vec![(msg, id)],
            ))
        })
    }

    /// Publishes the text of a non-properties namespace (stored as the single key `content`).
    pub fn publish_content(
        &self,
        app: &str,
        cluster: &str,
        ns: &str,
        content: &str,
    ) -> Result<Release> {
        if Format::of_namespace(ns) == Format::Properties {
            return Err(AdminError::BadRequest(format!(
                "{ns} is a properties namespace; publish configurations instead"
            )));
        }
        self.publish(
            app,
            cluster,
            ns,
            vec![("content".to_string(), content.to_string())],
        )
    }

    /// Rolls back: the latest release of (app, cluster, namespace) becomes abandoned and the
    /// previous one current; a release message is sent. Returns the now-current release key
    /// (empty when no release is left) and the message id.
    pub fn rollback(&self, app: &str, cluster: &str, ns: &str) -> Result<Release> {
        check_ids(app, cluster, ns)?;
        self.mutate(|d, now| {
            let canonical = d.normalize(app, ns);
            let idx = d
                .releases
                .iter()
                .rposition(|r| {
                    r.app == app
                        && r.cluster == cluster
                        && r.ns == canonical
                        && r.abandoned.is_none()
                })
                .ok_or_else(|| {
                    AdminError::NotFound(format!("no release of {app}/{cluster}/{canonical}"))
                })?;
            d.releases[idx].abandoned = Some(now);
            let current = d
                .latest_release_now(app, cluster, &canonical)
                .map(|r| r.key.clone())
                .unwrap_or_default();
            let msg = format!("{app}+{cluster}+{canonical}");
            let id = d.add_message(msg.clone(), now);
            Ok((
                Release {
                    release_key: current,
                    message_id: id,
                },
                vec![(msg, id)],
            ))
        })
    }

    /// Creates the gray branch of (app, cluster, namespace) and returns its generated name.
    pub fn create_branch(&self, app: &str, cluster: &str, ns: &str) -> Result<String> {
        check_ids(app, cluster, ns)?;
        self.mutate(|d, now| {
            let canonical = resolve_namespace(d, app, ns);
            if d.branch(app, cluster, &canonical).is_some() {
                return Err(AdminError::Conflict(format!(
                    "{app}/{cluster}/{canonical} already has a gray branch"
                )));
            }
            let name = d.new_release_key(app, cluster, &canonical, now);
            d.branches.push(BranchRec {
                app: app.to_string(),
                cluster: cluster.to_string(),
                ns: canonical,
                name: name.clone(),
                rules: Vec::new(),
                active: true,
            });
            Ok((name, vec![]))
        })
    }

    fn branch_name(d: &Data, app: &str, cluster: &str, ns: &str) -> Result<(String, String)> {
        let canonical = d.normalize(app, ns);
        let b = d.branch(app, cluster, &canonical).ok_or_else(|| {
            AdminError::NotFound(format!("no gray branch of {app}/{cluster}/{canonical}"))
        })?;
        Ok((b.name.clone(), b.ns.clone()))
    }

    /// Publishes a gray release on the branch (its complete configuration). The release
    /// message goes out under the parent cluster's key.
    pub fn gray_publish(
        &self,
        app: &str,
        cluster: &str,
        ns: &str,
        items: Items,
    ) -> Result<Release> {
        check_ids(app, cluster, ns)?;
        self.mutate(|d, now| {
            let (branch, canonical) = Self::branch_name(d, app, cluster, ns)?;
            let key = add_release(d, app, &branch, &canonical, items, now);
            let msg = format!("{app}+{cluster}+{canonical}");
            let id = d.add_message(msg.clone(), now);
            Ok((
                Release {
                    release_key: key,
                    message_id: id,
                },
                vec![(msg, id)],
            ))
        })
    }

    /// Replaces the gray rules of the branch; sends a release message (parent key).
    pub fn set_gray_rules(
        &self,
        app: &str,
        cluster: &str,
        ns: &str,
        rules: Vec<GrayRule>,
    ) -> Result<i64> {
        check_ids(app, cluster, ns)?;
        self.mutate(|d, now| {
            let (branch, canonical) = Self::branch_name(d, app, cluster, ns)?;
            if let Some(b) = d.branches.iter_mut().find(|b| b.name == branch) {
                b.rules = rules;
            }
            let msg = format!("{app}+{cluster}+{canonical}");
            let id = d.add_message(msg.clone(), now);
            Ok((id, vec![(msg, id)]))
        })
    }

    /// Activates or deactivates the branch (an inactive branch's rules are ignored).
    pub fn set_branch_active(
        &self,
        app: &str,
        cluster: &str,
        ns: &str,
        active: bool,
    ) -> Result<i64> {
        check_ids(app, cluster, ns)?;
        self.mutate(|d, now| {
            let (branch, canonical) = Self::branch_name(d, app, cluster, ns)?;
            if let Some(b) = d.branches.iter_mut().find(|b| b.name == branch) {
                b.active = active;
            }
            let msg = format!("{app}+{cluster}+{canonical}");
            let id = d.add_message(msg.clone(), now);
            Ok((id, vec![(msg, id)]))
        })
    }

    /// Merges the branch: its latest gray release's configuration is published as a new
    /// release of the parent cluster and the branch is deleted.
    pub fn merge_branch(&self, app: &str, cluster: &str, ns: &str) -> Result<Release> {
        check_ids(app, cluster, ns)?;
        self.mutate(|d, now| {
            let (branch, canonical) = Self::branch_name(d, app, cluster, ns)?;
            let items = d
                .latest_release_now(app, &branch, &canonical)
                .map(|r| r.items.clone())
                .ok_or_else(|| AdminError::NotFound("the gray branch has no release".into()))?;
            remove_branch(d, &branch, now);
            let key = add_release(d, app, cluster, &canonical, items, now);
            let msg = format!("{app}+{cluster}+{canonical}");
            let id = d.add_message(msg.clone(), now);
            Ok((
                Release {
                    release_key: key,
                    message_id: id,
                },
                vec![(msg, id)],
            ))
        })
    }

    /// Deletes the branch (its releases are abandoned); sends a release message.
    pub fn delete_branch(&self, app: &str, cluster: &str, ns: &str) -> Result<i64> {
        check_ids(app, cluster, ns)?;
        self.mutate(|d, now| {
            let (branch, canonical) = Self::branch_name(d, app, cluster, ns)?;
            remove_branch(d, &branch, now);
            let msg = format!("{app}+{cluster}+{canonical}");
            let id = d.add_message(msg.clone(), now);
            Ok((id, vec![(msg, id)]))
        })
    }

    /// Adds an enabled access key to an app (created if missing).
    pub fn add_access_key(
        &self,
        app: &str,
        secret: &str,
        mode: AccessKeyMode,
    ) -> Result<AccessKey> {
        if !valid_app_id(app) {
            return Err(AdminError::BadRequest(format!("invalid app id: {app}")));
        }
        if secret.is_empty() {
            return Err(AdminError::BadRequest("empty secret".into()));
        }
        self.mutate(|d, _| {
            d.last_key_id += 1;
            let key = AccessKey {
                id: d.last_key_id,
                secret: secret.to_string(),
                mode,
                enabled: true,
            };
            ensure_app(d, app).access_keys.push(key.clone());
            Ok((key, vec![]))
        })
    }

    /// Enables or disables an access key.
    pub fn set_access_key_enabled(&self, app: &str, id: u64, enabled: bool) -> Result<AccessKey> {
        self.mutate(|d, _| {
            let k = d
                .apps
                .get_mut(app)
                .and_then(|a| a.access_keys.iter_mut().find(|k| k.id == id))
                .ok_or_else(|| AdminError::NotFound(format!("access key {id} of {app}")))?;
            k.enabled = enabled;
            Ok((k.clone(), vec![]))
        })
    }

    /// Removes an access key.
    pub fn remove_access_key(&self, app: &str, id: u64) -> Result<()> {
        self.mutate(|d, _| {
            let a = d
                .apps
                .get_mut(app)
                .ok_or_else(|| AdminError::NotFound(format!("app {app}")))?;
            let before = a.access_keys.len();
            a.access_keys.retain(|k| k.id != id);
            if a.access_keys.len() == before {
                return Err(AdminError::NotFound(format!("access key {id} of {app}")));
            }
            Ok(((), vec![]))
        })
    }

    /// The access keys of an app.
    pub fn access_keys(&self, app: &str) -> Vec<AccessKey> {
        self.data()
            .apps
            .get(app)
            .map(|a| a.access_keys.clone())
            .unwrap_or_default()
    }

    /// Current switches.
    pub fn switches(&self) -> Switches {
        self.data().switches.clone()
    }

    /// Replaces the switches.
    pub fn set_switches(&self, switches: Switches) {
        let _ = self.mutate(|d, _| {
            d.switches = switches;
            Ok(((), vec![]))
        });
    }

    /// Forgets all apps, releases, branches, keys and switches. Release-message ids keep
    /// increasing (a reset never reuses an id).
    pub fn reset(&self) {
        let _ = self.mutate(|d, _| {
            let last = d.last_message_id;
            let key_id = d.last_key_id;
            *d = Data::default();
            d.last_message_id = last;
            d.last_key_id = key_id;
            Ok(((), vec![]))
        });
    }

    /// The id of the newest release message (0 when none was ever sent).
    pub fn last_message_id(&self) -> i64 {
        self.data().last_message_id
    }

    /// The state as JSON (apps, releases, branches, messages, switches), for debugging.
    pub fn dump_json(&self) -> String {
        serde_json::to_string(&*self.data()).unwrap_or_else(|_| "{}".into())
    }

    /// [`Store::dump_json`] with access-key secrets masked (what the admin API shows).
    pub(crate) fn dump_json_masked(&self) -> String {
        let mut d = self.data().clone();
        for a in d.apps.values_mut() {
            for k in &mut a.access_keys {
                *k = k.masked();
            }
        }
        serde_json::to_string(&d).unwrap_or_else(|_| "{}".into())
    }
}

fn check_ids(app: &str, cluster: &str, ns: &str) -> Result<()> {
    if !valid_app_id(app) {
        return Err(AdminError::BadRequest(format!("invalid app id: {app}")));
    }
    if !valid_name(cluster) {
        return Err(AdminError::BadRequest(format!(
            "invalid cluster name: {cluster}"
        )));
    }
    if !valid_name(crate::state::strip_properties(ns)) {
        return Err(AdminError::BadRequest(format!(
            "invalid namespace name: {ns}"
        )));
    }
    Ok(())
}

fn ensure_app<'a>(d: &'a mut Data, app: &str) -> &'a mut AppDef {
    d.apps.entry(app.to_string()).or_insert_with(|| AppDef {
        id: app.to_string(),
        namespaces: vec![NsDef {
            name: "application".into(),
            format: Format::Properties,
            public: false,
        }],
        access_keys: Vec::new(),
    })
}

/// Canonical name for a publish; creates the app and a private namespace when unknown.
fn resolve_namespace(d: &mut Data, app: &str, ns: &str) -> String {
    let canonical = d.normalize(app, ns);
    ensure_app(d, app);
    let known =
        d.own_namespace(app, &canonical).is_some() || d.public_namespace(&canonical).is_some();
    if !known {
        if let Some(a) = d.apps.get_mut(app) {
            a.namespaces.push(NsDef {
                name: canonical.clone(),
                format: Format::of_namespace(&canonical),
                public: false,
            });
        }
    }
    canonical
}

fn add_release(d: &mut Data, app: &str, cluster: &str, ns: &str, items: Items, now: u64) -> String {
    let key = d.new_release_key(app, cluster, ns, now);
    let id = d.releases.len() as u64 + 1;
    d.releases.push(ReleaseRec {
        id,
        key: key.clone(),
        app: app.to_string(),
        cluster: cluster.to_string(),
        ns: ns.to_string(),
        items,
        created: now,
        abandoned: None,
    });
    key
}

fn remove_branch(d: &mut Data, branch: &str, now: u64) {
    d.branches.retain(|b| b.name != branch);
    for r in d
        .releases
        .iter_mut()
        .filter(|r| r.cluster == branch && r.abandoned.is_none())
    {
        r.abandoned = Some(now);
    }
}
