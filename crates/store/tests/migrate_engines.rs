//! `store::migrate` moves a whole state from SQLite to PostgreSQL and back
//! without losing what the later schema scripts added: recovery codes with
//! their uid and MAC version (a code made before codes were bound to a uid
//! still works, for that uid only), pending enrolments, the
//! `legacy_shared_code` setting, audit rows with their retention class,
//! occurrence count and aggregation key.

#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use otp::{Digits, Interval, Secret};
use serde_json::json;
use store::{
    Aggregate, AuditClass, AuditEntry, AuditQuery, AuditRecord, PendingSecret, SqliteStore,
    StateLocation, Store, StoreError, transact,
};

#[path = "pgcluster/mod.rs"]
mod pgcluster;

const FIXTURE: &str = "main-v3";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(FIXTURE)
}

/// A private copy of the schema-3 fixture (alice 1001 and root hold codes
/// made before codes were bound to a uid).
fn copy_fixture(dir: &Path) -> PathBuf {
    let state = dir.join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    for file in [SqliteStore::DB_FILE, SqliteStore::KEY_FILE] {
        fs::copy(fixture().join(file), state.join(file)).unwrap();
        fs::set_permissions(state.join(file), fs::Permissions::from_mode(0o600)).unwrap();
    }
    state
}

