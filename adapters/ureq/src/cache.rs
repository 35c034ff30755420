//! The local cache directory: the Java client's layout and file format
//! (docs/protocol.md#cache-file), guarded against other local users.
//!
//! - The configured directory (`{root}/{appId}/config-cache`) is used when it can be
//!   written. Otherwise the fallback is a per-user directory:
//!   `$XDG_CACHE_HOME/apolloconf/...` or `$HOME/.cache/apolloconf/...` (from the
//!   environment the client was given), else a private directory in the temp dir,
//!   `{temp}/apolloconf-{uid}/...`, that the client creates with mode 0700 and checks
//!   before every use (a directory, not a symbolic link, owned by this process's user, no
//!   permission for group or others). A fallback that fails the check is refused: a
//!   warning, an error event, and the values then live only in memory.
//! - Temporary files (of the atomic write) and the writability probe are created
//!   exclusively (`O_CREAT|O_EXCL`, plus `O_NOFOLLOW`) under random names, so a file or
//!   symbolic link planted in advance is never followed or overwritten.
//! - A cache file is read only if it is a regular file (not a symbolic link), owned by
//!   this process's user, not writable by group or others, and no larger than
//!   [`MAX_CACHE_FILE`]; otherwise an error event says why and the client starts
//!   without it.
//!
//! This process's user is the effective uid, read from `/proc/self/status` (Linux) or,
//! where that does not exist, the owner of a file the client creates exclusively in the
//! temp directory (and removes at once); no `unsafe` call is needed.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::settings::Env;

/// The largest cache file read. A file holds at most what one HTTP answer held
/// ([`crate::http::MAX_BODY`]), but the properties format writes a non-ASCII character
/// as a `\uXXXX` escape: up to three times its size in the JSON answer (a 2-byte UTF-8
/// character becomes 6 bytes; the two comment lines at the top are shorter than the JSON
/// around the configurations). Anything bigger was not written by a client.
pub(crate) const MAX_CACHE_FILE: u64 = 3 * crate::http::MAX_BODY;

/// Where files are written when the configured directory cannot be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// The configured directory.
    Configured,
    /// A fallback whose top directory (`guard`, created by the client) is checked before
    /// every use. `strict`: no permission at all for group or others (the private temp
    /// directory); otherwise only no write permission (the per-user cache directory).
    Fallback { guard: PathBuf, strict: bool },
}

/// The cache directory in use.
#[derive(Debug, Clone)]
pub(crate) struct CacheDir {
    /// Where files are read from first (the configured directory).
    primary: PathBuf,
    /// Where files are written: the primary directory, or a fallback when the primary
    /// one is not writable.
    write_dir: PathBuf,
    kind: Kind,
    /// This process's (effective) user, when it could be found.
    uid: Option<u32>,
}

/// What reading one cache file found.
#[derive(Debug, Default)]
pub(crate) struct CacheRead {
    /// The bytes of the first acceptable file.
    pub(crate) bytes: Option<Vec<u8>>,
    /// Files (or directories) refused or unreadable, with the reason.
    pub(crate) problems: Vec<String>,
}

/// A random suffix for file names no other user can predict (the keys of the standard
/// library's `RandomState` are random per process).
fn random_suffix() -> String {
    use std::hash::BuildHasher;
    let n = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    format!("{n:016x}")
}

/// Create `path` for writing; fails if anything (a file, a symbolic link) is there.
fn create_exclusive(path: &Path) -> std::io::Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Never group- or other-writable, whatever the umask (a reader refuses such files).
        o.mode(0o644).custom_flags(libc::O_NOFOLLOW);
    }
    o.open(path)
}

/// Open `path` for reading without following a symbolic link (and without blocking on a
/// FIFO planted there).
fn open_no_follow(path: &Path) -> std::io::Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    o.open(path)
}

/// Create `dir` and its missing parents (mode 0700 where the client creates them, on
/// unix).
fn create_dirs(dir: &Path, private: bool) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    #[cfg(not(unix))]
    let _ = private;
    b.create(dir)
}

/// The effective uid of this process (see the module docs).
#[cfg(unix)]
pub(crate) fn own_uid() -> Option<u32> {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        // `Uid:	real	effective	saved	filesystem`
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok());
        if uid.is_some() {
            return uid;
        }
    }
    use std::os::unix::fs::MetadataExt;
    let probe = std::env::temp_dir().join(format!(".apolloconf-uid-{}", random_suffix()));
    let file = create_exclusive(&probe).ok()?;
    let uid = file.metadata().map(|m| m.uid());
    drop(file);
    let _ = fs::remove_file(&probe);
    uid.ok()
}

#[cfg(not(unix))]
pub(crate) fn own_uid() -> Option<u32> {
    None
}

