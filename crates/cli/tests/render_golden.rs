//! midcli's output of lists of objects and of csv, byte for byte, pinned
//! in `tests/golden/` (`UPDATE_GOLDEN=1` rewrites them). The files were
//! checked against TrueNAS's midcli display modes run on the same values.

mod common;

use cli::render::{Mode, render};
use serde_json::{Value, json};

#[track_caller]
fn assert_golden(name: &str, actual: &str) {
    let expected = common::golden(name, actual);
    assert!(
        expected == actual,
        "{name} differs\n--- expected\n{expected:?}\n--- actual\n{actual:?}"
    );
}

/// Audit records as `audit.query` returns them; the second lacks a key and
/// has one the first lacks, the third has nested values.
fn records() -> Value {
    json!([
        {"id": 3, "time": "2026-01-02T03:04:05.000Z", "event": "auth.login", "outcome": "wrong_password",
         "user": "alice", "origin": "tcp:127.0.0.1:40000", "detail": null},
        {"id": 2, "time": "2026-01-02T03:00:00.000Z", "event": "otp.check", "outcome": "accepted",
         "user": "root", "service": "sshd", "origin": "unix:uid=0"},
        {"id": 1, "time": "2026-01-01T00:00:00.000Z", "event": "twofactor.update", "outcome": "success",
         "user": "root", "origin": "embedded:uid=0", "detail": {"enabled": true, "services": {"ssh": false}},
         "tags": [{"k": 1}, {"k": "b,c"}]}
    ])
}

fn entry() -> Value {
    json!({"id": 1, "otp_digits": 6, "secret": "JBSWY3DPEHPK3PXP", "window": 0, "interval": 30,
           "services": {"ssh": true}, "enabled": true})
}

#[test]
fn list_of_objects_as_a_table() {
    assert_golden("records.txt", &render(&records(), Mode::Table));
}

#[test]
fn list_of_objects_as_csv() {
    assert_golden("records.csv", &render(&records(), Mode::Csv));
}

#[test]
fn an_object_as_csv() {
    assert_golden("config_enabled.csv", &render(&entry(), Mode::Csv));
}
