//! The PostgreSQL backend: one state shared by several nodes.
//!
//! Every node keeps the key file in its state directory (the same file on
//! every node); the database holds everything else, with the same records
//! and the same sealing as the SQLite backend, and a key check value that
//! a node with another key file fails against at start.
//!
//! The store trait is synchronous and called from worker threads, so this
//! backend uses the synchronous client (tokio-postgres under a small
//! runtime of its own per connection) in an r2d2 pool; each pooled
//! connection keeps its prepared statements. Every call bounds its wait:
//! the pool gives up after `statement_timeout_ms`, the server cancels a
//! statement after it, and a lost server fails the call at once with
//! [`DbErrorKind::Unavailable`](crate::DbErrorKind::Unavailable).
//!
//! By concern, as in `sqlite/`: `url` (connection string and TLS),
//! `schema`, `key`, `entry`, `checks`, `users`, `audit`, `batch` (the
//! node's audit writer, committing routine records of many transactions
//! together), `cache` (the read cache with its `LISTEN` connection), and
//! `snapshot` (moving a state).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use otp::{Digits, Interval};
use postgres::types::{FromSql, ToSql};
use postgres::{GenericClient, Row, Statement};

use crate::changes::ChangeSet;
use crate::users::{NewUserSecret, PendingSecret, UserSecret, UserSecretInfo};
use crate::{
    Aggregate, AuditClass, AuditEntry, AuditQuery, AuditRecord, Change, ChangeListener,
    DbErrorKind, EntrySummary, KeyFile, LimiterState, OsRandom, Randomness, Result, SecretId,
    Settings, Snapshot, Store, StoreError, SystemEntry, Tx, UserView,
};

mod audit;
mod batch;
mod cache;
mod checks;
mod entry;
mod key;
pub mod pgpass;
mod schema;
pub(crate) mod snapshot;
mod url;
mod users;

pub use url::{SslMode, redact_url};

/// Maps client errors: a lost or unreachable server (and a statement
/// cancelled by its time-out) is [`DbErrorKind::Unavailable`]; otherwise
/// the server's own message (which names conditions, not bound values).
pub(super) trait PgResult<T> {
    fn pg(self) -> Result<T>;
}

impl<T> PgResult<T> for std::result::Result<T, postgres::Error> {
    fn pg(self) -> Result<T> {
        self.map_err(|e| pg_error(&e))
    }
}

pub(super) fn pg_error(e: &postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let unavailable = code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::QUERY_CANCELED,
                SqlState::READ_ONLY_SQL_TRANSACTION,
                SqlState::LOCK_NOT_AVAILABLE,
                SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
            ]
            .contains(code);
        let kind = if unavailable {
            DbErrorKind::Unavailable
        } else if *code == SqlState::DISK_FULL {
            DbErrorKind::Full
        } else {
            DbErrorKind::Other
        };
        return StoreError::Database {
            kind,
            message: format!("{} ({})", db.message(), code.code()),
        };
    }
    // No answer from a server: closed, refused, timed out, TLS.
    StoreError::Database {
        kind: DbErrorKind::Unavailable,
        message: e.to_string(),
    }
}

/// Runs a read off any async runtime's thread: the synchronous client
/// drives its own small runtime, which must not be entered from a thread
/// that runs an event loop. A host calls reads on its event loop only
/// while they are cached ([`Store::reads_cached`]); a read that finds the
/// cache dropped in between lands here. Transactions are only ever run
/// from worker threads, where entering the client's runtime is allowed.
fn off_runtime<R: Send>(f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|_| Err(StoreError::database("a database call panicked")))
    })
}

/// A column, without panicking on a type the schema does not have.
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).pg()
}

/// A connection's prepared statements, and what the transaction running on
/// it has written: anything that must survive a crash of the database
/// (`durable`), anything that may be lost in one (`relaxed`).
#[derive(Default)]
pub(super) struct Stmts {
    prepared: HashMap<&'static str, Statement>,
    durable: bool,
    relaxed: bool,
}

