//! Session tokens (`auth.generate_token`, `auth.login_ex` with
//! `TOKEN_PLAIN`) and the QR methods that return SVG.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::Arc;
use std::time::Duration;

use api::{Api, Session};
use common::rpc;
use serde_json::{Value, json};
use service::{Account, Accounts, ManualClock, Origin, PasswordCheck, RateLimits};

#[derive(Debug)]
struct Users;

impl Accounts for Users {
    fn by_name(&self, name: &str) -> Option<Account> {
        common::admin_or_alice(name)
    }
    fn by_uid(&self, uid: u32) -> Option<Account> {
        common::root_by_uid(uid).or_else(|| match uid {
            1000 => common::admin_or_alice("admin"),
            1001 => common::admin_or_alice("alice"),
            _ => None,
        })
    }
}

impl PasswordCheck for Users {
    fn check(&self, user: &str, password: &service::SecretString, _: Option<&str>) -> bool {
        use service::ExposeSecret;
        common::admin_or_alice_password(user, password.expose_secret())
    }
}

struct Fx {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    api: Api,
}

fn api_on(dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> Api {
    let tf = common::two_factor(
        dir.path(),
        clock,
        common::nas_labels(),
        RateLimits::default(),
    );
    Api::new(
        tf,
        Arc::new(Users),
        Arc::new(Users),
        common::admin_options(Duration::ZERO),
    )
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_secs(1_750_000_000));
    let api = api_on(&dir, clock.clone());
    Fx { dir, clock, api }
}

fn from(addr: [u8; 4]) -> Session {
    Session::anonymous(Origin::Tcp {
        addr: addr.into(),
        port: 40000,
    })
}

const HOME: [u8; 4] = [192, 0, 2, 10];
const ELSEWHERE: [u8; 4] = [198, 51, 100, 7];

fn password_login(api: &Api, s: &Session, user: &str, pw: &str) -> Value {
    rpc(
        api,
        s,
        "auth.login_ex",
        json!([{"mechanism": "PASSWORD_PLAIN", "username": user, "password": pw}]),
    )
    .unwrap()
}

fn token_login(api: &Api, s: &Session, token: &str) -> Value {
    rpc(
        api,
        s,
        "auth.login_ex",
        json!([{"mechanism": "TOKEN_PLAIN", "token": token}]),
    )
    .unwrap()
}

/// alice signed in from `HOME`, with a token made with `params`.
fn alice_token(api: &Api, params: Value) -> (Session, String) {
    let s = from(HOME);
    assert_eq!(
        password_login(api, &s, "alice", "alicepw")["response_type"],
        "SUCCESS"
    );
    let token = rpc(api, &s, "auth.generate_token", params).unwrap();
    (s, token.as_str().unwrap().to_owned())
}

/// The current code of the secret in `uri`, on the fixture's clock.
fn current_code(fx: &Fx, uri: &str) -> String {
    use service::Clock;
    let k = otp::KeyUri::parse(uri).unwrap();
    otp::Totp::new(&k.secret, k.digits, k.period, otp::Algorithm::Sha1)
        .code(u64::try_from(fx.clock.now_ms() / 1000).unwrap())
        .to_string()
}

fn who(api: &Api, s: &Session) -> Value {
    rpc(api, s, "auth.me", json!([])).map_or(Value::Null, |me| me["pw_name"].clone())
}

