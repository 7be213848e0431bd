//! The hotline's verdict memory, as the daemon holds it: one `hashsieve-triage` store, shared
//! by the ingest stage that decides reports ([`crate::ingest::triage`]) and the review API
//! ([`crate::http::review`]), with the export of illegal verdicts to the hotline's own list.
//!
//! Export follows every verdict: the illegal items' digests and PDQ hash are added to
//! `triage.export_list` in the index this daemon serves (durably, as one batch), so that every
//! protocol — and every daemon following the index — matches them as known from then on. The
//! verdict is recorded first and the export after it; if the export fails (a full disk, say),
//! the verdict stands, the failure is reported, and the next verdict or restart exports what is
//! owed: the store keeps a cursor of what each list has been given.

use std::fmt;
use std::net::IpAddr;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use anyhow::Context;
use hashsieve_core::delta::Change;
use hashsieve_core::digest::DigestSet;
use hashsieve_core::index::ListOptions;
use hashsieve_core::matcher::Matcher;
use hashsieve_core::signals::{PdqMode, SignalOptions, Signals};
use hashsieve_fetch::Fetcher;
use hashsieve_triage::export::ExportedItem;
use hashsieve_triage::location::{HostingDb, Location};
use hashsieve_triage::model::{Disposition, Report};
use hashsieve_triage::{Triage, TriageError};

use crate::config::Config;

/// The longest report id accepted: ids are keys, not content.
pub const MAX_REPORT_ID: usize = 200;

/// Whether `id` can be a report id: 1 to [`MAX_REPORT_ID`] printable ASCII characters.
pub fn valid_report_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REPORT_ID && id.chars().all(|c| c.is_ascii_graphic())
}

/// What reported content is hashed for: every digest, PDQ with its eight rotations and mirror
/// images, and keypoints, whatever the lists hold, because the verdict memory compares
/// reports with each other by them; within the matcher's decoding limits.
pub fn report_options(matcher: &Matcher) -> SignalOptions {
    SignalOptions {
        digests: DigestSet::ALL,
        pdq: PdqMode::Dihedral,
        keypoints: true,
        ..matcher.signal_options()
    }
}

/// Where a fetch of a reported URL ended up.
#[derive(Debug, Clone)]
pub struct FetchedAt<'a> {
    /// The URL after redirects.
    pub final_url: &'a str,
    /// The address connected to.
    pub connected: IpAddr,
    /// Every address the final host resolved to.
    pub resolved: Vec<IpAddr>,
}

impl<'a> FetchedAt<'a> {
    /// Where `fetched` ended up.
    pub fn of(fetched: &'a hashsieve_fetch::Fetched) -> FetchedAt<'a> {
        FetchedAt {
            final_url: fetched.final_url.as_str(),
            connected: fetched.remote.ip(),
            resolved: fetched.addresses.clone(),
        }
    }
}

/// The verdict memory and what goes with it.
pub struct VerdictMemory {
    store: RwLock<Triage>,
    export_list: Option<String>,
    fetcher: Fetcher,
    /// The hotline's IP databases (`takedown.ip_databases`), if it gave any.
    hosting: Option<HostingDb>,
}

impl fmt::Debug for VerdictMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerdictMemory").field("export_list", &self.export_list).finish_non_exhaustive()
    }
}

/// What an export after a verdict did.
#[derive(Debug, Default)]
pub struct Exported {
    /// The items added to (or withdrawn from) the list.
    pub items: Vec<ExportedItem>,
    /// Why the export failed, if it did; the verdict stands and the export is retried later.
    pub error: Option<String>,
}