/// A client (or transaction) with its connection's prepared statements.
///
/// Every statement but a `SELECT` run through [`Db::query`], [`Db::opt`]
/// or [`Db::exec`] marks the transaction durable: its commit waits until
/// the database has the change on disk (and, with synchronous replication,
/// on the standby). Only the writes that may be lost in a crash of the
/// database go through [`Db::exec_relaxed`] and [`Db::opt_relaxed`]: routine
/// audit records (the class that is aggregated and pruned anyway) and the
/// housekeeping that a later transaction repeats (pruning old records,
/// deleting expired counters). A transaction that wrote nothing else commits
/// without waiting for the disk (see [`Store::transact_dyn`] below).
pub(super) struct Db<'a, C: GenericClient> {
    c: &'a mut C,
    stmts: &'a mut Stmts,
}

impl<C: GenericClient> Db<'_, C> {
    fn st(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(s) = self.stmts.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.c.prepare(sql).pg()?;
        self.stmts.prepared.insert(sql, s.clone());
        Ok(s)
    }

    /// A statement other than a plain `SELECT` makes the commit durable.
    fn note(&mut self, sql: &str) {
        if !sql.trim_start().starts_with("SELECT") {
            self.stmts.durable = true;
        }
    }

    pub(super) fn query(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        self.note(sql);
        let s = self.st(sql)?;
        self.c.query(&s, p).pg()
    }

    pub(super) fn opt(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        self.note(sql);
        let s = self.st(sql)?;
        self.c.query_opt(&s, p).pg()
    }

    pub(super) fn exec(&mut self, sql: &'static str, p: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.note(sql);
        let s = self.st(sql)?;
        self.c.execute(&s, p).pg()
    }

    /// [`Db::opt`] for a write that may be lost in a crash of the database
    /// (see the type's documentation): it does not make the commit durable.
    pub(super) fn opt_relaxed(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        self.stmts.relaxed = true;
        let s = self.st(sql)?;
        self.c.query_opt(&s, p).pg()
    }

    /// [`Db::exec`] for a write that may be lost in a crash of the database
    /// (see the type's documentation): it does not make the commit durable.
    pub(super) fn exec_relaxed(
        &mut self,
        sql: &'static str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        self.stmts.relaxed = true;
        let s = self.st(sql)?;
        self.c.execute(&s, p).pg()
    }
}

/// One pooled connection.
pub(super) struct Conn {
    client: postgres::Client,
    stmts: Stmts,
}

struct Manager {
    connect: Arc<dyn Fn() -> std::result::Result<postgres::Client, String> + Send + Sync>,
}

