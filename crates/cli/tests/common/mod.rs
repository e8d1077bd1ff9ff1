//! Helpers shared by the CLI's integration tests.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the helpers"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether an external program runs (`program probe…` succeeds); a missing
/// one fails the test, saying how to `install` it, unless
/// `TFA_SKIP_EXTERNAL=1`.
pub fn external(program: &str, probe: &[&str], install: &str) -> bool {
    let found = Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if found.is_ok_and(|s| s.success()) {
        return true;
    }
    if std::env::var("TFA_SKIP_EXTERNAL").as_deref() == Ok("1") {
        eprintln!("skipping: {program} is not available (TFA_SKIP_EXTERNAL=1)");
        return false;
    }
    panic!(
        "`{program} {}` failed: {install} or set TFA_SKIP_EXTERNAL=1",
        probe.join(" ")
    );
}

/// A file under `tests/golden/`.
pub fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// The pinned text of golden file `name`; with `UPDATE_GOLDEN` set, `actual`
/// is written there first.
pub fn golden(name: &str, actual: &str) -> String {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
    }
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The current TOTP code of a base32 `secret`, as `oathtool --totp` prints it.
pub fn oathtool_totp(secret: &str) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .expect("oathtool");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}