fn audit_outcomes(api: &Api, event: &str) -> Vec<String> {
    let root = api.unix_session(0, Some(1));
    let rows = rpc(api, &root, "audit.query", json!([{"event": event}])).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_token_signs_in_again_from_the_same_address() {
    let fx = fx();
    let api = &fx.api;
    let (_, token) = alice_token(api, json!([]));
    assert_eq!(token.len(), 64, "256 bits as hexadecimal");
    let again = from(HOME);
    assert_eq!(who(api, &again), Value::Null);
    let r = token_login(api, &again, &token);
    assert_eq!(r["response_type"], "SUCCESS", "{r}");
    assert_eq!(r["user_info"]["pw_name"], "alice");
    assert_eq!(who(api, &again), "alice");
    // A reload works again and again (not single-use by default).
    assert_eq!(
        token_login(api, &from(HOME), &token)["response_type"],
        "SUCCESS"
    );
    // A token is no password: a wrong one is refused at once, audited.
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &token[..63]);
    assert_eq!(
        token_login(api, &from(HOME), &wrong),
        json!({"response_type": "AUTH_ERR"})
    );
    assert!(audit_outcomes(api, "auth.login").contains(&"bad_token".to_owned()));
    assert!(audit_outcomes(api, "auth.generate_token").contains(&"success".to_owned()));
}

#[test]
fn a_token_bound_to_an_address_is_refused_elsewhere() {
    let fx = fx();
    let api = &fx.api;
    let (_, bound) = alice_token(api, json!([]));
    let s = from(ELSEWHERE);
    assert_eq!(
        token_login(api, &s, &bound),
        json!({"response_type": "AUTH_ERR"})
    );
    assert_eq!(who(api, &s), Value::Null);
    assert!(audit_outcomes(api, "auth.login").contains(&"token_wrong_origin".to_owned()));
    // Still good where it was made.
    assert_eq!(
        token_login(api, &from(HOME), &bound)["response_type"],
        "SUCCESS"
    );
    // match_origin=false: any address.
    let (_, free) = alice_token(api, json!([600, {}, false]));
    assert_eq!(
        token_login(api, &from(ELSEWHERE), &free)["response_type"],
        "SUCCESS"
    );
}

#[test]
fn a_token_expires_ttl_seconds_after_its_last_use() {
    let fx = fx();
    let api = &fx.api;
    let (_, token) = alice_token(api, json!([60]));
    fx.clock.advance_secs(59);
    assert_eq!(
        token_login(api, &from(HOME), &token)["response_type"],
        "SUCCESS"
    );
    // Used at 59 s: alive until 119 s.
    fx.clock.advance_secs(59);
    assert_eq!(
        token_login(api, &from(HOME), &token)["response_type"],
        "SUCCESS"
    );
    fx.clock.advance_secs(60);
    assert_eq!(
        token_login(api, &from(HOME), &token),
        json!({"response_type": "AUTH_ERR"})
    );
    // The default is 600 s.
    let (_, token) = alice_token(api, json!([]));
    fx.clock.advance_secs(599);
    assert_eq!(
        token_login(api, &from(HOME), &token)["response_type"],
        "SUCCESS"
    );
    fx.clock.advance_secs(600);
    assert_eq!(
        token_login(api, &from(HOME), &token)["response_type"],
        "AUTH_ERR"
    );
}

#[test]
fn logout_ends_the_token_of_the_session_that_made_it_or_used_it() {
    let fx = fx();
    let api = &fx.api;
    let (maker, token) = alice_token(api, json!([]));
    assert_eq!(rpc(api, &maker, "auth.logout", json!([])).unwrap(), true);
    assert_eq!(
        token_login(api, &from(HOME), &token)["response_type"],
        "AUTH_ERR"
    );

    // Made on one page load, used after a reload, logged out there.
    let (_, token) = alice_token(api, json!([]));
    let reloaded = from(HOME);
    assert_eq!(
        token_login(api, &reloaded, &token)["response_type"],
        "SUCCESS"
    );
    rpc(api, &reloaded, "auth.logout", json!([])).unwrap();
    assert_eq!(
        token_login(api, &from(HOME), &token)["response_type"],
        "AUTH_ERR"
    );
}

