//! The introspection document (`core.get_services`, `core.get_methods`,
//! `core.describe_method`) is byte for byte what it was before it became
//! typed: the fixture was written by the untyped implementation, and any
//! change to a key, a value or the order of keys shows here.
//!
//! After an intended change to a method's description, write the fixture
//! again with `TFA_WRITE_GOLDEN=1 cargo test -p api --test
//! introspection_golden` and review the diff.

mod common;

use std::sync::Arc;
use std::time::Duration;

use api::{Api, Session};
use common::rpc;
use serde_json::{Value, json};
use service::{Account, Accounts, ManualClock, PasswordCheck, RateLimits};

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

fn login(api: &Api, user: &str, password: &str) -> Session {
    let s = Session::anonymous(service::Origin::Tcp {
        addr: [127, 0, 0, 1].into(),
        port: 40000,
    });
    let answer = rpc(
        api,
        &s,
        "auth.login_ex",
        json!([{"mechanism": "PASSWORD_PLAIN", "username": user, "password": password}]),
    )
    .expect("login answers");
    assert_eq!(answer["response_type"], "SUCCESS", "{answer}");
    s
}

/// Every introspection answer, keyed by the call that gave it, each as the
/// compact JSON text the daemon sends.
fn answers() -> Vec<(String, String)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let tf = common::two_factor(
        dir.path(),
        Arc::new(ManualClock::at_secs(1_750_000_000)),
        common::nas_labels(),
        RateLimits::default(),
    );
    let api = Api::new(
        tf,
        Arc::new(Users),
        Arc::new(Users),
        common::admin_options(Duration::ZERO),
    );
    let sessions = [
        ("root", api.unix_session(0, Some(1))),
        ("admin", login(&api, "admin", "adminpw")),
        ("alice", login(&api, "alice", "alicepw")),
    ];
    let mut out = Vec::new();
    for (who, s) in &sessions {
        for target in ["WS", "CLI"] {
            for (method, params) in [
                ("core.get_services", json!([target])),
                ("core.get_methods", json!([null, target])),
                ("core.get_methods", json!(["auth.twofactor", target])),
            ] {
                let v: Value = rpc(&api, s, method, params.clone()).expect("introspection");
                let text = serde_json::to_string(&v).expect("serialises");
                out.push((format!("{who} {method} {params}"), text));
            }
            let all = rpc(&api, s, "core.get_methods", json!([null, target])).expect("listed");
            for name in all.as_object().expect("an object").keys() {
                let params = json!([name, target]);
                let v = rpc(&api, s, "core.describe_method", params.clone()).expect("described");
                let text = serde_json::to_string(&v).expect("serialises");
                out.push((format!("{who} core.describe_method {params}"), text));
            }
        }
    }
    out
}

#[test]
fn introspection_is_byte_identical_to_the_fixture() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/introspection.txt");
    let now: String = answers()
        .into_iter()
        .map(|(call, text)| format!("{call}\n{text}\n"))
        .collect();
    if std::env::var_os("TFA_WRITE_GOLDEN").is_some() {
        std::fs::write(&path, &now).expect("fixture written");
    }
    let golden = std::fs::read_to_string(&path).expect("fixture present");
    for (i, (want, got)) in golden.lines().zip(now.lines()).enumerate() {
        // Only the neighbourhood of the first difference: a line is a
        // whole listing.
        if let Some(at) = want.bytes().zip(got.bytes()).position(|(a, b)| a != b) {
            let from = at.saturating_sub(120);
            let show = |s: &str| s.get(from..(at + 120).min(s.len())).unwrap_or(s).to_owned();
            panic!(
                "line {} differs at byte {at}:\n  fixture: …{}…\n  now:     …{}…",
                i + 1,
                show(want),
                show(got)
            );
        }
        assert_eq!(got.len(), want.len(), "line {} differs in length", i + 1);
    }
    assert_eq!(now.lines().count(), golden.lines().count(), "line count");
}
