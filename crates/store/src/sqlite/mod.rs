//! The SQLite backend.
//!
//! One state directory (0700) holds `twofactor.db` (0600, WAL, with its
//! `-wal`/`-shm` companions) and `secret.key` (0600). Secrets are stored
//! only sealed under the key file ([`KeyFile`]); the database alone reveals
//! none.
//!
//! Two connections per [`SqliteStore`], each behind a mutex. Every write is
//! one `BEGIN IMMEDIATE` transaction on the write connection, so writers in
//! this process and in other processes on the same directory serialise on
//! SQLite's write lock (waiting up to five seconds); on a state set up
//! before, that connection is only opened by the first write. `read` serves
//! a cached entry on the read connection, revalidated on every call against
//! `PRAGMA data_version` (which moves when another connection commits).
//!
//! By concern: `schema` (migrations, the connections), `files` (the state
//! directory), `key` (the key file against its check), `entry` (settings,
//! read with root's sealed secret row), `checks` (the wrong-code
//! counters), `audit`, `cache` (the unsealed entry between commits),
//! `users` (per-user secrets, pending enrolments, recovery-code hashes),
//! and `watch` (the change notices other processes' commits are heard by).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use otp::{Digits, Interval};
use rusqlite::{Connection, TransactionBehavior};

use crate::changes::{Change, ChangeListener, ChangeSet, Notifier};
use crate::rows::step_to_sql;
use crate::users::{NewUserSecret, PendingSecret, UserSecret, UserSecretInfo};
use crate::{
    Aggregate, AuditClass, AuditEntry, AuditQuery, AuditRecord, DbErrorKind, EntrySummary, KeyFile,
    LimiterState, OsRandom, Randomness, Result, SecretId, Settings, Snapshot, Store, StoreError,
    SystemEntry, Tx,
};

mod audit;
mod backup;
mod cache;
mod checks;
mod entry;
pub(crate) mod files;
pub(crate) mod key;
mod schema;
mod snapshot;
pub(crate) mod users;
mod watch;

use audit::audit_select;
pub use backup::BackupReport;
use cache::Reader;
use files::{check_not_lost, prepare_db_files, prepare_dir};
pub(crate) use files::{euid, file_kind};
use key::{open_key, reseal_root, setup_key};
use schema::{MIGRATIONS, migrate, open_reader, open_writer, ready_key_check};

/// Maps rusqlite errors. Their messages name SQL conditions and columns,
/// never bound values, and we never bind a secret in plaintext.
trait DbResult<T> {
    fn db(self) -> Result<T>;
}

impl<T> DbResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(db_error)
    }
}

/// Classifies a rusqlite error. The message is SQLite's description of the
/// condition; SQL text (which some variants carry) is left out.
fn db_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, message) => {
            let kind = match f.code {
                C::DatabaseBusy | C::DatabaseLocked => DbErrorKind::Busy,
                C::DiskFull => DbErrorKind::Full,
                C::DatabaseCorrupt | C::NotADatabase => DbErrorKind::Corrupt,
                C::ReadOnly => DbErrorKind::ReadOnly,
                C::SystemIoFailure | C::CannotOpen => DbErrorKind::Io,
                _ => DbErrorKind::Other,
            };
            StoreError::Database {
                kind,
                message: message.unwrap_or_else(|| f.to_string()),
            }
        }
        rusqlite::Error::SqlInputError { error, msg, .. } => StoreError::Database {
            kind: DbErrorKind::Other,
            message: format!("{msg} ({error})"),
        },
        other => StoreError::database(other.to_string()),
    }
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn u32_from_sql(name: &str, value: i64) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("stored {name} {value} is out of range")))
}

/// How to open a state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreOptions {
    /// Create a fresh state even though a key file exists without its
    /// database (`twofactord --init`, `tfa --init`). Never deletes anything:
    /// an existing database is opened as usual.
    pub init: bool,
}

/// The SQLite store on one state directory.
pub struct SqliteStore {
    /// The thread hearing other processes' commits, once someone listens
    /// ([`Store::on_change`]). First, so that it stops (closing its
    /// read-only connection) before the others close.
    watcher: Mutex<Option<watch::Watcher>>,
    /// The listeners of [`Store::on_change`].
    notifier: Arc<Notifier>,
    /// This handle's token in the change notices (`watch`).
    writer: i64,
    state_dir: PathBuf,
    key: KeyFile,
    /// A second, read-only connection for [`Store::read`], so that reads
    /// of the entry never wait behind a write's fsync (WAL readers do not
    /// block on the writer). Declared before the writer so that it closes
    /// first: the last connection to close checkpoints the WAL and removes
    /// it, which a read-only one cannot do.
    reader: Mutex<Reader>,
    /// The connection every transaction (and every write) goes through.
    inner: Mutex<Inner>,
}

