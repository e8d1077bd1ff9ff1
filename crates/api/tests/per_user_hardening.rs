//! The per-user model hardened: an upgraded single-secret state keeps
//! asking for the former system code (`legacy_shared_code`), login answers
//! carry no seed, a password alone cannot take the second factor over
//! (step-up), and a secret stays with its uid (recovery codes, renames).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{Api, ApiOptions, Session};
use common::rpc;
use otp::{Algorithm, Digits, Interval, KeyUri, Secret, Totp};
use serde_json::{Value, json};
use service::{Account, Accounts, Clock, ManualClock, Origin, PasswordCheck, RateLimits};

/// Accounts by a table the test can change (a rename, a new uid).
#[derive(Debug, Clone)]
struct Table(Arc<Mutex<Vec<(String, u32)>>>);

impl Table {
    fn new(rows: &[(&str, u32)]) -> Self {
        Self(Arc::new(Mutex::new(
            rows.iter().map(|(n, u)| ((*n).to_owned(), *u)).collect(),
        )))
    }
    /// `userdel NAME; useradd -u UID NAME`.
    fn recreate(&self, name: &str, uid: u32) {
        for row in self.0.lock().unwrap().iter_mut() {
            if row.0 == name {
                row.1 = uid;
            }
        }
    }
    /// `usermod -l TO FROM` (same uid).
    fn rename(&self, from: &str, to: &str) {
        for row in self.0.lock().unwrap().iter_mut() {
            if row.0 == from {
                row.0 = to.to_owned();
            }
        }
    }
}

fn account(name: &str, uid: u32) -> Account {
    common::account(
        name,
        uid,
        if name == "admin" { &["tfaadmins"] } else { &[] },
    )
}

impl Accounts for Table {
    fn by_name(&self, name: &str) -> Option<Account> {
        let rows = self.0.lock().unwrap();
        rows.iter()
            .find(|(n, _)| n == name)
            .map(|(n, u)| account(n, *u))
    }
    fn by_uid(&self, uid: u32) -> Option<Account> {
        let rows = self.0.lock().unwrap();
        rows.iter()
            .find(|(_, u)| *u == uid)
            .map(|(n, u)| account(n, *u))
    }
    fn all(&self) -> Vec<Account> {
        let rows = self.0.lock().unwrap();
        rows.iter().map(|(n, u)| account(n, *u)).collect()
    }
}

/// Every password is the name followed by `pw`.
impl PasswordCheck for Table {
    fn check(&self, user: &str, password: &service::SecretString, _: Option<&str>) -> bool {
        use service::ExposeSecret;
        password.expose_secret() == format!("{user}pw")
    }
}

struct Fx {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    api: Api,
    table: Table,
    events: Arc<Mutex<Vec<Value>>>,
}

const ACCOUNTS: &[(&str, u32)] = &[("root", 0), ("admin", 1000), ("alice", 1001), ("bob", 1002)];

/// The API on a state in a temporary directory, made by `prepare` (given
/// the state directory to fill) before it is opened, at `at_secs`.
fn fx_from(prepare: impl FnOnce(&Path), at_secs: i64, require_secret: bool) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    prepare(&dir.path().join("state"));
    let clock = Arc::new(ManualClock::at_secs(at_secs));
    let tf = common::two_factor(
        dir.path(),
        clock.clone(),
        common::nas_labels(),
        RateLimits::default(),
    );
    let table = Table::new(ACCOUNTS);
    let options = ApiOptions {
        require_secret,
        ..common::admin_options(Duration::ZERO)
    };
    let api = Api::new(
        tf,
        Arc::new(table.clone()),
        Arc::new(table.clone()),
        options,
    );
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    api.on_event(move |e| sink.lock().unwrap().push(e.to_params()));
    Fx {
        _dir: dir,
        clock,
        api,
        table,
        events,
    }
}

fn fresh() -> Fx {
    fx_from(|_| {}, 1_750_000_000, false)
}

fn fixture_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures/main-v2")
}

/// The state main wrote before per-user secrets (2FA on, one secret), at
/// the time its code was accepted.
fn upgraded() -> Fx {
    upgraded_with(false)
}

