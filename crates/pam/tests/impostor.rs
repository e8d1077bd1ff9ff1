//! Found by attacking the merged product: the module believed whoever
//! served its socket path. With `socket=` in a world-writable directory
//! (as `/tmp/t.sock` in the module's own option examples), a local user who
//! binds the path while the daemon is down or restarting runs a daemon of
//! their own (2FA off) and every SSH login passes without a code. The
//! module now trusts only a daemon run by root or by its own user (peer
//! credentials of the socket), and fails closed otherwise, whatever
//! `unreachable=` says.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use common::{PamServices, Tool, converse, daemon_args, daemon_binary, have_tools};

const USER: &str = "alice";
const PASSWORD: &str = "alice-password";

/// A `twofactord` run as uid 65534, killed when dropped.
struct Impostor(Child);

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_daemon_run_by_another_user_on_the_socket_path_is_not_believed() {
    if !have_tools(
        "impostor test",
        &[Tool::Root, Tool::Pamtester, Tool::PamWrapper],
    ) {
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        if std::env::var("TFA_SKIP_EXTERNAL").as_deref() == Ok("1") {
            return;
        }
        panic!("setpriv (util-linux) is missing; set TFA_SKIP_EXTERNAL=1 to skip");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A world-writable directory with the sticky bit, as /tmp.
    let open = dir.path().join("tmp");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let binary = dir.path().join("twofactord");
    std::fs::copy(daemon_binary(), &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let socket = open.join("t.sock");

    // The impostor: uid 65534 runs a daemon of its own (2FA off) on the path.
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&binary);
    let mut child = daemon_args(&mut cmd, &config, &open.join("state"), &socket)
        .spawn()
        .expect("start the impostor");
    let stderr = child.stderr.take().unwrap();
    let impostor = Impostor(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("the impostor did not listen ({e:?}):\n{log}"));
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening") {
            break;
        }
    }

    let pam = PamServices::new(dir.path(), &[(USER, PASSWORD)], &["sshd", "sshd-ignore"]);
    let args = format!("socket={} timeout=2", socket.display());
    pam.write("sshd", Some(&args));
    pam.write("sshd-ignore", Some(&format!("{args} unreachable=ignore")));
    for service in ["sshd", "sshd-ignore"] {
        let mut cmd = Command::new("pamtester");
        cmd.args(["-v", service, USER, "authenticate"])
            .envs(pam.env())
            .current_dir(dir.path());
        let d = converse(
            cmd,
            &[("Password: ", PASSWORD), ("Verification code: ", "000000")],
            Duration::from_secs(30),
        );
        assert!(
            !d.status.success(),
            "{service}: an impostor daemon let the login through: {d:#?}"
        );
    }
    drop(impostor);
}
