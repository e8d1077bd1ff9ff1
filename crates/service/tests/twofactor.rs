//! The auth.twofactor domain against a real SQLite store, with time moved by
//! hand and randomness fixed.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::{Arc, Barrier};

use otp::{Algorithm, Digits, Interval, Secret, Totp, Window};
use service::{
    Caller, CheckOutcome, Labels, ManualClock, Origin, Randomness, RateLimits, ServiceError,
    Services, TwoFactor, UpdateRequest,
};

/// Deterministic "randomness": a counter, so each secret differs.
#[derive(Debug, Default)]
struct Counting(std::sync::atomic::AtomicU8);

impl Randomness for Counting {
    fn fill(&self, buf: &mut [u8]) {
        let base = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = base.wrapping_mul(31).wrapping_add(i as u8);
        }
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    tf: TwoFactor,
}

const T0: i64 = 1_700_000_000;

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = store::SqliteStore::open(dir.path()).unwrap();
    let clock = Arc::new(ManualClock::at_secs(T0));
    let tf = TwoFactor::new(
        Arc::new(store),
        clock.clone(),
        Arc::new(Counting::default()),
        Labels {
            issuer: "iXsystems".into(),
            product: "TrueNAS".into(),
            hostname: "nas".into(),
        },
        RateLimits::default(),
    );
    Fixture {
        _dir: dir,
        clock,
        tf,
    }
}

fn admin() -> Caller {
    Caller::new(Some("root"), Origin::Embedded { uid: 0 })
}

