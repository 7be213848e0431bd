//! The hotline's HTTP API, on the daemon that holds the verdict memory (`[triage] store`):
//! reports submitted directly, the review queue, verdicts, and the history of reports and
//! items.
//!
//! | method and path | role | what |
//! |---|---|---|
//! | `POST /v1/reports` | report | `{"id", "url", "source"}`: the URL is fetched safely, hashed and decided |
//! | `POST /v1/reports/content?id=&source=` | report | the body (or a form's file part) is the reported content |
//! | `GET /v1/reports/{id}` | review | the report as recorded, and its item's history |
//! | `GET /v1/review/groups?limit=&after=` | review | pending review groups, oldest first, each with its representative and its members' reports |
//! | `GET /v1/review/groups/{group}` | review | a group and its members |
//! | `POST /v1/review/groups/{group}/verdict` | review | `{"kind", "category", "note", "analyst"}` for every member |
//! | `POST /v1/review/groups/{group}/split` | review | `{"items": [...]}` move to a group of their own |
//! | `POST /v1/review/groups/{group}/reopen` | review | `{"note", "analyst"}` take the group's verdict back (an undo) |
//! | `GET /v1/items/{item}` | review | an item, its reports and its history |
//! | `POST /v1/items/{item}/verdict` | review | a verdict on one item (out of its group), or a correction |
//!
//! A report is decided as the ingest stages decide it: known (a hash list has it), previously
//! assessed (it inherits an analyst's verdict) or new (a review group). Only reports' hashes
//! and metadata are kept; the content is hashed in memory and, with the review page enabled,
//! held in memory for it (see [`crate::content_cache`]). Analysts view content on the review
//! page ([`super::page`]) or in their own tools: what this API gives them is which item to open
//! (a group's representative, with the URLs it was reported at) and where to write down what
//! they saw. The page records verdicts, splits and undos through the same functions as this
//! API. Every verdict is exported to the hotline's list at once when `triage.export_list` is
//! set.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use hashsieve_core::signals::Signals;
use hashsieve_fetch::FetchError;
use hashsieve_triage::export::ExportedItem;
use hashsieve_triage::model::{
    Disposition, Event, Group, GroupId, HistoryOf, Item, ItemId, Report, ReportRecord, VerdictKind,
};
use hashsieve_triage::{Triage, TriageError};
use serde::{Deserialize, Serialize};

use super::extract::{Deadline, actor, authorize, blocking, json, parse_json, read_body, read_content};
use super::problem::Problem;
use crate::config::Role;
use crate::state::AppState;
use crate::verdict::QueryHashes;
use crate::verdict_memory::{Exported, FetchedAt, VerdictMemory, report_options, valid_report_id};

/// The routes of this API, as metrics name them.
pub(crate) const ROUTES: &[&str] = &[
    "/v1/reports",
    "/v1/reports/content",
    "/v1/reports/{id}",
    "/v1/review/groups",
    "/v1/review/groups/{group}",
    "/v1/review/groups/{group}/verdict",
    "/v1/review/groups/{group}/split",
    "/v1/review/groups/{group}/reopen",
    "/v1/items/{item}",
    "/v1/items/{item}/verdict",
];

/// The hotline's routes that only read.
pub(super) fn reads() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/reports/{id}", get(report))
        .route("/v1/review/groups", get(pending_groups))
        .route("/v1/review/groups/{group}", get(group))
        .route("/v1/items/{item}", get(item))
}

/// The hotline's routes that write: reports, verdicts and splits, carried through once their
/// body has arrived.
pub(super) fn writes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/reports", post(submit_url))
        .route("/v1/reports/content", post(submit_content))
        .route("/v1/review/groups/{group}/verdict", post(assess_group))
        .route("/v1/review/groups/{group}/split", post(split_group))
        .route("/v1/review/groups/{group}/reopen", post(reopen))
        .route("/v1/items/{item}/verdict", post(assess_item))
}

