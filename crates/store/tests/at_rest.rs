//! What the SQLite backend leaves on disk: no secret in
//! any file, strict modes, and a clear error for a missing or wrong key.

// A test crate: `allow-unwrap-in-tests` covers `#[test]` functions, not
// the helpers and suite cases around them.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use otp::Secret;
use store::{AuditRecord, KeyFile, NewUserSecret, SqliteStore, Store, StoreError, transact};

fn state(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn random_secret() -> Secret {
    let mut bytes = vec![0u8; 20];
    getrandom::fill(&mut bytes).unwrap();
    Secret::from_bytes(bytes).unwrap()
}

/// Every file under `dir`, read whole.
fn every_file(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else {
            let bytes = fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_secret_absent(dir: &Path, secret: &Secret, when: &str) {
    let b32 = secret.to_base32();
    let needles: [(&str, Vec<u8>); 3] = [
        ("raw bytes", secret.expose().to_vec()),
        ("base32", b32.as_bytes().to_vec()),
        ("lower-case base32", b32.to_lowercase().into_bytes()),
    ];
    let files = every_file(dir);
    assert!(
        files.iter().any(|(p, _)| p.ends_with("twofactor.db")),
        "{files:?}"
    );
    for (path, bytes) in &files {
        for (what, needle) in &needles {
            assert!(
                !contains(bytes, needle),
                "{what} of the secret in {} ({when})",
                path.display()
            );
        }
    }
}

#[test]
fn no_secret_in_any_file_while_open_and_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let secrets: Vec<Secret> = (0..3).map(|_| random_secret()).collect();
    {
        let store = SqliteStore::open(&state(&dir)).unwrap();
        for (i, s) in secrets.iter().enumerate() {
            transact(&store, |tx| {
                let id = tx.put_user_secret(&NewUserSecret::root(s, i as i64))?;
                tx.advance_step(id, 100 + i as u64)?;
                tx.audit(&AuditRecord {
                    at_ms: i as i64,
                    event: "twofactor.renew_secret".into(),
                    outcome: "success".into(),
                    user: Some("root".into()),
                    origin: "embedded".into(),
                    service: None,
                    detail: None,
                })
            })
            .unwrap();
            // While open the WAL holds the latest pages.
            assert!(state(&dir).join("twofactor.db-wal").exists());
            assert_secret_absent(&state(&dir), s, "while open");
        }
        assert!(
            store
                .read()
                .unwrap()
                .root
                .unwrap()
                .record
                .secret
                .ct_eq(&secrets[2])
        );
    }
    for s in &secrets {
        assert_secret_absent(&state(&dir), s, "after close");
    }
    // Still readable after all that.
    let store = SqliteStore::open(&state(&dir)).unwrap();
    assert!(
        store
            .read()
            .unwrap()
            .root
            .unwrap()
            .record
            .secret
            .ct_eq(&secrets[2])
    );
}

#[test]
fn file_modes_are_strict() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    let store = SqliteStore::open(&state).unwrap();
    transact(&store, |tx| {
        tx.put_user_secret(&NewUserSecret::root(&random_secret(), 0))
            .map(|_| ())
    })
    .unwrap();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("twofactor.db")), 0o600);
    assert_eq!(mode(&state.join("secret.key")), 0o600);
    for companion in ["twofactor.db-wal", "twofactor.db-shm"] {
        let path = state.join(companion);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{companion}");
        }
    }
    assert_eq!(fs::metadata(state.join("secret.key")).unwrap().len(), 32);
}

#[test]
fn a_database_with_a_loose_mode_is_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    // An empty file is an empty SQLite database (and without a key file,
    // a first start).
    fs::write(state.join("twofactor.db"), b"").unwrap();
    fs::set_permissions(
        state.join("twofactor.db"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    drop(SqliteStore::open(&state).unwrap());
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("twofactor.db")), 0o600);
    assert_eq!(mode(&state.join("secret.key")), 0o600);
}

/// The state directory's error, with the directory's mode afterwards.
fn refused_dir(state: &Path) -> (StoreError, u32) {
    let err = SqliteStore::open(state).unwrap_err();
    (err, mode(state))
}

