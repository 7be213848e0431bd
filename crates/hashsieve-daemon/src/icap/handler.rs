//! What the ICAP service does with each request, and a persistent connection's life.
//!
//! For `RESPMOD` and `REQMOD` the question is whether the encapsulated body is content to
//! hash: an image by its declared media type, or by its first bytes (the preview) whatever
//! it declares. Anything else is answered `204` from the preview alone, so the proxy does not
//! send the rest. Content to hash is streamed through the digests as it arrives, holding only
//! what decoding needs; a match gets the block page, anything else `204` (or, for a client
//! that does not take `204`, its message back unchanged).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashsieve_core::decode::{SNIFF_BYTES, sniff_format};
use hashsieve_core::matcher::MatchVerdict;
use hashsieve_core::signals::{SignalStream, Signals};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::connection::{Connection, Piece, ReadError};
use super::frame::{self, FrameError, HttpHead, Method, RequestHead};
use super::response::{self, BlockPage};
use crate::blocked_urls::Blocked;
use crate::listener::Discipline;
use crate::state::AppState;
use crate::verdict::{Asker, audit, counting_match};

/// The largest preview taken from a client, whatever it announces: previews are for deciding,
/// the rest of a body streams.
const MAX_PREVIEW_BYTES: usize = 1 << 20;

/// What every ICAP connection shares.
#[derive(Debug)]
pub struct Icap {
    /// The index, limits and hashing permits, shared with the other protocols.
    pub state: Arc<AppState>,
    /// The preview asked for in `OPTIONS`.
    pub preview_bytes: u32,
    /// `Options-TTL`.
    pub options_ttl_secs: u64,
    /// How long a connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a client may take to send a request head.
    pub header_timeout: Duration,
    /// How long reading a body and answering may take.
    pub request_timeout: Duration,
    /// Media types hashed by declared type (`type/` matches the subtypes).
    pub content_types: Vec<String>,
    /// Whether bodies that start like an image are hashed whatever their type.
    pub sniff: bool,
    /// `Transfer-Ignore`.
    pub transfer_ignore: Vec<String>,
    /// `Transfer-Complete`.
    pub transfer_complete: Vec<String>,
    /// What blocked content is replaced with.
    pub block_page: BlockPage,
    /// The largest body held whole.
    pub max_held_bytes: u64,
    /// Connections served at once (`Max-Connections`), and the write deadline.
    pub discipline: Discipline,
}

/// Why a request ends without a normal response.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("no such service")]
    NoService,
    #[error("method not allowed for this service")]
    WrongMethod,
    #[error("no hashing slot free in time")]
    Busy,
    #[error("body larger than can be held")]
    TooLarge,
    #[error("hashing failed")]
    Internal,
}

impl Failure {
    /// The error response's status, or `None` when the client is gone.
    fn status(&self) -> Option<&'static str> {
        Some(match self {
            Failure::Read(ReadError::Frame(err)) => err.status(),
            Failure::Read(_) => return None,
            Failure::NoService => "404 ICAP Service Not Found",
            Failure::WrongMethod => "405 Method Not Allowed For Service",
            Failure::Busy => "503 Service Overloaded",
            Failure::TooLarge => "413 Request Entity Too Large",
            Failure::Internal => "500 Server Error",
        })
    }

    /// The rejection reason counted in the metrics.
    fn reason(&self) -> &'static str {
        match self {
            Failure::Read(ReadError::Frame(_)) | Failure::NoService | Failure::WrongMethod => "bad_request",
            Failure::Read(_) => "closed",
            Failure::Busy => "busy",
            Failure::TooLarge => "too_large",
            Failure::Internal => "internal",
        }
    }
}

