//! The API layer: schemas produce TrueNAS's validation messages, errors map to
//! the wire's error objects, access rules hold, and logins follow the login
//! flow of `docs/protocol.md`.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::Arc;
use std::time::Duration;

use api::{Api, ApiOptions, Session};
use common::rpc;
use otp::{Algorithm, Digits, Interval, Secret, Totp};
use serde_json::{Value, json};
use service::{
    Account, Accounts, Clock, ManualClock, Origin, PasswordCheck, RateLimits, TwoFactor,
};

#[derive(Debug)]
struct Users;

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
        common::admin_or_alice_password(user, password.expose_secret())
    }
}

struct Fx {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    api: Api,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_secs(1_750_000_000));
    let tf = common::two_factor(
        dir.path(),
        clock.clone(),
        common::nas_labels(),
        RateLimits::default(),
    );
    let options = common::admin_options(Duration::ZERO);
    Fx {
        _dir: dir,
        clock,
        api: Api::new(tf, Arc::new(Users), Arc::new(Users), options),
    }
}

fn root(api: &Api) -> Session {
    api.unix_session(0, Some(1))
}

fn tcp() -> Session {
    Session::anonymous(Origin::Tcp {
        addr: [127, 0, 0, 1].into(),
        port: 40000,
    })
}

/// The service in `dir` with default limits, for tests that build their
/// own `Api`.
fn plain_two_factor(dir: &tempfile::TempDir) -> TwoFactor {
    common::two_factor(
        dir.path(),
        Arc::new(ManualClock::at_secs(1_750_000_000)),
        common::short_labels(),
        RateLimits::default(),
    )
}

/// The base32 secret of a provisioning URI.
fn uri_secret(uri: &str) -> String {
    otp::KeyUri::parse(uri)
        .unwrap()
        .secret
        .to_base32()
        .to_string()
}

fn code(fx: &Fx, secret: &str, digits: i64, interval: i64) -> String {
    let s = Secret::from_base32(secret).unwrap();
    let t = Totp::new(
        &s,
        Digits::new(digits).unwrap(),
        Interval::new(interval).unwrap(),
        Algorithm::Sha1,
    );
    t.code(u64::try_from(fx.clock.now_ms() / 1000).unwrap())
        .to_string()
}

#[test]
fn config_is_the_default_entry_in_spec_order() {
    let fx = fx();
    let v = rpc(&fx.api, &root(&fx.api), "auth.twofactor.config", json!([])).unwrap();
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"id":1,"otp_digits":6,"secret":null,"window":0,"interval":30,"services":{"ssh":false},"enabled":false}"#
    );
}

#[test]
fn update_reports_every_problem_and_changes_nothing() {
    let fx = fx();
    let s = root(&fx.api);
    let before = rpc(&fx.api, &s, "auth.twofactor.config", json!([])).unwrap();
    let err = rpc(
        &fx.api,
        &s,
        "auth.twofactor.update",
        json!([{"otp_digits": 5, "window": -1, "interval": 2, "services": {"ftp": true}, "enable": true,
                "id": 2, "secret": "AAAA", "enabled": "yes"}]),
    )
    .unwrap_err();
    assert_eq!(err["code"], -32602);
    assert_eq!(err["message"], "Invalid params");
    assert_eq!(
        err["data"]["extra"],
        json!([
            [
                "auth_twofactor_update.otp_digits",
                "Should be between 6 and 8",
                22
            ],
            [
                "auth_twofactor_update.window",
                "Should be between 0 and 10",
                22
            ],
            [
                "auth_twofactor_update.interval",
                "Should be between 5 and 3600",
                22
            ],
            [
                "auth_twofactor_update.services.ftp",
                "Field was not expected",
                22
            ],
            ["auth_twofactor_update.enable", "Field was not expected", 22],
            ["auth_twofactor_update.id", "Field was not expected", 22],
            ["auth_twofactor_update.secret", "Field was not expected", 22],
            ["auth_twofactor_update.enabled", "Not a boolean", 22],
        ])
    );
    assert_eq!(err["data"]["error"], 22);
    assert_eq!(err["data"]["errname"], "EINVAL");
    assert!(err["data"]["reason"].as_str().unwrap().starts_with(
        "[EINVAL] auth_twofactor_update.otp_digits: Should be between 6 and 8\n[EINVAL] auth_twofactor_update.window"
    ));
    assert_eq!(
        rpc(&fx.api, &s, "auth.twofactor.config", json!([])).unwrap(),
        before
    );
}

