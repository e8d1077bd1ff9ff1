//! Rate limiting and audit through `verify`, and durability across kill -9.

use serde_json::{Value, json};

use crate::harness::{Fixture, enable, need, oathtool, totp, wrong_code};

/// `auth.twofactor.pam_check` from `rhost`, as the PAM module sends it.
fn pam_check(root: &mut client::Client, rhost: &str, token: &str) -> Value {
    root.call(
        "auth.twofactor.pam_check",
        // root: the entry's secret is root's.
        vec![json!("root"), json!("sshd"), json!(rhost), json!(token)],
    )
    .expect("pam_check")
}

#[test]
fn an_origin_with_five_wrong_codes_is_locked_out_and_audited_but_root_is_not() {
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
    let wrong = wrong_code(&secret);
    // Five wrong codes from one SSH client address (PAM_RHOST) lock it.
    for i in 0..5 {
        assert_eq!(
            pam_check(&mut root, "203.0.113.9", &wrong)["outcome"],
            "wrong",
            "try {i}"
        );
    }
    let locked = pam_check(&mut root, "203.0.113.9", &totp(&secret, 6, 30, 0));
    assert_eq!(locked["outcome"], "locked_out", "{locked}");
    let wait = locked["retry_after_secs"].as_u64().unwrap();
    assert!((1..=30).contains(&wait), "{locked}");
    // Another address with the right code is let in.
    assert_eq!(
        pam_check(&mut root, "203.0.113.10", &totp(&secret, 6, 30, 0))["outcome"],
        "accepted"
    );
    // Root on the Unix socket is never locked out: its wrong codes
    // are wrong, not EBUSY (and lock nobody else out), and a right code is
    // accepted.
    for i in 0..6 {
        assert_eq!(
            root.call("auth.twofactor.verify", vec![json!(wrong)])
                .unwrap(),
            json!(false),
            "root try {i}"
        );
    }
    assert_eq!(
        root.call(
            "auth.twofactor.verify",
            vec![json!(totp(&secret, 6, 30, 1))]
        )
        .unwrap(),
        json!(true)
    );

    let checks = root
        .call(
            "audit.query",
            vec![json!({"event": "otp.check", "limit": 1000})],
        )
        .unwrap();
    let outcomes: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    let mut expected = vec!["accepted"];
    expected.extend(["wrong"; 6]);
    expected.extend(["accepted", "locked_out"]);
    expected.extend(["wrong"; 5]);
    assert_eq!(outcomes, expected);
    let first = &checks[0];
    assert_eq!(first["user"], "root");
    assert!(
        first["origin"].as_str().unwrap().starts_with("unix:uid=0"),
        "{first}"
    );
    assert_eq!(checks[8]["origin"], "pam:rhost=203.0.113.9");
    let lockouts = root
        .call("audit.query", vec![json!({"event": "otp.lockout"})])
        .unwrap();
    assert_eq!(lockouts.as_array().unwrap().len(), 1, "{lockouts}");
    // A state of one node names none: the rows keep their shape.
    assert!(lockouts[0].get("node").is_none(), "{lockouts}");
    assert_eq!(lockouts[0]["outcome"], "locked");
    assert_eq!(lockouts[0]["detail"]["scope"], "origin");
    assert_eq!(lockouts[0]["detail"]["origin"], "203.0.113.9");
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

/// A key file without its database is a lost state: the daemon refuses to
/// start and says so; `--init` starts afresh; a fresh directory just works.
#[test]
fn a_lost_database_stops_the_daemon_until_init() {
    let f = Fixture::new();
    // Fresh: neither file.
    let d = f.start();
    let mut root = d.root();
    enable(&mut root);
    drop(root);
    drop(d);
    for how in ["deleted", "truncated"] {
        let db = f.state.join("twofactor.db");
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(f.state.join(format!("twofactor.db{suffix}")));
        }
        if how == "deleted" {
            std::fs::remove_file(&db).unwrap();
        } else {
            std::fs::write(&db, b"").unwrap();
        }
        let out = f.command().output().unwrap();
        assert!(!out.status.success(), "{how}: started");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            log.contains("the two-factor state was lost") && log.contains("--init"),
            "{how}: {log}"
        );
        // --init creates a fresh state: 2FA off, no secret.
        let d = f.start_with(&["--init"]);
        let mut root = d.root();
        let entry = root.call("auth.twofactor.config", vec![]).unwrap();
        assert_eq!(
            (entry["enabled"].clone(), entry["secret"].clone()),
            (json!(false), Value::Null)
        );
        enable(&mut root);
    }
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

