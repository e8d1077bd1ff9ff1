//! Links `tfa` (and only `tfa`) as a position-dependent executable.
//!
//! Start-up is measured against `oathtool` (`scripts/bench-cli`, issue 8
//! §6). As a PIE, `tfa` has ~3,800 relative relocations that the dynamic
//! loader applies at every start, writing (and so copying) the pages of
//! vtables and string tables they land on. Linked at a fixed address it has
//! none: measured in one hyperfine run of 600 each, `tfa auth two_factor
//! config` (embedded) 1.336 ms against 1.425 ms as a PIE, `tfa --version`
//! 0.751 ms against 0.787 ms; callgrind 339 k instructions for `--version`
//! against 391 k.
//!
//! The price: ASLR still moves the heap, the stack and every shared library,
//! but not `tfa`'s own code. `tfa` is an ordinary, unprivileged command run
//! by whoever types it, so that is acceptable here; `twofactord` and
//! `pam_twofactor.so` (which run as root, the latter inside sshd) stay
//! position-independent. Delete the line below to get a PIE back.

fn main() {
    println!("cargo::rustc-link-arg-bin=tfa=-no-pie");
}
