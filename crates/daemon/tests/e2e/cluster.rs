//! Several `twofactord` nodes on one PostgreSQL state (`[database]`):
//! exactly-once acceptance across nodes, counters shared by the nodes,
//! events and caches kept true by notifications, the key check, a lost
//! database, failover to a promoted standby, TLS, moving a state, and
//! start-up errors that name what is wrong.

use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use client::Client;
use serde_json::{Value, json};

use crate::harness::{
    ALICE, BOB, Daemon, Fixture, TIMEOUT, Wrappers, code, login, need, oathtool, own_secret,
    path_str, rpc_error, totp, uri_secret, wrong_code,
};
use crate::pgcluster::{Cluster, Setup};

/// A node's fixture on database `url` named `node`, sharing `key_from`'s
/// key file when given (else the first node makes one).
fn node(url: &str, node: &str, key_from: Option<&Fixture>, extra: &str) -> Fixture {
    node_on(Fixture::new(), url, node, key_from, extra)
}

/// [`node`] from `base` (e.g. a fixture with test accounts).
fn node_on(
    base: Fixture,
    url: &str,
    node: &str,
    key_from: Option<&Fixture>,
    extra: &str,
) -> Fixture {
    // The SPEC's default time-out unless the test sets its own (a load
    // test on two shared cores gives its checks more time to queue).
    let timeout = if extra.contains("statement_timeout_ms") {
        ""
    } else {
        "statement_timeout_ms = 2000\n"
    };
    let f = base.with_config(&format!(
        "[database]\nurl = \"{url}\"\nnode = \"{node}\"\n{timeout}\
         connect_timeout_ms = 2000\n{extra}"
    ));
    if let Some(first) = key_from {
        copy_key(first, &f);
    }
    f
}

