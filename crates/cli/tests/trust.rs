//! Where `tfa` connects and what it refuses: a Unix socket served by
//! anyone but root or the caller is refused by name (nothing is sent to
//! it), and without HOME and XDG variables no default path is taken
//! relative to the working directory.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The uid the impostor runs as.
const NOBODY: u32 = 65534;

/// A listening Unix socket at `path`, created by a process running as
/// [`NOBODY`]: what an impostor who could bind the daemon's path would
/// serve. It records whether anything was ever sent to it. Stopped when
/// dropped.
struct Impostor {
    child: Child,
}

impl Impostor {
    fn start(path: &Path, log: &Path) -> Option<Self> {
        if !common::external("python3", &["--version"], "install python3") {
            return None;
        }
        let script = r#"
import socket, sys, threading
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
def serve():
    while True:
        c, _ = s.accept()
        data = c.recv(65536)
        with open(sys.argv[2], "ab") as f:
            f.write(data)
threading.Thread(target=serve, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"#;
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(path)
            .arg(log)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the impostor");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the impostor's ready line");
        assert_eq!(line.trim(), "ready");
        Some(Self { child })
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    // SAFETY-free: the effective uid of this test process, from /proc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A world-writable directory for the impostor's socket and log.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

#[test]
fn a_socket_served_by_another_uid_is_refused_by_name() {
    if !is_root() {
        eprintln!("skipped: needs root to run the impostor as another uid");
        return;
    }
    let dir = shared_dir();
    let socket = dir.path().join("twofactord.sock");
    let log = dir.path().join("received");
    let Some(_impostor) = Impostor::start(&socket, &log) else {
        return;
    };
    let tfa = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tfa"))
            .args(args)
            .env("HOME", dir.path())
            .env("TFA_PASSWORD", "hunter2")
            .stdin(Stdio::null())
            .output()
            .expect("run tfa")
    };
    let url = format!("ws+unix://{}", socket.display());
    // With a password ready to go: none of it may reach the impostor.
    let out = tfa(&["--url", &url, "--user", "admin", "auth", "me"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("refusing the socket {}", socket.display()))
            && err.contains("uid 65534"),
        "{err}"
    );
    // The same socket found through the configuration (the default way).
    let config = dir.path().join("tfa.toml");
    std::fs::write(&config, format!("socket = \"{}\"\n", socket.display())).expect("config");
    let out = tfa(&["--config", config.to_str().expect("utf-8"), "auth", "me"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("uid 65534"), "{err}");
    assert!(
        std::fs::read(&log).map_or(true, |b| b.is_empty()),
        "bytes were sent to the impostor"
    );
}

/// Neither HOME nor any XDG variable: a user who is not root gets an error
/// naming what is missing, and nothing appears in the working directory.
#[test]
fn without_home_or_xdg_no_default_path_is_relative() {
    if !is_root() {
        eprintln!("skipped: needs root to run tfa as another uid");
        return;
    }
    let cwd = shared_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_tfa"))
        .args(["auth", "two_factor", "config"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir(cwd.path())
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .expect("run tfa");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("HOME"), "{err}");
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .expect("read cwd")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        left.is_empty(),
        "created in the working directory: {left:?}"
    );
}