#[test]
fn type_errors_have_their_own_messages() {
    let fx = fx();
    let s = root(&fx.api);
    let err = rpc(
        &fx.api,
        &s,
        "auth.twofactor.update",
        json!([{"otp_digits": "eight", "window": 1.5, "services": [], "interval": "60"}]),
    )
    .unwrap_err();
    assert_eq!(
        err["data"]["extra"],
        json!([
            ["auth_twofactor_update.otp_digits", "Not an integer", 22],
            ["auth_twofactor_update.window", "Not an integer", 22],
            ["auth_twofactor_update.services", "Not a dictionary", 22],
        ])
    );
    let err = rpc(
        &fx.api,
        &s,
        "auth.twofactor.update",
        json!([{"services": {"ssh": 1}}]),
    )
    .unwrap_err();
    assert_eq!(
        err["data"]["extra"],
        json!([["auth_twofactor_update.services.ssh", "Not a boolean", 22]])
    );
    // A digit string is an integer.
    let ok = rpc(
        &fx.api,
        &s,
        "auth.twofactor.update",
        json!([{"interval": "60"}]),
    )
    .unwrap();
    assert_eq!(ok["interval"], 60);
}

#[test]
fn call_errors_are_truenas_shaped() {
    let fx = fx();
    let s = root(&fx.api);
    for (method, params) in [
        ("auth.twofactor.renew_secret", json!([])),
        ("auth.twofactor.verify", json!(["123456"])),
    ] {
        let err = rpc(&fx.api, &s, method, params).unwrap_err();
        assert_eq!(
            err,
            json!({"code": -32001, "message": "Method call error", "data": {
                "error": 14, "errname": "EFAULT",
                "reason": "[EFAULT] Please enable Two Factor Authentication first.",
                "trace": {"class": "CallError", "frames": [],
                    "formatted": "CallError: [EFAULT] Please enable Two Factor Authentication first.",
                    "repr": "CallError('Please enable Two Factor Authentication first.', 14, None)"},
                "extra": null}}),
            "{method}"
        );
    }
    let err = rpc(&fx.api, &s, "auth.twofactor.provisioning_uri", json!([])).unwrap_err();
    assert_eq!(
        err["data"]["reason"],
        "[EFAULT] Two Factor Authentication secret has not been generated. Enable Two Factor Authentication first."
    );
    let err = rpc(&fx.api, &s, "auth.twofactor.verify", json!([])).unwrap_err();
    assert_eq!(
        err["data"]["extra"],
        json!([["token", "attribute required", 22]])
    );
    let err = rpc(&fx.api, &s, "no.such.method", json!([])).unwrap_err();
    assert_eq!(
        err,
        json!({"code": -32601, "message": "Method does not exist"})
    );
}

#[test]
fn verify_is_a_boolean_and_null_is_false() {
    let fx = fx();
    let s = root(&fx.api);
    let e = rpc(
        &fx.api,
        &s,
        "auth.twofactor.update",
        json!([{"enabled": true}]),
    )
    .unwrap();
    let secret = e["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        rpc(&fx.api, &s, "auth.twofactor.verify", json!([null])).unwrap(),
        json!(false)
    );
    let c = code(&fx, &secret, 6, 30);
    assert_eq!(
        rpc(&fx.api, &s, "auth.twofactor.verify", json!([c])).unwrap(),
        json!(true)
    );
    assert_eq!(
        rpc(&fx.api, &s, "auth.twofactor.verify", json!([c])).unwrap(),
        json!(false)
    );
}

