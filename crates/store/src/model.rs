//! The records the store keeps. Plain data; the rules live in `service`.

use otp::{Digits, Interval, Secret, Window};
use serde::{Deserialize, Serialize};

/// The settings of the system entry: the global switches and the
/// defaults a new secret gets.
///
/// `otp_digits` and `interval` are the defaults for new secrets (an
/// account's own secret keeps the numbers it was made with, in its row).
/// Root's secret is an ordinary row of the per-user secrets; the service
/// keeps root's numbers equal to these defaults (writing both together),
/// because the TrueNAS entry shows one pair for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// Digits of a new secret's codes (and root's).
    pub otp_digits: Digits,
    pub window: Window,
    /// Time step of a new secret (and root's).
    pub interval: Interval,
    /// `services.ssh`.
    pub ssh: bool,
    pub enabled: bool,
    /// The transition mode of a state migrated from the single-secret
    /// model: accounts without a secret of their own are asked for root's
    /// code. Set only by that migration; an administrator ends it.
    pub legacy_shared_code: bool,
}

/// The owner label root's secret had while it was the system entry's (its
/// sealed blob's associated data and its counters' key); only the
/// migration that made it an ordinary account's reads it.
pub(crate) const LEGACY_SYSTEM_OWNER: &str = "system";

/// The origin under which a secret's failures over all origins together
/// are counted (no remote address looks like this).
pub const ALL_ORIGINS: &str = "*";

/// Row id of a stored secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretId(pub i64);

/// A secret with its replay state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub id: SecretId,
    pub secret: Secret,
    /// Highest time step ever accepted for this secret.
    pub last_step: Option<u64>,
    pub created_at_ms: i64,
}

/// The system entry as the TrueNAS `config` answer shows it: the settings
/// and root's secret (root's row of the per-user secrets, read together
/// with the settings so that one cached read answers `config`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemEntry {
    pub settings: Settings,
    /// Root's (uid 0) active secret, if it has one.
    pub root: Option<crate::UserSecret>,
}

/// The system entry without the secret: the settings and which secret root
/// has, if any. What most reads need (is a code required? is there a
/// secret?), so [`crate::Store::read_summary`] answers it without
/// unsealing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntrySummary {
    pub settings: Settings,
    /// The id of root's secret.
    pub secret_id: Option<SecretId>,
}

impl From<&SystemEntry> for EntrySummary {
    fn from(entry: &SystemEntry) -> Self {
        Self {
            settings: entry.settings,
            secret_id: entry.root.as_ref().map(|s| s.record.id),
        }
    }
}

/// Failure counting for one scope. All zero means "clean".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LimiterState {
    /// Wrong codes in the current counting window.
    pub failures: u32,
    /// When the current counting window began (ms since the epoch).
    pub window_start_ms: i64,
    /// Checks fail at once until this instant (ms since the epoch).
    pub locked_until_ms: i64,
    /// Consecutive lock-outs, for the doubling back-off.
    pub lockouts: u32,
}

/// An audit record to append. Never holds a code or a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at_ms: i64,
    /// `twofactor.update`, `twofactor.renew_secret`, `otp.check`, `auth.login`, ...
    pub event: String,
    /// `success`, `accepted`, `wrong`, `replayed`, `locked_out`, `failure`, ...
    pub outcome: String,
    pub user: Option<String>,
    /// `unix:uid=0`, `tcp:127.0.0.1:53422`, `embedded`, ...
    pub origin: String,
    /// PAM service or API method that caused it, when there is one.
    pub service: Option<String>,
    /// Free-form JSON detail (changed keys, wait time, ...).
    pub detail: Option<serde_json::Value>,
}

impl AuditRecord {
    /// What `audit.query user=` finds the record by: the account it is
    /// about when its detail names one, else the account that acted.
    pub fn account(&self) -> Option<&str> {
        audit_account(self.detail.as_ref(), self.user.as_deref())
    }
}

/// [`AuditRecord::account`] over the record's parts (both engines, and a
/// state copied between them, use this one rule).
pub(crate) fn audit_account<'a>(
    detail: Option<&'a serde_json::Value>,
    user: Option<&'a str>,
) -> Option<&'a str> {
    detail
        .and_then(|d| d.get("account"))
        .and_then(serde_json::Value::as_str)
        .or(user)
}

/// A stored audit record with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(flatten)]
    pub record: AuditRecord,
    /// How many identical events this row stands for: 1, or more for a row
    /// that aggregates repeats beyond the rate written one by one.
    #[serde(default = "one")]
    pub count: u64,
    /// The node that wrote the row, on a state shared by several nodes;
    /// `None` on a state of one node (SQLite), which names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

fn one() -> u64 {
    1
}

/// Which retention budget an audit record is kept under: routine records
/// (code checks, failed logins) cannot push security records (lock-outs,
/// changes, successful logins, recovery-code use) out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditClass {
    Routine,
    Security,
}

impl AuditClass {
    pub const ALL: [Self; 2] = [Self::Routine, Self::Security];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Routine => "routine",
            Self::Security => "security",
        }
    }
}

/// How [`crate::Tx::audit_as`] bounds repeats of one kind of record: the
/// first `free` records with `key` since `since_ms` are written one by one,
/// every later one adds to the count of one further row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregate<'a> {
    /// What makes records "identical" (event, outcome, caller, owner).
    pub key: &'a str,
    /// Start of the current interval.
    pub since_ms: i64,
    pub free: u32,
}

/// Filters for [`crate::Store::query_audit`]; `None` means "any".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub event: Option<String>,
    /// Records about this account: the account a record names in its
    /// detail (`account`), or else the account that acted.
    pub user: Option<String>,
    pub outcome: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: usize,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            event: None,
            user: None,
            outcome: None,
            since_ms: None,
            limit: 100,
        }
    }
}
