//! The wire protocol (`docs/protocol.md`) through our client: sessions by
//! transport, errors, limits and close codes, concurrency, events, introspection.

use std::time::{Duration, Instant};

use client::{Client, ClientError, Frame};
use serde_json::{Value, json};

use crate::harness::{Fixture, TIMEOUT, rpc_error};

#[test]
fn root_over_the_socket_is_logged_in() {
    let f = Fixture::new();
    let d = f.start();
    let mut root = d.root();
    let me = root.call("auth.me", vec![]).unwrap();
    assert_eq!(me["pw_uid"], 0);
    assert_eq!(me["privilege"]["roles"], json!(["FULL_ADMIN"]));
    let entry = root.call("auth.twofactor.config", vec![]).unwrap();
    assert_eq!(
        entry.to_string(),
        r#"{"id":1,"otp_digits":6,"secret":null,"window":0,"interval":30,"services":{"ssh":false},"enabled":false}"#
    );
    assert_eq!(root.call("core.ping", vec![]).unwrap(), json!("pong"));
    // SIGTERM with an idle connection open: it is closed with 1001, the
    // daemon exits 0 and removes its socket.
    let mut d = d;
    assert!(d.terminate().success(), "{}", d.log());
    assert_eq!(next_close(&mut root), 1001);
    assert!(!f.socket.exists());
}

#[test]
fn tcp_before_login_is_not_authenticated() {
    let f = Fixture::new();
    let d = f.start();
    let mut anon = d.tcp();
    assert_eq!(anon.call("core.ping", vec![]).unwrap(), json!("pong"));
    assert_eq!(
        anon.call(
            "core.set_options",
            vec![json!({"py_exceptions": true, "x": 1})]
        )
        .unwrap(),
        Value::Null
    );
    assert_eq!(
        anon.call("auth.mechanism_choices", vec![]).unwrap(),
        json!(["PASSWORD_PLAIN", "OTP_TOKEN", "TOKEN_PLAIN"])
    );
    for method in [
        "auth.twofactor.config",
        "auth.me",
        "core.get_methods",
        "audit.query",
    ] {
        let e = rpc_error(anon.call(method, vec![]));
        assert_eq!(e.code, -32001, "{method}");
        assert_eq!(e.message, "Method call error");
        let data = e.data.expect("data");
        assert_eq!(
            (data.error.0, data.errname.as_str()),
            (207, "ENOTAUTHENTICATED"),
            "{method}"
        );
        assert_eq!(data.reason, "[ENOTAUTHENTICATED] Not authenticated");
        assert_eq!(
            (data.trace, data.extra),
            (
                Some(json!({"class": "CallError", "frames": [],
                    "formatted": "CallError: [ENOTAUTHENTICATED] Not authenticated",
                    "repr": "CallError('Not authenticated', 207, None)"})),
                None
            )
        );
    }
    let e = rpc_error(anon.call("no.such.method", vec![]));
    assert_eq!(
        (e.code, e.message.as_str(), e.data),
        (-32601, "Method does not exist", None)
    );
}

#[test]
fn update_validation_is_truenas_shaped() {
    let f = Fixture::new();
    let d = f.start();
    let mut root = d.root();
    let e = rpc_error(root.call("auth.twofactor.update", vec![json!({"otp_digits": 5})]));
    assert_eq!((e.code, e.message.as_str()), (-32602, "Invalid params"));
    let data = serde_json::to_value(e.data.expect("data")).unwrap();
    assert_eq!(
        data["extra"],
        json!([[
            "auth_twofactor_update.otp_digits",
            "Should be between 6 and 8",
            22
        ]])
    );
    assert_eq!(
        data["reason"],
        "[EINVAL] auth_twofactor_update.otp_digits: Should be between 6 and 8\n"
    );
    assert_eq!(
        (data["error"].clone(), data["errname"].clone()),
        (json!(22), json!("EINVAL"))
    );
    // Every problem at once; nothing changed.
    let e = rpc_error(root.call(
        "auth.twofactor.update",
        vec![json!({"window": 11, "interval": "x", "services": {"ftp": true}, "secret": "A"})],
    ));
    let problems = e.data.expect("data").problems();
    let attrs: Vec<&str> = problems.iter().map(|p| p.0.as_str()).collect();
    for a in [
        "auth_twofactor_update.window",
        "auth_twofactor_update.interval",
        "auth_twofactor_update.services.ftp",
        "auth_twofactor_update.secret",
    ] {
        assert!(attrs.contains(&a), "{a} missing from {attrs:?}");
    }
    assert_eq!(
        root.call("auth.twofactor.config", vec![]).unwrap()["window"],
        0
    );
    // Missing required argument.
    let e = rpc_error(root.call("auth.twofactor.verify", vec![]));
    assert_eq!(
        e.data.expect("data").problems(),
        vec![(
            "token".into(),
            "attribute required".into(),
            api::wire::Errno::EINVAL
        )]
    );
    // Call errors: errno 14.
    let e = rpc_error(root.call("auth.twofactor.verify", vec![json!("123456")]));
    let data = e.data.expect("data");
    assert_eq!(
        (e.code, data.error.0, data.reason.as_str()),
        (
            -32001,
            14,
            "[EFAULT] Please enable Two Factor Authentication first."
        )
    );
}

