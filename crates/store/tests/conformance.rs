//! The behaviour every [`Store`] backend must show. Each case is a function
//! taking a [`Make`]: a factory for a fresh, empty storage location that can
//! be opened (and reopened, and opened twice at once, as two processes
//! would). A backend joins with one more `backend!` line at the bottom.

// A test crate: `allow-unwrap-in-tests` covers `#[test]` functions, not
// the helpers and suite cases around them.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Barrier};
use std::thread;

use otp::{Digits, Interval, Secret, Window};
use serde_json::json;
use store::{
    ALL_ORIGINS, Aggregate, AuditClass, AuditQuery, AuditRecord, EntrySummary, LimiterState,
    NewUserSecret, PendingSecret, SecretId, Settings, SqliteStore, Store, StoreError, SystemEntry,
    UserView, read_snapshot, transact,
};

/// One fresh storage location (a directory, a database, ...). Dropping it
/// removes it.
pub trait Location {
    /// Opens a handle on this location; several may be open at once.
    fn open(&self) -> Box<dyn Store>;
}

/// Makes a fresh, empty location.
pub type Make<'a> = &'a dyn Fn() -> Box<dyn Location>;

// ---------------------------------------------------------------- helpers

fn secret(fill: u8) -> Secret {
    Secret::from_bytes((0..20).map(|i| fill.wrapping_add(i)).collect()).unwrap()
}

/// Root's owner label (its counters' key).
fn root_owner() -> String {
    store::user_owner("root", 0)
}

fn some_settings() -> Settings {
    Settings {
        otp_digits: Digits::new(8).unwrap(),
        window: Window::new(2).unwrap(),
        interval: Interval::new(60).unwrap(),
        ssh: true,
        enabled: true,
        legacy_shared_code: true,
    }
}

fn record(at_ms: i64, event: &str, outcome: &str) -> AuditRecord {
    AuditRecord {
        at_ms,
        event: event.into(),
        outcome: outcome.into(),
        user: Some("root".into()),
        origin: "unix:uid=0".into(),
        service: Some("sshd".into()),
        detail: Some(json!({"changed": ["enabled", "window"], "wait_s": 30})),
    }
}

fn all_audit(store: &dyn Store) -> Vec<store::AuditEntry> {
    store
        .query_audit(&AuditQuery {
            limit: usize::MAX,
            ..AuditQuery::default()
        })
        .unwrap()
}

fn new_secret(store: &dyn Store, fill: u8) -> SecretId {
    transact(store, |tx| {
        tx.put_user_secret(&NewUserSecret::root(&secret(fill), 1_700_000_000_000))
    })
    .unwrap()
}

fn advance(store: &dyn Store, id: SecretId, step: u64) -> bool {
    transact(store, |tx| tx.advance_step(id, step)).unwrap()
}

/// Waits until `read` gives `want`: another handle's commit reaches a
/// cached read at once on SQLite (the data version moves) and as soon as
/// its notification arrives on PostgreSQL. Fails after five seconds.
fn seen<T: PartialEq + std::fmt::Debug>(read: impl Fn() -> T, want: T) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = read();
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {got:?}, not {want:?}, five seconds after the commit"
        );
        thread::yield_now();
    }
}

// ------------------------------------------------------------------ cases

pub fn defaults_on_first_open(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let expected = SystemEntry::default();
    assert_eq!(expected.settings.otp_digits.get(), 6);
    assert_eq!(expected.settings.window.get(), 0);
    assert_eq!(expected.settings.interval.get(), 30);
    assert!(!expected.settings.ssh && !expected.settings.enabled);
    assert_eq!(store.read().unwrap(), expected);
    assert_eq!(
        transact(&*store, |tx| tx.settings()).unwrap(),
        expected.settings
    );
    assert!(all_audit(&*store).is_empty());
    // Opening again does not create a second entry or change it.
    drop(store);
    assert_eq!(loc.open().read().unwrap(), expected);
}

pub fn settings_round_trip(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let s = some_settings();
    let seen_inside = transact(&*store, |tx| {
        tx.put_settings(&s)?;
        tx.settings()
    })
    .unwrap();
    assert_eq!(seen_inside, s, "a transaction reads its own writes");
    assert_eq!(store.read().unwrap().settings, s);
    assert_eq!(transact(&*store, |tx| tx.settings()).unwrap(), s);
    let back = Settings::default();
    transact(&*store, |tx| tx.put_settings(&back)).unwrap();
    assert_eq!(store.read().unwrap().settings, back);
}

pub fn putting_roots_secret_then_read_returns_it(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    transact(&*store, |tx| tx.put_settings(&some_settings())).unwrap();
    let id = transact(&*store, |tx| {
        tx.put_user_secret(&NewUserSecret::root(&secret(1), 1234))
    })
    .unwrap();
    let entry = store.read().unwrap();
    assert_eq!(
        entry.settings,
        some_settings(),
        "settings untouched by a new secret"
    );
    let rec = entry.root.unwrap().record;
    assert_eq!(rec.id, id);
    assert!(rec.secret.ct_eq(&secret(1)));
    assert_eq!(rec.last_step, None);
    assert_eq!(rec.created_at_ms, 1234);

    let id2 = transact(&*store, |tx| {
        tx.put_user_secret(&NewUserSecret::root(&secret(2), 5678))
    })
    .unwrap();
    assert_ne!(id2, id);
    let rec = transact(&*store, |tx| tx.user_secret("root"))
        .unwrap()
        .unwrap()
        .record;
    assert_eq!((rec.id, rec.created_at_ms), (id2, 5678));
    assert!(rec.secret.ct_eq(&secret(2)));
    // The retired secret's id is dead: nothing advances through it.
    assert!(!advance(&*store, id, 10));
    assert_eq!(store.read().unwrap().root.unwrap().record.last_step, None);
}

pub fn advance_step_is_monotonic_and_survives_reopen(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let id = new_secret(&*store, 3);
    assert!(advance(&*store, id, 100), "first step");
    assert!(!advance(&*store, id, 100), "equal step is a replay");
    assert!(!advance(&*store, id, 99), "lower step is refused");
    assert!(advance(&*store, id, 101), "higher step");
    assert!(!advance(&*store, id, 0));
    assert_eq!(
        store.read().unwrap().root.unwrap().record.last_step,
        Some(101)
    );
    assert!(!advance(&*store, SecretId(id.0 + 1000), 5), "unknown id");

    drop(store);
    let store = loc.open();
    assert_eq!(
        store.read().unwrap().root.unwrap().record.last_step,
        Some(101)
    );
    assert!(!advance(&*store, id, 101));
    assert!(advance(&*store, id, 102));
    // Large (but representable) steps are fine.
    assert!(advance(&*store, id, i64::MAX as u64));
    assert!(!advance(&*store, id, i64::MAX as u64));
}

pub fn a_new_secret_starts_without_replay_state(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let old = new_secret(&*store, 4);
    assert!(advance(&*store, old, 500));

    let new = new_secret(&*store, 5);
    let rec = store.read().unwrap().root.unwrap().record;
    assert_eq!((rec.id, rec.last_step), (new, None));
    assert!(
        advance(&*store, new, 1),
        "the new secret starts with no replay state"
    );
    // Its failure counters: `a_new_secret_clears_its_owners_failures`.
}

/// Failure counters are keyed by (secret owner, origin): independent of each
/// other and of another owner's.
pub fn failures_are_keyed_by_owner_and_origin(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let a = LimiterState {
        failures: 3,
        window_start_ms: 10,
        locked_until_ms: 0,
        lockouts: 0,
    };
    let b = LimiterState {
        failures: 0,
        window_start_ms: 20,
        locked_until_ms: 90_000,
        lockouts: 2,
    };
    transact(&*store, |tx| {
        tx.put_failures(&root_owner(), "192.0.2.1", &a, 1_000)?;
        tx.put_failures(&root_owner(), ALL_ORIGINS, &b, 2_000)?;
        tx.put_failures("user:1000", "192.0.2.1", &b, 3_000)
    })
    .unwrap();
    let get =
        |owner: &str, origin: &str| transact(&*store, |tx| tx.failures(owner, origin)).unwrap();
    assert_eq!(get(&root_owner(), "192.0.2.1"), a);
    assert_eq!(get(&root_owner(), ALL_ORIGINS), b);
    assert_eq!(get("user:1000", "192.0.2.1"), b);
    assert_eq!(get(&root_owner(), "192.0.2.2"), LimiterState::default());
    // Overwrite, then the default state deletes.
    transact(&*store, |tx| {
        tx.put_failures(&root_owner(), "192.0.2.1", &b, 5_000)
    })
    .unwrap();
    assert_eq!(get(&root_owner(), "192.0.2.1"), b);
    transact(&*store, |tx| {
        tx.put_failures(&root_owner(), "192.0.2.1", &LimiterState::default(), 0)
    })
    .unwrap();
    assert_eq!(get(&root_owner(), "192.0.2.1"), LimiterState::default());
    // They persist.
    drop(store);
    let store = loc.open();
    assert_eq!(
        transact(&*store, |tx| tx.failures(&root_owner(), ALL_ORIGINS)).unwrap(),
        b
    );
}

