//! The web page's HTTP surface without a browser: the files at `/ui/` and
//! the redirect to them, the safety headers on every response, the
//! `Origin` rule of WebSocket upgrades, HTTPS with a test certificate made
//! here by the `openssl` command, and the start-up warning for a listener
//! reachable from the network without TLS.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::{Fixture, TIMEOUT, need, path_str, python};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// An HTTP answer: status, headers (lower-case names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Sends `request` (a whole HTTP/1.1 request) and reads the answer's head,
/// and its body unless it is an upgrade.
fn exchange(addr: &str, request: &str) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"));
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').expect("a header line");
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let mut body = Vec::new();
    if status != 101 {
        let len: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        body.resize(len, 0);
        reader.read_exact(&mut body).expect("body");
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn get(addr: &str, path: &str) -> Answer {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

fn upgrade(addr: &str, origin: Option<&str>) -> Answer {
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    exchange(
        addr,
        &format!(
            "GET /api/current HTTP/1.1\r\nHost: {addr}\r\n{origin}Connection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    )
}

fn assert_safety_headers(what: &str, a: &Answer) {
    assert_eq!(
        a.headers.get("content-security-policy").map(String::as_str),
        Some(CSP),
        "{what}: {a:?}"
    );
    assert_eq!(
        a.headers.get("x-content-type-options").map(String::as_str),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        a.headers.get("referrer-policy").map(String::as_str),
        Some("no-referrer"),
        "{what}"
    );
}

#[test]
fn the_page_is_served_with_the_safety_headers_on_every_response() {
    let f = Fixture::new();
    let d = f.start();
    let addr = d.tcp_addr();

    let root = get(addr, "/");
    assert!(matches!(root.status, 301..=308), "{root:?}");
    assert_eq!(root.headers["location"], "/ui/");
    let bare = get(addr, "/ui");
    assert_eq!(bare.headers["location"], "/ui/", "{bare:?}");

    let page = get(addr, "/ui/");
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].starts_with("text/html"));
    let html = String::from_utf8(page.body.clone()).expect("UTF-8");
    assert!(
        html.contains("<script type=\"module\" src=\"js/main.js\""),
        "{html}"
    );
    // Files named by the page are there, with their types.
    for (path, kind) in [
        ("/ui/app.css", "text/css"),
        ("/ui/js/main.js", "text/javascript"),
        ("/ui/js/rpc.js", "text/javascript"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let a = get(addr, path);
        assert_eq!(a.status, 200, "{path}");
        assert!(a.headers["content-type"].starts_with(kind), "{path}: {a:?}");
        assert!(!a.body.is_empty(), "{path}");
        assert_safety_headers(path, &a);
    }
    let missing = get(addr, "/ui/nothing.js");
    assert_eq!(missing.status, 404);
    let outside = get(addr, "/ui/../Cargo.toml");
    assert_ne!(outside.status, 200);
    let versions = get(addr, "/api/versions");
    assert_eq!(versions.status, 200);
    let ws = upgrade(addr, None);
    assert_eq!(ws.status, 101, "{ws:?}");
    for (what, a) in [
        ("redirect", &root),
        ("page", &page),
        ("404", &missing),
        ("versions", &versions),
        ("upgrade", &ws),
        ("unknown path", &get(addr, "/nothing")),
    ] {
        assert_safety_headers(what, a);
        assert!(
            !a.headers.contains_key("strict-transport-security"),
            "no HSTS without TLS"
        );
    }
    assert!(
        !d.log().contains("not on a loopback address"),
        "loopback: no warning"
    );
}

#[test]
fn a_websocket_upgrade_from_a_foreign_origin_is_refused() {
    let f = Fixture::new();
    let d = f.start();
    let addr = d.tcp_addr();
    for foreign in ["http://evil.example", "null", &format!("https://{addr}")] {
        let a = upgrade(addr, Some(foreign));
        assert_eq!(a.status, 403, "{foreign}: {a:?}");
        assert_safety_headers("refusal", &a);
    }
    // The page's own origin, and clients that send none.
    assert_eq!(upgrade(addr, Some(&format!("http://{addr}"))).status, 101);
    assert_eq!(upgrade(addr, None).status, 101);
}

/// A self-signed certificate for `localhost` and 127.0.0.1, by `openssl`.
pub fn test_certificate(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .map_err(|e| format!("openssl: {e}"))
        .map(drop);
    need("openssl", found)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl")
        .success();
    assert!(ok, "openssl req failed");
    Some((cert, key))
}

#[test]
fn https_with_a_test_certificate_serves_the_page_and_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((cert, key)) = test_certificate(dir.path()) else {
        return;
    };
    let Some(python) = need("python3 with websocket-client", python()) else {
        return;
    };
    let f = Fixture::new().with_config(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        path_str(&cert),
        path_str(&key)
    ));
    let d = f.start();
    let port = d.tcp_addr().rsplit(':').next().expect("port").to_owned();
    let curl = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--http1.1",
            "--dump-header",
            "-",
        ])
        .arg("--cacert")
        .arg(&cert)
        .arg(format!("https://localhost:{port}/ui/"))
        .output()
        .expect("run curl");
    let out = String::from_utf8_lossy(&curl.stdout).to_ascii_lowercase();
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert!(out.starts_with("http/1.1 200"), "{out}");
    assert!(out.contains("strict-transport-security: max-age="), "{out}");
    assert!(
        out.contains("content-security-policy: default-src 'none'"),
        "{out}"
    );
    // Plain HTTP on the TLS port gets no page.
    let plain = Command::new("curl")
        .args(["--silent", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/ui/"))
        .output()
        .expect("run curl");
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("<html"));
    // The API over wss://, the certificate checked.
    let script = "import json, ssl, sys, websocket\n\
        ws = websocket.create_connection(sys.argv[1], sslopt={'ca_certs': sys.argv[2]}, origin=sys.argv[3])\n\
        ws.send(json.dumps({'jsonrpc': '2.0', 'id': 1, 'method': 'core.ping'}))\n\
        print(json.loads(ws.recv())['result'])\n";
    let ping = Command::new(python)
        .args(["-c", script])
        .arg(format!("wss://localhost:{port}/api/current"))
        .arg(&cert)
        .arg(format!("https://localhost:{port}"))
        .output()
        .expect("run python");
    assert_eq!(
        String::from_utf8_lossy(&ping.stdout).trim(),
        "pong",
        "{}",
        String::from_utf8_lossy(&ping.stderr)
    );
}

#[test]
fn a_listener_off_loopback_without_tls_warns_at_start() {
    let f = Fixture::new();
    let config = f.dir.path().join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_twofactord"))
        .arg("--state-dir")
        .arg(&f.state)
        .arg("--socket")
        .arg(&f.socket)
        .args(["--listen", "0.0.0.0:0", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn twofactord");
    let stderr = child.stderr.take().expect("stderr");
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("log line");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(" listening ") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("not on a loopback address and has no TLS"),
        "{seen}"
    );
}
