//! When and where a namespace's `/configs` request goes (docs/protocol.md#fetch).
//!
//! One request per namespace at a time. A namespace is fetched when something wants it
//! (start-up, a notification, a retry, a host `refresh()`), and in background mode also
//! when its periodic fallback refresh comes due. Failures retry with back-off on the next
//! instance of the rotation; a notified fetch goes first to the instance that notified.

use alloc::string::String;

use super::pacing::{Rate, Rng, backoff};
use crate::config::{Config, Timing};
use crate::time::Instant;

/// Where a namespace's fetching stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing wanted; only the periodic refresh (background mode) wakes it.
    Idle,
    /// A request is wanted at this instant (or later, if the rate limit says so).
    Wanted(Instant),
    /// A request is in flight.
    InFlight,
}

#[derive(Debug, Clone)]
pub(crate) struct Fetch {
    phase: Phase,
    /// Failed attempts in a row (back-off; one pass over the instances settles start-up).
    failures: u32,
    /// Retries because an instance lagged behind or answered a stale release.
    lag_tries: u32,
    rate: Rate,
    /// The periodic fallback refresh.
    next_refresh: Instant,
    /// Position in the rotation over the config services.
    cursor: usize,
    /// The service to try first (the one whose long poll notified).
    preferred: Option<String>,
}

impl Fetch {
    pub(crate) fn new(now: Instant) -> Fetch {
        Fetch {
            phase: Phase::Wanted(now),
            failures: 0,
            lag_tries: 0,
            rate: Rate::new(now),
            next_refresh: now,
            cursor: 0,
            preferred: None,
        }
    }

    /// When the next request may go out: the wanted instant, or in background mode the
    /// refresh; never before the rate limit allows.
    pub(crate) fn due(&self, background: bool) -> Option<Instant> {
        let at = match self.phase {
            Phase::InFlight => return None,
            Phase::Wanted(at) => at,
            Phase::Idle if background => self.next_refresh,
            Phase::Idle => return None,
        };
        Some(at.max(self.rate.earliest()))
    }

    /// Whether a request is wanted or in flight.
    pub(crate) fn is_busy(&self) -> bool {
        self.phase != Phase::Idle
    }

    #[cfg(test)]
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Start the request at `now` and return the service to ask. `pick` is a random
    /// rotation start, used when the periodic refresh starts the request (each refresh
    /// spreads over the instances).
    pub(crate) fn start(
        &mut self,
        now: Instant,
        t: &Timing,
        services: &[String],
        pick: usize,
    ) -> String {
        if self.phase == Phase::Idle {
            self.cursor = pick;
        }
        let service = match self.preferred.take() {
            Some(p) if services.contains(&p) => p,
            _ => services
                .get(self.cursor % services.len().max(1))
                .cloned()
                .unwrap_or_default(),
        };
        self.phase = Phase::InFlight;
        self.rate.on_start(now, t.load_config_qps);
        service
    }

    /// A notification arrived through `service`: fetch now, that service first, with
    /// fresh retry counters. A request in flight stays in flight (its answer decides
    /// what comes next).
    pub(crate) fn notified(&mut self, now: Instant, service: &str) {
        if self.phase != Phase::InFlight {
            self.phase = Phase::Wanted(now);
        }
        self.preferred = Some(String::from(service));
        self.lag_tries = 0;
        self.failures = 0;
    }

    /// The fetch is complete. `again`: a newer notification arrived meanwhile.
    pub(crate) fn done(&mut self, now: Instant, again: bool, t: &Timing) {
        self.phase = if again {
            Phase::Wanted(now)
        } else {
            Phase::Idle
        };
        self.failures = 0;
        self.lag_tries = 0;
        self.next_refresh = now + t.refresh_interval;
    }

    /// The request failed; `next` is the rotation position after the failed service.
    /// Background mode retries with back-off; edge mode tries the next instance at once,
    /// one pass over the `n` instances. Returns the failures in a row.
    pub(crate) fn failed(
        &mut self,
        now: Instant,
        next: usize,
        n: usize,
        mut ctx: Retry<'_>,
    ) -> u32 {
        self.failures += 1;
        let delay = ctx.delay(self.failures);
        // The next instance after the one that failed, whatever was preferred: one pass
        // over the list reaches every instance.
        self.cursor = next;
        self.preferred = None;
        self.phase = if ctx.background {
            Phase::Wanted(now + delay)
        } else if (self.failures as usize) < n {
            Phase::Wanted(now)
        } else {
            Phase::Idle
        };
        self.failures
    }