fn upgraded_with(require_secret: bool) -> Fx {
    let readme = std::fs::read_to_string(fixture_dir().join("README")).unwrap();
    let at: i64 = readme
        .lines()
        .find_map(|l| l.strip_prefix("accepted_at="))
        .unwrap()
        .parse()
        .unwrap();
    fx_from(
        |state| {
            std::fs::create_dir(state).unwrap();
            std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o700)).unwrap();
            for n in ["twofactor.db", "secret.key"] {
                std::fs::copy(fixture_dir().join(n), state.join(n)).unwrap();
                std::fs::set_permissions(state.join(n), std::fs::Permissions::from_mode(0o600))
                    .unwrap();
            }
        },
        // One step later: main's accepted code is used up.
        at + 30,
        require_secret,
    )
}

fn root(fx: &Fx) -> Session {
    fx.api.unix_session(0, Some(1))
}

fn root_call(fx: &Fx, method: &str, params: Value) -> Value {
    rpc(&fx.api, &root(fx), method, params).unwrap_or_else(|e| panic!("{method}: {e}"))
}

fn tcp() -> Session {
    Session::anonymous(Origin::Tcp {
        addr: [192, 0, 2, 10].into(),
        port: 40000,
    })
}

fn reason(err: &Value) -> String {
    err["data"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn enable(fx: &Fx) {
    root_call(
        fx,
        "auth.twofactor.update",
        json!([{"enabled": true, "services": {"ssh": true}}]),
    );
}

fn code_of_secret(fx: &Fx, secret: &Secret, digits: Digits, interval: Interval) -> String {
    Totp::new(secret, digits, interval, Algorithm::Sha1)
        .code(u64::try_from(fx.clock.now_ms() / 1000).unwrap())
        .to_string()
}

fn code_of(fx: &Fx, uri: &str) -> String {
    let k = KeyUri::parse(uri).unwrap();
    code_of_secret(fx, &k.secret, k.digits, k.period)
}

/// Root's current code, from the entry's secret.
fn root_code(fx: &Fx) -> String {
    let config = root_call(fx, "auth.twofactor.config", json!([]));
    let secret = Secret::from_base32(config["secret"].as_str().unwrap()).unwrap();
    let digits = Digits::new(config["otp_digits"].as_i64().unwrap()).unwrap();
    let interval = Interval::new(config["interval"].as_i64().unwrap()).unwrap();
    code_of_secret(fx, &secret, digits, interval)
}

fn other_than(code: &str) -> String {
    if code == "000000" { "000001" } else { "000000" }.to_owned()
}

fn login(fx: &Fx, s: &Session, user: &str) -> Value {
    rpc(
        &fx.api,
        s,
        "auth.login_ex",
        json!([{"mechanism": "PASSWORD_PLAIN", "username": user, "password": format!("{user}pw")}]),
    )
    .unwrap()
}

fn otp(fx: &Fx, s: &Session, token: &str) -> Value {
    rpc(
        &fx.api,
        s,
        "auth.login_ex_continue",
        json!([{"mechanism": "OTP_TOKEN", "otp_token": token}]),
    )
    .unwrap()
}

fn renew(fx: &Fx, user: &str) -> String {
    root_call(fx, "user.renew_2fa_secret", json!([user]))["twofactor_config"]["provisioning_uri"]
        .as_str()
        .unwrap()
        .to_owned()
}

// ------------------------------------------------------- legacy_shared_code

#[test]
fn after_the_upgrade_an_account_without_a_secret_needs_roots_code() {
    let fx = upgraded();
    assert_eq!(
        root_call(&fx, "auth.twofactor.legacy_shared_code", json!([])),
        json!(true)
    );
    // Administrators and users alike: OTP_REQUIRED, then root's code.
    for user in ["admin", "alice"] {
        let s = tcp();
        assert_eq!(
            login(&fx, &s, user),
            json!({"response_type": "OTP_REQUIRED", "username": user}),
            "{user}"
        );
        let right = root_code(&fx);
        assert_eq!(
            otp(&fx, &s, &other_than(&right))["response_type"],
            "OTP_REQUIRED"
        );
        assert_eq!(otp(&fx, &s, &right)["response_type"], "SUCCESS", "{user}");
        // Root's replay state: the same code does not open another login.
        let s = tcp();
        login(&fx, &s, "bob");
        assert_eq!(otp(&fx, &s, &right)["response_type"], "OTP_REQUIRED");
        fx.clock.advance_secs(30);
    }
    // The legacy form too.
    let right = root_code(&fx);
    let legacy = |token: &str| {
        rpc(
            &fx.api,
            &tcp(),
            "auth.login",
            json!(["alice", "alicepw", token]),
        )
        .unwrap()
    };
    assert_eq!(legacy(&other_than(&right)), json!(false));
    assert_eq!(legacy(&right), json!(true));
    // Every use is audited as such.
    let logins = root_call(
        &fx,
        "audit.query",
        json!([{"event": "auth.login", "outcome": "success"}]),
    );
    let shared: Vec<&Value> = logins
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["detail"]["second_factor"] == "legacy_shared_code")
        .collect();
    assert_eq!(shared.len(), 3, "{logins:#}");
    let checks = root_call(&fx, "audit.query", json!([{"event": "otp.check"}]));
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["user"] == "alice" && r["detail"]["legacy_shared_code"] == true),
        "{checks:#}"
    );
    // The entry's config is unchanged in shape (TrueNAS's keys only).
    let config = root_call(&fx, "auth.twofactor.config", json!([]));
    assert_eq!(
        config.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "id",
            "otp_digits",
            "secret",
            "window",
            "interval",
            "services",
            "enabled"
        ]
    );
}

