//! A Unix-socket peer that is not root is logged in as its own account
//! with a user's rights and must log in for more: the test
//! re-runs this test binary (our client) and `protocol.py` (Python's
//! websocket-client) as uid 65534 with util-linux `setpriv`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use client::Client;
use serde_json::json;

use crate::harness::{ADMIN, Fixture, TIMEOUT, Wrappers, need, path_str, rpc_error};
use crate::python::{run, script};

pub const AS_NOBODY: [&str; 4] = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"];

pub fn setpriv() -> Result<(), String> {
    let out = Command::new("setpriv")
        .arg("--version")
        .output()
        .map_err(|e| format!("setpriv: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err("setpriv --version failed".into())
    }
}

/// A Python with websocket-client that uid 65534 can run (pyenv under
/// /root is not reachable for it; Debian's python3-websocket is).
fn python_for_nobody() -> Result<PathBuf, String> {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|py| {
            Command::new("setpriv")
                .args(AS_NOBODY)
                .arg(py)
                .args(["-c", "import websocket"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .ok_or_else(|| {
            "no python3 with websocket-client that uid 65534 can run \
             (Debian: apt-get install python3-websocket)"
                .to_owned()
        })
}

#[test]
fn non_root_peer_is_itself_with_user_rights_until_login() {
    let Some(w) = need("pam_wrapper/nss_wrapper", Wrappers::find()) else {
        return;
    };
    if need("setpriv (util-linux)", setpriv()).is_none() {
        return;
    }
    let f = Fixture::new().with_accounts(&w);
    let d = f.start();
    // The socket directory must be traversable by the other uid.
    let run_dir = f.socket.parent().expect("socket dir");
    std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    // Our client: this test binary again, running only the helper below;
    // copied next to the socket, since the build directory may not be
    // reachable for uid 65534.
    let me = f.dir.path().join("e2e-helper");
    std::fs::copy(std::env::current_exe().expect("the test binary"), &me)
        .expect("copy the test binary");
    std::fs::set_permissions(&me, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    run(Command::new("setpriv")
        .args(AS_NOBODY)
        .arg(&me)
        .args([
            "--exact",
            "nonroot::helper_as_another_uid",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TFA_NONROOT_URL", d.unix_url())
        .env("HOME", "/"));

    // Python's websocket-client: a missing one fails the test, as any
    // other tool, unless TFA_SKIP_EXTERNAL=1.
    if let Some(py) = need(
        "python3 with websocket-client for uid 65534",
        python_for_nobody(),
    ) {
        run(Command::new("setpriv")
            .args(AS_NOBODY)
            .arg(&py)
            .arg(script(&f))
            .args([
                "--mode",
                "nonroot",
                "--unix",
                path_str(&d.socket),
                "--user",
                ADMIN.0,
                "--password",
                ADMIN.1,
            ]));
    }
}

/// Run by the test above as uid 65534; does nothing when run directly.
#[test]
#[ignore = "a helper that non_root_peer_is_itself_with_user_rights_until_login runs as another uid"]
fn helper_as_another_uid() {
    let Ok(url) = std::env::var("TFA_NONROOT_URL") else {
        return;
    };
    assert_ne!(api::host::current_uid(), 0, "run as a non-root uid");
    let mut c = Client::connect(&url, TIMEOUT).expect("connect");
    let e = rpc_error(c.call("auth.twofactor.config", vec![]));
    let data = e.data.expect("data");
    assert_eq!(
        (e.code, data.error.0, data.reason.as_str()),
        (-32001, 13, "[EACCES] Not authorized")
    );
    assert_eq!(c.call("core.ping", vec![]).unwrap(), json!("pong"));
    let me = c.call("auth.me", vec![]).unwrap();
    assert_eq!(me["pw_name"], "nobody");
    assert_eq!(me["privilege"]["roles"], json!([]));
    let own = c
        .call("user.twofactor_config", vec![json!("nobody")])
        .unwrap();
    assert_eq!(own["secret_configured"], false);
    let e = rpc_error(c.call("user.twofactor_config", vec![json!(ADMIN.0)]));
    assert_eq!(
        e.data.expect("data").error.0,
        1,
        "EPERM for another account"
    );
    let ok = c
        .call(
            "auth.login_ex",
            vec![json!({"mechanism": "PASSWORD_PLAIN", "username": ADMIN.0, "password": ADMIN.1})],
        )
        .unwrap();
    assert_eq!(ok["response_type"], "SUCCESS");
    assert_eq!(c.call("auth.twofactor.config", vec![]).unwrap()["id"], 1);
    assert_eq!(c.call("auth.me", vec![]).unwrap()["pw_name"], ADMIN.0);
    println!(
        "ok: uid {} was itself with user rights until it logged in as {}",
        api::host::current_uid(),
        ADMIN.0
    );
}
