//! Exponential backoff with jitter, for retried calls and reconnects: the host's steps
//! (from 100 ms) over the one `Backoff` that connectors use too.

use std::time::Duration;

use logrelay_plugin_api::Backoff;

/// Exponential backoff with jitter: about 100 ms, 200 ms, 400 ms ... up to about `max` (each
/// wait is spread over 7/8 to 9/8 of its step), never less than the plugin's `retry_after`.
pub fn backoff(attempt: u32, max: Duration, retry_after: Option<Duration>) -> Duration {
    Backoff::new(Duration::from_millis(100), max).delay_at_least(attempt, retry_after)
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
