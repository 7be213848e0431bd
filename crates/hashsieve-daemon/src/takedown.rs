//! The takedown loop's work in the background, on the daemon that holds the verdict memory:
//! every active case's URL is fetched again on its schedule until its content is seen gone
//! ([`run`]), and each case's notice is delivered to its host's abuse contact
//! ([`deliver_notices`]).
//!
//! # Re-checks
//!
//! The schedule is in the store (`hashsieve_triage`'s `cases_due` table), not here: this task
//! asks the store which checks are due, fetches each through the same `hashsieve-fetch`
//! policy as reports (so a case's URL that now points inside is refused, not followed), hashes
//! what it finds within the shared [hashing slots](crate::slots), and records the finding for
//! the check's slot. A check whose fetch was under way when the daemon stopped or was killed
//! is still due after the restart and is made then; one whose finding was committed is not
//! made again, since the store ignores a second finding for a slot.
//!
//! A hotline must never hammer a hosting provider: at most `takedown.checks_per_host` checks
//! of one host run at once, and `takedown.max_checks` in all; and at most
//! `takedown.max_checks_per_sec` begin each second, so that a backlog never takes the cores
//! the API's callers need (`benches/compare/takedown.sh` measures both). What a check's fetch says:
//!
//! | fetch | finding |
//! |---|---|
//! | a 2xx body with the case's digest, or a PDQ hash within the threshold | online |
//! | a 2xx body with other content, a content type not fetched, a body over the limit | gone: other content |
//! | 404, 410 or 451 | gone: not found (with the status) |
//! | the name does not exist (the resolver's "not known" / "no address") | gone: name gone |
//! | the connection refused | gone: connection refused |
//! | a timeout, a TLS or HTTP failure, another status, a refused address, a temporary DNS failure | inconclusive: checked again on schedule |

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hashsieve_core::clock::now_ms;
use hashsieve_core::signals::{SignalOptions, Signals};
use hashsieve_fetch::{FetchError, Fetcher};
use hashsieve_triage::takedown::{Case, CaseId, CheckFinding, Delivery, Notice, RemovalSign};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, TakedownConfig};
use crate::state::AppState;
use crate::verdict_memory::{VerdictMemory, report_options};

/// The longest the scheduler sleeps without looking at the store again (a check made due by
/// another process, or a clock that jumped).
const MAX_IDLE: Duration = Duration::from_secs(30);

/// Runs the re-checks until `stopping` is cancelled; checks under way then are dropped, and
/// made again after the restart.
///
/// Nobody waits for a re-check, so this is to run on the [background
/// runtime](crate::background), whose threads give way to every caller's; its fetches and its
/// hashing then run there too. The store is read and written on `store_runtime`'s blocking
/// threads instead — the main runtime's — so that a submission never waits for the store
/// behind a thread the scheduler holds back.
pub async fn run(
    state: Arc<AppState>,
    memory: Arc<VerdictMemory>,
    config: TakedownConfig,
    store_runtime: tokio::runtime::Handle,
    stopping: CancellationToken,
) {
    let per_second =
        std::num::NonZeroU32::new(config.max_checks_per_sec).unwrap_or(std::num::NonZeroU32::MIN);
    let limits = Limits {
        pace: Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(per_second))),
        all: Arc::new(Semaphore::new(config.max_checks)),
        per_host: config.checks_per_host,
        hosts: Arc::new(Mutex::new(HashMap::new())),
    };
    let in_flight: Arc<Mutex<HashSet<CaseId>>> = Arc::default();
    let mut checks = JoinSet::new();
    // Up to `max_checks * 4` checks are taken from the store at a time, so the store is read
    // again only when fewer than `max_checks` are left (or when woken, or when the next is
    // due): reading it after every check would decode the same due cases again and again.
    let mut look = true;
    let mut wake_at = tokio::time::Instant::now();
    loop {
        if look {
            let now = now_ms();
            let store = Arc::clone(&memory);
            let batch = config.max_checks * 4;
            let looked = store_runtime
                .spawn_blocking(move || {
                    let store = store.store();
                    Ok::<_, hashsieve_triage::TriageError>((
                        store.due_checks(now, batch)?,
                        store.next_check_ms()?,
                    ))
                })
                .await;
            let (due, next) = match looked {
                Ok(Ok(found)) => found,
                Ok(Err(err)) => {
                    tracing::error!(error = %err, "takedown: reading the re-check schedule failed");
                    (Vec::new(), None)
                }
                Err(_) => (Vec::new(), None),
            };
            for (case, slot) in due {
                if !in_flight.lock().unwrap_or_else(PoisonError::into_inner).insert(case.id) {
                    continue;
                }
                let check = Check {
                    state: Arc::clone(&state),
                    memory: Arc::clone(&memory),
                    store_runtime: store_runtime.clone(),
                    case,
                    slot,
                };
                let (limits, in_flight) = (limits.clone(), Arc::clone(&in_flight));
                checks.spawn(async move {
                    let id = check.case.id;
                    check.run(&limits).await;
                    in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                });
            }
            // Sleep until the next check is due; one due already is under way, and its end
            // wakes us.
            let wait = match next {
                Some(due) if due > now => Duration::from_millis(due - now).min(MAX_IDLE),
                _ => MAX_IDLE,
            };
            wake_at = tokio::time::Instant::now() + wait;
        }
        tokio::select! {
            () = stopping.cancelled() => break,
            () = state.rechecks.notified() => look = true,
            () = tokio::time::sleep_until(wake_at) => look = true,
            Some(_) = checks.join_next(), if !checks.is_empty() => look = checks.len() < config.max_checks,
        }
    }
    checks.shutdown().await;
}