#[test]
fn access_rules() {
    let fx = fx();
    let anon = tcp();
    assert_eq!(
        rpc(&fx.api, &anon, "core.ping", json!([])).unwrap(),
        json!("pong")
    );
    assert_eq!(
        rpc(&fx.api, &anon, "core.set_options", json!([{"whatever": 1}])).unwrap(),
        Value::Null
    );
    let err = rpc(&fx.api, &anon, "auth.twofactor.config", json!([])).unwrap_err();
    assert_eq!(
        (err["code"].clone(), err["data"]["error"].clone()),
        (json!(-32001), json!(207))
    );
    assert_eq!(
        err["data"]["reason"],
        "[ENOTAUTHENTICATED] Not authenticated"
    );
    let nonroot = fx.api.unix_session(1001, None);
    assert_eq!(
        rpc(&fx.api, &nonroot, "auth.me", json!([])).unwrap_err()["data"]["error"],
        207
    );
    // A plain user who logged in is not an administrator.
    let r = rpc(
        &fx.api,
        &anon,
        "auth.login_ex",
        json!([{"mechanism": "PASSWORD_PLAIN", "username": "alice", "password": "alicepw"}]),
    )
    .unwrap();
    assert_eq!(r["response_type"], "SUCCESS");
    let err = rpc(&fx.api, &anon, "auth.twofactor.config", json!([])).unwrap_err();
    assert_eq!(err["data"]["error"], 13);
    assert_eq!(err["data"]["reason"], "[EACCES] Not authorized");
    // The PAM methods are for root over the socket only, and invisible.
    let err = rpc(
        &fx.api,
        &anon,
        "auth.twofactor.pam_required",
        json!(["alice", "sshd"]),
    )
    .unwrap_err();
    assert_eq!(err["data"]["error"], 13);
    let methods = rpc(&fx.api, &root(&fx.api), "core.get_methods", json!([])).unwrap();
    assert!(methods.get("auth.twofactor.pam_check").is_none());
    assert!(methods.get("auth.twofactor.update").is_some());
    let user_methods = rpc(&fx.api, &anon, "core.get_methods", json!([])).unwrap();
    assert!(
        user_methods.get("auth.twofactor.update").is_none(),
        "only what the caller may call"
    );
    assert!(user_methods.get("auth.me").is_some());
}

#[test]
fn introspection_describes_the_cli_tree_from_the_same_schemas() {
    let fx = fx();
    let s = root(&fx.api);
    let services = rpc(&fx.api, &s, "core.get_services", json!([])).unwrap();
    assert_eq!(services["auth.twofactor"]["type"], "config");
    assert_eq!(
        services["auth.twofactor"]["config"]["cli_namespace"],
        "auth.two_factor"
    );
    let methods = rpc(&fx.api, &s, "core.get_methods", json!(["auth.twofactor"])).unwrap();
    let names: Vec<&String> = methods.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "auth.twofactor.config",
            "auth.twofactor.update",
            "auth.twofactor.provisioning_uri",
            "auth.twofactor.provisioning_qr",
            "auth.twofactor.renew_secret",
            "auth.twofactor.verify",
            "auth.twofactor.legacy_shared_code",
            "auth.twofactor.end_legacy_shared_code"
        ]
    );
    let update = &methods["auth.twofactor.update"];
    let digits = &update["accepts"][0]["properties"]["otp_digits"];
    assert_eq!(
        (digits["minimum"].clone(), digits["maximum"].clone()),
        (json!(6), json!(8))
    );
    for key in [
        "description",
        "cli_description",
        "examples",
        "no_auth_required",
        "filterable",
        "job",
        "roles",
        "accepts",
        "returns",
    ] {
        assert!(update.get(key).is_some(), "{key}");
    }
}