/// The write connection, opened when first needed: a state that is
/// already set up is opened on the read connection alone, so a read-only
/// command never parses the schema twice nor takes the write lock.
struct Inner {
    db_path: PathBuf,
    conn: Option<Connection>,
}

impl Inner {
    /// The write connection, opening it on first use.
    fn conn(&mut self) -> Result<&mut Connection> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => open_writer(&self.db_path)?,
        };
        Ok(self.conn.insert(conn))
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The database file in the state directory.
    pub const DB_FILE: &'static str = "twofactor.db";
    /// The key file in the state directory.
    pub const KEY_FILE: &'static str = "secret.key";
    /// The schema version this build writes (`PRAGMA user_version`).
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
    /// How often a handle with listeners looks for commits of other
    /// processes (see [`Store::on_change`]).
    pub const WATCH_INTERVAL: std::time::Duration = watch::WATCH_INTERVAL;

    /// Opens (creating when missing) the state in `state_dir`: makes the
    /// directory 0700 and the database 0600, migrates the schema, and loads
    /// the key file — or creates it when no sealed data exists yet. A
    /// missing key with sealed data is [`StoreError::KeyMissing`], a key
    /// that does not open the data is [`StoreError::WrongKey`].
    pub fn open(state_dir: &Path) -> Result<Self> {
        Self::open_with(state_dir, StoreOptions::default())
    }

    /// [`SqliteStore::open`] with options. Besides what `open` does, it
    /// refuses (changing nothing) a state directory or file that is not
    /// ours to trust: a directory not owned by us or open to group or
    /// others, a key file likewise, symbolic links, FIFOs or devices in
    /// place of the key or the database. A key file without its database
    /// is [`StoreError::StateLost`] unless `options.init` asks for a fresh
    /// state.
    pub fn open_with(state_dir: &Path, options: StoreOptions) -> Result<Self> {
        Self::open_with_random(state_dir, options, Arc::new(OsRandom))
    }

    /// [`SqliteStore::open_with`], drawing a new key and every sealing
    /// nonce from `random` (the source the service makes secrets from).
    pub fn open_with_random(
        state_dir: &Path,
        options: StoreOptions,
        random: Arc<dyn Randomness>,
    ) -> Result<Self> {
        prepare_dir(state_dir)?;
        let db_path = state_dir.join(Self::DB_FILE);
        let key_path = state_dir.join(Self::KEY_FILE);
        check_not_lost(&key_path, &db_path, options.init)?;
        prepare_db_files(&db_path)?;

        // A state set up before (the schema current, the key check in
        // place) needs no write: it is opened on the read connection, and
        // the write connection waits for the first transaction.
        let probe = open_reader(&db_path)?;
        let (reader, writer, key) = match ready_key_check(&probe) {
            Some(check) => {
                let key = open_key(&key_path, &check, random)?;
                (probe, None, key)
            }
            None => {
                // The full way, as on a first start: the write lock, the
                // migrations, the key; then a fresh read connection.
                drop(probe);
                let mut conn = open_writer(&db_path)?;
                migrate(&mut conn)?;
                let key = setup_key(&mut conn, &key_path, random)?;
                reseal_root(&mut conn, &key)?;
                (open_reader(&db_path)?, Some(conn), key)
            }
        };

        Ok(Self {
            watcher: Mutex::new(None),
            notifier: Arc::new(Notifier::default()),
            writer: watch::writer_token(),
            state_dir: state_dir.to_owned(),
            key,
            reader: Mutex::new(Reader {
                conn: reader,
                cache: None,
            }),
            inner: Mutex::new(Inner {
                db_path,
                conn: writer,
            }),
        })
    }

    /// The state directory this store works in.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// `EXPLAIN QUERY PLAN` of the statement [`Store::query_audit`] runs for
    /// `q`, one line per step (for tests and diagnosis).
    pub fn audit_query_plan(&self, q: &AuditQuery) -> Result<String> {
        let mut guard = self.lock();
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let (sql, mut args) = audit_select(q);
        args.push(&limit);
        let mut stmt = guard
            .conn()?
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .db()?;
        let rows = stmt
            .query_map(args.as_slice(), |r| r.get::<_, String>(3))
            .db()?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.db()?);
        }
        Ok(out.join("\n"))
    }

    /// The read connection, recovering from a poisoned lock (the cache is
    /// dropped to be safe).
    fn lock_reader(&self) -> MutexGuard<'_, Reader> {
        match self.reader.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                guard.cache = None;
                if !guard.conn.is_autocommit() {
                    let _ = guard.conn.execute_batch("ROLLBACK");
                }
                self.reader.clear_poison();
                guard
            }
        }
    }

    /// The connection, recovering from a poisoned lock: a panic inside a
    /// transaction body has already rolled the transaction back (the
    /// transaction guard's drop), so the state is whole.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let guard = poisoned.into_inner();
                if let Some(conn) = &guard.conn
                    && !conn.is_autocommit()
                {
                    // Best effort; BEGIN reports the problem if this fails.
                    let _ = conn.execute_batch("ROLLBACK");
                }
                self.inner.clear_poison();
                guard
            }
        }
    }
}