fn copy_key(from: &Fixture, to: &Fixture) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&to.state).expect("state dir");
    std::fs::set_permissions(&to.state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let key = to.state.join("secret.key");
    std::fs::copy(from.state.join("secret.key"), &key).expect("copy the key file");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Two nodes on a fresh database of the shared cluster.
fn two_nodes() -> (Fixture, Daemon, Fixture, Daemon) {
    let cluster = Cluster::shared();
    let url = cluster.url(&cluster.fresh_db());
    let load = "statement_timeout_ms = 20000\n";
    let fa = node(&url, "node-a", None, load);
    let a = fa.start();
    let fb = node(&url, "node-b", Some(&fa), load);
    let b = fb.start();
    (fa, a, fb, b)
}

fn pam_check(c: &mut Client, rhost: &str, token: &str) -> Value {
    c.call(
        "auth.twofactor.pam_check",
        vec![json!("root"), json!("sshd"), json!(rhost), json!(token)],
    )
    .expect("pam_check")
}

/// Enables 2FA with SSH codes on, through `c`; returns the secret.
fn enable_ssh(c: &mut Client) -> String {
    let entry = c
        .call(
            "auth.twofactor.update",
            vec![json!({"enabled": true, "window": 1, "services": {"ssh": true}})],
        )
        .expect("enable 2FA");
    entry["secret"].as_str().expect("a secret").to_owned()
}

#[test]
fn of_32_concurrent_checks_of_one_code_over_two_nodes_exactly_one_passes() {
    if need("oathtool", oathtool()).is_none() {
        return;
    }
    let (_fa, a, _fb, b) = two_nodes();
    let mut root = a.root();
    enable_ssh(&mut root);
    let mut clients: Vec<Client> = (0..32)
        .map(|i| if i % 2 == 0 { a.root() } else { b.root() })
        .collect();
    for round in 0..50 {
        // A fresh secret each round: its current code has never been used.
        root.call("auth.twofactor.renew_secret", vec![])
            .expect("renew");
        let secret = root.call("auth.twofactor.config", vec![]).expect("config")["secret"]
            .as_str()
            .expect("secret")
            .to_owned();
        let code = totp(&secret, 6, 30, 0);
        let barrier = Barrier::new(clients.len());
        let outcomes: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = clients
                .iter_mut()
                .enumerate()
                .map(|(i, c)| {
                    let (barrier, code) = (&barrier, &code);
                    s.spawn(move || {
                        barrier.wait();
                        // Distinct addresses: no origin reaches its limit.
                        let out = pam_check(c, &format!("198.51.100.{}", i + 1), code);
                        out["outcome"].as_str().unwrap_or_default().to_owned()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("checker"))
                .collect()
        });
        let accepted = outcomes.iter().filter(|o| *o == "accepted").count();
        assert_eq!(accepted, 1, "round {round}: {outcomes:?}");
        assert!(
            // Replays count as failures: past the secret's limit the rest
            // are refused outright.
            outcomes
                .iter()
                .all(|o| o == "accepted" || o == "replayed" || o == "locked_out"),
            "round {round}: {outcomes:?}"
        );
    }
}

#[test]
fn wrong_codes_over_both_nodes_lock_the_origin_and_then_the_secret_on_both() {
    if need("oathtool", oathtool()).is_none() {
        return;
    }
    let (_fa, a, _fb, b) = two_nodes();
    let (mut ra, mut rb) = (a.root(), b.root());
    let secret = enable_ssh(&mut ra);
    let wrong = wrong_code(&secret);
    // Five wrong codes from one address, alternating nodes.
    for i in 0..5 {
        let c = if i % 2 == 0 { &mut ra } else { &mut rb };
        assert_eq!(
            pam_check(c, "203.0.113.9", &wrong)["outcome"],
            "wrong",
            "try {i}"
        );
    }
    let right = totp(&secret, 6, 30, 0);
    for c in [&mut ra, &mut rb] {
        let out = pam_check(c, "203.0.113.9", &right);
        assert_eq!(out["outcome"], "locked_out", "{out}");
    }
    // Twenty wrong codes over many addresses lock the secret itself.
    for i in 0..15 {
        let c = if i % 2 == 0 { &mut ra } else { &mut rb };
        let out = pam_check(c, &format!("192.0.2.{}", i + 1), &wrong);
        assert_eq!(out["outcome"], "wrong", "try {i}: {out}");
    }
    for (c, addr) in [(&mut ra, "192.0.2.200"), (&mut rb, "192.0.2.201")] {
        let out = pam_check(c, addr, &right);
        assert_eq!(out["outcome"], "locked_out", "{out}");
    }
}

#[test]
fn an_update_on_one_node_reaches_the_other_nodes_subscribers_and_its_config() {
    let (_fa, a, _fb, b) = two_nodes();
    let mut sub = b.root();
    sub.call("core.subscribe", vec![json!("auth.twofactor")])
        .expect("subscribe");
    // Warm b's cache.
    let before = b
        .root()
        .call("auth.twofactor.config", vec![])
        .expect("config");
    assert_eq!(before["otp_digits"], 6);
    a.root()
        .call("auth.twofactor.update", vec![json!({"otp_digits": 8})])
        .expect("update on a");
    let deadline = Instant::now() + TIMEOUT;
    let event = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no collection_update reached node b");
        if let Some(n) = sub.next_notification(left).expect("notification")
            && n["method"] == "collection_update"
        {
            break n;
        }
    };
    assert_eq!(event["params"]["collection"], "auth.twofactor", "{event}");
    assert_eq!(event["params"]["fields"]["otp_digits"], 8, "{event}");
    let shown = &event["params"]["fields"]["secret"];
    assert!(shown.is_null() || shown == "********", "{event}");
    let after = b
        .root()
        .call("auth.twofactor.config", vec![])
        .expect("config");
    assert_eq!(after["otp_digits"], 8, "node b answers from a stale cache");
    // Audit rows of both nodes are in one trail, with the node's name kept.
    let rows = b
        .root()
        .call("audit.query", vec![json!({"event": "twofactor.update"})])
        .expect("audit");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["node"], "node-a", "{rows}");
    // A change on b is b's row in the same trail, read on a.
    b.root()
        .call("auth.twofactor.update", vec![json!({"window": 1})])
        .expect("update on b");
    let rows = a
        .root()
        .call("audit.query", vec![json!({"event": "twofactor.update"})])
        .expect("audit");
    let nodes: Vec<&Value> = rows
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| &r["node"])
        .collect();
    assert_eq!(nodes, [&json!("node-b"), &json!("node-a")], "{rows}");
}

