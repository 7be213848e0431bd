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
use hashsieve_core::pdq::PdqHash;
use hashsieve_core::signals::{PdqSignal, Signals};
use hashsieve_triage::model::{Outcome as Decision, Report};

use super::stream::{Message, Outcome, Work};
use crate::hotline::Hotline;
use crate::http::AppState;

/// Records hashed reports in the verdict memory: the [`Work`] of the second stage.
pub struct ReportTriage {
    /// The index (the lists, the hotline's own among them).
    pub state: Arc<AppState>,
    /// The verdict memory.
    pub hotline: Arc<Hotline>,
}

impl Work for ReportTriage {
    async fn process(&self, message: Message) -> Option<Outcome> {
        let fields = message.fields;
        let text = |name: &str| fields.get(name).map(|value| String::from_utf8_lossy(value).into_owned());
        let report_id = text("report_id").unwrap_or_else(|| format!("entry {}", message.id));
        let carried: Vec<(String, Vec<u8>)> = ["source", "url"]
            .into_iter()
            .filter_map(|name| fields.get(name).map(|value| (name.to_string(), value.clone())))
            .collect();
        let answer = |outcome: &str, extra: Vec<(String, Vec<u8>)>| {
            let mut out = vec![("report_id".to_string(), report_id.clone().into_bytes())];
            out.extend(carried.clone());
            out.push(("outcome".into(), outcome.as_bytes().to_vec()));
            out.extend(extra);
            Some(Outcome { key: report_id.clone(), fields: out })
        };
        let signals = match signals_of(&fields) {
            Ok(signals) => signals,
            // A report the first stage could not hash (a refused URL, say) is decided here too:
            // it needs a person or a new fetch, and the result says why.
            Err(reason) => {
                let error = text("error").unwrap_or(reason);
                return answer("error", vec![("error".into(), error.into_bytes())]);
            }
        };
        let report = Report {
            id: report_id.clone(),
            source: text("url").or_else(|| text("source")).unwrap_or_default(),
            reported_ms: message.id.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or(0),
        };
        let matcher = self.state.matcher.load_full();
        let hotline = Arc::clone(&self.hotline);
        let decided =
            tokio::task::spawn_blocking(move || hotline.submit(&matcher, &report, &signals)).await.ok()?;
        match decided {
            Ok(decision) => {
                let outcome = match &decision {
                    Decision::Known { .. } => "known",
                    Decision::PreviouslyAssessed { .. } => "previously_assessed",
                    Decision::New { .. } => "new",
                };
                let json = serde_json::to_vec(&decision).expect("decisions serialise");
                tracing::info!(target: "audit", protocol = "ingest", report = report_id, outcome, "decision");
                answer(outcome, vec![("decision".into(), json)])
            }
            Err(hashsieve_triage::TriageError::ReportIdReused { .. }) => {
                answer("error", vec![("error".into(), b"report id reused for other content".to_vec())])
            }
            Err(err) => {
                // The store failed: leave the report pending, to be tried again.
                tracing::warn!(report = report_id, error = %err, "triage failed");
                None
            }
        }
    }
}

/// The signals a hashed entry carries: digests, PDQ and its variants.
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
    let size = text("size").and_then(|size| size.parse().ok()).unwrap_or(0);
    Ok(Signals { size, digests, pdq, ..Signals::default() })
}
