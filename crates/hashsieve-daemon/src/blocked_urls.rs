//! The URL block list as the daemon applies it: ICAP's `REQMOD` answers a request for a
//! listed URL with the block page before the origin is contacted.
//!
//! The list comes from the hotline: on the daemon that holds the verdict memory, from its own
//! takedown cases (refreshed when a case changes, and when a grace period ends);
//! on an ISP's daemon, from `icap.block_list`, a file the ISP keeps current from the
//! hotline's `GET /v1/takedown/blocklist` (the `plain` format: one URL a line; or the `json`
//! format, which also marks whole hosts), reread when it changes. Either way the list is
//! swapped whole, so a request sees the old list or the new, and no restart is needed.
//!
//! URLs are compared in their normalised form (`hashsieve_triage::location`), so a request
//! for `HTTP://Host:80/a%7e` meets the entry `http://host/a~`. A `CONNECT` (HTTPS through a
//! proxy that does not decrypt) names only a host and port, so it is blocked only for a
//! whole-host entry: a single HTTPS URL cannot be told apart from the rest of its host there.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use hashsieve_triage::TriageError;
use hashsieve_triage::blocklist::{self, BlockEntry, BlockList};
use hashsieve_triage::location::normalise;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::verdict_memory::VerdictMemory;

/// The block list of this daemon's takedown cases as last read, with its validators.
#[derive(Debug)]
pub struct CurrentList {
    /// The list, with the store's version it was read at.
    pub list: BlockList,
    /// The entries' validator ([`blocklist::etag`]).
    pub etag: String,
    /// Since when these entries have held (`Last-Modified`): when this daemon first read them.
    pub since_ms: u64,
}

/// The block list of the cases in `memory` at `now_ms`: the copy last read while the store's
/// block list version is the same and no grace period has ended since — one key read, so a
/// `304 Not Modified` costs next to nothing — else read again. Blocking.
pub fn current(
    state: &AppState,
    memory: &VerdictMemory,
    now_ms: u64,
) -> Result<Arc<CurrentList>, TriageError> {
    let store = memory.store();
    let version = store.block_list_version()?;
    // Held while reading, so that requests that find the copy stale read the store once.
    let mut held = state.block_list.lock().unwrap_or_else(PoisonError::into_inner);
    let fresh = |current: &&Arc<CurrentList>| {
        current.list.version == version && current.list.next_change_ms.is_none_or(|at| now_ms < at)
    };
    if let Some(current) = held.as_ref().filter(fresh) {
        return Ok(Arc::clone(current));
    }
    let list = store.block_list(now_ms)?;
    let etag = blocklist::etag(&list.entries);
    let since_ms = match held.as_ref() {
        Some(before) if before.etag == etag => before.since_ms,
        _ => now_ms,
    };
    let current = Arc::new(CurrentList { list, etag, since_ms });
    *held = Some(Arc::clone(&current));
    Ok(current)
}

/// The URLs and whole hosts blocked.
#[derive(Debug, Default)]
pub struct BlockedUrls {
    urls: HashSet<String>,
    hosts: HashSet<String>,
}

/// Why a request is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// Its URL is on the list.
    Url,
    /// Its host is, as a whole.
    Host,
}

impl BlockedUrls {
    /// The list of `entries`.
    pub fn from_entries(entries: &[BlockEntry]) -> BlockedUrls {
        let mut list = BlockedUrls::default();
        for entry in entries {
            let Ok(url) = normalise(&entry.url) else { continue };
            if entry.whole_host {
                list.hosts.insert(url.host().to_string());
            }
            list.urls.insert(url.to_string());
        }
        list
    }

    /// The list in a file of the block list's `plain` (one URL a line) or `json` format.
    pub fn parse(text: &str) -> Result<BlockedUrls, String> {
        if text.trim_start().starts_with('{') {
            #[derive(serde::Deserialize)]
            struct List {
                entries: Vec<BlockEntry>,
            }
            let list: List =
                serde_json::from_str(text).map_err(|err| format!("not a JSON block list: {err}"))?;
            return Ok(BlockedUrls::from_entries(&list.entries));
        }
        let entries: Vec<BlockEntry> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|url| BlockEntry { url: url.to_string(), whole_host: false })
            .collect();
        Ok(BlockedUrls::from_entries(&entries))
    }

    /// URLs on the list.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// Whether a request for `target` (absolute-form `http://host/path`, origin-form `/path`
    /// with its `Host`, or a `CONNECT`'s `host:port`) is blocked.
    pub fn blocks(&self, method: &str, target: &str, host: Option<&str>) -> Option<Blocked> {
        if self.urls.is_empty() {
            return None;
        }
        if method.eq_ignore_ascii_case("CONNECT") {
            let name = target.rsplit_once(':').map_or(target, |(name, _)| name);
            let url = normalise(&format!("https://{name}/")).ok()?;
            return self.hosts.contains(url.host()).then_some(Blocked::Host);
        }
        let absolute =
            if target.starts_with('/') { format!("http://{}{target}", host?) } else { target.to_string() };
        let url = normalise(&absolute).ok()?;
        if self.urls.contains(url.as_str()) {
            Some(Blocked::Url)
        } else {
            self.hosts.contains(url.host()).then_some(Blocked::Host)
        }
    }
}