/// Pending groups listed at most per page.
const MAX_PAGE: usize = 500;
/// Reports of a group's members listed with it.
const REPORTS_SHOWN: usize = 10;
/// Members of a group whose items are listed with it.
const MEMBERS_SHOWN: usize = 1000;
/// The longest category name and note.
const MAX_CATEGORY: usize = 64;
const MAX_NOTE: usize = 4096;

pub(super) fn verdict_memory(state: &AppState) -> Result<Arc<VerdictMemory>, Problem> {
    state.verdict_memory.clone().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no-triage",
            "this daemon holds no verdict memory (set [triage] store on the one that should)",
        )
    })
}

impl From<TriageError> for Problem {
    fn from(err: TriageError) -> Problem {
        let detail = err.to_string();
        match err {
            TriageError::UnknownReport(_)
            | TriageError::UnknownItem(_)
            | TriageError::UnknownGroup(_)
            | TriageError::UnknownCase(_) => Problem::new(StatusCode::NOT_FOUND, "not-found", detail),
            TriageError::CaseNotActive { .. } => {
                Problem::new(StatusCode::CONFLICT, "case-not-active", detail)
            }
            TriageError::GroupNotPending(_) => Problem::new(StatusCode::CONFLICT, "not-pending", detail),
            TriageError::CannotReopen { .. } => Problem::new(StatusCode::CONFLICT, "cannot-reopen", detail),
            TriageError::ReportIdReused { .. } => {
                Problem::new(StatusCode::CONFLICT, "report-id-reused", detail)
            }
            TriageError::NotInGroup { .. } | TriageError::BadSplit { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-split", detail)
            }
            TriageError::PreferencesTooLarge { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-preferences", detail)
            }
            TriageError::EmptyReportId | TriageError::NoDigest { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-report", detail)
            }
            other => Problem::internal("the triage store", &other),
        }
    }
}

/// A number in the path, or a problem saying it is not one.
pub(super) fn number(path: Result<Path<u64>, PathRejection>) -> Result<u64, Problem> {
    path.map(|Path(number)| number)
        .map_err(|err| Problem::new(StatusCode::BAD_REQUEST, "bad-path", err.body_text()))
}

/// A report as posted: a URL to fetch.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlReport {
    id: String,
    url: String,
    #[serde(default)]
    source: Option<String>,
    /// When the report was made, if earlier than now (milliseconds since the epoch).
    #[serde(default)]
    reported_ms: Option<u64>,
}

/// A report of content: who reported it, the body is the content.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContentReport {
    id: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    reported_ms: Option<u64>,
}

#[derive(Serialize)]
struct SubmitAnswer {
    report_id: String,
    #[serde(flatten)]
    outcome: Disposition,
    size: u64,
    hashes: QueryHashes,
    #[serde(skip_serializing_if = "Option::is_none")]
    final_url: Option<String>,
}

fn checked_report(id: String, source: String, reported_ms: Option<u64>) -> Result<Report, Problem> {
    if !valid_report_id(&id) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-report",
            "a report id is 1 to 200 printable ASCII characters",
        ));
    }
    if source.len() > 2048 {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-report", "the source is too long"));
    }
    let reported_ms = reported_ms.unwrap_or_else(hashsieve_core::clock::now_ms);
    Ok(Report { id, source, reported_ms, location: None })
}

/// Why a reported URL was not fetched: the URL's fault (422) or the far end's (502).
fn fetch_problem(err: FetchError) -> Problem {
    let detail = format!("fetch: {err}");
    match err {
        FetchError::BadUrl { .. }
        | FetchError::UnsupportedScheme { .. }
        | FetchError::PortNotAllowed { .. }
        | FetchError::Forbidden { .. }
        | FetchError::BadRedirect { .. }
        | FetchError::TooManyRedirects { .. }
        | FetchError::TooLarge { .. }
        | FetchError::ContentType { .. } => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "url-refused", detail)
        }
        _ => Problem::new(StatusCode::BAD_GATEWAY, "fetch-failed", detail),
    }
}

