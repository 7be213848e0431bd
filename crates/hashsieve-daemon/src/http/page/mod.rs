//! The analysts' review page: the triage queue in a browser, at `/review/` when
//! `[review_ui] enabled` (on the daemon that holds the verdict memory).
//!
//! It is built for people who look at abuse imagery all day, so it shows as little as the
//! decision allows: a group's representative appears as a small, heavily blurred greyscale
//! preview made in memory ([`hashsieve_core::preview`]), which the analyst reveals step by step
//! (less blur, sharp, colour, full size) with a click or a key; every group page starts
//! blurred again. The original bytes are never sent: even full size is re-encoded. Every view
//! of content, each step included, is an audit line (`target: "audit"`, `view`: analyst, item,
//! step), and each analyst's count of images revealed today is on their page and in
//! `hashsieve_review_reveals` — so that a hotline can manage exposure.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /review/sign-in`, `POST /review/sign-in` | sign in with a review token |
//! | `POST /review/sign-out` | sign out |
//! | `GET /review/?order=oldest\|largest\|priority&after=&page=` | the queue of pending groups |
//! | `GET /review/groups/{group}` | a group: its representative, members, reports, hints, history |
//! | `GET /review/next?after={group}` | the next pending group after one |
//! | `GET /review/items/{item}/preview/{step}` | an item's preview at a step (an audited view) |
//! | `POST /review/groups/{group}/verdict` | `kind` = illegal (with `category`), legal or unclear |
//! | `POST /review/groups/{group}/split` | `item` (repeated): move them to a group of their own |
//! | `POST /review/undo` | take back this session's last verdict, within `undo_secs` |
//! | `GET /review/settings`, `POST /review/settings` | the analyst's own defaults (`preferences.rs`) |
//! | `GET /review/assets/{file}` | the page's script and style sheet |
//!
//! Verdicts, splits and undos go through the same functions as the JSON API
//! ([`super::review`]): there is one implementation of judging.
//!
//! Security: a session cookie ([`session`]); every POST carries the session's CSRF token and,
//! if the browser says where it comes from (`Origin`, `Sec-Fetch-Site`), must come from this
//! page; failed sign-ins are rate limited per client address. Every answer carries a
//! Content-Security-Policy without inline script or style (the script and style sheet are
//! served from here, no CDN), `frame-ancestors 'none'` with `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer` and `Cache-Control: no-store`, so that no preview is kept in
//! a browser's cache.
//!
//! Content is never on disk: the page shows what [`crate::content_cache`] holds for a pending
//! item (put there when it was reported), or, for a URL report, fetches the URL again and
//! shows it only if it still has the item's SHA-256 or a PDQ hash within the triage
//! threshold; otherwise it says the content is no longer available and gives the hashes.

mod content;
mod preferences;
mod render;
pub mod session;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hashsieve_core::preview::RevealStep;
use hashsieve_triage::model::{GroupId, ItemId, VerdictKind};
use serde::Deserialize;

use super::extract::{Deadline, read_body};
use super::problem::Problem;
use super::review::{
    Judged, record_split, record_verdict, reopen_group, verdict_memory, with_store, with_store_mut,
};
use crate::config::{ReviewUiConfig, Role};
use crate::state::AppState;
use preferences::Preferences;
use session::{LastVerdict, Session, Sessions};

/// Where the page is served.
pub const PREFIX: &str = "/review";

/// The routes, as metrics name them.
pub(crate) const ROUTES: &[&str] = &[
    "/review/",
    "/review/sign-in",
    "/review/sign-out",
    "/review/next",
    "/review/groups/{group}",
    "/review/groups/{group}/verdict",
    "/review/groups/{group}/split",
    "/review/items/{item}/preview/{step}",
    "/review/undo",
    "/review/settings",
    "/review/assets/{file}",
];

const SCRIPT: &str = include_str!("assets/review.js");
const STYLE: &str = include_str!("assets/review.css");

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the page keeps beside the shared state.
pub struct Page {
    config: ReviewUiConfig,
    sessions: Sessions,
    /// Whether the listener is TLS, so that the cookie is `Secure`.
    secure: bool,
    /// Failed sign-ins, per client address.
    sign_in_failures: DefaultKeyedRateLimiter<IpAddr>,
    exposure: Exposure,
}

/// The images each analyst revealed today (UTC), beyond the first blurred step.
#[derive(Default)]
struct Exposure {
    by_analyst: Mutex<HashMap<String, (u64, HashSet<ItemId>)>>,
}

