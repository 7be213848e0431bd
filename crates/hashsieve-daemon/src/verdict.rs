//! What every protocol says about a verdict: the query's own hashes, a match's name as an
//! antivirus signature, the match a block is for, and the audit trail's line per decision.
//!
//! The audit trail (`target: "audit"`) has exactly one line per decision, on every protocol,
//! with the protocol, the client, the token's id (`-` where the protocol has none), what was
//! asked, the outcome, the entries matched and the query's hashes — never content, never a
//! path (a path can say what a file is). One line is bounded: at most [`MAX_AUDITED`]
//! matches or decisions are listed, with the count of those left out.

use hashsieve_core::matcher::{Match, MatchOutcome, MatchVerdict};
use hashsieve_core::signals::Signals;
use serde::Serialize;

/// The most matches (or, for a hash lookup, decisions) one audit line lists.
pub const MAX_AUDITED: usize = 100;

/// The query's own hashes, so that a caller can record or report them without hashing again.
#[derive(Debug, Default, Serialize)]
pub struct QueryHashes {
    #[serde(skip_serializing_if = "Option::is_none")]
    md5: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blake3: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pdq: Option<String>,
    /// PDQ's quality score, 0–100: below about 50 the picture is too plain for a reliable
    /// perceptual match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pdq_quality: Option<u8>,
}

impl QueryHashes {
    /// The hashes computed in `signals`.
    pub fn of(signals: &Signals) -> QueryHashes {
        let d = &signals.digests;
        QueryHashes {
            md5: d.md5.map(hex::encode),
            sha1: d.sha1.map(hex::encode),
            sha256: d.sha256.map(hex::encode),
            blake3: d.blake3.map(hex::encode),
            pdq: signals.pdq.map(|p| hex::encode(p.hash.0)),
            pdq_quality: signals.pdq.map(|p| p.quality),
        }
    }
}

/// The match a block (or a `FOUND`) is for: the first not suppressed by an allow-list.
pub fn counting_match(verdict: &MatchVerdict) -> Option<&Match> {
    if verdict.outcome == MatchOutcome::Unknown {
        return None;
    }
    verdict.matches.iter().find(|m| m.suppressed_by.is_none())
}

/// A match as an antivirus signature name: `HashSieve.LIST.KIND.ENTRY`, one token of letters,
/// digits, `.`, `-` and `_` (clamd's clients split replies at the last colon and at spaces).
pub fn signature(m: &Match) -> String {
    let entry = m.entry_id.as_deref().unwrap_or(&m.value);
    let name = format!("HashSieve.{}.{}.{}", m.list, m.kind.name(), entry);
    name.chars()
        .take(200)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect()
}

/// A verdict's matches as the audit trail records them, `LIST:ENTRY:DISTANCE`, at most
/// [`MAX_AUDITED`], and how many were left out.
fn audited_matches<'a>(verdicts: impl IntoIterator<Item = &'a MatchVerdict>) -> (Vec<String>, usize) {
    let entry = |m: &Match| format!("{}:{}:{}", m.list, m.entry_id.as_deref().unwrap_or("-"), m.distance);
    let mut all = verdicts.into_iter().flat_map(|verdict| &verdict.matches);
    let listed: Vec<String> = all.by_ref().take(MAX_AUDITED).map(entry).collect();
    (listed, all.count())
}

/// Who asked, on which protocol, for what.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// `http`, `clamd`, `icap`, `ingest`.
    pub protocol: &'static str,
    /// The peer's address (`unix` on a Unix socket; for ingest, the stream entry's id).
    pub client: &'a str,
    /// The bearer token's id, where the protocol has tokens.
    pub token: Option<&'a str>,
    /// The endpoint, command or method.
    pub action: &'a str,
    /// The hotline report the content came with, where there is one.
    pub report: Option<&'a str>,
}

/// The audit line of a decision on content. `url` is the HTTP target of a match seen in a
/// proxy (what a takedown needs); `None` elsewhere.
pub fn audit(asker: Asker<'_>, verdict: &MatchVerdict, signals: &Signals, url: Option<&str>) {
    let (matches, omitted) = audited_matches([verdict]);
    tracing::info!(
        target: "audit",
        protocol = asker.protocol,
        client = asker.client,
        token = asker.token.unwrap_or("-"),
        action = asker.action,
        report = asker.report.unwrap_or("-"),
        outcome = ?verdict.outcome,
        matches = ?matches,
        matches_omitted = omitted,
        url = url.unwrap_or("-"),
        md5 = signals.digests.md5.map(hex::encode).as_deref().unwrap_or("-"),
        sha256 = signals.digests.sha256.map(hex::encode).as_deref().unwrap_or("-"),
        pdq = signals.pdq.map(|p| hex::encode(p.hash.0)).as_deref().unwrap_or("-"),
        "decision"
    );
}

/// The audit line of a hash lookup: one for the request, every hash with its outcome (at most
/// [`MAX_AUDITED`] listed, matches first) — a line per hash would cost more than the lookups.
pub fn audit_lookups<'a>(
    asker: Asker<'_>,
    decisions: impl IntoIterator<Item = (&'a str, &'a str, &'a MatchVerdict)>,
) {
    let decisions: Vec<_> = decisions.into_iter().collect();
    let (matches, matches_omitted) = audited_matches(decisions.iter().map(|(_, _, verdict)| *verdict));
    let mut ordered: Vec<_> = decisions.iter().collect();
    ordered.sort_by_key(|(_, _, verdict)| verdict.outcome == MatchOutcome::Unknown);
    let listed: Vec<String> = ordered
        .iter()
        .take(MAX_AUDITED)
        .map(|(kind, value, verdict)| format!("{kind}:{value}:{:?}", verdict.outcome))
        .collect();
    tracing::info!(
        target: "audit",
        protocol = asker.protocol,
        client = asker.client,
        token = asker.token.unwrap_or("-"),
        action = asker.action,
        lookups = decisions.len(),
        decisions = ?listed,
        decisions_omitted = decisions.len() - listed.len(),
        matches = ?matches,
        matches_omitted,
        "decisions"
    );
}
