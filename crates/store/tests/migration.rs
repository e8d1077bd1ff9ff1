//! A state written by main before per-user secrets (schema 2, kept under
//! `tests/fixtures/main-v2`) opens with this build: the migrations keep the
//! old secret as root's (now root's row of the per-user secrets) with its
//! replay state and failure counters, and the code `oathtool` made and main accepted is
//! refused afterwards (its step is still the highest used).

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use otp::{Algorithm, Totp, Window};
use store::{SqliteStore, Store, transact, user_owner};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/main-v2")
}

/// `key=value` from the fixture's README.
fn fixture_value(key: &str) -> String {
    let text = fs::read_to_string(fixture_dir().join("README")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap()
        .to_owned()
}

/// A private copy of the fixture with the modes the store insists on.
fn copy_fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    for name in [SqliteStore::DB_FILE, SqliteStore::KEY_FILE] {
        fs::copy(fixture_dir().join(name), state.join(name)).unwrap();
        fs::set_permissions(state.join(name), fs::Permissions::from_mode(0o600)).unwrap();
    }
    (dir, state)
}

fn user_version(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

fn oathtool_code(secret_b32: &str, at_secs: i64) -> Option<String> {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N", &format!("@{at_secs}"), secret_b32])
        .output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8(o.stdout).unwrap().trim().to_owned()),
        other => {
            assert!(
                std::env::var("TFA_SKIP_EXTERNAL").is_ok_and(|v| v == "1"),
                "oathtool is needed (apt-get install oathtool): {other:?}"
            );
            None
        }
    }
}

#[test]
fn the_state_of_main_migrates_to_roots_secret_with_its_replay_and_failure_state() {
    let (_dir, state) = copy_fixture();
    assert_eq!(user_version(&state.join(SqliteStore::DB_FILE)), 2);
    let accepted_code = fixture_value("accepted_code");
    let accepted_at: i64 = fixture_value("accepted_at").parse().unwrap();

    let store = SqliteStore::open(&state).unwrap();
    assert_eq!(
        user_version(&state.join(SqliteStore::DB_FILE)),
        SqliteStore::SCHEMA_VERSION
    );
    let entry = store.read().unwrap();
    assert!(entry.settings.enabled);
    let root = entry
        .root
        .expect("root's secret survived the migration")
        .record;
    let step = u64::try_from(accepted_at / 30).unwrap();
    assert_eq!(root.last_step, Some(step), "replay state kept");

    // The secret is the one main's code came from: oathtool (independent
    // of us) derives the accepted code from it, and so do we.
    let b32 = root.secret.to_base32();
    if let Some(code) = oathtool_code(&b32, accepted_at) {
        assert_eq!(code, accepted_code);
    }
    let totp = Totp::new(
        &root.secret,
        entry.settings.otp_digits,
        entry.settings.interval,
        Algorithm::Sha1,
    );
    let now = u64::try_from(accepted_at).unwrap();
    assert_eq!(
        totp.verify(accepted_code.as_bytes(), now, Window::DEFAULT),
        Some(step)
    );

    transact(&store, |tx| {
        // Its failure counter is root's still (under root's label now).
        let st = tx.failures(&user_owner("root", 0), "192.0.2.7")?;
        assert_eq!(st.failures, 3);
        // The accepted step cannot be used again: the code is refused.
        assert!(!tx.advance_step(root.id, step)?);
        Ok(())
    })
    .unwrap();
    let names: Vec<String> = store
        .read_user_secrets()
        .unwrap()
        .into_iter()
        .map(|i| i.username)
        .collect();
    assert_eq!(names, ["root"]);

    // Reopening runs nothing twice.
    drop(store);
    let again = SqliteStore::open(&state).unwrap();
    assert_eq!(
        again.read().unwrap().root.unwrap().record.last_step,
        Some(step)
    );
}

