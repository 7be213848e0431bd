//! `POST /v1/match/content` and `POST /v1/match/hashes`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hashsieve_core::hashes::HashKind;
use hashsieve_core::matcher::MatchVerdict;
use hashsieve_core::signals::Signals;
use serde::{Deserialize, Serialize};

use super::extract::{Deadline, authorize, json, parse_json, read_body, read_content};
use super::problem::Problem;
use crate::config::Role;
use crate::state::AppState;
use crate::verdict::{Asker, QueryHashes, audit, audit_lookups};

#[derive(Serialize)]
struct ContentAnswer {
    #[serde(flatten)]
    verdict: MatchVerdict,
    size: u64,
    hashes: QueryHashes,
}

pub(super) async fn match_content(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Match)?;
    let bytes = read_content(&headers, body, state.limits.max_body_bytes, deadline).await?;
    let matcher = state.matcher.load_full();
    let options = matcher.signal_options();
    let slot = state.slots.try_take(Signals::decode_memory(&bytes, &options))?;
    let (verdict, signals) = slot
        .run(Some(deadline.0), move || {
            let signals = Signals::from_bytes(&bytes, &options);
            (matcher.check_signals(&signals), signals)
        })
        .await?;
    state.metrics.matched("http", &verdict);
    let client = peer.to_string();
    audit(
        Asker { protocol: "http", client: &client, token, action: "content", report: None },
        &verdict,
        &signals,
        None,
    );
    Ok(json(&ContentAnswer { verdict, size: signals.size, hashes: QueryHashes::of(&signals) }))
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
    verdict: MatchVerdict,
}

/// A hash value as sent: exactly its digits, nothing around them (whatever surrounds them
/// would be echoed in the answer and the audit line).
fn checked_value(kind: HashKind, value: &str) -> Result<Vec<u8>, String> {
    if value.trim() != value {
        return Err("whitespace around the value".into());
    }
    kind.parse_value(value).map_err(|err| err.to_string())
}

/// Exact lookups answered on the runtime's thread: each is a probe of a sorted table, about a
/// microsecond, so this many take well under the ~100 µs a task may run between awaits, and
/// handing them to the blocking pool would cost more than the lookups (measured: half the
/// requests per second for one MD5 a request).
const QUICK_EXACT_LOOKUPS: usize = 100;

/// Whether a lookup request is cheap enough to answer without leaving the runtime's thread.
fn is_quick(lookups: &[(HashKind, Vec<u8>, String)]) -> bool {
    lookups.len() <= QUICK_EXACT_LOOKUPS && lookups.iter().all(|(kind, ..)| kind.is_exact())
}

pub(super) async fn match_hashes(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Match)?;
    let bytes = read_body(body, state.limits.max_body_bytes, deadline).await?;
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
        let value = checked_value(hash.kind, &hash.value).map_err(|err| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-hash", format!("hashes[{i}]: {err}"))
        })?;
        parsed.push((hash.kind, value, hash.value));
    }
    let quick = is_quick(&parsed);
    let matcher = state.matcher.load_full();
    let check = move || -> Vec<HashAnswer> {
        parsed
            .into_iter()
            .map(|(kind, value, text)| HashAnswer {
                kind,
                verdict: matcher.check_hash(kind, &value),
                value: text,
            })
            .collect()
    };
    let results = if quick {
        check()
    } else {
        // Thousands of near searches in a large index take a worker for hundreds of
        // milliseconds: on the blocking pool, under a slot, never on the runtime's threads.
        state.slots.try_take(0)?.run(Some(deadline.0), check).await?
    };
    for result in &results {
        state.metrics.matched("http", &result.verdict);
    }
    let client = peer.to_string();
    audit_lookups(
        Asker { protocol: "http", client: &client, token, action: "hashes", report: None },
        results.iter().map(|result| (result.kind.name(), result.value.as_str(), &result.verdict)),
    );
    Ok(json(&HashResults { results }))
}
