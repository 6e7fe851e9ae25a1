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
//! | `GET /logs/histogram?` every filter, `buckets` | `histogram` |
//! | `GET /openapi.json`, `GET /docs` | none |
//! | `GET /` and `GET /ui/*` (the log explorer, unless `ui = false`) | none |

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
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::config::{Settings, TOKEN_VAR};
use crate::error::ApiError;
use crate::openapi::{
    self, CountQuery, DatesQuery, FilterQuery, HistogramQuery, LevelQuery, ModuleQuery, PageQuery,
    ProjectQuery, RecordKey,
};
use crate::params::{self, Filter, FilterBody, Page, QuerySpec, parse_time, resolve_level};
use crate::store::Store;
use crate::stream::Hub;
use crate::ui;

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
        .route("/logs/histogram", get(histogram))
        .route("/logs/delete", post(delete_by_filter))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
        .layer(middleware::from_fn_with_state(state.clone(), deadline));
    let timed = if state.settings.ui {
        timed.merge(ui::router())
    } else {
        timed
    };
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
    // The static pages hold no data (they ask for the token and send it themselves).
    let path = request.uri().path();
    let open = path == "/docs" || (state.settings.ui && ui::is_asset(path));
    if open && matches!(*request.method(), Method::GET | Method::HEAD) {
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

/// The query parameters of each route, from the types its OpenAPI operation lists.
mod spec {
    use std::sync::LazyLock;

    use crate::openapi::{
        CountQuery, DatesQuery, FilterQuery, HistogramQuery, LevelQuery, ModuleQuery, PageQuery,
        ProjectQuery, RecordKey,
    };
    use crate::params::QuerySpec;

    pub static RECORD: LazyLock<QuerySpec> = LazyLock::new(QuerySpec::one::<RecordKey>);
    pub static COUNT: LazyLock<QuerySpec> = LazyLock::new(QuerySpec::one::<CountQuery>);
    pub static DATES: LazyLock<QuerySpec> = LazyLock::new(QuerySpec::two::<DatesQuery, PageQuery>);
    pub static LEVEL: LazyLock<QuerySpec> = LazyLock::new(QuerySpec::two::<LevelQuery, PageQuery>);
    pub static MODULE: LazyLock<QuerySpec> =
        LazyLock::new(QuerySpec::two::<ModuleQuery, PageQuery>);
    pub static PROJECT: LazyLock<QuerySpec> =
        LazyLock::new(QuerySpec::two::<ProjectQuery, PageQuery>);
    pub static LOGS: LazyLock<QuerySpec> = LazyLock::new(QuerySpec::two::<FilterQuery, PageQuery>);
    pub static FILTER: LazyLock<QuerySpec> = LazyLock::new(QuerySpec::one::<FilterQuery>);
    pub static HISTOGRAM: LazyLock<QuerySpec> =
        LazyLock::new(QuerySpec::two::<FilterQuery, HistogramQuery>);
}

async fn list(state: AppState, q: Pairs, spec: &QuerySpec) -> ApiResult {
    let p = pairs(q)?;
    let (filter, page) = spec.parse(&p, state.settings.max_page_size.get())?;
    query(&state, &filter, page).await
}

/// The record `/log` names: `id`, and `timestamp` where the id alone names several rows.
fn record_key(p: &[(String, String)]) -> Result<(String, Option<TimeArg>), ApiError> {
    spec::RECORD.parse(p, 1)?;
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

/// One record by id (and time, where the id names several rows).
#[utoipa::path(get, path = "/log", tag = "log", params(RecordKey), responses(
    (status = 200, description = "the record", body = openapi::Record),
    (status = 404, description = "no record with this id (and time)", body = openapi::Error),
    (status = 409, description = "the id names several rows: `candidates` lists them; give `timestamp`", body = openapi::Conflict),
))]
pub(crate) async fn get_log(State(state): State<AppState>, q: Pairs) -> ApiResult {
    let p = pairs(q)?;
    let (id, timestamp) = record_key(&p)?;
    let text = state
        .store
        .call(method::GET, &IdBody { id, timestamp })
        .await?;
    Ok(json_response(text))
}

