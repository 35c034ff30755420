//! The data of one logical Apollo (apps, namespaces, releases, release messages, gray
//! branches, access keys, switches) and the server-side lookup rules of the protocol.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::types::{AccessKey, AccessKeyMode, Format, GrayRule, Switches};

/// The app id a client without app id sends.
pub const PLACEHOLDER_APP: &str = "ApolloNoAppIdPlaceHolder";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NsDef {
    pub name: String,
    pub format: Format,
    pub public: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppDef {
    pub id: String,
    pub namespaces: Vec<NsDef>,
    pub access_keys: Vec<AccessKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseRec {
    pub id: u64,
    pub key: String,
    pub app: String,
    /// Cluster name (the branch name for gray releases).
    pub cluster: String,
    pub ns: String,
    pub items: Vec<(String, String)>,
    pub created: u64,
    pub abandoned: Option<u64>,
}

impl ReleaseRec {
    fn visible(&self, cutoff: u64) -> bool {
        self.created <= cutoff && self.abandoned.is_none_or(|a| a > cutoff)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BranchRec {
    pub app: String,
    pub cluster: String,
    pub ns: String,
    pub name: String,
    pub rules: Vec<GrayRule>,
    pub active: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MessageRec {
    pub id: i64,
    pub time: u64,
}

/// Everything that survives a restart with `--data`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Data {
    pub apps: BTreeMap<String, AppDef>,
    pub releases: Vec<ReleaseRec>,
    pub branches: Vec<BranchRec>,
    pub messages: BTreeMap<String, Vec<MessageRec>>,
    pub last_message_id: i64,
    pub last_key_id: u64,
    pub key_counter: u32,
    pub switches: Switches,
}

/// Per-request view of time: what an instance can see.
pub struct View<'a> {
    /// Releases/messages created after this instant (ms) are not yet visible.
    pub cutoff: u64,
    /// `messages.details` of a `/configs` request, when the release cache honours them.
    pub messages: Option<&'a HashMap<String, i64>>,
    /// The current time (used when `messages` forces a fresh read).
    pub now: u64,
}

impl View<'_> {
    fn cutoff_for(&self, data: &Data, key: &str) -> u64 {
        if let Some(m) = self.messages {
            if let Some(&wanted) = m.get(key) {
                if wanted > data.latest_message(key, self.cutoff).unwrap_or(-1) {
                    return self.now;
                }
            }
        }
        self.cutoff
    }
}

/// The outcome of a `/configs` lookup (before the 304 check).
pub struct ConfigLookup {
    pub cluster: String,
    pub release_key: String,
    pub items: Vec<(String, String)>,
}

/// Client identity used for gray rules.
pub struct Client<'a> {
    pub app: &'a str,
    pub ip: Option<&'a str>,
    pub label: Option<&'a str>,
}

/// Merges in docs/protocol.md#merge-order: `releases` are (app-first) release item lists; the last one
/// is applied first and earlier ones override, keeping the first-seen position.
pub fn merge(lists: &[&[(String, String)]]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut idx: HashMap<String, usize> = HashMap::new();
    for list in lists.iter().rev() {
        for (k, v) in list.iter() {
            match idx.get(k) {
                Some(&i) => out[i].1 = v.clone(),
                None => {
                    idx.insert(k.clone(), out.len());
                    out.push((k.clone(), v.clone()));
                }
            }
        }
    }
    out
}

/// Strips a trailing `.properties` (any case), cutting at the last dot.
pub fn strip_properties(ns: &str) -> &str {
    let n = ns.len();
    if n > 11 && ns.is_char_boundary(n - 11) && ns[n - 11..].eq_ignore_ascii_case(".properties") {
        &ns[..n - 11]
    } else {
        ns
    }
}

/// Whether an app id matches `[0-9a-zA-Z_-]+[0-9a-zA-Z_.-]*`.
pub fn valid_app_id(app: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut chars = app.chars();
    match chars.next() {
        Some(c) if ok(c) => chars.all(|c| ok(c) || c == '.'),
        _ => false,
    }
}

/// Whether a namespace or cluster name matches `[a-zA-Z0-9_.-]+` (admin input check).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn is_placeholder(app: &str) -> bool {
    app.eq_ignore_ascii_case(PLACEHOLDER_APP)
}

