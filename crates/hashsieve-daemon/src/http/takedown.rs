//! The takedown loop's HTTP API, on the daemon that holds the verdict memory: cases and their
//! history, the analysts' actions on them, notices and referrals to send, the figures, and the
//! URL block list for ISPs.
//!
//! | method and path | role | what |
//! |---|---|---|
//! | `GET /v1/takedown/cases?state=&country=&min_age_secs=&item=&limit=&after=` | review | cases, in id order |
//! | `GET /v1/takedown/cases/{case}` | review | a case, its history and its notice |
//! | `POST /v1/takedown/cases/{case}/check` | review | re-check now |
//! | `POST /v1/takedown/cases/{case}/notice` | review | `{"to", "channel"}`: a notice the hotline sent itself |
//! | `POST /v1/takedown/cases/{case}/refer` | review | `{"partner"}`: referred by hand |
//! | `POST /v1/takedown/cases/{case}/whole-host` | review | `{"whole_host": true}`: block the host, not only the URL |
//! | `POST /v1/takedown/cases/{case}/close` | review | `{"reason", "analyst"}` |
//! | `GET /v1/takedown/notices` | review | the notices of open cases, to send (`hashsieve-notice/1`) |
//! | `GET /v1/takedown/referrals` | review | every referral (`hashsieve-referral/1`) |
//! | `GET /v1/takedown/figures` | review | times to confirmation, notice and removal; cases by state and age |
//! | `GET /v1/takedown/blocklist?format=` | blocklist | the URL block list: `json` (default), `plain`, `squid-urls`, `squid-url-hosts`, `squid-whole-hosts`, `rpz` |
//!
//! The block list answers with a strong `ETag` (of its entries) and `Last-Modified` (when
//! this daemon first served that version), and `304 Not Modified` to a matching
//! `If-None-Match`: an ISP polling every minute downloads it only when it changed. The list
//! is read from the store's `blocking` index once per change ([`blocked_urls::current`]): a
//! poll that finds it unchanged reads one key.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hashsieve_triage::blocklist::{self, Format, rpz};
use hashsieve_triage::model::ItemId;
use hashsieve_triage::takedown::{
    Case, CaseEvent, CaseFilter, CaseId, CaseState, Delivery, Figures, Notice, Referral,
};
use hashsieve_triage::{Triage, TriageError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::extract::{Deadline, actor, authorize, blocking, json, parse_json, read_body};
use super::problem::Problem;
use super::review::{number, verdict_memory, with_store};
use crate::blocked_urls;
use crate::config::Role;
use crate::state::AppState;

/// The routes of this API, as metrics name them.
pub(crate) const ROUTES: &[&str] = &[
    "/v1/takedown/cases",
    "/v1/takedown/cases/{case}",
    "/v1/takedown/cases/{case}/check",
    "/v1/takedown/cases/{case}/notice",
    "/v1/takedown/cases/{case}/refer",
    "/v1/takedown/cases/{case}/whole-host",
    "/v1/takedown/cases/{case}/close",
    "/v1/takedown/notices",
    "/v1/takedown/referrals",
    "/v1/takedown/figures",
    "/v1/takedown/blocklist",
];

/// The routes that only read.
pub(super) fn reads() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/takedown/cases", get(cases))
        .route("/v1/takedown/cases/{case}", get(case))
        .route("/v1/takedown/notices", get(notices))
        .route("/v1/takedown/referrals", get(referrals))
        .route("/v1/takedown/figures", get(figures))
        .route("/v1/takedown/blocklist", get(block_list))
}

/// The routes that write: each carried through once its body has arrived.
pub(super) fn writes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/takedown/cases/{case}/check", post(check_now))
        .route("/v1/takedown/cases/{case}/notice", post(record_notice))
        .route("/v1/takedown/cases/{case}/refer", post(refer))
        .route("/v1/takedown/cases/{case}/whole-host", post(whole_host))
        .route("/v1/takedown/cases/{case}/close", post(close))
}

/// Cases listed at most per page.
const MAX_PAGE: usize = 500;
/// The longest name, reason or contact accepted.
const MAX_TEXT: usize = 1024;

fn bad_query(err: QueryRejection) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad-query", err.body_text())
}

