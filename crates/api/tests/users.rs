//! The per-user methods, who may call them, logins with per-user secrets
//! and recovery codes, at the API layer (see `docs/per-user.md`).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{Api, ApiOptions, Session};
use common::rpc;
use otp::{Algorithm, KeyUri, Totp};
use serde_json::{Value, json};
use service::{Account, Accounts, Clock, ManualClock, Origin, PasswordCheck, RateLimits};

#[derive(Debug)]
struct Users;

fn account(name: &str, uid: u32) -> Account {
    Account {
        name: name.into(),
        uid,
        gid: uid,
        gecos: format!("{name} person,,,"),
        home: format!("/home/{name}"),
        shell: "/bin/sh".into(),
        groups: vec![uid],
        group_names: if name == "admin" {
            vec!["tfaadmins".into()]
        } else {
            vec![]
        },
    }
}

const TABLE: &[(&str, u32)] = &[
    ("root", 0),
    ("daemon", 1),
    ("admin", 1000),
    ("alice", 1001),
    ("bob", 1002),
];

impl Accounts for Users {
    fn by_name(&self, name: &str) -> Option<Account> {
        TABLE
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, u)| account(n, *u))
    }
    fn by_uid(&self, uid: u32) -> Option<Account> {
        TABLE
            .iter()
            .find(|(_, u)| *u == uid)
            .map(|(n, u)| account(n, *u))
    }
    fn all(&self) -> Vec<Account> {
        TABLE.iter().map(|(n, u)| account(n, *u)).collect()
    }
}

impl PasswordCheck for Users {
    fn check(&self, user: &str, password: &service::SecretString, _: Option<&str>) -> bool {
        use service::ExposeSecret;
        password.expose_secret() == format!("{user}pw")
    }
}

struct Fx {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    api: Api,
    events: Arc<Mutex<Vec<Value>>>,
}

fn fx_with(require_secret: bool) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_secs(1_750_000_000));
    let tf = common::two_factor(
        dir.path(),
        clock.clone(),
        common::nas_labels(),
        RateLimits::default(),
    );
    let options = ApiOptions {
        require_secret,
        ..common::admin_options(Duration::ZERO)
    };
    let api = Api::new(tf, Arc::new(Users), Arc::new(Users), options);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    api.on_event(move |e| sink.lock().unwrap().push(e.to_params()));
    Fx {
        _dir: dir,
        clock,
        api,
        events,
    }
}

fn fx() -> Fx {
    fx_with(false)
}

/// A call as root that must succeed; its result.
fn root_call(fx: &Fx, method: &str, params: Value) -> Value {
    rpc(&fx.api, &root(fx), method, params).unwrap()
}

/// A call as root that must fail; its wire error.
fn root_error(fx: &Fx, method: &str, params: Value) -> Value {
    rpc(&fx.api, &root(fx), method, params).unwrap_err()
}