impl Exposure {
    /// Counts `item` as revealed by `analyst` today: how many they have revealed today.
    fn revealed(&self, analyst: &str, item: ItemId) -> usize {
        let today = hashsieve_core::clock::now_ms() / 86_400_000;
        let mut counts = self.by_analyst.lock().unwrap_or_else(PoisonError::into_inner);
        let (day, items) = counts.entry(analyst.to_string()).or_default();
        if *day != today {
            *day = today;
            items.clear();
        }
        items.insert(item);
        items.len()
    }

    fn today(&self, analyst: &str) -> usize {
        let today = hashsieve_core::clock::now_ms() / 86_400_000;
        let counts = self.by_analyst.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(analyst).filter(|(day, _)| *day == today).map_or(0, |(_, items)| items.len())
    }
}

/// The page's routes, when `[review_ui]` is enabled.
pub(super) fn router(state: &AppState, secure: bool) -> Option<Router<Arc<AppState>>> {
    let config = state.review_ui.clone();
    if !config.enabled {
        return None;
    }
    let session_life = Duration::from_secs(config.session_secs);
    let idle = Duration::from_secs(config.idle_secs);
    let per_minute = NonZeroU32::new(10).expect("not zero");
    let page = Arc::new(Page {
        sessions: Sessions::new(session_life, idle),
        config,
        secure,
        sign_in_failures: RateLimiter::keyed(Quota::per_minute(per_minute)),
        exposure: Exposure::default(),
    });
    let routes = Router::new()
        .route("/review", get(|| async { Redirect::to("/review/") }))
        .route("/review/", get(queue))
        .route("/review/sign-in", get(sign_in_form).post(sign_in))
        .route("/review/sign-out", post(sign_out))
        .route("/review/next", get(next_group))
        .route("/review/groups/{group}", get(group_page))
        .route("/review/groups/{group}/verdict", post(verdict))
        .route("/review/groups/{group}/split", post(split))
        .route("/review/items/{item}/preview/{step}", get(preview))
        .route("/review/undo", post(undo))
        .route("/review/settings", get(settings).post(save_settings))
        .route("/review/assets/{file}", get(asset))
        .layer(Extension(page))
        .layer(middleware::from_fn(protect));
    Some(routes)
}

/// The headers every answer of the page carries.
async fn protect(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    response
}

/// An answer of the page that is not the page asked for.
enum Refusal {
    /// Not signed in: to the sign-in form.
    SignIn,
    /// An error, shown as a page.
    Problem(Problem),
    /// The request is refused before anything is looked at (CSRF, origin).
    Forbidden(&'static str),
}

impl From<Problem> for Refusal {
    fn from(problem: Problem) -> Refusal {
        Refusal::Problem(problem)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignIn => Redirect::to("/review/sign-in").into_response(),
            Refusal::Problem(problem) => {
                let (status, detail) = (problem.status(), problem.detail().to_string());
                (status, html(render::error_page(status, &detail))).into_response()
            }
            Refusal::Forbidden(why) => {
                (StatusCode::FORBIDDEN, html(render::error_page(StatusCode::FORBIDDEN, why))).into_response()
            }
        }
    }
}

/// The signed-in analyst of a request.
struct SignedIn {
    cookie: String,
    session: Session,
}

fn signed_in(page: &Page, headers: &HeaderMap) -> Result<SignedIn, Refusal> {
    let cookie = session::cookie_of(headers).ok_or(Refusal::SignIn)?;
    let session = page.sessions.get(cookie).ok_or(Refusal::SignIn)?;
    Ok(SignedIn { cookie: cookie.to_string(), session })
}

/// Whether a state-changing request comes from this page, as far as the browser says: a
/// cross-site form or script is refused even before its CSRF token is looked at.
/// `Sec-Fetch-Site` decides where it is sent. Otherwise `Origin` must name this host; under
/// `Referrer-Policy: no-referrer` browsers send `Origin: null` for the page's own forms, which
/// without `Sec-Fetch-Site` says nothing either way, so it is refused too.
fn same_origin(headers: &HeaderMap) -> bool {
    let field = |name| headers.get(name).and_then(|value: &HeaderValue| value.to_str().ok());
    if let Some(site) = field("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = field(header::ORIGIN.as_str()) else {
        return true;
    };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    origin_host.is_some() && origin_host == field(header::HOST.as_str())
}

/// A form's fields, in order (a field may repeat).
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

async fn read_form(state: &AppState, body: Body, deadline: Deadline) -> Result<Form, Refusal> {
    let bytes = read_body(body, state.limits.max_body_bytes.min(64 << 10), deadline).await?;
    Ok(Form(form_urlencoded::parse(&bytes).into_owned().collect()))
}

