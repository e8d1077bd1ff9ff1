//! Audit retention: records older than their class's age or
//! beyond its newest rows are deleted by the first audited transaction of
//! each period ([`PRUNE_PERIOD_MS`] of the service's clock, per process),
//! not by every one: counting a class's rows and deleting by age costs
//! several statements, which a code check should not pay each time.
//!
//! A prune deletes up to `batch` records per class for every audited
//! transaction since the previous prune, so it removes at least as many as
//! those transactions appended (each appends fewer than `batch`); when it
//! deletes a full allowance, the next audited transaction prunes again
//! without waiting for the period, until the backlog is gone. A class thus
//! holds at most its row budget plus the records appended since the last
//! prune: one period's worth (a few thousand at the daemon's highest rate,
//! far fewer under a flood of one kind, which aggregation folds into a
//! few rows). Records older than the age budget likewise stay at most one
//! period longer. A prune that rolls back with its transaction is retried
//! in the next period. Expired failure counters are deleted in the same
//! pass, on the same terms.
//!
//! Two classes have their own budgets, so that records anyone can repeat
//! (their own code checks, failed logins) cannot push out the records that
//! matter later (lock-outs, changes of secrets and settings, successful
//! logins, recovery-code use). Repeats of one kind from one caller for one
//! account beyond a small rate become one row with a count per interval.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use store::AuditClass;

use crate::audit::{AuditEvent, AuditOutcome};

/// How long and how many audit records are kept (a host reads them from
/// its configuration file's `[audit]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditRetention {
    /// Routine records (code checks, failed logins, logouts).
    pub max_age_days: NonZeroU32,
    pub max_rows: NonZeroU64,
    /// Security records (everything else).
    pub security_max_age_days: NonZeroU32,
    pub security_max_rows: NonZeroU64,
    /// Records of one kind (event, outcome, caller, account) written one
    /// by one per interval; further ones only count in one more row.
    pub aggregate_after: u32,
    pub aggregate_interval_secs: NonZeroU32,
    /// Records deleted at most per class for each audited transaction
    /// since the previous prune. Larger than the records one transaction
    /// appends, so retention catches up. Not in the file.
    pub batch: usize,
}

impl Default for AuditRetention {
    fn default() -> Self {
        let n32 = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        let n64 = |v: u64| NonZeroU64::new(v).unwrap_or(NonZeroU64::MIN);
        Self {
            max_age_days: n32(90),
            max_rows: n64(100_000),
            security_max_age_days: n32(365),
            security_max_rows: n64(100_000),
            aggregate_after: 10,
            aggregate_interval_secs: n32(60),
            batch: 32,
        }
    }
}

impl AuditRetention {
    /// The age and row budget of `class`.
    pub(crate) fn budget(&self, class: AuditClass) -> (u32, u64) {
        match class {
            AuditClass::Routine => (self.max_age_days.get(), self.max_rows.get()),
            AuditClass::Security => (
                self.security_max_age_days.get(),
                self.security_max_rows.get(),
            ),
        }
    }

    /// The start of the aggregation interval `now_ms` falls in.
    pub(crate) fn interval_start(&self, now_ms: i64) -> i64 {
        let len = i64::from(self.aggregate_interval_secs.get()) * 1000;
        now_ms - now_ms.rem_euclid(len)
    }
}

/// How often (of the service's clock) an audited transaction prunes.
pub const PRUNE_PERIOD_MS: i64 = 1000;

/// The most records of one class one prune deletes, however many audited
/// transactions it accounts for: a prune runs inside a caller's
/// transaction, which it should not hold for long.
const PRUNE_MAX_BATCH: u64 = 10_000;

/// When this process prunes next, and how much: shared by the clones of a
/// service.
#[derive(Debug)]
pub(crate) struct PruneSchedule {
    /// The clock time from which the next audited transaction prunes.
    next_ms: AtomicI64,
    /// Audited transactions since the last prune.
    pending: AtomicU64,
}

impl Default for PruneSchedule {
    fn default() -> Self {
        Self {
            next_ms: AtomicI64::new(i64::MIN),
            pending: AtomicU64::new(0),
        }
    }
}

