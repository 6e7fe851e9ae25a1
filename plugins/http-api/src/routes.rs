//! The routes: [`router`] builds them without a socket.
//!
//! | route | store call |
//! | --- | --- |
//! | `GET /log?id=` | `get` |
//! | `POST /log` (JSON: `id`, `timestamp` where the id names several rows, the fields to change) | `update` |
//! | `DELETE /log?id=` | `delete` |
//! | `GET /log/by_count?count=`, `/log/by_dates?from=&to=`, `/log/by_level?level=`, `/log/by_module?module=`, `/log/by_project?project=` | `query` |
//! | `GET /logs?` every filter, `text`, `limit`, `cursor` | `query` |
//! | `GET /logs/stats?` every filter | `stats` |
//! | `POST /logs/delete` (JSON filter) | `delete_by_filter` |
//! | `GET /logs/stream?` every filter | none: the live tail (SSE) |
//! | `GET /openapi.json`, `GET /docs` | none |

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use logrelay_plugin_api::constant_time_eq;
use logrelay_plugin_api::store::{
    DeleteBody, Deleted, IdBody, LevelArg, TimeArg, UpdateBody, method,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{Settings, TOKEN_VAR};
use crate::error::ApiError;
use crate::params::{self, Filter, FilterBody, Page, from_query, parse_time, resolve_level};
use crate::store::Store;
use crate::stream::Hub;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The checked settings.
    pub settings: Arc<Settings>,
    /// The store.
    pub store: Store,
    /// The live-tail hub.
    pub hub: Arc<Hub>,
    /// The OpenAPI document, rendered once.
    pub openapi: Arc<str>,
}

/// The docs page: one self-contained file, no external assets.
const DOCS_HTML: &str = include_str!("docs.html");

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;
type ApiResult = Result<Response, ApiError>;

