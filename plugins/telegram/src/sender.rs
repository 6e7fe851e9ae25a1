//! The background sender: takes messages off the queue as the rate limits allow and delivers
//! them, honouring 429 `retry_after` and retrying with backoff while Telegram is unreachable.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use logrelay_plugin_api::Backoff;
use teloxide::payloads::SendMessageSetters;
use teloxide::requests::{Request, Requester};
use teloxide::types::{ChatId, LinkPreviewOptions, MessageId, ParseMode, ThreadId};
use teloxide::{ApiError, Bot, RequestError};
use tokio::sync::watch;

use crate::config::ChatTarget;
use crate::state::{Next, Shared};

/// The longest `retry_after` honoured as given; longer ones are capped to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What one attempt came to.
#[derive(Debug)]
pub enum Outcome {
    /// Delivered.
    Sent,
    /// 429: try again after this long.
    RetryAfter(Duration),
    /// Telegram unreachable, timed out or failing on its side: retry with backoff.
    Transient(String),
    /// Telegram refused the message for good: retrying cannot help.
    Permanent(String),
}

/// Classifies the result of a Bot API call.
pub fn classify<T>(
    result: Result<Result<T, RequestError>, tokio::time::error::Elapsed>,
) -> Outcome {
    match result {
        Err(_) => Outcome::Transient("the request timed out".to_owned()),
        Ok(Ok(_)) => Outcome::Sent,
        Ok(Err(e)) => classify_error(&e),
    }
}

/// Classifies a Bot API error.
pub fn classify_error(e: &RequestError) -> Outcome {
    match e {
        RequestError::RetryAfter(s) => Outcome::RetryAfter(s.duration().min(MAX_RETRY_AFTER)),
        RequestError::Network(_) | RequestError::Io(_) | RequestError::InvalidJson { .. } => {
            Outcome::Transient(e.to_string())
        }
        RequestError::MigrateToChatId(to) => Outcome::Permanent(format!(
            "the group became the supergroup {}; put that chat id in the config",
            to.0
        )),
        RequestError::Api(ApiError::Unknown(description)) if server_side(description) => {
            Outcome::Transient(description.clone())
        }
        RequestError::Api(api) => Outcome::Permanent(api.to_string()),
    }
}

/// Whether an error description Telegram (or a proxy) gave is a failure on the server side.
fn server_side(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    [
        "internal server error",
        "bad gateway",
        "service unavailable",
        "gateway timeout",
        "too many requests",
    ]
    .iter()
    .any(|s| d.contains(s))
}

/// Sends one message, once.
pub async fn send_once(bot: &Bot, timeout: Duration, target: ChatTarget, text: &str) -> Outcome {
    let mut request = bot
        .send_message(ChatId(target.chat_id), text)
        .parse_mode(ParseMode::Html)
        .link_preview_options(LinkPreviewOptions {
            is_disabled: true,
            url: None,
            prefer_small_media: false,
            prefer_large_media: false,
            show_above_text: false,
        });
    if let Some(thread) = target.thread_id {
        request = request.message_thread_id(ThreadId(MessageId(thread)));
    }
    classify(tokio::time::timeout(timeout, request.send()).await)
}

/// Waits `d`, or less when `stop` is raised; returns whether to go on.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        _ = stop.changed() => false,
    }
}

/// Delivers one message, retrying until it is sent, refused for good, or `stop` is raised.
async fn deliver(
    shared: &Shared,
    bot: &Bot,
    target: ChatTarget,
    text: &str,
    stop: &mut watch::Receiver<bool>,
) {
    let settings = &shared.settings;
    let counters = &shared.counters;
    let backoff = Backoff::new(settings.retry_initial, settings.retry_max);
    // Failed sends so far, for the backoff (429 waits do not count: Telegram said how long).
    let mut failures: u32 = 0;
    for attempt in 1u64.. {
        match send_once(bot, settings.request_timeout, target, text).await {
            Outcome::Sent => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                if attempt > 1 {
                    tracing::info!(chat = %target, attempt, "Telegram reachable again; message delivered.");
                }
                return;
            }
            Outcome::RetryAfter(after) => {
                counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(chat = %target, retry_after_ms = after.as_millis() as u64, "Telegram asked to slow down (429); waiting.");
                if !pause(after, stop).await {
                    return;
                }
            }
            Outcome::Transient(reason) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                failures = failures.saturating_add(1);
                let wait = backoff.delay(failures);
                tracing::warn!(chat = %target, attempt, error = %reason, backoff_ms = wait.as_millis() as u64, "Sending to Telegram failed; will retry.");
                if !pause(wait, stop).await {
                    return;
                }
            }
            Outcome::Permanent(reason) => {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!(chat = %target, error = %reason, "Telegram refused the message; it is dropped.");
                return;
            }
        }
    }
}

/// The sender task: runs until `stop` is raised.
pub async fn run(shared: Arc<Shared>, bot: Bot, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        match shared.next() {
            Next::Send(target, text) => {
                deliver(&shared, &bot, target, &text, &mut stop).await;
                shared.lock().in_flight = false;
            }
            Next::Wait(wait) => {
                let wait = wait.unwrap_or(Duration::from_secs(3600));
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shared.wake.notified() => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use teloxide::types::Seconds;

    use super::*;

    #[test]
    fn classifies_errors() {
        assert!(matches!(
            classify_error(&RequestError::RetryAfter(Seconds::from_seconds(3))),
            Outcome::RetryAfter(d) if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            classify_error(&RequestError::Api(ApiError::Unknown(
                "Internal Server Error".into()
            ))),
            Outcome::Transient(_)
        ));
        assert!(matches!(
            classify_error(&RequestError::Api(ApiError::ChatNotFound)),
            Outcome::Permanent(_)
        ));
    }
}
