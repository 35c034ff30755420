//! Back-off, rate limits and the random choices behind them.
//!
//! Pure helpers: each takes the [`Timing`] knob it needs and, where jitter or a pick is
//! drawn, the client's [`Rng`] as an argument. Nothing here reads a clock; callers pass
//! the instants (docs/protocol.md#rate-limits-and-back-off).

use core::time::Duration;

use crate::time::{Instant, duration_millis};

/// A small deterministic generator (splitmix64) for instance picks and jitter. The host
/// seeds it ([`ConfigBuilder::seed`](crate::ConfigBuilder::seed)), so a run is
/// reproducible.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform pick in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next() % (n as u64)).unwrap_or(0)
        }
    }
}

/// The delay before attempt `attempt` (1 = the first retry): `initial` doubled per
/// attempt up to `max`, then shortened by a random cut of up to `jitter_percent` percent
/// (so retries of many clients spread out, never exceeding the schedule).
pub(crate) fn backoff(
    initial: Duration,
    max: Duration,
    attempt: u32,
    jitter_percent: u8,
    rng: &mut Rng,
) -> Duration {
    let init = duration_millis(initial).max(1);
    let cap = duration_millis(max).max(init);
    let shift = attempt.saturating_sub(1).min(32);
    let d = init.saturating_mul(1u64 << shift).min(cap);
    let spread = d.saturating_mul(u64::from(jitter_percent)) / 100;
    let cut = if spread == 0 {
        0
    } else {
        rng.next() % (spread + 1)
    };
    Duration::from_millis(d - cut)
}

/// A request rate limit of `qps` starts per second: each start waits `1/qps` after the
/// previous one (the Java client's `apollo.loadConfigQPS` / `longPollQPS` /
/// `discoveryQPS`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rate {
    last_start: Option<Instant>,
}

impl Rate {
    /// The earliest instant the next start is allowed ([`Instant::ZERO`] before the
    /// first one).
    pub(crate) fn earliest(&self, qps: u32) -> Instant {
        match self.last_start {
            None => Instant::ZERO,
            Some(t) => t + Duration::from_millis(1000 / u64::from(qps.max(1))),
        }
    }

    /// Record a start at `now`.
    pub(crate) fn on_start(&mut self, now: Instant) {
        self.last_start = Some(now);
    }
}

/// Whether something due at `due` may run at `now`.
pub(crate) fn is_due(due: Option<Instant>, now: Instant) -> bool {
    due.is_some_and(|d| now >= d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut rng = Rng::new(1);
        let s = Duration::from_secs;
        let d: alloc::vec::Vec<u64> = (1..=6)
            .map(|a| backoff(s(1), s(8), a, 0, &mut rng).as_secs())
            .collect();
        assert_eq!(d, [1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn jitter_only_shortens() {
        let mut rng = Rng::new(9);
        for a in 1..20 {
            let d = backoff(
                Duration::from_secs(1),
                Duration::from_secs(120),
                a,
                25,
                &mut rng,
            );
            let full = (1000u64 << (a - 1).min(32)).min(120_000);
            let ms = duration_millis(d);
            assert!(ms <= full && ms >= full - full / 4, "{a}: {ms} of {full}");
        }
    }

    #[test]
    fn rate_spaces_starts() {
        let mut r = Rate::default();
        assert_eq!(r.earliest(2), Instant::ZERO);
        r.on_start(Instant::from_millis(100));
        assert_eq!(r.earliest(2), Instant::from_millis(600));
        assert_eq!(r.earliest(0), Instant::from_millis(1100));
    }

    #[test]
    fn due_at_or_after_the_instant() {
        let at = Some(Instant::from_millis(3));
        assert!(is_due(at, Instant::from_millis(3)));
        assert!(!is_due(at, Instant::from_millis(2)));
        assert!(!is_due(None, Instant::from_millis(2)));
    }
}
