//! Hot reload: a read-only daemon follows its index as other processes change it — a list
//! change or compaction in the index directory, or an index file replaced by rename — and
//! swaps the reopened index in while requests go on; each request keeps the index it started
//! with. SIGHUP or clamd's `RELOAD` forces a reload. A reload that fails leaves the old index serving.
//! A directory is followed up to its writer's durable mark (see `hashsieve_core::index::dir`), so
//! a follower serves only acknowledged changes.
//!
//! A writable daemon makes the changes itself and sees them at once; it has nothing to reload.

use std::sync::Arc;
use std::time::Duration;

use hashsieve_core::decode::DecodeLimits;
use hashsieve_core::index::dir::{DirOptions, Fingerprint};
use hashsieve_core::matcher::Matcher;

use crate::config::Config;
use crate::state::AppState;

/// Opens the index as `config` says, with its decoding limits.
pub fn open_matcher(config: &Config) -> anyhow::Result<Matcher> {
    use anyhow::Context;
    let mut matcher = if config.writable {
        Matcher::open_dir(&config.index, DirOptions::default()).map(|(matcher, _)| matcher)
    } else {
        Matcher::open(&config.index)
    }
    .with_context(|| format!("cannot open index {}", config.index.display()))?;
    let limits = DecodeLimits { max_pixels: config.limits.max_image_pixels, ..DecodeLimits::default() };
    matcher.set_signal_limits(limits, config.limits.max_body_bytes);
    Ok(matcher)
}

/// Reopens the index when it changes or on SIGHUP, until the runtime stops.
pub async fn watch(state: Arc<AppState>, config: Config) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(err) => {
            tracing::warn!(error = %err, "no SIGHUP handler");
            None
        }
    };
    let interval = Duration::from_millis(config.reload_check_ms.max(1));
    let path = config.index.clone();
    let mut last = tokio::task::spawn_blocking({
        let path = path.clone();
        move || Fingerprint::of(&path)
    })
    .await
    .unwrap_or_default();
    loop {
        let forced = tokio::select! {
            _ = async { hangup.as_mut().expect("checked").recv().await }, if hangup.is_some() => true,
            () = state.reload.notified() => true,
            () = tokio::time::sleep(interval), if config.reload_check_ms > 0 => false,
            else => return,
        };
        if config.writable {
            if forced {
                tracing::info!("reload asked: a writable daemon applies its own changes; nothing to reload");
            }
            continue;
        }
        let now = tokio::task::spawn_blocking({
            let path = path.clone();
            move || Fingerprint::of(&path)
        })
        .await
        .unwrap_or_default();
        if !forced && now == last {
            continue;
        }
        let reopened = tokio::task::spawn_blocking({
            let config = config.clone();
            move || open_matcher(&config)
        })
        .await;
        match reopened {
            Ok(Ok(matcher)) => {
                let generation = matcher.current().number();
                // Counted first: whoever sees the new index also sees the reload counted.
                state.metrics.reloaded();
                state.matcher.store(Arc::new(matcher));
                last = now;
                tracing::info!(generation, forced, "index reloaded");
            }
            Ok(Err(err)) => {
                tracing::error!(error = %format!("{err:#}"), "reload failed; the previous index keeps serving")
            }
            Err(err) => tracing::error!(error = %err, "reload failed; the previous index keeps serving"),
        }
    }
}