#[derive(Debug)]
struct ConnectError(String);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = ConnectError;

    fn connect(&self) -> std::result::Result<Conn, ConnectError> {
        (self.connect)()
            .map(|client| Conn {
                client,
                stmts: Stmts::default(),
            })
            .map_err(ConnectError)
    }

    fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), ConnectError> {
        conn.client
            .simple_query("")
            .map(|_| ())
            .map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// How to reach the shared database (the `[database]` section).
#[derive(Clone)]
pub struct PgOptions {
    /// `postgresql://user@host1,host2/db?target_session_attrs=read-write&sslmode=...`
    pub url: String,
    /// The password (from `password_file`), when the URL has none.
    pub password: Option<String>,
    /// This node's name in audit rows and notifications.
    pub node: String,
    pub pool_size: u32,
    pub connect_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    /// The key file (the same on every node).
    pub key_file: PathBuf,
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("node", &self.node)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// The PostgreSQL store of one node.
pub struct PgStore {
    /// Writes the routine records of transactions that needed no database
    /// transaction of their own (see `batch`). First, so that it is
    /// dropped first: what it still holds is written before anything
    /// else of the store goes.
    writer: batch::Writer,
    url: String,
    node: String,
    key: KeyFile,
    /// Always `Some` until the store is dropped (see its `Drop`).
    pool: Option<r2d2::Pool<Manager>>,
    shared: Arc<cache::Shared>,
    /// Transactions committed without waiting for the disk.
    relaxed_commits: Arc<std::sync::atomic::AtomicU64>,
    /// Transactions of the audit writer that committed.
    audit_batches: Arc<std::sync::atomic::AtomicU64>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .field("node", &self.node)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // A `postgres::Client` closes its connection by blocking on a
        // runtime of its own, which panics on a thread that drives async
        // tasks: the daemon drops its store on one. The pool, and with it
        // every idle connection, goes on a thread of its own. (The audit
        // writer and the listener close theirs on their own threads.)
        if let Some(pool) = self.pool.take() {
            let closing = std::thread::Builder::new()
                .name("twofactor-close".into())
                .spawn(move || drop(pool));
            match closing {
                Ok(thread) => {
                    let _ = thread.join();
                }
                Err(e) => tracing::warn!(error = %e, "cannot close the database connections"),
            }
        }
    }
}

/// The connection factory: the parsed URL with the password, time-outs and
/// session settings applied.
fn connector(
    options: &PgOptions,
) -> Result<Arc<dyn Fn() -> std::result::Result<postgres::Client, String> + Send + Sync>> {
    let target = url::parse(&options.url)?;
    let mut config = target.config;
    if let Some(pw) = &options.password {
        config.password(pw.as_bytes());
    }
    config.connect_timeout(Duration::from_millis(options.connect_timeout_ms.max(1)));
    config.tcp_user_timeout(Duration::from_millis(options.statement_timeout_ms.max(1)));
    config.keepalives_idle(Duration::from_secs(5));
    config.application_name(&format!("twofactord/{}", options.node));
    let t = options.statement_timeout_ms.max(1);
    config.options(&format!(
        "-c statement_timeout={t} -c lock_timeout={t} -c idle_in_transaction_session_timeout={}",
        t.saturating_mul(5)
    ));
    let tls = target.tls;
    Ok(Arc::new(move || {
        config.connect(tls.clone()).map_err(|e| {
            // The client's message, with the server's detail when it has
            // one (a wrong password says so), never the password.
            match e.as_db_error() {
                Some(db) => format!("{} ({})", db.message(), db.code().code()),
                None => {
                    let mut s = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(inner) = src {
                        let more = inner.to_string();
                        if !s.contains(&more) {
                            s.push_str(": ");
                            s.push_str(&more);
                        }
                        src = inner.source();
                    }
                    s
                }
            }
        })
    }))
}

impl PgStore {
    /// The schema version this build writes.
    pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

    /// Connects, applies missing migrations under the schema lock, proves
    /// the key file against the database (creating key and check on a
    /// new database), and starts listening for other nodes' changes. Any
    /// failure is reported before anything is written.
    pub fn open(options: &PgOptions) -> Result<Self> {
        Self::open_with_random(options, Arc::new(OsRandom))
    }

    pub fn open_with_random(options: &PgOptions, random: Arc<dyn Randomness>) -> Result<Self> {
        let shown = redact_url(&options.url);
        let connect = connector(options)?;
        let mut client = connect().map_err(|reason| StoreError::Connect {
            url: shown.clone(),
            reason,
        })?;
        let key = {
            let mut tx = client.transaction().pg()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::SCHEMA_LOCK])
                .pg()?;
            schema::migrate(&mut tx)?;
            let key = key::setup_key(&mut tx, &options.key_file, random)?;
            key::reseal_root(&mut tx, &key)?;
            tx.commit().pg()?;
            key
        };
        drop(client);

        let shared = Arc::new(cache::Shared::default());
        shared.available.store(true, Ordering::Relaxed);
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(Duration::from_millis(options.statement_timeout_ms.max(1)))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Manager {
                connect: connect.clone(),
            });
        cache::spawn_listener(shared.clone(), connect.clone(), options.node.clone()).map_err(
            |e| StoreError::Io {
                path: "the database listener thread".into(),
                source: e,
            },
        )?;
        // A node is open once it hears the others: a change committed
        // elsewhere after this returns reaches its subscribers. The
        // database answered a moment ago, so this is one more connection;
        // should it not come in time, the node serves without its cache and
        // the listener keeps trying (and logs it).
        if !shared.wait_listening(Duration::from_millis(options.connect_timeout_ms.max(1))) {
            tracing::warn!("not yet listening for other nodes' changes; serving without the cache");
        }
        let relaxed_commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let audit_batches = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = {
            let mut out = BatchOut {
                connect: connect.clone(),
                node: options.node.clone(),
                held: None,
                known: audit::KnownAggregates::default(),
                relaxed_commits: relaxed_commits.clone(),
                audit_batches: audit_batches.clone(),
            };
            batch::Writer::spawn(
                Duration::from_millis(options.statement_timeout_ms.max(1)),
                move |records| out.write(records),
            )
            .map_err(|e| StoreError::Io {
                path: "the audit writer thread".into(),
                source: e,
            })?
        };
        Ok(Self {
            writer,
            url: shown,
            node: options.node.clone(),
            key,
            pool: Some(pool),
            shared,
            relaxed_commits,
            audit_batches,
        })
    }

    /// The node name this store writes into audit rows.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Transactions committed so far without waiting for the disk: those
    /// that wrote only routine audit records and housekeeping.
    pub fn relaxed_commits(&self) -> u64 {
        self.relaxed_commits.load(Ordering::Relaxed)
    }

    /// Transactions the audit writer has committed so far, each holding
    /// the routine records of one or more transactions that needed no
    /// database transaction of their own.
    pub fn audit_batches(&self) -> u64 {
        self.audit_batches.load(Ordering::Relaxed)
    }

    /// Connections the pool holds now (in use and idle).
    pub fn pool_connections(&self) -> u32 {
        self.pool.as_ref().map_or(0, |p| p.state().connections)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>> {
        let unavailable = |message: String| StoreError::Database {
            kind: DbErrorKind::Unavailable,
            message,
        };
        self.pool
            .as_ref()
            .ok_or_else(|| unavailable("the store is closing".into()))?
            .get()
            .map_err(|e| unavailable(e.to_string()))
    }

    fn rows(&self) -> Result<(Settings, Option<entry::SecretRow>)> {
        if let Some(rows) = self.shared.get() {
            return Ok(rows);
        }
        off_runtime(|| {
            let generation = self.shared.generation();
            let mut conn = self.conn()?;
            let Conn { client, stmts } = &mut *conn;
            let rows = entry::load_rows(&mut Db { c: client, stmts })?;
            self.shared.put(generation, rows.clone());
            Ok(rows)
        })
    }

    /// Runs `f` on a pooled client (for moving a whole state).
    pub(crate) fn with_client<R>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<R>,
    ) -> Result<R> {
        let mut conn = self.conn()?;
        let r = f(&mut conn.client);
        self.shared.invalidate();
        r
    }
}

