//! What the page reads: the queue, a group with everything an analyst weighs, and the
//! content of an item — from memory, or fetched again and checked against the item's hashes.

use std::sync::Arc;

use hashsieve_core::digest::DigestSet;
use hashsieve_core::preview::{Preview, PreviewOptions, RevealStep};
use hashsieve_core::signals::{PdqMode, SignalOptions, Signals};
use hashsieve_triage::TriageError;
use hashsieve_triage::model::{Event, Group, GroupId, HistoryOf, Item, ItemId, ReportRecord};

use super::Order;
use crate::http::extract::blocking;
use crate::http::problem::Problem;
use crate::http::review::with_store;
use crate::state::AppState;
use crate::verdict_memory::VerdictMemory;

/// One group as the queue lists it.
pub(crate) struct QueuedGroup {
    pub(crate) group: GroupId,
    pub(crate) members: usize,
    pub(crate) oldest_report_ms: u64,
    /// Where the representative was first reported.
    pub(crate) first_source: Option<String>,
    /// Whether a hash list nearly matched the representative (a hint).
    pub(crate) hinted: bool,
}

/// A page of the queue.
pub(crate) struct Queue {
    pub(crate) groups: Vec<QueuedGroup>,
    pub(crate) pending: u64,
    pub(crate) more: bool,
}

/// A page of the queue in `order`, `size` groups long: oldest first after the group `after`,
/// or largest first or by priority `sources` the page `number`.
pub(crate) async fn queue(
    memory: Arc<VerdictMemory>,
    order: Order,
    sources: &[String],
    after: Option<GroupId>,
    number: usize,
    size: usize,
) -> Result<Queue, Problem> {
    let sources = sources.to_vec();
    with_store(memory, move |store, _| {
        let pending = store.counts()?.pending_groups;
        let summaries = match order {
            // Paged by the store's own cursor: only the groups shown are read.
            Order::Oldest => store.pending_groups(size + 1, after)?.groups,
            Order::Largest => store.largest_pending_groups(number.saturating_mul(size), size + 1)?,
            Order::Priority => {
                store.pending_groups_by_source(&sources, number.saturating_mul(size), size + 1)?
            }
        };
        let more = summaries.len() > size;
        let mut groups = Vec::with_capacity(size);
        for summary in summaries.into_iter().take(size) {
            let representative = store.item(summary.representative)?;
            let first_source = store
                .reports_of(summary.representative)?
                .first()
                .map(|id| store.report(id).map(|report| report.source))
                .transpose()?;
            groups.push(QueuedGroup {
                group: summary.group,
                members: summary.members,
                oldest_report_ms: summary.oldest_report_ms,
                first_source,
                hinted: !representative.near_list_matches.is_empty(),
            });
        }
        Ok(Queue { groups, pending, more })
    })
    .await
}

/// The pending group after `after`, or the first if there is none after it.
pub(crate) async fn next_pending(
    memory: Arc<VerdictMemory>,
    after: Option<GroupId>,
) -> Result<Option<GroupId>, Problem> {
    with_store(memory, move |store, _| {
        let next = store.pending_groups(1, after)?.groups.first().map(|summary| summary.group);
        match next {
            Some(group) => Ok(Some(group)),
            None => Ok(store.pending_groups(1, None)?.groups.first().map(|summary| summary.group)),
        }
    })
    .await
}

/// A member of a group, with its reports and history.
pub(crate) struct Member {
    pub(crate) item: Item,
    pub(crate) reports: Vec<ReportRecord>,
    pub(crate) history: Vec<Event>,
    /// PDQ distance to the representative, if both have a hash.
    pub(crate) distance: Option<u32>,
}

/// A group as its page shows it.
pub(crate) struct ShownGroup {
    pub(crate) group: Group,
    /// The member shown for the group.
    pub(crate) representative: ItemId,
    /// Its members, the representative first.
    pub(crate) members: Vec<Member>,
}

/// Members shown on a group's page.
const MEMBERS_SHOWN: usize = 200;
/// Reports shown for each member.
const REPORTS_SHOWN: usize = 20;

