//! The log explorer: one HTML page, its script and its style, embedded in the library (nothing
//! is fetched from elsewhere at run time). The page holds no data: it reads the API as any
//! client does, so it needs no token to be served, and asks the user for one when the API
//! answers 401.
//!
//! Every answer carries a Content-Security-Policy that allows only this origin's script and
//! style (no inline script, no `eval`), and `X-Content-Type-Options: nosniff`.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::routes::{AppState, explorer};

/// The most buckets `GET /logs/histogram` takes (the store's limit too).
pub const MAX_BUCKETS: u32 = 1000;

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// The policy of every explorer answer: this origin's script, style, images (none but data:
/// SVG) and API calls; nothing inline, no plugins, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The explorer's routes: `/`, `/ui/app.js`, `/ui/app.css`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(explorer))
        .route(
            "/ui/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
}

/// Whether `path` is one of the explorer's static answers (served without a token).
pub fn is_asset(path: &str) -> bool {
    matches!(path, "/" | "/ui/app.js" | "/ui/app.css")
}

/// The page.
pub fn page() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_inline_script_or_style_in_the_page() {
        // The policy forbids both; the page must not need them.
        assert!(INDEX_HTML.contains(r#"<script src="/ui/app.js""#));
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
        // Data never becomes markup.
        assert!(!APP_JS.contains("innerHTML"));
        assert!(!APP_JS.contains("eval("));
        assert!(!APP_JS.contains("new Function"));
    }
}
