//! The shape of the built module: the symbols libpam looks up, and the
//! dependencies it must not drag into sshd.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::process::Command;

use common::{Tool, have_tools};

#[test]
fn the_module_exports_the_pam_entry_points() {
    if !have_tools("exports test", &[Tool::Nm]) {
        return;
    }
    let text = stdout_of(
        Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(common::module()),
    );
    let exported: Vec<&str> = text
        .lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [_, "T", name] => Some(name),
            _ => None,
        })
        .collect();
    for symbol in ["pam_sm_authenticate", "pam_sm_setcred", "pam_sm_acct_mgmt"] {
        assert!(
            exported.contains(&symbol),
            "{symbol} not exported: {exported:?}"
        );
    }
    // Nothing else of ours leaks into the application's symbol space.
    let ours: Vec<&&str> = exported.iter().filter(|s| s.starts_with("pam_")).collect();
    assert_eq!(ours.len(), 3, "{ours:?}");
}

#[test]
fn the_module_links_no_async_runtime_and_no_openssl() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tree = stdout_of(
        Command::new(cargo)
            .args([
                "tree", "-p", "pam", "-e", "normal", "--prefix", "none", "--quiet",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    );
    assert!(
        tree.lines().any(|l| l.starts_with("client ")),
        "cargo tree lists the client:\n{tree}"
    );
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(
            !matches!(
                name,
                "tokio" | "async-std" | "smol" | "mio" | "openssl" | "openssl-sys" | "native-tls"
            ),
            "the PAM module must not link {name}:\n{tree}"
        );
    }
}

/// Runs `cmd`, which must succeed, and returns its standard output.
fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
