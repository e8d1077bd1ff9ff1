//! An audit row's `service` names the method the call came through, as
//! the method table names it: a login through `auth.login_ex` is not
//! recorded as `auth.login`.
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
        common::root_by_uid(uid)
    }
}

impl PasswordCheck for Users {
    fn check(&self, user: &str, password: &service::SecretString, _: Option<&str>) -> bool {
        use service::ExposeSecret;
        common::admin_or_alice_password(user, password.expose_secret())
    }
}

fn services(api: &Api, event: &str, outcome: &str) -> Vec<String> {
    let root = api.unix_session(0, Some(1));
    let q = json!([{"event": event, "outcome": outcome}]);
    let rows = rpc(api, &root, "audit.query", q).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["service"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn audit_rows_name_the_method_the_call_came_through() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_secs(1_750_000_000));
    let tf = common::two_factor(
        dir.path(),
        clock,
        common::nas_labels(),
        RateLimits::default(),
    );
    let api = Api::new(
        tf,
        Arc::new(Users),
        Arc::new(Users),
        common::admin_options(Duration::ZERO),
    );
    let tcp = |port| {
        Session::anonymous(Origin::Tcp {
            addr: [192, 0, 2, 10].into(),
            port,
        })
    };
    let login_ex = |s: &Session, pw: &str| {
        let data = json!({"mechanism": "PASSWORD_PLAIN", "username": "alice", "password": pw});
        rpc(&api, s, "auth.login_ex", json!([data])).unwrap()
    };

    let s = tcp(1);
    assert_eq!(login_ex(&s, "wrong")["response_type"], "AUTH_ERR");
    assert_eq!(
        rpc(&api, &tcp(2), "auth.login", json!(["alice", "wrong"])).unwrap(),
        json!(false)
    );
    let mut wrong = services(&api, "auth.login", "wrong_password");
    wrong.sort();
    assert_eq!(wrong, ["auth.login", "auth.login_ex"]);

    assert_eq!(login_ex(&s, "alicepw")["response_type"], "SUCCESS");
    let token: Value = rpc(&api, &s, "auth.generate_token", json!([])).unwrap();
    assert!(token.is_string());
    assert_eq!(
        rpc(&api, &s, "auth.logout", json!([])).unwrap(),
        json!(true)
    );
    assert_eq!(services(&api, "auth.login", "success"), ["auth.login_ex"]);
    assert_eq!(
        services(&api, "auth.generate_token", "success"),
        ["auth.generate_token"]
    );
    assert_eq!(services(&api, "auth.logout", "success"), ["auth.logout"]);
}