/// The records of an existing state get their class by kind (code checks
/// routine, changes security), one occurrence each, and the per-class row
/// counts the pruning reads match the table.
#[test]
fn existing_audit_records_are_classed_by_kind() {
    let (_dir, state) = copy_fixture();
    let store = SqliteStore::open(&state).unwrap();
    let entries = store
        .query_audit(&store::AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| e.count == 1), "{entries:?}");
    let conn = rusqlite::Connection::open(state.join(SqliteStore::DB_FILE)).unwrap();
    let classes: Vec<(String, String, i64)> = conn
        .prepare(
            "SELECT event, class, count(*) FROM audit_log GROUP BY event, class ORDER BY event",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        classes,
        [
            ("otp.check".to_owned(), "routine".to_owned(), 3),
            ("twofactor.update".to_owned(), "security".to_owned(), 1),
        ]
    );
    let counted: Vec<(String, i64)> = conn
        .prepare("SELECT class, row_count FROM audit_class_rows ORDER BY class")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        counted,
        [("routine".to_owned(), 3), ("security".to_owned(), 1)]
    );
    // The routine budget prunes the checks only.
    let deleted = store::transact(&store, |tx| {
        tx.prune_audit(store::AuditClass::Routine, 0, 0, 100)
    })
    .unwrap();
    assert_eq!(deleted, 3);
    let left = store.query_audit(&store::AuditQuery::default()).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].record.event, "twofactor.update");
}

/// A private copy of a fixture directory under `tests/fixtures`.
fn copy_named_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    for file in [SqliteStore::DB_FILE, SqliteStore::KEY_FILE] {
        fs::copy(from.join(file), state.join(file)).unwrap();
        fs::set_permissions(state.join(file), fs::Permissions::from_mode(0o600)).unwrap();
    }
    (dir, state)
}