#[test]
fn login_matrix() {
    let fx = fx();
    let api = &fx.api;
    let login = |s: &Session, user: &str, pw: &str| {
        rpc(
            api,
            s,
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": user, "password": pw}]),
        )
        .unwrap()
    };
    let otp = |s: &Session, token: &str| {
        rpc(
            api,
            s,
            "auth.login_ex_continue",
            json!([{"mechanism": "OTP_TOKEN", "otp_token": token}]),
        )
    };
    // 2FA off.
    let s = tcp();
    assert_eq!(
        login(&s, "admin", "wrong"),
        json!({"response_type": "AUTH_ERR"})
    );
    assert_eq!(
        login(&s, "nobody", "x"),
        json!({"response_type": "AUTH_ERR"})
    );
    let r = login(&s, "admin", "adminpw");
    assert_eq!(
        (r["response_type"].clone(), r["authenticator"].clone()),
        (json!("SUCCESS"), json!("LEVEL_1"))
    );
    assert_eq!(r["user_info"]["pw_name"], "admin");
    assert_eq!(
        rpc(api, &s, "auth.twofactor.config", json!([])).unwrap()["id"],
        1,
        "group admin"
    );
    // 2FA on: a user without a secret of their own logs in with the
    // password alone ...
    rpc(api, &s, "auth.twofactor.update", json!([{"enabled": true}])).unwrap();
    assert_eq!(
        login(&tcp(), "admin", "adminpw")["response_type"],
        "SUCCESS"
    );
    // ... and one with a secret is asked for a code of it.
    let uri = rpc(
        api,
        &root(api),
        "user.renew_2fa_secret",
        json!(["admin"]),
    )
    .unwrap()["twofactor_config"]["provisioning_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = uri_secret(&uri);
    let s = tcp();
    let err = otp(&s, "123456").unwrap_err();
    assert_eq!(
        err["data"]["reason"],
        "[EINVAL] OTP_TOKEN: no authentication in progress"
    );
    assert_eq!(
        login(&s, "admin", "adminpw"),
        json!({"response_type": "OTP_REQUIRED", "username": "admin"})
    );
    let c = code(&fx, &secret, 6, 30);
    let r = otp(&s, &c).unwrap();
    assert_eq!(r["response_type"], "SUCCESS");
    assert_eq!(
        rpc(api, &s, "auth.me", json!([])).unwrap()["pw_name"],
        "admin"
    );
    // The same code again (replay) is a wrong code; three wrong ones end the login.
    let s2 = tcp();
    assert_eq!(
        login(&s2, "admin", "adminpw")["response_type"],
        "OTP_REQUIRED"
    );
    assert_eq!(otp(&s2, &c).unwrap()["response_type"], "OTP_REQUIRED");
    assert_eq!(otp(&s2, "000000").unwrap()["response_type"], "OTP_REQUIRED");
    assert_eq!(
        otp(&s2, "999999").unwrap(),
        json!({"response_type": "AUTH_ERR"})
    );
    assert!(otp(&s2, "111111").is_err(), "the login starts over");
    assert_eq!(
        rpc(api, &s2, "auth.me", json!([])).unwrap_err()["data"]["error"],
        207
    );
    // Unknown fields are validation errors.
    let err = rpc(
        api,
        &s2,
        "auth.login_ex",
        json!([{"mechanism": "PASSWORD_PLAIN", "username": "a", "password": "b", "extra": 1}]),
    )
    .unwrap_err();
    assert_eq!(
        err["data"]["extra"],
        json!([["auth_login_ex.extra", "Field was not expected", 22]])
    );
    // Legacy login.
    let s3 = tcp();
    fx.clock.advance_secs(30);
    assert_eq!(
        rpc(api, &s3, "auth.login", json!(["admin", "adminpw"])).unwrap(),
        json!(false)
    );
    let c = code(&fx, &secret, 6, 30);
    assert_eq!(
        rpc(api, &s3, "auth.login", json!(["admin", "adminpw", c])).unwrap(),
        json!(true)
    );
    assert_eq!(
        rpc(api, &s3, "auth.logout", json!([])).unwrap(),
        json!(true)
    );
    assert_eq!(
        rpc(api, &s3, "auth.me", json!([])).unwrap_err()["data"]["error"],
        207
    );
    let audit = rpc(
        api,
        &root(api),
        "audit.query",
        json!([{"event": "auth.login"}]),
    )
    .unwrap();
    let outcomes: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"wrong_password") && outcomes.contains(&"success"),
        "{outcomes:?}"
    );
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["origin"] == "tcp:127.0.0.1:40000")
    );
}

#[test]
fn events_follow_successful_changes_only() {
    let fx = fx();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    fx.api
        .on_event(move |e| sink.lock().unwrap().push(e.to_params()));
    let s = root(&fx.api);
    let id = rpc(&fx.api, &s, "core.subscribe", json!(["auth.twofactor"])).unwrap();
    assert!(s.is_subscribed(api::Collection::TwoFactor));
    rpc(
        &fx.api,
        &s,
        "auth.twofactor.update",
        json!([{"otp_digits": 9}]),
    )
    .unwrap_err();
    rpc(
        &fx.api,
        &s,
        "auth.twofactor.update",
        json!([{"otp_digits": 8}]),
    )
    .unwrap();
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["msg"], "changed");
    assert_eq!(got[0]["collection"], "auth.twofactor");
    assert_eq!(got[0]["id"], 1);
    assert_eq!(got[0]["fields"]["otp_digits"], 8);
    rpc(&fx.api, &s, "core.unsubscribe", json!([id])).unwrap();
    assert!(!s.is_subscribed(api::Collection::TwoFactor));
}

