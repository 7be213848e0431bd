//! When a case's URL is fetched again.

use super::{CaseId, HOUR_MS};

/// The re-check schedule: the interval before each check, the last repeated for as long as the
/// case is active, each with jitter so that many cases confirmed together do not all reach
/// their hosts in the same second.
///
/// The jitter of a check is a function of its case and slot, not a random draw: a restarted
/// scheduler computes the same due time the store holds, and tests can predict it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSchedule {
    /// The interval before the first check (after confirmation), the second, …; the last
    /// repeats. Default 1 h, 6 h, 24 h (then daily).
    pub intervals_ms: Vec<u64>,
    /// How far a check may be moved from its interval, in percent of it, either way. Default
    /// 10.
    pub jitter_percent: u8,
}

impl Default for CheckSchedule {
    fn default() -> Self {
        CheckSchedule { intervals_ms: vec![HOUR_MS, 6 * HOUR_MS, 24 * HOUR_MS], jitter_percent: 10 }
    }
}

impl CheckSchedule {
    /// The interval in force before check `slot` (0 for the first), without jitter.
    pub fn interval_ms(&self, slot: u32) -> u64 {
        let last = self.intervals_ms.len().saturating_sub(1);
        self.intervals_ms.get((slot as usize).min(last)).copied().unwrap_or(24 * HOUR_MS).max(1)
    }

    /// When check `slot` of `case` is due, counted from `from_ms` (the previous check, or the
    /// confirmation): the interval moved by the case's jitter for the slot.
    pub fn due_ms(&self, case: CaseId, slot: u32, from_ms: u64) -> u64 {
        let interval = self.interval_ms(slot);
        let spread = interval / 100 * u64::from(self.jitter_percent.min(100));
        if spread == 0 {
            return from_ms.saturating_add(interval);
        }
        // splitmix64 of (case, slot): well spread for consecutive ids, cheap, deterministic.
        let mut x = case.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(slot).rotate_left(32);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let offset = x % (2 * spread + 1);
        from_ms.saturating_add(interval - spread).saturating_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_repeat_the_last() {
        let schedule = CheckSchedule::default();
        assert_eq!(schedule.interval_ms(0), HOUR_MS);
        assert_eq!(schedule.interval_ms(1), 6 * HOUR_MS);
        assert_eq!(schedule.interval_ms(2), 24 * HOUR_MS);
        assert_eq!(schedule.interval_ms(40), 24 * HOUR_MS);
    }

    #[test]
    fn jitter_stays_within_its_percentage_and_spreads_cases() {
        let schedule = CheckSchedule::default();
        let mut seen = std::collections::BTreeSet::new();
        for case in 1..=1000 {
            for slot in 0..4 {
                let interval = schedule.interval_ms(slot);
                let due = schedule.due_ms(CaseId(case), slot, 1_000_000);
                let moved = due.abs_diff(1_000_000 + interval);
                assert!(moved <= interval / 10, "case {case} slot {slot} moved {moved} ms");
                assert_eq!(due, schedule.due_ms(CaseId(case), slot, 1_000_000), "deterministic");
                if slot == 0 {
                    seen.insert(due / 60_000);
                }
            }
        }
        // 1,000 cases over a 12-minute window: nearly every minute has some.
        assert!(seen.len() >= 12, "first checks fall in only {} distinct minutes", seen.len());
    }

    #[test]
    fn no_jitter_is_the_interval_itself() {
        let schedule = CheckSchedule { intervals_ms: vec![500], jitter_percent: 0 };
        assert_eq!(schedule.due_ms(CaseId(7), 3, 100), 600);
    }
}
