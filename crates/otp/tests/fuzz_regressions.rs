//! The fuzz targets `key_uri` and `base32`: their seeds and regression
//! inputs (fuzz/), replayed through the same checks as `cargo fuzz run`
//! (fuzz/checks/).

#[path = "../../../fuzz/checks/base32.rs"]
mod base32;
#[path = "../../../fuzz/checks/key_uri.rs"]
mod key_uri;
#[path = "../../../fuzz/checks/replay.rs"]
mod replay;

#[test]
fn kept_key_uri_inputs_hold() {
    replay::all("key_uri", key_uri::check);
}

#[test]
fn kept_base32_inputs_hold() {
    replay::all("base32", base32::check);
}
