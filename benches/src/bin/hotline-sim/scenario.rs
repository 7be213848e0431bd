//! The ground truth and the report stream: what each picture "is" (the verdict an analyst would
//! give it), which pictures the external hash list already holds, and the reports in the order
//! the hotline receives them, each traced back to its picture and edit.

use std::collections::{BTreeMap, HashSet};

use anyhow::Context;
use hashsieve_core::digest::{DigestKind, DigestSet, digest_bytes};
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::{IndexBuilder, ListOptions};
use rayon::prelude::*;

use crate::edits::Edit;
use crate::pictures::Picture;
use crate::rng::Rng;

/// The name of the external hash list in the index the daemons serve.
pub const EXTERNAL_LIST: &str = "external";

/// Share of the pictures the external list holds.
const LISTED_SHARE: f32 = 0.15;
/// Shares of the stream beyond the first reports of unlisted pictures (see the header of
/// `hotline-sim.rs`): reports of listed pictures, and edited copies of earlier reported ones.
/// The rest are exact re-reports.
const LISTED_REPORTS: f32 = 0.15;
const EDITED_REPORTS: f32 = 0.33;
/// Of the reports of a listed picture, this share is the listed file itself.
const LISTED_EXACT: f32 = 0.55;

/// What an analyst decides a picture is: the pretend verdict the simulation plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Truth {
    Illegal(&'static str),
    Legal,
    Unclear,
}

impl Truth {
    /// The verdict as the review API takes it.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            Truth::Illegal(category) => serde_json::json!({"kind": "illegal", "category": category}),
            Truth::Legal => serde_json::json!({"kind": "legal"}),
            Truth::Unclear => serde_json::json!({"kind": "unclear"}),
        }
    }

    /// A verdict as the daemon writes it (`{"kind": …, "category": …}`), if it is one.
    pub fn from_json(verdict: &serde_json::Value) -> Option<Truth> {
        match verdict["kind"].as_str()? {
            "illegal" => Some(Truth::Illegal(category(verdict["category"].as_str()?)?)),
            "legal" => Some(Truth::Legal),
            "unclear" => Some(Truth::Unclear),
            _ => None,
        }
    }
}

/// The categories a verdict may carry, as static strings.
pub fn category(name: &str) -> Option<&'static str> {
    ["A", "B", "C"].into_iter().find(|known| *known == name)
}

pub struct Original {
    pub picture: Picture,
    pub truth: Truth,
    /// In the external hash list (MD5 and PDQ of these bytes).
    pub listed: bool,
}

/// Bytes as reported: an original's file or an edited copy of it.
pub struct Content {
    pub bytes: Vec<u8>,
    pub original: usize,
    pub edit: Option<Edit>,
    pub md5: [u8; 16],
}

/// Why a report is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The first report of an unlisted picture: its original file.
    First,
    /// The same bytes as an earlier report.
    Repeat,
    /// An edited copy of an earlier reported unlisted picture.
    Edited,
    /// A listed picture: its listed file or an edited copy.
    Listed,
}

pub struct Report {
    /// `sim-000123`.
    pub id: String,
    pub content: usize,
    pub kind: Kind,
}

pub struct Scenario {
    pub originals: Vec<Original>,
    pub contents: Vec<Content>,
    pub reports: Vec<Report>,
}