/// A snapshot's view; `conn` is the read-only reader inside a read
/// transaction.
struct SqliteSnapshot<'a> {
    conn: &'a Connection,
    key: &'a KeyFile,
}

impl Snapshot for SqliteSnapshot<'_> {
    fn user_secret(&mut self, username: &str) -> Result<Option<UserSecret>> {
        users::user_secret(self.conn, self.key, username)
    }

    fn pending_secret(&mut self, username: &str) -> Result<Option<PendingSecret>> {
        users::pending(self.conn, self.key, username)
    }

    fn failures(&mut self, owner: &str, origin: &str) -> Result<LimiterState> {
        checks::failures(self.conn, owner, origin)
    }
}

/// A transaction's view; `conn` is inside `BEGIN IMMEDIATE`.
struct SqliteTx<'a> {
    conn: &'a Connection,
    key: &'a KeyFile,
    /// What listeners will hear of, once this commits.
    changes: ChangeSet,
}

impl Tx for SqliteTx<'_> {
    fn settings(&mut self) -> Result<Settings> {
        entry::load_settings(self.conn)
    }

    fn put_settings(&mut self, s: &Settings) -> Result<()> {
        self.changes.note(Change::Entry);
        entry::put_settings(self.conn, s)
    }

    fn advance_step(&mut self, id: SecretId, step: u64) -> Result<bool> {
        entry::advance_step(self.conn, id, step)
    }

    fn failures(&mut self, owner: &str, origin: &str) -> Result<LimiterState> {
        checks::failures(self.conn, owner, origin)
    }

    fn put_failures(
        &mut self,
        owner: &str,
        origin: &str,
        state: &LimiterState,
        expires_at_ms: i64,
    ) -> Result<()> {
        checks::put_failures(self.conn, owner, origin, state, expires_at_ms)
    }

    fn clear_failures(&mut self, owner: &str) -> Result<usize> {
        let cleared = checks::clear_failures(self.conn, owner)?;
        if cleared > 0
            && let Some(change) = Change::of_owner(owner)
        {
            self.changes.note(change);
        }
        Ok(cleared)
    }

    fn expire_failures(&mut self, now_ms: i64, batch: usize) -> Result<usize> {
        checks::expire_failures(self.conn, now_ms, batch)
    }

    fn prune_audit(
        &mut self,
        class: AuditClass,
        older_than_ms: i64,
        keep_rows: u64,
        batch: usize,
    ) -> Result<usize> {
        audit::prune_audit(self.conn, class, older_than_ms, keep_rows, batch)
    }

    fn user_secret(&mut self, username: &str) -> Result<Option<UserSecret>> {
        users::user_secret(self.conn, self.key, username)
    }

    fn put_user_secret(&mut self, new: &NewUserSecret<'_>) -> Result<SecretId> {
        self.changes.user_changed(new.username);
        users::put_user_secret(self.conn, self.key, new)
    }

    fn set_secret_params(
        &mut self,
        username: &str,
        digits: Digits,
        interval: Interval,
    ) -> Result<bool> {
        self.changes.user_changed(username);
        users::set_secret_params(self.conn, username, digits, interval)
    }

    fn delete_user_secret(&mut self, username: &str) -> Result<bool> {
        let had = users::delete_user_secret(self.conn, username)?;
        if had {
            self.changes.user_changed(username);
        }
        Ok(had)
    }

    fn pending_secret(&mut self, username: &str) -> Result<Option<PendingSecret>> {
        users::pending(self.conn, self.key, username)
    }

    fn put_pending_secret(&mut self, pending: &PendingSecret) -> Result<()> {
        users::put_pending(self.conn, self.key, pending)
    }

    fn delete_pending_secret(&mut self, username: &str) -> Result<()> {
        users::delete_pending(self.conn, username)
    }

    fn put_recovery_codes(&mut self, username: &str, uid: u32, codes: &[&str]) -> Result<()> {
        self.changes.note(Change::user(username));
        users::put_recovery_codes(self.conn, self.key, username, uid, codes)
    }

    fn use_recovery_code(&mut self, username: &str, uid: u32, code: &str) -> Result<Option<u32>> {
        users::use_recovery_code(self.conn, self.key, username, uid, code)
    }

    fn audit_as(
        &mut self,
        r: &AuditRecord,
        class: AuditClass,
        aggregate: Option<&Aggregate<'_>>,
    ) -> Result<()> {
        audit::insert(self.conn, r, class, aggregate)
    }
}

