//! Per-user secrets end to end (issue 9, SPEC §9-10): two real accounts
//! (nss_wrapper) with their own secrets at API login, `tfa` run as alice
//! on the Unix socket with no password, recovery codes, what lands in the
//! database files, and an account recreated with a new uid.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::cli::tfa_binary;
use crate::harness::{
    ALICE, ALICE_UID, BOB, Fixture, accounts_daemon, code, enable, login, need, own_secret,
    path_str, rpc_error, totp, uri_secret, wrong_code,
};

/// Every byte of every file in the state directory.
fn state_bytes(f: &Fixture) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(&f.state).expect("state dir") {
        all.extend(std::fs::read(e.expect("entry").path()).expect("read"));
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn each_user_logs_in_with_their_own_code_and_bobs_failures_stop_nobody_else() {
    let Some((f, d)) = accounts_daemon() else {
        return;
    };
    let mut root = d.root();
    let root_secret = enable(&mut root);
    root.call(
        "auth.twofactor.update",
        vec![json!({"services": {"ssh": true}})],
    )
    .unwrap();
    let alice = own_secret(&mut root, ALICE.0);
    let bob = own_secret(&mut root, BOB.0);
    assert!(alice != bob && alice != root_secret);

    // bob's code does not open alice's login; alice's does.
    let mut c = d.tcp();
    assert_eq!(
        login(&mut c, ALICE),
        json!({"response_type": "OTP_REQUIRED", "username": "alice"})
    );
    let bobs = totp(&bob, 6, 30, 0);
    if bobs != totp(&alice, 6, 30, 0) {
        assert_eq!(
            code(&mut c, &bobs).unwrap()["response_type"],
            "OTP_REQUIRED"
        );
    }
    let ok = code(&mut c, &totp(&alice, 6, 30, 0)).unwrap();
    assert_eq!(ok["response_type"], "SUCCESS");
    assert_eq!(ok["user_info"]["pw_name"], "alice");
    assert_eq!(
        ok["user_info"]["two_factor_config"]["secret_configured"],
        true
    );

    // bob: five wrong codes from this address lock bob's secret here ...
    let wrong = wrong_code(&bob);
    let mut c = d.tcp();
    for round in [3, 2] {
        assert_eq!(login(&mut c, BOB)["response_type"], "OTP_REQUIRED");
        for _ in 0..round {
            let _ = code(&mut c, &wrong).unwrap();
        }
    }
    assert_eq!(login(&mut c, BOB)["response_type"], "OTP_REQUIRED");
    let e = rpc_error(code(&mut c, &totp(&bob, 6, 30, 0)));
    assert_eq!(e.data.expect("data").errname, "EBUSY");
    // ... but alice still logs in from it, and root's code is still good.
    let mut c = d.tcp();
    assert_eq!(login(&mut c, ALICE)["response_type"], "OTP_REQUIRED");
    assert_eq!(
        code(&mut c, &totp(&alice, 6, 30, 1)).unwrap()["response_type"],
        "SUCCESS"
    );
    let root_check = root
        .call(
            "auth.twofactor.pam_check",
            vec![
                json!("root"),
                json!("sshd"),
                json!("127.0.0.1"),
                json!(totp(&root_secret, 6, 30, 0)),
            ],
        )
        .unwrap();
    assert_eq!(root_check["outcome"], "accepted", "{root_check}");

    // A recovery code logs alice in once over login_ex_continue.
    let codes = root
        .call("user.generate_2fa_recovery_codes", vec![json!(ALICE.0)])
        .unwrap();
    let codes: Vec<String> = codes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let mut c = d.tcp();
    assert_eq!(login(&mut c, ALICE)["response_type"], "OTP_REQUIRED");
    assert_eq!(code(&mut c, &codes[0]).unwrap()["response_type"], "SUCCESS");
    let mut c = d.tcp();
    assert_eq!(login(&mut c, ALICE)["response_type"], "OTP_REQUIRED");
    assert_eq!(
        code(&mut c, &codes[0]).unwrap()["response_type"],
        "OTP_REQUIRED"
    );
    let left = root
        .call("user.twofactor_config", vec![json!(ALICE.0)])
        .unwrap()["recovery_codes_left"]
        .clone();
    assert_eq!(left, 9);
    let used = root
        .call("audit.query", vec![json!({"outcome": "recovery_code"})])
        .unwrap();
    assert_eq!(used[0]["detail"]["note"], "recovery code used (9 left)");
    // Regenerating revokes the old ones.
    let fresh = root
        .call("user.generate_2fa_recovery_codes", vec![json!(ALICE.0)])
        .unwrap();
    let mut c = d.tcp();
    assert_eq!(login(&mut c, ALICE)["response_type"], "OTP_REQUIRED");
    assert_eq!(
        code(&mut c, &codes[1]).unwrap()["response_type"],
        "OTP_REQUIRED"
    );

    // Neither the codes, nor what their hashes are made of, nor a secret is
    // in the state's files.
    drop(c);
    let bytes = state_bytes(&f);
    let fresh: Vec<String> = fresh
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    for rc in codes.iter().chain(fresh.iter()) {
        assert!(
            !contains(&bytes, rc) && !contains(&bytes, &rc.replace('-', "")),
            "a recovery code is on disk"
        );
    }
    for s in [&alice, &bob, &root_secret] {
        assert!(!contains(&bytes, s), "a secret is on disk");
    }
}

/// `tfa` as uid `uid` (setpriv), copied where that uid can run it.
fn tfa_as(f: &Fixture, uid: u32, url: &str, args: &[&str]) -> Output {
    let exe = f.dir.path().join("tfa-copy");
    if !exe.exists() {
        std::fs::copy(tfa_binary(), &exe).expect("copy tfa");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            "--",
        ])
        .arg(&exe)
        .args(["--url", url])
        .args(args)
        .env("HOME", "/")
        .output()
        .expect("run tfa as another uid")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `tfa ARGS…` as alice, which must succeed.
fn alice_ok(f: &Fixture, url: &str, args: &[&str]) -> Output {
    let out = tfa_as(f, ALICE_UID, url, args);
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// `tfa -m json account user ARGS…` as alice, which must succeed; its JSON.
fn alice_json(f: &Fixture, url: &str, args: &[&str]) -> Value {
    let line: Vec<&str> = ["-m", "json", "account", "user"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let out = alice_ok(f, url, &line);
    serde_json::from_str(&stdout(&out)).expect("json")
}

/// `tfa -m json` as alice reading `lines` from standard input (one
/// connection), which must succeed; each command's JSON answer.
fn alice_lines(f: &Fixture, url: &str, lines: &str) -> Vec<Value> {
    use std::io::Write;
    let exe = f.dir.path().join("tfa-copy");
    if !exe.exists() {
        std::fs::copy(tfa_binary(), &exe).expect("copy tfa");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut child = Command::new("setpriv")
        .args([
            &format!("--reuid={ALICE_UID}"),
            &format!("--regid={ALICE_UID}"),
            "--clear-groups",
            "--",
        ])
        .arg(&exe)
        .args(["--url", url, "-m", "json"])
        .env("HOME", "/")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tfa as alice");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write lines");
    let out = child.wait_with_output().expect("tfa");
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("json answers")
}

/// `tfa ARGS…` as alice, which must fail saying `why` on stderr.
fn alice_refused(f: &Fixture, url: &str, args: &[&str], why: &str) {
    let out = tfa_as(f, ALICE_UID, url, args);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(why), "{}", stderr(&out));
}

#[test]
fn alice_manages_her_own_second_factor_with_tfa_and_no_password() {
    let Some((f, d)) = accounts_daemon() else {
        return;
    };
    if need(
        "setpriv (util-linux)",
        Command::new("setpriv")
            .arg("--version")
            .output()
            .map_err(|e| e.to_string()),
    )
    .is_none()
    {
        return;
    }
    let mut root = d.root();
    enable(&mut root);
    own_secret(&mut root, BOB.0);
    std::fs::set_permissions(
        d.socket.parent().expect("socket dir"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let url = format!("ws+unix://{}", path_str(&d.socket));

    // Enrol: a pending secret, confirmed with a code of it.
    let pending = alice_json(&f, &url, &["twofactor_enroll", "username=alice"]);
    let uri = pending["provisioning_uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    assert!(uri.starts_with("otpauth://totp/iXsystems:alice-"), "{uri}");
    let secret = uri_secret(&uri);
    let wrong = wrong_code(&secret);
    alice_refused(
        &f,
        &url,
        &[
            "account",
            "user",
            "twofactor_enroll_confirm",
            "username=alice",
            &format!("token={wrong}"),
        ],
        "Invalid code; the pending secret stays pending",
    );
    // Confirmed, then on the same connection (one tfa reading its lines
    // from standard input) her URI and recovery codes: the confirming code
    // proved the secret. Another connection must prove it again.
    let answers = alice_lines(
        &f,
        &url,
        &format!(
            "account user twofactor_enroll_confirm username=alice token={}\n\
             account user provisioning_uri username=alice --no-qr\n\
             account user generate_2fa_recovery_codes username=alice\n",
            totp(&secret, 6, 30, 0)
        ),
    );
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(answers[0]["twofactor_auth_configured"], true);
    let codes = answers[2].clone();
    assert_eq!(codes.as_array().map(Vec::len), Some(10));
    alice_refused(
        &f,
        &url,
        &["account", "user", "provisioning_uri", "username=alice"],
        "confirm with a current code first",
    );
    let printed = answers[1].as_str().expect("uri").to_owned();
    let png = f.dir.path().join("alice.png");
    assert_eq!(printed, uri);
    let out = Command::new(tfa_binary())
        .args([
            "--url",
            &url,
            "account",
            "user",
            "provisioning_uri",
            "username=alice",
            "--no-qr",
            "--png",
            path_str(&png),
        ])
        .output()
        .expect("tfa");
    assert!(out.status.success(), "{}", stderr(&out));
    let z = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&png)
        .output()
        .expect("zbarimg (apt: zbar-tools)");
    assert_eq!(
        String::from_utf8_lossy(&z.stdout).trim_end_matches('\n'),
        printed
    );
    let py = Command::new("python3")
        .args(["-c", "import pyotp,sys; t=pyotp.parse_uri(sys.argv[1]); print(t.secret, t.digits, t.interval, t.at(int(sys.argv[2])))", &printed, &crate::harness::now().to_string()])
        .output()
        .expect("python3 with pyotp");
    assert!(py.status.success(), "{}", stderr(&py));
    let parsed = stdout(&py);
    let fields: Vec<&str> = parsed.split_whitespace().collect();
    assert_eq!(fields[..3], [secret.as_str(), "6", "30"]);
    let now_code = totp(&secret, 6, 30, 0);
    assert!(
        fields[3] == now_code || fields[3] == totp(&secret, 6, 30, 1),
        "pyotp's code is ours"
    );

    // Not bob's, not the system's.
    alice_refused(
        &f,
        &url,
        &["account", "user", "twofactor_config", "username=bob"],
        "bob: currently authenticated credential may not read the two-factor settings of this user.",
    );
    let out = tfa_as(
        &f,
        ALICE_UID,
        &url,
        &["account", "user", "renew_2fa_secret", "username=bob"],
    );
    assert!(
        stderr(&out).contains("currently authenticated credential may not renew"),
        "{}",
        stderr(&out)
    );
    // The CLI does not show her the namespace, and says why.
    alice_refused(
        &f,
        &url,
        &["auth", "two_factor", "config"],
        "Namespace auth two_factor is not available to this user: its commands are for administrators",
    );
    // The API refuses it too.
    alice_refused(
        &f,
        &url,
        &["call", "auth.twofactor.update", "{\"enabled\": false}"],
        "Not authorized",
    );
    assert_eq!(
        root.call("auth.twofactor.config", vec![]).unwrap()["enabled"],
        true
    );

    // Her changes are audited as hers.
    let rows = root
        .call(
            "audit.query",
            vec![json!({"event": "user.twofactor_enroll_confirm"})],
        )
        .unwrap();
    assert_eq!(rows[0]["user"], "alice");
    assert!(
        rows[0]["origin"]
            .as_str()
            .unwrap()
            .starts_with(&format!("unix:uid={ALICE_UID}"))
    );
}

#[test]
fn an_account_recreated_with_a_new_uid_is_not_honoured() {
    let Some((f, d)) = accounts_daemon() else {
        return;
    };
    let mut root = d.root();
    enable(&mut root);
    let alice = own_secret(&mut root, ALICE.0);
    let mut c = d.tcp();
    assert_eq!(login(&mut c, ALICE)["response_type"], "OTP_REQUIRED");
    // alice is deleted and a new alice made, with another uid.
    let passwd = f.dir.path().join("passwd");
    let text = std::fs::read_to_string(&passwd).expect("passwd");
    std::fs::write(
        &passwd,
        text.replace("alice:x:2003:2003:", "alice:x:2093:2093:"),
    )
    .expect("passwd");
    // nss_wrapper reloads a file whose modification time moved; within
    // the same second it would not notice.
    let later = std::time::SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(crate::harness::now() + 5);
    std::fs::File::options()
        .write(true)
        .open(&passwd)
        .and_then(|f| f.set_modified(later))
        .expect("touch passwd");
    let mut c = d.tcp();
    let r = login(&mut c, ALICE);
    assert_eq!(
        r["response_type"], "SUCCESS",
        "the old secret is not hers: password alone"
    );
    assert_eq!(r["user_info"]["pw_uid"], 2093);
    assert_eq!(
        r["user_info"]["two_factor_config"]["secret_configured"],
        false
    );
    let old = code(&mut d.tcp(), &totp(&alice, 6, 30, 0));
    assert!(old.is_err(), "no login in progress to take the old code");
    let rows = root
        .call("audit.query", vec![json!({"outcome": "not_configured"})])
        .unwrap();
    assert_eq!(rows[0]["detail"]["secret_uid"], 2003, "{rows}");
    assert_eq!(rows[0]["detail"]["account_uid"], 2093, "{rows}");
}

/// Rewrites a file of the accounts (nss_wrapper's passwd, pam_matrix's
/// passdb) with `from` replaced by `to`, moving its modification time so
/// that nss_wrapper reloads it.
fn edit_accounts_file(path: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read the accounts file");
    assert!(text.contains(from), "{from} in {}", path.display());
    std::fs::write(path, text.replace(from, to)).expect("write the accounts file");
    let later = std::time::SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(crate::harness::now() + 5);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(later))
        .expect("touch the accounts file");
}

/// `userdel alice; useradd -u 2093 alice`: the old account's recovery
/// codes are neither shown nor honoured, and go when the new account gets
/// a secret.
#[test]
fn recovery_codes_of_a_recreated_account_are_not_shown_or_honoured() {
    let Some((f, d)) = accounts_daemon() else {
        return;
    };
    let mut root = d.root();
    enable(&mut root);
    own_secret(&mut root, ALICE.0);
    let codes = root
        .call("user.generate_2fa_recovery_codes", vec![json!("alice")])
        .expect("codes");
    edit_accounts_file(
        &f.dir.path().join("passwd"),
        "alice:x:2003:2003:",
        "alice:x:2093:2093:",
    );
    let config = root
        .call("user.twofactor_config", vec![json!("alice")])
        .expect("config");
    assert_eq!(config["recovery_codes_left"], 0, "{config}");
    let fresh = own_secret(&mut root, ALICE.0);
    let mut c = d.tcp();
    assert_eq!(login(&mut c, ALICE)["response_type"], "OTP_REQUIRED");
    let old = codes[0].as_str().expect("code");
    assert_eq!(code(&mut c, old).unwrap()["response_type"], "OTP_REQUIRED");
    assert_eq!(
        code(&mut c, &totp(&fresh, 6, 30, 0)).unwrap()["response_type"],
        "SUCCESS"
    );
}

/// `usermod -l alicia alice` (same uid): her secret is stored under the
/// former name, so the login is refused with an audited reason -- never
/// let through on the password alone.
#[test]
fn a_renamed_account_fails_closed_with_an_audited_reason() {
    let Some((f, d)) = accounts_daemon() else {
        return;
    };
    let mut root = d.root();
    enable(&mut root);
    own_secret(&mut root, ALICE.0);
    edit_accounts_file(
        &f.dir.path().join("passwd"),
        "alice:x:2003:2003:",
        "alicia:x:2003:2003:",
    );
    edit_accounts_file(&f.dir.path().join("passdb"), "alice:", "alicia:");
    let mut c = d.tcp();
    assert_eq!(
        login(&mut c, ("alicia", ALICE.1)),
        json!({"response_type": "AUTH_ERR"})
    );
    let rows = root
        .call(
            "audit.query",
            vec![json!({"event": "auth.login", "outcome": "refused"})],
        )
        .expect("audit");
    assert_eq!(rows[0]["user"], "alicia", "{rows}");
    assert_eq!(rows[0]["detail"]["names"], json!(["alice"]), "{rows}");
}