impl PruneSchedule {
    /// Counts one audited transaction at `now_ms`; when a prune is due,
    /// claims it (one transaction of this process per period) and answers
    /// how many audited transactions it accounts for (at least one).
    pub(crate) fn due(&self, now_ms: i64) -> Option<u64> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let next = self.next_ms.load(Ordering::Acquire);
        // Not yet due; unless the clock was set back by more than a
        // period before the last prune, which must not stop retention
        // until it catches up.
        if now_ms < next && next.saturating_sub(now_ms) <= 2 * PRUNE_PERIOD_MS {
            return None;
        }
        let then = now_ms.saturating_add(PRUNE_PERIOD_MS);
        self.next_ms
            .compare_exchange(next, then, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(self.pending.swap(0, Ordering::Relaxed).max(1))
    }

    /// What a prune accounting for `transactions` may delete of one kind,
    /// `per` for each of them: bounded, so that it never holds the
    /// caller's transaction for long, but never below `per`.
    pub(crate) fn allowance(per: usize, transactions: u64) -> usize {
        let per64 = u64::try_from(per).unwrap_or(u64::MAX);
        let n = per64
            .saturating_mul(transactions)
            .min(PRUNE_MAX_BATCH.max(per64));
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// A prune deleted its whole allowance of some class: more may be
    /// waiting, so the next audited transaction prunes again.
    pub(crate) fn backlog(&self) {
        self.next_ms.store(i64::MIN, Ordering::Release);
    }
}

/// The class of a record: what anyone can repeat at will is routine; a
/// successful login, a recovery code, a lock-out, a change is security.
pub(crate) fn class_of(event: AuditEvent, outcome: AuditOutcome) -> AuditClass {
    use AuditOutcome as O;
    let routine = match event {
        AuditEvent::OtpCheck => matches!(
            outcome,
            O::Accepted | O::Wrong | O::Malformed | O::Replayed | O::LockedOut | O::NotConfigured
        ),
        AuditEvent::AuthLogin => matches!(outcome, O::WrongPassword | O::Suppressed),
        AuditEvent::AuthLogout => true,
        _ => false,
    };
    if routine {
        AuditClass::Routine
    } else {
        AuditClass::Security
    }
}

/// Whether records of this kind are aggregated beyond the rate: the ones a
/// caller can repeat (checks, logins, logouts), not changes, whose every
/// detail counts.
pub(crate) fn aggregated(event: AuditEvent) -> bool {
    matches!(
        event,
        AuditEvent::OtpCheck | AuditEvent::AuthLogin | AuditEvent::AuthLogout
    )
}

#[cfg(test)]
mod prune_tests {
    use super::*;

    #[test]
    fn one_prune_a_period_accounting_for_the_transactions_since() {
        let s = PruneSchedule::default();
        assert_eq!(s.due(5_000), Some(1), "the first transaction prunes");
        for t in 5_001..5_010 {
            assert_eq!(s.due(t), None);
        }
        assert_eq!(s.due(5_999), None);
        // Eleven transactions since the last prune, this one included.
        assert_eq!(s.due(6_000), Some(11));
        assert_eq!(s.due(6_000), None);
        // A backlog: the next transaction prunes at once (two since the
        // last prune).
        s.backlog();
        assert_eq!(s.due(6_001), Some(2));
    }

    #[test]
    fn an_allowance_grows_with_the_transactions_up_to_a_bound() {
        assert_eq!(PruneSchedule::allowance(4, 1), 4);
        assert_eq!(PruneSchedule::allowance(4, 11), 44);
        assert_eq!(PruneSchedule::allowance(4, 1_000_000), 10_000);
        assert_eq!(PruneSchedule::allowance(20_000, 1), 20_000);
    }

    #[test]
    fn a_clock_set_back_does_not_stop_retention() {
        let s = PruneSchedule::default();
        assert!(s.due(100_000).is_some());
        // Back within a period: not due.
        assert_eq!(s.due(99_500), None);
        // Back by more: due now, not when the clock catches up.
        assert!(s.due(50_000).is_some());
        assert_eq!(s.due(50_001), None);
    }
}