#[test]
fn message_size_limits_and_binary_frames_close_the_connection() {
    let f = Fixture::new();
    let d = f.start();
    let padded = |size: usize| {
        let frame =
            json!({"jsonrpc": "2.0", "method": "core.ping", "id": 1, "params": [""]}).to_string();
        let pad = "x".repeat(size - frame.len());
        json!({"jsonrpc": "2.0", "method": "core.ping", "id": 1, "params": [pad]}).to_string()
    };
    assert_eq!(padded(8192).len(), 8192);

    // Before login: 8 KiB passes (and is answered), one byte more closes with 1007.
    let mut anon = d.tcp();
    anon.send_raw(&padded(8192)).unwrap();
    assert!(
        matches!(anon.read_raw().unwrap(), Some(Frame::Text(t)) if t.contains("Too many arguments"))
    );
    anon.send_raw(&padded(8193)).unwrap();
    assert_eq!(next_close(&mut anon), 1007);

    // After login (root over the socket): 64 KiB passes, more closes with 1009.
    let mut root = d.root();
    root.send_raw(&padded(65536)).unwrap();
    assert!(matches!(root.read_raw().unwrap(), Some(Frame::Text(_))));
    root.send_raw(&padded(65537)).unwrap();
    assert_eq!(next_close(&mut root), 1009);

    // Beyond the transport's own limit (1 MiB) the daemon stops reading at
    // the frame header: the sender may see its write fail, else the code.
    let mut root = d.root();
    match root.send_raw(&padded(2 << 20)) {
        Ok(()) => assert_eq!(next_close(&mut root), 1009),
        Err(e) => assert!(matches!(e, ClientError::Closed(_)), "{e:?}"),
    }

    let mut root = d.root();
    root.send_binary(b"{}").unwrap();
    assert_eq!(next_close(&mut root), 1003);
    // The daemon is still fine.
    assert_eq!(d.root().call("core.ping", vec![]).unwrap(), json!("pong"));
}

