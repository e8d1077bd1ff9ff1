//! `cargo fuzz run pam_reply`: the properties of checks/pam_reply.rs on arbitrary input.
#![no_main]

#[path = "../checks/pam_reply.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