async fn submit_url(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Report)?;
    let memory = verdict_memory(&state)?;
    let posted: UrlReport = parse_json(&read_body(body, state.limits.max_body_bytes, deadline).await?)?;
    // The URL is where an analyst will look: it is the report's source.
    let report = checked_report(posted.id, posted.url.clone(), posted.reported_ms)?;
    let fetched = memory.fetcher().fetch(&posted.url).await.map_err(|err| {
        tracing::info!(report = report.id, error = %err, "report not fetched");
        fetch_problem(err)
    })?;
    let final_url = Some(fetched.final_url.to_string());
    let report = Report { location: memory.locate(&posted.url, Some(FetchedAt::of(&fetched))), ..report };
    let answer = decide(&state, memory, report, fetched.body.to_vec(), final_url).await?;
    tracing::info!(target: "audit", client = %peer, token = token.unwrap_or("-"), report = answer.report_id,
        source = posted.source.as_deref().unwrap_or("-"), outcome = outcome_name(&answer.outcome),
        why = why(&answer.outcome), "report");
    Ok(json(&answer))
}

async fn submit_content(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Deadline>,
    query: Result<Query<ContentReport>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Report)?;
    let memory = verdict_memory(&state)?;
    let Query(query) =
        query.map_err(|err| Problem::new(StatusCode::BAD_REQUEST, "bad-query", err.body_text()))?;
    let report = checked_report(query.id, query.source.unwrap_or_default(), query.reported_ms)?;
    let content = read_content(&headers, body, state.limits.max_body_bytes, deadline).await?;
    let answer = decide(&state, memory, report, content.to_vec(), None).await?;
    tracing::info!(target: "audit", client = %peer, token = token.unwrap_or("-"), report = answer.report_id,
        outcome = outcome_name(&answer.outcome), why = why(&answer.outcome), "report");
    Ok(json(&answer))
}

/// Why a report was decided so, for the audit line: each list match (with the copy it came
/// through and how it was recognised), the assessed item it inherited from, or its group.
fn why(outcome: &Disposition) -> String {
    match outcome {
        Disposition::Known { matches } => matches
            .iter()
            .map(|found| {
                let mut said = format!("list {} {} distance {}", found.list, found.kind, found.distance);
                if let Some(via) = &found.via {
                    said += &format!(
                        " via report {} by {} (own pdq distance {}",
                        via.report,
                        via.how.as_str(),
                        via.pdq_distance
                    );
                    if let Some(alignment) = &via.alignment {
                        said += &format!(", {} agreeing keypoints", alignment.agreeing);
                    }
                    said += ")";
                } else if let Some(report) = &found.via_report {
                    said += &format!(" via report {report}");
                }
                said
            })
            .collect::<Vec<_>>()
            .join("; "),
        Disposition::PreviouslyAssessed { item, how, distance, .. } => {
            format!("item {} by {} distance {distance}", item.0, how.as_str())
        }
        Disposition::New { group, .. } => format!("group {}", group.0),
    }
}

fn outcome_name(outcome: &Disposition) -> &'static str {
    match outcome {
        Disposition::Known { .. } => "known",
        Disposition::PreviouslyAssessed { .. } => "previously_assessed",
        Disposition::New { .. } => "new",
    }
}

