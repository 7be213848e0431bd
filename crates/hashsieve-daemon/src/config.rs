//! The daemon's configuration: a TOML file, with safe defaults for everything but the index.
//!
//! ```toml
//! index = "/var/lib/hashsieve/lists"   # an index directory (or a single index file)
//! writable = true                      # take the directory's write lock: admins can change lists
//! reload_check_ms = 1000               # read-only: how often to look for changes (0: SIGHUP only)
//!
//! [http]
//! listen = "127.0.0.1:8427"
//!
//! [http.tls]                           # HTTPS (rustls); plain HTTP without this table
//! cert = "/etc/hashsieve/server.pem"   # certificate chain, PEM
//! key = "/etc/hashsieve/server.key"    # private key, PEM
//! client_ca = "/etc/hashsieve/ca.pem"  # optional: clients must present a certificate it signed
//! client_cert_optional = false         # with client_ca: also accept clients without one
//!
//! [clamd]                              # clamd's protocol, for antivirus plumbing; off unless set
//! unix_socket = "/run/hashsieve/clamd.sock"  # permissions decide who may ask (unauthenticated)
//! unix_socket_mode = "660"
//! tcp_listen = "127.0.0.1:3310"        # unauthenticated too: keep it on loopback
//! max_stream_bytes = 33554432          # INSTREAM and FILDES size limit (default: max_body_bytes)
//! idle_timeout_secs = 30               # a session may wait this long between commands
//! path_scans = true                    # SCAN/CONTSCAN/MULTISCAN/ALLMATCHSCAN on the Unix socket
//!
//! [icap]                               # ICAP (RFC 3507) for web proxies; off unless set
//! listen = "127.0.0.1:1344"            # services icap://HOST:PORT/respmod and /reqmod (unauthenticated)
//! preview_bytes = 4096                 # body bytes asked for before deciding to read the rest
//! options_ttl_secs = 60                # how long a proxy may keep the OPTIONS answer
//! idle_timeout_secs = 120              # between requests (the first comes within header_timeout_secs)
//! content_types = ["image/"]           # hashed by declared type ("type/" matches every subtype)
//! sniff = true                         # also hash what starts like an image, whatever its type
//! transfer_ignore = []                 # file extensions the proxy need not send at all
//! transfer_complete = []               # file extensions sent whole, without a preview
//! block_status = 403                   # the HTTP status of the block page (451 also fits)
//! block_page = "/etc/hashsieve/block.html"  # optional: {reason} {list} {kind} {category} {reference}
//! block_reason = "It is known child sexual abuse material."
//! max_body_bytes = 33554432            # a body held whole (uploads, clients without 204); default max_body_bytes
//!
//! [ingest]                             # hotline reports from a Redis Stream; off unless set
//! redis_url = "redis://127.0.0.1:6379/"
//! consumer = "hashsieve-a"             # this daemon's name in the group (default: the host name)
//! reports_stream = "hashsieve:reports" # entries: report_id, url or content, source
//! hashed_stream = "hashsieve:hashed"   # one entry per report: its hashes and matches
//! group = "hashsieve-hashing"          # every daemon of this group shares the reports
//! workers = 4                          # reports fetched and hashed at once (0: none here)
//! claim_idle_ms = 30000                # take over reports another consumer held this long
//! results_stream = "hashsieve:results" # with [triage]: one decision per report
//!
//! [triage]                             # the hotline's verdict memory and review API; off unless set
//! store = "/var/lib/hashsieve/triage.redb"  # on ONE daemon: it decides reports and serves reviewers
//! export_list = "hotline"              # illegal verdicts are added to this list (needs writable)
//! pdq_threshold = 31                   # near-duplicates: within this many bits of 256
//! near_known_is_known = true           # false: a perceptual-only list match goes to a person, with a hint
//!
//! [fetch]                              # fetching reported URLs (hashsieve-fetch): limits, proxy
//! max_response_bytes = 33554432
//!
//! [limits]
//! max_body_bytes = 33554432            # larger request bodies get 413
//! max_image_pixels = 100000000         # larger images are not decoded (digests still match)
//! request_timeout_secs = 30            # reading the body and answering, together
//! header_timeout_secs = 10             # a client must send its headers within this
//! max_connections = 1024               # further connections wait in the kernel's backlog
//! max_in_flight = 64                   # content being hashed at once; more gets 503
//! max_decode_bytes = 2147483648        # memory for decoding images at once; a larger image runs alone
//! write_timeout_secs = 10              # a client that takes nothing sent for this long is cut off
//! max_header_bytes = 65536             # an HTTP request head larger than this gets 431
//! max_hashes = 10000                   # hashes in one /v1/match/hashes request
//! max_list_bytes = 1073741824          # a whole list sent to PUT /v1/lists/{list}
//!
//! [[tokens]]                           # none: matching is open, list changes are refused
//! id = "ingest-1"
//! sha256 = "…64 hex digits: sha256 of the bearer token…"
//! roles = ["match"]                    # "match", "report", "review" and/or "admin" (all of them)
//! rate_per_sec = 500                   # optional: sustained requests a second (then 429)
//! burst = 1000                         # optional: requests at once above it (default: the rate)
//!
//! [logging]
//! json = false                         # one JSON object per line instead of text
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML for this schema.
    #[error("configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range or inconsistent.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Match content and hashes.
    Match,
    /// Submit reports to the hotline's triage (a public reporting form's back end, a partner).
    Report,
    /// Read the triage queue and the history of reports and items, and give verdicts: the
    /// hotline's analysts.
    Review,
    /// Read the URL block list: the hotline's ISP partners.
    Blocklist,
    /// Change lists and compact, as well as everything else.
    Admin,
}

