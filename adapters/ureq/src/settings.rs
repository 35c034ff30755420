//! Settings with the Java client's names and precedence (docs/protocol.md#settings):
//! values given to the builder, then environment variables, then `server.properties`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::Error;

/// Where `server.properties` is read when neither the builder nor
/// `APOLLO_PATH_SERVER_PROPERTIES` names another file.
#[cfg(windows)]
pub const DEFAULT_SERVER_PROPERTIES: &str = "C:/opt/settings/server.properties";
/// Where `server.properties` is read when neither the builder nor
/// `APOLLO_PATH_SERVER_PROPERTIES` names another file.
#[cfg(not(windows))]
pub const DEFAULT_SERVER_PROPERTIES: &str = "/opt/settings/server.properties";

/// The default root of the local cache (`apollo.cache-dir`; the core's
/// [`apolloconf_core::cache::DEFAULT_ROOT`]).
pub const DEFAULT_CACHE_DIR: &str = apolloconf_core::cache::DEFAULT_ROOT;

/// The environment variables the client reads.
///
/// [`Env::process`] reads the real process environment; [`Env::from_map`] uses a fixed
/// map, so tests (and programs that want full control) never depend on, or mutate, the
/// process environment.
#[derive(Clone, Default)]
pub struct Env {
    vars: Option<HashMap<String, String>>,
}

impl std::fmt::Debug for Env {
    /// Names only: values (such as `APOLLO_ACCESS_KEY_SECRET`) are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.vars {
            None => f.write_str("Env(process)"),
            Some(map) => {
                let mut names: Vec<&String> = map.keys().collect();
                names.sort();
                f.debug_tuple("Env").field(&names).finish()
            }
        }
    }
}

impl Env {
    /// The process environment (`std::env::var`).
    pub fn process() -> Env {
        Env { vars: None }
    }

    /// A fixed set of variables; nothing else is visible.
    pub fn from_map<I, K, V>(vars: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: Some(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// No variables at all.
    pub fn empty() -> Env {
        Env {
            vars: Some(HashMap::new()),
        }
    }

    /// A variable's value; empty or blank values count as absent.
    pub fn get(&self, name: &str) -> Option<String> {
        let v = match &self.vars {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        v.filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
    }
}

/// Where the client finds config services, after resolution. `Debug` hides passwords
/// embedded in the URLs (see [`redact_credentials`]).
#[derive(Clone, PartialEq, Eq)]
pub enum ServerSource {
    /// Meta-server address(es) (comma-separated): config services are discovered.
    Meta(String),
    /// Config-service URL(s) (comma-separated): used directly, no discovery.
    ConfigService(String),
}

impl std::fmt::Debug for ServerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, list) = match self {
            ServerSource::Meta(l) => ("Meta", l),
            ServerSource::ConfigService(l) => ("ConfigService", l),
        };
        f.debug_tuple(name)
            .field(&redact_credentials(list))
            .finish()
    }
}

/// `text` with the credentials of every URL in it hidden, for messages and logs:
/// `http://user:secret@host` becomes `http://user:***@host`, and a user name alone
/// (`http://token@host`, often a token) becomes `http://***@host`. Everything else is
/// kept; text without `://` is returned as it is.
///
/// ```
/// use apolloconf::settings::redact_credentials;
/// assert_eq!(
///     redact_credentials("http://apollo:s3cret@meta:8080,http://other:8080/x"),
///     "http://apollo:***@meta:8080,http://other:8080/x"
/// );
/// ```
pub fn redact_credentials(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("://") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the path, query or fragment, or where the text around
        // the URL goes on (a blank, a quote).
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = tail.get(..end).unwrap_or(tail);
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = authority.get(..at).unwrap_or("");
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(userinfo.get(..colon).unwrap_or(""));
                        out.push_str(":***@");
                    }
                    None => out.push_str("***@"),
                }
                // Go on after the `@`: a list's next URL may follow in this authority.
                rest = tail.get(at + 1..).unwrap_or("");
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Values given explicitly (builder or command line). Each `None` falls through to the
/// environment and then to `server.properties`.
#[derive(Clone, Default)]
pub struct Overrides {
    /// `app.id`.
    pub app_id: Option<String>,
    /// `apollo.meta`.
    pub meta: Option<String>,
    /// `apollo.config-service`.
    pub config_service: Option<String>,
    /// `env` (selects `{ENV}_META`).
    pub env: Option<String>,
    /// `apollo.cluster`.
    pub cluster: Option<String>,
    /// `idc`.
    pub idc: Option<String>,
    /// `apollo.label`.
    pub label: Option<String>,
    /// `apollo.access-key.secret`.
    pub secret: Option<String>,
    /// `apollo.cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// The `server.properties` file to read.
    pub server_properties: Option<PathBuf>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("app_id", &self.app_id)
            .field("meta", &self.meta.as_deref().map(redact_credentials))
            .field(
                "config_service",
                &self.config_service.as_deref().map(redact_credentials),
            )
            .field("env", &self.env)
            .field("cluster", &self.cluster)
            .field("idc", &self.idc)
            .field("label", &self.label)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("cache_dir", &self.cache_dir)
            .field("server_properties", &self.server_properties)
            .finish()
    }
}