impl VerdictMemory {
    /// Opens the store of `config.triage` (none if unset), creates the export list in
    /// `matcher`'s index if it is missing, and exports what earlier verdicts still owe it.
    /// Blocking.
    pub fn open(config: &Config, matcher: &Matcher) -> anyhow::Result<Option<VerdictMemory>> {
        let Some(path) = &config.triage.store else { return Ok(None) };
        let mut store = Triage::open(path, config.triage_options())
            .with_context(|| format!("triage.store {}", path.display()))?;
        let fetcher = Fetcher::new(config.fetch.clone()).context("[fetch]")?;
        let databases = &config.takedown.ip_databases;
        let hosting = (!databases.is_empty())
            .then(|| HostingDb::open(databases).context("takedown.ip_databases"))
            .transpose()?;
        if let Some(list) = &config.triage.export_list {
            let exists = matcher.current().view(|view| view.delta.list(list).is_some());
            if !exists {
                matcher
                    .submit(vec![Change::DefineList(ListOptions::new(list.as_str()))], Some(EXPORT_ACTOR))
                    .with_context(|| format!("creating the export list {list:?}"))?;
            }
            let export = store.export_to(matcher, list, Some(EXPORT_ACTOR))?;
            if !export.items().is_empty() {
                tracing::info!(
                    list,
                    items = export.items().len(),
                    "exported verdicts owed since the last run"
                );
            }
        }
        Ok(Some(VerdictMemory {
            store: RwLock::new(store),
            export_list: config.triage.export_list.clone(),
            fetcher,
            hosting,
        }))
    }

    /// The store, shared: for reads and the takedown cases' writes, which run beside each
    /// other — so the review queue is not kept waiting by a re-check's commit (a poisoned lock
    /// is taken over: every write is one transaction, so a panic mid-call left nothing
    /// half-done).
    pub fn store(&self) -> RwLockReadGuard<'_, Triage> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store, alone: for submissions and verdicts, which also change its in-memory tables.
    pub fn store_mut(&self) -> RwLockWriteGuard<'_, Triage> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fetches reported URLs under the `[fetch]` policy.
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// Where a report of `url` found its content: the URL normalised, the final URL after
    /// redirects, the addresses its host resolved to and the one the fetch connected to, and
    /// that address's hosting country and network from the IP databases. None if `url` is not
    /// an http(s) URL (a report of an upload, say); the report is then kept without a location
    /// and opens no takedown case.
    pub fn locate(&self, url: &str, fetched: Option<FetchedAt<'_>>) -> Option<Location> {
        let mut location = Location::new(url).ok()?;
        if let Some(FetchedAt { final_url, connected, resolved }) = fetched {
            location.final_url = hashsieve_triage::location::normalise(final_url).ok();
            location.connected = Some(connected);
            location.resolved = resolved;
            location.hosting = self.hosting.as_ref().map(|databases| databases.lookup(connected));
        }
        Some(location)
    }

    /// Matches `signals` against the lists and records the report. Blocking.
    pub fn submit(
        &self,
        matcher: &Matcher,
        report: &Report,
        signals: &Signals,
    ) -> Result<Disposition, TriageError> {
        self.store_mut().submit(report, signals, matcher)
    }

    /// Matches reports against the lists and records them in order, durably with one fsync
    /// for them all; see [`Triage::submit_all`]. Blocking.
    pub fn submit_all(
        &self,
        matcher: &Matcher,
        reports: &[(Report, Signals)],
    ) -> Result<Vec<Result<Disposition, TriageError>>, TriageError> {
        self.store_mut().submit_all(reports, matcher)
    }

    /// Exports what the verdicts owe the export list, if there is one. Blocking; call it with
    /// the store held, after the verdict.
    pub fn export(&self, store: &mut Triage, matcher: &Matcher) -> Exported {
        let Some(list) = &self.export_list else { return Exported::default() };
        match store.export_to(matcher, list, Some(EXPORT_ACTOR)) {
            Ok(export) => Exported { items: export.items().to_vec(), error: None },
            Err(err) => {
                tracing::error!(list, error = %err, "export of verdicts failed; retried after the next verdict");
                Exported { items: Vec::new(), error: Some(err.to_string()) }
            }
        }
    }
}

/// The actor of exported list changes in the index's change log.
const EXPORT_ACTOR: &str = "hashsieve-triage";
