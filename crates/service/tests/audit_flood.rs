//! The audit trail under a flood of checks: repeats are aggregated, and
//! security records keep their own budget. Time is moved by hand.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::Arc;

use common::Fixture;
use otp::{Algorithm, KeyUri, Totp};
use service::{
    AuditRetention, Caller, CheckOutcome, Clock, Origin, OsRandom, RateLimits, SecretOptions,
    UpdateRequest, UserRef,
};
use store::{AuditEntry, AuditQuery};

/// The service on a state in memory-backed storage when the machine has it
/// (`/dev/shm`): a hundred thousand durable transactions are about the
/// store's logic here, not the disk's flush rate.
fn fixture_with(limits: RateLimits, retention: AuditRetention) -> Fixture {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let store = store::SqliteStore::open(&dir.path().join("state")).unwrap();
    let clock = Arc::new(service::ManualClock::at_secs(common::T0));
    let tf = common::two_factor(store, clock.clone(), Arc::new(OsRandom), limits)
        .with_audit_retention(retention);
    Fixture { dir, clock, tf }
}

fn root_unix() -> Caller {
    Caller::new(Some("root"), Origin::Unix { uid: 0, pid: None }).as_admin(true)
}

fn alice() -> UserRef {
    UserRef::new("alice", 1001)
}

/// Alice on the Unix socket, a new connection (pid) each time.
fn alice_unix(pid: i32) -> Caller {
    Caller::new(
        Some("alice"),
        Origin::Unix {
            uid: 1001,
            pid: Some(pid),
        },
    )
}

