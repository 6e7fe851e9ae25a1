//! Settings of the `telegram` connector: the raw [`Config`] as written in plugins.toml, and the
//! validated [`Settings`] the connector runs with.
//!
//! [`Config::validate`] compiles every rule (levels, regex, template, fingerprint) and checks every
//! limit, so nothing after start-up re-checks config.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use logrelay_plugin_api::Level;
use serde::Deserialize;

use crate::error::TelegramError;
use crate::rules::{AttributeFilter, Rule};
use crate::template::Template;

/// The environment variable the example config takes the bot token from.
pub const TOKEN_VAR: &str = "LOGRELAY_TELEGRAM_TOKEN";

/// Settings of the `telegram` connector, as written under `[plugins.<name>.config]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The bot token from @BotFather (`123456:ABC...`). Write `"${LOGRELAY_TELEGRAM_TOKEN}"` and
    /// keep the secret in `.env`. Required.
    pub token: Token,
    /// The Bot API server. Default `https://api.telegram.org`; point it at a self-hosted Bot API
    /// server (or a test server).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The message template (HTML): see README.md for the placeholders. Values are HTML-escaped;
    /// the template's own text is sent as written.
    #[serde(default = "default_template")]
    pub template: String,
    /// How `{time}` is written (chrono `strftime` syntax, UTC). Default `%Y-%m-%d %H:%M:%S UTC`.
    #[serde(default = "default_time_format")]
    pub time_format: String,
    /// Attributes listed by `{attributes}`, in this order; absent ones are left out. Default none.
    #[serde(default = "Vec::new")]
    pub show_attributes: Vec<String>,
    /// Identical alerts (same rule and fingerprint) within this window are sent once, then as one
    /// message with a count. Default 60000 (60 s); 0 turns grouping off.
    #[serde(default = "default_group_window_ms")]
    pub group_window_ms: u64,
    /// Messages per second to one chat (token bucket rate). Default 1.0, Telegram's limit.
    #[serde(default = "default_chat_messages_per_sec")]
    pub chat_messages_per_sec: f64,
    /// Messages one chat may get at once before `chat_messages_per_sec` applies. Default 3.
    #[serde(default = "default_chat_burst")]
    pub chat_burst: u32,
    /// Messages per second over all chats. Default 30.0, Telegram's limit.
    #[serde(default = "default_global_messages_per_sec")]
    pub global_messages_per_sec: f64,
    /// Messages sent at once over all chats before `global_messages_per_sec` applies. Default 30.
    #[serde(default = "default_global_burst")]
    pub global_burst: u32,
    /// Messages waiting to be sent. When full, further alerts are folded into one summary per
    /// chat ("N alerts folded") instead of being queued. Default 1000.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// First wait after a failed send (network error, 5xx); doubles up to `retry_max_ms`.
    /// Default 1000.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest wait between attempts while Telegram is unreachable. Default 60000.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// One Bot API call taking longer than this counts as failed and is retried. Default 15000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Answer bot commands (`/status`, `/rules`, `/mute`, `/unmute`) by long polling
    /// `getUpdates`. Default true. Turn off when another program reads this bot's updates.
    #[serde(default = "default_commands")]
    pub commands: bool,
    /// Long-polling timeout of `getUpdates`, in seconds. Default 10 (at most 15).
    #[serde(default = "default_poll_timeout_secs")]
    pub poll_timeout_secs: u32,
    /// Chats, besides those named by rules, whose commands are answered. Default none.
    #[serde(default = "Vec::new")]
    pub command_chats: Vec<i64>,
    /// At shutdown, keep sending what is queued for at most this long. Default 5000.
    #[serde(default = "default_shutdown_flush_ms")]
    pub shutdown_flush_ms: u64,
    /// The allow-list: a record is sent only where a rule matches it. Evaluated in order; every
    /// matching rule fires until one with `stop = true` matches.
    #[serde(default = "Vec::new")]
    pub rules: Vec<RuleConfig>,
}