#[test]
fn enrolling_ones_own_or_ending_the_mode_stops_asking_for_roots_code() {
    let fx = upgraded();
    // alice enrols: her own code from then on, root's no longer.
    let uri = renew(&fx, "alice");
    fx.clock.advance_secs(30);
    let s = tcp();
    login(&fx, &s, "alice");
    assert_eq!(
        otp(&fx, &s, &root_code(&fx))["response_type"],
        "OTP_REQUIRED"
    );
    assert_eq!(
        otp(&fx, &s, &code_of(&fx, &uri))["response_type"],
        "SUCCESS"
    );
    // Users cannot end the mode; an administrator can, audited, announced.
    let alice = fx.api.unix_session(1001, None);
    let err = rpc(
        &fx.api,
        &alice,
        "auth.twofactor.end_legacy_shared_code",
        json!([]),
    )
    .unwrap_err();
    assert_eq!(reason(&err), "[EACCES] Not authorized");
    // The status says so while it is on, and not after.
    assert_eq!(
        root_call(&fx, "system.twofactor_status", json!([]))["legacy_shared_code"],
        json!(true)
    );
    root_call(&fx, "core.subscribe", json!(["auth.twofactor"]));
    fx.events.lock().unwrap().clear();
    assert_eq!(
        root_call(&fx, "auth.twofactor.end_legacy_shared_code", json!([])),
        json!(true)
    );
    assert_eq!(
        root_call(&fx, "system.twofactor_status", json!([]))["legacy_shared_code"],
        json!(false)
    );
    assert_eq!(
        root_call(&fx, "auth.twofactor.legacy_shared_code", json!([])),
        json!(false)
    );
    let events = fx.events.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| e["collection"] == "auth.twofactor"),
        "{events:#?}"
    );
    let ended = root_call(
        &fx,
        "audit.query",
        json!([{"event": "twofactor.end_legacy_shared_code"}]),
    );
    assert_eq!(ended[0]["detail"]["was_on"], true);
    // bob has no secret: the password alone now.
    assert_eq!(login(&fx, &tcp(), "bob")["response_type"], "SUCCESS");
}

/// `require_secret` wants each account's own secret: root's code does not
/// stand in for it.
#[test]
fn under_require_secret_an_upgraded_state_refuses_accounts_without_a_secret() {
    let fx = upgraded_with(true);
    assert_eq!(
        login(&fx, &tcp(), "alice"),
        json!({"response_type": "AUTH_ERR"})
    );
    root_call(
        &fx,
        "auth.twofactor.update",
        json!([{"services": {"ssh": true}}]),
    );
    let need = root_call(&fx, "auth.twofactor.pam_required", json!(["alice", "sshd"]));
    assert!(need["refuse"].is_string(), "{need}");
}

#[test]
fn a_fresh_state_never_asks_roots_code_of_others() {
    let fx = fresh();
    enable(&fx);
    assert_eq!(
        root_call(&fx, "auth.twofactor.legacy_shared_code", json!([])),
        json!(false)
    );
    assert_eq!(login(&fx, &tcp(), "alice")["response_type"], "SUCCESS");
}

// ------------------------------------------------ no seed in login answers

