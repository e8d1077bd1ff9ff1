//! SPEC §11 end to end (issue 7): a login flood over both listeners, idle
//! and slowloris connections up to the unit's open-file limit, handshake
//! and login time-outs, login attempts per address, close codes of
//! WebSocket protocol errors, and no socket file left by a failed start.
//!
//! Latency bounds here are generous (2 s, against 17–50 s before the fix)
//! so that a loaded machine cannot make them flaky; the targets are shown
//! by `scripts/daemon-bench`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use client::{Client, Frame};
use serde_json::{Value, json};

use crate::harness::{
    ADMIN, Daemon, Fixture, TIMEOUT, Wrappers, need, oathtool, own_secret, pam_exec_module,
    rate_limited, totp,
};
use crate::nonroot::{AS_NOBODY, setpriv};

/// The bound for root's calls and PAM checks under attack.
const PROMPT: Duration = Duration::from_secs(2);
/// How long the tests wait for the daemon to close something.
const CLOSE_WITHIN: Duration = Duration::from_secs(15);

fn wrong_login() -> Vec<Value> {
    vec![json!({"mechanism": "PASSWORD_PLAIN", "username": ADMIN.0, "password": "wrong"})]
}

/// The daemon's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM")
}

/// A new root connection calls `auth.twofactor.config`; how long it took.
fn root_config(d: &Daemon) -> Duration {
    let t = Instant::now();
    let mut c = Client::connect(&d.unix_url(), TIMEOUT).expect("root connects");
    let entry = c
        .call("auth.twofactor.config", vec![])
        .expect("config answers");
    assert_eq!(entry["id"], 1);
    t.elapsed()
}

/// The PAM module's check of a right code (a new root connection, as
/// `pam_twofactor.so` makes); how long it took.
fn pam_check(d: &Daemon, secret: &str, step: i64, rhost: &str) -> Duration {
    let code = totp(secret, 6, 30, step);
    let t = Instant::now();
    let mut c = Client::connect(&d.unix_url(), TIMEOUT).expect("PAM connects");
    let out = c
        .call(
            "auth.twofactor.pam_check",
            vec![json!(ADMIN.0), json!("sshd"), json!(rhost), json!(code)],
        )
        .expect("pam_check answers");
    let took = t.elapsed();
    assert_eq!(out["outcome"], "accepted", "{out}");
    took
}

/// Codes required for SSH logins too; the PAM-checked user's own secret
/// (SPEC 9.5: the code asked is the user's).
fn enable_for_ssh(d: &Daemon) -> String {
    let mut root = d.root();
    root.call(
        "auth.twofactor.update",
        vec![json!({"enabled": true, "window": 1, "services": {"ssh": true}})],
    )
    .expect("enable");
    own_secret(&mut root, ADMIN.0)
}