/// SIGTERM stops a node at once and cleanly. Its pool's connections are
/// closed off the async runtime (closing one on it panicked: exit 101,
/// after the whole grace period, which the unused TCP routes held).
#[test]
fn a_node_stops_at_once_and_cleanly_on_sigterm() {
    let cluster = Cluster::shared();
    let url = cluster.url(&cluster.fresh_db());
    let f = node(&url, "node-s", None, "").with_listen("none");
    let mut d = f.start();
    // A call, so that the pool holds a connection to close.
    let config = d
        .root()
        .call("auth.twofactor.config", vec![])
        .expect("config");
    assert_eq!(config["otp_digits"], 6);
    let asked = Instant::now();
    let status = d.terminate();
    let took = asked.elapsed();
    let log = d.log();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        took < daemon::SHUTDOWN_GRACE / 2,
        "stopping took {took:?} (grace {:?})\n{log}",
        daemon::SHUTDOWN_GRACE
    );
}

#[test]
fn a_node_whose_key_file_differs_refuses_to_start() {
    let cluster = Cluster::shared();
    let url = cluster.url(&cluster.fresh_db());
    let fa = node(&url, "node-a", None, "");
    let a = fa.start();
    drop(a);
    // b gets another key file (made by a daemon on a local state).
    let other = Fixture::new();
    drop(other.start());
    let fb = node(&url, "node-b", Some(&other), "");
    let out = start_failure(&fb);
    assert!(
        out.contains("the key file does not match the database (key check failed)"),
        "{out}"
    );
}

/// Runs the daemon of `f` expecting it to exit at start; its log.
fn start_failure(f: &Fixture) -> String {
    let out = f
        .command()
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run twofactord");
    assert!(!out.status.success(), "twofactord started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_database_settings_are_clear_start_up_errors_and_write_nothing() {
    let cluster = Cluster::shared();
    let db = cluster.fresh_db();
    let port = cluster.port;
    let unused = crate::pgcluster::free_port();
    cluster
        .admin()
        .batch_execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tf_pw') \
                        THEN CREATE ROLE tf_pw LOGIN PASSWORD 'right-pw'; END IF; END $$",
        )
        .expect("role");
    for (url, needle) in [
        ("mysql://x@127.0.0.1/x".to_owned(), "malformed database URL"),
        (
            format!("postgresql://postgres@127.0.0.1:{port}/{db}?sslmode=sometimes"),
            "unknown sslmode \"sometimes\"",
        ),
        (
            format!("postgresql://postgres@127.0.0.1:{unused}/{db}?sslmode=disable"),
            "cannot connect to the database",
        ),
        (
            format!("postgresql://tf_pw:wrong-pw@127.0.0.1:{port}/{db}?sslmode=disable"),
            "password authentication failed",
        ),
    ] {
        let f = node(&url, "n", None, "");
        let out = start_failure(&f);
        assert!(out.contains(needle), "{url}: {out}");
        assert!(!out.contains("wrong-pw"), "the password is shown: {out}");
        assert!(
            !f.state.join("secret.key").exists(),
            "{url}: a key file was written"
        );
    }
    // A schema newer than this build: refused, nothing changed.
    let url = cluster.url(&db);
    let fa = node(&url, "node-a", None, "");
    drop(fa.start());
    let mut c = postgres::Client::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname={db}"),
        postgres::NoTls,
    )
    .expect("connect");
    let applied = |c: &mut postgres::Client| -> i64 {
        c.query_one("SELECT count(*) FROM schema_migrations", &[])
            .expect("count")
            .get(0)
    };
    let scripts = applied(&mut c);
    c.batch_execute("INSERT INTO schema_migrations (version) VALUES (999)")
        .expect("bump");
    let out = start_failure(&fa);
    assert!(
        out.contains("written by a newer version (schema 999"),
        "{out}"
    );
    assert_eq!(applied(&mut c), scripts + 1, "the newer schema was touched");
}

