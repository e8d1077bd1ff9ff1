//! Starts the built `twofactord` on a temporary state directory, a socket in
//! it and a free TCP port, and waits for its `listening` line (no sleeps).
//! Finds the external test tools (pam_wrapper, nss_wrapper, oathtool,
//! Python's websocket-client): missing ones fail the test with a clear
//! message, or skip it when `TFA_SKIP_EXTERNAL=1`.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use client::Client;
use serde_json::{Value, json};

pub const TIMEOUT: Duration = Duration::from_secs(10);
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Password of the test accounts in pam_matrix's database.
pub const ADMIN: (&str, &str) = ("tfadmin", "admin-pw");
pub const USER: (&str, &str) = ("tfuser", "user-pw");
/// Two ordinary users with secrets of their own.
pub const ALICE: (&str, &str) = ("alice", "alice-pw");
pub const BOB: (&str, &str) = ("bob", "bob-pw");
pub const ALICE_UID: u32 = 2003;

/// A tool the test needs is missing: fail, or skip under TFA_SKIP_EXTERNAL=1.
pub fn need<T>(what: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(t) => Some(t),
        Err(why) if std::env::var("TFA_SKIP_EXTERNAL").as_deref() == Ok("1") => {
            eprintln!("SKIPPED (TFA_SKIP_EXTERNAL=1): {what} is missing: {why}");
            None
        }
        Err(why) => panic!(
            "{what} is missing: {why}\n(install it — Debian: libpam-wrapper libnss-wrapper oathtool \
             python3-websocket — or set TFA_SKIP_EXTERNAL=1 to skip these tests)"
        ),
    }
}

fn find_in_package(package: &str, file_name: &str, fallbacks: &[&str]) -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("dpkg").args(["-L", package]).output() {
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(p) = listing
            .lines()
            .find(|l| l.ends_with(&format!("/{file_name}")))
        {
            return Ok(PathBuf::from(p));
        }
    }
    fallbacks
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| format!("{file_name} not found (package {package})"))
}

/// pam_wrapper + pam_matrix and nss_wrapper.
#[derive(Debug, Clone)]
pub struct Wrappers {
    pub libpam_wrapper: PathBuf,
    pub libnss_wrapper: PathBuf,
    pub pam_matrix: PathBuf,
}

impl Wrappers {
    pub fn find() -> Result<Self, String> {
        Ok(Self {
            libpam_wrapper: find_in_package(
                "libpam-wrapper",
                "libpam_wrapper.so",
                &[
                    "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so",
                    "/usr/lib64/libpam_wrapper.so",
                ],
            )?,
            libnss_wrapper: find_in_package(
                "libnss-wrapper",
                "libnss_wrapper.so",
                &[
                    "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
                    "/usr/lib64/libnss_wrapper.so",
                ],
            )?,
            pam_matrix: find_in_package(
                "libpam-wrapper",
                "pam_matrix.so",
                &[
                    "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so",
                    "/usr/lib64/pam_wrapper/pam_matrix.so",
                ],
            )?,
        })
    }
}