/// Hashes reported content within the shared hashing slots and records the report (a write:
/// carried through once begun).
async fn decide(
    state: &AppState,
    memory: Arc<VerdictMemory>,
    report: Report,
    content: Vec<u8>,
    final_url: Option<String>,
) -> Result<SubmitAnswer, Problem> {
    let matcher = state.matcher.load_full();
    let options = report_options(&matcher);
    let slot = state.slots.try_take(Signals::decode_memory(&content, &options))?;
    let report_id = report.id.clone();
    let content: Arc<[u8]> = content.into();
    let hashed = Arc::clone(&content);
    let (outcome, signals) = slot
        .run(None, move || {
            let signals = Signals::from_bytes(&hashed, &options);
            (memory.submit(&matcher, &report, &signals), signals)
        })
        .await?;
    // Content that awaits a person is held for the review page, in memory only.
    if let (Some(cache), Ok(Disposition::New { item, .. })) = (&state.held_content, &outcome) {
        cache.put(*item, content);
    }
    state.rechecks.notify_one();
    state.notices.notify_one();
    state.block_list_changed.notify_one();
    Ok(SubmitAnswer {
        report_id,
        outcome: outcome?,
        size: signals.size,
        hashes: QueryHashes::of(&signals),
        final_url,
    })
}

/// Runs `work` on the store, shared (reads, and the takedown cases' writes), on the blocking
/// pool.
pub(super) async fn with_store<T: Send + 'static>(
    memory: Arc<VerdictMemory>,
    work: impl FnOnce(&Triage, &VerdictMemory) -> Result<T, TriageError> + Send + 'static,
) -> Result<T, Problem> {
    Ok(blocking(move || work(&memory.store(), &memory)).await??)
}

/// Runs `work` on the store alone (verdicts, group changes), on the blocking pool.
pub(super) async fn with_store_mut<T: Send + 'static>(
    memory: Arc<VerdictMemory>,
    work: impl FnOnce(&mut Triage, &VerdictMemory) -> Result<T, TriageError> + Send + 'static,
) -> Result<T, Problem> {
    Ok(blocking(move || work(&mut memory.store_mut(), &memory)).await??)
}

#[derive(Serialize)]
struct ReportAnswer {
    report: ReportRecord,
    history: Vec<Event>,
}

async fn report(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers, Role::Review)?;
    let answer = with_store(verdict_memory(&state)?, move |store, _| {
        Ok(ReportAnswer { report: store.report(&id)?, history: store.history(HistoryOf::Report(&id))? })
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

/// A report of a member: where to find it.
#[derive(Serialize)]
struct ReportRef {
    id: String,
    source: String,
    item: ItemId,
    reported_ms: u64,
}

#[derive(Serialize)]
struct PendingGroup {
    group: GroupId,
    members: usize,
    oldest_report_ms: u64,
    representative: Item,
    /// The reports of every member, the earliest first, [`REPORTS_SHOWN`] at most …
    reports: Vec<ReportRef>,
    /// … of this many.
    reports_total: usize,
}

#[derive(Serialize)]
struct GroupPageAnswer {
    groups: Vec<PendingGroup>,
    next: Option<GroupId>,
    pending: u64,
}

async fn pending_groups(
    State(state): State<Arc<AppState>>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers, Role::Review)?;
    let Query(query) =
        query.map_err(|err| Problem::new(StatusCode::BAD_REQUEST, "bad-query", err.body_text()))?;
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let after = query.after.map(GroupId);
    let answer = with_store(verdict_memory(&state)?, move |store, _| {
        let page = store.pending_groups(limit, after)?;
        let mut groups = Vec::with_capacity(page.groups.len());
        for summary in page.groups {
            let shown = store.group_reports(summary.group, REPORTS_SHOWN)?;
            let reports = shown
                .reports
                .into_iter()
                .map(|report| ReportRef {
                    id: report.id,
                    source: report.source,
                    item: report.item,
                    reported_ms: report.reported_ms,
                })
                .collect();
            groups.push(PendingGroup {
                group: summary.group,
                members: summary.members,
                oldest_report_ms: summary.oldest_report_ms,
                representative: store.item(summary.representative)?,
                reports,
                reports_total: shown.total,
            });
        }
        Ok(GroupPageAnswer { groups, next: page.next, pending: store.counts()?.pending_groups })
    })
    .await?;
    Ok(json(&answer))
}

#[derive(Serialize)]
struct GroupAnswer {
    group: Group,
    items: Vec<Item>,
}

async fn group(
    State(state): State<Arc<AppState>>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers, Role::Review)?;
    let id = number(id)?;
    let answer = with_store(verdict_memory(&state)?, move |store, _| {
        let group = store.group(GroupId(id))?;
        let items = group
            .members
            .iter()
            .take(MEMBERS_SHOWN)
            .map(|&member| store.item(member))
            .collect::<Result<_, _>>()?;
        Ok(GroupAnswer { group, items })
    })
    .await?;
    Ok(json(&answer))
}

