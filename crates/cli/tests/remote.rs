//! The remote mode end to end: `tfa` talks to a stand-in daemon — the real
//! API behind a WebSocket on a Unix socket, served from this test process —
//! through the `client` crate: `--url ws+unix://`, the default socket named
//! by the configuration file, and `--user` logins with password and code.

mod common;

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use client::wire;
use serde_json::{Value, json};
use service::{Account, Accounts, PasswordCheck};

/// Alice is an administrator (group wheel) whose password is "pw".
#[derive(Debug)]
struct Users;

fn alice() -> Account {
    Account {
        name: "alice".into(),
        group_names: vec!["wheel".into()],
        ..Account::bare(1000)
    }
}

impl Accounts for Users {
    fn by_name(&self, name: &str) -> Option<Account> {
        (name == "alice").then(alice)
    }
    fn by_uid(&self, uid: u32) -> Option<Account> {
        (uid == 1000)
            .then(alice)
            .or_else(|| Some(Account::bare(uid)))
    }
}

impl PasswordCheck for Users {
    fn check(&self, user: &str, password: &secrecy::SecretString, _: Option<&str>) -> bool {
        use secrecy::ExposeSecret;
        user == "alice" && password.expose_secret() == "pw"
    }
}

struct Daemon {
    dir: tempfile::TempDir,
    socket: PathBuf,
    api: api::Api,
}

/// Serves one connection: every text message is a call on `session`.
fn serve(api: api::Api, stream: UnixStream, peer_uid: u32) {
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    let session = api.unix_session(peer_uid, None);
    while let Ok(msg) = ws.read() {
        let Ok(text) = msg.to_text() else { break };
        if text.is_empty() {
            continue;
        }
        let reply = match wire::parse_incoming(text) {
            wire::Incoming::Call(req) => {
                let id = req.id.unwrap_or_default();
                match api.call(&session, &req.method, req.params) {
                    Ok(v) => wire::response_ok(&id, v),
                    Err(e) => wire::response_error(&id, &e.to_rpc()),
                }
            }
            wire::Incoming::Reject { id, error } => wire::response_error(&id, &error),
            wire::Incoming::Ignore => continue,
        };
        if ws
            .send(tungstenite::Message::text(reply.to_string()))
            .is_err()
        {
            break;
        }
    }
}

impl Daemon {
    /// Peers are treated as uid `peer_uid` (0: root, logged in at once).
    fn start(peer_uid: u32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = api::host::Config::defaults();
        config.state_dir = dir.path().join("daemon-state");
        config.admin_group = Some("wheel".into());
        let api = api::Api::open(&config, Arc::new(Users), Arc::new(Users)).expect("api");
        let socket = dir.path().join("twofactord.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let served = api.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let api = served.clone();
                std::thread::spawn(move || serve(api, stream, peer_uid));
            }
        });
        Self { dir, socket, api }
    }

    fn url(&self) -> String {
        format!("ws+unix://{}", self.socket.display())
    }

    /// Calls the API directly, as root.
    fn root_call(&self, method: &str, params: Vec<Value>) -> Value {
        let session = self.api.embedded_session(0);
        self.api.call(&session, method, params).expect("root call")
    }

    fn tfa(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tfa"));
        c.args(args)
            .env("HOME", self.dir.path())
            .env_remove("TFA_PASSWORD")
            .env_remove("TFA_OTP")
            .stdin(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run tfa");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).expect("utf-8"),
            String::from_utf8(out.stderr).expect("utf-8"),
        )
    }

    fn write_config(&self, socket: &Path) -> PathBuf {
        let path = self.dir.path().join("tfa.toml");
        let mut f = std::fs::File::create(&path).expect("config");
        writeln!(f, "socket = {:?}", socket.display().to_string()).expect("write");
        writeln!(
            f,
            "state_dir = {:?}",
            self.dir.path().join("embedded-state").display().to_string()
        )
        .expect("write");
        path
    }
}

fn golden(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    std::fs::read_to_string(path).expect("golden")
}

#[test]
fn url_to_the_unix_socket() {
    let d = Daemon::start(0);
    let url = d.url();
    let (status, out, err) = d.tfa(&["--url", &url, "auth", "two_factor", "config"], &[]);
    assert_eq!(
        (status, out, err),
        (0, golden("config_default.txt"), String::new())
    );
    let (status, _, err) = d.tfa(&["--url", &url, "auth", "two_factor", "renew_secret"], &[]);
    assert_eq!((status, err), (1, golden("not_enabled.stderr")));
    let (status, out, _) = d.tfa(
        &[
            "--url",
            &url,
            "call",
            "auth.twofactor.update",
            r#"{"enabled": true}"#,
        ],
        &[],
    );
    assert_eq!(status, 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        d.root_call("auth.twofactor.config", vec![])["secret"],
        v["secret"]
    );
}

