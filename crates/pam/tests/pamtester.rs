//! The module loaded by real libpam (through pam_wrapper, so the machine's
//! /etc/pam.d is never read or changed) and driven by pamtester, against a
//! real twofactord. pam_matrix checks the password first, as common-auth
//! would; the module then asks for the code.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Daemon, Dialogue, PamServices, Tool, converse, have_tools};
use serde_json::json;

const USER: &str = "alice";
const PASSWORD: &str = "alice-password";
const RHOST: &str = "192.0.2.9";
/// The module's `timeout=` in these tests.
const TIMEOUT: Duration = Duration::from_secs(2);
/// What the elapsed time may exceed the time-out by (process start-up,
/// pam_wrapper copying libpam, the password step): generous, for two
/// shared cores, yet far below what a broken time-out takes (a frozen
/// daemon holds the login for ever, a dripping one for a minute).
const MARGIN: Duration = Duration::from_secs(15);

fn tools() -> bool {
    have_tools(
        "pamtester tests",
        &[
            Tool::Root,
            Tool::Pamtester,
            Tool::PamWrapper,
            Tool::NssWrapper,
            Tool::Oathtool,
        ],
    )
}

/// A temporary directory with a daemon, and PAM services `sshd` (our
/// module, fail closed), `sshd-ignore` (our module, unreachable=ignore),
/// `login` (our module; not an SSH service for the daemon) and
/// `sshd-debug` (our module with `debug`).
struct Setup {
    dir: tempfile::TempDir,
    daemon: Daemon,
    pam: PamServices,
}

impl Setup {
    fn new(daemon_config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::start(dir.path(), daemon_config);
        let services = ["sshd", "sshd-ignore", "login", "sshd-debug"];
        let pam = PamServices::new(dir.path(), &[(USER, PASSWORD)], &services);
        let args = format!(
            "socket={} timeout={}",
            daemon.socket.display(),
            TIMEOUT.as_secs()
        );
        pam.write("sshd", Some(&args));
        pam.write("login", Some(&args));
        pam.write("sshd-ignore", Some(&format!("{args} unreachable=ignore")));
        pam.write("sshd-debug", Some(&format!("{args} debug")));
        Self { dir, daemon, pam }
    }

    /// `pamtester SERVICE alice authenticate` with PAM_RHOST set, typing
    /// the password and then `code` when asked.
    fn login(&self, service: &str, code: &str) -> Dialogue {
        self.login_with(service, code, &[])
    }

    fn login_with(&self, service: &str, code: &str, env: &[(&str, &str)]) -> Dialogue {
        let mut cmd = rhost_login_command(&self.pam, service);
        cmd.envs(env.iter().copied()).current_dir(self.dir.path());
        converse_login(cmd, code)
    }
}

/// `pamtester -v -I rhost=RHOST SERVICE alice authenticate` in `pam`'s
/// environment.
fn rhost_login_command(pam: &PamServices, service: &str) -> Command {
    let mut cmd = Command::new("pamtester");
    cmd.args([
        "-v",
        "-I",
        &format!("rhost={RHOST}"),
        service,
        USER,
        "authenticate",
    ]);
    cmd.envs(pam.env());
    cmd
}

/// Runs a login, typing the password and then `code` when asked.
fn converse_login(cmd: Command, code: &str) -> Dialogue {
    converse(
        cmd,
        &[("Password: ", PASSWORD), ("Verification code: ", code)],
        Duration::from_secs(30),
    )
}

fn default_config() -> &'static str {
    "ssh_pam_services = [\"sshd\", \"sshd-ignore\", \"sshd-debug\"]\n"
}

fn assert_success(d: &Dialogue) {
    assert!(d.status.success(), "expected success: {d:#?}");
    assert!(d.stdout.contains("successfully authenticated"), "{d:#?}");
}

fn assert_failure(d: &Dialogue) {
    assert!(!d.status.success(), "expected failure: {d:#?}");
    assert!(
        d.stderr.contains("Authentication failure") || d.stdout.contains("Authentication failure"),
        "{d:#?}"
    );
}