/// This test binary, copied where uid 65534 can run it.
fn helper_binary(f: &Fixture) -> PathBuf {
    let me = f.dir.path().join("e2e-flood-helper");
    std::fs::copy(std::env::current_exe().expect("the test binary"), &me)
        .expect("copy the test binary");
    std::fs::set_permissions(&me, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    me
}

/// A flood helper process, killed when dropped (also when the test fails).
struct Flood(Child);

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts [`flood_helper`] against `url`; returns once all its
/// connections have their 20 wrong logins in flight.
fn start_flood(mut cmd: Command, url: &str) -> Flood {
    cmd.args([
        "--exact",
        "hostile::flood_helper",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("TFA_FLOOD_URL", url)
    .env("HOME", "/")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let mut child = Flood(cmd.spawn().expect("start the flood helper"));
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("flooding") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the flood helper got its connections going");
    child
}

/// Run by the flood test as another process (as uid 65534 for the Unix
/// socket): 100 connections, each keeping 20 wrong `auth.login_ex` in
/// flight until the process is killed. Does nothing when run directly.
#[test]
#[ignore = "a helper that a_login_flood_stalls_neither_root_nor_pam runs"]
fn flood_helper() {
    let Ok(url) = std::env::var("TFA_FLOOD_URL") else {
        return;
    };
    let connections = 100;
    let ready = Arc::new(Barrier::new(connections + 1));
    for _ in 0..connections {
        let (url, ready) = (url.clone(), ready.clone());
        std::thread::spawn(move || flood_one(&url, &ready));
    }
    ready.wait();
    println!("flooding");
    let _ = std::io::stdout().flush();
    // Killed by the test when it is done.
    loop {
        std::thread::park();
    }
}

fn flood_connect(url: &str) -> Option<Client> {
    let mut c = Client::connect(url, TIMEOUT).ok()?;
    for _ in 0..20 {
        c.send_request("auth.login_ex", wrong_login()).ok()?;
    }
    Some(c)
}

fn flood_one(url: &str, ready: &Barrier) {
    let mut c = flood_connect(url);
    ready.wait();
    while let Some(conn) = c.as_mut() {
        match conn.read_raw() {
            // Each answer (AUTH_ERR, or EBUSY past a limit) is replaced by
            // a new attempt.
            Ok(Some(Frame::Text(_))) => {
                if conn.send_request("auth.login_ex", wrong_login()).is_err() {
                    c = flood_connect(url);
                }
            }
            Ok(Some(Frame::Binary(_)) | None) => {}
            Ok(Some(Frame::Close { .. })) | Err(_) => c = flood_connect(url),
        }
    }
}

/// Issue 7 item 1: 100 connections x 20 wrong logins in flight over the
/// Unix socket (as uid 65534) and 100 x 20 over TCP; meanwhile root's
/// calls on new connections and the PAM module's check are answered
/// promptly, the daemon stays small, and its log does not grow per attempt.
#[test]
fn a_login_flood_stalls_neither_root_nor_pam() {
    let Some(w) = need("pam_wrapper/nss_wrapper", Wrappers::find()) else {
        return;
    };
    if need("setpriv (util-linux)", setpriv()).is_none() || need("oathtool", oathtool()).is_none() {
        return;
    }
    let Some(pam_exec) = need("pam_exec.so (libpam-modules)", pam_exec_module()) else {
        return;
    };
    // Limits high enough that every attempt reaches PAM: what is tested is
    // the separate capacity, not the rate limit.
    let f = Fixture::new()
        .with_accounts(&w)
        .with_config("[limits]\nmax_connections_per_address = 256\nlogin_attempts = 10000000\n");
    // A PAM stack as slow as a real one (pam_unix hashes for tens of
    // milliseconds of CPU per check): each check first runs a process that
    // takes 100 ms.
    let service = f.dir.path().join("pam.d/twofactord");
    let text = std::fs::read_to_string(&service).expect("service file");
    std::fs::write(
        &service,
        format!(
            "auth requisite {} quiet /bin/sleep 0.1\n{text}",
            pam_exec.display()
        ),
    )
    .expect("service file");
    let d = f.start();
    let run_dir = f.socket.parent().expect("socket dir");
    std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let secret = enable_for_ssh(&d);
    let me = helper_binary(&f);

    let mut as_nobody = Command::new("setpriv");
    as_nobody.args(AS_NOBODY).arg(&me);
    let unix = start_flood(as_nobody, &d.unix_url());
    let tcp = start_flood(Command::new(&me), &d.tcp_url());
    let flood_started = Instant::now();

    let mut worst_config = Duration::ZERO;
    let mut worst_pam = pam_check(&d, &secret, 0, "192.0.2.1");
    let mut rounds = 0;
    while rounds < 5 || flood_started.elapsed() < Duration::from_secs(4) {
        worst_config = worst_config.max(root_config(&d));
        rounds += 1;
    }
    worst_pam = worst_pam.max(pam_check(&d, &secret, 1, "192.0.2.2"));
    let peak = peak_rss_kib(d.pid());
    drop(unix);
    drop(tcp);

    assert!(
        worst_config < PROMPT,
        "root's config took {worst_config:?} under the flood"
    );
    assert!(
        worst_pam < PROMPT,
        "the PAM check took {worst_pam:?} under the flood"
    );
    assert!(
        peak < 64 * 1024,
        "the daemon's RSS reached {} MiB",
        peak / 1024
    );

    // The flood was real: many failed logins, audited in bounded form.
    let mut root = d.root();
    let mut audit = |outcome: &str| {
        root.call(
            "audit.query",
            vec![json!({"event": "auth.login", "outcome": outcome, "limit": 10000})],
        )
        .expect("audit.query")
    };
    let rows = audit("wrong_password");
    let rows = rows.as_array().expect("rows");
    // Repeats beyond the audit's rate are counted in aggregated rows.
    let suppressed: u64 = rows
        .iter()
        .filter_map(|r| r["count"].as_u64())
        .map(|n| n.saturating_sub(1))
        .sum();
    let failed = rows.len() as u64 + suppressed;
    assert!(failed >= 50, "only {failed} failed logins: no flood?");
    let secs = flood_started.elapsed().as_secs() + 2;
    assert!(
        (rows.len() as u64) <= 10 * secs + 10,
        "{} failed-login rows in {secs} s",
        rows.len()
    );
    // One log line per failed login would be thousands.
    let log = d.log();
    let pam_lines = log.matches("PAM refused a login").count();
    eprintln!(
        "flood: {rounds} root calls, worst {worst_config:?}; PAM worst {worst_pam:?}; peak RSS \
         {} KiB; {failed} failed logins, {} audit rows, {pam_lines} log lines",
        peak,
        rows.len()
    );
    assert!(
        pam_lines <= 5 * (secs as usize / 10 + 2),
        "{pam_lines} 'PAM refused' lines for {failed} failed logins"
    );
}

/// The open-file limit the shipped unit sets.
fn unit_nofile() -> u64 {
    let unit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/twofactord.service"
    );
    let text = std::fs::read_to_string(unit).expect("the unit");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("LimitNOFILE="))
        .and_then(|v| v.trim().parse().ok())
        .expect("packaging/twofactord.service sets LimitNOFILE=")
}

/// Raises this process's soft open-file limit to at least `n`.
fn raise_own_nofile(n: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= n {
        return;
    }
    assert!(
        hard >= n,
        "this test needs {n} open files; the hard limit is {hard} (raise it, e.g. ulimit -Hn)"
    );
    setrlimit(Resource::RLIMIT_NOFILE, n, hard).expect("setrlimit");
}

fn prlimit() -> Result<(), String> {
    Command::new("prlimit")
        .arg("--version")
        .output()
        .map_err(|e| format!("prlimit: {e}"))
        .and_then(|o| {
            if o.status.success() {
                Ok(())
            } else {
                Err("prlimit --version failed".into())
            }
        })
}

/// The four slowloris kinds: nothing sent, a partial request line, headers
/// never ended, headers dripped (more bytes written by [`drip`]).
fn slowloris(addr: &str, kind: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let start: &[u8] = match kind % 4 {
        0 => b"",
        1 => b"GET /api/cur",
        2 => b"GET /api/current HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n",
        _ => b"GET /api/current HTTP/1.1\r\n",
    };
    s.write_all(start).expect("write");
    s
}

/// One more header byte on a dripping slowloris socket.
fn drip(s: &mut TcpStream, n: usize) {
    let header = b"X-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    // The daemon may have closed it already: that is fine.
    let _ = s.write_all(&header[n % header.len()..=n % header.len()]);
}

/// Issue 7 item 2: with the open-file limit the unit ships, 5,000 idle TCP
/// connections and 20 slowloris sockets do not stop root's calls or the
/// PAM check, and `accept` never runs out of descriptors.
#[test]
fn idle_connections_and_slowloris_stop_neither_root_nor_pam() {
    let Some(w) = need("pam_wrapper/nss_wrapper", Wrappers::find()) else {
        return;
    };
    if need("oathtool", oathtool()).is_none() || need("prlimit (util-linux)", prlimit()).is_none() {
        return;
    }
    let idle = 5000;
    raise_own_nofile(idle + 1024);
    let f = Fixture::new().with_accounts(&w).with_nofile(unit_nofile());
    let d = f.start();
    let secret = enable_for_ssh(&d);
    let addr = d.tcp_addr().to_owned();
    let mut slow: Vec<TcpStream> = (0..20).map(|k| slowloris(&addr, k)).collect();
    let held: Vec<TcpStream> = (0..idle)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();

    let mut worst_config = Duration::ZERO;
    let mut worst_pam = pam_check(&d, &secret, 0, "192.0.2.3");
    for round in 0..10 {
        for s in slow.iter_mut().skip(3).step_by(4) {
            drip(s, round);
        }
        worst_config = worst_config.max(root_config(&d));
    }
    worst_pam = worst_pam.max(pam_check(&d, &secret, 1, "192.0.2.4"));
    assert!(
        worst_config < PROMPT,
        "root's config took {worst_config:?} with {idle} idle connections"
    );
    assert!(
        worst_pam < PROMPT,
        "the PAM check took {worst_pam:?} with {idle} idle connections"
    );
    eprintln!("idle: worst config {worst_config:?}, worst PAM {worst_pam:?}");
    let log = d.log();
    assert!(
        !log.contains("accept failed"),
        "accept ran out of something:\n{log}"
    );
    drop(held);
}

/// Reads until the peer closes (EOF or reset), writing one more dripped
/// byte whenever nothing comes for a moment; how long that took, or
/// `None` if it stayed open for [`CLOSE_WITHIN`].
fn wait_closed(mut s: TcpStream, dripping: bool) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    let mut n = 0;
    while start.elapsed() < CLOSE_WITHIN {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if dripping {
                    drip(&mut s, n);
                    n += 1;
                }
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// Issue 7 item 2: connections that do not finish their upgrade within
/// `handshake_timeout_secs`, and WebSocket connections that do not log in
/// within `login_timeout_secs`, are closed (small settings through the
/// configuration file; the close is observed, not waited for by sleeping).
/// Root's connection, logged in from the start, stays.
#[test]
fn handshakes_and_logins_have_time_limits() {
    let f = Fixture::new()
        .with_config("[limits]\nhandshake_timeout_secs = 1\nlogin_timeout_secs = 2\n");
    let d = f.start();
    let mut root = d.root();
    let addr = d.tcp_addr().to_owned();
    let slow: Vec<TcpStream> = (0..4).map(|k| slowloris(&addr, k)).collect();
    let mut anonymous = d.tcp();
    assert_eq!(anonymous.call("core.ping", vec![]).unwrap(), "pong");
    for (kind, s) in slow.into_iter().enumerate() {
        let took = wait_closed(s, kind == 3);
        assert!(
            took.is_some(),
            "slowloris kind {kind} was still open after {CLOSE_WITHIN:?}"
        );
    }
    anonymous.set_timeout(CLOSE_WITHIN);
    let frame = loop {
        match anonymous.read_raw() {
            Ok(Some(Frame::Close { code, reason })) => break (code, reason),
            Ok(Some(_)) => {}
            other => panic!("no close frame for an idle anonymous connection: {other:?}"),
        }
    };
    assert_eq!(frame, (1008, "Login timeout".to_owned()));
    assert_eq!(root.call("core.ping", vec![]).unwrap(), "pong");
}

/// Runs a daemon that is expected to exit at once; its status and
/// standard error. One that keeps running is killed after 30 s, and the
/// test fails.
fn run_bounded(mut cmd: Command) -> (std::process::ExitStatus, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run twofactord");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(text) => (child.wait().expect("wait"), text),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("twofactord kept running; it should have refused to start");
        }
    }
}