/// One allow-list rule, as written in `[[plugins.<name>.config.rules]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's name, used in `/mute`, `/rules`, status and grouping. Unique, no spaces.
    pub name: String,
    /// Levels that match (`["error", "critical"]`). Give this or `min_level`, not both; neither
    /// matches every level.
    pub levels: Option<Vec<String>>,
    /// The lowest level that matches (`"warning"` matches warning, error and critical).
    pub min_level: Option<String>,
    /// Projects that match (exact names). Empty or absent: any project.
    #[serde(default = "Vec::new")]
    pub projects: Vec<String>,
    /// Modules that match (exact names). Empty or absent: any module.
    #[serde(default = "Vec::new")]
    pub modules: Vec<String>,
    /// A regular expression the message must contain a match of. Absent: any message.
    pub message_regex: Option<String>,
    /// Attribute key -> allowed values; every key listed must be present with one of its values
    /// (strings compare as text, numbers and booleans by their JSON text).
    #[serde(default = "BTreeMap::new")]
    pub attributes: BTreeMap<String, Vec<AttributeValue>>,
    /// Where the alert goes: chat ids, or `{ chat_id = ..., message_thread_id = ... }` tables.
    pub chats: Vec<ChatConfig>,
    /// Stop evaluating the rules after this one when it matches. Default false.
    #[serde(default = "default_stop")]
    pub stop: bool,
    /// A template for this rule's messages instead of the connector's `template`.
    pub template: Option<String>,
    /// What makes two alerts "identical" for grouping, as a template (plain text, digits in
    /// `{message}` normalised). Default: level, project, module and the message with digits
    /// normalised.
    pub fingerprint: Option<String>,
}

/// An attribute value a rule allows.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A number with a fraction.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl AttributeValue {
    fn into_text(self) -> String {
        match self {
            AttributeValue::Text(s) => s,
            AttributeValue::Integer(i) => i.to_string(),
            AttributeValue::Float(f) => serde_json::Number::from_f64(f)
                .map(|n| n.to_string())
                .unwrap_or_else(|| f.to_string()),
            AttributeValue::Bool(b) => b.to_string(),
        }
    }
}

/// A chat an alert goes to: its id, or its id and a forum topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ChatConfig {
    /// Just the chat id (negative for groups and channels).
    Id(i64),
    /// A chat id and, optionally, the forum topic (`message_thread_id`) to post in.
    Table(ChatTable),
}

/// The table form of [`ChatConfig`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatTable {
    /// The chat id.
    pub chat_id: i64,
    /// The forum topic to post in.
    pub message_thread_id: Option<i32>,
}

/// A destination: chat and optional topic thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatTarget {
    /// The chat id.
    pub chat_id: i64,
    /// The forum topic, if any.
    pub thread_id: Option<i32>,
}

impl fmt::Display for ChatTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.thread_id {
            Some(t) => write!(f, "{}#{t}", self.chat_id),
            None => write!(f, "{}", self.chat_id),
        }
    }
}

/// The bot token; its `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Token(pub String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

fn default_api_url() -> String {
    "https://api.telegram.org".to_owned()
}

/// The default message template.
pub const DEFAULT_TEMPLATE: &str =
    "<b>{LEVEL}</b> {project} / {module}\n{message}\n<i>{time}</i>\n{attributes}";

fn default_template() -> String {
    DEFAULT_TEMPLATE.to_owned()
}

fn default_time_format() -> String {
    "%Y-%m-%d %H:%M:%S UTC".to_owned()
}

const fn default_group_window_ms() -> u64 {
    60_000
}

const fn default_chat_messages_per_sec() -> f64 {
    1.0
}

const fn default_chat_burst() -> u32 {
    3
}

const fn default_global_messages_per_sec() -> f64 {
    30.0
}

const fn default_global_burst() -> u32 {
    30
}

const fn default_queue_capacity() -> usize {
    1000
}

const fn default_retry_initial_ms() -> u64 {
    1000
}

const fn default_retry_max_ms() -> u64 {
    60_000
}

const fn default_request_timeout_ms() -> u64 {
    15_000
}

const fn default_commands() -> bool {
    true
}

const fn default_poll_timeout_secs() -> u32 {
    10
}

const fn default_shutdown_flush_ms() -> u64 {
    5000
}

