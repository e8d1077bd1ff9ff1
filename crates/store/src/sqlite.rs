//! The SQLite backend.
//!
//! One state directory (0700) holds `twofactor.db` (0600, WAL, with its
//! `-wal`/`-shm` companions) and `secret.key` (0600). Secrets are stored
//! only sealed under the key file ([`KeyFile`]); the database alone reveals
//! none.
//!
//! One connection per [`SqliteStore`], behind a mutex; every write is one
//! `BEGIN IMMEDIATE` transaction, so writers in this process and in other
//! processes on the same directory serialise on SQLite's write lock (waiting
//! up to five seconds). `read` serves a cached entry, revalidated on every
//! call against `PRAGMA data_version` (which moves when another connection
//! commits) and dropped on every own transaction.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use otp::{Digits, Interval, Secret, Window};
use rusqlite::{Connection, OpenFlags, OptionalExtension, ToSql, TransactionBehavior, params};

use crate::{
    AuditEntry, AuditQuery, AuditRecord, DbErrorKind, KeyFile, LimiterState, OsRandom, Randomness,
    Result, SYSTEM_OWNER, SecretId, SecretRecord, Settings, Store, StoreError, SystemEntry, Tx,
};

/// Schema migrations, applied in order; `PRAGMA user_version` counts how
/// many have run. Only ever append: a shipped script is never edited, since
/// databases in the field have already run it.
///
/// Room to grow: `otp_secrets.owner` is `'system'` today and will be
/// `'user:<uid>'` for per-user secrets (a later table maps users to their
/// secret id); the SQL keeps to what PostgreSQL also reads (no reserved
/// words as column names, upserts with `ON CONFLICT`).
const MIGRATIONS: &[&str] = &[
    // 1: the system entry, sealed secrets with replay state, failure
    //    counters, audit records, and the key check.
    "
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value BLOB NOT NULL
    ) STRICT;

    CREATE TABLE otp_secrets (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        owner         TEXT NOT NULL,
        sealed        BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL,
        last_step     INTEGER NULL CHECK (last_step IS NULL OR last_step >= 0)
    ) STRICT;
    CREATE INDEX otp_secrets_owner ON otp_secrets (owner);

    CREATE TABLE twofactor_config (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        otp_digits   INTEGER NOT NULL,
        otp_window   INTEGER NOT NULL,
        otp_interval INTEGER NOT NULL,
        services_ssh INTEGER NOT NULL CHECK (services_ssh IN (0, 1)),
        enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
        secret_id    INTEGER NULL REFERENCES otp_secrets (id)
    ) STRICT;
    INSERT INTO twofactor_config
        (id, otp_digits, otp_window, otp_interval, services_ssh, enabled, secret_id)
        VALUES (1, 6, 0, 30, 0, 0, NULL);

    CREATE TABLE rate_limits (
        scope           TEXT PRIMARY KEY NOT NULL,
        failures        INTEGER NOT NULL,
        window_start_ms INTEGER NOT NULL,
        locked_until_ms INTEGER NOT NULL,
        lockouts        INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE audit_log (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms     INTEGER NOT NULL,
        event     TEXT NOT NULL,
        outcome   TEXT NOT NULL,
        user_name TEXT NULL,
        origin    TEXT NOT NULL,
        service   TEXT NULL,
        detail    TEXT NULL
    ) STRICT;
    CREATE INDEX audit_log_at_ms ON audit_log (at_ms);
    CREATE INDEX audit_log_event ON audit_log (event);
    ",
    // 2: wrong-code counters keyed by (secret owner, origin) for the
    //    two-tier lock-out (SPEC 6.3), with an expiry so rows of origins
    //    that went quiet are deleted; audit indexes for every filter of
    //    `audit.query`, newest first. The per-secret rows of the old scheme
    //    are dropped (their secret ids mean nothing to the new table).
    "
    CREATE TABLE otp_failures (
        owner           TEXT NOT NULL,
        origin          TEXT NOT NULL,
        failures        INTEGER NOT NULL,
        window_start_ms INTEGER NOT NULL,
        locked_until_ms INTEGER NOT NULL,
        lockouts        INTEGER NOT NULL,
        expires_at_ms   INTEGER NOT NULL,
        PRIMARY KEY (owner, origin)
    ) STRICT;
    CREATE INDEX otp_failures_expiry ON otp_failures (expires_at_ms);

    DELETE FROM rate_limits WHERE scope LIKE 'secret:%';

    DROP INDEX audit_log_event;
    CREATE INDEX audit_log_event_at ON audit_log (event, at_ms);
    CREATE INDEX audit_log_outcome_at ON audit_log (outcome, at_ms);
    ",
];