/// Serves one connection: requests one after another until the client closes, asks to close,
/// sends something wrong, waits too long, or the daemon shuts down (a request in progress is
/// finished first).
pub async fn serve_connection<T: AsyncRead + AsyncWrite + Unpin>(
    mut connection: Connection<T>,
    icap: Arc<Icap>,
    client: String,
    mut stop: watch::Receiver<bool>,
) {
    let metrics = &icap.state.metrics;
    // A connection's first request must come within the header deadline, as HTTP's must: the
    // idle timeout is for a client that has shown it is one, between its requests.
    let mut wait = icap.header_timeout;
    loop {
        let waited = tokio::select! {
            waited = tokio::time::timeout(wait, connection.wait_for_request()) => waited,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        wait = icap.idle_timeout;
        if !matches!(waited, Ok(Ok(true))) {
            break;
        }
        let started = Instant::now();
        let head = match tokio::time::timeout(icap.header_timeout, connection.read_head()).await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => break,
            Ok(Err(ReadError::Frame(err))) => {
                tracing::debug!(%client, error = %err, "icap: bad request head");
                metrics.rejected("icap", "bad_request");
                metrics.request("icap", "invalid", err.status(), started.elapsed());
                let _ = connection.write(&response::error(err.status(), &istag(&icap))).await;
                break;
            }
            Ok(Err(_)) => break,
            Err(_) => {
                metrics.rejected("icap", "timeout");
                let _ = connection.write(&response::error("408 Request Timeout", &istag(&icap))).await;
                break;
            }
        };
        let handled =
            tokio::time::timeout(icap.request_timeout, handle(&mut connection, &icap, &client, &head));
        let (status, keep_open) = match handled.await {
            Ok(Ok(status)) => (status, !head.close),
            Ok(Err(failure)) => {
                tracing::debug!(%client, error = %failure, "icap: request failed");
                metrics.rejected("icap", failure.reason());
                let status = failure.status();
                if let Some(status) = status {
                    let _ = connection.write(&response::error(status, &istag(&icap))).await;
                }
                (status.unwrap_or("000"), false)
            }
            Err(_) => {
                metrics.rejected("icap", "timeout");
                let _ = connection.write(&response::error("408 Request Timeout", &istag(&icap))).await;
                ("408", false)
            }
        };
        metrics.request("icap", head.method.name(), &status[..3], started.elapsed());
        if !keep_open {
            break;
        }
    }
    connection.shutdown().await;
}

/// The service's tag: it names the index's state, so that it changes when the index does (a
/// compaction or reload gives a new generation, a live change a new sequence number) and a
/// proxy knows earlier answers may be stale.
fn istag(icap: &Icap) -> String {
    let live = icap.state.matcher.load().current();
    let seq = live.view(|view| view.delta.last_seq());
    format!("\"hs-{}-{seq}\"", live.number())
}

/// Answers one request; returns the response's status code.
async fn handle<T: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<T>,
    icap: &Icap,
    client: &str,
    head: &RequestHead,
) -> Result<&'static str, Failure> {
    let service_method = match head.service.as_str() {
        "respmod" => Method::Respmod,
        "reqmod" => Method::Reqmod,
        _ => return Err(Failure::NoService),
    };
    let istag = istag(icap);
    let sections = connection.read_exact(head.encapsulated.body_offset).await?;
    if head.method == Method::Options {
        if head.encapsulated.has_body {
            connection.discard_body().await?;
        }
        let options = response::Options {
            method: service_method.name(),
            istag: &istag,
            preview: icap.preview_bytes,
            max_connections: icap.discipline.max_connections,
            ttl_secs: icap.options_ttl_secs,
            transfer_ignore: &icap.transfer_ignore,
            transfer_complete: &icap.transfer_complete,
        };
        connection.write(&response::options(&options)).await.map_err(ReadError::Io)?;
        return Ok("200");
    }
    if head.method != service_method {
        return Err(Failure::WrongMethod);
    }
    let is_request = head.method == Method::Reqmod;
    let (request_head, message_range) = match head.method {
        Method::Reqmod => (head.encapsulated.req_hdr.clone(), head.encapsulated.req_hdr.clone()),
        _ => (head.encapsulated.req_hdr.clone(), head.encapsulated.res_hdr.clone()),
    };
    let message_range =
        message_range.ok_or(FrameError::BadHttp("no HTTP head to check")).map_err(ReadError::from)?;
    let message_bytes = sections.slice(message_range);
    let message = frame::parse_http_head(&message_bytes).map_err(ReadError::from)?;
    let request = match request_head {
        Some(range) => Some(frame::parse_http_head(&sections[range]).map_err(ReadError::from)?),
        None => None,
    };
    if is_request && let Some(blocked) = request.as_ref().and_then(|request| blocked_url(icap, request)) {
        if head.encapsulated.has_body {
            connection.discard_body().await?;
        }
        let target = request.as_ref().and_then(|request| request.target.as_deref()).unwrap_or("-");
        icap.state.metrics.rejected("icap", "url_blocked");
        tracing::info!(target: "audit", protocol = "icap", client, action = "REQMOD", url = target,
            blocked = ?blocked, "URL on the block list");
        let answer = response::blocked_url(&istag, &icap.block_page, blocked == Blocked::Host);
        connection.write(&answer).await.map_err(ReadError::Io)?;
        return Ok("200");
    }
    let target = request.and_then(|request| request.target);
    let exchange = Exchange { icap, istag: &istag, head, message_bytes, is_request, client, target };
    if !head.encapsulated.has_body {
        return exchange.pass(connection).await;
    }
    exchange.examine(connection, &message).await
}

