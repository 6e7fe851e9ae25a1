//! The `telegram` connector: matches records against allow-list rules and sends alerts to
//! Telegram chats, grouped and rate-limited, with bot commands to inspect and mute it.
//!
//! - Rules (in order) match on levels or a minimum level, projects, modules, a message regex and
//!   attribute values; every matching rule fires until one with `stop = true` matches. A record
//!   that matches no rule sends nothing.
//! - Messages come from an HTML template with every value escaped; one longer than Telegram's
//!   4096 characters is split at line breaks (never cut, never inside a tag or entity).
//! - No floods: identical alerts (same rule and fingerprint) within `group_window_ms` become one
//!   message with a count; per-chat and global token buckets; 429 answers are retried after their
//!   `retry_after`; a bounded queue folds overflow into a summary; network failures are retried
//!   with backoff and counted.
//! - `handle_batch` only matches and queues; a background task on the instance's runtime
//!   delivers, and another long-polls `getUpdates` for `/status`, `/rules`, `/mute`, `/unmute`
//!   from the configured chats. `request("status", "")` answers the status as JSON.
//!
//! See README.md for the options.

mod commands;
mod config;
mod error;
mod rules;
mod sender;
mod state;
mod telegram;
mod template;

pub use config::{Config, DEFAULT_TEMPLATE, Settings, TOKEN_VAR};
pub use error::TelegramError;
pub use state::Status;
pub use telegram::Telegram;
pub use template::{MESSAGE_LIMIT, split_html};

logrelay_plugin_api::export_plugin!(Telegram);