/// Mode of the state directory.
const DIR_MODE: u32 = 0o700;
/// Mode of the database and its companions.
const FILE_MODE: u32 = 0o600;

/// `meta` key of the key check.
const KEY_CHECK: &str = "key_check";
/// Known plaintext sealed under the key, to tell a wrong key file at start.
const KEY_CHECK_PLAINTEXT: &[u8] = b"twofactor key check v1";
/// Associated data of the key check.
const KEY_CHECK_AAD: &[u8] = b"twofactor/v1/key_check";

/// Associated data of a sealed OTP secret: purpose and owner.
fn secret_aad(owner: &str) -> Vec<u8> {
    let mut aad = b"twofactor/v1/otp_secret/".to_vec();
    aad.extend_from_slice(owner.as_bytes());
    aad
}

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

fn step_to_sql(step: u64) -> Result<i64> {
    i64::try_from(step)
        .map_err(|_| StoreError::Corrupt(format!("time step {step} is out of range")))
}

fn step_from_sql(step: i64) -> Result<u64> {
    u64::try_from(step)
        .map_err(|_| StoreError::Corrupt(format!("stored time step {step} is negative")))
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

struct Reader {
    conn: Connection,
    /// The entry as of `PRAGMA data_version` = `.0` on this connection,
    /// which moves whenever any other connection (the writer included)
    /// commits.
    cache: Option<(i64, SystemEntry)>,
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
                (open_reader(&db_path)?, Some(conn), key)
            }
        };

        Ok(Self {
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

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn unsafe_path(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Unsafe {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// What a non-regular file is, for messages.
pub(crate) fn file_kind(ft: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Creates the state directory 0700 when missing. An existing one must be a
/// directory owned by us with no group or other permissions (as sshd's
/// StrictModes); anything else is refused by name and left as it is — the
/// directory may be `/tmp`.
fn prepare_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let err = io_error(dir);
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ))),
        Ok(meta) => {
            let mode = meta.mode() & 0o7777;
            if meta.uid() != euid() {
                return Err(unsafe_path(
                    dir,
                    format!(
                        "the state directory is owned by uid {}, not by this user (uid {}); \
                         use a directory of your own",
                        meta.uid(),
                        euid()
                    ),
                ));
            }
            if mode & 0o077 != 0 {
                return Err(unsafe_path(
                    dir,
                    format!(
                        "the state directory has mode {mode:04o}, open to group or others; \
                         it must be 0700 (chmod 700 it, or use a directory of its own)"
                    ),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(&err)?;
            // The umask may have narrowed the mode; make it exactly 0700.
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(err)
        }
        Err(e) => Err(err(e)),
    }
}

/// A key file whose database is missing or empty is a lost state, not a
/// first start (SPEC 6.1): refused unless `init`. The key is looked at
/// first: it is only ever created after the database was initialised, so a
/// process starting next to one that is creating the state cannot see a
/// key with a database that is still empty.
fn check_not_lost(key_path: &Path, db_path: &Path, init: bool) -> Result<()> {
    if init {
        return Ok(());
    }
    match fs::symlink_metadata(key_path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(key_path)(e)),
    }
    let lost = match fs::symlink_metadata(db_path) {
        Ok(meta) => meta.file_type().is_file() && meta.len() == 0,
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(io_error(db_path)(e)),
    };
    if lost {
        return Err(StoreError::StateLost {
            key: key_path.display().to_string(),
            db: db_path.display().to_string(),
        });
    }
    Ok(())
}

/// Creates the database file 0600 before SQLite does (SQLite gives the
/// `-wal` and `-shm` files the database's mode), and tightens existing files.
/// Anything but a regular file (a symbolic link, a FIFO, a device) in place
/// of the database or its companions is refused by name.
fn prepare_db_files(db_path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db_path.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(unsafe_path(
                    &path,
                    format!(
                        "the database must be a regular file, this is {}",
                        file_kind(meta.file_type())
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path)(e)),
        }
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(FILE_MODE)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(db_path)
        .map_err(io_error(db_path))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db_path.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.permissions().mode() & 0o777 != FILE_MODE => {
                fs::set_permissions(&path, fs::Permissions::from_mode(FILE_MODE))
                    .map_err(io_error(&path))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path)(e)),
        }
    }
    Ok(())
}

