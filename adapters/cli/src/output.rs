//! Output formats and the live `watch` view.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::SystemTime;

use std::collections::BTreeMap;

use apolloconf::{ChangeEvent, Client, Event, Namespace, Source, Status};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Format;

/// Stdout that remembers a broken pipe instead of panicking.
pub struct Out {
    w: std::io::Stdout,
    broken: bool,
}

impl Out {
    pub fn stdout() -> Out {
        Out {
            w: std::io::stdout(),
            broken: false,
        }
    }

    pub fn raw(&mut self, s: &str) {
        if !self.broken && self.w.write_all(s.as_bytes()).is_err() {
            self.broken = true;
        }
    }

    pub fn line(&mut self, s: &str) {
        self.raw(s);
        self.raw("\n");
    }

    pub fn flush(&mut self) {
        if !self.broken && self.w.flush().is_err() {
            self.broken = true;
        }
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Print key/value pairs (`None`: missing key) in a format.
    pub fn pairs(&mut self, format: Format, pairs: &[(String, Option<String>)]) {
        match format {
            Format::Table => {
                let width = pairs
                    .iter()
                    .map(|(k, _)| k.chars().count())
                    .max()
                    .unwrap_or(0);
                for (k, v) in pairs {
                    match v {
                        Some(v) => self.line(&format!("{k:<width$}  {v}")),
                        None => self.line(&format!("{k:<width$}  (not found)")),
                    }
                }
            }
            Format::Json => {
                let map: Map<String, Value> = pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                    .collect();
                self.line(&Value::Object(map).to_string());
            }
            Format::Properties => {
                let present: Vec<(&str, &str)> = pairs
                    .iter()
                    .filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v)))
                    .collect();
                self.raw(&apolloconf_core::properties::store_text(present));
            }
            Format::Env => {
                for (k, v) in pairs {
                    if let Some(v) = v {
                        self.line(&env_line(k, v));
                    }
                }
            }
            Format::Yaml => {
                for (k, v) in pairs {
                    let v = v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()));
                    self.line(&format!("{}: {v}", Value::String(k.clone())));
                }
            }
        }
    }
}

/// `db.url` → `DB_URL`; other characters become `_`; a leading digit gets a `_` prefix.
pub fn env_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// `KEY='value'` with the value single-quoted for POSIX shells.
pub fn env_line(key: &str, value: &str) -> String {
    format!("{}='{}'", env_name(key), value.replace('\'', "'\\''"))
}

/// A namespace as text in a format: YAML and JSON namespaces keep their own text in their
/// own format; otherwise the properties view is written.
pub fn export_text(ns: &Namespace, format: Format) -> String {
    let content = ns.content();
    let fmt = ns.format();
    match format {
        Format::Yaml if fmt.is_yaml() => content.unwrap_or_default().to_string(),
        Format::Json if fmt == apolloconf::Format::Json => content.unwrap_or_default().to_string(),
        Format::Json => {
            let map: Map<String, Value> = ns
                .properties()
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let mut s = serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Yaml => {
            let mut s = String::new();
            for (k, v) in ns.properties() {
                s.push_str(&format!(
                    "{}: {}\n",
                    Value::String(k.clone()),
                    Value::String(v.clone())
                ));
            }
            s
        }
        Format::Env => ns
            .properties()
            .iter()
            .map(|(k, v)| env_line(k, v) + "\n")
            .collect(),
        Format::Properties | Format::Table => apolloconf_core::properties::store_text(
            ns.properties()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        ),
    }
}

/// One line of `watch --format json`, fields in this order.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum JsonLine<'a> {
    #[serde(rename_all = "camelCase")]
    Snapshot {
        namespace: &'a str,
        release_key: Option<&'a str>,
        source: &'static str,
        configurations: &'a BTreeMap<String, String>,
    },
    Error {
        message: &'a str,
    },
    #[serde(rename_all = "camelCase")]
    Change {
        namespace: &'a str,
        release_key: Option<&'a str>,
        changes: Vec<JsonChange<'a>>,
    },
}

