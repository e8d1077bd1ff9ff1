//! Persistence for twofactor.
//!
//! Owns: schema migrations, the system entry, secrets sealed with
//! XChaCha20-Poly1305 under a key file, the replay state (highest accepted
//! step per secret), failure counters for rate limiting, and audit records.
//!
//! Does not know JSON-RPC, sessions, the CLI, or any business rule: the
//! service decides, the store remembers. Everything the service changes goes
//! through [`transact`], so a change and its audit record land
//! together or not at all. What each commit changed is told afterwards to
//! the listeners of [`Store::on_change`], whichever process or node made
//! it (the `changes` module says how).
//!
//! Backends implement [`Store`]; `tests/conformance.rs` runs the same suite
//! against each. SQLite ([`SqliteStore`]) is the first backend.

mod changes;
mod migrate;
mod model;
#[cfg(feature = "postgres")]
mod postgres;
mod random;
mod rows;
mod seal;
mod snapshot;
mod sqlite;
mod users;

pub use changes::{Change, ChangeListener};
pub use migrate::{MigrateReport, StateLocation, migrate};
pub use model::{
    ALL_ORIGINS, Aggregate, AuditClass, AuditEntry, AuditQuery, AuditRecord, EntrySummary,
    LimiterState, SecretId, SecretRecord, Settings, SystemEntry,
};
#[cfg(feature = "postgres")]
pub use postgres::{PgOptions, PgStore, SslMode, pgpass, redact_url};
pub use random::{OsRandom, RandomError, Randomness};
pub use seal::KeyFile;
pub use sqlite::{BackupReport, SqliteStore, StoreOptions};
pub use users::{NewUserSecret, PendingSecret, UserSecret, UserSecretInfo, user_owner};

use otp::{Digits, Interval};

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
    /// The key file exists but the database is gone (deleted or emptied):
    /// the state was lost, which is not a first start. Starting afresh
    /// would silently turn two-factor authentication off.
    #[error(
        "the key file {key} exists but the database {db} is missing or empty: the \
         two-factor state was lost (restore the database from a backup, or start a \
         fresh state explicitly with --init)"
    )]
    StateLost { key: String, db: String },
    /// A file or directory of the state is not what it must be (wrong type,
    /// owner or permissions). Nothing was changed.
    #[error("refusing to use {path}: {reason}")]
    Unsafe { path: String, reason: String },
    /// SQLite failed; `kind` says how, `message` is SQLite's own text (it
    /// names conditions, never bound values, paths or SQL).
    #[error("{kind} ({message})")]
    Database { kind: DbErrorKind, message: String },
    /// The key file is not the one the (shared) database was sealed with.
    #[error("the key file does not match the database (key check failed): {path}")]
    KeyCheckFailed { path: String },
    /// The database configuration is unusable (URL, TLS settings, ...);
    /// the message names what, never a password.
    #[error("{0}")]
    Config(String),
    /// The database could not be reached or refused us at start-up.
    #[error("cannot connect to the database {url}: {reason}")]
    Connect { url: String, reason: String },
}

/// How a database operation failed, for messages a person can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DbErrorKind {
    #[error("database is busy (another process holds it locked)")]
    Busy,
    #[error("database is full (no space left on the disk, or its size limit reached)")]
    Full,
    #[error("database file is damaged (corrupt, or not a database)")]
    Corrupt,
    #[error("database is read-only")]
    ReadOnly,
    #[error("database I/O error")]
    Io,
    #[error("database error")]
    Other,
    /// A database server that cannot be reached (connection lost, server
    /// stopped, statement time-out): the call fails at once, nothing is
    /// decided without it.
    #[error("the database is unavailable")]
    Unavailable,
}

impl StoreError {
    /// A database error of kind `Other` with our own message.
    pub fn database(message: impl Into<String>) -> Self {
        Self::Database {
            kind: DbErrorKind::Other,
            message: message.into(),
        }
    }