    /// Ask again later on another instance (`prefer`: the one to try first) because the
    /// answer may come from an instance that lags behind. Back-off grows per try.
    pub(crate) fn retry_elsewhere(
        &mut self,
        now: Instant,
        prefer: Option<String>,
        mut ctx: Retry<'_>,
    ) {
        self.lag_tries += 1;
        let delay = ctx.delay(self.lag_tries);
        self.cursor = self.cursor.wrapping_add(1);
        self.preferred = prefer;
        self.phase = Phase::Wanted(now + delay);
    }

    /// The host's `refresh()`: an idle namespace is fetched now. Returns whether it was.
    pub(crate) fn refresh_now(&mut self, now: Instant) -> bool {
        if self.phase != Phase::Idle {
            return false;
        }
        self.phase = Phase::Wanted(now);
        self.failures = 0;
        true
    }

    /// The rotation position, for callers that step past it.
    pub(crate) fn cursor(&self) -> usize {
        self.cursor
    }
}

/// What a retry needs besides the instant: the timing knobs, the random source and the
/// mode.
pub(crate) struct Retry<'a> {
    pub(crate) timing: &'a Timing,
    pub(crate) rng: &'a mut Rng,
    pub(crate) background: bool,
}

impl<'a> Retry<'a> {
    /// The retry context of a client configured by `cfg`.
    pub(crate) fn new(cfg: &'a Config, rng: &'a mut Rng) -> Retry<'a> {
        Retry {
            timing: &cfg.timing,
            rng,
            background: cfg.background,
        }
    }

    /// The fetch back-off before try `attempt` (1 s doubling to 8 s by default, jittered).
    fn delay(&mut self, attempt: u32) -> core::time::Duration {
        let t = self.timing;
        backoff(
            t.fetch_retry_initial,
            t.fetch_retry_max,
            attempt,
            t.jitter_percent,
            self.rng,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn services() -> Vec<String> {
        vec![String::from("a/"), String::from("b/"), String::from("c/")]
    }

    #[test]
    fn background_retries_with_backoff_then_refreshes() {
        let t = Timing {
            jitter_percent: 0,
            ..Timing::default()
        };
        let mut rng = Rng::new(1);
        let ms = Instant::from_millis;
        let mut f = Fetch::new(ms(0));
        assert_eq!(f.due(true), Some(ms(0)));
        assert_eq!(
            f.start(ms(0), &t, &services(), 2),
            "a/",
            "a wanted fetch keeps its cursor"
        );
        assert_eq!(f.due(true), None);
        let ctx = Retry {
            timing: &t,
            rng: &mut rng,
            background: true,
        };
        assert_eq!(f.failed(ms(10), 1, 3, ctx), 1);
        assert_eq!(f.due(true), Some(ms(1_010)));
        assert_eq!(f.start(ms(1_010), &t, &services(), 0), "b/");
        f.done(ms(1_020), false, &t);
        assert!(!f.is_busy());
        assert_eq!(f.due(false), None, "edge mode has no refresh");
        assert_eq!(f.due(true), Some(ms(301_020)));
        assert_eq!(
            f.start(ms(301_020), &t, &services(), 2),
            "c/",
            "a refresh starts at the pick"
        );
    }

    #[test]
    fn edge_mode_makes_one_pass() {
        let t = Timing::default();
        let mut rng = Rng::new(1);
        let ms = Instant::from_millis;
        let mut f = Fetch::new(ms(0));
        for i in 0..3 {
            f.start(ms(i * 1000), &t, &services(), 0);
            let ctx = Retry {
                timing: &t,
                rng: &mut rng,
                background: false,
            };
            f.failed(ms(i * 1000), (i + 1) as usize, 3, ctx);
        }
        assert!(!f.is_busy());
        assert!(f.refresh_now(ms(5_000)));
        assert_eq!(f.failures(), 0);
        assert!(!f.refresh_now(ms(5_000)));
    }

    #[test]
    fn notification_prefers_the_notifier_and_keeps_a_request_in_flight() {
        let t = Timing::default();
        let ms = Instant::from_millis;
        let mut f = Fetch::new(ms(0));
        f.start(ms(0), &t, &services(), 0);
        f.notified(ms(5), "c/");
        assert_eq!(f.due(true), None, "still in flight");
        f.done(ms(6), true, &t);
        assert_eq!(
            f.due(true),
            Some(ms(500)),
            "rate limit after the last start"
        );
        assert_eq!(f.start(ms(500), &t, &services(), 0), "c/");
    }
}