#[test]
fn right_code_is_accepted_once_and_a_replay_is_refused() {
    if !tools() {
        return;
    }
    let s = Setup::new(default_config());
    let entry = s.daemon.enable(30);
    let code = entry.code();
    let first = s.login("sshd", &code);
    assert_success(&first);
    assert_eq!(first.prompts, ["Password: ", "Verification code: "]);

    let again = s.login("sshd", &code);
    assert_failure(&again);
    assert!(again.asked_for_code());
    let replayed = s
        .daemon
        .audit(json!({"event": "otp.check", "outcome": "replayed"}));
    assert_eq!(replayed.len(), 1, "{replayed:#?}");
    let accepted = s
        .daemon
        .audit(json!({"event": "otp.check", "outcome": "accepted"}));
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    assert_eq!(accepted[0]["service"], "pam:sshd");
}

#[test]
fn wrong_code_fails_and_is_audited_with_service_and_rhost() {
    if !tools() {
        return;
    }
    let s = Setup::new(default_config());
    let entry = s.daemon.enable(30);
    let wrong = entry.wrong_code();
    let d = s.login("sshd", &wrong);
    assert_failure(&d);
    assert!(d.asked_for_code());
    let rows = s
        .daemon
        .audit(json!({"event": "otp.check", "outcome": "wrong"}));
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let r = &rows[0];
    assert_eq!(r["service"], "pam:sshd", "{r:#}");
    assert_eq!(r["user"], USER, "{r:#}");
    assert!(r["origin"].as_str().unwrap().contains(RHOST), "{r:#}");
    // The code typed is in no record and no log line.
    let all = s.daemon.audit(json!({}));
    assert!(!serde_json::to_string(&all).unwrap().contains(&wrong));
    assert!(!s.daemon.log.text().contains(&wrong));
}

/// A code typed as apps show it (`447 862`) is the code; one that is not
/// six digits is refused with what was expected, audited as malformed and
/// not counted towards a lock-out.
#[test]
fn spaced_codes_are_accepted_and_malformed_ones_are_explained() {
    if !tools() {
        return;
    }
    let config = format!("{}[rate_limit]\nmax_failures = 2\n", default_config());
    let s = Setup::new(&config);
    let entry = s.daemon.enable(30);
    // Three malformed answers, more than max_failures: no lock-out.
    for typed in ["1234567", "12345a", "12 34"] {
        let d = s.login("sshd", typed);
        assert_failure(&d);
        assert!(d.stderr.contains("expected 6 digits"), "{typed}: {d:#?}");
    }
    let malformed = s
        .daemon
        .audit(json!({"event": "otp.check", "outcome": "malformed"}));
    assert_eq!(malformed.len(), 3, "{malformed:#?}");
    let code = entry.code();
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let d = s.login("sshd", &spaced);
    assert_success(&d);
}

#[test]
fn interval_45_works() {
    if !tools() {
        return;
    }
    let s = Setup::new(default_config());
    let entry = s.daemon.enable(45);
    assert_eq!(entry.interval, 45);
    let d = s.login("sshd", &entry.code());
    assert_success(&d);
    assert!(d.asked_for_code());
    // A code made by an app that assumed 30 s steps is refused.
    let thirty = common::Entry {
        interval: 30,
        ..entry.clone()
    };
    let d = s.login("sshd", &thirty.code());
    assert_failure(&d);
}

#[test]
fn eight_digit_codes_work() {
    if !tools() {
        return;
    }
    let s = Setup::new(default_config());
    s.daemon.enable(30);
    let entry = s.daemon.configure(json!({"otp_digits": 8}));
    assert_eq!(entry.digits, 8);
    let d = s.login("sshd", &entry.code());
    assert_success(&d);
}

