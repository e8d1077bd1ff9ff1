//! End-to-end tests of the `tfa` binary in the embedded mode, on a fresh
//! state directory each. Deterministic output is compared byte for byte
//! with the files in `tests/golden/` (`UPDATE_GOLDEN=1` rewrites them);
//! secrets and codes change between runs and are checked with independent
//! tools instead: python3 pyotp, oathtool, zbarimg. A missing tool fails the
//! test with a clear message unless `TFA_SKIP_EXTERNAL=1`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{golden, golden_path};

struct Tfa {
    dir: tempfile::TempDir,
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Self {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
        }
    }

    #[track_caller]
    fn ok(self) -> String {
        assert_eq!(
            self.status, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stderr, "");
        self.stdout
    }
}

impl Tfa {
    fn new() -> Self {
        let t = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        private_dir(&t.state());
        t
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tfa"));
        c.arg("--state-dir").arg(self.state());
        c.env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env_remove("NO_COLOR")
            .env_remove("TFA_PASSWORD")
            .env_remove("TFA_OTP")
            .stdin(Stdio::null());
        c
    }

    /// `tfa --state-dir DIR ARGS...`
    fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command().args(args).output().expect("run tfa"))
    }

    /// `tfa auth two_factor ARGS...`
    fn tf(&self, args: &str) -> Run {
        let mut all = vec!["auth", "two_factor"];
        all.extend(args.split(' ').filter(|a| !a.is_empty()));
        self.run(&all)
    }

    /// Commands on standard input.
    fn script(&self, extra: &[&str], input: &str) -> Run {
        let mut c = self.command();
        c.args(extra);
        self.script_with(c, input)
    }

    /// Commands on standard input of `c`.
    fn script_with(&self, mut c: Command, input: &str) -> Run {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tfa");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        Run::from(child.wait_with_output().expect("wait tfa"))
    }

    fn enable(&self) -> String {
        let r = self.tf("update enabled=true window=1");
        assert_eq!((r.status, r.stdout.as_str()), (0, ""), "{}", r.stderr);
        // The first time a secret is made: what to do next, on stderr.
        if !r.stderr.is_empty() {
            assert_eq!(r.stderr, NEW_SECRET_NOTE);
        }
        secret_of(&self.tf("config").ok())
    }
}

/// What `update enabled=true` says on standard error when it made a secret.
const NEW_SECRET_NOTE: &str = "A new secret was made: scan it into the authenticator app with \
                               `tfa auth two_factor provisioning_uri --qr`\n";

/// A new private directory for a state (`--state-dir` names an existing
/// directory unless `--init` is given).
fn private_dir(path: &std::path::Path) {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .expect("mkdir state");
}

#[track_caller]
fn assert_golden(name: &str, actual: &str) {
    let expected = golden(name, actual);
    assert!(
        expected == actual,
        "{name} differs\n--- expected\n{expected}--- actual\n{actual}---"
    );
}

/// The secret's row of a `config` table.
fn secret_of(table: &str) -> String {
    let row = table
        .lines()
        .find(|l| l.contains(" secret |"))
        .expect("secret row");
    row.split('|').nth(2).expect("value cell").trim().to_owned()
}

/// Whether an external tool can be used; a missing one fails the test
/// unless TFA_SKIP_EXTERNAL=1.
fn external(program: &str, probe: &[&str]) -> bool {
    common::external(
        program,
        probe,
        "install it (oathtool, zbar-tools, python3 with pyotp)",
    )
}

fn piped(program: &str, args: &[&str], input: &str) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn default_config_is_the_seed_table() {
    let t = Tfa::new();
    let out = t.tf("config").ok();
    assert_golden("config_default.txt", &out);
    assert_eq!(t.run(&["-c", "auth two_factor config"]).ok(), out);
    assert_eq!(
        t.run(&["auth two_factor config"]).ok(),
        out,
        "one quoted argument"
    );
}