/// A URL without a password takes it from PostgreSQL's password file
/// (`PGPASSFILE` here), as libpq does; a file that others may read is
/// refused at start, naming it and never the password.
#[test]
fn a_url_without_a_password_takes_it_from_the_password_file() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::shared();
    let db = cluster.fresh_db();
    let port = cluster.port;
    cluster
        .admin()
        .batch_execute(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tf_pw') \
                        THEN CREATE ROLE tf_pw LOGIN PASSWORD 'right-pw'; END IF; END $$; \
             ALTER DATABASE \"{db}\" OWNER TO tf_pw"
        ))
        .expect("role");
    let url = format!("postgresql://tf_pw@127.0.0.1:{port}/{db}?sslmode=disable");
    let keys = tempfile::tempdir().expect("tempdir");
    let pgpass = keys.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!("# a comment\n127.0.0.1:{port}:{db}:tf_pw:right-pw\n*:*:*:*:wrong-pw\n"),
    )
    .expect("pgpass");
    let mode = |m: u32| {
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    mode(0o600);
    let f = node(&url, "node-a", None, "").with_env("PGPASSFILE", path_str(&pgpass));
    let d = f.start();
    let status = d
        .root()
        .call("system.twofactor_status", vec![])
        .expect("status");
    assert_eq!(status["database"]["reachable"], true, "{status}");
    drop(d);
    mode(0o644);
    let out = start_failure(&f);
    assert!(
        out.contains(path_str(&pgpass)) && out.contains("group or others"),
        "{out}"
    );
    assert!(!out.contains("right-pw"), "the password is shown: {out}");
}

/// A login of `who` over TCP answered with `token`: the answer's type.
fn code_login(d: &Daemon, who: (&str, &str), token: &str) -> String {
    let mut c = d.tcp();
    assert_eq!(login(&mut c, who)["response_type"], "OTP_REQUIRED");
    code(&mut c, token).expect("login_ex_continue")["response_type"]
        .as_str()
        .expect("a response type")
        .to_owned()
}

fn recovery_codes_left(root: &mut Client, user: &str) -> Value {
    root.call("user.twofactor_config", vec![json!(user)])
        .expect("user.twofactor_config")["recovery_codes_left"]
        .clone()
}

/// The pending enrolment's QR code (the same URI draws the same SVG).
fn pending_qr(root: &mut Client, user: &str) -> Value {
    root.call("user.provisioning_qr", vec![json!(user), json!(true)])
        .expect("the pending enrolment's QR code")
}