/// A transaction's view.
///
/// The database transaction begins with the first statement that needs
/// it, on a connection taken from the pool then. Until that happens, reads
/// for a check by a caller exempt from counting come from the node's cache
/// ([`Tx::settings_cached`], [`Tx::user_secret_cached`]) and routine audit
/// records wait in `deferred`: a transaction that never needs the database
/// hands them to the audit writer at the end (one commit for many
/// checks); one that does writes them first thing in its own transaction,
/// in their order, as before.
struct PgTx<'s> {
    store: &'s PgStore,
    /// The connection with the transaction open on it, once begun.
    conn: Option<r2d2::PooledConnection<Manager>>,
    deferred: Vec<batch::Record>,
    /// What listeners will hear of, once this commits.
    changes: ChangeSet,
    /// Root's replay step moved: other nodes drop their cached rows.
    step_moved: bool,
}

impl PgTx<'_> {
    /// The transaction, begun now if it was not yet (with the records
    /// deferred so far written into it).
    fn db(&mut self) -> Result<Db<'_, postgres::Client>> {
        if self.conn.is_none() {
            let mut conn = self.store.conn()?;
            conn.client.batch_execute("BEGIN").pg()?;
            conn.stmts.durable = false;
            conn.stmts.relaxed = false;
            let conn = self.conn.insert(conn);
            let Conn { client, stmts } = &mut **conn;
            let mut db = Db { c: client, stmts };
            for r in std::mem::take(&mut self.deferred) {
                audit::insert(
                    &mut db,
                    &r.record,
                    AuditClass::Routine,
                    r.aggregate().as_ref(),
                    &self.store.node,
                )?;
            }
        }
        match self.conn.as_mut() {
            Some(conn) => {
                let Conn { client, stmts } = &mut **conn;
                Ok(Db { c: client, stmts })
            }
            None => Err(StoreError::database("no database transaction")),
        }
    }

    /// Whether the database transaction has begun.
    fn begun(&self) -> bool {
        self.conn.is_some()
    }
}

