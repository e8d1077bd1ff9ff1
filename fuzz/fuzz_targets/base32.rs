//! `cargo fuzz run base32`: the properties of checks/base32.rs on arbitrary input.
#![no_main]

#[path = "../checks/base32.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
