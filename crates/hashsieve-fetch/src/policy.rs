//! What a [`Fetcher`](crate::Fetcher) may do: limits, timeouts, the allow-list, the proxy.
//!
//! [`FetchPolicy`] is plain data with safe defaults, deserialisable from the daemon's TOML
//! (every field optional, unknown fields refused so a misspelt limit is not silently ignored).
//! [`Fetcher::new`](crate::Fetcher::new) checks it and turns it into what the fetches use.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

/// Limits and options for fetching reported URLs.
///
/// ```
/// use hashsieve_fetch::{FetchPolicy, PortPolicy};
///
/// let policy: FetchPolicy = toml::from_str(r#"
///     max_response_bytes = 10_000_000
///     content_types = ["image/*", "video/*"]
///     ports = { only = [80, 443, 8080] }
///     proxy = { kind = "socks5", address = "proxy.hotline.example:1080" }
/// "#).unwrap();
/// assert_eq!(policy.ports, PortPolicy::Only(vec![80, 443, 8080]));
/// assert_eq!(policy.max_redirects, FetchPolicy::default().max_redirects);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchPolicy {
    /// Largest response body read. A larger `Content-Length` is refused before reading; a body
    /// without one is cut off with an error as soon as it passes the limit.
    pub max_response_bytes: u64,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// Time for each step of reaching a server: resolving its name, the TCP connection, the
    /// proxy's handshake, the TLS handshake.
    pub connect_timeout_ms: u64,
    /// Time from sending a request to having the response's headers (the "first byte").
    pub response_headers_timeout_ms: u64,
    /// Time for the whole fetch, redirects and body included. This is what stops a body that
    /// trickles in.
    pub total_timeout_ms: u64,
    /// Media types whose bodies are read: `type/subtype`, `type/*` or `*/*`, without
    /// parameters. A response without `Content-Type` counts as `application/octet-stream`
    /// (RFC 9110, section 8.3).
    pub content_types: Vec<String>,
    /// The `User-Agent` sent.
    pub user_agent: String,
    /// Which ports URLs may name.
    pub ports: PortPolicy,
    /// Host names (exact, without case) whose addresses are not checked: a hotline's own
    /// sources, test servers. Compared after URL normalisation, so `EXAMPLE.org.` is
    /// `example.org`. Cloud metadata names listed here are allowed too: the list is trusted.
    pub allow_hosts: Vec<String>,
    /// Address ranges (CIDR) that are connected to even though their class is refused.
    pub allow_networks: Vec<IpNet>,
    /// PEM files of root certificates trusted besides the Web PKI's (internal sources, tests).
    pub extra_root_certificates: Vec<PathBuf>,
    /// A proxy every connection goes through.
    pub proxy: Option<ProxyConfig>,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            max_response_bytes: 32 << 20,
            max_redirects: 5,
            connect_timeout_ms: 10_000,
            response_headers_timeout_ms: 20_000,
            total_timeout_ms: 60_000,
            content_types: vec!["image/*".into(), "application/octet-stream".into()],
            user_agent: concat!("hashsieve-fetch/", env!("CARGO_PKG_VERSION")).into(),
            ports: PortPolicy::Any,
            allow_hosts: Vec::new(),
            allow_networks: Vec::new(),
            extra_root_certificates: Vec::new(),
            proxy: None,
        }
    }
}

impl FetchPolicy {
    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn response_headers_timeout(&self) -> Duration {
        Duration::from_millis(self.response_headers_timeout_ms)
    }

    pub(crate) fn total_timeout(&self) -> Duration {
        Duration::from_millis(self.total_timeout_ms)
    }
}

/// Which ports a URL may name (explicitly or by its scheme's default).
///
/// The default is [`PortPolicy::Any`]: reported material is often served from odd ports
/// (8080, 8443, high ports on compromised machines), and what keeps us from internal services
/// is the address check, which does not depend on the port. A hotline that does not want its
/// fetcher to speak HTTP at, say, a public mail server's port 25 lists the ports it accepts.
/// Port 0 is never allowed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortPolicy {
    /// Every port from 1 to 65535. In TOML: `ports = "any"`.
    Any,
    /// Only these. In TOML: `ports = { only = [80, 443] }`.
    Only(Vec<u16>),
}

impl PortPolicy {
    pub(crate) fn allows(&self, port: u16) -> bool {
        port != 0
            && match self {
                PortPolicy::Any => true,
                PortPolicy::Only(ports) => ports.contains(&port),
            }
    }
}

/// A proxy that every connection goes through. Its address is trusted configuration: it is
/// not checked, and may be private. Targets are resolved and checked here and the proxy is
/// asked for the checked IP address, never for the name.
///
/// In TOML: `proxy = { kind = "http", address = "proxy.example:3128" }` or
/// `proxy = { kind = "socks5", address = "10.1.2.3:1080", username = "u", password = "p" }`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProxyConfig {
    /// An HTTP proxy, used through `CONNECT` tunnels for both http and https URLs.
    Http {
        /// `host:port` of the proxy.
        address: String,
        /// Sent as `Proxy-Authorization: Basic` with the `CONNECT`.
        username: Option<String>,
        /// The password for `username`.
        password: Option<String>,
    },
    /// A SOCKS5 proxy (RFC 1928), with username/password authentication (RFC 1929) if given.
    Socks5 {
        /// `host:port` of the proxy.
        address: String,
        /// SOCKS5 user name.
        username: Option<String>,
        /// The password for `username`.
        password: Option<String>,
    },
}

impl ProxyConfig {
    /// The proxy's `host:port`.
    pub fn address(&self) -> &str {
        match self {
            ProxyConfig::Http { address, .. } | ProxyConfig::Socks5 { address, .. } => address,
        }
    }
}

/// The password stays out of logs.
impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, address, username, password) = match self {
            ProxyConfig::Http { address, username, password } => ("Http", address, username, password),
            ProxyConfig::Socks5 { address, username, password } => ("Socks5", address, username, password),
        };
        f.debug_struct(kind)
            .field("address", address)
            .field("username", username)
            .field("password", &password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
