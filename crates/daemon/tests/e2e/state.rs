//! Rate limiting and audit through `verify`, and durability across kill -9.

use serde_json::{Value, json};

use crate::harness::{Fixture, enable, need, oathtool, rpc_error, totp, wrong_code};

#[test]
fn six_wrong_codes_lock_out_and_are_audited() {
    if need("oathtool", oathtool()).is_none() {
        return;
    }
    let f = Fixture::new();
    let d = f.start();
    let mut root = d.root();
    let secret = enable(&mut root);
    let wrong = wrong_code(&secret);
    for i in 0..5 {
        assert_eq!(
            root.call("auth.twofactor.verify", vec![json!(wrong)])
                .unwrap(),
            json!(false),
            "try {i}"
        );
    }
    let e = rpc_error(root.call("auth.twofactor.verify", vec![json!(wrong)]));
    assert_eq!((e.code, e.message.as_str()), (-32001, "Method call error"));
    let data = e.data.unwrap();
    assert_eq!(
        (data.error, data.errname.as_str(), data.extra),
        (16, "EBUSY", None)
    );
    assert!(
        data.reason
            .starts_with("[EBUSY] Too many failed attempts; try again in ")
            && data.reason.ends_with(" seconds"),
        "{}",
        data.reason
    );
    // Even the right code is refused while locked out.
    assert_eq!(
        rpc_error(root.call(
            "auth.twofactor.verify",
            vec![json!(totp(&secret, 6, 30, 0))]
        ))
        .code,
        -32001
    );

    let checks = root
        .call("audit.query", vec![json!({"event": "otp.check"})])
        .unwrap();
    let outcomes: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "locked_out",
            "locked_out",
            "wrong",
            "wrong",
            "wrong",
            "wrong",
            "wrong"
        ]
    );
    let first = &checks[0];
    assert_eq!(first["user"], "root");
    assert!(
        first["origin"].as_str().unwrap().starts_with("unix:uid=0"),
        "{first}"
    );
    let lockouts = root
        .call("audit.query", vec![json!({"event": "otp.lockout"})])
        .unwrap();
    assert_eq!(lockouts.as_array().unwrap().len(), 1, "{lockouts}");
    assert_eq!(lockouts[0]["outcome"], "locked");
    // Never a code or the secret in the audit trail.
    let all = root
        .call("audit.query", vec![json!({"limit": 1000})])
        .unwrap()
        .to_string();
    assert!(!all.contains(&wrong) && !all.contains(&secret), "{all}");
    // Root can always turn 2FA off.
    assert_eq!(
        root.call("auth.twofactor.update", vec![json!({"enabled": false})])
            .unwrap()["enabled"],
        false
    );
}

#[test]
fn kill_9_and_restart_lose_nothing() {
    if need("oathtool", oathtool()).is_none() {
        return;
    }
    let f = Fixture::new();
    let d = f.start();
    let mut root = d.root();
    let secret = enable(&mut root);
    root.call(
        "auth.twofactor.update",
        vec![json!({"services": {"ssh": true}})],
    )
    .unwrap();
    let code = totp(&secret, 6, 30, 0);
    assert_eq!(
        root.call("auth.twofactor.verify", vec![json!(code)])
            .unwrap(),
        json!(true)
    );
    let before = root.call("auth.twofactor.config", vec![]).unwrap();
    drop(root);
    d.kill9();
    assert!(f.socket.exists(), "kill -9 leaves the socket file behind");

    // The stale socket is replaced; the state is all there.
    let d = f.start();
    let mut root = d.root();
    assert_eq!(root.call("auth.twofactor.config", vec![]).unwrap(), before);
    assert_eq!(before["services"], json!({"ssh": true}));
    assert_eq!(
        root.call("auth.twofactor.verify", vec![json!(code)])
            .unwrap(),
        json!(false),
        "replayed"
    );
    assert_eq!(
        root.call(
            "auth.twofactor.verify",
            vec![json!(totp(&secret, 6, 30, 1))]
        )
        .unwrap(),
        json!(true)
    );
    let checks = root
        .call("audit.query", vec![json!({"event": "otp.check"})])
        .unwrap();
    let outcomes: Vec<&Value> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["outcome"])
        .collect();
    assert_eq!(
        outcomes,
        [&json!("accepted"), &json!("replayed"), &json!("accepted")]
    );
}