#[test]
fn an_existing_directory_open_to_others_is_refused_and_left_unchanged() {
    // 0755 and 0750 (an ordinary directory), 1777 (/tmp as `--state-dir /tmp`).
    for loose in [0o755, 0o750, 0o710, 0o701, 0o1777] {
        let dir = tempfile::tempdir().unwrap();
        let state = state(&dir);
        fs::create_dir(&state).unwrap();
        fs::write(state.join("unrelated"), b"x").unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(loose)).unwrap();
        let (err, after) = refused_dir(&state);
        assert!(matches!(err, StoreError::Unsafe { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&state.display().to_string()), "{text}");
        assert!(text.contains(&format!("{loose:04o}")), "{text}");
        assert_eq!(after, loose, "mode {loose:o} changed");
        // Nothing was created in it.
        let names: Vec<_> = fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("unrelated")]);
    }
}

#[test]
fn an_existing_directory_of_another_owner_is_refused() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    let me = fs::metadata(&state).unwrap().uid();
    let (other, path) = if me == 0 {
        // Root can give the directory away.
        std::os::unix::fs::chown(&state, Some(4242), None).unwrap();
        (4242, state.clone())
    } else {
        // Anyone else: a directory of root's, 0700 or not, is not ours.
        (0, PathBuf::from("/root"))
    };
    let err = SqliteStore::open(&path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("owned by uid {other}")), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    if me == 0 {
        assert_eq!(fs::metadata(&state).unwrap().uid(), 4242, "left unchanged");
    }
}

#[test]
fn a_new_directory_is_created_0700() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("new/state");
    drop(SqliteStore::open(&state).unwrap());
    assert_eq!(mode(&state), 0o700);
}