/// A bearer token, stored as its SHA-256 so the configuration holds no secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Named in logs and the audit trail; never the token itself.
    pub id: String,
    /// SHA-256 of the token, in hex (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
    /// What it may do.
    pub roles: Vec<Role>,
    /// Requests a second this token may make, sustained; unlimited if unset.
    #[serde(default)]
    pub rate_per_sec: Option<u32>,
    /// Requests it may make at once above the sustained rate (the bucket's size); the rate if
    /// unset.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl TokenConfig {
    /// A token with no rate limit.
    pub fn new(id: &str, sha256: &str, roles: &[Role]) -> TokenConfig {
        TokenConfig {
            id: id.into(),
            sha256: sha256.into(),
            roles: roles.to_vec(),
            rate_per_sec: None,
            burst: None,
        }
    }
}

/// Where to listen for HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port; loopback by default.
    pub listen: SocketAddr,
    /// Serve HTTPS instead of plain HTTP.
    pub tls: Option<TlsConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)), tls: None }
    }
}

/// TLS certificate, key and client certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// CA certificates, PEM: clients must present a certificate they signed.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: accept clients without a certificate too (those with one must present
    /// a valid one).
    #[serde(default)]
    pub client_cert_optional: bool,
}

/// The port hashsieved listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8427;

/// The clamd-protocol listeners. clamd's protocol has no authentication: whoever can connect
/// can ask, so the Unix socket's file permissions or a loopback address are the access control.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClamdConfig {
    /// A Unix socket to listen on; replaced if stale, removed at exit.
    pub unix_socket: Option<PathBuf>,
    /// The socket's permissions, in octal.
    pub unix_socket_mode: String,
    /// A TCP address to listen on.
    pub tcp_listen: Option<SocketAddr>,
    /// Largest `INSTREAM` body or `FILDES` file (clamd's `StreamMaxLength`); the body limit if
    /// unset.
    pub max_stream_bytes: Option<u64>,
    /// How long a session may sit between commands.
    pub idle_timeout_secs: u64,
    /// Whether clients of the Unix socket may ask the daemon to read paths itself. Never over
    /// TCP, whose clients do not share this filesystem.
    pub path_scans: bool,
}

impl Default for ClamdConfig {
    fn default() -> Self {
        ClamdConfig {
            unix_socket: None,
            unix_socket_mode: "660".into(),
            tcp_listen: None,
            max_stream_bytes: None,
            idle_timeout_secs: 30,
            path_scans: true,
        }
    }
}

impl ClamdConfig {
    /// The socket's permission bits.
    pub fn socket_mode(&self) -> Result<u32, ConfigError> {
        u32::from_str_radix(&self.unix_socket_mode, 8).ok().filter(|mode| *mode <= 0o777).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "clamd.unix_socket_mode {:?} is not an octal mode",
                self.unix_socket_mode
            ))
        })
    }
}

