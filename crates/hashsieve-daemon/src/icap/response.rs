//! ICAP responses: `OPTIONS`, `100 Continue`, `204 No Content`, the unchanged message echoed
//! back, the block response, and errors.

use hashsieve_core::matcher::Match;

use crate::verdict::signature;

/// What a block response says, and the page it carries.
#[derive(Debug, Clone)]
pub struct BlockPage {
    /// The HTTP status served to the user (403, or 451 "Unavailable For Legal Reasons").
    pub status: u16,
    /// The page, with its placeholders.
    pub template: String,
    /// The `{reason}` text.
    pub reason: String,
}

impl BlockPage {
    /// The encapsulated HTTP response that replaces content matching `found`: a short page
    /// naming the reason and the list, never the content.
    fn http_response(&self, found: &Match) -> (String, String) {
        let category = found.category.as_deref().map(|c| format!(", {c}")).unwrap_or_default();
        self.page(&found.list, found.kind.name(), &category, &signature(found))
    }

    /// The page with its placeholders filled: `{list}` the list, `{kind}` what matched,
    /// `{category}` ", A" or nothing, `{reference}` the threat name.
    fn page(&self, list: &str, kind: &str, category: &str, reference: &str) -> (String, String) {
        let page = self
            .template
            .replace("{reason}", &escape(&self.reason))
            .replace("{list}", &escape(list))
            .replace("{kind}", kind)
            .replace("{category}", &escape(category))
            .replace("{reference}", &escape(reference));
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            reason_phrase(self.status),
            page.len()
        );
        (head, page)
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        403 => "Forbidden",
        451 => "Unavailable For Legal Reasons",
        404 => "Not Found",
        410 => "Gone",
        _ => "Blocked",
    }
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The headers every response carries.
fn status_line(status: &str, istag: &str) -> String {
    format!("ICAP/1.0 {status}\r\nISTag: {istag}\r\nServer: hashsieved/{}\r\n", env!("CARGO_PKG_VERSION"))
}

/// What an `OPTIONS` response advertises.
pub struct Options<'a> {
    /// The one method of the service asked about.
    pub method: &'static str,
    /// The service's tag.
    pub istag: &'a str,
    /// Body bytes wanted before deciding whether to see the rest.
    pub preview: u32,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long the client may cache this response.
    pub ttl_secs: u64,
    /// File extensions the client need not send at all.
    pub transfer_ignore: &'a [String],
    /// File extensions to send whole, without a preview.
    pub transfer_complete: &'a [String],
}

/// The `OPTIONS` response.
pub fn options(options: &Options<'_>) -> Vec<u8> {
    let mut head = status_line("200 OK", options.istag);
    head.push_str(&format!(
        "Methods: {}\r\nService: hashsieve known-content check {}\r\nService-ID: hashsieve\r\n\
         Max-Connections: {}\r\nOptions-TTL: {}\r\nAllow: 204\r\nPreview: {}\r\nTransfer-Preview: *\r\n",
        options.method,
        env!("CARGO_PKG_VERSION"),
        options.max_connections,
        options.ttl_secs,
        options.preview,
    ));
    if !options.transfer_ignore.is_empty() {
        head.push_str(&format!("Transfer-Ignore: {}\r\n", options.transfer_ignore.join(", ")));
    }
    if !options.transfer_complete.is_empty() {
        head.push_str(&format!("Transfer-Complete: {}\r\n", options.transfer_complete.join(", ")));
    }
    head.push_str("Encapsulated: null-body=0\r\n\r\n");
    head.into_bytes()
}

/// Asks for the rest of the body after a preview.
pub const CONTINUE: &[u8] = b"ICAP/1.0 100 Continue\r\n\r\n";

/// The content may pass unchanged.
pub fn no_content(istag: &str) -> Vec<u8> {
    let mut head = status_line("204 No Content", istag);
    head.push_str("Encapsulated: null-body=0\r\n\r\n");
    head.into_bytes()
}

