//! Ingest from a queue engine: hashsieved consumes work from Redis Streams in consumer groups,
//! so that several daemons share a queue — how a hotline or an ISP scales past one machine —
//! and no message is lost or answered twice when one of them dies.
//!
//! [`stream`] is the consumer: read in a group, take over the messages of dead consumers,
//! publish each result once and acknowledge it in the same atomic step. Hotline reports go
//! through two stages:
//!
//! ```text
//! reports stream ──► [reports] fetch or take, hash, match ──► hashed stream      (any number
//!                    of daemons in one group: stateless, shares the CPU-heavy part)
//! hashed stream  ──► [triage] verdict memory: known / previously assessed / new
//!                    ──► results stream                                       (one daemon:
//!                    the owner of the triage store)
//! ```
//!
//! The split is what lets the work scale past one machine while the verdict memory, which
//! must see every report to group near-duplicates, stays in one place.

pub mod reports;
pub mod stream;
pub mod triage;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::state::AppState;

/// Runs the stages `config` asks of this daemon until `shutdown`: hashing reports (if
/// `ingest.workers` > 0) and deciding them (if it holds the hotline's verdict memory, a
/// `[triage]` store). Nothing if ingest is not configured.
pub async fn serve(
    state: Arc<AppState>,
    config: &Config,
    shutdown: CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let fetch = &config.fetch;
    let config = &config.ingest;
    let Some(url) = &config.redis_url else { return Ok(Vec::new()) };
    let client = redis::Client::open(url.as_str()).with_context(|| format!("ingest.redis_url {url:?}"))?;
    let consumer = config.consumer.clone().unwrap_or_else(host_name);
    let spec =
        |input: &str, group: &str, output: &str, concurrency: usize, ordered: bool| stream::StreamSpec {
            input: input.to_string(),
            group: group.to_string(),
            consumer: consumer.clone(),
            output: output.to_string(),
            batch: config.batch,
            concurrency,
            ordered,
            block: Duration::from_millis(config.block_ms),
            claim_idle: Duration::from_millis(config.claim_idle_ms),
            marker_ttl: Duration::from_secs(config.marker_ttl_secs),
        };
    let mut tasks = Vec::new();
    if config.workers > 0 {
        let fetcher = hashsieve_fetch::Fetcher::new(fetch.clone()).context("[fetch]")?;
        let spec = spec(&config.reports_stream, &config.group, &config.hashed_stream, config.workers, false);
        let work = Arc::new(reports::ReportHashing { state: Arc::clone(&state), fetcher });
        tasks.push(spawn_consumer(client.clone(), spec, work, shutdown.clone()));
    }
    if let Some(memory) = state.verdict_memory.clone() {
        // Decisions are made in stream order (grouping depends on what came before), a read's
        // batch at a time with one fsync.
        let spec = spec(&config.hashed_stream, &config.triage_group, &config.results_stream, 1, true);
        let work = Arc::new(triage::ReportTriage { state, verdict_memory: memory });
        tasks.push(spawn_consumer(client, spec, work, shutdown));
    }
    Ok(tasks)
}

/// Runs a consumer until `shutdown`, reconnecting when Redis fails.
fn spawn_consumer<W: stream::Work>(
    client: redis::Client,
    spec: stream::StreamSpec,
    work: Arc<W>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tracing::info!(stream = %spec.input, group = %spec.group, consumer = %spec.consumer, "consuming");
    tokio::spawn(async move {
        // A lost Redis connection is retried, not fatal: the reports wait in the stream.
        while !shutdown.is_cancelled() {
            match stream::consume(client.clone(), spec.clone(), Arc::clone(&work), shutdown.clone()).await {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(stream = %spec.input, error = %err, "ingest: Redis failed; retrying in a second");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
    })
}

/// The host's name, this daemon's default consumer name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "hashsieved".into())
}
