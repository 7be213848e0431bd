//! The ICAP wire format (RFC 3507), without I/O: finding one request head in the bytes
//! received so far, its `Encapsulated` header, the HTTP headers it carries, and the chunk
//! lines of a body.
//!
//! A request is an ICAP head (request line and headers, like HTTP's but `ICAP/1.0`), then the
//! encapsulated HTTP message: its header sections back to back, at the byte offsets the
//! `Encapsulated` header names, and its body chunked as in HTTP/1.1. A chunk line may carry
//! the `ieof` extension, which ends a preview and says no more body follows.
//!
//! Every function tells "need more bytes" (`Ok(None)`) apart from "these bytes can never be
//! valid" (`Err`), and every length a client names is bounded before anything is allocated.

use std::ops::Range;

/// The longest ICAP head accepted. Real heads are a few hundred bytes; without a bound a
/// client that never ends its head would grow the buffer for ever.
pub const MAX_HEAD_BYTES: usize = 16 << 10;

/// The most header fields in an ICAP head or an encapsulated HTTP head.
pub const MAX_HEADERS: usize = 128;

/// The longest encapsulated HTTP header sections, together (request and response heads as a
/// proxy forwards them, cookies included).
pub const MAX_ENCAPSULATED_HEADER_BYTES: usize = 64 << 10;

/// The longest chunk-size line, extensions included.
const MAX_CHUNK_LINE_BYTES: usize = 1 << 10;

/// Why bytes cannot be an ICAP request. Each maps to the ICAP status sent before closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The head is longer than [`MAX_HEAD_BYTES`].
    #[error("request head longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLong,
    /// More than [`MAX_HEADERS`] header fields.
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    /// Not `METHOD URI ICAP/1.0`, or a header that does not parse.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// A method ICAP does not define.
    #[error("method not implemented")]
    UnknownMethod,
    /// A version other than ICAP/1.0.
    #[error("ICAP version not supported")]
    Version,
    /// A RESPMOD or REQMOD without `Encapsulated`.
    #[error("missing Encapsulated header")]
    MissingEncapsulated,
    /// An `Encapsulated` header that is not a valid list of sections.
    #[error("bad Encapsulated header: {0}")]
    BadEncapsulated(&'static str),
    /// The encapsulated HTTP headers do not parse.
    #[error("bad encapsulated HTTP headers: {0}")]
    BadHttp(&'static str),
    /// A chunk-size line that is not hexadecimal, overflows, or is too long.
    #[error("bad chunk: {0}")]
    BadChunk(&'static str),
}

impl FrameError {
    /// The ICAP status line sent for this error.
    pub fn status(&self) -> &'static str {
        match self {
            FrameError::UnknownMethod => "501 Method Not Implemented",
            FrameError::Version => "505 ICAP Version Not Supported",
            _ => "400 Bad Request",
        }
    }
}

/// The ICAP methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Asks what a service does and how to talk to it.
    Options,
    /// An HTTP response to check (content coming back to a user).
    Respmod,
    /// An HTTP request to check (an upload going out).
    Reqmod,
}

impl Method {
    /// The method's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Method::Options => "OPTIONS",
            Method::Respmod => "RESPMOD",
            Method::Reqmod => "REQMOD",
        }
    }
}

/// The sections of the encapsulated message, as offsets from the end of the ICAP head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encapsulated {
    /// The encapsulated HTTP request head.
    pub req_hdr: Option<Range<usize>>,
    /// The encapsulated HTTP response head.
    pub res_hdr: Option<Range<usize>>,
    /// Where the header sections end and the body, if any, begins.
    pub body_offset: usize,
    /// Whether a chunked body follows (`req-body`, `res-body` or `opt-body`, not `null-body`).
    pub has_body: bool,
}

