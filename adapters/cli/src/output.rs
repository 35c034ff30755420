//! Output formats and the live `watch` view.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::SystemTime;

use apolloconf::{ChangeEvent, Client, Event, Namespace, Source, Status};
use serde::Serialize;
use serde_json::Value;

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
        self.bytes(s.as_bytes());
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

    pub fn bytes(&mut self, b: &[u8]) {
        if !self.broken && self.w.write_all(b).is_err() {
            self.broken = true;
        }
    }

    /// Writes what `f` writes through a 64 KB buffer (stdout itself makes one system
    /// call per line), then flushes. A closed pipe is remembered, never an error.
    pub fn buffered(&mut self, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
        let mut w = std::io::BufWriter::with_capacity(BUFFER, &mut *self);
        // Writing to `Out` cannot fail (see `impl Write for Out`).
        let _ = f(&mut w).and_then(|()| w.flush());
        drop(w);
        self.flush();
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Whether the reader of stdout is gone: a write failed (`EPIPE`), or (on Unix) the
    /// other end of the pipe or socket is closed, which `poll` tells without writing
    /// anything (`POLLERR`/`POLLHUP`).
    pub fn closed(&mut self) -> bool {
        #[cfg(unix)]
        if !self.broken {
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            use std::os::fd::AsFd;
            let fd = self.w.as_fd();
            let mut fds = [PollFd::new(fd, PollFlags::empty())];
            let gone = poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
                && fds[0]
                    .revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP));
            if gone {
                self.broken = true;
            }
        }
        self.broken
    }

    /// Print key/value pairs (`None`: missing key) in a format (see [`write_pairs`]).
    pub fn pairs<'a, I>(&mut self, format: Format, pairs: I)
    where
        I: Iterator<Item = (&'a str, Option<&'a str>)> + Clone,
    {
        self.buffered(|w| write_pairs(w, format, pairs));
    }
}

/// Writes key/value pairs (`None`: missing key) in a format, unsafe characters escaped as
/// the format allows. The pairs are walked (twice for the table, to size its column), not
/// collected: a merged view of a million keys is written without a copy of it.
///
/// # Errors
/// What writing to `w` fails with.
pub fn write_pairs<'a, I>(w: &mut dyn Write, format: Format, pairs: I) -> std::io::Result<()>
where
    I: Iterator<Item = (&'a str, Option<&'a str>)> + Clone,
{
    match format {
        Format::Table => {
            let width = pairs
                .clone()
                .map(|(k, _)| printable(k).chars().count())
                .max()
                .unwrap_or(0);
            for (k, v) in pairs {
                let k = printable(k);
                match v {
                    Some(v) => writeln!(w, "{k:<width$}  {}", printable(v))?,
                    None => writeln!(w, "{k:<width$}  (not found)")?,
                }
            }
            Ok(())
        }
        Format::Json => json_line(w, &PairsJson(pairs), false),
        Format::Properties => {
            for (k, v) in pairs {
                if let Some(v) = v {
                    write_escaped(w, &apolloconf_core::properties::store_text([(k, v)]))?;
                }
            }
            Ok(())
        }
        Format::Env => {
            for (k, v) in pairs {
                if let Some(v) = v {
                    writeln!(w, "{}", env_line(k, v))?;
                }
            }
            Ok(())
        }
        Format::Yaml => {
            for (k, v) in pairs {
                // JSON strings are YAML double-quoted scalars.
                let v = v.map_or(Value::Null, Value::from);
                write_escaped(w, &format!("{}: {v}\n", Value::from(k)))?;
            }
            Ok(())
        }
    }
}

/// Pairs as a JSON object (a missing key as `null`) sorted by key, each key once (the
/// last pair of a key given twice wins). Pairs already in order (a merged view) are
/// written as they come; others are sorted first.
struct PairsJson<I>(I);

impl<'a, I> Serialize for PairsJson<I>
where
    I: Iterator<Item = (&'a str, Option<&'a str>)> + Clone,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut keys = self.0.clone().map(|(k, _)| k);
        let mut previous = keys.next();
        let in_order = keys.all(|k| {
            let ordered = previous.is_some_and(|p| p < k);
            previous = Some(k);
            ordered
        });
        if in_order {
            s.collect_map(self.0.clone())
        } else {
            s.collect_map(self.0.clone().collect::<std::collections::BTreeMap<_, _>>())
        }
    }
}

/// The buffer [`Out::buffered`] writes through.
const BUFFER: usize = 64 * 1024;

/// Stdout as a writer (through [`Out::buffered`] for text written in pieces). A closed
/// pipe is remembered, not returned.
impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Out::flush(self);
        Ok(())
    }
}

