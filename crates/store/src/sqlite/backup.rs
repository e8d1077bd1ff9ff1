//! A consistent copy of a live database (SQLite's online backup API) into
//! a new directory, for `twofactord backup`.
//!
//! The copy is taken in one step under one read transaction: in WAL mode
//! writers go on meanwhile, and the copy is the database as of one commit.
//! Secrets stay sealed under the key file, which is not copied: a backup
//! that holds both would hand out every secret to whoever reads it.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::files::{DIR_MODE, FILE_MODE, file_kind};
use super::{DbResult, SqliteStore, io_error};
use crate::{Result, StoreError};

/// What [`SqliteStore::backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The copy of the database (`DIR/twofactor.db`).
    pub database: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its schema version (`PRAGMA user_version`).
    pub schema_version: i64,
}

/// Makes `dir` the backup's directory: created 0700 when missing; an
/// existing one must be an empty directory (it is then set to 0700).
/// Anything else is refused by name and left as it is: a backup never
/// overwrites.
fn prepare_target(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if !meta.file_type().is_dir() => Err(StoreError::Unsafe {
            path: dir.display().to_string(),
            reason: format!(
                "a backup goes into a new or empty directory, this is {}",
                file_kind(meta.file_type())
            ),
        }),
        Ok(_) => {
            let mut entries = fs::read_dir(dir).map_err(io_error(dir))?;
            if entries.next().is_some() {
                return Err(StoreError::Unsafe {
                    path: dir.display().to_string(),
                    reason: "the directory is not empty; a backup never overwrites: \
                             name a new or empty directory"
                        .into(),
                });
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(io_error(dir))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .mode(DIR_MODE)
                .create(dir)
                .map_err(io_error(dir))?;
            // The umask may have narrowed the mode; make it exactly 0700.
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(io_error(dir))
        }
        Err(e) => Err(io_error(dir)(e)),
    }
}

