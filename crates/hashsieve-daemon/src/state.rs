//! What every protocol shares: the index being served, who may do what, the limits, the
//! hashing slots, the metrics and the hotline's verdict memory. No protocol owns it; each
//! holds an `Arc` of it.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hashsieve_core::matcher::Matcher;
use tokio::sync::Notify;

use crate::auth::Tokens;
use crate::blocked_urls::{BlockedUrls, CurrentList};
use crate::config::{Config, Limits, ReviewUiConfig, TakedownConfig};
use crate::content_cache::ContentCache;
use crate::metrics::Metrics;
use crate::slots::HashingSlots;
use crate::verdict_memory::VerdictMemory;

/// The daemon's shared state.
#[derive(Debug)]
pub struct AppState {
    /// The index; swapped whole by a reload, while each request keeps the one it started with.
    pub matcher: ArcSwap<Matcher>,
    /// Who may do what.
    pub tokens: Tokens,
    /// Bounds.
    pub limits: Limits,
    /// How much content is hashed at once, by every protocol together.
    pub slots: HashingSlots,
    /// Asks for the index to be reopened (clamd's `RELOAD`).
    pub reload: Notify,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// The hotline's verdict memory, on the daemon that owns it.
    pub verdict_memory: Option<Arc<VerdictMemory>>,
    /// Wakes the takedown re-checks (an analyst's "check now", a verdict that opened cases).
    pub rechecks: Notify,
    /// Wakes the notice delivery (new cases).
    pub notices: Notify,
    /// The takedown identity and policy the endpoints need.
    pub takedown: TakedownConfig,
    /// The URL block list ICAP's REQMOD applies; swapped whole.
    pub blocked_urls: ArcSwap<BlockedUrls>,
    /// Wakes the block list's rebuild (a takedown case changed).
    pub block_list_changed: Notify,
    /// The block list of the takedown cases as last read ([`blocked_urls::current`]).
    ///
    /// [`blocked_urls::current`]: crate::blocked_urls::current
    pub block_list: std::sync::Mutex<Option<Arc<CurrentList>>>,
    /// The review page's settings.
    pub review_ui: ReviewUiConfig,
    /// Whether the HTTP listener is TLS (the review page's cookie is then `Secure`).
    pub https: bool,
    /// Reported content held in memory for the review page, when it is enabled.
    pub held_content: Option<ContentCache>,
}

impl AppState {
    /// The state for serving `matcher` under `config`.
    pub fn new(matcher: Matcher, config: &Config) -> AppState {
        AppState {
            matcher: ArcSwap::from_pointee(matcher),
            tokens: Tokens::new(&config.tokens),
            limits: config.limits.clone(),
            slots: HashingSlots::new(&config.limits),
            reload: Notify::new(),
            metrics: Arc::new(Metrics::new()),
            verdict_memory: None,
            rechecks: Notify::new(),
            notices: Notify::new(),
            takedown: config.takedown.clone(),
            block_list: std::sync::Mutex::new(None),
            blocked_urls: ArcSwap::from_pointee(BlockedUrls::default()),
            block_list_changed: Notify::new(),
            review_ui: config.review_ui.clone(),
            https: config.http.tls.is_some(),
            held_content: config.review_ui.enabled.then(|| {
                let ttl = std::time::Duration::from_secs(config.review_ui.content_ttl_secs);
                ContentCache::new(config.review_ui.content_cache_bytes, ttl)
            }),
        }
    }

    /// The same state, holding the hotline's verdict memory.
    pub fn with_verdict_memory(self, memory: Option<VerdictMemory>) -> AppState {
        AppState { verdict_memory: memory.map(Arc::new), ..self }
    }
}
