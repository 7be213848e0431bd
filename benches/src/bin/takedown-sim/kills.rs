//! Durability of the takedown loop under SIGKILL: the daemon is killed at a random point of its
//! re-checks, restarted on the same store, and its cases read through the API: none lost or
//! added (the same ids and URLs), each case's `checked` events numbered 0..n once each, in
//! order, and no recorded check lost since the trial before.

use std::collections::BTreeMap;
use std::time::Duration;

use hashsieve_testkit::Rng;

use crate::daemon::{Daemon, Settings, Site};

/// What the trials found.
pub struct Trials {
    pub trials: usize,
    pub cases: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub slot_faults: Vec<String>,
    pub checks_lost: Vec<String>,
    /// Recorded checks over all cases at the end of each trial.
    pub checks: Vec<usize>,
    pub kill_after_ms: Vec<u64>,
}

/// The cases' ids and URLs, and each case's recorded check count; slot faults appended.
fn read(
    daemon: &Daemon,
    trial: usize,
    faults: &mut Vec<String>,
) -> anyhow::Result<BTreeMap<u64, (String, usize)>> {
    let mut found = BTreeMap::new();
    for case in daemon.cases()? {
        let id = case["id"].as_u64().unwrap_or_default();
        let (case, history) = daemon.detail(id)?;
        let slots: Vec<u64> = history
            .iter()
            .filter(|event| event["event"] == "checked")
            .filter_map(|event| event["slot"].as_u64())
            .collect();
        if slots.iter().enumerate().any(|(i, &slot)| slot != i as u64)
            || case["checks"].as_u64() != Some(slots.len() as u64)
        {
            faults.push(format!("trial {trial}: case {id}: slots {slots:?}, checks {}", case["checks"]));
        }
        let url = case["url"].as_str().unwrap_or_default().to_string();
        if found.insert(id, (url, slots.len())).is_some() {
            faults.push(format!("trial {trial}: case {id} listed twice"));
        }
    }
    Ok(found)
}

pub fn run(site: &Site, settings: &Settings, trials: usize, seed: u64) -> anyhow::Result<Trials> {
    let mut rng = Rng::new(seed ^ 0x4b11);
    let mut daemon = site.start(settings)?;
    let mut faults = Vec::new();
    let before = read(&daemon, 0, &mut faults)?;
    let mut result = Trials {
        trials,
        cases: before.len(),
        lost: 0,
        duplicated: 0,
        slot_faults: Vec::new(),
        checks_lost: Vec::new(),
        checks: Vec::new(),
        kill_after_ms: Vec::new(),
    };
    let mut last = before.clone();
    for trial in 1..=trials {
        // Killed at a different point of the 1 s check cycle each time.
        let after = 300 + rng.below(2200);
        std::thread::sleep(Duration::from_millis(after));
        daemon.kill9()?;
        result.kill_after_ms.push(after);
        daemon = site.start(settings)?;
        let now = read(&daemon, trial, &mut faults)?;
        result.lost +=
            before.iter().filter(|(id, (url, _))| now.get(id).map(|(u, _)| u) != Some(url)).count();
        result.duplicated += now.keys().filter(|id| !before.contains_key(id)).count();
        let mut urls: Vec<&String> = now.values().map(|(url, _)| url).collect();
        urls.sort_unstable();
        result.duplicated += urls.windows(2).filter(|pair| pair[0] == pair[1]).count();
        for (id, (_, checks)) in &now {
            if let Some((_, earlier)) = last.get(id)
                && checks < earlier
            {
                result
                    .checks_lost
                    .push(format!("trial {trial}: case {id}: {earlier} checks before, {checks} now"));
            }
        }
        result.checks.push(now.values().map(|(_, checks)| checks).sum());
        last = now;
    }
    result.slot_faults = faults;
    Ok(result)
}
