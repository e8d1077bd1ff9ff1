//! A real OpenSSH login end to end: the machine's sshd binary, with a
//! configuration of the test's own on a free loopback port, loading the
//! module through libpam, and a scripted keyboard-interactive client
//! (paramiko) typing the password and the code.
//!
//! The machine is left as it was found: the PAM services come from
//! pam_wrapper (a service directory in the temporary directory), the test
//! account `tfauser` and the privilege-separation user from nss_wrapper
//! (passwd and group files in the temporary directory). The one thing
//! outside the temporary directory is sshd's compiled-in privilege
//! separation directory /run/sshd, created (empty, root, 0755) when
//! missing, as the system's own sshd unit would.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::{Daemon, PamServices, Tool, have_tools, library};
use serde_json::{Value, json};

const USER: &str = "tfauser";
const UID: u32 = 4242;
const PASSWORD: &str = "tfauser-password";

/// The client: the key first when given one, then keyboard-interactive,
/// answering the password prompt and the code prompt, then `echo ok`.
/// Prints what happened as JSON.
const CLIENT: &str = r#"
import json, socket, sys
import paramiko

host, port, user, password, code = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
key = sys.argv[6] if len(sys.argv) > 6 else None
result = {"prompts": [], "authenticated": False, "after_key": None, "output": None, "exit": None, "error": None}

def handler(title, instructions, prompt_list):
    answers = []
    for text, echo in prompt_list:
        result["prompts"].append(text)
        if "Verification code" in text:
            answers.append(code)
        elif "assword" in text:
            answers.append(password)
        else:
            answers.append("")
    return answers

sock = socket.create_connection((host, port), timeout=30)
t = paramiko.Transport(sock)
t.banner_timeout = 30
t.auth_timeout = 30
try:
    # The host key is the test's own throw-away key: not checked.
    t.start_client(timeout=30)
    if key:
        # Partial success: the methods still needed.
        result["after_key"] = t.auth_publickey(user, paramiko.Ed25519Key.from_private_key_file(key))
    t.auth_interactive(user, handler)
    result["authenticated"] = t.is_authenticated()
    ch = t.open_session(timeout=30)
    ch.exec_command("echo ok")
    out = b""
    while True:
        data = ch.recv(4096)
        if not data:
            break
        out += data
    result["output"] = out.decode()
    result["exit"] = ch.recv_exit_status()
except paramiko.AuthenticationException as e:
    result["error"] = "authentication failed: %s" % e
except Exception as e:
    result["error"] = "%s: %s" % (type(e).__name__, e)
finally:
    t.close()
print(json.dumps(result))
"#;

fn tools() -> bool {
    have_tools(
        "sshd test",
        &[
            Tool::Root,
            Tool::Sshd,
            Tool::Paramiko,
            Tool::PamWrapper,
            Tool::NssWrapper,
            Tool::Oathtool,
        ],
    )
}

/// sshd under pam_wrapper and nss_wrapper, on a free port.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
    /// One sshd at a time in this binary (see [`ONE_SSHD`]).
    _alone: MutexGuard<'static, ()>,
}

/// pam_wrapper gives each process it starts in a copy of its PAM services
/// in a directory chosen from a few dozen fixed names under /tmp, and
/// removes the ones whose recorded process has exited, whoever made them.
/// sshd forks and re-executes itself for every connection, so two sshds of
/// concurrent tests churn through those names together, and a login could
/// read the other test's stack (the rare "logged in on the password alone"
/// and "five wrong codes counted as four" failures seen in CI). The tests
/// that start sshd therefore run one at a time; each holds this lock for
/// as long as its sshd lives.
static ONE_SSHD: Mutex<()> = Mutex::new(());

impl Sshd {
    /// `methods` is sshd's `AuthenticationMethods`.
    fn start(dir: &Path, pam: &PamServices, methods: &str) -> Self {
        ensure_privsep_dir();
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(UID), Some(UID)).unwrap();
        // The session runs as tfauser: it must reach its home.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();

