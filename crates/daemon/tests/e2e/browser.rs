//! The web page in a real browser: `tests/py/browser.py` drives headless
//! Chromium over WebDriver (Debian's chromium, chromium-driver and
//! python3-selenium) against this daemon with test accounts (nss_wrapper,
//! pam_matrix), and a second daemon speaking HTTPS with a test
//! certificate. axe-core (the npm package) checks accessibility: the test
//! command installs it and names it in `TFA_AXE_JS`.
//!
//! Screenshots (each page at 1280 px and 360 px, light and dark), the
//! scanned QR code, the downloaded recovery codes and the measured figures
//! are kept under `target/browser-artefacts/`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::harness::{ADMIN, ALICE, BOB, Fixture, USER, Wrappers, need, oathtool, path_str};

const PYTHON: &str = "/usr/bin/python3";
const XSS: (&str, &str) = ("<img src=x onerror=alert(1)>", "xss-pw");

fn tools() -> Result<PathBuf, String> {
    for path in [
        "/usr/bin/chromium",
        "/usr/bin/chromedriver",
        "/usr/bin/zbarimg",
    ] {
        if !std::path::Path::new(path).exists() {
            return Err(format!(
                "{path} is missing (Debian: chromium chromium-driver zbar-tools)"
            ));
        }
    }
    let selenium = Command::new(PYTHON)
        .args(["-c", "import selenium, websocket"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !selenium {
        return Err("python3-selenium or python3-websocket is missing".into());
    }
    // scripts/test installs axe-core under target/test-tools and names it.
    let axe = std::env::var_os("TFA_AXE_JS").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/test-tools/axe-core/node_modules/axe-core/axe.min.js")
        },
        PathBuf::from,
    );
    if !axe.exists() {
        return Err(format!(
            "axe-core: {} does not exist (scripts/test installs it; or set TFA_AXE_JS)",
            axe.display()
        ));
    }
    Ok(axe)
}

/// A TCP port nobody listens on now (kept across the daemon's restart).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Adds the account whose name is HTML to the fixture's files.
fn add_xss_account(f: &Fixture) {
    let d = f.dir.path();
    let append = |file: &str, line: String| {
        let path = d.join(file);
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str(&line);
        std::fs::write(&path, text).expect("write");
    };
    append(
        "passwd",
        format!("{}:x:2005:2005:Markup:/home/x:/bin/sh\n", XSS.0),
    );
    append("group", "xss:x:2005:\n".into());
    append("passdb", format!("{}:{}:twofactord\n", XSS.0, XSS.1));
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[test]
fn the_page_in_a_real_browser() {
    let Some(w) = need("pam_wrapper/nss_wrapper", Wrappers::find()) else {
        return;
    };
    let Some(()) = need("oathtool", oathtool()) else {
        return;
    };
    let Some(axe) = need("a browser, selenium and axe-core", tools()) else {
        return;
    };
    let limits = "[limits]\nlogin_attempts = 1000\n";
    let addr = format!("127.0.0.1:{}", free_port());
    let f = Fixture::new()
        .with_accounts(&w)
        .with_config(limits)
        .with_listen(&addr);
    add_xss_account(&f);
    let mut d = f.start();

    let certs = tempfile::tempdir().expect("tempdir");
    let Some((cert, key)) = crate::web::test_certificate(certs.path()) else {
        return;
    };
    let https = Fixture::new().with_accounts(&w).with_config(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        path_str(&cert),
        path_str(&key)
    ));
    let tls_daemon = https.start();
    let https_port = tls_daemon
        .tcp_addr()
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();

    let artefacts =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artefacts");
    let _ = std::fs::remove_dir_all(&artefacts);
    std::fs::create_dir_all(&artefacts).expect("artefacts dir");
    let idle_rss = rss_kib(d.pid());

    let account = |(n, p): (&str, &str)| serde_json::json!([n, p]);
    let accounts = serde_json::json!({
        "admin": account(ADMIN), "alice": account(ALICE), "bob": account(BOB),
        "plain": account(USER), "xss": account(XSS),
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/browser.py");
    let mut child = Command::new(PYTHON)
        .arg(&script)
        .env("TFA_URL", format!("http://{addr}"))
        .env("TFA_HTTPS_URL", format!("https://localhost:{https_port}"))
        .env("TFA_SOCKET", &f.socket)
        .env("TFA_CLI", crate::cli::tfa_binary())
        .env("TFA_ARTEFACTS", &artefacts)
        .env("TFA_AXE", &axe)
        .env("TFA_ACCOUNTS", accounts.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run browser.py");
    let mut to_script = child.stdin.take().expect("stdin");
    let from_script = BufReader::new(child.stdout.take().expect("stdout"));
    let mut transcript = String::new();
    let mut used_rss = 0;
    for line in from_script.lines() {
        let line = line.expect("a line from browser.py");
        eprintln!("browser.py: {line}");
        transcript.push_str(&line);
        transcript.push('\n');
        if line == "RESTART" {
            used_rss = rss_kib(d.pid());
            d.terminate();
            d = f.start();
            writeln!(to_script, "OK").expect("tell browser.py");
        }
    }
    let status = child.wait().expect("wait for browser.py");
    eprintln!(
        "FIGURES daemon VmRSS: idle before any page {idle_rss} KiB; after serving the page to \
         several sessions {used_rss} KiB"
    );
    std::fs::write(
        artefacts.join("rss.txt"),
        format!("idle_rss_kib={idle_rss}\nafter_page_rss_kib={used_rss}\n"),
    )
    .expect("rss.txt");
    assert!(
        status.success() && transcript.contains("ALL PASSED"),
        "browser.py failed ({status}); transcript:\n{transcript}\ndaemon log:\n{}",
        d.log()
    );
    drop(tls_daemon);
}
