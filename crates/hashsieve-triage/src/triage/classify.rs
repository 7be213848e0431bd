//! Classification: what a report's content is, from the hash lists, the store's items by
//! digest, by PDQ, and failing PDQ by keypoints (of items and of listed copies), recording
//! nothing.

use hashsieve_core::matcher::{MatchOutcome, MatchVerdict, Matcher};
use hashsieve_core::pdq::PdqHash;
use hashsieve_core::signals::Signals;
use redb::ReadTransaction;

use super::{KeypointOwner, OwnerStatus, Triage};
use crate::crops::CropHit;
use crate::error::{Failure, TriageError};
use crate::listed::ListedCopy;
use crate::model::{Classification, ItemId, ItemState, KeypointAlignment, ListMatch, MatchedBy, Via};
use crate::near::NearStatus;
use crate::store;

impl Triage {
    /// What [`Triage::submit`] would do with this content, recording nothing.
    pub fn classify(&self, signals: &Signals, lists: &Matcher) -> Result<Classification, TriageError> {
        let listed = lists.check_signals(signals);
        self.read("classify", |txn| Ok(self.classify_in(txn, signals, &listed, lists)?.0))
    }

    /// The classification, and the list matches found through a listed copy that did not make
    /// the content known (a hint).
    pub(super) fn classify_in(
        &self,
        txn: &ReadTransaction,
        signals: &Signals,
        listed: &MatchVerdict,
        lists: &Matcher,
    ) -> Result<(Classification, Vec<ListMatch>), Failure> {
        let known = match listed.outcome {
            MatchOutcome::Known => true,
            MatchOutcome::NearKnown => self.options.near_known_is_known,
            MatchOutcome::Unknown => false,
        };
        if known {
            let matches = listed.matches.iter().filter(|m| m.suppressed_by.is_none()).map(ListMatch::from);
            return Ok((Classification::Known { matches: matches.collect() }, Vec::new()));
        }
        let items = txn.open_table(store::ITEMS)?;
        if let Some(item) =
            store::item_by_digests(&txn.open_table(store::DIGESTS)?, &items, &signals.digests)?
        {
            let classification = match (item.state, item.verdicts.last()) {
                (ItemState::Pending { group }, _) => {
                    Classification::Pending { item: item.id, group, distance: 0, how: MatchedBy::ExactDigest }
                }
                (ItemState::Assessed, Some(verdict)) => Classification::PreviouslyAssessed {
                    item: item.id,
                    verdict: verdict.clone(),
                    distance: 0,
                    how: MatchedBy::ExactDigest,
                },
                (ItemState::Assessed, None) => {
                    return Err(
                        TriageError::Missing { what: "verdict of item", key: item.id.0.to_string() }.into()
                    );
                }
            };
            return Ok((classification, Vec::new()));
        }
        let queries = self.pdq_queries(signals).unwrap_or_default();
        // Nearest first, ties to the older item. An assessed item wins over a nearer pending one:
        // its verdict saves a review.
        let hits = self.near.within(&queries, self.options.pdq_threshold);
        if let Some(hit) = hits.iter().find(|hit| hit.status == NearStatus::Assessed) {
            let item = store::item(&items, hit.item)?;
            let verdict = item.verdict().ok_or_else(|| TriageError::Missing {
                what: "verdict of item",
                key: hit.item.0.to_string(),
            })?;
            let classification = Classification::PreviouslyAssessed {
                item: hit.item,
                verdict: verdict.clone(),
                distance: hit.distance,
                how: MatchedBy::Pdq,
            };
            return Ok((classification, Vec::new()));
        }
        if let Some((hit, group)) = hits.iter().find_map(|hit| match hit.status {
            NearStatus::Pending(group) => Some((hit, group)),
            NearStatus::Assessed | NearStatus::Inherited => None,
        }) {
            let classification = Classification::Pending {
                item: hit.item,
                group,
                distance: hit.distance,
                how: MatchedBy::Pdq,
            };
            return Ok((classification, Vec::new()));
        }
        self.classify_reframed(txn, &items, signals, lists)
    }

