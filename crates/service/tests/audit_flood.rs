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
    let routine = audit(&f, "otp.check").len();
    assert!(routine <= 20, "{routine} routine rows kept");
}