fn reason(err: &Value) -> String {
    err["data"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn code_of(fx: &Fx, uri: &str) -> String {
    let k = KeyUri::parse(uri).unwrap();
    Totp::new(&k.secret, k.digits, k.period, Algorithm::Sha1)
        .code(u64::try_from(fx.clock.now_ms() / 1000).unwrap())
        .to_string()
}

fn other_than(code: &str) -> String {
    if code == "000000" { "000001" } else { "000000" }.to_owned()
}

fn root(fx: &Fx) -> Session {
    fx.api.unix_session(0, Some(1))
}

fn tcp() -> Session {
    Session::anonymous(Origin::Tcp {
        addr: [192, 0, 2, 10].into(),
        port: 40000,
    })
}

fn enable(fx: &Fx) {
    rpc(
        &fx.api,
        &root(fx),
        "auth.twofactor.update",
        json!([{"enabled": true, "services": {"ssh": true}}]),
    )
    .unwrap();
}

fn renew(fx: &Fx, user: &str) -> String {
    rpc(&fx.api, &root(fx), "user.renew_2fa_secret", json!([user])).unwrap()["twofactor_config"]
        ["provisioning_uri"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_user_on_the_socket_manages_their_own_and_nobody_elses() {
    let fx = fx();
    enable(&fx);
    renew(&fx, "bob");
    let alice = fx.api.unix_session(1001, Some(77));
    let me = rpc(&fx.api, &alice, "auth.me", json!([])).unwrap();
    assert_eq!(me["pw_name"], "alice");
    assert_eq!(me["two_factor_config"]["secret_configured"], false);

    // Her own: enrol, confirm, read the URI, make recovery codes.
    let en = rpc(&fx.api, &alice, "user.twofactor_enroll", json!(["alice"])).unwrap();
    assert_eq!(en["expires_in"], 600);
    let uri = en["provisioning_uri"].as_str().unwrap().to_owned();
    assert!(
        uri.starts_with("otpauth://totp/iXsystems:alice-nas%40TrueNAS?secret="),
        "{uri}"
    );
    let done = rpc(
        &fx.api,
        &alice,
        "user.twofactor_enroll_confirm",
        json!(["alice", code_of(&fx, &uri)]),
    )
    .unwrap();
    assert_eq!(done["username"], "alice");
    assert_eq!(done["twofactor_auth_configured"], true);
    assert_eq!(
        rpc(&fx.api, &alice, "user.provisioning_uri", json!(["alice"])).unwrap(),
        json!(uri)
    );
    let codes = rpc(
        &fx.api,
        &alice,
        "user.generate_2fa_recovery_codes",
        json!(["alice"]),
    )
    .unwrap();
    assert_eq!(codes.as_array().unwrap().len(), 10);
    let cfg = rpc(&fx.api, &alice, "user.twofactor_config", json!(["alice"])).unwrap();
    assert_eq!(cfg["recovery_codes_left"], 10);
    assert_eq!(
        serde_json::to_string(&cfg.as_object().unwrap().keys().collect::<Vec<_>>()).unwrap(),
        r#"["provisioning_uri","secret_configured","interval","otp_digits","recovery_codes_left"]"#
    );

    // Not bob's: every method, TrueNAS's EPERM message naming the action
    // asked (renewing in TrueNAS's own words).
    for (method, params, action) in [
        (
            "user.provisioning_uri",
            json!(["bob"]),
            "read the provisioning URI of",
        ),
        (
            "user.twofactor_config",
            json!(["bob"]),
            "read the two-factor settings of",
        ),
        (
            "user.renew_2fa_secret",
            json!(["bob"]),
            "renew two-factor authentication for",
        ),
        (
            "user.unset_2fa_secret",
            json!(["bob"]),
            "unset the two-factor secret of",
        ),
        (
            "user.verify_twofactor_token",
            json!(["bob", "123456"]),
            "check codes of",
        ),
        (
            "user.twofactor_enroll",
            json!(["bob"]),
            "enrol a two-factor secret for",
        ),
        (
            "user.twofactor_enroll_confirm",
            json!(["bob", "123456"]),
            "confirm the enrolment of",
        ),
        (
            "user.generate_2fa_recovery_codes",
            json!(["bob"]),
            "make recovery codes for",
        ),
        (
            "user.twofactor_config",
            json!(["nosuchuser"]),
            "read the two-factor settings of",
        ),
    ] {
        let err = rpc(&fx.api, &alice, method, params.clone()).unwrap_err();
        let who = params[0].as_str().unwrap();
        assert_eq!(err["data"]["error"], 1, "{method}");
        assert_eq!(
            reason(&err),
            format!(
                "[EPERM] {who}: currently authenticated credential may not {action} this user."
            ),
            "{method}"
        );
    }
    assert!(
        rpc(&fx.api, &root(&fx), "user.twofactor_config", json!(["bob"])).unwrap()["secret_configured"]
            == true
    );
    // Nor the system settings.
    let err = rpc(
        &fx.api,
        &alice,
        "auth.twofactor.update",
        json!([{"enabled": false}]),
    )
    .unwrap_err();
    assert_eq!(reason(&err), "[EACCES] Not authorized");
    // Her user.query shows only herself.
    let q = rpc(&fx.api, &alice, "user.query", json!([])).unwrap();
    assert_eq!(
        q,
        json!([{"id": 1001, "uid": 1001, "username": "alice", "full_name": "alice person",
                          "builtin": false, "twofactor_auth_configured": true}])
    );
    // A uid without an account is not logged in.
    let ghost = fx.api.unix_session(4242, None);
    assert_eq!(
        rpc(&fx.api, &ghost, "auth.me", json!([])).unwrap_err()["data"]["error"],
        207
    );
}

#[test]
fn unknown_users_and_bad_options_are_named() {
    let fx = fx();
    let err = root_error(&fx, "user.twofactor_config", json!(["carol"]));
    assert_eq!(reason(&err), "[ENOENT] User 'carol' does not exist");
    let err = root_error(&fx, "user.provisioning_uri", json!(["alice"]));
    assert_eq!(
        reason(&err),
        "[ENOENT] 'alice' user does not have two factor authentication configured"
    );
    let err = root_error(
        &fx,
        "user.verify_twofactor_token",
        json!(["alice", "123456"]),
    );
    assert_eq!(
        reason(&err),
        "[EFAULT] Please enable Two Factor Authentication first."
    );
    enable(&fx);
    let err = root_error(
        &fx,
        "user.verify_twofactor_token",
        json!(["alice", "123456"]),
    );
    assert_eq!(
        reason(&err),
        "[EFAULT] Two Factor Authentication is not configured for this user"
    );
    let err = root_error(
        &fx,
        "user.renew_2fa_secret",
        json!(["alice", {"otp_digits": 9, "interval": 4, "algorithm": "SHA256"}]),
    );
    assert_eq!(err["code"], -32602);
    assert_eq!(
        err["data"]["extra"],
        json!([
            [
                "user_renew_2fa_secret.twofactor_options.otp_digits",
                "Should be between 6 and 8",
                22
            ],
            [
                "user_renew_2fa_secret.twofactor_options.interval",
                "Should be between 5 and 3600",
                22
            ],
            [
                "user_renew_2fa_secret.twofactor_options.algorithm",
                "Field was not expected",
                22
            ]
        ])
    );
    assert_eq!(
        root_call(&fx, "user.twofactor_config", json!(["alice"]))["secret_configured"],
        false
    );
    let r = root_call(
        &fx,
        "user.renew_2fa_secret",
        json!(["alice", {"interval": 60}]),
    );
    assert_eq!(
        (
            r["twofactor_config"]["interval"].clone(),
            r["twofactor_config"]["otp_digits"].clone()
        ),
        (json!(60), json!(6))
    );
}

#[test]
fn logins_ask_for_the_users_own_code() {
    let fx = fx();
    enable(&fx);
    let alice_uri = renew(&fx, "alice");
    let bob_uri = renew(&fx, "bob");
    let login = |s: &Session, user: &str| {
        rpc(&fx.api, s, "auth.login_ex", json!([{"mechanism": "PASSWORD_PLAIN", "username": user, "password": format!("{user}pw")}])).unwrap()
    };
    let otp = |s: &Session, t: &str| {
        rpc(
            &fx.api,
            s,
            "auth.login_ex_continue",
            json!([{"mechanism": "OTP_TOKEN", "otp_token": t}]),
        )
        .unwrap()
    };
    // admin has no secret: password alone.
    assert_eq!(login(&tcp(), "admin")["response_type"], "SUCCESS");
    // bob's code does not open alice's login; hers does.
    let s = tcp();
    assert_eq!(
        login(&s, "alice"),
        json!({"response_type": "OTP_REQUIRED", "username": "alice"})
    );
    assert_eq!(
        otp(&s, &code_of(&fx, &bob_uri))["response_type"],
        "OTP_REQUIRED"
    );
    let r = otp(&s, &code_of(&fx, &alice_uri));
    assert_eq!(r["response_type"], "SUCCESS");
    assert_eq!(
        r["user_info"]["two_factor_config"]["secret_configured"],
        true
    );

    // A recovery code logs alice in once.
    let codes = root_call(&fx, "user.generate_2fa_recovery_codes", json!(["alice"]));
    let rc = codes[3].as_str().unwrap().to_owned();
    let s = tcp();
    login(&s, "alice");
    assert_eq!(otp(&s, &rc)["response_type"], "SUCCESS");
    let s = tcp();
    login(&s, "alice");
    assert_eq!(
        otp(&s, &rc)["response_type"],
        "OTP_REQUIRED",
        "the same code fails the second time"
    );
    assert_eq!(
        root_call(&fx, "user.twofactor_config", json!(["alice"]))["recovery_codes_left"],
        9
    );
    let used = root_call(&fx, "audit.query", json!([{"outcome": "recovery_code"}]));
    assert_eq!(used[0]["detail"]["note"], "recovery code used (9 left)");
    // Regenerating revokes it.
    let fresh = root_call(&fx, "user.generate_2fa_recovery_codes", json!(["alice"]));
    let s = tcp();
    login(&s, "alice");
    assert_eq!(
        otp(&s, codes[4].as_str().unwrap())["response_type"],
        "OTP_REQUIRED"
    );
    assert_eq!(
        otp(&s, fresh[0].as_str().unwrap())["response_type"],
        "SUCCESS"
    );
}

#[test]
fn require_secret_refuses_logins_without_a_secret_and_users_unsetting_theirs() {
    let fx = fx_with(true);
    enable(&fx);
    let s = tcp();
    let r = rpc(
        &fx.api,
        &s,
        "auth.login_ex",
        json!([{"mechanism": "PASSWORD_PLAIN", "username": "admin", "password": "adminpw"}]),
    )
    .unwrap();
    assert_eq!(r, json!({"response_type": "AUTH_ERR"}));
    let refused = root_call(&fx, "audit.query", json!([{"outcome": "refused"}]));
    assert_eq!(
        refused[0]["detail"]["reason"],
        "no second factor configured"
    );
    assert_eq!(refused[0]["user"], "admin");
    // PAM refuses with the message.
    assert_eq!(
        root_call(&fx, "auth.twofactor.pam_required", json!(["alice", "sshd"])),
        json!({"refuse": "Two-factor authentication is required but not set up for this account"})
    );
    // alice sets hers up, and may not remove it; an administrator may.
    let alice = fx.api.unix_session(1001, None);
    let uri = rpc(&fx.api, &alice, "user.renew_2fa_secret", json!(["alice"])).unwrap()["twofactor_config"]["provisioning_uri"].as_str().unwrap().to_owned();
    assert!(!uri.is_empty());
    assert_eq!(
        root_call(&fx, "auth.twofactor.pam_required", json!(["alice", "sshd"])),
        json!(true)
    );
    let err = rpc(&fx.api, &alice, "user.unset_2fa_secret", json!(["alice"])).unwrap_err();
    assert_eq!(err["data"]["error"], 1);
    root_call(&fx, "user.unset_2fa_secret", json!(["alice"]));
    assert_eq!(
        rpc(&fx.api, &alice, "user.twofactor_config", json!(["alice"])).unwrap()["secret_configured"],
        false
    );
}

#[test]
fn changes_emit_user_events_without_secrets_and_are_audited() {
    let fx = fx();
    enable(&fx);
    let uri = renew(&fx, "alice");
    let secret = KeyUri::parse(&uri).unwrap().secret.to_base32().to_string();
    root_call(&fx, "user.generate_2fa_recovery_codes", json!(["alice"]));
    let en = root_call(&fx, "user.twofactor_enroll", json!(["alice"]));
    let wrong = other_than(&code_of(&fx, en["provisioning_uri"].as_str().unwrap()));
    let err = root_error(
        &fx,
        "user.twofactor_enroll_confirm",
        json!(["alice", wrong]),
    );
    assert_eq!(
        reason(&err),
        "[EINVAL] Invalid code; the pending secret stays pending"
    );
    root_call(&fx, "user.unset_2fa_secret", json!(["alice"]));
    let events = fx.events.lock().unwrap().clone();
    // Enabling gave root a secret: root's row changed, told once.
    let of = |uid: u32| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["collection"] == "user" && e["id"] == uid)
            .collect()
    };
    let root_events = of(0);
    assert_eq!(root_events.len(), 1, "{events:?}");
    assert_eq!(root_events[0]["fields"]["twofactor_auth_configured"], true);
    // Alice's: renewed, recovery codes made, unset (an enrolment, or a
    // wrong confirming code, changes nothing that is told).
    let users = of(1001);
    assert_eq!(users.len(), 3, "{events:?}");
    assert_eq!(users[0]["fields"]["twofactor_auth_configured"], true);
    assert_eq!(users[2]["fields"]["twofactor_auth_configured"], false);
    assert_eq!(users[0]["id"], 1001);
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        !text.contains(&secret) && !text.contains("otpauth"),
        "{text}"
    );
    let audit = rpc(&fx.api, &root(&fx), "audit.query", json!([{"limit": 100}])).unwrap();
    let seen: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    for e in [
        "user.renew_2fa_secret",
        "user.generate_2fa_recovery_codes",
        "user.twofactor_enroll",
        "user.unset_2fa_secret",
    ] {
        assert!(seen.contains(&e), "{e} in {seen:?}");
    }
    assert!(!serde_json::to_string(&audit).unwrap().contains(&secret));
}

#[test]
fn user_query_takes_truenas_filters_and_options() {
    let fx = fx();
    enable(&fx);
    renew(&fx, "bob");
    let q = |filters: Value, options: Value| {
        rpc(&fx.api, &root(&fx), "user.query", json!([filters, options])).unwrap()
    };
    let names = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["username"].as_str().unwrap().to_owned())
            .collect()
    };
    // uid 0 and >= 1000 (daemon, uid 1, is left out).
    assert_eq!(
        names(q(json!([]), json!({}))),
        ["admin", "alice", "bob", "root"]
    );
    assert_eq!(
        names(q(json!([["username", "=", "alice"]]), json!({}))),
        ["alice"]
    );
    assert_eq!(
        names(q(
            json!([["username", "in", ["bob", "root", "zed"]]]),
            json!({})
        )),
        ["bob", "root"]
    );
    assert_eq!(
        names(q(json!([["username", "^", "a"]]), json!({}))),
        ["admin", "alice"]
    );
    assert_eq!(
        names(q(
            json!([["twofactor_auth_configured", "=", true]]),
            json!({})
        )),
        ["bob", "root"]
    );
    assert_eq!(
        names(q(
            json!([["username", "!=", "root"]]),
            json!({"order_by": ["-uid"], "offset": 1, "limit": 1})
        )),
        ["alice"]
    );
    let one = q(json!([["uid", "=", 1002]]), json!({"get": true}));
    assert_eq!(
        one,
        json!({"id": 1002, "uid": 1002, "username": "bob", "full_name": "bob person", "builtin": false, "twofactor_auth_configured": true})
    );
    let err = root_error(&fx, "user.query", json!([[["uid", ">=", 0]]]));
    assert_eq!(
        err["data"]["extra"],
        json!([[
            "user_query.filters",
            "\">=\": not one of the operators =, !=, in, ^",
            22
        ]])
    );
    let err = root_error(
        &fx,
        "user.query",
        json!([[["username", "=", "nobody"]], {"get": true}]),
    );
    assert_eq!(err["data"]["error"], 2);
}