    /// For content PDQ found nothing near, by keypoints (most agreeing first): a reframed copy
    /// of listed copies the lists still match is known through the one they match most closely
    /// if `near_known_is_known` (else its matches are a hint); one of an assessed item inherits
    /// its verdict; one of a pending item joins its group.
    fn classify_reframed(
        &self,
        txn: &ReadTransaction,
        items: &ItemsTable,
        signals: &Signals,
        lists: &Matcher,
    ) -> Result<(Classification, Vec<ListMatch>), Failure> {
        let Some(query) = signals.keypoints.as_ref().filter(|set| !set.is_empty()) else {
            return Ok((Classification::New, Vec::new()));
        };
        let not_inherited = |standing| standing != OwnerStatus::Item(NearStatus::Inherited);
        let hits = self.crops.same_picture(query, not_inherited);
        let through_copies = self.through_listed_copies(txn, signals, &hits, lists)?;
        if self.options.near_known_is_known && !through_copies.is_empty() {
            return Ok((Classification::Known { matches: through_copies }, Vec::new()));
        }
        let item_hits: Vec<(ItemId, NearStatus)> = hits
            .iter()
            .filter_map(|hit| match (hit.id, hit.status) {
                (KeypointOwner::Item(item), OwnerStatus::Item(status)) => Some((item, status)),
                _ => None,
            })
            .collect();
        let Some(&(id, status)) = item_hits
            .iter()
            .find(|(_, status)| *status == NearStatus::Assessed)
            .or_else(|| item_hits.first())
        else {
            return Ok((Classification::New, through_copies));
        };
        let item = store::item(items, id)?;
        let distance = pdq_distance(signals, item.pdq.map(|pdq| pdq.hash));
        let classification = match status {
            NearStatus::Pending(group) => {
                Classification::Pending { item: id, group, distance, how: MatchedBy::Keypoints }
            }
            NearStatus::Assessed | NearStatus::Inherited => Classification::PreviouslyAssessed {
                item: id,
                verdict: item
                    .verdict()
                    .ok_or_else(|| TriageError::Missing { what: "verdict of item", key: id.0.to_string() })?
                    .clone(),
                distance,
                how: MatchedBy::Keypoints,
            },
        };
        Ok((classification, through_copies))
    }

    /// The lists' matches, now, of the listed copy among `hits` that they match most closely
    /// ([`ListMatch::closeness`] of its closest match; ties to the most agreeing keypoints, the
    /// order of `hits`), each marked with the copy's report and how `signals` were recognised
    /// as its content; none if the lists match none of them (their entries were removed or
    /// allowed since).
    fn through_listed_copies(
        &self,
        txn: &ReadTransaction,
        signals: &Signals,
        hits: &[CropHit<KeypointOwner, OwnerStatus>],
        lists: &Matcher,
    ) -> Result<Vec<ListMatch>, Failure> {
        let copies = txn.open_table(store::LISTED_COPIES)?;
        let mut best: Option<((bool, u32), Vec<ListMatch>)> = None;
        for hit in hits {
            let KeypointOwner::ListedCopy(id) = hit.id else { continue };
            let bytes = copies
                .get(id)?
                .ok_or_else(|| TriageError::Missing { what: "listed copy", key: id.to_string() })?;
            let copy: ListedCopy = store::decode(bytes.value(), "listed copy", id)?;
            let via = Via {
                report: copy.report.clone(),
                how: MatchedBy::Keypoints,
                pdq_distance: pdq_distance(signals, copy.pdq.first().map(|first| first.hash)),
                alignment: Some(KeypointAlignment::from(&hit.alignment)),
            };
            let now = lists.check_signals(&copy.signals());
            let matches: Vec<ListMatch> = now
                .matches
                .iter()
                .filter(|found| found.suppressed_by.is_none())
                .map(|found| ListMatch {
                    via_report: Some(copy.report.clone()),
                    via: Some(via.clone()),
                    ..ListMatch::from(found)
                })
                .collect();
            let Some(closeness) = matches.iter().map(ListMatch::closeness).min() else { continue };
            if best.as_ref().is_none_or(|(kept, _)| closeness < *kept) {
                best = Some((closeness, matches));
            }
        }
        Ok(best.map(|(_, matches)| matches).unwrap_or_default())
    }

    /// The hashes to search with: the eight dihedral variants (or the hash alone, if they were
    /// not computed), unless the hash is too weak to match on.
    fn pdq_queries(&self, signals: &Signals) -> Option<Vec<PdqHash>> {
        let pdq = signals.pdq.filter(|_| self.strong(signals))?;
        Some(pdq.dihedral.map_or_else(|| vec![pdq.hash], |all| all.to_vec()))
    }

    pub(super) fn strong(&self, signals: &Signals) -> bool {
        signals.pdq.is_some_and(|pdq| pdq.quality >= self.options.min_pdq_quality)
    }
}

type ItemsTable = redb::ReadOnlyTable<u64, &'static [u8]>;

/// The smallest distance between the query's PDQ variants and a stored hash; 256 if either is
/// missing.
fn pdq_distance(signals: &Signals, stored: Option<PdqHash>) -> u32 {
    let (Some(query), Some(stored)) = (signals.pdq, stored) else { return 256 };
    let variants = query.dihedral.map_or_else(|| vec![query.hash], |all| all.to_vec());
    variants.iter().map(|variant| variant.hamming_distance(&stored)).min().unwrap_or(256)
}
