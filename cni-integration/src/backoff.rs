//! Bounded, jittered exponential back-off between reconnects, without a clock or a random source of
//! its own: the caller passes the random number, so the delays are tested exactly.

use std::time::Duration;

/// How long to wait between reconnect attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The delay before the first retry (before jitter).
    pub initial: Duration,
    /// The longest delay, however many attempts failed.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    /// 100 ms doubling up to 5 s: an announcer restart (a few seconds) is followed closely, and a
    /// node whose announcer is gone costs one connect attempt every few seconds.
    fn default() -> Self {
        Self { initial: Duration::from_millis(100), max: Duration::from_secs(5) }
    }
}

/// The back-off state of one connection: how many attempts failed in a row.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    failures: u32,
}

impl Backoff {
    /// A back-off with no failure yet.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self { policy, failures: 0 }
    }

    /// How many attempts failed since the last [`Backoff::reset`].
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay before the next attempt, given `random` in `[0, 1)`, and one more failure counted.
    ///
    /// The ceiling doubles with each failure up to `max`; the delay is drawn from the upper half of
    /// it ("equal jitter"): agents on many nodes that lost the same announcer (an upgrade restarts
    /// them together) spread out, and none retries in a tight loop.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let random = if random.is_finite() { random.clamp(0.0, 1.0) } else { 0.0 };
        let half = ceiling / 2;
        half + half.mul_f64(random)
    }

    /// Forgets the failures: the connection worked.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    fn ceiling(&self) -> Duration {
        let max = self.policy.max.max(self.policy.initial);
        // 2^31 times any delay is past every sensible max; the shift stays defined.
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.policy.initial.checked_mul(factor).map_or(max, |delay| delay.min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_up_to_the_bound_and_resets() {
        let mut backoff = Backoff::new(BackoffPolicy { initial: MS(100), max: MS(1000) });
        let tops: Vec<_> = (0..6).map(|_| backoff.next_delay(1.0)).collect();
        assert_eq!(tops, vec![MS(100), MS(200), MS(400), MS(800), MS(1000), MS(1000)]);
        assert_eq!(backoff.failures(), 6);
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), MS(50), "the lower half is never used: no tight loop");
    }

    proptest! {
        #[test]
        fn delays_stay_within_half_and_all_of_the_ceiling(
            initial_ms in 1u64..10_000,
            max_ms in 1u64..120_000,
            randoms in proptest::collection::vec(any::<f64>(), 1..80),
        ) {
            let policy = BackoffPolicy { initial: MS(initial_ms), max: MS(max_ms) };
            let bound = policy.max.max(policy.initial);
            let mut backoff = Backoff::new(policy);
            let mut previous_ceiling = Duration::ZERO;
            for random in randoms {
                let ceiling = backoff.ceiling();
                prop_assert!(ceiling >= previous_ceiling, "the ceiling never shrinks before a reset");
                let delay = backoff.next_delay(random);
                prop_assert!(delay <= ceiling && delay <= bound, "{delay:?} past {ceiling:?} / {bound:?}");
                prop_assert!(delay >= ceiling / 2, "{delay:?} below half of {ceiling:?}");
                previous_ceiling = ceiling;
            }
        }
    }
}