/// A verdict as posted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictRequest {
    kind: VerdictName,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    note: Option<String>,
    /// The analyst's name, recorded after the token's id (for a review tool that uses one token
    /// for its users).
    #[serde(default)]
    analyst: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum VerdictName {
    Illegal,
    Legal,
    Unclear,
}

impl VerdictRequest {
    /// The verdict, the analyst's name and the note, checked.
    fn checked(self, token: Option<&str>) -> Result<(VerdictKind, String, Option<String>), Problem> {
        let invalid = |detail: &str| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-verdict", detail);
        let kind = match (self.kind, self.category) {
            (VerdictName::Illegal, Some(category))
                if !category.trim().is_empty() && category.len() <= MAX_CATEGORY =>
            {
                VerdictKind::Illegal { category }
            }
            (VerdictName::Illegal, _) => {
                return Err(invalid("an illegal verdict needs a category of 1 to 64 characters"));
            }
            (VerdictName::Legal | VerdictName::Unclear, Some(_)) => {
                return Err(invalid("only an illegal verdict has a category"));
            }
            (VerdictName::Legal, None) => VerdictKind::Legal,
            (VerdictName::Unclear, None) => VerdictKind::Unclear,
        };
        if self.note.as_ref().is_some_and(|note| note.len() > MAX_NOTE)
            || self.analyst.as_ref().is_some_and(|name| name.len() > MAX_CATEGORY)
        {
            return Err(invalid("the note is at most 4096 bytes, the analyst's name 64"));
        }
        Ok((kind, actor(token.unwrap_or("-"), self.analyst), self.note))
    }
}

#[derive(Serialize)]
struct ExportedJson {
    item: ItemId,
    category: Option<String>,
}

#[derive(Serialize)]
struct ExportAnswer {
    exported: Vec<ExportedJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    export_error: Option<String>,
}

impl From<Exported> for ExportAnswer {
    fn from(exported: Exported) -> ExportAnswer {
        let item = |ExportedItem { item, category }| ExportedJson { item, category };
        ExportAnswer {
            exported: exported.items.into_iter().map(item).collect(),
            export_error: exported.error,
        }
    }
}

#[derive(Serialize)]
struct GroupVerdictAnswer {
    group: GroupId,
    items: Vec<ItemId>,
    #[serde(flatten)]
    export: ExportAnswer,
}

/// What a verdict is given to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Judged {
    Group(GroupId),
    Item(ItemId),
}

/// Reads and checks a verdict posted to the JSON API, and records it on `target`.
async fn judge(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
    deadline: Deadline,
    target: Judged,
) -> Result<(Vec<ItemId>, ExportAnswer), Problem> {
    let token = authorize(state, headers, Role::Review)?;
    let request: VerdictRequest = parse_json(&read_body(body, state.limits.max_body_bytes, deadline).await?)?;
    let (verdict, analyst, note) = request.checked(token)?;
    let (items, exported) = record_verdict(state, peer, target, verdict, analyst, note).await?;
    Ok((items, exported.into()))
}

