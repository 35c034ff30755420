//! Discovery: which config services to use, asked of the meta servers
//! (docs/protocol.md#discovery).
//!
//! One request at a time to one meta server (a random one first, as the Java client
//! shuffles its list); on failure the next one, with back-off. Background clients
//! re-discover on a schedule; edge clients only while they have no service at all, or
//! when the host's `refresh()` finds re-discovery due.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::pacing::{Rate, Rng, backoff};
use crate::config::Timing;
use crate::time::Instant;

#[derive(Debug, Clone)]
pub(crate) struct Discovery {
    metas: Vec<String>,
    /// The meta server asked next.
    idx: usize,
    in_flight: bool,
    /// Failures in a row.
    attempt: u32,
    /// Not before this instant (back-off after a failure, the refresh after a success).
    next_at: Instant,
    rate: Rate,
    /// Edge mode: a `refresh()` found re-discovery due.
    wanted: bool,
}

impl Discovery {
    pub(crate) fn new(metas: &[String], now: Instant, rng: &mut Rng) -> Discovery {
        Discovery {
            metas: metas
                .iter()
                .map(|m| m.trim_end_matches('/').to_string())
                .collect(),
            idx: 0,
            in_flight: false,
            attempt: 0,
            next_at: now,
            rate: Rate::new(now),
            wanted: false,
        }
        .starting_at_random(rng)
    }

    fn starting_at_random(mut self, rng: &mut Rng) -> Discovery {
        self.idx = rng.below(self.metas.len());
        self
    }

    /// When the next discovery request may go out, if one is wanted. `unrestricted` is
    /// true in background mode and while no config service is known at all.
    pub(crate) fn due(&self, unrestricted: bool) -> Option<Instant> {
        if self.in_flight || !(unrestricted || self.wanted) {
            return None;
        }
        Some(self.next_at.max(self.rate.earliest()))
    }

    /// Start a request at `now`: the meta server to ask.
    pub(crate) fn start(&mut self, now: Instant, t: &Timing) -> Option<String> {
        let meta = self
            .metas
            .get(self.idx % self.metas.len().max(1))
            .cloned()?;
        self.in_flight = true;
        self.wanted = false;
        self.rate.on_start(now, t.discovery_qps);
        Some(meta)
    }

    /// The meta servers answered a usable list.
    pub(crate) fn succeeded(&mut self, now: Instant, t: &Timing) {
        self.in_flight = false;
        self.attempt = 0;
        self.next_at = now + t.discovery_refresh_interval;
    }

    /// The request failed: back off and move to the next meta server. Returns whether
    /// every meta server has now failed at least once in a row.
    pub(crate) fn failed(&mut self, now: Instant, t: &Timing, rng: &mut Rng) -> bool {
        let attempt = self.attempt + 1;
        let delay = backoff(
            t.discovery_retry_initial,
            t.discovery_retry_max,
            attempt,
            t.jitter_percent,
            rng,
        );
        self.in_flight = false;
        self.attempt = attempt;
        self.idx = (self.idx + 1) % self.metas.len().max(1);
        self.next_at = now + delay;
        attempt as usize >= self.metas.len()
    }

    /// Edge mode's `refresh()`: re-discover if the schedule says so.
    pub(crate) fn want_if_due(&mut self, now: Instant) {
        if now >= self.next_at {
            self.wanted = true;
        }
    }

    /// Whether a request is wanted or in flight.
    pub(crate) fn is_busy(&self) -> bool {
        self.in_flight || self.wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn metas(n: usize) -> Vec<String> {
        (0..n).map(|i| alloc::format!("http://m{i}/")).collect()
    }

    #[test]
    fn rotates_and_backs_off() {
        let t = Timing {
            jitter_percent: 0,
            ..Timing::default()
        };
        let mut rng = Rng::new(3);
        let mut d = Discovery::new(&metas(2), Instant::ZERO, &mut rng);
        let first = d.start(Instant::ZERO, &t).unwrap();
        assert!(!first.ends_with('/'));
        assert_eq!(d.due(true), None, "one request at a time");
        assert!(!d.failed(Instant::from_millis(10), &t, &mut rng));
        let second = d.start(Instant::from_millis(1_010), &t).unwrap();
        assert_ne!(first, second);
        assert!(
            d.failed(Instant::from_millis(1_020), &t, &mut rng),
            "both failed"
        );
        assert_eq!(d.due(true), Some(Instant::from_millis(3_020)));
        d.start(Instant::from_millis(3_020), &t);
        d.succeeded(Instant::from_millis(3_030), &t);
        assert_eq!(
            d.due(true),
            Some(Instant::from_millis(3_030) + Duration::from_secs(300))
        );
    }

    #[test]
    fn edge_mode_only_when_wanted() {
        let mut rng = Rng::new(3);
        let mut d = Discovery::new(&metas(1), Instant::ZERO, &mut rng);
        assert_eq!(d.due(false), None);
        d.want_if_due(Instant::ZERO);
        assert!(d.is_busy());
        assert_eq!(d.due(false), Some(Instant::ZERO));
    }
}