#[test]
fn login_answers_and_auth_me_carry_no_provisioning_uri() {
    let fx = fresh();
    enable(&fx);
    let uri = renew(&fx, "alice");
    let seed = KeyUri::parse(&uri).unwrap().secret.to_base32();
    let s = tcp();
    login(&fx, &s, "alice");
    let answer = otp(&fx, &s, &code_of(&fx, &uri));
    assert_eq!(answer["response_type"], "SUCCESS");
    let me = rpc(&fx.api, &s, "auth.me", json!([])).unwrap();
    for two_factor in [
        &answer["user_info"]["two_factor_config"],
        &me["two_factor_config"],
    ] {
        assert_eq!(
            two_factor,
            &json!({"secret_configured": true, "interval": 30, "otp_digits": 6,
                    "recovery_codes_left": 0})
        );
    }
    for text in [answer.to_string(), me.to_string()] {
        assert!(!text.contains(seed.as_str()), "{text}");
        assert!(!text.contains("otpauth"), "{text}");
    }
    // Root's too (the entry's secret) on the socket.
    let me = rpc(&fx.api, &root(&fx), "auth.me", json!([])).unwrap();
    assert!(
        me["two_factor_config"].get("provisioning_uri").is_none(),
        "{me}"
    );
    // The method's description says so too.
    let methods = root_call(&fx, "core.get_methods", json!(["auth"]));
    let returns = methods["auth.me"]["returns"].to_string();
    assert!(returns.contains("recovery_codes_left"), "{returns}");
    assert!(!returns.contains("provisioning_uri"), "{returns}");
    // The URI still comes from the methods that give it.
    assert_eq!(
        rpc(&fx.api, &s, "user.provisioning_uri", json!(["alice"])).unwrap(),
        json!(uri)
    );
}

// ------------------------------------------------------------------ step-up

/// What a non-administrator may not do to an active secret without a
/// current code: (method, params).
fn guarded() -> Vec<(&'static str, Value)> {
    vec![
        ("user.provisioning_uri", json!(["alice"])),
        ("user.twofactor_config", json!(["alice"])),
        ("user.renew_2fa_secret", json!(["alice"])),
        ("user.twofactor_enroll", json!(["alice"])),
        ("user.generate_2fa_recovery_codes", json!(["alice"])),
        ("user.unset_2fa_secret", json!(["alice"])),
    ]
}

fn assert_needs_code(fx: &Fx, s: &Session) {
    for (method, params) in guarded() {
        let err = rpc(&fx.api, s, method, params).unwrap_err();
        assert_eq!(err["data"]["error"], 13, "{method}: {err}");
        assert!(
            reason(&err).starts_with("[EACCES] alice: confirm with a current code first"),
            "{method}: {}",
            reason(&err)
        );
    }
}

#[test]
fn a_password_or_a_socket_peer_alone_cannot_read_replace_or_remove_the_secret() {
    let fx = fresh();
    enable(&fx);
    // A password-only session: alice logged in before she had a secret.
    let early = tcp();
    assert_eq!(login(&fx, &early, "alice")["response_type"], "SUCCESS");
    let uri = renew(&fx, "alice");
    // The socket peer: logged in by its uid, no password, no code.
    let peer = fx.api.unix_session(1001, Some(50));
    for s in [&peer, &early] {
        assert_needs_code(&fx, s);
    }
    // Nothing changed: the same secret, still there, no pending enrolment.
    assert_eq!(
        root_call(&fx, "user.provisioning_uri", json!(["alice"])),
        json!(uri)
    );
    // A wrong code proves nothing.
    let right = code_of(&fx, &uri);
    assert_eq!(
        rpc(
            &fx.api,
            &peer,
            "user.verify_twofactor_token",
            json!(["alice", other_than(&right)])
        )
        .unwrap(),
        json!(false)
    );
    assert_needs_code(&fx, &peer);
    // A right one does, on this connection only, for 5 minutes.
    assert_eq!(
        rpc(
            &fx.api,
            &peer,
            "user.verify_twofactor_token",
            json!(["alice", right])
        )
        .unwrap(),
        json!(true)
    );
    assert_eq!(
        rpc(&fx.api, &peer, "user.provisioning_uri", json!(["alice"])).unwrap(),
        json!(uri)
    );
    let other = fx.api.unix_session(1001, Some(51));
    assert_needs_code(&fx, &other);
    fx.clock.advance_secs(299);
    assert!(rpc(&fx.api, &peer, "user.twofactor_config", json!(["alice"])).is_ok());
    fx.clock.advance_secs(1);
    assert_needs_code(&fx, &peer);
    // A recovery code proves it too.
    let codes = root_call(&fx, "user.generate_2fa_recovery_codes", json!(["alice"]));
    assert_eq!(
        rpc(
            &fx.api,
            &peer,
            "user.verify_twofactor_token",
            json!(["alice", codes[0]])
        )
        .unwrap(),
        json!(true)
    );
    assert!(rpc(&fx.api, &peer, "user.renew_2fa_secret", json!(["alice"])).is_ok());
}

