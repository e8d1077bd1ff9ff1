//! Shared by the API tests: the `TwoFactor` service on a temporary SQLite
//! store, the API options they all start from, the `admin`/`alice` account
//! table of `api.rs` and `hostile.rs`, and the JSON-RPC call helper.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the helpers"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use api::{Api, ApiOptions, Session};
use serde_json::Value;
use service::{Account, Labels, ManualClock, OsRandom, RateLimits, TwoFactor};

/// The labels most tests use (issuer, product and host of a TrueNAS box).
pub fn nas_labels() -> Labels {
    Labels {
        issuer: "iXsystems".into(),
        product: "TrueNAS".into(),
        hostname: "nas".into(),
    }
}

/// Labels of one letter each, for tests where they do not matter.
pub fn short_labels() -> Labels {
    Labels {
        issuer: "i".into(),
        product: "p".into(),
        hostname: "h".into(),
    }
}

/// The service on a store in `dir` (a directory of its own: the store
/// refuses one open to others), on the manual `clock`.
pub fn two_factor(
    dir: &Path,
    clock: Arc<ManualClock>,
    labels: Labels,
    limits: RateLimits,
) -> TwoFactor {
    TwoFactor::new(
        Arc::new(store::SqliteStore::open(&dir.join("state")).unwrap()),
        clock,
        Arc::new(OsRandom),
        labels,
        limits,
    )
}

/// Administrators are the group `tfaadmins`; failed logins wait `delay`.
pub fn admin_options(delay: Duration) -> ApiOptions {
    ApiOptions {
        admin_group: Some("tfaadmins".into()),
        failed_login_delay: delay,
        ..ApiOptions::default()
    }
}

/// An account whose group id is its user id, in the named groups.
pub fn account(name: &str, uid: u32, groups: &[&str]) -> Account {
    Account {
        name: name.into(),
        uid,
        gid: uid,
        gecos: String::new(),
        home: format!("/home/{name}"),
        shell: "/bin/sh".into(),
        groups: vec![uid],
        group_names: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

/// `admin` (in `tfaadmins`) and `alice` (in `users`) by name.
pub fn admin_or_alice(name: &str) -> Option<Account> {
    match name {
        "admin" => Some(account("admin", 1000, &["tfaadmins"])),
        "alice" => Some(account("alice", 1001, &["users"])),
        _ => None,
    }
}

/// Only `root` by user id.
pub fn root_by_uid(uid: u32) -> Option<Account> {
    (uid == 0).then(|| account("root", 0, &["root"]))
}

/// Whether `password` is the password of `admin` or `alice`.
pub fn admin_or_alice_password(user: &str, password: &str) -> bool {
    matches!(
        (user, password),
        ("admin", "adminpw") | ("alice", "alicepw")
    )
}

/// An error as the wire object it becomes.
pub fn wire(e: &api::ApiError) -> Value {
    serde_json::to_value(e.to_rpc()).unwrap()
}

/// A call with the params as a JSON array; an error as its wire object.
pub fn rpc(api: &Api, s: &Session, method: &str, params: Value) -> Result<Value, Value> {
    let params = params.as_array().cloned().unwrap_or_default();
    api.call(s, method, params).map_err(|e| wire(&e))
}