const fn default_stop() -> bool {
    false
}

/// A token bucket's settings.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Tokens added per second (> 0).
    pub per_sec: f64,
    /// Bucket size (>= 1).
    pub burst: f64,
}

/// Validated settings: what the connector runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The bot token, well-formed.
    pub token: Token,
    /// The Bot API base address.
    pub api_url: String,
    /// The compiled default template.
    pub template: Template,
    /// `{time}` format (checked).
    pub time_format: String,
    /// Attributes listed by `{attributes}`.
    pub show_attributes: Vec<String>,
    /// The grouping window; `None` turns grouping off.
    pub group_window: Option<Duration>,
    /// Per-chat limit.
    pub chat_rate: RateLimit,
    /// Global limit.
    pub global_rate: RateLimit,
    /// Queue capacity (>= 1).
    pub queue_capacity: usize,
    /// First retry wait.
    pub retry_initial: Duration,
    /// Longest retry wait.
    pub retry_max: Duration,
    /// Timeout of one Bot API call.
    pub request_timeout: Duration,
    /// Whether commands are polled for.
    pub commands: bool,
    /// Long-poll timeout in seconds.
    pub poll_timeout_secs: u32,
    /// Chats whose commands are answered (the rules' chats and `command_chats`).
    pub command_chats: HashSet<i64>,
    /// How long shutdown keeps sending.
    pub shutdown_flush: Duration,
    /// The compiled rules, in order.
    pub rules: Vec<Rule>,
}

fn invalid(option: impl Into<String>, reason: impl Into<String>) -> TelegramError {
    TelegramError::Invalid {
        option: option.into(),
        reason: reason.into(),
    }
}

/// Checks the token's shape (`<digits>:<at least 30 of A-Z a-z 0-9 _ ->`).
fn check_token(token: &str) -> Result<(), TelegramError> {
    let well_formed = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && secret.len() >= 30
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if well_formed {
        Ok(())
    } else if token.trim().is_empty() {
        Err(invalid(
            "token",
            format!("is empty; set {TOKEN_VAR} to the bot token from @BotFather"),
        ))
    } else {
        Err(invalid(
            "token",
            format!(
                "is not a bot token (expected `<digits>:<secret>`); set {TOKEN_VAR} to the token from @BotFather"
            ),
        ))
    }
}

fn rate(option: &str, per_sec: f64, burst: u32) -> Result<RateLimit, TelegramError> {
    if !(per_sec.is_finite() && per_sec > 0.0) {
        return Err(invalid(
            option,
            format!("must be a positive number, got {per_sec}"),
        ));
    }
    if burst == 0 {
        return Err(invalid(
            option.replace("messages_per_sec", "burst"),
            "must be at least 1",
        ));
    }
    Ok(RateLimit {
        per_sec,
        burst: f64::from(burst),
    })
}

fn level(rule: &str, option: &str, name: &str) -> Result<Level, TelegramError> {
    Level::from_name(name).ok_or_else(|| {
        invalid(
            format!("rules.{rule}.{option}"),
            format!("`{name}` is not a level (trace, debug, info, warning, error, critical)"),
        )
    })
}