#[test]
fn acceptance_update_reports_every_problem_and_changes_nothing() {
    let t = Tfa::new();
    let r = t.run(&[
        "auth",
        "two_factor",
        "update",
        "otp_digits=5",
        "window=-1",
        "interval=2",
        r#"services={"ftp": true}"#,
        "enable=true",
    ]);
    assert_eq!(r.status, 1);
    assert_eq!(r.stdout, "");
    assert_golden("update_invalid.stderr", &r.stderr);
    assert_eq!(r.stderr.matches("Validation errors:").count(), 1);
    assert_eq!(r.stderr.lines().filter(|l| l.starts_with("* ")).count(), 5);
    // The same line typed in a script (JSON with spaces in one word).
    let s = t.script(&[], "auth two_factor update otp_digits=5 window=-1 interval=2 services={\"ftp\": true} enable=true\n");
    assert_eq!((s.status, s.stderr), (1, r.stderr));
    assert_golden("config_default.txt", &t.tf("config").ok());
}

#[test]
fn misspelled_argument_is_a_usage_error_with_a_suggestion() {
    let t = Tfa::new();
    let r = t.tf("update enable=true");
    assert_eq!((r.status, r.stdout.as_str()), (2, ""));
    assert_golden("enable_suggestion.stderr", &r.stderr);
    let r = t.tf("verify tokne=123456");
    assert_eq!(r.status, 2);
    assert_eq!(
        r.stderr,
        "Unknown argument `tokne`: did you mean `token`?\n"
    );
    assert_golden("config_default.txt", &t.tf("config").ok());
}

#[test]
fn unknown_command_suggests_the_nearest() {
    let t = Tfa::new();
    let r = t.tf("uodate enabled=true");
    assert_eq!((r.status, r.stdout.as_str()), (2, ""));
    assert_golden("unknown_command.stderr", &r.stderr);
    let r = t.run(&["-c", "auth two_factr config"]);
    assert_eq!(r.status, 2);
    assert_eq!(
        r.stderr,
        "Namespace two_factr not found\nDid you mean `two_factor`?\n"
    );
}

#[test]
fn renew_and_verify_need_2fa_enabled() {
    let t = Tfa::new();
    for args in ["renew_secret", r#"verify token="123456""#] {
        let r = t.tf(args);
        assert_eq!((r.status, r.stdout.as_str()), (1, ""), "{args}");
        assert_golden("not_enabled.stderr", &r.stderr);
    }
    let r = t.tf("provisioning_uri");
    assert_eq!(r.status, 1);
    assert_eq!(
        r.stderr,
        "Error: Two Factor Authentication secret has not been generated. Enable Two Factor Authentication first.\n"
    );
}

#[test]
fn enabling_generates_a_base32_secret() {
    let t = Tfa::new();
    let secret = t.enable();
    assert_eq!(secret.len(), 32, "{secret}");
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "{secret}"
    );
    let r = t.tf("renew_secret");
    assert_eq!((r.status, r.stdout.as_str()), (0, "true\n"));
    // What to do next, on standard error.
    assert_eq!(
        r.stderr,
        "A new secret was made: every authenticator app must scan it again: \
         `tfa auth two_factor provisioning_uri --qr`\n"
    );
    let renewed = secret_of(&t.tf("config").ok());
    assert_ne!(renewed, secret);
    // Disabling keeps the secret.
    assert_eq!(t.tf("update enabled=false").ok(), "");
    assert_eq!(secret_of(&t.tf("config").ok()), renewed);
}

#[test]
fn provisioning_uri_is_whole_and_parses_with_pyotp() {
    let t = Tfa::new();
    let secret = t.enable();
    let uri = t.tf("provisioning_uri").ok();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.ends_with('\n') && uri.lines().count() == 1,
        "{uri}"
    );
    assert!(
        uri.contains("&digits=6") && uri.contains("&period=30"),
        "{uri}"
    );
    if external("python3", &["-c", "import pyotp"]) {
        let parsed = piped(
            "python3",
            &[
                "-c",
                "import pyotp,sys; print(pyotp.parse_uri(sys.stdin.read().strip()).secret)",
            ],
            &uri,
        );
        assert_eq!(parsed.trim(), secret);
    }
}

#[test]
fn codes_from_oathtool_are_accepted_once() {
    let t = Tfa::new();
    let secret = t.enable();
    if !external("oathtool", &["--version"]) {
        return;
    }
    let code = common::oathtool_totp(&secret);
    assert_eq!(code.len(), 6);
    // window=1 (set by enable()) keeps a step boundary from flaking this.
    assert_eq!(t.tf(&format!("verify token={code}")).ok(), "true\n");
    assert_eq!(
        t.tf(&format!("verify token={code}")).ok(),
        "false\n",
        "replayed"
    );
}

