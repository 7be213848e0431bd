//! The takedown loop's run: every URL reported and confirmed, then taken down at its true time
//! while the daemon re-checks; the cases polled every second and the block list every 250 ms,
//! and what they showed against the truth.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use hashsieve_testkit::origin::{Behaviour, Origin};
use serde_json::Value;

use crate::daemon::{Settings, Site};
use crate::hosting::{self, Hosted, PROVIDERS, Removal, now_ms};

/// What the run saw.
pub struct Outcome {
    pub hosted: Vec<Hosted>,
    /// The cases at the end, by URL index.
    pub cases: BTreeMap<usize, Value>,
    pub notices_received: usize,
    /// ms on the block list while the content was online / already gone, per URL.
    pub listed_online_ms: u64,
    pub listed_gone_ms: u64,
    /// Online, confirmed and not (yet) listed: the grace period at home.
    pub unlisted_online_ms: u64,
    /// Samples of a URL on the list more than one interval after its removal was seen:
    /// (URL index, case id, ms after the detection), the longest per URL.
    pub lingering: BTreeMap<usize, (u64, u64)>,
    /// Per URL, the last sample that listed it after its true removal, in ms after it.
    pub listed_after_removal: BTreeMap<usize, u64>,
    pub samples: usize,
    pub took: Duration,
    /// Between the samples, the most and the median (ms).
    pub sample_gaps: Vec<u64>,
}

