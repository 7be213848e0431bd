//! The admin's list routes: change batches, allow-list entries, a list sent whole, and
//! compaction. Each is a write: once its body has arrived it is carried through and answered,
//! however long the write takes (see the [module](super) on deadlines).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hashsieve_core::delta::ChangeJson;
use hashsieve_core::delta::Refreshed;
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::{ImportedEntry, Mode, import_csv, import_lines, import_vics};
use hashsieve_core::index::{ListOptions, ListRole};
use serde::{Deserialize, Serialize};

use super::extract::{Deadline, actor, authorize, blocking, json, parse_json, read_body};
use super::problem::Problem;
use crate::config::Role;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeRequest {
    changes: Vec<ChangeJson>,
    #[serde(default)]
    actor: Option<String>,
}

pub(super) async fn changes(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Admin)?.unwrap_or("-").to_string();
    let bytes = read_body(body, state.limits.max_body_bytes, deadline).await?;
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

pub(super) async fn compact(
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

pub(super) async fn allow(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Admin)?.unwrap_or("-").to_string();
    let request: AllowRequest = parse_json(&read_body(body, state.limits.max_body_bytes, deadline).await?)?;
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
pub(super) struct RefreshQuery {
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

pub(super) async fn refresh(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Deadline>,
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
    let bytes = read_body(body, state.limits.max_list_bytes, deadline).await?;
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
        let existing = matcher.current().view(|view| view.delta.list(&name).map(|list| list.options()));
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