/// One ICAP request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The service asked for: the request URI's path without its leading `/` or query.
    pub service: String,
    /// The encapsulated sections (empty for an OPTIONS without a body).
    pub encapsulated: Encapsulated,
    /// `Preview: n`: the first `n` body bytes come first, and the rest only after
    /// `100 Continue`.
    pub preview: Option<u64>,
    /// `Allow: 204`: the client takes "no modification" outside a preview.
    pub allow_204: bool,
    /// `Connection: close`.
    pub close: bool,
}

/// Finds the request head at the start of `buffer`: the head and how many bytes it used, or
/// `Ok(None)` if it has not all arrived.
pub fn parse_head(buffer: &[u8]) -> Result<Option<(RequestHead, usize)>, FrameError> {
    let Some(end) = find(buffer, b"\r\n\r\n") else {
        return if buffer.len() >= MAX_HEAD_BYTES { Err(FrameError::HeadTooLong) } else { Ok(None) };
    };
    let consumed = end + 4;
    if consumed > MAX_HEAD_BYTES {
        return Err(FrameError::HeadTooLong);
    }
    let line_end = find(buffer, b"\r\n").expect("the head has a line");
    let line = std::str::from_utf8(&buffer[..line_end]).map_err(|_| FrameError::Malformed("request line"))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FrameError::Malformed("request line"));
    };
    let method = match method {
        "OPTIONS" => Method::Options,
        "RESPMOD" => Method::Respmod,
        "REQMOD" => Method::Reqmod,
        _ => return Err(FrameError::UnknownMethod),
    };
    if version != "ICAP/1.0" {
        return Err(if version.starts_with("ICAP/") {
            FrameError::Version
        } else {
            FrameError::Malformed("request line")
        });
    }
    let service = service_of(uri)?;

    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let headers = match httparse::parse_headers(&buffer[line_end + 2..consumed], &mut fields) {
        Ok(httparse::Status::Complete((_, headers))) => headers,
        Ok(httparse::Status::Partial) => return Err(FrameError::Malformed("header fields")),
        Err(httparse::Error::TooManyHeaders) => return Err(FrameError::TooManyHeaders),
        Err(_) => return Err(FrameError::Malformed("header fields")),
    };
    let mut head = RequestHead {
        method,
        service,
        encapsulated: Encapsulated::default(),
        preview: None,
        allow_204: false,
        close: false,
    };
    let mut encapsulated = None;
    for header in headers.iter() {
        let value = std::str::from_utf8(header.value).map_err(|_| FrameError::Malformed("header value"))?;
        let value = value.trim();
        if header.name.eq_ignore_ascii_case("Encapsulated") {
            encapsulated = Some(parse_encapsulated(value, method)?);
        } else if header.name.eq_ignore_ascii_case("Preview") {
            head.preview = Some(value.parse().map_err(|_| FrameError::Malformed("Preview"))?);
        } else if header.name.eq_ignore_ascii_case("Allow") {
            head.allow_204 |= value.split(',').any(|code| code.trim() == "204");
        } else if header.name.eq_ignore_ascii_case("Connection") {
            head.close |= value.split(',').any(|token| token.trim().eq_ignore_ascii_case("close"));
        }
    }
    match (encapsulated, method) {
        (Some(sections), _) => head.encapsulated = sections,
        (None, Method::Options) => {}
        (None, _) => return Err(FrameError::MissingEncapsulated),
    }
    Ok(Some((head, consumed)))
}

