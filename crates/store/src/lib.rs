//! Persistence for twofactor.
//!
//! Owns: schema migrations, the system entry (SPEC §2), secrets sealed with
//! XChaCha20-Poly1305 under a key file, the replay state (highest accepted
//! step per secret), failure counters for rate limiting, and audit records.
//!
//! Does not know JSON-RPC, sessions, the CLI, or any business rule: the
//! service decides, the store remembers. Everything the service changes goes
//! through [`Store::transact`], so a change and its audit record land
//! together or not at all.
//!
//! Backends implement [`Store`]; `tests/conformance.rs` runs the same suite
//! against each. SQLite ([`SqliteStore`]) is the first backend.

mod model;
mod seal;
mod sqlite;

pub use model::{
    AuditEntry, AuditQuery, AuditRecord, LimiterState, SecretId, SecretRecord, Settings,
    SystemEntry,
};
pub use seal::KeyFile;
pub use sqlite::SqliteStore;

use otp::Secret;

/// Why the store could not do what was asked. Messages name files and
/// conditions, never secret material.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the key file {path} is missing but the database holds sealed secrets; \
         restore the key file (a new key would orphan every secret)"
    )]
    KeyMissing { path: String },
    #[error("the key file {path} does not open this database's sealed data (wrong key file?)")]
    WrongKey { path: String },
    #[error("the key file {path} is malformed: {reason}")]
    BadKeyFile { path: String, reason: &'static str },
    #[error(
        "the database was written by a newer version (schema {found}, this build knows {known})"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One transaction's view: reads see the transaction's own writes.
pub trait Tx {
    /// The system entry, with its secret unsealed.
    fn entry(&mut self) -> Result<SystemEntry>;
    /// Replaces the settings (all fields).
    fn put_settings(&mut self, settings: &Settings) -> Result<()>;
    /// Stores a new system secret, retiring the old one together with its
    /// replay state. Returns the new secret's id.
    fn replace_secret(&mut self, secret: &Secret, created_at_ms: i64) -> Result<SecretId>;
    /// Records `step` as accepted for secret `id` if it is above the highest
    /// step accepted so far. Returns whether it was (the replay guard).
    fn advance_step(&mut self, id: SecretId, step: u64) -> Result<bool>;
    /// The failure counter of one scope (`secret:<id>`, `addr:<ip>`, ...);
    /// the default (all zero) when none is stored.
    fn limiter(&mut self, scope: &str) -> Result<LimiterState>;
    /// Writes one scope's failure counter (the default state deletes it).
    fn put_limiter(&mut self, scope: &str, state: &LimiterState) -> Result<()>;
    /// Appends an audit record.
    fn audit(&mut self, record: &AuditRecord) -> Result<()>;
}

/// A storage backend. Implementations are safe to share between threads and
/// serialise transactions (SQLite: one `BEGIN IMMEDIATE` at a time).
pub trait Store: Send + Sync + std::fmt::Debug {
    /// A consistent read of the entry (may be served from a cache that the
    /// backend keeps coherent with writes from other processes).
    fn read(&self) -> Result<SystemEntry>;
    /// Runs `f` in one transaction: committed (durably) when `f` returns
    /// `Ok`, rolled back when it returns `Err`.
    fn transact_dyn(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()>;
    /// Audit records, newest first.
    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
}

/// Typed convenience over [`Store::transact_dyn`].
pub fn transact<R>(store: &dyn Store, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> Result<R> {
    let mut f = Some(f);
    let mut out = None;
    store.transact_dyn(&mut |tx| {
        let f = f
            .take()
            .ok_or_else(|| StoreError::Database("transaction body run twice".into()))?;
        out = Some(f(tx)?);
        Ok(())
    })?;
    out.ok_or_else(|| StoreError::Database("transaction body did not run".into()))
}
