//! Shared by the end-to-end tests: the built module and daemon, a real
//! `twofactord` on a temporary state directory, TOTP codes from oathtool,
//! and the external tools the tests drive (pam_wrapper, pamtester, sshd).
//!
//! Nothing here waits by sleeping for a fixed time: readiness is a line the
//! daemon prints, or the READY=1 that sshd sends its service manager.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: a failure is a test failure"
)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where pam_wrapper keeps its test module.
pub const PAM_MATRIX: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so";
/// The system's pam_permit (libpam-modules).
pub const PAM_PERMIT: &str = "/usr/lib/x86_64-linux-gnu/security/pam_permit.so";
const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
];

/// Checks that the external tools a test needs are installed. Missing ones
/// fail the test with the packages to install, unless `TFA_SKIP_EXTERNAL=1`
/// (then the test is skipped: this returns false).
pub fn have_tools(test: &str, tools: &[Tool]) -> bool {
    let missing: Vec<String> = tools
        .iter()
        .filter(|t| !t.present())
        .map(|t| t.describe())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{test}: missing {} (scripts/test installs them)",
        missing.join(", ")
    );
    if std::env::var("TFA_SKIP_EXTERNAL").as_deref() == Ok("1") {
        eprintln!("SKIPPED {msg}");
        return false;
    }
    panic!("{msg}; set TFA_SKIP_EXTERNAL=1 to skip");
}

/// An external tool the tests use.
#[derive(Debug, Clone, Copy)]
pub enum Tool {
    Pamtester,
    PamWrapper,
    NssWrapper,
    Oathtool,
    Sshd,
    Paramiko,
    Nm,
    /// Root: the daemon answers the module's methods only to root on the
    /// socket, and sshd's privilege separation needs it.
    Root,
}

