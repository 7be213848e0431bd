//! What every protocol shares: the index being served, who may do what, the limits, the
//! hashing slots, the metrics and the hotline's verdict memory. No protocol owns it; each
//! holds an `Arc` of it.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hashsieve_core::matcher::Matcher;
use tokio::sync::Notify;

use crate::auth::Tokens;
use crate::config::{Config, Limits};
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
        }
    }

    /// The same state, holding the hotline's verdict memory.
    pub fn with_verdict_memory(self, memory: Option<VerdictMemory>) -> AppState {
        AppState { verdict_memory: memory.map(Arc::new), ..self }
    }
}
