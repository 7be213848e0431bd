//! The second stage of hotline ingest: hashed reports in, decisions out.
//!
//! One daemon owns the hotline's verdict memory (`hashsieve-triage`, one redb file) and
//! consumes the hashed stream: each report is matched against the lists again (with the
//! hotline's own exports, which the hashing daemons may not have yet) and recorded — known from
//! a list, previously assessed (inheriting an analyst's verdict), or new in a review group —
//! and the decision is published to the results stream. Recording is idempotent by report id,
//! so a report delivered twice gets its first decision again, and the publishing guard puts it
//! out once.
//!
//! Fields of a result: `report_id`, `source`, `url` (as reported), `outcome` (`known`,
//! `previously_assessed`, `new` or `error`), `decision` (the triage outcome as JSON: the
//! matches, or the item inherited from with its verdict and distance, or the item and its
//! review group), and `error` for a report that could not be hashed or recorded.

use std::collections::BTreeMap;
use std::sync::Arc;

use hashsieve_core::digest::{DigestKind, Digests};
use hashsieve_core::keypoints::Keypoints;
use hashsieve_core::pdq::PdqHash;
use hashsieve_core::signals::{PdqSignal, Signals};
use hashsieve_triage::TriageError;
use hashsieve_triage::model::{Disposition, Report};

use super::stream::{Message, ResultEntry, Work};
use crate::state::AppState;
use crate::verdict_memory::{FetchedAt, VerdictMemory};

/// Records hashed reports in the verdict memory: the [`Work`] of the second stage.
pub struct ReportTriage {
    /// The index (the lists, the hotline's own among them).
    pub state: Arc<AppState>,
    /// The verdict memory.
    pub verdict_memory: Arc<VerdictMemory>,
}

impl Work for ReportTriage {
    async fn process(&self, message: Message) -> Option<ResultEntry> {
        self.process_in_order(vec![message]).await.pop().flatten()
    }

    /// Decides the reports in stream order (grouping depends on what came before) and makes
    /// the decisions durable with one fsync for the batch, before any is published.
    async fn process_in_order(&self, messages: Vec<Message>) -> Vec<Option<ResultEntry>> {
        let mut entries = Vec::with_capacity(messages.len());
        let mut reports = Vec::new();
        for (position, message) in messages.into_iter().enumerate() {
            let (entry, signals) = Entry::of(message);
            if let Some(signals) = signals {
                reports.push((position, entry.report(&self.verdict_memory), signals));
            }
            entries.push(entry);
        }
        let positions: Vec<usize> = reports.iter().map(|(position, ..)| *position).collect();
        let matcher = self.state.matcher.load_full();
        let memory = Arc::clone(&self.verdict_memory);
        let decided = tokio::task::spawn_blocking(move || {
            let reports: Vec<_> = reports.into_iter().map(|(_, report, signals)| (report, signals)).collect();
            memory.submit_all(&matcher, &reports)
        })
        .await;
        let outcomes = match decided {
            Ok(Ok(outcomes)) => {
                // Confirmed reports of URLs opened takedown cases.
                self.state.rechecks.notify_one();
                self.state.notices.notify_one();
                self.state.block_list_changed.notify_one();
                outcomes
            }
            Ok(Err(err)) => {
                // Not durable: none of the decisions goes out; the reports stay pending and are
                // decided again (answered from the record once it is on disk).
                tracing::warn!(error = %err, "triage failed; the batch will be retried");
                return entries.iter().map(|entry| entry.unhashed.as_ref().map(|_| entry.error())).collect();
            }
            Err(_) => return entries.iter().map(|_| None).collect(),
        };
        let mut decisions: Vec<Option<Result<Disposition, TriageError>>> =
            entries.iter().map(|_| None).collect();
        for (position, outcome) in positions.into_iter().zip(outcomes) {
            decisions[position] = Some(outcome);
        }
        entries.iter().zip(decisions).map(|(entry, decision)| entry.answer(decision)).collect()
    }
}

/// A hashed entry, read.
struct Entry {
    id: String,
    report_id: String,
    fields: BTreeMap<String, Vec<u8>>,
    /// Why it carries no usable hashes, if it does not.
    unhashed: Option<String>,
}

impl Entry {
    /// The entry, and its signals if it has them.
    fn of(message: Message) -> (Entry, Option<Signals>) {
        let fields = message.fields;
        let report_id = text(&fields, "report_id").unwrap_or_else(|| format!("entry {}", message.id));
        let (signals, unhashed) = match signals_of(&fields) {
            Ok(signals) => (Some(signals), None),
            Err(reason) => (None, Some(reason)),
        };
        (Entry { id: message.id, report_id, fields, unhashed }, signals)
    }

    /// The report, located where the first stage fetched it (a report of content has no
    /// location).
    fn report(&self, memory: &VerdictMemory) -> Report {
        let url = text(&self.fields, "url");
        let final_url = text(&self.fields, "final_url");
        let connected = text(&self.fields, "address").and_then(|address| address.parse().ok());
        let resolved = text(&self.fields, "addresses")
            .map(|list| list.split(',').filter_map(|address| address.parse().ok()).collect())
            .unwrap_or_default();
        let fetched = match (&final_url, connected) {
            (Some(final_url), Some(connected)) => Some(FetchedAt { final_url, connected, resolved }),
            _ => None,
        };
        Report {
            id: self.report_id.clone(),
            location: url.as_deref().and_then(|url| memory.locate(url, fetched)),
            source: url.or_else(|| text(&self.fields, "source")).unwrap_or_default(),
            reported_ms: self.id.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or(0),
        }
    }

