//! Errors as `application/problem+json` (RFC 9457). A server fault is logged with its detail
//! and answered without it: the detail of a failed write can name the server's files.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hashsieve_core::index::dir::IndexDirError;
use serde::Serialize;

use crate::slots::{Busy, HashingError};

/// An error answer.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    detail: String,
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem of `status`, named by `slug` (its type URI's last part), with `detail` for the
    /// client.
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, slug, detail: detail.into(), retry_after: None }
    }

    /// What it tells the client.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// 503 with `Retry-After: 1`.
    pub fn busy(detail: &str) -> Problem {
        Problem { retry_after: Some(1), ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", detail) }
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(wait_secs: u64) -> Problem {
        Problem {
            retry_after: Some(wait_secs),
            ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "the token is over its rate limit")
        }
    }

    /// 408: the client did not send its request within the request timeout.
    pub fn timeout() -> Problem {
        Problem::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request took longer than the limit")
    }

    /// 500 for a fault of the server's: `what` failed, and why is logged, not answered.
    pub fn internal(what: &'static str, error: &dyn std::fmt::Display) -> Problem {
        tracing::error!(error = %error, "{what} failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what} failed; the server's log says why"),
        )
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        self.status
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

impl From<Busy> for Problem {
    fn from(busy: Busy) -> Problem {
        Problem::busy(&busy.to_string())
    }
}

impl From<HashingError> for Problem {
    fn from(err: HashingError) -> Problem {
        match err {
            HashingError::Late => Problem::timeout(),
            HashingError::Failed => Problem::internal("hashing", &err),
        }
    }
}

impl From<IndexDirError> for Problem {
    fn from(err: IndexDirError) -> Problem {
        match err {
            IndexDirError::Change(change) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-change", change.to_string())
            }
            IndexDirError::ReadOnly => Problem::new(
                StatusCode::CONFLICT,
                "read-only",
                "the index is served read-only; set `writable = true` to change lists",
            ),
            other => Problem::internal("the index write", &other),
        }
    }
}
