//! The local cache layout, shared with the Java client (docs/protocol.md#cache-file).
//!
//! Files live at `{root}/{appId}/config-cache/{appId}+{cluster}+{namespace}.properties`.
//! The core knows the names below the root; hosts choose the root (a setting, else
//! [`DEFAULT_ROOT`]) and do the file IO. The file's bytes come from
//! [`Event::PersistCache`](crate::Event::PersistCache) and go back in as
//! [`Input::CacheFile`](crate::Input::CacheFile).

use alloc::string::String;

use crate::namespace::is_safe_file_component;

/// The default cache root (the Java client's `apollo.cache-dir` default).
#[cfg(windows)]
pub const DEFAULT_ROOT: &str = "C:\\opt\\data";
/// The default cache root (the Java client's `apollo.cache-dir` default).
#[cfg(not(windows))]
pub const DEFAULT_ROOT: &str = "/opt/data";

/// The folder below `{root}/{appId}` that holds the files.
pub const SUBDIR: &str = "config-cache";

/// `{appId}/config-cache`, the cache directory below the root (`/`-separated), or None
/// when the app id could escape the root.
pub fn dir(app_id: &str) -> Option<String> {
    is_safe_file_component(app_id).then(|| alloc::format!("{app_id}/{SUBDIR}"))
}

/// `{appId}+{cluster}+{namespace}.properties`, or None when a part could escape the
/// cache directory (see [`is_safe_file_component`]).
pub fn file_name(app_id: &str, cluster: &str, namespace: &str) -> Option<String> {
    let safe = [app_id, cluster, namespace]
        .iter()
        .all(|p| is_safe_file_component(p));
    safe.then(|| alloc::format!("{app_id}+{cluster}+{namespace}.properties"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(dir("SampleApp").as_deref(), Some("SampleApp/config-cache"));
        assert_eq!(dir("../x"), None);
        assert_eq!(
            file_name("A", "default", "application").as_deref(),
            Some("A+default+application.properties")
        );
        assert_eq!(file_name("A", "default", "a/b"), None);
    }
}
