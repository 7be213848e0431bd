//! The first stage of hotline ingest: reports in, hashes out.
//!
//! A report is a stream entry with a `report_id`, and either the reported `url` — fetched
//! with `hashsieve-fetch`, so that a hostile URL cannot reach inside — or the reported
//! `content` itself, plus an optional `source`. Each is hashed (all four digests, PDQ with its
//! dihedral variants and keypoints, what the verdict memory compares), matched against the lists, and
//! published to the hashed stream with the match; never with the content. This stage holds no
//! state, so any number of daemons can share it; the verdict memory that follows it has one
//! owner.
//!
//! Fields of a hashed entry: `report_id`, `source`, `url`, `final_url` (after redirects),
//! `address` (the address the fetch connected to), `addresses` (every address the final host
//! resolved to, comma-separated), `size`, `md5`, `sha1`, `sha256`, `blake3`, `pdq`, `pdq_quality`, `pdq_dihedral` (the eight
//! rotations and mirror images, comma-separated; hex and decimal), `keypoints` (binary, the
//! byte form of `hashsieve_core::keypoints::Keypoints`, when the image has any),
//! `known` (`known`, `near_known` or `unknown`), `matches` (JSON: list, entry id, kind,
//! distance of each match that counts), and `error` when the report could not be hashed
//! (missing fields, a refused or failed fetch, a body that is not an image — digests are then
//! still given).

use std::collections::BTreeMap;
use std::sync::Arc;

use hashsieve_core::matcher::{MatchOutcome, MatchVerdict};
use hashsieve_core::signals::Signals;
use hashsieve_fetch::Fetcher;

use super::stream::{Message, ResultEntry, Work};
use crate::state::AppState;
use crate::verdict::{Asker, audit};
use crate::verdict_memory::{report_options, valid_report_id};

/// Hashes reports: the [`Work`] of the first stage.
pub struct ReportHashing {
    /// The index and the hashing slots, shared with the other protocols.
    pub state: Arc<AppState>,
    /// Fetches reported URLs.
    pub fetcher: Fetcher,
}

impl Work for ReportHashing {
    async fn process(&self, message: Message) -> Option<ResultEntry> {
        let Some(report_id) = report_id(&message.fields) else {
            // Without an id there is nothing to key a result by but the entry itself.
            return Some(failed(
                format!("entry {}", message.id),
                &message.fields,
                "missing or invalid report_id",
            ));
        };
        let content = match (message.fields.get("content"), message.fields.get("url")) {
            (Some(content), _) => content.clone(),
            (None, Some(url)) => {
                let url = String::from_utf8_lossy(url).into_owned();
                match self.fetcher.fetch(&url).await {
                    Ok(fetched) => {
                        let mut fields = message.fields.clone();
                        fields.insert("final_url".into(), fetched.final_url.as_str().as_bytes().to_vec());
                        fields.insert("address".into(), fetched.remote.ip().to_string().into_bytes());
                        let addresses: Vec<String> =
                            fetched.addresses.iter().map(ToString::to_string).collect();
                        fields.insert("addresses".into(), addresses.join(",").into_bytes());
                        return self.hash(&message.id, report_id, &fields, fetched.body.to_vec()).await;
                    }
                    Err(err) => {
                        tracing::info!(report = report_id, error = %err, "report not fetched");
                        return Some(failed(report_id, &message.fields, &format!("fetch: {err}")));
                    }
                }
            }
            (None, None) => return Some(failed(report_id, &message.fields, "neither url nor content")),
        };
        self.hash(&message.id, report_id, &message.fields, content).await
    }
}

impl ReportHashing {
    /// Hashes `content` on the blocking pool, within the shared hashing slots, and audits the
    /// decision; `None` (retry later) if hashing failed.
    async fn hash(
        &self,
        entry: &str,
        report_id: String,
        fields: &BTreeMap<String, Vec<u8>>,
        content: Vec<u8>,
    ) -> Option<ResultEntry> {
        let matcher = self.state.matcher.load_full();
        let options = report_options(&matcher);
        let slot = self.state.slots.take(Signals::decode_memory(&content, &options)).await;
        let checked = slot
            .run(None, move || {
                let signals = Signals::from_bytes(&content, &options);
                (matcher.check_signals(&signals), signals)
            })
            .await;
        let (verdict, signals) = checked.ok()?;
        self.state.metrics.matched("ingest", &verdict);
        let url =
            fields.get("final_url").or_else(|| fields.get("url")).map(|url| String::from_utf8_lossy(url));
        let asker = Asker {
            protocol: "ingest",
            client: entry,
            token: None,
            action: "report",
            report: Some(&report_id),
        };
        audit(asker, &verdict, &signals, url.as_deref());
        Some(hashed(report_id, fields, &verdict, &signals))
    }
}

/// The report id, if present and sane.
fn report_id(fields: &BTreeMap<String, Vec<u8>>) -> Option<String> {
    let id = std::str::from_utf8(fields.get("report_id")?).ok()?;
    valid_report_id(id).then(|| id.to_string())
}

/// The fields carried over from the report.
fn carried(fields: &BTreeMap<String, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    ["source", "url", "final_url"]
        .into_iter()
        .filter_map(|name| fields.get(name).map(|value| (name.to_string(), value.clone())))
        .collect()
}

fn failed(key: String, fields: &BTreeMap<String, Vec<u8>>, error: &str) -> ResultEntry {
    let mut out = vec![("report_id".to_string(), key.clone().into_bytes())];
    out.extend(carried(fields));
    out.push(("error".into(), error.as_bytes().to_vec()));
    ResultEntry { key, fields: out }
}

fn hashed(
    report_id: String,
    fields: &BTreeMap<String, Vec<u8>>,
    verdict: &MatchVerdict,
    signals: &Signals,
) -> ResultEntry {
    let mut out = vec![("report_id".to_string(), report_id.clone().into_bytes())];
    out.extend(carried(fields));
    out.push(("size".into(), signals.size.to_string().into_bytes()));
    for (kind, digest) in signals.digests.iter() {
        out.push((kind.name().to_string(), hex::encode(digest).into_bytes()));
    }
    if let Some(pdq) = signals.pdq {
        out.push(("pdq".into(), hex::encode(pdq.hash.0).into_bytes()));
        out.push(("pdq_quality".into(), pdq.quality.to_string().into_bytes()));
        if let Some(variants) = pdq.dihedral {
            let variants: Vec<String> = variants.iter().map(|hash| hex::encode(hash.0)).collect();
            out.push(("pdq_dihedral".into(), variants.join(",").into_bytes()));
        }
    }
    if let Some(keypoints) = signals.keypoints.as_ref().filter(|set| !set.is_empty()) {
        out.push(("keypoints".into(), keypoints.to_bytes()));
    }
    let known = match verdict.outcome {
        MatchOutcome::Known => "known",
        MatchOutcome::NearKnown => "near_known",
        MatchOutcome::Unknown => "unknown",
    };
    out.push(("known".into(), known.as_bytes().to_vec()));
    let matches: Vec<_> = verdict
        .matches
        .iter()
        .filter(|m| m.suppressed_by.is_none())
        .map(|m| {
            serde_json::json!({"list": m.list, "entry_id": m.entry_id, "kind": m.kind.name(), "distance": m.distance})
        })
        .collect();
    out.push(("matches".into(), serde_json::to_vec(&matches).expect("JSON values serialise")));
    if let Some(error) = signals.errors.first() {
        out.push(("error".into(), error.to_string().into_bytes()));
    }
    ResultEntry { key: report_id, fields: out }
}
