//! Why a fetch or a fetcher's construction failed.
//!
//! Every refusal says what was refused and why (address and class, port, scheme), and whether
//! it came from a redirect, so an analyst can tell "the reported URL points inside" from "the
//! server sent us inside". Messages carry host names, addresses, statuses and sizes, never
//! fetched content, and no more of the reported URL than its host.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hyper::StatusCode;
use url::Url;

use crate::address::ForbiddenClass;

/// A fetch that did not return content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The text is not a URL we fetch: unparsable, no host, credentials in it.
    #[error("{}not a fetchable URL: {reason}", redirect_prefix(*via_redirect))]
    BadUrl {
        /// What is wrong with it.
        reason: String,
        /// Whether the URL came from a redirect's `Location`.
        via_redirect: bool,
    },
    /// Only `http` and `https` are fetched.
    #[error("{}scheme {scheme:?} is not fetched (only http and https)", redirect_prefix(*via_redirect))]
    UnsupportedScheme {
        /// The URL's scheme.
        scheme: String,
        /// Whether the URL came from a redirect's `Location`.
        via_redirect: bool,
    },
    /// The port policy does not allow the URL's port.
    #[error("{}port {port} is not allowed by the fetch policy", redirect_prefix(*via_redirect))]
    PortNotAllowed {
        /// The URL's port (explicit or its scheme's default).
        port: u16,
        /// Whether the URL came from a redirect's `Location`.
        via_redirect: bool,
    },
    /// The host is, or resolves to, a place we never connect to.
    #[error("{}refused {host}{}: {class}", redirect_prefix(*via_redirect), at(address))]
    Forbidden {
        /// The URL's host as written after normalisation (a name or an address).
        host: String,
        /// The refused address; `None` when the name itself is refused.
        address: Option<IpAddr>,
        /// Why it is refused.
        class: ForbiddenClass,
        /// Whether the URL came from a redirect's `Location`.
        via_redirect: bool,
    },
    /// The host name did not resolve (or resolved to nothing).
    #[error("could not resolve {host}: {source}")]
    Resolve {
        /// The name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// No TCP connection to the (checked) address.
    #[error("could not connect to {address}: {source}")]
    Connect {
        /// The last address tried.
        address: SocketAddr,
        /// The connection's error.
        source: io::Error,
    },
    /// The proxy could not be reached, refused us, or did not open the tunnel.
    #[error("proxy {proxy} did not open a tunnel to {target}: {source}")]
    Proxy {
        /// The proxy's configured address.
        proxy: String,
        /// The checked address the proxy was asked for.
        target: SocketAddr,
        /// What went wrong, from the proxy connector.
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The TLS handshake failed, for example on an untrusted certificate.
    #[error("TLS with {host} failed: {source}")]
    Tls {
        /// The name (or address) the certificate was checked against.
        host: String,
        /// rustls' error, wrapped in `io::Error` by tokio-rustls.
        source: io::Error,
    },
    /// A step took longer than the policy allows.
    #[error("timed out after {limit:?} during {stage}")]
    Timeout {
        /// The step.
        stage: TimeoutStage,
        /// Its limit.
        limit: Duration,
    },
    /// The HTTP exchange failed (malformed response, connection closed mid-body, ...).
    #[error("HTTP exchange with {host} failed: {source}")]
    Http {
        /// The server's host.
        host: String,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The server answered with a status other than 2xx (and not a redirect we follow). The
    /// body is not read.
    #[error("{} answered {status}", url.host_str().unwrap_or("the server"))]
    Status {
        /// The URL that answered (after any redirects).
        url: Url,
        /// The status.
        status: StatusCode,
    },
    /// The body is larger than `max_response_bytes`.
    #[error("response body over the {limit}-byte limit{}", announced_note(announced))]
    TooLarge {
        /// The limit.
        limit: u64,
        /// The `Content-Length` the server announced, if that is how we knew.
        announced: Option<u64>,
    },
    /// The response's media type is not among those the policy fetches. The body is not read.
    #[error("content type {} is not among those fetched", content_type.as_deref().unwrap_or("(none sent)"))]
    ContentType {
        /// The `Content-Type` header as sent, if any.
        content_type: Option<String>,
    },
    /// The chain of redirects is longer than `max_redirects`.
    #[error("more than {limit} redirects")]
    TooManyRedirects {
        /// The limit.
        limit: usize,
    },
    /// A redirect without a `Location` we can follow.
    #[error("{status} redirect without a usable Location: {reason}")]
    BadRedirect {
        /// The redirect's status.
        status: StatusCode,
        /// What is wrong with its `Location`.
        reason: String,
    },
}

/// The step a [`FetchError::Timeout`] interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutStage {
    /// Resolving the host name.
    Resolve,
    /// The TCP connection (to the server or to the proxy) and the proxy's handshake.
    Connect,
    /// The TLS handshake.
    TlsHandshake,
    /// Waiting for the response's headers after sending the request.
    ResponseHeaders,
    /// The whole fetch, redirects and body included.
    Total,
}

impl fmt::Display for TimeoutStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutStage::Resolve => "name resolution",
            TimeoutStage::Connect => "connection",
            TimeoutStage::TlsHandshake => "TLS handshake",
            TimeoutStage::ResponseHeaders => "wait for response headers",
            TimeoutStage::Total => "the whole fetch",
        })
    }
}

/// A [`FetchPolicy`](crate::FetchPolicy) that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A field has a value that makes no sense.
    #[error("fetch policy: {0}")]
    Invalid(String),
    /// An extra root certificate file could not be read or holds no usable certificate.
    #[error("fetch policy: root certificates in {path}: {reason}")]
    RootCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn redirect_prefix(via_redirect: bool) -> &'static str {
    if via_redirect { "redirect: " } else { "" }
}

fn at(address: &Option<IpAddr>) -> String {
    address.map(|address| format!(" at {address}")).unwrap_or_default()
}

fn announced_note(announced: &Option<u64>) -> String {
    announced.map(|length| format!(" (Content-Length {length})")).unwrap_or_default()
}