#[test]
fn no_prompt_when_2fa_or_ssh_is_off() {
    if !tools() {
        return;
    }
    let s = Setup::new(default_config());
    // Fresh state: 2FA disabled.
    let d = s.login("sshd", "000000");
    assert_success(&d);
    assert_eq!(d.prompts, ["Password: "], "{d:#?}");

    // Enabled, but not for SSH.
    s.daemon
        .configure(json!({"enabled": true, "services": {"ssh": false}}));
    let d = s.login("sshd", "000000");
    assert_success(&d);
    assert_eq!(d.prompts, ["Password: "], "{d:#?}");

    // SSH on, 2FA off again (the documented lock-out recovery).
    s.daemon
        .configure(json!({"enabled": false, "services": {"ssh": true}}));
    let d = s.login("sshd", "000000");
    assert_success(&d);
    assert_eq!(d.prompts, ["Password: "], "{d:#?}");

    // The password still decides.
    let mut cmd = Command::new("pamtester");
    cmd.args(["sshd", USER, "authenticate"]).envs(s.pam.env());
    let d = converse(
        cmd,
        &[("Password: ", "not-the-password")],
        Duration::from_secs(30),
    );
    assert!(!d.status.success(), "{d:#?}");
}

#[test]
fn a_pam_service_not_counted_as_ssh_is_not_asked() {
    if !tools() {
        return;
    }
    let s = Setup::new(default_config());
    s.daemon.enable(30);
    let d = s.login("login", "000000");
    assert_success(&d);
    assert_eq!(d.prompts, ["Password: "], "{d:#?}");
}

#[test]
fn stopped_daemon_fails_closed_within_the_timeout() {
    if !tools() {
        return;
    }
    let mut s = Setup::new(default_config());
    let entry = s.daemon.enable(30);
    s.daemon.kill();
    let d = s.login("sshd", &entry.code());
    eprintln!("stopped daemon: failed after {:?}", d.elapsed);
    assert_failure(&d);
    assert!(!d.asked_for_code(), "{d:#?}");
    assert!(d.elapsed < TIMEOUT + MARGIN, "took {:?}", d.elapsed);
    // The user is told, not only syslog.
    assert!(
        d.stderr
            .contains("two-factor service unavailable; ask an administrator"),
        "{d:#?}"
    );

    // unreachable=ignore: the password alone decides.
    let d = s.login("sshd-ignore", &entry.code());
    assert_success(&d);
    assert_eq!(d.prompts, ["Password: "], "{d:#?}");
}

#[test]
fn frozen_daemon_fails_closed_within_the_timeout() {
    if !tools() {
        return;
    }
    let s = Setup::new(default_config());
    let entry = s.daemon.enable(30);
    // SIGSTOP: connections are accepted by the kernel, nothing answers.
    s.daemon.freeze();
    let d = s.login("sshd", &entry.code());
    eprintln!(
        "frozen daemon: failed after {:?} (timeout={TIMEOUT:?})",
        d.elapsed
    );
    assert_failure(&d);
    assert!(!d.asked_for_code(), "{d:#?}");
    assert!(d.elapsed < TIMEOUT + MARGIN, "took {:?}", d.elapsed);
    assert!(
        d.elapsed >= TIMEOUT,
        "failed before the time-out ({:?}): was the daemon asked?",
        d.elapsed
    );

    let d = s.login("sshd-ignore", &entry.code());
    eprintln!(
        "frozen daemon, unreachable=ignore: fell through after {:?}",
        d.elapsed
    );
    assert_success(&d);
    assert_eq!(d.prompts, ["Password: "], "{d:#?}");
    assert!(d.elapsed < TIMEOUT + MARGIN, "took {:?}", d.elapsed);
}

#[test]
fn lock_out_is_reported_through_the_conversation() {
    if !tools() {
        return;
    }
    let config = format!(
        "{}[rate_limit]\nmax_failures = 2\ninitial_backoff_secs = 30\n",
        default_config()
    );
    let s = Setup::new(&config);
    let entry = s.daemon.enable(30);
    for _ in 0..2 {
        assert_failure(&s.login("sshd", &entry.wrong_code()));
    }
    // Locked out: even the right code fails, and the user is told why.
    let d = s.login("sshd", &entry.code());
    assert_failure(&d);
    assert!(
        d.stderr.contains("Too many failed attempts; try again in "),
        "{d:#?}"
    );
    let rows = s
        .daemon
        .audit(json!({"event": "otp.check", "outcome": "locked_out"}));
    assert_eq!(rows.len(), 1, "{rows:#?}");
}