#[test]
fn a_login_that_took_the_code_may_manage_the_secret_and_administrators_are_not_asked() {
    let fx = fresh();
    enable(&fx);
    let uri = renew(&fx, "alice");
    let s = tcp();
    login(&fx, &s, "alice");
    assert_eq!(
        otp(&fx, &s, &code_of(&fx, &uri))["response_type"],
        "SUCCESS"
    );
    // Long after: the login itself took the code.
    fx.clock.advance_secs(3600);
    assert_eq!(
        rpc(&fx.api, &s, "user.provisioning_uri", json!(["alice"])).unwrap(),
        json!(uri)
    );
    // Root on the socket, and an administrator on alice's account.
    for admin in [root(&fx), {
        let a = tcp();
        assert_eq!(login(&fx, &a, "admin")["response_type"], "SUCCESS");
        a
    }] {
        assert_eq!(
            rpc(&fx.api, &admin, "user.provisioning_uri", json!(["alice"])).unwrap(),
            json!(uri)
        );
    }
    // An account without a secret is not asked (nothing to prove).
    let bob = fx.api.unix_session(1002, None);
    assert!(rpc(&fx.api, &bob, "user.twofactor_enroll", json!(["bob"])).is_ok());
}

// ------------------------------------------------------ bound to the uid

#[test]
fn recovery_codes_of_a_former_account_of_the_name_are_not_honoured_and_go() {
    let fx = fresh();
    enable(&fx);
    renew(&fx, "alice");
    let codes = root_call(&fx, "user.generate_2fa_recovery_codes", json!(["alice"]));
    assert_eq!(
        root_call(&fx, "user.twofactor_config", json!(["alice"]))["recovery_codes_left"],
        10
    );
    // userdel alice; useradd -u 1050 alice
    fx.table.recreate("alice", 1050);
    let cfg = root_call(&fx, "user.twofactor_config", json!(["alice"]));
    assert_eq!(cfg["recovery_codes_left"], 0, "{cfg}");
    assert_eq!(cfg["secret_configured"], false);
    // The new account gets a secret: the old codes neither work nor stay.
    let uri = renew(&fx, "alice");
    for code in codes.as_array().unwrap().iter().take(3) {
        assert_eq!(
            root_call(&fx, "user.verify_twofactor_token", json!(["alice", code])),
            json!(false)
        );
    }
    let s = tcp();
    login(&fx, &s, "alice");
    assert_eq!(
        otp(&fx, &s, codes[4].as_str().unwrap())["response_type"],
        "OTP_REQUIRED"
    );
    assert_eq!(
        otp(&fx, &s, &code_of(&fx, &uri))["response_type"],
        "SUCCESS"
    );
    fx.table.recreate("alice", 1001);
    assert_eq!(
        root_call(&fx, "user.twofactor_config", json!(["alice"]))["recovery_codes_left"],
        0
    );
}

#[test]
fn a_renamed_account_is_refused_with_an_audited_reason_never_waved_through() {
    let fx = fresh();
    enable(&fx);
    renew(&fx, "alice");
    // usermod -l alicia alice (uid 1001 stays)
    fx.table.rename("alice", "alicia");
    let s = tcp();
    assert_eq!(
        login(&fx, &s, "alicia"),
        json!({"response_type": "AUTH_ERR"})
    );
    assert_eq!(
        rpc(
            &fx.api,
            &tcp(),
            "auth.login",
            json!(["alicia", "aliciapw", "123456"])
        )
        .unwrap(),
        json!(false)
    );
    let refused = root_call(
        &fx,
        "audit.query",
        json!([{"event": "auth.login", "outcome": "refused"}]),
    );
    assert_eq!(refused[0]["user"], "alicia", "{refused:#}");
    assert_eq!(
        refused[0]["detail"]["names"],
        json!(["alice"]),
        "{refused:#}"
    );
    assert!(
        refused[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("another name"),
        "{refused:#}"
    );
    // The PAM module's question gets a refusal, not "no code needed".
    let need = root_call(
        &fx,
        "auth.twofactor.pam_required",
        json!(["alicia", "sshd"]),
    );
    assert!(
        need["refuse"].as_str().unwrap().contains("former name"),
        "{need}"
    );
    // An administrator enrols the new name: its own code from then on.
    let uri = renew(&fx, "alicia");
    let s = tcp();
    assert_eq!(login(&fx, &s, "alicia")["response_type"], "OTP_REQUIRED");
    assert_eq!(
        otp(&fx, &s, &code_of(&fx, &uri))["response_type"],
        "SUCCESS"
    );
}