/// Removes what a crash during [`KeyFile::create`] left behind:
/// `.secret.key.tmp-<pid>-<hex>` files, only regular files owned by us.
/// Run under the database's write lock, so no live creator is racing.
fn remove_key_leftovers(dir: &Path, key_name: &std::ffi::OsStr) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(key_name);
    prefix.push(".tmp-");
    let Some(prefix) = prefix.to_str().map(str::to_owned) else {
        return Ok(());
    };
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((pid, tag)) = rest.split_once('-') else {
            continue;
        };
        let ours = !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && tag.len() == 16
            && tag.bytes().all(|b| b.is_ascii_hexdigit());
        if !ours {
            continue;
        }
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(io_error(&path))?;
        if meta.file_type().is_file() && meta.uid() == euid() {
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    Ok(())
}

/// The read connection (read-only; it still maps the WAL index).
fn open_reader(db_path: &Path) -> Result<Connection> {
    let reader = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()?;
    reader.busy_timeout(Duration::from_secs(5)).db()?;
    Ok(reader)
}

/// The write connection, configured.
fn open_writer(db_path: &Path) -> Result<Connection> {
    let conn = Connection::open(db_path).db()?;
    configure(&conn)?;
    Ok(conn)
}

/// On a state that needs nothing written to open (the schema this build
/// writes, and the key check stored), the sealed key check; `None` when
/// anything is missing or different, or reading fails: then the full way
/// decides, and reports what is wrong. One read transaction, no lock taken.
fn ready_key_check(conn: &Connection) -> Option<Vec<u8>> {
    let tx = conn.unchecked_transaction().ok()?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .ok()?;
    if version != SqliteStore::SCHEMA_VERSION {
        return None;
    }
    tx.query_row("SELECT value FROM meta WHERE key = ?1", [KEY_CHECK], |r| {
        r.get(0)
    })
    .ok()
}

/// Loads the key and proves it against the stored key check.
fn open_key(path: &Path, check: &[u8], random: Arc<dyn Randomness>) -> Result<KeyFile> {
    let shown = || path.display().to_string();
    let key = match KeyFile::load_with(path, random) {
        Ok(key) => key,
        Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::KeyMissing { path: shown() });
        }
        Err(e) => return Err(e),
    };
    verify_key_check(&key, check, path)?;
    Ok(key)
}

fn verify_key_check(key: &KeyFile, check: &[u8], path: &Path) -> Result<()> {
    let wrong = || StoreError::WrongKey {
        path: path.display().to_string(),
    };
    let plain = key.open(check, KEY_CHECK_AAD).map_err(|_| wrong())?;
    if plain.as_slice() != KEY_CHECK_PLAINTEXT {
        return Err(wrong());
    }
    Ok(())
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(5)).db()?;
    // Returns the mode now in force; a file system without shared memory
    // keeps the rollback journal, which is just as transactional.
    let _mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .db()?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA trusted_schema = OFF;",
    )
    .db()
}

/// Applies the missing migrations, each in its own transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
    let known = SqliteStore::SCHEMA_VERSION;
    loop {
        // IMMEDIATE, so two processes opening a new directory do not both
        // run the same migration.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        let found: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .db()?;
        if found > known {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        let Some(script) = usize::try_from(found).ok().and_then(|v| MIGRATIONS.get(v)) else {
            if found == known {
                return tx.commit().db();
            }
            return Err(StoreError::Corrupt(format!(
                "schema version {found} is invalid"
            )));
        };
        tx.execute_batch(script).db()?;
        tx.pragma_update(None, "user_version", found + 1).db()?;
        tx.commit().db()?;
    }
}