impl Tool {
    fn present(self) -> bool {
        match self {
            Self::Pamtester => on_path("pamtester"),
            Self::PamWrapper => {
                library("libpam_wrapper.so").is_some()
                    && Path::new(PAM_MATRIX).exists()
                    && Path::new(PAM_PERMIT).exists()
            }
            Self::NssWrapper => library("libnss_wrapper.so").is_some(),
            Self::Oathtool => on_path("oathtool"),
            Self::Sshd => Path::new("/usr/sbin/sshd").exists() && on_path("ssh-keygen"),
            Self::Paramiko => Command::new("python3")
                .args(["-c", "import paramiko"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            Self::Nm => on_path("nm"),
            Self::Root => {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
            }
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Pamtester => "pamtester (apt: pamtester)",
            Self::PamWrapper => "libpam_wrapper.so, pam_matrix.so (apt: libpam-wrapper) and pam_permit.so (apt: libpam-modules)",
            Self::NssWrapper => "libnss_wrapper.so (apt: libnss-wrapper)",
            Self::Oathtool => "oathtool (apt: oathtool)",
            Self::Sshd => "/usr/sbin/sshd and ssh-keygen (apt: openssh-server openssh-client)",
            Self::Paramiko => "python3 paramiko (apt-get install python3-paramiko)",
            Self::Nm => "nm (apt: binutils)",
            Self::Root => "root privileges (run the tests as root)",
        }
        .to_owned()
    }
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// The absolute path of a shared library in the system's library directories.
pub fn library(name: &str) -> Option<PathBuf> {
    LIB_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// `target/<profile>`: the directory this test binary was built into.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps")
        .to_path_buf()
}

/// An artifact cargo has already built into the profile directory. Tests
/// never run cargo themselves: a build inside a test competes with the test
/// run for the build directory and the cores, and hides compile time in test
/// time. `cargo test --workspace` (scripts/test) builds every binary of the
/// workspace before the first test runs.
fn built(relative: &str, how: &str) -> PathBuf {
    let path = profile_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: {how} before running these tests \
         (`cargo test --workspace` builds it)",
        path.display()
    );
    path
}

/// The module under test, `libpam_twofactor.so`. Integration tests cannot
/// link a cdylib, but cargo builds this package's library (both crate
/// types) into `deps/` before it runs the tests, so the copy there is always
/// the current source.
pub fn module() -> PathBuf {
    built(
        "deps/libpam_twofactor.so",
        "run `cargo test -p pam` (it builds the module)",
    )
}

/// The daemon binary. Another package's binary is not built by `cargo test
/// -p pam`: after changing the daemon, build it first.
pub fn daemon_binary() -> PathBuf {
    built("twofactord", "run `cargo build -p daemon --bin twofactord`")
}

/// Output of a child collected by a thread, line by line.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<String>>);

impl Captured {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// A `twofactord` on its own state directory and socket, TCP off, with a
/// configuration file of the test's own (the machine's is never read).
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    pub log: Captured,
    /// The account whose own secret [`Daemon::configure`] sets up and
    /// returns (PAM asks for the user's own code).
    pub user: String,
}

/// The accounts the daemon knows (through nss_wrapper): the users the
/// PAM tests log in as, with the uids the sshd test's passwd gives them.
const DAEMON_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                             alice:x:2001:2001:alice:/home/alice:/bin/sh\n\
                             bob:x:2002:2002:bob:/home/bob:/bin/sh\n\
                             tfauser:x:4242:4242:tfauser:/home/tfauser:/bin/sh\n";
const DAEMON_GROUP: &str = "root:x:0:\nalice:x:2001:\nbob:x:2002:\ntfauser:x:4242:\n";

impl Daemon {
    /// Starts the daemon and returns once it logged that it listens.
    /// `config` is the TOML text of its configuration file.
    pub fn start(dir: &Path, config: &str) -> Self {
        Self::start_for(dir, config, "alice")
    }

    /// [`Daemon::start`] whose [`Daemon::configure`] sets up `user`'s secret.
    pub fn start_for(dir: &Path, config: &str, user: &str) -> Self {
        let config_file = dir.join("twofactord.toml");
        std::fs::write(&config_file, config).unwrap();
        let socket = dir.join("twofactord.sock");
        let passwd = dir.join("daemon-passwd");
        let group = dir.join("daemon-group");
        std::fs::write(&passwd, DAEMON_PASSWD).unwrap();
        std::fs::write(&group, DAEMON_GROUP).unwrap();
        let nss = library("libnss_wrapper.so").expect("libnss_wrapper.so (apt: libnss-wrapper)");
        let mut cmd = Command::new(daemon_binary());
        cmd.env("LD_PRELOAD", nss)
            .env("NSS_WRAPPER_PASSWD", &passwd)
            .env("NSS_WRAPPER_GROUP", &group);
        let mut child = daemon_args(&mut cmd, &config_file, &dir.join("state"), &socket)
            .spawn()
            .expect("start twofactord");
        let log = Captured::default();
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let ready = line.contains("listening") && !line.contains("already");
                sink.0.lock().unwrap().push_str(&(line + "\n"));
                if ready {
                    let _ = ready_tx.send(());
                }
            }
        });
        let daemon = Self {
            child,
            socket,
            log,
            user: user.to_owned(),
        };
        match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(()) => daemon,
            Err(e) => panic!(
                "twofactord did not report listening ({e:?}):\n{}",
                daemon.log.text()
            ),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A root connection over the Unix socket.
    pub fn client(&self) -> client::Client {
        client::Client::connect(
            &format!("ws+unix://{}", self.socket.display()),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("connect to the daemon: {e}\n{}", self.log.text()))
    }

    pub fn call(&self, method: &str, params: Vec<Value>) -> Value {
        self.client()
            .call(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e}\n{}", self.log.text()))
    }