pub fn run(
    site: &Site,
    settings: &Settings,
    mut hosted: Vec<Hosted>,
    receiver: &Origin,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let daemon = site.start(settings)?;
    // Reports first, then the verdicts: one group per picture.
    let mut groups = BTreeSet::new();
    for (i, url) in hosted.iter().map(|hosted| &hosted.url).enumerate() {
        groups.insert(daemon.report(&format!("r{i}"), url)?);
    }
    for &group in &groups {
        daemon.confirm(group)?;
    }
    let confirmed = Instant::now();
    let cases_opened = daemon.cases()?;
    let case_of_url = |cases: &[Value]| -> anyhow::Result<HashMap<String, usize>> {
        let mut map = HashMap::new();
        for case in cases {
            let report = case["reports"][0].as_str().context("a case without reports")?;
            let index: usize = report.trim_start_matches('r').parse()?;
            map.insert(case["url"].as_str().context("a case without a URL")?.to_string(), index);
        }
        Ok(map)
    };
    let mut by_url = case_of_url(&cases_opened)?;
    println!(
        "   {} URLs reported and {} groups confirmed in {:.1} s; {} cases opened",
        hosted.len(),
        groups.len(),
        confirmed.duration_since(started).as_secs_f64(),
        cases_opened.len()
    );

    let interval_ms = settings.interval_secs * 1000;
    let last_removal = hosted.iter().filter(|h| h.removal != Removal::Never).map(|h| h.delay).max();
    let last_removal = last_removal.unwrap_or_default();
    // Bounded: every removal, then three intervals for the last to be seen and leave the list.
    let end = confirmed + last_removal + Duration::from_millis(3 * interval_ms + 1000);
    let mut outcome = Outcome {
        hosted: Vec::new(),
        cases: BTreeMap::new(),
        notices_received: 0,
        listed_online_ms: 0,
        listed_gone_ms: 0,
        unlisted_online_ms: 0,
        lingering: BTreeMap::new(),
        listed_after_removal: BTreeMap::new(),
        samples: 0,
        took: Duration::ZERO,
        sample_gaps: Vec::new(),
    };
    let mut detected: HashMap<usize, (u64, u64)> = HashMap::new(); // index -> (case id, seen gone at)
    let mut last_sample = Instant::now();
    let mut last_poll = Instant::now();
    while Instant::now() < end {
        let now = Instant::now();
        for hosted in hosted.iter_mut() {
            if hosted.removed_ms.is_none()
                && hosted.removal != Removal::Never
                && now >= confirmed + hosted.delay
            {
                hosted.remove();
            }
        }
        let gap = now.duration_since(last_sample).as_millis() as u64;
        last_sample = now;
        let listed: BTreeSet<usize> =
            daemon.block_list()?.iter().filter_map(|url| by_url.get(url).copied()).collect();
        let at = now_ms();
        outcome.samples += 1;
        outcome.sample_gaps.push(gap);
        for (i, hosted) in hosted.iter().enumerate() {
            let on_list = listed.contains(&i);
            match (hosted.removed_ms, on_list) {
                (None, true) => outcome.listed_online_ms += gap,
                (None, false) => outcome.unlisted_online_ms += gap,
                (Some(removed), true) => {
                    outcome.listed_gone_ms += gap;
                    outcome.listed_after_removal.insert(i, at.saturating_sub(removed));
                    if let Some(&(case, seen)) = detected.get(&i)
                        && at > seen + interval_ms
                    {
                        let longest = outcome.lingering.entry(i).or_insert((case, 0));
                        longest.1 = longest.1.max(at - seen);
                    }
                }
                (Some(_), false) => {}
            }
        }
        if now.duration_since(last_poll) >= Duration::from_secs(1) {
            last_poll = now;
            let cases = daemon.cases()?;
            if cases.len() != by_url.len() {
                by_url = case_of_url(&cases)?;
            }
            for case in &cases {
                let (Some(index), Some(seen)) =
                    (by_url.get(case["url"].as_str().unwrap_or_default()), case["removed"]["at_ms"].as_u64())
                else {
                    continue;
                };
                detected.insert(*index, (case["id"].as_u64().unwrap_or_default(), seen));
            }
        }
        std::thread::sleep(Duration::from_millis(250).saturating_sub(now.elapsed()));
    }
    let cases = daemon.cases()?;
    for case in cases {
        if let Some(&index) = by_url.get(case["url"].as_str().unwrap_or_default()) {
            outcome.cases.insert(index, case);
        }
    }
    outcome.notices_received = receiver.received().len();
    outcome.took = started.elapsed();
    outcome.hosted = hosted;
    // What is left on the providers stops at the end of this phase.
    for hosted in &outcome.hosted {
        hosted.origin.set(Behaviour::Status(404));
    }
    Ok(outcome)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub fn print(outcome: &Outcome, settings: &Settings) {
    let cases = &outcome.cases;
    let hosted = &outcome.hosted;
    let by_state = |state: &str| cases.values().filter(|case| case["state"] == state).count();
    println!(
        "   cases opened: {} for {} URLs ({:.0} s simulated, {} block-list samples)",
        cases.len(),
        hosted.len(),
        outcome.took.as_secs_f64(),
        outcome.samples
    );
    let states: Vec<String> =
        ["open", "notified", "still_online", "escalated", "referred", "removed", "closed"]
            .iter()
            .map(|state| format!("{state} {}", by_state(state)))
            .filter(|text| !text.ends_with(" 0"))
            .collect();
    println!("   cases at the end: {}", states.join(", "));
    // Notices: to the home providers, who have webhooks.
    let home = hosted.iter().filter(|h| PROVIDERS[h.provider].country == hosting::HOME).count();
    let notified = cases.values().filter(|case| !case["notified"].is_null()).count();
    println!(
        "   notices: {} cases at home (all with a webhook contact); the receiver got {} POSTs; {notified} cases \
         carry a delivery (notified)",
        home, outcome.notices_received
    );
    let referred: Vec<&Value> = cases.values().filter(|case| !case["referred"].is_null()).collect();
    let abroad = cases.values().filter(|case| case["abroad"] == true).count();
    let partner = hosted.iter().filter(|h| PROVIDERS[h.provider].country == hosting::PARTNER.0).count();
    println!(
        "   referrals: {} cases referred (to {}); {partner} URLs hosted in {}, {abroad} cases abroad in all (US has \
         no partner)",
        referred.len(),
        referred.first().and_then(|case| case["referred"]["to"].as_str()).unwrap_or("nobody"),
        hosting::PARTNER.0,
    );
    let mut by_provider = String::new();
    for (p, provider) in PROVIDERS.iter().enumerate() {
        let here: Vec<&Hosted> = hosted.iter().filter(|h| h.provider == p).collect();
        let located = cases
            .iter()
            .filter(|(i, case)| {
                hosted[**i].provider == p
                    && case["location"]["hosting"]["country"] == provider.country
                    && case["location"]["hosting"]["asn"] == provider.asn
            })
            .count();
        by_provider += &format!(
            "\n      {} ({}, AS{}): {} URLs, {} located right",
            provider.name,
            provider.country,
            provider.asn,
            here.len(),
            located
        );
    }
    println!("   by provider:{by_provider}");

    // Removals against the truth.
    let interval_ms = settings.interval_secs as f64 * 1000.0;
    let bound = interval_ms * (1.0 + f64::from(settings.jitter_percent) / 100.0);
    let mut delays = Vec::new();
    let mut missed = Vec::new();
    let mut late = Vec::new();
    let mut wrong = Vec::new();
    let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, h) in hosted.iter().enumerate() {
        let case = cases.get(&i);
        let seen = case.and_then(|case| case["removed"]["at_ms"].as_u64());
        let id = case.and_then(|case| case["id"].as_u64()).unwrap_or_default();
        let entry = by_kind.entry(h.removal.name()).or_default();
        entry.0 += 1;
        match (h.removed_ms, seen) {
            (Some(removed), Some(seen)) => {
                entry.1 += 1;
                let delay = seen as f64 - removed as f64;
                delays.push(delay);
                if delay > bound + 500.0 {
                    late.push(format!("case {id} ({}, {}) {delay:.0} ms", h.url, h.removal.name()));
                }
            }
            (Some(removed), None) => missed.push(format!(
                "case {id} ({}, {}) removed at {removed}, state {}",
                h.url,
                h.removal.name(),
                case.map(|case| case["state"].to_string()).unwrap_or_default()
            )),
            (None, Some(seen)) => wrong.push(format!("case {id} ({}) marked removed at {seen}", h.url)),
            (None, None) => {}
        }
    }
    let removed = hosted.iter().filter(|h| h.removed_ms.is_some()).count();
    let kinds: Vec<String> =
        by_kind.iter().map(|(kind, (all, seen))| format!("{kind} {seen}/{all}")).collect();
    println!(
        "   removals: {removed} made, {} detected, {} not detected, {} never-removed URLs marked removed (by way, \
         detected/URLs: {})",
        delays.len(),
        missed.len(),
        wrong.len(),
        kinds.join(", ")
    );
    delays.sort_by(f64::total_cmp);
    println!(
        "   detection delay after the true removal: median {:.2} s, p90 {:.2} s, max {:.2} s, min {:.2} s; re-check \
         interval {} s, jitter {}% → bound {:.2} s (+ fetch time); {} over bound + 0.5 s",
        quantile(&delays, 0.5) / 1000.0,
        quantile(&delays, 0.9) / 1000.0,
        delays.last().copied().unwrap_or(f64::NAN) / 1000.0,
        delays.first().copied().unwrap_or(f64::NAN) / 1000.0,
        settings.interval_secs,
        settings.jitter_percent,
        bound / 1000.0,
        late.len()
    );
    for line in missed.iter().chain(&late).chain(&wrong) {
        println!("      ! {line}");
    }

    let seconds = |ms: u64| ms as f64 / 1000.0;
    let after: Vec<u64> = outcome.listed_after_removal.values().copied().collect();
    println!(
        "   block list (sampled every 250 ms; median gap {} ms, max {} ms): covered content still online {:.0} \
         URL-seconds; content already gone {:.1} URL-seconds ({} URLs, the longest {:.2} s after the true \
         removal); online but not yet listed (grace {} s at home) {:.0} URL-seconds",
        {
            let mut gaps = outcome.sample_gaps.clone();
            gaps.sort_unstable();
            gaps.get(gaps.len() / 2).copied().unwrap_or_default()
        },
        outcome.sample_gaps.iter().max().copied().unwrap_or_default(),
        seconds(outcome.listed_online_ms),
        seconds(outcome.listed_gone_ms),
        after.len(),
        after.iter().max().copied().unwrap_or_default() as f64 / 1000.0,
        settings.block_after_secs,
        seconds(outcome.unlisted_online_ms),
    );
    println!(
        "   URLs on the block list more than one interval ({} s) after their content was seen gone: {} (goal 0)",
        settings.interval_secs,
        outcome.lingering.len()
    );
    for (i, (case, ms)) in &outcome.lingering {
        println!(
            "      ! case {case} ({}) still listed {:.2} s after it was seen gone",
            hosted[*i].url,
            *ms as f64 / 1000.0
        );
    }
}