/// A Python 3 that has `websocket` (websocket-client) and that any uid can
/// run (the non-root test runs it as nobody).
pub fn python() -> Result<PathBuf, String> {
    let candidates = ["/usr/bin/python3", "/usr/local/bin/python3", "python3"];
    for c in candidates {
        let ok = Command::new(c)
            .args(["-c", "import websocket"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(PathBuf::from(c));
        }
    }
    Err("no python3 with the websocket-client module (`import websocket`)".into())
}

pub fn oathtool() -> Result<(), String> {
    Command::new("oathtool")
        .arg("--version")
        .output()
        .map_err(|e| format!("oathtool: {e}"))
        .and_then(|o| {
            if o.status.success() {
                Ok(())
            } else {
                Err("oathtool --version failed".into())
            }
        })
}

/// Wall-clock seconds, for oathtool: the daemon reads the same clock.
#[allow(clippy::disallowed_methods)]
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The code oathtool derives for `secret` at `steps` time steps from now.
pub fn totp(secret: &str, digits: u32, interval: u64, steps: i64) -> String {
    let at = now().saturating_add_signed(steps * i64::try_from(interval).unwrap_or(30));
    let out = Command::new("oathtool")
        .args([
            "--totp",
            "-b",
            &format!("--digits={digits}"),
            &format!("--time-step-size={interval}s"),
            "-N",
            &format!("@{at}"),
            secret,
        ])
        .output()
        .expect("run oathtool");
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A six-digit code that is none of the codes of steps −3..=3.
pub fn wrong_code(secret: &str) -> String {
    let near: Vec<String> = (-3..=3).map(|s| totp(secret, 6, 30, s)).collect();
    (0..10u32)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !near.contains(c))
        .expect("some repeated digit is not a current code")
}

/// A state directory and socket that survive daemon restarts.
#[derive(Debug)]
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub socket: PathBuf,
    env: Vec<(String, String)>,
    config: Option<PathBuf>,
    /// Run the daemon under `prlimit --nofile=N:N`.
    nofile: Option<u64>,
    /// The TCP address, when not a free port of 127.0.0.1 (`127.0.0.1:0`).
    listen: Option<String>,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // Other uids (the non-root test) must reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let state = dir.path().join("state");
        let socket = dir.path().join("run/twofactord.sock");
        Self {
            dir,
            state,
            socket,
            env: Vec::new(),
            config: None,
            nofile: None,
            listen: None,
        }
    }

    /// Runs the daemon with `key` set to `value` in its environment.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Listens on this TCP address (one that a restart keeps).
    pub fn with_listen(mut self, addr: &str) -> Self {
        self.listen = Some(addr.to_owned());
        self
    }

    /// Test accounts through nss_wrapper and passwords through pam_wrapper
    /// with pam_matrix; `tfadmin` is in the admin group `tfaadmins`.
    pub fn with_accounts(mut self, w: &Wrappers) -> Self {
        let d = self.dir.path();
        let passwd = d.join("passwd");
        let group = d.join("group");
        let passdb = d.join("passdb");
        let pam_dir = d.join("pam.d");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/bash\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
             tfadmin:x:2001:2001:TFA Admin:/home/tfadmin:/bin/sh\n\
             tfuser:x:2002:2002:TFA User:/home/tfuser:/bin/sh\n\
             alice:x:2003:2003:Alice:/home/alice:/bin/sh\n\
             bob:x:2004:2004:Bob:/home/bob:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(
            &group,
            "root:x:0:\nnogroup:x:65534:\ntfadmin:x:2001:\ntfuser:x:2002:\nalice:x:2003:\nbob:x:2004:\n\
             tfaadmins:x:3000:tfadmin\n",
        )
        .expect("group");
        std::fs::write(
            &passdb,
            format!(
                "{}:{}:twofactord\n{}:{}:twofactord\n{}:{}:twofactord\n{}:{}:twofactord\n",
                ADMIN.0, ADMIN.1, USER.0, USER.1, ALICE.0, ALICE.1, BOB.0, BOB.1
            ),
        )
        .expect("passdb");
        std::fs::create_dir_all(&pam_dir).expect("pam.d");
        let matrix = w.pam_matrix.display();
        std::fs::write(
            pam_dir.join("twofactord"),
            format!(
                "auth required {matrix} passdb={p}\naccount required {matrix} passdb={p}\n",
                p = passdb.display()
            ),
        )
        .expect("pam service");
        let config = d.join("twofactord.toml");
        std::fs::write(&config, "admin_group = \"tfaadmins\"\n").expect("config");
        self.config = Some(config);
        self.env = vec![
            (
                "LD_PRELOAD".into(),
                format!(
                    "{}:{}",
                    w.libpam_wrapper.display(),
                    w.libnss_wrapper.display()
                ),
            ),
            ("PAM_WRAPPER".into(), "1".into()),
            (
                "PAM_WRAPPER_SERVICE_DIR".into(),
                pam_dir.display().to_string(),
            ),
            ("NSS_WRAPPER_PASSWD".into(), passwd.display().to_string()),
            ("NSS_WRAPPER_GROUP".into(), group.display().to_string()),
        ];
        self
    }

    /// Appends TOML to this fixture's configuration file (e.g. a `[limits]`
    /// table); call after [`Fixture::with_accounts`].
    pub fn with_config(mut self, toml: &str) -> Self {
        let path = self.config.clone().unwrap_or_else(|| {
            let p = self.dir.path().join("twofactord.toml");
            std::fs::write(&p, "").expect("config");
            p
        });
        let mut text = std::fs::read_to_string(&path).expect("read config");
        text.push_str(toml);
        std::fs::write(&path, text).expect("write config");
        self.config = Some(path);
        self
    }

    /// Runs the daemon with this open-file limit (soft and hard), through
    /// util-linux `prlimit`.
    pub fn with_nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// The `twofactord` command line for this fixture (not started).
    pub fn command(&self) -> Command {
        let mut cmd = match self.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_twofactord"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_twofactord")),
        };
        cmd.arg("--state-dir")
            .arg(&self.state)
            .arg("--socket")
            .arg(&self.socket);
        cmd.arg("--listen")
            .arg(self.listen.as_deref().unwrap_or("127.0.0.1:0"));
        // An explicit file keeps the host's /etc/twofactor out of the test.
        let config = self.config.clone().unwrap_or_else(|| {
            let empty = self.dir.path().join("empty.toml");
            std::fs::write(&empty, "").expect("config");
            empty
        });
        cmd.arg("--config").arg(config);
        cmd.env("RUST_LOG", "info").env_remove("JOURNAL_STREAM");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts `twofactord` and waits for its `listening` line.
    pub fn start(&self) -> Daemon {
        self.start_with(&[])
    }

    /// [`Fixture::start`] with more command-line arguments.
    pub fn start_with(&self, args: &[&str]) -> Daemon {
        let mut cmd = self.command();
        cmd.args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn twofactord");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let mut daemon = Daemon {
            child,
            socket: self.socket.clone(),
            tcp: None,
            log,
            lines,
        };
        let line = daemon.wait_for_line(" listening ", START_TIMEOUT);
        let tcp = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("tcp="))
            .filter(|a| *a != "none")
            .map(str::to_owned);
        daemon.tcp = tcp;
        daemon
    }
}

