//! Held long polls: waiters registered under (lower-cased) watch keys and woken directly by
//! a publish.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// What a woken poll receives: the message key and id.
pub type Wake = (String, i64);

struct Waiter {
    tx: Mutex<Option<oneshot::Sender<Wake>>>,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<String, HashMap<u64, Arc<Waiter>>>,
    count: usize,
}

/// Registry of held long polls.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unregisters its waiter when dropped.
pub struct Registration<'a> {
    hub: &'a Hub,
    id: u64,
    keys: Vec<String>,
    // Keeps the sender alive for a poll without watch keys (held until timeout).
    _waiter: Arc<Waiter>,
    /// Receives the wake-up.
    pub rx: oneshot::Receiver<Wake>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut inner = lock(&self.hub.inner);
        inner.count = inner.count.saturating_sub(1);
        for k in &self.keys {
            if let Some(m) = inner.by_key.get_mut(k) {
                m.remove(&self.id);
                if m.is_empty() {
                    inner.by_key.remove(k);
                }
            }
        }
    }
}

impl Hub {
    /// Registers a waiter under every key (matched case-insensitively).
    pub fn register(&self, keys: &[String]) -> Registration<'_> {
        let (tx, rx) = oneshot::channel();
        let waiter = Arc::new(Waiter {
            tx: Mutex::new(Some(tx)),
        });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut lower: Vec<String> = keys.iter().map(|k| k.to_lowercase()).collect();
        lower.sort();
        lower.dedup();
        let mut inner = lock(&self.inner);
        inner.count += 1;
        for k in &lower {
            inner
                .by_key
                .entry(k.clone())
                .or_default()
                .insert(id, waiter.clone());
        }
        Registration {
            hub: self,
            id,
            keys: lower,
            _waiter: waiter,
            rx,
        }
    }

    /// Wakes every waiter registered under `key` with (key, id).
    pub fn deliver(&self, key: &str, id: i64) {
        let waiters: Vec<Arc<Waiter>> = {
            let mut inner = lock(&self.inner);
            match inner.by_key.remove(&key.to_lowercase()) {
                Some(m) => m.into_values().collect(),
                None => return,
            }
        };
        for w in waiters {
            if let Some(tx) = lock(&w.tx).take() {
                let _ = tx.send((key.to_string(), id));
            }
        }
    }

    /// Number of polls currently held.
    pub fn held(&self) -> usize {
        lock(&self.inner).count
    }
}