/// Expired counters are deleted oldest first, at most a batch at a time.
pub fn expire_failures_deletes_in_batches(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let st = LimiterState {
        failures: 1,
        window_start_ms: 1,
        locked_until_ms: 0,
        lockouts: 0,
    };
    transact(&*store, |tx| {
        for i in 0..10i64 {
            tx.put_failures(&root_owner(), &format!("198.51.100.{i}"), &st, 100 + i)?;
        }
        Ok(())
    })
    .unwrap();
    let expire =
        |now: i64, batch: usize| transact(&*store, |tx| tx.expire_failures(now, batch)).unwrap();
    assert_eq!(expire(99, 100), 0, "nothing expired yet");
    assert_eq!(expire(105, 4), 4, "a batch at a time");
    assert_eq!(expire(105, 4), 2, "the rest that expired by 105");
    assert_eq!(expire(105, 4), 0);
    let left: Vec<bool> = (0..10)
        .map(|i| {
            transact(&*store, |tx| {
                tx.failures(&root_owner(), &format!("198.51.100.{i}"))
            })
            .unwrap()
                != LimiterState::default()
        })
        .collect();
    assert_eq!(
        left,
        [
            false, false, false, false, false, false, true, true, true, true
        ]
    );
}

/// Replacing the system secret clears every counter of its owner.
pub fn a_new_secret_clears_its_owners_failures(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    new_secret(&*store, 6);
    let st = LimiterState {
        failures: 2,
        window_start_ms: 1,
        locked_until_ms: 5,
        lockouts: 1,
    };
    transact(&*store, |tx| {
        tx.put_failures(&root_owner(), "192.0.2.9", &st, i64::MAX)?;
        tx.put_failures(&root_owner(), ALL_ORIGINS, &st, i64::MAX)?;
        tx.put_failures("user:1000", ALL_ORIGINS, &st, i64::MAX)
    })
    .unwrap();
    new_secret(&*store, 7);
    let get =
        |owner: &str, origin: &str| transact(&*store, |tx| tx.failures(owner, origin)).unwrap();
    assert_eq!(get(&root_owner(), "192.0.2.9"), LimiterState::default());
    assert_eq!(get(&root_owner(), ALL_ORIGINS), LimiterState::default());
    assert_eq!(get("user:1000", ALL_ORIGINS), st, "another owner's stay");
}

/// The read-only listing of secret holders is the transaction's, and sees
/// another handle's commits.
pub fn read_user_secrets_matches_the_transactions_view(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let other = loc.open();
    assert!(store.read_user_secrets().unwrap().is_empty());
    for (name, uid, fill) in [("bob", 1002, 4), ("alice", 1001, 5)] {
        transact(&*other, |tx| {
            tx.put_user_secret(&NewUserSecret {
                username: name,
                uid,
                secret: &secret(fill),
                digits: Digits::new(6).unwrap(),
                interval: Interval::new(30).unwrap(),
                created_at_ms: 1,
            })
        })
        .unwrap();
    }
    let read = store.read_user_secrets().unwrap();
    let names: Vec<(&str, u32)> = read.iter().map(|i| (i.username.as_str(), i.uid)).collect();
    assert_eq!(names, [("alice", 1001), ("bob", 1002)]);
}

/// Clearing an owner's counters deletes each origin's and the count over
/// all origins, and nothing of another owner or the secret.
pub fn clear_failures_ends_one_owners_lock_outs(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let id = new_secret(&*store, 3);
    let st = LimiterState {
        failures: 2,
        window_start_ms: 10,
        locked_until_ms: 5_000,
        lockouts: 3,
    };
    transact(&*store, |tx| {
        tx.put_failures(&root_owner(), "192.0.2.1", &st, i64::MAX)?;
        tx.put_failures(&root_owner(), ALL_ORIGINS, &st, i64::MAX)?;
        tx.put_failures("user:1000:alice", "192.0.2.1", &st, i64::MAX)
    })
    .unwrap();
    assert_eq!(
        transact(&*store, |tx| tx.clear_failures(&root_owner())).unwrap(),
        2
    );
    let get =
        |owner: &str, origin: &str| transact(&*store, |tx| tx.failures(owner, origin)).unwrap();
    assert_eq!(get(&root_owner(), "192.0.2.1"), LimiterState::default());
    assert_eq!(get(&root_owner(), ALL_ORIGINS), LimiterState::default());
    assert_eq!(get("user:1000:alice", "192.0.2.1"), st);
    assert_eq!(
        transact(&*store, |tx| tx.clear_failures(&root_owner())).unwrap(),
        0
    );
    assert_eq!(
        store.read().unwrap().root.unwrap().record.id,
        id,
        "the secret stays"
    );
}

/// Audit retention: by age and by count, oldest first, a batch at a time.
pub fn prune_audit_by_age_and_count(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    for at in 1..=20 {
        transact(&*store, |tx| {
            tx.audit(&record(at * 100, "otp.check", "wrong"))
        })
        .unwrap();
    }
    let prune = |older_than: i64, keep: u64, batch: usize| {
        transact(&*store, |tx| {
            tx.prune_audit(AuditClass::Security, older_than, keep, batch)
        })
        .unwrap()
    };
    let ats = || -> Vec<i64> { all_audit(&*store).iter().map(|e| e.record.at_ms).collect() };
    // Nothing too old, nothing too many: nothing goes.
    assert_eq!(prune(0, 100, 100), 0);
    // By age: older than 600 ms, three at a time.
    assert_eq!(prune(600, 100, 3), 3);
    assert_eq!(prune(600, 100, 3), 2);
    assert_eq!(prune(600, 100, 3), 0);
    assert_eq!(ats().len(), 15);
    assert_eq!(*ats().last().unwrap(), 600);
    // By count: keep the newest 10, four at a time.
    assert_eq!(prune(0, 10, 4), 4);
    assert_eq!(prune(0, 10, 4), 1);
    assert_eq!(prune(0, 10, 4), 0);
    assert_eq!(ats(), (11..=20).rev().map(|i| i * 100).collect::<Vec<_>>());
    // Both at once share the batch.
    assert_eq!(prune(1_300, 5, 100), 5);
    assert_eq!(ats(), (16..=20).rev().map(|i| i * 100).collect::<Vec<_>>());
}

/// Each class has its own budget: a flood of routine records, pruned to
/// its budget, never deletes a security record, however old.
pub fn audit_classes_are_pruned_on_their_own_budgets(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    transact(&*store, |tx| {
        tx.audit(&record(1, "otp.lockout", "locked"))?;
        tx.audit_as(
            &record(2, "twofactor.update", "success"),
            AuditClass::Security,
            None,
        )
    })
    .unwrap();
    for at in 10..60 {
        transact(&*store, |tx| {
            tx.audit_as(&record(at, "otp.check", "wrong"), AuditClass::Routine, None)?;
            tx.prune_audit(AuditClass::Routine, 0, 5, 8)?;
            tx.prune_audit(AuditClass::Security, 0, 5, 8)
        })
        .unwrap();
    }
    let events = |event: &str| {
        all_audit(&*store)
            .iter()
            .filter(|e| e.record.event == event)
            .map(|e| e.record.at_ms)
            .collect::<Vec<_>>()
    };
    assert_eq!(events("otp.check"), (55..60).rev().collect::<Vec<_>>());
    assert_eq!(events("otp.lockout"), vec![1]);
    assert_eq!(events("twofactor.update"), vec![2]);
    // The security budget applies to security records only.
    let deleted = transact(&*store, |tx| tx.prune_audit(AuditClass::Security, 0, 1, 8)).unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(events("otp.lockout"), Vec::<i64>::new());
    assert_eq!(events("otp.check").len(), 5);
    // By age, per class too.
    let deleted = transact(&*store, |tx| {
        tx.prune_audit(AuditClass::Routine, 57, 100, 8)
    })
    .unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(events("twofactor.update"), vec![2]);
}

