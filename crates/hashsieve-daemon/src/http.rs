//! The HTTP/JSON API: routes, handlers, and errors as RFC 9457 problem details.
//!
//! | method and path | role | what |
//! |---|---|---|
//! | `GET /healthz` | — | the process is up |
//! | `GET /readyz` | — | the index is open: its generation and size |
//! | `POST /v1/match/content` | match | the body (or a form's file part) is the content; its verdict and hashes |
//! | `POST /v1/match/hashes` | match | `{"hashes": [{"kind", "value"}]}`, hashed elsewhere |
//! | `POST /v1/lists/changes` | admin | `{"changes": [change…], "actor"}`: one durable batch |
//! | `POST /v1/lists/allow` | admin | `{"list", "hashes": [{"kind", "value", "id"}]}`: known false positives |
//! | `PUT /v1/lists/{list}?format=&kind=` | admin | the body is the whole list (lines, CSV, VICS JSON): only the difference is written |
//! | `POST /v1/lists/compact` | admin | fold the delta into a new index file |
//! | `/v1/reports…`, `/v1/review…`, `/v1/items…` | report, review | the hotline's API: see [`crate::review`] |
//! | `GET /metrics` | — | Prometheus metrics (OpenMetrics text); see [`crate::metrics`] |
//! | `GET /openapi.json` | — | this API in OpenAPI 3.1 (`api/openapi.json`); `docs/API.md` explains it |
//!
//! Hashing and index writes run on the blocking pool; content hashing is bounded by
//! `limits.max_in_flight`, and a request beyond it gets 503 with `Retry-After` at once rather
//! than queueing without bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use hashsieve_core::delta::ChangeJson;
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::{ImportedEntry, Mode, import_csv, import_lines, import_vics};
use hashsieve_core::index::{ListOptions, ListRole};
use hashsieve_core::matcher::{Matcher, Verdict};
use hashsieve_core::signals::Signals;
use hashsieve_core::store::{Refreshed, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

use crate::auth::{Denied, Tokens};
use crate::config::{Config, Limits, Role};
use crate::hotline::Hotline;
use crate::metrics::Metrics;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The index; swapped whole by a reload, while each request keeps the one it started with.
    pub matcher: ArcSwap<Matcher>,
    /// Who may do what.
    pub tokens: Tokens,
    /// Bounds.
    pub limits: Limits,
    /// Permits for content being hashed, by any protocol.
    pub hashing: Semaphore,
    /// Asks for the index to be reopened (clamd's `RELOAD`).
    pub reload: Notify,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// The hotline's verdict memory, on the daemon that owns it.
    pub hotline: Option<Arc<Hotline>>,
}

impl AppState {
    /// The state for serving `matcher` under `config`.
    pub fn new(matcher: Matcher, config: &Config) -> AppState {
        AppState {
            matcher: ArcSwap::from_pointee(matcher),
            tokens: Tokens::new(&config.tokens),
            limits: config.limits.clone(),
            hashing: Semaphore::new(config.limits.max_in_flight),
            reload: Notify::new(),
            metrics: Arc::new(Metrics::new()),
            hotline: None,
        }
    }

    /// The same state, holding the hotline's verdict memory.
    pub fn with_hotline(self, hotline: Option<Hotline>) -> AppState {
        AppState { hotline: hotline.map(Arc::new), ..self }
    }
}

/// The API described in OpenAPI 3.1; a test checks it against what the daemon serves.
pub const OPENAPI: &str = include_str!("../api/openapi.json");

/// The routes, as metrics name them; anything else is `other`.
const ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/v1/match/content",
    "/v1/match/hashes",
    "/v1/lists/changes",
    "/v1/lists/allow",
    "/v1/lists/{list}",
    "/v1/lists/compact",
];

/// The API's router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let timeout = Duration::from_secs(state.limits.request_timeout_secs);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/v1/match/content", post(match_content))
        .route("/v1/match/hashes", post(match_hashes))
        .route("/v1/lists/changes", post(list_changes))
        .route("/v1/lists/allow", post(allow))
        .route("/v1/lists/{list}", put(refresh))
        .route("/v1/lists/compact", post(compact))
        .merge(crate::review::routes())
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint") })
        .layer(middleware::from_fn(move |request: Request, next: Next| deadline(timeout, request, next)))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), record))
        .with_state(state)
}