#[test]
fn a_symlinked_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    drop(SqliteStore::open(&state).unwrap());
    let elsewhere = dir.path().join("elsewhere.key");
    fs::rename(state.join("secret.key"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, state.join("secret.key")).unwrap();
    let err = SqliteStore::open(&state).unwrap_err();
    assert!(matches!(err, StoreError::Unsafe { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("secret.key") && text.contains("a symbolic link"),
        "{text}"
    );
}

#[test]
fn a_key_file_open_to_others_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    drop(SqliteStore::open(&state).unwrap());
    let key = state.join("secret.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let err = SqliteStore::open(&state).unwrap_err();
    assert!(err.to_string().contains("0640"), "{err}");
    assert_eq!(mode(&key), 0o640);
}

#[test]
fn a_fifo_symlink_or_device_in_place_of_the_database_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    let db = state.join("twofactor.db");
    nix::unistd::mkfifo(&db, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = SqliteStore::open(&state).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("twofactor.db") && text.contains("a FIFO"),
        "{text}"
    );
    assert!(!state.join("secret.key").exists(), "nothing created");
    fs::remove_file(&db).unwrap();

    std::os::unix::fs::symlink("/dev/null", &db).unwrap();
    let text = SqliteStore::open(&state).unwrap_err().to_string();
    assert!(
        text.contains("twofactor.db") && text.contains("a symbolic link"),
        "{text}"
    );
    fs::remove_file(&db).unwrap();

    // A companion file too.
    drop(SqliteStore::open(&state).unwrap());
    let wal = state.join("twofactor.db-wal");
    let _ = fs::remove_file(&wal);
    nix::unistd::mkfifo(&wal, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let text = SqliteStore::open(&state).unwrap_err().to_string();
    assert!(
        text.contains("twofactor.db-wal") && text.contains("a FIFO"),
        "{text}"
    );
}

#[test]
fn a_key_without_its_database_is_a_lost_state_unless_init() {
    for how in ["deleted", "truncated"] {
        let dir = tempfile::tempdir().unwrap();
        let state = state(&dir);
        {
            let store = SqliteStore::open(&state).unwrap();
            transact(&store, |tx| {
                tx.put_settings(&store::Settings {
                    enabled: true,
                    ..Default::default()
                })?;
                tx.put_user_secret(&NewUserSecret::root(&random_secret(), 0))
            })
            .unwrap();
        }
        let db = state.join("twofactor.db");
        for suffix in ["-wal", "-shm"] {
            let _ = fs::remove_file(state.join(format!("twofactor.db{suffix}")));
        }
        if how == "deleted" {
            fs::remove_file(&db).unwrap();
        } else {
            fs::write(&db, b"").unwrap();
        }
        let err = SqliteStore::open(&state).unwrap_err();
        assert!(
            matches!(err, StoreError::StateLost { .. }),
            "{how}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("secret.key") && text.contains("twofactor.db") && text.contains("--init"),
            "{text}"
        );
        // Nothing was created or changed.
        assert_eq!(db.exists(), how == "truncated");
        // An explicit init starts afresh, with the key that is there.
        let store = SqliteStore::open_with(&state, store::StoreOptions { init: true }).unwrap();
        let entry = store.read().unwrap();
        assert!(!entry.settings.enabled && entry.root.is_none());
        drop(store);
        // And from then on it is a normal state.
        drop(SqliteStore::open(&state).unwrap());
    }
}

#[test]
fn init_never_discards_an_existing_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    let s = random_secret();
    {
        let store = SqliteStore::open(&state).unwrap();
        transact(&store, |tx| tx.put_user_secret(&NewUserSecret::root(&s, 0))).unwrap();
    }
    let store = SqliteStore::open_with(&state, store::StoreOptions { init: true }).unwrap();
    assert!(store.read().unwrap().root.unwrap().record.secret.ct_eq(&s));
}

#[test]
fn leftover_temporary_key_files_are_removed_at_start() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    // What a crash inside KeyFile::create leaves: ours, to go.
    let ours = [
        ".secret.key.tmp-123-0123456789abcdef",
        ".secret.key.tmp-9-fedcba9876543210",
    ];
    for name in ours {
        fs::write(state.join(name), [7u8; 32]).unwrap();
    }
    // Not ours by name or type: they stay.
    let keep = [
        ".secret.key.tmp-123-short",
        ".secret.key.tmp-x-0123456789abcdef",
        "secret.key.tmp-1-0123456789abcdef",
        ".other.tmp-1-0123456789abcdef",
    ];
    for name in keep {
        fs::write(state.join(name), b"x").unwrap();
    }
    let dir_named = state.join(".secret.key.tmp-5-0123456789abcdef");
    fs::create_dir(&dir_named).unwrap();
    let link_named = state.join(".secret.key.tmp-6-0123456789abcdef");
    std::os::unix::fs::symlink(dir.path().join("target"), &link_named).unwrap();
    let foreign = state.join(".secret.key.tmp-7-0123456789abcdef");
    fs::write(&foreign, b"x").unwrap();
    let me = fs::metadata(&foreign).unwrap().uid();
    if me == 0 {
        std::os::unix::fs::chown(&foreign, Some(4242), None).unwrap();
    }

    drop(SqliteStore::open(&state).unwrap());
    for name in ours {
        assert!(!state.join(name).exists(), "{name} left behind");
    }
    for name in keep {
        assert!(state.join(name).exists(), "{name} removed");
    }
    assert!(dir_named.is_dir());
    assert!(fs::symlink_metadata(&link_named).is_ok());
    // As root it belongs to another owner and stays; as anyone else it
    // was ours and went.
    assert_eq!(foreign.exists(), me == 0);
}

#[test]
fn fresh_directory_without_key_works_and_creates_one() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/state");
    let store = SqliteStore::open(&nested).unwrap();
    assert_eq!(store.state_dir(), nested);
    assert_eq!(fs::metadata(nested.join("secret.key")).unwrap().len(), 32);
    let s = random_secret();
    transact(&store, |tx| tx.put_user_secret(&NewUserSecret::root(&s, 0))).unwrap();
    drop(store);
    let store = SqliteStore::open(&nested).unwrap();
    assert!(store.read().unwrap().root.unwrap().record.secret.ct_eq(&s));
    // The key that was created is the one that opens the data.
    KeyFile::load(&nested.join("secret.key")).unwrap();
}