/// The signed-in analyst of a state-changing request, its origin and CSRF token checked.
async fn checked_post(
    state: &AppState,
    page: &Page,
    headers: &HeaderMap,
    body: Body,
    deadline: Deadline,
) -> Result<(SignedIn, Form), Refusal> {
    if !same_origin(headers) {
        return Err(Refusal::Forbidden("this request did not come from the review page"));
    }
    let signed_in = signed_in(page, headers)?;
    let form = read_form(state, body, deadline).await?;
    let token = form.get("csrf").unwrap_or_default();
    if !page.sessions.csrf_matches(&signed_in.cookie, token) {
        return Err(Refusal::Forbidden("the form's CSRF token is missing or not this session's"));
    }
    Ok((signed_in, form))
}

fn html(markup: maud::Markup) -> Response {
    axum::response::Html(markup.into_string()).into_response()
}

async fn sign_in_form(Extension(page): Extension<Arc<Page>>, headers: HeaderMap) -> Response {
    if signed_in(&page, &headers).is_ok() {
        return Redirect::to("/review/").into_response();
    }
    html(render::sign_in(None))
}

async fn sign_in(
    State(state): State<Arc<AppState>>,
    Extension(page): Extension<Arc<Page>>,
    Extension(deadline): Extension<Deadline>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    if !same_origin(&headers) {
        return Err(Refusal::Forbidden("this request did not come from the review page"));
    }
    if page.sign_in_failures.check_key(&peer.ip()).is_err() {
        tracing::warn!(target: "audit", client = %peer, "sign-in refused: too many failures");
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            html(render::sign_in(Some("Too many failed sign-ins: wait a minute."))),
        )
            .into_response());
    }
    let form = read_form(&state, body, deadline).await?;
    let token = form.get("token").unwrap_or_default().trim();
    let analyst = match state.tokens.authenticate(token, Role::Review) {
        Ok(analyst) => analyst.to_string(),
        Err(_) => {
            tracing::info!(target: "audit", client = %peer, "sign-in failed");
            let failed = render::sign_in(Some("That token is not a review token."));
            return Ok((StatusCode::UNAUTHORIZED, html(failed)).into_response());
        }
    };
    let (cookie, _) = page.sessions.start(&analyst).map_err(|err| Problem::internal("a session", &err))?;
    tracing::info!(target: "audit", client = %peer, analyst, "sign-in");
    let mut attributes = format!(
        "{}={cookie}; Path={PREFIX}/; HttpOnly; SameSite=Strict; Max-Age={}",
        session::COOKIE,
        page.config.session_secs
    );
    if page.secure {
        attributes.push_str("; Secure");
    }
    let mut response = Redirect::to("/review/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&attributes).map_err(|err| Problem::internal("the cookie", &err))?,
    );
    Ok(response)
}

async fn sign_out(
    State(state): State<Arc<AppState>>,
    Extension(page): Extension<Arc<Page>>,
    Extension(deadline): Extension<Deadline>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let (signed_in, _) = checked_post(&state, &page, &headers, body, deadline).await?;
    page.sessions.end(&signed_in.cookie);
    tracing::info!(target: "audit", client = %peer, analyst = signed_in.session.analyst, "sign-out");
    let mut response = Redirect::to("/review/sign-in").into_response();
    let expired = format!("{}=; Path={PREFIX}/; HttpOnly; SameSite=Strict; Max-Age=0", session::COOKIE);
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&expired).expect("ASCII"));
    Ok(response)
}

/// How the queue is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Order {
    /// The longest waiting first.
    #[default]
    Oldest,
    /// The most members first (one look decides the most items).
    Largest,
    /// Reported from the hotline's priority sources first (`priority_sources`), then oldest.
    Priority,
}

#[derive(Deserialize)]
struct QueueQuery {
    #[serde(default)]
    order: Order,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    page: Option<usize>,
}

/// Groups listed on one page of the queue.
const QUEUE_PAGE: usize = 100;

async fn queue(
    State(state): State<Arc<AppState>>,
    Extension(page): Extension<Arc<Page>>,
    query: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&page, &headers)?;
    let Query(query) =
        query.map_err(|err| Problem::new(StatusCode::BAD_REQUEST, "bad-query", err.body_text()))?;
    let number = query.page.unwrap_or(0);
    let after = query.after.map(GroupId);
    let sources = page.config.priority_sources.clone();
    let queue =
        content::queue(verdict_memory(&state)?, query.order, &sources, after, number, QUEUE_PAGE).await?;
    let header = header_of(&page, &signed_in);
    Ok(html(render::queue(&header, &queue, query.order, number, &sources)))
}