/// The ICAP service. ICAP has no authentication of its own: listen on loopback or on the
/// proxies' network only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IcapConfig {
    /// The TCP address to listen on.
    pub listen: Option<SocketAddr>,
    /// The preview asked of clients in `OPTIONS`: enough to tell an image by its first bytes,
    /// and to take small images whole in one round trip.
    pub preview_bytes: u32,
    /// How long a client may cache the `OPTIONS` answer.
    pub options_ttl_secs: u64,
    /// How long a persistent connection may wait for its next request (its first must come
    /// within the header deadline).
    pub idle_timeout_secs: u64,
    /// Media types hashed by their declared type; `type/` (or `type/*`) matches every subtype.
    pub content_types: Vec<String>,
    /// Also hash bodies that start like an image whatever type they declare: a declared type
    /// is the sender's word.
    pub sniff: bool,
    /// File extensions advertised in `Transfer-Ignore`: the proxy does not send them at all.
    /// Extensions are the sender's choice too, so this trades checking for speed.
    pub transfer_ignore: Vec<String>,
    /// File extensions advertised in `Transfer-Complete`: sent whole, without a preview.
    pub transfer_complete: Vec<String>,
    /// The HTTP status served instead of blocked content.
    pub block_status: u16,
    /// A page of one's own to serve instead of blocked content.
    pub block_page: Option<PathBuf>,
    /// The block page's `{reason}`.
    pub block_reason: String,
    /// A URL block list to answer at REQMOD (the hotline's `plain` or `json` export), reread
    /// when it changes. The daemon holding the verdict memory uses its own cases instead.
    pub block_list: Option<PathBuf>,
    /// The largest body held whole: multipart uploads, and bodies echoed to clients that do
    /// not take 204. Bodies checked as they stream are not held; the body limit if unset.
    pub max_body_bytes: Option<u64>,
}

impl Default for IcapConfig {
    fn default() -> Self {
        IcapConfig {
            listen: None,
            preview_bytes: 4096,
            options_ttl_secs: 60,
            idle_timeout_secs: 120,
            content_types: vec!["image/".into()],
            sniff: true,
            transfer_ignore: Vec::new(),
            transfer_complete: Vec::new(),
            block_status: 403,
            block_page: None,
            block_reason: DEFAULT_BLOCK_REASON.into(),
            block_list: None,
            max_body_bytes: None,
        }
    }
}

/// The block page's `{reason}` unless configured.
pub const DEFAULT_BLOCK_REASON: &str = "It is known child sexual abuse material.";

/// The page served instead of blocked content, unless the configuration names another:
/// `{reason}`, `{list}`, `{kind}`, `{category}` and `{reference}` are replaced (HTML-escaped).
pub const DEFAULT_BLOCK_PAGE: &str = "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Blocked</title></head>
<body>
<h1>This content has been blocked</h1>
<p>{reason}</p>
<p>It matches an entry of the list <strong>{list}</strong> ({kind}{category}).</p>
<p>Reference: <code>{reference}</code></p>
</body></html>
";

/// Hotline reports consumed from a Redis Stream (see [`crate::ingest`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// The Redis server; no ingest without it.
    pub redis_url: Option<String>,
    /// This daemon's consumer name: stable across restarts, so that a restarted daemon
    /// finishes its own pending reports first. The host name if unset.
    pub consumer: Option<String>,
    /// The stream of reports.
    pub reports_stream: String,
    /// The stream the hashed reports go to.
    pub hashed_stream: String,
    /// The consumer group sharing the reports.
    pub group: String,
    /// Reports fetched and hashed at once; 0 for a daemon that only decides.
    pub workers: usize,
    /// The stream the decisions go to (by the daemon with a `[triage]` store).
    pub results_stream: String,
    /// The consumer group of the deciding daemon, which consumes the hashed stream.
    pub triage_group: String,
    /// Reports asked for at once.
    pub batch: usize,
    /// How long a read waits for new reports.
    pub block_ms: u64,
    /// A report pending this long with another consumer is taken over.
    pub claim_idle_ms: u64,
    /// How long a published result is remembered, so that a report delivered again within it
    /// is not published twice.
    pub marker_ttl_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            redis_url: None,
            consumer: None,
            reports_stream: "hashsieve:reports".into(),
            hashed_stream: "hashsieve:hashed".into(),
            group: "hashsieve-hashing".into(),
            workers: 4,
            results_stream: "hashsieve:results".into(),
            triage_group: "hashsieve-triage".into(),
            batch: 16,
            block_ms: 1000,
            claim_idle_ms: 30_000,
            marker_ttl_secs: 30 * 24 * 3600,
        }
    }
}

