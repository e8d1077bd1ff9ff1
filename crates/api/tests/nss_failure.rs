//! An account that holds a secret but that NSS cannot find at the moment
//! of a PAM check (directory service down, a module that failed) must fail
//! closed: the login is refused, never waved on as "no code needed".

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api::{Api, ApiOptions};
use common::{account, rpc, short_labels, two_factor};
use serde_json::json;
use service::{Account, Accounts, ManualClock, RateLimits};

/// root and alice; alice can be made to vanish from NSS.
#[derive(Debug, Default)]
struct Flaky {
    alice_gone: AtomicBool,
}

impl Accounts for Flaky {
    fn by_name(&self, name: &str) -> Option<Account> {
        match name {
            "root" => Some(account("root", 0, &[])),
            "alice" if !self.alice_gone.load(Ordering::SeqCst) => Some(account("alice", 1001, &[])),
            _ => None,
        }
    }
    fn by_uid(&self, uid: u32) -> Option<Account> {
        match uid {
            0 => self.by_name("root"),
            1001 => self.by_name("alice"),
            _ => None,
        }
    }
}

impl service::PasswordCheck for Flaky {
    fn check(&self, _: &str, _: &service::SecretString, _: Option<&str>) -> bool {
        false
    }
}

#[test]
fn a_secret_holder_that_nss_cannot_find_is_refused_not_waved_on() {
    let dir = tempfile::tempdir().unwrap();
    let tf = two_factor(
        dir.path(),
        Arc::new(ManualClock::at_secs(1_750_000_000)),
        short_labels(),
        RateLimits::default(),
    );
    let accounts = Arc::new(Flaky::default());
    let options = ApiOptions {
        failed_login_delay: Duration::ZERO,
        ..ApiOptions::default()
    };
    let api = Api::new(tf, accounts.clone(), accounts.clone(), options);
    let root = api.unix_session(0, Some(1));
    rpc(
        &api,
        &root,
        "auth.twofactor.update",
        json!([{"enabled": true, "services": {"ssh": true}}]),
    )
    .unwrap();
    rpc(&api, &root, "user.renew_2fa_secret", json!(["alice"])).unwrap();
    let required = |user: &str| {
        rpc(
            &api,
            &root,
            "auth.twofactor.pam_required",
            json!([user, "sshd"]),
        )
    };
    let check = |user: &str| {
        rpc(
            &api,
            &root,
            "auth.twofactor.pam_check",
            json!([user, "sshd", "192.0.2.9", "123456"]),
        )
    };
    assert_eq!(required("alice").unwrap(), json!(true));

    accounts.alice_gone.store(true, Ordering::SeqCst);
    for answer in [required("alice"), check("alice")] {
        let err = answer.unwrap_err();
        assert_eq!(err["data"]["errname"], "ENOENT", "{err}");
        assert!(
            err["data"]["reason"]
                .as_str()
                .unwrap()
                .contains("could not be looked up"),
            "{err}"
        );
    }
    // A name that holds no secret and that NSS does not know is not ours
    // to refuse: no code is asked (the rest of the PAM stack decides).
    assert_eq!(required("nobody-here").unwrap(), json!(false));
    assert_eq!(
        check("nobody-here").unwrap(),
        json!({"outcome": "not_required"})
    );
}
