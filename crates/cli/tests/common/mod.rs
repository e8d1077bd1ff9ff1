//! Helpers shared by the CLI's integration tests.

use std::process::Command;

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