impl Drop for PgTx<'_> {
    /// A transaction neither committed nor rolled back yet (its body
    /// failed or panicked) is rolled back before the connection goes back
    /// to the pool.
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.client.batch_execute("ROLLBACK");
        }
    }
}

/// A snapshot's view: a read-only repeatable-read transaction that takes
/// no advisory lock, so it never queues behind a writer.
struct PgSnapshot<'a, 'c> {
    tx: &'a mut postgres::Transaction<'c>,
    stmts: &'a mut Stmts,
    key: &'a KeyFile,
}

impl<'c> PgSnapshot<'_, 'c> {
    fn db(&mut self) -> Db<'_, postgres::Transaction<'c>> {
        Db {
            c: self.tx,
            stmts: self.stmts,
        }
    }
}

impl Snapshot for PgSnapshot<'_, '_> {
    fn user_secret(&mut self, username: &str) -> Result<Option<UserSecret>> {
        let key = self.key;
        users::user_secret(&mut self.db(), key, username)
    }

    fn pending_secret(&mut self, username: &str) -> Result<Option<PendingSecret>> {
        let key = self.key;
        users::pending(&mut self.db(), key, username)
    }

    fn failures(&mut self, owner: &str, origin: &str) -> Result<LimiterState> {
        checks::peek_failures(&mut self.db(), owner, origin)
    }
}

