//! The generated completion scripts, run in the shells themselves: bash's
//! completion function is called as bash calls it (COMP_WORDS split at
//! `=` as bash splits them), with this build's `tfa` first on PATH.

use std::path::Path;
use std::process::Command;

/// What `_tfa` puts in COMPREPLY for the words bash would hand it (the
/// last word is the one completed).
fn bash_complete(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("tfa.bash");
    std::fs::write(&script, cli::complete::BASH).expect("script");
    let bin = Path::new(env!("CARGO_BIN_EXE_tfa"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let line = words.join(" ").replace(" = ", "=").replace(" =", "=");
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect();
    let program = format!(
        "source {script}\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n\
         _tfa\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script = script.display(),
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(&program)
        .env("PATH", path)
        .env("HOME", dir.path())
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_the_command_tree_as_the_shell_does() {
    assert_eq!(bash_complete(&["tfa", "aut"]), ["auth"]);
    assert_eq!(bash_complete(&["tfa", "au"]), ["audit", "auth"]);
    assert_eq!(bash_complete(&["tfa", "auth", "tw"]), ["two_factor"]);
    assert_eq!(
        bash_complete(&["tfa", "auth", "two_factor", "renew"]),
        ["renew_secret"]
    );
    // Global options before the command are skipped; their values too.
    assert_eq!(
        bash_complete(&["tfa", "-m", "json", "auth", "two_factor", "conf"]),
        ["config"]
    );
    assert_eq!(bash_complete(&["tfa", "-m", "j"]), ["json"]);
    assert_eq!(bash_complete(&["tfa", "--sta"]), ["--state-dir"]);
}

#[test]
fn bash_completes_argument_names_and_values() {
    assert_eq!(
        bash_complete(&["tfa", "auth", "two_factor", "update", "enab"]),
        ["enabled="]
    );
    // bash splits `enabled=t` into `enabled`, `=`, `t`.
    assert_eq!(
        bash_complete(&["tfa", "auth", "two_factor", "update", "enabled", "=", "t"]),
        ["true"]
    );
    assert_eq!(
        bash_complete(&["tfa", "auth", "two_factor", "update", "enabled", "="]),
        ["true", "false"]
    );
    assert_eq!(
        bash_complete(&["tfa", "account", "user", "twofactor_config", "user"]),
        ["username="]
    );
}

#[test]
fn the_candidates_are_the_interactive_shells() {
    let out = Command::new(env!("CARGO_BIN_EXE_tfa"))
        .args([
            "--complete-words",
            "--",
            "auth two_factor update otp_digits=",
        ])
        .output()
        .expect("tfa");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "otp_digits=6\n");
    assert!(out.stderr.is_empty(), "{out:?}");
}
