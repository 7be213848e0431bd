//! Prometheus metrics, in the OpenMetrics text format at `GET /metrics`: requests and their
//! latency per protocol and endpoint (clamd: per command), verdicts and matches per list,
//! rejections by reason, open connections, and the index served (generation, entries, delta
//! changes, reloads) with the process's resident memory, read when scraped.
//!
//! Labels take a bounded set of values: endpoints are route templates (unknown paths are
//! `other`), clamd commands come from a fixed list, lists are the index's own. A list's name
//! is the one label value that comes from outside (an admin, a list file), so it is escaped
//! as the text format asks (`\\`, `\"`, `\n`), and any other control character — which the
//! API refuses in new names, but an old index may hold — is replaced: a name can never end a
//! line or forge a sample.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hashsieve_core::matcher::{MatchVerdict, Matcher};
use hashsieve_triage::takedown::Figures;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    protocol: &'static str,
    endpoint: &'static str,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    protocol: &'static str,
    endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevealLabels {
    analyst: Escaped,
    step: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MatchLabels {
    protocol: &'static str,
    list: Escaped,
    suppressed: bool,
}

/// A label value from outside, escaped when it is written.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Escaped(String);

impl EncodeLabelValue for Escaped {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c if c.is_control() => encoder.write_char(char::REPLACEMENT_CHARACTER)?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    protocol: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    protocol: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    finding: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgeLabels {
    age: &'static str,
}

/// A takedown time: from first report to which stage, which quantile, of which cases (all, a
/// hosting country, a network).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TakedownTimeLabels {
    stage: &'static str,
    quantile: &'static str,
    by: &'static str,
    group: Escaped,
}

/// Latency buckets: 50 µs to about 26 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(50e-6, 2.0, 20))
}

