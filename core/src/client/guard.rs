//! The stale-release guard of one namespace (docs/protocol.md#stale-release-guard).
//!
//! An instance that answers a release the namespace held before, or one older by the
//! timestamps inside the release keys, is either a rollback or an instance that lags
//! behind. Such an answer is held back until it is confirmed: by a second instance
//! answering the same key, by the same instance again after the lag window, by the only
//! instance there is, or by persisting for a whole refresh interval.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::config::Timing;
use crate::time::Instant;

/// How many superseded release keys are remembered per namespace.
const HISTORY: usize = 16;

#[derive(Debug, Clone, Default)]
pub(crate) struct ReleaseGuard {
    /// Release keys this namespace held before (newest last).
    superseded: VecDeque<String>,
    /// An older release an instance answered: the key, when, and by which instance.
    seen: Option<(String, Instant, String)>,
}

impl ReleaseGuard {
    /// Whether `key` (from a server) is older than `held` (the key held from a server).
    pub(crate) fn is_stale(&self, held: &str, key: &str) -> bool {
        held != key && (self.superseded.iter().any(|k| k == key) || older_by_stamp(key, held))
    }

    /// Whether the stale `key` answered by `service` at `now` is confirmed (then apply
    /// it). Otherwise the sighting is remembered and the caller asks elsewhere.
    pub(crate) fn confirmed(
        &mut self,
        key: &str,
        service: &str,
        now: Instant,
        single_instance: bool,
        t: &Timing,
    ) -> bool {
        let confirmed = single_instance
            || match &self.seen {
                Some((k, since, by)) if k == key => {
                    by != service
                        || now >= *since + t.lag_window
                        || now >= *since + t.refresh_interval
                }
                _ => false,
            };
        if confirmed {
            self.seen = None;
        } else if self.seen.as_ref().is_none_or(|(k, _, _)| k != key) {
            self.seen = Some((key.to_string(), now, service.to_string()));
        }
        confirmed
    }

    /// A release was applied, replacing `old`.
    pub(crate) fn replaced(&mut self, old: Option<String>, new: &str) {
        if let Some(old) = old {
            if old != new {
                self.superseded.retain(|k| *k != old);
                if self.superseded.len() >= HISTORY {
                    self.superseded.pop_front();
                }
                self.superseded.push_back(old);
            }
        }
        self.seen = None;
    }
}

/// The `yyyyMMddHHmmss` prefixes of each `+`-joined part of a release key.
fn key_stamps(key: &str) -> Option<Vec<u64>> {
    key.split('+')
        .map(|part| {
            let stamp = part.get(..14)?;
            if part.as_bytes().get(14) != Some(&b'-') || !stamp.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            stamp.parse().ok()
        })
        .collect()
}

/// Whether `new` is strictly older than `held` by the timestamps inside the keys.
fn older_by_stamp(new: &str, held: &str) -> bool {
    match (key_stamps(new), key_stamps(held)) {
        (Some(a), Some(b)) if a.len() == b.len() => {
            a.iter().zip(&b).all(|(x, y)| x <= y) && a.iter().zip(&b).any(|(x, y)| x < y)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "20261121101010-aaaaaaaaaaaaaaaa";
    const NEW: &str = "20261121101530-bbbbbbbbbbbbbbbb";

    #[test]
    fn older_keys_and_superseded_keys_are_stale() {
        let mut g = ReleaseGuard::default();
        assert!(g.is_stale(NEW, OLD));
        assert!(!g.is_stale(OLD, NEW));
        assert!(!g.is_stale(NEW, NEW));
        assert!(
            !g.is_stale("k2", "k1"),
            "keys without stamps are not compared"
        );
        g.replaced(Some(String::from("k1")), "k2");
        assert!(g.is_stale("k2", "k1"), "held before");
        assert!(older_by_stamp(
            "20261121101010-a+20261121101010-b",
            "20261121101010-a+20261121101011-b"
        ));
    }

    #[test]
    fn confirmation_rules() {
        let t = Timing::default();
        let ms = Instant::from_millis;
        let mut g = ReleaseGuard::default();
        assert!(g.confirmed(OLD, "a/", ms(0), true, &t), "the only instance");
        assert!(!g.confirmed(OLD, "a/", ms(0), false, &t));
        assert!(
            !g.confirmed(OLD, "a/", ms(1_000), false, &t),
            "same instance, inside the window"
        );
        assert!(
            g.confirmed(OLD, "b/", ms(1_000), false, &t),
            "a second instance"
        );
        assert!(!g.confirmed(OLD, "a/", ms(2_000), false, &t));
        assert!(
            g.confirmed(OLD, "a/", ms(32_000), false, &t),
            "after the lag window"
        );
    }
}