#[derive(Serialize)]
struct JsonChange<'a> {
    key: &'a str,
    old: Option<&'a str>,
    new: Option<&'a str>,
    kind: &'static str,
}

impl JsonLine<'_> {
    fn text(&self) -> String {
        // Plain strings and maps of strings: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `HH:MM:SS` (UTC) of a wall-clock time.
fn clock(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}Z", day / 3600, day % 3600 / 60, day % 60)
}

/// The `watch` view: JSON lines for programs, or a readable live view with a status line.
pub struct Watch {
    format: Format,
    out: Out,
    /// Namespaces whose snapshot was printed, with the (release key, source) printed.
    shown: HashMap<String, (Option<String>, Source)>,
    state: String,
    last_update: Option<(SystemTime, String)>,
    answered: u64,
    tty: bool,
    status_on_screen: bool,
    last_status: String,
}

impl Watch {
    pub fn new(format: Format, out: Out) -> Watch {
        Watch {
            format,
            out,
            shown: HashMap::new(),
            state: "connecting".to_string(),
            last_update: None,
            answered: 0,
            tty: std::io::stdout().is_terminal(),
            status_on_screen: false,
            last_status: String::new(),
        }
    }

    fn json(&self) -> bool {
        self.format == Format::Json
    }

    fn emit(&mut self, line: &str) {
        self.clear_status();
        self.out.line(line);
        self.out.flush();
    }

    fn clear_status(&mut self) {
        if self.status_on_screen {
            self.out.raw("\r\x1b[2K");
            self.status_on_screen = false;
        }
    }

    /// Print what the client holds now.
    pub fn start(&mut self, client: &Client) {
        let s = client.settings();
        if !self.json() {
            let server = match &s.servers {
                Some(apolloconf::ServerSource::Meta(m)) => format!("meta {m}"),
                Some(apolloconf::ServerSource::ConfigService(c)) => c.clone(),
                None => String::new(),
            };
            self.emit(&format!(
                "app {} · cluster {} · {server}",
                s.app_id, s.cluster
            ));
        }
        let snap = client.snapshot();
        for ns in snap.namespaces() {
            match (ns.source(), ns.status()) {
                (Source::None, Status::NotFound) => self.error(&format!(
                    "namespace {}: not found (404); it will show up when it is released",
                    ns.name()
                )),
                (Source::None, _) => self.error(&format!(
                    "namespace {}: no values yet (the server did not answer)",
                    ns.name()
                )),
                _ => self.snapshot(ns),
            }
        }
        self.refresh_state(client);
        self.status(client);
    }

    fn snapshot(&mut self, ns: &Namespace) {
        self.shown.insert(
            ns.name().to_string(),
            (ns.release_key().map(str::to_string), ns.source()),
        );
        if let Some(t) = ns.last_update() {
            self.last_update = Some((t, ns.name().to_string()));
        }
        if self.json() {
            let line = JsonLine::Snapshot {
                namespace: ns.name(),
                release_key: ns.release_key(),
                source: ns.source().as_str(),
                configurations: ns.configurations(),
            };
            self.emit(&line.text());
            return;
        }
        let header = format!(
            "── {} ({}, release {})",
            ns.name(),
            ns.source().as_str(),
            ns.release_key().unwrap_or("-")
        );
        self.emit(&header);
        match self.format {
            Format::Table => {
                let width = ns
                    .properties()
                    .keys()
                    .map(|k| k.chars().count())
                    .max()
                    .unwrap_or(0);
                let lines: Vec<String> = ns
                    .properties()
                    .iter()
                    .map(|(k, v)| format!("  {k:<width$}  {v}"))
                    .collect();
                for l in lines {
                    self.emit(&l);
                }
            }
            f => {
                let text = export_text(ns, f);
                self.clear_status();
                self.out.raw(&text);
                self.out.flush();
            }
        }
    }

