//! What an administrator asks first: is two-factor on, for SSH too, who has
//! a secret, who is enrolling, who is locked out now and until when.
//!
//! Read from the state alone. Lock-outs and pending enrolments are found
//! through the audit trail (each lock-out and each enrolment is recorded
//! there with its account) and then confirmed against the live counters
//! and pending secrets, so a lock-out ended by a renewed secret or an
//! enrolment already confirmed is not shown.
//!
//! Only reads: the live counters and pending secrets come from one
//! read-only snapshot, so the status answers while a writer (another
//! process, another node, a long transaction) holds the write lock, and
//! never holds one up.

use std::collections::BTreeSet;

use serde_json::Value;
use store::{AuditQuery, read_snapshot};

use crate::{ServiceError, TwoFactor};

/// One origin locked out of one account's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOut {
    pub account: String,
    /// The address (or `local`), or `*` for every origin.
    pub origin: String,
    /// When the lock-out ends (ms since the epoch).
    pub until_ms: i64,
}

/// See the module's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub enabled: bool,
    pub ssh: bool,
    pub otp_digits: u8,
    pub interval: u64,
    pub window: u32,
    /// Whether root has a secret.
    pub root_secret: bool,
    /// Accounts with a secret of their own, root's included.
    pub accounts_with_secret: usize,
    /// Accounts whose enrolment waits for a confirming code.
    pub pending_enrolments: Vec<String>,
    pub locked_out: Vec<LockOut>,
    /// Accounts without a secret of their own are asked for root's code
    /// (a state upgraded from the single-secret model).
    pub legacy_shared_code: bool,
    pub now_ms: i64,
}

/// How far back the audit is read for lock-outs: no back-off is longer
/// than the configured maximum, so older ones have ended.
fn audit_since(now: i64, secs: u64) -> i64 {
    now.saturating_sub(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX))
}

fn detail_str<'a>(detail: Option<&'a Value>, key: &str) -> Option<&'a str> {
    detail?.get(key)?.as_str()
}

impl TwoFactor {
    /// This node's name on a database shared by several nodes
    /// (PostgreSQL); `None` for the state of one node (SQLite).
    pub fn shared_node(&self) -> Option<&str> {
        self.store.shared_node()
    }

    /// The status of the state (see [`Status`]).
    pub fn status(&self) -> Result<Status, ServiceError> {
        let now = self.clock.now_ms();
        let summary = self.store.read_summary()?;
        let holders = self.secret_holders()?;
        let lockouts = self.store.query_audit(&AuditQuery {
            event: Some("otp.lockout".into()),
            since_ms: Some(audit_since(now, u64::from(self.limits.max_backoff_secs))),
            limit: 10_000,
            ..AuditQuery::default()
        })?;
        let enrolments = self.store.query_audit(&AuditQuery {
            event: Some("user.twofactor_enroll".into()),
            since_ms: Some(audit_since(now, crate::users::ENROLMENT_TTL_SECS)),
            limit: 10_000,
            ..AuditQuery::default()
        })?;
        let (pending, locked_out) = read_snapshot(&*self.store, |tx| {
            let mut pending = Vec::new();
            let names: BTreeSet<&str> = enrolments
                .iter()
                .filter_map(|e| detail_str(e.record.detail.as_ref(), "account"))
                .collect();
            for name in names {
                if tx
                    .pending_secret(name)?
                    .is_some_and(|p| now < p.expires_at_ms)
                {
                    pending.push(name.to_owned());
                }
            }
            let mut seen = BTreeSet::new();
            let mut locked = Vec::new();
            for e in &lockouts {
                let detail = e.record.detail.as_ref();
                let (Some(account), Some(origin)) =
                    (detail_str(detail, "account"), detail_str(detail, "origin"))
                else {
                    continue;
                };
                if !seen.insert((account.to_owned(), origin.to_owned())) {
                    continue;
                }
                let Some(owner) = tx.user_secret(account)?.map(|s| s.owner()) else {
                    continue;
                };
                let st = tx.failures(&owner, origin)?;
                if st.locked_until_ms > now {
                    locked.push(LockOut {
                        account: account.to_owned(),
                        origin: origin.to_owned(),
                        until_ms: st.locked_until_ms,
                    });
                }
            }
            Ok((pending, locked))
        })?;
        let s = summary.settings;
        Ok(Status {
            enabled: s.enabled,
            ssh: s.ssh,
            otp_digits: s.otp_digits.get(),
            interval: u64::from(s.interval.get()),
            window: u32::from(s.window.get()),
            root_secret: summary.secret_id.is_some(),
            accounts_with_secret: holders.len(),
            pending_enrolments: pending,
            locked_out,
            legacy_shared_code: s.legacy_shared_code,
            now_ms: now,
        })
    }
}