/// A running daemon; killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    pub tcp: Option<String>,
    log: Arc<Mutex<String>>,
    lines: Receiver<String>,
}

impl Daemon {
    /// Waits (bounded) for a stderr line containing `needle`.
    pub fn wait_for_line(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "twofactord printed no line with {needle:?} within {within:?}; log:\n{}",
                        self.log()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!(
                        "twofactord exited ({status:?}) before {needle:?}; log:\n{}",
                        self.log()
                    )
                }
            }
        }
    }

    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn unix_url(&self) -> String {
        format!("ws+unix://{}", self.socket.display())
    }

    pub fn tcp_addr(&self) -> &str {
        self.tcp.as_deref().expect("TCP is on")
    }

    pub fn tcp_url(&self) -> String {
        format!("ws://{}/api/current", self.tcp_addr())
    }

    /// Root over the Unix socket: logged in from the start.
    pub fn root(&self) -> Client {
        Client::connect(&self.unix_url(), TIMEOUT).expect("connect to the Unix socket")
    }

    /// An anonymous TCP connection.
    pub fn tcp(&self) -> Client {
        Client::connect(&self.tcp_url(), TIMEOUT).expect("connect over TCP")
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `kill -9` of a daemon others still borrow (its connections end).
    pub fn kill9_in_place(&self) {
        let ok = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -KILL failed");
    }

    /// Waits for the process to exit (after its `stopped` line).
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.child.wait().expect("wait for twofactord")
    }

    /// SIGTERM, then waits for the `stopped` line (bounded) and the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM failed");
        self.wait_for_line(" stopped", Duration::from_secs(30));
        self.child.wait().expect("wait for twofactord")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `data` object of a JSON-RPC error, or a panic naming what came back.