/// Loads or creates the key, under the database's write lock so two
/// processes starting at once cannot both create one (SPEC §6.1).
fn setup_key(conn: &mut Connection, path: &Path, random: Arc<dyn Randomness>) -> Result<KeyFile> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let check: Option<Vec<u8>> = tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [KEY_CHECK], |r| {
            r.get(0)
        })
        .optional()
        .db()?;
    let sealed: Vec<(String, Vec<u8>)> = {
        let mut stmt = tx
            .prepare("SELECT owner, sealed FROM otp_secrets ORDER BY id")
            .db()?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).db()?;
        rows.collect::<rusqlite::Result<_>>().db()?
    };
    let shown = || path.display().to_string();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        remove_key_leftovers(dir, name)?;
    }

    let key = match KeyFile::load_with(path, random.clone()) {
        Ok(key) => key,
        Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            if check.is_some() || !sealed.is_empty() {
                return Err(StoreError::KeyMissing { path: shown() });
            }
            KeyFile::create_with(path, random)?
        }
        Err(e) => return Err(e),
    };

    match check {
        Some(blob) => verify_key_check(&key, &blob, path)?,
        None => {
            // A new key, or one created just before a crash: whatever is
            // sealed must open under it before it is vouched for.
            for (owner, blob) in &sealed {
                key.open(blob, &secret_aad(owner))
                    .map_err(|_| StoreError::WrongKey { path: shown() })?;
            }
            let blob = key.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![KEY_CHECK, blob],
            )
            .db()?;
        }
    }
    tx.commit().db()?;
    Ok(key)
}

/// The `audit.query` statement for `q` and its arguments, but for the
/// final `LIMIT ?`.
fn audit_select(q: &AuditQuery) -> (String, Vec<&dyn ToSql>) {
    let mut sql = String::from(
        "SELECT id, at_ms, event, outcome, user_name, origin, service, detail FROM audit_log",
    );
    let mut args: Vec<&dyn ToSql> = Vec::new();
    let mut conditions = Vec::new();
    if let Some(event) = &q.event {
        conditions.push("event = ?");
        args.push(event);
    }
    if let Some(outcome) = &q.outcome {
        conditions.push("outcome = ?");
        args.push(outcome);
    }
    if let Some(since) = &q.since_ms {
        conditions.push("at_ms >= ?");
        args.push(since);
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    // Newest first on the time index (or the event/outcome index, whose
    // entries are ordered by time within each value): no sort, no scan.
    sql.push_str(" ORDER BY at_ms DESC, id DESC LIMIT ?");
    (sql, args)
}

/// Reads the system entry and unseals its secret.
fn load_entry(conn: &Connection, key: &KeyFile) -> Result<SystemEntry> {
    struct Row {
        digits: i64,
        window: i64,
        interval: i64,
        ssh: bool,
        enabled: bool,
        secret_id: Option<i64>,
        secret: Option<SecretRow>,
    }
    struct SecretRow {
        id: i64,
        owner: String,
        sealed: Vec<u8>,
        created_at_ms: i64,
        last_step: Option<i64>,
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT c.otp_digits, c.otp_window, c.otp_interval, c.services_ssh, c.enabled,
                    c.secret_id, s.id, s.owner, s.sealed, s.created_at_ms, s.last_step
             FROM twofactor_config AS c
             LEFT JOIN otp_secrets AS s ON s.id = c.secret_id
             WHERE c.id = 1",
        )
        .db()?;
    let row = stmt
        .query_row([], |r| {
            let secret = match r.get::<_, Option<i64>>(6)? {
                Some(id) => Some(SecretRow {
                    id,
                    owner: r.get(7)?,
                    sealed: r.get(8)?,
                    created_at_ms: r.get(9)?,
                    last_step: r.get(10)?,
                }),
                None => None,
            };
            Ok(Row {
                digits: r.get(0)?,
                window: r.get(1)?,
                interval: r.get(2)?,
                ssh: r.get(3)?,
                enabled: r.get(4)?,
                secret_id: r.get(5)?,
                secret,
            })
        })
        .optional()
        .db()?
        .ok_or_else(|| StoreError::Corrupt("the configuration entry is missing".into()))?;

    let param = |e: otp::ParamError| StoreError::Corrupt(format!("stored {e}"));
    let settings = Settings {
        otp_digits: Digits::new(row.digits).map_err(param)?,
        window: Window::new(row.window).map_err(param)?,
        interval: Interval::new(row.interval).map_err(param)?,
        ssh: row.ssh,
        enabled: row.enabled,
    };
    let secret = match (row.secret_id, row.secret) {
        (None, _) => None,
        (Some(id), None) => {
            return Err(StoreError::Corrupt(format!(
                "the entry's secret {id} is missing"
            )));
        }
        (
            Some(_),
            Some(SecretRow {
                id,
                owner,
                sealed,
                created_at_ms,
                last_step,
            }),
        ) => {
            if owner != SYSTEM_OWNER {
                return Err(StoreError::Corrupt(format!(
                    "secret {id} does not belong to the system"
                )));
            }
            let mut plain = key.open(&sealed, &secret_aad(&owner)).map_err(|_| {
                StoreError::Corrupt(format!(
                    "sealed secret {id} does not open under the key file"
                ))
            })?;
            // Moves the bytes out of the wiping buffer into the secret's own.
            let secret = Secret::from_bytes(std::mem::take(&mut *plain))
                .map_err(|e| StoreError::Corrupt(format!("secret {id}: {e}")))?;
            Some(SecretRecord {
                id: SecretId(id),
                secret,
                last_step: last_step.map(step_from_sql).transpose()?,
                created_at_ms,
            })
        }
    };
    Ok(SystemEntry { settings, secret })
}

/// A transaction's view; `conn` is inside `BEGIN IMMEDIATE`.
struct SqliteTx<'a> {
    conn: &'a Connection,
    key: &'a KeyFile,
}

