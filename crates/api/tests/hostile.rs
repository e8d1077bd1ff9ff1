//! The hostile-load limits, logins and events in the API layer: login attempts
//! limited per address and method on the injected clock, failed logins
//! answered at one deadline from their start, the 3-tries rule atomic under
//! concurrent continues, and subscriptions and secrets in events.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use api::{Api, Session};
use serde_json::{Value, json};
use service::{Account, Accounts, Clock, ManualClock, Origin, PasswordCheck, RateLimits};

/// Accounts `admin` and `alice`; a password check that takes (on the
/// manual clock) 3 s for an existing account and 1 s for an unknown one,
/// as a slow PAM stack would.
#[derive(Debug)]
struct Users {
    clock: Arc<ManualClock>,
}

impl Accounts for Users {
    fn by_name(&self, name: &str) -> Option<Account> {
        common::admin_or_alice(name)
    }
    fn by_uid(&self, uid: u32) -> Option<Account> {
        common::root_by_uid(uid)
    }
}

impl PasswordCheck for Users {
    fn check(&self, user: &str, password: &service::SecretString, _: Option<&str>) -> bool {
        use service::ExposeSecret;
        let known = self.by_name(user).is_some();
        self.clock.advance_secs(if known { 3 } else { 1 });
        common::admin_or_alice_password(user, password.expose_secret())
    }
}

struct Fx {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    api: Api,
}

fn fx(delay: Duration) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_secs(1_750_000_000));
    let limits = RateLimits {
        max_failures: std::num::NonZeroU32::new(1000).expect("non-zero"),
        ..RateLimits::default()
    };
    let tf = common::two_factor(dir.path(), clock.clone(), common::short_labels(), limits);
    let options = common::admin_options(delay);
    let users = Arc::new(Users {
        clock: clock.clone(),
    });
    Fx {
        _dir: dir,
        clock,
        api: Api::new(tf, users.clone(), users, options),
    }
}

fn tcp(last: u8) -> Session {
    Session::anonymous(Origin::Tcp {
        addr: [10, 0, 0, last].into(),
        port: 40000,
    })
}

fn login(api: &Api, s: &Session, user: &str, pw: &str) -> Result<Value, Value> {
    api.call_deferred(
        s,
        "auth.login_ex",
        vec![json!({"mechanism": "PASSWORD_PLAIN", "username": user, "password": pw})],
    )
    .0
    .map_err(|e| common::wire(&e))
}

#[test]
fn login_attempts_are_limited_per_address_and_method() {
    let fx = fx(Duration::ZERO);
    let s = tcp(1);
    // Each takes 1 s of (manual) PAM time: all 20 fall within 60 s.
    for _ in 0..20 {
        assert_eq!(
            login(&fx.api, &s, "ghost", "wrong").unwrap()["response_type"],
            "AUTH_ERR"
        );
    }
    // The 21st within 60 s: refused before any password check, even the right one.
    let before = fx.clock.now_ms();
    let err = login(&fx.api, &s, "admin", "adminpw").unwrap_err();
    assert_eq!(err["code"], -32001);
    assert_eq!(err["data"]["error"], 16);
    assert_eq!(err["data"]["errname"], "EBUSY");
    assert_eq!(err["data"]["reason"], "[EBUSY] Rate Limit Exceeded");
    assert_eq!(fx.clock.now_ms(), before, "no password was checked");
    // Another method and another address are counted apart.
    let legacy = fx
        .api
        .call(&s, "auth.login", vec![json!("admin"), json!("adminpw")])
        .unwrap();
    assert_eq!(legacy, json!(true));
    assert_eq!(
        login(&fx.api, &tcp(2), "admin", "adminpw").unwrap()["response_type"],
        "SUCCESS"
    );
    // A logged-in session is not limited.
    let root = fx.api.unix_session(0, Some(1));
    assert!(fx.api.call(&root, "auth.twofactor.config", vec![]).is_ok());
    // Once the window has passed, the address may try again.
    fx.clock.advance_secs(60);
    assert_eq!(
        login(&fx.api, &tcp(1), "admin", "adminpw").unwrap()["response_type"],
        "SUCCESS"
    );
}

#[test]
fn non_root_unix_peers_are_limited_by_uid() {
    let fx = fx(Duration::ZERO);
    for pid in 0..20 {
        let s = fx.api.unix_session(65534, Some(pid));
        assert_eq!(
            login(&fx.api, &s, "nobody", "x").unwrap()["response_type"],
            "AUTH_ERR"
        );
    }
    let s = fx.api.unix_session(65534, Some(99));
    assert_eq!(
        login(&fx.api, &s, "admin", "adminpw").unwrap_err()["data"]["error"],
        16
    );
}

#[test]
fn failed_logins_are_answered_at_one_deadline_from_their_start() {
    let fx = fx(Duration::from_secs(5));
    let s = tcp(1);
    let mut totals = Vec::new();
    for user in ["alice", "nobody-here"] {
        let start = fx.clock.now_ms();
        let (r, delay) = fx.api.call_deferred(
            &s,
            "auth.login_ex",
            vec![json!({"mechanism": "PASSWORD_PLAIN", "username": user, "password": "wrong"})],
        );
        assert_eq!(r.unwrap()["response_type"], "AUTH_ERR");
        let spent = Duration::from_millis(u64::try_from(fx.clock.now_ms() - start).unwrap());
        totals.push(spent + delay);
    }
    // PAM took 3 s for the existing account and 1 s for the unknown one;
    // both answers leave 5 s after their start.
    assert_eq!(totals, vec![Duration::from_secs(5); 2]);
}

