//! `tfa` links the unwinder statically (GNU/Linux only).
//!
//! The standard library unwinds panics with libgcc's unwinder, which it
//! links as the shared `libgcc_s.so.1`. Loading that library is a fixed cost
//! of every start: it is mapped and relocated, and its constructor asks the
//! processor what it supports (`cpuid`, which in a virtual machine is a
//! round trip to the hypervisor). A program that prints one line took
//! 1.052 ms with it and 0.913 ms without (interleaved hyperfine rounds,
//! medians) — a tenth of what `tfa auth two_factor config` takes, which is
//! measured against `oathtool` (`scripts/bench-cli`).
//!
//! So the link finds, before the system's, a `libgcc_s.so` of our own: a
//! linker script that names the static unwinder (`libgcc_eh.a`, shipped with
//! GCC beside `libgcc_s`) instead. Panics unwind as before (`tfa` catches
//! them in `main` and exits with 101); nothing else changes. The daemon and
//! the PAM module keep the shared library (their start is not on anyone's
//! prompt).

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !linux_gnu {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = out.join("static-unwinder");
    fs::create_dir_all(&dir).expect("create the linker script's directory");
    fs::write(dir.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n").expect("write the linker script");
    println!("cargo:rustc-link-search=native={}", dir.display());
}