/// SQLite to PostgreSQL and back with `twofactord migrate`: root's secret
/// and replay step, the audit rows, alice's own secret with her recovery
/// codes (a used one stays used, an unused one works once, on either
/// engine) and bob's pending enrolment (the same on PostgreSQL, confirmed
/// by a code of it after the way back).
#[test]
fn migrate_sqlite_to_postgresql_and_back_keeps_everything() {
    if need("oathtool", oathtool()).is_none() {
        return;
    }
    let Some(w) = need("pam_wrapper/nss_wrapper", Wrappers::find()) else {
        return;
    };
    let local = Fixture::new().with_accounts(&w);
    let (secret, used, audit_rows, alice, codes, bob_qr, bob_pending) = {
        let d = local.start();
        let mut root = d.root();
        let secret = enable_ssh(&mut root);
        // The widest window (ten steps either side): the code used here
        // must still be inside it, and so be told "replayed" rather than
        // "wrong", however long the migrations below take on a loaded
        // machine.
        root.call("auth.twofactor.update", vec![json!({"window": 10})])
            .expect("window");
        // A replay step and a counter.
        let used = totp(&secret, 6, 30, 0);
        assert_eq!(
            pam_check(&mut root, "203.0.113.7", &used)["outcome"],
            "accepted"
        );
        let wrong = wrong_code(&secret);
        assert_eq!(
            pam_check(&mut root, "203.0.113.8", &wrong)["outcome"],
            "wrong"
        );
        // alice: her own secret and recovery codes, one of them used.
        let alice = own_secret(&mut root, ALICE.0);
        let codes: Vec<String> = root
            .call("user.generate_2fa_recovery_codes", vec![json!(ALICE.0)])
            .expect("recovery codes")
            .as_array()
            .expect("a list")
            .iter()
            .map(|c| c.as_str().expect("a code").to_owned())
            .collect();
        assert_eq!(codes.len(), 10);
        assert_eq!(code_login(&d, ALICE, &codes[0]), "SUCCESS");
        assert_eq!(recovery_codes_left(&mut root, ALICE.0), 9);
        // bob: an enrolment waiting for its confirming code.
        let enrol = root
            .call("user.twofactor_enroll", vec![json!(BOB.0)])
            .expect("enrol bob");
        let bob_pending = uri_secret(enrol["provisioning_uri"].as_str().expect("a URI"));
        let bob_qr = pending_qr(&mut root, BOB.0);
        let rows = root
            .call("audit.query", vec![json!({"limit": 1000})])
            .expect("audit");
        (
            secret,
            used,
            rows.as_array().map(Vec::len).unwrap_or_default(),
            alice,
            codes,
            bob_qr,
            bob_pending,
        )
    };
    let cluster = Cluster::shared();
    let url = cluster.url(&cluster.fresh_db());
    let key = local.state.join("secret.key");
    let migrate = |from: &str, to: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_twofactord"))
            .args([
                "--config",
                "/dev/null",
                "migrate",
                "--from",
                from,
                "--to",
                to,
            ])
            .arg("--key")
            .arg(&key)
            .output()
            .expect("run migrate");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let state = local.state.to_str().expect("utf-8").to_owned();
    let (ok, out) = migrate(&state, &url);
    assert!(ok, "{out}");
    assert!(out.contains("migrated: 2 secrets"), "{out}");
    // A second time: the target is not empty any more.
    let (ok, out) = migrate(&state, &url);
    assert!(!ok && out.contains("already holds"), "{out}");
    // A node on the database: the secret opens, the replay step holds.
    let fa = node_on(
        Fixture::new().with_accounts(&w),
        &url,
        "node-a",
        Some(&local),
        "",
    );
    {
        let d = fa.start();
        let mut root = d.root();
        let cfg = root.call("auth.twofactor.config", vec![]).expect("config");
        assert_eq!(cfg["secret"], secret.as_str());
        assert_eq!(
            pam_check(&mut root, "203.0.113.7", &used)["outcome"],
            "replayed"
        );
        let rows = root
            .call("audit.query", vec![json!({"limit": 1000})])
            .expect("audit");
        assert!(rows.as_array().map(Vec::len).unwrap_or_default() > audit_rows);
        // alice's used code stays used, the next one works once.
        assert_eq!(recovery_codes_left(&mut root, ALICE.0), 9);
        assert_eq!(code_login(&d, ALICE, &codes[0]), "OTP_REQUIRED");
        assert_eq!(code_login(&d, ALICE, &codes[1]), "SUCCESS");
        assert_eq!(code_login(&d, ALICE, &codes[1]), "OTP_REQUIRED");
        assert_eq!(recovery_codes_left(&mut root, ALICE.0), 8);
        assert_eq!(pending_qr(&mut root, BOB.0), bob_qr);
    }
    // And back into a new directory.
    let back = tempfile::tempdir().expect("tempdir");
    let back_state = back.path().join("state");
    let (ok, out) = migrate(&url, back_state.to_str().expect("utf-8"));
    assert!(ok, "{out}");
    let fb = Fixture::new().with_accounts(&w);
    std::fs::remove_dir_all(&fb.state).ok();
    copy_dir(&back_state, &fb.state);
    let d = fb.start();
    let mut root = d.root();
    assert_eq!(
        root.call("auth.twofactor.config", vec![]).expect("config")["secret"],
        secret.as_str()
    );
    assert_eq!(
        pam_check(&mut root, "203.0.113.7", &used)["outcome"],
        "replayed"
    );
    assert_eq!(recovery_codes_left(&mut root, ALICE.0), 8);
    assert_eq!(code_login(&d, ALICE, &codes[1]), "OTP_REQUIRED");
    assert_eq!(code_login(&d, ALICE, &codes[2]), "SUCCESS");
    assert_eq!(recovery_codes_left(&mut root, ALICE.0), 7);
    // alice's own secret came along too.
    assert_eq!(code_login(&d, ALICE, &totp(&alice, 6, 30, 1)), "SUCCESS");
    // bob's enrolment is still pending, and a code of it confirms it.
    assert_eq!(pending_qr(&mut root, BOB.0), bob_qr);
    let confirmed = root
        .call(
            "user.twofactor_enroll_confirm",
            vec![json!(BOB.0), json!(totp(&bob_pending, 6, 30, 0))],
        )
        .expect("confirm bob's enrolment");
    assert_eq!(
        confirmed["twofactor_config"]["secret_configured"], true,
        "{confirmed}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).expect("mkdir");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

#[test]
fn losing_the_database_fails_calls_with_eio_and_both_nodes_serve_again_after_it_returns() {
    if need("oathtool", oathtool()).is_none() {
        return;
    }
    let cluster = Cluster::start(&Setup::default());
    let db = cluster.fresh_db();
    let url = cluster.url(&db);
    let fa = node(&url, "node-a", None, "");
    let a = fa.start();
    let fb = node(&url, "node-b", Some(&fa), "");
    let mut b = fb.start();
    let mut ra = a.root();
    let secret = enable_ssh(&mut ra);
    // An acknowledged change before the loss.
    ra.call("auth.twofactor.update", vec![json!({"otp_digits": 8})])
        .expect("update");
    let database = |c: &mut Client| {
        c.call("system.twofactor_status", vec![])
            .expect("status answers, reachable or not")["database"]
            .clone()
    };
    assert_eq!(
        database(&mut ra),
        json!({"engine": "postgresql", "node": "node-a", "reachable": true})
    );
    cluster.stop_server();
    for d in [&a, &b] {
        let mut c = d.root();
        // core.ping still answers.
        c.call("core.ping", vec![]).expect("ping");
        // Root's own check on the socket too, whose record would go to the
        // node's audit writer.
        for method in [
            "auth.twofactor.pam_check",
            "auth.twofactor.update",
            "user.verify_twofactor_token",
        ] {
            let params = match method {
                "auth.twofactor.update" => vec![json!({"window": 2})],
                "user.verify_twofactor_token" => vec![json!("root"), json!("123456")],
                _ => vec![
                    json!("root"),
                    json!("sshd"),
                    json!("203.0.113.1"),
                    json!("123456"),
                ],
            };
            let t = Instant::now();
            let e = rpc_error(c.call(method, params));
            assert!(
                t.elapsed() < Duration::from_millis(2500),
                "{method} took {:?}",
                t.elapsed()
            );
            let data = e.data.expect("data");
            assert_eq!(data.errname, "EIO", "{method}");
            assert_eq!(data.reason, "[EIO] the database is unavailable", "{method}");
        }
    }
    b.wait_for_line("database", Duration::from_secs(10));
    // Readiness is visible beyond the log: the status says which node and
    // that its database does not answer, and claims nothing else.
    let mut rb = b.root();
    let status = rb.call("system.twofactor_status", vec![]).expect("status");
    assert_eq!(
        status["database"],
        json!({"engine": "postgresql", "node": "node-b", "reachable": false}),
        "{status}"
    );
    assert!(status.get("enabled").is_none(), "{status}");
    cluster.start_server();
    let back = Instant::now();
    for d in [&a, &b] {
        let mut c = d.root();
        loop {
            match c.call("auth.twofactor.config", vec![]) {
                Ok(cfg) => {
                    assert_eq!(cfg["otp_digits"], 8, "an acknowledged change was lost");
                    break;
                }
                Err(_) => assert!(
                    back.elapsed() < Duration::from_secs(10),
                    "a node does not serve 10 s after the database returned"
                ),
            }
            std::thread::yield_now();
        }
        assert_eq!(database(&mut c)["reachable"], true);
        let out = pam_check(&mut c, "203.0.113.2", &totp(&secret, 8, 30, 0));
        assert!(
            out["outcome"] == "accepted" || out["outcome"] == "replayed",
            "{out}"
        );
    }
    // The loss is logged once, by whichever of the listener's two paths
    // noticed it first: a connection that broke, or one that could not be
    // made (when it was noticed while reconnecting).
    let log = b.log();
    assert_eq!(
        log.matches("lost the database connection").count()
            + log.matches("the database is unavailable; retrying").count(),
        1,
        "{log}"
    );
}

/// Waits (at most ten seconds) until `c` answers `auth.twofactor.config`.
fn serves_within_10s(d: &Daemon, since: Instant) {
    loop {
        if let Ok(mut c) = Client::connect(&d.unix_url(), TIMEOUT)
            && c.call("auth.twofactor.config", vec![]).is_ok()
        {
            return;
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "a node does not serve 10 s after the failover; log:\n{}",
            d.log()
        );
        std::thread::yield_now();
    }
}

#[test]
fn after_failover_to_a_promoted_standby_both_nodes_serve_and_the_state_holds() {
    if need("oathtool", oathtool()).is_none() {
        return;
    }
    let primary = Cluster::start(&Setup::default());
    let db = primary.fresh_db();
    let standby = Cluster::start(&Setup {
        standby_of: Some(&primary),
        ..Setup::default()
    });
    let url = format!(
        "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/{db}?target_session_attrs=read-write&sslmode=disable",
        primary.port, standby.port
    );
    let fa = node(&url, "node-a", None, "");
    let a = fa.start();
    let fb = node(&url, "node-b", Some(&fa), "");
    let b = fb.start();
    let mut ra = a.root();
    let secret = enable_ssh(&mut ra);
    let code = totp(&secret, 6, 30, 0);
    assert_eq!(
        pam_check(&mut ra, "203.0.113.1", &code)["outcome"],
        "accepted"
    );
    let wrong = wrong_code(&secret);
    let mut rb = b.root();
    for i in 0..5 {
        let c = if i % 2 == 0 { &mut ra } else { &mut rb };
        assert_eq!(pam_check(c, "203.0.113.9", &wrong)["outcome"], "wrong");
    }
    // Asynchronous replication: wait until the standby has replayed it all.
    let lsn: String = primary
        .admin()
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .expect("lsn")
        .get(0);
    let mut s = standby.admin();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s
        .query_one(
            "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
            &[&lsn],
        )
        .expect("replay lsn")
        .get::<_, bool>(0)
    {
        assert!(Instant::now() < deadline, "the standby does not catch up");
        std::thread::yield_now();
    }
    drop(s);
    primary.stop_server();
    standby.promote();
    let promoted = Instant::now();
    serves_within_10s(&a, promoted);
    serves_within_10s(&b, promoted);
    for d in [&a, &b] {
        let mut c = d.root();
        let cfg = c.call("auth.twofactor.config", vec![]).expect("config");
        assert_eq!(cfg["secret"], secret.as_str(), "the secret is kept");
        assert_eq!(
            pam_check(&mut c, "203.0.113.2", &code)["outcome"],
            "replayed",
            "the replay step is kept"
        );
        assert_eq!(
            pam_check(&mut c, "203.0.113.9", &totp(&secret, 6, 30, 0))["outcome"],
            "locked_out",
            "the lock-out is kept"
        );
    }
}

#[test]
fn a_node_killed_under_load_leaves_the_other_serving_with_exact_replay_state() {
    if need("oathtool", oathtool()).is_none() {
        return;
    }
    let (_fa, a, _fb, b) = two_nodes();
    let mut rb = b.root();
    let secret = enable_ssh(&mut rb);
    let code = totp(&secret, 6, 30, 0);
    let barrier = Barrier::new(17);
    let seen: Vec<String> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for i in 0..16 {
            let (barrier, code, d) = (&barrier, &code, if i % 2 == 0 { &a } else { &b });
            let mut c = d.root();
            handles.push(s.spawn(move || {
                barrier.wait();
                let mut outcomes = Vec::new();
                for round in 0..20 {
                    match c.call(
                        "auth.twofactor.pam_check",
                        vec![
                            json!("root"),
                            json!("sshd"),
                            json!(format!("198.51.100.{}", i * 20 + round + 1)),
                            json!(code),
                        ],
                    ) {
                        Ok(v) => outcomes.push(v["outcome"].as_str().unwrap_or("").to_owned()),
                        // The killed node's connections end.
                        Err(_) => break,
                    }
                }
                outcomes
            }));
        }
        barrier.wait();
        a.kill9_in_place();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("checker"))
            .collect()
    });
    let accepted = seen.iter().filter(|o| *o == "accepted").count();
    assert!(accepted <= 1, "{seen:?}");
    // b still serves, and the code is used up exactly once in all.
    let out = pam_check(&mut rb, "192.0.2.77", &code)["outcome"].clone();
    if accepted == 1 {
        assert_ne!(out, "accepted", "accepted twice: {seen:?}");
    }
    assert_ne!(
        pam_check(&mut rb, "192.0.2.78", &code)["outcome"],
        "accepted"
    );
    rb.call("auth.twofactor.config", vec![]).expect("b serves");
}