/// Records a checked verdict on `target` and exports what it owes the export list: the items
/// judged, and the export. The one way a verdict is given, by the JSON API and the review page
/// alike.
pub(super) async fn record_verdict(
    state: &AppState,
    peer: SocketAddr,
    target: Judged,
    verdict: VerdictKind,
    analyst: String,
    note: Option<String>,
) -> Result<(Vec<ItemId>, Exported), Problem> {
    let matcher = state.matcher.load_full();
    let audited = (format!("{verdict:?}"), analyst.clone());
    let (items, exported) = with_store_mut(verdict_memory(state)?, move |store, memory| {
        let items = match target {
            Judged::Group(group) => store.assess_group(group, verdict, &analyst, note.as_deref())?,
            Judged::Item(item) => {
                store.assess_item(item, verdict, &analyst, note.as_deref())?;
                vec![item]
            }
        };
        Ok((items, memory.export(store, &matcher)))
    })
    .await?;
    // A verdict may have opened takedown cases, with checks due sooner than the scheduler's
    // next look.
    state.rechecks.notify_one();
    state.notices.notify_one();
    tracing::info!(target: "audit", client = %peer, analyst = audited.1, judged = ?target, items = items.len(),
        verdict = audited.0, exported = exported.items.len(), "verdict");
    Ok((items, exported))
}

/// Takes back a group's verdict (see [`Triage::reopen_group`]) and withdraws its export: the
/// members, and the export. The JSON API's reopen and the page's undo.
pub(super) async fn reopen_group(
    state: &AppState,
    peer: SocketAddr,
    group: GroupId,
    analyst: String,
    note: String,
) -> Result<(Vec<ItemId>, Exported), Problem> {
    let matcher = state.matcher.load_full();
    let audited = (analyst.clone(), note.clone());
    let (items, exported) = with_store_mut(verdict_memory(state)?, move |store, memory| {
        let items = store.reopen_group(group, &analyst, &note)?;
        Ok((items, memory.export(store, &matcher)))
    })
    .await?;
    // Cases were closed, and the block list may have lost URLs.
    state.block_list_changed.notify_one();
    tracing::info!(target: "audit", client = %peer, analyst = audited.0, group = group.0, items = items.len(),
        note = audited.1, exported = exported.items.len(), "reopen");
    Ok((items, exported))
}

/// Moves `items` out of `group` into a new group of their own: the new group.
pub(super) async fn record_split(
    state: &AppState,
    peer: SocketAddr,
    group: GroupId,
    items: Vec<ItemId>,
    analyst: &str,
) -> Result<GroupId, Problem> {
    let new_group =
        with_store_mut(verdict_memory(state)?, move |store, _| store.split_group(group, &items)).await?;
    tracing::info!(target: "audit", client = %peer, analyst, group = group.0, new_group = new_group.0, "split");
    Ok(new_group)
}

async fn assess_group(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Deadline>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let group = GroupId(number(id)?);
    let (items, export) = judge(&state, peer, &headers, body, deadline, Judged::Group(group)).await?;
    Ok(json(&GroupVerdictAnswer { group, items, export }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitRequest {
    items: Vec<ItemId>,
}

#[derive(Serialize)]
struct SplitAnswer {
    group: GroupId,
    new_group: GroupId,
}

async fn split_group(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Deadline>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Review)?;
    let id = number(id)?;
    let request: SplitRequest = parse_json(&read_body(body, state.limits.max_body_bytes, deadline).await?)?;
    let group = GroupId(id);
    let new_group = record_split(&state, peer, group, request.items, token.unwrap_or("-")).await?;
    Ok(json(&SplitAnswer { group, new_group }))
}

/// A reopening as posted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReopenRequest {
    note: String,
    /// The analyst's name, recorded after the token's id.
    #[serde(default)]
    analyst: Option<String>,
}

async fn reopen(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Deadline>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Review)?;
    let group = GroupId(number(id)?);
    let request: ReopenRequest = parse_json(&read_body(body, state.limits.max_body_bytes, deadline).await?)?;
    if request.note.trim().is_empty()
        || request.note.len() > MAX_NOTE
        || request.analyst.as_ref().is_some_and(|name| name.len() > MAX_CATEGORY)
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-reopen",
            "a note of 1 to 4096 bytes saying why is needed; the analyst's name is at most 64",
        ));
    }
    let analyst = actor(token.unwrap_or("-"), request.analyst);
    let (items, exported) = reopen_group(&state, peer, group, analyst, request.note).await?;
    Ok(json(&GroupVerdictAnswer { group, items, export: exported.into() }))
}