/// `key=value` from a fixture's README.
fn named_fixture_value(name: &str, key: &str) -> String {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    fs::read_to_string(from.join("README"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap()
        .to_owned()
}

/// The single-secret state of main (2FA on, one secret) is recognised as
/// migrated: `legacy_shared_code` is on after opening it.
#[test]
fn a_single_secret_state_gets_legacy_shared_code() {
    let (_dir, state) = copy_fixture();
    let store = SqliteStore::open(&state).unwrap();
    assert!(store.read_summary().unwrap().settings.legacy_shared_code);
}

/// A fresh state never gets it, even once 2FA is enabled.
#[test]
fn a_fresh_state_has_no_legacy_shared_code() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    assert!(!store.read_summary().unwrap().settings.legacy_shared_code);
    drop(store);
    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    assert!(!store.read_summary().unwrap().settings.legacy_shared_code);
}

/// A state of main with per-user secrets (schema 3) where another account
/// has a secret is not a single-secret state: no `legacy_shared_code`.
/// Its recovery codes keep working for the uid the account's secret row
/// records (root: 0) and for no other uid; the codes of a name without a
/// secret (whose uid is unknown) are gone.
#[test]
fn mains_per_user_state_keeps_recovery_codes_bound_to_the_recorded_uid() {
    let (_dir, state) = copy_named_fixture("main-v3");
    assert_eq!(user_version(&state.join(SqliteStore::DB_FILE)), 3);
    let store = SqliteStore::open(&state).unwrap();
    assert_eq!(
        user_version(&state.join(SqliteStore::DB_FILE)),
        SqliteStore::SCHEMA_VERSION
    );
    assert!(!store.read_summary().unwrap().settings.legacy_shared_code);
    let code = |k: &str| named_fixture_value("main-v3", k).replace('-', "");
    assert_eq!(
        store.read_user("alice", 1001).unwrap().recovery_codes_left,
        10
    );
    assert_eq!(
        store.read_user("alice", 1050).unwrap().recovery_codes_left,
        0
    );
    assert_eq!(store.read_user("root", 0).unwrap().recovery_codes_left, 10);
    assert_eq!(
        store.read_user("carol", 1003).unwrap().recovery_codes_left,
        0
    );
    transact(&store, |tx| {
        assert_eq!(
            tx.use_recovery_code("alice", 1050, &code("alice_code"))?,
            None
        );
        assert_eq!(
            tx.use_recovery_code("alice", 1001, &code("alice_code"))?,
            Some(9)
        );
        assert_eq!(
            tx.use_recovery_code("alice", 1001, &code("alice_code"))?,
            None
        );
        assert_eq!(
            tx.use_recovery_code("root", 0, &code("root_code"))?,
            Some(9)
        );
        assert_eq!(
            tx.use_recovery_code("carol", 1003, &code("carol_code"))?,
            None
        );
        Ok(())
    })
    .unwrap();
}

/// A state of main at schema 7 (root's secret still the entry's, with 8
/// digits and 60 s, a code used, recovery codes and a lock-out; kept under
/// `tests/fixtures/main-v4`) opens with this build: root's secret becomes
/// root's row of the per-user secrets, re-sealed under root's label, and
/// still makes the code main accepted (oathtool agrees); that code stays
/// used, the lock-out and the count over all origins hold under root's
/// label, the recovery codes work, and the entry keeps the numbers as the
/// defaults for new secrets.
#[test]
fn mains_entry_secret_becomes_roots_row_with_replay_and_lock_out() {
    let (_dir, state) = copy_named_fixture("main-v4");
    let db = state.join(SqliteStore::DB_FILE);
    assert_eq!(user_version(&db), 7);
    let value = |k: &str| named_fixture_value("main-v4", k);
    let accepted_code = value("accepted_code");
    let accepted_at: i64 = value("accepted_at").parse().unwrap();
    let locked_until: i64 = value("locked_until_ms").parse().unwrap();
    let step = u64::try_from(accepted_at / 60).unwrap();

    let store = SqliteStore::open(&state).unwrap();
    assert_eq!(user_version(&db), SqliteStore::SCHEMA_VERSION);
    let entry = store.read().unwrap();
    assert!(entry.settings.enabled && !entry.settings.legacy_shared_code);
    assert_eq!(
        entry.settings.otp_digits.get(),
        8,
        "default for new secrets"
    );
    assert_eq!(entry.settings.interval.get(), 60, "default for new secrets");
    let root = entry.root.expect("root's secret survived the migration");
    assert_eq!((root.username.as_str(), root.uid), ("root", 0));
    assert_eq!((root.digits.get(), root.interval.get()), (8, 60));
    assert_eq!(root.record.last_step, Some(step), "replay state kept");

    // Still the secret main's code came from.
    let b32 = root.record.secret.to_base32();
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-d", "8", "-s", "60"])
        .arg(format!("-N@{accepted_at}"))
        .arg(b32.as_str())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), accepted_code);
        }
        other => assert!(
            std::env::var("TFA_SKIP_EXTERNAL").is_ok_and(|v| v == "1"),
            "oathtool is needed (apt-get install oathtool): {other:?}"
        ),
    }
    let totp = Totp::new(
        &root.record.secret,
        root.digits,
        root.interval,
        Algorithm::Sha1,
    );
    assert_eq!(
        totp.verify(
            accepted_code.as_bytes(),
            u64::try_from(accepted_at).unwrap(),
            Window::DEFAULT
        ),
        Some(step)
    );

    let owner = user_owner("root", 0);
    transact(&store, |tx| {
        // The same row through the one set of secret operations.
        let same = tx.user_secret("root")?.expect("root's row");
        assert_eq!(same, root);
        // The lock-out and the count over every origin hold, under root's
        // label.
        let st = tx.failures(&owner, "192.0.2.7")?;
        assert_eq!((st.locked_until_ms, st.lockouts), (locked_until, 1));
        assert_eq!(tx.failures(&owner, store::ALL_ORIGINS)?.failures, 5);
        assert_eq!(tx.failures("system", "192.0.2.7")?, Default::default());
        // The used step stays used; the next one is fresh.
        assert!(!tx.advance_step(root.record.id, step)?);
        assert!(tx.advance_step(root.record.id, step + 1)?);
        let code = value("root_recovery_code").replace('-', "");
        assert_eq!(tx.use_recovery_code("root", 0, &code)?, Some(9));
        Ok(())
    })
    .unwrap();

    // Sealed under root's label now; the entry points at no secret.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (owners, entry_secret): (String, Option<i64>) = conn
        .query_row(
            "SELECT (SELECT group_concat(owner) FROM otp_secrets),
                    (SELECT secret_id FROM twofactor_config)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((owners.as_str(), entry_secret), (owner.as_str(), None));
    drop(conn);

    // Reopening (nothing left to migrate or re-seal) reads the same.
    drop(store);
    let again = SqliteStore::open(&state).unwrap();
    let root_again = again.read().unwrap().root.unwrap();
    assert_eq!(root_again.record.last_step, Some(step + 1));
    assert!(root_again.record.secret.ct_eq(&root.record.secret));
}
