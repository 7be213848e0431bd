//! What a run shows, worked out from the ground truth and printed: the originals and the
//! stream, how far each kind of edit moves PDQ, and for a triage run the share of items a
//! person opened against the genuinely new share and the baselines, whether every verdict was
//! right, and why any extra item was opened.

use std::collections::{BTreeMap, HashMap, HashSet};

// The threshold the daemons run with (triage's and core's default).
use hashsieve_core::index::DEFAULT_PDQ_THRESHOLD as PDQ_THRESHOLD;
use hashsieve_core::signals::PdqSignal;
use rayon::prelude::*;

use crate::edits::{Edit, EditKind, Step};
use crate::pictures::{self, MIN_DISTANCE, MIN_QUALITY, Selection};
use crate::queue::Decided;
use crate::runs::TriageRun;
use crate::scenario::{EXTERNAL_LIST, Kind, Report, Scenario, Truth, category};

pub fn print_originals(selection: &Selection) {
    let generated = selection.pictures.len() - selection.photos;
    println!(
        "originals: {} distinct pictures ({} real photos, {generated} generated), every one of PDQ quality >= {MIN_QUALITY}",
        selection.pictures.len(),
        selection.photos,
    );
    println!(
        "  dropped as within {MIN_DISTANCE} of one already kept: {} photos (the same picture in another size or mode), \
         {} generated; below quality {MIN_QUALITY}: {}",
        selection.photos_dropped_near, selection.generated_dropped_near, selection.dropped_weak
    );
    println!(
        "  minimum PDQ distance between two originals (any rotation or mirror image, core's PDQ): {}",
        selection.min_distance
    );
}

/// The PDQ of every edited copy, by content, hashed by core as the daemons hash it.
pub struct EditedPdq(Vec<Option<PdqSignal>>);

impl EditedPdq {
    pub fn measure(scenario: &Scenario) -> EditedPdq {
        EditedPdq(
            scenario
                .contents
                .par_iter()
                .map(|content| content.edit.as_ref().and_then(|_| pictures::pdq_of(&content.bytes)))
                .collect(),
        )
    }

    /// The edited copy `content`'s PDQ and its distance to the original's, if it is an edited
    /// copy that decodes.
    fn of(&self, scenario: &Scenario, content: usize) -> Option<(PdqSignal, u32)> {
        let pdq = self.0[content]?;
        let original = &scenario.originals[scenario.contents[content].original].picture.pdq;
        Some((pdq, pictures::distance(original, &pdq)))
    }
}

pub fn print_stream(scenario: &Scenario, edited: &EditedPdq) {
    let total = scenario.reports.len();
    let (counts, listed_edited) = scenario.composition();
    let share = |name: &str| {
        let n = counts.get(name).copied().unwrap_or(0);
        format!("{n} ({:.1}%)", 100.0 * n as f64 / total as f64)
    };
    let listed_pictures = scenario.originals.iter().filter(|original| original.listed).count();
    let mut truths: BTreeMap<Truth, usize> = BTreeMap::new();
    for original in &scenario.originals {
        *truths.entry(original.truth).or_insert(0) += 1;
    }
    let truths: Vec<String> = truths.iter().map(|(truth, n)| format!("{} {n}", truth_name(*truth))).collect();
    println!(
        "ground truth: {listed_pictures} pictures in the external list (their MD5 and PDQ, with category); \
         verdicts of all pictures: {}",
        truths.join(", ")
    );
    println!("report stream: {total} reports, {} distinct contents", scenario.contents.len());
    println!("  first reports of unlisted pictures  {}", share("first"));
    println!("  exact re-reports (same bytes)       {}", share("repeat"));
    println!("  edited copies of reported pictures  {}", share("edited"));
    println!(
        "  reports of listed pictures          {}, of which {listed_edited} edited copies",
        share("listed")
    );
    println!(
        "edited copies: PDQ distance to their original (core, nearest rotation or mirror image; near = within {PDQ_THRESHOLD})"
    );
    println!(
        "  {:<12} {:>6} {:>6} {:>8} {:>5} {:>11}",
        "edit", "copies", "near", "median", "max", "quality<50"
    );
    for kind in EditKind::ALL {
        let mut distances = Vec::new();
        let mut weak = 0;
        for (number, content) in scenario.contents.iter().enumerate() {
            if content.edit.as_ref().is_some_and(|edit| edit.kind() == kind)
                && let Some((pdq, distance)) = edited.of(scenario, number)
            {
                distances.push(distance);
                weak += usize::from(pdq.quality < MIN_QUALITY);
            }
        }
        distances.sort_unstable();
        let near = distances.iter().filter(|&&distance| distance <= PDQ_THRESHOLD).count();
        let median = distances.get(distances.len() / 2).map_or("-".into(), u32::to_string);
        let max = distances.last().map_or("-".into(), u32::to_string);
        println!("  {:<12} {:>6} {:>6} {median:>8} {max:>5} {weak:>11}", kind.name(), distances.len(), near);
    }
}