/// What bounds the checks running at once.
#[derive(Clone)]
struct Limits {
    /// Checks begun a second.
    pace: Arc<governor::DefaultDirectRateLimiter>,
    all: Arc<Semaphore>,
    per_host: usize,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl Limits {
    /// The host's semaphore, made on first use.
    fn host(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(hosts.entry(host.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.per_host))))
    }

    /// Forgets the semaphores no check holds, so that the map does not grow with every host
    /// ever checked.
    fn prune(&self) {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
    }
}

/// One re-check of one case.
struct Check {
    state: Arc<AppState>,
    memory: Arc<VerdictMemory>,
    store_runtime: tokio::runtime::Handle,
    case: Case,
    slot: u32,
}

impl Check {
    async fn run(self, limits: &Limits) {
        let host = limits.host(self.case.url.host());
        let Ok(_all) = limits.all.acquire().await else { return };
        let Ok(host_permit) = Arc::clone(&host).acquire_owned().await else { return };
        limits.pace.until_ready().await;
        let at = now_ms();
        let finding = self.finding().await;
        let label = finding_label(&finding);
        self.state.metrics.takedown_check(label);
        let Check { memory, case, slot, state: self_state, store_runtime } = self;
        let id = case.id;
        let recorded =
            store_runtime.spawn_blocking(move || memory.store().record_check(id, slot, finding, at)).await;
        match recorded {
            Ok(Ok(case)) => {
                if !case.state.is_active() {
                    self_state.block_list_changed.notify_one();
                }
                tracing::info!(target: "audit", case = id.0, slot, finding = label, state = case.state.name(), "re-check");
            }
            Ok(Err(err)) => {
                tracing::error!(case = id.0, error = %err, "takedown: recording a re-check failed")
            }
            Err(_) => {}
        }
        drop((host_permit, host));
        limits.prune();
    }

    /// Fetches the case's URL and says what is there.
    async fn finding(&self) -> CheckFinding {
        let fetched = match self.memory.fetcher().fetch(self.case.url.as_str()).await {
            Ok(fetched) => fetched,
            Err(err) => return finding_of_error(&err),
        };
        let matcher = self.state.matcher.load_full();
        // A re-check compares digests and PDQ only: keypoints, the costliest signal, are not
        // computed (they would double a check's CPU time, which the API's callers share).
        let options = SignalOptions { keypoints: false, ..report_options(&matcher) };
        let body = fetched.body;
        let slot = self.state.slots.take(Signals::decode_memory(&body, &options)).await;
        let (memory, case) = (Arc::clone(&self.memory), self.case.clone());
        let compared = slot
            .run(None, move || {
                let signals = Signals::from_bytes(&body, &options);
                memory.store().compare_with_case(&case, &signals)
            })
            .await;
        compared.unwrap_or_else(|err| CheckFinding::Inconclusive { reason: format!("hashing: {err}") })
    }
}

