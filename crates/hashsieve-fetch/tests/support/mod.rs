//! What the fetch tests share: a scripted origin server on a loopback address (plain or TLS)
//! that counts its connections and keeps the request heads it saw, a resolver with fixed
//! answers that records what it was asked, minimal HTTP CONNECT and SOCKS5 proxies that
//! record the target they were asked for, and a test CA.
//!
//! Everything listens on 127.0.0.0/8 only.

// Each test file uses its own part of this.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hashsieve_fetch::{FetchPolicy, Resolve};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::AbortOnDropHandle;

pub fn sample(name: &str) -> PathBuf {
    hashsieve_testkit::samples().join(name)
}

/// Limits short enough for tests that wait for them.
pub fn quick_policy() -> FetchPolicy {
    FetchPolicy {
        connect_timeout_ms: 1_000,
        response_headers_timeout_ms: 1_000,
        total_timeout_ms: 3_000,
        ..FetchPolicy::default()
    }
}

/// One thing the origin does on a connection, in order.
#[derive(Debug, Clone)]
pub enum Step {
    Send(Vec<u8>),
    Wait(Duration),
}

/// A complete response with a `Content-Length`.
pub fn respond(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<Step> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    vec![Step::Send(bytes)]
}

pub fn redirect(status: &str, location: &str) -> Vec<Step> {
    respond(status, &[("Location", location)], b"")
}

pub fn image(body: &[u8]) -> Vec<Step> {
    respond("200 OK", &[("Content-Type", "image/jpeg")], body)
}

/// The path of a request head's request line.
pub fn path_of(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or_default()
}

type Handler = Arc<dyn Fn(&str) -> Vec<Step> + Send + Sync>;

/// A scripted HTTP/1.1 server.
pub struct Origin {
    pub address: SocketAddr,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    _accepting: AbortOnDropHandle<()>,
}

impl Origin {
    /// Serves plain HTTP on `ip` (a loopback address), answering each request head with the
    /// steps `handler` returns for it.
    pub async fn plain(ip: &str, handler: impl Fn(&str) -> Vec<Step> + Send + Sync + 'static) -> Origin {
        Origin::start(ip, None, Arc::new(handler)).await
    }

    /// The same over TLS.
    pub async fn tls(
        ip: &str,
        acceptor: TlsAcceptor,
        handler: impl Fn(&str) -> Vec<Step> + Send + Sync + 'static,
    ) -> Origin {
        Origin::start(ip, Some(acceptor), Arc::new(handler)).await
    }

    async fn start(ip: &str, acceptor: Option<TlsAcceptor>, handler: Handler) -> Origin {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind a loopback port");
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let accepting = {
            let (connections, heads) = (Arc::clone(&connections), Arc::clone(&heads));
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (acceptor, handler, heads) =
                        (acceptor.clone(), Arc::clone(&handler), Arc::clone(&heads));
                    tokio::spawn(async move {
                        match acceptor {
                            None => serve(tcp, &*handler, &heads).await,
                            Some(acceptor) => {
                                if let Ok(tls) = acceptor.accept(tcp).await {
                                    serve(tls, &*handler, &heads).await;
                                }
                            }
                        }
                    });
                }
            })
        };
        Origin { address, connections, heads, _accepting: AbortOnDropHandle::new(accepting) }
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The request heads received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    handler: &(dyn Fn(&str) -> Vec<Step> + Send + Sync),
    heads: &Mutex<Vec<String>>,
) {
    let Some(head) = read_head(&mut stream).await else { return };
    heads.lock().unwrap().push(head.clone());
    for step in handler(&head) {
        match step {
            Step::Send(bytes) => {
                if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
                    return;
                }
            }
            Step::Wait(duration) => tokio::time::sleep(duration).await,
        }
    }
    let _ = stream.shutdown().await;
}

/// Reads up to the blank line that ends a request head.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 << 10 || stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

/// Fixed answers, and the names it was asked for.
#[derive(Clone, Default)]
pub struct MapResolver {
    answers: Arc<HashMap<String, Vec<IpAddr>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl MapResolver {
    pub fn new(answers: &[(&str, &[&str])]) -> MapResolver {
        let answers = answers
            .iter()
            .map(|(name, addresses)| {
                (name.to_string(), addresses.iter().map(|address| address.parse().unwrap()).collect())
            })
            .collect();
        MapResolver { answers: Arc::new(answers), asked: Arc::default() }
    }

    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Resolve for MapResolver {
    async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        self.asked.lock().unwrap().push(host.to_string());
        self.answers.get(host).cloned().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{host} is not in the test's map"))
        })
    }
}

/// What a test proxy was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    /// The target as the client named it: `ip:port`, or `name:port` if a name was sent.
    pub target: String,
    /// SOCKS5 username and password, or the `Proxy-Authorization` header of a CONNECT.
    pub credentials: Option<String>,
}