/// `user.get_user_obj`, added as one typed struct, one handler and one
/// table entry: its arguments are checked by the struct's schema.
#[test]
fn get_user_obj_finds_an_account_by_name_or_uid() {
    let fx = fx();
    let alice = root_call(&fx, "user.get_user_obj", json!([{"username": "alice"}]));
    assert_eq!(
        alice,
        json!({"pw_name": "alice", "pw_gecos": "alice person,,,", "pw_dir": "/home/alice",
               "pw_shell": "/bin/sh", "pw_uid": 1001, "pw_gid": 1001, "grouplist": null,
               "sid": null, "source": "LOCAL", "local": true})
    );
    let by_uid = root_call(
        &fx,
        "user.get_user_obj",
        json!([{"uid": "1002", "get_groups": true}]),
    );
    assert_eq!(
        (&by_uid["pw_name"], &by_uid["grouplist"]),
        (&json!("bob"), &json!([1002]))
    );
    let err = root_error(&fx, "user.get_user_obj", json!([{"username": "nobody"}]));
    assert_eq!(reason(&err), "[ENOENT] User 'nobody' does not exist");
    let err = root_error(&fx, "user.get_user_obj", json!([{}]));
    assert_eq!(err["data"]["error"], 22);
    let err = root_error(
        &fx,
        "user.get_user_obj",
        json!([{"uid": -1, "get_groups": "yes", "home": "/"}]),
    );
    assert_eq!(
        err["data"]["extra"],
        json!([
            [
                "user_get_user_obj.data.uid",
                "Should be between 0 and 4294967295",
                22
            ],
            ["user_get_user_obj.data.get_groups", "Not a boolean", 22],
            ["user_get_user_obj.data.home", "Field was not expected", 22]
        ])
    );
    let err = root_error(&fx, "user.get_user_obj", json!([]));
    assert_eq!(
        err["data"]["extra"],
        json!([["user_get_user_obj.data", "attribute required", 22]])
    );
    // Administrators only.
    let alice_session = fx.api.unix_session(1001, None);
    let err = rpc(
        &fx.api,
        &alice_session,
        "user.get_user_obj",
        json!([{"username": "alice"}]),
    )
    .unwrap_err();
    assert_eq!(reason(&err), "[EACCES] Not authorized");
}