/// Beyond `free` records of one key in an interval, one more row counts
/// every further one; a new interval or another key starts over.
pub fn aggregated_audit_records_count_repeats(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let put = |at: i64, key: &str, since: i64| {
        transact(&*store, |tx| {
            tx.audit_as(
                &record(at, "otp.check", "wrong"),
                AuditClass::Routine,
                Some(&Aggregate {
                    key,
                    since_ms: since,
                    free: 3,
                }),
            )
        })
        .unwrap();
    };
    for at in 0..100 {
        put(at, "a", 0);
    }
    put(100, "b", 0);
    let rows = all_audit(&*store);
    let counts = |rows: &[store::AuditEntry]| rows.iter().map(|e| e.count).collect::<Vec<_>>();
    // Newest first: b, the aggregate of a (97 records), three single ones.
    assert_eq!(counts(&rows), vec![1, 97, 1, 1, 1]);
    assert_eq!(
        rows[1].record.at_ms, 3,
        "the aggregate is the first beyond the free ones"
    );
    assert_eq!(rows[1].record, record(3, "otp.check", "wrong"));
    // The next interval writes single rows again.
    put(1_000, "a", 1_000);
    put(1_001, "a", 1_000);
    assert_eq!(counts(&all_audit(&*store)), vec![1, 1, 1, 97, 1, 1, 1]);
    // Aggregated rows count once towards the class budget and go whole.
    let deleted = transact(&*store, |tx| tx.prune_audit(AuditClass::Routine, 0, 3, 100)).unwrap();
    assert_eq!(deleted, 4);
    assert_eq!(counts(&all_audit(&*store)), vec![1, 1, 1]);
    // Once the interval's rows were pruned, counting starts afresh.
    transact(&*store, |tx| tx.prune_audit(AuditClass::Routine, 0, 0, 100)).unwrap();
    for at in 2_000..2_010 {
        put(at, "a", 1_000);
    }
    assert_eq!(counts(&all_audit(&*store)), vec![7, 1, 1, 1]);
}

/// Hears every change `store` is told of, as batches on a channel.
fn listen(store: &dyn Store) -> std::sync::mpsc::Receiver<Vec<store::Change>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    store.on_change(Box::new(move |batch| {
        let _ = tx.lock().unwrap().send(batch.to_vec());
    }));
    rx
}

/// Everything told so far, without waiting.
fn told(rx: &std::sync::mpsc::Receiver<Vec<store::Change>>) -> Vec<Vec<store::Change>> {
    rx.try_iter().collect()
}

/// The batches told until one containing `last` (which is included);
/// fails after five seconds.
fn told_until(
    rx: &std::sync::mpsc::Receiver<Vec<store::Change>>,
    last: &store::Change,
) -> Vec<Vec<store::Change>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let batch = rx.recv_timeout(left).unwrap_or_else(|e| {
            panic!("{last:?} not told within five seconds ({e}); told {got:?}")
        });
        let done = batch.contains(last);
        got.push(batch);
        if done {
            return got;
        }
    }
}

fn user_change(name: &str) -> store::Change {
    store::Change::User {
        username: name.into(),
    }
}

/// Each committed change is told once to each handle's listeners: at
/// commit, on the committing thread, to the handle that made it; shortly
/// after to the others (another process, another node). A rollback, and
/// a transaction that changes nothing a listener hears of (a code check's
/// replay step, counters and audit row), tell nothing.
pub fn changes_are_told_once_to_every_handle(make: Make<'_>) {
    use store::Change;
    let loc = make();
    let a = loc.open();
    let b = loc.open();
    let heard_a = listen(&*a);
    let heard_b = listen(&*b);

    // a's own changes, told before `transact` returns.
    transact(&*a, |tx| tx.put_settings(&some_settings())).unwrap();
    assert_eq!(told(&heard_a), [vec![Change::Entry]]);
    // Root's secret is also the entry's (`config` shows it).
    let id = new_secret(&*a, 3);
    assert_eq!(told(&heard_a), [vec![Change::Entry, user_change("root")]]);
    transact(&*a, |tx| {
        tx.put_user_secret(&NewUserSecret {
            username: "alice",
            uid: 1001,
            secret: &secret(4),
            digits: Digits::new(6).unwrap(),
            interval: Interval::new(30).unwrap(),
            created_at_ms: 1,
        })?;
        tx.put_recovery_codes("alice", 1001, &["a", "b"])
    })
    .unwrap();
    assert_eq!(told(&heard_a), [vec![user_change("alice")]]);
    // Nothing heard of: a rollback, a code check's writes, removing what
    // is not there, clearing counters there are none of.
    let failed: Result<(), StoreError> = transact(&*a, |tx| {
        tx.put_settings(&Settings::default())?;
        Err(StoreError::database("no"))
    });
    assert!(failed.is_err());
    transact(&*a, |tx| {
        assert!(tx.advance_step(id, 5)?);
        tx.put_failures(
            &root_owner(),
            "192.0.2.1",
            &LimiterState {
                failures: 1,
                ..LimiterState::default()
            },
            1_000,
        )?;
        tx.audit(&record(1, "otp.check", "accepted"))?;
        assert!(!tx.delete_user_secret("nobody")?);
        assert_eq!(tx.clear_failures(&store::user_owner("alice", 1001))?, 0);
        Ok(())
    })
    .unwrap();
    assert_eq!(told(&heard_a), Vec::<Vec<Change>>::new());
    // A lock-out cleared is a change of its owner.
    assert_eq!(
        transact(&*a, |tx| tx.clear_failures(&root_owner())).unwrap(),
        1
    );
    assert_eq!(told(&heard_a), [vec![user_change("root")]]);
    // The last of a's changes, to know when b has heard them all.
    transact(&*a, |tx| tx.put_recovery_codes("carol", 1003, &["c"])).unwrap();
    assert_eq!(told(&heard_a), [vec![user_change("carol")]]);

    // b hears what a committed (several changes of one thing may come as
    // one), and nothing else.
    let mut at_b: Vec<Change> = told_until(&heard_b, &user_change("carol"))
        .into_iter()
        .flatten()
        .collect();
    at_b.sort();
    at_b.dedup();
    assert_eq!(
        at_b,
        [
            Change::Entry,
            user_change("alice"),
            user_change("carol"),
            user_change("root")
        ]
    );
    // b's own change: told to b at once, once; to a shortly after. Had any
    // of a's own changes come back to a, they would come before it.
    transact(&*b, |tx| tx.put_recovery_codes("bob", 1002, &["d"])).unwrap();
    assert_eq!(told(&heard_b), [vec![user_change("bob")]]);
    let at_a: Vec<Change> = told_until(&heard_a, &user_change("bob"))
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(at_a, [user_change("bob")]);
    // And once more the other way: b's own change did not come back to b.
    transact(&*a, |tx| tx.delete_user_secret("alice").map(|_| ())).unwrap();
    assert_eq!(told(&heard_a), [vec![user_change("alice")]]);
    let at_b: Vec<Change> = told_until(&heard_b, &user_change("alice"))
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(at_b, [user_change("alice")]);
    assert_eq!(told(&heard_a), Vec::<Vec<Change>>::new());
}

pub fn rollback_on_err_leaves_nothing(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let id = new_secret(&*store, 6);
    assert!(advance(&*store, id, 7));
    let before = store.read().unwrap();
    let audit_before = all_audit(&*store);

    let err = transact(&*store, |tx| -> store::Result<()> {
        tx.put_settings(&some_settings())?;
        tx.audit(&record(1, "twofactor.update", "success"))?;
        assert!(tx.advance_step(id, 8)?);
        tx.put_failures(
            "user:1000",
            "192.0.2.1",
            &LimiterState {
                failures: 1,
                ..LimiterState::default()
            },
            i64::MAX,
        )?;
        tx.put_user_secret(&NewUserSecret::root(&secret(7), 99))?;
        assert_eq!(tx.settings()?, some_settings());
        Err(StoreError::Corrupt("the body gives up".into()))
    })
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt(ref m) if m == "the body gives up"),
        "{err:?}"
    );

    assert_eq!(store.read().unwrap(), before);
    assert_eq!(all_audit(&*store), audit_before);
    assert_eq!(
        transact(&*store, |tx| tx.failures("user:1000", "192.0.2.1")).unwrap(),
        LimiterState::default()
    );
    assert!(
        advance(&*store, id, 8),
        "the rolled-back step is still free"
    );
    // And from a second handle, nothing of it either.
    let other = loc.open();
    assert_eq!(other.read().unwrap().settings, before.settings);
    assert!(all_audit(&*other).is_empty());
}

pub fn transact_returns_the_body_value(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let (a, b) = transact(&*store, |tx| {
        let a = tx.put_user_secret(&NewUserSecret::root(&secret(8), 1))?;
        Ok((a, tx.advance_step(a, 1)?))
    })
    .unwrap();
    assert!(b);
    assert_eq!(store.read().unwrap().root.unwrap().record.id, a);
}

