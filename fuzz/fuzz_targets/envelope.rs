//! `cargo fuzz run envelope`: the properties of checks/envelope.rs on arbitrary input.
#![no_main]

#[path = "../checks/envelope.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