/// The daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    matches: Family<MatchLabels, Counter>,
    verdicts: Family<OutcomeLabels, Counter>,
    rejected: Family<ReasonLabels, Counter>,
    connections: Family<ProtocolLabels, Gauge>,
    generation: Gauge,
    entries: Family<KindLabels, Gauge>,
    delta_entries: Gauge,
    delta_changes: Gauge,
    reloads: Counter,
    resident: Gauge<f64, AtomicU64>,
    takedown_checks: Family<FindingLabels, Counter>,
    takedown_notices: Family<OutcomeLabels, Counter>,
    takedown_cases: Family<StateLabels, Gauge>,
    takedown_active_by_age: Family<AgeLabels, Gauge>,
    takedown_times: Family<TakedownTimeLabels, Gauge<f64, AtomicU64>>,
    review_reveals: Family<RevealLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::default();
        registry.register(
            "hashsieve_requests",
            "Requests answered, by protocol, endpoint and status",
            requests.clone(),
        );
        let durations = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "hashsieve_request_duration_seconds",
            "Time from a request's arrival to its answer",
            durations.clone(),
        );
        let matches = Family::default();
        registry.register(
            "hashsieve_matches",
            "List entries matched, and whether an allow-list suppressed them",
            matches.clone(),
        );
        let verdicts = Family::default();
        registry.register("hashsieve_verdicts", "Verdicts given, by outcome", verdicts.clone());
        let rejected = Family::default();
        registry.register("hashsieve_rejected", "Requests refused, by reason", rejected.clone());
        let connections = Family::default();
        registry.register("hashsieve_open_connections", "Connections open now", connections.clone());
        let generation = Gauge::default();
        registry.register(
            "hashsieve_index_generation",
            "Generation of the index served (compactions)",
            generation.clone(),
        );
        let entries = Family::default();
        registry.register(
            "hashsieve_index_entries",
            "Entries in the index file, by hash kind",
            entries.clone(),
        );
        let delta_entries = Gauge::default();
        registry.register(
            "hashsieve_delta_entries",
            "Entries added since the last compaction",
            delta_entries.clone(),
        );
        let delta_changes = Gauge::default();
        registry.register(
            "hashsieve_delta_changes",
            "Changes in the delta since the last compaction",
            delta_changes.clone(),
        );
        let reloads = Counter::default();
        registry.register("hashsieve_index_reloads", "Times the index was reopened", reloads.clone());
        let resident = Gauge::default();
        registry.register("process_resident_memory_bytes", "Resident memory of the daemon", resident.clone());
        let takedown_checks = Family::default();
        registry.register(
            "hashsieve_takedown_checks",
            "Re-checks of takedown cases, by finding",
            takedown_checks.clone(),
        );
        let takedown_notices = Family::default();
        registry.register(
            "hashsieve_takedown_notices",
            "Notice deliveries by webhook, delivered or failed",
            takedown_notices.clone(),
        );
        let takedown_cases = Family::default();
        registry.register("hashsieve_takedown_cases", "Takedown cases, by state", takedown_cases.clone());
        let takedown_active_by_age = Family::default();
        registry.register(
            "hashsieve_takedown_active_cases",
            "Active takedown cases, by time since confirmation",
            takedown_active_by_age.clone(),
        );
        let takedown_times = Family::default();
        registry.register(
            "hashsieve_takedown_time_seconds",
            "Time from first report to confirmation, notice and removal: median and p90, of all cases, per hosting country and per network",
            takedown_times.clone(),
        );
        let review_reveals = Family::default();
        registry.register(
            "hashsieve_review_reveals",
            "Content revealed on the review page beyond its first blurred step, by analyst and step",
            review_reveals.clone(),
        );
        Metrics {
            registry,
            review_reveals,
            takedown_checks,
            takedown_notices,
            takedown_cases,
            takedown_active_by_age,
            takedown_times,
            requests,
            durations,
            matches,
            verdicts,
            rejected,
            connections,
            generation,
            entries,
            delta_entries,
            delta_changes,
            reloads,
            resident,
        }
    }

    /// Counts a reveal step of content on the review page.
    pub fn review_reveal(&self, analyst: &str, step: &'static str) {
        self.review_reveals
            .get_or_create(&RevealLabels { analyst: Escaped(analyst.to_string()), step })
            .inc();
    }

    /// Counts an answered request and its latency.
    pub fn request(&self, protocol: &'static str, endpoint: &'static str, status: &str, elapsed: Duration) {
        let labels = RequestLabels { protocol, endpoint, status: status.to_string() };
        self.requests.get_or_create(&labels).inc();
        self.durations.get_or_create(&EndpointLabels { protocol, endpoint }).observe(elapsed.as_secs_f64());
    }

    /// Counts a verdict and each of its matches.
    pub fn matched(&self, protocol: &'static str, verdict: &MatchVerdict) {
        let outcome = match verdict.outcome {
            hashsieve_core::matcher::MatchOutcome::Known => "known",
            hashsieve_core::matcher::MatchOutcome::NearKnown => "near_known",
            hashsieve_core::matcher::MatchOutcome::Unknown => "unknown",
        };
        self.verdicts.get_or_create(&OutcomeLabels { protocol, outcome }).inc();
        for m in &verdict.matches {
            let labels = MatchLabels {
                protocol,
                list: Escaped(m.list.clone()),
                suppressed: m.suppressed_by.is_some(),
            };
            self.matches.get_or_create(&labels).inc();
        }
    }

    /// Counts a refused request.
    pub fn rejected(&self, protocol: &'static str, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { protocol, reason }).inc();
    }

    /// Counts an open connection until the guard is dropped.
    pub fn connection(&self, protocol: &'static str) -> ConnectionGuard {
        let gauge = self.connections.get_or_create(&ProtocolLabels { protocol }).clone();
        gauge.inc();
        ConnectionGuard(gauge)
    }

    /// Counts a reload.
    pub fn reloaded(&self) {
        self.reloads.inc();
    }

    /// Counts a re-check of a takedown case.
    pub fn takedown_check(&self, finding: &'static str) {
        self.takedown_checks.get_or_create(&FindingLabels { finding }).inc();
    }

    /// Counts a notice delivery by webhook: "delivered" or "failed".
    pub fn takedown_notice(&self, outcome: &'static str) {
        self.takedown_notices.get_or_create(&OutcomeLabels { protocol: "webhook", outcome }).inc();
    }

    /// Sets the takedown gauges to `figures` (read from the store when scraped).
    pub fn takedown_figures(&self, figures: &Figures) {
        for (&state, &count) in &figures.by_state {
            self.takedown_cases.get_or_create(&StateLabels { state }).set(count as i64);
        }
        for (&age, &count) in &figures.active_by_age {
            self.takedown_active_by_age.get_or_create(&AgeLabels { age }).set(count as i64);
        }
        // Groups come and go (a network's last case closed): only the current ones are shown.
        self.takedown_times.clear();
        let groups = std::iter::once(("all", "all", &figures.all))
            .chain(figures.by_country.iter().map(|(name, group)| ("country", name.as_str(), group)))
            .chain(figures.by_network.iter().map(|(name, group)| ("network", name.as_str(), group)));
        for (by, name, group) in groups {
            let stages = [
                ("confirmation", &group.to_confirmation),
                ("notice", &group.to_notice),
                ("removal", &group.to_removal),
            ];
            for (stage, durations) in stages {
                for (quantile, value) in [("0.5", durations.median_ms), ("0.9", durations.p90_ms)] {
                    let Some(ms) = value else { continue };
                    let labels = TakedownTimeLabels { stage, quantile, by, group: Escaped(name.to_string()) };
                    self.takedown_times.get_or_create(&labels).set(ms as f64 / 1000.0);
                }
            }
        }
    }

    /// The metrics as OpenMetrics text, with the index gauges read from `matcher` now.
    pub fn encode(&self, matcher: &Matcher) -> String {
        let live = matcher.current();
        self.generation.set(live.number() as i64);
        let (entries, added, changes) = live.view(|view| {
            let entries: Vec<(&'static str, usize)> =
                view.base.kinds().iter().map(|&kind| (kind.name(), view.base.len(kind))).collect();
            (entries, view.delta.added(), view.delta.changes())
        });
        for (kind, count) in entries {
            self.entries.get_or_create(&KindLabels { kind }).set(count as i64);
        }
        self.delta_entries.set(added as i64);
        self.delta_changes.set(changes as i64);
        self.resident.set(resident_bytes() as f64);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The process's resident memory, from `/proc/self/statm`.
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Holds a connection's place in `hashsieve_open_connections`.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use hashsieve_core::hashes::HashKind;
    use hashsieve_core::index::IndexBuilder;
    use hashsieve_core::matcher::{Match, MatchOutcome};

    use super::*;

    /// A list name from an index made before names were checked can hold anything.
    #[test]
    fn a_list_name_cannot_end_a_line_or_a_label() {
        let metrics = Metrics::new();
        let name = "x\"} 1\nhashsieve_forged 1\r\0\\";
        let matched = Match {
            list: name.into(),
            entry_id: None,
            category: None,
            source: None,
            kind: HashKind::Md5,
            value: "00".repeat(16),
            distance: 0,
            variant: None,
            suppressed_by: None,
        };
        let verdict = MatchVerdict {
            outcome: MatchOutcome::Known,
            matches: vec![matched],
            pdq_quality: None,
            weak_pdq: false,
            errors: Vec::new(),
        };
        metrics.matched("http", &verdict);
        let text = metrics.encode(&Matcher::from_bytes(IndexBuilder::new().to_vec()).unwrap());
        let line = text.lines().find(|line| line.starts_with("hashsieve_matches_total{")).unwrap();
        assert_eq!(
            line,
            "hashsieve_matches_total{protocol=\"http\",list=\"x\\\"} 1\\nhashsieve_forged 1\u{fffd}\u{fffd}\\\\\",suppressed=\"false\"} 1"
        );
        assert!(!text.contains("\nhashsieve_forged"));
    }
}