#[derive(Serialize)]
struct ItemAnswer {
    item: Item,
    reports: Vec<String>,
    history: Vec<Event>,
}

async fn item(
    State(state): State<Arc<AppState>>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers, Role::Review)?;
    let id = number(id)?;
    let id = ItemId(id);
    let answer = with_store(verdict_memory(&state)?, move |store, _| {
        Ok(ItemAnswer {
            item: store.item(id)?,
            reports: store.reports_of(id)?,
            history: store.history(HistoryOf::Item(id))?,
        })
    })
    .await?;
    Ok(json(&answer))
}

#[derive(Serialize)]
struct ItemVerdictAnswer {
    item: ItemId,
    #[serde(flatten)]
    export: ExportAnswer,
}

async fn assess_item(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Deadline>,
    id: Result<Path<u64>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let item = ItemId(number(id)?);
    let (_, export) = judge(&state, peer, &headers, body, deadline, Judged::Item(item)).await?;
    Ok(json(&ItemVerdictAnswer { item, export }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::Request;
    use hashsieve_core::index::IndexBuilder;
    use hashsieve_core::matcher::Matcher;
    use sha2::{Digest, Sha256};
    use tower::ServiceExt;

    use super::*;
    use crate::config::{Config, TokenConfig};

    /// A write whose body has arrived is carried through and answered, however long it waits:
    /// a client told 408 would retry a write that then lands anyway.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_verdict_whose_body_has_arrived_is_answered_not_timed_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_index("unused".into());
        config.limits.request_timeout_secs = 1;
        config.triage.store = Some(dir.path().join("triage.redb"));
        let token = hex::encode(Sha256::digest(b"analyst-token"));
        config.tokens = vec![TokenConfig::new("analyst", &token, &[Role::Review])];
        let matcher = Matcher::from_bytes(IndexBuilder::new().to_vec()).unwrap();
        let memory = VerdictMemory::open(&config, &matcher).unwrap().unwrap();
        let report = Report { id: "r-1".into(), source: "test".into(), reported_ms: 1, location: None };
        let signals = Signals::from_bytes(b"reported bytes", &report_options(&matcher));
        let Disposition::New { item, group, .. } = memory.submit(&matcher, &report, &signals).unwrap() else {
            panic!("a new report opens a review group")
        };
        let state = Arc::new(AppState::new(matcher, &config).with_verdict_memory(Some(memory)));
        let router = super::super::router(Arc::clone(&state));

        // The store is busy for twice the request deadline (another analyst's write, say).
        let (locked, is_locked) = std::sync::mpsc::channel();
        let memory = state.verdict_memory.clone().unwrap();
        let busy = std::thread::spawn(move || {
            let _store = memory.store();
            locked.send(std::time::Instant::now()).unwrap();
            std::thread::sleep(Duration::from_secs(2));
        });
        // The store is free 2 s after this instant, not before.
        let held_from = is_locked.recv().unwrap();
        let request = Request::post(format!("/v1/review/groups/{}/verdict", group.0))
            .header("authorization", "Bearer analyst-token")
            .extension(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))))
            .body(Body::from(r#"{"kind": "legal"}"#))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "answered once written, not 408");
        assert!(held_from.elapsed() >= Duration::from_secs(2), "it waited for the store");
        busy.join().unwrap();

        // Written once: one verdict in the item's history.
        let memory = state.verdict_memory.clone().unwrap();
        let store = memory.store();
        let events = store.history(HistoryOf::Item(item)).unwrap();
        let verdicts = events.iter().filter(|event| format!("{event:?}").contains("Legal")).count();
        assert_eq!(verdicts, 1, "{events:?}");
    }
}