/// `core.subscribe` takes a collection (`auth.twofactor`, `user`) or `*`;
/// any other name is refused, naming the ones there are, and subscribes
/// to nothing.
#[test]
fn subscriptions_name_a_collection_or_all() {
    use api::Collection::{TwoFactor, User};
    let fx = fx();
    let s = root(&fx.api);
    let err = rpc(&fx.api, &s, "core.subscribe", json!(["users"])).unwrap_err();
    assert_eq!(err["code"], -32602);
    assert_eq!(
        err["data"]["extra"],
        json!([[
            "name",
            "Input should be 'auth.twofactor', 'user' or '*'",
            22
        ]])
    );
    assert!(!s.is_subscribed(TwoFactor) && !s.is_subscribed(User));
    rpc(&fx.api, &s, "core.subscribe", json!(["user"])).unwrap();
    assert!(s.is_subscribed(User));
    assert!(!s.is_subscribed(TwoFactor));
    let all = rpc(&fx.api, &s, "core.subscribe", json!(["*"])).unwrap();
    assert!(s.is_subscribed(TwoFactor));
    rpc(&fx.api, &s, "core.unsubscribe", json!([all])).unwrap();
    assert!(!s.is_subscribed(TwoFactor));
    assert!(s.is_subscribed(User));
}