/// An administrator ends an account's lock-out without replacing its
/// secret; the account itself (or anyone else) may not; it is audited and
/// announced as a change of the `user` collection.
#[test]
fn an_administrator_clears_a_lock_out_and_keeps_the_secret() {
    let fx = fx();
    enable(&fx);
    let uri = renew(&fx, "alice");
    let pam = |token: &str| {
        root_call(
            &fx,
            "auth.twofactor.pam_check",
            json!(["alice", "sshd", "198.51.100.4", token]),
        )["outcome"]
            .clone()
    };
    let wrong = other_than(&code_of(&fx, &uri));
    for _ in 0..5 {
        assert_eq!(pam(&wrong), "wrong");
    }
    assert_eq!(pam(&code_of(&fx, &uri)), "locked_out");

    for uid in [1001, 1002] {
        let s = fx.api.unix_session(uid, Some(5));
        let err = rpc(&fx.api, &s, "user.clear_2fa_lockout", json!(["alice"])).unwrap_err();
        assert_eq!(
            reason(&err),
            "[EPERM] alice: currently authenticated credential may not clear the two-factor \
             lock-out of this user.",
            "uid {uid}"
        );
    }
    assert_eq!(pam(&code_of(&fx, &uri)), "locked_out", "nothing cleared");
    let before = fx.events.lock().unwrap().len();

    assert_eq!(
        root_call(&fx, "user.clear_2fa_lockout", json!(["alice"])),
        json!(true)
    );
    let events = fx.events.lock().unwrap()[before..].to_vec();
    assert!(
        events
            .iter()
            .any(|e| e["collection"] == "user" && e["id"] == 1001 && e["msg"] == "changed"),
        "{events:?}"
    );
    let audit = root_call(
        &fx,
        "audit.query",
        json!([{"event": "user.clear_2fa_lockout"}]),
    );
    assert_eq!(audit[0]["detail"]["account"], "alice", "{audit}");
    assert_eq!(audit[0]["user"], "root");
    // The same secret works at once.
    assert_eq!(pam(&code_of(&fx, &uri)), "accepted");
    assert_eq!(
        root_call(&fx, "user.provisioning_uri", json!(["alice"])),
        json!(uri)
    );
    // Nothing left to clear.
    assert_eq!(
        root_call(&fx, "user.clear_2fa_lockout", json!(["alice"])),
        json!(false)
    );
    let err = root_error(&fx, "user.clear_2fa_lockout", json!(["ghost"]));
    assert_eq!(err["data"]["errname"], "ENOENT");
}

