//! Opening a connection to a checked [`Target`]: TCP (directly or through the proxy), then
//! TLS for https.
//!
//! The connector only ever connects to the target's checked addresses; it gets no name to
//! resolve. Through a proxy it asks for the checked address as an IP literal (`CONNECT
//! 93.184.216.34:443`, a SOCKS5 request of type IPv4/IPv6), so the proxy cannot resolve the
//! name differently from us. HTTP proxies are used through `CONNECT` for http URLs as well as
//! https: absolute-form requests (`GET http://host/path`) would leave the proxy to pick the
//! server from the URL's host name and free to rewrite or cache the response, whereas a
//! tunnel carries our request to the address we checked and the response back untouched,
//! with our limits applied to the exact bytes the origin sent. The price is that a proxy
//! which only allows `CONNECT` to port 443 cannot fetch http URLs.
//!
//! The tunnels are hyper-util's `Tunnel` and `SocksV5` connectors (the ones reqwest uses);
//! TLS is tokio-rustls with ring, the Web PKI roots and any extra roots the policy names,
//! checked against the URL's host name while the bytes go to the checked address.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hyper::Uri;
use hyper::header::HeaderValue;
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;
use tower::ServiceExt as _;

use crate::error::{FetchError, PolicyError, TimeoutStage};
use crate::policy::{FetchPolicy, ProxyConfig};
use crate::target::Target;

/// A connection to a server, plain or TLS.
pub(crate) type Connection = Either<TcpStream, TlsStream<TcpStream>>;

/// Opens connections to checked targets.
#[derive(Clone)]
pub(crate) struct Connector {
    tls: TlsConnector,
    proxy: Option<Proxy>,
    timeout: Duration,
}

#[derive(Clone)]
struct Proxy {
    config: ProxyConfig,
    /// The configured address as a URI, which the hyper-util connectors want.
    uri: Uri,
    /// `Proxy-Authorization` for an HTTP proxy.
    authorization: Option<HeaderValue>,
}

impl Connector {
    pub fn new(policy: &FetchPolicy) -> Result<Connector, PolicyError> {
        Ok(Connector {
            tls: TlsConnector::from(Arc::new(tls_config(policy)?)),
            proxy: policy.proxy.as_ref().map(Proxy::new).transpose()?,
            timeout: policy.connect_timeout(),
        })
    }

    /// Connects to the first of the target's addresses that accepts, and returns the
    /// connection with that address.
    pub async fn connect(&self, target: &Target) -> Result<(Connection, SocketAddr), FetchError> {
        let mut last_error = None;
        for address in &target.addresses {
            let address = SocketAddr::new(*address, target.port);
            let connecting = async {
                match &self.proxy {
                    None => TcpStream::connect(address)
                        .await
                        .map_err(|source| FetchError::Connect { address, source }),
                    Some(proxy) => proxy.tunnel(address).await,
                }
            };
            match tokio::time::timeout(self.timeout, connecting).await {
                Ok(Ok(tcp)) => {
                    // Nagle would hold back the request's last segment waiting for an ACK.
                    let _ = tcp.set_nodelay(true);
                    return Ok((self.secure(target, tcp).await?, address));
                }
                Ok(Err(error)) => last_error = Some(error),
                Err(_) => {
                    last_error =
                        Some(FetchError::Timeout { stage: TimeoutStage::Connect, limit: self.timeout })
                }
            }
        }
        Err(last_error.expect("a checked target has at least one address"))
    }

    async fn secure(&self, target: &Target, tcp: TcpStream) -> Result<Connection, FetchError> {
        if !target.https {
            return Ok(Either::Left(tcp));
        }
        let server_name = match target.literal {
            // An address host is checked against the certificate's IP address entries.
            Some(address) => ServerName::IpAddress(address.into()),
            None => ServerName::try_from(target.host.clone()).map_err(|error| FetchError::Tls {
                host: target.host.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, error),
            })?,
        };
        let limit = self.timeout;
        match tokio::time::timeout(limit, self.tls.connect(server_name, tcp)).await {
            Ok(Ok(tls)) => Ok(Either::Right(tls)),
            Ok(Err(source)) => Err(FetchError::Tls { host: target.host.clone(), source }),
            Err(_) => Err(FetchError::Timeout { stage: TimeoutStage::TlsHandshake, limit }),
        }
    }
}

