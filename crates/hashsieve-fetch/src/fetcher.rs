//! [`Fetcher`]: one GET per URL, redirects followed by hand so that each hop is checked
//! before it is connected to, and the response held to the policy's limits before and while
//! its body is read.
//!
//! Each hop is its own connection (`Connection: close`), made by the
//! [`Connector`](crate::connect) to the addresses the hop's checks returned, and spoken over
//! with hyper's client connection API. There is no pool to hand a connection made for one
//! host to a request for another.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_util::task::AbortOnDropHandle;
use url::{Position, Url};

use crate::connect::Connector;
use crate::error::{FetchError, PolicyError, TimeoutStage};
use crate::policy::FetchPolicy;
use crate::resolve::{Resolve, SystemResolver};
use crate::target::{Target, TargetRules};

/// Fetches reported URLs under a [`FetchPolicy`]. Cheap to share: wrap it in an `Arc` and
/// call [`fetch`](Fetcher::fetch) from as many tasks as needed.
pub struct Fetcher<R = SystemResolver> {
    policy: FetchPolicy,
    resolver: R,
    rules: TargetRules,
    connector: Connector,
    content_types: Vec<MediaRange>,
    user_agent: HeaderValue,
    accept: HeaderValue,
}

/// A successful fetch: a 2xx response of an allowed type, its body complete and within the
/// limit.
///
/// Its `Debug` shows the body's length only, so that logging a `Fetched` cannot log content.
pub struct Fetched {
    /// The URL as given, parsed and normalised.
    pub url: Url,
    /// The URL the body came from, after redirects.
    pub final_url: Url,
    /// The final response's status (2xx).
    pub status: StatusCode,
    /// The final response's `Content-Type`, as sent.
    pub content_type: Option<String>,
    /// The body, in memory only.
    pub body: Bytes,
    /// Each redirect's target in order; the last is `final_url`.
    pub redirects: Vec<Url>,
    /// The address connected to for the final response. Through a proxy, the checked address
    /// the proxy was asked to connect to.
    pub remote: SocketAddr,
    /// Every address the final URL's host resolved to (checked, in the resolver's order): a
    /// hotline records where content was hosted, and a host behind several addresses may be
    /// in several networks.
    pub addresses: Vec<IpAddr>,
}

/// The answer to a [`Fetcher::post`].
#[derive(Debug, Clone, Copy)]
pub struct Posted {
    /// Its status.
    pub status: StatusCode,
    /// The address connected to.
    pub remote: SocketAddr,
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("url", &self.url.as_str())
            .field("final_url", &self.final_url.as_str())
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_bytes", &self.body.len())
            .field("redirects", &self.redirects.len())
            .field("remote", &self.remote)
            .field("addresses", &self.addresses)
            .finish()
    }
}

impl Fetcher<SystemResolver> {
    /// A fetcher that resolves names with the operating system's resolver.
    pub fn new(policy: FetchPolicy) -> Result<Fetcher, PolicyError> {
        Fetcher::with_resolver(policy, SystemResolver)
    }
}