pub fn audit_query_order_filters_and_limit(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let events = [
        (100, "otp.check", "accepted"),
        (200, "otp.check", "wrong"),
        (150, "twofactor.update", "success"), // out of time order on purpose
        (300, "otp.check", "wrong"),
        (400, "auth.login", "success"),
    ];
    for (at, event, outcome) in events {
        transact(&*store, |tx| tx.audit(&record(at, event, outcome))).unwrap();
    }
    let bare = AuditRecord {
        at_ms: 500,
        event: "otp.check".into(),
        outcome: "replayed".into(),
        user: None,
        origin: "tcp:127.0.0.1:53422".into(),
        service: None,
        detail: None,
    };
    transact(&*store, |tx| tx.audit(&bare)).unwrap();

    let all = all_audit(&*store);
    assert_eq!(all.len(), 6);
    assert!(
        all.windows(2)
            .all(|w| (w[0].record.at_ms, w[0].id) > (w[1].record.at_ms, w[1].id)),
        "newest (latest time, then highest id) first"
    );
    assert_eq!(all[0].record, bare, "None fields round-trip");
    assert_eq!(
        all[5].record,
        record(100, "otp.check", "accepted"),
        "JSON detail round-trips"
    );
    let ats: Vec<i64> = all.iter().map(|e| e.record.at_ms).collect();
    assert_eq!(
        ats,
        [500, 400, 300, 200, 150, 100],
        "time order (on the time index), not insertion order"
    );

    let q = |event: Option<&str>, outcome: Option<&str>, since_ms: Option<i64>, limit: usize| {
        store
            .query_audit(&AuditQuery {
                event: event.map(Into::into),
                outcome: outcome.map(Into::into),
                since_ms,
                limit,
                user: None,
            })
            .unwrap()
            .into_iter()
            .map(|e| e.record.at_ms)
            .collect::<Vec<_>>()
    };
    assert_eq!(q(Some("otp.check"), None, None, 100), [500, 300, 200, 100]);
    assert_eq!(q(None, Some("wrong"), None, 100), [300, 200]);
    assert_eq!(q(Some("otp.check"), Some("wrong"), None, 100), [300, 200]);
    assert_eq!(q(None, Some("success"), None, 100), [400, 150]);
    assert_eq!(
        q(None, None, Some(300), 100),
        [500, 400, 300],
        "since is inclusive"
    );
    assert_eq!(q(Some("otp.check"), None, Some(150), 100), [500, 300, 200]);
    assert_eq!(q(Some("otp.check"), Some("wrong"), Some(250), 100), [300]);
    assert_eq!(q(None, None, None, 2), [500, 400]);
    assert_eq!(q(Some("otp.check"), None, None, 1), [500]);
    assert_eq!(q(None, None, None, 0), Vec::<i64>::new());
    assert_eq!(q(Some("nothing"), None, None, 100), Vec::<i64>::new());
    assert_eq!(store.query_audit(&AuditQuery::default()).unwrap().len(), 6);

    // `user`: the account a record names in its detail, else the caller.
    let about = |at_ms: i64, user: Option<&str>, account: Option<&str>| AuditRecord {
        at_ms,
        event: "user.renew_2fa_secret".into(),
        outcome: "success".into(),
        user: user.map(Into::into),
        origin: "unix:uid=0".into(),
        service: None,
        detail: account.map(|a| json!({"account": a})),
    };
    transact(&*store, |tx| {
        tx.audit(&about(600, Some("root"), Some("alice")))?;
        tx.audit(&about(700, Some("alice"), None))?;
        tx.audit(&about(800, Some("alice"), Some("bob")))?;
        tx.audit(&about(900, None, None))
    })
    .unwrap();
    let by_user = |user: &str| {
        store
            .query_audit(&AuditQuery {
                user: Some(user.into()),
                ..AuditQuery::default()
            })
            .unwrap()
            .into_iter()
            .map(|e| e.record.at_ms)
            .collect::<Vec<_>>()
    };
    assert_eq!(by_user("alice"), [700, 600]);
    assert_eq!(by_user("bob"), [800]);
    assert_eq!(by_user("root"), [400, 300, 200, 150, 100]);
    assert_eq!(by_user("nobody"), Vec::<i64>::new());
}

pub fn everything_persists_across_reopen(make: Make<'_>) {
    let loc = make();
    let limited = LimiterState {
        failures: 4,
        window_start_ms: 1,
        locked_until_ms: 2,
        lockouts: 3,
    };
    let (id, audit) = {
        let store = loc.open();
        transact(&*store, |tx| tx.put_settings(&some_settings())).unwrap();
        let id = new_secret(&*store, 9);
        assert!(advance(&*store, id, 4242));
        transact(&*store, |tx| {
            tx.put_failures("user:1000", "198.51.100.9", &limited, i64::MAX)?;
            tx.audit(&record(1, "twofactor.renew_secret", "success"))?;
            tx.audit(&record(2, "otp.check", "accepted"))
        })
        .unwrap();
        (id, all_audit(&*store))
    };
    let store = loc.open();
    let entry = store.read().unwrap();
    assert_eq!(entry.settings, some_settings());
    let rec = entry.root.unwrap().record;
    assert_eq!((rec.id, rec.last_step), (id, Some(4242)));
    assert!(rec.secret.ct_eq(&secret(9)));
    assert_eq!(
        transact(&*store, |tx| tx.failures("user:1000", "198.51.100.9")).unwrap(),
        limited
    );
    assert_eq!(all_audit(&*store), audit);
    assert_eq!(audit.len(), 2);
    // New audit ids keep climbing after a reopen.
    transact(&*store, |tx| tx.audit(&record(3, "auth.login", "success"))).unwrap();
    assert!(all_audit(&*store)[0].id > audit[0].id);
}

pub fn read_sees_own_commits(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    assert_eq!(store.read().unwrap(), SystemEntry::default());
    assert_eq!(
        store.read().unwrap(),
        SystemEntry::default(),
        "served from the cache"
    );
    transact(&*store, |tx| tx.put_settings(&some_settings())).unwrap();
    assert_eq!(store.read().unwrap().settings, some_settings());
    let id = new_secret(&*store, 10);
    assert_eq!(store.read().unwrap().root.unwrap().record.id, id);
    assert!(advance(&*store, id, 77));
    assert_eq!(
        store.read().unwrap().root.unwrap().record.last_step,
        Some(77)
    );
}

pub fn read_sees_commits_of_another_handle(make: Make<'_>) {
    let loc = make();
    let a = loc.open();
    let b = loc.open();
    // Warm a's cache, then change things through b (another process).
    assert_eq!(a.read().unwrap(), SystemEntry::default());
    assert_eq!(a.read().unwrap(), SystemEntry::default());
    transact(&*b, |tx| tx.put_settings(&some_settings())).unwrap();
    seen(|| a.read().unwrap().settings, some_settings());
    let id = new_secret(&*b, 11);
    seen(|| a.read().unwrap().root.map(|r| r.record.id), Some(id));
    let rec = a.read().unwrap().root.unwrap().record;
    assert!(rec.secret.ct_eq(&secret(11)));
    assert!(advance(&*b, id, 9));
    seen(|| a.read().unwrap().root.unwrap().record.last_step, Some(9));
    // And the other way round, with both caches warm.
    assert!(b.read().is_ok());
    transact(&*a, |tx| tx.put_settings(&Settings::default())).unwrap();
    seen(|| b.read().unwrap().settings, Settings::default());
    assert_eq!(a.read().unwrap().settings, Settings::default());
    // Inside a transaction another handle's commit is seen at once.
    transact(&*b, |tx| tx.put_settings(&some_settings())).unwrap();
    assert_eq!(transact(&*a, |tx| tx.settings()).unwrap(), some_settings());
}

/// `read_summary` is `read` without the key, coherent with commits of
/// this handle and of another one, warm cache or not.
pub fn read_summary_matches_read(make: Make<'_>) {
    let loc = make();
    let a = loc.open();
    let b = loc.open();
    let agree = |store: &dyn Store| {
        let summary = store.read_summary().unwrap();
        assert_eq!(summary, EntrySummary::from(&store.read().unwrap()));
        summary
    };
    assert_eq!(agree(&*a), EntrySummary::default());
    assert_eq!(agree(&*a), EntrySummary::default());
    transact(&*a, |tx| tx.put_settings(&some_settings())).unwrap();
    assert_eq!(a.read_summary().unwrap().settings, some_settings());
    let id = new_secret(&*b, 14);
    seen(|| a.read_summary().unwrap().secret_id, Some(id));
    assert_eq!(agree(&*a).secret_id, Some(id));
    transact(&*b, |tx| tx.delete_user_secret("root").map(|_| ())).unwrap();
    seen(|| a.read_summary().unwrap().secret_id, None);
    assert_eq!(agree(&*b).secret_id, None);
}

