//! What the SQLite backend leaves on disk (SPEC §6.1, §6.5): no secret in
//! any file, strict modes, and a clear error for a missing or wrong key.

// A test crate: `allow-unwrap-in-tests` covers `#[test]` functions, not
// the helpers and suite cases around them.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use otp::Secret;
use store::{AuditRecord, KeyFile, SqliteStore, Store, StoreError, transact};

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
                let id = tx.replace_secret(s, i as i64)?;
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
                .secret
                .unwrap()
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
            .secret
            .unwrap()
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
        tx.replace_secret(&random_secret(), 0).map(|_| ())
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
fn loose_modes_are_tightened_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
    // An empty file is an empty SQLite database.
    fs::write(state.join("twofactor.db"), b"").unwrap();
    fs::set_permissions(
        state.join("twofactor.db"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    drop(SqliteStore::open(&state).unwrap());
    fs::set_permissions(state.join("secret.key"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o750)).unwrap();
    let _store = SqliteStore::open(&state).unwrap();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("twofactor.db")), 0o600);
    assert_eq!(mode(&state.join("secret.key")), 0o600);
}

#[test]
fn fresh_directory_without_key_works_and_creates_one() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/state");
    let store = SqliteStore::open(&nested).unwrap();
    assert_eq!(store.state_dir(), nested);
    assert_eq!(fs::metadata(nested.join("secret.key")).unwrap().len(), 32);
    let s = random_secret();
    transact(&store, |tx| tx.replace_secret(&s, 0)).unwrap();
    drop(store);
    let store = SqliteStore::open(&nested).unwrap();
    assert!(store.read().unwrap().secret.unwrap().secret.ct_eq(&s));
    // The key that was created is the one that opens the data.
    KeyFile::load(&nested.join("secret.key")).unwrap();
}

#[test]
fn removed_key_with_a_stored_secret_is_key_missing() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    {
        let store = SqliteStore::open(&state).unwrap();
        transact(&store, |tx| tx.replace_secret(&random_secret(), 0)).unwrap();
    }
    let key = fs::read(state.join("secret.key")).unwrap();
    fs::remove_file(state.join("secret.key")).unwrap();
    let err = SqliteStore::open(&state).unwrap_err();
    assert!(matches!(err, StoreError::KeyMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("secret.key"), "{err}");
    assert!(!state.join("secret.key").exists(), "no silent new key");
    // Restoring the key file restores access.
    fs::write(state.join("secret.key"), &key).unwrap();
    assert!(
        SqliteStore::open(&state)
            .unwrap()
            .read()
            .unwrap()
            .secret
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
        transact(&store, |tx| tx.replace_secret(&random_secret(), 0)).unwrap();
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
    transact(&stores[0], |tx| tx.replace_secret(&s, 0)).unwrap();
    for store in &stores {
        assert!(store.read().unwrap().secret.unwrap().secret.ct_eq(&s));
    }
    drop(stores);
    assert!(
        SqliteStore::open(&state)
            .unwrap()
            .read()
            .unwrap()
            .secret
            .is_some()
    );
}
