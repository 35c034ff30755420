//! The local cache directory: the Java client's layout and file format
//! (docs/protocol.md#cache-file).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The cache directory in use.
#[derive(Debug, Clone)]
pub(crate) struct CacheDir {
    /// Where files are read from first (the configured directory).
    primary: PathBuf,
    /// Where files are written: the primary directory, or a temp-dir fallback when the
    /// primary one is not writable.
    write_dir: PathBuf,
}

fn writable(dir: &Path) -> Result<(), std::io::Error> {
    fs::create_dir_all(dir)?;
    let probe = dir.join(format!(
        ".apolloconf-probe-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::File::create(&probe)?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

impl CacheDir {
    /// `{root}/{dir}`, or the fallback under the system temp directory when it cannot be
    /// created or written. `dir` is the core's cache directory below the root
    /// (`{appId}/config-cache`, see `apolloconf_core::cache::dir`).
    pub(crate) fn open(root: &Path, dir: &str) -> CacheDir {
        let primary = root.join(dir);
        match writable(&primary) {
            Ok(()) => CacheDir {
                write_dir: primary.clone(),
                primary,
            },
            Err(e) => {
                let fallback = std::env::temp_dir().join("apolloconf-cache").join(dir);
                match writable(&fallback) {
                    Ok(()) => log::warn!(
                        "cache directory {} is not writable ({e}); using {} instead",
                        primary.display(),
                        fallback.display()
                    ),
                    Err(e2) => log::warn!(
                        "cache directory {} is not writable ({e}), nor is the fallback {} ({e2}); \
                         values will only be kept in memory",
                        primary.display(),
                        fallback.display()
                    ),
                }
                CacheDir {
                    primary,
                    write_dir: fallback,
                }
            }
        }
    }

    /// The directory files are written to.
    pub(crate) fn write_dir(&self) -> &Path {
        &self.write_dir
    }

    /// `dir/name`, only when `name` is one plain component that stays inside `dir`.
    fn inside(dir: &Path, name: &str) -> Option<PathBuf> {
        let mut comps = Path::new(name).components();
        let only = comps.next()?;
        if comps.next().is_some() || !matches!(only, std::path::Component::Normal(_)) {
            return None;
        }
        let path = dir.join(name);
        (path.parent() == Some(dir)).then_some(path)
    }

    /// The bytes of a cache file: from the configured directory, else from the fallback.
    /// `Ok(None)` when there is no file.
    pub(crate) fn read(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let mut dirs = vec![&self.primary];
        if self.write_dir != self.primary {
            dirs.push(&self.write_dir);
        }
        for dir in dirs {
            let Some(path) = Self::inside(dir, name) else {
                return Err(format!("unsafe cache file name {name:?}"));
            };
            match fs::read(&path) {
                Ok(b) => return Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Ok(None)
    }

    /// Write atomically: a temp file in the same directory, fsync, rename over the target.
    pub(crate) fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf, String> {
        let dir = &self.write_dir;
        let target =
            Self::inside(dir, name).ok_or_else(|| format!("unsafe cache file name {name:?}"))?;
        let tmp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| -> std::io::Result<()> {
            fs::create_dir_all(dir)?;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(contents)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &target)?;
            // Make the rename itself durable where directories can be opened.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(target),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(format!("{}: {e}", target.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_escape() {
        let d = Path::new("/x/y");
        assert!(CacheDir::inside(d, "a+b+c.properties").is_some());
        for bad in ["../a", "a/b", "..", ".", "/etc/passwd", ""] {
            assert!(CacheDir::inside(d, bad).is_none(), "{bad}");
        }
    }
}
