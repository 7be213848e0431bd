//! Running the stream through the daemons: the triage run (shifts of reports, each followed by
//! an analyst assessing every pending group) and the throughput run (everything pushed at once,
//! no analyst).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::queue::{Decided, HASHED, Queue, REPORTS};
use crate::scenario::{Report, Scenario, Truth};
use crate::services::{Pipeline, Setup, Shape, cpu_seconds};
use hashsieve_benches::http::request_json;

/// Waiting longer than this for the next result means something is stuck.
const STALL: Duration = Duration::from_secs(60);

/// One group an analyst opened and assessed.
pub struct Assessment {
    pub group: u64,
    /// The verdict given: the ground truth of the picture the representative shows.
    pub verdict: Truth,
}

pub struct TriageRun {
    /// The decision for each report, by report id.
    pub decisions: HashMap<String, Decided>,
    pub assessments: Vec<Assessment>,
    pub shifts: usize,
    /// Results published more than once for a report (should be none).
    pub duplicates: usize,
}

/// Pushes the stream `shift` reports at a time; after each batch is decided, the analyst works
/// through the review queue.
pub fn triage(setup: &Setup, scenario: &Scenario, shape: Shape, shift: usize) -> anyhow::Result<TriageRun> {
    let name = format!("triage-near-known-{}", shape.near_known_is_known);
    let pipeline = Pipeline::start(setup, &name, shape)?;
    let mut queue = Queue::connect(&pipeline.redis_url)?;
    let analyst = Analyst::new(&pipeline, &setup.token, scenario);
    let mut run = TriageRun { decisions: HashMap::new(), assessments: Vec::new(), shifts: 0, duplicates: 0 };
    for batch in scenario.reports.chunks(shift) {
        queue.push(batch.iter().map(|report| (report.id.as_str(), content(scenario, report))))?;
        let expected = run.decisions.len() + batch.len();
        run.duplicates += collect(&mut queue, &mut run.decisions, expected, &pipeline)?;
        run.assessments.extend(analyst.shift()?);
        run.shifts += 1;
    }
    Ok(run)
}

/// How long one run took, and where the CPU went.
pub struct Timing {
    /// From the first XADD to the last result, by this program's clock.
    pub end_to_end: Duration,
    /// From the first XADD to the last.
    pub pushed: Duration,
    /// From the first report to the last hashed entry, by Redis's stream ids (ms): the hashing
    /// stage alone.
    pub hashing: Duration,
    /// CPU seconds used by each process during the run (this program: while pushing and
    /// collecting).
    pub cpu: Vec<(String, f64)>,
}

/// Pushes every report up-front and waits for every result.
pub fn throughput(setup: &Setup, scenario: &Scenario, shape: Shape, name: &str) -> anyhow::Result<Timing> {
    let pipeline = Pipeline::start(setup, name, shape)?;
    let mut queue = Queue::connect(&pipeline.redis_url)?;
    let mut decisions = HashMap::new();
    let own_cpu = || cpu_seconds("self").unwrap_or(0.0);
    let cpu_before = own_cpu();
    let started = Instant::now();
    queue.push(scenario.reports.iter().map(|report| (report.id.as_str(), content(scenario, report))))?;
    let pushed = started.elapsed();
    let duplicates = collect(&mut queue, &mut decisions, scenario.reports.len(), &pipeline)?;
    let end_to_end = started.elapsed();
    let mut cpu = pipeline.cpu_seconds();
    cpu.push(("hotline-sim".into(), own_cpu() - cpu_before));
    ensure!(duplicates == 0, "{duplicates} results published twice");
    let first_report = queue.entry_ms(REPORTS, true)?;
    let last_hashed = queue.entry_ms(HASHED, false)?;
    let hashing = Duration::from_millis(last_hashed.saturating_sub(first_report));
    Ok(Timing { end_to_end, pushed, hashing, cpu })
}

fn content<'a>(scenario: &'a Scenario, report: &Report) -> &'a [u8] {
    &scenario.contents[report.content].bytes
}

/// Reads results until `expected` reports have one; returns how many came a second time.
fn collect(
    queue: &mut Queue,
    decisions: &mut HashMap<String, Decided>,
    expected: usize,
    pipeline: &Pipeline,
) -> anyhow::Result<usize> {
    let mut duplicates = 0;
    let mut progress = Instant::now();
    while decisions.len() < expected {
        let results = queue.next_results(Duration::from_millis(500))?;
        if results.is_empty() && progress.elapsed() > STALL {
            bail!(
                "{} of {expected} reports decided, nothing for {STALL:?}; the logs are in {}",
                decisions.len(),
                pipeline.dir.display()
            );
        }
        for decided in results {
            progress = Instant::now();
            // The first decision is the one the hotline acted on.
            if decisions.contains_key(&decided.report_id) {
                duplicates += 1;
            } else {
                decisions.insert(decided.report_id.clone(), decided);
            }
        }
    }
    Ok(duplicates)
}

/// The simulated analyst: opens the representative of every pending group and gives the
/// verdict that picture deserves (its ground truth, found through the report ids).
struct Analyst<'a> {
    pipeline: &'a Pipeline,
    token: &'a str,
    scenario: &'a Scenario,
    reports: HashMap<&'a str, &'a Report>,
}

impl<'a> Analyst<'a> {
    fn new(pipeline: &'a Pipeline, token: &'a str, scenario: &'a Scenario) -> Analyst<'a> {
        let reports = scenario.reports.iter().map(|report| (report.id.as_str(), report)).collect();
        Analyst { pipeline, token, scenario, reports }
    }

    /// Assesses every group pending now, page by page.
    fn shift(&self) -> anyhow::Result<Vec<Assessment>> {
        let mut assessed = Vec::new();
        let mut after = None;
        loop {
            let cursor = after.map(|group| format!("&after={group}")).unwrap_or_default();
            let page = self.call("GET", &format!("/v1/review/groups?limit=200{cursor}"), None)?;
            let groups = page["groups"].as_array().context("a page of groups")?;
            for group in groups {
                assessed.push(self.assess(group)?);
            }
            match page["next"].as_u64() {
                Some(next) => after = Some(next),
                None => return Ok(assessed),
            }
        }
    }

    fn assess(&self, group: &serde_json::Value) -> anyhow::Result<Assessment> {
        let id = group["group"].as_u64().with_context(|| format!("a group id in {group}"))?;
        let report_id =
            group["reports"][0]["id"].as_str().with_context(|| format!("a report of group {id}"))?;
        let report =
            self.reports.get(report_id).with_context(|| format!("group {id}: unknown report {report_id}"))?;
        let verdict = self.scenario.original_of(report).truth;
        let mut body = verdict.to_json();
        body["analyst"] = "simulated analyst".into();
        self.call("POST", &format!("/v1/review/groups/{id}/verdict"), Some(&body))?;
        Ok(Assessment { group: id, verdict })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, json) = request_json(self.pipeline.review, method, path, self.token, body)?;
        ensure!(status == 200, "{method} {path}: {status} {json}");
        Ok(json)
    }
}