impl Proxy {
    fn new(config: &ProxyConfig) -> Result<Proxy, PolicyError> {
        let invalid = |reason: &str| PolicyError::Invalid(format!("proxy {:?}: {reason}", config.address()));
        let uri: Uri =
            format!("http://{}", config.address()).parse().map_err(|_| invalid("not host:port"))?;
        if uri.port().is_none() || uri.path() != "/" {
            return Err(invalid("not host:port"));
        }
        let authorization = match config {
            ProxyConfig::Http { username: Some(username), password, .. } => {
                let credentials = format!("{username}:{}", password.as_deref().unwrap_or(""));
                let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
                let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
                    .map_err(|_| invalid("credentials are not a valid header value"))?;
                value.set_sensitive(true);
                Some(value)
            }
            ProxyConfig::Http { username: None, password: Some(_), .. }
            | ProxyConfig::Socks5 { username: None, password: Some(_), .. } => {
                return Err(invalid("a password without a username"));
            }
            ProxyConfig::Socks5 { username: Some(username), password, .. }
                if username.len() > 255 || password.as_ref().is_some_and(|password| password.len() > 255) =>
            {
                return Err(invalid("SOCKS5 credentials are limited to 255 bytes each"));
            }
            _ => None,
        };
        Ok(Proxy { config: config.clone(), uri, authorization })
    }

    /// A TCP connection to the proxy, tunnelled through to `target`.
    async fn tunnel(&self, target: SocketAddr) -> Result<TcpStream, FetchError> {
        let failed = |source| FetchError::Proxy { proxy: self.config.address().to_owned(), target, source };
        // The proxy is trusted configuration: its name is resolved by the system, unchecked.
        let to_proxy =
            TcpStream::connect(self.config.address()).await.map_err(|error| failed(error.into()))?;
        // The hyper-util connectors take a connector to the proxy; ours hands over the
        // connection just made, whose errors were reported with their cause above.
        let mut to_proxy = Some(TokioIo::new(to_proxy));
        let to_proxy = tower::service_fn(move |_: Uri| {
            let connection = to_proxy.take();
            async move { connection.ok_or_else(|| io::Error::other("the proxy connection was used twice")) }
        });
        // The destination is an IP literal, so neither connector has a name to resolve or
        // forward.
        let destination: Uri =
            format!("http://{target}").parse().expect("a socket address is a valid authority");
        let tunnelled: Result<TokioIo<TcpStream>, Box<dyn StdError + Send + Sync>> = match &self.config {
            ProxyConfig::Http { .. } => {
                let mut tunnel = Tunnel::new(self.uri.clone(), to_proxy);
                if let Some(authorization) = &self.authorization {
                    tunnel = tunnel.with_auth(authorization.clone());
                }
                tunnel.oneshot(destination).await.map_err(Into::into)
            }
            ProxyConfig::Socks5 { username, password, .. } => {
                let mut socks = SocksV5::new(self.uri.clone(), to_proxy);
                if let Some(username) = username {
                    socks = socks.with_auth(username.clone(), password.clone().unwrap_or_default());
                }
                socks.oneshot(destination).await.map_err(Into::into)
            }
        };
        tunnelled.map(TokioIo::into_inner).map_err(failed)
    }
}

fn tls_config(policy: &FetchPolicy) -> Result<ClientConfig, PolicyError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in &policy.extra_root_certificates {
        let invalid = |reason: String| PolicyError::RootCertificate { path: path.clone(), reason };
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certificates| certificates.collect())
            .map_err(|error| invalid(error.to_string()))?;
        if certificates.is_empty() {
            return Err(invalid("no certificate in the file".into()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|error| invalid(error.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| PolicyError::Invalid(format!("TLS: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