/// Deletes one record by id (and time, where the id names several rows).
#[utoipa::path(delete, path = "/log", tag = "log", params(RecordKey), responses(
    (status = 200, description = "the row deleted", body = openapi::Deleted),
    (status = 403, description = "no token is configured: deleting is disabled", body = openapi::Error),
    (status = 404, description = "no record with this id (and time)", body = openapi::Error),
    (status = 409, description = "the id names several rows: `candidates` lists them; give `timestamp`", body = openapi::Conflict),
))]
pub(crate) async fn delete_log(State(state): State<AppState>, q: Pairs) -> ApiResult {
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

/// The body of `POST /log`: the record (`id`, and `timestamp` where the id names several rows)
/// and the fields to change. Without a field to change, the record is answered unchanged.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLog {
    /// The record's id.
    #[schema(value_type = openapi::Text)]
    id: String,
    /// The record's time, needed only when the id names several rows.
    #[schema(value_type = Option<openapi::Time>)]
    #[serde(default, deserialize_with = "params::lenient::time")]
    timestamp: Option<TimeArg>,
    /// The new level.
    #[schema(value_type = Option<openapi::Level>)]
    #[serde(default, deserialize_with = "params::lenient::level")]
    level: Option<LevelArg>,
    /// The new message.
    #[schema(value_type = Option<openapi::Text>)]
    message: Option<String>,
    /// The new project.
    #[schema(value_type = Option<openapi::Text>)]
    project: Option<String>,
    /// The new module.
    #[schema(value_type = Option<openapi::Text>)]
    module: Option<String>,
    /// Replaces the attributes.
    #[schema(value_type = Option<openapi::Attributes>)]
    attributes: Option<Map<String, Value>>,
    /// Merged into the attributes (with `attributes`: into those).
    #[schema(value_type = Option<openapi::Attributes>)]
    merge_attributes: Option<Map<String, Value>>,
}

/// `POST /log`: checked here so that a bad field is a 400 naming it; the level and the time go
/// on as numbers. The answer is the store's: `{"updated": 1, "record": {...}}`.
#[utoipa::path(post, path = "/log", tag = "log", request_body = UpdateLog, responses(
    (status = 200, description = "the record as it now is", body = openapi::Updated),
    (status = 403, description = "no token is configured: changes are disabled", body = openapi::Error),
    (status = 404, description = "no record with this id (and time)", body = openapi::Error),
    (status = 409, description = "the id names several rows: `candidates` lists them; give `timestamp`", body = openapi::Conflict),
    (status = 413, description = "the body is larger than `max_body_bytes`", body = openapi::Error),
))]
pub(crate) async fn update_log(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let b: UpdateLog = body(bytes)?;
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
        id: b.id,
        timestamp,
        level,
        message: b.message,
        project: b.project,
        module: b.module,
        attributes: b.attributes,
        merge_attributes: b.merge_attributes,
    };
    let updated = state.store.call(method::UPDATE, &change).await?;
    Ok(json_response(updated))
}

/// The newest `count` records.
#[utoipa::path(get, path = "/log/by_count", tag = "logs", params(CountQuery), responses(
    (status = 200, description = "a page of records, newest first", body = openapi::Page),
))]
pub(crate) async fn by_count(State(state): State<AppState>, q: Pairs) -> ApiResult {
    list(state, q, &spec::COUNT).await
}

/// Records between two times.
#[utoipa::path(get, path = "/log/by_dates", tag = "logs", params(DatesQuery, PageQuery), responses(
    (status = 200, description = "a page of records, newest first", body = openapi::Page),
))]
pub(crate) async fn by_dates(State(state): State<AppState>, q: Pairs) -> ApiResult {
    list(state, q, &spec::DATES).await
}

/// Records of exactly one level.
#[utoipa::path(get, path = "/log/by_level", tag = "logs", params(LevelQuery, PageQuery), responses(
    (status = 200, description = "a page of records, newest first", body = openapi::Page),
))]
pub(crate) async fn by_level(State(state): State<AppState>, q: Pairs) -> ApiResult {
    list(state, q, &spec::LEVEL).await
}

/// Records of one module.
#[utoipa::path(get, path = "/log/by_module", tag = "logs", params(ModuleQuery, PageQuery), responses(
    (status = 200, description = "a page of records, newest first", body = openapi::Page),
))]
pub(crate) async fn by_module(State(state): State<AppState>, q: Pairs) -> ApiResult {
    list(state, q, &spec::MODULE).await
}

/// Records of one project.
#[utoipa::path(get, path = "/log/by_project", tag = "logs", params(ProjectQuery, PageQuery), responses(
    (status = 200, description = "a page of records, newest first", body = openapi::Page),
))]
pub(crate) async fn by_project(State(state): State<AppState>, q: Pairs) -> ApiResult {
    list(state, q, &spec::PROJECT).await
}