/// The service named by an `icap://host[:port]/service[?query]` URI.
fn service_of(uri: &str) -> Result<String, FrameError> {
    let rest = uri
        .strip_prefix("icap://")
        .or_else(|| uri.strip_prefix("icaps://"))
        .ok_or(FrameError::Malformed("request URI"))?;
    let path = rest.find('/').map_or("", |slash| &rest[slash + 1..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    Ok(path.trim_end_matches('/').to_string())
}

/// Parses `req-hdr=0, res-hdr=137, res-body=296`: offsets from zero, in order, ending with
/// exactly one body section, with the sections `method` allows.
fn parse_encapsulated(value: &str, method: Method) -> Result<Encapsulated, FrameError> {
    let bad = FrameError::BadEncapsulated;
    let mut sections = Encapsulated::default();
    let mut previous: Option<(&str, usize)> = None;
    let mut body = None;
    for entity in value.split(',') {
        if body.is_some() {
            return Err(bad("a section follows the body"));
        }
        let (name, offset) = entity.trim().split_once('=').ok_or(bad("expected name=offset"))?;
        let offset = (offset.len() <= 7)
            .then(|| offset.parse::<usize>().ok())
            .flatten()
            .ok_or(bad("offset is not a small decimal number"))?;
        match previous {
            None if offset != 0 => return Err(bad("the first section must start at 0")),
            Some((_, before)) if offset < before => return Err(bad("offsets go backwards")),
            _ => {}
        }
        if let Some((previous_name, start)) = previous {
            let range = start..offset;
            match previous_name {
                "req-hdr" => sections.req_hdr = Some(range),
                _ => sections.res_hdr = Some(range),
            }
        }
        match (name, method) {
            ("req-hdr", Method::Respmod | Method::Reqmod) if previous.is_none() => {}
            ("res-hdr", Method::Respmod) if previous.is_none_or(|(name, _)| name == "req-hdr") => {}
            ("req-body", Method::Reqmod) | ("res-body", Method::Respmod) | ("opt-body", Method::Options) => {
                body = Some((offset, true))
            }
            ("null-body", _) => body = Some((offset, false)),
            ("req-hdr" | "res-hdr" | "req-body" | "res-body" | "opt-body", _) => {
                return Err(bad("a section out of place for this method"));
            }
            _ => return Err(bad("unknown section")),
        }
        previous = Some((name, offset));
    }
    let (body_offset, has_body) = body.ok_or(bad("no body section"))?;
    if body_offset > MAX_ENCAPSULATED_HEADER_BYTES {
        return Err(bad("encapsulated headers too long"));
    }
    sections.body_offset = body_offset;
    sections.has_body = has_body;
    Ok(sections)
}

/// What hashsieve needs to know of an encapsulated HTTP head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpHead {
    /// The response status, for a response head.
    pub status: Option<u16>,
    /// The request method, for a request head.
    pub method: Option<String>,
    /// The request target, for a request head (for the audit line of a match, and the URL
    /// block list).
    pub target: Option<String>,
    /// `Host`, for a request head.
    pub host: Option<String>,
    /// `Content-Type`'s media type, lowercased, parameters dropped.
    pub media_type: Option<String>,
    /// `Content-Type` whole, for a multipart boundary.
    pub content_type: Option<String>,
    /// `Content-Encoding`, lowercased, if any but `identity`.
    pub encoding: Option<String>,
}

/// Parses an encapsulated HTTP request or response head (ending with an empty line).
pub fn parse_http_head(bytes: &[u8]) -> Result<HttpHead, FrameError> {
    let bad = FrameError::BadHttp;
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = HttpHead::default();
    let headers: &[httparse::Header<'_>] = if bytes.starts_with(b"HTTP/") {
        let mut response = httparse::Response::new(&mut fields);
        match response.parse(bytes) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(bad("response head is cut short")),
            Err(httparse::Error::TooManyHeaders) => return Err(FrameError::TooManyHeaders),
            Err(_) => return Err(bad("response head")),
        }
        head.status = response.code;
        response.headers
    } else {
        let mut request = httparse::Request::new(&mut fields);
        match request.parse(bytes) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(bad("request head is cut short")),
            Err(httparse::Error::TooManyHeaders) => return Err(FrameError::TooManyHeaders),
            Err(_) => return Err(bad("request head")),
        }
        head.target = request.path.map(str::to_string);
        head.method = request.method.map(str::to_string);
        request.headers
    };
    for header in headers {
        let Ok(value) = std::str::from_utf8(header.value) else { continue };
        if header.name.eq_ignore_ascii_case("Content-Type") {
            let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            head.media_type = Some(essence);
            head.content_type = Some(value.trim().to_string());
        } else if header.name.eq_ignore_ascii_case("Host") {
            head.host = Some(value.trim().to_string());
        } else if header.name.eq_ignore_ascii_case("Content-Encoding") {
            let encoding = value.trim().to_ascii_lowercase();
            if !encoding.is_empty() && encoding != "identity" {
                head.encoding = Some(encoding);
            }
        }
    }
    Ok(head)
}