#[test]
fn a_token_carries_no_more_rights_than_the_session_that_made_it() {
    let fx = fx();
    let api = &fx.api;
    // `admin` on the Unix socket: logged in by its credentials, with a
    // user's rights only (administrator rights need a password login).
    let local = api.unix_session(1000, Some(4242));
    let e = rpc(api, &local, "auth.twofactor.config", json!([])).unwrap_err();
    assert_eq!(e["data"]["errname"], "EACCES");
    let token = rpc(api, &local, "auth.generate_token", json!([600, {}, false])).unwrap();
    let tcp = from(ELSEWHERE);
    assert_eq!(
        token_login(api, &tcp, token.as_str().unwrap())["response_type"],
        "SUCCESS"
    );
    assert_eq!(who(api, &tcp), "admin");
    let e = rpc(api, &tcp, "auth.twofactor.config", json!([])).unwrap_err();
    assert_eq!(e["data"]["errname"], "EACCES", "{e}");
    // An administrator's own token keeps the rights.
    let s = from(HOME);
    password_login(api, &s, "admin", "adminpw");
    let token = rpc(api, &s, "auth.generate_token", json!([])).unwrap();
    let again = from(HOME);
    token_login(api, &again, token.as_str().unwrap());
    rpc(api, &again, "auth.twofactor.config", json!([])).unwrap();
}

#[test]
fn single_use_tokens_work_once() {
    let fx = fx();
    let api = &fx.api;
    let (_, token) = alice_token(api, json!([600, {}, true, true]));
    assert_eq!(
        token_login(api, &from(HOME), &token)["response_type"],
        "SUCCESS"
    );
    assert_eq!(
        token_login(api, &from(HOME), &token)["response_type"],
        "AUTH_ERR"
    );
}

#[test]
fn a_restart_ends_every_token() {
    let fx = fx();
    let (_, token) = alice_token(&fx.api, json!([]));
    let dir = fx.dir;
    let clock = fx.clock;
    drop(fx.api);
    let restarted = api_on(&dir, clock);
    assert_eq!(
        token_login(&restarted, &from(HOME), &token),
        json!({"response_type": "AUTH_ERR"})
    );
}

#[test]
fn generate_token_needs_a_login_is_described_and_checks_ttl() {
    let fx = fx();
    let api = &fx.api;
    let anonymous = from(HOME);
    let e = rpc(api, &anonymous, "auth.generate_token", json!([])).unwrap_err();
    assert_eq!(e["data"]["errname"], "ENOTAUTHENTICATED", "{e}");
    let (s, _) = alice_token(api, json!([]));
    let methods = rpc(api, &s, "core.get_methods", json!([])).unwrap();
    let described = &methods["auth.generate_token"]["accepts"];
    let names: Vec<&str> = described
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["_name_"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["ttl", "attrs", "match_origin", "single_use"]);
    let mechanisms = rpc(api, &s, "auth.mechanism_choices", json!([])).unwrap();
    assert!(
        mechanisms
            .as_array()
            .unwrap()
            .contains(&json!("TOKEN_PLAIN"))
    );
    for ttl in [0, 86_401] {
        let e = rpc(api, &s, "auth.generate_token", json!([ttl])).unwrap_err();
        assert_eq!(e["data"]["extra"][0][0], "auth_generate_token.ttl", "{e}");
    }
}

#[test]
fn generate_token_is_rate_limited_like_logins() {
    let fx = fx();
    let api = &fx.api;
    let (s, _) = alice_token(api, json!([]));
    // alice's one token above counted; 19 more are allowed in the minute.
    for _ in 0..19 {
        rpc(api, &s, "auth.generate_token", json!([])).unwrap();
    }
    let e = rpc(api, &s, "auth.generate_token", json!([])).unwrap_err();
    assert_eq!(e["data"]["reason"], "[EBUSY] Rate Limit Exceeded", "{e}");
    fx.clock.advance_secs(61);
    rpc(api, &s, "auth.generate_token", json!([])).unwrap();
}

#[test]
fn token_logins_are_rate_limited_like_logins() {
    let fx = fx();
    let api = &fx.api;
    let (_, token) = alice_token(api, json!([]));
    // alice's password login above counted; 19 more are allowed.
    for _ in 0..19 {
        assert_eq!(
            token_login(api, &from(HOME), &token)["response_type"],
            "SUCCESS"
        );
    }
    let e = rpc(
        api,
        &from(HOME),
        "auth.login_ex",
        json!([{"mechanism": "TOKEN_PLAIN", "token": token}]),
    )
    .unwrap_err();
    assert_eq!(e["data"]["reason"], "[EBUSY] Rate Limit Exceeded", "{e}");
}