#[test]
fn tokens_stay_strings() {
    let t = Tfa::new();
    t.enable();
    // A leading zero survives (as a number 12345 the API would refuse it).
    assert_eq!(t.tf("verify token=012345").ok(), "false\n");
    assert_eq!(t.tf("verify 000000").ok(), "false\n");
    assert_eq!(t.tf("verify token = null").ok(), "false\n");
}

#[test]
fn png_and_svg_files_decode_to_the_uri() {
    let t = Tfa::new();
    t.enable();
    let png = t.dir.path().join("qr.png");
    let svg = t.dir.path().join("qr.svg");
    let uri = t
        .tf(&format!(
            "provisioning_uri --png {} --svg {}",
            png.display(),
            svg.display()
        ))
        .ok();
    assert!(std::fs::read_to_string(&svg).expect("svg").contains("<svg"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&png).expect("png").permissions().mode() & 0o777,
        0o600,
        "holds the secret"
    );
    if external("zbarimg", &["--version"]) {
        let out = Command::new("zbarimg")
            .args(["--quiet", "--raw"])
            .arg(&png)
            .output()
            .expect("zbarimg");
        assert_eq!(String::from_utf8(out.stdout).expect("utf-8"), uri);
    }
}

/// Reads the half-block drawing back into pixels and lets zbarimg decode it.
/// Into a pipe it has no colour codes: the blocks are the light modules.
#[test]
fn terminal_qr_code_decodes_to_the_uri() {
    let t = Tfa::new();
    t.enable();
    let out = t.tf("provisioning_uri --qr").ok();
    assert!(!out.contains('\x1b'), "colour codes into a pipe: {out:?}");
    let (uri, drawing) = out.split_once('\n').expect("uri line");
    let mut rows: Vec<Vec<bool>> = Vec::new();
    for line in drawing.lines() {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in line.chars() {
            let (a, b) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected {other:?}"),
            };
            top.push(!a);
            bottom.push(!b);
        }
        rows.push(top);
        rows.push(bottom);
    }
    let size = rows[0].len();
    // The half line after an odd number of rows is no module.
    rows.truncate(size);
    // Four light modules of quiet zone on every side.
    for r in rows.iter().take(4).chain(rows.iter().rev().take(4)) {
        assert!(r.iter().all(|d| !d));
    }
    assert!(
        rows.iter()
            .all(|r| r.len() == size && r[..4].iter().chain(&r[size - 4..]).all(|d| !d))
    );
    if !external("zbarimg", &["--version"]) {
        return;
    }
    let scale = 6;
    let mut pixels = Vec::new();
    for r in &rows {
        for _ in 0..scale {
            for &dark in r {
                pixels.extend(std::iter::repeat_n(if dark { 0u8 } else { 255 }, scale));
            }
        }
    }
    let path = t.dir.path().join("terminal.png");
    let file = std::fs::File::create(&path).expect("create");
    let (w, h) = ((size * scale) as u32, (rows.len() * scale) as u32);
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .expect("header")
        .write_image_data(&pixels)
        .expect("pixels");
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&path)
        .output()
        .expect("zbarimg");
    assert_eq!(
        String::from_utf8(out.stdout).expect("utf-8").trim_end(),
        uri
    );
}

#[test]
fn scripts_on_stdin_run_every_line_without_prompts() {
    let t = Tfa::new();
    let r = t.script(
        &[],
        "auth two_factor\nconfig\n.mode csv\nconfig\n..\n/\n.mode json\nauth two_factor config\n",
    );
    let mut expected = std::fs::read_to_string(golden_path("config_default.txt")).expect("golden");
    expected.push_str(&std::fs::read_to_string(golden_path("config_default.csv")).expect("golden"));
    expected
        .push_str(&std::fs::read_to_string(golden_path("config_default.json")).expect("golden"));
    assert_eq!(r.ok(), expected);
    // A failing line does not stop the script; the status says it failed.
    let r = t.script(
        &[],
        "auth two_factor uodate\nauth two_factor renew_secret\nauth two_factor update window=2\n",
    );
    assert_eq!(r.status, 1);
    assert_eq!(
        r.stderr,
        "Namespace uodate not found\nDid you mean `update`?\nError: Please enable Two Factor Authentication first.\n"
    );
    assert!(t.tf("config").ok().contains("|     window | 2 "));
}