/// Whether the block list blocks the encapsulated request.
fn blocked_url(icap: &Icap, request: &HttpHead) -> Option<Blocked> {
    let (method, target) = (request.method.as_deref()?, request.target.as_deref()?);
    icap.state.blocked_urls.load().blocks(method, target, request.host.as_deref())
}

/// One RESPMOD or REQMOD being answered.
struct Exchange<'a> {
    icap: &'a Icap,
    istag: &'a str,
    head: &'a RequestHead,
    /// The encapsulated HTTP head checked, as received, for an echo.
    message_bytes: Bytes,
    is_request: bool,
    client: &'a str,
    /// The HTTP request's target, for the audit line of a match.
    target: Option<String>,
}

/// How a body is to be checked.
enum Check {
    /// Not content to hash.
    Skip,
    /// The body is the content.
    Whole,
    /// A form upload: each part is content.
    Multipart(String),
}

impl Exchange<'_> {
    /// Reads the body (or its preview) and answers.
    async fn examine<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        connection: &mut Connection<T>,
        message: &HttpHead,
    ) -> Result<&'static str, Failure> {
        let previewing = self.head.preview.is_some();
        // The preview, or without one the first bytes, to tell an image by.
        let mut first = Vec::new();
        let mut complete = false;
        let wanted = match self.head.preview {
            Some(preview) => usize::try_from(preview).unwrap_or(usize::MAX).min(MAX_PREVIEW_BYTES),
            None => SNIFF_BYTES,
        };
        while previewing || first.len() < wanted {
            match connection.read_piece().await? {
                Piece::Data(data) => {
                    if previewing && first.len() + data.len() > wanted {
                        return Err(
                            ReadError::Frame(FrameError::BadChunk("preview longer than announced")).into()
                        );
                    }
                    first.extend_from_slice(&data);
                }
                Piece::End { ieof } => {
                    complete = ieof || !previewing;
                    break;
                }
            }
        }
        let check = self.check_for(message, &first);
        if let Check::Skip = check {
            return if previewing {
                self.reply(connection, &response::no_content(self.istag)).await
            } else if self.head.allow_204 {
                if !complete {
                    connection.discard_body().await?;
                }
                self.reply(connection, &response::no_content(self.istag)).await
            } else {
                self.echo_streaming(connection, first, complete).await
            };
        }

        let icap = self.icap;
        let deadline = Instant::now() + icap.request_timeout;
        let matcher = icap.state.matcher.load_full();
        let hold = matches!(check, Check::Multipart(_)) || !self.head.allow_204;
        let mut held = hold.then(Vec::new);
        // A form upload is hashed part by part from the held body; a whole body as it streams.
        let mut stream = matches!(check, Check::Whole).then(|| SignalStream::new(matcher.signal_options()));
        let mut add = |data: &[u8], held: &mut Option<Vec<u8>>| -> Result<(), Failure> {
            if let Some(stream) = &mut stream {
                stream.update(data);
            }
            if let Some(held) = held {
                if (held.len() + data.len()) as u64 > icap.max_held_bytes {
                    return Err(Failure::TooLarge);
                }
                held.extend_from_slice(data);
            }
            Ok(())
        };
        add(&first, &mut held)?;
        let continued = previewing && !complete;
        if continued {
            connection.write(response::CONTINUE).await.map_err(ReadError::Io)?;
        }
        if !complete {
            while let Piece::Data(data) = connection.read_piece().await? {
                add(&data, &mut held)?;
            }
        }

        // The content has arrived: now it may take a hashing slot.
        let slots = &icap.state.slots;
        let checked = match check {
            Check::Multipart(boundary) => {
                // The held body is needed again only for an echo.
                let body = if self.head.allow_204 { held.take() } else { held.clone() };
                let parts = form_parts(body.unwrap_or_default(), boundary).await;
                let options = matcher.signal_options();
                let memory = parts.iter().map(|part| Signals::decode_memory(part, &options)).max();
                let slot =
                    slots.take_before(memory.unwrap_or(0), deadline).await.map_err(|_| Failure::Busy)?;
                slot.run(Some(deadline), move || {
                    let check = |part: &Bytes| {
                        let signals = Signals::from_bytes(part, &options);
                        (matcher.check_signals(&signals), signals)
                    };
                    parts.iter().map(check).collect::<Vec<_>>()
                })
                .await
            }
            _ => {
                let stream = stream.expect("a whole body is streamed");
                let slot =
                    slots.take_before(stream.decode_memory(), deadline).await.map_err(|_| Failure::Busy)?;
                slot.run(Some(deadline), move || {
                    let signals = stream.finish();
                    vec![(matcher.check_signals(&signals), signals)]
                })
                .await
            }
        };
        let checked = checked.map_err(|_| Failure::Internal)?;
        for (verdict, signals) in &checked {
            icap.state.metrics.matched("icap", verdict);
            self.audit(verdict, signals);
        }
        if let Some(found) = checked.iter().find_map(|(verdict, _)| counting_match(verdict)) {
            return self.reply(connection, &response::blocked(self.istag, &icap.block_page, found)).await;
        }
        // 204 is always allowed in answer to a preview; after 100 Continue only with Allow: 204.
        if self.head.allow_204 || !continued && previewing {
            return self.reply(connection, &response::no_content(self.istag)).await;
        }
        let body = held.unwrap_or_default();
        let mut out = response::echo_head(self.istag, &self.message_bytes, self.is_request, true);
        if !body.is_empty() {
            out.extend_from_slice(&response::chunk(&body));
        }
        out.extend_from_slice(response::LAST_CHUNK);
        self.reply(connection, &out).await
    }

    /// Whether and how the body is checked, from its declared type and its first bytes.
    fn check_for(&self, message: &HttpHead, first: &[u8]) -> Check {
        if message.encoding.is_some() {
            // Compressed bytes are not the content lists name; images are not sent compressed.
            return Check::Skip;
        }
        let media_type = message.media_type.as_deref().unwrap_or_default();
        if self.is_request && media_type == "multipart/form-data" {
            let boundary =
                message.content_type.as_deref().and_then(|value| multer::parse_boundary(value).ok());
            if let Some(boundary) = boundary {
                return Check::Multipart(boundary);
            }
        }
        let declared = self.icap.content_types.iter().any(|wanted| media_type_matches(wanted, media_type));
        if declared || self.icap.sniff && sniff_format(first).is_some() { Check::Whole } else { Check::Skip }
    }

    /// Answers "unchanged" without a 204: the HTTP head and the body streamed back as it
    /// arrives, for content that is not checked.
    async fn echo_streaming<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        connection: &mut Connection<T>,
        first: Vec<u8>,
        complete: bool,
    ) -> Result<&'static str, Failure> {
        let mut out = response::echo_head(self.istag, &self.message_bytes, self.is_request, true);
        if !first.is_empty() {
            out.extend_from_slice(&response::chunk(&first));
        }
        connection.write(&out).await.map_err(ReadError::Io)?;
        if !complete {
            while let Piece::Data(data) = connection.read_piece().await? {
                connection.write(&response::chunk(&data)).await.map_err(ReadError::Io)?;
            }
        }
        self.reply(connection, response::LAST_CHUNK).await
    }

    /// Answers a message without a body: unchanged.
    async fn pass<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        connection: &mut Connection<T>,
    ) -> Result<&'static str, Failure> {
        if self.head.allow_204 || self.head.preview.is_some() {
            return self.reply(connection, &response::no_content(self.istag)).await;
        }
        self.reply(connection, &response::echo_head(self.istag, &self.message_bytes, self.is_request, false))
            .await
    }

    async fn reply<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        connection: &mut Connection<T>,
        bytes: &[u8],
    ) -> Result<&'static str, Failure> {
        connection.write(bytes).await.map_err(ReadError::Io)?;
        Ok(if bytes.starts_with(b"ICAP/1.0 204") { "204" } else { "200" })
    }

    /// The audit line of a decision on content: who asked, the content's hashes, the verdict,
    /// the entries matched, and for a match the HTTP request's target (what a takedown needs).
    /// Never content.
    fn audit(&self, verdict: &MatchVerdict, signals: &Signals) {
        let target = if counting_match(verdict).is_some() { self.target.as_deref() } else { None };
        let asker = Asker {
            protocol: "icap",
            client: self.client,
            token: None,
            action: self.head.method.name(),
            report: None,
        };
        audit(asker, verdict, signals, target);
    }
}

/// Whether `media_type` is one of `wanted`: `type/subtype`, or `type/` / `type/*` for all of a
/// type's subtypes.
fn media_type_matches(wanted: &str, media_type: &str) -> bool {
    let wanted = wanted.trim_end_matches('*');
    if wanted.ends_with('/') { media_type.starts_with(wanted) } else { media_type == wanted }
}

/// The contents of a form upload's parts; a part that does not parse ends the list (what came
/// before is still checked).
async fn form_parts(body: Vec<u8>, boundary: String) -> Vec<Bytes> {
    let stream = axum::body::Body::from(body).into_data_stream();
    let mut form = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    while let Ok(Some(field)) = form.next_field().await {
        match field.bytes().await {
            Ok(bytes) if !bytes.is_empty() => parts.push(bytes),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    parts
}