/// Records matching every filter given, newest first, with a `next` cursor.
#[utoipa::path(get, path = "/logs", tag = "logs", params(FilterQuery, PageQuery), responses(
    (status = 200, description = "a page of records, newest first", body = openapi::Page),
))]
pub(crate) async fn logs(State(state): State<AppState>, q: Pairs) -> ApiResult {
    list(state, q, &spec::LOGS).await
}

/// Counts by level, project and module of the matching records.
#[utoipa::path(get, path = "/logs/stats", tag = "logs", params(FilterQuery), responses(
    (status = 200, description = "the counts", body = openapi::Stats),
))]
pub(crate) async fn stats(State(state): State<AppState>, q: Pairs) -> ApiResult {
    let p = pairs(q)?;
    let (filter, _) = spec::FILTER.parse(&p, 1)?;
    state
        .store
        .call(method::STATS, &filter.to_store(None))
        .await
        .map(json_response)
}

/// Counts by level in equal time buckets of the filter's range (the chart of the explorer).
#[utoipa::path(get, path = "/logs/histogram", tag = "logs", params(FilterQuery, HistogramQuery), responses(
    (status = 200, description = "the buckets", body = openapi::Histogram),
))]
pub(crate) async fn histogram(State(state): State<AppState>, q: Pairs) -> ApiResult {
    let p = pairs(q)?;
    let (filter, page) = spec::HISTOGRAM.parse(&p, ui::MAX_BUCKETS)?;
    let mut params = filter.to_store(None);
    params.buckets = page.buckets;
    state
        .store
        .call(method::HISTOGRAM, &params)
        .await
        .map(json_response)
}

/// The log explorer: a single page (its script and style are `/ui/app.js` and `/ui/app.css`).
/// Needs no token: it holds no data, and asks for the token when the API needs one.
#[utoipa::path(get, path = "/", tag = "meta", responses(
    (status = 200, description = "an HTML page", content_type = "text/html", body = String),
))]
pub(crate) async fn explorer() -> Response {
    ui::page()
}

/// Deletes every record matching the filter in the body. A filter matching more than
/// `delete_confirm_rows` rows or `delete_confirm_percent` of them needs `"confirm": true`; an
/// empty one needs `"all": true`.
#[utoipa::path(post, path = "/logs/delete", tag = "logs", request_body = FilterBody, responses(
    (status = 200, description = "the rows deleted", body = openapi::Deleted),
    (status = 403, description = "no token is configured: deleting is disabled", body = openapi::Error),
    (status = 409, description = "the filter matches more rows than may be deleted without `\"confirm\": true`, or is empty without `\"all\": true`; nothing was deleted", body = openapi::Conflict),
    (status = 413, description = "the body is larger than `max_body_bytes`", body = openapi::Error),
))]
pub(crate) async fn delete_by_filter(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let b: FilterBody = body(bytes)?;
    // `all` says "every record" outright, which confirms any count.
    let confirmed = b.confirm || b.all;
    let filter = b.into_filter()?;
    if filter.is_empty() && !confirmed {
        // Not a malformed request: one that needs a confirmation, as a large match does.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "refusing to delete every record: give a filter, or `\"all\": true`",
        )
        .at("all"));
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

/// Live tail (server-sent events): `log` events with a record, `skipped` events when this
/// client fell behind.
#[utoipa::path(get, path = "/logs/stream", tag = "logs", params(FilterQuery), responses(
    (status = 200, description = "an event stream", content_type = "text/event-stream", body = String),
    (status = 503, description = "too many live-tail clients, or the store is unavailable", body = openapi::Error),
))]
pub(crate) async fn stream(State(state): State<AppState>, q: Pairs) -> Result<Response, ApiError> {
    let p = pairs(q)?;
    let (filter, _) = spec::FILTER.parse(&p, 1)?;
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

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses(
    (status = 200, description = "OpenAPI 3.1", body = Object),
))]
pub(crate) async fn openapi(State(state): State<AppState>) -> Response {
    json_response(state.openapi.to_string())
}

/// Interactive documentation (needs no token: it holds no data).
#[utoipa::path(get, path = "/docs", tag = "meta", responses(
    (status = 200, description = "an HTML page", content_type = "text/html", body = String),
))]
pub(crate) async fn docs() -> Html<&'static str> {
    Html(DOCS_HTML)
}