/// What every page's header shows.
pub(crate) struct Header {
    analyst: String,
    csrf: String,
    revealed_today: usize,
    /// The verdict that may still be undone, and for how many seconds.
    undo: Option<(LastVerdict, u64)>,
}

fn header_of(page: &Page, signed_in: &SignedIn) -> Header {
    let window = Duration::from_secs(page.config.undo_secs);
    let undo = signed_in.session.last_verdict.clone().and_then(|last| {
        let left = window.checked_sub(last.at.elapsed())?;
        Some((last, left.as_secs().max(1)))
    });
    Header {
        analyst: signed_in.session.analyst.clone(),
        csrf: signed_in.session.csrf.clone(),
        revealed_today: page.exposure.today(&signed_in.session.analyst),
        undo,
    }
}

fn group_of(path: Result<Path<u64>, PathRejection>) -> Result<GroupId, Refusal> {
    Ok(GroupId(super::review::number(path)?))
}

async fn group_page(
    State(state): State<Arc<AppState>>,
    Extension(page): Extension<Arc<Page>>,
    path: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&page, &headers)?;
    let group = group_of(path)?;
    let memory = verdict_memory(&state)?;
    let preferences = preferences_of(&page, &memory, &signed_in.session.analyst).await?;
    let shown = content::group(memory, group).await?;
    let header = header_of(&page, &signed_in);
    Ok(html(render::group(&header, &shown, &page.config.categories, preferences)))
}

async fn preferences_of(
    page: &Page,
    memory: &Arc<crate::verdict_memory::VerdictMemory>,
    analyst: &str,
) -> Result<Preferences, Problem> {
    let (config, analyst) = (page.config.clone(), analyst.to_string());
    with_store(Arc::clone(memory), move |store, _| Preferences::of(store, &analyst, &config)).await
}

#[derive(Deserialize)]
struct SettingsQuery {
    #[serde(default)]
    saved: bool,
}

async fn settings(
    State(state): State<Arc<AppState>>,
    Extension(page): Extension<Arc<Page>>,
    query: Result<Query<SettingsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&page, &headers)?;
    let saved = query.is_ok_and(|Query(query)| query.saved);
    let preferences = preferences_of(&page, &verdict_memory(&state)?, &signed_in.session.analyst).await?;
    let header = header_of(&page, &signed_in);
    Ok(html(render::settings(&header, preferences, saved)))
}

async fn save_settings(
    State(state): State<Arc<AppState>>,
    Extension(page): Extension<Arc<Page>>,
    Extension(deadline): Extension<Deadline>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let (signed_in, form) = checked_post(&state, &page, &headers, body, deadline).await?;
    let pixels = form.get("preview_pixels").and_then(|pixels| pixels.parse().ok()).unwrap_or(0);
    let chosen = Preferences::checked(form.get("first_step").unwrap_or_default(), pixels, &page.config)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-settings",
                "choose a step and a size the page offers",
            )
        })?;
    let analyst = signed_in.session.analyst.clone();
    tracing::info!(target: "audit", client = %peer, analyst, first_step = chosen.first_step.as_str(),
        preview_pixels = chosen.preview_pixels, "settings");
    with_store_mut(verdict_memory(&state)?, move |store, _| chosen.save(store, &analyst)).await?;
    Ok(Redirect::to("/review/settings?saved=true").into_response())
}

#[derive(Deserialize)]
struct NextQuery {
    #[serde(default)]
    after: Option<u64>,
}

async fn next_group(
    State(state): State<Arc<AppState>>,
    Extension(page): Extension<Arc<Page>>,
    query: Result<Query<NextQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    signed_in(&page, &headers)?;
    let Query(query) =
        query.map_err(|err| Problem::new(StatusCode::BAD_REQUEST, "bad-query", err.body_text()))?;
    let next = content::next_pending(verdict_memory(&state)?, query.after.map(GroupId)).await?;
    Ok(match next {
        Some(group) => Redirect::to(&format!("/review/groups/{}", group.0)).into_response(),
        None => Redirect::to("/review/").into_response(),
    })
}