impl Tx for PgTx<'_> {
    fn settings(&mut self) -> Result<Settings> {
        entry::load_settings(&mut self.db()?)
    }

    fn settings_cached(&mut self) -> Result<Settings> {
        if self.begun() {
            return self.settings();
        }
        Ok(self.store.rows()?.0)
    }

    fn user_secret_cached(&mut self, username: &str) -> Result<Option<UserSecret>> {
        if self.begun() || username != crate::users::ROOT {
            return self.user_secret(username);
        }
        let (settings, row) = self.store.rows()?;
        if row.is_none() {
            // The cache holds root's row made for uid 0 only; a row of the
            // name made for another uid is read as it is.
            return self.user_secret(username);
        }
        Ok(entry::unseal_entry(settings, row.as_ref(), &self.store.key)?.root)
    }

    fn put_settings(&mut self, s: &Settings) -> Result<()> {
        self.changes.note(Change::Entry);
        entry::put_settings(&mut self.db()?, s)
    }

    fn advance_step(&mut self, id: SecretId, step: u64) -> Result<bool> {
        let moved = entry::advance_step(&mut self.db()?, id, step)?;
        if moved == Some(true) {
            // The cached entry carries root's replay step.
            self.step_moved = true;
        }
        Ok(moved.is_some())
    }

    fn failures(&mut self, owner: &str, origin: &str) -> Result<LimiterState> {
        checks::failures(&mut self.db()?, owner, origin)
    }

    fn put_failures(
        &mut self,
        owner: &str,
        origin: &str,
        state: &LimiterState,
        expires_at_ms: i64,
    ) -> Result<()> {
        checks::put_failures(&mut self.db()?, owner, origin, state, expires_at_ms)
    }

    fn clear_failures(&mut self, owner: &str) -> Result<usize> {
        let cleared = checks::clear_failures(&mut self.db()?, owner)?;
        if cleared > 0
            && let Some(change) = Change::of_owner(owner)
        {
            self.changes.note(change);
        }
        Ok(cleared)
    }

    fn expire_failures(&mut self, now_ms: i64, batch: usize) -> Result<usize> {
        checks::expire_failures(&mut self.db()?, now_ms, batch)
    }

    fn user_secret(&mut self, username: &str) -> Result<Option<UserSecret>> {
        let key = &self.store.key;
        users::user_secret(&mut self.db()?, key, username)
    }

    fn put_user_secret(&mut self, new: &NewUserSecret<'_>) -> Result<SecretId> {
        self.changes.user_changed(new.username);
        let key = &self.store.key;
        users::put_user_secret(&mut self.db()?, key, new)
    }

    fn set_secret_params(
        &mut self,
        username: &str,
        digits: Digits,
        interval: Interval,
    ) -> Result<bool> {
        self.changes.user_changed(username);
        users::set_secret_params(&mut self.db()?, username, digits, interval)
    }

    fn delete_user_secret(&mut self, username: &str) -> Result<bool> {
        let had = users::delete_user_secret(&mut self.db()?, username)?;
        if had {
            self.changes.user_changed(username);
        }
        Ok(had)
    }

    fn pending_secret(&mut self, username: &str) -> Result<Option<PendingSecret>> {
        let key = &self.store.key;
        users::pending(&mut self.db()?, key, username)
    }

    fn put_pending_secret(&mut self, pending: &PendingSecret) -> Result<()> {
        let key = &self.store.key;
        users::put_pending(&mut self.db()?, key, pending)
    }

    fn delete_pending_secret(&mut self, username: &str) -> Result<()> {
        users::delete_pending(&mut self.db()?, username)
    }

    fn put_recovery_codes(&mut self, username: &str, uid: u32, codes: &[&str]) -> Result<()> {
        self.changes.note(Change::user(username));
        let key = &self.store.key;
        users::put_recovery_codes(&mut self.db()?, key, username, uid, codes)
    }

    fn use_recovery_code(&mut self, username: &str, uid: u32, code: &str) -> Result<Option<u32>> {
        let key = &self.store.key;
        users::use_recovery_code(&mut self.db()?, key, username, uid, code)
    }

    fn audit_as(
        &mut self,
        record: &AuditRecord,
        class: AuditClass,
        aggregate: Option<&Aggregate<'_>>,
    ) -> Result<()> {
        if class == AuditClass::Routine && !self.begun() {
            self.deferred.push(batch::Record::new(record, aggregate));
            return Ok(());
        }
        let store = self.store;
        audit::insert(&mut self.db()?, record, class, aggregate, &store.node)
    }

    fn prune_audit(
        &mut self,
        class: AuditClass,
        older_than_ms: i64,
        keep_rows: u64,
        batch: usize,
    ) -> Result<usize> {
        audit::prune_audit(&mut self.db()?, class, older_than_ms, keep_rows, batch)
    }
}

impl Store for PgStore {
    fn read(&self) -> Result<SystemEntry> {
        let (settings, row) = self.rows()?;
        entry::unseal_entry(settings, row.as_ref(), &self.key)
    }

    fn read_summary(&self) -> Result<EntrySummary> {
        let (settings, row) = self.rows()?;
        Ok(entry::summary_of(settings, row.as_ref()))
    }

