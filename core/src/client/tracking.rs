//! Notification tracking for one namespace (docs/protocol.md#notification-ids).
//!
//! A namespace's notification id only advances once a fetch issued after the
//! notification has succeeded: the id of a notification is *pending* until then, and a
//! fetch *covers* the pending id it was issued for. A notification that arrives while a
//! fetch is in flight is not covered by it and needs a fetch of its own. The `messages`
//! of every notification are carried on later `/configs` requests so that a config
//! service with a release cache reloads.

use alloc::collections::BTreeMap;
use alloc::string::String;
use core::time::Duration;

use crate::time::Instant;

#[derive(Debug, Clone, Default)]
pub(crate) struct Tracking {
    /// The newest notification id not yet acknowledged.
    pending: Option<i64>,
    /// The pending id the fetch in flight was issued for.
    covers: Option<i64>,
    /// The service whose long poll announced `pending` (it has seen that release).
    notifier: Option<String>,
    /// When `pending` was announced.
    notified_at: Instant,
    /// Release messages seen so far, by watch key (the highest id each).
    messages: BTreeMap<String, i64>,
}

impl Tracking {
    /// The newest id known for the namespace: the pending one or the acknowledged one.
    /// The long poll reports it, so the server only answers news beyond it.
    pub(crate) fn knowledge(&self, acknowledged: i64) -> i64 {
        self.pending.map_or(acknowledged, |p| p.max(acknowledged))
    }

    /// A notification `id` through `service`. Returns false (and changes nothing) when
    /// it is not newer than what is known.
    pub(crate) fn notified(
        &mut self,
        id: i64,
        messages: &BTreeMap<String, i64>,
        service: &str,
        now: Instant,
        acknowledged: i64,
    ) -> bool {
        if id <= self.knowledge(acknowledged) {
            return false;
        }
        self.pending = Some(id);
        for (k, v) in messages {
            let room = self.messages.len() < crate::protocol::MAX_MESSAGE_DETAILS;
            match self.messages.get_mut(k) {
                Some(e) => *e = (*e).max(*v),
                // Bounded: keys beyond the limit are not carried.
                None if room => {
                    self.messages.insert(k.clone(), *v);
                }
                None => {}
            }
        }
        self.notifier = Some(String::from(service));
        self.notified_at = now;
        true
    }

    /// A fetch starts: it covers the id pending now.
    pub(crate) fn fetch_started(&mut self) {
        self.covers = self.pending;
    }

    /// The fetch succeeded: raise `acknowledged` to the id it covered. Returns whether a
    /// newer notification is still pending (another fetch is needed).
    pub(crate) fn commit(&mut self, acknowledged: &mut i64) -> bool {
        let covered = self.covers.take();
        if let Some(c) = covered {
            *acknowledged = (*acknowledged).max(c);
        }
        match self.pending {
            Some(p) if covered.is_some_and(|c| c >= p) => {
                self.pending = None;
                self.notifier = None;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Whether an answer from `service` at `now` may come from an instance that lags
    /// behind the notification: one is pending, `service` is not the one that announced
    /// it, and the lag window since the announcement is still open.
    pub(crate) fn may_lag(&self, service: &str, now: Instant, lag_window: Duration) -> bool {
        self.pending.is_some()
            && self.notifier.as_deref() != Some(service)
            && now < self.notified_at + lag_window
    }

    /// The service that announced the pending notification.
    pub(crate) fn notifier(&self) -> Option<&str> {
        self.notifier.as_deref()
    }

    /// The `messages` query value for `/configs`, if any message was seen.
    pub(crate) fn messages(&self) -> Option<&BTreeMap<String, i64>> {
        (!self.messages.is_empty()).then_some(&self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_during_a_fetch_needs_its_own_fetch() {
        let mut t = Tracking::default();
        let mut acked = -1;
        let none = BTreeMap::new();
        let at = Instant::ZERO;
        assert!(t.notified(5, &none, "a/", at, acked));
        assert!(!t.notified(5, &none, "a/", at, acked), "not news");
        assert_eq!(t.knowledge(acked), 5);
        t.fetch_started();
        assert!(t.notified(6, &none, "b/", at, acked));
        assert!(t.commit(&mut acked), "6 is not covered");
        assert_eq!(acked, 5);
        t.fetch_started();
        assert!(!t.commit(&mut acked));
        assert_eq!(acked, 6);
        assert_eq!(t.notifier(), None);
    }

    #[test]
    fn lag_window_and_messages() {
        let mut t = Tracking::default();
        let mut m = BTreeMap::new();
        m.insert(String::from("app+default+application"), 9);
        assert!(t.messages().is_none());
        assert!(t.notified(9, &m, "a/", Instant::from_millis(100), -1));
        let w = Duration::from_secs(30);
        assert!(t.may_lag("b/", Instant::from_millis(200), w));
        assert!(
            !t.may_lag("a/", Instant::from_millis(200), w),
            "the notifier is authoritative"
        );
        assert!(
            !t.may_lag("b/", Instant::from_millis(30_100), w),
            "window closed"
        );
        assert_eq!(t.messages().map(|m| m.len()), Some(1));
    }

    #[test]
    fn messages_carried_are_bounded() {
        let max = crate::protocol::MAX_MESSAGE_DETAILS;
        let mut t = Tracking::default();
        for id in 1..=100 {
            let mut m = BTreeMap::new();
            m.insert(alloc::format!("app+c{id}+ns"), id);
            m.insert(String::from("app+default+ns"), id);
            assert!(t.notified(id, &m, "a/", Instant::ZERO, -1));
        }
        let kept = t.messages().unwrap();
        assert_eq!(kept.len(), max);
        assert_eq!(
            kept.get("app+default+ns"),
            Some(&100),
            "known keys still advance"
        );
    }
}