/// An error as `application/problem+json` (RFC 9457).
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    detail: String,
    retry_after: Option<u64>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, slug, detail: detail.into(), retry_after: None }
    }

    pub(crate) fn busy(detail: &str) -> Problem {
        Problem { retry_after: Some(1), ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", detail) }
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    r#type: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            r#type: format!("https://hashsieve.invalid/problems/{}", self.slug),
            title: self.status.canonical_reason().unwrap_or("error"),
            status: self.status.as_u16(),
            detail: &self.detail,
        };
        let mut response = (self.status, serde_json::to_string(&body).unwrap_or_default()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Problem {
        match err {
            StoreError::Change(change) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-change", change.to_string())
            }
            StoreError::ReadOnly => Problem::new(
                StatusCode::CONFLICT,
                "read-only",
                "the index is served read-only; set `writable = true` to change lists",
            ),
            other => {
                tracing::error!(error = %other, "index write failed");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "index-error", other.to_string())
            }
        }
    }
}

/// Reading the body and answering must together finish within the request timeout, so a client
/// trickling its body cannot hold a worker.
async fn deadline(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            Problem::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request took longer than the limit")
                .into_response()
        }
    }
}

/// Counts every request with its route, status and latency, and refusals by reason; outside
/// the deadline, so that timeouts are counted too.
async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_string());
    let endpoint = path
        .and_then(|path| ROUTES.iter().chain(crate::review::ROUTES).copied().find(|route| *route == path))
        .unwrap_or("other");
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    state.metrics.request("http", endpoint, status.as_str(), started.elapsed());
    let reason = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Some("bad_request"),
        StatusCode::UNAUTHORIZED => Some("unauthorized"),
        StatusCode::FORBIDDEN => Some("forbidden"),
        StatusCode::PAYLOAD_TOO_LARGE => Some("too_large"),
        StatusCode::REQUEST_TIMEOUT => Some("timeout"),
        StatusCode::TOO_MANY_REQUESTS => Some("rate_limited"),
        StatusCode::SERVICE_UNAVAILABLE => Some("busy"),
        _ => None,
    };
    if let Some(reason) = reason {
        state.metrics.rejected("http", reason);
    }
    response
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.encode(&state.matcher.load());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

pub(crate) fn authorize<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    role: Role,
) -> Result<Option<&'a str>, Problem> {
    if state.tokens.is_empty() && role == Role::Match {
        return Ok(None);
    }
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match state.tokens.authorize(value, role) {
        Ok(id) => Ok(Some(id)),
        Err(Denied::Missing) if state.tokens.is_empty() => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs a token with the {role:?} role, and none is configured").to_lowercase(),
        )),
        Err(Denied::Missing | Denied::Unknown) => {
            Err(Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required"))
        }
        Err(Denied::Forbidden) => {
            Err(Problem::new(StatusCode::FORBIDDEN, "forbidden", "the token lacks this role"))
        }
        Err(Denied::RateLimited(wait)) => Err(Problem {
            retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "the token is over its rate limit")
        }),
    }
}

pub(crate) async fn read_body(body: Body, limit: u64) -> Result<Bytes, Problem> {
    axum::body::to_bytes(body, limit as usize).await.map_err(|err| {
        let too_large = std::error::Error::source(&err)
            .is_some_and(|source| source.to_string().contains("length limit exceeded"))
            || err.to_string().contains("length limit exceeded");
        if too_large {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the body exceeds {limit} bytes"),
            )
        } else {
            Problem::new(StatusCode::BAD_REQUEST, "bad-body", format!("reading the body failed: {err}"))
        }
    })
}

pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes)
        .map_err(|err| Problem::new(StatusCode::BAD_REQUEST, "bad-json", err.to_string()))
}

