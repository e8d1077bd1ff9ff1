//! Audit retention: records older than their class's age or
//! beyond its newest rows are deleted, a small batch with every audited
//! change, so that retention never holds the writer for long.
//!
//! Two classes have their own budgets, so that records anyone can repeat
//! (their own code checks, failed logins) cannot push out the records that
//! matter later (lock-outs, changes of secrets and settings, successful
//! logins, recovery-code use). Repeats of one kind from one caller for one
//! account beyond a small rate become one row with a count per interval.

use std::num::{NonZeroU32, NonZeroU64};

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
    /// Records deleted at most per class per audited transaction. Larger
    /// than the records one transaction appends, so retention catches up.
    /// Not in the file.
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