/// A name given in a request is echoed in an error text as at most a
/// bounded prefix: a 10,000-character name does not come back whole.
#[test]
fn error_texts_echo_a_bounded_prefix_of_a_given_name() {
    let fx = fx();
    let long = format!("{}{}", "n".repeat(64), "Z".repeat(10_000));
    let prefix = format!("{}…", "n".repeat(64));
    let alice = fx.api.unix_session(1001, Some(5));
    for (session, method) in [
        (root(&fx), "user.twofactor_config"),
        (alice, "user.twofactor_config"),
        (root(&fx), "user.clear_2fa_lockout"),
    ] {
        let err = rpc(&fx.api, &session, method, json!([long])).unwrap_err();
        let text = reason(&err);
        assert!(text.contains(&prefix), "{method}: {text}");
        assert!(!text.contains('Z'), "{method}: the name came back whole");
        assert!(text.len() < 300, "{method}: {} bytes", text.len());
    }
    let err = rpc(
        &fx.api,
        &root(&fx),
        "user.get_user_obj",
        json!([{"username": long}]),
    )
    .unwrap_err();
    assert!(reason(&err).contains(&prefix), "{err}");
}

/// `user.query` answers exactly what listing every account and then
/// filtering, sorting and cutting gives (the way it was computed before
/// filters were looked up directly and limits applied while listing), for
/// every combination of these filters and options.
#[test]
fn user_query_answers_as_listing_everything_would() {
    let fx = fx();
    enable(&fx);
    renew(&fx, "bob");
    // A system account holding a secret is listed too.
    renew(&fx, "daemon");
    let holders = ["root", "bob", "daemon"];
    // The reference: every listed account, filtered, sorted, cut.
    let oracle = |filters: &Value, options: &Value| -> Value {
        let mut rows: Vec<Value> = TABLE
            .iter()
            .filter(|(n, u)| *u == 0 || *u >= 1000 || holders.contains(n))
            .map(|(n, u)| {
                json!({"id": u, "uid": u, "username": n, "full_name": format!("{n} person"),
                       "builtin": *u != 0 && *u < 1000,
                       "twofactor_auth_configured": holders.contains(n)})
            })
            .collect();
        rows.sort_by(|a, b| a["username"].as_str().cmp(&b["username"].as_str()));
        rows.retain(|r| {
            filters.as_array().unwrap().iter().all(|f| {
                let (field, op, want) = (f[0].as_str().unwrap(), f[1].as_str().unwrap(), &f[2]);
                let got = &r[field];
                match op {
                    "=" => got == want,
                    "!=" => got != want,
                    "in" => want.as_array().unwrap().contains(got),
                    "^" => got
                        .as_str()
                        .zip(want.as_str())
                        .is_some_and(|(g, w)| g.starts_with(w)),
                    _ => unreachable!(),
                }
            })
        });
        for key in options["order_by"].as_array().into_iter().flatten().rev() {
            let key = key.as_str().unwrap();
            let (key, desc) = key.strip_prefix('-').map_or((key, false), |k| (k, true));
            rows.sort_by(|a, b| {
                let o = match (&a[key], &b[key]) {
                    (Value::Number(x), Value::Number(y)) => {
                        x.as_f64().partial_cmp(&y.as_f64()).unwrap()
                    }
                    (Value::String(x), Value::String(y)) => x.cmp(y),
                    (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
                    _ => std::cmp::Ordering::Equal,
                };
                if desc { o.reverse() } else { o }
            });
        }
        let offset = options["offset"].as_u64().unwrap_or(0) as usize;
        let mut rows: Vec<Value> = rows.into_iter().skip(offset).collect();
        if let Some(limit) = options["limit"].as_u64().filter(|l| *l > 0) {
            rows.truncate(limit as usize);
        }
        Value::Array(rows)
    };
    let filters = [
        json!([]),
        json!([["username", "=", "alice"]]),
        json!([["username", "=", "daemon"]]),
        json!([["username", "=", "nobody"]]),
        json!([["username", "=", 7]]),
        json!([["username", "in", ["bob", "root", "zed", "daemon"]]]),
        json!([["username", "in", ["bob"]], ["uid", "=", 1001]]),
        json!([["uid", "=", 1002]]),
        json!([["uid", "=", 1]]),
        json!([["uid", "in", [0, 1000, 4242]]]),
        json!([["uid", "=", "1001"]]),
        json!([["username", "^", "a"]]),
        json!([["username", "!=", "root"], ["builtin", "=", false]]),
        json!([["twofactor_auth_configured", "=", true]]),
    ];
    let options = [
        json!({}),
        json!({"limit": 1}),
        json!({"limit": 2, "offset": 1}),
        json!({"offset": 3}),
        json!({"offset": 10, "limit": 2}),
        json!({"order_by": ["-uid"], "limit": 2}),
        json!({"order_by": ["twofactor_auth_configured", "-username"], "offset": 1}),
    ];
    for f in &filters {
        for o in &options {
            let got = rpc(&fx.api, &root(&fx), "user.query", json!([f, o])).unwrap();
            assert_eq!(got, oracle(f, o), "filters {f} options {o}");
        }
    }
}