/// Every route, with authentication, body limit and timeouts.
pub fn router(state: AppState) -> Router {
    let timed = Router::new()
        .route("/log", get(get_log).post(update_log).delete(delete_log))
        .route("/log/by_count", get(by_count))
        .route("/log/by_dates", get(by_dates))
        .route("/log/by_level", get(by_level))
        .route("/log/by_module", get(by_module))
        .route("/log/by_project", get(by_project))
        .route("/logs", get(logs))
        .route("/logs/stats", get(stats))
        .route("/logs/delete", post(delete_by_filter))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
        .layer(middleware::from_fn_with_state(state.clone(), deadline));
    Router::new()
        .route("/logs/stream", get(stream))
        .merge(timed)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// With a token: every route but the static `/docs` page needs it. Without one: reading only.
async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/docs" && request.method() == Method::GET {
        return next.run(request).await;
    }
    match &state.settings.token {
        Some(token) => {
            let given = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer);
            match given {
                None => {
                    return ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "an `Authorization: Bearer <token>` header is required",
                    )
                    .into_response();
                }
                Some(given) if !constant_time_eq(given.as_bytes(), token.as_bytes()) => {
                    return ApiError::new(StatusCode::UNAUTHORIZED, "the bearer token is wrong")
                        .into_response();
                }
                Some(_) => {}
            }
        }
        None if is_write(request.method()) => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "changing and deleting logs is disabled because the API has no token; set {TOKEN_VAR} in .env (and `token = \"${{{TOKEN_VAR}}}\"` in this instance's config in plugins.toml), then send `Authorization: Bearer <token>`"
                ),
            )
            .into_response();
        }
        None => {}
    }
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` header value. The scheme is matched without
/// regard to case (RFC 7235: `bearer`, `BEARER`...), and any run of spaces or tabs may follow it.
fn bearer(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches([' ', '\t']))
        .filter(|t| !t.is_empty())
}

/// Gives up on a request (store call included) after `request_timeout_ms`.
async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.settings.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the request took longer than {} ms (request_timeout_ms); narrow the filter or try again",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route `{}`; see /docs or /openapi.json",
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "`{}` is not allowed on `{}`; see /openapi.json",
            request.method(),
            request.uri().path()
        ),
    )
}

fn pairs(q: Pairs) -> Result<Vec<(String, String)>, ApiError> {
    q.map(|Query(p)| p).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the query string cannot be read: {}", e.body_text()),
        )
    })
}

fn json_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn required<'a>(pairs: &'a [(String, String)], name: &str) -> Result<&'a str, ApiError> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::bad(name, format!("`{name}` is required")))
}

/// Reads a JSON body: 413 beyond `max_body_bytes`, 400 naming the field otherwise.
fn body<T: DeserializeOwned>(bytes: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = bytes.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is larger than `max_body_bytes`",
            )
            .at("body")
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body cannot be read: {}", e.body_text()),
            )
            .at("body")
        }
    })?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad("body", "a JSON object body is required"));
    }
    logrelay_plugin_api::from_json_exact(&bytes).map_err(|e| match &e.path {
        Some(path) => ApiError::bad(path, format!("`{path}`: {}", e.message)),
        None => ApiError::bad(
            e.named_field().unwrap_or("body"),
            format!("invalid body: {}", e.message),
        ),
    })
}

async fn query(state: &AppState, filter: &Filter, page: Page) -> ApiResult {
    let page = Page {
        limit: Some(page.limit.unwrap_or(state.settings.default_page_size.get())),
        ..page
    };
    state
        .store
        .call(method::QUERY, &filter.to_store(Some(&page)))
        .await
        .map(json_response)
}

const PAGING: [&str; 2] = ["limit", "cursor"];

async fn list_by(state: AppState, q: Pairs, key: &str) -> ApiResult {
    let p = pairs(q)?;
    required(&p, key)?;
    let allowed = [key, PAGING[0], PAGING[1]];
    let (filter, page) = from_query(&p, &allowed, state.settings.max_page_size.get())?;
    query(&state, &filter, page).await
}

/// The record `/log` names: `id`, and `timestamp` where the id alone names several rows.
fn record_key(p: &[(String, String)]) -> Result<(String, Option<TimeArg>), ApiError> {
    from_query(p, &["id", "timestamp"], 1)?;
    if p.iter().filter(|(k, _)| k == "id").count() > 1 {
        return Err(ApiError::bad(
            "id",
            "`id` is given more than once; `/log` names one record (POST /logs/delete takes a list)",
        ));
    }
    let id = required(p, "id")?.to_owned();
    let timestamp = p
        .iter()
        .find(|(k, _)| k == "timestamp")
        .map(|(_, v)| parse_time("timestamp", v).map(TimeArg::Ns))
        .transpose()?;
    Ok((id, timestamp))
}

async fn get_log(State(state): State<AppState>, q: Pairs) -> ApiResult {
    let p = pairs(q)?;
    let (id, timestamp) = record_key(&p)?;
    let text = state
        .store
        .call(method::GET, &IdBody { id, timestamp })
        .await?;
    Ok(json_response(text))
}

async fn delete_log(State(state): State<AppState>, q: Pairs) -> ApiResult {
    let p = pairs(q)?;
    let (id, timestamp) = record_key(&p)?;
    let exact = timestamp.is_some();
    let text = state
        .store
        .call(
            method::DELETE,
            &DeleteBody {
                id: Some(id.clone()),
                timestamp,
                ids: None,
            },
        )
        .await?;
    let deleted = serde_json::from_str::<Deleted>(&text)
        .ok()
        .map(|d| d.deleted);
    if deleted == Some(0) {
        let what = if exact {
            format!("no record with id `{id}` at that `timestamp`")
        } else {
            format!("no record with id `{id}`")
        };
        return Err(ApiError::new(StatusCode::NOT_FOUND, what).at("id"));
    }
    Ok(json_response(text))
}

/// `POST /log`: the body is the store's `update` body, checked here so that a bad field is a
/// 400 naming it; the level and the time go on as numbers. The answer is the store's:
/// `{"updated": 1, "record": {...}}`.
async fn update_log(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let b: UpdateBody = body(bytes)?;
    let level = match &b.level {
        Some(l) => Some(LevelArg::Num(resolve_level(l, "level")?.0)),
        None => None,
    };
    let timestamp = match &b.timestamp {
        Some(TimeArg::Text(t)) => Some(TimeArg::Ns(parse_time("timestamp", t)?)),
        other => other.clone(),
    };
    for (name, v) in [
        ("id", &Some(b.id.clone())),
        ("message", &b.message),
        ("project", &b.project),
        ("module", &b.module),
    ] {
        if v.as_ref().is_some_and(|v| v.contains('\0')) {
            return Err(ApiError::bad(
                name,
                format!("`{name}` contains a NUL character"),
            ));
        }
    }
    for (name, v) in [
        ("attributes", &b.attributes),
        ("merge_attributes", &b.merge_attributes),
    ] {
        if v.as_ref()
            .is_some_and(|v| Value::Object(v.clone()).to_string().contains("\\u0000"))
        {
            return Err(ApiError::bad(
                name,
                format!("`{name}` contains a NUL character"),
            ));
        }
    }
    let change = UpdateBody {
        level,
        timestamp,
        ..b
    };
    if change.level.is_none()
        && change.message.is_none()
        && change.project.is_none()
        && change.module.is_none()
        && change.attributes.is_none()
        && change.merge_attributes.is_none()
    {
        return Err(ApiError::bad(
            "body",
            "nothing to change: give at least one of `level`, `message`, `project`, `module`, `attributes`, `merge_attributes`",
        ));
    }
    let updated = state.store.call(method::UPDATE, &change).await?;
    Ok(json_response(updated))
}

async fn by_count(State(state): State<AppState>, q: Pairs) -> ApiResult {
    let p = pairs(q)?;
    required(&p, "count")?;
    let (filter, page) = from_query(&p, &["count", "cursor"], state.settings.max_page_size.get())?;
    query(&state, &filter, page).await
}

async fn by_dates(State(state): State<AppState>, q: Pairs) -> ApiResult {
    let p = pairs(q)?;
    required(&p, "from")?;
    required(&p, "to")?;
    let (filter, page) = from_query(
        &p,
        &["from", "to", "limit", "cursor"],
        state.settings.max_page_size.get(),
    )?;
    query(&state, &filter, page).await
}

async fn by_level(State(state): State<AppState>, q: Pairs) -> ApiResult {
    list_by(state, q, "level").await
}

async fn by_module(State(state): State<AppState>, q: Pairs) -> ApiResult {
    list_by(state, q, "module").await
}

async fn by_project(State(state): State<AppState>, q: Pairs) -> ApiResult {
    list_by(state, q, "project").await
}

fn filter_and(extra: &[&'static str]) -> Vec<&'static str> {
    params::FILTER_PARAMS.iter().chain(extra).copied().collect()
}

async fn logs(State(state): State<AppState>, q: Pairs) -> ApiResult {
    let p = pairs(q)?;
    let (filter, page) = from_query(&p, &filter_and(&PAGING), state.settings.max_page_size.get())?;
    query(&state, &filter, page).await
}

async fn stats(State(state): State<AppState>, q: Pairs) -> ApiResult {
    let p = pairs(q)?;
    let (filter, _) = from_query(&p, &filter_and(&[]), 1)?;
    state
        .store
        .call(method::STATS, &filter.to_store(None))
        .await
        .map(json_response)
}

async fn delete_by_filter(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let b: FilterBody = body(bytes)?;
    // `all` says "every record" outright, which confirms any count.
    let confirmed = b.confirm || b.all;
    let filter = b.into_filter()?;
    if filter.is_empty() && !confirmed {
        return Err(ApiError::bad(
            "all",
            "refusing to delete every record: give a filter, or `\"all\": true`",
        ));
    }
    let mut params = filter.to_store(None);
    if filter.is_empty() {
        params.all = Some(true);
    }
    if !confirmed {
        params.refuse_over_rows = Some(state.settings.delete_confirm_rows);
        params.refuse_over_percent = Some(state.settings.delete_confirm_percent);
    }
    state
        .store
        .call(method::DELETE_BY_FILTER, &params)
        .await
        .map(json_response)
}

async fn stream(State(state): State<AppState>, q: Pairs) -> Result<Response, ApiError> {
    let p = pairs(q)?;
    let (filter, _) = from_query(&p, &filter_and(&[]), 1)?;
    let sub = state.hub.subscribe(filter).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} live-tail clients are connected already (max_stream_clients)",
                state.settings.max_stream_clients
            ),
        )
    })?;
    Ok(Sse::new(sub.into_events())
        .keep_alive(KeepAlive::new().interval(state.settings.stream_keep_alive))
        .into_response())
}

async fn openapi(State(state): State<AppState>) -> Response {
    json_response(state.openapi.to_string())
}

async fn docs() -> Html<&'static str> {
    Html(DOCS_HTML)
}