pub fn concurrent_advance_step_threads_one_winner(make: Make<'_>) {
    const THREADS: usize = 32;
    let loc = make();
    let store: Arc<dyn Store> = Arc::from(loc.open());
    let id = new_secret(&*store, 12);
    for step in [1_000u64, 1_001, 5_000] {
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    transact(&*store, |tx| tx.advance_step(id, step)).unwrap()
                })
            })
            .collect();
        let wins = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&won| won)
            .count();
        assert_eq!(wins, 1, "step {step}");
    }
    assert_eq!(
        store.read().unwrap().root.unwrap().record.last_step,
        Some(5_000)
    );
}

pub fn concurrent_advance_step_two_handles_one_winner(make: Make<'_>) {
    const THREADS: usize = 8;
    let loc = make();
    let handles: [Arc<dyn Store>; 2] = [Arc::from(loc.open()), Arc::from(loc.open())];
    let id = new_secret(&*handles[0], 13);
    for step in 1..=10u64 {
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|i| {
                let store = Arc::clone(&handles[i % 2]);
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    transact(&*store, |tx| tx.advance_step(id, step)).unwrap()
                })
            })
            .collect();
        let wins = threads
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&won| won)
            .count();
        assert_eq!(wins, 1, "step {step}");
    }
    for h in &handles {
        assert_eq!(h.read().unwrap().root.unwrap().record.last_step, Some(10));
    }
}

fn put_user(store: &dyn Store, name: &str, uid: u32, fill: u8) -> SecretId {
    transact(store, |tx| {
        tx.put_user_secret(&NewUserSecret {
            username: name,
            uid,
            secret: &secret(fill),
            digits: Digits::new(7).unwrap(),
            interval: Interval::new(45).unwrap(),
            created_at_ms: 1_700_000_000_000,
        })
    })
    .unwrap()
}

pub fn user_secrets_are_per_account(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    assert_eq!(store.read_user("alice", 1001).unwrap(), UserView::default());
    let a = put_user(&*store, "alice", 1001, 30);
    let b = put_user(&*store, "bob", 1002, 40);
    assert_ne!(a, b);
    let alice = store.read_user("alice", 1001).unwrap().secret.unwrap();
    assert_eq!(alice.uid, 1001);
    assert_eq!(alice.digits.get(), 7);
    assert_eq!(alice.interval.get(), 45);
    assert_eq!(alice.record.secret, secret(30));
    assert_eq!(alice.record.last_step, None);
    assert_eq!(alice.owner(), store::user_owner("alice", 1001));
    // Replay state is the account's own.
    assert!(advance(&*store, a, 10));
    assert!(!advance(&*store, a, 10));
    assert!(advance(&*store, b, 10));
    // The system entry is untouched by user secrets.
    assert_eq!(store.read().unwrap().root, None);
    let mut names: Vec<_> = store
        .read_user_secrets()
        .unwrap()
        .into_iter()
        .map(|i| (i.username, i.uid))
        .collect();
    names.sort();
    assert_eq!(names, vec![("alice".into(), 1001), ("bob".into(), 1002)]);
    drop(store);
    let store = loc.open();
    let alice = store.read_user("alice", 1001).unwrap().secret.unwrap();
    assert_eq!(alice.record.last_step, Some(10));
}

pub fn renewing_a_user_secret_clears_its_state_only(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let a = put_user(&*store, "alice", 1001, 30);
    put_user(&*store, "bob", 1002, 40);
    let alice_owner = store::user_owner("alice", 1001);
    let bob_owner = store::user_owner("bob", 1002);
    let st = LimiterState {
        failures: 3,
        window_start_ms: 1,
        locked_until_ms: 0,
        lockouts: 0,
    };
    transact(&*store, |tx| {
        tx.put_failures(&alice_owner, "local", &st, i64::MAX)?;
        tx.put_failures(&bob_owner, "local", &st, i64::MAX)?;
        tx.put_failures(&root_owner(), "local", &st, i64::MAX)
    })
    .unwrap();
    advance(&*store, a, 5);
    let a2 = put_user(&*store, "alice", 1001, 31);
    assert_ne!(a, a2);
    let alice = store.read_user("alice", 1001).unwrap().secret.unwrap();
    assert_eq!(alice.record.secret, secret(31));
    assert_eq!(alice.record.last_step, None);
    transact(&*store, |tx| {
        assert_eq!(tx.failures(&alice_owner, "local")?, LimiterState::default());
        assert_eq!(tx.failures(&bob_owner, "local")?, st);
        assert_eq!(tx.failures(&root_owner(), "local")?, st);
        // The old row is gone: its step can no longer be advanced.
        assert!(!tx.advance_step(a, 100)?);
        Ok(())
    })
    .unwrap();
}

pub fn deleting_a_user_secret_removes_everything_of_it(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    put_user(&*store, "alice", 1001, 30);
    put_user(&*store, "bob", 1002, 40);
    transact(&*store, |tx| {
        tx.put_recovery_codes("alice", 1001, &["aaaaa-bbbbb", "ccccc-ddddd"])?;
        tx.put_recovery_codes("bob", 1002, &["eeeee-fffff"])?;
        tx.put_pending_secret(&PendingSecret {
            username: "alice".into(),
            uid: 1001,
            secret: secret(50),
            digits: Digits::new(6).unwrap(),
            interval: Interval::new(30).unwrap(),
            expires_at_ms: 99,
        })
    })
    .unwrap();
    assert!(transact(&*store, |tx| tx.delete_user_secret("alice")).unwrap());
    assert!(!transact(&*store, |tx| tx.delete_user_secret("alice")).unwrap());
    assert_eq!(store.read_user("alice", 1001).unwrap(), UserView::default());
    transact(&*store, |tx| {
        assert_eq!(tx.pending_secret("alice")?, None);
        Ok(())
    })
    .unwrap();
    assert_eq!(store.read_user("bob", 1002).unwrap().recovery_codes_left, 1);
    assert!(store.read_user("bob", 1002).unwrap().secret.is_some());
}

pub fn pending_secret_round_trip(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    let p = PendingSecret {
        username: "alice".into(),
        uid: 1001,
        secret: secret(50),
        digits: Digits::new(8).unwrap(),
        interval: Interval::new(60).unwrap(),
        expires_at_ms: 123_456,
    };
    transact(&*store, |tx| tx.put_pending_secret(&p)).unwrap();
    let q = PendingSecret {
        secret: secret(51),
        expires_at_ms: 999,
        ..p.clone()
    };
    transact(&*store, |tx| {
        assert_eq!(tx.pending_secret("alice")?, Some(p.clone()));
        assert_eq!(tx.pending_secret("bob")?, None);
        tx.put_pending_secret(&q)
    })
    .unwrap();
    drop(store);
    let store = loc.open();
    transact(&*store, |tx| {
        assert_eq!(tx.pending_secret("alice")?, Some(q.clone()));
        tx.delete_pending_secret("alice")?;
        assert_eq!(tx.pending_secret("alice")?, None);
        Ok(())
    })
    .unwrap();
}