/// The hotline's verdict memory (see [`crate::verdict_memory`]): reports decided, review groups,
/// verdicts, and their export to the hotline's own list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriageConfig {
    /// The `hashsieve-triage` store. One daemon per store: it decides ingested reports and
    /// serves `/v1/reports`, `/v1/review` and `/v1/items`.
    pub store: Option<PathBuf>,
    /// The list illegal verdicts are exported to (created if missing; needs `writable`), so
    /// that the material is matched as known from then on, by every protocol. Not exported if
    /// unset.
    pub export_list: Option<String>,
    /// PDQ distance (of 256 bits) within which items are near-duplicates.
    pub pdq_threshold: u32,
    /// PDQ hashes of lower quality match by digest only.
    pub min_pdq_quality: u8,
    /// Whether a perceptual-only match to a hash list confirms a report as known without a
    /// person (the default); if false it goes to review, the match kept as a hint.
    pub near_known_is_known: bool,
}

impl Default for TriageConfig {
    fn default() -> Self {
        let library = hashsieve_triage::TriageOptions::default();
        TriageConfig {
            store: None,
            export_list: None,
            pdq_threshold: library.pdq_threshold,
            min_pdq_quality: library.min_pdq_quality,
            near_known_is_known: library.near_known_is_known,
        }
    }
}

/// The analysts' review page (see [`crate::http::page`]), on the daemon that holds the
/// verdict memory: off unless enabled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewUiConfig {
    /// Serve the page.
    pub enabled: bool,
    /// A session ends this long after sign-in, however busy.
    pub session_secs: u64,
    /// A session ends after this long without a request.
    pub idle_secs: u64,
    /// How long after a verdict the page offers to undo it.
    pub undo_secs: u64,
    /// The hotline's categories for illegal content, offered in this order (keys 1 to 9).
    pub categories: Vec<String>,
    /// The most content bytes held in memory for the page (least recently used go first).
    pub content_cache_bytes: u64,
    /// How long reported content is held in memory for the page.
    pub content_ttl_secs: u64,
    /// Whether the content of a URL report no longer held is fetched again when an analyst
    /// asks for it (it is shown only if it still has the item's digest or PDQ hash).
    pub refetch: bool,
    /// The longest side of a preview, in pixels, before the analyst asks for full size.
    pub preview_pixels: u32,
    /// Report sources to review first, most urgent first (the queue's order `priority`: a
    /// group reported from any of them by any member's report, by the best-ranked one).
    pub priority_sources: Vec<String>,
}

impl Default for ReviewUiConfig {
    fn default() -> Self {
        ReviewUiConfig {
            enabled: false,
            session_secs: 8 * 3600,
            idle_secs: 30 * 60,
            undo_secs: 30,
            categories: ["A", "B", "C"].map(String::from).to_vec(),
            content_cache_bytes: 256 << 20,
            content_ttl_secs: 24 * 3600,
            refetch: true,
            preview_pixels: 256,
            priority_sources: Vec::new(),
        }
    }
}

/// The takedown loop, on the daemon that holds the verdict memory (see [`crate::takedown`]):
/// where confirmed content is hosted, its re-checks until removal, referrals and the block
/// list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TakedownConfig {
    /// The hotline's name, in notices and referrals.
    pub hotline: String,
    /// The prefix of the hotline's notice references, e.g. "HNL": notice ids are
    /// `HNL-case-12`.
    pub reference: String,
    /// The hotline's country (ISO 3166-1 alpha-2): cases hosted elsewhere are referred.
    pub home_country: Option<String>,
    /// IP databases in MaxMind DB format (DB-IP Lite or GeoLite2 country and ASN files), for
    /// the hosting country and network of each fetched address.
    pub ip_databases: Vec<PathBuf>,
    /// The interval before each re-check, in seconds; the last repeats.
    pub check_intervals_secs: Vec<u64>,
    /// How far a re-check may move from its interval, in percent either way.
    pub jitter_percent: u8,
    /// Still online this long after the notice: escalated.
    pub escalate_after_secs: u64,
    /// Still online this long after confirmation: on the block list.
    pub block_after_secs: u64,
    /// Cases hosted abroad go on the block list at once.
    pub block_abroad_at_once: bool,
    /// The name of the block list's DNS response policy zone (absolute, with the dot).
    pub rpz_origin: String,
    /// The partner per hosting country that cases abroad are referred to.
    pub partners: std::collections::BTreeMap<String, String>,
    /// Whether this daemon re-checks cases (the scheduler runs where the store is).
    pub checks: bool,
    /// Re-checks of one host at once: a hotline never hammers a hosting provider.
    pub checks_per_host: usize,
    /// Re-checks at once, in all.
    pub max_checks: usize,
    /// Re-checks begun a second, at most: re-checks share the daemon's cores with the API,
    /// and a backlog (a restart after a long stop, thousands of cases confirmed at once) is
    /// worked off at this pace rather than at the expense of analysts and ISPs.
    pub max_checks_per_sec: u32,
    /// The hosting providers' abuse contacts: where notices go.
    pub contacts: Vec<ContactConfig>,
    /// Attempts at delivering a notice by webhook before it is left for sending by hand.
    pub notice_attempts: u32,
    /// The wait after a failed delivery, in seconds; doubled after each, up to 6 hours.
    pub notice_retry_secs: u64,
}