pub(crate) fn json<T: Serialize>(value: &T) -> Response {
    let mut response = serde_json::to_string(value).unwrap_or_default().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "a worker failed"))
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    generation: u64,
    entries: u64,
    delta_changes: u64,
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let live = state.matcher.load().live();
    let (entries, delta_changes) = live.view(|view| {
        let base: u64 = view.base.kinds().iter().map(|&kind| view.base.len(kind) as u64).sum();
        (base + view.delta.added() as u64, view.delta.changes())
    });
    json(&Readiness { ready: true, generation: live.generation(), entries, delta_changes })
}

/// The query's own hashes, so that a caller can record or report them without hashing again.
#[derive(Debug, Default, Serialize)]
pub(crate) struct QueryHashes {
    #[serde(skip_serializing_if = "Option::is_none")]
    md5: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blake3: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pdq: Option<String>,
    /// PDQ's quality score, 0–100: below about 50 the picture is too plain for a reliable
    /// perceptual match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pdq_quality: Option<u8>,
}

#[derive(Serialize)]
struct ContentAnswer {
    #[serde(flatten)]
    verdict: Verdict,
    size: u64,
    hashes: QueryHashes,
}

async fn match_content(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Match)?;
    let permit =
        state.hashing.try_acquire().map_err(|_| Problem::busy("too much content is being hashed"))?;
    let bytes = read_content(&headers, body, state.limits.max_body_bytes).await?;
    let matcher = state.matcher.load_full();
    let (verdict, hashes, size) = blocking(move || {
        let signals = Signals::from_bytes(&bytes, &matcher.signal_options());
        let verdict = matcher.check_signals(&signals);
        (verdict, query_hashes(&signals), signals.size)
    })
    .await?;
    drop(permit);
    state.metrics.matched("http", &verdict);
    audit(peer, token, "content", &verdict, &hashes);
    Ok(json(&ContentAnswer { verdict, size, hashes }))
}

/// The content of a request: the body itself, or, for `multipart/form-data` (an HTML form's
/// upload), its file part: the first part with a file name or named `file`.
pub(crate) async fn read_content(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, Problem> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Ok(boundary) = multer::parse_boundary(content_type) else {
        return read_body(body, limit).await;
    };
    let too_large = || {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", format!("the body exceeds {limit} bytes"))
    };
    let problem = |err: multer::Error| match err {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => too_large(),
        other => Problem::new(StatusCode::BAD_REQUEST, "bad-multipart", other.to_string()),
    };
    let constraints = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
    let mut form = multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    while let Some(field) = form.next_field().await.map_err(problem)? {
        if field.file_name().is_some() || field.name() == Some("file") {
            return field.bytes().await.map_err(problem);
        }
    }
    Err(Problem::new(StatusCode::BAD_REQUEST, "no-file", "the form has no file part"))
}

pub(crate) fn query_hashes(signals: &Signals) -> QueryHashes {
    let d = &signals.digests;
    QueryHashes {
        md5: d.md5.map(hex::encode),
        sha1: d.sha1.map(hex::encode),
        sha256: d.sha256.map(hex::encode),
        blake3: d.blake3.map(hex::encode),
        pdq: signals.pdq.map(|p| hex::encode(p.hash.0)),
        pdq_quality: signals.pdq.map(|p| p.quality),
    }
}

/// A verdict's matches as the audit trail records them: `LIST:ENTRY:DISTANCE`.
pub(crate) fn audited_matches(verdict: &Verdict) -> Vec<String> {
    let entry = |m: &hashsieve_core::matcher::Match| {
        format!("{}:{}:{}", m.list, m.entry_id.as_deref().unwrap_or("-"), m.distance)
    };
    verdict.matches.iter().map(entry).collect()
}