impl Store for SqliteStore {
    fn read(&self) -> Result<SystemEntry> {
        self.lock_reader().entry(&self.key)
    }

    fn read_summary(&self) -> Result<EntrySummary> {
        self.lock_reader().summary()
    }

    fn transact_dyn(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let changes = {
            let mut guard = self.lock();
            let tx = guard
                .conn()?
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .db()?;
            let mut view = SqliteTx {
                conn: &tx,
                key: &self.key,
                changes: ChangeSet::default(),
            };
            let outcome = f(&mut view);
            let changes = view.changes;
            match outcome {
                Ok(()) => {
                    // The notices commit with the change (other processes'
                    // watchers read them); dropping `tx` on an error rolls
                    // both back.
                    if !changes.is_empty() {
                        watch::record(&tx, &changes, self.writer)?;
                    }
                    tx.commit().db()?;
                }
                Err(e) => {
                    // A failed rollback is reported by the next BEGIN; the
                    // body's error is the one worth returning.
                    let _ = tx.rollback();
                    return Err(e);
                }
            }
            changes
        };
        // Told after the write lock is let go: a listener reads the state.
        self.notifier.notify(&changes.into_vec());
        Ok(())
    }

    fn on_change(&self, listener: ChangeListener) {
        {
            let mut watcher = self
                .watcher
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if watcher.is_none() {
                // Its starting point is taken before the listener is
                // added: nothing committed after this call is missed.
                let db_path = self.state_dir.join(Self::DB_FILE);
                match watch::spawn(&db_path, self.writer, self.notifier.clone()) {
                    Ok(w) => *watcher = Some(w),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "cannot watch for other processes' changes; only this process's are told"
                    ),
                }
            }
        }
        self.notifier.add(listener);
    }

    fn read_snapshot_dyn(&self, f: &mut dyn FnMut(&mut dyn Snapshot) -> Result<()>) -> Result<()> {
        // A deferred transaction on the read-only connection: in WAL mode
        // it reads one snapshot and never asks for the write lock.
        let guard = self.lock_reader();
        let tx = guard.conn.unchecked_transaction().db()?;
        f(&mut SqliteSnapshot {
            conn: &tx,
            key: &self.key,
        })?;
        tx.commit().db()
    }

    fn read_user(&self, username: &str, uid: u32) -> Result<crate::UserView> {
        let guard = self.lock_reader();
        let tx = guard.conn.unchecked_transaction().db()?;
        let view = crate::UserView {
            secret: users::user_secret(&tx, &self.key, username)?,
            recovery_codes_left: users::recovery_codes_left(&tx, username, uid)?,
            other_names_with_uid: users::other_names_with_uid(&tx, username, uid)?,
        };
        tx.commit().db()?;
        Ok(view)
    }

    fn read_user_secrets(&self) -> Result<Vec<UserSecretInfo>> {
        let guard = self.lock_reader();
        let tx = guard.conn.unchecked_transaction().db()?;
        let infos = users::user_secrets(&tx)?;
        tx.commit().db()?;
        Ok(infos)
    }

    fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut guard = self.lock();
        audit::query(guard.conn()?, q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewUserSecret, transact};
    use otp::Secret;

    fn root_owner() -> String {
        crate::user_owner("root", 0)
    }

    fn open_fresh() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state")).unwrap();
        (dir, store)
    }

    fn count(store: &SqliteStore, sql: &str) -> i64 {
        store
            .lock()
            .conn()
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    /// A state set up before opens on the read connection alone: no write
    /// lock taken (so a writer in another process does not hold it up),
    /// and the write connection comes, configured, with the first write.
    #[test]
    fn reopening_a_set_up_state_needs_no_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        drop(SqliteStore::open(&state).unwrap());
        let other = Connection::open(state.join(SqliteStore::DB_FILE)).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();

        let store = SqliteStore::open(&state).unwrap();
        assert!(store.lock().conn.is_none(), "no write connection yet");
        assert!(!store.read().unwrap().settings.enabled);
        other.execute_batch("ROLLBACK").unwrap();

        transact(&store, |tx| {
            let mut s = tx.settings()?;
            s.enabled = true;
            tx.put_settings(&s)
        })
        .unwrap();
        assert!(store.read().unwrap().settings.enabled);
        let mut guard = store.lock();
        let conn = guard.conn().unwrap();
        let foreign_keys: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(foreign_keys, 1);
    }

    /// The write connection closes last, so it checkpoints the WAL and
    /// removes it: the next start has no log to replay.
    #[test]
    fn closing_leaves_no_write_ahead_log() {
        let (dir, store) = open_fresh();
        transact(&store, |tx| {
            let mut s = tx.settings()?;
            s.enabled = true;
            tx.put_settings(&s)
        })
        .unwrap();
        assert!(store.read().unwrap().settings.enabled);
        let wal = dir.path().join("state").join("twofactor.db-wal");
        assert!(wal.exists(), "written through the WAL");
        drop(store);
        assert!(!wal.exists(), "the WAL was checkpointed and removed");
    }

    /// A handle with a change watcher closes it first (stopping its
    /// thread at once, not at its next poll), so the writer is still the
    /// last connection and removes the WAL.
    #[test]
    fn a_watching_handle_closes_its_watcher_first() {
        let (dir, store) = open_fresh();
        store.on_change(Box::new(|_| {}));
        assert!(store.watcher.lock().unwrap().is_some(), "watching");
        transact(&store, |tx| tx.put_settings(&Settings::default())).unwrap();
        let wal = dir.path().join("state").join("twofactor.db-wal");
        assert!(wal.exists(), "written through the WAL");
        drop(store);
        assert!(!wal.exists(), "the WAL was checkpointed and removed");
    }

    #[test]
    fn pragmas_are_in_force() {
        let (_dir, store) = open_fresh();
        let mut guard = store.lock();
        let g = guard.conn().unwrap();
        let q = |sql: &str| -> String {
            g.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0))
                .map(|v| format!("{v:?}"))
                .unwrap()
        };
        assert_eq!(q("PRAGMA journal_mode"), r#"Text("wal")"#);
        assert_eq!(q("PRAGMA synchronous"), "Integer(2)");
        assert_eq!(q("PRAGMA foreign_keys"), "Integer(1)");
        assert_eq!(q("PRAGMA busy_timeout"), "Integer(5000)");
        assert_eq!(
            q("PRAGMA user_version"),
            format!("Integer({})", MIGRATIONS.len())
        );
    }

    /// An opening that stopped after the migration moved root's secret
    /// and before it re-sealed it (the key is proved only after the
    /// migrations) leaves the secret under its former label; the next
    /// opening takes the full way and finishes the re-seal.
    #[test]
    fn an_interrupted_move_of_roots_secret_is_finished_by_the_next_opening() {
        use std::os::unix::fs::PermissionsExt;
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/main-v4");
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        for name in [SqliteStore::DB_FILE, SqliteStore::KEY_FILE] {
            std::fs::copy(fixture.join(name), state.join(name)).unwrap();
            std::fs::set_permissions(state.join(name), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        let owners = |conn: &Connection| -> String {
            conn.query_row("SELECT group_concat(owner) FROM otp_secrets", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        {
            // What the opening did before it stopped: the migrations.
            let mut conn = open_writer(&state.join(SqliteStore::DB_FILE)).unwrap();
            migrate(&mut conn).unwrap();
            assert_eq!(owners(&conn), "system");
            let reader = open_reader(&state.join(SqliteStore::DB_FILE)).unwrap();
            assert_eq!(
                ready_key_check(&reader),
                None,
                "not ready: a re-seal is due"
            );
        }
        let store = SqliteStore::open(&state).unwrap();
        let root = store.read().unwrap().root.unwrap();
        assert_eq!((root.uid, root.digits.get()), (0, 8));
        let conn = Connection::open(state.join(SqliteStore::DB_FILE)).unwrap();
        assert_eq!(owners(&conn), crate::user_owner("root", 0));
        assert!(ready_key_check(&conn).is_some(), "ready now");
    }

    #[test]
    fn reopening_does_not_rerun_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        drop(SqliteStore::open(&state).unwrap());
        let store = SqliteStore::open(&state).unwrap();
        assert_eq!(
            count(&store, "PRAGMA user_version"),
            SqliteStore::SCHEMA_VERSION
        );
        assert_eq!(count(&store, "SELECT count(*) FROM twofactor_config"), 1);
        assert_eq!(
            count(&store, "SELECT count(*) FROM meta WHERE key = 'key_check'"),
            1
        );
    }

    #[test]
    fn a_new_secret_deletes_the_old_row_and_its_counters() {
        let (_dir, store) = open_fresh();
        let s1 = Secret::from_bytes(vec![1; 20]).unwrap();
        let s2 = Secret::from_bytes(vec![2; 20]).unwrap();
        let busy = LimiterState {
            failures: 1,
            window_start_ms: 1,
            locked_until_ms: 0,
            lockouts: 0,
        };
        let id1 = transact(&store, |tx| {
            tx.put_user_secret(&NewUserSecret::root(&s1, 1))
        })
        .unwrap();
        transact(&store, |tx| {
            tx.put_failures(&root_owner(), "192.0.2.1", &busy, i64::MAX)?;
            tx.put_failures(&root_owner(), crate::ALL_ORIGINS, &busy, i64::MAX)?;
            tx.put_failures("user:1000", "192.0.2.1", &busy, i64::MAX)
        })
        .unwrap();
        let id2 = transact(&store, |tx| {
            tx.put_user_secret(&NewUserSecret::root(&s2, 2))
        })
        .unwrap();
        assert!(id2 > id1);
        assert_eq!(count(&store, "SELECT count(*) FROM otp_failures"), 1);
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM otp_failures WHERE owner = 'user:1000'"
            ),
            1,
            "another owner's counters stay"
        );
        assert_eq!(count(&store, "SELECT count(*) FROM otp_secrets"), 1);
        // A stale id never reaches the new secret.
        assert!(!transact(&store, |tx| tx.advance_step(id1, 5)).unwrap());
    }

    /// The query plan of `audit.query` for every combination of filters:
    /// each reads an index in order (no table scan, no sort).
    #[test]
    fn audit_query_runs_on_an_index() {
        let (_dir, store) = open_fresh();
        for i in 0..200 {
            transact(&store, |tx| {
                tx.audit(&AuditRecord {
                    at_ms: i,
                    event: format!("e{}", i % 5),
                    outcome: format!("o{}", i % 3),
                    user: Some(format!("u{}", i % 2)),
                    origin: "local".into(),
                    service: None,
                    detail: None,
                })
            })
            .unwrap();
        }
        store
            .lock()
            .conn()
            .unwrap()
            .execute_batch("ANALYZE")
            .unwrap();
        let combinations = [
            (None, None, None),
            (Some("e1"), None, None),
            (None, Some("o1"), None),
            (None, None, Some(150)),
            (Some("e1"), Some("o1"), None),
            (Some("e1"), None, Some(150)),
            (None, Some("o1"), Some(150)),
            (Some("e1"), Some("o1"), Some(150)),
        ];
        for ((event, outcome, since), user) in combinations
            .into_iter()
            .flat_map(|c| [(c, None), (c, Some("u1"))])
        {
            let q = AuditQuery {
                event: event.map(str::to_owned),
                outcome: outcome.map(str::to_owned),
                since_ms: since,
                limit: 10,
                user: user.map(str::to_owned),
            };
            let plan = store.audit_query_plan(&q).unwrap();
            assert!(
                !plan.contains("TEMP B-TREE"),
                "{q:?} sorts instead of reading an index in order: {plan}"
            );
            assert!(plan.contains("USING INDEX"), "{q:?} scans: {plan}");
            // The filters still hold.
            let rows = store.query_audit(&q).unwrap();
            assert!(!rows.is_empty());
            for r in &rows {
                assert!(event.is_none_or(|e| r.record.event == e));
                assert!(outcome.is_none_or(|o| r.record.outcome == o));
                assert!(since.is_none_or(|s| r.record.at_ms >= s));
                assert!(user.is_none_or(|u| r.record.user.as_deref() == Some(u)));
            }
            assert!(
                rows.windows(2)
                    .all(|w| w[0].record.at_ms >= w[1].record.at_ms)
            );
        }
    }

    #[test]
    fn a_sealed_secret_moved_to_another_owner_does_not_open() {
        let (_dir, store) = open_fresh();
        transact(&store, |tx| {
            tx.put_user_secret(&NewUserSecret::root(
                &Secret::from_bytes(vec![3; 20]).unwrap(),
                1,
            ))
        })
        .unwrap();
        store
            .lock()
            .conn()
            .unwrap()
            .execute("UPDATE otp_secrets SET owner = 'user:0'", [])
            .unwrap();
        assert!(matches!(store.read(), Err(StoreError::Corrupt(_))));
    }

    /// Damages the stored sealed secret (one bit of its ciphertext).
    fn flip_a_sealed_bit(store: &SqliteStore) {
        let mut guard = store.lock();
        let g = guard.conn().unwrap();
        let mut sealed: Vec<u8> = g
            .query_row("SELECT sealed FROM otp_secrets", [], |r| r.get(0))
            .unwrap();
        sealed[30] ^= 0x01;
        g.execute("UPDATE otp_secrets SET sealed = ?1", [sealed])
            .unwrap();
    }

    #[test]
    fn a_tampered_sealed_secret_is_corrupt_and_says_nothing_secret() {
        let (_dir, store) = open_fresh();
        let secret = Secret::from_bytes(vec![0x5A; 20]).unwrap();
        transact(&store, |tx| {
            tx.put_user_secret(&NewUserSecret::root(&secret, 1))
        })
        .unwrap();
        flip_a_sealed_bit(&store);
        let err = store.read().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(!err.to_string().contains(secret.to_base32().as_str()));
    }

    #[test]
    fn out_of_range_step_is_an_error_not_a_wrap() {
        let (_dir, store) = open_fresh();
        let id = transact(&store, |tx| {
            tx.put_user_secret(&NewUserSecret::root(
                &Secret::from_bytes(vec![4; 20]).unwrap(),
                1,
            ))
        })
        .unwrap();
        assert!(matches!(
            transact(&store, |tx| tx.advance_step(id, u64::MAX)),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(store.read().unwrap().root.unwrap().record.last_step, None);
    }

    #[test]
    fn read_is_served_from_the_cache_until_data_version_moves() {
        let (dir, store) = open_fresh();
        assert!(!store.read_summary().unwrap().settings.enabled);
        // Plant a marker in the cache under the current version: summaries
        // are served from it while nobody commits.
        store.read_summary().unwrap();
        if let Some(c) = store.lock_reader().cache.as_mut() {
            c.settings.ssh = true;
        }
        assert!(
            store.read_summary().unwrap().settings.ssh,
            "served from the cache"
        );
        assert!(store.read().unwrap().settings.ssh, "read too");
        // A commit on the store's own write connection moves the reader's
        // data_version: read-your-writes holds.
        store
            .lock()
            .conn()
            .unwrap()
            .execute("UPDATE twofactor_config SET enabled = 1", [])
            .unwrap();
        let summary = store.read_summary().unwrap();
        assert!(
            summary.settings.enabled && !summary.settings.ssh,
            "reloaded"
        );
        // So does a commit by another connection.
        let other = Connection::open(dir.path().join("state").join(SqliteStore::DB_FILE)).unwrap();
        other
            .execute("UPDATE twofactor_config SET services_ssh = 1", [])
            .unwrap();
        let summary = store.read_summary().unwrap();
        assert!(summary.settings.enabled && summary.settings.ssh);
    }

    #[test]
    fn the_cache_holds_nothing_unsealed_and_read_unseals_each_time() {
        let (_dir, store) = open_fresh();
        let secret = Secret::from_bytes(vec![0x44; 20]).unwrap();
        let id = transact(&store, |tx| {
            tx.put_user_secret(&NewUserSecret::root(&secret, 1))
        })
        .unwrap();
        let entry = store.read().unwrap();
        assert_eq!(entry.root.as_ref().unwrap().record.secret, secret);
        let summary = store.read_summary().unwrap();
        assert_eq!(summary, EntrySummary::from(&entry));
        assert_eq!(summary.secret_id, Some(id));
        // The cache keeps the settings and the secret's row still sealed:
        // the secret's bytes appear nowhere in it, nor in its Debug.
        let cached = store.lock_reader().cache.clone().unwrap();
        assert_eq!(cached.settings, summary.settings);
        let sealed = cached.secret.as_ref().unwrap().sealed().to_vec();
        assert!(!sealed.windows(20).any(|w| w == [0x44; 20]));
        let shown = format!("{:?}", *store.lock_reader());
        assert!(!shown.contains(secret.to_base32().as_str()), "{shown}");
        assert!(!shown.contains("68") && !shown.contains("44"), "{shown}");
        // `read` unseals the cached ciphertext each time: damaged in the
        // cache (under the current version), it no longer opens; put back,
        // it does.
        {
            let mut r = store.lock_reader();
            let c = r.cache.as_mut().unwrap();
            c.secret.as_mut().unwrap().flip_a_bit();
        }
        assert!(matches!(store.read(), Err(StoreError::Corrupt(_))));
        assert_eq!(store.read_summary().unwrap(), summary);
        store.lock_reader().cache = Some(cached);
        assert_eq!(store.read().unwrap(), entry);
        // Damaged on disk: the version moves, the rows are read again, and
        // `read` says so, while the summary (which never needs the key)
        // is still answered.
        flip_a_sealed_bit(&store);
        assert!(matches!(store.read(), Err(StoreError::Corrupt(_))));
        assert_eq!(store.read_summary().unwrap(), summary);
    }

    #[test]
    fn reads_do_not_wait_for_a_write_in_progress() {
        let (_dir, store) = open_fresh();
        let store = std::sync::Arc::new(store);
        let before = store.read().unwrap();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || {
                transact(&*store, |tx| {
                    tx.put_settings(&Settings {
                        enabled: true,
                        ..Settings::default()
                    })?;
                    started_tx.send(()).unwrap();
                    // Hold the write transaction open until the reader is done.
                    release_rx.recv().unwrap();
                    Ok(())
                })
                .unwrap();
            })
        };
        started_rx.recv().unwrap();
        // The writer holds its lock and an open transaction: a read still
        // answers, with the last committed state.
        assert_eq!(store.read().unwrap(), before);
        release_tx.send(()).unwrap();
        writer.join().unwrap();
        assert!(store.read().unwrap().settings.enabled);
    }

    #[test]
    fn a_full_database_says_so_and_keeps_its_state() {
        let (_dir, store) = open_fresh();
        transact(&store, |tx| {
            tx.put_settings(&Settings {
                ssh: true,
                ..Settings::default()
            })
        })
        .unwrap();
        // No more pages than it has now: as a full disk looks to SQLite.
        {
            let mut guard = store.lock();
            let g = guard.conn().unwrap();
            let pages: i64 = g.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
            g.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .unwrap();
        }
        let big = serde_json::Value::String("x".repeat(64 * 1024));
        let err = transact(&store, |tx| {
            tx.put_settings(&Settings::default())?;
            tx.audit(&AuditRecord {
                at_ms: 1,
                event: "e".into(),
                outcome: "o".into(),
                user: None,
                origin: "local".into(),
                service: None,
                detail: Some(big.clone()),
            })
        })
        .unwrap_err();
        assert_eq!(err.db_kind(), Some(DbErrorKind::Full), "{err:?}");
        assert!(err.to_string().starts_with("database is full"), "{err}");
        // Rolled back whole.
        assert!(store.read().unwrap().settings.ssh);
    }

    #[test]
    fn database_errors_are_classified_without_sql() {
        use rusqlite::ffi;
        let classify = |code: i32| {
            db_error(rusqlite::Error::SqliteFailure(
                ffi::Error::new(code),
                Some("what SQLite said".into()),
            ))
        };
        for (code, kind) in [
            (ffi::SQLITE_BUSY, DbErrorKind::Busy),
            (ffi::SQLITE_LOCKED, DbErrorKind::Busy),
            (ffi::SQLITE_FULL, DbErrorKind::Full),
            (ffi::SQLITE_CORRUPT, DbErrorKind::Corrupt),
            (ffi::SQLITE_NOTADB, DbErrorKind::Corrupt),
            (ffi::SQLITE_READONLY, DbErrorKind::ReadOnly),
            (ffi::SQLITE_IOERR, DbErrorKind::Io),
            (ffi::SQLITE_CANTOPEN, DbErrorKind::Io),
            (ffi::SQLITE_MISMATCH, DbErrorKind::Other),
        ] {
            let err = classify(code);
            assert_eq!(err.db_kind(), Some(kind), "{code}");
            assert!(err.to_string().contains("what SQLite said"), "{err}");
        }
        let err = db_error(rusqlite::Error::SqlInputError {
            error: ffi::Error::new(ffi::SQLITE_ERROR),
            msg: "near \"x\": syntax error".into(),
            sql: "SELECT secret FROM x".into(),
            offset: 1,
        });
        assert!(!err.to_string().contains("SELECT"), "{err}");
    }

    #[test]
    fn poisoned_lock_recovers() {
        let (_dir, store) = open_fresh();
        let store = std::sync::Arc::new(store);
        let s = store.clone();
        let _ = std::thread::spawn(move || {
            let _ = transact(&*s, |tx| -> Result<()> {
                tx.put_settings(&Settings {
                    enabled: true,
                    ..Settings::default()
                })?;
                panic!("body panics mid-transaction");
            });
        })
        .join();
        assert!(store.inner.is_poisoned());
        assert_eq!(store.read().unwrap(), SystemEntry::default());
        transact(&*store, |tx| {
            tx.put_settings(&Settings {
                ssh: true,
                ..Settings::default()
            })
        })
        .unwrap();
        assert!(store.read().unwrap().settings.ssh);
    }
}