pub(crate) async fn group(memory: Arc<VerdictMemory>, id: GroupId) -> Result<ShownGroup, Problem> {
    with_store(memory, move |store, _| {
        let group = store.group(id)?;
        let items: Vec<Item> = group
            .members
            .iter()
            .take(MEMBERS_SHOWN)
            .map(|&member| store.item(member))
            .collect::<Result<_, _>>()?;
        let representative = hashsieve_triage::representative(&items);
        let shown_pdq = items.iter().find(|item| item.id == representative).and_then(|item| item.pdq);
        let mut members = Vec::with_capacity(items.len());
        for item in items {
            let reports = store
                .reports_of(item.id)?
                .iter()
                .take(REPORTS_SHOWN)
                .map(|report| store.report(report))
                .collect::<Result<_, TriageError>>()?;
            let history = store.history(HistoryOf::Item(item.id))?;
            let distance = shown_pdq.zip(item.pdq).map(|(a, b)| a.hash.hamming_distance(&b.hash));
            members.push(Member { item, reports, history, distance });
        }
        members.sort_by_key(|member| (member.item.id != representative, member.item.id));
        Ok(ShownGroup { group, representative, members })
    })
    .await
}

/// The preview of `item` at `step`, if its content is still to be had: held in memory, or
/// fetched again from a URL it was reported at and found to be the same content.
pub(crate) async fn preview(
    state: &AppState,
    memory: Arc<VerdictMemory>,
    item: ItemId,
    step: RevealStep,
    preview_pixels: u32,
) -> Result<Option<Preview>, Problem> {
    let Some(cache) = &state.held_content else { return Ok(None) };
    let content = match cache.get(item) {
        Some(content) => content,
        None if state.review_ui.refetch => match fetched_again(state, Arc::clone(&memory), item).await? {
            Some(content) => {
                cache.put(item, Arc::clone(&content));
                content
            }
            None => return Ok(None),
        },
        None => return Ok(None),
    };
    let options = PreviewOptions {
        max_side: preview_pixels,
        limits: state.matcher.load().signal_options().limits,
        ..PreviewOptions::default()
    };
    let slot = state.slots.try_take(Signals::decode_memory(&content, &SignalOptions::default()))?;
    let made = slot.run(None, move || hashsieve_core::preview::render(&content, step, &options)).await?;
    match made {
        Ok(preview) => Ok(Some(preview)),
        // Not an image (a report of another kind of file): nothing to show.
        Err(err) => {
            tracing::info!(item = item.0, error = %err, "no preview");
            Ok(None)
        }
    }
}

/// The content at a URL `item` was reported at, if it is still the item's: the same SHA-256,
/// or a PDQ hash within the triage threshold.
async fn fetched_again(
    state: &AppState,
    memory: Arc<VerdictMemory>,
    item: ItemId,
) -> Result<Option<Arc<[u8]>>, Problem> {
    let (record, urls) = with_store(Arc::clone(&memory), move |store, _| {
        let record = store.item(item)?;
        let mut urls = Vec::new();
        for report in store.reports_of(item)? {
            let report = store.report(&report)?;
            let url = report.location.map_or(report.source, |location| location.reported);
            if (url.starts_with("http://") || url.starts_with("https://")) && !urls.contains(&url) {
                urls.push(url);
            }
        }
        Ok((record, urls))
    })
    .await?;
    let threshold = memory.store().options().pdq_threshold;
    for url in urls.into_iter().take(3) {
        let fetched = match memory.fetcher().fetch(&url).await {
            Ok(fetched) => fetched,
            Err(err) => {
                tracing::info!(item = item.0, error = %err, "content not fetched again");
                continue;
            }
        };
        let content: Arc<[u8]> = fetched.body.to_vec().into();
        let options = SignalOptions {
            digests: DigestSet::ALL,
            pdq: PdqMode::Dihedral,
            ..state.matcher.load().signal_options()
        };
        let hashed = Arc::clone(&content);
        let signals = blocking(move || Signals::from_bytes(&hashed, &options)).await?;
        let same_bytes = record.digests.sha256.is_some() && signals.digests.sha256 == record.digests.sha256;
        let same_picture = match (record.pdq, signals.pdq.and_then(|pdq| pdq.dihedral.map(|all| (pdq, all))))
        {
            (Some(stored), Some((_, variants))) => {
                variants.iter().map(|variant| variant.hamming_distance(&stored.hash)).min().unwrap_or(256)
                    <= threshold
            }
            _ => false,
        };
        if same_bytes || same_picture {
            return Ok(Some(content));
        }
        tracing::info!(item = item.0, "the content fetched again is no longer the item's");
    }
    Ok(None)
}