/// The configuration's caps must fit under the open-file limit: a daemon
/// whose caps cannot refuses to start and says which keys.
#[test]
fn caps_that_do_not_fit_the_open_file_limit_are_refused() {
    if need("prlimit (util-linux)", prlimit()).is_none() {
        return;
    }
    let f = Fixture::new().with_nofile(1024);
    let (status, err) = run_bounded(f.command());
    assert!(!status.success(), "started with 1024 files: {err}");
    assert!(
        err.contains("max_connections") && err.contains("LimitNOFILE"),
        "{err}"
    );
    assert!(!f.socket.exists(), "a socket file was left behind");
    // Caps that fit start.
    let f = Fixture::new()
        .with_config("[limits]\nmax_connections = 256\n")
        .with_nofile(1024);
    let d = f.start();
    assert_eq!(d.root().call("core.ping", vec![]).unwrap(), "pong");
}

/// Issue 7 item 7: 20 unauthenticated `auth.login_ex` per address per
/// minute; then `Rate Limit Exceeded`, EBUSY.
#[test]
fn login_attempts_per_address_are_limited() {
    let Some(w) = need("pam_wrapper/nss_wrapper", Wrappers::find()) else {
        return;
    };
    let f = Fixture::new().with_accounts(&w);
    let d = f.start();
    let mut conns: Vec<(Client, Vec<u64>)> = (0..2)
        .map(|_| {
            let mut c = d.tcp();
            let ids = (0..15)
                .map(|_| {
                    c.send_request("auth.login_ex", wrong_login())
                        .expect("send")
                })
                .collect();
            (c, ids)
        })
        .collect();
    let (mut refused, mut failed) = (0, 0);
    for (c, ids) in &mut conns {
        for id in ids.iter() {
            if rate_limited(c.wait_response(*id)) {
                refused += 1;
            } else {
                failed += 1;
            }
        }
    }
    assert_eq!((failed, refused), (20, 10));
    // Even the right password, from that address, within the minute.
    let mut c = d.tcp();
    let e = c
        .call(
            "auth.login_ex",
            vec![json!({"mechanism": "PASSWORD_PLAIN", "username": ADMIN.0, "password": ADMIN.1})],
        )
        .unwrap_err();
    assert!(e.to_string().contains("Rate Limit Exceeded"), "{e}");
    // Root is not limited.
    assert_eq!(d.root().call("core.ping", vec![]).unwrap(), "pong");
}

