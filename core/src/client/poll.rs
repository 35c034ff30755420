//! The long poll: one `/notifications/v2` request at a time for every namespace
//! (docs/protocol.md#long-poll-loop).
//!
//! The poll is pinned to one config service; a 304 (the server's hold ran out) moves it
//! to another one about half the time, as the Java client does, and a failure always
//! does. Failures back off from `long_poll_retry_initial` up to `long_poll_retry_max`.

use alloc::string::String;

use super::pacing::{Rate, Rng, backoff};
use crate::config::Timing;
use crate::time::Instant;

#[derive(Debug, Clone)]
pub(crate) struct LongPoll {
    in_flight: bool,
    pinned: Option<String>,
    /// Failures in a row.
    attempt: u32,
    /// Not before this instant (the initial delay, or back-off).
    next_at: Instant,
    rate: Rate,
}

impl LongPoll {
    pub(crate) fn new(now: Instant, t: &Timing) -> LongPoll {
        LongPoll {
            in_flight: false,
            pinned: None,
            attempt: 0,
            next_at: now + t.long_poll_initial_delay,
            rate: Rate::new(now),
        }
    }

    /// When the next poll may start. `enabled`: background mode with at least one
    /// namespace and one config service.
    pub(crate) fn due(&self, enabled: bool) -> Option<Instant> {
        if !enabled || self.in_flight {
            return None;
        }
        Some(self.next_at.max(self.rate.earliest()))
    }

    /// Start a poll at `now`: the pinned service while it is still listed, else a random
    /// one (which becomes the pinned one).
    pub(crate) fn start(
        &mut self,
        now: Instant,
        t: &Timing,
        services: &[String],
        rng: &mut Rng,
    ) -> String {
        let service = match &self.pinned {
            Some(p) if services.contains(p) => p.clone(),
            _ => {
                let s = services
                    .get(rng.below(services.len()))
                    .cloned()
                    .unwrap_or_default();
                self.pinned = Some(s.clone());
                s
            }
        };
        self.in_flight = true;
        self.rate.on_start(now, t.long_poll_qps);
        service
    }

    /// A 200 with notifications: poll again at once.
    pub(crate) fn answered(&mut self, now: Instant) {
        self.in_flight = false;
        self.attempt = 0;
        self.next_at = now;
    }

    /// A 304 (nothing changed during the hold): poll again at once, half of the time on
    /// another service.
    pub(crate) fn not_modified(&mut self, now: Instant, rng: &mut Rng) {
        self.answered(now);
        if rng.next() & 1 == 1 {
            self.pinned = None;
        }
    }

    /// A failure: unpin and back off.
    pub(crate) fn failed(&mut self, now: Instant, t: &Timing, rng: &mut Rng) {
        self.in_flight = false;
        self.pinned = None;
        self.attempt += 1;
        let delay = backoff(
            t.long_poll_retry_initial,
            t.long_poll_retry_max,
            self.attempt,
            t.jitter_percent,
            rng,
        );
        self.next_at = now + delay;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn pinned_until_a_failure() {
        let t = Timing {
            jitter_percent: 0,
            ..Timing::default()
        };
        let services = vec![String::from("a/"), String::from("b/")];
        let mut rng = Rng::new(5);
        let mut p = LongPoll::new(Instant::ZERO, &t);
        assert_eq!(p.due(false), None);
        assert_eq!(p.due(true), Some(Instant::from_millis(2_000)));
        let s1 = p.start(Instant::from_millis(2_000), &t, &services, &mut rng);
        assert_eq!(p.due(true), None);
        p.answered(Instant::from_millis(3_000));
        assert_eq!(
            p.start(Instant::from_millis(3_000), &t, &services, &mut rng),
            s1
        );
        p.failed(Instant::from_millis(4_000), &t, &mut rng);
        assert_eq!(p.due(true), Some(Instant::from_millis(5_000)));
        p.start(Instant::from_millis(5_000), &t, &services, &mut rng);
        p.failed(Instant::from_millis(5_000), &t, &mut rng);
        assert_eq!(p.due(true), Some(Instant::from_millis(7_000)), "doubled");
    }
}