#[test]
fn debug_logs_outcomes_but_never_the_code() {
    if !tools() {
        return;
    }
    let s = Setup::new(default_config());
    let entry = s.daemon.enable(30);
    let wrong = entry.wrong_code();
    // pam_wrapper prints what modules send to syslog at its debug level.
    let d = s.login_with("sshd-debug", &wrong, &[("PAM_WRAPPER_DEBUGLEVEL", "3")]);
    assert_failure(&d);
    assert!(d.stderr.contains("code Wrong"), "{d:#?}");
    assert!(d.stderr.contains(&format!("rhost=\"{RHOST}\"")), "{d:#?}");
    assert!(!d.stderr.contains(&wrong), "{d:#?}");
}

#[test]
fn bad_module_options_fail_closed() {
    if !tools() {
        return;
    }
    let s = Setup::new(default_config());
    s.daemon.enable(30);
    // A misspelt option keeps the defaults: the default socket, fail closed.
    s.pam.write(
        "sshd",
        Some("socket=/nonexistent/twofactord.sock unreachable=ingore timeout=1"),
    );
    let d = s.login("sshd", "000000");
    assert_failure(&d);
    assert!(!d.asked_for_code());
}

#[test]
fn key_plus_code_stack_asks_only_the_code_and_passes_when_off() {
    if !tools() {
        return;
    }
    let s = Setup::new(default_config());
    s.pam.write_key_only(
        "sshd",
        &format!("socket={} timeout=2", s.daemon.socket.display()),
    );
    // 2FA off: the module ignores, pam_permit lets the (key-authenticated) user in.
    let d = s.login("sshd", "000000");
    assert_success(&d);
    assert!(d.prompts.is_empty(), "{d:#?}");

    let entry = s.daemon.enable(30);
    let d = s.login("sshd", &entry.wrong_code());
    assert_failure(&d);
    assert_eq!(d.prompts, ["Verification code: "], "{d:#?}");
    let d = s.login("sshd", &entry.code());
    assert_success(&d);
    assert_eq!(d.prompts, ["Verification code: "], "{d:#?}");

    // The daemon gone: fail closed, pam_permit does not open the door.
    let mut s = s;
    s.daemon.kill();
    assert_failure(&s.login("sshd", &entry.code_at(1)));
}

/// A "daemon" that accepts, reads the upgrade request and answers it one
/// byte every 100 ms, for each connection, until the peer goes away (at
/// most a minute per connection).
fn dripping_socket(path: &std::path::Path) {
    use std::io::{Read, Write};
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let _ = stream.read(&mut [0u8; 4096]);
                let mut answer = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
                answer.extend(std::iter::repeat_n(b'x', 600));
                for b in answer {
                    if stream.write_all(&[b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    });
}

/// `timeout=` bounds the whole exchange with the daemon: one that drips
/// its bytes held pamtester 19-95 s with timeout=2 (the time-out applied to
/// each read). Now the login fails closed at the time-out without a
/// prompt, and `unreachable=ignore` falls through as promptly.
#[test]
fn dripping_daemon_fails_closed_at_the_timeout() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("drip.sock");
    dripping_socket(&socket);
    let pam = PamServices::new(dir.path(), &[(USER, PASSWORD)], &["sshd", "sshd-ignore"]);
    let args = format!("socket={} timeout={}", socket.display(), TIMEOUT.as_secs());
    pam.write("sshd", Some(&args));
    pam.write("sshd-ignore", Some(&format!("{args} unreachable=ignore")));
    let login = |service: &str| {
        let mut cmd = rhost_login_command(&pam, service);
        cmd.current_dir(dir.path());
        converse_login(cmd, "123456")
    };

    let d = login("sshd");
    eprintln!(
        "dripping daemon: failed after {:?} (timeout={TIMEOUT:?})",
        d.elapsed
    );
    assert_failure(&d);
    assert!(!d.asked_for_code(), "{d:#?}");
    assert!(
        d.elapsed >= TIMEOUT,
        "failed before the time-out: {:?}",
        d.elapsed
    );
    assert!(d.elapsed < TIMEOUT + MARGIN, "took {:?}", d.elapsed);

    let d = login("sshd-ignore");
    assert_success(&d);
    assert_eq!(d.prompts, ["Password: "], "{d:#?}");
    assert!(d.elapsed < TIMEOUT + MARGIN, "took {:?}", d.elapsed);
}