#[test]
fn pam_methods_follow_enabled_ssh_and_the_service_list() {
    let fx = fx();
    let s = root(&fx.api);
    let req = |svc: &str| {
        rpc(
            &fx.api,
            &s,
            "auth.twofactor.pam_required",
            json!(["alice", svc]),
        )
        .unwrap()
    };
    assert_eq!(req("sshd"), json!(false));
    rpc(
        &fx.api,
        &s,
        "auth.twofactor.update",
        json!([{"enabled": true}]),
    )
    .unwrap();
    assert_eq!(req("sshd"), json!(false), "ssh off");
    rpc(
        &fx.api,
        &s,
        "auth.twofactor.update",
        json!([{"services": {"ssh": true}}]),
    )
    .unwrap();
    assert_eq!(req("sshd"), json!(false), "alice has no secret of her own");
    let uri = rpc(&fx.api, &s, "user.renew_2fa_secret", json!(["alice"])).unwrap()
        ["twofactor_config"]["provisioning_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = uri_secret(&uri);
    assert_eq!(req("sshd"), json!(true));
    assert_eq!(req("login"), json!(false), "not an ssh service");
    let c = code(&fx, &secret, 6, 30);
    let check = |t: &str| {
        rpc(
            &fx.api,
            &s,
            "auth.twofactor.pam_check",
            json!(["alice", "sshd", "192.0.2.7", t]),
        )
        .unwrap()
    };
    assert_eq!(check(&c)["outcome"], "accepted");
    assert_eq!(check(&c)["outcome"], "replayed");
    let audit = rpc(
        &fx.api,
        &s,
        "audit.query",
        json!([{"event": "otp.check", "limit": 1}]),
    )
    .unwrap();
    assert_eq!(audit[0]["service"], "pam:sshd");
    assert_eq!(audit[0]["origin"], "pam:rhost=192.0.2.7");
    assert_eq!(audit[0]["user"], "alice");
}

#[test]
fn a_wrong_password_asks_for_an_answer_delay_instead_of_sleeping() {
    let dir = tempfile::tempdir().unwrap();
    let tf = plain_two_factor(&dir);
    // An hour: a sleeping implementation would hang this test.
    let hour = Duration::from_secs(3600);
    let options = ApiOptions {
        failed_login_delay: hour,
        ..ApiOptions::default()
    };
    let api = Api::new(tf, Arc::new(Users), Arc::new(Users), options);
    let s = tcp();
    let login = |pw: &str| {
        api.call_deferred(
            &s,
            "auth.login_ex",
            vec![json!({"mechanism": "PASSWORD_PLAIN", "username": "admin", "password": pw})],
        )
    };
    let (r, delay) = login("wrong");
    assert_eq!(r.unwrap(), json!({"response_type": "AUTH_ERR"}));
    assert_eq!(delay, hour);
    let (r, delay) = login("adminpw");
    assert_eq!(r.unwrap()["response_type"], "SUCCESS");
    assert_eq!(
        delay,
        Duration::ZERO,
        "the delay does not leak into the next call"
    );
}

/// Only JSON integers and strings of decimal digits are integers;
/// `1.0`, `10.0`, `1e1`, `7.0` are `Not an integer` and change nothing.
#[test]
fn integral_floats_are_not_integers() {
    let fx = fx();
    let s = root(&fx.api);
    let before = rpc(&fx.api, &s, "auth.twofactor.config", json!([])).unwrap();
    for (key, text) in [
        ("window", "1.0"),
        ("interval", "10.0"),
        ("window", "1e1"),
        ("otp_digits", "7.0"),
        ("otp_digits", "7E0"),
    ] {
        let params: Value = serde_json::from_str(&format!("[{{\"{key}\": {text}}}]")).unwrap();
        let err = rpc(&fx.api, &s, "auth.twofactor.update", params).unwrap_err();
        assert_eq!(
            err["data"]["extra"],
            json!([[format!("auth_twofactor_update.{key}"), "Not an integer", 22]]),
            "{key}={text}"
        );
    }
    let after = rpc(&fx.api, &s, "auth.twofactor.config", json!([])).unwrap();
    assert_eq!(before, after);
}

/// What midcli calls besides `auth.twofactor`.
#[test]
fn midcli_helpers_answer_as_truenas() {
    let fx = fx();
    let s = root(&fx.api);
    assert_eq!(
        rpc(&fx.api, &s, "system.hostname", json!([])),
        Ok(json!("nas"))
    );
    assert_eq!(
        rpc(
            &fx.api,
            &s,
            "user.has_local_administrator_set_up",
            json!([])
        ),
        Ok(json!(true))
    );
    assert_eq!(
        rpc(&fx.api, &s, "interface.checkin_waiting", json!([])),
        Ok(Value::Null)
    );
    // The official client's legacy jobs mode depends on this null.
    assert_eq!(
        rpc(
            &fx.api,
            &s,
            "core.set_options",
            json!([{"py_exceptions": false}])
        ),
        Ok(Value::Null)
    );
    // Not before login.
    for method in [
        "system.hostname",
        "user.has_local_administrator_set_up",
        "interface.checkin_waiting",
    ] {
        assert_eq!(
            rpc(&fx.api, &tcp(), method, json!([])).unwrap_err()["data"]["error"],
            207,
            "{method}"
        );
    }
}

#[derive(Debug)]
struct NoRoot;

impl Accounts for NoRoot {
    fn by_name(&self, _: &str) -> Option<Account> {
        None
    }
    fn by_uid(&self, _: u32) -> Option<Account> {
        None
    }
}

#[test]
fn no_root_account_means_no_local_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let tf = plain_two_factor(&dir);
    let api = Api::new(tf, Arc::new(NoRoot), Arc::new(Users), ApiOptions::default());
    let s = api.embedded_session(0);
    assert_eq!(
        rpc(&api, &s, "user.has_local_administrator_set_up", json!([])),
        Ok(json!(false))
    );
}

