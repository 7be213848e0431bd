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
//! | `/v1/reports…`, `/v1/review…`, `/v1/items…` | report, review | the hotline's API: see [`review`] |
//! | `/v1/takedown…` | review, blocklist | cases after the verdict, notices, referrals, the URL block list: see [`takedown`] |
//! | `GET /metrics` | — | Prometheus metrics (OpenMetrics text); see [`crate::metrics`] |
//! | `GET /openapi.json` | — | this API in OpenAPI 3.1 (`api/openapi.json`); `docs/API.md` explains it |
//!
//! Deadlines: a request's body must arrive within `limits.request_timeout_secs` of its head
//! (else 408, and nothing is done). A request that only reads — matching, the review queue —
//! must also be answered within it. A request that writes — list changes, allow-list entries,
//! a list refresh, compaction, reports and verdicts — is, once its body has arrived, carried
//! through and answered however long the write takes, never answered 408 while the write goes
//! on: a client that retries a batch it was told had timed out would apply it twice.
//!
//! Hashing runs on the blocking pool within the shared [hashing slots](crate::slots), taken
//! once the content has arrived; a request finding none free gets 503 with `Retry-After` at
//! once rather than queueing without bound. Hash lookups run there too, under a slot.
//!
//! The parts: [`serve`](mod@serve) (hyper's HTTP/1 on the shared [connection
//! discipline](crate::listener)), [`problem`] (errors), [`extract`] (tokens, bodies, JSON),
//! [`matching`], [`lists`], [`review`] and [`takedown`] (the handlers).

pub mod extract;
pub mod lists;
pub mod matching;
pub mod page;
pub mod problem;
pub mod review;
pub mod serve;
pub mod takedown;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;

pub use extract::Deadline;
use extract::json;
pub use problem::Problem;
pub use serve::serve;

use crate::state::AppState;

/// The API described in OpenAPI 3.1; a test checks it against what the daemon serves.
pub const OPENAPI: &str = include_str!("../../api/openapi.json");

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
    let reads = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/v1/match/content", post(matching::match_content))
        .route("/v1/match/hashes", post(matching::match_hashes))
        .merge(review::reads())
        .merge(takedown::reads())
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint") })
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            answered_within(timeout, request, next)
        }));
    let writes = Router::new()
        .route("/v1/lists/changes", post(lists::changes))
        .route("/v1/lists/allow", post(lists::allow))
        .route("/v1/lists/{list}", put(lists::refresh))
        .route("/v1/lists/compact", post(lists::compact))
        .merge(review::writes())
        .merge(takedown::writes());
    let page = page::router(&state, state.https).unwrap_or_default();
    reads
        .merge(writes)
        .merge(page)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), admit))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), record))
        .with_state(state)
}

/// The request head's size as sent: the request line and every field line with its CRLF.
fn head_size(request: &Request) -> u64 {
    let target = request.uri().path_and_query().map_or(1, |target| target.as_str().len());
    let line = request.method().as_str().len() + target + "  HTTP/1.1\r\n".len();
    let fields: usize =
        request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    (line + fields + 2) as u64
}

/// Admits a request whose head is within `limits.max_header_bytes` (431 otherwise), and gives
/// it the [`Deadline`] its body must arrive by. hyper bounds its read buffer by the same
/// number, but reads in pieces that can take a head of twice that whole; this is where the
/// configured limit is the one enforced. One layer for both: each layer costs every request.
async fn admit(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    if head_size(&request) > state.limits.max_header_bytes {
        let detail = format!("the request head exceeds {} bytes", state.limits.max_header_bytes);
        return Problem::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "head-too-large", detail)
            .into_response();
    }
    let timeout = Duration::from_secs(state.limits.request_timeout_secs);
    request.extensions_mut().insert(Deadline(Instant::now() + timeout));
    next.run(request).await
}

/// A request that only reads is answered within the request timeout, or gets 408.
async fn answered_within(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::timeout().into_response(),
    }
}

/// Counts every request with its route, status and latency, and refusals by reason; outside
/// the deadline, so that timeouts are counted too.
async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_string());
    let endpoint = path
        .and_then(|path| {
            let routes = ROUTES.iter().chain(review::ROUTES).chain(takedown::ROUTES).chain(page::ROUTES);
            routes.copied().find(|route| *route == path)
        })
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
    if let Some(memory) = state.verdict_memory.clone() {
        let now = hashsieve_core::clock::now_ms();
        let figures = tokio::task::spawn_blocking(move || memory.store().takedown_figures(now)).await;
        match figures {
            Ok(Ok(figures)) => state.metrics.takedown_figures(&figures),
            Ok(Err(err)) => tracing::warn!(error = %err, "takedown figures not read for /metrics"),
            Err(_) => {}
        }
    }
    let text = state.metrics.encode(&state.matcher.load());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    generation: u64,
    entries: u64,
    delta_changes: u64,
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let live = state.matcher.load().current();
    let (entries, delta_changes) = live.view(|view| {
        let base: u64 = view.base.kinds().iter().map(|&kind| view.base.len(kind) as u64).sum();
        (base + view.delta.added() as u64, view.delta.changes())
    });
    json(&Readiness { ready: true, generation: live.number(), entries, delta_changes })
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
        let mut served: Vec<&str> =
            ROUTES.iter().chain(review::ROUTES).chain(takedown::ROUTES).copied().collect();
        documented.sort_unstable();
        served.sort_unstable();
        assert_eq!(served, documented);
    }
}