    /// Applies `auth.twofactor.update`; once the system has a secret,
    /// gives [`Daemon::user`] a new secret of their own with the entry's
    /// digits and interval, and returns it (PAM asks for the user's code).
    pub fn configure(&self, update: Value) -> Entry {
        self.call("auth.twofactor.update", vec![update]);
        let config = self.call("auth.twofactor.config", vec![]);
        let interval = config["interval"].as_u64().unwrap();
        let digits = config["otp_digits"].as_u64().unwrap();
        let secret = config["secret"].as_str().map(|_| {
            let renewed = self.call(
                "user.renew_2fa_secret",
                vec![
                    json!(self.user),
                    json!({"otp_digits": digits, "interval": interval}),
                ],
            );
            let uri = renewed["twofactor_config"]["provisioning_uri"]
                .as_str()
                .unwrap()
                .to_owned();
            let query = uri.split_once('?').unwrap().1;
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix("secret="))
                .unwrap()
                .to_owned()
        });
        Entry {
            secret,
            interval,
            digits,
        }
    }

    /// 2FA on for SSH with one step of slack on each side, so a code made
    /// just before a step ends is still good when the daemon checks it.
    pub fn enable(&self, interval: u64) -> Entry {
        self.configure(
            json!({"enabled": true, "services": {"ssh": true}, "interval": interval, "window": 1}),
        )
    }

    /// `audit.query` with these filters.
    pub fn audit(&self, filter: Value) -> Vec<Value> {
        match self.call("audit.query", vec![filter]) {
            Value::Array(rows) => rows,
            other => panic!("audit.query answered {other}"),
        }
    }

    /// Stops the daemon for good (its socket file stays behind, as after a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: the socket still accepts connections but nothing answers.
    pub fn freeze(&self) {
        signal(self.pid(), "STOP");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// The TOTP parameters of the entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub secret: Option<String>,
    pub interval: u64,
    pub digits: u64,
}

impl Entry {
    /// The code for `steps` intervals from now, computed by oathtool (an
    /// implementation independent of ours).
    pub fn code_at(&self, steps: i64) -> String {
        let secret = self.secret.as_deref().expect("a secret");
        let at = unix_now() + steps * self.interval as i64;
        let out = Command::new("oathtool")
            .args(["--totp", "-b"])
            .arg(format!("--digits={}", self.digits))
            .arg(format!("--time-step-size={}s", self.interval))
            .arg(format!("--now=@{at}"))
            .arg(secret)
            .output()
            .expect("run oathtool");
        assert!(
            out.status.success(),
            "oathtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The code valid now.
    pub fn code(&self) -> String {
        self.code_at(0)
    }

    /// A code of the right length that no nearby step accepts.
    pub fn wrong_code(&self) -> String {
        let near: BTreeSet<String> = (-3..=3).map(|s| self.code_at(s)).collect();
        let width = usize::try_from(self.digits).unwrap();
        (0u64..)
            .map(|n| format!("{:0width$}", n * 7_919 % 10u64.pow(self.digits as u32)))
            .find(|c| !near.contains(c))
            .unwrap()
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "codes are computed for the real clock the daemon reads"
)]
fn unix_now() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(d.as_secs()).unwrap()
}

/// A directory of PAM service files for pam_wrapper.
#[derive(Debug)]
pub struct PamServices {
    pub dir: PathBuf,
    pub passdb: PathBuf,
}

impl PamServices {
    /// `users` are (name, password) pairs pam_matrix accepts for `services`.
    pub fn new(root: &Path, users: &[(&str, &str)], services: &[&str]) -> Self {
        let dir = root.join("pam.d");
        std::fs::create_dir_all(&dir).unwrap();
        let passdb = root.join("passdb");
        let mut db = String::new();
        for (user, password) in users {
            for service in services {
                db.push_str(&format!("{user}:{password}:{service}\n"));
            }
        }
        std::fs::write(&passdb, db).unwrap();
        Self { dir, passdb }
    }

