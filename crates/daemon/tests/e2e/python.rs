//! The same protocol through an independent client: `tests/py/protocol.py`
//! (Python's websocket-client), as root (here) and as a non-root Unix peer
//! (`nonroot.rs`).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use crate::harness::{
    ADMIN, Fixture, Wrappers, enable, need, oathtool, own_secret, path_str, python,
};

const SCRIPT: &str = include_str!("../py/protocol.py");

/// The script copied where any uid can read it.
pub fn script(f: &Fixture) -> PathBuf {
    let p = f.dir.path().join("protocol.py");
    std::fs::write(&p, SCRIPT).expect("write the script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    p
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "protocol.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[test]
fn python_client_checks_the_protocol() {
    let Some(py) = need("python3 with websocket-client", python()) else {
        return;
    };
    let f = Fixture::new();
    let d = f.start();
    run(Command::new(py).arg(script(&f)).args([
        "--mode",
        "root",
        "--unix",
        path_str(&d.socket),
        "--tcp",
        d.tcp_addr(),
    ]));
}

/// The TCP login, with an independent client: over TCP,
/// 207 before login; login_ex + login_ex_continue with an oathtool code;
/// then the entry.
#[test]
fn python_client_logs_in_over_tcp_with_a_code() {
    let Some(py) = need("python3 with websocket-client", python()) else {
        return;
    };
    let Some(w) = need("pam_wrapper/nss_wrapper", Wrappers::find()) else {
        return;
    };
    if need("oathtool", oathtool()).is_none() {
        return;
    }
    let f = Fixture::new().with_accounts(&w);
    let d = f.start();
    enable(&mut d.root());
    // tfadmin's own secret: a login asks for the user's code.
    let secret = own_secret(&mut d.root(), ADMIN.0);
    run(Command::new(py).arg(script(&f)).args([
        "--mode",
        "tcp-login",
        "--tcp",
        d.tcp_addr(),
        "--user",
        ADMIN.0,
        "--password",
        ADMIN.1,
        "--secret",
        &secret,
    ]));
}