/// A hosting provider's abuse contact, from the hotline's own records (this daemon looks up
/// no WHOIS or RDAP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactConfig {
    /// Who it is, e.g. "Example Hosting abuse desk".
    pub name: String,
    /// For URLs on this host or its subdomains (the first such contact wins) …
    #[serde(default)]
    pub host: Option<String>,
    /// … or, failing a host, for content hosted in this network (AS number).
    #[serde(default)]
    pub asn: Option<u32>,
    /// Where notices are posted (`hashsieve-notice/1` JSON). Without one, notices to this
    /// contact are listed for sending by hand.
    #[serde(default)]
    pub webhook: Option<String>,
}

impl TakedownConfig {
    /// The abuse contact for content at `host` in network `asn`: by host first, then by
    /// network.
    pub fn contact(&self, host: &str, asn: Option<u32>) -> Option<&ContactConfig> {
        let on_host = |contact: &&ContactConfig| {
            contact.host.as_deref().is_some_and(|suffix| {
                let suffix = suffix.trim_end_matches('.').to_ascii_lowercase();
                host == suffix || host.strip_suffix(suffix.as_str()).is_some_and(|rest| rest.ends_with('.'))
            })
        };
        let in_network = |contact: &&ContactConfig| asn.is_some() && contact.asn == asn;
        self.contacts.iter().find(on_host).or_else(|| self.contacts.iter().find(in_network))
    }
}

impl Default for TakedownConfig {
    fn default() -> Self {
        let library = hashsieve_triage::takedown::TakedownOptions::default();
        TakedownConfig {
            hotline: "hashsieve hotline".into(),
            reference: "HS".into(),
            home_country: None,
            ip_databases: Vec::new(),
            check_intervals_secs: library.checks.intervals_ms.iter().map(|ms| ms / 1000).collect(),
            jitter_percent: library.checks.jitter_percent,
            escalate_after_secs: library.escalate_after_ms / 1000,
            block_after_secs: library.block_after_ms / 1000,
            block_abroad_at_once: library.block_abroad_at_once,
            rpz_origin: "rpz.hashsieve.invalid.".into(),
            partners: library.partners,
            checks: true,
            checks_per_host: 2,
            max_checks: 16,
            max_checks_per_sec: 20,
            contacts: Vec::new(),
            notice_attempts: 10,
            notice_retry_secs: 60,
        }
    }
}

impl Config {
    /// The triage store's options: matching from `[triage]`, the takedown policy from
    /// `[takedown]`.
    pub fn triage_options(&self) -> hashsieve_triage::TriageOptions {
        let (triage, takedown) = (&self.triage, &self.takedown);
        hashsieve_triage::TriageOptions {
            pdq_threshold: triage.pdq_threshold,
            min_pdq_quality: triage.min_pdq_quality,
            near_known_is_known: triage.near_known_is_known,
            takedown: hashsieve_triage::takedown::TakedownOptions {
                home_country: takedown.home_country.clone(),
                checks: hashsieve_triage::takedown::CheckSchedule {
                    intervals_ms: takedown.check_intervals_secs.iter().map(|secs| secs * 1000).collect(),
                    jitter_percent: takedown.jitter_percent,
                },
                escalate_after_ms: takedown.escalate_after_secs * 1000,
                block_after_ms: takedown.block_after_secs * 1000,
                block_abroad_at_once: takedown.block_abroad_at_once,
                partners: takedown.partners.clone(),
            },
        }
    }
}