pub fn recovery_codes_are_bound_to_the_uid(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    put_user(&*store, "alice", 1001, 30);
    transact(&*store, |tx| {
        tx.put_recovery_codes("alice", 1001, &["aaaaa-bbbbb", "ccccc-ddddd"])
    })
    .unwrap();
    // Another account of the same name (a new uid) neither sees nor uses them.
    assert_eq!(
        store.read_user("alice", 1050).unwrap().recovery_codes_left,
        0
    );
    assert_eq!(
        store.read_user("alice", 1001).unwrap().recovery_codes_left,
        2
    );
    transact(&*store, |tx| {
        assert_eq!(tx.use_recovery_code("alice", 1050, "aaaaa-bbbbb")?, None);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        store.read_user("alice", 1001).unwrap().recovery_codes_left,
        2
    );
    // A secret for the new uid deletes the old uid's codes.
    put_user(&*store, "alice", 1050, 31);
    assert_eq!(
        store.read_user("alice", 1001).unwrap().recovery_codes_left,
        0
    );
    transact(&*store, |tx| {
        assert_eq!(tx.use_recovery_code("alice", 1001, "aaaaa-bbbbb")?, None);
        Ok(())
    })
    .unwrap();
}

pub fn other_names_holding_a_secret_of_the_uid_are_listed(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    put_user(&*store, "alice", 1001, 30);
    put_user(&*store, "bob", 1002, 31);
    assert_eq!(
        store
            .read_user("alicia", 1001)
            .unwrap()
            .other_names_with_uid,
        vec!["alice".to_owned()]
    );
    assert!(
        store
            .read_user("alice", 1001)
            .unwrap()
            .other_names_with_uid
            .is_empty()
    );
    assert!(
        store
            .read_user("carol", 1003)
            .unwrap()
            .other_names_with_uid
            .is_empty()
    );
}

pub fn recovery_codes_work_once_per_account(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    transact(&*store, |tx| {
        tx.put_recovery_codes(
            "alice",
            1001,
            &["aaaaa-bbbbb", "ccccc-ddddd", "eeeee-fffff"],
        )
    })
    .unwrap();
    assert_eq!(
        store.read_user("alice", 1001).unwrap().recovery_codes_left,
        3
    );
    transact(&*store, |tx| {
        assert_eq!(tx.use_recovery_code("bob", 1002, "aaaaa-bbbbb")?, None);
        assert_eq!(tx.use_recovery_code("alice", 1001, "zzzzz-zzzzz")?, None);
        assert_eq!(tx.use_recovery_code("alice", 1001, "aaaaa-bbbbb")?, Some(2));
        assert_eq!(tx.use_recovery_code("alice", 1001, "aaaaa-bbbbb")?, None);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        store.read_user("alice", 1001).unwrap().recovery_codes_left,
        2
    );
    transact(&*store, |tx| {
        // Regenerating revokes the old ones.
        tx.put_recovery_codes("alice", 1001, &["ggggg-hhhhh"])?;
        assert_eq!(tx.use_recovery_code("alice", 1001, "ccccc-ddddd")?, None);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        store.read_user("alice", 1001).unwrap().recovery_codes_left,
        1
    );
    drop(store);
    let store = loc.open();
    assert_eq!(
        transact(&*store, |tx| tx.use_recovery_code(
            "alice",
            1001,
            "ggggg-hhhhh"
        ))
        .unwrap(),
        Some(0)
    );
}

/// Root's secret is its row of the per-user secrets (uid 0): the entry's
/// read shows that row with its own numbers, and every handle sees a change
/// of it; a row of the name made for another uid is not root's.
pub fn roots_row_is_what_the_entry_shows(make: Make<'_>) {
    let loc = make();
    let (a, b) = (loc.open(), loc.open());
    let id = transact(&*b, |tx| {
        tx.put_user_secret(&NewUserSecret {
            username: "root",
            uid: 0,
            secret: &secret(6),
            digits: Digits::new(8).unwrap(),
            interval: Interval::new(60).unwrap(),
            created_at_ms: 5,
        })
    })
    .unwrap();
    assert!(advance(&*b, id, 40));
    seen(|| a.read_summary().unwrap().secret_id, Some(id));
    let root = a.read().unwrap().root.unwrap();
    assert_eq!((root.username.as_str(), root.uid), ("root", 0));
    assert_eq!((root.digits.get(), root.interval.get()), (8, 60));
    assert!(root.record.secret.ct_eq(&secret(6)));
    assert_eq!(root.record.last_step, Some(40));
    assert_eq!(
        a.read().unwrap().settings,
        Settings::default(),
        "defaults apart"
    );
    assert_eq!(
        transact(&*a, |tx| tx.user_secret("root")).unwrap().unwrap(),
        root
    );

    // New numbers for the same secret: replay state and counters stay.
    let st = LimiterState {
        failures: 2,
        window_start_ms: 1,
        locked_until_ms: 0,
        lockouts: 0,
    };
    transact(&*b, |tx| {
        tx.put_failures(&root_owner(), "local", &st, i64::MAX)
    })
    .unwrap();
    let set = |name: &'static str| {
        transact(&*b, move |tx| {
            tx.set_secret_params(name, Digits::new(7).unwrap(), Interval::new(45).unwrap())
        })
        .unwrap()
    };
    assert!(set("root"));
    assert!(!set("nobody"));
    seen(
        || {
            a.read()
                .unwrap()
                .root
                .map(|r| (r.digits.get(), r.interval.get()))
        },
        Some((7, 45)),
    );
    let root = a.read().unwrap().root.unwrap();
    assert_eq!((root.record.id, root.record.last_step), (id, Some(40)));
    assert_eq!(
        transact(&*a, |tx| tx.failures(&root_owner(), "local")).unwrap(),
        st
    );

    // A secret of the name for another uid is not root's.
    transact(&*b, |tx| {
        tx.put_user_secret(&NewUserSecret {
            username: "root",
            uid: 1005,
            secret: &secret(7),
            digits: Digits::default(),
            interval: Interval::default(),
            created_at_ms: 6,
        })
    })
    .unwrap();
    seen(|| a.read_summary().unwrap().secret_id, None);
    assert_eq!(a.read().unwrap().root, None);
}

pub fn deleting_roots_secret_removes_it(make: Make<'_>) {
    let loc = make();
    let store = loc.open();
    assert!(!transact(&*store, |tx| tx.delete_user_secret("root")).unwrap());
    let id = new_secret(&*store, 3);
    assert!(transact(&*store, |tx| tx.delete_user_secret("root")).unwrap());
    assert_eq!(store.read().unwrap().root, None);
    assert!(!advance(&*store, id, 1));
}

pub fn store_is_send_sync_debug(make: Make<'_>) {
    fn check<T: Send + Sync + std::fmt::Debug + ?Sized>(_: &T) {}
    let loc = make();
    let store = loc.open();
    check(&*store);
    new_secret(&*store, 14);
    let shown = format!("{store:?} {:?}", store.read().unwrap());
    assert!(!shown.contains(secret(14).to_base32().as_str()), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
}

/// Concurrent uses of one recovery code through two handles (two
/// processes, or two nodes of one database): exactly one succeeds.
pub fn concurrent_recovery_code_two_handles_one_winner(make: Make<'_>) {
    const THREADS: usize = 8;
    let loc = make();
    let handles: [Arc<dyn Store>; 2] = [Arc::from(loc.open()), Arc::from(loc.open())];
    for round in 0..5 {
        let code = format!("rcode-{round:05}");
        transact(&*handles[0], |tx| {
            tx.put_recovery_codes("alice", 1000, &[&code])
        })
        .unwrap();
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|i| {
                let store = Arc::clone(&handles[i % 2]);
                let barrier = Arc::clone(&barrier);
                let code = code.clone();
                thread::spawn(move || {
                    barrier.wait();
                    transact(&*store, |tx| tx.use_recovery_code("alice", 1000, &code)).unwrap()
                })
            })
            .collect();
        let wins: Vec<_> = threads
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(wins, vec![0], "round {round}");
    }
}

/// Read-modify-writes of one failure counter from threads on two handles
/// never lose a count (the counter is locked from its read to the commit).
/// Records of one kind written at once from many handles: every record is
/// counted, and the rows they take stay bounded by the free ones plus the
/// writers that ran together (none queues for a single aggregate row).
pub fn concurrent_aggregated_records_are_all_counted(make: Make<'_>) {
    const THREADS: usize = 8;
    const EACH: u64 = 25;
    const FREE: u32 = 3;
    let loc = make();
    let handles: [Arc<dyn Store>; 2] = [Arc::from(loc.open()), Arc::from(loc.open())];
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let store = Arc::clone(&handles[i % 2]);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for n in 0..EACH {
                    let at = i64::try_from(n).unwrap();
                    transact(&*store, |tx| {
                        tx.audit_as(
                            &record(at, "otp.check", "wrong"),
                            AuditClass::Routine,
                            Some(&Aggregate {
                                key: "k",
                                since_ms: 0,
                                free: FREE,
                            }),
                        )
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let rows = all_audit(&*handles[1]);
    let total: u64 = rows.iter().map(|e| e.count).sum();
    assert_eq!(total, THREADS as u64 * EACH, "every record counted");
    assert!(
        rows.len() <= FREE as usize + THREADS,
        "{} rows for {} records",
        rows.len(),
        THREADS as u64 * EACH
    );
}

/// What a wrong check by an administrator on the socket does: the settings
/// and root's secret as a cache may give them, then one routine record of
/// a kind aggregated after `free`.
fn exempt_wrong_check(tx: &mut dyn store::Tx, at_ms: i64, free: u32) -> store::Result<()> {
    assert!(tx.settings_cached()?.enabled);
    assert!(tx.user_secret_cached("root")?.is_some());
    tx.audit_as(
        &record(at_ms, "otp.check", "wrong"),
        AuditClass::Routine,
        Some(&Aggregate {
            key: "otp.check wrong root",
            since_ms: 0,
            free,
        }),
    )
}

/// `threads` threads, started together, each running `each` wrong checks
/// of an exempt caller one after the other (times `thread * each + n`).
fn exempt_checks_at_once(store: &Arc<dyn Store>, threads: usize, each: i64, free: u32) {
    let barrier = Arc::new(Barrier::new(threads));
    let running: Vec<_> = (0..threads)
        .map(|i| {
            let store = Arc::clone(store);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for n in 0..each {
                    let at = i64::try_from(i).unwrap() * each + n;
                    transact(&*store, |tx| exempt_wrong_check(tx, at, free)).unwrap();
                }
            })
        })
        .collect();
    for t in running {
        t.join().unwrap();
    }
}

/// Many concurrent transactions that write only a routine record of one
/// kind, on one handle (one node): the first `free` records are rows of
/// their own, every later one is counted on one aggregate row, exactly as
/// if they had run one after the other, whether the engine writes each in
/// its own transaction or many in one; and every acknowledged record is
/// still there once the handle is closed and the state reopened.
pub fn concurrent_routine_records_of_one_handle_are_counted_as_in_turn(make: Make<'_>) {
    const THREADS: usize = 16;
    const EACH: i64 = 25;
    const FREE: u32 = 3;
    let loc = make();
    let store: Arc<dyn Store> = Arc::from(loc.open());
    new_secret(&*store, 1);
    transact(&*store, |tx| tx.put_settings(&some_settings())).unwrap();
    exempt_checks_at_once(&store, THREADS, EACH, FREE);
    drop(store);
    let reopened = loc.open();
    let rows = all_audit(&*reopened);
    let total: u64 = rows.iter().map(|e| e.count).sum();
    assert_eq!(total, THREADS as u64 * EACH as u64, "every record counted");
    let mut counts: Vec<u64> = rows.iter().map(|e| e.count).collect();
    counts.sort_unstable();
    let mut want = vec![1; FREE as usize];
    want.push(total - u64::from(FREE));
    assert_eq!(counts, want, "{FREE} rows of their own, then one aggregate");
}

/// Reads a check may take from a cache follow another handle's change of
/// root's secret and of the settings once that change is seen.
pub fn cached_reads_follow_another_handles_change(make: Make<'_>) {
    let loc = make();
    let a = loc.open();
    let b = loc.open();
    let first = new_secret(&*a, 1);
    let cached = |s: &dyn Store| {
        transact(s, |tx| {
            Ok((
                tx.settings_cached()?,
                tx.user_secret_cached("root")?.map(|u| u.record.id),
            ))
        })
        .unwrap()
    };
    assert_eq!(cached(&*b), (Settings::default(), Some(first)));
    let second = new_secret(&*a, 2);
    transact(&*a, |tx| tx.put_settings(&some_settings())).unwrap();
    seen(|| cached(&*b), (some_settings(), Some(second)));
    // Not root's: read as it is.
    assert_eq!(
        transact(&*b, |tx| tx.user_secret_cached("alice")).unwrap(),
        None
    );
}

/// A snapshot reads what was committed while another handle holds a write
/// transaction open on the same rows (with its counter locked): it neither
/// waits for that writer nor sees its uncommitted changes.
pub fn snapshot_reads_beside_an_open_write(make: Make<'_>) {
    let loc = make();
    let writer = loc.open();
    let reader = loc.open();
    let st = LimiterState {
        failures: 2,
        window_start_ms: 1,
        locked_until_ms: 99,
        lockouts: 1,
    };
    new_secret(&*writer, 3);
    transact(&*writer, |tx| {
        tx.put_failures(&root_owner(), "192.0.2.1", &st, i64::MAX)?;
        tx.put_pending_secret(&PendingSecret {
            username: "alice".into(),
            uid: 1001,
            secret: secret(4),
            digits: Digits::new(6).unwrap(),
            interval: Interval::new(30).unwrap(),
            expires_at_ms: 5_000,
        })
    })
    .unwrap();
    let seen = thread::scope(|s| {
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let reader = &*reader;
        s.spawn(move || {
            if held_rx.recv().is_ok() {
                let _ = done_tx.send(read_snapshot(reader, |snap| {
                    Ok((
                        snap.failures(&root_owner(), "192.0.2.1")?,
                        snap.user_secret("root")?.map(|u| u.record.secret),
                        snap.pending_secret("alice")?.map(|p| p.expires_at_ms),
                    ))
                }));
            }
        });
        transact(&*writer, |tx| {
            // Lock the counter as a check does, then change all three.
            let mut locked = tx.failures(&root_owner(), "192.0.2.1")?;
            locked.failures += 1;
            tx.put_failures(&root_owner(), "192.0.2.1", &locked, i64::MAX)?;
            tx.put_user_secret(&NewUserSecret::root(&secret(5), 2))?;
            tx.delete_pending_secret("alice")?;
            held_tx.send(()).unwrap();
            Ok(done_rx.recv_timeout(std::time::Duration::from_secs(30)))
        })
        .unwrap()
    });
    let (failures, root, pending) = seen
        .expect("the snapshot answered while the writer held its locks")
        .unwrap();
    assert_eq!(failures, st, "the committed counter, not the open write");
    assert!(root.expect("root's committed secret").ct_eq(&secret(3)));
    assert_eq!(pending, Some(5_000));
}

pub fn concurrent_failure_counts_are_all_kept(make: Make<'_>) {
    const THREADS: usize = 8;
    const EACH: u32 = 5;
    let loc = make();
    let handles: [Arc<dyn Store>; 2] = [Arc::from(loc.open()), Arc::from(loc.open())];
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let store = Arc::clone(&handles[i % 2]);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..EACH {
                    transact(&*store, |tx| {
                        let mut st = tx.failures(&root_owner(), "192.0.2.1")?;
                        st.failures += 1;
                        st.window_start_ms = 1;
                        tx.put_failures(&root_owner(), "192.0.2.1", &st, i64::MAX)
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = transact(&*handles[1], |tx| tx.failures(&root_owner(), "192.0.2.1")).unwrap();
    assert_eq!(st.failures, THREADS as u32 * EACH);
}

// --------------------------------------------------------------- backends

/// Instantiates every case as a `#[test]` against one backend.
macro_rules! backend {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;
            backend!(@cases $make;
                defaults_on_first_open,
                settings_round_trip,
                putting_roots_secret_then_read_returns_it,
                advance_step_is_monotonic_and_survives_reopen,
                a_new_secret_starts_without_replay_state,
                failures_are_keyed_by_owner_and_origin,
                expire_failures_deletes_in_batches,
                a_new_secret_clears_its_owners_failures,
                prune_audit_by_age_and_count,
                clear_failures_ends_one_owners_lock_outs,
                read_user_secrets_matches_the_transactions_view,
                audit_classes_are_pruned_on_their_own_budgets,
                aggregated_audit_records_count_repeats,
                rollback_on_err_leaves_nothing,
                transact_returns_the_body_value,
                audit_query_order_filters_and_limit,
                everything_persists_across_reopen,
                read_sees_own_commits,
                read_sees_commits_of_another_handle,
                read_summary_matches_read,
                concurrent_advance_step_threads_one_winner,
                concurrent_advance_step_two_handles_one_winner,
                store_is_send_sync_debug,
                user_secrets_are_per_account,
                renewing_a_user_secret_clears_its_state_only,
                deleting_a_user_secret_removes_everything_of_it,
                pending_secret_round_trip,
                recovery_codes_work_once_per_account,
                recovery_codes_are_bound_to_the_uid,
                other_names_holding_a_secret_of_the_uid_are_listed,
                deleting_roots_secret_removes_it,
                roots_row_is_what_the_entry_shows,
                concurrent_recovery_code_two_handles_one_winner,
                concurrent_failure_counts_are_all_kept,
                snapshot_reads_beside_an_open_write,
                concurrent_aggregated_records_are_all_counted,
                changes_are_told_once_to_every_handle,
                concurrent_routine_records_of_one_handle_are_counted_as_in_turn,
                cached_reads_follow_another_handles_change,
            );
        }
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                super::$case(&$make)
            }
        )*
    };
}

/// A temporary state directory for [`SqliteStore`].
struct SqliteDir(tempfile::TempDir);

impl Location for SqliteDir {
    fn open(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(&self.0.path().join("state")).unwrap())
    }
}

fn sqlite() -> Box<dyn Location> {
    Box::new(SqliteDir(tempfile::tempdir().unwrap()))
}

backend!(sqlite_backend, sqlite);

// The PostgreSQL backend: one throw-away cluster for the whole test
// process, a fresh database (and key file) per case. Several handles on
// one location are several nodes on one database.
#[path = "pgcluster/mod.rs"]
mod pgcluster;

/// A database of the shared test cluster with the key file its nodes use.
struct PgDb {
    url: String,
    keys: tempfile::TempDir,
}

impl Location for PgDb {
    fn open(&self) -> Box<dyn Store> {
        static NODE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NODE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::new(
            store::PgStore::open(&store::PgOptions {
                url: self.url.clone(),
                password: None,
                node: format!("node{n}"),
                pool_size: 8,
                connect_timeout_ms: 5000,
                statement_timeout_ms: 10_000,
                key_file: self.keys.path().join("state").join("secret.key"),
            })
            .unwrap(),
        )
    }
}

fn postgres() -> Box<dyn Location> {
    let cluster = pgcluster::Cluster::shared();
    let db = cluster.fresh_db();
    Box::new(PgDb {
        url: cluster.url(&db),
        keys: tempfile::tempdir().unwrap(),
    })
}

backend!(postgres_backend, postgres);

/// On PostgreSQL, a transaction that wrote only what may be lost in a crash
/// of the database (routine audit records, aggregated or not, pruning,
/// expired counters) commits without waiting for the disk; one that also
/// wrote anything else (a counter, a security record, a setting) waits, and
/// one that wrote nothing needs no setting at all. Every write is still
/// there afterwards.
#[test]
fn postgres_commits_only_routine_writes_without_waiting_for_the_disk() {
    let cluster = pgcluster::Cluster::shared();
    let keys = tempfile::tempdir().unwrap();
    let store = store::PgStore::open(&store::PgOptions {
        url: cluster.url(&cluster.fresh_db()),
        password: None,
        node: "node-relaxed".into(),
        pool_size: 2,
        connect_timeout_ms: 5000,
        statement_timeout_ms: 10_000,
        key_file: keys.path().join("state").join("secret.key"),
    })
    .unwrap();
    let relaxed_after = |f: Body<'_>| {
        let before = store.relaxed_commits();
        transact(&store, f).unwrap();
        store.relaxed_commits() - before
    };
    let routine = |tx: &mut dyn store::Tx, at: i64| {
        tx.audit_as(
            &record(at, "otp.check", "wrong"),
            AuditClass::Routine,
            Some(&Aggregate {
                key: "k",
                since_ms: 0,
                free: 1,
            }),
        )
    };
    // Routine only: a new row, then an aggregated one, with housekeeping.
    for at in [1, 2, 3] {
        assert_eq!(
            relaxed_after(&|tx| {
                routine(tx, at)?;
                tx.expire_failures(at, 16)?;
                tx.prune_audit(AuditClass::Routine, 0, 100, 32)?;
                tx.prune_audit(AuditClass::Security, 0, 100, 32)?;
                Ok(())
            }),
            1,
            "routine record {at}"
        );
    }
    // With anything else, durable.
    type Body<'a> = &'a dyn Fn(&mut dyn store::Tx) -> store::Result<()>;
    let durable: [Body<'_>; 4] = [
        &|tx| tx.audit(&record(4, "otp.lockout", "locked")),
        &|tx| {
            let st = LimiterState {
                failures: 1,
                window_start_ms: 5,
                locked_until_ms: 0,
                lockouts: 0,
            };
            tx.put_failures(&store::user_owner("root", 0), "192.0.2.1", &st, 1_000)
        },
        &|tx| {
            tx.clear_failures(&store::user_owner("alice", 1000))
                .map(|_| ())
        },
        &|tx| tx.put_settings(&some_settings()),
    ];
    for (i, f) in durable.iter().enumerate() {
        assert_eq!(
            relaxed_after(&|tx| {
                routine(tx, 10 + i as i64)?;
                f(tx)
            }),
            0,
            "durable case {i}"
        );
    }
    // Nothing written: nothing to decide.
    assert_eq!(relaxed_after(&|tx| tx.settings().map(|_| ())), 0);
    // Every record is there: 1 + 1 aggregating 2 + 4, and the lock-out.
    let rows = all_audit(&store);
    let routine_count: u64 = rows
        .iter()
        .filter(|e| e.record.event == "otp.check")
        .map(|e| e.count)
        .sum();
    assert_eq!(routine_count, 7);
    assert!(rows.iter().any(|e| e.record.event == "otp.lockout"));
    assert_eq!(
        transact(&store, |tx| tx
            .failures(&store::user_owner("root", 0), "192.0.2.1"))
        .unwrap()
        .failures,
        1
    );
}