#[test]
fn output_modes() {
    let t = Tfa::new();
    assert_golden(
        "config_default.json",
        &t.run(&["-m", "json", "auth", "two_factor", "config"]).ok(),
    );
    assert_golden(
        "config_default.csv",
        &t.run(&["--mode", "csv", "auth", "two_factor", "config"])
            .ok(),
    );
    assert_eq!(
        t.run(&["-m", "xml", "auth", "two_factor", "config"]).status,
        2
    );
}

#[test]
fn raw_calls_print_json() {
    let t = Tfa::new();
    let out = t.run(&["call", "auth.twofactor.config"]).ok();
    assert_golden("config_default.json", &out);
    let out = t
        .run(&[
            "call",
            "auth.twofactor.update",
            r#"{"enabled": true, "window": 1}"#,
        ])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (v["enabled"].as_bool(), v["window"].as_i64()),
        (Some(true), Some(1))
    );
    let out = t
        .run(&["call", "auth.twofactor.update", r#"{"enabled": false}"#])
        .ok();
    assert!(out.contains("\"enabled\": false"));
    let r = t.run(&["call", "auth.twofactor.verify"]);
    assert_eq!(
        (r.status, r.stderr.as_str()),
        (1, "Validation errors:\n* token: attribute required\n")
    );
    let r = t.run(&["call", "no.such.method"]);
    assert_eq!(
        (r.status, r.stderr.as_str()),
        (1, "Error: Method does not exist\n")
    );
}

#[test]
fn changing_digits_says_to_provision_again() {
    let t = Tfa::new();
    t.enable();
    let r = t.tf("update otp_digits=8");
    assert_eq!((r.status, r.stdout.as_str()), (0, ""));
    assert_eq!(
        r.stderr,
        "Note: otp_digits 6 -> 8 changed: authenticator apps must be provisioned again (`tfa auth two_factor provisioning_uri --qr`).\n"
    );
    assert_eq!(
        t.tf("update otp_digits=8 window=0").ok(),
        "",
        "nothing changed"
    );
    assert!(t.tf("provisioning_uri").ok().contains("&digits=8&"));
}

#[test]
fn usage_errors_exit_2() {
    let t = Tfa::new();
    assert_eq!(t.run(&["-c", "auth two_factor config", "extra"]).status, 2);
    assert_eq!(
        t.run(&["-c", "auth two_factor update services={"]).status,
        2
    );
    assert_eq!(t.run(&["--bogus"]).status, 2);
    assert_eq!(t.tf("config --qr").status, 2);
    let r = t.run(&["auth", "two_factor"]);
    assert!(
        r.ok().contains("provisioning_uri"),
        "a namespace lists its commands"
    );
}

/// Issue 7, item 10: `1.0`, `10.0`, `1e1`, `7.0` are not integers; nothing
/// changes (SPEC §3: JSON integers and strings of decimal digits only).
#[test]
fn integral_floats_are_refused_and_change_nothing() {
    let t = Tfa::new();
    for (arg, key) in [
        ("window=1.0", "window"),
        ("interval=10.0", "interval"),
        ("window=1e1", "window"),
        ("otp_digits=7.0", "otp_digits"),
    ] {
        let r = t.tf(&format!("update {arg}"));
        assert_eq!((r.status, r.stdout.as_str()), (1, ""), "{arg}");
        assert_eq!(
            r.stderr,
            format!("Validation errors:\n* auth_twofactor_update.{key}: Not an integer\n"),
            "{arg}"
        );
    }
    assert_golden("config_default.txt", &t.tf("config").ok());
    // A digit string still is an integer.
    assert_eq!(t.tf("update window=\"2\"").status, 0);
    let out = t.run(&["-m", "json", "auth", "two_factor", "config"]).ok();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["window"],
        2
    );
}