pub fn rpc_error(result: Result<Value, client::ClientError>) -> api::wire::RpcError {
    match result {
        Err(client::ClientError::Rpc(e)) => *e,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// Enables 2FA (window 1: codes of the neighbouring steps pass, so a step
/// boundary during the test does not matter) and returns the secret.
pub fn enable(root: &mut Client) -> String {
    let entry = root
        .call(
            "auth.twofactor.update",
            vec![json!({"enabled": true, "window": 1})],
        )
        .expect("enable 2FA");
    entry["secret"].as_str().expect("a secret").to_owned()
}

/// Gives `user` a secret of their own and returns it in base32,
/// read from the provisioning URI the daemon answers.
pub fn own_secret(root: &mut Client, user: &str) -> String {
    let entry = root
        .call("user.renew_2fa_secret", vec![json!(user)])
        .expect("renew the user's secret");
    let uri = entry["twofactor_config"]["provisioning_uri"]
        .as_str()
        .expect("a provisioning URI");
    uri_secret(uri)
}

/// The `secret` parameter of a Key URI.
pub fn uri_secret(uri: &str) -> String {
    let query = uri.split_once('?').expect("a query").1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .expect("a secret parameter")
        .to_owned()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `auth.login_ex` with a password; its answer.
pub fn login(c: &mut Client, (user, password): (&str, &str)) -> Value {
    c.call(
        "auth.login_ex",
        vec![json!({"mechanism": "PASSWORD_PLAIN", "username": user, "password": password})],
    )
    .expect("auth.login_ex")
}

/// `auth.login_ex_continue` with an OTP token.
pub fn code(c: &mut Client, token: &str) -> Result<Value, client::ClientError> {
    c.call(
        "auth.login_ex_continue",
        vec![json!({"mechanism": "OTP_TOKEN", "otp_token": token})],
    )
}

/// Linux-PAM's `pam_exec.so`, which the tests use to make a PAM stack slow.
pub fn pam_exec_module() -> Result<&'static Path, String> {
    let pam_exec = Path::new("/lib/x86_64-linux-gnu/security/pam_exec.so");
    if pam_exec.exists() {
        Ok(pam_exec)
    } else {
        Err("pam_exec.so not found".to_owned())
    }
}

/// A daemon with the test accounts, for tests that also need oathtool;
/// `None` when a tool is missing under TFA_SKIP_EXTERNAL=1.
pub fn accounts_daemon() -> Option<(Fixture, Daemon)> {
    let w = need("pam_wrapper/nss_wrapper", Wrappers::find())?;
    need("oathtool", oathtool())?;
    let f = Fixture::new().with_accounts(&w);
    let d = f.start();
    Some((f, d))
}

/// The answer to a password login that is either wrong (`AUTH_ERR`) or
/// refused by the per-address limit (EBUSY); whether it was refused.
/// Any other answer fails the test.
pub fn rate_limited(answer: Result<Value, client::ClientError>) -> bool {
    match answer {
        Ok(v) => {
            assert_eq!(v, json!({"response_type": "AUTH_ERR"}));
            false
        }
        Err(client::ClientError::Rpc(e)) => {
            let data = e.data.expect("data");
            assert_eq!(
                (e.code, data.error.0, data.reason.as_str()),
                (-32001, 16, "[EBUSY] Rate Limit Exceeded")
            );
            true
        }
        Err(e) => panic!("{e}"),
    }
}