#[test]
fn tokens_never_reach_the_audit_log() {
    let fx = fx();
    let api = &fx.api;
    let (_, token) = alice_token(api, json!([]));
    token_login(api, &from(ELSEWHERE), &token);
    token_login(api, &from(HOME), &token);
    let root = api.unix_session(0, Some(1));
    let rows = rpc(api, &root, "audit.query", json!([{}])).unwrap();
    assert!(!rows.as_array().unwrap().is_empty());
    assert!(!rows.to_string().contains(&token), "{rows}");
}

#[test]
fn a_token_of_a_deleted_or_reused_account_is_refused() {
    // Here `bob` exists only when the token is made.
    #[derive(Debug)]
    struct Bob(std::sync::atomic::AtomicBool);
    impl Accounts for Bob {
        fn by_name(&self, name: &str) -> Option<Account> {
            let there = self.0.load(std::sync::atomic::Ordering::SeqCst);
            (name == "bob" && there).then(|| common::account("bob", 1002, &["users"]))
        }
        fn by_uid(&self, _: u32) -> Option<Account> {
            None
        }
    }
    impl PasswordCheck for Bob {
        fn check(&self, user: &str, _: &service::SecretString, _: Option<&str>) -> bool {
            user == "bob"
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let tf = common::two_factor(
        dir.path(),
        Arc::new(ManualClock::at_secs(1_750_000_000)),
        common::nas_labels(),
        RateLimits::default(),
    );
    let bob = Arc::new(Bob(true.into()));
    let api = Api::new(
        tf,
        bob.clone(),
        bob.clone(),
        common::admin_options(Duration::ZERO),
    );
    let s = from(HOME);
    assert_eq!(
        password_login(&api, &s, "bob", "x")["response_type"],
        "SUCCESS"
    );
    let token = rpc(&api, &s, "auth.generate_token", json!([])).unwrap();
    bob.0.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        token_login(&api, &from(HOME), token.as_str().unwrap())["response_type"],
        "AUTH_ERR"
    );
}

#[test]
fn qr_methods_draw_the_uri_methods_answer_with_their_authorization() {
    let fx = fx();
    let api = &fx.api;
    let root = api.unix_session(0, Some(1));
    let alice = from(HOME);
    password_login(api, &alice, "alice", "alicepw");

    // No secret yet: the URI method's error.
    let e = rpc(api, &alice, "user.provisioning_qr", json!(["alice"])).unwrap_err();
    assert_eq!(e["data"]["errname"], "ENOENT", "{e}");

    // A pending enrolment: its own QR code, not the active secret's.
    let enrolment = rpc(api, &alice, "user.twofactor_enroll", json!(["alice"])).unwrap();
    let pending = rpc(api, &alice, "user.provisioning_qr", json!(["alice", true])).unwrap();
    let expected = api::qr::svg(enrolment["provisioning_uri"].as_str().unwrap()).unwrap();
    assert_eq!(pending.as_str().unwrap(), expected.as_str());
    assert!(pending.as_str().unwrap().starts_with("<?xml"));

    // The active secret's: like the URI, only once alice has proved a
    // current code of it on this connection (step-up).
    let uri = rpc(api, &root, "user.renew_2fa_secret", json!(["alice"])).unwrap();
    let uri = uri["twofactor_config"]["provisioning_uri"].clone();
    let uri = rpc(api, &root, "user.provisioning_uri", json!(["alice"])).unwrap_or(uri);
    for pending in [false, true] {
        let e = rpc(
            api,
            &alice,
            "user.provisioning_qr",
            json!(["alice", pending]),
        )
        .unwrap_err();
        assert!(
            e["data"]["reason"]
                .as_str()
                .unwrap()
                .contains("confirm with a current code first"),
            "{e}"
        );
    }
    let code = current_code(&fx, uri.as_str().unwrap());
    rpc(
        api,
        &root,
        "auth.twofactor.update",
        json!([{"enabled": true}]),
    )
    .unwrap();
    assert_eq!(
        rpc(
            api,
            &alice,
            "user.verify_twofactor_token",
            json!(["alice", code])
        )
        .unwrap(),
        json!(true)
    );
    let uri = rpc(api, &alice, "user.provisioning_uri", json!(["alice"])).unwrap();
    let qr = rpc(api, &alice, "user.provisioning_qr", json!(["alice"])).unwrap();
    assert_eq!(
        qr.as_str().unwrap(),
        api::qr::svg(uri.as_str().unwrap()).unwrap().as_str()
    );

    // Another account's: refused as the URI is.
    let uri_refusal = rpc(api, &alice, "user.provisioning_uri", json!(["admin"])).unwrap_err();
    let qr_refusal = rpc(api, &alice, "user.provisioning_qr", json!(["admin"])).unwrap_err();
    assert_eq!(qr_refusal["data"]["reason"], uri_refusal["data"]["reason"]);
    assert_eq!(qr_refusal["data"]["errname"], "EPERM");

    // The system entry's: administrators only, like provisioning_uri.
    let e = rpc(api, &alice, "auth.twofactor.provisioning_qr", json!([])).unwrap_err();
    assert_eq!(e["data"]["errname"], "EACCES");
    rpc(
        api,
        &root,
        "auth.twofactor.update",
        json!([{"enabled": true}]),
    )
    .unwrap();
    let uri = rpc(api, &root, "auth.twofactor.provisioning_uri", json!([])).unwrap();
    let qr = rpc(api, &root, "auth.twofactor.provisioning_qr", json!([])).unwrap();
    assert_eq!(
        qr.as_str().unwrap(),
        api::qr::svg(uri.as_str().unwrap()).unwrap().as_str()
    );
}

#[test]
fn a_token_carries_the_code_its_session_proved_at_login_and_no_more() {
    let fx = fx();
    let api = &fx.api;
    let root = api.unix_session(0, Some(1));
    rpc(
        api,
        &root,
        "auth.twofactor.update",
        json!([{"enabled": true}]),
    )
    .unwrap();
    rpc(api, &root, "user.renew_2fa_secret", json!(["alice"])).unwrap();
    let uri = rpc(api, &root, "user.provisioning_uri", json!(["alice"])).unwrap();
    let uri = uri.as_str().unwrap().to_owned();

    // Signed in with password and code: the token's login may read the URI.
    let s = from(HOME);
    assert_eq!(
        password_login(api, &s, "alice", "alicepw")["response_type"],
        "OTP_REQUIRED"
    );
    let r = rpc(
        api,
        &s,
        "auth.login_ex_continue",
        json!([{"mechanism": "OTP_TOKEN", "otp_token": current_code(&fx, &uri)}]),
    )
    .unwrap();
    assert_eq!(r["response_type"], "SUCCESS", "{r}");
    let token = rpc(api, &s, "auth.generate_token", json!([])).unwrap();
    let reload = from(HOME);
    assert_eq!(
        token_login(api, &reload, token.as_str().unwrap())["response_type"],
        "SUCCESS"
    );
    assert_eq!(
        rpc(api, &reload, "user.provisioning_uri", json!(["alice"])).unwrap(),
        json!(uri)
    );

    // A token made by a session that took no code (alice's own shell on
    // the Unix socket) carries no proof.
    let user_only = api.unix_session(1001, None);
    let token = rpc(
        api,
        &user_only,
        "auth.generate_token",
        json!([600, {}, false]),
    )
    .unwrap();
    let reload = from(HOME);
    token_login(api, &reload, token.as_str().unwrap());
    let e = rpc(api, &reload, "user.provisioning_uri", json!(["alice"])).unwrap_err();
    assert!(
        e["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("confirm with a current code first"),
        "{e}"
    );
}
