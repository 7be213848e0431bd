//! What handlers take from a request: the token's permission, the body within its size limit
//! and the request's deadline, JSON; and the JSON they answer with.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use super::problem::Problem;
use crate::auth::Denied;
use crate::config::Role;
use crate::state::AppState;

/// When the request must have been read and, unless it writes, answered: set on arrival,
/// `limits.request_timeout_secs` later.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

/// The token's id if it has `role`; an open daemon (no tokens) lets anyone match.
pub fn authorize<'a>(
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
        Err(Denied::RateLimited(wait)) => {
            Err(Problem::rate_limited(wait.as_secs_f64().ceil().max(1.0) as u64))
        }
    }
}

fn too_large(limit: u64) -> Problem {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", format!("the body exceeds {limit} bytes"))
}

/// The whole body, at most `limit` bytes, read before `deadline`. A declared length over the
/// limit is refused before a byte of the body is read.
pub async fn read_body(body: Body, limit: u64, deadline: Deadline) -> Result<Bytes, Problem> {
    if body.size_hint().lower() > limit {
        return Err(too_large(limit));
    }
    let read = async {
        let mut body = body;
        let mut collected = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| {
                Problem::new(StatusCode::BAD_REQUEST, "bad-body", format!("reading the body failed: {err}"))
            })?;
            if let Ok(data) = frame.into_data() {
                if (collected.len() + data.len()) as u64 > limit {
                    return Err(too_large(limit));
                }
                collected.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(collected))
    };
    tokio::time::timeout_at(deadline.0.into(), read).await.map_err(|_| Problem::timeout())?
}

/// The content of a request: the body itself, or, for `multipart/form-data` (an HTML form's
/// upload), its file part — the first part with a file name or named `file`.
pub async fn read_content(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    deadline: Deadline,
) -> Result<Bytes, Problem> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Ok(boundary) = multer::parse_boundary(content_type) else {
        return read_body(body, limit, deadline).await;
    };
    if body.size_hint().lower() > limit {
        return Err(too_large(limit));
    }
    let problem = |err: multer::Error| match err {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(limit)
        }
        other => Problem::new(StatusCode::BAD_REQUEST, "bad-multipart", other.to_string()),
    };
    let read = async {
        let constraints = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
        let mut form = multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
        while let Some(field) = form.next_field().await.map_err(problem)? {
            if field.file_name().is_some() || field.name() == Some("file") {
                return field.bytes().await.map_err(problem);
            }
        }
        Err(Problem::new(StatusCode::BAD_REQUEST, "no-file", "the form has no file part"))
    };
    tokio::time::timeout_at(deadline.0.into(), read).await.map_err(|_| Problem::timeout())?
}

/// `bytes` as JSON of `T`, or 400.
pub fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes)
        .map_err(|err| Problem::new(StatusCode::BAD_REQUEST, "bad-json", err.to_string()))
}

/// `value` answered as JSON.
pub fn json<T: Serialize>(value: &T) -> Response {
    let mut response = serde_json::to_string(value).unwrap_or_default().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Runs `work` on the blocking pool (index writes, the triage store) and waits for it.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Problem> {
    tokio::task::spawn_blocking(work).await.map_err(|err| Problem::internal("a worker", &err))
}

/// The actor recorded for a change: the token's id, and the caller's own name for it if given.
pub fn actor(token: &str, given: Option<String>) -> String {
    match given {
        Some(given) => format!("{token}/{given}"),
        None => token.to_string(),
    }
}
