//! Errors of the `timescale` connector, each with its class.

use logrelay_plugin_api::PluginError;

/// What can go wrong in the timescale connector.
#[derive(Debug, thiserror::Error)]
pub enum TimescaleError {
    /// A config value is invalid.
    #[error("invalid `{field}`: {reason}")]
    Config {
        /// The option.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The server cannot be reached (at start or later).
    #[error("cannot reach PostgreSQL at {address}")]
    Unreachable {
        /// `host:port`.
        address: String,
        /// Why.
        source: sqlx::Error,
    },
    /// Connecting at start timed out.
    #[error("cannot reach PostgreSQL at {address}: no connection within {ms} ms")]
    ConnectTimeout {
        /// `host:port`.
        address: String,
        /// The timeout.
        ms: u128,
    },
    /// TimescaleDB was required but cannot be used.
    #[error("`timescale = \"require\"` but {0}")]
    TimescaleMissing(String),
    /// A statement failed.
    #[error("{what} failed")]
    Db {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: sqlx::Error,
    },
    /// A request body or field is invalid.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// The record asked for does not exist (the message starts with `not found:`).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request names more than it may change or read without a further field: the
    /// message of a typed refusal of the store protocol (`Ambiguous`, `TooMany`), as it is.
    #[error("{0}")]
    Conflict(String),
}

impl TimescaleError {
    /// Wraps a database error met while doing `what`.
    pub fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> TimescaleError {
        move |source| TimescaleError::Db { what, source }
    }

    /// The message with every cause after it, as `PluginError` carries no source.
    pub fn chain(&self) -> String {
        logrelay_plugin_api::error_chain(self)
    }

    /// Whether retrying later may help (the server is down, restarting, overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            TimescaleError::Unreachable { .. } | TimescaleError::ConnectTimeout { .. } => true,
            TimescaleError::Db { source, .. } => is_connection_error(source),
            _ => false,
        }
    }
}

/// The SQLSTATE of a database error, if it is one.
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Errors after which the same statement may succeed later: the connection or the server,
/// not the statement or its data.
pub fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(_) => sqlstate(e).is_some_and(|code| {
            // 08: connection exception; 53: insufficient resources; 57P0x: shutdown, cannot
            // connect now; 40: serialization failure, deadlock; 55P03: lock not available;
            // 57014: statement cancelled (timeout) -- all pass.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code.starts_with("40")
                || code == "55P03"
                || code == "57014"
        }),
        _ => false,
    }
}

/// Errors caused by a value in the rows written (bad JSON, NUL bytes, out-of-range values,
/// a violated constraint, and class 54, a program limit a row exceeds: an index entry over
/// 2704 bytes (54000) or attributes nested past the JSON parser's stack (54001)): another row
/// set may succeed, so the batch is bisected and only the offending rows are refused.
pub fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(_) => sqlstate(e).is_some_and(|code| {
            code.starts_with("22") || code.starts_with("23") || code.starts_with("54")
        }),
        sqlx::Error::Encode(_) => true,
        _ => false,
    }
}

impl From<TimescaleError> for PluginError {
    fn from(e: TimescaleError) -> Self {
        let message = e.chain();
        match &e {
            TimescaleError::Config { .. } | TimescaleError::TimescaleMissing(_) => {
                PluginError::config(message)
            }
            TimescaleError::BadRequest(_)
            | TimescaleError::NotFound(_)
            | TimescaleError::Conflict(_) => PluginError::permanent(message),
            TimescaleError::Unreachable { .. } | TimescaleError::ConnectTimeout { .. } => {
                PluginError::transient(message)
            }
            TimescaleError::Db { source, .. } => {
                if is_connection_error(source) {
                    PluginError::transient(message)
                } else if matches!(sqlstate(source).as_deref(), Some(c) if c.starts_with("28") || c == "3D000")
                {
                    // Authentication failed or the database does not exist: fix the URL.
                    PluginError::config(message)
                } else {
                    // A statement the server refuses (the table was dropped, a permission was
                    // revoked): retrying keeps the records until someone fixes the database.
                    PluginError::transient(message)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrelay_plugin_api::ErrorKind;

    #[test]
    fn classes() {
        let e = PluginError::from(TimescaleError::Config {
            field: "table",
            reason: "bad".to_owned(),
        });
        assert_eq!(e.kind, ErrorKind::CONFIG);
        assert_eq!(e.message.as_str(), "invalid `table`: bad");
        let e = PluginError::from(TimescaleError::NotFound("no record `x`".to_owned()));
        assert_eq!(e.kind, ErrorKind::PERMANENT);
        assert!(e.message.starts_with("not found:"));
        let e = PluginError::from(TimescaleError::Db {
            what: "insert",
            source: sqlx::Error::PoolTimedOut,
        });
        assert_eq!(e.kind, ErrorKind::TRANSIENT);
    }
}