/// Whether files can be created in `dir` (created if missing): an exclusive probe file.
fn writable(dir: &Path) -> Result<(), std::io::Error> {
    create_dirs(dir, false)?;
    let probe = dir.join(format!(".apolloconf-probe-{}", random_suffix()));
    drop(create_exclusive(&probe)?);
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Check a fallback's top directory: a real directory (not a symbolic link), owned by
/// `uid`, without permissions for group or others (`strict`) or at least not writable
/// by them.
fn check_guard(dir: &Path, uid: Option<u32>, strict: bool) -> Result<(), String> {
    let meta = fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!("{} is a symbolic link", dir.display()));
    }
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Some(uid) = uid else {
            return Err("cannot tell which user this process runs as".to_string());
        };
        if meta.uid() != uid {
            return Err(format!(
                "{} is owned by uid {}, not by this process's user (uid {uid})",
                dir.display(),
                meta.uid()
            ));
        }
        let forbidden = if strict { 0o077 } else { 0o022 };
        if meta.mode() & forbidden != 0 {
            return Err(format!(
                "{} has mode {:o}: {} by group or others",
                dir.display(),
                meta.mode() & 0o7777,
                if strict { "usable" } else { "writable" }
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (uid, strict);
    Ok(())
}

/// A fallback directory: its top directory (`guard`, created and checked), and below it
/// `dir`.
struct Candidate {
    guard: PathBuf,
    strict: bool,
}

impl Candidate {
    fn write_dir(&self, dir: &str) -> PathBuf {
        self.guard.join(dir)
    }

    /// Create the top directory (mode 0700) if missing, check it, create `dir` below it.
    fn prepare(&self, dir: &str, uid: Option<u32>) -> Result<(), String> {
        create_dirs(&self.guard, true).map_err(|e| format!("{}: {e}", self.guard.display()))?;
        check_guard(&self.guard, uid, self.strict)?;
        let target = self.write_dir(dir);
        create_dirs(&target, true).map_err(|e| format!("{}: {e}", target.display()))
    }
}

/// The fallbacks in order of preference (see the module docs).
fn candidates(env: &Env, uid: Option<u32>) -> Vec<Candidate> {
    let mut out = Vec::new();
    #[cfg(unix)]
    {
        let absolute = |v: String| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
        let user = env
            .get("XDG_CACHE_HOME")
            .and_then(absolute)
            .or_else(|| env.get("HOME").and_then(absolute).map(|h| h.join(".cache")))
            .map(|base| base.join("apolloconf"));
        if let Some(guard) = user {
            out.push(Candidate {
                guard,
                strict: false,
            });
        }
        let temp = env
            .get("TMPDIR")
            .and_then(absolute)
            .unwrap_or_else(std::env::temp_dir);
        let name = match uid {
            Some(uid) => format!("apolloconf-{uid}"),
            None => "apolloconf-unknown-user".to_string(),
        };
        out.push(Candidate {
            guard: temp.join(name),
            strict: true,
        });
    }
    #[cfg(not(unix))]
    {
        // Elsewhere (Windows) the temp directory is already the user's own.
        let _ = (env, uid);
        out.push(Candidate {
            guard: std::env::temp_dir().join("apolloconf-cache"),
            strict: false,
        });
    }
    out
}

impl CacheDir {
    /// `{root}/{dir}`, or a per-user fallback when it cannot be created or written (see
    /// the module docs). `dir` is the core's cache directory below the root
    /// (`{appId}/config-cache`, see `apolloconf_core::cache::dir`). The second value
    /// lists problems to report as error events (no usable fallback).
    pub(crate) fn open(root: &Path, dir: &str, env: &Env) -> (CacheDir, Vec<String>) {
        let primary = root.join(dir);
        let uid = own_uid();
        let e = match writable(&primary) {
            Ok(()) => {
                let cache = CacheDir {
                    write_dir: primary.clone(),
                    primary,
                    kind: Kind::Configured,
                    uid,
                };
                return (cache, Vec::new());
            }
            Err(e) => e,
        };
        let mut refused = Vec::new();
        let list = candidates(env, uid);
        for c in &list {
            match c.prepare(dir, uid).and_then(|()| {
                writable(&c.write_dir(dir)).map_err(|e| format!("{}: {e}", c.guard.display()))
            }) {
                Ok(()) => {
                    let write_dir = c.write_dir(dir);
                    let skipped = if refused.is_empty() {
                        String::new()
                    } else {
                        format!(" (not {})", refused.join("; "))
                    };
                    log::warn!(
                        "cache directory {} is not writable ({e}); using {} instead{skipped}",
                        primary.display(),
                        write_dir.display()
                    );
                    let cache = CacheDir {
                        primary,
                        write_dir,
                        kind: Kind::Fallback {
                            guard: c.guard.clone(),
                            strict: c.strict,
                        },
                        uid,
                    };
                    return (cache, Vec::new());
                }
                Err(why) => refused.push(why),
            }
        }
        let message = format!(
            "cache directory {} is not writable ({e}), and no fallback is usable ({}); \
             values are kept in memory only",
            primary.display(),
            refused.join("; ")
        );
        log::warn!("{message}");
        // The last candidate (the private temp directory) stays the place writes try, so
        // that a later write works once the problem is gone (it is checked again).
        let (write_dir, kind) = match list.last() {
            Some(c) => (
                c.write_dir(dir),
                Kind::Fallback {
                    guard: c.guard.clone(),
                    strict: c.strict,
                },
            ),
            None => (primary.clone(), Kind::Configured),
        };
        let cache = CacheDir {
            primary,
            write_dir,
            kind,
            uid,
        };
        (cache, vec![message])
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

    /// Read one file if it may be trusted; `Ok(None)` when there is none.
    fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, String> {
        let shown = path.display();
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("{shown} is a symbolic link; not read"));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{shown}: {e}")),
        }
        let file = match open_no_follow(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{shown}: {e}")),
        };
        // The checks look at the file that was opened, not at the name again.
        let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{shown} is not a regular file; not read"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let Some(uid) = self.uid else {
                return Err(format!(
                    "{shown}: cannot tell which user this process runs as; not read"
                ));
            };
            if meta.uid() != uid {
                return Err(format!(
                    "{shown} is owned by uid {}, not by this process's user (uid {uid}); not read",
                    meta.uid()
                ));
            }
            if meta.mode() & 0o022 != 0 {
                return Err(format!(
                    "{shown} is writable by group or others (mode {:o}); not read",
                    meta.mode() & 0o7777
                ));
            }
        }
        let too_large = |n: u64| {
            format!("{shown} is too large ({n} bytes, at most {MAX_CACHE_FILE}); not read")
        };
        if meta.len() > MAX_CACHE_FILE {
            return Err(too_large(meta.len()));
        }
        let mut bytes = Vec::new();
        file.take(MAX_CACHE_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{shown}: {e}"))?;
        if bytes.len() as u64 > MAX_CACHE_FILE {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(Some(bytes))
    }

    /// Check the fallback's top directory; `Ok(false)` when it does not exist (yet).
    fn guard_ok(&self) -> Result<bool, String> {
        match &self.kind {
            Kind::Configured => Ok(true),
            Kind::Fallback { guard, strict } => match fs::symlink_metadata(guard) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                _ => check_guard(guard, self.uid, *strict).map(|()| true),
            },
        }
    }

    /// The cache file `name`: from the configured directory, else from the fallback.
    /// Files that may not be trusted (see the module docs) are skipped and listed as
    /// problems.
    pub(crate) fn read(&self, name: &str) -> CacheRead {
        let mut out = CacheRead::default();
        let mut dirs = vec![(&self.primary, true)];
        if self.write_dir != self.primary {
            dirs.push((&self.write_dir, false));
        }
        for (dir, is_primary) in dirs {
            let Some(path) = Self::inside(dir, name) else {
                out.problems
                    .push(format!("unsafe cache file name {name:?}"));
                return out;
            };
            if !is_primary {
                match self.guard_ok() {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(why) => {
                        out.problems
                            .push(format!("cache directory refused: {why}; not read"));
                        continue;
                    }
                }
            }
            match self.read_file(&path) {
                Ok(Some(b)) => {
                    out.bytes = Some(b);
                    return out;
                }
                Ok(None) => {}
                Err(why) => out.problems.push(why),
            }
        }
        out
    }

    /// Make sure the write directory exists and (for a fallback) may be trusted.
    fn prepare_write_dir(&self) -> Result<(), String> {
        match &self.kind {
            Kind::Configured => create_dirs(&self.write_dir, false)
                .map_err(|e| format!("{}: {e}", self.write_dir.display())),
            Kind::Fallback { guard, strict } => {
                create_dirs(guard, true).map_err(|e| format!("{}: {e}", guard.display()))?;
                check_guard(guard, self.uid, *strict)
                    .map_err(|why| format!("cache directory refused: {why}"))?;
                create_dirs(&self.write_dir, true)
                    .map_err(|e| format!("{}: {e}", self.write_dir.display()))
            }
        }
    }

    /// Write atomically: a new temp file (exclusive, random name) in the same directory,
    /// fsync, rename over the target.
    pub(crate) fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf, String> {
        let dir = &self.write_dir;
        let target =
            Self::inside(dir, name).ok_or_else(|| format!("unsafe cache file name {name:?}"))?;
        self.prepare_write_dir()?;
        let tmp = dir.join(format!(".{name}.{}.tmp", random_suffix()));
        let mut created = false;
        let result = (|| -> std::io::Result<()> {
            let mut f = create_exclusive(&tmp)?;
            created = true;
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
                // Only a file this client created is removed.
                if created {
                    let _ = fs::remove_file(&tmp);
                }
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

    #[test]
    fn random_suffixes_differ() {
        assert_ne!(random_suffix(), random_suffix());
        assert_eq!(random_suffix().len(), 16);
    }

    #[cfg(unix)]
    #[test]
    fn own_uid_is_the_owner_of_new_files() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("apolloconf-uid-test-{}", random_suffix()));
        fs::create_dir(&dir).unwrap();
        let owner = fs::metadata(&dir).unwrap().uid();
        fs::remove_dir(&dir).unwrap();
        assert_eq!(own_uid(), Some(owner));
    }
}