fn pg_store(url: String, keys: &tempfile::TempDir, node: &str, timeout_ms: u64) -> store::PgStore {
    store::PgStore::open(&store::PgOptions {
        url,
        password: None,
        node: node.into(),
        pool_size: 8,
        connect_timeout_ms: 2000,
        statement_timeout_ms: timeout_ms,
        key_file: keys.path().join("state").join("secret.key"),
    })
    .unwrap()
}

/// On PostgreSQL, transactions that read only what the node caches and
/// write only routine records take no connection from the pool: their
/// records are committed by the node's audit writer, many transactions'
/// in one commit (without waiting for the disk, as routine records always
/// were), and each returns once its own are committed.
#[test]
fn postgres_routine_only_transactions_are_committed_together_by_the_audit_writer() {
    const THREADS: usize = 16;
    const EACH: i64 = 20;
    let cluster = pgcluster::Cluster::shared();
    let keys = tempfile::tempdir().unwrap();
    let store = Arc::new(pg_store(
        cluster.url(&cluster.fresh_db()),
        &keys,
        "node-batch",
        10_000,
    ));
    new_secret(&*store, 1);
    transact(&*store, |tx| tx.put_settings(&some_settings())).unwrap();
    // Once the node listens for changes, the entry is cached.
    seen(
        || {
            store.read().unwrap();
            store.reads_cached()
        },
        true,
    );
    let connections = store.pool_connections();
    let (batches, relaxed) = (store.audit_batches(), store.relaxed_commits());
    exempt_checks_at_once(&(Arc::clone(&store) as Arc<dyn Store>), THREADS, EACH, 3);
    let total = THREADS as u64 * EACH as u64;
    let commits = store.audit_batches() - batches;
    assert!(commits >= 1, "the writer committed nothing");
    assert!(
        commits < total,
        "{commits} commits for {total} transactions"
    );
    assert_eq!(
        store.relaxed_commits() - relaxed,
        commits,
        "each batch commits without waiting for the disk, and nothing else ran"
    );
    assert_eq!(
        store.pool_connections(),
        connections,
        "a pool connection was taken"
    );
    let counted: u64 = all_audit(&*store).iter().map(|e| e.count).sum();
    assert_eq!(counted, total);
}