    fn transact_dyn(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut ptx = PgTx {
            store: self,
            conn: None,
            deferred: Vec::new(),
            changes: ChangeSet::default(),
            step_moved: false,
        };
        // On an error the transaction (if begun) rolls back as `ptx` is
        // dropped, and the deferred records go with it.
        f(&mut ptx)?;
        let changes = std::mem::take(&mut ptx.changes);
        let step_moved = ptx.step_moved;
        let mut payloads: Vec<String> = changes
            .iter()
            .map(|change| cache::payload(&self.node, change))
            .collect();
        let entry_changed = changes.has_entry();
        if step_moved && !entry_changed {
            payloads.push(format!("{}\n{}", self.node, cache::STEP));
        }
        if !ptx.begun() && payloads.is_empty() {
            // Nothing but cached reads and routine records: the audit
            // writer commits the records with those of other transactions,
            // and this returns once they are committed.
            let deferred = std::mem::take(&mut ptx.deferred);
            drop(ptx);
            return self.writer.submit(deferred);
        }
        {
            let db = ptx.db()?;
            for payload in &payloads {
                // Delivered to every node's listener when (and only if)
                // this commits; this node's own comes back and is dropped
                // there.
                db.c.execute("SELECT pg_notify($1, $2)", &[&cache::CHANNEL, payload])
                    .pg()?;
            }
            // A transaction that wrote only what may be lost in a crash of
            // the database (routine audit records, pruning, expired
            // counters; see `Db`) does not wait for the disk: PostgreSQL
            // makes it visible at once and writes it out within a fraction
            // of a second. Anything else (a replay step, a counter, a
            // security record, a setting, a secret) commits durably, as
            // does a transaction that notifies. One that wrote nothing has
            // nothing to wait for either way.
            let relaxed = db.stmts.relaxed && !db.stmts.durable && payloads.is_empty();
            let committed = if relaxed {
                db.c.batch_execute("SET LOCAL synchronous_commit = off; COMMIT")
            } else {
                db.c.batch_execute("COMMIT")
            }
            .pg();
            if entry_changed || step_moved {
                self.shared.invalidate();
            }
            // On an error the transaction is rolled back (if it is still
            // open) as `ptx` is dropped.
            committed?;
            if relaxed {
                self.relaxed_commits.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Committed: the connection goes back to the pool.
        ptx.conn = None;
        drop(ptx);
        // This node's listeners hear it now, on this thread, with the
        // connection back in the pool (a listener reads the state).
        self.shared.notifier.notify(&changes.into_vec());
        Ok(())
    }

    fn read_snapshot_dyn(&self, f: &mut dyn FnMut(&mut dyn Snapshot) -> Result<()>) -> Result<()> {
        // Like a transaction body, `f` runs on the caller's thread (a
        // worker, never the event loop).
        let mut conn = self.conn()?;
        let Conn { client, stmts } = &mut *conn;
        let mut tx = read_only_tx(client)?;
        f(&mut PgSnapshot {
            tx: &mut tx,
            stmts,
            key: &self.key,
        })?;
        tx.commit().pg()
    }

    fn read_user(&self, username: &str, uid: u32) -> Result<UserView> {
        off_runtime(|| self.read_user_here(username, uid))
    }

    fn read_user_secrets(&self) -> Result<Vec<UserSecretInfo>> {
        off_runtime(|| {
            let mut conn = self.conn()?;
            let Conn { client, stmts } = &mut *conn;
            let mut tx = read_only_tx(client)?;
            let infos = users::user_secrets(&mut Db { c: &mut tx, stmts })?;
            tx.commit().pg()?;
            Ok(infos)
        })
    }

    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        off_runtime(|| {
            let mut conn = self.conn()?;
            audit::query(&mut conn.client, query)
        })
    }

    fn on_change(&self, listener: ChangeListener) {
        self.shared.notifier.add(listener);
    }

    fn is_ready(&self) -> bool {
        self.shared.available.load(Ordering::Relaxed)
    }

    fn shared_node(&self) -> Option<&str> {
        Some(&self.node)
    }

    fn reads_cached(&self) -> bool {
        self.shared.get().is_some()
    }
}

impl PgStore {
    fn read_user_here(&self, username: &str, uid: u32) -> Result<UserView> {
        let mut conn = self.conn()?;
        let Conn { client, stmts } = &mut *conn;
        let mut tx = read_only_tx(client)?;
        let mut db = Db { c: &mut tx, stmts };
        let secret = users::user_secret(&mut db, &self.key, username)?;
        let recovery_codes_left = users::recovery_codes_left(&mut db, username, uid)?;
        let other_names_with_uid = users::other_names_with_uid(&mut db, username, uid)?;
        tx.commit().pg()?;
        Ok(UserView {
            secret,
            recovery_codes_left,
            other_names_with_uid,
        })
    }
}

/// The audit writer's side of the database: a connection of its own
/// (besides the pool), on which every commit is made without waiting for
/// the disk (`synchronous_commit = off` for the session: it only ever
/// writes routine records), and its counters.
struct BatchOut {
    connect: Arc<dyn Fn() -> std::result::Result<postgres::Client, String> + Send + Sync>,
    node: String,
    /// The connection, with when it last answered.
    held: Option<(Conn, std::time::Instant)>,
    /// Where each key was last counted.
    known: audit::KnownAggregates,
    relaxed_commits: Arc<std::sync::atomic::AtomicU64>,
    audit_batches: Arc<std::sync::atomic::AtomicU64>,
}

/// A connection of the audit writer that answered this recently is used
/// as it is; one idle for longer may have been lost meanwhile (the server
/// restarted), so its batch starts with a statement that writes nothing
/// and is tried again on a new connection if that fails.
const BATCH_CONNECTION_FRESH: Duration = Duration::from_millis(500);

impl BatchOut {
    /// Writes one batch of routine records in one transaction.
    fn write(&mut self, records: &[batch::Record]) -> Result<()> {
        let (mut conn, recent) = match self.held.take() {
            Some((c, last)) if !c.client.is_closed() => {
                (c, last.elapsed() < BATCH_CONNECTION_FRESH)
            }
            _ => (self.connect()?, true),
        };
        match Self::write_on(&mut conn, records, &self.node, recent, &mut self.known) {
            Ok(()) => {}
            Err(Retry::Begin(_)) if !recent => {
                // A connection idle for a while failed at its first
                // statement: nothing was written. Once more on a new one.
                conn = self.connect()?;
                Self::write_on(&mut conn, records, &self.node, true, &mut self.known)
                    .map_err(Retry::error)?;
            }
            Err(e) => return Err(e.error()),
        }
        self.relaxed_commits.fetch_add(1, Ordering::Relaxed);
        self.audit_batches.fetch_add(1, Ordering::Relaxed);
        if !conn.client.is_closed() {
            self.held = Some((conn, std::time::Instant::now()));
        }
        Ok(())
    }

