//! A subject process driven through the line protocol (see the crate README).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A line the subject sent on its own.
#[derive(Debug, Clone)]
pub struct Ev {
    /// When the runner read it.
    pub at: Instant,
    /// The JSON object.
    pub v: Value,
}

#[derive(Default)]
struct Inbox {
    replies: HashMap<u64, (Instant, Value)>,
    events: Vec<Ev>,
    eof: bool,
    junk: Vec<String>,
}

type Shared = Arc<(Mutex<Inbox>, Condvar)>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How to start a subject process.
#[derive(Debug, Clone)]
pub struct SubjectCmd {
    pub program: String,
    pub args: Vec<String>,
}

/// A running subject.
pub struct Subject {
    child: Child,
    stdin: Option<ChildStdin>,
    inbox: Shared,
    next_id: u64,
    stderr: Arc<Mutex<String>>,
}

impl Subject {
    pub fn spawn(cmd: &SubjectCmd) -> Result<Subject, String> {
        let mut child = Command::new(&cmd.program)
            .args(&cmd.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start subject {}: {e}", cmd.program))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let inbox: Shared = Arc::default();
        let errbuf = Arc::new(Mutex::new(String::new()));
        {
            let inbox = inbox.clone();
            std::thread::spawn(move || read_lines(stdout, &inbox));
        }
        {
            let errbuf = errbuf.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(stderr);
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                let text = String::from_utf8_lossy(&buf);
                let mut e = lock(&errbuf);
                // Keep the tail only: enough to explain a failure.
                let start = text.len().saturating_sub(8000);
                let start = (start..text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(text.len());
                e.push_str(&text[start..]);
            });
        }
        Ok(Subject {
            stdin: child.stdin.take(),
            child,
            inbox,
            next_id: 1,
            stderr: errbuf,
        })
    }

    /// Sends a command and waits for its reply (at most `timeout`). The reply is returned
    /// whether `ok` is true or false; `Err` means no reply.
    pub fn call(&mut self, mut cmd: Value, timeout: Duration) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(o) = cmd.as_object_mut() {
            o.insert("id".into(), json!(id));
        }
        let name = cmd
            .get("cmd")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let stdin = self.stdin.as_mut().ok_or("the subject's stdin is closed")?;
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot write to the subject ({name}): {e}"))?;
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.inbox;
        let mut g = lock(m);
        loop {
            if let Some((_, v)) = g.replies.remove(&id) {
                return Ok(v);
            }
            if g.eof {
                return Err(format!("the subject exited before answering {name}"));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "no reply to {name} within {} ms",
                    timeout.as_millis()
                ));
            }
            g = cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Every unsolicited event so far.
    pub fn events(&self) -> Vec<Ev> {
        lock(&self.inbox.0).events.clone()
    }

    /// Number of events so far.
    pub fn event_count(&self) -> usize {
        lock(&self.inbox.0).events.len()
    }

    /// Waits until an event satisfies `f` (scanning from index `from`).
    pub fn wait_event(
        &self,
        from: usize,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Option<Ev> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.inbox;
        let mut g = lock(m);
        loop {
            if let Some(e) = g.events.iter().skip(from).find(|e| f(&e.v)) {
                return Some(e.clone());
            }
            let now = Instant::now();
            if now >= deadline || g.eof {
                return None;
            }
            g = cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits for the process to end by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process has ended.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Lines on stdout that were not protocol JSON, and the stderr tail.
    pub fn diagnostics(&self) -> String {
        let junk = lock(&self.inbox.0).junk.join("\n");
        let err = lock(&self.stderr).clone();
        let mut s = String::new();
        if !junk.is_empty() {
            s.push_str("subject stdout (not JSON):\n");
            s.push_str(&junk);
            s.push('\n');
        }
        if !err.trim().is_empty() {
            s.push_str("subject stderr (tail):\n");
            s.push_str(err.trim_end());
            s.push('\n');
        }
        s
    }
}

impl Drop for Subject {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if !self.wait_exit(Duration::from_millis(300)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_lines(stdout: impl Read, inbox: &Shared) {
    let reader = BufReader::new(stdout);
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let at = Instant::now();
        let (m, cv) = &**inbox;
        let mut g = lock(m);
        match serde_json::from_str::<Value>(&line) {
            Ok(v) if v.get("event").is_some() => g.events.push(Ev { at, v }),
            Ok(v) => match v.get("id").and_then(Value::as_u64) {
                Some(id) => {
                    g.replies.insert(id, (at, v));
                }
                None => g.junk.push(line),
            },
            Err(_) => g.junk.push(line),
        }
        if g.junk.len() > 50 {
            g.junk.remove(0);
        }
        cv.notify_all();
    }
    let (m, cv) = &**inbox;
    lock(m).eof = true;
    cv.notify_all();
}