/// Whether `c` must not reach a terminal as it is: control characters (C0 such as ESC,
/// DEL, C1 such as the 8-bit CSI) and the Unicode controls that reorder the text shown
/// (bidirectional overrides and isolates).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Text for people (the table view, messages): unsafe characters (see [`is_unsafe`])
/// as `\n`, `\r`, `\t` or `\u{1b}`; printable Unicode as it is.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A message for people, line by line (its line breaks are kept, everything else unsafe
/// is escaped), with passwords in URLs hidden.
pub fn message(s: &str) -> String {
    let text = apolloconf::settings::redact_credentials(s);
    text.split('\n')
        .map(|l| printable(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// JSON, YAML or properties text whose unsafe characters (see [`is_unsafe`]) are written
/// as `\uXXXX`, an escape all three formats read back as the same character. Line breaks
/// are left alone: the writers already escape those inside values, so a raw one is part
/// of the layout. Every unsafe character is in the Basic Multilingual Plane (one escape).
pub fn escape_unsafe(text: String) -> String {
    if !text.chars().any(must_escape) {
        return text;
    }
    let mut out = Vec::with_capacity(text.len() + 8);
    // Writing into a Vec cannot fail.
    let _ = write_escaped(&mut out, &text);
    String::from_utf8(out).unwrap_or_default()
}

/// What [`escape_unsafe`] escapes: an unsafe character other than a line break.
fn must_escape(c: char) -> bool {
    c != '\n' && is_unsafe(c)
}

/// Writes `s` with its unsafe characters as `\uXXXX` (see [`escape_unsafe`]).
fn write_escaped(w: &mut dyn Write, s: &str) -> std::io::Result<()> {
    let mut run = 0;
    for (i, c) in s.char_indices() {
        if must_escape(c) {
            w.write_all(s.get(run..i).unwrap_or_default().as_bytes())?;
            write!(w, "\\u{:04X}", u32::from(c))?;
            run = i + c.len_utf8();
        }
    }
    w.write_all(s.get(run..).unwrap_or_default().as_bytes())
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

/// `KEY='value'` with the value single-quoted for POSIX shells. A value with unsafe
/// characters (see [`is_unsafe`]; they would reach the terminal as they are inside single
/// quotes) is written as `KEY=$'...'` instead, each such character as the `\xHH` escapes
/// of its UTF-8 bytes (`$'...'`: bash, zsh, ksh, busybox sh, POSIX.1-2024).
pub fn env_line(key: &str, value: &str) -> String {
    if !value.chars().any(is_unsafe) {
        return format!("{}='{}'", env_name(key), value.replace('\'', "'\\''"));
    }
    let mut quoted = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '\'' => quoted.push_str("\\'"),
            c if is_unsafe(c) => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    quoted.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => quoted.push(c),
        }
    }
    format!("{}=$'{quoted}'", env_name(key))
}

/// Raw text for a terminal: unsafe characters (see [`is_unsafe`]) other than line
/// breaks and tabs as `\u{1b}`.
pub fn content_for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t') {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes a namespace in a format to `w`: YAML and JSON namespaces keep their own text in
/// their own format (as it is, unless it goes to a `terminal`: then its control
/// characters are escaped); otherwise the properties view is written pair by pair (never
/// the whole text in memory), with control characters escaped as the format allows.
///
/// # Errors
/// What writing to `w` fails with.
pub fn write_export(
    ns: &Namespace,
    format: Format,
    terminal: bool,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let fmt = ns.format();
    let own = |w: &mut dyn std::io::Write| {
        let text = ns.content().unwrap_or_default();
        if terminal {
            w.write_all(content_for_terminal(text).as_bytes())
        } else {
            w.write_all(text.as_bytes())
        }
    };
    match format {
        Format::Yaml if fmt.is_yaml() => own(w),
        Format::Json if fmt == apolloconf::Format::Json => own(w),
        // The properties view serialises as a JSON object in key order.
        Format::Json => json_line(w, ns.properties(), true),
        // The table of a whole namespace is its properties text.
        Format::Table => write_pairs(w, Format::Properties, present(ns)),
        f => write_pairs(w, f, present(ns)),
    }
}

/// `value` as JSON (`pretty`: indented) with its unsafe characters escaped, then a line
/// break; written as it is serialised.
fn json_line(w: &mut dyn Write, value: &impl Serialize, pretty: bool) -> std::io::Result<()> {
    // serde_json writes in small pieces: they are gathered before they are scanned.
    let mut escaped = std::io::BufWriter::with_capacity(BUFFER, EscapeUnsafe::new(&mut *w));
    if pretty {
        serde_json::to_writer_pretty(&mut escaped, value)?;
    } else {
        serde_json::to_writer(&mut escaped, value)?;
    }
    escaped
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?
        .finish()?;
    w.write_all(b"\n")
}

/// A namespace's properties view as pairs for [`write_pairs`].
fn present(ns: &Namespace) -> impl Iterator<Item = (&str, Option<&str>)> + Clone + '_ {
    ns.properties().iter().map(|(k, v)| (k, Some(v)))
}

/// A writer that passes UTF-8 text on with its unsafe characters written as `\uXXXX`,
/// as [`escape_unsafe`] does (a character split across two writes is joined first).
struct EscapeUnsafe<W: std::io::Write> {
    inner: W,
    /// The start of a character whose other bytes have not come yet.
    pending: Vec<u8>,
}

impl<W: std::io::Write> EscapeUnsafe<W> {
    fn new(inner: W) -> EscapeUnsafe<W> {
        EscapeUnsafe {
            inner,
            pending: Vec::new(),
        }
    }

    /// Writes what is pending (a character left incomplete as U+FFFD).
    fn finish(mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let rest = String::from_utf8_lossy(&self.pending).into_owned();
            self.text(&rest)?;
        }
        self.inner.flush()
    }

    fn text(&mut self, s: &str) -> std::io::Result<()> {
        write_escaped(&mut self.inner, s)
    }
}

