//! What `tfa`'s own C entry point (`src/main.rs`) and its link options
//! (`build.rs`) must keep of the standard library's start-up: `SIGPIPE`
//! ignored and the exit status (the start-up cost, issue 8 §6). Closed standard descriptors
//! are tested where they matter, over a socket (`tests/remote.rs`).

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

fn tfa(state: &std::path::Path) -> Command {
    if !state.exists() {
        private_dir(state);
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_tfa"));
    c.arg("--state-dir").arg(state).stdin(Stdio::null());
    c
}

/// A new private directory for a state (`--state-dir` names an existing
/// directory unless `--init` is given).
fn private_dir(path: &std::path::Path) {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .expect("mkdir state");
}

/// A reader that has gone away makes writing the output an error that is
/// reported (exit 1), not a `SIGPIPE` that kills `tfa` without a word.
/// (`Command` starts children with `SIGPIPE` at its default: death.)
#[test]
fn a_closed_pipe_is_a_write_error_not_a_signal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = tfa(&state)
        .args(["auth", "two_factor", "config"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run tfa");
    assert_eq!(out.status.signal(), None, "{out:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot write the output"), "{stderr}");
}

/// The exit status still maps as before: a usage error is 2, a failure 1,
/// success 0, and `--version` prints the version.
#[test]
fn exit_statuses_and_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let version = tfa(&state).arg("--version").output().expect("run tfa");
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("tfa {}\n", env!("CARGO_PKG_VERSION"))
    );
    let usage = tfa(&state)
        .args(["-c", "auth", "auth"])
        .output()
        .expect("run tfa");
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
    let failed = tfa(&state)
        .args(["auth", "two_factor", "no_such_command"])
        .output()
        .expect("run tfa");
    assert_ne!(failed.status.code(), Some(0), "{failed:?}");
    assert_eq!(failed.status.signal(), None, "{failed:?}");
}

/// `tfa` stays a position-independent executable (ELF type `ET_DYN`), so
/// ASLR moves its own image too: administrators run it as root. Linking it
/// at a fixed address saved ~90 us of relocations at start-up and was
/// refused for that reason (issue 8 §6).
#[test]
fn tfa_is_position_independent() {
    let mut header = [0u8; 18];
    std::fs::File::open(env!("CARGO_BIN_EXE_tfa"))
        .and_then(|mut f| f.read_exact(&mut header))
        .expect("read the ELF header of tfa");
    assert_eq!(&header[..4], b"\x7fELF");
    const ET_DYN: u16 = 3;
    assert_eq!(u16::from_le_bytes([header[16], header[17]]), ET_DYN);
}

/// The shared libraries the dynamic loader maps at every start: libc, the
/// unwinder and (in debug builds) the loader itself, no libm. (libm came
/// with SQLite's full-text search, whose ranking calls `log`;
/// `.cargo/config.toml` builds SQLite without it.)
#[test]
fn tfa_needs_only_libc_and_the_unwinder() {
    if !common::external("readelf", &["--version"], "apt-get install binutils") {
        return;
    }
    let out = Command::new("readelf")
        .args(["--dynamic", env!("CARGO_BIN_EXE_tfa")])
        .output()
        .expect("run readelf");
    assert!(out.status.success(), "{out:?}");
    let needed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.trim_end_matches(']').to_owned()))
        .collect();
    let expected = ["libgcc_s.so.1", "libc.so.6", "ld-linux-x86-64.so.2"];
    assert!(
        needed.iter().all(|n| expected.contains(&n.as_str())),
        "{needed:?}"
    );
}