impl Tx for SqliteTx<'_> {
    fn entry(&mut self) -> Result<SystemEntry> {
        load_entry(self.conn, self.key)
    }

    fn put_settings(&mut self, s: &Settings) -> Result<()> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE twofactor_config
                 SET otp_digits = ?1, otp_window = ?2, otp_interval = ?3,
                     services_ssh = ?4, enabled = ?5
                 WHERE id = 1",
            )
            .db()?
            .execute(params![
                s.otp_digits.get(),
                s.window.get(),
                s.interval.get(),
                s.ssh,
                s.enabled
            ])
            .db()?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::Corrupt(
                "the configuration entry is missing".into(),
            ))
        }
    }

    fn replace_secret(&mut self, secret: &Secret, created_at_ms: i64) -> Result<SecretId> {
        let old: Option<i64> = self
            .conn
            .query_row(
                "SELECT secret_id FROM twofactor_config WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .db()?
            .ok_or_else(|| StoreError::Corrupt("the configuration entry is missing".into()))?;
        let sealed = self.key.seal(secret.expose(), &secret_aad(SYSTEM_OWNER))?;
        self.conn
            .execute(
                "INSERT INTO otp_secrets (owner, sealed, created_at_ms, last_step)
                 VALUES (?1, ?2, ?3, NULL)",
                params![SYSTEM_OWNER, sealed, created_at_ms],
            )
            .db()?;
        let id = self.conn.last_insert_rowid();
        self.conn
            .execute(
                "UPDATE twofactor_config SET secret_id = ?1 WHERE id = 1",
                [id],
            )
            .db()?;
        if let Some(old) = old {
            // The old secret's replay state and failure counter go with it.
            self.conn
                .execute("DELETE FROM otp_secrets WHERE id = ?1", [old])
                .db()?;
            self.conn
                .execute("DELETE FROM otp_failures WHERE owner = ?1", [SYSTEM_OWNER])
                .db()?;
        }
        Ok(SecretId(id))
    }

    fn advance_step(&mut self, id: SecretId, step: u64) -> Result<bool> {
        let step = step_to_sql(step)?;
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE otp_secrets SET last_step = ?2
                 WHERE id = ?1 AND (last_step IS NULL OR last_step < ?2)",
            )
            .db()?
            .execute(params![id.0, step])
            .db()?;
        Ok(changed == 1)
    }

    fn limiter(&mut self, scope: &str) -> Result<LimiterState> {
        let row: Option<(i64, i64, i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT failures, window_start_ms, locked_until_ms, lockouts
                 FROM rate_limits WHERE scope = ?1",
            )
            .db()?
            .query_row([scope], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .db()?;
        let Some((failures, window_start_ms, locked_until_ms, lockouts)) = row else {
            return Ok(LimiterState::default());
        };
        Ok(LimiterState {
            failures: u32_from_sql("failure count", failures)?,
            window_start_ms,
            locked_until_ms,
            lockouts: u32_from_sql("lock-out count", lockouts)?,
        })
    }

    fn put_limiter(&mut self, scope: &str, state: &LimiterState) -> Result<()> {
        if *state == LimiterState::default() {
            self.conn
                .prepare_cached("DELETE FROM rate_limits WHERE scope = ?1")
                .db()?
                .execute([scope])
                .db()?;
            return Ok(());
        }
        self.conn
            .prepare_cached(
                "INSERT INTO rate_limits
                     (scope, failures, window_start_ms, locked_until_ms, lockouts)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (scope) DO UPDATE SET
                     failures = excluded.failures,
                     window_start_ms = excluded.window_start_ms,
                     locked_until_ms = excluded.locked_until_ms,
                     lockouts = excluded.lockouts",
            )
            .db()?
            .execute(params![
                scope,
                state.failures,
                state.window_start_ms,
                state.locked_until_ms,
                state.lockouts
            ])
            .db()?;
        Ok(())
    }

    fn failures(&mut self, owner: &str, origin: &str) -> Result<LimiterState> {
        let row: Option<(i64, i64, i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT failures, window_start_ms, locked_until_ms, lockouts
                 FROM otp_failures WHERE owner = ?1 AND origin = ?2",
            )
            .db()?
            .query_row([owner, origin], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .db()?;
        let Some((failures, window_start_ms, locked_until_ms, lockouts)) = row else {
            return Ok(LimiterState::default());
        };
        Ok(LimiterState {
            failures: u32_from_sql("failure count", failures)?,
            window_start_ms,
            locked_until_ms,
            lockouts: u32_from_sql("lock-out count", lockouts)?,
        })
    }

    fn put_failures(
        &mut self,
        owner: &str,
        origin: &str,
        state: &LimiterState,
        expires_at_ms: i64,
    ) -> Result<()> {
        if *state == LimiterState::default() {
            self.conn
                .prepare_cached("DELETE FROM otp_failures WHERE owner = ?1 AND origin = ?2")
                .db()?
                .execute([owner, origin])
                .db()?;
            return Ok(());
        }
        self.conn
            .prepare_cached(
                "INSERT INTO otp_failures
                     (owner, origin, failures, window_start_ms, locked_until_ms, lockouts,
                      expires_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (owner, origin) DO UPDATE SET
                     failures = excluded.failures,
                     window_start_ms = excluded.window_start_ms,
                     locked_until_ms = excluded.locked_until_ms,
                     lockouts = excluded.lockouts,
                     expires_at_ms = excluded.expires_at_ms",
            )
            .db()?
            .execute(params![
                owner,
                origin,
                state.failures,
                state.window_start_ms,
                state.locked_until_ms,
                state.lockouts,
                expires_at_ms
            ])
            .db()?;
        Ok(())
    }

    fn expire_failures(&mut self, now_ms: i64, batch: usize) -> Result<usize> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(
                "DELETE FROM otp_failures WHERE rowid IN (
                     SELECT rowid FROM otp_failures WHERE expires_at_ms <= ?1
                     ORDER BY expires_at_ms LIMIT ?2)",
            )
            .db()?
            .execute(params![now_ms, batch])
            .db()
    }

    fn prune_audit(&mut self, older_than_ms: i64, keep_rows: u64, batch: usize) -> Result<usize> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        // By age: the oldest first, on the time index.
        let mut deleted = self
            .conn
            .prepare_cached(
                "DELETE FROM audit_log WHERE id IN (
                     SELECT id FROM audit_log WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
            )
            .db()?
            .execute(params![older_than_ms, batch])
            .db()?;
        // By count: ids only grow (AUTOINCREMENT), so everything at or below
        // max(id) - keep_rows is beyond the newest `keep_rows` records. Two
        // index look-ups, never a count over the table.
        let keep = i64::try_from(keep_rows).unwrap_or(i64::MAX);
        let left = batch.saturating_sub(i64::try_from(deleted).unwrap_or(i64::MAX));
        if left > 0 {
            deleted += self
                .conn
                .prepare_cached(
                    "DELETE FROM audit_log WHERE id IN (
                         SELECT id FROM audit_log
                         WHERE id <= (SELECT max(id) FROM audit_log) - ?1
                         ORDER BY id LIMIT ?2)",
                )
                .db()?
                .execute(params![keep, left])
                .db()?;
        }
        Ok(deleted)
    }

    fn audit(&mut self, r: &AuditRecord) -> Result<()> {
        let detail = r
            .detail
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::database(format!("cannot encode audit detail: {e}")))?;
        self.conn
            .prepare_cached(
                "INSERT INTO audit_log
                     (at_ms, event, outcome, user_name, origin, service, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .db()?
            .execute(params![
                r.at_ms, r.event, r.outcome, r.user, r.origin, r.service, detail
            ])
            .db()?;
        Ok(())
    }
}

