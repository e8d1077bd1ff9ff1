//! The auth.twofactor domain against a real SQLite store, with time moved by
//! hand and randomness fixed.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use common::{Fixture, T0};

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::{Arc, Barrier};

use otp::{Algorithm, Digits, Interval, Secret, Totp, Window};
use service::{
    AuditRetention, Caller, CheckOutcome, ManualClock, Origin, Randomness, RateLimits,
    ServiceError, Services, UpdateRequest,
};

/// Deterministic "randomness": a counter, so each secret differs.
#[derive(Debug, Default)]
struct Counting(std::sync::atomic::AtomicU8);

impl Randomness for Counting {
    fn fill(&self, buf: &mut [u8]) -> Result<(), service::RandomError> {
        let base = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = base.wrapping_mul(31).wrapping_add(i as u8);
        }
        Ok(())
    }
}

/// The OS source, counting its draws, failing while told to.
#[derive(Debug, Default)]
struct Switchable {
    draws: std::sync::atomic::AtomicUsize,
    failing: std::sync::atomic::AtomicBool,
}

impl Randomness for Switchable {
    fn fill(&self, buf: &mut [u8]) -> Result<(), service::RandomError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.failing.load(SeqCst) {
            return Err(service::RandomError("no entropy (test)".into()));
        }
        self.draws.fetch_add(1, SeqCst);
        service::OsRandom.fill(buf)
    }
}

/// One injected source: the store's key and sealing nonces and the
/// service's secrets all come from it, and when it fails the operation
/// fails with that reason and changes nothing (no abort, no weak secret).
#[test]
fn randomness_is_one_injected_source_that_fails_closed() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let random = Arc::new(Switchable::default());

    random.failing.store(true, SeqCst);
    let err = store::SqliteStore::open_with_random(
        &state,
        store::StoreOptions::default(),
        random.clone(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("random"), "{err}");
    assert!(!state.join("secret.key").exists(), "no key made");

    random.failing.store(false, SeqCst);
    let store = store::SqliteStore::open_with_random(
        &state,
        store::StoreOptions::default(),
        random.clone(),
    )
    .unwrap();
    let at_open = random.draws.load(SeqCst);
    assert!(at_open >= 2, "the key (and its check's nonce): {at_open}");
    let tf = common::two_factor(
        store,
        Arc::new(ManualClock::at_secs(T0)),
        random.clone(),
        RateLimits::default(),
    );
    let enable = UpdateRequest {
        enabled: Some(true),
        ..Default::default()
    };

    random.failing.store(true, SeqCst);
    let err = tf.update(&admin(), enable).unwrap_err();
    assert!(err.to_string().contains("random"), "{err}");
    let e = tf.config().unwrap();
    assert!(!e.enabled && e.secret.is_none(), "nothing changed");

    random.failing.store(false, SeqCst);
    tf.update(&admin(), enable).unwrap();
    assert_eq!(
        random.draws.load(SeqCst) - at_open,
        2,
        "the secret and the nonce it is sealed with"
    );
}

fn fixture() -> Fixture {
    fixture_with(RateLimits::default(), AuditRetention::default())
}

fn fixture_with(limits: RateLimits, retention: AuditRetention) -> Fixture {
    let Fixture { dir, clock, tf } =
        common::fixture_with_random(Arc::new(Counting::default()), limits);
    let tf = tf.with_audit_retention(retention);
    Fixture { dir, clock, tf }
}

fn admin() -> Caller {
    Caller::new(Some("root"), Origin::Embedded { uid: 0 })
}

/// Root on the Unix socket.
fn root_unix() -> Caller {
    Caller::new(Some("root"), Origin::Unix { uid: 0, pid: None })
}

/// An anonymous TCP peer at 192.0.2.`last`.
fn tcp(last: u8) -> Caller {
    Caller::new(
        None,
        Origin::Tcp {
            addr: [192, 0, 2, last].into(),
            port: 40000,
        },
    )
}

/// A PAM check from `rhost` (or without one).
fn pam(rhost: Option<&str>) -> Caller {
    Caller::new(
        Some("alice"),
        Origin::Pam {
            rhost: rhost.map(str::to_owned),
        },
    )
    .via("pam:sshd")
}

/// A code that is not the right one now.
fn wrong_code(f: &Fixture, s: &Secret) -> String {
    if code_at(f, s, 0) == "000000" {
        "000001".to_owned()
    } else {
        "000000".to_owned()
    }
}