    fn write_on(
        conn: &mut Conn,
        records: &[batch::Record],
        node: &str,
        recent: bool,
        known: &mut audit::KnownAggregates,
    ) -> std::result::Result<(), Retry> {
        let Conn { client, stmts } = conn;
        let mut db = Db { c: client, stmts };
        // The common case under load: many checks of one kind, all counted
        // on its aggregate row by one statement (its own transaction), on
        // a connection known to be alive.
        if recent
            && let [first, rest @ ..] = records
            && let Some(agg) = first.aggregate()
            && rest.iter().all(|r| r.aggregate() == Some(agg))
        {
            let n = i64::try_from(records.len()).unwrap_or(i64::MAX);
            if known.count(&mut db, &agg, n).map_err(Retry::Later)? {
                return Ok(());
            }
        }
        db.c.batch_execute("BEGIN").pg().map_err(Retry::Begin)?;
        let written = audit::insert_routine_batch(&mut db, records, node, known)
            .and_then(|()| db.c.batch_execute("COMMIT").pg());
        if let Err(e) = written {
            let _ = db.c.batch_execute("ROLLBACK");
            return Err(Retry::Later(e));
        }
        Ok(())
    }

    fn connect(&self) -> Result<Conn> {
        let mut client = (self.connect)().map_err(|message| StoreError::Database {
            kind: DbErrorKind::Unavailable,
            message,
        })?;
        client.batch_execute("SET synchronous_commit = off").pg()?;
        Ok(Conn {
            client,
            stmts: Stmts::default(),
        })
    }
}

/// How a batch failed: at its first statement (nothing written; another
/// connection may be tried), or later.
enum Retry {
    Begin(StoreError),
    Later(StoreError),
}

impl Retry {
    fn error(self) -> StoreError {
        match self {
            Self::Begin(e) | Self::Later(e) => e,
        }
    }
}

/// A read-only snapshot: never waits behind a write, never holds one up.
fn read_only_tx(client: &mut postgres::Client) -> Result<postgres::Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .pg()
}