/// A CA and a server certificate for 127.0.0.1, by the openssl tool.
fn test_certs(dir: &Path, ca: &str) -> (String, String, String) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = format!("{ca}.key");
    let crt = format!("{ca}.crt");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &crt,
        "-days",
        "2",
        "-subj",
        &format!("/CN={ca}"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        &crt,
        "-CAkey",
        &key,
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("read");
    (
        read("server.crt"),
        read("server.key"),
        dir.join(&crt).display().to_string(),
    )
}

#[test]
fn tls_verify_full_connects_with_the_right_root_and_refuses_a_wrong_one_naming_why() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (crt, key, ca) = test_certs(certs.path(), "right-ca");
    let wrong_dir = tempfile::tempdir().expect("tempdir");
    let (_, _, wrong_ca) = test_certs(wrong_dir.path(), "wrong-ca");
    let cluster = Cluster::start(&Setup {
        conf: &[
            "ssl = on",
            "ssl_cert_file = 'server.crt'",
            "ssl_key_file = 'server.key'",
        ],
        files: &[("server.crt", &crt), ("server.key", &key)],
        ..Setup::default()
    });
    let db = cluster.fresh_db();
    let url = |root: &str| {
        format!(
            "postgresql://tf_tls@127.0.0.1:{}/{db}?sslmode=verify-full&sslrootcert={root}",
            cluster.port
        )
    };
    cluster
        .admin()
        .batch_execute("CREATE ROLE tf_tls LOGIN SUPERUSER")
        .expect("role");
    // The wrong root first: refused, naming the certificate; nothing written.
    let f = node(&url(&wrong_ca), "node-a", None, "");
    let out = start_failure(&f);
    assert!(out.contains("certificate"), "{out}");
    assert!(!f.state.join("secret.key").exists());
    // The right root connects, over TLS (the role may only use hostssl).
    let f = node(&url(&ca), "node-a", None, "");
    let d = f.start();
    d.root()
        .call("auth.twofactor.config", vec![])
        .expect("serves");
    let n: i64 = cluster
        .admin()
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.usename = 'tf_tls' AND s.ssl",
            &[],
        )
        .expect("pg_stat_ssl")
        .get(0);
    assert!(n > 0, "no TLS connection of the node");
}