/// A raw WebSocket over TCP, upgraded by hand, for frames no client sends.
fn raw_websocket(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(
        b"GET /api/current HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .expect("upgrade request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("upgrade answer");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// A client frame: FIN, `opcode`, masked (or not) `payload`.
fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => f.push(mask_bit | u8::try_from(n).unwrap_or(0)),
        n => {
            f.push(mask_bit | 126);
            f.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// The close code of the first frame the server sends (it must be a close
/// frame, not a bare TCP close).
fn close_code(s: &mut TcpStream) -> u16 {
    let mut head = [0u8; 2];
    s.read_exact(&mut head)
        .expect("a close frame, not a bare close");
    assert_eq!(head[0], 0x88, "a final close frame: {head:?}");
    let len = usize::from(head[1] & 0x7f);
    assert!(len >= 2, "a close frame with a code");
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).expect("close payload");
    u16::from_be_bytes([payload[0], payload[1]])
}

/// Issue 7 item 12: protocol errors end with a close frame (1002, 1007 for
/// text that is not UTF-8).
#[test]
fn websocket_protocol_errors_get_close_codes() {
    let f = Fixture::new();
    let d = f.start();
    let cases: [(&str, Vec<u8>, u16); 4] = [
        (
            "non-UTF-8 text",
            frame(0x1, &[0x7b, 0xff, 0xfe, 0x7d], true),
            1007,
        ),
        ("unknown opcode", frame(0x3, b"{}", true), 1002),
        ("unmasked frame", frame(0x1, b"{}", false), 1002),
        ("200-byte ping", frame(0x9, &[b'p'; 200], true), 1002),
    ];
    for (what, bytes, want) in cases {
        let mut s = raw_websocket(d.tcp_addr());
        s.write_all(&bytes).expect("send");
        assert_eq!(close_code(&mut s), want, "{what}");
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// Issue 7 item 14: a start that fails on the TCP address leaves no Unix
/// socket file behind.
#[test]
fn a_failed_tcp_bind_leaves_no_socket_file() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let f = Fixture::new();
    let empty = f.dir.path().join("empty.toml");
    std::fs::write(&empty, "").expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_twofactord"));
    cmd.arg("--state-dir")
        .arg(&f.state)
        .arg("--socket")
        .arg(&f.socket)
        .args(["--listen", &addr])
        .arg("--config")
        .arg(&empty)
        .env_remove("JOURNAL_STREAM");
    let (status, err) = run_bounded(cmd);
    assert!(!status.success(), "{err}");
    assert!(err.contains("cannot listen on TCP address"), "{err}");
    assert!(
        !Path::new(&f.socket).exists(),
        "the socket file was left behind"
    );
    drop(taken);
}

/// SPEC §11: the outgoing queue is bounded — a peer that sends calls but
/// never reads the answers is dropped after `send_timeout_secs`, not
/// buffered for without end.
#[test]
fn a_peer_that_does_not_read_is_dropped() {
    let f = Fixture::new().with_config("[limits]\nsend_timeout_secs = 1\n");
    let mut d = f.start();
    let mut c = d.root();
    // Large answers, never read; the sender stops when the daemon has
    // stopped reading too, or the connection is gone.
    let sender = std::thread::spawn(move || {
        for _ in 0..100_000 {
            if c.send_request("core.get_methods", vec![]).is_err() {
                break;
            }
        }
    });
    d.wait_for_line("a peer that does not read was dropped", CLOSE_WITHIN);
    sender
        .join()
        .expect("the sender ends once the connection is gone");
    assert_eq!(d.root().call("core.ping", vec![]).unwrap(), "pong");
}
