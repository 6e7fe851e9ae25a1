//! Errors of the `http-api` connector: start-up errors with their class, and the HTTP errors
//! the routes answer with (`{"error": "...", "parameter": "..."}`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use logrelay_plugin_api::store::{Ambiguous, TooMany};
use logrelay_plugin_api::{ErrorKind, PluginError};
use serde::Serialize;
use serde_json::{Map, Value};

/// What can go wrong while starting the `http-api` connector.
#[derive(Debug, thiserror::Error)]
pub enum HttpApiError {
    /// An option has a value the connector cannot run with.
    #[error("`{option}` {reason}")]
    Invalid {
        /// The option, as written in plugins.toml.
        option: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// The configured `store` is not a store instance.
    #[error("{0}")]
    Store(String),
    /// The address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

impl From<HttpApiError> for PluginError {
    fn from(e: HttpApiError) -> Self {
        let message = e.to_string();
        match e {
            HttpApiError::Invalid { .. } | HttpApiError::Store(_) | HttpApiError::Listen { .. } => {
                PluginError::config(message)
            }
        }
    }
}

/// An HTTP error answer: a status and `{"error": "...", "parameter": "..."}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// Lowercase, saying what is wrong and what to do.
    pub message: String,
    /// The query parameter or body field at fault, when there is one.
    pub parameter: Option<String>,
    /// More fields of the answer (`candidates` of a 409...).
    pub extra: Map<String, Value>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

impl ApiError {
    /// An error of any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            parameter: None,
            extra: Map::new(),
        }
    }

    /// 400 naming `parameter`.
    pub fn bad(parameter: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message).at(parameter)
    }

    /// Names the parameter at fault.
    pub fn at(mut self, parameter: &str) -> ApiError {
        self.parameter = Some(parameter.to_owned());
        self
    }

    /// Maps an error of the store (reached through the host) to an answer: `not found: ...` is
    /// 404, other refusals 400 (naming the field when the message does), unreachable 503.
    pub fn from_store(store: &str, e: &PluginError) -> ApiError {
        let msg = e.message.as_str();
        if e.kind == ErrorKind::PERMANENT {
            if msg.starts_with("no running instance named") {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the store instance `{store}` is not running"),
                );
            }
            if let Some(rest) = msg.strip_prefix("not found: ") {
                return ApiError::new(StatusCode::NOT_FOUND, rest);
            }
            if let Some(a) = Ambiguous::from_message(msg) {
                let mut err = ApiError::new(StatusCode::CONFLICT, a.error).at("timestamp");
                err.extra
                    .insert("candidates".to_owned(), serde_json::json!(a.candidates));
                err.extra
                    .insert("matched".to_owned(), serde_json::json!(a.matched));
                return err;
            }
            if let Some(t) = TooMany::from_message(msg) {
                let mut err = ApiError::new(StatusCode::CONFLICT, t.error).at("confirm");
                err.extra
                    .insert("matched".to_owned(), serde_json::json!(t.matched));
                err.extra
                    .insert("limit".to_owned(), serde_json::json!(t.limit));
                return err;
            }
            if msg.contains("statement timeout") {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the store took too long: {msg}"),
                );
            }
            let message = msg.strip_prefix("invalid request: ").unwrap_or(msg);
            let mut err = ApiError::new(StatusCode::BAD_REQUEST, message);
            err.parameter = parameter_of(message);
            return err;
        }
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store is unavailable ({} error): {msg}", e.kind),
        )
    }
}

/// The field a store message names: ``field `x` `` first, else a leading `` `x` ``.
fn parameter_of(message: &str) -> Option<String> {
    let ticked = |s: &str| -> Option<String> {
        let rest = s.strip_prefix('`')?;
        let end = rest.find('`')?;
        Some(rest[..end].to_owned())
    };
    if let Some(pos) = message.find("field `") {
        return ticked(&message[pos + "field ".len()..]);
    }
    let name = ticked(message)?;
    let known = [
        "ids",
        "id",
        "from",
        "to",
        "level",
        "min_level",
        "project",
        "module",
        "text",
        "limit",
        "cursor",
        "message",
        "attributes",
        "merge_attributes",
        "all",
        "timestamp",
        "attr",
        "has",
        "confirm",
    ];
    known.contains(&name.as_str()).then_some(name)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.message,
            parameter: self.parameter.as_deref(),
            extra: &self.extra,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses() {
        let e = ApiError::from_store("s", &PluginError::permanent("not found: no record `x`"));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = ApiError::from_store(
            "s",
            &PluginError::permanent("invalid request: `query` field `limit`: invalid type"),
        );
        assert_eq!(
            (e.status, e.parameter.as_deref()),
            (StatusCode::BAD_REQUEST, Some("limit"))
        );
        let e = ApiError::from_store("s", &PluginError::permanent("invalid request: `from`: bad"));
        assert_eq!(e.parameter.as_deref(), Some("from"));
        let e = ApiError::from_store("s", &PluginError::transient("cannot reach PostgreSQL"));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        let e = ApiError::from_store(
            "s",
            &PluginError::permanent("no running instance named `s`; check [plugins.s]"),
        );
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            PluginError::from(HttpApiError::Store("x".into())).kind,
            ErrorKind::CONFIG
        );
    }
}