fn enable(f: &Fixture) -> Secret {
    let e =
        f.tf.update(
            &admin(),
            UpdateRequest {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    Secret::from_base32(e.secret.as_deref().unwrap().as_str()).unwrap()
}

fn code_at(f: &Fixture, secret: &Secret, offset_steps: i64) -> String {
    let e = f.tf.config().unwrap();
    let totp = Totp::new(secret, e.otp_digits, e.interval, Algorithm::Sha1);
    let now = f.clock_secs() + offset_steps * i64::from(e.interval.get());
    totp.code(u64::try_from(now).unwrap()).to_string()
}

impl Fixture {
    fn clock_secs(&self) -> i64 {
        use service::Clock;
        self.clock.now_ms() / 1000
    }
}

#[test]
fn defaults_then_enable_generates_a_160_bit_secret() {
    let f = fixture();
    let e = f.tf.config().unwrap();
    assert_eq!(
        (e.otp_digits.get(), e.window.get(), e.interval.get()),
        (6, 0, 30)
    );
    assert!(!e.enabled && !e.services.ssh && e.secret.is_none());
    let secret = enable(&f);
    assert_eq!(secret.expose().len(), 20);
    assert_eq!(f.tf.config().unwrap().secret.unwrap().len(), 32);
}

#[test]
fn disable_keeps_the_secret_and_enable_reuses_it() {
    let f = fixture();
    let s1 = enable(&f);
    let off =
        f.tf.update(
            &admin(),
            UpdateRequest {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!off.enabled);
    assert_eq!(
        off.secret.as_deref().map(String::as_str),
        Some(s1.to_base32().as_str())
    );
    let s2 = enable(&f);
    assert!(s1.ct_eq(&s2));
}

#[test]
fn update_changes_only_the_keys_given_and_services_is_replaced_whole() {
    let f = fixture();
    let req = UpdateRequest {
        otp_digits: Some(Digits::new(8).unwrap()),
        services: Some(Services { ssh: true }),
        ..Default::default()
    };
    let e = f.tf.update(&admin(), req).unwrap();
    assert_eq!(
        (
            e.otp_digits.get(),
            e.interval.get(),
            e.services.ssh,
            e.enabled
        ),
        (8, 30, true, false)
    );
    assert!(e.secret.is_none(), "no secret while disabled");
    let e =
        f.tf.update(
            &admin(),
            UpdateRequest {
                services: Some(Services::default()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!e.services.ssh);
    assert_eq!(e.otp_digits.get(), 8);
}

#[test]
fn changing_digits_or_interval_keeps_the_secret() {
    let f = fixture();
    let s = enable(&f);
    let req = UpdateRequest {
        otp_digits: Some(Digits::new(7).unwrap()),
        interval: Some(Interval::new(45).unwrap()),
        ..Default::default()
    };
    let e = f.tf.update(&admin(), req).unwrap();
    assert_eq!(
        e.secret.as_deref().map(String::as_str),
        Some(s.to_base32().as_str())
    );
}

#[test]
fn disabled_refuses_renew_and_verify() {
    let f = fixture();
    assert!(matches!(
        f.tf.renew_secret(&admin()),
        Err(ServiceError::NotEnabled)
    ));
    assert!(matches!(
        f.tf.verify(&admin(), Some("123456")),
        Err(ServiceError::NotEnabled)
    ));
    assert!(matches!(
        f.tf.provisioning_uri(),
        Err(ServiceError::NoSecret)
    ));
    let msg = ServiceError::NotEnabled.to_string();
    assert_eq!(msg, "Please enable Two Factor Authentication first.");
}

#[test]
fn a_code_works_once_and_older_codes_never_after_newer() {
    let f = fixture();
    let s = enable(&f);
    f.tf.update(
        &admin(),
        UpdateRequest {
            window: Some(Window::new(1).unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    let previous = code_at(&f, &s, -1);
    let current = code_at(&f, &s, 0);
    assert!(
        f.tf.verify(&admin(), Some(&format!("  {current}\n")))
            .unwrap(),
        "white space is trimmed"
    );
    assert!(!f.tf.verify(&admin(), Some(&current)).unwrap(), "replay");
    if previous != current {
        assert!(
            !f.tf.verify(&admin(), Some(&previous)).unwrap(),
            "older than an accepted one"
        );
    }
    f.clock.advance_secs(30);
    let next = code_at(&f, &s, 0);
    assert!(f.tf.verify(&admin(), Some(&next)).unwrap());
}

#[test]
fn malformed_tokens_are_false_not_errors() {
    let f = fixture();
    let s = enable(&f);
    let good = code_at(&f, &s, 0);
    // Four, not five: five wrong codes (malformed ones count) would lock.
    for bad in [None, Some("12345"), Some("1234567"), Some("１２３４５６")] {
        assert!(!f.tf.verify(&admin(), bad).unwrap(), "{bad:?}");
    }
    assert!(
        f.tf.verify(&admin(), Some(&good)).unwrap(),
        "the failures above were not a lock-out"
    );
}

#[test]
fn window_bounds_are_exact() {
    let f = fixture();
    let s = enable(&f);
    f.tf.update(
        &admin(),
        UpdateRequest {
            window: Some(Window::new(2).unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    // Step +3 is outside the window: wrong. Step +2 is inside: accepted.
    let outside = code_at(&f, &s, 3);
    let inside = code_at(&f, &s, 2);
    assert_eq!(
        f.tf.check_code(&admin(), Some(&outside)).unwrap(),
        CheckOutcome::Wrong
    );
    assert_eq!(
        f.tf.check_code(&admin(), Some(&inside)).unwrap(),
        CheckOutcome::Accepted
    );
}

#[test]
fn thirty_two_threads_one_fresh_code_exactly_one_wins() {
    let f = fixture();
    let s = enable(&f);
    let code = code_at(&f, &s, 0);
    let barrier = Arc::new(Barrier::new(32));
    let wins: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|_| {
                let barrier = barrier.clone();
                let (tf, code) = (&f.tf, &code);
                scope.spawn(move || {
                    barrier.wait();
                    // Losers see `false` (a replay) or, once five replays
                    // were counted, the lock-out; never an internal error.
                    match tf.verify(&admin(), Some(code)) {
                        Ok(won) => won,
                        Err(ServiceError::LockedOut { .. }) => false,
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum()
    });
    assert_eq!(wins, 1);
}

#[test]
fn five_wrong_codes_lock_then_back_off_doubles_and_a_right_code_resets() {
    let f = fixture();
    let s = enable(&f);
    let wrong = |f: &Fixture| {
        let right = code_at(f, &s, 0);
        let w = if right == "000000" {
            "000001".to_owned()
        } else {
            "000000".to_owned()
        };
        f.tf.verify(&admin(), Some(&w))
    };
    for i in 0..5 {
        assert!(!wrong(&f).unwrap(), "attempt {i}");
    }
    match f.tf.verify(&admin(), Some(&code_at(&f, &s, 0))) {
        Err(ServiceError::LockedOut { retry_after_secs }) => assert_eq!(retry_after_secs, 30),
        other => panic!("expected a lock-out, got {other:?}"),
    }
    let msg = ServiceError::LockedOut {
        retry_after_secs: 30,
    }
    .to_string();
    assert_eq!(msg, "Too many failed attempts; try again in 30 seconds");
    f.clock.advance_secs(10);
    assert!(matches!(
        wrong(&f),
        Err(ServiceError::LockedOut {
            retry_after_secs: 20
        })
    ));
    f.clock.advance_secs(21);
    // Second lock-out: 60 s.
    for _ in 0..5 {
        assert!(!wrong(&f).unwrap());
    }
    assert!(matches!(
        wrong(&f),
        Err(ServiceError::LockedOut {
            retry_after_secs: 60
        })
    ));
    f.clock.advance_secs(61);
    assert!(
        f.tf.verify(&admin(), Some(&code_at(&f, &s, 0))).unwrap(),
        "right code after the back-off"
    );
    // The count was reset: four more wrong codes do not lock.
    for _ in 0..4 {
        assert!(!wrong(&f).unwrap());
    }
    f.clock.advance_secs(30);
    assert!(f.tf.verify(&admin(), Some(&code_at(&f, &s, 0))).unwrap());
}

#[test]
fn lockout_per_remote_address_does_not_need_the_same_secret_scope_only() {
    let f = fixture();
    let s = enable(&f);
    let tcp = |last: u8| {
        Caller::new(
            None,
            Origin::Tcp {
                addr: [192, 0, 2, last].into(),
                port: 1,
            },
        )
    };
    let right = code_at(&f, &s, 0);
    let w = if right == "111111" {
        "222222"
    } else {
        "111111"
    };
    for _ in 0..5 {
        assert!(!f.tf.verify(&tcp(1), Some(w)).unwrap());
    }
    // The secret is locked for everyone: the per-secret counter saw five failures.
    assert!(matches!(
        f.tf.verify(&tcp(2), Some(&right)),
        Err(ServiceError::LockedOut { .. })
    ));
}

#[test]
fn renew_replaces_the_secret_and_clears_its_state() {
    let f = fixture();
    let s1 = enable(&f);
    let code = code_at(&f, &s1, 0);
    assert!(f.tf.verify(&admin(), Some(&code)).unwrap());
    assert!(f.tf.renew_secret(&admin()).unwrap());
    let s2 =
        Secret::from_base32(f.tf.config().unwrap().secret.as_deref().unwrap().as_str()).unwrap();
    assert!(!s1.ct_eq(&s2));
    // The new secret's code at the same step is accepted: the replay state was per secret.
    assert!(f.tf.verify(&admin(), Some(&code_at(&f, &s2, 0))).unwrap());
}

#[test]
fn every_change_and_check_is_audited_without_codes_or_secrets() {
    let f = fixture();
    let s = enable(&f);
    let code = code_at(&f, &s, 0);
    f.tf.verify(&admin(), Some(&code)).unwrap();
    f.tf.verify(&admin(), Some(&code)).unwrap();
    f.tf.verify(&admin(), Some("000000")).ok();
    f.tf.renew_secret(&admin()).unwrap();
    let rows = f.tf.audit(&store::AuditQuery::default()).unwrap();
    let seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.record.event.clone(), r.record.outcome.clone()))
        .collect();
    assert_eq!(seen[0], ("twofactor.renew_secret".into(), "success".into()));
    assert!(seen.contains(&("otp.check".into(), "accepted".into())));
    assert!(seen.contains(&("otp.check".into(), "replayed".into())));
    assert!(seen.contains(&("twofactor.update".into(), "success".into())));
    let text = serde_json::to_string(&rows).unwrap();
    assert!(!text.contains(&code), "audit holds a code");
    assert!(
        !text.contains(s.to_base32().as_str()),
        "audit holds the secret"
    );
}

#[test]
fn provisioning_uri_round_trips_and_its_codes_are_accepted() {
    let f = fixture();
    enable(&f);
    f.tf.update(
        &admin(),
        UpdateRequest {
            otp_digits: Some(Digits::new(8).unwrap()),
            interval: Some(Interval::new(45).unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    let uri = f.tf.provisioning_uri().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/iXsystems:nas%40TrueNAS?secret="),
        "{uri}"
    );
    assert!(
        uri.ends_with("&issuer=iXsystems&digits=8&period=45"),
        "{uri}"
    );
    let parsed = otp::KeyUri::parse(&uri).unwrap();
    let totp = Totp::new(
        &parsed.secret,
        parsed.digits,
        parsed.period,
        parsed.algorithm,
    );
    let now = u64::try_from(f.clock_secs()).unwrap();
    assert!(
        f.tf.verify(&admin(), Some(&totp.code(now).to_string()))
            .unwrap()
    );
}