/// TrueNAS's introspection signatures and shapes.
#[test]
fn introspection_takes_truenas_target() {
    let fx = fx();
    let s = root(&fx.api);
    let ws = rpc(&fx.api, &s, "core.get_methods", json!([])).unwrap();
    assert_eq!(
        rpc(&fx.api, &s, "core.get_methods", json!([null, "WS"])).unwrap(),
        ws
    );
    assert_eq!(
        rpc(&fx.api, &s, "core.get_methods", json!([null, "REST"])).unwrap(),
        ws
    );
    assert!(ws.get("core.ping").is_some() && ws.get("auth.login_ex").is_some());
    let cli = rpc(&fx.api, &s, "core.get_methods", json!([null, "CLI"])).unwrap();
    let cli_services = rpc(&fx.api, &s, "core.get_services", json!(["CLI"])).unwrap();
    let ws_services = rpc(&fx.api, &s, "core.get_services", json!([])).unwrap();
    assert_eq!(
        rpc(&fx.api, &s, "core.get_services", json!(["WS"])).unwrap(),
        ws_services
    );
    assert_eq!(ws_services["core"]["config"]["cli_namespace"], Value::Null);
    // CLI: only services with a namespace, and only their CLI methods.
    let names: Vec<&str> = cli_services
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "auth",
            "auth.twofactor",
            "audit",
            "system",
            "user",
            "interface"
        ]
    );
    assert_eq!(
        cli_services["user"]["config"]["cli_namespace"],
        "account.user"
    );
    assert_eq!(
        cli_services["interface"]["config"]["cli_namespace"],
        "network.interface"
    );
    for (name, service) in cli_services.as_object().unwrap() {
        let ns = service["config"]["cli_namespace"].as_str();
        assert!(ns.is_some_and(|n| !n.is_empty()), "{name}");
    }
    let names: Vec<&str> = cli
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "auth.me",
            "auth.twofactor.config",
            "auth.twofactor.update",
            "auth.twofactor.provisioning_uri",
            "auth.twofactor.renew_secret",
            "auth.twofactor.verify",
            "auth.twofactor.legacy_shared_code",
            "auth.twofactor.end_legacy_shared_code",
            "audit.query",
            "system.twofactor_status",
            "user.query",
            "user.get_user_obj",
            "user.renew_2fa_secret",
            "user.unset_2fa_secret",
            "user.clear_2fa_lockout",
            "user.provisioning_uri",
            "user.twofactor_config",
            "user.verify_twofactor_token",
            "user.twofactor_enroll",
            "user.twofactor_enroll_confirm",
            "user.generate_2fa_recovery_codes"
        ]
    );
    // Every CLI method's service (midcli: name.rsplit('.', 1)[0]) is listed.
    for name in names {
        let (service, _) = name.rsplit_once('.').unwrap();
        assert!(cli_services.get(service).is_some(), "{name}");
    }
    // A service filter with a target.
    let only = rpc(&fx.api, &s, "core.get_methods", json!(["audit", "CLI"])).unwrap();
    assert_eq!(
        only.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["audit.query"]
    );
    // A bad target is a validation error naming it.
    let err = rpc(&fx.api, &s, "core.get_methods", json!([null, "XML"])).unwrap_err();
    assert_eq!(
        err["data"]["extra"],
        json!([["target", "Input should be 'WS', 'CLI' or 'REST'", 22]])
    );
    let err = rpc(&fx.api, &s, "core.get_services", json!(["cli"])).unwrap_err();
    assert_eq!(err["code"], -32602);
    // Object schemas carry _name_, _required_ and _attrs_order_.
    let update = &cli["auth.twofactor.update"];
    let data = &update["accepts"][0];
    assert_eq!(
        (&data["_name_"], &data["_required_"], &data["_attrs_order_"]),
        (
            &json!("auth_twofactor_update"),
            &json!(true),
            &json!(["enabled", "otp_digits", "window", "interval", "services"])
        )
    );
    let services = &data["properties"]["services"];
    assert_eq!(
        (
            &services["_name_"],
            &services["_required_"],
            &services["_attrs_order_"]
        ),
        (&json!("services"), &json!(false), &json!(["ssh"]))
    );
    let entry = &cli["auth.twofactor.config"]["returns"][0];
    assert_eq!(
        (&entry["_name_"], &entry["_attrs_order_"]),
        (
            &json!("auth_twofactor_config_returns"),
            &json!([
                "id",
                "otp_digits",
                "secret",
                "window",
                "interval",
                "services",
                "enabled"
            ])
        )
    );
    // Examples end with a newline each (midcli joins them with nothing).
    assert_eq!(
        update["examples"]["cli"],
        json!([
            "auth two_factor update enabled=true\n",
            "auth two_factor update otp_digits=8 interval=60 window=1\n",
            "auth two_factor update services={\"ssh\": true}\n"
        ])
    );
}

