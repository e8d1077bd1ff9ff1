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

/// Whether `shell` runs; else the test fails unless TFA_SKIP_EXTERNAL=1.
fn have(shell: &str) -> bool {
    let ok = Command::new(shell)
        .args(["-c", "exit 0"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var("TFA_SKIP_EXTERNAL").is_ok_and(|v| v == "1"),
        "{shell} is needed (apt-get install {shell})"
    );
    ok
}

/// PATH with this build's `tfa` first.
fn path_with_tfa() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_tfa"))
        .parent()
        .expect("bin dir")
        .to_owned();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// fish's own completion machinery (`complete -C`) with the script loaded.
fn fish_complete(line: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("tfa.fish");
    std::fs::write(&script, cli::complete::FISH).expect("script");
    let out = Command::new("fish")
        .arg("--no-config")
        .arg("-c")
        .arg(format!(
            "source {}; complete -C {}",
            script.display(),
            shell_quote(line)
        ))
        .env("PATH", path_with_tfa())
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .output()
        .expect("fish runs");
    assert!(out.status.success(), "{out:?}");
    let mut found: Vec<String> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .collect();
    found.sort();
    found
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn fish_completes_from_tfa() {
    if !have("fish") {
        return;
    }
    assert_eq!(fish_complete("tfa aut"), ["auth"]);
    assert_eq!(fish_complete("tfa auth tw"), ["two_factor"]);
    assert_eq!(
        fish_complete("tfa auth two_factor update enabled="),
        ["enabled=false", "enabled=true"]
    );
}

/// The zsh function run in zsh, with `compadd` (zsh's completion
/// builtin, loaded only in an interactive completion) standing in as a
/// function that prints the candidates it is given.
fn zsh_complete(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("_tfa");
    std::fs::write(&script, cli::complete::ZSH).expect("script");
    let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
    let program = format!(
        "compadd() {{ while [[ $# -gt 0 ]]; do case $1 in -Q) ;; -S) shift ;; --) ;; *) print -r -- \"$1\" ;; esac; shift; done }}\n\
         source {} 2>/dev/null\nwords=({})\nCURRENT={}\n_tfa\n",
        script.display(),
        quoted.join(" "),
        words.len()
    );
    let out = Command::new("zsh")
        .arg("-f")
        .arg("-c")
        .arg(program)
        .env("PATH", path_with_tfa())
        .env("HOME", dir.path())
        .output()
        .expect("zsh runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn zsh_completes_from_tfa() {
    if !have("zsh") {
        return;
    }
    assert_eq!(zsh_complete(&["tfa", "aut"]), ["auth"]);
    assert_eq!(
        zsh_complete(&["tfa", "auth", "two_factor", "update", "ena"]),
        ["enabled="]
    );
}