/// The start of the unchanged message sent back to a client that does not take 204: the HTTP
/// head as received, then its body is sent chunked with [`chunk`] and [`LAST_CHUNK`].
/// `request` says whether the message is a request (REQMOD) or a response (RESPMOD).
pub fn echo_head(istag: &str, http_head: &[u8], request: bool, has_body: bool) -> Vec<u8> {
    let mut head = status_line("200 OK", istag);
    let (hdr, body) = if request { ("req-hdr", "req-body") } else { ("res-hdr", "res-body") };
    let body = if has_body { body } else { "null-body" };
    head.push_str(&format!("Encapsulated: {hdr}=0, {body}={}\r\n\r\n", http_head.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(http_head);
    out
}

/// One chunk of a body sent back.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The end of a body sent back.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The response that replaces content matching `found` — in RESPMOD, the user gets the block
/// page instead of the response; in REQMOD, instead of the request going out. The threat is
/// also named the way antivirus ICAP services name it, for proxies that log it.
pub fn blocked(istag: &str, page: &BlockPage, found: &Match) -> Vec<u8> {
    let (http_head, body) = page.http_response(found);
    block_response(istag, &signature(found), &http_head, &body)
}

/// A block page as the ICAP answer, naming the threat as antivirus ICAP services do.
fn block_response(istag: &str, threat: &str, http_head: &str, body: &str) -> Vec<u8> {
    let mut head = status_line("200 OK", istag);
    head.push_str(&format!(
        "X-Infection-Found: Type=0; Resolution=2; Threat={threat};\r\nEncapsulated: res-hdr=0, res-body={}\r\n\r\n",
        http_head.len()
    ));
    let mut out = head.into_bytes();
    out.extend_from_slice(http_head.as_bytes());
    out.extend_from_slice(&chunk(body.as_bytes()));
    out.extend_from_slice(LAST_CHUNK);
    out
}

/// The threat name of a request blocked by the URL block list, for proxies that log it.
pub const URL_BLOCK_THREAT: &str = "hashsieve.url-block-list";

/// The response to a request for a URL on the block list (REQMOD): the block page instead of
/// the request going out, so that the origin is never contacted.
pub fn blocked_url(istag: &str, page: &BlockPage, whole_host: bool) -> Vec<u8> {
    let kind = if whole_host { "host" } else { "url" };
    let (http_head, body) = page.page("url-block-list", kind, "", URL_BLOCK_THREAT);
    block_response(istag, URL_BLOCK_THREAT, &http_head, &body)
}

/// An error response; the connection closes after it.
pub fn error(status: &str, istag: &str) -> Vec<u8> {
    let mut head = status_line(status, istag);
    head.push_str("Connection: close\r\nEncapsulated: null-body=0\r\n\r\n");
    head.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_BLOCK_PAGE, DEFAULT_BLOCK_REASON};
    use hashsieve_core::hashes::HashKind;

    fn found(list: &str) -> Match {
        Match {
            list: list.into(),
            entry_id: Some("demo-wee.jpg".into()),
            category: Some("<b>A</b>".into()),
            source: None,
            kind: HashKind::Md5,
            value: "8bbbaa9540800e378beadc8bbef7bb32".into(),
            distance: 0,
            variant: None,
            suppressed_by: None,
        }
    }

    #[test]
    fn the_block_page_names_list_and_reason_escaped() {
        let page = BlockPage {
            status: 451,
            template: DEFAULT_BLOCK_PAGE.into(),
            reason: DEFAULT_BLOCK_REASON.into(),
        };
        let (head, body) = page.http_response(&found("demo<script>"));
        assert!(head.starts_with("HTTP/1.1 451 Unavailable For Legal Reasons\r\n"));
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(body.contains("<strong>demo&lt;script&gt;</strong> (md5, &lt;b&gt;A&lt;/b&gt;)"));
        assert!(body.contains("HashSieve.demo_script_.md5.demo-wee.jpg"));
        assert!(body.contains(DEFAULT_BLOCK_REASON));
    }

    #[test]
    fn the_block_response_offsets_are_right() {
        let page = BlockPage {
            status: 403,
            template: DEFAULT_BLOCK_PAGE.into(),
            reason: DEFAULT_BLOCK_REASON.into(),
        };
        let response = blocked("\"t\"", &page, &found("demo"));
        let text = String::from_utf8(response).unwrap();
        let (icap, rest) = text.split_once("\r\n\r\n").unwrap();
        let offset: usize = icap
            .lines()
            .find_map(|line| line.strip_prefix("Encapsulated: res-hdr=0, res-body="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            rest[..offset].starts_with("HTTP/1.1 403 Forbidden\r\n") && rest[..offset].ends_with("\r\n\r\n")
        );
        assert!(rest.ends_with("\r\n0\r\n\r\n"));
    }
}
