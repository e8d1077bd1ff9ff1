//! `tfa` is linked with the static unwinder (see build.rs): it loads no
//! `libgcc_s.so.1` at start, and a panic still unwinds. This test binary is
//! linked the same way, so it shows both.

use std::path::Path;
use std::process::Command;

/// The shared libraries an ELF file names as needed (`readelf -d`).
fn needed(binary: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(binary)
        .output()
        .expect("readelf (binutils) runs");
    assert!(out.status.success(), "readelf -d {}", binary.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tfa_loads_no_libgcc_s_and_a_panic_still_unwinds() {
    for binary in [
        Path::new(env!("CARGO_BIN_EXE_tfa")).to_owned(),
        std::env::current_exe().expect("this test's path"),
    ] {
        let libs = needed(&binary);
        assert!(libs.contains("libc.so"), "{}: {libs}", binary.display());
        assert!(!libs.contains("libgcc_s"), "{}: {libs}", binary.display());
    }
    let caught = std::panic::catch_unwind(|| {
        let empty: Vec<u8> = Vec::new();
        empty[std::env::args().count()]
    });
    assert!(caught.is_err(), "the panic was caught after unwinding");
}
