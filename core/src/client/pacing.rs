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

/// The most unused time a [`Rate`] stores: one second, as Guava's `SmoothBursty` limiter
/// behind the Java client's `RateLimiter.create(qps)` (its `maxBurstSeconds`).
const MAX_BURST_MS: u64 = 1_000;

/// Stored permits are spent no faster than one per this many milliseconds (or per
/// `1000 / qps` when that is shorter). Releases published a few milliseconds apart are
/// then collected by a few polls, instead of the whole burst going in the first
/// milliseconds and the rest waiting a full interval.
const MIN_GAP_MS: u64 = 10;

/// A request rate limit of `qps` starts per second, modelled on the limiter of the Java
/// client (`apollo.loadConfigQPS` / `longPollQPS` / `discoveryQPS`,
/// docs/protocol.md#rate-limits-and-back-off).
///
/// Time the limiter is not used is stored, up to one second's worth of permits (`qps`
/// permits): a start spends a stored permit without moving the schedule, so after a quiet
/// second up to `qps + 1` starts go at once. Without stored permits a start pushes the next
/// allowed start `1000 / qps` ms further, so a sustained stream is held to `qps` per
/// second. One difference from Guava: stored permits go at most one per [`MIN_GAP_MS`].
/// All in whole milliseconds, like [`Instant`].
#[derive(Debug, Clone)]
pub(crate) struct Rate {
    /// The earliest instant of the next start by the permits.
    next_free: Instant,
    /// Unused time stored, in milliseconds (a permit is worth `1000 / qps`).
    stored_ms: u64,
    /// The earliest instant of the next start by the minimum gap.
    gap_until: Instant,
}

impl Rate {
    /// A limiter created at `now`, with nothing stored (Guava starts empty too); time
    /// from now on is stored until the first start.
    pub(crate) fn new(now: Instant) -> Rate {
        Rate {
            next_free: now,
            stored_ms: 0,
            gap_until: now,
        }
    }

    /// The earliest instant the next start is allowed.
    pub(crate) fn earliest(&self) -> Instant {
        self.next_free.max(self.gap_until)
    }

    /// Record a start at `now` under a limit of `qps` per second.
    pub(crate) fn on_start(&mut self, now: Instant, qps: u32) {
        let interval = 1_000 / u64::from(qps.max(1));
        let cap = interval
            .saturating_mul(u64::from(qps.max(1)))
            .min(MAX_BURST_MS);
        if now > self.next_free {
            let idle = duration_millis(now.saturating_duration_since(self.next_free));
            self.stored_ms = self.stored_ms.saturating_add(idle).min(cap);
            self.next_free = now;
        }
        let spent = self.stored_ms.min(interval);
        self.stored_ms -= spent;
        self.next_free = self.next_free + Duration::from_millis(interval - spent);
        self.gap_until = now + Duration::from_millis(MIN_GAP_MS.min(interval));
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

    /// Starts taken as soon as the limiter allows, from `from` until `until` (ms).
    fn hammer(r: &mut Rate, qps: u32, from: u64, until: u64) -> alloc::vec::Vec<u64> {
        let mut starts = alloc::vec::Vec::new();
        let mut now = Instant::from_millis(from);
        while now.as_millis() < until && starts.len() < 100_000 {
            now = now.max(r.earliest());
            if now.as_millis() >= until {
                break;
            }
            r.on_start(now, qps);
            starts.push(now.as_millis());
        }
        starts
    }

    #[test]
    fn rate_first_start_is_free_then_spaced() {
        let mut r = Rate::new(Instant::from_millis(100));
        assert_eq!(r.earliest(), Instant::from_millis(100));
        r.on_start(Instant::from_millis(100), 2);
        assert_eq!(r.earliest(), Instant::from_millis(600));
        r.on_start(Instant::from_millis(600), 2);
        assert_eq!(r.earliest(), Instant::from_millis(1_100));
    }

    #[test]
    fn rate_lets_a_burst_of_three_through_after_a_quiet_second() {
        // The Java client's 2/s: two stored permits plus the one whose cost the next
        // start pays, as Guava's SmoothBursty (docs/protocol.md#rate-limits-and-back-off).
        let mut r = Rate::new(Instant::ZERO);
        r.on_start(Instant::ZERO, 2);
        // Stored permits go one per 10 ms.
        for t in [1_500, 1_510, 1_520] {
            assert!(
                r.earliest() <= Instant::from_millis(t),
                "{:?}",
                r.earliest()
            );
            r.on_start(Instant::from_millis(t), 2);
        }
        assert_eq!(
            r.earliest(),
            Instant::from_millis(2_000),
            "the fourth waits"
        );
        // Half a second of quiet stores one permit back.
        r.on_start(Instant::from_millis(2_000), 2);
        assert_eq!(r.earliest(), Instant::from_millis(2_500));
    }

    #[test]
    fn rate_stores_at_most_one_second() {
        // A minute of quiet stores one second (two permits at 2/s), no more: three starts
        // go at once, then the schedule is back to one per half second.
        let mut r = Rate::new(Instant::ZERO);
        let starts = hammer(&mut r, 2, 60_000, 61_100);
        assert_eq!(starts, [60_000, 60_010, 60_020, 60_500, 61_000]);
    }

    #[test]
    fn rate_sustained_hammer_is_held_to_qps() {
        for qps in [1, 2, 5, 50] {
            let mut r = Rate::new(Instant::ZERO);
            let starts = hammer(&mut r, qps, 10_000, 20_000);
            // Ten seconds at `qps`, plus the stored second and the start that is paid by
            // the next one.
            let most = 10 * qps as usize + qps as usize + 1;
            assert!(starts.len() <= most, "{qps}/s: {} starts", starts.len());
            assert!(
                starts.len() >= 10 * qps as usize,
                "{qps}/s: {}",
                starts.len()
            );
            // The burst goes at one start per 10 ms at least; once spent, starts are
            // spaced by exactly one interval.
            let interval = u64::from(1_000 / qps);
            let gap = interval.min(10);
            assert!(starts.windows(2).all(|w| w[1] - w[0] >= gap), "{qps}/s");
            let tail = &starts[starts.len() / 2..];
            assert!(tail.windows(2).all(|w| w[1] - w[0] == interval), "{qps}/s");
        }
    }

    #[test]
    fn rate_treats_zero_and_huge_qps_safely() {
        let mut r = Rate::new(Instant::ZERO);
        r.on_start(Instant::ZERO, 0);
        assert_eq!(r.earliest(), Instant::from_millis(1_000), "0 counts as 1/s");
        let mut r = Rate::new(Instant::ZERO);
        let starts = hammer(&mut r, u32::MAX, 0, 1);
        assert!(starts.len() > 1_000, "no spacing beyond 1000/s");
    }

    #[test]
    fn due_at_or_after_the_instant() {
        let at = Some(Instant::from_millis(3));
        assert!(is_due(at, Instant::from_millis(3)));
        assert!(!is_due(at, Instant::from_millis(2)));
        assert!(!is_due(None, Instant::from_millis(2)));
    }
}