impl SqliteStore {
    /// Copies the database of the state in `state_dir` into `to` (a new or
    /// empty directory, made 0700) as `twofactor.db` (0600), consistent
    /// while other processes write, checked with `PRAGMA integrity_check`.
    /// The key file is not copied. Nothing in `state_dir` is changed.
    pub fn backup(state_dir: &Path, to: &Path) -> Result<BackupReport> {
        let source_path = state_dir.join(Self::DB_FILE);
        match fs::symlink_metadata(&source_path) {
            Ok(meta) if meta.file_type().is_file() && meta.len() > 0 => {}
            Ok(meta) if meta.file_type().is_file() => {
                return Err(StoreError::database(format!(
                    "{} is empty: there is no state to back up",
                    source_path.display()
                )));
            }
            Ok(meta) => {
                return Err(StoreError::Unsafe {
                    path: source_path.display().to_string(),
                    reason: format!(
                        "the database must be a regular file, this is {}",
                        file_kind(meta.file_type())
                    ),
                });
            }
            Err(e) => return Err(io_error(&source_path)(e)),
        }
        prepare_target(to)?;
        let target_path = to.join(Self::DB_FILE);
        // Created 0600 before SQLite opens it (its journal files take the
        // database's mode); O_EXCL: nothing there is ever overwritten.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&target_path)
            .map_err(io_error(&target_path))?;
        fs::set_permissions(&target_path, fs::Permissions::from_mode(FILE_MODE))
            .map_err(io_error(&target_path))?;

        let source = Connection::open_with_flags(
            &source_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .db()?;
        source.busy_timeout(super::schema::BUSY_WAIT).db()?;
        let mut target = Connection::open(&target_path).db()?;
        {
            use rusqlite::backup::{Backup, StepResult};
            let backup = Backup::new(&source, &mut target).db()?;
            // All pages in one step (-1): one read transaction, one commit's
            // view, whatever is written meanwhile. A lock held for a moment
            // is waited for, at most BUSY_WAIT.
            let started = std::time::Instant::now();
            loop {
                match backup.step(-1).db()? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    StepResult::Busy | StepResult::Locked => {
                        if started.elapsed() > super::schema::BUSY_WAIT {
                            return Err(StoreError::Database {
                                kind: crate::DbErrorKind::Busy,
                                message: "the database stayed locked during the backup".into(),
                            });
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    _ => {}
                }
            }
        }
        drop(source);
        // The copy stands alone: no write-ahead log beside it.
        target
            .query_row("PRAGMA journal_mode = DELETE", [], |r| {
                r.get::<_, String>(0)
            })
            .db()?;
        let check: String = target
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .db()?;
        if check != "ok" {
            return Err(StoreError::Corrupt(format!(
                "the copy in {} fails its integrity check: {check}",
                target_path.display()
            )));
        }
        let schema_version: i64 = target
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .db()?;
        if schema_version < 1 {
            return Err(StoreError::database(format!(
                "{} holds no two-factor state (schema version {schema_version})",
                source_path.display()
            )));
        }
        target.close().map_err(|(_, e)| e).db()?;
        // On disk before we say it is done: the file, then its name.
        for path in [&target_path, &to.to_path_buf()] {
            fs::File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(io_error(path))?;
        }
        let bytes = fs::metadata(&target_path)
            .map_err(io_error(&target_path))?
            .len();
        Ok(BackupReport {
            database: target_path,
            bytes,
            schema_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    use otp::Secret;

    use super::*;
    use crate::{AuditQuery, AuditRecord, Store, transact};

    fn secret() -> Secret {
        Secret::from_bytes((0..20).map(|i| 7 + i).collect()).expect("20 bytes")
    }

    fn record(at_ms: i64) -> AuditRecord {
        AuditRecord {
            at_ms,
            event: "otp.check".into(),
            outcome: "wrong".into(),
            user: Some("root".into()),
            origin: "unix:uid=0".into(),
            service: None,
            detail: None,
        }
    }

    /// The backup, put back beside the original key file, opens; the
    /// secret is the same; the file holds no plaintext of it.
    #[test]
    fn a_backup_restores_with_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let store = SqliteStore::open(&state).expect("open");
        transact(&store, |tx| {
            tx.put_user_secret(&crate::NewUserSecret::root(&secret(), 1))
        })
        .expect("secret");
        let to = dir.path().join("backup");
        let report = SqliteStore::backup(&state, &to).expect("backup");
        assert_eq!(report.database, to.join(SqliteStore::DB_FILE));
        assert_eq!(report.schema_version, SqliteStore::SCHEMA_VERSION);
        assert_eq!(fs::metadata(&to).expect("dir").mode() & 0o777, 0o700);
        assert_eq!(
            fs::metadata(&report.database).expect("file").mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(&to)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [SqliteStore::DB_FILE], "the key file is not copied");
        let bytes = fs::read(&report.database).expect("read");
        let plain = secret();
        assert!(
            !bytes
                .windows(plain.expose().len())
                .any(|w| w == plain.expose()),
            "the secret is sealed in the backup"
        );

        let restored = dir.path().join("restored");
        fs::create_dir(&restored).expect("mkdir");
        fs::set_permissions(&restored, fs::Permissions::from_mode(0o700)).expect("chmod");
        fs::copy(&report.database, restored.join(SqliteStore::DB_FILE)).expect("copy db");
        fs::copy(
            state.join(SqliteStore::KEY_FILE),
            restored.join(SqliteStore::KEY_FILE),
        )
        .expect("copy key");
        let back = SqliteStore::open(&restored).expect("the restored state opens");
        let got = back.read().expect("read").root.expect("a secret");
        assert_eq!(got.record.secret.expose(), plain.expose());
    }

    /// A backup never overwrites: a non-empty directory or a file in the
    /// way is refused by name, and left as it was.
    #[test]
    fn a_backup_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        drop(SqliteStore::open(&state).expect("open"));
        let full = dir.path().join("full");
        fs::create_dir(&full).expect("mkdir");
        fs::write(full.join("twofactor.db"), b"older backup").expect("write");
        let e = SqliteStore::backup(&state, &full).expect_err("refused");
        assert!(e.to_string().contains(&full.display().to_string()), "{e}");
        assert!(e.to_string().contains("not empty"), "{e}");
        assert_eq!(
            fs::read(full.join("twofactor.db")).expect("kept"),
            b"older backup"
        );
        let file = dir.path().join("file");
        fs::write(&file, b"x").expect("write");
        let e = SqliteStore::backup(&state, &file).expect_err("refused");
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
        assert_eq!(fs::read(&file).expect("kept"), b"x");
        // An empty directory is fine.
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).expect("mkdir");
        SqliteStore::backup(&state, &empty).expect("an empty directory is fine");
        // No state: said so.
        let e = SqliteStore::backup(&dir.path().join("none"), &dir.path().join("b2"))
            .expect_err("no state");
        assert!(e.to_string().contains("twofactor.db"), "{e}");
    }

    /// Taken while another connection keeps committing: the copy is
    /// intact and holds a prefix of the commits.
    #[test]
    fn a_backup_of_a_state_being_written_is_consistent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let store = SqliteStore::open(&state).expect("open");
        transact(&store, |tx| tx.audit(&record(0))).expect("first write");
        let stop = AtomicBool::new(false);
        let copies = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let mut n = 1;
                while !stop.load(Ordering::Relaxed) {
                    transact(&store, |tx| tx.audit(&record(n))).expect("write");
                    n += 1;
                }
                n
            });
            let copies: Vec<_> = (0..5)
                .map(|i| {
                    SqliteStore::backup(&state, &dir.path().join(format!("b{i}"))).expect("backup")
                })
                .collect();
            stop.store(true, Ordering::Relaxed);
            let written = writer.join().expect("writer");
            assert!(written > 1, "the writer wrote during the backups");
            copies
        });
        let key = state.join(SqliteStore::KEY_FILE);
        for (i, c) in copies.iter().enumerate() {
            let restored = dir.path().join(format!("r{i}"));
            fs::create_dir(&restored).expect("mkdir");
            fs::set_permissions(&restored, fs::Permissions::from_mode(0o700)).expect("chmod");
            fs::copy(&c.database, restored.join(SqliteStore::DB_FILE)).expect("copy");
            fs::copy(&key, restored.join(SqliteStore::KEY_FILE)).expect("copy key");
            let back = SqliteStore::open(&restored).expect("opens");
            let rows = back
                .query_audit(&AuditQuery {
                    limit: usize::MAX,
                    ..AuditQuery::default()
                })
                .expect("query");
            // Commits 0..n, each whole, none missing in between.
            let mut ats: Vec<i64> = rows.iter().map(|r| r.record.at_ms).collect();
            ats.sort_unstable();
            let expected: Vec<i64> = (0..i64::try_from(ats.len()).expect("count")).collect();
            assert_eq!(ats, expected);
        }
    }
}