fn locked_out(r: Result<CheckOutcome, ServiceError>) -> Option<u64> {
    match r.unwrap() {
        CheckOutcome::LockedOut { retry_after_secs } => Some(retry_after_secs),
        _ => None,
    }
}

impl Fixture {
    /// Rows in a table of the state's database, read by a second connection.
    fn rows(&self, table: &str) -> i64 {
        let conn = rusqlite::Connection::open(
            self.dir
                .path()
                .join("state")
                .join(store::SqliteStore::DB_FILE),
        )
        .unwrap();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }
}

/// Every audit record (up to 1000), newest first.
fn all_audit(f: &Fixture) -> Vec<store::AuditEntry> {
    f.tf.audit(&store::AuditQuery {
        limit: 1000,
        ..Default::default()
    })
    .unwrap()
}

/// A fixture whose first lock-out lasts `secs`, with the entry enabled.
fn enabled_with_initial_backoff(secs: u32) -> (Fixture, Secret) {
    let limits = RateLimits {
        initial_backoff_secs: NonZeroU32::new(secs).expect("a back-off of at least 1 s"),
        ..RateLimits::default()
    };
    let f = fixture_with(limits, AuditRetention::default());
    let s = enable(&f);
    (f, s)
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
fn malformed_tokens_are_false_audited_and_not_counted() {
    let f = fixture();
    let s = enable(&f);
    let good = code_at(&f, &s, 0);
    // More than the five wrong codes that lock: none of these is a guess.
    let bad = [
        None,
        Some("12345"),
        Some("1234567"),
        Some("１２３４５６"),
        Some("12345a"),
        Some("12 34 5"),
        Some("abcdef"),
    ];
    for token in bad {
        assert_eq!(
            f.tf.check_code(&tcp(1), token).unwrap(),
            CheckOutcome::Malformed { digits: 6 },
            "{token:?}"
        );
        assert!(!f.tf.verify(&tcp(1), token).unwrap(), "{token:?}");
    }
    // Counted through the rows' counts: repeats beyond the audit's rate
    // share one row.
    let malformed: u64 = all_audit(&f)
        .iter()
        .filter(|r| r.record.event == "otp.check" && r.record.outcome == "malformed")
        .map(|r| r.count)
        .sum();
    assert_eq!(malformed, 2 * bad.len() as u64);
    assert!(
        f.tf.verify(&tcp(1), Some(&good)).unwrap(),
        "the failures above were not a lock-out"
    );
}

/// The status names who is locked out now and until when, and forgets a
/// lock-out that has ended.
#[test]
fn status_shows_lock_outs_until_they_end() {
    let f = fixture();
    enable(&f);
    let st = f.tf.status().unwrap();
    assert!(st.enabled && st.root_secret, "{st:?}");
    assert_eq!(st.accounts_with_secret, 1);
    assert!(st.locked_out.is_empty());
    for _ in 0..5 {
        f.tf.check_code(&tcp(7), Some("000000")).unwrap();
    }
    let st = f.tf.status().unwrap();
    assert_eq!(st.locked_out.len(), 1, "{st:?}");
    let l = &st.locked_out[0];
    assert_eq!(l.account, "root");
    assert!(l.origin.contains("192.0.2.7"), "{l:?}");
    assert_eq!(l.until_ms, st.now_ms + 30_000);
    f.clock.advance_secs(31);
    assert!(f.tf.status().unwrap().locked_out.is_empty());
}

/// The status only reads: it answers while another handle holds the write
/// lock (a transaction left open), and it shows what was committed, not
/// the open transaction's changes.
#[test]
fn status_answers_while_another_handle_holds_the_write_lock() {
    let f = fixture();
    enable(&f);
    for _ in 0..5 {
        f.tf.check_code(&tcp(7), Some("000000")).unwrap();
    }
    let other = store::SqliteStore::open(&f.dir.path().join("state")).unwrap();
    let root = store::user_owner("root", 0);
    let answer = std::thread::scope(|s| {
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let tf = &f.tf;
        s.spawn(move || {
            if held_rx.recv().is_ok() {
                let _ = done_tx.send(tf.status());
            }
        });
        store::transact(&other, |tx| {
            // A write inside the open transaction: the lock-out ends, but
            // only once this commits.
            assert!(tx.clear_failures(&root)? > 0);
            held_tx.send(()).expect("the status thread waits");
            Ok(done_rx.recv_timeout(std::time::Duration::from_secs(30)))
        })
        .expect("the writer's transaction")
    });
    let st = answer
        .expect("status answered while the write lock was held")
        .expect("status");
    assert_eq!(st.locked_out.len(), 1, "{st:?}");
    assert_eq!(st.locked_out[0].account, "root");
    // Committed now: the next status sees the lock-out gone.
    assert!(f.tf.status().unwrap().locked_out.is_empty());
}

#[test]
fn spaces_inside_a_code_are_ignored() {
    let f = fixture();
    let s = enable(&f);
    let good = code_at(&f, &s, 0);
    let spaced = format!("{} {}", &good[..3], &good[3..]);
    assert_eq!(
        f.tf.check_code(&admin(), Some(&spaced)).unwrap(),
        CheckOutcome::Accepted
    );
    // Still one code: the same code with other spacing is a replay.
    let again = format!(" {}\t{} ", &good[..2], &good[2..]);
    assert_eq!(
        f.tf.check_code(&admin(), Some(&again)).unwrap(),
        CheckOutcome::Replayed
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
    let wrong = |f: &Fixture| f.tf.verify(&tcp(1), Some(&wrong_code(f, &s)));
    for i in 0..5 {
        assert!(!wrong(&f).unwrap(), "attempt {i}");
    }
    match f.tf.verify(&tcp(1), Some(&code_at(&f, &s, 0))) {
        Err(ServiceError::LockedOut { retry_after_secs }) => assert_eq!(retry_after_secs, 30),
        other => panic!("expected a lock-out, got {other:?}"),
    }
    // The wait is in the message (the API's wording is wire's LockedOut).
    let msg = ServiceError::LockedOut {
        retry_after_secs: 30,
    }
    .to_string();
    assert!(msg.contains("30 more seconds"), "{msg}");
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
        f.tf.verify(&tcp(1), Some(&code_at(&f, &s, 0))).unwrap(),
        "right code after the back-off"
    );
    // The count was reset: four more wrong codes do not lock.
    for _ in 0..4 {
        assert!(!wrong(&f).unwrap());
    }
    f.clock.advance_secs(30);
    assert!(f.tf.verify(&tcp(1), Some(&code_at(&f, &s, 0))).unwrap());
}

#[test]
fn the_back_off_doubles_to_the_cap_and_is_forgotten_only_after_hours_of_quiet() {
    let f = fixture();
    let s = enable(&f);
    let lock_once = |f: &Fixture| -> u64 {
        for _ in 0..5 {
            assert_eq!(
                f.tf.check_code(&tcp(9), Some(&wrong_code(f, &s))).unwrap(),
                CheckOutcome::Wrong
            );
        }
        let wait = locked_out(f.tf.check_code(&tcp(9), Some(&wrong_code(f, &s))))
            .expect("locked after five");
        f.clock.advance_secs(i64::try_from(wait).unwrap());
        wait
    };
    let waits: Vec<u64> = (0..7).map(|_| lock_once(&f)).collect();
    assert_eq!(waits, vec![30, 60, 120, 240, 480, 900, 900]);
    // A pause as long as the longest back-off does not start it over.
    f.clock.advance_secs(900);
    assert_eq!(lock_once(&f), 900);
    // Each quiet hour forgives one lock-out; eight hours, all of them.
    f.clock.advance_secs(8 * 3600);
    assert_eq!(lock_once(&f), 30);
}

#[test]
fn an_origin_with_five_wrong_codes_is_locked_but_root_and_other_addresses_are_not() {
    let (f, s) = enabled_with_initial_backoff(120);
    for _ in 0..5 {
        assert_eq!(
            f.tf.check_code(&tcp(1), Some(&wrong_code(&f, &s))).unwrap(),
            CheckOutcome::Wrong
        );
    }
    // That origin is locked, even with the right code.
    assert_eq!(
        locked_out(f.tf.check_code(&tcp(1), Some(&code_at(&f, &s, 0)))),
        Some(120)
    );
    // Another address with the right code is not.
    assert_eq!(
        f.tf.check_code(&tcp(2), Some(&code_at(&f, &s, 0))).unwrap(),
        CheckOutcome::Accepted
    );
    // Nor is root on the Unix socket (next step: the last code was used).
    f.clock.advance_secs(30);
    assert_eq!(
        f.tf.check_code(&root_unix(), Some(&code_at(&f, &s, 0)))
            .unwrap(),
        CheckOutcome::Accepted
    );
    // Nor a PAM login from elsewhere; the locked origin still is.
    f.clock.advance_secs(30);
    assert_eq!(
        f.tf.check_code(&pam(Some("198.51.100.1")), Some(&code_at(&f, &s, 0)))
            .unwrap(),
        CheckOutcome::Accepted
    );
    assert_eq!(
        locked_out(f.tf.check_code(&tcp(1), Some(&code_at(&f, &s, 1)))),
        Some(60)
    );
    // The lock-out was audited, naming its tier and origin.
    let rows =
        f.tf.audit(&store::AuditQuery {
            event: Some("otp.lockout".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let detail = rows[0].record.detail.clone().unwrap();
    assert_eq!(detail["scope"], "origin");
    assert_eq!(detail["origin"], "192.0.2.1");
    assert_eq!(detail["seconds"], 120);
    assert_eq!(rows[0].record.origin, "tcp:192.0.2.1:40000");
}

#[test]
fn twenty_wrong_codes_from_twenty_addresses_lock_the_secret_for_all_but_root_on_the_socket() {
    let (f, s) = enabled_with_initial_backoff(120);
    for last in 1..=20 {
        assert_eq!(
            f.tf.check_code(&tcp(last), Some(&wrong_code(&f, &s)))
                .unwrap(),
            CheckOutcome::Wrong,
            "address {last}"
        );
    }
    let right = code_at(&f, &s, 0);
    // Every address is locked: those that guessed, a new one, PAM with and
    // without an address, a non-admin on the Unix socket.
    let unix_user = Caller::new(
        Some("alice"),
        Origin::Unix {
            uid: 1000,
            pid: None,
        },
    );
    for caller in [
        tcp(1),
        tcp(20),
        tcp(99),
        pam(Some("203.0.113.5")),
        pam(None),
        unix_user,
    ] {
        assert_eq!(
            locked_out(f.tf.check_code(&caller, Some(&right))),
            Some(120),
            "{caller:?}"
        );
    }
    // An administrator on the Unix socket is not: root, a member of the
    // admin group, the in-process CLI.
    assert_eq!(
        f.tf.check_code(&root_unix(), Some(&right)).unwrap(),
        CheckOutcome::Accepted
    );
    let admin_member = Caller::new(
        Some("bob"),
        Origin::Unix {
            uid: 1001,
            pid: None,
        },
    )
    .as_admin(true);
    f.clock.advance_secs(30);
    let right = code_at(&f, &s, 0);
    assert_eq!(
        f.tf.check_code(&admin_member, Some(&right)).unwrap(),
        CheckOutcome::Accepted
    );
    f.clock.advance_secs(30);
    let right = code_at(&f, &s, 0);
    assert_eq!(
        f.tf.check_code(&admin(), Some(&right)).unwrap(),
        CheckOutcome::Accepted
    );
    // The accepted codes reset only their own origin: the rest stay locked.
    assert_eq!(locked_out(f.tf.check_code(&tcp(5), Some(&right))), Some(60));
    let rows =
        f.tf.audit(&store::AuditQuery {
            event: Some("otp.lockout".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].record.detail.as_ref().unwrap()["scope"], "secret");
    // Root can always recover: turning 2FA off works while locked.
    f.tf.update(
        &root_unix(),
        UpdateRequest {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(matches!(
        f.tf.check_code(&tcp(5), Some(&right)),
        Err(ServiceError::NotEnabled)
    ));
}

#[test]
fn administrators_on_the_socket_are_audited_but_lock_nobody_out() {
    let f = fixture();
    let s = enable(&f);
    for _ in 0..25 {
        assert_eq!(
            f.tf.check_code(&root_unix(), Some(&wrong_code(&f, &s)))
                .unwrap(),
            CheckOutcome::Wrong
        );
    }
    // Neither `local` (a PAM check without an address) nor anyone else.
    assert_eq!(
        f.tf.check_code(&pam(None), Some(&code_at(&f, &s, 0)))
            .unwrap(),
        CheckOutcome::Accepted
    );
    assert_eq!(f.rows("otp_failures"), 0);
    let wrong =
        f.tf.audit(&store::AuditQuery {
            outcome: Some("wrong".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    // Each is counted; repeats beyond the rate share one row.
    assert_eq!(wrong.iter().map(|e| e.count).sum::<u64>(), 25);
    assert_eq!(
        wrong.len(),
        AuditRetention::default().aggregate_after as usize + 1
    );
}

#[test]
fn pam_checks_count_by_pam_rhost() {
    let f = fixture();
    let s = enable(&f);
    for _ in 0..5 {
        assert_eq!(
            f.tf.check_code(&pam(Some("198.51.100.7")), Some(&wrong_code(&f, &s)))
                .unwrap(),
            CheckOutcome::Wrong
        );
    }
    let right = code_at(&f, &s, 0);
    // That host is locked, for PAM and over TCP alike (one host, one origin;
    // an IPv4-mapped IPv6 peer is the same host).
    assert!(locked_out(f.tf.check_code(&pam(Some("198.51.100.7")), Some(&right))).is_some());
    let mapped = Caller::new(
        None,
        Origin::Tcp {
            addr: "::ffff:198.51.100.7".parse().unwrap(),
            port: 1,
        },
    );
    assert!(locked_out(f.tf.check_code(&mapped, Some(&right))).is_some());
    // Another rhost is not, nor a PAM check without one (`local`).
    assert_eq!(
        f.tf.check_code(&pam(Some("198.51.100.8")), Some(&right))
            .unwrap(),
        CheckOutcome::Accepted
    );
    f.clock.advance_secs(30);
    assert_eq!(
        f.tf.check_code(&pam(None), Some(&code_at(&f, &s, 0)))
            .unwrap(),
        CheckOutcome::Accepted
    );
}

#[test]
fn failure_rows_of_many_origins_expire() {
    let f = fixture();
    let s = enable(&f);
    // 19 addresses, one wrong code each: 19 origin rows and the secret's.
    for last in 1..=19 {
        f.tf.check_code(&tcp(last), Some(&wrong_code(&f, &s)))
            .unwrap();
    }
    assert_eq!(f.rows("otp_failures"), 20);
    // Their window passes; the next check deletes them (in batches).
    f.clock.advance_secs(301);
    f.tf.check_code(&tcp(100), Some(&wrong_code(&f, &s)))
        .unwrap();
    f.tf.check_code(&tcp(100), Some(&wrong_code(&f, &s)))
        .unwrap();
    assert_eq!(
        f.rows("otp_failures"),
        2,
        "only the live origin and secret rows"
    );
}

#[test]
fn audit_retention_by_count_and_by_age() {
    let retention = AuditRetention {
        max_age_days: NonZeroU32::new(2).expect("non-zero"),
        max_rows: NonZeroU64::new(10).expect("non-zero"),
        security_max_age_days: NonZeroU32::new(2).expect("non-zero"),
        // Every record its own row, so that the rows are the count.
        aggregate_after: u32::MAX,
        batch: 4,
        ..AuditRetention::default()
    };
    let f = fixture_with(RateLimits::default(), retention);
    let s = enable(&f);
    // One check a retention period: each prunes.
    for _ in 0..30 {
        f.clock.advance_ms(service::PRUNE_PERIOD_MS);
        f.tf.check_code(&root_unix(), Some(&wrong_code(&f, &s)))
            .unwrap();
    }
    // Ten checks (routine), and the enabling change on its own budget.
    let rows = all_audit(&f);
    assert_eq!(rows.len(), 11);
    assert_eq!(f.rows("audit_log"), 11);
    let newest = rows[0].id;
    // Old records go once they are older than max_age_days, a batch at a
    // time: while a prune deletes a full batch, the next audited
    // transaction prunes again, in the same period.
    f.clock.advance_secs(2 * 86_400 + 1);
    f.tf.record(
        &root_unix(),
        service::AuditEvent::AuthLogin,
        service::AuditOutcome::Success,
        None,
    )
    .unwrap();
    assert_eq!(f.rows("audit_log"), 11 - 4);
    for _ in 0..2 {
        f.tf.record(
            &root_unix(),
            service::AuditEvent::AuthLogin,
            service::AuditOutcome::Success,
            None,
        )
        .unwrap();
    }
    let rows = all_audit(&f);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.id > newest && r.record.event == "auth.login")
    );
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
    assert!(f.tf.verify(&admin(), Some(&code)).unwrap());
    assert!(!f.tf.verify(&admin(), Some(&code)).unwrap());
    assert!(!f.tf.verify(&admin(), Some(&wrong_code(&f, &s))).unwrap());
    f.tf.renew_secret(&admin()).unwrap();
    let rows = f.tf.audit(&store::AuditQuery::default()).unwrap();
    let seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.record.event.clone(), r.record.outcome.clone()))
        .collect();
    assert_eq!(seen[0], ("twofactor.renew_secret".into(), "success".into()));
    assert!(seen.contains(&("otp.check".into(), "accepted".into())));
    assert!(seen.contains(&("otp.check".into(), "replayed".into())));
    assert!(seen.contains(&("otp.check".into(), "wrong".into())));
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
        "{}",
        uri.as_str()
    );
    assert!(
        uri.ends_with("&issuer=iXsystems&digits=8&period=45"),
        "{}",
        uri.as_str()
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