impl Store for SqliteStore {
    fn read(&self) -> Result<SystemEntry> {
        let mut guard = self.lock_reader();
        let reader = &mut *guard;
        let version: i64 = reader
            .conn
            .prepare_cached("PRAGMA data_version")
            .db()?
            .query_row([], |r| r.get(0))
            .db()?;
        if let Some((seen, entry)) = &reader.cache
            && *seen == version
        {
            return Ok(entry.clone());
        }
        // One read transaction, so the settings and the secret they point at
        // come from one snapshot. Read after the version: a commit in
        // between makes the cache newer than its label, which only costs
        // one more reload.
        let tx = reader.conn.unchecked_transaction().db()?;
        let entry = load_entry(&tx, &self.key)?;
        tx.commit().db()?;
        reader.cache = Some((version, entry.clone()));
        Ok(entry)
    }

    fn transact_dyn(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut guard = self.lock();
        let tx = guard
            .conn()?
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        let outcome = f(&mut SqliteTx {
            conn: &tx,
            key: &self.key,
        });
        match outcome {
            Ok(()) => tx.commit().db(),
            Err(e) => {
                // A failed rollback is reported by the next BEGIN; the
                // body's error is the one worth returning.
                let _ = tx.rollback();
                Err(e)
            }
        }
    }

    fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut guard = self.lock();
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let (sql, mut args) = audit_select(q);
        args.push(&limit);

        let mut stmt = guard.conn()?.prepare_cached(&sql).db()?;
        let rows = stmt
            .query_map(args.as_slice(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })
            .db()?;
        let mut out = Vec::new();
        for row in rows {
            let (id, at_ms, event, outcome, user, origin, service, detail) = row.db()?;
            let detail = detail
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("audit record {id} detail: {e}")))?;
            out.push(AuditEntry {
                id,
                record: AuditRecord {
                    at_ms,
                    event,
                    outcome,
                    user,
                    origin,
                    service,
                    detail,
                },
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transact;

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
            let mut s = tx.entry()?.settings;
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
            let mut s = tx.entry()?.settings;
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
    fn default_limiter_deletes_the_row() {
        let (_dir, store) = open_fresh();
        let busy = LimiterState {
            failures: 2,
            window_start_ms: 1,
            locked_until_ms: 0,
            lockouts: 0,
        };
        transact(&store, |tx| tx.put_limiter("addr:10.0.0.1", &busy)).unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM rate_limits"), 1);
        transact(&store, |tx| {
            tx.put_limiter("addr:10.0.0.1", &LimiterState::default())
        })
        .unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM rate_limits"), 0);
    }

    #[test]
    fn replace_secret_deletes_the_old_row_and_its_counters() {
        let (_dir, store) = open_fresh();
        let s1 = Secret::from_bytes(vec![1; 20]).unwrap();
        let s2 = Secret::from_bytes(vec![2; 20]).unwrap();
        let busy = LimiterState {
            failures: 1,
            window_start_ms: 1,
            locked_until_ms: 0,
            lockouts: 0,
        };
        let id1 = transact(&store, |tx| tx.replace_secret(&s1, 1)).unwrap();
        transact(&store, |tx| {
            tx.put_failures(SYSTEM_OWNER, "192.0.2.1", &busy, i64::MAX)?;
            tx.put_failures(SYSTEM_OWNER, crate::ALL_ORIGINS, &busy, i64::MAX)?;
            tx.put_failures("user:1000", "192.0.2.1", &busy, i64::MAX)
        })
        .unwrap();
        transact(&store, |tx| tx.put_limiter("addr:10.0.0.1", &busy)).unwrap();
        let id2 = transact(&store, |tx| tx.replace_secret(&s2, 2)).unwrap();
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
        assert_eq!(count(&store, "SELECT count(*) FROM rate_limits"), 1);
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
                    user: None,
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
        for (event, outcome, since) in [
            (None, None, None),
            (Some("e1"), None, None),
            (None, Some("o1"), None),
            (None, None, Some(150)),
            (Some("e1"), Some("o1"), None),
            (Some("e1"), None, Some(150)),
            (None, Some("o1"), Some(150)),
            (Some("e1"), Some("o1"), Some(150)),
        ] {
            let q = AuditQuery {
                event: event.map(str::to_owned),
                outcome: outcome.map(str::to_owned),
                since_ms: since,
                limit: 10,
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
            tx.replace_secret(&Secret::from_bytes(vec![3; 20]).unwrap(), 1)
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

    #[test]
    fn a_tampered_sealed_secret_is_corrupt_and_says_nothing_secret() {
        let (_dir, store) = open_fresh();
        let secret = Secret::from_bytes(vec![0x5A; 20]).unwrap();
        transact(&store, |tx| tx.replace_secret(&secret, 1)).unwrap();
        {
            let mut guard = store.lock();
            let g = guard.conn().unwrap();
            let mut sealed: Vec<u8> = g
                .query_row("SELECT sealed FROM otp_secrets", [], |r| r.get(0))
                .unwrap();
            sealed[30] ^= 0x01;
            g.execute("UPDATE otp_secrets SET sealed = ?1", [sealed])
                .unwrap();
        }
        let err = store.read().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(!err.to_string().contains(secret.to_base32().as_str()));
    }

    #[test]
    fn out_of_range_step_is_an_error_not_a_wrap() {
        let (_dir, store) = open_fresh();
        let id = transact(&store, |tx| {
            tx.replace_secret(&Secret::from_bytes(vec![4; 20]).unwrap(), 1)
        })
        .unwrap();
        assert!(matches!(
            transact(&store, |tx| tx.advance_step(id, u64::MAX)),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(store.read().unwrap().secret.unwrap().last_step, None);
    }

    #[test]
    fn read_is_served_from_the_cache_until_data_version_moves() {
        let (dir, store) = open_fresh();
        assert!(!store.read().unwrap().settings.enabled);
        // Plant a marker in the cache under the current version: reads are
        // served from it while nobody commits.
        let mut marked = store.read().unwrap();
        marked.settings.ssh = true;
        {
            let mut r = store.lock_reader();
            let version = r.cache.as_ref().map(|(v, _)| *v).unwrap();
            r.cache = Some((version, marked));
        }
        assert!(store.read().unwrap().settings.ssh, "served from the cache");
        // A commit on the store's own write connection moves the reader's
        // data_version: read-your-writes holds.
        store
            .lock()
            .conn()
            .unwrap()
            .execute("UPDATE twofactor_config SET enabled = 1", [])
            .unwrap();
        let entry = store.read().unwrap();
        assert!(entry.settings.enabled && !entry.settings.ssh, "reloaded");
        // So does a commit by another connection.
        let other = Connection::open(dir.path().join("state").join(SqliteStore::DB_FILE)).unwrap();
        other
            .execute("UPDATE twofactor_config SET services_ssh = 1", [])
            .unwrap();
        let entry = store.read().unwrap();
        assert!(entry.settings.enabled && entry.settings.ssh);
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
