//! A whole state as stored, row by row (secrets still sealed): what each
//! engine exports and imports, and what `migrate` carries between them.

/// Every row of a state, as stored (secrets sealed).
#[derive(Default)]
pub(crate) struct Snapshot {
    pub(crate) config: ConfigRow,
    pub(crate) secrets: Vec<SecretRowData>,
    pub(crate) users: Vec<(String, i64, i64, i64, i64)>,
    pub(crate) pending: Vec<(String, i64, Vec<u8>, i64, i64, i64)>,
    /// (name, uid, MAC, MAC version)
    pub(crate) recovery: Vec<(String, i64, Vec<u8>, i64)>,
    pub(crate) failures: Vec<(String, String, i64, i64, i64, i64, i64)>,
    pub(crate) audit: Vec<AuditRowData>,
}

#[derive(Default)]
pub(crate) struct ConfigRow {
    pub(crate) digits: i64,
    pub(crate) window: i64,
    pub(crate) interval: i64,
    pub(crate) ssh: bool,
    pub(crate) enabled: bool,
    pub(crate) secret_id: Option<i64>,
    pub(crate) legacy_shared_code: bool,
}

pub(crate) struct SecretRowData {
    pub(crate) id: i64,
    pub(crate) owner: String,
    pub(crate) sealed: Vec<u8>,
    pub(crate) created_at_ms: i64,
    pub(crate) last_step: Option<i64>,
}

pub(crate) struct AuditRowData {
    pub(crate) id: i64,
    pub(crate) at_ms: i64,
    pub(crate) event: String,
    pub(crate) outcome: String,
    pub(crate) user: Option<String>,
    pub(crate) origin: String,
    pub(crate) service: Option<String>,
    pub(crate) detail: Option<String>,
    pub(crate) node: Option<String>,
    pub(crate) class: String,
    pub(crate) count: i64,
    pub(crate) agg_key: Option<String>,
}

impl AuditRowData {
    /// The account the row is about, as [`AuditRecord::account`] finds it
    /// (the detail is stored as JSON text).
    pub(crate) fn account(&self) -> Option<String> {
        let detail: Option<serde_json::Value> = self
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok());
        crate::model::audit_account(detail.as_ref(), self.user.as_deref()).map(str::to_owned)
    }
}

impl Snapshot {
    /// Whether this holds nothing a user made (a fresh state's default
    /// entry only).
    pub(crate) fn is_empty(&self) -> bool {
        self.secrets.is_empty()
            && self.users.is_empty()
            && self.pending.is_empty()
            && self.recovery.is_empty()
            && self.failures.is_empty()
            && self.audit.is_empty()
            && self.config.secret_id.is_none()
            && !self.config.enabled
            && !self.config.ssh
    }
}