impl<R: Resolve> Fetcher<R> {
    /// A fetcher that resolves names with `resolver` (tests, a hotline's own DNS).
    pub fn with_resolver(policy: FetchPolicy, resolver: R) -> Result<Fetcher<R>, PolicyError> {
        let invalid = |reason: String| PolicyError::Invalid(reason);
        for (name, value) in [
            ("connect_timeout_ms", policy.connect_timeout_ms),
            ("response_headers_timeout_ms", policy.response_headers_timeout_ms),
            ("total_timeout_ms", policy.total_timeout_ms),
            ("max_response_bytes", policy.max_response_bytes),
        ] {
            if value == 0 {
                return Err(invalid(format!("{name} must be above 0")));
            }
        }
        if policy.content_types.is_empty() {
            return Err(invalid("content_types is empty: nothing could be fetched".into()));
        }
        let content_types = policy
            .content_types
            .iter()
            .map(|text| MediaRange::parse(text).ok_or_else(|| invalid(format!("content type {text:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let accept = HeaderValue::try_from(policy.content_types.join(", "))
            .map_err(|_| invalid("content_types do not make an Accept header".into()))?;
        let user_agent = HeaderValue::try_from(policy.user_agent.as_str())
            .map_err(|_| invalid(format!("user_agent {:?} is not a header value", policy.user_agent)))?;
        Ok(Fetcher {
            rules: TargetRules::new(&policy)?,
            connector: Connector::new(&policy)?,
            content_types,
            user_agent,
            accept,
            resolver,
            policy,
        })
    }

    /// The policy this fetcher applies.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Fetches `url`: checks it, follows redirects (checking each), and returns the body of a
    /// 2xx response of an allowed content type. Anything else is an error, and no response
    /// body but the final one is read.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        let limit = self.policy.total_timeout();
        tokio::time::timeout(limit, self.fetch_without_deadline(url))
            .await
            .map_err(|_| FetchError::Timeout { stage: TimeoutStage::Total, limit })?
    }

    /// Posts `body` to `url` under the same checks (the address, the port, the proxy, TLS,
    /// the overall timeout) and returns the status of the answer, whose body is not read.
    /// Redirects are not followed: a POST is not repeated elsewhere unasked, so a 3xx is
    /// returned as it is. For webhooks a hotline configures (notices to hosting providers):
    /// put their hosts in the policy's `allow_hosts` if they are on a private network.
    pub async fn post(&self, url: &str, content_type: &str, body: Bytes) -> Result<Posted, FetchError> {
        let limit = self.policy.total_timeout();
        let post = async {
            let url = Url::parse(url)
                .map_err(|error| FetchError::BadUrl { reason: error.to_string(), via_redirect: false })?;
            let target = self.rules.check(&url, &self.resolver, &self.policy, false).await?;
            let request = self.request(Method::POST, &url, false, body, Some(content_type))?;
            let exchange = self.exchange(request, &target).await?;
            Ok(Posted { status: exchange.response.status(), remote: exchange.remote })
        };
        tokio::time::timeout(limit, post)
            .await
            .map_err(|_| FetchError::Timeout { stage: TimeoutStage::Total, limit })?
    }

    async fn fetch_without_deadline(&self, reported: &str) -> Result<Fetched, FetchError> {
        let started = Instant::now();
        let original = Url::parse(reported)
            .map_err(|error| FetchError::BadUrl { reason: error.to_string(), via_redirect: false })?;
        let mut url = original.clone();
        let mut redirects = Vec::new();
        loop {
            let via_redirect = !redirects.is_empty();
            let target = self.rules.check(&url, &self.resolver, &self.policy, via_redirect).await?;
            let request = self.request(Method::GET, &url, via_redirect, Bytes::new(), None)?;
            let exchange = self.exchange(request, &target).await?;
            let status = exchange.response.status();
            if is_followed_redirect(status) {
                if redirects.len() >= self.policy.max_redirects {
                    return Err(FetchError::TooManyRedirects { limit: self.policy.max_redirects });
                }
                let next = redirect_target(&url, &exchange.response)?;
                tracing::debug!(host = %target.host, status = status.as_u16(), "redirected");
                redirects.push(next.clone());
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status { url, status });
            }
            let content_type = self.check_content_type(exchange.response.headers())?;
            let body = self.read_body(exchange.response, &target).await?;
            tracing::debug!(
                host = %target.host,
                status = status.as_u16(),
                bytes = body.len(),
                redirects = redirects.len(),
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "fetched"
            );
            return Ok(Fetched {
                url: original,
                final_url: url,
                status,
                content_type,
                body,
                redirects,
                remote: exchange.remote,
                addresses: target.addresses,
            });
        }
    }

    /// Connects to the checked target and sends the request; returns once the response's
    /// headers are in.
    async fn exchange(&self, request: Request<Full<Bytes>>, target: &Target) -> Result<Exchange, FetchError> {
        let (connection, remote) = self.connector.connect(target).await?;
        let http_error = |source| FetchError::Http { host: target.host.clone(), source };
        let (mut sender, driver) =
            hyper::client::conn::http1::handshake(TokioIo::new(connection)).await.map_err(http_error)?;
        // The connection's errors reach us through the response and its body; the task only
        // has to run, and must stop when the exchange is dropped (on an error or a timeout).
        let driver = AbortOnDropHandle::new(tokio::spawn(async move {
            let _ = driver.await;
        }));
        let limit = self.policy.response_headers_timeout();
        let response = tokio::time::timeout(limit, sender.send_request(request))
            .await
            .map_err(|_| FetchError::Timeout { stage: TimeoutStage::ResponseHeaders, limit })?
            .map_err(http_error)?;
        Ok(Exchange { response, remote, _driver: driver })
    }

    fn request(
        &self,
        method: Method,
        url: &Url,
        via_redirect: bool,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, FetchError> {
        let mut request =
            Request::builder().method(method).uri(&url[Position::BeforePath..Position::AfterQuery]);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request
            .header(header::HOST, &url[Position::BeforeHost..Position::AfterPort])
            .header(header::USER_AGENT, self.user_agent.clone())
            .header(header::ACCEPT, self.accept.clone())
            // No compression: the limit counts the bytes as received, and a compressed bomb
            // is never expanded.
            .header(header::ACCEPT_ENCODING, "identity")
            .header(header::CONNECTION, "close")
            .body(Full::new(body))
            .map_err(|error| FetchError::BadUrl {
                reason: format!("not representable in an HTTP request: {error}"),
                via_redirect,
            })
    }

    fn check_content_type(&self, headers: &HeaderMap) -> Result<Option<String>, FetchError> {
        let Some(value) = headers.get(header::CONTENT_TYPE) else {
            // RFC 9110, 8.3: a recipient may treat a missing type as application/octet-stream.
            let octet_stream = MediaRange { kind: "application".into(), subtype: "octet-stream".into() };
            return if self.content_types.iter().any(|range| range.matches(&octet_stream)) {
                Ok(None)
            } else {
                Err(FetchError::ContentType { content_type: None })
            };
        };
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match MediaRange::parse(text.split(';').next().unwrap_or_default()) {
            Some(media_type) if self.content_types.iter().any(|range| range.matches(&media_type)) => {
                Ok(Some(text))
            }
            _ => Err(FetchError::ContentType { content_type: Some(text) }),
        }
    }

    async fn read_body(&self, response: Response<Incoming>, target: &Target) -> Result<Bytes, FetchError> {
        let limit = self.policy.max_response_bytes;
        let mut body = response.into_body();
        if let Some(announced) = body.size_hint().exact()
            && announced > limit
        {
            return Err(FetchError::TooLarge { limit, announced: Some(announced) });
        }
        let expected = usize::try_from(body.size_hint().lower()).unwrap_or(0).min(1 << 20);
        let mut received = BytesMut::with_capacity(expected);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| FetchError::Http { host: target.host.clone(), source })?;
            if let Ok(data) = frame.into_data() {
                if (received.len() + data.len()) as u64 > limit {
                    return Err(FetchError::TooLarge { limit, announced: None });
                }
                received.extend_from_slice(&data);
            }
        }
        Ok(received.freeze())
    }
}

/// A response whose headers are in, with the task driving its connection.
struct Exchange {
    response: Response<Incoming>,
    remote: SocketAddr,
    _driver: AbortOnDropHandle<()>,
}

/// The redirects a GET follows. 300 (a choice for a person to make) and 304 (a cache answer)
/// are not.
fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The `Location` of a redirect, resolved against the URL that sent it.
fn redirect_target(url: &Url, response: &Response<Incoming>) -> Result<Url, FetchError> {
    let status = response.status();
    let bad = |reason: String| FetchError::BadRedirect { status, reason };
    let location =
        response.headers().get(header::LOCATION).ok_or_else(|| bad("no Location header".into()))?;
    let location =
        std::str::from_utf8(location.as_bytes()).map_err(|_| bad("Location is not UTF-8".into()))?;
    url.join(location).map_err(|error| bad(error.to_string()))
}

/// `type/subtype`, `type/*` or `*/*`, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaRange {
    kind: String,
    subtype: String,
}

