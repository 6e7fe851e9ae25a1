//! Exponential backoff with jitter, for retried calls and reconnects.

use std::time::Duration;

/// Exponential backoff with jitter: about 100 ms, 200 ms, 400 ms ... up to about `max` (each
/// wait is spread over 7/8 to 9/8 of its step), never less than the plugin's `retry_after`.
pub fn backoff(attempt: u32, max: Duration, retry_after: Option<Duration>) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let step = Duration::from_millis(100)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(max);
    let spread = step.as_millis() as u64 / 4 + 1;
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let wait = step - step / 8 + Duration::from_millis(random % spread);
    wait.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_respects_bounds() {
        let max = Duration::from_secs(5);
        for _ in 0..50 {
            let first = backoff(1, max, None);
            assert!(
                first >= Duration::from_millis(87) && first <= Duration::from_millis(113),
                "{first:?}"
            );
            let tenth = backoff(10, max, None);
            assert!(
                tenth >= max - max / 8 && tenth <= max + max / 8,
                "{tenth:?}"
            );
        }
        assert_eq!(
            backoff(1, max, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }
}
