//! The `tfa` binary against careless or hostile input: QR files written only
//! as regular files, out-of-range time-outs, and shell history that never
//! keeps a password. Embedded mode, a fresh state directory each.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Tfa {
    dir: tempfile::TempDir,
}

impl Tfa {
    fn new() -> Self {
        let t = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        private_dir(&t.path("state"));
        t
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tfa"));
        c.arg("--state-dir").arg(self.path("state"));
        c.env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.path("data"))
            .env_remove("NO_COLOR")
            .env_remove("TFA_PASSWORD")
            .env_remove("TFA_OTP")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run tfa")
    }

    fn enable(&self) {
        let out = self.run(&["auth", "two_factor", "update", "enabled=true"]);
        assert!(out.status.success(), "{out:?}");
    }
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether an external program runs; a missing one fails the test unless
/// `TFA_SKIP_EXTERNAL=1`.
fn external(program: &str, probe: &[&str]) -> bool {
    common::external(program, probe, "install it")
}

/// What a path is, without following a final link, and what it holds when
/// it is a regular file or a link (its target).
fn snapshot(path: &Path) -> (String, Option<Vec<u8>>) {
    let meta = std::fs::symlink_metadata(path).expect("exists");
    let kind = format!("{:?}", meta.file_type());
    let content = if meta.file_type().is_symlink() {
        Some(
            std::fs::read_link(path)
                .expect("link")
                .into_os_string()
                .into_encoded_bytes(),
        )
    } else if meta.file_type().is_file() {
        Some(std::fs::read(path).expect("read"))
    } else {
        None
    };
    (kind, content)
}

/// `--png`/`--svg` write only regular files: a link (to a file or
/// dangling), a FIFO, a device or a directory is refused by name, exit 1,
/// and nothing is written, not even the other file or a temporary one.
#[test]
fn qr_files_are_written_only_as_regular_files() {
    use std::os::unix::fs::symlink;
    let t = Tfa::new();
    t.enable();
    let files = t.path("files");
    std::fs::create_dir(&files).expect("mkdir");
    let target = files.join("target.txt");
    std::fs::write(&target, "keep me").expect("write");
    symlink(&target, files.join("link-to-file")).expect("symlink");
    symlink(files.join("nowhere"), files.join("dangling")).expect("symlink");
    std::fs::create_dir(files.join("dir")).expect("mkdir");
    if external("mkfifo", &["--version"]) {
        let status = Command::new("mkfifo")
            .arg(files.join("fifo"))
            .status()
            .expect("mkfifo");
        assert!(status.success());
    }
    let listing = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing(&files);

    let mut cases: Vec<(PathBuf, &str)> = vec![
        (files.join("link-to-file"), "a symbolic link"),
        (files.join("dangling"), "a symbolic link"),
        (files.join("dir"), "a directory"),
        (PathBuf::from("/dev/null"), "a character device"),
        (PathBuf::from("/dev/full"), "a character device"),
    ];
    if files.join("fifo").exists() {
        cases.push((files.join("fifo"), "a FIFO"));
    }
    for (path, kind) in cases {
        let was = snapshot(&path);
        for option in ["--png", "--svg"] {
            // The other file is a fine new path: it must not be written either.
            let other = files.join("other.img");
            let other_option = if option == "--png" { "--svg" } else { "--png" };
            let out = t.run(&[
                "auth",
                "two_factor",
                "provisioning_uri",
                option,
                path.to_str().expect("utf-8"),
                other_option,
                other.to_str().expect("utf-8"),
            ]);
            let stderr = text(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{option} {}: {stderr}",
                path.display()
            );
            assert!(
                stderr.contains(&path.display().to_string()) && stderr.contains(kind),
                "{option} {}: {stderr}",
                path.display()
            );
            assert_eq!(snapshot(&path), was, "{option} {} changed", path.display());
            assert!(
                !other.exists(),
                "{option} {}: the other file was written",
                path.display()
            );
        }
    }
    assert_eq!(std::fs::read(&target).expect("read"), b"keep me");
    assert!(!files.join("nowhere").exists());
    assert_eq!(listing(&files), before, "no file appeared");

    // A regular file is replaced (a new file, mode 0600); a new one is 0600.
    use std::os::unix::fs::PermissionsExt;
    let old = files.join("old.svg");
    std::fs::write(&old, "old").expect("write");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let new = files.join("new.png");
    let out = t.run(&[
        "auth",
        "two_factor",
        "provisioning_uri",
        "--svg",
        old.to_str().expect("utf-8"),
        "--png",
        new.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::read_to_string(&old).expect("svg").contains("<svg"));
    for path in [&old, &new] {
        let mode = std::fs::metadata(path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
}

/// `--timeout` takes seconds in (0, 86400]: anything else is a usage error
/// (exit 2) that names the value, not a panic (1e19 overflowed a clock).
#[test]
fn out_of_range_timeouts_are_usage_errors() {
    let t = Tfa::new();
    for bad in ["1e19", "1e300", "inf", "NaN", "0", "-1", "86400.5", "ten"] {
        let out = t.run(&["--timeout", bad, "auth", "two_factor", "config"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains(&format!("`{bad}`")), "{bad}: {stderr}");
        assert!(!stderr.contains("panicked"), "{bad}: {stderr}");
    }
    for good in ["0.5", "86400"] {
        let out = t.run(&["--timeout", good, "auth", "two_factor", "config"]);
        assert!(out.status.success(), "{good}: {out:?}");
    }
    // Over a socket too (where the time-out is used): nobody listens.
    let url = format!("ws+unix://{}", t.path("none.sock").display());
    let out = Command::new(env!("CARGO_BIN_EXE_tfa"))
        .stdin(Stdio::null())
        .args([
            "--url",
            &url,
            "--timeout",
            "86400",
            "auth",
            "two_factor",
            "config",
        ])
        .output()
        .expect("run tfa");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!text(&out.stderr).contains("panicked"), "{out:?}");
}

/// Typed into the interactive shell (on a terminal), a login with its
/// password never reaches the history file; an ordinary command does.
#[test]
fn shell_history_keeps_no_password() {
    if !external("python3", &["-c", "import pty"]) {
        return;
    }
    let t = Tfa::new();
    let lines = [
        "auth two_factor config",
        "call auth.login root hunter2",
        r#"call auth.login_ex {"mechanism": "PASSWORD_PLAIN", "username": "root", "password": "hunter3"}"#,
        r#"call auth.login_ex_continue {"mechanism": "OTP_TOKEN", "otp_token": "123456"}"#,
        "auth two_factor",
    ];
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pty/drive.py");
    let tfa = t.command();
    let program = tfa.get_program().to_owned();
    let mut child = Command::new("python3")
        .arg(&driver)
        .arg("> ")
        .arg(&program)
        .args(tfa.get_args())
        .envs(tfa.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env_remove("NO_COLOR")
        .env_remove("TFA_PASSWORD")
        .env_remove("TFA_OTP")
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.join("\n").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let history = t.path("data/twofactor/tfa_history");
    let kept = std::fs::read_to_string(&history).expect("a history file");
    assert!(kept.contains("auth two_factor config"), "{kept}");
    for secret in ["hunter2", "hunter3", "123456", "auth.login"] {
        assert!(!kept.contains(secret), "{secret} in history: {kept}");
    }
}
