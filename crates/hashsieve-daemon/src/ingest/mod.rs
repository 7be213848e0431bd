//! Ingest from a queue engine: hashsieved consumes work from Redis Streams in consumer groups,
//! so that several daemons share a queue — how a hotline or an ISP scales past one machine —
//! and no message is lost or answered twice when one of them dies.
//!
//! [`stream`] is the consumer: read in a group, take over the messages of dead consumers,
//! publish each result once and acknowledge it in the same atomic step. [`reports`] is the
//! work of the hotline's first stage: fetch or take each report's content, hash it, match it.

pub mod reports;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::IngestConfig;
use crate::http::AppState;

/// Consumes reports as `config` says until `shutdown`; `Ok(None)` if ingest is not configured.
pub async fn serve_reports(
    state: Arc<AppState>,
    config: &IngestConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(url) = &config.redis_url else { return Ok(None) };
    let client = redis::Client::open(url.as_str()).with_context(|| format!("ingest.redis_url {url:?}"))?;
    let fetcher = hashsieve_fetch::Fetcher::new(config.fetch.clone()).context("ingest.fetch")?;
    let spec = stream::StreamSpec {
        input: config.reports_stream.clone(),
        group: config.group.clone(),
        consumer: config.consumer.clone().unwrap_or_else(host_name),
        output: config.hashed_stream.clone(),
        batch: config.batch,
        concurrency: config.workers,
        block: Duration::from_millis(config.block_ms),
        claim_idle: Duration::from_millis(config.claim_idle_ms),
        marker_ttl: Duration::from_secs(config.marker_ttl_secs),
    };
    tracing::info!(stream = %spec.input, group = %spec.group, consumer = %spec.consumer, "consuming reports");
    let work = Arc::new(reports::ReportHashing { state, fetcher });
    Ok(Some(tokio::spawn(async move {
        // A lost Redis connection is retried, not fatal: the reports wait in the stream.
        while !shutdown.is_cancelled() {
            match stream::consume(client.clone(), spec.clone(), Arc::clone(&work), shutdown.clone()).await {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "ingest: Redis failed; retrying in a second");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
    })))
}

/// The host's name, this daemon's default consumer name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "hashsieved".into())
}