#[path = "../../store/tests/pgcluster/mod.rs"]
mod pgcluster;

/// On a daemon whose state is a shared PostgreSQL database: while the
/// database is stopped a login with a right code fails closed (with
/// `unreachable=ignore` too: the daemon answers, with an error), and once
/// it is back the same code logs in, without restarting the daemon.
#[test]
fn with_the_shared_database_lost_logins_fail_closed_until_it_returns() {
    if !tools() {
        return;
    }
    let cluster = pgcluster::Cluster::start(&pgcluster::Setup::default());
    let url = cluster.url(&cluster.fresh_db());
    let s = Setup::new(&format!(
        "{}[database]\nurl = \"{url}\"\nstatement_timeout_ms = 1000\n",
        default_config()
    ));
    let entry = s.daemon.enable(30);
    cluster.stop_server();
    for service in ["sshd", "sshd-ignore"] {
        let d = s.login(service, &entry.code());
        assert_failure(&d);
    }
    cluster.start_server();
    let back = std::time::Instant::now();
    while s
        .daemon
        .client()
        .call("auth.twofactor.config", vec![])
        .is_err()
    {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "the daemon does not serve 10 s after the database returned"
        );
        std::thread::yield_now();
    }
    assert_success(&s.login("sshd", &entry.code()));
}

/// A state written before per-user secrets (the store's `main-v2` fixture:
/// 2FA on, one system secret, now root's) keeps asking every SSH login for
/// that code: alice, who has no secret of her own, is asked for root's
/// code (`legacy_shared_code`), each use audited, until an administrator
/// ends the mode. The daemon says so when it starts.
#[test]
fn an_upgraded_single_secret_state_asks_accounts_without_a_secret_for_roots_code() {
    use std::os::unix::fs::PermissionsExt;
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures/main-v2");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    for name in ["twofactor.db", "secret.key"] {
        std::fs::copy(fixture.join(name), state.join(name)).unwrap();
        std::fs::set_permissions(state.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let daemon = Daemon::start(dir.path(), default_config());
    assert!(
        daemon.log.text().contains("legacy_shared_code is on"),
        "{}",
        daemon.log.text()
    );
    let pam = PamServices::new(dir.path(), &[(USER, PASSWORD)], &["sshd"]);
    pam.write(
        "sshd",
        Some(&format!(
            "socket={} timeout={}",
            daemon.socket.display(),
            TIMEOUT.as_secs()
        )),
    );
    daemon.call(
        "auth.twofactor.update",
        vec![json!({"services": {"ssh": true}, "window": 1})],
    );
    assert_eq!(
        daemon.call("auth.twofactor.legacy_shared_code", vec![]),
        json!(true)
    );
    let config = daemon.call("auth.twofactor.config", vec![]);
    let root = common::Entry {
        secret: config["secret"].as_str().map(str::to_owned),
        interval: config["interval"].as_u64().unwrap(),
        digits: config["otp_digits"].as_u64().unwrap(),
    };
    let login = |code: &str| {
        let mut cmd = rhost_login_command(&pam, "sshd");
        cmd.current_dir(dir.path());
        converse_login(cmd, code)
    };
    let wrong = login(&root.wrong_code());
    assert_failure(&wrong);
    assert!(wrong.asked_for_code());
    let right = login(&root.code());
    assert_success(&right);
    // (The fixture holds main's own accepted check, by root.)
    let used: Vec<_> = daemon
        .audit(json!({"event": "otp.check", "outcome": "accepted"}))
        .into_iter()
        .filter(|r| r["user"] == USER)
        .collect();
    assert_eq!(used.len(), 1, "{used:#?}");
    assert_eq!(used[0]["detail"]["legacy_shared_code"], true, "{used:#?}");

    // Ended by an administrator: alice has no secret, so no code.
    assert_eq!(
        daemon.call("auth.twofactor.end_legacy_shared_code", vec![]),
        json!(true)
    );
    let ended = daemon.audit(json!({"event": "twofactor.end_legacy_shared_code"}));
    assert_eq!(ended.len(), 1, "{ended:#?}");
    let after = login("");
    assert_success(&after);
    assert!(!after.asked_for_code(), "{after:#?}");
}