/// How fast PDQ gives up on crops, on the originals themselves: every edge cut by the same
/// percentage, saved as JPEG q90; the real photos apart from the generated pictures, to show
/// that the generated ones behave like photos.
pub fn print_crop_sweep(scenario: &Scenario, photos: usize) {
    const GENERATED_SAMPLE: usize = 60;
    let sample: Vec<(bool, usize)> = (0..scenario.originals.len())
        .map(|original| (original < photos, original))
        .filter(|&(photo, original)| photo || original < photos + GENERATED_SAMPLE)
        .collect();
    println!(
        "crop sweep: every edge cut by the same share, JPEG q90; PDQ distance to the original \
         ({photos} photos, {} generated)",
        sample.len() - photos
    );
    for percent in 1..=5 {
        let edit = Edit {
            steps: vec![Step::Crop { left: percent, top: percent, right: percent, bottom: percent }],
            quality: 90,
        };
        let measured: Vec<(bool, Option<u32>)> = sample
            .par_iter()
            .map(|&(photo, original)| {
                let picture = &scenario.originals[original].picture;
                let cropped = edit.apply(&picture.bytes).ok().and_then(|bytes| pictures::pdq_of(&bytes));
                (photo, cropped.map(|cropped| pictures::distance(&picture.pdq, &cropped)))
            })
            .collect();
        let summary = |photos: bool| {
            let mut distances: Vec<u32> = measured
                .iter()
                .filter(|(photo, _)| *photo == photos)
                .filter_map(|(_, distance)| *distance)
                .collect();
            distances.sort_unstable();
            let near = distances.iter().filter(|&&distance| distance <= PDQ_THRESHOLD).count();
            let median = distances.get(distances.len() / 2).map_or("-".into(), u32::to_string);
            format!("median {median:>3}, near {near:>2}/{:<2}", distances.len())
        };
        println!("  {percent}% each edge: photos {}; generated {}", summary(true), summary(false));
    }
}

fn truth_name(truth: Truth) -> String {
    match truth {
        Truth::Illegal(category) => format!("illegal {category}"),
        Truth::Legal => "legal".into(),
        Truth::Unclear => "unclear".into(),
    }
}

/// Why a group that is not a genuinely new picture was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Extra {
    /// An edited copy of a listed picture, PDQ-near the list entry: a perceptual-only list
    /// match, which goes to a person unless `near_known_is_known`.
    ListedNear,
    /// An edited copy (of a listed picture or of one already opened) farther than the
    /// threshold from its original in PDQ.
    BeyondThreshold,
    /// An edited copy whose PDQ is too weak to match on.
    Weak,
    /// None of the above: worth a look.
    Other,
}

pub fn print_triage(
    scenario: &Scenario,
    edited: &EditedPdq,
    run: &TriageRun,
    near_known_is_known: bool,
    shift: usize,
) {
    let items = scenario.reports.len();
    let pct = |n: usize| 100.0 * n as f64 / items as f64;
    let setting = if near_known_is_known {
        "true, the default: a perceptual-only match to the list is known"
    } else {
        "false: a perceptual-only match to the list goes to a person, with the match as a hint"
    };
    println!();
    println!("== triage with [triage] near_known_is_known = {setting}");
    println!(
        "   {} shifts of up to {shift} reports, each followed by an analyst assessing every pending group",
        run.shifts
    );
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for decided in run.decisions.values() {
        *outcomes.entry(decided.outcome.as_str()).or_insert(0) += 1;
    }
    let outcomes: Vec<String> = outcomes.iter().map(|(outcome, n)| format!("{outcome} {n}")).collect();
    println!("   decisions: {}; published twice: {}", outcomes.join(", "), run.duplicates);

    let opened = run.assessments.len();
    let genuinely_new = scenario.genuinely_new();
    let exact_only = scenario.exact_hash_only_opens();
    let difference = pct(opened) - pct(genuinely_new);
    let met = if difference.abs() <= 1.0 { "met" } else { "NOT met" };
    println!("   {:<58} {items:>6}", "items (reports)");
    println!("   {:<58} {opened:>6} {:>7.2}%", "share opened by a human (groups assessed)", pct(opened));
    println!(
        "   {:<58} {genuinely_new:>6} {:>7.2}%",
        "genuinely new groups (distinct unlisted pictures)",
        pct(genuinely_new)
    );
    println!("   {:<58} {difference:>+14.2} pp (goal: within 1 pp: {met})", "difference");
    println!("   {:<58} {items:>6} {:>7.2}%", "naive: every item opened", 100.0);
    println!(
        "   {:<58} {exact_only:>6} {:>7.2}%",
        "exact-hash-only: list MD5s and assessed digests",
        pct(exact_only)
    );

    let check = Correctness::check(scenario, run);
    println!(
        "   correctness: verdicts different from the ground truth {}; unlisted pictures called known {}; \
         groups holding more than one picture {}; reports left without a verdict {}",
        check.wrong.len(),
        check.false_alarms,
        check.mixed_groups,
        check.without_verdict
    );
    for (report, given) in check.wrong.iter().take(10) {
        let original = scenario.original_of(report);
        println!(
            "     {} ({}): given {given:?}, ground truth {:?}",
            report.id, original.picture.name, original.truth
        );
    }
    for error in check.errors.iter().take(10) {
        println!("     error: {error}");
    }
    print_extra(scenario, edited, run, near_known_is_known);
}

