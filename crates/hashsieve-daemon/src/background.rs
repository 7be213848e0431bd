//! The background runtime, for work no caller waits on: a takedown case's re-checks — their
//! fetches and their hashing. Every thread of it, workers and blocking threads alike, runs at
//! the lowest CPU priority, Linux's `SCHED_IDLE`: they use the cores the callers leave idle,
//! and a caller's thread that wakes takes the core from them at once (nice 19 is not enough:
//! a waking thread can wait out the rest of a nice thread's time slice, most of a
//! millisecond). So re-checks do not lengthen the API's answers; `benches/compare/takedown.sh`
//! measures it.
//!
//! The store is not written from here but from the main runtime's blocking threads (see
//! [`takedown::run`](crate::takedown::run)): a submission or a verdict that waits for the
//! store must never wait for a thread that the scheduler holds back.

use tokio::runtime::Runtime;

/// A runtime of one worker thread and its blocking threads, all at the lowest priority.
pub fn runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("hashsieve-background")
        .on_thread_start(lower_priority)
        .enable_all()
        .build()
}

/// Gives the calling thread Linux's `SCHED_IDLE`; elsewhere it keeps its priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let thread = thread_priority::thread_native_id();
        if let Err(err) = thread_priority::set_thread_priority_and_policy(thread, ThreadPriority::Min, idle) {
            tracing::warn!(error = ?err, "a background thread keeps its priority");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The calling thread's scheduling policy: field 41 of `/proc/thread-self/stat`, the 39th
    /// after the thread's name.
    fn policy() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 1..];
        after_name.split_whitespace().nth(38).unwrap().parse().unwrap()
    }

    #[test]
    fn workers_and_blocking_threads_run_at_sched_idle_and_others_do_not() {
        const SCHED_OTHER: i32 = 0;
        const SCHED_IDLE: i32 = 5;
        let background = super::runtime().unwrap();
        let (worker, blocking) = background.block_on(async {
            let worker = tokio::spawn(async { policy() }).await.unwrap();
            let blocking = tokio::task::spawn_blocking(policy).await.unwrap();
            (worker, blocking)
        });
        assert_eq!((worker, blocking), (SCHED_IDLE, SCHED_IDLE));
        assert_eq!(policy(), SCHED_OTHER, "the caller's thread is left alone");
    }
}