    fn error(&mut self, message: &str) {
        if self.json() {
            self.emit(&JsonLine::Error { message }.text());
        } else {
            self.emit(&format!("! {message}"));
        }
    }

    fn change(&mut self, ev: &ChangeEvent) {
        let state = (ev.release_key.clone(), ev.source);
        if self.shown.get(&ev.namespace) == Some(&state) {
            return; // already part of the printed snapshot
        }
        self.shown.insert(ev.namespace.clone(), state);
        let now = SystemTime::now();
        self.last_update = Some((now, ev.namespace.clone()));
        if self.json() {
            let line = JsonLine::Change {
                namespace: &ev.namespace,
                release_key: ev.release_key.as_deref(),
                changes: ev
                    .changes
                    .iter()
                    .map(|c| JsonChange {
                        key: &c.key,
                        old: c.old.as_deref(),
                        new: c.new.as_deref(),
                        kind: c.kind.as_str(),
                    })
                    .collect(),
            };
            self.emit(&line.text());
            return;
        }
        for c in &ev.changes {
            let line = match self.format {
                Format::Env => match &c.new {
                    Some(v) => env_line(&c.key, v),
                    None => format!("unset {}", env_name(&c.key)),
                },
                Format::Properties | Format::Yaml => match &c.new {
                    Some(v) => {
                        apolloconf_core::properties::store_text([(c.key.as_str(), v.as_str())])
                            .trim_end()
                            .to_string()
                    }
                    None => format!("# deleted: {}", c.key),
                },
                _ => format!(
                    "{} {} {:<8} {}: {} → {}",
                    clock(now),
                    ev.namespace,
                    c.kind.as_str(),
                    c.key,
                    c.old.as_deref().unwrap_or("∅"),
                    c.new.as_deref().unwrap_or("∅")
                ),
            };
            self.emit(&line);
        }
    }

    /// Handle one client event.
    pub fn event(&mut self, client: &Client, e: Event) {
        match e {
            Event::Loaded { namespace, .. } => {
                if !self.shown.contains_key(&namespace) {
                    if let Some(ns) = client.namespace(&namespace) {
                        self.snapshot(&ns);
                    }
                }
                self.state = "connected".to_string();
            }
            Event::Changed(ev) => self.change(&ev),
            Event::Error(err) => {
                if err.request.is_some() {
                    self.state = format!("retrying ({})", err.cause);
                }
                self.error(&err.to_string());
            }
            _ => {}
        }
        self.refresh_state(client);
        self.status(client);
    }

    /// Periodic refresh of the status line.
    pub fn tick(&mut self, client: &Client) {
        self.refresh_state(client);
        self.status(client);
    }

    fn refresh_state(&mut self, client: &Client) {
        let m = client.metrics();
        let answered = m.notifications.ok
            + m.notifications.not_modified
            + m.configs.ok
            + m.configs.not_modified;
        if answered > self.answered {
            self.answered = answered;
            self.state = "connected".to_string();
        }
    }

    fn status(&mut self, client: &Client) {
        if self.json() || self.out.is_broken() {
            return;
        }
        let m = client.metrics();
        let server = m
            .long_poll_service
            .clone()
            .or_else(|| m.services.first().cloned())
            .unwrap_or_else(|| "-".into());
        let last = match &self.last_update {
            Some((t, ns)) => format!("last update {} ({ns})", clock(*t)),
            None => "no update yet".to_string(),
        };
        let line = format!("● {server} · {} · {last} · Ctrl-C quits", self.state);
        if self.tty {
            self.clear_status();
            self.out.raw(&line);
            self.out.flush();
            self.status_on_screen = true;
        } else if line != self.last_status {
            self.out.line(&line);
            self.out.flush();
        }
        self.last_status = line;
    }

    /// Leave the terminal tidy.
    pub fn finish(&mut self) {
        if self.status_on_screen {
            self.out.raw("\n");
            self.out.flush();
            self.status_on_screen = false;
        }
    }
}