/// How long a case whose host has no webhook contact waits before its contact is looked up
/// again (the configuration may have gained one by a restart).
const NO_CONTACT_WAIT_MS: u64 = 60 * 60 * 1000;

/// The longest wait between two attempts at a notice.
const MAX_NOTICE_RETRY_MS: u64 = 6 * 60 * 60 * 1000;

/// Delivers the notices of cases at home until `stopping` is cancelled: each due notice is
/// posted (`hashsieve-notice/1` JSON, its `notice_id` the receiver's idempotency key) to the
/// webhook of the case's abuse contact (`takedown.contacts`, by host, then by network), and
/// the delivery is recorded on the case, which becomes `notified`. A failed delivery is
/// recorded and retried after `notice_retry_secs`, doubling, up to `notice_attempts`; then,
/// like a case whose contact has no webhook, the notice is left to `GET /v1/takedown/notices`
/// for sending by hand. A delivery whose record was lost in a crash is posted again after the
/// restart, with the same `notice_id`.
///
/// Webhooks go through the `[fetch]` policy with the webhooks' hosts allowed: the hotline
/// configured them, so one on its own network is reached, and nothing else new is.
pub async fn deliver_notices(
    state: Arc<AppState>,
    memory: Arc<VerdictMemory>,
    config: Config,
    stopping: CancellationToken,
) {
    let mut policy = config.fetch.clone();
    policy.allow_hosts.extend(config.takedown.contacts.iter().filter_map(|contact| {
        url::Url::parse(contact.webhook.as_deref()?).ok()?.host_str().map(str::to_string)
    }));
    let fetcher = match Fetcher::new(policy) {
        Ok(fetcher) => fetcher,
        Err(err) => {
            tracing::error!(error = %err, "takedown: no notice delivery");
            return;
        }
    };
    let takedown = config.takedown;
    loop {
        let now = now_ms();
        let store = Arc::clone(&memory);
        let looked = tokio::task::spawn_blocking(move || {
            let store = store.store();
            Ok::<_, hashsieve_triage::TriageError>((store.notices_due(now, 64)?, store.next_notice_ms()?))
        })
        .await;
        let (due, next) = match looked {
            Ok(Ok(found)) => found,
            Ok(Err(err)) => {
                tracing::error!(error = %err, "takedown: reading the notice schedule failed");
                (Vec::new(), None)
            }
            Err(_) => (Vec::new(), None),
        };
        for case in due {
            tokio::select! {
                () = stopping.cancelled() => return,
                () = deliver(&state, &memory, &fetcher, &takedown, case) => {}
            }
        }
        let wait = match next {
            Some(due) if due > now => Duration::from_millis(due - now).min(MAX_IDLE),
            Some(_) => Duration::ZERO,
            None => MAX_IDLE,
        };
        tokio::select! {
            () = stopping.cancelled() => return,
            () = state.notices.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Delivers one case's notice, or records why not.
async fn deliver(
    state: &AppState,
    memory: &Arc<VerdictMemory>,
    fetcher: &Fetcher,
    takedown: &TakedownConfig,
    case: Case,
) {
    let asn = case.location.hosting.as_ref().and_then(|hosting| hosting.asn);
    let contact = takedown.contact(case.url.host(), asn);
    let id = case.id;
    let Some((name, webhook)) =
        contact.and_then(|contact| Some((contact.name.clone(), contact.webhook.clone()?)))
    else {
        let store = Arc::clone(memory);
        let until = now_ms() + NO_CONTACT_WAIT_MS;
        let _ = tokio::task::spawn_blocking(move || store.store().postpone_notice(id, until)).await;
        return;
    };
    let notice = Notice::new(&case, &takedown.hotline, &takedown.reference);
    let body = serde_json::to_vec(&notice).unwrap_or_default();
    let at = now_ms();
    let attempt = case.notice_attempts + 1;
    let failure = match fetcher.post(&webhook, "application/json", body.into()).await {
        Ok(posted) if posted.status.is_success() => None,
        Ok(posted) => Some(format!("{webhook} answered {}", posted.status)),
        Err(err) => Some(err.to_string()),
    };
    state.metrics.takedown_notice(if failure.is_none() { "delivered" } else { "failed" });
    let store = Arc::clone(memory);
    let (attempts, first_wait) = (takedown.notice_attempts, takedown.notice_retry_secs * 1000);
    let recorded = tokio::task::spawn_blocking(move || {
        let store = store.store();
        match &failure {
            None => {
                let delivery = Delivery {
                    to: format!("{name} <{webhook}>"),
                    channel: "webhook".into(),
                    at_ms: at,
                    attempt,
                };
                store.record_notice(id, delivery).map(|_| ())
            }
            Some(error) => {
                let wait = first_wait.saturating_mul(1 << (attempt - 1).min(20)).min(MAX_NOTICE_RETRY_MS);
                let retry = (attempt < attempts).then(|| now_ms() + wait);
                store.record_notice_failure(id, &webhook, error, at, retry).map(|_| ())
            }
        }
        .map(|()| failure)
    })
    .await;
    match recorded {
        Ok(Ok(None)) => tracing::info!(target: "audit", case = id.0, attempt, "notice delivered"),
        Ok(Ok(Some(error))) => tracing::warn!(case = id.0, attempt, error, "notice not delivered"),
        Ok(Err(err)) => tracing::error!(case = id.0, error = %err, "takedown: recording a notice failed"),
        Err(_) => {}
    }
}

/// What a failed fetch says of the content.
fn finding_of_error(err: &FetchError) -> CheckFinding {
    let gone = |sign| CheckFinding::Gone { sign };
    match err {
        FetchError::Status { status, .. } if matches!(status.as_u16(), 404 | 410 | 451) => {
            gone(RemovalSign::NotFound { status: status.as_u16() })
        }
        FetchError::Resolve { source, .. } if name_does_not_exist(source) => gone(RemovalSign::NameGone),
        FetchError::Connect { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused => {
            gone(RemovalSign::ConnectionRefused)
        }
        FetchError::ContentType { .. } | FetchError::TooLarge { .. } => gone(RemovalSign::OtherContent),
        other => CheckFinding::Inconclusive { reason: other.to_string() },
    }
}

/// Whether a resolver error says the name does not exist, rather than that it could not be
/// looked up now. The system resolver's errors carry getaddrinfo's message only (Rust gives
/// them no kind of their own): EAI_NONAME is "Name or service not known", EAI_NODATA "No
/// address associated with hostname"; a name that resolves to no address at all is the same.
/// A temporary failure ("Temporary failure in name resolution") is not removal.
fn name_does_not_exist(err: &std::io::Error) -> bool {
    let text = err.to_string();
    err.kind() == std::io::ErrorKind::NotFound
        || ["not known", "No address associated", "resolved to no address", "NXDOMAIN"]
            .iter()
            .any(|sign| text.contains(sign))
}

/// The finding's name in metrics and the audit log.
fn finding_label(finding: &CheckFinding) -> &'static str {
    match finding {
        CheckFinding::Online { .. } => "online",
        CheckFinding::Gone { sign: RemovalSign::NotFound { .. } } => "gone_not_found",
        CheckFinding::Gone { sign: RemovalSign::NameGone } => "gone_name",
        CheckFinding::Gone { sign: RemovalSign::ConnectionRefused } => "gone_refused",
        CheckFinding::Gone { sign: RemovalSign::OtherContent } => "gone_other_content",
        CheckFinding::Inconclusive { .. } => "inconclusive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_name_that_does_not_exist_is_gone() {
        let uncategorised = |text: &str| std::io::Error::other(text.to_string());
        let nxdomain = uncategorised("failed to lookup address information: Name or service not known");
        let temporary =
            uncategorised("failed to lookup address information: Temporary failure in name resolution");
        assert!(name_does_not_exist(&nxdomain));
        assert!(!name_does_not_exist(&temporary));
    }
}
