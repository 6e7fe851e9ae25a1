//! Errors of the `telegram` connector, each with its class.
//!
//! Only start-up can fail: `config` for an invalid option (the message names it), `fatal` when
//! the HTTP client cannot be built. Once running, the connector accepts every batch: Telegram
//! being slow or down is handled by its own queue and counters, never by failing the pipeline.

use logrelay_plugin_api::PluginError;

/// What can go wrong in the `telegram` connector.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// An option has a value the connector cannot run with.
    #[error("`{option}` {reason}")]
    Invalid {
        /// The option, as written in plugins.toml (`rules.<name>.<option>` inside a rule).
        option: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// The HTTP client cannot be built (TLS set-up failed).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The background sender has stopped.
    #[error("the sender task has stopped; alerts are no longer delivered")]
    SenderStopped,
}

impl From<TelegramError> for PluginError {
    fn from(e: TelegramError) -> Self {
        let message = e.to_string();
        match e {
            TelegramError::Invalid { .. } => PluginError::config(message),
            TelegramError::Client(_) | TelegramError::SenderStopped => PluginError::fatal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use logrelay_plugin_api::ErrorKind;

    use super::*;

    #[test]
    fn each_error_has_its_class() {
        let e = PluginError::from(TelegramError::Invalid {
            option: "token".into(),
            reason: "is empty".into(),
        });
        assert_eq!(e.kind, ErrorKind::CONFIG);
        assert_eq!(e.message.as_str(), "`token` is empty");
        assert_eq!(
            PluginError::from(TelegramError::SenderStopped).kind,
            ErrorKind::FATAL
        );
    }
}