/// Decisions checked against the ground truth.
struct Correctness<'a> {
    /// Reports whose final verdict is not their picture's, with the verdict given.
    wrong: Vec<(&'a Report, Truth)>,
    /// Reports of unlisted pictures called known from the external list.
    false_alarms: usize,
    /// Review groups whose members show different pictures.
    mixed_groups: usize,
    /// Errors, reports of groups never assessed, unreadable decisions.
    without_verdict: usize,
    /// The reports decided `error`, with why.
    errors: Vec<String>,
}

impl<'a> Correctness<'a> {
    fn check(scenario: &'a Scenario, run: &TriageRun) -> Correctness<'a> {
        let group_verdicts: HashMap<u64, Truth> =
            run.assessments.iter().map(|assessment| (assessment.group, assessment.verdict)).collect();
        let mut check = Correctness {
            wrong: Vec::new(),
            false_alarms: 0,
            mixed_groups: 0,
            without_verdict: 0,
            errors: Vec::new(),
        };
        let mut group_pictures: HashMap<u64, HashSet<usize>> = HashMap::new();
        for report in &scenario.reports {
            let original = scenario.original_of(report);
            let Some(decided) = run.decisions.get(&report.id) else {
                check.without_verdict += 1;
                continue;
            };
            if let Some(error) = &decided.error {
                check.errors.push(format!("{}: {error}", report.id));
            }
            if let Some(group) = new_group(decided) {
                group_pictures.entry(group).or_default().insert(scenario.contents[report.content].original);
            }
            let matches = decided.decision["matches"].as_array().map(Vec::as_slice).unwrap_or_default();
            if decided.outcome == "known"
                && !original.listed
                && matches.iter().any(|found| found["list"] == EXTERNAL_LIST)
            {
                check.false_alarms += 1;
            }
            match final_verdict(decided, &group_verdicts) {
                Some(given) if given == original.truth => {}
                Some(given) => check.wrong.push((report, given)),
                None => check.without_verdict += 1,
            }
        }
        check.mixed_groups = group_pictures.values().filter(|pictures| pictures.len() > 1).count();
        check
    }
}

/// The group of a `new` decision.
fn new_group(decided: &Decided) -> Option<u64> {
    (decided.outcome == "new").then(|| decided.decision["group"].as_u64()).flatten()
}

/// The verdict a report ends up with: a list entry's (every list here holds illegal material,
/// with its category: the external list's, or the hotline's own exports), the inherited one,
/// or its review group's.
fn final_verdict(decided: &Decided, group_verdicts: &HashMap<u64, Truth>) -> Option<Truth> {
    match decided.outcome.as_str() {
        "known" => {
            let matches = decided.decision["matches"].as_array()?;
            let verdicts: Option<HashSet<Truth>> = matches
                .iter()
                .map(|found| Some(Truth::Illegal(category(found["category"].as_str()?)?)))
                .collect();
            let verdicts = verdicts?;
            // Matches that disagree on the category give no single verdict.
            (verdicts.len() == 1).then(|| verdicts.into_iter().next()).flatten()
        }
        "previously_assessed" => Truth::from_json(&decided.decision["verdict"]),
        "new" => group_verdicts.get(&new_group(decided)?).copied(),
        _ => None,
    }
}

/// The groups opened that are not a genuinely new picture (the group of an unlisted picture's
/// first report), and why each one was.
fn print_extra(scenario: &Scenario, edited: &EditedPdq, run: &TriageRun, near_known_is_known: bool) {
    let decided = |report: &Report| run.decisions.get(&report.id);
    let genuine: HashSet<u64> = scenario
        .reports
        .iter()
        .filter(|report| report.kind == Kind::First)
        .filter_map(|report| new_group(decided(report)?))
        .collect();
    // The report that started each group: the first one decided new in it, in stream order.
    let mut starters: HashMap<u64, &Report> = HashMap::new();
    for report in &scenario.reports {
        if let Some(group) = decided(report).and_then(new_group) {
            starters.entry(group).or_insert(report);
        }
    }
    let opened: HashSet<u64> = run.assessments.iter().map(|assessment| assessment.group).collect();
    let mut extras: BTreeMap<Extra, Vec<(&Report, Option<u32>)>> = BTreeMap::new();
    // Groups opened although no report was decided new in them: should not exist.
    let mut unstarted = 0;
    for assessment in run.assessments.iter().filter(|assessment| !genuine.contains(&assessment.group)) {
        let Some(starter) = starters.get(&assessment.group) else {
            unstarted += 1;
            continue;
        };
        let measured = edited.of(scenario, starter.content);
        let why = match measured {
            None => Extra::Other,
            Some((pdq, _)) if pdq.quality < MIN_QUALITY => Extra::Weak,
            Some((_, distance)) if distance > PDQ_THRESHOLD => Extra::BeyondThreshold,
            Some(_) if scenario.original_of(starter).listed => Extra::ListedNear,
            Some(_) => Extra::Other,
        };
        extras.entry(why).or_default().push((starter, measured.map(|(_, distance)| distance)));
    }
    let never_opened = genuine.difference(&opened).count();
    let extra = unstarted + extras.values().map(Vec::len).sum::<usize>();
    let pp = |n: usize| format!("+{:.2} pp", 100.0 * n as f64 / scenario.reports.len() as f64);
    println!(
        "   opens beyond the genuinely new groups: {extra} ({}); genuinely new groups never opened: {never_opened}",
        pp(extra)
    );
    if unstarted > 0 {
        println!(
            "     {unstarted:>4} ({})  groups opened with no report decided new in them (unexpected)",
            pp(unstarted)
        );
    }
    let indent = "                       ";
    for (why, groups) in &extras {
        let explanation = match why {
            Extra::ListedNear if near_known_is_known => {
                "edited copies of listed pictures, PDQ-near the list entry, yet not known (unexpected)"
            }
            Extra::ListedNear => {
                "edited copies of listed pictures, PDQ within 31 of the list entry: a perceptual-only list \
                 match goes to a person under this setting (one look per picture, then inherited)"
            }
            Extra::BeyondThreshold => {
                "edited copies farther than 31 from their original in PDQ (of listed pictures, or of pictures \
                 already opened): a group of their own"
            }
            Extra::Weak => "edited copies with PDQ quality below 50 (matched by digest only)",
            Extra::Other => "other (unexplained)",
        };
        println!("     {:>4} ({})  {explanation}", groups.len(), pp(groups.len()));
        let edit_of = |report: &Report| scenario.contents[report.content].edit.as_ref();
        let mut by_kind: BTreeMap<Option<EditKind>, usize> = BTreeMap::new();
        for (report, _) in groups {
            *by_kind.entry(edit_of(report).map(Edit::kind)).or_insert(0) += 1;
        }
        let by_kind: Vec<String> = by_kind
            .iter()
            .map(|(kind, n)| format!("{} {n}", kind.map_or("no edit", EditKind::name)))
            .collect();
        println!("{indent}by edit: {}", by_kind.join(", "));
        // Under the default these are expected, one per listed picture edited: the count says it.
        if *why == Extra::ListedNear && !near_known_is_known {
            continue;
        }
        // Crops are many and alike: their distances in bands. Anything else is named.
        let cropped: Vec<u32> = groups
            .iter()
            .filter(|(report, _)| edit_of(report).is_some_and(Edit::crops))
            .filter_map(|(_, distance)| *distance)
            .collect();
        if !cropped.is_empty() {
            println!(
                "{indent}{} with a crop; their PDQ distance to the original: {}",
                cropped.len(),
                bands(&cropped)
            );
        }
        for (report, distance) in
            groups.iter().filter(|(report, _)| !edit_of(report).is_some_and(Edit::crops))
        {
            let edit = edit_of(report).map_or("no edit".into(), ToString::to_string);
            let distance = distance.map_or("-".into(), |distance| distance.to_string());
            let original = scenario.original_of(report);
            let listed = if original.listed { ", listed" } else { "" };
            println!(
                "{indent}{edit}: PDQ distance {distance} to the original ({}, {}{listed})",
                report.id, original.picture.name
            );
        }
    }
}

/// Distances counted in bands of ten.
fn bands(distances: &[u32]) -> String {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for &distance in distances {
        *counts.entry(distance.min(80) / 10).or_insert(0) += 1;
    }
    let label = |band: u32| if band == 8 { "80+".into() } else { format!("{}-{}", band * 10, band * 10 + 9) };
    counts.iter().map(|(&band, n)| format!("{} {n}", label(band))).collect::<Vec<_>>().join(", ")
}