/// On PostgreSQL, when the database stops while checks wait for the audit
/// writer, every one of them fails as the database being unavailable,
/// within the statement time-out, none hangs; a record acknowledged
/// before is never lost, and the node serves again once the database is
/// back.
#[test]
fn postgres_checks_waiting_for_the_audit_writer_fail_in_time_when_the_database_stops() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};
    const THREADS: usize = 12;
    const TIMEOUT_MS: u64 = 1500;
    let cluster = pgcluster::Cluster::start(&pgcluster::Setup::default());
    let url = cluster.url(&cluster.fresh_db());
    let keys = tempfile::tempdir().unwrap();
    let store = Arc::new(pg_store(url.clone(), &keys, "node-loss", TIMEOUT_MS));
    new_secret(&*store, 1);
    transact(&*store, |tx| tx.put_settings(&some_settings())).unwrap();
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let running = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let (store, acknowledged, stopped, running) = (
                Arc::clone(&store),
                Arc::clone(&acknowledged),
                Arc::clone(&stopped),
                Arc::clone(&running),
            );
            thread::spawn(move || {
                let mut n = 0i64;
                loop {
                    let t = Instant::now();
                    let at = i64::try_from(i).unwrap() * 1_000_000 + n;
                    let r = transact(&*store, |tx| exempt_wrong_check(tx, at, 3));
                    let took = t.elapsed();
                    if n == 0 {
                        running.wait();
                    }
                    n += 1;
                    match r {
                        Ok(()) => {
                            acknowledged.fetch_add(1, Ordering::SeqCst);
                            assert!(n < 1_000_000, "the database never stopped");
                        }
                        Err(e) => {
                            assert!(
                                stopped.load(Ordering::SeqCst),
                                "failed before the stop: {e}"
                            );
                            assert_eq!(e.db_kind(), Some(store::DbErrorKind::Unavailable), "{e}");
                            return took;
                        }
                    }
                }
            })
        })
        .collect();
    // Every thread has had a check through; the database stops under load.
    running.wait();
    stopped.store(true, Ordering::SeqCst);
    cluster.stop_server();
    let limit = Duration::from_millis(TIMEOUT_MS) + Duration::from_millis(1000);
    for t in threads {
        let took = t.join().unwrap();
        assert!(took < limit, "a check waited {took:?}");
    }
    cluster.start_server();
    // Serves again: a check goes through once the node has reconnected.
    let back = Instant::now();
    while transact(&*store, |tx| exempt_wrong_check(tx, 2_000_000_000, 3)).is_err() {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "not serving again"
        );
        thread::yield_now();
    }
    let counted: u64 = all_audit(&*store).iter().map(|e| e.count).sum();
    let acknowledged = acknowledged.load(Ordering::SeqCst) + 1;
    // Each acknowledged record is kept; at most the batch being written
    // when the server stopped may have committed unacknowledged.
    assert!(counted >= acknowledged, "{counted} kept of {acknowledged}");
    assert!(
        counted <= acknowledged + THREADS as u64,
        "{counted} kept of {acknowledged}"
    );
}