/// Issue 7, item 6: a user name with ESC, BEL and CR, sent to `login_ex`,
/// reaches the audit records; `audit query` shows it escaped in table and
/// csv modes (JSON escapes it by itself) and no row can be forged.
#[test]
fn control_characters_from_the_server_are_shown_escaped() {
    let t = Tfa::new();
    let login = r#"{"mechanism": "PASSWORD_PLAIN", "username": "\u001b[2J\u0007evil\r| 9 | forged\n+", "password": "x"}"#;
    let r = t.run(&["call", "auth.login_ex", login]);
    assert!(r.ok().contains("AUTH_ERR"));
    let shown = "\\x1b[2J\\x07evil\\r| 9 | forged\\n+";
    let raw = |out: &str| {
        out.chars()
            .any(|c| c.is_control() && c != '\n' && !(c == '\r' && out.contains("\r\n")))
    };
    let table = t.run(&["audit", "query"]).ok();
    assert!(!raw(&table), "{table:?}");
    assert!(table.contains(shown), "{table}");
    assert_eq!(table.lines().count(), 5, "one record, one row: {table}");
    let csv = t.run(&["-m", "csv", "audit", "query"]).ok();
    assert!(!raw(&csv), "{csv:?}");
    assert!(csv.contains(shown), "{csv}");
    assert_eq!(
        csv.matches("\r\n").count(),
        2,
        "header and one row: {csv:?}"
    );
    let json = t.run(&["-m", "json", "audit", "query"]).ok();
    assert!(
        json.contains(r"\u001b[2J\u0007evil\r| 9 | forged\n+"),
        "{json}"
    );
}

/// Issue 10: `auth two_factor ls` lists the namespace, as midcli does.
#[test]
fn ls_after_a_namespace_lists_it() {
    let t = Tfa::new();
    let listed = t.run(&["-c", "auth two_factor ls"]);
    assert_eq!(listed.status, 0, "{}", listed.stderr);
    assert_eq!(listed.stdout, t.run(&["-c", "ls auth two_factor"]).ok());
    for command in [
        "config",
        "provisioning_uri",
        "renew_secret",
        "update",
        "verify",
    ] {
        assert!(
            listed.stdout.lines().any(|l| l.starts_with(command)),
            "{command}: {}",
            listed.stdout
        );
    }
}

/// A key file without its database is a lost state: refused with the reason
/// and the way out; `--init` starts afresh; a fresh directory just works.
#[test]
fn a_lost_database_is_refused_until_init() {
    let t = Tfa::new();
    // Fresh: an empty directory, and it just works.
    assert_eq!(std::fs::read_dir(t.state()).expect("ls").count(), 0);
    t.enable();
    for how in ["deleted", "truncated"] {
        let db = t.state().join("twofactor.db");
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(t.state().join(format!("twofactor.db{suffix}")));
        }
        if how == "deleted" {
            std::fs::remove_file(&db).expect("rm db");
        } else {
            std::fs::write(&db, b"").expect("truncate db");
        }
        let r = t.tf("config");
        assert_eq!(r.status, 1, "{how}: {}", r.stdout);
        assert!(
            r.stderr.contains("the two-factor state was lost") && r.stderr.contains("--init"),
            "{how}: {}",
            r.stderr
        );
        assert_eq!(r.stdout, "");
        // Nothing was created by the refused run.
        assert_eq!(db.exists(), how == "truncated");
        let out = t
            .run(&["--init", "-m", "json", "auth", "two_factor", "config"])
            .ok();
        let entry: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(entry["enabled"], false, "{out}");
        assert_eq!(entry["secret"], serde_json::Value::Null, "{out}");
        t.enable();
    }
}

#[test]
fn a_damaged_database_says_so_instead_of_internal_error() {
    let t = Tfa::new();
    t.enable();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(t.state().join(format!("twofactor.db{suffix}")));
    }
    let garbage: Vec<u8> = (0..16384u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(t.state().join("twofactor.db"), garbage).expect("garbage");
    let r = t.tf("config");
    assert_eq!(r.status, 1);
    assert!(
        r.stderr.contains("database file is damaged") && r.stderr.contains("from a backup"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Internal error"), "{}", r.stderr);
}

#[test]
fn a_state_directory_open_to_others_is_refused_and_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let t = Tfa::new();
    for mode in [0o755, 0o1777] {
        std::fs::set_permissions(t.state(), std::fs::Permissions::from_mode(mode)).expect("chmod");
        let r = t.tf("config");
        assert_eq!(r.status, 1);
        assert!(
            r.stderr.contains(&t.state().display().to_string())
                && r.stderr.contains(&format!("{mode:04o}")),
            "{}",
            r.stderr
        );
        let after = std::fs::metadata(t.state())
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(after, mode, "the mode was changed");
        assert_eq!(
            std::fs::read_dir(t.state()).expect("ls").count(),
            0,
            "files were created"
        );
    }
}

/// A configuration naming a socket where no daemon listens and a state
/// directory, for the runs without `--state-dir`.
fn no_daemon_config(t: &Tfa) -> (PathBuf, PathBuf, PathBuf) {
    let socket = t.dir.path().join("none.sock");
    let state = t.dir.path().join("fallback-state");
    let config = t.dir.path().join("tfa.toml");
    std::fs::write(
        &config,
        format!(
            "socket = {:?}\nstate_dir = {:?}\n",
            socket.display().to_string(),
            state.display().to_string()
        ),
    )
    .expect("config");
    (config, socket, state)
}

/// Without `--state-dir`, falling back to the embedded mode says so, once,
/// on standard error; with it, nothing is said.
#[test]
fn the_embedded_fallback_says_which_state_once() {
    let t = Tfa::new();
    let (config, socket, state) = no_daemon_config(&t);
    let mut c = Command::new(env!("CARGO_BIN_EXE_tfa"));
    c.arg("--config").arg(&config).env("HOME", t.dir.path());
    let r = t.script_with(c, "auth two_factor config\nstatus\n");
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "no daemon at {}; working on the local state in {}\n",
            socket.display(),
            state.display()
        )
    );
    assert!(r.stdout.contains("otp_digits"), "{}", r.stdout);
    // With --state-dir, the state was chosen: no notice.
    assert_eq!(t.run(&["auth", "two_factor", "config"]).stderr, "");
}