    /// The database failure kind, when this is one.
    pub fn db_kind(&self) -> Option<DbErrorKind> {
        match self {
            Self::Database { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One transaction's view: reads see the transaction's own writes.
///
/// One set of secret operations serves every account, root included:
/// root's secret is the row of name `root` (uid 0) of the per-user
/// secrets. The entry holds only the global switches and the defaults for
/// new secrets ([`Settings`]).
pub trait Tx {
    /// The entry's settings.
    fn settings(&mut self) -> Result<Settings>;
    /// The entry's settings for a check by a caller who could read the
    /// state anyway (an administrator on the Unix socket): an engine that
    /// keeps a cache of the entry, kept true by other nodes' notices, may
    /// answer from it (as of the last notice heard) instead of reading in
    /// the transaction. Not for a read that a write of this transaction
    /// depends on. The default reads as [`Tx::settings`].
    fn settings_cached(&mut self) -> Result<Settings> {
        self.settings()
    }
    /// Replaces the settings (all fields).
    fn put_settings(&mut self, settings: &Settings) -> Result<()>;
    /// Records `step` as accepted for secret `id` if it is above the highest
    /// step accepted so far. Returns whether it was (the replay guard).
    fn advance_step(&mut self, id: SecretId, step: u64) -> Result<bool>;
    /// The wrong-code counter of the secret of `owner` ([`user_owner`]) as
    /// seen from `origin` (an address, `local`, or [`ALL_ORIGINS`] for the
    /// count over every origin); the default when none is stored. Replacing
    /// the owner's secret clears all of them.
    fn failures(&mut self, owner: &str, origin: &str) -> Result<LimiterState>;
    /// Writes one (owner, origin) counter, to be forgotten at
    /// `expires_at_ms` ([`Tx::expire_failures`]). The default state deletes it.
    fn put_failures(
        &mut self,
        owner: &str,
        origin: &str,
        state: &LimiterState,
        expires_at_ms: i64,
    ) -> Result<()>;
    /// Deletes every failure counter of `owner` (each origin's and the
    /// count over all origins), ending its lock-outs and their memory; the
    /// secret and its replay state stay. Returns how many were deleted.
    fn clear_failures(&mut self, owner: &str) -> Result<usize>;
    /// Deletes up to `batch` counters whose expiry is at or before `now_ms`
    /// (oldest first); returns how many. Keeps the table bounded however
    /// many origins there are.
    fn expire_failures(&mut self, now_ms: i64, batch: usize) -> Result<usize>;
    /// `username`'s active secret, unsealed; only this one is
    /// read (found by name).
    fn user_secret(&mut self, username: &str) -> Result<Option<UserSecret>>;
    /// [`Tx::user_secret`] for a check by a caller who could read the
    /// state anyway, on the terms of [`Tx::settings_cached`] (root's secret
    /// is in the entry's cache). The default reads as [`Tx::user_secret`].
    fn user_secret_cached(&mut self, username: &str) -> Result<Option<UserSecret>> {
        self.user_secret(username)
    }
    /// Makes `new` the account's active secret, deleting the previous one
    /// with its replay state and failure counters, and the name's recovery
    /// codes made for another uid.
    fn put_user_secret(&mut self, new: &NewUserSecret<'_>) -> Result<SecretId>;
    /// Changes the digits and interval of the account's active secret,
    /// keeping the secret, its replay state and its counters; returns
    /// whether the account has one.
    fn set_secret_params(
        &mut self,
        username: &str,
        digits: Digits,
        interval: Interval,
    ) -> Result<bool>;
    /// Deletes the account's secret, failure counters, pending enrolment
    /// and recovery codes; returns whether it had a secret.
    fn delete_user_secret(&mut self, username: &str) -> Result<bool>;
    /// The account's pending enrolment, unsealed (expired or not: the
    /// service decides).
    fn pending_secret(&mut self, username: &str) -> Result<Option<PendingSecret>>;
    /// Stores (replacing) the account's pending enrolment.
    fn put_pending_secret(&mut self, pending: &PendingSecret) -> Result<()>;
    fn delete_pending_secret(&mut self, username: &str) -> Result<()>;
    /// Replaces the account's recovery codes (of any uid) with codes for
    /// `uid`: only their keyed hashes (HMAC-SHA-256 under a key derived
    /// from the key file, over name, uid and code) are stored.
    fn put_recovery_codes(&mut self, username: &str, uid: u32, codes: &[&str]) -> Result<()>;
    /// Uses up one recovery code: `Some(codes left)` when it was one of the
    /// account's made for `uid`, `None` otherwise.
    fn use_recovery_code(&mut self, username: &str, uid: u32, code: &str) -> Result<Option<u32>>;
    /// Appends an audit record of the security class, never aggregated.
    fn audit(&mut self, record: &AuditRecord) -> Result<()> {
        self.audit_as(record, AuditClass::Security, None)
    }
    /// Appends an audit record under `class`'s retention. With `aggregate`,
    /// once `free` records of its key were written since its `since_ms`,
    /// the record is not appended: the count of one row of that key in the
    /// interval (the first record beyond `free`) grows by one instead.
    fn audit_as(
        &mut self,
        record: &AuditRecord,
        class: AuditClass,
        aggregate: Option<&Aggregate<'_>>,
    ) -> Result<()>;
    /// Audit retention of one class, a little at a time: deletes up to
    /// `batch` of the oldest records of `class` that are older than
    /// `older_than_ms` or beyond the class's newest `keep_rows`. Records of
    /// the other class are neither deleted nor counted. Returns how many
    /// were deleted.
    fn prune_audit(
        &mut self,
        class: AuditClass,
        older_than_ms: i64,
        keep_rows: u64,
        batch: usize,
    ) -> Result<usize>;
}

/// A read-only snapshot's view ([`Store::read_snapshot_dyn`]): what a
/// report needs, read without taking a lock that a writer holds or waits
/// for. Counters are read as they were committed, never locked.
pub trait Snapshot {
    /// `username`'s active secret, unsealed (as [`Tx::user_secret`]).
    fn user_secret(&mut self, username: &str) -> Result<Option<UserSecret>>;
    /// The account's pending enrolment, unsealed (as [`Tx::pending_secret`]).
    fn pending_secret(&mut self, username: &str) -> Result<Option<PendingSecret>>;
    /// One (owner, origin) wrong-code counter (as [`Tx::failures`], but
    /// not locked).
    fn failures(&mut self, owner: &str, origin: &str) -> Result<LimiterState>;
}

/// A storage backend. Implementations are safe to share between threads.
///
/// What a transaction may rely on, on every engine:
/// - [`Tx::advance_step`] is one conditional update: among any number of
///   concurrent transactions (threads, processes, nodes) advancing the same
///   secret to the same step, exactly one sees `true`.
/// - [`Tx::use_recovery_code`] is one conditional delete: a code is used
///   up by exactly one of concurrent transactions.
/// - Reading a counter ([`Tx::failures`]) locks it until
///   the transaction ends, so a read-modify-write of a counter never loses
///   a concurrent one (SQLite: every write transaction holds the database's
///   write lock; PostgreSQL: a transaction-scoped advisory lock per key).
/// - Changing an account's secret locks that account for the rest of the
///   transaction. Settings are written whole: of two concurrent
///   `put_settings`, the later commit wins.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// A consistent read of the settings with root's secret unsealed (what
    /// `config` shows). Only for the callers that need the secret itself;
    /// the others use [`Store::read_summary`].
    fn read(&self) -> Result<SystemEntry>;
    /// The settings and which secret is set, without unsealing it (may be
    /// served from a cache that the backend keeps coherent with writes from
    /// other processes; such a cache holds no secret).
    fn read_summary(&self) -> Result<EntrySummary> {
        Ok(EntrySummary::from(&self.read()?))
    }
    /// Runs `f` in one transaction: committed (durably) when `f` returns
    /// `Ok`, rolled back when it returns `Err`.
    fn transact_dyn(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()>;
    /// Runs `f` on one read-only snapshot: it never takes or waits for the
    /// write lock and never holds a writer up (SQLite: a read transaction
    /// on the reader connection; PostgreSQL: a read-only repeatable-read
    /// transaction without advisory locks). Nothing `f` sees is written.
    fn read_snapshot_dyn(&self, f: &mut dyn FnMut(&mut dyn Snapshot) -> Result<()>) -> Result<()>;
    /// One account's secret, the count of its recovery codes made for
    /// `uid`, and the other names holding a secret made for `uid`, from a
    /// read-only snapshot (never waits behind a write).
    fn read_user(&self, username: &str, uid: u32) -> Result<UserView>;
    /// Audit records, newest first.
    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
    /// Registers `listener` for every change committed to this state from
    /// now on, whoever committed it, each told once:
    /// - this handle's own transactions: on the committing thread, right
    ///   after the commit and before `transact_dyn` returns (a rolled-back
    ///   transaction, or one that changed nothing a listener hears of, such
    ///   as a code check's replay step and counters, tells nothing);
    /// - other handles and processes on the same state, and other nodes on
    ///   a shared database: on a thread of the store's, shortly after their
    ///   commit (SQLite: within [`SqliteStore::WATCH_INTERVAL`];
    ///   PostgreSQL: as the notification arrives).
    ///
    /// The default tells nothing (a store with no way to know).
    fn on_change(&self, listener: ChangeListener) {
        let _ = listener;
    }
    /// Whether [`Store::read_summary`] and [`Store::read`] answer from
    /// memory or a local file right now, never waiting on a network (a
    /// host may then run them on its event loop).
    fn reads_cached(&self) -> bool {
        true
    }
    /// Whether the store can currently serve (a shared database may be
    /// unreachable for a while).
    fn is_ready(&self) -> bool {
        true
    }
    /// This node's name on a state shared by several nodes (the name its
    /// audit rows and notifications carry); `None` for a state of one node.
    fn shared_node(&self) -> Option<&str> {
        None
    }
    /// Every stored account secret, by name, without unsealing any, from a
    /// read-only snapshot (never waits behind a write, never holds one up).
    fn read_user_secrets(&self) -> Result<Vec<UserSecretInfo>>;
}

/// What [`Store::read_user`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserView {
    pub secret: Option<UserSecret>,
    /// Recovery codes of the name made for the uid asked about.
    pub recovery_codes_left: u32,
    /// Other names whose stored secret was made for the uid asked about
    /// (at most a few): a renamed account left its secret there.
    pub other_names_with_uid: Vec<String>,
}

/// Typed convenience over [`Store::read_snapshot_dyn`].
pub fn read_snapshot<R>(
    store: &dyn Store,
    f: impl FnOnce(&mut dyn Snapshot) -> Result<R>,
) -> Result<R> {
    let mut f = Some(f);
    let mut out = None;
    store.read_snapshot_dyn(&mut |snap| {
        let f = f
            .take()
            .ok_or_else(|| StoreError::database("snapshot body run twice"))?;
        out = Some(f(snap)?);
        Ok(())
    })?;
    out.ok_or_else(|| StoreError::database("snapshot body did not run"))
}

/// Typed convenience over [`Store::transact_dyn`].
pub fn transact<R>(store: &dyn Store, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> Result<R> {
    let mut f = Some(f);
    let mut out = None;
    store.transact_dyn(&mut |tx| {
        let f = f
            .take()
            .ok_or_else(|| StoreError::database("transaction body run twice"))?;
        out = Some(f(tx)?);
        Ok(())
    })?;
    out.ok_or_else(|| StoreError::database("transaction body did not run"))
}