/// A proxy that records each request, then connects to the target if it is on loopback and
/// relays bytes both ways.
pub struct TestProxy {
    pub address: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<ProxyRequest>>>,
    _accepting: AbortOnDropHandle<()>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    HttpConnect,
    /// With username/password authentication required if `true`.
    Socks5 {
        authenticate: bool,
    },
}

impl TestProxy {
    pub async fn start(kind: ProxyKind) -> TestProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let accepting = {
            let (connections, requests) = (Arc::clone(&connections), Arc::clone(&requests));
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let requests = Arc::clone(&requests);
                    tokio::spawn(async move {
                        let _ = match kind {
                            ProxyKind::HttpConnect => connect_proxy(client, &requests).await,
                            ProxyKind::Socks5 { authenticate } => {
                                socks5_proxy(client, authenticate, &requests).await
                            }
                        };
                    });
                }
            })
        };
        TestProxy { address, connections, requests, _accepting: AbortOnDropHandle::new(accepting) }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// Only loopback targets are ever connected to by the test proxies.
async fn connect_loopback(target: &str) -> io::Result<TcpStream> {
    let address: SocketAddr =
        target.parse().map_err(|_| io::Error::other("the test proxy resolves no names"))?;
    if !address.ip().is_loopback() {
        return Err(io::Error::other("the test proxy connects to loopback only"));
    }
    TcpStream::connect(address).await
}

async fn connect_proxy(mut client: TcpStream, requests: &Mutex<Vec<ProxyRequest>>) -> io::Result<()> {
    let head = read_head(&mut client).await.ok_or_else(|| io::Error::other("no request head"))?;
    let mut lines = head.lines();
    let request_line: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    let credentials = lines
        .find_map(|line| {
            line.strip_prefix("Proxy-Authorization: ").or(line.strip_prefix("proxy-authorization: "))
        })
        .map(str::to_string);
    let target = request_line.get(1).copied().unwrap_or_default().to_string();
    requests.lock().unwrap().push(ProxyRequest { target: target.clone(), credentials });
    if request_line.first() != Some(&"CONNECT") {
        client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n").await?;
        return Ok(());
    }
    let mut server = match connect_loopback(&target).await {
        Ok(server) => server,
        Err(_) => {
            client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n").await?;
            return Ok(());
        }
    };
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await.map(drop)
}

async fn socks5_proxy(
    mut client: TcpStream,
    authenticate: bool,
    requests: &Mutex<Vec<ProxyRequest>>,
) -> io::Result<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    let mut methods = vec![0u8; usize::from(greeting[1])];
    client.read_exact(&mut methods).await?;
    let wanted = if authenticate { 2 } else { 0 };
    if greeting[0] != 5 || !methods.contains(&wanted) {
        client.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    client.write_all(&[5, wanted]).await?;
    let mut credentials = None;
    if authenticate {
        let version = client.read_u8().await?;
        let mut username = vec![0u8; usize::from(client.read_u8().await?)];
        client.read_exact(&mut username).await?;
        let mut password = vec![0u8; usize::from(client.read_u8().await?)];
        client.read_exact(&mut password).await?;
        let given = format!("{}:{}", String::from_utf8_lossy(&username), String::from_utf8_lossy(&password));
        let accepted = version == 1 && given == "analyst:s3cret";
        credentials = Some(given);
        client.write_all(&[1, if accepted { 0 } else { 1 }]).await?;
        if !accepted {
            return Ok(());
        }
    }
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut octets = [0u8; 4];
            client.read_exact(&mut octets).await?;
            IpAddr::from(octets).to_string()
        }
        4 => {
            let mut octets = [0u8; 16];
            client.read_exact(&mut octets).await?;
            format!("[{}]", IpAddr::from(octets))
        }
        3 => {
            let mut name = vec![0u8; usize::from(client.read_u8().await?)];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return Err(io::Error::other("unknown address type")),
    };
    let port = client.read_u16().await?;
    let target = format!("{host}:{port}");
    requests.lock().unwrap().push(ProxyRequest { target: target.clone(), credentials });
    let mut server = match connect_loopback(&target).await {
        Ok(server) => server,
        Err(_) => {
            // Host unreachable.
            client.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
    };
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await.map(drop)
}

/// A CA made for this run, and server certificates it signs.
pub struct TestCa {
    key: KeyPair,
    certificate: rcgen::Certificate,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let certificate = params.self_signed(&key).unwrap();
        TestCa { key, certificate }
    }

    /// The CA certificate as a PEM file in `directory`.
    pub fn write_pem(&self, directory: &Path) -> PathBuf {
        let path = directory.join("test-ca.pem");
        std::fs::write(&path, self.certificate.pem()).unwrap();
        path
    }

    /// A TLS acceptor presenting a certificate for `names` signed by this CA.
    pub fn acceptor(&self, names: &[&str]) -> TlsAcceptor {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).unwrap();
        let certificate = params.signed_by(&key, &self.certificate, &self.key).unwrap();
        let chain = vec![CertificateDer::from(certificate.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}
