//! The figures a hotline measures itself by: time from first report to confirmation, to
//! notice, and to removal, per hosting country and per network; and the active cases by age.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Case, CaseState, HOUR_MS, case_country};

/// The median and 90th percentile of some durations, and how many there were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Durations {
    /// How many.
    pub count: u64,
    /// The median, in milliseconds (the lower middle for an even count); none if count is 0.
    pub median_ms: Option<u64>,
    /// The 90th percentile (nearest rank), in milliseconds.
    pub p90_ms: Option<u64>,
}

impl Durations {
    fn of(mut values: Vec<u64>) -> Durations {
        values.sort_unstable();
        let rank = |q: f64| {
            let n = values.len();
            // Nearest rank: the smallest value with at least q of the values at or below it.
            (n > 0).then(|| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
        };
        Durations { count: values.len() as u64, median_ms: rank(0.5), p90_ms: rank(0.9) }
    }
}

/// The three times of one group of cases (all, a country, a network).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupFigures {
    /// Cases.
    pub cases: u64,
    /// First report to confirmation.
    pub to_confirmation: Durations,
    /// First report to the notice's delivery (cases noticed).
    pub to_notice: Durations,
    /// First report to the check that saw it gone (cases removed).
    pub to_removal: Durations,
}

/// The takedown figures of the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Every case.
    pub all: GroupFigures,
    /// Per hosting country ("unknown" when the fetch found none).
    pub by_country: BTreeMap<String, GroupFigures>,
    /// Per network, as "AS64500 Example Hosting" ("unknown" when none was found).
    pub by_network: BTreeMap<String, GroupFigures>,
    /// Cases in each state.
    pub by_state: BTreeMap<&'static str, u64>,
    /// Active cases by time since confirmation: under 1 h, 1–24 h, 1–3 days, 3–7 days, over
    /// 7 days.
    pub active_by_age: BTreeMap<&'static str, u64>,
}

/// The age buckets of [`Figures::active_by_age`], their upper bounds in hours.
pub(crate) const AGE_BUCKETS: [(&str, u64); 5] =
    [("under_1h", 1), ("1h_to_24h", 24), ("1d_to_3d", 72), ("3d_to_7d", 168), ("over_7d", u64::MAX)];

impl Figures {
    /// The figures of `cases` at `now_ms`.
    pub fn of<'a>(cases: impl IntoIterator<Item = &'a Case>, now_ms: u64) -> Figures {
        let mut all = Vec::new();
        let mut by_country: BTreeMap<String, Vec<&Case>> = BTreeMap::new();
        let mut by_network: BTreeMap<String, Vec<&Case>> = BTreeMap::new();
        let mut figures = Figures::default();
        for state in CaseState::ALL {
            figures.by_state.insert(state.name(), 0);
        }
        for (bucket, _) in AGE_BUCKETS {
            figures.active_by_age.insert(bucket, 0);
        }
        for case in cases {
            all.push(case);
            by_country.entry(case_country(case).unwrap_or("unknown").to_string()).or_default().push(case);
            by_network.entry(network_name(case)).or_default().push(case);
            *figures.by_state.entry(case.state.name()).or_default() += 1;
            if case.state.is_active() {
                let hours = now_ms.saturating_sub(case.confirmed_ms) / HOUR_MS;
                let (bucket, _) =
                    AGE_BUCKETS.iter().find(|(_, below)| hours < *below).unwrap_or(&AGE_BUCKETS[4]);
                *figures.active_by_age.entry(bucket).or_default() += 1;
            }
        }
        figures.all = group(&all);
        figures.by_country = by_country.into_iter().map(|(key, cases)| (key, group(&cases))).collect();
        figures.by_network = by_network.into_iter().map(|(key, cases)| (key, group(&cases))).collect();
        figures
    }
}

fn group(cases: &[&Case]) -> GroupFigures {
    let since_report = |at: Option<u64>, case: &Case| at.map(|at| at.saturating_sub(case.first_reported_ms));
    let times = |at: &dyn Fn(&Case) -> Option<u64>| {
        Durations::of(cases.iter().filter_map(|case| since_report(at(case), case)).collect())
    };
    GroupFigures {
        cases: cases.len() as u64,
        to_confirmation: times(&|case| Some(case.confirmed_ms)),
        to_notice: times(&|case| case.notified.as_ref().map(|delivery| delivery.at_ms)),
        to_removal: times(&|case| case.removed.map(|removal| removal.at_ms)),
    }
}

/// A case's network as "AS64500 Name", or "unknown".
pub(crate) fn network_name(case: &Case) -> String {
    let hosting = case.location.hosting.as_ref();
    match (hosting.and_then(|h| h.asn), hosting.and_then(|h| h.network.as_deref())) {
        (Some(asn), Some(name)) => format!("AS{asn} {name}"),
        (Some(asn), None) => format!("AS{asn}"),
        (None, Some(name)) => name.to_string(),
        (None, None) => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Durations::of((1..=10).collect());
        assert_eq!((d.count, d.median_ms, d.p90_ms), (10, Some(5), Some(9)));
        let d = Durations::of(vec![7]);
        assert_eq!((d.median_ms, d.p90_ms), (Some(7), Some(7)));
        assert_eq!(Durations::of(Vec::new()), Durations::default());
    }
}