/// The longest the list goes without being checked against the store when nothing prompts
/// it (a change by another process, a clock that jumped).
const REFRESH: Duration = Duration::from_secs(60);

/// Keeps `state.blocked_urls` current until `stopping` is cancelled: from the verdict memory's
/// cases if this daemon holds it, else from `file` if one is configured.
pub async fn follow(
    state: Arc<AppState>,
    file: Option<PathBuf>,
    check_every: Duration,
    stopping: CancellationToken,
) {
    let mut seen: Option<(SystemTime, u64)> = None;
    let mut applied: Option<String> = None;
    loop {
        if let Some(memory) = state.verdict_memory.clone() {
            let now = hashsieve_core::clock::now_ms();
            let shared = Arc::clone(&state);
            let mut wait = REFRESH;
            match tokio::task::spawn_blocking(move || current(&shared, &memory, now)).await {
                Ok(Ok(current)) => {
                    // Rebuilt only when the entries changed; and woken when a grace period ends.
                    if applied.as_ref() != Some(&current.etag) {
                        state.blocked_urls.store(Arc::new(BlockedUrls::from_entries(&current.list.entries)));
                        applied = Some(current.etag.clone());
                    }
                    if let Some(at) = current.list.next_change_ms {
                        wait = wait.min(Duration::from_millis(at.saturating_sub(now)));
                    }
                }
                Ok(Err(err)) => tracing::error!(error = %err, "the URL block list was not rebuilt"),
                Err(_) => {}
            }
            tokio::select! {
                () = stopping.cancelled() => return,
                () = state.block_list_changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        } else if let Some(path) = &file {
            let stamp = stamp(path);
            if stamp != seen {
                match reread(path).await {
                    Ok(list) => {
                        tracing::info!(path = %path.display(), urls = list.len(), "URL block list loaded");
                        state.blocked_urls.store(Arc::new(list));
                        seen = stamp;
                    }
                    // The list in force stays: a half-written file must not empty it.
                    Err(err) => {
                        tracing::warn!(path = %path.display(), error = err, "URL block list not loaded")
                    }
                }
            }
            tokio::select! {
                () = stopping.cancelled() => return,
                () = tokio::time::sleep(check_every) => {}
            }
        } else {
            return;
        }
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

async fn reread(path: &Path) -> Result<BlockedUrls, String> {
    let path = path.to_path_buf();
    let read =
        tokio::task::spawn_blocking(move || std::fs::read_to_string(path).map_err(|err| err.to_string()));
    BlockedUrls::parse(&read.await.map_err(|err| err.to_string())??)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_compared_normalised_and_hosts_only_when_whole() {
        let list = BlockedUrls::from_entries(&[
            BlockEntry { url: "http://a.example/x~1.jpg".into(), whole_host: false },
            BlockEntry { url: "http://whole.example/one".into(), whole_host: true },
        ]);
        assert_eq!(list.blocks("GET", "HTTP://A.EXAMPLE:80/x%7e1.jpg#f", None), Some(Blocked::Url));
        assert_eq!(list.blocks("GET", "/x~1.jpg", Some("a.example")), Some(Blocked::Url));
        assert_eq!(list.blocks("GET", "http://a.example/x~2.jpg", None), None);
        assert_eq!(list.blocks("GET", "http://whole.example/other", None), Some(Blocked::Host));
        assert_eq!(list.blocks("CONNECT", "whole.example:443", None), Some(Blocked::Host));
        assert_eq!(list.blocks("CONNECT", "a.example:443", None), None, "one URL never blocks its host");
        assert_eq!(list.blocks("GET", "/x~1.jpg", None), None, "no host, no URL");
    }

    #[test]
    fn a_file_is_the_plain_or_the_json_list() {
        let plain = BlockedUrls::parse("http://a.example/1\n\nhttp://b.example/2\n").unwrap();
        assert_eq!(plain.len(), 2);
        let json = BlockedUrls::parse(r#"{"entries": [{"url": "http://c.example/3", "whole_host": true}]}"#)
            .unwrap();
        assert_eq!(json.blocks("GET", "http://c.example/elsewhere", None), Some(Blocked::Host));
        assert!(BlockedUrls::parse("{not json").is_err());
    }
}