fn text_field(name: &str, value: &str) -> Result<(), Problem> {
    if value.trim().is_empty() || value.len() > MAX_TEXT {
        let detail = format!("{name} must be 1 to {MAX_TEXT} bytes");
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-request", detail));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesQuery {
    /// Comma-separated states.
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    min_age_secs: Option<u64>,
    #[serde(default)]
    item: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    after: Option<u64>,
}

#[derive(Serialize)]
struct CasesAnswer {
    cases: Vec<Case>,
    next: Option<CaseId>,
}

async fn cases(
    State(state): State<Arc<AppState>>,
    query: Result<Query<CasesQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers, Role::Review)?;
    let Query(query) = query.map_err(bad_query)?;
    let states = match &query.state {
        Some(list) => list
            .split(',')
            .map(|name| name.parse::<CaseState>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|detail| Problem::new(StatusCode::BAD_REQUEST, "bad-query", detail))?,
        None => Vec::new(),
    };
    let filter = CaseFilter {
        states,
        country: query.country.map(|country| country.to_ascii_uppercase()),
        min_age_ms: query.min_age_secs.map(|secs| secs.saturating_mul(1000)),
        item: query.item.map(ItemId),
        abroad: None,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let after = query.after.map(CaseId);
    let now = hashsieve_core::clock::now_ms();
    let page =
        with_store(verdict_memory(&state)?, move |store, _| store.cases(&filter, now, limit, after)).await?;
    Ok(json(&CasesAnswer { cases: page.cases, next: page.next }))
}

#[derive(Serialize)]
struct CaseAnswer {
    case: Case,
    history: Vec<CaseEvent>,
    notice: Notice,
}

async fn case(
    State(state): State<Arc<AppState>>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers, Role::Review)?;
    let id = number(id).map(CaseId)?;
    let (hotline, reference) = (state.takedown.hotline.clone(), state.takedown.reference.clone());
    let answer = with_store(verdict_memory(&state)?, move |store, _| {
        let case = store.case(id)?;
        let notice = Notice::new(&case, &hotline, &reference);
        Ok(CaseAnswer { history: store.case_history(id)?, case, notice })
    })
    .await?;
    Ok(json(&answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    after: Option<u64>,
}

#[derive(Serialize)]
struct NoticesAnswer {
    notices: Vec<Notice>,
    next: Option<CaseId>,
}

/// The notices of open cases at home, a page at a time, for a hotline that sends them by hand;
/// each is recorded sent with `POST …/notice`.
async fn notices(
    State(state): State<Arc<AppState>>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers, Role::Review)?;
    let Query(query) = query.map_err(bad_query)?;
    let (limit, after) = (query.limit.unwrap_or(100).clamp(1, MAX_PAGE), query.after.map(CaseId));
    let (hotline, reference) = (state.takedown.hotline.clone(), state.takedown.reference.clone());
    let now = hashsieve_core::clock::now_ms();
    let answer = with_store(verdict_memory(&state)?, move |store, _| {
        let page = store.cases(&CaseFilter::notices_to_send(), now, limit, after)?;
        let notices = page.cases.iter().map(|case| Notice::new(case, &hotline, &reference)).collect();
        Ok(NoticesAnswer { notices, next: page.next })
    })
    .await?;
    Ok(json(&answer))
}

#[derive(Serialize)]
struct ReferralsAnswer {
    referrals: Vec<Referral>,
}

async fn referrals(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, Problem> {
    authorize(&state, &headers, Role::Review)?;
    let hotline = state.takedown.hotline.clone();
    let referrals = with_store(verdict_memory(&state)?, move |store, _| store.referrals(&hotline)).await?;
    Ok(json(&ReferralsAnswer { referrals }))
}

async fn figures(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, Problem> {
    authorize(&state, &headers, Role::Review)?;
    let now = hashsieve_core::clock::now_ms();
    let figures: Figures =
        with_store(verdict_memory(&state)?, move |store, _| store.takedown_figures(now)).await?;
    Ok(json(&figures))
}

/// An action on a case by an analyst: the body read and checked, the action run on the store
/// as the token's actor (and the analyst named in the body, if any), the case answered, and
/// the tasks that follow cases woken.
async fn act_on_case<R: DeserializeOwned + Send + 'static>(
    state: &AppState,
    request: CaseRequest,
    check: impl FnOnce(&R) -> Result<Option<String>, Problem>,
    act: impl FnOnce(&Triage, CaseId, R, &str) -> Result<Case, TriageError> + Send + 'static,
) -> Result<Response, Problem> {
    let CaseRequest { id, headers, body, deadline } = request;
    let token = authorize(state, &headers, Role::Review)?;
    let id = number(id).map(CaseId)?;
    let posted: R = match body {
        Some(body) => parse_json(&read_body(body, state.limits.max_body_bytes, deadline).await?)?,
        None => parse_json(b"null")?,
    };
    let who = actor(token.unwrap_or("-"), check(&posted)?);
    let case = with_store(verdict_memory(state)?, move |store, _| act(store, id, posted, &who)).await?;
    state.rechecks.notify_one();
    state.block_list_changed.notify_one();
    Ok(json(&case))
}

/// What every case action is given.
struct CaseRequest {
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
    body: Option<Body>,
    deadline: Deadline,
}

async fn check_now(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let request = CaseRequest { id, headers, body: None, deadline };
    act_on_case(&state, request, |_: &()| Ok(None), |store, id, (), who| store.check_now(id, who)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeRequest {
    to: String,
    #[serde(default)]
    channel: Option<String>,
}

async fn record_notice(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let request = CaseRequest { id, headers, body: Some(body), deadline };
    let check = |posted: &NoticeRequest| {
        text_field("to", &posted.to)?;
        text_field("channel", posted.channel.as_deref().unwrap_or("manual"))?;
        Ok(None)
    };
    act_on_case(&state, request, check, |store, id, posted: NoticeRequest, _| {
        let channel = posted.channel.unwrap_or_else(|| "manual".into());
        let delivery =
            Delivery { to: posted.to, channel, at_ms: hashsieve_core::clock::now_ms(), attempt: 1 };
        store.record_notice(id, delivery)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferRequest {
    partner: String,
}

async fn refer(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let request = CaseRequest { id, headers, body: Some(body), deadline };
    let check = |posted: &ReferRequest| text_field("partner", &posted.partner).map(|()| None);
    act_on_case(&state, request, check, |store, id, posted: ReferRequest, who| {
        store.refer(id, &posted.partner, who)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WholeHostRequest {
    whole_host: bool,
}

async fn whole_host(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let request = CaseRequest { id, headers, body: Some(body), deadline };
    act_on_case(
        &state,
        request,
        |_: &WholeHostRequest| Ok(None),
        |store, id, posted, who| store.set_whole_host(id, posted.whole_host, who),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseRequest {
    reason: String,
    #[serde(default)]
    analyst: Option<String>,
}

async fn close(
    State(state): State<Arc<AppState>>,
    Extension(deadline): Extension<Deadline>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let request = CaseRequest { id, headers, body: Some(body), deadline };
    let check = |posted: &CloseRequest| text_field("reason", &posted.reason).map(|()| posted.analyst.clone());
    act_on_case(&state, request, check, |store, id, posted: CloseRequest, who| {
        store.close_case(id, who, &posted.reason)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockListQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn block_list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<BlockListQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers, Role::Blocklist)?;
    let Query(query) = query.map_err(bad_query)?;
    let format: Format = query
        .format
        .as_deref()
        .unwrap_or("json")
        .parse()
        .map_err(|detail| Problem::new(StatusCode::BAD_REQUEST, "bad-query", detail))?;
    let now = hashsieve_core::clock::now_ms();
    let (shared, memory) = (Arc::clone(&state), verdict_memory(&state)?);
    let current = blocking(move || blocked_urls::current(&shared, &memory, now)).await??;
    let since = current.since_ms;
    // One validator per format: the same entries are other bytes in each. The zone's serial
    // is the list's time, in seconds, so it grows with every change as secondaries expect.
    let etag = format!("\"{}-{}\"", current.etag.trim_matches('"'), format.name());
    let last_modified =
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(since));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let zone = rpz::Zone { origin: state.takedown.rpz_origin.clone(), serial: (since / 1000) as u32 };
        let mut body = Vec::new();
        blocklist::write(format, &current.list.entries, &zone, &mut body)
            .map_err(|err| Problem::internal("the block list", &err))?;
        ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [(header::ETAG, etag), (header::LAST_MODIFIED, last_modified)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