/// A chunk-size line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLine {
    /// The chunk's length; zero ends the body (or the preview).
    pub size: u64,
    /// The `ieof` extension: the body ends here, even within a preview.
    pub ieof: bool,
    /// The line's length, CRLF included.
    pub consumed: usize,
}

/// Finds the chunk-size line at the start of `buffer`.
pub fn parse_chunk_line(buffer: &[u8]) -> Result<Option<ChunkLine>, FrameError> {
    let bad = FrameError::BadChunk;
    let Some(end) = find(&buffer[..buffer.len().min(MAX_CHUNK_LINE_BYTES)], b"\r\n") else {
        return if buffer.len() >= MAX_CHUNK_LINE_BYTES { Err(bad("chunk line too long")) } else { Ok(None) };
    };
    let line = std::str::from_utf8(&buffer[..end]).map_err(|_| bad("chunk line is not text"))?;
    let (digits, extensions) = line.split_once(';').unwrap_or((line, ""));
    let digits = digits.trim_end_matches([' ', '\t']);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("chunk size is not a hexadecimal number of at most 15 digits"));
    }
    let size = u64::from_str_radix(digits, 16).expect("checked hexadecimal digits");
    let ieof = extensions.split(';').any(|extension| extension.trim().eq_ignore_ascii_case("ieof"));
    Ok(Some(ChunkLine { size, ieof, consumed: end + 2 }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQUID_RESPMOD: &[u8] = b"RESPMOD icap://127.0.0.1:1344/respmod ICAP/1.0\r\n\
Host: 127.0.0.1:1344\r\nDate: Wed, 25 Nov 2026 08:00:00 GMT\r\n\
Encapsulated: req-hdr=0, res-hdr=43, res-body=104\r\nPreview: 1024\r\nAllow: 204, trailers\r\n\r\n";

    #[test]
    fn a_squid_respmod_head_parses() {
        let (head, consumed) = parse_head(SQUID_RESPMOD).unwrap().unwrap();
        assert_eq!(consumed, SQUID_RESPMOD.len());
        assert_eq!(head.method, Method::Respmod);
        assert_eq!(head.service, "respmod");
        assert_eq!(head.preview, Some(1024));
        assert!(head.allow_204 && !head.close);
        assert_eq!(
            head.encapsulated,
            Encapsulated { req_hdr: Some(0..43), res_hdr: Some(43..104), body_offset: 104, has_body: true }
        );
    }

    #[test]
    fn a_head_needs_all_its_bytes() {
        for cut in 0..SQUID_RESPMOD.len() {
            assert_eq!(parse_head(&SQUID_RESPMOD[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn bad_heads_are_refused_with_their_status() {
        let cases: &[(&[u8], &str)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", "501"),
            (b"RESPMOD icap://x/respmod ICAP/2.0\r\n\r\n", "505"),
            (b"RESPMOD icap://x/respmod HTTP/1.0\r\n\r\n", "400"),
            (b"RESPMOD /respmod ICAP/1.0\r\n\r\n", "400"),
            (b"RESPMOD icap://x/respmod ICAP/1.0\r\nHost: x\r\n\r\n", "400"),
            (b"RESPMOD icap://x/respmod ICAP/1.0\r\nEncapsulated: res-body=5\r\n\r\n", "400"),
            (b"RESPMOD icap://x/respmod ICAP/1.0\r\nEncapsulated: res-hdr=0, req-hdr=9, null-body=12\r\n\r\n", "400"),
            (b"RESPMOD icap://x/respmod ICAP/1.0\r\nEncapsulated: res-hdr=0, res-body=99999999\r\n\r\n", "400"),
            (b"RESPMOD icap://x/respmod ICAP/1.0\r\nEncapsulated: res-hdr=0\r\n\r\n", "400"),
            (b"RESPMOD icap://x/respmod ICAP/1.0\r\nEncapsulated: res-hdr=0, res-body=9, null-body=9\r\n\r\n", "400"),
            (b"REQMOD icap://x/reqmod ICAP/1.0\r\nEncapsulated: req-hdr=0, res-body=9\r\n\r\n", "400"),
            (b"REQMOD icap://x/reqmod ICAP/1.0\r\nEncapsulated: req-hdr=10, req-body=9\r\n\r\n", "400"),
            (b"RESPMOD icap://x/respmod ICAP/1.0\r\nEncapsulated: null-body=0\r\nPreview: many\r\n\r\n", "400"),
            (b"RESPMOD icap://x/respmod ICAP/1.0\r\nno colon here\r\n\r\n", "400"),
        ];
        for (input, status) in cases {
            let err = parse_head(input).expect_err(&String::from_utf8_lossy(input));
            assert!(err.status().starts_with(status), "{input:?}: {err} ({})", err.status());
        }
    }

    #[test]
    fn floods_are_bounded() {
        let mut endless = b"RESPMOD icap://x/respmod ICAP/1.0\r\n".to_vec();
        endless.resize(MAX_HEAD_BYTES, b'a');
        assert_eq!(parse_head(&endless), Err(FrameError::HeadTooLong));
        let mut many = b"OPTIONS icap://x/respmod ICAP/1.0\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&many), Err(FrameError::TooManyHeaders));
    }

    #[test]
    fn options_needs_no_encapsulated_header() {
        let (head, _) = parse_head(b"OPTIONS icap://h:1344/reqmod?x=1 ICAP/1.0\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((head.method, head.service.as_str(), head.close), (Method::Options, "reqmod", true));
        assert!(!head.encapsulated.has_body);
    }

    #[test]
    fn http_heads_give_their_content_type() {
        let head =
            parse_http_head(b"HTTP/1.1 200 OK\r\nContent-Type: Image/JPEG; q=1\r\nContent-Length: 5\r\n\r\n")
                .unwrap();
        assert_eq!((head.status, head.media_type.as_deref()), (Some(200), Some("image/jpeg")));
        let head = parse_http_head(b"POST http://x/up HTTP/1.1\r\nContent-Encoding: gzip\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(head.target.as_deref(), Some("http://x/up"));
        assert_eq!(head.encoding.as_deref(), Some("gzip"));
        assert!(parse_http_head(b"HTTP/1.1 200 OK\r\nContent-Type: x\r\n").is_err());
        assert!(parse_http_head(b"\x00\x01garbage\r\n\r\n").is_err());
    }

    #[test]
    fn chunk_lines() {
        assert_eq!(parse_chunk_line(b"1f4\r\n"), Ok(Some(ChunkLine { size: 500, ieof: false, consumed: 5 })));
        assert_eq!(
            parse_chunk_line(b"0; ieof\r\n"),
            Ok(Some(ChunkLine { size: 0, ieof: true, consumed: 9 }))
        );
        assert!(parse_chunk_line(b"0;x=1;IEOF\r\n").unwrap().unwrap().ieof);
        assert_eq!(parse_chunk_line(b"1f4"), Ok(None));
        for bad in [&b"\r\n"[..], b"-1\r\n", b"zz\r\n", b"1234567890abcdef\r\n", b" 5\r\n"] {
            assert!(parse_chunk_line(bad).is_err(), "{bad:?}");
        }
        assert!(parse_chunk_line(&[b'1'; MAX_CHUNK_LINE_BYTES]).is_err());
    }
}
