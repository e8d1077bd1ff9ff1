//! Audit retention (SPEC 11): records older than `max_age_days` or beyond
//! the newest `max_rows` are deleted, a small batch with every audited
//! change, so that retention never holds the writer for long.

/// How long and how many audit records are kept (`[audit]` in the
/// configuration file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditRetention {
    pub max_age_days: u32,
    pub max_rows: u64,
    /// Records deleted at most per audited transaction. Larger than the
    /// records one transaction appends, so retention catches up.
    pub batch: usize,
}

impl Default for AuditRetention {
    fn default() -> Self {
        Self {
            max_age_days: 90,
            max_rows: 100_000,
            batch: 32,
        }
    }
}