async fn verdict(
    State(state): State<Arc<AppState>>,
    Extension(page): Extension<Arc<Page>>,
    Extension(deadline): Extension<Deadline>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    path: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let group = group_of(path)?;
    let (signed_in, form) = checked_post(&state, &page, &headers, body, deadline).await?;
    let invalid = |detail: &str| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-verdict", detail);
    let kind = match (form.get("kind"), form.get("category")) {
        (Some("illegal"), Some(category)) if page.config.categories.iter().any(|c| c == category) => {
            VerdictKind::Illegal { category: category.to_string() }
        }
        (Some("illegal"), _) => {
            return Err(invalid("an illegal verdict needs one of the hotline's categories").into());
        }
        (Some("legal"), _) => VerdictKind::Legal,
        (Some("unclear"), _) => VerdictKind::Unclear,
        _ => return Err(invalid("the verdict is illegal, legal or unclear").into()),
    };
    let name = render::verdict_name(&kind);
    let note = form.get("note").map(str::trim).filter(|note| !note.is_empty()).map(str::to_string);
    if note.as_ref().is_some_and(|note| note.len() > 4096) {
        return Err(invalid("the note is at most 4096 bytes").into());
    }
    let analyst = signed_in.session.analyst.clone();
    let (items, _) = record_verdict(&state, peer, Judged::Group(group), kind, analyst, note).await?;
    let last = LastVerdict { group, items, verdict: name, at: std::time::Instant::now() };
    page.sessions.set_last_verdict(&signed_in.cookie, Some(last));
    Ok(Redirect::to(&format!("/review/next?after={}", group.0)).into_response())
}

async fn split(
    State(state): State<Arc<AppState>>,
    Extension(page): Extension<Arc<Page>>,
    Extension(deadline): Extension<Deadline>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    path: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let group = group_of(path)?;
    let (signed_in, form) = checked_post(&state, &page, &headers, body, deadline).await?;
    let items =
        form.all("item").map(|item| item.parse().map(ItemId)).collect::<Result<Vec<_>, _>>().map_err(
            |_| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-split", "an item is not a number"),
        )?;
    record_split(&state, peer, group, items, &signed_in.session.analyst).await?;
    Ok(Redirect::to(&format!("/review/groups/{}", group.0)).into_response())
}

async fn undo(
    State(state): State<Arc<AppState>>,
    Extension(page): Extension<Arc<Page>>,
    Extension(deadline): Extension<Deadline>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let (signed_in, _) = checked_post(&state, &page, &headers, body, deadline).await?;
    let window = Duration::from_secs(page.config.undo_secs);
    let Some(last) = signed_in.session.last_verdict.filter(|last| last.at.elapsed() < window) else {
        let detail =
            format!("there is no verdict of yours from the last {} seconds to undo", window.as_secs());
        return Err(Problem::new(StatusCode::CONFLICT, "nothing-to-undo", detail).into());
    };
    let note = format!("undo of the {} verdict just given", last.verdict);
    reopen_group(&state, peer, last.group, signed_in.session.analyst.clone(), note).await?;
    page.sessions.set_last_verdict(&signed_in.cookie, None);
    Ok(Redirect::to(&format!("/review/groups/{}", last.group.0)).into_response())
}

async fn preview(
    State(state): State<Arc<AppState>>,
    Extension(page): Extension<Arc<Page>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    path: Result<Path<(u64, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&page, &headers)?;
    let Path((item, step)) =
        path.map_err(|err| Problem::new(StatusCode::BAD_REQUEST, "bad-path", err.body_text()))?;
    let item = ItemId(item);
    let step: RevealStep = step.parse().map_err(|err: hashsieve_core::preview::ParseRevealStepError| {
        Problem::new(StatusCode::NOT_FOUND, "no-such-step", err.to_string())
    })?;
    let analyst = signed_in.session.analyst;
    let memory = verdict_memory(&state)?;
    let pixels = preferences_of(&page, &memory, &analyst).await?.preview_pixels;
    let made = content::preview(&state, memory, item, step, pixels).await?;
    let Some(preview) = made else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "content-gone",
            "the content is no longer available",
        )
        .into());
    };
    if step != RevealStep::FIRST {
        let today = page.exposure.revealed(&analyst, item);
        state.metrics.review_reveal(&analyst, step.as_str());
        tracing::info!(target: "audit", client = %peer, analyst, item = item.0, step = step.as_str(), revealed_today = today, "view");
    } else {
        tracing::info!(target: "audit", client = %peer, analyst, item = item.0, step = step.as_str(), "view");
    }
    let content_type = HeaderValue::from_static(preview.content_type);
    Ok(([(header::CONTENT_TYPE, content_type)], preview.bytes).into_response())
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "review.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "review.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