impl Config {
    /// Checks every value and converts the config into [`Settings`].
    pub fn validate(self) -> Result<Settings, TelegramError> {
        check_token(&self.token.0)?;
        let api_url = self.api_url.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&api_url)
            .map_err(|e| invalid("api_url", format!("is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
            return Err(invalid("api_url", "must be an http:// or https:// address"));
        }
        let template =
            Template::parse(&self.template, true).map_err(|reason| invalid("template", reason))?;
        if chrono::format::StrftimeItems::new(&self.time_format)
            .parse()
            .is_err()
        {
            return Err(invalid(
                "time_format",
                format!("`{}` is not a valid strftime format", self.time_format),
            ));
        }
        let chat_rate = rate(
            "chat_messages_per_sec",
            self.chat_messages_per_sec,
            self.chat_burst,
        )?;
        let global_rate = rate(
            "global_messages_per_sec",
            self.global_messages_per_sec,
            self.global_burst,
        )?;
        if self.queue_capacity == 0 {
            return Err(invalid("queue_capacity", "must be at least 1"));
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err(invalid(
                "retry_initial_ms",
                "must be at least 1 and at most `retry_max_ms`",
            ));
        }
        if self.request_timeout_ms < 100 {
            return Err(invalid("request_timeout_ms", "must be at least 100"));
        }
        if self.poll_timeout_secs > 15 {
            return Err(invalid(
                "poll_timeout_secs",
                "must be at most 15 (the HTTP client gives up after 17 s)",
            ));
        }

        let mut names = HashSet::new();
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut command_chats: HashSet<i64> = self.command_chats.iter().copied().collect();
        for raw in self.rules {
            let name = raw.name.clone();
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err(invalid(
                    "rules.name",
                    format!("`{name}` must be non-empty and without spaces"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(invalid(
                    format!("rules.{name}"),
                    "the name is used by another rule",
                ));
            }
            let levels: Option<Vec<Level>> = match (&raw.levels, &raw.min_level) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        format!("rules.{name}"),
                        "give `levels` or `min_level`, not both",
                    ));
                }
                (Some(list), None) => {
                    if list.is_empty() {
                        return Err(invalid(
                            format!("rules.{name}.levels"),
                            "must name at least one level (leave it out to match every level)",
                        ));
                    }
                    Some(
                        list.iter()
                            .map(|l| level(&name, "levels", l))
                            .collect::<Result<_, _>>()?,
                    )
                }
                (None, Some(min)) => {
                    let min = level(&name, "min_level", min)?;
                    Some(Level::ALL.into_iter().filter(|l| *l >= min).collect())
                }
                (None, None) => None,
            };
            let message_regex = raw
                .message_regex
                .as_deref()
                .map(regex::Regex::new)
                .transpose()
                .map_err(|e| invalid(format!("rules.{name}.message_regex"), e.to_string()))?;
            let attributes = raw
                .attributes
                .into_iter()
                .map(|(key, values)| AttributeFilter {
                    key,
                    values: values.into_iter().map(AttributeValue::into_text).collect(),
                })
                .collect();
            if raw.chats.is_empty() {
                return Err(invalid(
                    format!("rules.{name}.chats"),
                    "must name at least one chat",
                ));
            }
            let mut chats: Vec<ChatTarget> = raw
                .chats
                .iter()
                .map(|c| match c {
                    ChatConfig::Id(id) => ChatTarget {
                        chat_id: *id,
                        thread_id: None,
                    },
                    ChatConfig::Table(t) => ChatTarget {
                        chat_id: t.chat_id,
                        thread_id: t.message_thread_id,
                    },
                })
                .collect();
            let mut seen = HashSet::new();
            chats.retain(|c| seen.insert(*c));
            command_chats.extend(chats.iter().map(|c| c.chat_id));
            let template = raw
                .template
                .as_deref()
                .map(|t| Template::parse(t, true))
                .transpose()
                .map_err(|reason| invalid(format!("rules.{name}.template"), reason))?;
            let fingerprint = raw
                .fingerprint
                .as_deref()
                .map(|t| Template::parse(t, false))
                .transpose()
                .map_err(|reason| invalid(format!("rules.{name}.fingerprint"), reason))?;
            rules.push(Rule {
                name,
                levels,
                projects: raw.projects,
                modules: raw.modules,
                message_regex,
                attributes,
                chats,
                stop: raw.stop,
                template,
                fingerprint,
            });
        }

        Ok(Settings {
            token: self.token,
            api_url,
            template,
            time_format: self.time_format,
            show_attributes: self.show_attributes,
            group_window: (self.group_window_ms > 0)
                .then(|| Duration::from_millis(self.group_window_ms)),
            chat_rate,
            global_rate,
            queue_capacity: self.queue_capacity,
            retry_initial: Duration::from_millis(self.retry_initial_ms),
            retry_max: Duration::from_millis(self.retry_max_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            commands: self.commands,
            poll_timeout_secs: self.poll_timeout_secs,
            command_chats,
            shutdown_flush: Duration::from_millis(self.shutdown_flush_ms),
            rules,
        })
    }
}