/// For a user other than root the fallback is refused, with the same text
/// and what to do; nothing is created.
#[test]
fn the_embedded_fallback_is_refused_for_other_users() {
    use std::os::unix::fs::PermissionsExt;
    if Path::new("/run/twofactor/twofactord.sock").exists() {
        eprintln!("a system daemon answers on /run/twofactor: not testable here");
        return;
    }
    let t = Tfa::new();
    let (config, _, state) = no_daemon_config(&t);
    // A copy of tfa and the files uid 65534 can reach.
    let tfa = t.dir.path().join("tfa");
    std::fs::copy(env!("CARGO_BIN_EXE_tfa"), &tfa).expect("copy tfa");
    for (path, mode) in [
        (t.dir.path(), 0o777),
        (tfa.as_path(), 0o755),
        (config.as_path(), 0o644),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&tfa)
        .arg("--config")
        .arg(&config)
        .args(["auth", "two_factor", "update", "enabled=true"])
        .env("HOME", t.dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux) runs tfa as uid 65534");
    let r = Run::from(out);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!(
            "Error: no daemon at /run/twofactor/twofactord.sock; working on the local state in {} \
             is refused for a user other than root\nHint: start the daemon",
            state.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    assert!(!state.exists(), "nothing was created");
}

#[test]
fn a_missing_state_directory_is_an_error_unless_init() {
    let t = Tfa::new();
    let typo = t.dir.path().join("stat");
    let mut c = Command::new(env!("CARGO_BIN_EXE_tfa"));
    c.arg("--state-dir")
        .arg(&typo)
        .args(["auth", "two_factor", "config"]);
    let r = Run::from(c.output().expect("tfa"));
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "--state-dir {}: no such directory (give --init as well to start a new state there)\n",
            typo.display()
        )
    );
    assert!(!typo.exists());
    let mut c = Command::new(env!("CARGO_BIN_EXE_tfa"));
    c.arg("--state-dir")
        .arg(&typo)
        .arg("--init")
        .args(["auth", "two_factor", "config"]);
    let r = Run::from(c.output().expect("tfa"));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(typo.join("twofactor.db").exists());
}

#[test]
fn unknown_options_are_errors_about_options() {
    let t = Tfa::new();
    let r = t.run(&["--nope"]);
    assert_eq!(r.status, 2);
    assert_eq!(r.stderr, "Unknown option `--nope` (see tfa --help)\n");
    let r = t.run(&["-x", "auth"]);
    assert_eq!(r.status, 2);
    assert!(r.stderr.starts_with("Unknown option `-x`"), "{}", r.stderr);
}

#[test]
fn status_as_text_and_json() {
    let t = Tfa::new();
    t.enable();
    let text = t.run(&["status"]).ok();
    assert!(
        text.starts_with(&format!(
            "mode:                embedded, state in {}\n",
            t.state().display()
        )),
        "{text}"
    );
    assert!(text.contains("two-factor:          on\n"), "{text}");
    let json = t.run(&["-m", "json", "status"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["enabled"], true);
    assert_eq!(v["accounts_with_secret"], 1);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
}