/// Validation errors carry a `trace` too (midcli reads
/// `trace.class`), with nothing internal in it.
#[test]
fn validation_errors_carry_a_trace() {
    let fx = fx();
    let s = root(&fx.api);
    let err = rpc(
        &fx.api,
        &s,
        "auth.twofactor.update",
        json!([{"otp_digits": 5, "enable": true}]),
    )
    .unwrap_err();
    assert_eq!(
        err["data"]["trace"],
        json!({"class": "ValidationErrors", "frames": [],
            "formatted": "ValidationErrors: [EINVAL] auth_twofactor_update.otp_digits: Should be between 6 and 8\n[EINVAL] auth_twofactor_update.enable: Field was not expected\n",
            "repr": "ValidationErrors([ValidationError('auth_twofactor_update.otp_digits', 'Should be between 6 and 8', 22), ValidationError('auth_twofactor_update.enable', 'Field was not expected', 22)])"})
    );
    let err = rpc(&fx.api, &tcp(), "auth.twofactor.config", json!([])).unwrap_err();
    assert_eq!(
        err["data"]["trace"],
        json!({"class": "CallError", "frames": [],
            "formatted": "CallError: [ENOTAUTHENTICATED] Not authenticated",
            "repr": "CallError('Not authenticated', 207, None)"})
    );
}

/// `core.describe_method` answers exactly what `core.get_methods` lists
/// for one method, and null for what it would not list to the caller.
#[test]
fn describe_method_is_one_entry_of_get_methods() {
    let fx = fx();
    let s = root(&fx.api);
    let all = |target: &str| rpc(&fx.api, &s, "core.get_methods", json!([null, target])).unwrap();
    let one = |name: &str, target: &str| {
        rpc(&fx.api, &s, "core.describe_method", json!([name, target])).unwrap()
    };
    let (cli, ws) = (all("CLI"), all("WS"));
    for name in [
        "auth.twofactor.config",
        "auth.twofactor.update",
        "user.query",
    ] {
        assert_eq!(one(name, "CLI"), cli[name], "{name}");
    }
    // Listed over WS, not in the CLI.
    assert!(cli.get("auth.login_ex").is_none());
    assert_eq!(one("auth.login_ex", "CLI"), Value::Null);
    assert_eq!(one("auth.login_ex", "WS"), ws["auth.login_ex"]);
    // Private methods (the PAM module's, this one) and unknown names.
    for name in [
        "auth.twofactor.pam_check",
        "core.describe_method",
        "no.such",
    ] {
        assert_eq!(one(name, "WS"), Value::Null, "{name}");
    }
    // Not before a login.
    let err = rpc(
        &fx.api,
        &tcp(),
        "core.describe_method",
        json!(["auth.twofactor.config"]),
    )
    .unwrap_err();
    assert_eq!(err["data"]["errname"], "ENOTAUTHENTICATED");
}

/// Repeated wrong codes from one origin for one account are kept as a few
/// rows; `audit.query` shows how many each stands for (`count`), next to
/// the fields every row has.
#[test]
fn audit_query_shows_the_count_of_an_aggregated_row() {
    let fx = fx();
    let s = root(&fx.api);
    rpc(
        &fx.api,
        &s,
        "auth.twofactor.update",
        json!([{"enabled": true, "services": {"ssh": true}}]),
    )
    .unwrap();
    rpc(&fx.api, &s, "user.renew_2fa_secret", json!(["alice"])).unwrap();
    for _ in 0..40 {
        // Not a code at all: wrong for any secret.
        rpc(
            &fx.api,
            &s,
            "auth.twofactor.pam_check",
            json!(["alice", "sshd", "192.0.2.7", "x"]),
        )
        .unwrap();
    }
    let audit = rpc(
        &fx.api,
        &s,
        "audit.query",
        json!([{"event": "otp.check", "limit": 100}]),
    )
    .unwrap();
    let rows = audit.as_array().unwrap();
    let counts: Vec<u64> = rows.iter().map(|r| r["count"].as_u64().unwrap()).collect();
    assert_eq!(counts.iter().sum::<u64>(), 40, "{counts:?}");
    assert!(rows.len() < 20, "{} rows", rows.len());
    assert!(counts.iter().any(|&n| n > 1), "{counts:?}");
    for r in rows {
        for field in [
            "id", "time", "event", "outcome", "user", "origin", "service", "detail",
        ] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
    }
}