#[test]
fn removed_key_with_a_stored_secret_is_key_missing() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    {
        let store = SqliteStore::open(&state).unwrap();
        transact(&store, |tx| {
            tx.put_user_secret(&NewUserSecret::root(&random_secret(), 0))
        })
        .unwrap();
    }
    let key = fs::read(state.join("secret.key")).unwrap();
    fs::remove_file(state.join("secret.key")).unwrap();
    let err = SqliteStore::open(&state).unwrap_err();
    assert!(matches!(err, StoreError::KeyMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("secret.key"), "{err}");
    assert!(!state.join("secret.key").exists(), "no silent new key");
    // Restoring the key file restores access.
    fs::write(state.join("secret.key"), &key).unwrap();
    fs::set_permissions(state.join("secret.key"), fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        SqliteStore::open(&state)
            .unwrap()
            .read()
            .unwrap()
            .root
            .is_some()
    );
}

#[test]
fn removed_key_without_secrets_is_still_key_missing() {
    // The key check alone is sealed data: whoever opened the directory made
    // a key, and a new one would not be it.
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    drop(SqliteStore::open(&state).unwrap());
    fs::remove_file(state.join("secret.key")).unwrap();
    assert!(matches!(
        SqliteStore::open(&state),
        Err(StoreError::KeyMissing { .. })
    ));
}

#[test]
fn a_different_key_is_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    {
        let store = SqliteStore::open(&state).unwrap();
        transact(&store, |tx| {
            tx.put_user_secret(&NewUserSecret::root(&random_secret(), 0))
        })
        .unwrap();
    }
    let mut other = [0u8; 32];
    getrandom::fill(&mut other).unwrap();
    fs::write(state.join("secret.key"), other).unwrap();
    let err = SqliteStore::open(&state).unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err:?}");
}

#[test]
fn a_key_of_the_wrong_length_is_bad_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    drop(SqliteStore::open(&state).unwrap());
    fs::write(state.join("secret.key"), [1u8; 31]).unwrap();
    assert!(matches!(
        SqliteStore::open(&state),
        Err(StoreError::BadKeyFile { .. })
    ));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    drop(SqliteStore::open(&state).unwrap());
    let conn = rusqlite::Connection::open(state.join("twofactor.db")).unwrap();
    conn.pragma_update(None, "user_version", SqliteStore::SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    match SqliteStore::open(&state) {
        Err(StoreError::SchemaTooNew { found, known }) => {
            assert_eq!(
                (found, known),
                (SqliteStore::SCHEMA_VERSION + 1, SqliteStore::SCHEMA_VERSION)
            );
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn a_state_path_that_is_a_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    assert!(matches!(
        SqliteStore::open(&file),
        Err(StoreError::Io { .. })
    ));
}

#[test]
fn two_processes_opening_a_new_directory_at_once_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    let barrier = std::sync::Barrier::new(4);
    let stores: Vec<SqliteStore> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    SqliteStore::open(&state).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let s = random_secret();
    transact(&stores[0], |tx| {
        tx.put_user_secret(&NewUserSecret::root(&s, 0))
    })
    .unwrap();
    for store in &stores {
        assert!(store.read().unwrap().root.unwrap().record.secret.ct_eq(&s));
    }
    drop(stores);
    assert!(
        SqliteStore::open(&state)
            .unwrap()
            .read()
            .unwrap()
            .root
            .is_some()
    );
}

#[test]
fn a_damaged_database_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    drop(SqliteStore::open(&state).unwrap());
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(state.join(format!("twofactor.db{suffix}")));
    }
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(state.join("twofactor.db"), &garbage).unwrap();
    let err = SqliteStore::open(&state).unwrap_err();
    assert_eq!(err.db_kind(), Some(store::DbErrorKind::Corrupt), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("database file is damaged"), "{text}");
    assert!(
        !text.contains("SELECT") && !text.contains("PRAGMA"),
        "{text}"
    );
}
