//! Moving a whole state between engines (`twofactord migrate`): every row
//! is copied as stored, secrets still sealed (both engines seal alike), so
//! nothing is unsealed on the way. The key file is proved against the
//! source first; a target that already holds a state is refused before
//! anything is written to it.

use std::path::{Path, PathBuf};

use crate::snapshot::Snapshot;
use crate::{Result, SqliteStore, StoreError};

impl Snapshot {
    fn report(&self) -> MigrateReport {
        MigrateReport {
            secrets: self.secrets.len(),
            user_secrets: self.users.len(),
            pending: self.pending.len(),
            recovery_codes: self.recovery.len(),
            counters: self.failures.len(),
            audit_rows: self.audit.len(),
        }
    }
}

/// Where a state is: a SQLite state directory or a PostgreSQL database.
#[derive(Debug, Clone)]
pub enum StateLocation {
    Dir(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(crate::PgOptions),
}

impl std::fmt::Display for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(d) => write!(f, "{}", d.display()),
            #[cfg(feature = "postgres")]
            Self::Postgres(o) => f.write_str(&crate::redact_url(&o.url)),
        }
    }
}

/// What [`migrate`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateReport {
    pub secrets: usize,
    pub user_secrets: usize,
    pub pending: usize,
    pub recovery_codes: usize,
    pub counters: usize,
    pub audit_rows: usize,
}

enum Opened {
    Sqlite(Box<SqliteStore>),
    #[cfg(feature = "postgres")]
    Pg(Box<crate::PgStore>),
}

impl Opened {
    fn export(&self) -> Result<Snapshot> {
        match self {
            Self::Sqlite(s) => s.export(),
            #[cfg(feature = "postgres")]
            Self::Pg(s) => crate::postgres::snapshot::export(s),
        }
    }

    fn import(&self, snap: &Snapshot) -> Result<()> {
        match self {
            Self::Sqlite(s) => s.import(snap),
            #[cfg(feature = "postgres")]
            Self::Pg(s) => crate::postgres::snapshot::import(s, snap),
        }
    }
}

/// Copies the state at `from` into the empty `to`, both opened with
/// `key_file` (a SQLite directory's own `secret.key` must be that file's
/// copy).
pub fn migrate(from: &StateLocation, to: &StateLocation, key_file: &Path) -> Result<MigrateReport> {
    let source = open_source(from, key_file)?;
    let snap = source.export()?;
    let target = open_target(to, key_file)?;
    if !target.export()?.is_empty() {
        return Err(StoreError::Config(format!(
            "the target {to} already holds a two-factor state; migrate only into an empty one"
        )));
    }
    target.import(&snap)?;
    Ok(snap.report())
}

fn open_source(from: &StateLocation, key_file: &Path) -> Result<Opened> {
    match from {
        StateLocation::Dir(dir) => {
            let db = dir.join(SqliteStore::DB_FILE);
            if !db.is_file() {
                return Err(StoreError::Config(format!(
                    "the source {} holds no state ({} is missing)",
                    dir.display(),
                    db.display()
                )));
            }
            same_key(&dir.join(SqliteStore::KEY_FILE), key_file)?;
            Ok(Opened::Sqlite(Box::new(SqliteStore::open(dir)?)))
        }
        #[cfg(feature = "postgres")]
        StateLocation::Postgres(o) => {
            let mut o = o.clone();
            o.key_file = key_file.to_owned();
            if !key_file.is_file() {
                return Err(StoreError::KeyMissing {
                    path: key_file.display().to_string(),
                });
            }
            Ok(Opened::Pg(Box::new(crate::PgStore::open(&o)?)))
        }
    }
}

fn open_target(to: &StateLocation, key_file: &Path) -> Result<Opened> {
    match to {
        StateLocation::Dir(dir) => {
            let db = dir.join(SqliteStore::DB_FILE);
            if std::fs::metadata(&db).is_ok_and(|m| m.len() > 0) {
                return Err(StoreError::Config(format!(
                    "the target {} already holds a database ({}); migrate only into an empty one",
                    dir.display(),
                    db.display()
                )));
            }
            crate::sqlite::files::prepare_dir(dir)?;
            let target_key = dir.join(SqliteStore::KEY_FILE);
            if target_key.exists() {
                same_key(&target_key, key_file)?;
            } else {
                let bytes = std::fs::read(key_file).map_err(|source| StoreError::Io {
                    path: key_file.display().to_string(),
                    source,
                })?;
                write_private(&target_key, &bytes)?;
            }
            // A key without its database is a new state here, on purpose.
            let store = SqliteStore::open_with(dir, crate::StoreOptions { init: true })?;
            Ok(Opened::Sqlite(Box::new(store)))
        }
        #[cfg(feature = "postgres")]
        StateLocation::Postgres(o) => {
            let mut o = o.clone();
            o.key_file = key_file.to_owned();
            if !key_file.is_file() {
                return Err(StoreError::KeyMissing {
                    path: key_file.display().to_string(),
                });
            }
            Ok(Opened::Pg(Box::new(crate::PgStore::open(&o)?)))
        }
    }
}

/// `a` and `b` hold the same key (or are the same file).
fn same_key(a: &Path, b: &Path) -> Result<()> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| StoreError::Io {
            path: p.display().to_string(),
            source,
        })
    };
    if read(a)? != read(b)? {
        return Err(StoreError::KeyCheckFailed {
            path: b.display().to_string(),
        });
    }
    Ok(())
}

/// Writes a new 0600 file and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}
