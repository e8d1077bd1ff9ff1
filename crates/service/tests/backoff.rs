//! The doubling back-off cannot be reset by pausing: lock-outs are
//! remembered until a right code, or decay one per quiet period. Numbers
//! scaled down, time moved by hand.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::Arc;

use otp::{Algorithm, Secret, Totp};
use std::num::NonZeroU32;

use service::{Caller, CheckOutcome, Clock, Origin, OsRandom, RateLimits, UpdateRequest};

fn scaled() -> RateLimits {
    let n = |v: u32| NonZeroU32::new(v).unwrap();
    RateLimits {
        max_failures: n(3),
        secret_max_failures: n(1000),
        window_secs: n(10),
        initial_backoff_secs: n(1),
        max_backoff_secs: 8,
        lockout_decay_secs: n(60),
    }
}

fn attacker() -> Caller {
    Caller::new(
        None,
        Origin::Tcp {
            addr: [203, 0, 113, 5].into(),
            port: 50000,
        },
    )
}

struct Setup {
    f: common::Fixture,
    secret: Secret,
}

impl Setup {
    fn new() -> Self {
        let f = common::fixture_with_random(Arc::new(OsRandom), scaled());
        let e =
            f.tf.update(
                &Caller::new(Some("root"), Origin::Embedded { uid: 0 }),
                UpdateRequest {
                    enabled: Some(true),
                    ..Default::default()
                },
            )
            .unwrap();
        let secret = Secret::from_base32(e.secret.as_deref().unwrap().as_str()).unwrap();
        Self { f, secret }
    }

    fn code(&self, right: bool) -> String {
        let e = self.f.tf.config().unwrap();
        let now = u64::try_from(self.f.clock.now_ms() / 1000).unwrap();
        let code = Totp::new(&self.secret, e.otp_digits, e.interval, Algorithm::Sha1)
            .code(now)
            .to_string();
        match (right, code == "000000") {
            (true, _) => code,
            (false, true) => "000001".into(),
            (false, false) => "000000".into(),
        }
    }

    /// Three wrong codes, then the lock-out's length (waited out).
    fn lock_once(&self) -> u64 {
        for _ in 0..3 {
            let got = self.f.tf.check_code(&attacker(), Some(&self.code(false)));
            assert_eq!(got.unwrap(), CheckOutcome::Wrong);
        }
        match self
            .f
            .tf
            .check_code(&attacker(), Some(&self.code(false)))
            .unwrap()
        {
            CheckOutcome::LockedOut { retry_after_secs } => {
                self.f
                    .clock
                    .advance_secs(i64::try_from(retry_after_secs).unwrap());
                retry_after_secs
            }
            other => panic!("expected a lock-out, got {other:?}"),
        }
    }
}

/// After four lock-outs (1, 2, 4, 8 s), a pause longer than the window and
/// the longest back-off together does not bring the back-off down to 1 s.
#[test]
fn a_pause_does_not_reset_the_back_off() {
    let s = Setup::new();
    let waits: Vec<u64> = (0..4).map(|_| s.lock_once()).collect();
    assert_eq!(waits, vec![1, 2, 4, 8]);
    // 15 s: beyond window (10 s) + max back-off (8 s).
    s.f.clock.advance_secs(15);
    assert_eq!(s.lock_once(), 8, "the pause reset the back-off");
    // 59 s: less than one decay period.
    s.f.clock.advance_secs(59);
    assert_eq!(s.lock_once(), 8);
}

/// Each quiet decay period forgives one lock-out: the back-off comes down
/// step by step, and is 1 s again once all are forgiven.
#[test]
fn lock_outs_decay_one_per_quiet_period() {
    let s = Setup::new();
    for _ in 0..4 {
        s.lock_once();
    }
    // Two periods: two of four forgiven, the next lock-out is the third.
    s.f.clock.advance_secs(120);
    assert_eq!(s.lock_once(), 4);
    // Three lock-outs remembered now; three periods forgive them all.
    s.f.clock.advance_secs(180);
    assert_eq!(s.lock_once(), 1);
}

/// A right code from the origin ends the memory at once.
#[test]
fn a_right_code_forgets_the_lock_outs() {
    let s = Setup::new();
    for _ in 0..4 {
        s.lock_once();
    }
    assert_eq!(
        s.f.tf.check_code(&attacker(), Some(&s.code(true))).unwrap(),
        CheckOutcome::Accepted
    );
    assert_eq!(s.lock_once(), 1);
}

/// The per-origin tier keys all of loopback as one origin and IPv6 by its
/// /64: three wrong codes from three loopback addresses lock out a fourth
/// (and `::1`); another /64 is not locked.
#[test]
fn wrong_codes_count_loopback_as_one_origin_and_ipv6_by_64() {
    let s = Setup::new();
    let from = |addr: &str| {
        Caller::new(
            None,
            Origin::Tcp {
                addr: addr.parse().unwrap(),
                port: 50000,
            },
        )
    };
    let check = |addr: &str| {
        s.f.tf
            .check_code(&from(addr), Some(&s.code(false)))
            .unwrap()
    };
    for a in ["127.0.0.1", "127.0.0.2", "127.1.2.3"] {
        assert_eq!(check(a), CheckOutcome::Wrong, "{a}");
    }
    for a in ["127.0.0.4", "::1", "::ffff:127.0.0.5"] {
        assert!(matches!(check(a), CheckOutcome::LockedOut { .. }), "{a}");
    }
    for a in ["2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1:abcd::3"] {
        assert_eq!(check(a), CheckOutcome::Wrong, "{a}");
    }
    assert!(matches!(
        check("2001:db8:0:1::99"),
        CheckOutcome::LockedOut { .. }
    ));
    assert_eq!(check("2001:db8:0:2::1"), CheckOutcome::Wrong);
}