    /// Writes service `name`: pam_matrix checks the password, then our
    /// module runs with `module_args` (unless None: password only).
    pub fn write(&self, name: &str, module_args: Option<&str>) {
        let matrix = format!("{PAM_MATRIX} passdb={}", self.passdb.display());
        let mut text = format!("auth required {matrix}\n");
        if let Some(args) = module_args {
            text.push_str(&format!("auth required {} {args}\n", module().display()));
        }
        for kind in ["account", "session", "password"] {
            text.push_str(&format!("{kind} required {matrix}\n"));
        }
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    /// Writes service `name` as docs/ssh.md's key + code stack: no password,
    /// our module `required`, then pam_permit `optional` so that the stack
    /// succeeds when the module answers PAM_IGNORE (2FA off).
    pub fn write_key_only(&self, name: &str, module_args: &str) {
        let matrix = format!("{PAM_MATRIX} passdb={}", self.passdb.display());
        let mut text = format!("auth required {} {module_args}\n", module().display());
        text.push_str(&format!("auth optional {PAM_PERMIT}\n"));
        for kind in ["account", "session", "password"] {
            text.push_str(&format!("{kind} required {matrix}\n"));
        }
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    /// LD_PRELOAD and the variables that make libpam read this directory.
    pub fn env(&self) -> Vec<(String, String)> {
        let wrapper = library("libpam_wrapper.so").expect("libpam_wrapper.so");
        vec![
            ("LD_PRELOAD".into(), wrapper.display().to_string()),
            ("PAM_WRAPPER".into(), "1".into()),
            (
                "PAM_WRAPPER_SERVICE_DIR".into(),
                self.dir.display().to_string(),
            ),
        ]
    }
}

/// What a conversation through a child process showed and answered.
#[derive(Debug)]
pub struct Dialogue {
    pub status: ExitStatus,
    /// The prompts seen, in order.
    pub prompts: Vec<String>,
    pub stderr: String,
    pub stdout: String,
    pub elapsed: Duration,
}

impl Dialogue {
    pub fn asked_for_code(&self) -> bool {
        self.prompts.iter().any(|p| p == "Verification code: ")
    }
}

/// Held while a child of [`converse`] sets itself up. pam_wrapper gives
/// each process a directory `/tmp/pam.X` of its own (X one of a few dozen
/// characters, picked at random) and copies the service files into it,
/// before the program's `main`. Two processes setting up at once can pick
/// the same X before either has written the pid file that marks it taken,
/// and then share one directory: once, a login here ran another test's
/// password-only stack and succeeded without our module. Children of one
/// test binary therefore set up one at a time: the next starts once the
/// one before has printed something (after its set-up) or ended.
static PAM_WRAPPER_SETUP: Mutex<()> = Mutex::new(());

/// Runs `cmd`, answering each prompt (found on its standard error) from
/// `answers` (prompt → answer) as it appears, the way a person would: one
/// line per prompt (misc_conv reads standard input with read(2), so
/// answers written ahead of their prompt would be swallowed by the first).
///
/// Children are set up one at a time (see [`PAM_WRAPPER_SETUP`]).
pub fn converse(mut cmd: Command, answers: &[(&str, &str)], limit: Duration) -> Dialogue {
    let mut setting_up = Some(
        PAM_WRAPPER_SETUP
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin: Option<ChildStdin> = child.stdin.take();
    let chunks = reader(child.stderr.take().unwrap());
    let mut stdout_pipe = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout_pipe.read_to_string(&mut s);
        s
    });
    let mut stderr = String::new();
    let mut scanned = 0;
    let mut prompts = Vec::new();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        let next = chunks.recv_timeout(left);
        // Whatever the child printed, or its end, comes after its set-up.
        setting_up.take();
        match next {
            Ok(chunk) => stderr.push_str(&chunk),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no end after {limit:?}; stderr so far:\n{stderr}");
            }
        }
        // Answer every complete prompt that appeared since the last one.
        while let Some((at, prompt, answer)) = answers
            .iter()
            .filter_map(|(p, a)| stderr[scanned..].find(p).map(|i| (scanned + i, *p, *a)))
            .min_by_key(|(i, _, _)| *i)
        {
            scanned = at + prompt.len();
            prompts.push(prompt.to_owned());
            if let Some(w) = stdin.as_mut() {
                // The child may have gone already; its status tells.
                let _ = w.write_all(format!("{answer}\n").as_bytes());
                let _ = w.flush();
            }
        }
    }
    drop(stdin);
    let status = child.wait().unwrap();
    Dialogue {
        status,
        prompts,
        stderr,
        stdout: stdout.join().unwrap(),
        elapsed: started.elapsed(),
    }
}

/// Forwards what `r` produces, chunk by chunk, until EOF.
fn reader(mut r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = r.read(&mut buf) {
            if tx
                .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

/// The daemon's arguments for a test: `config`, `state_dir`, a Unix
/// `socket` and no TCP listener; logging at info to a piped stderr.
pub fn daemon_args<'a>(
    cmd: &'a mut Command,
    config: &Path,
    state_dir: &Path,
    socket: &Path,
) -> &'a mut Command {
    cmd.arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--socket")
        .arg(socket)
        .args(["--listen", "none"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
}