#[test]
fn concurrent_continues_check_at_most_three_codes() {
    let fx = fx(Duration::ZERO);
    let root = fx.api.unix_session(0, Some(1));
    fx.api
        .call(
            &root,
            "auth.twofactor.update",
            vec![json!({"enabled": true})],
        )
        .unwrap();
    // alice is asked for a code of her own secret.
    fx.api
        .call(&root, "user.renew_2fa_secret", vec![json!("alice")])
        .unwrap();
    let s = Arc::new(tcp(7));
    assert_eq!(
        login(&fx.api, &s, "alice", "alicepw").unwrap()["response_type"],
        "OTP_REQUIRED"
    );
    let n = 12;
    let barrier = Arc::new(Barrier::new(n));
    let answers = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..n {
            let (api, s, barrier, answers) = (&fx.api, s.clone(), barrier.clone(), answers.clone());
            scope.spawn(move || {
                barrier.wait();
                let r = api.call(
                    &s,
                    "auth.login_ex_continue",
                    vec![json!({"mechanism": "OTP_TOKEN", "otp_token": "000000x"})],
                );
                answers.lock().unwrap().push(r.map_err(|e| e.to_string()));
            });
        }
    });
    let checks = fx
        .api
        .twofactor()
        .audit(&store::AuditQuery {
            event: Some("otp.check".into()),
            ..store::AuditQuery::default()
        })
        .unwrap();
    assert!(
        checks.len() <= 3,
        "{} codes were checked in one login: {:?}",
        checks.len(),
        answers.lock().unwrap()
    );
    let otp_required = answers
        .lock()
        .unwrap()
        .iter()
        .filter(|a| {
            a.as_ref()
                .is_ok_and(|v| v["response_type"] == "OTP_REQUIRED")
        })
        .count();
    assert!(otp_required <= 2, "{:?}", answers.lock().unwrap());
}

#[test]
fn a_new_login_ends_subscriptions_and_events_carry_no_secret() {
    let fx = fx(Duration::ZERO);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    fx.api
        .on_event(move |e| sink.lock().unwrap().push(e.clone()));
    let s = tcp(3);
    assert_eq!(
        login(&fx.api, &s, "admin", "adminpw").unwrap()["response_type"],
        "SUCCESS"
    );
    fx.api
        .call(&s, "core.subscribe", vec![json!("auth.twofactor")])
        .unwrap();
    assert!(s.is_subscribed(api::Collection::TwoFactor));
    let entry = fx
        .api
        .call(
            &s,
            "auth.twofactor.update",
            vec![json!({"enabled": true, "window": 2})],
        )
        .unwrap();
    assert!(entry["secret"].is_string(), "update answers the secret");
    // The entry's event (root's new secret is also root's `user` event).
    let last_entry_event = || {
        seen.lock()
            .unwrap()
            .iter()
            .rev()
            .find(|e| e.collection == api::Collection::TwoFactor)
            .cloned()
            .expect("an auth.twofactor event")
    };
    let event = last_entry_event();
    assert_eq!(event.fields["secret"], "********");
    assert_eq!(event.fields["window"], 2);
    // Codes off again, so that the next logins need only passwords.
    let root = fx.api.unix_session(0, Some(1));
    fx.api
        .call(
            &root,
            "auth.twofactor.update",
            vec![json!({"enabled": false})],
        )
        .unwrap();
    let event = last_entry_event();
    assert_eq!(event.fields["window"], 2);
    assert_eq!(event.fields["enabled"], false);
    assert_eq!(event.fields["secret"], "********");
    // The same connection logs in again, as a user who is no administrator.
    assert_eq!(
        login(&fx.api, &s, "alice", "alicepw").unwrap()["response_type"],
        "SUCCESS"
    );
    assert!(!s.is_subscribed(api::Collection::TwoFactor));
    // Nor through the legacy login.
    let s2 = tcp(4);
    fx.api
        .call(&s2, "auth.login", vec![json!("admin"), json!("adminpw")])
        .unwrap();
    fx.api
        .call(&s2, "core.subscribe", vec![json!("*")])
        .unwrap();
    fx.api
        .call(&s2, "auth.login", vec![json!("alice"), json!("alicepw")])
        .unwrap();
    assert!(!s2.is_subscribed(api::Collection::TwoFactor));
}

/// Every loopback address is one origin for the login limit, and an IPv6
/// address counts by its /64: varying the address within either does not
/// buy more attempts; another /64 has its own.
#[test]
fn login_attempts_count_loopback_as_one_and_ipv6_by_64() {
    let fx = fx(Duration::ZERO);
    let at = |addr: &str| {
        Session::anonymous(Origin::Tcp {
            addr: addr.parse().unwrap(),
            port: 40000,
        })
    };
    for i in 0..20 {
        let s = at(&format!("127.0.{i}.{}", i + 1));
        assert_eq!(
            login(&fx.api, &s, "ghost", "wrong").unwrap()["response_type"],
            "AUTH_ERR"
        );
    }
    for other in ["127.9.9.9", "::1", "::ffff:127.0.0.200"] {
        let err = login(&fx.api, &at(other), "admin", "adminpw").unwrap_err();
        assert_eq!(err["data"]["errname"], "EBUSY", "{other}");
    }
    for i in 0..20 {
        let s = at(&format!("2001:db8:1:2::{:x}", i + 1));
        login(&fx.api, &s, "ghost", "wrong").unwrap();
    }
    let err = login(&fx.api, &at("2001:db8:1:2:ffff::1"), "admin", "adminpw").unwrap_err();
    assert_eq!(err["data"]["errname"], "EBUSY");
    assert_eq!(
        login(&fx.api, &at("2001:db8:1:3::1"), "admin", "adminpw").unwrap()["response_type"],
        "SUCCESS"
    );
}