/// Bounds on what one client can make the daemon do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: u64,
    /// Largest image decoded, in pixels.
    pub max_image_pixels: u64,
    /// Time to read a request's body and answer it.
    pub request_timeout_secs: u64,
    /// Time a client has to send a request's headers (and an idle connection to send the next).
    pub header_timeout_secs: u64,
    /// Connections served at once.
    pub max_connections: usize,
    /// Content hashed at once.
    pub max_in_flight: usize,
    /// Memory for decoding images at once, each counted by what its header says its decode
    /// takes; one image needing more waits for all of it (see [`crate::slots`]).
    pub max_decode_bytes: u64,
    /// How long a write may wait for the client to take something.
    pub write_timeout_secs: u64,
    /// The largest HTTP request head (request line and header fields).
    pub max_header_bytes: u64,
    /// Hashes in one lookup request.
    pub max_hashes: usize,
    /// Largest list sent whole to be refreshed.
    pub max_list_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 32 << 20,
            max_image_pixels: 100_000_000,
            request_timeout_secs: 30,
            header_timeout_secs: 10,
            max_connections: 1024,
            max_in_flight: 64,
            max_decode_bytes: 2 << 30,
            write_timeout_secs: 10,
            max_header_bytes: 64 << 10,
            max_hashes: 10_000,
            max_list_bytes: 1 << 30,
        }
    }
}

/// Log format.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// JSON lines instead of text.
    pub json: bool,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The index directory or file served.
    pub index: PathBuf,
    /// Open the index directory for writing, so that admins can change lists.
    #[serde(default)]
    pub writable: bool,
    /// How often a read-only daemon checks whether its index changed, in milliseconds (0: only
    /// on SIGHUP).
    #[serde(default = "default_reload_check_ms")]
    pub reload_check_ms: u64,
    /// HTTP listener.
    #[serde(default)]
    pub http: HttpConfig,
    /// clamd-protocol listeners.
    #[serde(default)]
    pub clamd: ClamdConfig,
    /// ICAP service.
    #[serde(default)]
    pub icap: IcapConfig,
    /// Queue ingest.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// The hotline's verdict memory and review API.
    #[serde(default)]
    pub triage: TriageConfig,
    /// The takedown loop after the verdict.
    #[serde(default)]
    pub takedown: TakedownConfig,
    /// The analysts' review page.
    #[serde(default)]
    pub review_ui: ReviewUiConfig,
    /// Fetching reported URLs, for ingest and `POST /v1/reports`.
    #[serde(default)]
    pub fetch: hashsieve_fetch::FetchPolicy,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Bearer tokens.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Logging.
    #[serde(default)]
    pub logging: Logging,
}

fn default_reload_check_ms() -> u64 {
    1000
}

impl Config {
    /// A configuration with defaults for everything but the index.
    pub fn for_index(index: PathBuf) -> Config {
        Config {
            index,
            writable: false,
            reload_check_ms: default_reload_check_ms(),
            http: HttpConfig::default(),
            clamd: ClamdConfig::default(),
            icap: IcapConfig::default(),
            ingest: IngestConfig::default(),
            triage: TriageConfig::default(),
            takedown: TakedownConfig::default(),
            review_ui: ReviewUiConfig::default(),
            fetch: hashsieve_fetch::FetchPolicy::default(),
            limits: Limits::default(),
            tokens: Vec::new(),
            logging: Logging::default(),
        }
    }