impl MediaRange {
    fn parse(text: &str) -> Option<MediaRange> {
        let (kind, subtype) = text.trim().split_once('/')?;
        let token = |part: &str| {
            !part.is_empty()
                && part.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&byte))
        };
        if !token(kind) || !token(subtype) || (kind == "*" && subtype != "*") {
            return None;
        }
        Some(MediaRange { kind: kind.to_ascii_lowercase(), subtype: subtype.to_ascii_lowercase() })
    }

    /// Whether the media type `other` falls in this range.
    fn matches(&self, other: &MediaRange) -> bool {
        (self.kind == "*" || self.kind == other.kind)
            && (self.subtype == "*" || self.subtype == other.subtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> MediaRange {
        MediaRange::parse(text).unwrap_or_else(|| panic!("{text} is no media range"))
    }

    #[test]
    fn media_ranges_match_by_type_and_wildcard() {
        assert!(range("image/*").matches(&range("image/png")));
        assert!(range("image/*").matches(&range("IMAGE/JPEG")));
        assert!(range("*/*").matches(&range("text/html")));
        assert!(range("application/octet-stream").matches(&range("application/octet-stream")));
        assert!(!range("image/*").matches(&range("text/html")));
        assert!(!range("image/png").matches(&range("image/jpeg")));
        assert!(!range("application/octet-stream").matches(&range("application/json")));
    }

    #[test]
    fn malformed_media_ranges_are_refused() {
        for text in ["image", "/png", "image/", "*/png", "image/png/x", "ima ge/png", ""] {
            assert_eq!(MediaRange::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn only_get_safe_redirect_statuses_are_followed() {
        for code in [301, 302, 303, 307, 308] {
            assert!(is_followed_redirect(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [200, 300, 304, 305, 306, 400] {
            assert!(!is_followed_redirect(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }
}