/// The settings after applying the precedence rules.
#[derive(Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The application id.
    pub app_id: String,
    /// Where config services come from; `None` when nothing was configured anywhere.
    pub servers: Option<ServerSource>,
    /// The cluster (`apollo.cluster`, else the data center, else `default`).
    pub cluster: String,
    /// The data center (`idc`).
    pub idc: Option<String>,
    /// The gray-release label.
    pub label: Option<String>,
    /// The access-key secret (never printed by `Debug`).
    pub secret: Option<String>,
    /// The cache root (`{root}/{appId}/config-cache` holds the files).
    pub cache_root: PathBuf,
    /// The `server.properties` file consulted (it may not exist).
    pub server_properties: PathBuf,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("app_id", &self.app_id)
            .field("servers", &self.servers)
            .field("cluster", &self.cluster)
            .field("idc", &self.idc)
            .field("label", &self.label)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("cache_root", &self.cache_root)
            .field("server_properties", &self.server_properties)
            .finish()
    }
}

/// Read `server.properties` (UTF-8, an optional BOM skipped, Java properties syntax). A
/// missing file is an empty map; an unreadable or malformed one is an error.
pub fn read_server_properties(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(BTreeMap::new());
        }
        Err(e) => {
            return Err(Error::ServerProperties {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    apolloconf_core::properties::load(text)
        .map(|values| values.to_map())
        .map_err(|e| Error::ServerProperties {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

fn clean(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Map an environment name the way the Java client does: upper case, `PROD` → `PRO`,
/// `FWS` → `FAT`.
pub fn normalize_env(env: &str) -> String {
    let e = env.trim().to_ascii_uppercase();
    match e.as_str() {
        "PROD" => "PRO".to_string(),
        "FWS" => "FAT".to_string(),
        _ => e,
    }
}

/// Apply the precedence rules: explicit values, then `env`, then `server.properties`.
///
/// # Errors
/// [`Error::MissingAppId`] when no app id is found anywhere, and
/// [`Error::ServerProperties`] when the properties file exists but cannot be read.
pub fn resolve(o: &Overrides, env: &Env) -> Result<Resolved, Error> {
    let sp_path = o
        .server_properties
        .clone()
        .or_else(|| env.get("APOLLO_PATH_SERVER_PROPERTIES").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SERVER_PROPERTIES));
    let sp = read_server_properties(&sp_path)?;
    let file = |k: &str| clean(sp.get(k).cloned());
    let pick = |given: &Option<String>, var: &str, key: &str| {
        clean(given.clone())
            .or_else(|| env.get(var))
            .or_else(|| file(key))
    };

    let app_id = pick(&o.app_id, "APP_ID", "app.id").ok_or_else(|| Error::MissingAppId {
        server_properties: sp_path.clone(),
    })?;
    let idc = pick(&o.idc, "IDC", "idc");
    let cluster = apolloconf_core::effective_cluster(
        pick(&o.cluster, "APOLLO_CLUSTER", "apollo.cluster").as_deref(),
        idc.as_deref(),
    );
    let label = pick(&o.label, "APOLLO_LABEL", "apollo.label");
    // Deprecated spellings the Java client still reads come after the current ones.
    let secret = pick(
        &o.secret,
        "APOLLO_ACCESS_KEY_SECRET",
        "apollo.access-key.secret",
    )
    .or_else(|| env.get("APOLLO_ACCESSKEY_SECRET"))
    .or_else(|| file("apollo.accesskey.secret"));
    let cache_root = o
        .cache_dir
        .clone()
        .or_else(|| env.get("APOLLO_CACHE_DIR").map(PathBuf::from))
        .or_else(|| file("apollo.cache-dir").map(PathBuf::from))
        .or_else(|| env.get("APOLLO_CACHEDIR").map(PathBuf::from))
        .or_else(|| file("apollo.cacheDir").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR));

    // Explicit values win; between sources, a config service (no discovery) beats a meta
    // server, as in the Java ConfigServiceLocator.
    let servers = if let Some(cs) = clean(o.config_service.clone()) {
        Some(ServerSource::ConfigService(cs))
    } else if let Some(m) = clean(o.meta.clone()) {
        Some(ServerSource::Meta(m))
    } else if let Some(cs) = env
        .get("APOLLO_CONFIG_SERVICE")
        .or_else(|| file("apollo.config-service"))
        .or_else(|| env.get("APOLLO_CONFIGSERVICE"))
        .or_else(|| file("apollo.configService"))
    {
        Some(ServerSource::ConfigService(cs))
    } else if let Some(m) = env.get("APOLLO_META").or_else(|| file("apollo.meta")) {
        Some(ServerSource::Meta(m))
    } else {
        let which = clean(o.env.clone())
            .or_else(|| env.get("ENV"))
            .or_else(|| file("env"));
        which
            .map(|e| normalize_env(&e))
            .and_then(|e| env.get(&format!("{e}_META")))
            .map(ServerSource::Meta)
    };

    Ok(Resolved {
        app_id,
        servers,
        cluster,
        idc,
        label,
        secret,
        cache_root,
        server_properties: sp_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none_file() -> Overrides {
        Overrides {
            server_properties: Some(PathBuf::from("/nonexistent/apolloconf/server.properties")),
            ..Overrides::default()
        }
    }

    #[test]
    fn env_names_and_precedence() {
        let env = Env::from_map([
            ("APP_ID", "A"),
            ("APOLLO_META", "http://m:8080"),
            ("IDC", "dc1"),
        ]);
        let r = resolve(&none_file(), &env).unwrap();
        assert_eq!(r.app_id, "A");
        assert_eq!(r.servers, Some(ServerSource::Meta("http://m:8080".into())));
        assert_eq!(r.cluster, "dc1");
        let mut o = none_file();
        o.app_id = Some("B".into());
        o.cluster = Some("c".into());
        let r = resolve(&o, &env).unwrap();
        assert_eq!((r.app_id.as_str(), r.cluster.as_str()), ("B", "c"));
    }

    #[test]
    fn env_specific_meta() {
        let env = Env::from_map([("APP_ID", "A"), ("ENV", "prod"), ("PRO_META", "http://pro")]);
        let r = resolve(&none_file(), &env).unwrap();
        assert_eq!(r.servers, Some(ServerSource::Meta("http://pro".into())));
        let env = Env::from_map([("APP_ID", "A"), ("ENV", "FWS"), ("FAT_META", "http://fat")]);
        assert_eq!(
            resolve(&none_file(), &env).unwrap().servers,
            Some(ServerSource::Meta("http://fat".into()))
        );
    }

    #[test]
    fn config_service_beats_meta() {
        let env = Env::from_map([
            ("APP_ID", "A"),
            ("APOLLO_META", "http://m"),
            ("APOLLO_CONFIG_SERVICE", "http://c"),
        ]);
        let r = resolve(&none_file(), &env).unwrap();
        assert_eq!(
            r.servers,
            Some(ServerSource::ConfigService("http://c".into()))
        );
        let mut o = none_file();
        o.meta = Some("http://explicit".into());
        assert_eq!(
            resolve(&o, &env).unwrap().servers,
            Some(ServerSource::Meta("http://explicit".into()))
        );
    }

    #[test]
    fn deprecated_spellings_come_last() {
        let env = Env::from_map([
            ("APP_ID", "A"),
            ("APOLLO_CONFIGSERVICE", "http://old"),
            ("APOLLO_ACCESSKEY_SECRET", "s"),
        ]);
        let r = resolve(&none_file(), &env).unwrap();
        assert_eq!(
            r.servers,
            Some(ServerSource::ConfigService("http://old".into()))
        );
        assert_eq!(r.secret.as_deref(), Some("s"));
        let env = Env::from_map([
            ("APP_ID", "A"),
            ("APOLLO_CONFIGSERVICE", "http://old"),
            ("APOLLO_CONFIG_SERVICE", "http://new"),
        ]);
        let r = resolve(&none_file(), &env).unwrap();
        assert_eq!(
            r.servers,
            Some(ServerSource::ConfigService("http://new".into()))
        );
    }

    #[test]
    fn credentials_are_redacted() {
        let cases = [
            ("no url here", "no url here"),
            ("http://host:8080/x", "http://host:8080/x"),
            ("http://u:p@h:1", "http://u:***@h:1"),
            (
                "https://tok@h/p?q=http://a:b@c",
                "https://***@h/p?q=http://a:***@c",
            ),
            (
                "http://u:p@h1,http://c:d@h2/x",
                "http://u:***@h1,http://c:***@h2/x",
            ),
            ("http://h1,http://c:d@h2", "http://h1,http://c:***@h2"),
            ("http://u:p,w@h", "http://u:***@h"),
            ("http://u:p@ss@h/z", "http://u:***@h/z"),
            (
                "invalid server URL \"ftp://u:secret@h\": x",
                "invalid server URL \"ftp://u:***@h\": x",
            ),
            (
                "see http://u:p@h and https://v:q@i.",
                "see http://u:***@h and https://v:***@i.",
            ),
            ("://", "://"),
            ("x://@", "x://***@"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_credentials(input), want, "{input}");
        }
        let d = format!("{:?}", ServerSource::Meta("http://u:pw@m".into()));
        assert_eq!(d, "Meta(\"http://u:***@m\")");
    }

    #[test]
    fn missing_app_id() {
        assert!(matches!(
            resolve(&none_file(), &Env::empty()),
            Err(Error::MissingAppId { .. })
        ));
    }
}