    /// Parses and checks a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |text: String| Err(ConfigError::Invalid(text));
        let limits = &self.limits;
        for (name, value) in [
            ("max_body_bytes", limits.max_body_bytes),
            ("max_image_pixels", limits.max_image_pixels),
            ("request_timeout_secs", limits.request_timeout_secs),
            ("header_timeout_secs", limits.header_timeout_secs),
            ("max_connections", limits.max_connections as u64),
            ("max_in_flight", limits.max_in_flight as u64),
            ("max_decode_bytes", limits.max_decode_bytes),
            ("write_timeout_secs", limits.write_timeout_secs),
            ("max_hashes", limits.max_hashes as u64),
            ("max_list_bytes", limits.max_list_bytes),
        ] {
            if value == 0 {
                return invalid(format!("limits.{name} must be at least 1"));
            }
        }
        if !(8 << 10..=1 << 20).contains(&limits.max_header_bytes) {
            return invalid("limits.max_header_bytes must be from 8 KiB to 1 MiB".into());
        }
        let takedown = &self.takedown;
        if takedown.check_intervals_secs.is_empty() || takedown.check_intervals_secs.contains(&0) {
            return invalid(
                "takedown.check_intervals_secs must list at least one interval, each at least 1".into(),
            );
        }
        if takedown.jitter_percent > 50
            || takedown.checks_per_host == 0
            || takedown.max_checks == 0
            || takedown.max_checks_per_sec == 0
        {
            return invalid(
                "takedown.jitter_percent must be at most 50; takedown.checks_per_host, max_checks and \
                 max_checks_per_sec at least 1"
                    .into(),
            );
        }
        for contact in &takedown.contacts {
            if contact.host.is_none() && contact.asn.is_none() {
                return invalid(format!("takedown.contacts: {:?} needs a host or an asn", contact.name));
            }
            if let Some(webhook) = &contact.webhook
                && !(webhook.starts_with("https://") || webhook.starts_with("http://"))
            {
                return invalid(format!("takedown.contacts: webhook {webhook:?} is not an http(s) URL"));
            }
        }
        if takedown.notice_attempts == 0 || takedown.notice_retry_secs == 0 {
            return invalid("takedown.notice_attempts and notice_retry_secs must be at least 1".into());
        }
        let country = |code: &str| code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase());
        if let Some(code) =
            takedown.home_country.iter().chain(takedown.partners.keys()).find(|code| !country(code))
        {
            return invalid(format!(
                "takedown: {code:?} is not an ISO 3166-1 alpha-2 country code such as \"NL\""
            ));
        }
        self.clamd.socket_mode()?;
        if self.clamd.idle_timeout_secs == 0 || self.clamd.max_stream_bytes == Some(0) {
            return invalid("clamd.idle_timeout_secs and clamd.max_stream_bytes must be at least 1".into());
        }
        let icap = &self.icap;
        if !(400..=599).contains(&icap.block_status) {
            return invalid(format!("icap.block_status {} is not an HTTP error status", icap.block_status));
        }
        if icap.preview_bytes > 1 << 20 || icap.idle_timeout_secs == 0 || icap.max_body_bytes == Some(0) {
            return invalid(
                "icap.preview_bytes must be at most 1 MiB; icap.idle_timeout_secs and icap.max_body_bytes at least 1"
                    .into(),
            );
        }
        for extension in icap.transfer_ignore.iter().chain(&icap.transfer_complete) {
            if extension.is_empty() || !extension.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return invalid(format!("icap: {extension:?} is not a file extension"));
            }
        }
        let ingest = &self.ingest;
        if ingest.batch == 0 || ingest.block_ms == 0 || ingest.claim_idle_ms == 0 {
            return invalid("ingest.batch, block_ms and claim_idle_ms must be at least 1".into());
        }
        if ingest.redis_url.is_some() && ingest.workers == 0 && self.triage.store.is_none() {
            return invalid("ingest: workers = 0 and no [triage] store leaves nothing to do".into());
        }
        let triage = &self.triage;
        if triage.pdq_threshold > 128 || triage.min_pdq_quality > 100 {
            return invalid("triage.pdq_threshold must be at most 128, min_pdq_quality at most 100".into());
        }
        if let Some(list) = &triage.export_list {
            if triage.store.is_none() {
                return invalid("triage.export_list needs a triage.store".into());
            }
            if !self.writable {
                return invalid(format!("triage.export_list {list:?} needs writable = true"));
            }
            if list.is_empty() {
                return invalid("triage.export_list cannot be empty".into());
            }
        }
        let review_ui = &self.review_ui;
        if review_ui.enabled {
            if triage.store.is_none() {
                return invalid("review_ui needs a triage.store: the page shows its queue".into());
            }
            if [review_ui.session_secs, review_ui.idle_secs, review_ui.content_ttl_secs].contains(&0)
                || !(32..=4096).contains(&review_ui.preview_pixels)
            {
                return invalid(
                    "review_ui.session_secs, idle_secs and content_ttl_secs must be at least 1; \
                     preview_pixels from 32 to 4096"
                        .into(),
                );
            }
            let category = |name: &String| !name.trim().is_empty() && name.len() <= 64;
            if review_ui.categories.is_empty()
                || review_ui.categories.len() > 9
                || !review_ui.categories.iter().all(category)
            {
                return invalid(
                    "review_ui.categories must name 1 to 9 categories of 1 to 64 characters".into(),
                );
            }
        }
        let mut ids = std::collections::HashSet::new();
        for token in &self.tokens {
            if !ids.insert(&token.id) {
                return invalid(format!("two tokens have id {:?}", token.id));
            }
            if token.sha256.len() != 64 || hex::decode(&token.sha256).is_err() {
                return invalid(format!("token {:?}: sha256 must be 64 hex digits", token.id));
            }
            if token.roles.is_empty() {
                return invalid(format!("token {:?} has no roles", token.id));
            }
            if token.rate_per_sec == Some(0) || token.burst == Some(0) {
                return invalid(format!("token {:?}: rate_per_sec and burst must be at least 1", token.id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_bounded() {
        let config = Config::from_toml("index = \"/srv/lists\"").unwrap();
        assert!(config.http.listen.ip().is_loopback());
        assert!(!config.writable);
        assert_eq!(config.limits.max_body_bytes, 32 << 20);
        assert!(config.tokens.is_empty());
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = Config::from_toml("index = \"x\"\nlisten = \"0.0.0.0:1\"").unwrap_err();
        assert!(unknown.to_string().contains("unknown field"), "{unknown}");
        let zero = Config::from_toml("index = \"x\"\n[limits]\nmax_in_flight = 0").unwrap_err();
        assert!(zero.to_string().contains("max_in_flight"), "{zero}");
        let token = "index = \"x\"\n[[tokens]]\nid = \"a\"\nsha256 = \"abc\"\nroles = [\"match\"]";
        assert!(Config::from_toml(token).unwrap_err().to_string().contains("64 hex digits"));
        let role = "index = \"x\"\n[[tokens]]\nid = \"a\"\nsha256 = \"\"\nroles = [\"root\"]";
        assert!(Config::from_toml(role).unwrap_err().to_string().contains("unknown variant"));
        let export = "index = \"x\"\n[triage]\nstore = \"t.redb\"\nexport_list = \"hotline\"";
        assert!(Config::from_toml(export).unwrap_err().to_string().contains("needs writable = true"));
        let no_store = "index = \"x\"\nwritable = true\n[triage]\nexport_list = \"hotline\"";
        assert!(Config::from_toml(no_store).unwrap_err().to_string().contains("needs a triage.store"));
        let idle = "index = \"x\"\n[ingest]\nredis_url = \"redis://127.0.0.1/\"\nworkers = 0";
        assert!(Config::from_toml(idle).unwrap_err().to_string().contains("nothing to do"));
    }

    /// The configuration the Debian package installs as /etc/hashsieve/hashsieved.toml.
    const SHIPPED: &str = include_str!("../../../packaging/debian/hashsieved.toml");

    #[test]
    fn the_shipped_configuration_serves_the_state_directory_on_loopback() {
        let config = Config::from_toml(SHIPPED).unwrap();
        assert_eq!(config.index, PathBuf::from("/var/lib/hashsieve/lists"));
        assert!(config.http.listen.ip().is_loopback());
        assert!(!config.writable && config.tokens.is_empty() && config.triage.store.is_none());
        assert!(config.clamd.unix_socket.is_none() && config.icap.listen.is_none());
    }

    #[test]
    fn every_commented_out_setting_of_the_shipped_configuration_is_a_real_one() {
        // Uncommented, each `#key = value` and `#[table]` line must be in the schema (which
        // denies unknown fields); the limits shown must be the defaults they claim to be.
        fn setting(line: &str) -> Option<&str> {
            line.strip_prefix('#').filter(|rest| {
                rest.starts_with('[') || rest.split_once(" = ").is_some_and(|(key, _)| !key.contains(' '))
            })
        }
        let uncommented: String =
            SHIPPED.lines().map(|line| format!("{}\n", setting(line).unwrap_or(line))).collect();
        assert!(uncommented.len() > SHIPPED.len() / 2 && uncommented != SHIPPED.replace("\r", ""));
        let config: Config = toml::from_str(&uncommented).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(format!("{:?}", config.limits), format!("{:?}", Limits::default()));
        assert_eq!(config.tokens.len(), 1);
        assert!(
            config.clamd.unix_socket.is_some()
                && config.icap.listen.is_some()
                && config.triage.store.is_some()
        );
    }
}
