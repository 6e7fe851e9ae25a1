//! Waits between retries: exponential, capped, with jitter.
//!
//! Jitter spreads the retries of many instances (or many chats, many uploads) that failed at
//! the same moment, so they do not all hit the recovering server again at the same moment.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Exponential backoff: `initial`, twice that, four times ... up to `max`, each wait spread
/// over 7/8 to 9/8 of its step.
///
/// ```
/// use std::time::Duration;
/// use logrelay_plugin_api::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// let first = backoff.delay(1);
/// assert!(first >= Duration::from_millis(87) && first <= Duration::from_millis(113));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The step of the first retry.
    pub initial: Duration,
    /// The largest step (a wait may exceed it by the jitter, 1/8).
    pub max: Duration,
}

impl Backoff {
    /// Steps from `initial` doubling up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max }
    }

    /// The step before retry number `attempt` (1 for the first retry), without jitter:
    /// `initial * 2^(attempt - 1)`, at most `max`.
    pub fn step(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max)
    }

    /// How long to wait before retry number `attempt` (1 for the first retry): its
    /// [`step`](Self::step) spread over 7/8 to 9/8.
    pub fn delay(&self, attempt: u32) -> Duration {
        jitter(self.step(attempt))
    }

    /// [`delay`](Self::delay), but never less than `retry_after` (what the failing side asked
    /// for: a plugin's `retry_after`, an HTTP 429's `Retry-After`).
    pub fn delay_at_least(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay(attempt).max(retry_after.unwrap_or_default())
    }
}

/// `step` spread uniformly (at millisecond resolution) over 7/8 to 9/8 of itself.
fn jitter(step: Duration) -> Duration {
    let spread = u64::try_from(step.as_millis() / 4)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    // A freshly seeded std hasher: random enough to decorrelate waits, no extra dependency.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (step - step / 8).saturating_add(Duration::from_millis(random % spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(b.step(0), Duration::from_millis(100));
        assert_eq!(b.step(1), Duration::from_millis(100));
        assert_eq!(b.step(2), Duration::from_millis(200));
        assert_eq!(b.step(4), Duration::from_millis(800));
        assert_eq!(b.step(10), Duration::from_secs(5));
        assert_eq!(b.step(u32::MAX), Duration::from_secs(5));
        for _ in 0..50 {
            let first = b.delay(1);
            assert!(
                first >= Duration::from_millis(87) && first <= Duration::from_millis(113),
                "{first:?}"
            );
            let tenth = b.delay(10);
            let max = b.max;
            assert!(
                tenth >= max - max / 8 && tenth <= max + max / 8,
                "{tenth:?}"
            );
        }
    }

    #[test]
    fn jitter_varies() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let waits: std::collections::HashSet<Duration> = (0..20).map(|_| b.delay(1)).collect();
        assert!(waits.len() > 1, "{waits:?}");
    }

    #[test]
    fn retry_after_is_a_floor() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(
            b.delay_at_least(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert!(b.delay_at_least(1, None) <= Duration::from_millis(113));
    }

    #[test]
    fn tiny_and_huge_steps_do_not_panic() {
        let b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.delay(3), Duration::ZERO);
        let b = Backoff::new(Duration::MAX, Duration::MAX);
        assert!(b.delay(40) >= Duration::MAX - Duration::MAX / 8);
    }
}