/// `status` through a daemon: the daemon's state, and where it was reached.
#[test]
fn status_through_the_daemon() {
    let d = Daemon::start(0);
    let url = d.url();
    let (status, out, err) = d.tfa(&["--url", &url, "-m", "json", "status"], &[]);
    assert_eq!((status, err.as_str()), (0, ""), "{out}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["mode"], "daemon");
    assert_eq!(v["url"], url.as_str());
    assert_eq!(v["enabled"], false);
    let (status, out, _) = d.tfa(&["--url", &url, "status"], &[]);
    assert_eq!(status, 0);
    assert!(
        out.starts_with(&format!("mode:                daemon at {url}")),
        "{out}"
    );
}

#[test]
fn the_default_socket_is_used_when_a_daemon_answers() {
    let d = Daemon::start(0);
    d.root_call("auth.twofactor.update", vec![json!({"enabled": true})]);
    let config = d.write_config(&d.socket);
    let config = config.to_str().expect("utf-8 path");
    let (status, out, _) = d.tfa(
        &[
            "--config",
            config,
            "-m",
            "json",
            "auth",
            "two_factor",
            "config",
        ],
        &[],
    );
    assert_eq!(status, 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["enabled"], json!(true), "served by the daemon");
    // No socket there: the embedded mode on the configured state directory.
    let config = d.write_config(&d.dir.path().join("nothing.sock"));
    let config = config.to_str().expect("utf-8 path");
    let (status, out, _) = d.tfa(&["--config", config, "auth", "two_factor", "config"], &[]);
    assert_eq!((status, out), (0, golden("config_default.txt")));
    assert!(d.dir.path().join("embedded-state").is_dir());
    // --config names a file that must exist.
    let (status, _, err) = d.tfa(
        &[
            "--config",
            "/nonexistent/tfa.toml",
            "auth",
            "two_factor",
            "config",
        ],
        &[],
    );
    assert_eq!(status, 1, "{err}");
}

#[test]
fn users_log_in_with_password_and_code() {
    let d = Daemon::start(1000);
    let url = d.url();
    let config = ["--url", url.as_str(), "auth", "two_factor", "config"];
    // On the socket alice is herself with a user's rights:
    // administrator rights need the password; introspection shows her
    // only what she may call.
    let (status, _, err) = d.tfa(&config, &[]);
    assert_eq!(
        (status, err.as_str()),
        (
            2,
            "Namespace auth two_factor is not available to this user: its commands are for administrators\n"
        )
    );
    let (status, out, err) = d.tfa(
        &[
            "--url",
            url.as_str(),
            "-m",
            "json",
            "account",
            "user",
            "twofactor_config",
            "username=alice",
        ],
        &[],
    );
    assert_eq!(status, 0, "{err}");
    let own: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(own["secret_configured"], json!(false));

    let mut args = vec!["--user", "alice"];
    args.extend(config);
    let (status, out, err) = d.tfa(&args, &[("TFA_PASSWORD", "pw")]);
    assert_eq!(
        (status, out, err),
        (0, golden("config_default.txt"), String::new())
    );

    // With 2FA on, the code is asked for after the password.
    let entry = d.root_call(
        "auth.twofactor.update",
        vec![json!({"enabled": true, "window": 1})],
    );
    let root_secret = entry["secret"].as_str().expect("secret").to_owned();
    // The code asked is alice's own.
    let renewed = d.root_call("user.renew_2fa_secret", vec![json!("alice")]);
    let uri = renewed["twofactor_config"]["provisioning_uri"]
        .as_str()
        .expect("uri");
    let secret = uri
        .split_once("secret=")
        .and_then(|(_, rest)| rest.split('&').next())
        .expect("secret parameter")
        .to_owned();
    let (status, _, err) = d.tfa(&args, &[("TFA_PASSWORD", "pw"), ("TFA_OTP", "000000")]);
    assert_eq!(
        (status, err.as_str()),
        (1, "Error: Login failed: wrong verification code\n")
    );
    // A code of the wrong shape is refused like a wrong one, and the
    // reason said: how many digits the app's code has.
    for typo in ["12345", "12345a"] {
        let (status, _, err) = d.tfa(&args, &[("TFA_PASSWORD", "pw"), ("TFA_OTP", typo)]);
        assert_eq!(
            (status, err.as_str()),
            (
                1,
                "expected 6 digits\nError: Login failed: wrong verification code\n"
            ),
            "{typo}"
        );
    }
    if common::external("oathtool", &["--version"], "apt-get install oathtool") {
        let code = common::oathtool_totp(&secret);
        let (status, out, err) = d.tfa(&args, &[("TFA_PASSWORD", "pw"), ("TFA_OTP", &code)]);
        assert_eq!((status, err), (0, String::new()));
        assert!(out.contains(&root_secret), "{out}");
    }
    let (status, _, err) = d.tfa(&args, &[("TFA_PASSWORD", "wrong")]);
    assert_eq!(
        (status, err.as_str()),
        (1, "Error: Login failed: wrong user name or password\n")
    );
}

/// Started with standard output closed, `tfa` has `/dev/null` there (its
/// own `main` does what the standard library's start-up did): the socket
/// to the daemon does not become descriptor 1, so the output of the first
/// command of a script is not written into the WebSocket stream, and the
/// second command still gets its answer.
#[test]
fn a_closed_standard_output_never_becomes_the_socket() {
    let d = Daemon::start(0);
    let mut child = Command::new("sh")
        .args([
            "-c",
            "exec \"$0\" --url \"$1\" >&-",
            env!("CARGO_BIN_EXE_tfa"),
        ])
        .arg(d.url())
        .env("HOME", d.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"auth two_factor config\nauth two_factor config\n")
        .expect("write the script");
    let out = child.wait_with_output().expect("wait for tfa");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}
