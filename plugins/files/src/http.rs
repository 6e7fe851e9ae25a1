//! The HTTP API: the file list and downloads with `Range`, behind a bearer token.
//!
//! - `GET /files`: `{"files": [{"name", "kind", "size", "modified", "modified_unix_ms"}]}`
//! - `GET /files/{name}`: the file; `Range: bytes=a-b`, `a-` or `-n` gives `206` with
//!   `Content-Range`, a range past the end `416` with `Content-Range: bytes */<size>`; several
//!   ranges in one header are answered with the whole file (`200`).
//!
//! Names are refused unless they are plain names of the connector's files: no `/`, no `..`, no
//! leading `.`, and a link must resolve inside the directory. The file opened is the resolved
//! one, without following a link, so that a link swapped in after the check is refused too.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use crate::archive;
use crate::naming::NamePattern;

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// The log directory (absolute, canonical).
    pub directory: PathBuf,
    /// Which names are the connector's.
    pub pattern: NamePattern,
    /// The bearer token; `None` serves anyone.
    pub token: Option<Arc<str>>,
}

/// The routes, without a socket (tests call this directly too).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/files", get(list))
        .route("/files/{name}", get(download))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// The shared comparison, re-exported where this module's users found it.
pub use logrelay_plugin_api::constant_time_eq;

async fn auth(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a valid `Authorization: Bearer <token>` header is required\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

async fn list(State(state): State<ApiState>) -> Response {
    let dir = state.directory.clone();
    let pattern = state.pattern.clone();
    match tokio::task::spawn_blocking(move || archive::list(&dir, &pattern)).await {
        Ok(Ok(files)) => axum::Json(serde_json::json!({ "files": files })).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Cannot list the log directory.");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot list the log directory",
            )
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the listing failed"),
    }
}

/// Why a name is refused, if it is.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty()
        || name.contains(['/', '\\', '\0'])
        || name.contains("..")
        || name.starts_with('.')
        || std::path::Path::new(name).is_absolute()
    {
        return Err("not a plain file name in the log directory");
    }
    Ok(())
}

/// A byte range asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No usable `Range` header: send everything.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// Nothing of the file can be sent.
    Unsatisfiable,
}

/// Reads a `Range` header against a file of `len` bytes. Headers that are not one byte range
/// are ignored, as RFC 9110 allows.
pub fn parse_range(value: Option<&str>, len: u64) -> RangeAsk {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if first.is_empty() {
        let Some(n) = number(last) else {
            return RangeAsk::Whole;
        };
        if n == 0 || len == 0 {
            return RangeAsk::Unsatisfiable;
        }
        return RangeAsk::Part(len.saturating_sub(n), len - 1);
    }
    let Some(start) = number(first) else {
        return RangeAsk::Whole;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(end) if end >= start => end,
            _ => return RangeAsk::Whole,
        }
    };
    if start >= len {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Part(start, end.min(len - 1))
}

async fn download(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(why) = check_name(&name) {
        return error(StatusCode::BAD_REQUEST, why);
    }
    if state.pattern.classify(&name).is_none() {
        return error(StatusCode::NOT_FOUND, "no such log file");
    }
    let path = state.directory.join(&name);
    let resolved = match tokio::fs::canonicalize(&path).await {
        Ok(p) => p,
        Err(_) => return error(StatusCode::NOT_FOUND, "no such log file"),
    };
    if !resolved.starts_with(&state.directory) {
        tracing::warn!(file = %name, target = %resolved.display(), "Refused a link leaving the log directory.");
        return error(
            StatusCode::FORBIDDEN,
            "the name leads outside the log directory",
        );
    }
    let opened = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&resolved)
        .await;
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if crate::writer::is_symbolic_link(&e) => {
            tracing::warn!(file = %name, "Refused a link made after its target was checked.");
            return error(
                StatusCode::FORBIDDEN,
                "the name leads outside the log directory",
            );
        }
        Err(_) => return error(StatusCode::NOT_FOUND, "no such log file"),
    };
    let len = match file.metadata().await {
        Ok(m) if m.is_file() => m.len(),
        _ => return error(StatusCode::NOT_FOUND, "no such log file"),
    };
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let (status, start, count, content_range) = match range {
        RangeAsk::Whole => (StatusCode::OK, 0, len, None),
        RangeAsk::Part(a, b) => (
            StatusCode::PARTIAL_CONTENT,
            a,
            b - a + 1,
            Some(format!("bytes {a}-{b}/{len}")),
        ),
        RangeAsk::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [
                    (header::CONTENT_RANGE, format!("bytes */{len}")),
                    (header::ACCEPT_RANGES, "bytes".to_owned()),
                ],
                "the range asked for is outside the file\n",
            )
                .into_response();
        }
    };
    if start > 0 && file.seek(SeekFrom::Start(start)).await.is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file");
    }
    let stream = futures_util::stream::unfold((file, count), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left.min(64 * 1024)).unwrap_or(64 * 1024);
        let mut buf = vec![0u8; want];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(Bytes::from(buf)),
                    (file, left - n as u64),
                ))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(cr) = content_range
        && let Ok(v) = HeaderValue::from_str(&cr)
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAsk::*;
        assert_eq!(parse_range(None, 10), Whole);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Part(0, 3));
        assert_eq!(parse_range(Some("bytes=4-"), 10), Part(4, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Part(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), Part(0, 9));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), Part(5, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Whole);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), Whole);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Whole);
    }

    #[test]
    fn names_and_tokens() {
        assert!(check_name("app.log").is_ok());
        for bad in [
            "",
            "../etc/passwd",
            "/etc/passwd",
            "a/b",
            "..",
            ".hidden",
            "a\\b",
            "x..y",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