fn fixture_code(key: &str) -> String {
    fs::read_to_string(fixture().join("README"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap()
        .replace('-', "")
}

fn pending() -> PendingSecret {
    PendingSecret {
        username: "bob".into(),
        uid: 1004,
        secret: Secret::from_bytes((0..20).map(|i| 90 + i).collect()).unwrap(),
        digits: Digits::new(8).unwrap(),
        interval: Interval::new(60).unwrap(),
        expires_at_ms: 4_000_000_000_000,
    }
}

fn check(at_ms: i64) -> AuditRecord {
    AuditRecord {
        at_ms,
        event: "otp.check".into(),
        outcome: "wrong".into(),
        user: Some("bob".into()),
        origin: "198.51.100.4".into(),
        service: Some("sshd".into()),
        detail: Some(json!({"note": "x"})),
    }
}

/// Later than the fixture's own records, so the new ones come first.
const T: i64 = 4_000_000_000_000;

const AGG: Aggregate<'static> = Aggregate {
    key: "otp.check/wrong/bob",
    since_ms: T,
    free: 1,
};

fn aggregated(store: &dyn Store, at_ms: i64) {
    transact(store, |tx| {
        tx.audit_as(&check(at_ms), AuditClass::Routine, Some(&AGG))
    })
    .unwrap();
}

fn all_audit(store: &dyn Store) -> Vec<AuditEntry> {
    store
        .query_audit(&AuditQuery {
            limit: usize::MAX,
            ..AuditQuery::default()
        })
        .unwrap()
}

/// How many rows of `class` there are: all of them pruned by count in a
/// transaction that is then rolled back.
fn class_rows(store: &dyn Store, class: AuditClass) -> usize {
    let n = Cell::new(0);
    let rolled_back = transact(store, |tx| {
        n.set(tx.prune_audit(class, i64::MIN, 0, usize::MAX)?);
        Err::<(), _>(StoreError::database("roll back"))
    });
    assert!(rolled_back.is_err());
    n.get()
}

fn pg_location(url: &str, key: &Path) -> StateLocation {
    StateLocation::Postgres(store::PgOptions {
        url: url.to_owned(),
        password: None,
        node: "node-m".into(),
        pool_size: 2,
        connect_timeout_ms: 5000,
        statement_timeout_ms: 10_000,
        key_file: key.to_owned(),
    })
}

/// What the copy must show, whichever engine holds it.
fn same_state(store: &dyn Store, audit: &[AuditEntry], classes: (usize, usize), alice_left: u32) {
    let summary = store.read_summary().unwrap();
    assert!(summary.settings.legacy_shared_code);
    assert!(summary.settings.enabled);
    // A shared database names the node of every row (the migrating one's
    // for rows from SQLite, which names none); the records are the same.
    let rows = all_audit(store);
    if store.shared_node().is_some() {
        assert!(rows.iter().all(|e| e.node.is_some()), "{rows:?}");
    }
    let without_node = |rows: &[AuditEntry]| {
        rows.iter()
            .map(|e| AuditEntry {
                node: None,
                ..e.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(without_node(&rows), without_node(audit));
    assert_eq!(
        (
            class_rows(store, AuditClass::Routine),
            class_rows(store, AuditClass::Security)
        ),
        classes
    );
    assert_eq!(
        store.read_user("alice", 1001).unwrap().recovery_codes_left,
        alice_left
    );
    assert_eq!(
        store.read_user("alice", 1050).unwrap().recovery_codes_left,
        0
    );
    assert_eq!(store.read_user("root", 0).unwrap().recovery_codes_left, 10);
    transact(store, |tx| {
        assert_eq!(tx.pending_secret("bob")?, Some(pending()));
        Ok(())
    })
    .unwrap();
}

#[test]
fn migrate_to_postgresql_and_back_keeps_codes_enrolments_settings_and_audit_classes() {
    let dir = tempfile::tempdir().unwrap();
    let state = copy_fixture(dir.path());
    let key = state.join(SqliteStore::KEY_FILE);
    let (audit, classes) = {
        let sqlite = SqliteStore::open(&state).unwrap();
        let mut settings = sqlite.read_summary().unwrap().settings;
        settings.legacy_shared_code = true;
        transact(&sqlite, |tx| {
            tx.put_settings(&settings)?;
            tx.put_pending_secret(&pending())
        })
        .unwrap();
        // One single row, then one row counting the next two.
        for at in [T, T + 1, T + 2] {
            aggregated(&sqlite, at);
        }
        let audit = all_audit(&sqlite);
        assert_eq!(audit[0].count, 2, "{audit:#?}");
        let classes = (
            class_rows(&sqlite, AuditClass::Routine),
            class_rows(&sqlite, AuditClass::Security),
        );
        assert!(classes.0 >= 2 && classes.1 >= 1, "{classes:?}");
        same_state(&sqlite, &audit, classes, 10);
        (audit, classes)
    };

    let cluster = pgcluster::Cluster::shared();
    let url = cluster.url(&cluster.fresh_db());
    let report =
        store::migrate(&StateLocation::Dir(state), &pg_location(&url, &key), &key).unwrap();
    assert_eq!(report.pending, 1);
    assert_eq!(report.recovery_codes, 20);
    let StateLocation::Postgres(options) = pg_location(&url, &key) else {
        unreachable!()
    };
    let mut audit = audit;
    {
        let pg = store::PgStore::open(&options).unwrap();
        same_state(&pg, &audit, classes, 10);
        // alice's code made before the uid binding works once, for her uid.
        let alice = fixture_code("alice_code");
        transact(&pg, |tx| {
            assert_eq!(tx.use_recovery_code("alice", 1050, &alice)?, None);
            assert_eq!(tx.use_recovery_code("alice", 1001, &alice)?, Some(9));
            assert_eq!(tx.use_recovery_code("alice", 1001, &alice)?, None);
            Ok(())
        })
        .unwrap();
        // The aggregation key came along: a repeat adds to the same row.
        aggregated(&pg, T + 3);
        audit[0].count = 3;
        same_state(&pg, &audit, classes, 9);
    }

    let back = tempfile::tempdir().unwrap();
    let back_state = back.path().join("state");
    let report = store::migrate(
        &pg_location(&url, &key),
        &StateLocation::Dir(back_state.clone()),
        &key,
    )
    .unwrap();
    assert_eq!(report.recovery_codes, 19);
    let sqlite = SqliteStore::open(&back_state).unwrap();
    same_state(&sqlite, &audit, classes, 9);
    let root = fixture_code("root_code");
    transact(&sqlite, |tx| {
        assert_eq!(tx.use_recovery_code("root", 0, &root)?, Some(9));
        Ok(())
    })
    .unwrap();
    aggregated(&sqlite, T + 4);
    audit[0].count = 4;
    assert_eq!(all_audit(&sqlite), audit);
}
