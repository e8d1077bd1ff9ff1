//! `cargo fuzz run cli_syntax`: the properties of checks/cli_syntax.rs on arbitrary input.
#![no_main]

#[path = "../checks/cli_syntax.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