impl<W: std::io::Write> std::io::Write for EscapeUnsafe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Joined only when a character was left incomplete by the previous write.
        let joined;
        let mut rest: &[u8] = if self.pending.is_empty() {
            buf
        } else {
            let mut bytes = std::mem::take(&mut self.pending);
            bytes.extend_from_slice(buf);
            joined = bytes;
            &joined
        };
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    self.text(s)?;
                    rest = &[];
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    self.text(std::str::from_utf8(valid).unwrap_or_default())?;
                    match e.error_len() {
                        // Not UTF-8 (never from serde_json): as U+FFFD.
                        Some(n) => {
                            self.text("\u{fffd}")?;
                            rest = after.get(n..).unwrap_or_default();
                        }
                        // The start of a character: wait for the rest.
                        None => {
                            self.pending = after.to_vec();
                            rest = &[];
                        }
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
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
        configurations: &'a apolloconf::Values,
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
        escape_unsafe(serde_json::to_string(self).unwrap_or_default())
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
            self.emit(&message(&format!(
                "app {} · cluster {} · {server}",
                s.app_id, s.cluster
            )));
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
            printable(ns.name()),
            ns.source().as_str(),
            printable(ns.release_key().unwrap_or("-"))
        );
        self.emit(&header);
        match self.format {
            Format::Table => {
                let width = ns
                    .properties()
                    .keys()
                    .map(|k| printable(k).chars().count())
                    .max()
                    .unwrap_or(0);
                // Written through a buffer: a namespace of a million keys is neither
                // formatted into memory at once nor written one system call per line.
                self.clear_status();
                self.out.buffered(|w| {
                    for (k, v) in ns.properties() {
                        writeln!(w, "  {:<width$}  {}", printable(k), printable(v))?;
                    }
                    Ok(())
                });
            }
            f => {
                self.clear_status();
                let tty = self.tty;
                self.out.buffered(|w| write_export(ns, f, tty, w));
            }
        }
    }

    fn error(&mut self, text: &str) {
        let text = apolloconf::settings::redact_credentials(text);
        if self.json() {
            self.emit(&JsonLine::Error { message: &text }.text());
        } else {
            self.emit(&format!("! {}", message(&text)));
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
                    Some(v) => escape_unsafe(apolloconf_core::properties::store_text([(
                        c.key.as_str(),
                        v.as_str(),
                    )]))
                    .trim_end()
                    .to_string(),
                    None => format!("# deleted: {}", printable(&c.key)),
                },
                _ => format!(
                    "{} {} {:<8} {}: {} → {}",
                    clock(now),
                    printable(&ev.namespace),
                    c.kind.as_str(),
                    printable(&c.key),
                    printable(c.old.as_deref().unwrap_or("∅")),
                    printable(c.new.as_deref().unwrap_or("∅"))
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
        let line = message(&format!(
            "● {server} · {} · {last} · Ctrl-C quits",
            self.state
        ));
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

    /// Whether the reader of the output is gone (see [`Out::closed`]).
    pub fn closed(&mut self) -> bool {
        self.out.closed()
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