    /// The result: the report's id, source and URL, the outcome and what goes with it.
    fn result(&self, outcome: &str, extra: Vec<(String, Vec<u8>)>) -> ResultEntry {
        let mut out = vec![("report_id".to_string(), self.report_id.clone().into_bytes())];
        for name in ["source", "url"] {
            if let Some(value) = self.fields.get(name) {
                out.push((name.to_string(), value.clone()));
            }
        }
        out.push(("outcome".into(), outcome.as_bytes().to_vec()));
        out.extend(extra);
        ResultEntry { key: self.report_id.clone(), fields: out }
    }

    /// The result of a report the first stage could not hash (a refused URL, say): decided
    /// here too, since it needs a person or a new fetch, and the result says why.
    fn error(&self) -> ResultEntry {
        let error = text(&self.fields, "error").or_else(|| self.unhashed.clone()).unwrap_or_default();
        self.result("error", vec![("error".into(), error.into_bytes())])
    }

    /// The result for a decision; `None` (retry) if the store failed.
    fn answer(&self, decision: Option<Result<Disposition, TriageError>>) -> Option<ResultEntry> {
        let Some(decision) = decision else { return Some(self.error()) };
        match decision {
            Ok(decision) => {
                let outcome = match &decision {
                    Disposition::Known { .. } => "known",
                    Disposition::PreviouslyAssessed { .. } => "previously_assessed",
                    Disposition::New { .. } => "new",
                };
                let json = serde_json::to_vec(&decision).expect("decisions serialise");
                // As the HTTP report routes write it: the list match was audited by the first stage.
                let source = text(&self.fields, "source");
                tracing::info!(target: "audit", protocol = "ingest", client = self.id, token = "-",
                    report = self.report_id, source = source.as_deref().unwrap_or("-"), outcome, "report");
                Some(self.result(outcome, vec![("decision".into(), json)]))
            }
            Err(TriageError::ReportIdReused { .. }) => Some(
                self.result("error", vec![("error".into(), b"report id reused for other content".to_vec())]),
            ),
            Err(err) => {
                tracing::warn!(report = self.report_id, error = %err, "triage failed");
                None
            }
        }
    }
}

fn text(fields: &BTreeMap<String, Vec<u8>>, name: &str) -> Option<String> {
    fields.get(name).map(|value| String::from_utf8_lossy(value).into_owned())
}

/// The signals a hashed entry carries: digests, PDQ and its variants, keypoints.
fn signals_of(fields: &BTreeMap<String, Vec<u8>>) -> Result<Signals, String> {
    let text = |name: &str| fields.get(name).and_then(|value| std::str::from_utf8(value).ok());
    let mut digests = Digests::default();
    for kind in [DigestKind::Md5, DigestKind::Sha1, DigestKind::Sha256, DigestKind::Blake3] {
        let Some(value) = text(kind.name()) else { continue };
        let bytes = hex::decode(value).map_err(|_| format!("{} is not hex", kind.name()))?;
        let bad = || format!("{} has the wrong length", kind.name());
        match kind {
            DigestKind::Md5 => digests.md5 = Some(bytes.try_into().map_err(|_| bad())?),
            DigestKind::Sha1 => digests.sha1 = Some(bytes.try_into().map_err(|_| bad())?),
            DigestKind::Sha256 => digests.sha256 = Some(bytes.try_into().map_err(|_| bad())?),
            DigestKind::Blake3 => digests.blake3 = Some(bytes.try_into().map_err(|_| bad())?),
        }
    }
    if digests.iter().next().is_none() {
        return Err("no digests".into());
    }
    let pdq = match (text("pdq"), text("pdq_quality")) {
        (Some(hash), Some(quality)) => {
            let hash = PdqHash::from_hex(hash).map_err(|err| format!("pdq: {err}"))?;
            let quality = quality.parse().map_err(|_| "pdq_quality is not a number".to_string())?;
            let dihedral = match text("pdq_dihedral") {
                Some(variants) => {
                    let variants: Vec<PdqHash> = variants
                        .split(',')
                        .map(PdqHash::from_hex)
                        .collect::<Result<_, _>>()
                        .map_err(|err| format!("pdq_dihedral: {err}"))?;
                    Some(variants.try_into().map_err(|_| "pdq_dihedral needs eight hashes".to_string())?)
                }
                None => None,
            };
            Some(PdqSignal { hash, quality, dihedral })
        }
        _ => None,
    };
    let keypoints = match fields.get("keypoints") {
        Some(bytes) => Some(Keypoints::from_bytes(bytes).map_err(|err| format!("keypoints: {err}"))?),
        None => None,
    };
    let size = text("size").and_then(|size| size.parse().ok()).unwrap_or(0);
    Ok(Signals { size, digests, pdq, keypoints, ..Signals::default() })
}