/// One line of the audit trail per decision: who asked, the query's hashes, the verdict and the
/// entries matched. Never content.
fn audit(peer: SocketAddr, token: Option<&str>, endpoint: &str, verdict: &Verdict, hashes: &QueryHashes) {
    let matched = audited_matches(verdict);
    tracing::info!(
        target: "audit",
        client = %peer,
        token = token.unwrap_or("-"),
        endpoint,
        outcome = ?verdict.outcome,
        matches = ?matched,
        md5 = hashes.md5.as_deref().unwrap_or("-"),
        pdq = hashes.pdq.as_deref().unwrap_or("-"),
        "decision"
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashQuery {
    hashes: Vec<HashValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashValue {
    kind: HashKind,
    value: String,
}

#[derive(Serialize)]
struct HashResults {
    results: Vec<HashAnswer>,
}

#[derive(Serialize)]
struct HashAnswer {
    kind: HashKind,
    value: String,
    #[serde(flatten)]
    verdict: Verdict,
}

async fn match_hashes(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Match)?;
    let bytes = read_body(body, state.limits.max_body_bytes).await?;
    let query: HashQuery = parse_json(&bytes)?;
    if query.hashes.len() > state.limits.max_hashes {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-hashes",
            format!("at most {} hashes per request", state.limits.max_hashes),
        ));
    }
    let mut parsed = Vec::with_capacity(query.hashes.len());
    for (i, hash) in query.hashes.into_iter().enumerate() {
        let value = hash.kind.parse_value(&hash.value).map_err(|err| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-hash", format!("hashes[{i}]: {err}"))
        })?;
        parsed.push((hash.kind, value, hash.value));
    }
    // Lookups are microseconds: answered here rather than on the blocking pool.
    let matcher = state.matcher.load();
    let results: Vec<HashAnswer> = parsed
        .into_iter()
        .map(|(kind, value, text)| HashAnswer {
            kind,
            verdict: matcher.check_hash(kind, &value),
            value: text,
        })
        .collect();
    // One audit line for the request, with every hash and its decision: a line per hash would
    // cost more than the lookups themselves.
    let mut decisions = Vec::with_capacity(results.len());
    let mut matched = Vec::new();
    for result in &results {
        state.metrics.matched("http", &result.verdict);
        decisions.push(format!("{}:{}:{:?}", result.kind, result.value, result.verdict.outcome));
        matched.extend(audited_matches(&result.verdict));
    }
    tracing::info!(
        target: "audit",
        client = %peer,
        token = token.unwrap_or("-"),
        endpoint = "hashes",
        decisions = ?decisions,
        matches = ?matched,
        "decisions"
    );
    Ok(json(&HashResults { results }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeRequest {
    changes: Vec<ChangeJson>,
    #[serde(default)]
    actor: Option<String>,
}

async fn list_changes(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Admin)?.unwrap_or("-").to_string();
    let bytes = read_body(body, state.limits.max_body_bytes).await?;
    let request: ChangeRequest = parse_json(&bytes)?;
    let mut changes = Vec::with_capacity(request.changes.len());
    for (i, change) in request.changes.into_iter().enumerate() {
        changes.push(change.into_change().map_err(|err| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-change", format!("changes[{i}]: {err}"))
        })?);
    }
    let count = changes.len();
    let actor = actor(&token, request.actor);
    let matcher = state.matcher.load_full();
    let receipt = blocking(move || matcher.submit(changes, Some(&actor))).await??;
    tracing::info!(target: "audit", client = %peer, token, changes = count, seq = receipt.seq, "list change");
    Ok(json(&receipt))
}

async fn compact(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Admin)?.unwrap_or("-").to_string();
    let matcher = state.matcher.load_full();
    let done = blocking(move || matcher.compact()).await??;
    tracing::info!(target: "audit", client = %peer, token, generation = done.generation, "compaction");
    Ok(json(&done))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowRequest {
    /// The allow-list; `allow` if absent. Created if it does not exist.
    #[serde(default)]
    list: Option<String>,
    hashes: Vec<ListedHash>,
    #[serde(default)]
    actor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListedHash {
    kind: HashKind,
    value: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

/// The actor recorded for a change: the token's id, and the caller's own name for it if given.
pub(crate) fn actor(token: &str, given: Option<String>) -> String {
    match given {
        Some(given) => format!("{token}/{given}"),
        None => token.to_string(),
    }
}

async fn allow(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Admin)?.unwrap_or("-").to_string();
    let request: AllowRequest = parse_json(&read_body(body, state.limits.max_body_bytes).await?)?;
    let mut entries = Vec::with_capacity(request.hashes.len());
    for (i, hash) in request.hashes.into_iter().enumerate() {
        let value = hash.kind.parse_value(&hash.value).map_err(|err| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-hash", format!("hashes[{i}]: {err}"))
        })?;
        let mut entry = ImportedEntry::new(hash.kind, value);
        entry.id = hash.id;
        entry.category = hash.category;
        entries.push(entry);
    }
    let count = entries.len();
    let actor = actor(&token, request.actor);
    let matcher = state.matcher.load_full();
    let list = request.list;
    let receipt = blocking(move || matcher.allow(list.as_deref(), entries, Some(&actor))).await??;
    tracing::info!(target: "audit", client = %peer, token, entries = count, seq = receipt.seq, "allow-list change");
    Ok(json(&receipt))
}