impl Scenario {
    /// Gives `pictures` their ground truth and builds a stream of `count` reports from `seed`.
    pub fn build(pictures: Vec<Picture>, count: usize, seed: u64) -> anyhow::Result<Scenario> {
        let mut rng = Rng::fork(seed, u64::MAX);
        let originals: Vec<Original> = pictures
            .into_iter()
            .map(|picture| {
                let listed = rng.chance(LISTED_SHARE);
                Original { picture, truth: pretend_verdict(&mut rng, listed), listed }
            })
            .collect();
        let (unlisted, listed): (Vec<usize>, Vec<usize>) =
            (0..originals.len()).partition(|&original| !originals[original].listed);
        anyhow::ensure!(!listed.is_empty(), "no picture was listed: too few pictures");
        anyhow::ensure!(unlisted.len() < count, "{count} reports cannot hold {} pictures", unlisted.len());
        let plan = plan(&mut rng, count, unlisted, &listed);
        let contents: Vec<Content> = plan
            .contents
            .into_par_iter()
            .map(|(original, edit)| {
                let source = &originals[original].picture.bytes;
                let bytes = match &edit {
                    Some(edit) => edit.apply(source).with_context(|| format!("editing {edit}"))?,
                    None => source.clone(),
                };
                let md5 = md5(&bytes);
                Ok(Content { bytes, original, edit, md5 })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Scenario { originals, contents, reports: plan.reports })
    }

    pub fn original_of(&self, report: &Report) -> &Original {
        &self.originals[self.contents[report.content].original]
    }

    /// The index the daemons serve: list `external` with the MD5 and the PDQ hash of every
    /// listed picture, each with its category.
    pub fn index(&self) -> anyhow::Result<IndexBuilder> {
        let mut builder = IndexBuilder::new();
        let list = builder.add_list(ListOptions::new(EXTERNAL_LIST))?;
        for (number, original) in self.originals.iter().enumerate().filter(|(_, original)| original.listed) {
            let Truth::Illegal(category) = original.truth else {
                unreachable!("listed pictures are illegal")
            };
            let entry = |kind, value: Vec<u8>| {
                ImportedEntry::new(kind, value).with_id(format!("picture-{number}")).with_category(category)
            };
            builder.add(list, &entry(HashKind::Md5, md5(&original.picture.bytes).to_vec()))?;
            builder.add(list, &entry(HashKind::Pdq, original.picture.pdq.hash.0.to_vec()))?;
        }
        Ok(builder)
    }

    /// Distinct unlisted pictures in the stream: the review groups a perfect system would open.
    pub fn genuinely_new(&self) -> usize {
        self.reports.iter().filter(|report| report.kind == Kind::First).count()
    }

    /// What a system with exact hashes only would show a person: it knows the list's MD5s and
    /// remembers the digests it has assessed, so every distinct content not listed byte for
    /// byte is opened once.
    pub fn exact_hash_only_opens(&self) -> usize {
        let listed: HashSet<[u8; 16]> = self
            .originals
            .iter()
            .filter(|original| original.listed)
            .map(|original| md5(&original.picture.bytes))
            .collect();
        let seen: HashSet<[u8; 16]> =
            self.reports.iter().map(|report| self.contents[report.content].md5).collect();
        seen.difference(&listed).count()
    }

    /// Reports of each kind, and of those of listed pictures how many are edited copies.
    pub fn composition(&self) -> (BTreeMap<&'static str, usize>, usize) {
        let mut counts = BTreeMap::new();
        for report in &self.reports {
            let name = match report.kind {
                Kind::First => "first",
                Kind::Repeat => "repeat",
                Kind::Edited => "edited",
                Kind::Listed => "listed",
            };
            *counts.entry(name).or_insert(0) += 1;
        }
        let listed_edited = self
            .reports
            .iter()
            .filter(|report| report.kind == Kind::Listed && self.contents[report.content].edit.is_some())
            .count();
        (counts, listed_edited)
    }
}

fn md5(bytes: &[u8]) -> [u8; 16] {
    digest_bytes(bytes, DigestSet::NONE.with(DigestKind::Md5)).md5.expect("MD5 was asked for")
}

/// Listed pictures are illegal, in one of the categories; of the rest, about a third are
/// illegal, half legal (adult pornography, medical, art…), and the rest unclear.
fn pretend_verdict(rng: &mut Rng, listed: bool) -> Truth {
    let category = |rng: &mut Rng| rng.weighted(&[("A", 3), ("B", 3), ("C", 4)]);
    if listed {
        return Truth::Illegal(category(rng));
    }
    match rng.weighted(&[(0, 35), (1, 50), (2, 15)]) {
        0 => Truth::Illegal(category(rng)),
        1 => Truth::Legal,
        _ => Truth::Unclear,
    }
}

/// The stream before any bytes are made: the contents (an original and maybe an edit) and the
/// reports of them.
struct Plan {
    contents: Vec<(usize, Option<Edit>)>,
    reports: Vec<Report>,
}

fn plan(rng: &mut Rng, count: usize, mut unlisted: Vec<usize>, listed: &[usize]) -> Plan {
    let listed_reports = (count as f32 * LISTED_REPORTS).round() as usize;
    let edited = (count as f32 * EDITED_REPORTS).round() as usize;
    let repeats = count.saturating_sub(unlisted.len() + listed_reports + edited);
    let mut kinds: Vec<Kind> = [
        (Kind::First, unlisted.len()),
        (Kind::Listed, listed_reports),
        (Kind::Edited, edited),
        (Kind::Repeat, repeats),
    ]
    .into_iter()
    .flat_map(|(kind, n)| std::iter::repeat_n(kind, n))
    .collect();
    kinds.truncate(count);
    rng.shuffle(&mut kinds);
    // Everything but a first report refers to something earlier.
    let first = kinds.iter().position(|&kind| kind == Kind::First).expect("a first report");
    kinds.swap(0, first);
    rng.shuffle(&mut unlisted);
    let mut unreported = unlisted.into_iter();

    let mut plan = Plan { contents: Vec::new(), reports: Vec::new() };
    let mut original_content: BTreeMap<usize, usize> = BTreeMap::new();
    let mut reported: Vec<usize> = Vec::new();
    for (number, kind) in kinds.into_iter().enumerate() {
        let mut new_content = |original: usize, edit: Option<Edit>| {
            if edit.is_none()
                && let Some(&content) = original_content.get(&original)
            {
                return content;
            }
            plan.contents.push((original, edit.clone()));
            let content = plan.contents.len() - 1;
            if edit.is_none() {
                original_content.insert(original, content);
            }
            content
        };
        let content = match kind {
            Kind::First => {
                let original = unreported.next().expect("one first report per unlisted picture");
                reported.push(original);
                new_content(original, None)
            }
            Kind::Edited => {
                // Half the time one of the pictures going round right now.
                let original = reported[recent_or_any(rng, reported.len(), 10)];
                new_content(original, Some(Edit::random(rng)))
            }
            Kind::Listed => {
                let original = listed[rng.below(listed.len())];
                let edit = (!rng.chance(LISTED_EXACT)).then(|| Edit::random(rng));
                new_content(original, edit)
            }
            Kind::Repeat => plan.reports[recent_or_any(rng, plan.reports.len(), 100)].content,
        };
        plan.reports.push(Report { id: format!("sim-{number:06}"), content, kind });
    }
    plan
}

/// An index below `len` (> 0): half the time among the last `recent`, otherwise any.
fn recent_or_any(rng: &mut Rng, len: usize, recent: usize) -> usize {
    let from = if rng.chance(0.5) { len.saturating_sub(recent) } else { 0 };
    from + rng.below(len - from)
}
