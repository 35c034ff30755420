//! Serving a directory of configuration files: `{appId}/{cluster}/{namespace}.{ext}`, plus
//! `{appId}/public.txt` listing the namespaces the app owns publicly. Polled every ~200 ms;
//! a changed file publishes a new release. A file is read again only when its length,
//! modification time or inode changed, or was modified in the last two seconds: an
//! unchanged directory costs a `stat` per file, whatever the files hold.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::state::{valid_app_id, valid_name};
use crate::store::Store;
use crate::types::Format;

type Key = (String, String, String);

/// Polls a directory and publishes changed files into a store.
pub(crate) struct DirWatcher {
    dir: PathBuf,
    store: Store,
    published: HashMap<Key, Vec<(String, String)>>,
    /// Each file as it was when its items were last published (or found published).
    seen: HashMap<PathBuf, Stamp>,
}

/// What `stat` says of a file: when it is the same as at the last read, the file holds
/// what it held then (unless written within [`SETTLE`] of it, see there).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: SystemTime,
    inode: u64,
}

/// A file modified this recently is read at every scan even if its stamp did not change:
/// where the file system keeps coarse times, two writes in a row can show the same one.
const SETTLE: Duration = Duration::from_secs(2);

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Stamp {
            len: m.len(),
            modified: m.modified().ok()?,
            inode,
        })
    }

    fn settled(&self) -> bool {
        self.modified.elapsed().is_ok_and(|age| age >= SETTLE)
    }
}

struct FileEntry {
    app: String,
    cluster: String,
    ns: String,
    items: Vec<(String, String)>,
}

fn read_dir_sorted(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(p) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn file_name(p: &Path) -> Option<String> {
    p.file_name()?.to_str().map(str::to_string)
}

impl DirWatcher {
    pub(crate) fn new(dir: PathBuf, store: Store) -> DirWatcher {
        DirWatcher {
            dir,
            store,
            published: HashMap::new(),
            seen: HashMap::new(),
        }
    }

    /// One scan: creates public namespaces, then publishes every file whose items changed.
    pub(crate) fn scan(&mut self) {
        let mut files: Vec<(PathBuf, Option<Stamp>, FileEntry)> = Vec::new();
        for app_dir in read_dir_sorted(&self.dir) {
            if !app_dir.is_dir() {
                continue;
            }
            let Some(app) = file_name(&app_dir).filter(|a| valid_app_id(a)) else {
                continue;
            };
            if let Ok(text) = std::fs::read_to_string(app_dir.join("public.txt")) {
                for line in text.lines().map(str::trim) {
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let format = Format::of_namespace(line);
                    let exists = self
                        .store
                        .data()
                        .own_namespace(&app, line)
                        .is_some_and(|n| n.public);
                    if !exists {
                        if let Err(e) = self.store.create_namespace(&app, line, format, true) {
                            log::warn!("{}: {e}", app_dir.join("public.txt").display());
                        }
                    }
                }
            }
            for cluster_dir in read_dir_sorted(&app_dir) {
                if !cluster_dir.is_dir() {
                    continue;
                }
                let Some(cluster) = file_name(&cluster_dir).filter(|c| valid_name(c)) else {
                    continue;
                };
                for f in read_dir_sorted(&cluster_dir) {
                    // Taken before the read: a write during it shows at the next scan.
                    let stamp = Stamp::of(&f);
                    if stamp.is_some_and(|s| s.settled() && self.seen.get(&f) == Some(&s)) {
                        continue;
                    }
                    if let Some(entry) = load_file(&app, &cluster, &f) {
                        files.push((f, stamp, entry));
                    }
                }
            }
        }
        for (path, stamp, f) in files {
            let key = (f.app.clone(), f.cluster.clone(), f.ns.clone());
            let remember = |seen: &mut HashMap<PathBuf, Stamp>| {
                if let Some(s) = stamp {
                    seen.insert(path.clone(), s);
                }
            };
            if self.published.get(&key) == Some(&f.items) {
                remember(&mut self.seen);
                continue;
            }
            if !self.published.contains_key(&key) {
                // Already released with these items (e.g. state loaded from a data file).
                let d = self.store.data();
                let canonical = d.normalize(&f.app, &f.ns);
                let same = d
                    .latest_release_now(&f.app, &f.cluster, &canonical)
                    .is_some_and(|r| r.items == f.items);
                drop(d);
                if same {
                    self.published.insert(key, f.items);
                    remember(&mut self.seen);
                    continue;
                }
            }
            match self
                .store
                .publish(&f.app, &f.cluster, &f.ns, f.items.clone())
            {
                Ok(r) => {
                    log::info!(
                        "published {}/{}/{} as {} (message {})",
                        f.app,
                        f.cluster,
                        f.ns,
                        r.release_key,
                        r.message_id
                    );
                    self.published.insert(key, f.items);
                    remember(&mut self.seen);
                }
                Err(e) => log::warn!("could not publish {}/{}/{}: {e}", f.app, f.cluster, f.ns),
            }
        }
    }

    /// Runs [`DirWatcher::scan`] every `interval` on a thread until `stop` is set.
    pub(crate) fn spawn(
        mut self,
        interval: Duration,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("apolloconf-testserver-dirwatch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    self.scan();
                }
            })
    }
}

fn load_file(app: &str, cluster: &str, path: &Path) -> Option<FileEntry> {
    if !path.is_file() {
        return None;
    }
    let name = file_name(path)?;
    let (stem, ext) = name.rsplit_once('.')?;
    let format = Format::parse(ext)?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("{}: {e}", path.display());
            return None;
        }
    };
    let (ns, items) = if format == Format::Properties {
        match crate::props::parse(&text) {
            Ok(items) => (stem.to_string(), items),
            Err(e) => {
                log::warn!("{}: {e}", path.display());
                return None;
            }
        }
    } else {
        (name.clone(), vec![("content".to_string(), text)])
    };
    if !valid_name(&ns) {
        return None;
    }
    Some(FileEntry {
        app: app.to_string(),
        cluster: cluster.to_string(),
        ns,
        items,
    })
}