/// How a list sent whole is written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshQuery {
    /// `lines` (one hash per line, or md5sum output), `csv` or `vics`.
    format: ListFormat,
    /// The hash kind (lines and CSV: exactly one), or for VICS the kinds to take, comma-separated.
    #[serde(default)]
    kind: Option<String>,
    /// Skip records that cannot be used instead of refusing the list.
    #[serde(default)]
    lenient: bool,
    /// `allow` to make a new list an allow-list.
    #[serde(default)]
    role: Option<ListRole>,
    #[serde(default)]
    actor: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ListFormat {
    Lines,
    Csv,
    Vics,
}

#[derive(Serialize)]
struct RefreshAnswer {
    #[serde(flatten)]
    refreshed: Refreshed,
    /// Records skipped (lenient imports only).
    skipped: usize,
}

async fn refresh(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(list): Path<String>,
    query: Result<Query<RefreshQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Admin)?.unwrap_or("-").to_string();
    let Query(query) =
        query.map_err(|err| Problem::new(StatusCode::BAD_REQUEST, "bad-query", err.body_text()))?;
    let unprocessable = |detail: String| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-list", detail);
    let kinds: Vec<HashKind> = query
        .kind
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|kind| !kind.is_empty())
        .map(|kind| kind.parse().map_err(|_| unprocessable(format!("unknown hash kind {kind:?}"))))
        .collect::<Result<_, _>>()?;
    let kind = match (query.format, kinds.as_slice()) {
        (ListFormat::Vics, _) => None,
        (_, [kind]) => Some(*kind),
        _ => return Err(unprocessable("a lines or CSV list needs exactly one kind".into())),
    };
    let bytes = read_body(body, state.limits.max_list_bytes).await?;
    let mode = if query.lenient { Mode::Lenient } else { Mode::Strict };
    let matcher = state.matcher.load_full();
    let actor = actor(&token, query.actor);
    let name = list.clone();
    let (refreshed, skipped) = blocking(move || {
        let mut entries = Vec::new();
        let sink = |entry| entries.push(entry);
        let reader = std::io::Cursor::new(&bytes[..]);
        let report = match (query.format, kind) {
            (ListFormat::Lines, Some(kind)) => import_lines(reader, &name, kind, mode, sink),
            (ListFormat::Csv, Some(kind)) => import_csv(reader, &name, kind, mode, sink),
            _ => import_vics(reader, &name, &kinds, mode, sink),
        }
        .map_err(|err| unprocessable(err.to_string()))?;
        let existing = matcher.live().view(|view| view.delta.list(&name).map(|list| list.options()));
        let mut options = existing.unwrap_or_else(|| ListOptions::new(name.clone()));
        if let Some(role) = query.role {
            options.role = role;
        }
        let refreshed = matcher.refresh(&name, Some(options), entries, Some(&actor))?;
        Ok::<_, Problem>((refreshed, report.skipped.len()))
    })
    .await??;
    tracing::info!(
        target: "audit", client = %peer, token, list, added = refreshed.added, removed = refreshed.removed,
        seq = refreshed.seq, "list refresh"
    );
    Ok(json(&RefreshAnswer { refreshed, skipped }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route served is documented, and every documented path is served (the contract
    /// test checks each documented operation's answers against the daemon).
    #[test]
    fn the_routes_are_the_documented_paths() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented: Vec<&str> =
            document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        let mut served: Vec<&str> = ROUTES.iter().chain(crate::review::ROUTES).copied().collect();
        documented.sort_unstable();
        served.sort_unstable();
        assert_eq!(served, documented);
    }
}
