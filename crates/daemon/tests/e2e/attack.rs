//! Found by attacking the merged daemon (issues 7, 10, 11): each test here
//! failed before its fix.

use std::time::{Duration, Instant};

use client::Client;
use serde_json::{Value, json};

use crate::harness::{ADMIN, Fixture, USER, Wrappers, need, pam_exec_module, rate_limited};

fn login_ex(user: &str, password: &str) -> Vec<Value> {
    vec![json!({"mechanism": "PASSWORD_PLAIN", "username": user, "password": password})]
}

/// Logs `c` in as the non-administrator `tfuser`.
fn login_as_user(c: &mut Client) {
    let ok = c
        .call("auth.login_ex", login_ex(USER.0, USER.1))
        .expect("login");
    assert_eq!(ok["response_type"], "SUCCESS", "{ok}");
    let me = c.call("auth.me", vec![]).expect("auth.me");
    assert_eq!(me["privilege"]["roles"], json!([]), "not an administrator");
}

/// A session logged in as a non-administrator was not counted by the
/// per-address login limit ("logged-in sessions are not limited"): any
/// user with a password could guess an administrator's password without
/// limit (60 guesses in 3 s on one connection, 64 connections per address).
/// It is counted with its address like an anonymous session.
#[test]
fn a_logged_in_user_cannot_guess_passwords_without_limit() {
    let Some(w) = need("pam_wrapper/nss_wrapper", Wrappers::find()) else {
        return;
    };
    let f = Fixture::new()
        .with_accounts(&w)
        .with_config("[limits]\nlogin_attempts = 5\nfailed_login_deadline_ms = 0\n");
    let d = f.start();
    let mut c = d.tcp();
    // The user's own login is the first of the address's 5.
    login_as_user(&mut c);
    let ids: Vec<u64> = (0..8)
        .map(|i| {
            c.send_request("auth.login_ex", login_ex(ADMIN.0, &format!("guess{i}")))
                .expect("send")
        })
        .collect();
    let (mut failed, mut refused) = (0, 0);
    for id in ids {
        if rate_limited(c.wait_response(id)) {
            refused += 1;
        } else {
            failed += 1;
        }
    }
    assert_eq!((failed, refused), (4, 4));
    // An administrator is not limited (it could change everything anyway):
    // root on the Unix socket still logs in... as itself, without a limit.
    let mut root = d.root();
    for _ in 0..6 {
        root.call("auth.login_ex", login_ex(ADMIN.0, "wrong"))
            .expect("root is not limited");
    }
}

/// The password checks of a session logged in as a non-administrator ran
/// on the shared blocking pool, not behind the small capacity kept for
/// unauthenticated work: a user with a password could fill the
/// pool with slow wrong logins and stall root's and PAM's blocking calls.
/// With one unauthenticated worker and a PAM stack that takes 200 ms, 10 such
/// checks run one after another (at least 2 s), not all at once (~1 s).
#[test]
fn a_logged_in_users_password_checks_use_the_unauthenticated_capacity() {
    let Some(w) = need("pam_wrapper/nss_wrapper", Wrappers::find()) else {
        return;
    };
    let Some(pam_exec) = need("pam_exec.so (libpam-modules)", pam_exec_module()) else {
        return;
    };
    let f = Fixture::new().with_accounts(&w).with_config(
        "[limits]\nlogin_attempts = 1000\nunauthenticated_workers = 1\nfailed_login_deadline_ms = 0\n",
    );
    let service = f.dir.path().join("pam.d/twofactord");
    let text = std::fs::read_to_string(&service).expect("service file");
    std::fs::write(
        &service,
        format!(
            "auth requisite {} quiet /bin/sleep 0.2\n{text}",
            pam_exec.display()
        ),
    )
    .expect("service file");
    let d = f.start();
    let mut c = d.tcp();
    login_as_user(&mut c);
    let started = Instant::now();
    let ids: Vec<u64> = (0..10)
        .map(|_| {
            c.send_request("auth.login_ex", login_ex(ADMIN.0, "wrong"))
                .expect("send")
        })
        .collect();
    for id in ids {
        assert_eq!(
            c.wait_response(id).expect("answer"),
            json!({"response_type": "AUTH_ERR"})
        );
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "10 slow password checks of a non-administrator ran at once ({took:?})"
    );
}

/// Unfinished upgrade headers were buffered up to hyper's own limit (about
/// 400 KiB) per connection: 1,024 unauthenticated connections (64 from each
/// of 16 loopback addresses) that never ended their headers took the
/// daemon from 18 MB to 326 MB resident. A connection that sends more than
/// `MAX_HANDSHAKE_BYTES` (16 KiB) before its upgrade is closed at once, long
/// before the handshake time-out.
#[test]
fn oversized_upgrade_headers_are_not_buffered() {
    use std::io::{Read, Write};
    let f = Fixture::new().with_config("[limits]\nhandshake_timeout_secs = 120\n");
    let d = f.start();
    let mut s = std::net::TcpStream::connect(d.tcp_addr()).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let started = Instant::now();
    let _ = s.write_all(b"GET /api/current HTTP/1.1\r\nHost: x\r\n");
    let header = format!("X-Pad: {}\r\n", "a".repeat(1000));
    // 100 KiB of headers that never end: a quarter of hyper's own limit.
    for _ in 0..100 {
        if s.write_all(header.as_bytes()).is_err() {
            break; // closed by the daemon already
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 1024];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue, // an error page, then the close
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break false;
            }
            Err(_) => break true, // reset
        }
    };
    assert!(
        closed,
        "100 KiB of unfinished headers still held after {:?}",
        started.elapsed()
    );
}
