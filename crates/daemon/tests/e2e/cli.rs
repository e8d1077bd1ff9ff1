//! `tfa` against a real `twofactord`: issue 3's acceptance through the
//! README's own client. The CLI is built here (an integration test of this
//! crate cannot name another package's binary).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::harness::{ADMIN, Fixture, Wrappers, need, path_str};

/// `target/<profile>/tfa`, built once per test binary.
pub(crate) fn tfa_binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let profile = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().and_then(Path::parent).map(Path::to_path_buf))
            .expect("test binary in target/<profile>/deps");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "cli", "--bin", "tfa"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("run cargo build");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile.join("tfa")
    })
    .clone()
}

fn tfa(url: &str, line: &[&str]) -> Output {
    Command::new(tfa_binary())
        .arg("--url")
        .arg(url)
        .args(line)
        .output()
        .expect("run tfa")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn tfa_through_the_daemon_shows_the_seed_table_and_root_is_never_locked_out() {
    let f = Fixture::new();
    let d = f.start();
    let url = format!("ws+unix://{}", path_str(&d.socket));
    let golden = include_str!("../../../cli/tests/golden/config_default.txt");
    let out = tfa(&url, &["auth", "two_factor", "config"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), golden);

    // Window 1: the right code, taken before six `tfa` runs, still passes
    // when a 30 s step ends meanwhile (window 0 failed then, by the clock).
    let out = tfa(
        &url,
        &["auth", "two_factor", "update", "enabled=true", "window=1"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entry = d
        .root()
        .call("auth.twofactor.config", vec![])
        .expect("config");
    let secret = entry["secret"].as_str().expect("secret").to_owned();
    let right = crate::harness::totp(&secret, 6, 30, 0);
    let wrong = crate::harness::wrong_code(&secret);
    // Root on the Unix socket is never locked out (SPEC 6.3).
    for i in 0..6 {
        let out = tfa(
            &url,
            &["auth", "two_factor", "verify", &format!("token={wrong}")],
        );
        assert_eq!(text(&out.stdout), "false\n", "wrong code {i}");
    }
    let out = tfa(
        &url,
        &["auth", "two_factor", "verify", &format!("token={right}")],
    );
    assert_eq!(text(&out.stdout), "true\n", "{}", text(&out.stderr));
    let out = tfa(&url, &["audit", "query"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert_eq!(table.matches("| wrong ").count(), 6, "{table}");
    assert!(
        !table.contains(&secret) && !table.contains(&right),
        "no secret or code in the audit"
    );
}

/// An administrator logged in over TCP is one origin among others: five
/// wrong codes lock it out, and `tfa` shows the EBUSY message.
#[test]
fn tfa_over_tcp_shows_the_lockout() {
    let Some(w) = need("pam_wrapper/nss_wrapper", Wrappers::find()) else {
        return;
    };
    let f = Fixture::new().with_accounts(&w);
    let d = f.start();
    let mut root = d.root();
    let secret = crate::harness::enable(&mut root);
    let login_code = crate::harness::totp(&secret, 6, 30, 0);
    let next = crate::harness::totp(&secret, 6, 30, 1);
    let wrong = crate::harness::wrong_code(&secret);
    let mut script = String::new();
    for _ in 0..5 {
        script.push_str(&format!("auth two_factor verify token={wrong}\n"));
    }
    script.push_str(&format!("auth two_factor verify token={next}\n"));
    let mut child = Command::new(tfa_binary())
        .args(["--url", &d.tcp_url(), "--user", ADMIN.0])
        .env("TFA_PASSWORD", ADMIN.1)
        .env("TFA_OTP", &login_code)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tfa");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), script.as_bytes())
        .expect("script");
    let out = child.wait_with_output().expect("tfa");
    assert_eq!(
        text(&out.stdout),
        "false\n".repeat(5),
        "{}",
        text(&out.stderr)
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("Error: Too many failed attempts; try again in ")
            && err.trim_end().ends_with(" seconds"),
        "{err}"
    );
    let lockouts = root
        .call(
            "audit.query",
            vec![serde_json::json!({"event": "otp.lockout"})],
        )
        .expect("audit");
    // Every loopback address is one origin.
    assert_eq!(lockouts[0]["detail"]["origin"], "loopback", "{lockouts}");
}