        let (privsep_uid, privsep_gid) = privsep_ids();
        let passwd = dir.join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "root:x:0:0:root:/root:/bin/sh\n\
                 sshd:x:{privsep_uid}:{privsep_gid}::/run/sshd:/usr/sbin/nologin\n\
                 {USER}:x:{UID}:{UID}:twofactor test:{home}:/bin/sh\n\
                 alice:x:2001:2001:alice:{home}:/bin/sh\n\
                 bob:x:2002:2002:bob:{home}:/bin/sh\n",
                home = home.display()
            ),
        )
        .unwrap();
        let group = dir.join("group");
        std::fs::write(
            &group,
            format!("root:x:0:\nnogroup:x:65534:\n{USER}:x:{UID}:\nalice:x:2001:\nbob:x:2002:\n"),
        )
        .unwrap();

        let key = dir.join("ssh_host_ed25519_key");
        keygen(&key);

        let alone = ONE_SSHD.lock().unwrap_or_else(PoisonError::into_inner);
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {key}\n\
                 PidFile {pid}\n\
                 UsePAM yes\n\
                 KbdInteractiveAuthentication yes\n\
                 PasswordAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 AuthenticationMethods {methods}\n\
                 AuthorizedKeysFile %h/.ssh/authorized_keys\n\
                 PermitRootLogin no\n\
                 StrictModes no\n\
                 UseDNS no\n\
                 LogLevel DEBUG3\n",
                key = key.display(),
                pid = dir.join("sshd.pid").display(),
            ),
        )
        .unwrap();

        let log = dir.join("sshd.log");
        let preload = [
            library("libpam_wrapper.so").unwrap(),
            library("libnss_wrapper.so").unwrap(),
        ]
        .map(|p| p.display().to_string())
        .join(":");
        let mut env: Vec<(String, String)> = pam
            .env()
            .into_iter()
            .filter(|(k, _)| k != "LD_PRELOAD")
            .collect();
        env.extend([
            ("LD_PRELOAD".into(), preload),
            ("NSS_WRAPPER_PASSWD".into(), passwd.display().to_string()),
            ("NSS_WRAPPER_GROUP".into(), group.display().to_string()),
            ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ]);
        // Readiness: sshd tells the service manager it is listening
        // (sd_notify READY=1 to $NOTIFY_SOCKET); the test is that manager.
        let notify_path = dir.join("sshd-notify.sock");
        let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
        env.push(("NOTIFY_SOCKET".into(), notify_path.display().to_string()));
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-E"])
            .arg(&log)
            .arg("-f")
            .arg(&config)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        let mut sshd = Self {
            child,
            port,
            log,
            _alone: alone,
        };
        // A generous bound on the wait for the event: sshd starts in
        // milliseconds; this only stops a test that would otherwise hang.
        notify
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match notify.recv(&mut buf) {
                Ok(n)
                    if String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .any(|l| l == "READY=1") =>
                {
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    let status = sshd.child.try_wait();
                    panic!(
                        "sshd never said READY=1 ({e}; exit status {status:?}):\n{}",
                        sshd.log_text()
                    );
                }
            }
        }
        let listening = format!("Server listening on 127.0.0.1 port {port}");
        assert!(sshd.log_text().contains(&listening), "{}", sshd.log_text());
        sshd
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Logs in with paramiko, answering `code` to the code prompt.
    fn login(&self, dir: &Path, code: &str) -> Value {
        self.login_with_key(dir, code, None)
    }

    /// Logs in with the key first (when given), then as [`Sshd::login`].
    fn login_with_key(&self, dir: &Path, code: &str, key: Option<&Path>) -> Value {
        self.login_as(dir, (USER, PASSWORD), code, key)
    }

    /// Logs in as `who` (name, password), answering `code` to the code
    /// prompt.
    fn login_as(&self, dir: &Path, who: (&str, &str), code: &str, key: Option<&Path>) -> Value {
        let script = dir.join("client.py");
        std::fs::write(&script, CLIENT).unwrap();
        let out = Command::new("python3")
            .arg(&script)
            .args(["127.0.0.1", &self.port.to_string(), who.0, who.1, code])
            .args(key)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "client output is not JSON ({e}):\n{text}\n{}\nsshd log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log_text()
            )
        })
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// sshd refuses to start without its privilege separation directory.
fn ensure_privsep_dir() {
    let dir = Path::new("/run/sshd");
    if !dir.exists() {
        eprintln!("creating /run/sshd (sshd's privilege separation directory)");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The machine's privilege separation user's ids, when it has one.
fn privsep_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.first() != Some(&"sshd") || f.len() < 4 {
                return None;
            }
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        })
        .unwrap_or((74, 65534))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn assert_logged_in(r: &Value, prompts: &[&str], sshd: &Sshd) {
    assert_eq!(
        r["authenticated"],
        true,
        "{r:#}\nsshd log:\n{}",
        sshd.log_text()
    );
    assert_eq!(r["output"], "ok\n", "{r:#}");
    assert_eq!(r["exit"], 0, "{r:#}");
    let seen: Vec<&str> = r["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(seen, prompts, "{r:#}");
}

fn ssh_login_with_interval(interval: u64) {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_for(dir.path(), "ssh_pam_services = [\"sshd\"]\n", USER);
    let pam = PamServices::new(dir.path(), &[(USER, PASSWORD)], &["sshd"]);
    pam.write(
        "sshd",
        Some(&format!("socket={} timeout=5", daemon.socket.display())),
    );
    let sshd = Sshd::start(dir.path(), &pam, "keyboard-interactive");

    // 2FA off: only the password is asked.
    let r = sshd.login(dir.path(), "000000");
    assert_logged_in(&r, &["Password: "], &sshd);

    let entry = daemon.enable(interval);
    assert_eq!(entry.interval, interval);

    // Wrong code: refused, and audited with sshd's service name and address.
    let wrong = entry.wrong_code();
    let r = sshd.login(dir.path(), &wrong);
    assert_eq!(r["authenticated"], false, "{r:#}");
    assert!(
        r["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "Verification code: "),
        "{r:#}"
    );
    let rows = daemon.audit(json!({"event": "otp.check", "outcome": "wrong"}));
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["service"], "pam:sshd", "{rows:#?}");
    assert!(
        rows[0]["origin"].as_str().unwrap().contains("127.0.0.1"),
        "{rows:#?}"
    );
    assert!(
        !sshd.log_text().contains(&wrong),
        "the code must not reach sshd's log"
    );

    // Right code: in, and the command runs -- after the code prompt. If the
    // prompt is missing, say what the daemon holds and answers now (a
    // login let in on the password alone is the failure that matters).
    let r = sshd.login(dir.path(), &entry.code());
    if r["prompts"] != json!(["Password: ", "Verification code: "]) {
        panic!(
            "no code was asked: {r:#}\nthe daemon now answers pam_required: {}\n\
             config: {}\n{USER}'s config: {}\naudit: {:#?}\ndaemon log:\n{}\nsshd log:\n{}",
            daemon.call(
                "auth.twofactor.pam_required",
                vec![json!(USER), json!("sshd")]
            ),
            daemon.call("auth.twofactor.config", vec![]),
            daemon.call("user.twofactor_config", vec![json!(USER)]),
            daemon.audit(json!({"limit": 50})),
            daemon.log.text(),
            sshd.log_text()
        );
    }
    assert_logged_in(&r, &["Password: ", "Verification code: "], &sshd);
}

#[test]
fn ssh_login_needs_the_code_interval_30() {
    ssh_login_with_interval(30);
}

#[test]
fn ssh_login_needs_the_code_interval_45() {
    ssh_login_with_interval(45);
}

/// The key + code set-up of docs/ssh.md: `AuthenticationMethods
/// publickey,keyboard-interactive`, and a PAM auth stack of the module and
/// pam_permit (no password), so keyboard-interactive asks only the code.
#[test]
fn ssh_key_then_code() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_for(dir.path(), "ssh_pam_services = [\"sshd\"]\n", USER);
    let pam = PamServices::new(dir.path(), &[(USER, PASSWORD)], &["sshd"]);
    pam.write_key_only(
        "sshd",
        &format!("socket={} timeout=5", daemon.socket.display()),
    );
    let sshd = Sshd::start(dir.path(), &pam, "publickey,keyboard-interactive");

    let key = dir.path().join("id_ed25519");
    keygen(&key);
    let ssh_dir = dir.path().join("home/.ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::copy(key.with_extension("pub"), ssh_dir.join("authorized_keys")).unwrap();
    for p in [ssh_dir.clone(), ssh_dir.join("authorized_keys")] {
        std::os::unix::fs::chown(p, Some(UID), Some(UID)).unwrap();
    }

    // 2FA off: the key, then keyboard-interactive with nothing to ask.
    let r = sshd.login_with_key(dir.path(), "000000", Some(&key));
    assert_eq!(
        r["after_key"],
        json!(["keyboard-interactive"]),
        "{r:#}\n{}",
        sshd.log_text()
    );
    assert_logged_in(&r, &[], &sshd);

    let entry = daemon.enable(30);
    let r = sshd.login_with_key(dir.path(), &entry.wrong_code(), Some(&key));
    assert_eq!(r["authenticated"], false, "{r:#}");

    let r = sshd.login_with_key(dir.path(), &entry.code(), Some(&key));
    assert_logged_in(&r, &["Verification code: "], &sshd);

    // Without the key, the code alone is not enough.
    let r = sshd.login(dir.path(), &entry.code_at(1));
    assert_eq!(r["authenticated"], false, "{r:#}");
}

/// Per-user secrets and recovery codes over real SSH: alice and bob each answer
/// with their own code; bob's wrong codes lock bob only; a user without a
/// secret passes on the password; a recovery code works once at the prompt.
#[test]
fn ssh_asks_each_user_for_their_own_code_and_takes_a_recovery_code_once() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_for(dir.path(), "ssh_pam_services = [\"sshd\"]\n", "alice");
    let users = [(USER, PASSWORD), ("alice", "alice-pw"), ("bob", "bob-pw")];
    let pam = PamServices::new(dir.path(), &users, &["sshd"]);
    // A generous time-out: this test counts wrong codes, and on a loaded
    // machine a check that timed out in the module (failing closed) might
    // not be the check the daemon counted.
    pam.write(
        "sshd",
        Some(&format!("socket={} timeout=30", daemon.socket.display())),
    );
    let sshd = Sshd::start(dir.path(), &pam, "keyboard-interactive");
    let alice = daemon.enable(30);
    let bob = BobView(&daemon).secret();
    let (a, b) = (("alice", "alice-pw"), ("bob", "bob-pw"));

    // alice with bob's code: refused; with her own: in.
    let r = sshd.login_as(dir.path(), a, &bob.code(), None);
    assert_eq!(r["authenticated"], false, "{r:#}");
    let r = sshd.login_as(dir.path(), a, &alice.code(), None);
    assert_logged_in(&r, &["Password: ", "Verification code: "], &sshd);

    // bob's five wrong codes lock bob's secret for this address, not alice's.
    // Each attempt must reach the code prompt and be refused there, and the
    // daemon must have counted each one: otherwise the lock-out below would
    // test nothing (and a refusal for another reason would hide it).
    for n in 1..=5 {
        let r = sshd.login_as(dir.path(), b, &bob.wrong_code(), None);
        assert_eq!(r["authenticated"], false, "{r:#}");
        assert_eq!(
            r["prompts"],
            json!(["Password: ", "Verification code: "]),
            "wrong code {n} did not reach the code prompt: {r:#}\nsshd log:\n{}",
            sshd.log_text()
        );
        let wrong = daemon.audit(json!({"event": "otp.check", "outcome": "wrong"}));
        let counted: u64 = wrong
            .iter()
            .filter(|row| row["detail"]["account"] == "bob")
            .map(|row| row["count"].as_u64().unwrap_or(1))
            .sum();
        assert_eq!(
            counted,
            n,
            "wrong code {n} was not counted once: {wrong:#?}\nsshd log:\n{}",
            sshd.log_text()
        );
    }
    let r = sshd.login_as(dir.path(), b, &bob.code(), None);
    assert_eq!(
        r["authenticated"],
        false,
        "bob is locked out: {r:#}\naudit: {:#?}\nsshd log:\n{}",
        daemon.audit(json!({"event": "otp.check"})),
        sshd.log_text()
    );
    let locked = daemon.audit(json!({"event": "otp.check", "outcome": "locked_out"}));
    assert_eq!(locked.len(), 1, "{locked:#?}");
    assert_eq!(locked[0]["detail"]["account"], "bob", "{locked:#?}");
    let r = sshd.login_as(dir.path(), a, &alice.code_at(1), None);
    assert_logged_in(&r, &["Password: ", "Verification code: "], &sshd);

    // A user without a secret of their own: the password alone.
    let r = sshd.login(dir.path(), "000000");
    assert_logged_in(&r, &["Password: "], &sshd);

    // A recovery code at the code prompt, once.
    let codes = daemon.call("user.generate_2fa_recovery_codes", vec![json!("alice")]);
    let rc = codes[0].as_str().unwrap().to_owned();
    let r = sshd.login_as(dir.path(), a, &rc, None);
    assert_logged_in(&r, &["Password: ", "Verification code: "], &sshd);
    let r = sshd.login_as(dir.path(), a, &rc, None);
    assert_eq!(
        r["authenticated"], false,
        "the same recovery code twice: {r:#}"
    );
    let cfg = daemon.call("user.twofactor_config", vec![json!("alice")]);
    assert_eq!(cfg["recovery_codes_left"], 9);
    assert!(
        !sshd.log_text().contains(&rc),
        "the code must not reach sshd's log"
    );
}

/// bob's secret on a daemon whose [`Daemon::user`] is alice.
struct BobView<'a>(&'a Daemon);

impl BobView<'_> {
    fn secret(&self) -> common::Entry {
        let renewed = self.0.call(
            "user.renew_2fa_secret",
            vec![json!("bob"), json!({"otp_digits": 6, "interval": 30})],
        );
        let uri = renewed["twofactor_config"]["provisioning_uri"]
            .as_str()
            .unwrap()
            .to_owned();
        let secret = uri
            .split_once("secret=")
            .and_then(|(_, r)| r.split('&').next())
            .unwrap()
            .to_owned();
        common::Entry {
            secret: Some(secret),
            interval: 30,
            digits: 6,
        }
    }
}

/// A passphrase-less ed25519 key pair at `key` (and `key`.pub).
fn keygen(key: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
