//! A minimal HTTP/1.1 client for the simulations: one request per connection, an optional
//! JSON body in, the status and the raw body out (the API's JSON, the metrics' text), or the
//! body as JSON. No HTTP stack to depend on, and every call's latency is one connection's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// Sends `method path` with the bearer `token`; the status and the body.
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let body = body.map(|json| json.to_string()).unwrap_or_default();
    let mut stream = TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("{method} {path}"))?;
    let Some(split) = raw.windows(4).position(|window| window == b"\r\n\r\n") else {
        bail!("{method} {path}: no complete response head");
    };
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split_whitespace().nth(1).and_then(|status| status.parse().ok());
    let status = status.with_context(|| format!("{method} {path}: a status line {head:?}"))?;
    Ok((status, raw[split + 4..].to_vec()))
}

/// [`request`], with the body read as JSON (null if empty).
pub fn request_json(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let (status, body) = request(address, method, path, token, body)?;
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body)
            .with_context(|| format!("{method} {path}: {status} {}", String::from_utf8_lossy(&body)))?
    };
    Ok((status, json))
}
