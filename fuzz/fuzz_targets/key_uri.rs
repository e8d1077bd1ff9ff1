//! `cargo fuzz run key_uri`: the properties of checks/key_uri.rs on arbitrary input.
#![no_main]

#[path = "../checks/key_uri.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