impl Data {
    /// Latest release-message id of an exact watch key visible at `cutoff`.
    pub fn latest_message(&self, key: &str, cutoff: u64) -> Option<i64> {
        self.messages
            .get(key)?
            .iter()
            .rev()
            .find(|m| m.time <= cutoff)
            .map(|m| m.id)
    }

    /// Records a release message and returns its id.
    pub fn add_message(&mut self, key: String, time: u64) -> i64 {
        self.last_message_id += 1;
        let id = self.last_message_id;
        self.messages
            .entry(key)
            .or_default()
            .push(MessageRec { id, time });
        id
    }

    /// Generates a release key (`yyyyMMddHHmmss-` + 16 lower-case hex, docs/protocol.md#release-keys-and-ids).
    pub fn new_release_key(&mut self, app: &str, cluster: &str, ns: &str, now: u64) -> String {
        self.key_counter = self.key_counter.wrapping_add(1) & 0x00ff_ffff;
        let mut h: u32 = 0x811c_9dc5;
        for b in app.bytes().chain(cluster.bytes()).chain(ns.bytes()) {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        let machine = std::process::id() & 0x00ff_ffff;
        format!(
            "{}-{:04x}{:06x}{:06x}",
            format_time(now, "", "", ""),
            h & 0xffff,
            machine,
            self.key_counter
        )
    }

    /// The app, its id matched exactly or else ignoring case (MySQL's default collation
    /// compares ignoring case, so the real server finds `sampleapp` for `SampleApp`).
    fn app(&self, app: &str) -> Option<&AppDef> {
        self.apps
            .get(app)
            .or_else(|| self.apps.values().find(|a| a.id.eq_ignore_ascii_case(app)))
    }

    /// The app's own namespace definition, matched case-insensitively.
    pub fn own_namespace(&self, app: &str, ns: &str) -> Option<&NsDef> {
        self.app(app)?
            .namespaces
            .iter()
            .find(|n| n.name.eq_ignore_ascii_case(ns))
    }

    /// A public namespace by name (case-insensitive): (owner app, definition).
    pub fn public_namespace(&self, ns: &str) -> Option<(&str, &NsDef)> {
        self.apps.values().find_map(|a| {
            a.namespaces
                .iter()
                .find(|n| n.public && n.name.eq_ignore_ascii_case(ns))
                .map(|n| (a.id.as_str(), n))
        })
    }

    /// docs/protocol.md#server-normalisation of a requested name (suffix stripped, canonical case).
    pub fn normalize(&self, app: &str, requested: &str) -> String {
        let stripped = strip_properties(requested);
        if let Some(n) = self.own_namespace(app, stripped) {
            return n.name.clone();
        }
        if let Some((_, n)) = self.public_namespace(stripped) {
            return n.name.clone();
        }
        stripped.to_string()
    }

    /// Whether `ns` (canonical) belongs to `app` (docs/protocol.md#configs-lookup step 5).
    pub fn belongs(&self, app: &str, ns: &str) -> bool {
        if ns == "application" {
            return true;
        }
        if is_placeholder(app) {
            return false;
        }
        self.app(app)
            .is_some_and(|a| a.namespaces.iter().any(|n| n.name == ns))
    }

    /// The latest release of (app, cluster, ns) visible at `cutoff`. App id and cluster
    /// name are compared ignoring case, as the real server's MySQL query does: a client
    /// configured with cluster `C1` gets the release stored in `c1` (and the answer
    /// names the stored cluster).
    fn latest_release(
        &self,
        app: &str,
        cluster: &str,
        ns: &str,
        cutoff: u64,
    ) -> Option<&ReleaseRec> {
        self.releases.iter().rev().find(|r| {
            r.ns == ns
                && r.app.eq_ignore_ascii_case(app)
                && r.cluster.eq_ignore_ascii_case(cluster)
                && r.visible(cutoff)
        })
    }

    /// Latest active (not abandoned) release of an exact (app, cluster, ns), now.
    pub fn latest_release_now(&self, app: &str, cluster: &str, ns: &str) -> Option<&ReleaseRec> {
        self.latest_release(app, cluster, ns, u64::MAX - 1)
    }

    /// The active gray branch of (app, cluster, ns), if any.
    pub fn branch(&self, app: &str, cluster: &str, ns: &str) -> Option<&BranchRec> {
        self.branches
            .iter()
            .find(|b| b.app == app && b.cluster == cluster && b.ns.eq_ignore_ascii_case(ns))
    }

    fn gray_release(
        &self,
        client: &Client<'_>,
        app: &str,
        cluster: &str,
        ns: &str,
        cutoff: u64,
    ) -> Option<&ReleaseRec> {
        let b = self.branches.iter().find(|b| {
            b.active
                && b.app.eq_ignore_ascii_case(app)
                && b.cluster.eq_ignore_ascii_case(cluster)
                && b.ns.eq_ignore_ascii_case(ns)
        })?;
        let hit = b.rules.iter().any(|r| {
            r.client_app_id.eq_ignore_ascii_case(client.app)
                && (r
                    .ips
                    .iter()
                    .any(|i| i == "*" || Some(i.as_str()) == client.ip)
                    || r.labels
                        .iter()
                        .any(|l| l == "*" || Some(l.as_str()) == client.label))
        });
        if !hit {
            return None;
        }
        self.latest_release(&b.app, &b.name, &b.ns, cutoff)
    }

    /// Cluster fallback with gray rules (docs/protocol.md#cluster-fallback).
    pub fn find_release(
        &self,
        client: &Client<'_>,
        config_app: &str,
        cluster: &str,
        data_center: Option<&str>,
        ns: &str,
        view: &View<'_>,
    ) -> Option<&ReleaseRec> {
        let mut order: Vec<&str> = Vec::with_capacity(3);
        if cluster != "default" {
            order.push(cluster);
        }
        if let Some(dc) = data_center.filter(|d| !d.is_empty() && *d != cluster) {
            order.push(dc);
        }
        order.push("default");
        for c in order {
            let cutoff = view.cutoff_for(self, &format!("{config_app}+{c}+{ns}"));
            if let Some(r) = self.gray_release(client, config_app, c, ns, cutoff) {
                return Some(r);
            }
            if let Some(r) = self.latest_release(config_app, c, ns, cutoff) {
                return Some(r);
            }
        }
        None
    }

    /// docs/protocol.md#configs-lookup steps 4-8 for a canonical namespace; `None` means 404.
    pub fn lookup_config(
        &self,
        client: &Client<'_>,
        cluster: &str,
        data_center: Option<&str>,
        ns: &str,
        view: &View<'_>,
    ) -> Option<ConfigLookup> {
        let app = client.app;
        let mut found: Vec<&ReleaseRec> = Vec::new();
        let mut resp_cluster = cluster.to_string();
        if !is_placeholder(app) {
            if let Some(r) = self.find_release(client, app, cluster, data_center, ns, view) {
                resp_cluster = r.cluster.clone();
                found.push(r);
            }
        }
        if !self.belongs(app, ns) {
            if let Some((owner, _)) = self.public_namespace(ns) {
                if owner != app {
                    if let Some(r) =
                        self.find_release(client, owner, cluster, data_center, ns, view)
                    {
                        found.push(r);
                    }
                }
            }
        }
        if found.is_empty() {
            return None;
        }
        let release_key = found
            .iter()
            .map(|r| r.key.as_str())
            .collect::<Vec<_>>()
            .join("+");
        let lists: Vec<&[(String, String)]> = found.iter().map(|r| r.items.as_slice()).collect();
        Some(ConfigLookup {
            cluster: resp_cluster,
            release_key,
            items: merge(&lists),
        })
    }

    /// docs/protocol.md#incremental-sync: merged configurations of the releases named in a client release key.
    pub fn old_items(&self, client_key: &str, only_active: bool) -> Option<Vec<(String, String)>> {
        let mut lists = Vec::new();
        for k in client_key.split('+') {
            if let Some(r) = self
                .releases
                .iter()
                .find(|r| r.key == k && (!only_active || r.abandoned.is_none()))
            {
                lists.push(r.items.as_slice());
            }
        }
        if lists.is_empty() {
            return None;
        }
        Some(merge(&lists))
    }

    /// docs/protocol.md#watch-keys (poll algorithm step 4): watch keys of each canonical namespace.
    pub fn watch_keys(
        &self,
        app: &str,
        cluster: &str,
        data_center: Option<&str>,
        namespaces: &[String],
    ) -> Vec<Vec<String>> {
        let keys_for = |a: &str, ns: &str, out: &mut Vec<String>| {
            if cluster != "default" {
                out.push(format!("{a}+{cluster}+{ns}"));
            }
            if let Some(dc) = data_center.filter(|d| !d.is_empty() && *d != cluster) {
                out.push(format!("{a}+{dc}+{ns}"));
            }
            out.push(format!("{a}+default+{ns}"));
        };
        let only_application = namespaces.iter().all(|n| n == "application");
        namespaces
            .iter()
            .map(|ns| {
                let mut keys = Vec::new();
                if !is_placeholder(app) {
                    keys_for(app, ns, &mut keys);
                }
                if !only_application && !self.belongs(app, ns) {
                    if let Some((owner, _)) = self.public_namespace(ns) {
                        if owner != app {
                            keys_for(owner, ns, &mut keys);
                        }
                    }
                }
                keys
            })
            .collect()
    }

    /// Enabled access-key secrets of an app by mode (app id compared case-insensitively).
    pub fn secrets(&self, app: &str, mode: AccessKeyMode) -> Vec<String> {
        self.apps
            .values()
            .filter(|a| a.id.eq_ignore_ascii_case(app))
            .flat_map(|a| a.access_keys.iter())
            .filter(|k| k.enabled && k.mode == mode)
            .map(|k| k.secret.clone())
            .collect()
    }
}

/// Formats epoch milliseconds as UTC `yyyyMMddHHmmss` with the given separators
/// (date separator, date/time separator, time separator).
pub fn format_time(ms: u64, dsep: &str, mid: &str, tsep: &str) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{dsep}{m:02}{dsep}{d:02}{mid}{:02}{tsep}{:02}{tsep}{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// A `java.util.Date` as Apollo's Gson writes it (`yyyy-MM-dd'T'HH:mm:ss.SSSZ`), in UTC:
/// `2026-12-02T17:11:19.596+0000`. The `timestamp` of Spring Boot's error pages.
pub fn gson_date(ms: u64) -> String {
    format!("{}.{:03}+0000", format_time(ms, "-", "T", ":"), ms % 1000)
}

/// `LocalDateTime.now().format(ISO_LOCAL_DATE_TIME)` in UTC: the fraction of the second
/// has as many digits as it needs (microsecond clock, trailing zeros dropped, none when
/// zero): `2026-12-02T17:11:19.5961`. The `timestamp` of Apollo's exception bodies.
pub fn iso_local_date_time(us: u64) -> String {
    let mut s = format_time(us / 1000, "-", "T", ":");
    let frac = us % 1_000_000;
    if frac != 0 {
        let digits = format!("{frac:06}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s
}

/// `java.util.Date#toString` in UTC (`EEE MMM dd HH:mm:ss zzz yyyy`), as Spring Boot's
/// "Whitelabel Error Page" prints it: `Wed Dec 02 17:11:19 UTC 2026`.
pub fn java_date_string(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = format_time(ms, "", "", "");
    let month: usize = t[4..6].parse().unwrap_or(1);
    let day = DAYS[((ms / 86_400_000) % 7) as usize];
    format!(
        "{day} {} {} {}:{}:{} UTC {}",
        MONTHS[month.clamp(1, 12) - 1],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..14],
        &t[0..4]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(format_time(0, "", "", ""), "19700101000000");
        assert_eq!(gson_date(1_576_478_257_344), "2019-12-16T06:37:37.344+0000");
        assert_eq!(gson_date(1_576_478_257_004), "2019-12-16T06:37:37.004+0000");
        assert_eq!(
            iso_local_date_time(1_576_478_257_344_120),
            "2019-12-16T06:37:37.34412"
        );
        assert_eq!(
            iso_local_date_time(1_576_478_257_000_000),
            "2019-12-16T06:37:37"
        );
        assert_eq!(
            iso_local_date_time(1_576_478_257_000_001),
            "2019-12-16T06:37:37.000001"
        );
        assert_eq!(
            java_date_string(1_576_478_257_344),
            "Mon Dec 16 06:37:37 UTC 2019"
        );
        assert_eq!(java_date_string(0), "Thu Jan 01 00:00:00 UTC 1970");
    }

    #[test]
    fn app_ids() {
        assert!(valid_app_id("100004458"));
        assert!(valid_app_id("a.b-c_d"));
        assert!(!valid_app_id(".a"));
        assert!(!valid_app_id("a+b"));
        assert!(!valid_app_id("é"));
        assert!(!valid_app_id(""));
    }

    #[test]
    fn strip() {
        assert_eq!(strip_properties("application.properties"), "application");
        assert_eq!(strip_properties("APPLICATION.PROPERTIES"), "APPLICATION");
        assert_eq!(strip_properties(".properties"), ".properties");
        assert_eq!(strip_properties("foo.yaml"), "foo.yaml");
    }
}
