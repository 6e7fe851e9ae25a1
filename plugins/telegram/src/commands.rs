//! Bot commands, read by long polling `getUpdates` and answered only in the configured chats:
//! `/status`, `/rules`, `/mute <rule> <duration>`, `/unmute <rule>` (and `/help`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use teloxide::Bot;
use teloxide::payloads::GetUpdatesSetters;
use teloxide::requests::{Request, Requester};
use teloxide::types::{AllowedUpdate, Message, UpdateKind};
use tokio::sync::watch;

use crate::config::ChatTarget;
use crate::state::{Shared, duration_text};
use crate::template::escape;

/// The longest `/mute`.
const MAX_MUTE: Duration = Duration::from_secs(30 * 86_400);

/// The poller task: runs until `stop` is raised.
pub async fn run(shared: Arc<Shared>, bot: Bot, mut stop: watch::Receiver<bool>) {
    let settings = &shared.settings;
    let mut offset: i32 = 0;
    let mut backoff = settings.retry_initial;
    let limit =
        settings.request_timeout + Duration::from_secs(u64::from(settings.poll_timeout_secs));
    loop {
        if *stop.borrow() {
            return;
        }
        let request = bot
            .get_updates()
            .offset(offset)
            .timeout(settings.poll_timeout_secs)
            .allowed_updates(vec![AllowedUpdate::Message]);
        let result = tokio::select! {
            r = tokio::time::timeout(limit, request.send()) => r,
            _ = stop.changed() => return,
        };
        let wait = match result {
            Ok(Ok(updates)) => {
                backoff = settings.retry_initial;
                for update in updates {
                    offset = offset.max(
                        i32::try_from(update.id.0)
                            .unwrap_or(i32::MAX)
                            .saturating_add(1),
                    );
                    if let UpdateKind::Message(message) = update.kind {
                        handle(&shared, &message);
                    }
                }
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the request timed out".to_owned(),
        };
        shared
            .counters
            .poll_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %wait, backoff_ms = backoff.as_millis() as u64, "Reading bot commands failed; will retry.");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(settings.retry_max);
    }
}

/// Answers one message, if it is a command from a configured chat.
pub fn handle(shared: &Shared, message: &Message) {
    let Some(text) = message.text() else { return };
    if !text.starts_with('/') {
        return;
    }
    let chat = message.chat.id.0;
    if !shared.settings.command_chats.contains(&chat) {
        shared
            .counters
            .ignored_commands
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(chat, "Command from a chat that is not configured; ignored.");
        return;
    }
    let target = ChatTarget {
        chat_id: chat,
        thread_id: message
            .thread_id
            .filter(|_| message.is_topic_message)
            .map(|t| t.0.0),
    };
    let reply = answer(shared, text);
    tracing::debug!(chat, command = text, "Answering a command.");
    shared.enqueue_reply(target, &reply);
}

/// The reply (HTML) to a command line.
pub fn answer(shared: &Shared, text: &str) -> String {
    let mut words = text.split_whitespace();
    let command = words
        .next()
        .unwrap_or_default()
        .split('@')
        .next()
        .unwrap_or_default();
    let args: Vec<&str> = words.collect();
    match command {
        "/status" => status(shared),
        "/rules" => rules(shared),
        "/mute" => match args.as_slice() {
            [rule, duration] => mute(shared, rule, duration),
            _ => "Usage: <code>/mute &lt;rule&gt; &lt;duration&gt;</code>, e.g. <code>/mute payments 30m</code> (s, m, h, d).".to_owned(),
        },
        "/unmute" => match args.as_slice() {
            [rule] => unmute(shared, rule),
            _ => "Usage: <code>/unmute &lt;rule&gt;</code>".to_owned(),
        },
        _ => "Commands: /status, /rules, /mute &lt;rule&gt; &lt;duration&gt;, /unmute &lt;rule&gt;".to_owned(),
    }
}

fn status(shared: &Shared) -> String {
    let s = shared.status();
    let mut out = format!("<b>logrelay · {}</b>\n", escape(&shared.instance));
    let _ = write!(
        out,
        "sent: {}\ngrouped: {}\nfailed: {}\nrejected: {}\nrate limited: {}\nfolded: {}\nqueued: {}\nmuted: ",
        s.sent, s.grouped, s.failed, s.rejected, s.rate_limited, s.folded, s.queued
    );
    if s.muted.is_empty() {
        out.push_str("none");
    } else {
        let list: Vec<String> = s
            .muted
            .iter()
            .map(|m| {
                format!(
                    "{} ({} left)",
                    escape(&m.rule),
                    duration_text(Duration::from_secs(m.remaining_secs))
                )
            })
            .collect();
        out.push_str(&list.join(", "));
    }
    out
}

fn rules(shared: &Shared) -> String {
    if shared.settings.rules.is_empty() {
        return "No rules: nothing is sent.".to_owned();
    }
    let mut out =
        String::from("<b>Rules</b> (in order; every match fires until a <i>stop</i> rule)");
    for (i, rule) in shared.settings.rules.iter().enumerate() {
        let _ = write!(
            out,
            "\n<b>{}</b>: {}",
            escape(&rule.name),
            escape(&rule.describe())
        );
        if let Some(left) = shared.muted_for(i) {
            let _ = write!(out, " (muted, {} left)", duration_text(left));
        }
    }
    out
}

fn find_rule(shared: &Shared, name: &str) -> Result<usize, String> {
    shared
        .settings
        .rules
        .iter()
        .position(|r| r.name == name)
        .ok_or_else(|| {
            let names: Vec<String> = shared
                .settings
                .rules
                .iter()
                .map(|r| escape(&r.name))
                .collect();
            format!(
                "No rule <code>{}</code>. Rules: {}",
                escape(name),
                names.join(", ")
            )
        })
}

fn mute(shared: &Shared, rule: &str, duration: &str) -> String {
    let index = match find_rule(shared, rule) {
        Ok(i) => i,
        Err(reply) => return reply,
    };
    let Some(d) = parse_duration(duration) else {
        return format!(
            "Cannot read the duration <code>{}</code>: write e.g. 90s, 30m, 1h30m, 2h or 1d, or a number of minutes (at most 30d).",
            escape(duration)
        );
    };
    shared.mute(index, d);
    tracing::info!(rule, seconds = d.as_secs(), "Rule muted by a bot command.");
    format!(
        "Rule <b>{}</b> muted for {}.",
        escape(rule),
        duration_text(d)
    )
}

fn unmute(shared: &Shared, rule: &str) -> String {
    let index = match find_rule(shared, rule) {
        Ok(i) => i,
        Err(reply) => return reply,
    };
    if shared.unmute(index) {
        tracing::info!(rule, "Rule unmuted by a bot command.");
        format!("Rule <b>{}</b> unmuted.", escape(rule))
    } else {
        format!("Rule <b>{}</b> was not muted.", escape(rule))
    }
}

/// The duration of `/mute`: the shared grammar ([`logrelay_plugin_api::duration`]: `90s`,
/// `30m`, `1h30m`, `2h`, `1d`), plus one command-level default: a bare number is minutes, as
/// `/mute payments 15` has always meant. Between 1 s and 30 days.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let d = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(text.parse::<u64>().ok()?.checked_mul(60)?)
    } else {
        logrelay_plugin_api::parse_duration(text).ok()?
    };
    (d >= Duration::from_secs(1) && d <= MAX_MUTE).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("15"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("31d"), None);
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5w"), None);
        // The shared grammar: combinations and long unit names.
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2 hours"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("500ms"), None);
        assert_eq!(parse_duration("0"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999999999999"), None);
    }
}