/// 2FA on, and alice with a secret of her own; a code that is wrong now.
fn alice_enrolled(f: &Fixture) -> String {
    f.tf.update(
        &root_unix(),
        UpdateRequest {
            enabled: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    let cfg =
        f.tf.renew_user_secret(&root_unix(), &alice(), SecretOptions::default())
            .unwrap();
    let uri = cfg.provisioning_uri.unwrap().to_string();
    let k = KeyUri::parse(&uri).unwrap();
    let now = u64::try_from(f.clock.now_ms() / 1000).unwrap();
    let right = Totp::new(&k.secret, k.digits, k.period, Algorithm::Sha1)
        .code(now)
        .to_string();
    if right == "000000" {
        "000001"
    } else {
        "000000"
    }
    .to_owned()
}

fn audit(f: &Fixture, event: &str) -> Vec<AuditEntry> {
    f.tf.audit(&AuditQuery {
        event: Some(event.into()),
        limit: 1_000_000,
        ..Default::default()
    })
    .unwrap()
}

fn audit_rows(f: &Fixture) -> usize {
    f.tf.audit(&AuditQuery {
        limit: 1_000_000,
        ..Default::default()
    })
    .unwrap()
    .len()
}

/// 100,000 wrong codes from one unprivileged account, about as fast as the
/// daemon answers them (a millisecond apart), each on a new connection:
/// the lock-out recorded before the flood stays, the flood adds a few
/// hundred rows at most, and their counts add up to every check.
#[test]
fn a_flood_of_wrong_checks_keeps_an_earlier_lock_out_and_adds_few_rows() {
    let f = fixture_with(RateLimits::default(), AuditRetention::default());
    let wrong = alice_enrolled(&f);
    // An earlier brute force from an address: locked out.
    let tcp = Caller::new(
        Some("alice"),
        Origin::Tcp {
            addr: [192, 0, 2, 7].into(),
            port: 40000,
        },
    );
    for _ in 0..5 {
        f.tf.check_code_for(&tcp, &alice(), Some(&wrong)).unwrap();
    }
    let lockouts = audit(&f, "otp.lockout");
    assert_eq!(lockouts.len(), 1, "{lockouts:?}");
    let earlier = lockouts[0].clone();
    let before = audit_rows(&f);

    const CHECKS: usize = 100_000;
    let mut locked = 0;
    for i in 0..CHECKS {
        f.clock.advance_ms(1);
        let caller = alice_unix(i32::try_from(i % 30_000).unwrap() + 2);
        match f
            .tf
            .check_code_for(&caller, &alice(), Some(&wrong))
            .unwrap()
        {
            CheckOutcome::Wrong => {}
            CheckOutcome::LockedOut { .. } => locked += 1,
            other => panic!("check {i}: {other:?}"),
        }
    }
    assert!(locked > CHECKS / 2, "the flood was mostly locked out");

    let lockouts = audit(&f, "otp.lockout");
    assert!(lockouts.contains(&earlier), "the earlier lock-out is gone");
    let added = audit_rows(&f) - before;
    eprintln!("{CHECKS} checks added {added} audit rows");
    assert!(added <= 300, "{added} rows for {CHECKS} checks");
    let counted: u64 = audit(&f, "otp.check")
        .iter()
        .filter(|e| e.record.origin.starts_with("unix:uid=1001"))
        .map(|e| e.count)
        .sum();
    assert_eq!(counted, CHECKS as u64, "every check is accounted for");
}

/// Routine records are pruned to their own budget; security records (the
/// lock-out, the secret's creation, the settings change) stay, however
/// many routine ones come after them.
#[test]
fn routine_records_cannot_push_security_records_out() {
    let retention = AuditRetention {
        max_rows: std::num::NonZeroU64::new(20).expect("non-zero"),
        aggregate_after: 2,
        ..AuditRetention::default()
    };
    let f = fixture_with(RateLimits::default(), retention);
    let wrong = alice_enrolled(&f);
    for _ in 0..5 {
        f.tf.check_code_for(&alice_unix(1), &alice(), Some(&wrong))
            .unwrap();
    }
    let security = |f: &Fixture| {
        ["twofactor.update", "user.renew_2fa_secret", "otp.lockout"]
            .iter()
            .flat_map(|e| audit(f, e))
            .map(|e| e.id)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let kept = security(&f);
    assert_eq!(kept.len(), 3);
    // Many callers (addresses), each its own kind: no aggregation helps.
    for last in 0..200u8 {
        let caller = Caller::new(
            None,
            Origin::Tcp {
                addr: [198, 51, 100, last].into(),
                port: 1,
            },
        );
        f.clock.advance_ms(10);
        f.tf.check_code_for(&caller, &alice(), Some(&wrong))
            .unwrap();
    }
    assert!(
        security(&f).is_superset(&kept),
        "a security record was pruned"
    );
    // Retention runs once a period: the first audited transaction of the
    // next takes the routine records back to their budget.
    f.clock.advance_ms(service::PRUNE_PERIOD_MS);
    f.tf.check_code_for(&alice_unix(1), &alice(), Some(&wrong))
        .unwrap();
    assert!(
        security(&f).is_superset(&kept),
        "a security record was pruned"
    );
    let routine = audit(&f, "otp.check").len();
    assert!(routine <= 20, "{routine} routine rows kept");
}

/// A store that counts the retention passes (audit classes pruned,
/// expired counters deleted) its transactions run.
#[derive(Debug)]
struct PruneCounting {
    inner: store::SqliteStore,
    prunes: std::sync::atomic::AtomicUsize,
    expiries: std::sync::atomic::AtomicUsize,
    reads: Reads,
}

/// The entry and secret reads of [`PruneCounting`]'s transactions: those
/// an engine may answer from its cache, and those made in the transaction.
#[derive(Debug, Default)]
struct Reads {
    cached: std::sync::atomic::AtomicUsize,
    in_tx: std::sync::atomic::AtomicUsize,
}

/// A transaction of [`PruneCounting`]: everything goes to the engine's.
struct CountingTx<'a> {
    inner: &'a mut dyn store::Tx,
    prunes: &'a std::sync::atomic::AtomicUsize,
    expiries: &'a std::sync::atomic::AtomicUsize,
    reads: &'a Reads,
}

impl store::Tx for CountingTx<'_> {
    fn settings(&mut self) -> store::Result<store::Settings> {
        self.reads
            .in_tx
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.settings()
    }
    fn settings_cached(&mut self) -> store::Result<store::Settings> {
        self.reads
            .cached
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.settings_cached()
    }
    fn user_secret_cached(&mut self, username: &str) -> store::Result<Option<store::UserSecret>> {
        self.reads
            .cached
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.user_secret_cached(username)
    }
    fn put_settings(&mut self, settings: &store::Settings) -> store::Result<()> {
        self.inner.put_settings(settings)
    }
    fn advance_step(&mut self, id: store::SecretId, step: u64) -> store::Result<bool> {
        self.inner.advance_step(id, step)
    }
    fn failures(&mut self, owner: &str, origin: &str) -> store::Result<store::LimiterState> {
        self.inner.failures(owner, origin)
    }
    fn put_failures(
        &mut self,
        owner: &str,
        origin: &str,
        state: &store::LimiterState,
        expires_at_ms: i64,
    ) -> store::Result<()> {
        self.inner.put_failures(owner, origin, state, expires_at_ms)
    }
    fn clear_failures(&mut self, owner: &str) -> store::Result<usize> {
        self.inner.clear_failures(owner)
    }
    fn expire_failures(&mut self, now_ms: i64, batch: usize) -> store::Result<usize> {
        self.expiries
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.expire_failures(now_ms, batch)
    }
    fn user_secret(&mut self, username: &str) -> store::Result<Option<store::UserSecret>> {
        self.reads
            .in_tx
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.user_secret(username)
    }
    fn put_user_secret(
        &mut self,
        new: &store::NewUserSecret<'_>,
    ) -> store::Result<store::SecretId> {
        self.inner.put_user_secret(new)
    }
    fn set_secret_params(
        &mut self,
        username: &str,
        digits: otp::Digits,
        interval: otp::Interval,
    ) -> store::Result<bool> {
        self.inner.set_secret_params(username, digits, interval)
    }
    fn delete_user_secret(&mut self, username: &str) -> store::Result<bool> {
        self.inner.delete_user_secret(username)
    }
    fn pending_secret(&mut self, username: &str) -> store::Result<Option<store::PendingSecret>> {
        self.inner.pending_secret(username)
    }
    fn put_pending_secret(&mut self, pending: &store::PendingSecret) -> store::Result<()> {
        self.inner.put_pending_secret(pending)
    }
    fn delete_pending_secret(&mut self, username: &str) -> store::Result<()> {
        self.inner.delete_pending_secret(username)
    }
    fn put_recovery_codes(
        &mut self,
        username: &str,
        uid: u32,
        codes: &[&str],
    ) -> store::Result<()> {
        self.inner.put_recovery_codes(username, uid, codes)
    }
    fn use_recovery_code(
        &mut self,
        username: &str,
        uid: u32,
        code: &str,
    ) -> store::Result<Option<u32>> {
        self.inner.use_recovery_code(username, uid, code)
    }
    fn audit_as(
        &mut self,
        record: &store::AuditRecord,
        class: store::AuditClass,
        aggregate: Option<&store::Aggregate<'_>>,
    ) -> store::Result<()> {
        self.inner.audit_as(record, class, aggregate)
    }
    fn prune_audit(
        &mut self,
        class: store::AuditClass,
        older_than_ms: i64,
        keep_rows: u64,
        batch: usize,
    ) -> store::Result<usize> {
        self.prunes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner
            .prune_audit(class, older_than_ms, keep_rows, batch)
    }
}

impl store::Store for PruneCounting {
    fn read(&self) -> store::Result<store::SystemEntry> {
        self.inner.read()
    }
    fn transact_dyn(
        &self,
        f: &mut dyn FnMut(&mut dyn store::Tx) -> store::Result<()>,
    ) -> store::Result<()> {
        self.inner.transact_dyn(&mut |tx| {
            f(&mut CountingTx {
                inner: tx,
                prunes: &self.prunes,
                expiries: &self.expiries,
                reads: &self.reads,
            })
        })
    }
    fn read_snapshot_dyn(
        &self,
        f: &mut dyn FnMut(&mut dyn store::Snapshot) -> store::Result<()>,
    ) -> store::Result<()> {
        self.inner.read_snapshot_dyn(f)
    }
    fn read_user(&self, username: &str, uid: u32) -> store::Result<store::UserView> {
        self.inner.read_user(username, uid)
    }
    fn query_audit(&self, query: &AuditQuery) -> store::Result<Vec<AuditEntry>> {
        self.inner.query_audit(query)
    }
    fn read_user_secrets(&self) -> store::Result<Vec<store::UserSecretInfo>> {
        self.inner.read_user_secrets()
    }
}

fn counting_fixture(dir: tempfile::TempDir) -> (Arc<PruneCounting>, Fixture) {
    let counting = Arc::new(PruneCounting {
        inner: store::SqliteStore::open(&dir.path().join("state")).unwrap(),
        prunes: Default::default(),
        expiries: Default::default(),
        reads: Reads::default(),
    });
    let clock = Arc::new(service::ManualClock::at_secs(common::T0));
    let tf = service::TwoFactor::new(
        counting.clone(),
        clock.clone(),
        Arc::new(OsRandom),
        common::nas_labels(),
        RateLimits::default(),
    );
    (counting, Fixture { dir, clock, tf })
}

/// A check by a caller exempt from the counters (an administrator on the
/// Unix socket, who can read the state anyway) reads the settings and the
/// secret as the store may answer them from its cache; every other
/// caller's check reads them in its own transaction, where its counters
/// are.
#[test]
fn only_exempt_callers_checks_may_read_the_cached_entry() {
    use std::sync::atomic::Ordering::SeqCst;
    let (counting, f) = counting_fixture(tempfile::tempdir().unwrap());
    let wrong = alice_enrolled(&f);
    let reads = || {
        (
            counting.reads.cached.load(SeqCst),
            counting.reads.in_tx.load(SeqCst),
        )
    };
    let before = reads();
    let out =
        f.tf.check_code_for(&root_unix(), &alice(), Some(&wrong))
            .unwrap();
    assert_eq!(out, CheckOutcome::Wrong);
    let exempt = reads();
    assert_eq!(exempt.0 - before.0, 2, "settings and secret from the cache");
    assert_eq!(exempt.1, before.1, "nothing read in the transaction");
    let tcp = Caller::new(
        Some("alice"),
        Origin::Tcp {
            addr: [192, 0, 2, 9].into(),
            port: 1,
        },
    );
    let out = f.tf.check_code_for(&tcp, &alice(), Some(&wrong)).unwrap();
    assert_eq!(out, CheckOutcome::Wrong);
    let counted = reads();
    assert_eq!(counted.0, exempt.0, "nothing from the cache");
    assert_eq!(
        counted.1 - exempt.1,
        2,
        "settings and secret in the transaction"
    );
    // The exempt check was audited all the same.
    assert_eq!(
        audit(&f, "otp.check").iter().map(|e| e.count).sum::<u64>(),
        2
    );
}

/// Retention is not paid by every check: a thousand checks within one
/// period of the clock run one retention pass (both classes, and the
/// expired counters), the first check of the next period another.
#[test]
fn a_burst_of_checks_prunes_once_per_period() {
    let dir = tempfile::tempdir().unwrap();
    let (counting, f) = counting_fixture(dir);
    let wrong = alice_enrolled(&f);
    let prunes = || counting.prunes.load(std::sync::atomic::Ordering::SeqCst);
    let expiries = || counting.expiries.load(std::sync::atomic::Ordering::SeqCst);
    // The enrolment's transactions may have pruned; a new period starts.
    f.clock.advance_ms(service::PRUNE_PERIOD_MS);
    let before = prunes();
    let expired_before = expiries();
    // Spread over the period, the last one just before its end.
    let step = (service::PRUNE_PERIOD_MS - 1) / 999;
    for i in 0..1000 {
        if i > 0 {
            f.clock.advance_ms(step);
        }
        f.tf.check_code_for(&alice_unix(i + 2), &alice(), Some(&wrong))
            .unwrap();
    }
    let classes = store::AuditClass::ALL.len();
    assert_eq!(prunes() - before, classes, "one pass in the period");
    assert_eq!(expiries() - expired_before, 1, "one pass in the period");
    f.clock.advance_ms(service::PRUNE_PERIOD_MS);
    f.tf.check_code_for(&alice_unix(1), &alice(), Some(&wrong))
        .unwrap();
    assert_eq!(prunes() - before, 2 * classes, "one more in the next");
    assert_eq!(expiries() - expired_before, 2, "one more in the next");
}

/// Between two prunes the routine records may exceed their budget by what
/// was appended since the last; the first audited transaction of the next
/// period takes them back to the budget, however many there are.
#[test]
fn records_appended_within_a_period_are_pruned_in_the_next() {
    let retention = AuditRetention {
        max_rows: std::num::NonZeroU64::new(10).expect("non-zero"),
        // Every record its own row, so that the rows are the count.
        aggregate_after: u32::MAX,
        batch: 4,
        ..AuditRetention::default()
    };
    let f = fixture_with(RateLimits::default(), retention);
    let wrong = alice_enrolled(&f);
    let routine = |f: &Fixture| audit(f, "otp.check").len();
    // One check a period: each prunes, the budget holds.
    for i in 0..12 {
        f.clock.advance_ms(service::PRUNE_PERIOD_MS);
        f.tf.check_code_for(&alice_unix(i + 2), &alice(), Some(&wrong))
            .unwrap();
    }
    assert_eq!(routine(&f), 10);
    // Thirty within one period: kept until the next.
    f.clock.advance_ms(service::PRUNE_PERIOD_MS);
    for i in 0..30 {
        f.tf.check_code_for(&alice_unix(i + 100), &alice(), Some(&wrong))
            .unwrap();
    }
    assert_eq!(routine(&f), 10 + 29);
    f.clock.advance_ms(service::PRUNE_PERIOD_MS);
    f.tf.check_code_for(&alice_unix(1), &alice(), Some(&wrong))
        .unwrap();
    assert_eq!(routine(&f), 10);
}