/// A damaged database is named as such in the log, not "Internal error".
#[test]
fn a_damaged_database_is_named_in_the_log() {
    let f = Fixture::new();
    drop(f.start());
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(f.state.join(format!("twofactor.db{suffix}")));
    }
    let garbage: Vec<u8> = (0..16384u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(f.state.join("twofactor.db"), garbage).unwrap();
    let out = f.command().output().unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("database file is damaged"), "{log}");
}

/// `twofactord backup` of a state that is not there fails saying which
/// file is missing and why, each once (the store's error names its OS
/// error itself; the causes under it are not repeated).
#[test]
fn a_backup_of_a_missing_state_says_why_once() {
    let f = Fixture::new();
    let empty = f.dir.path().join("empty.toml");
    std::fs::write(&empty, "").expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twofactord"))
        .arg("--config")
        .arg(&empty)
        .arg("--state-dir")
        .arg(&f.state)
        .arg("backup")
        .arg("--to")
        .arg(f.dir.path().join("backup"))
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("twofactord backup");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot back up the state in"), "{err}");
    assert!(err.contains(f.state.to_str().expect("utf-8")), "{err}");
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
}

/// `twofactord backup --to DIR` while a daemon runs and writes: the copy
/// (0600 in a 0700 directory, no key file in it) put back beside the key
/// file opens in a new daemon, and the secret verifies oathtool's code. A
/// second backup into the same directory is refused, naming it.
#[test]
fn a_backup_of_a_live_state_restores_with_the_key() {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    if need("oathtool", oathtool()).is_none() {
        return;
    }
    let f = Fixture::new();
    let d = f.start();
    let mut root = d.root();
    let secret = enable(&mut root);
    let stop = AtomicBool::new(false);
    let to = f.dir.path().join("backup");
    let empty = f.dir.path().join("empty.toml");
    std::fs::write(&empty, "").expect("config");
    let backup = |to: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_twofactord"))
            .arg("--config")
            .arg(&empty)
            .arg("--state-dir")
            .arg(&f.state)
            .arg("backup")
            .arg("--to")
            .arg(to)
            .env_remove("JOURNAL_STREAM")
            .output()
            .expect("twofactord backup")
    };
    let mut w = d.root();
    let (out, writes) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            // Every update commits a changed window and its audit record.
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) || n < 2 {
                w.call("auth.twofactor.update", vec![json!({"window": 1 + n % 2})])
                    .expect("update");
                n += 1;
            }
            n
        });
        let out = backup(&to);
        stop.store(true, Ordering::Relaxed);
        (out, writer.join().expect("writer"))
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(writes >= 2);
    assert!(
        stdout.contains("secret.key"),
        "names the key file: {stdout}"
    );
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&to), 0o700);
    assert_eq!(mode(&to.join("twofactor.db")), 0o600);
    let names: Vec<_> = std::fs::read_dir(&to)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["twofactor.db"]);

    let again = backup(&to);
    assert!(
        !again.status.success(),
        "a second backup overwrote the first"
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains(to.to_str().expect("utf-8")) && err.contains("not empty"),
        "{err}"
    );
    drop(root);
    drop(d);

    // Restore into a new state directory with the original key file.
    let g = Fixture::new();
    std::fs::create_dir(&g.state).expect("mkdir");
    std::fs::set_permissions(&g.state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::copy(to.join("twofactor.db"), g.state.join("twofactor.db")).expect("copy db");
    std::fs::copy(f.state.join("secret.key"), g.state.join("secret.key")).expect("copy key");
    let restored = g.start();
    let mut root = restored.root();
    let entry = root.call("auth.twofactor.config", vec![]).expect("config");
    assert_eq!(entry["secret"], secret.as_str(), "the same secret");
    let code = totp(&secret, 6, 30, 0);
    let ok = root
        .call("auth.twofactor.verify", vec![json!(code)])
        .expect("verify");
    assert_eq!(ok, true, "oathtool's code verifies on the restored state");
}