fn next_close(c: &mut Client) -> u16 {
    loop {
        match c.read_raw() {
            Ok(Some(Frame::Close { code, .. })) => return code,
            Ok(Some(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// A daemon whose failed logins are answered after an hour: a wrong
/// password stays in flight for as long as a test runs, so what is in flight
/// is decided by what was sent, not by how fast the machine is.
fn held_logins() -> Fixture {
    Fixture::new().with_config("[limits]\nfailed_login_deadline_ms = 3600000\n")
}

#[test]
fn more_than_twenty_calls_in_flight_are_refused() {
    let f = held_logins();
    let d = f.start();
    let mut c = d.root();
    // Twenty wrong passwords, each held for an hour: the connection is full.
    for i in 0..20 {
        c.send_request("auth.login", vec![json!(format!("nobody{i}")), json!("x")])
            .unwrap();
    }
    let over: Vec<u64> = (20..25)
        .map(|i| {
            c.send_request("auth.login", vec![json!(format!("nobody{i}")), json!("x")])
                .unwrap()
        })
        .collect();
    // A ping sent while the connection is full is refused like any call.
    let ping = c.send_request("core.ping", vec![]).unwrap();
    for id in over.into_iter().chain([ping]) {
        let e = rpc_error(c.wait_response(id));
        assert_eq!(
            (e.code, e.message.as_str(), e.data),
            (
                -32000,
                "Maximum number of concurrent calls (20) has exceeded",
                None
            )
        );
    }
    // Still full (the twenty are held, not answered): the next call is
    // refused too, and another connection is served meanwhile.
    let e = rpc_error(c.call("core.ping", vec![]));
    assert_eq!(e.code, -32000);
    assert_eq!(d.root().call("core.ping", vec![]).unwrap(), json!("pong"));
}

#[test]
fn calls_complete_out_of_order() {
    let f = held_logins();
    let d = f.start();
    let mut c = d.root();
    // The login is held for an hour: the ping sent after it is answered
    // first, and so is a call sent after that answer.
    c.send_request("auth.login", vec![json!("nobody-x"), json!("x")])
        .unwrap();
    for _ in 0..2 {
        let fast = c.send_request("core.ping", vec![]).unwrap();
        let first = loop {
            match c.read_raw().unwrap() {
                Some(Frame::Text(t)) => break serde_json::from_str::<Value>(&t).unwrap(),
                Some(_) => {}
                None => panic!("nothing answered within {TIMEOUT:?}"),
            }
        };
        assert_eq!(first["id"], json!(fast), "{first}");
        assert_eq!(first["result"], "pong");
    }
}

#[test]
fn notifications_run_but_are_not_answered() {
    let f = Fixture::new();
    let d = f.start();
    let mut root = d.root();
    // A notification that changes state: it runs, nothing comes back.
    root.notify("auth.twofactor.update", vec![json!({"window": 3})])
        .unwrap();
    root.notify("no.such.method", vec![]).unwrap();
    // Invalid without an id: ignored.
    root.send_raw(r#"{"method":"core.ping"}"#).unwrap();
    // Give the notification the time of a round trip through the blocking
    // pool: wait for a change event instead of sleeping.
    let sub = root
        .call("core.subscribe", vec![json!("auth.twofactor")])
        .unwrap();
    assert!(sub.as_str().is_some_and(|s| !s.is_empty()));
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let w = root.call("auth.twofactor.config", vec![]).unwrap()["window"].clone();
        if w == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the notification never ran");
        let _ = root.next_notification(Duration::from_millis(100)).unwrap();
    }
    assert!(root.take_stray_answers().is_empty());
}

/// The next `collection_update` on `c`: its collection and fields.
fn next_event(c: &mut Client) -> (String, Value) {
    let n = c
        .next_notification(TIMEOUT)
        .expect("the connection")
        .expect("an event in time");
    assert_eq!(n["method"], "collection_update", "{n}");
    let collection = n["params"]["collection"].as_str().unwrap_or_default();
    (collection.to_owned(), n["params"]["fields"].clone())
}

/// Events come from commits, whoever makes them: a change the real `tfa`
/// makes in embedded mode on the daemon's state (another process) reaches
/// the daemon's subscribers, and each change is told once. `user` is a
/// collection one can subscribe to on its own.
#[test]
fn embedded_tfa_changes_reach_the_daemons_subscribers_once() {
    let f = Fixture::new();
    let d = f.start();
    let mut all = d.root();
    let mut users = d.root();
    let mut root = d.root();
    all.call("core.subscribe", vec![json!("*")]).unwrap();
    users.call("core.subscribe", vec![json!("user")]).unwrap();
    // An unknown collection: refused, naming the ones there are.
    let err = rpc_error(root.call("core.subscribe", vec![json!("users")]));
    let text = serde_json::to_string(&err).unwrap();
    assert!(
        text.contains("[EINVAL] name: Input should be 'auth.twofactor', 'user' or '*'"),
        "{text}"
    );
    let embedded = |line: &[&str]| {
        let out = std::process::Command::new(crate::cli::tfa_binary())
            .arg("--state-dir")
            .arg(&f.state)
            .arg("--config")
            .arg(f.dir.path().join("empty.toml"))
            .arg("-m")
            .arg("json")
            .args(line)
            .output()
            .expect("run tfa");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // The daemon's own change: the entry, and root's row (root has a
    // secret now), each once.
    root.call(
        "auth.twofactor.update",
        vec![json!({"enabled": true, "window": 2})],
    )
    .unwrap();
    let (c, fields) = next_event(&mut all);
    assert_eq!(
        (c.as_str(), &fields["window"]),
        ("auth.twofactor", &json!(2))
    );
    let (c, fields) = next_event(&mut all);
    assert_eq!(c, "user");
    assert_eq!(
        (&fields["uid"], &fields["twofactor_auth_configured"]),
        (&json!(0), &json!(true))
    );
    let (c, _) = next_event(&mut users);
    assert_eq!(c, "user");

    // Another process's change: root's recovery codes, made by embedded
    // tfa, reach both subscribers as root's row. Had the daemon's own
    // change come back through the watcher, the entry would come first.
    embedded(&[
        "account",
        "user",
        "generate_2fa_recovery_codes",
        "username=root",
    ]);
    let (c, fields) = next_event(&mut all);
    assert_eq!((c.as_str(), &fields["uid"]), ("user", &json!(0)));
    let (c, fields) = next_event(&mut users);
    assert_eq!((c.as_str(), &fields["uid"]), ("user", &json!(0)));

    // A setting changed by embedded tfa: the subscriber hears it, and the
    // daemon's `config` shows it.
    embedded(&["auth", "two_factor", "update", "window=3"]);
    let (c, fields) = next_event(&mut all);
    assert_eq!(
        (c.as_str(), &fields["window"]),
        ("auth.twofactor", &json!(3))
    );
    assert_eq!(fields["secret"], "********");
    assert_eq!(
        root.call("auth.twofactor.config", vec![]).unwrap()["window"],
        3
    );

    // The `user` subscriber heard none of the entry's events: its next one
    // is the next change of an account.
    root.call("user.generate_2fa_recovery_codes", vec![json!("root")])
        .unwrap();
    let (c, fields) = next_event(&mut users);
    assert_eq!((c.as_str(), &fields["uid"]), ("user", &json!(0)));
    let (c, _) = next_event(&mut all);
    assert_eq!(c, "user");
}

#[test]
fn subscribers_receive_collection_update() {
    let f = Fixture::new();
    let d = f.start();
    let mut watcher = d.root();
    let mut other = d.root();
    let sub = watcher
        .call("core.subscribe", vec![json!("auth.twofactor")])
        .unwrap();
    let mut root = d.root();
    let entry = root
        .call(
            "auth.twofactor.update",
            vec![json!({"enabled": true, "otp_digits": 8})],
        )
        .unwrap();
    let n = watcher
        .next_notification(TIMEOUT)
        .unwrap()
        .expect("an event");
    // Events never carry the secret.
    assert!(entry["secret"].is_string());
    let mut fields = entry.clone();
    fields["secret"] = json!("********");
    assert_eq!(
        n,
        json!({"jsonrpc": "2.0", "method": "collection_update",
               "params": {"msg": "changed", "collection": "auth.twofactor", "id": 1, "fields": fields}})
    );
    // Key order as `docs/protocol.md` writes the event.
    let text = n.to_string();
    assert!(text.starts_with(r#"{"jsonrpc":"2.0","method":"collection_update","params":{"msg":"changed","collection":"auth.twofactor","id":1,"fields":{"id":1,"otp_digits":8,"#), "{text}");
    // renew_secret is an event too: the entry as `config` shows it after
    // the renewal (a new secret), masked.
    let before = root.call("auth.twofactor.config", vec![]).unwrap();
    assert_eq!(
        root.call("auth.twofactor.renew_secret", vec![]).unwrap(),
        json!(true)
    );
    let after = root.call("auth.twofactor.config", vec![]).unwrap();
    assert!(after["secret"].is_string());
    assert_ne!(
        after["secret"], before["secret"],
        "renew_secret made a new secret"
    );
    let n = watcher
        .next_notification(TIMEOUT)
        .unwrap()
        .expect("an event");
    let mut fields = after.clone();
    fields["secret"] = json!("********");
    assert_eq!(n["params"]["fields"], fields);
    // Not subscribed: nothing.
    assert_eq!(
        other.next_notification(Duration::from_millis(300)).unwrap(),
        None
    );
    // Unsubscribed: nothing more.
    assert_eq!(
        watcher.call("core.unsubscribe", vec![sub]).unwrap(),
        Value::Null
    );
    root.call("auth.twofactor.update", vec![json!({"window": 2})])
        .unwrap();
    assert_eq!(
        watcher
            .next_notification(Duration::from_millis(300))
            .unwrap(),
        None
    );
}

#[test]
fn get_methods_is_filtered_by_service_and_caller() {
    let f = Fixture::new();
    let d = f.start();
    let mut root = d.root();
    let all = root.call("core.get_methods", vec![]).unwrap();
    let all = all.as_object().unwrap();
    for m in [
        "core.ping",
        "auth.login_ex",
        "auth.twofactor.config",
        "auth.twofactor.update",
        "audit.query",
    ] {
        assert!(all.contains_key(m), "{m}");
    }
    assert!(
        !all.keys().any(|k| k.contains("pam_")),
        "private methods are hidden"
    );
    let tf = root
        .call("core.get_methods", vec![json!("auth.twofactor")])
        .unwrap();
    let tf = tf.as_object().unwrap();
    assert!(!tf.is_empty());
    assert!(
        tf.keys().all(|k| k.starts_with("auth.twofactor.")),
        "{:?}",
        tf.keys()
    );
    let update = &tf["auth.twofactor.update"];
    assert_eq!(update["no_auth_required"], false);
    // The schema the daemon validates with: otp_digits 6..8.
    let digits = &update["accepts"][0]["properties"]["otp_digits"];
    assert_eq!(
        (digits["minimum"].clone(), digits["maximum"].clone()),
        (json!(6), json!(8))
    );
    let auth = root.call("core.get_methods", vec![json!("auth")]).unwrap();
    assert!(
        auth.as_object()
            .unwrap()
            .keys()
            .all(|k| k.starts_with("auth.") && !k.starts_with("auth.twofactor."))
    );
    let services = root.call("core.get_services", vec![]).unwrap();
    assert_eq!(services["auth.twofactor"]["type"], "config");
    assert_eq!(
        services["auth.twofactor"]["config"]["cli_namespace"],
        "auth.two_factor"
    );
}

#[test]
fn sigterm_finishes_calls_in_flight_then_removes_the_socket() {
    let f = Fixture::new();
    let mut d = f.start();
    let mut c = d.root();
    let slow = c
        .send_request("auth.login", vec![json!("nobody-x"), json!("x")])
        .unwrap();
    // The call is running once the blocking pool has it; the ping's
    // answer tells the daemon has read the slow request.
    assert_eq!(c.call("core.ping", vec![]).unwrap(), json!("pong"));
    let status_thread = {
        let pid = d.pid();
        std::thread::spawn(move || {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap()
        })
    };
    assert!(status_thread.join().unwrap().success());
    // The slow call still answers, then the server closes with 1001.
    assert_eq!(c.wait_response(slow).unwrap(), json!(false));
    let mut code = None;
    while code.is_none() {
        match c.read_raw() {
            Ok(Some(Frame::Close { code: got, .. })) => code = Some(got),
            Ok(Some(_)) => {}
            other => panic!("expected close, got {other:?}"),
        }
    }
    assert_eq!(code, Some(1001));
    d.wait_for_line(" stopped", Duration::from_secs(20));
    let status = d.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(!f.socket.exists(), "the socket file is removed");
}

/// Without a TCP listener, nothing holds the shutdown: once its calls are
/// done the daemon stops at once, not at the end of its grace period.
#[test]
fn sigterm_without_a_tcp_listener_stops_at_once() {
    let f = Fixture::new().with_listen("none");
    let mut d = f.start();
    assert_eq!(
        d.root().call("core.ping", vec![]).expect("ping"),
        json!("pong")
    );
    let asked = std::time::Instant::now();
    let status = d.terminate();
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(
        took < daemon::SHUTDOWN_GRACE / 2,
        "stopping took {took:?} (grace {:?})\n{}",
        daemon::SHUTDOWN_GRACE,
        d.log()
    );
}

#[test]
fn http_paths() {
    let f = Fixture::new();
    let d = f.start();
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(d.tcp_addr()).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let versions = get("/api/versions");
    assert!(versions.starts_with("HTTP/1.1 200"), "{versions}");
    assert!(
        versions
            .to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let body = versions.split("\r\n\r\n").nth(1).unwrap();
    let list: Vec<String> = serde_json::from_str(body).unwrap();
    assert!(list.contains(&"current".to_owned()));
    assert!(get("/nope").starts_with("HTTP/1.1 404"));
    assert!(get("/api/v1.0").starts_with("HTTP/1.1 404"));
    // /api/current without an upgrade is refused, not served.
    assert!(!get("/api/current").starts_with("HTTP/1.1 200"));
    // Our client and any Host over the socket.
    let mut c = Client::connect(&d.unix_url(), TIMEOUT).unwrap();
    assert_eq!(c.call("core.ping", vec![]).unwrap(), json!("pong"));
}

#[test]
fn start_up_errors_are_clear() {
    let f = Fixture::new();
    let _d = f.start();
    // A second daemon on the same socket refuses to start.
    let out = f.command().output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already listening on"), "{err}");
    // An unknown configuration key is named.
    let bad = f.dir.path().join("bad.toml");
    std::fs::write(&bad, "isuer = \"x\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twofactord"))
        .arg("--config")
        .arg(&bad)
        .arg("--state-dir")
        .arg(&f.state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("isuer"), "{err}");
    // A missing file: named, with the OS's reason said once.
    let missing = f.dir.path().join("missing.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twofactord"))
        .arg("--config")
        .arg(&missing)
        .arg("--state-dir")
        .arg(&f.state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

/// What TrueNAS's midcli and `truenas_api_client` need, pinned on the wire
/// of a real daemon.
#[test]
fn midcli_surface() {
    let f = Fixture::new();
    let d = f.start();
    let mut root = d.root();
    // 1. The short host name (midcli's prompt).
    assert_eq!(
        root.call("system.hostname", vec![]).unwrap(),
        json!(service::Labels::system_hostname())
    );
    // 8. The shell's start and its poll; set_options stays null (legacy
    // jobs mode of the official client).
    assert_eq!(
        root.call("user.has_local_administrator_set_up", vec![])
            .unwrap(),
        json!(true)
    );
    assert_eq!(
        root.call("interface.checkin_waiting", vec![]).unwrap(),
        Value::Null
    );
    assert_eq!(
        root.call("core.set_options", vec![json!({"legacy_jobs": false})])
            .unwrap(),
        Value::Null
    );
    // 2-4. TrueNAS's signatures; CLI leaves out what has no namespace.
    let methods = root
        .call("core.get_methods", vec![Value::Null, json!("CLI")])
        .unwrap();
    let services = root.call("core.get_services", vec![json!("CLI")]).unwrap();
    let services = services.as_object().unwrap();
    assert!(!services.contains_key("core"));
    for (name, s) in services {
        assert!(s["config"]["cli_namespace"].is_string(), "{name}");
    }
    assert_eq!(services["user"]["config"]["cli_namespace"], "account.user");
    for name in methods.as_object().unwrap().keys() {
        let (service, _) = name.rsplit_once('.').unwrap();
        assert!(services.contains_key(service), "{name}");
    }
    assert!(methods.get("core.ping").is_none());
    assert!(methods.get("auth.twofactor.update").is_some());
    let ws = root
        .call("core.get_methods", vec![Value::Null, json!("WS")])
        .unwrap();
    assert_eq!(ws, root.call("core.get_methods", vec![]).unwrap());
    assert!(ws.get("core.ping").is_some());
    // 5, 7. Object schemas and examples as midcli reads them.
    let update = &methods["auth.twofactor.update"];
    assert_eq!(
        update["accepts"][0]["_attrs_order_"],
        json!(["enabled", "otp_digits", "window", "interval", "services"])
    );
    assert_eq!(update["accepts"][0]["_name_"], "auth_twofactor_update");
    assert_eq!(update["accepts"][0]["_required_"], true);
    let examples = update["examples"]["cli"].as_array().unwrap();
    assert!(!examples.is_empty());
    assert!(examples.iter().all(|e| e.as_str().unwrap().ends_with('\n')));
    // 6. Call errors carry a trace object, validation errors too.
    let e = rpc_error(root.call("auth.twofactor.renew_secret", vec![]));
    assert_eq!(
        serde_json::to_value(e).unwrap(),
        json!({"code": -32001, "message": "Method call error", "data": {
            "error": 14, "errname": "EFAULT",
            "reason": "[EFAULT] Please enable Two Factor Authentication first.",
            "trace": {"class": "CallError", "frames": [],
                "formatted": "CallError: [EFAULT] Please enable Two Factor Authentication first.",
                "repr": "CallError('Please enable Two Factor Authentication first.', 14, None)"},
            "extra": null}})
    );
    let e = rpc_error(root.call("auth.twofactor.update", vec![json!({"window": 1.0})]));
    assert_eq!(
        serde_json::to_value(e).unwrap(),
        json!({"code": -32602, "message": "Invalid params", "data": {
            "error": 22, "errname": "EINVAL",
            "reason": "[EINVAL] auth_twofactor_update.window: Not an integer\n",
            "trace": {"class": "ValidationErrors", "frames": [],
                "formatted": "ValidationErrors: [EINVAL] auth_twofactor_update.window: Not an integer\n",
                "repr": "ValidationErrors([ValidationError('auth_twofactor_update.window', 'Not an integer', 22)])"},
            "extra": [["auth_twofactor_update.window", "Not an integer", 22]]}})
    );
}
