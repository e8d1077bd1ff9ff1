//! Per-user secrets and recovery codes against a real
//! SQLite store, time moved by hand.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use common::Fixture;

use std::sync::Arc;

use otp::{Algorithm, Digits, Interval, KeyUri, Secret, Totp};
use service::{
    Caller, CheckOutcome, ManualClock, Origin, OsRandom, RateLimits, SecretOptions, ServiceError,
    UpdateRequest, UserRef,
};
use store::AuditQuery;

fn fixture() -> Fixture {
    common::fixture_with_random(Arc::new(OsRandom), RateLimits::default())
}

fn alice() -> UserRef {
    UserRef::new("alice", 1001)
}

fn bob() -> UserRef {
    UserRef::new("bob", 1002)
}

fn root_unix() -> Caller {
    Caller::new(Some("root"), Origin::Unix { uid: 0, pid: None }).as_admin(true)
}

fn tcp(user: &str, last: u8) -> Caller {
    Caller::new(
        Some(user),
        Origin::Tcp {
            addr: [192, 0, 2, last].into(),
            port: 40000,
        },
    )
}

fn enable(f: &Fixture) {
    f.tf.update(
        &root_unix(),
        UpdateRequest {
            enabled: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
}

/// The secret, digits and interval in `uri`.
fn totp_of(uri: &str) -> (Secret, Digits, Interval) {
    let k = KeyUri::parse(uri).unwrap();
    (k.secret, k.digits, k.period)
}

fn code(f: &Fixture, uri: &str, offset_steps: i64) -> String {
    let (s, d, i) = totp_of(uri);
    let now = f.clock_secs() + offset_steps * i64::from(i.get());
    Totp::new(&s, d, i, Algorithm::Sha1)
        .code(u64::try_from(now).unwrap())
        .to_string()
}

fn wrong(right: &str) -> String {
    if right == "000000" {
        "000001"
    } else {
        "000000"
    }
    .to_owned()
}

fn uri_of(f: &Fixture, user: &UserRef) -> String {
    f.tf.user_provisioning_uri(user).unwrap().to_string()
}

impl Fixture {
    fn clock_secs(&self) -> i64 {
        use service::Clock;
        self.clock.now_ms() / 1000
    }
    fn step(&self) {
        self.clock.advance_secs(30);
    }
    fn db_files(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for e in std::fs::read_dir(self.dir.path().join("state")).unwrap() {
            all.extend(std::fs::read(e.unwrap().path()).unwrap());
        }
        all
    }
}

/// Root's secret is one entry in an app, whichever way it is shown: the
/// user view gives the entry's (TrueNAS) label, also after an enrolment.
#[test]
fn roots_secret_has_one_label() {
    let f = fixture();
    enable(&f);
    let system = f.tf.provisioning_uri().unwrap().to_string();
    assert!(
        system.starts_with("otpauth://totp/iXsystems:nas%40TrueNAS?"),
        "{system}"
    );
    assert_eq!(uri_of(&f, &UserRef::root()), system);
    let en =
        f.tf.enroll(&root_unix(), &UserRef::root(), SecretOptions::default())
            .unwrap();
    let pending = en.provisioning_uri.to_string();
    assert!(
        pending.starts_with("otpauth://totp/iXsystems:nas%40TrueNAS?"),
        "{pending}"
    );
}

#[test]
fn each_account_has_its_own_secret_and_one_users_wrong_codes_lock_nobody_else() {
    let f = fixture();
    enable(&f);
    let root_uri = f.tf.provisioning_uri().unwrap();
    f.tf.renew_user_secret(&root_unix(), &alice(), SecretOptions::default())
        .unwrap();
    f.tf.renew_user_secret(&root_unix(), &bob(), SecretOptions::default())
        .unwrap();
    let (a, b) = (uri_of(&f, &alice()), uri_of(&f, &bob()));
    assert!(
        a.starts_with("otpauth://totp/iXsystems:alice-nas%40TrueNAS?"),
        "{a}"
    );
    assert_ne!(totp_of(&a).0, totp_of(&b).0);

    // alice's code is alice's, not bob's.
    let ca = code(&f, &a, 0);
    let cb = code(&f, &b, 0);
    assert_ne!(ca, cb, "distinct secrets give distinct codes here");
    assert!(!f.tf.verify_user(&tcp("bob", 9), &bob(), Some(&ca)).unwrap());
    assert!(
        f.tf.verify_user(&tcp("alice", 1), &alice(), Some(&ca))
            .unwrap()
    );

    // bob's wrong codes from one address, then from twenty: bob is locked ...
    f.step();
    for i in 0..20 {
        let _ =
            f.tf.check_code_for(&tcp("bob", 50 + i), &bob(), Some(&wrong(&code(&f, &b, 0))));
    }
    assert!(matches!(
        f.tf.verify_user(&tcp("bob", 99), &bob(), Some(&code(&f, &b, 0))),
        Err(ServiceError::LockedOut { .. })
    ));
    // ... but not alice, nor root, from the same addresses.
    assert!(
        f.tf.verify_user(&tcp("alice", 50), &alice(), Some(&code(&f, &a, 0)))
            .unwrap()
    );
    assert_eq!(
        f.tf.check_code(&tcp("root", 50), Some(&code(&f, &root_uri, 0)))
            .unwrap(),
        CheckOutcome::Accepted
    );
}

#[test]
fn a_user_without_a_secret_is_not_configured_and_disabled_is_not_enabled() {
    let f = fixture();
    assert!(matches!(
        f.tf.verify_user(&tcp("alice", 1), &alice(), Some("123456")),
        Err(ServiceError::NotEnabled)
    ));
    enable(&f);
    assert!(matches!(
        f.tf.verify_user(&tcp("alice", 1), &alice(), Some("123456")),
        Err(ServiceError::NotConfigured)
    ));
    let e = f.tf.user_provisioning_uri(&alice()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "'alice' user does not have two factor authentication configured"
    );
    let c = f.tf.user_config(&alice()).unwrap();
    assert!(!c.secret_configured && c.provisioning_uri.is_none());
    assert_eq!((c.otp_digits.get(), c.interval.get()), (6, 30));
}

#[test]
fn renew_takes_options_then_the_users_previous_values_then_the_entrys() {
    let f = fixture();
    enable(&f);
    let opts = SecretOptions {
        otp_digits: Some(Digits::new(8).unwrap()),
        interval: Some(Interval::new(60).unwrap()),
    };
    let c =
        f.tf.renew_user_secret(&root_unix(), &alice(), opts)
            .unwrap();
    assert_eq!((c.otp_digits.get(), c.interval.get()), (8, 60));
    let first = uri_of(&f, &alice());
    let c =
        f.tf.renew_user_secret(
            &root_unix(),
            &alice(),
            SecretOptions {
                otp_digits: Some(Digits::new(7).unwrap()),
                interval: None,
            },
        )
        .unwrap();
    assert_eq!((c.otp_digits.get(), c.interval.get()), (7, 60));
    assert_ne!(totp_of(&first).0, totp_of(&uri_of(&f, &alice())).0);
    let c =
        f.tf.renew_user_secret(&root_unix(), &bob(), SecretOptions::default())
            .unwrap();
    assert_eq!((c.otp_digits.get(), c.interval.get()), (6, 30));
    // Root's are the entry's.
    f.tf.renew_user_secret(&root_unix(), &UserRef::root(), opts)
        .unwrap();
    let e = f.tf.config().unwrap();
    assert_eq!((e.otp_digits.get(), e.interval.get()), (8, 60));
    // Unset removes it.
    f.tf.unset_user_secret(&root_unix(), &alice()).unwrap();
    assert!(!f.tf.user_config(&alice()).unwrap().secret_configured);
}

#[test]
fn enrolment_switches_only_on_a_right_code_and_expires_after_ten_minutes() {
    let f = fixture();
    enable(&f);
    f.tf.renew_user_secret(&root_unix(), &alice(), SecretOptions::default())
        .unwrap();
    let old = uri_of(&f, &alice());
    let alice_local = Caller::new(
        Some("alice"),
        Origin::Unix {
            uid: 1001,
            pid: None,
        },
    );

    let en =
        f.tf.enroll(&alice_local, &alice(), SecretOptions::default())
            .unwrap();
    assert_eq!(en.expires_in, 600);
    let new = en.provisioning_uri.to_string();
    assert_ne!(totp_of(&old).0, totp_of(&new).0);

    // A wrong confirming code: an error, the old secret works, the pending one stays.
    let e =
        f.tf.enroll_confirm(&alice_local, &alice(), Some(&wrong(&code(&f, &new, 0))))
            .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Invalid code; the pending secret stays pending"
    );
    assert_eq!(uri_of(&f, &alice()), old);
    assert!(
        f.tf.verify_user(&alice_local, &alice(), Some(&code(&f, &old, 0)))
            .unwrap()
    );
    // It counted as a failure of alice's secret.
    let failures =
        f.tf.audit(&AuditQuery {
            event: Some("otp.check".into()),
            outcome: Some("wrong".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(failures.len(), 1);

    // The right code switches, and cannot be used again.
    let c = code(&f, &new, 0);
    f.tf.enroll_confirm(&alice_local, &alice(), Some(&c))
        .unwrap();
    assert_eq!(uri_of(&f, &alice()), new);
    assert!(
        !f.tf.verify_user(&alice_local, &alice(), Some(&c)).unwrap(),
        "replayed"
    );
    f.step();
    assert!(
        !f.tf
            .verify_user(&alice_local, &alice(), Some(&code(&f, &old, 0)))
            .unwrap()
    );
    assert!(
        f.tf.verify_user(&alice_local, &alice(), Some(&code(&f, &new, 0)))
            .unwrap()
    );
    assert!(matches!(
        f.tf.enroll_confirm(&alice_local, &alice(), Some(&code(&f, &new, 1))),
        Err(ServiceError::NoPendingEnrolment)
    ));

    // A pending secret expires after 10 minutes.
    let en =
        f.tf.enroll(&alice_local, &alice(), SecretOptions::default())
            .unwrap();
    let later = en.provisioning_uri.to_string();
    f.clock.advance_secs(599);
    let ok_code = code(&f, &later, 0);
    f.clock.advance_secs(1);
    assert!(matches!(
        f.tf.enroll_confirm(&alice_local, &alice(), Some(&ok_code)),
        Err(ServiceError::EnrolmentExpired)
    ));
    assert_eq!(uri_of(&f, &alice()), new);
}

#[test]
fn a_wrong_enrolment_confirmation_counts_toward_the_lock_out() {
    let f = fixture();
    enable(&f);
    let who = tcp("alice", 7);
    let en =
        f.tf.enroll(&who, &alice(), SecretOptions::default())
            .unwrap();
    let uri = en.provisioning_uri.to_string();
    for _ in 0..5 {
        let _ =
            f.tf.enroll_confirm(&who, &alice(), Some(&wrong(&code(&f, &uri, 0))));
    }
    assert!(matches!(
        f.tf.enroll_confirm(&who, &alice(), Some(&code(&f, &uri, 0))),
        Err(ServiceError::LockedOut { .. })
    ));
}

#[test]
fn recovery_codes_work_once_count_down_and_are_revoked_by_regenerating() {
    let f = fixture();
    enable(&f);
    f.tf.renew_user_secret(&root_unix(), &alice(), SecretOptions::default())
        .unwrap();
    let who = tcp("alice", 3);
    let codes =
        f.tf.generate_recovery_codes(&root_unix(), &alice())
            .unwrap();
    assert_eq!(codes.len(), 10);
    for c in &codes {
        assert_eq!(c.len(), 11, "{}", c.as_str());
        assert_eq!(&c[5..6], "-");
        assert!(
            c.bytes()
                .all(|b| b == b'-' || matches!(b, b'a'..=b'z' | b'2'..=b'7'))
        );
    }
    assert_eq!(f.tf.user_config(&alice()).unwrap().recovery_codes_left, 10);

    // Case, spaces and the dash do not matter; each works once.
    let typed = codes[0].replace('-', " ").to_uppercase();
    assert!(f.tf.verify_user(&who, &alice(), Some(&typed)).unwrap());
    assert!(!f.tf.verify_user(&who, &alice(), Some(&codes[0])).unwrap());
    assert_eq!(f.tf.user_config(&alice()).unwrap().recovery_codes_left, 9);
    // Not bob's.
    f.tf.renew_user_secret(&root_unix(), &bob(), SecretOptions::default())
        .unwrap();
    assert!(
        !f.tf
            .verify_user(&tcp("bob", 4), &bob(), Some(&codes[1]))
            .unwrap()
    );

    let used =
        f.tf.audit(&AuditQuery {
            outcome: Some("recovery_code".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(used.len(), 1);
    let detail = used[0].record.detail.as_ref().unwrap();
    assert_eq!(detail["note"], "recovery code used (9 left)");

    // Regenerating revokes the old ones.
    let fresh =
        f.tf.generate_recovery_codes(&root_unix(), &alice())
            .unwrap();
    assert!(!f.tf.verify_user(&who, &alice(), Some(&codes[2])).unwrap());
    assert!(f.tf.verify_user(&who, &alice(), Some(&fresh[0])).unwrap());

    // Neither the codes nor their normalised form are in any file.
    let files = f.db_files();
    for c in codes.iter().chain(fresh.iter()) {
        for needle in [c.to_string(), c.replace('-', "")] {
            assert!(
                !files.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "a recovery code is in the state files"
            );
        }
    }
}

#[test]
fn wrong_recovery_codes_count_toward_the_rate_limit() {
    let f = fixture();
    enable(&f);
    f.tf.renew_user_secret(&root_unix(), &alice(), SecretOptions::default())
        .unwrap();
    let codes =
        f.tf.generate_recovery_codes(&root_unix(), &alice())
            .unwrap();
    let who = tcp("alice", 5);
    for _ in 0..5 {
        assert!(
            !f.tf
                .verify_user(&who, &alice(), Some("aaaaa-aaaaa"))
                .unwrap()
        );
    }
    assert!(matches!(
        f.tf.verify_user(&who, &alice(), Some(&codes[0])),
        Err(ServiceError::LockedOut { .. })
    ));
    assert_eq!(f.tf.user_config(&alice()).unwrap().recovery_codes_left, 10);
}

#[test]
fn a_recreated_account_with_a_new_uid_is_not_honoured_and_it_is_audited() {
    let f = fixture();
    enable(&f);
    f.tf.renew_user_secret(&root_unix(), &alice(), SecretOptions::default())
        .unwrap();
    let uri = uri_of(&f, &alice());
    let reborn = UserRef::new("alice", 1050);
    let who = tcp("alice", 8);
    assert!(matches!(
        f.tf.verify_user(&who, &reborn, Some(&code(&f, &uri, 0))),
        Err(ServiceError::NotConfigured)
    ));
    assert!(!f.tf.user_has_secret(&who, &reborn).unwrap());
    assert!(!f.tf.user_config(&reborn).unwrap().secret_configured);
    let stale =
        f.tf.audit(&AuditQuery {
            outcome: Some("not_configured".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(stale.len(), 2);
    assert_eq!(stale[0].record.detail.as_ref().unwrap()["secret_uid"], 1001);
    // The old uid's owner still works (nothing was deleted).
    assert!(
        f.tf.verify_user(&who, &alice(), Some(&code(&f, &uri, 0)))
            .unwrap()
    );
}

/// The fixture state written by main (crates/store/tests/fixtures/main-v2):
/// the code main accepted is refused after the migration, and root's next
/// code is accepted.
#[test]
fn after_migrating_mains_state_its_accepted_code_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let fixture_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures/main-v2");
    let readme = std::fs::read_to_string(fixture_dir.join("README")).unwrap();
    let value = |k: &str| {
        readme
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    for n in ["twofactor.db", "secret.key"] {
        std::fs::copy(fixture_dir.join(n), state.join(n)).unwrap();
        std::fs::set_permissions(state.join(n), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let at: i64 = value("accepted_at").parse().unwrap();
    let clock = Arc::new(ManualClock::at_secs(at));
    let tf = common::two_factor(
        store::SqliteStore::open(&state).unwrap(),
        clock.clone(),
        Arc::new(OsRandom),
        RateLimits::default(),
    );
    let who = tcp("root", 1);
    assert_eq!(
        tf.check_code_for(&who, &UserRef::root(), Some(&value("accepted_code")))
            .unwrap(),
        CheckOutcome::Replayed
    );
    let uri = tf.user_provisioning_uri(&UserRef::root()).unwrap();
    let (s, d, i) = totp_of(&uri);
    clock.advance_secs(30);
    let next = Totp::new(&s, d, i, Algorithm::Sha1)
        .code(u64::try_from(at + 30).unwrap())
        .to_string();
    assert!(tf.verify_user(&who, &UserRef::root(), Some(&next)).unwrap());
}

/// `Debug` of every secret-carrying value the service hands out shows no
/// secret: the entry's base32 text, the URIs (system, user, enrolment; all
/// `ProvisioningUri`), the user's configuration, and the password type of
/// `PasswordCheck`.
#[test]
fn debug_of_secret_carrying_values_shows_no_secret() {
    let f = fixture();
    enable(&f);
    f.tf.renew_user_secret(&root_unix(), &alice(), SecretOptions::default())
        .unwrap();
    let entry = f.tf.config().unwrap();
    let system_secret = entry.secret.clone().unwrap();
    let system_uri = f.tf.provisioning_uri().unwrap();
    let user_uri = f.tf.user_provisioning_uri(&alice()).unwrap();
    let user_config = f.tf.user_config(&alice()).unwrap();
    let enrolment =
        f.tf.enroll(&root_unix(), &bob(), SecretOptions::default())
            .unwrap();
    let password = service::SecretString::from("hunter2-correct-horse");
    let shown =
        format!("{entry:?} {user_config:?} {enrolment:?} {password:?} {system_uri:?} {user_uri:?}");
    let secrets = [
        system_secret.as_str().to_owned(),
        totp_of(&user_uri).0.to_base32().as_str().to_owned(),
        totp_of(&enrolment.provisioning_uri)
            .0
            .to_base32()
            .as_str()
            .to_owned(),
        "hunter2-correct-horse".to_owned(),
    ];
    for secret in &secrets {
        assert!(!shown.contains(secret.as_str()), "{shown}");
    }
    assert!(system_uri.contains(system_secret.as_str()));
    assert!(
        shown.contains("redacted") || shown.contains("REDACTED"),
        "{shown}"
    );
}

/// A store that counts the reads that unseal the system secret.
#[derive(Debug)]
struct CountingStore {
    inner: store::SqliteStore,
    unsealing_reads: std::sync::atomic::AtomicUsize,
}

impl store::Store for CountingStore {
    fn read(&self) -> store::Result<store::SystemEntry> {
        self.unsealing_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.read()
    }
    fn read_summary(&self) -> store::Result<store::EntrySummary> {
        self.inner.read_summary()
    }
    fn transact_dyn(
        &self,
        f: &mut dyn FnMut(&mut dyn store::Tx) -> store::Result<()>,
    ) -> store::Result<()> {
        self.inner.transact_dyn(f)
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
    fn query_audit(&self, query: &AuditQuery) -> store::Result<Vec<store::AuditEntry>> {
        self.inner.query_audit(query)
    }
    fn read_user_secrets(&self) -> store::Result<Vec<store::UserSecretInfo>> {
        self.inner.read_user_secrets()
    }
}

/// The frequent questions (is a code required, who holds a secret, a
/// user's own configuration) never take the entry's unsealing read; only
/// the answers of the TrueNAS entry that carry root's secret (`config`,
/// its URI) do. Root's own configuration reads root's row like any
/// account's (`read_user`).
#[test]
fn only_answers_that_carry_the_system_secret_unseal_it() {
    let dir = tempfile::tempdir().unwrap();
    let counting = Arc::new(CountingStore {
        inner: store::SqliteStore::open(&dir.path().join("state")).unwrap(),
        unsealing_reads: Default::default(),
    });
    let tf = service::TwoFactor::new(
        counting.clone(),
        Arc::new(ManualClock::at_secs(common::T0)),
        Arc::new(OsRandom),
        common::nas_labels(),
        RateLimits::default(),
    );
    let unsealed = || {
        counting
            .unsealing_reads
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    tf.update(
        &root_unix(),
        UpdateRequest {
            enabled: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    tf.renew_user_secret(&root_unix(), &alice(), SecretOptions::default())
        .unwrap();
    assert!(tf.code_required(false).unwrap());
    assert!(tf.user_has_secret(&root_unix(), &UserRef::root()).unwrap());
    assert!(tf.name_holds_secret("root").unwrap());
    assert_eq!(tf.secret_holders().unwrap().len(), 2);
    assert!(tf.user_config(&alice()).unwrap().secret_configured);
    tf.user_provisioning_uri(&alice()).unwrap();
    assert_eq!(unsealed(), 0, "none of these needed the system key");
    assert!(tf.config().unwrap().secret.is_some());
    assert!(tf.provisioning_uri().is_ok());
    assert_eq!(unsealed(), 2);
    assert!(tf.user_config(&UserRef::root()).unwrap().secret_configured);
    assert_eq!(unsealed(), 2);
}

/// Listing who holds a secret reads a snapshot: it neither waits for nor
/// holds up a writer (another process holds the write lock throughout).
#[test]
fn listing_secret_holders_never_waits_for_the_writer() {
    let f = fixture();
    enable(&f);
    f.tf.renew_user_secret(&root_unix(), &alice(), SecretOptions::default())
        .unwrap();
    let db = f.dir.path().join("state").join(store::SqliteStore::DB_FILE);
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let holders = f.tf.secret_holders().unwrap();
    assert!(f.tf.honours_secret("alice", 1001).unwrap());
    assert!(!f.tf.honours_secret("alice", 4242).unwrap());
    assert!(!f.tf.honours_secret("bob", 1002).unwrap());
    assert!(f.tf.honours_secret("root", 0).unwrap());
    let took = started.elapsed();
    writer.execute_batch("ROLLBACK").unwrap();
    let names: Vec<&str> = holders.iter().map(|h| h.username.as_str()).collect();
    assert_eq!(names, ["root", "alice"]);
    assert!(
        took < std::time::Duration::from_secs(1),
        "waited {took:?} for the writer"
    );
}

/// main's single-secret state (main-v2) after the upgrade: an account
/// without a secret of its own is checked against root's secret, with
/// root's replay state and root's lock-out; recovery codes do not stand in
/// for it; ending the mode leaves it with nothing to check.
#[test]
fn after_migrating_mains_state_an_account_without_a_secret_is_checked_against_roots() {
    use std::os::unix::fs::PermissionsExt;
    let fixture_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures/main-v2");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    for n in ["twofactor.db", "secret.key"] {
        std::fs::copy(fixture_dir.join(n), state.join(n)).unwrap();
        std::fs::set_permissions(state.join(n), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let clock = Arc::new(ManualClock::at_secs(1_795_991_339 + 30));
    let tf = common::two_factor(
        store::SqliteStore::open(&state).unwrap(),
        clock.clone(),
        Arc::new(OsRandom),
        RateLimits::default(),
    );
    let who = tcp("alice", 3);
    assert_eq!(
        tf.login_factor(&who, &alice()).unwrap(),
        service::LoginFactor::LegacySharedCode
    );
    // Her own check (verify) knows no secret of hers.
    assert!(matches!(
        tf.verify_user(&who, &alice(), Some("123456")),
        Err(ServiceError::NotConfigured)
    ));
    let root_uri = tf.user_provisioning_uri(&UserRef::root()).unwrap();
    let (s, d, i) = totp_of(&root_uri);
    let now = u64::try_from(service::Clock::now_ms(&*clock) / 1000).unwrap();
    let right = Totp::new(&s, d, i, Algorithm::Sha1).code(now).to_string();
    // Wrong codes of alice count toward root's lock-out.
    for _ in 0..5 {
        assert_eq!(
            tf.check_login_code(&who, &alice(), Some(&wrong(&right)))
                .unwrap(),
            CheckOutcome::Wrong
        );
    }
    assert!(matches!(
        tf.check_code(&tcp("root", 3), Some(&right)).unwrap(),
        CheckOutcome::LockedOut { .. }
    ));
    clock.advance_secs(60);
    let now = u64::try_from(service::Clock::now_ms(&*clock) / 1000).unwrap();
    let right = Totp::new(&s, d, i, Algorithm::Sha1).code(now).to_string();
    assert_eq!(
        tf.check_login_code(&who, &alice(), Some(&right)).unwrap(),
        CheckOutcome::Accepted
    );
    // Root's replay state: the same code no longer opens root's login.
    assert_eq!(
        tf.check_code(&tcp("root", 4), Some(&right)).unwrap(),
        CheckOutcome::Replayed
    );
    let rows = tf
        .audit(&AuditQuery {
            outcome: Some("accepted".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        rows[0].record.detail.as_ref().unwrap()["legacy_shared_code"],
        true
    );
    assert!(tf.end_legacy_shared_code(&root_unix()).unwrap());
    assert!(!tf.end_legacy_shared_code(&root_unix()).unwrap());
    assert_eq!(
        tf.login_factor(&who, &alice()).unwrap(),
        service::LoginFactor::None
    );
    assert!(matches!(
        tf.check_login_code(&who, &alice(), Some(&right)),
        Err(ServiceError::NotConfigured)
    ));
}

/// Root's digits and interval are the entry's, which are also the defaults
/// of new secrets: renewing root's secret with new numbers changes what
/// `config` shows and what an account without a secret is offered and
/// gets; `update` changes root's codes and the defaults together; an
/// account's own secret keeps the numbers it was made with.
#[test]
fn roots_numbers_are_the_entrys_defaults_both_ways() {
    let f = fixture();
    enable(&f);
    let opts = SecretOptions {
        otp_digits: Some(Digits::new(8).unwrap()),
        interval: Some(Interval::new(60).unwrap()),
    };
    f.tf.renew_user_secret(&root_unix(), &UserRef::root(), opts)
        .unwrap();
    let config = f.tf.config().unwrap();
    assert_eq!((config.otp_digits.get(), config.interval.get()), (8, 60));
    let offered = f.tf.user_config(&alice()).unwrap();
    assert!(!offered.secret_configured);
    assert_eq!((offered.otp_digits.get(), offered.interval.get()), (8, 60));
    let made =
        f.tf.renew_user_secret(&root_unix(), &alice(), SecretOptions::default())
            .unwrap();
    assert_eq!((made.otp_digits.get(), made.interval.get()), (8, 60));

    f.tf.update(
        &root_unix(),
        UpdateRequest {
            otp_digits: Some(Digits::new(7).unwrap()),
            interval: Some(Interval::new(45).unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    let root = f.tf.user_config(&UserRef::root()).unwrap();
    assert_eq!((root.otp_digits.get(), root.interval.get()), (7, 45));
    let uri = f.tf.provisioning_uri().unwrap().to_string();
    assert_eq!(totp_of(&uri).1.get(), 7);
    let right = code(&f, &uri, 0);
    assert_eq!(right.len(), 7);
    assert!(f.tf.verify(&root_unix(), Some(&right)).unwrap());
    assert_eq!(
        (
            f.tf.user_config(&bob()).unwrap().otp_digits.get(),
            f.tf.user_config(&alice()).unwrap().otp_digits.get()
        ),
        (7, 8),
        "the default moved; alice's own secret kept its numbers"
    );
}
