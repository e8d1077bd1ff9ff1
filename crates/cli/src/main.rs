//! `tfa`: parse the options, run, map to an exit status.
//!
//! Start-up is measured against `oathtool` (`scripts/bench-cli`: it should stay
//! within twice its time), so `tfa` has its own C `main` instead of the
//! standard library's run-time set-up. That set-up costs more than everything
//! `tfa --version` does itself: to place a guard handler for main-thread stack
//! overflows it reads and `sscanf`s all of `/proc/self/maps` (about 110 000
//! instructions, a fifth of `tfa --version`) and maps an alternate signal
//! stack. What else it does that matters is done here: standard descriptors 0–2
//! are opened on `/dev/null` when closed (so that no file opened later, such as
//! the database, becomes "standard output"), `SIGPIPE` is ignored (a closed
//! pipe is a write error, not a silent death), buffered standard output is
//! flushed at the end, and a panic exits with 101. Arguments still come from
//! `std::env::args` (glibc hands them to the standard library before `main`).
//! Without the overflow handler a stack overflow is a plain `SIGSEGV` instead
//! of one line of message first; the guard page is the kernel's and still
//! there.

// `cargo test` builds every binary as a test harness too: there the
// harness's own `main` must run, not `tfa`.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
mod entry {
    use std::ffi::{c_char, c_int};
    use std::io::Write;

    use clap::Parser;

    /// Opens `/dev/null` on whichever of descriptors 0, 1 and 2 is closed (as
    /// the standard library's run-time does): one `poll` when all are open.
    #[allow(unsafe_code)] // poll(2) and open(2) on plain integers
    fn sanitize_standard_fds() {
        let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        });
        loop {
            // SAFETY: `fds` is a valid array of 3 pollfd for the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
            if n >= 0 {
                break;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                // poll cannot say: ask each descriptor instead.
                for pfd in &mut fds {
                    // SAFETY: F_GETFD takes no argument and touches no memory.
                    let closed = unsafe { libc::fcntl(pfd.fd, libc::F_GETFD) } == -1;
                    pfd.revents = if closed { libc::POLLNVAL } else { 0 };
                }
                break;
            }
        }
        for pfd in fds {
            if pfd.revents & libc::POLLNVAL != 0 {
                // The lowest free descriptor is the closed one (they are
                // handled in order). Fail closed if even that is impossible.
                // SAFETY: a NUL-terminated path literal.
                let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
                if fd != pfd.fd {
                    std::process::abort();
                }
            }
        }
    }

    /// A write to a closed pipe fails with `EPIPE` instead of killing `tfa`.
    #[allow(unsafe_code)] // signal(2)
    fn ignore_sigpipe() {
        // SAFETY: setting a signal's disposition to SIG_IGN installs no code.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    }

    #[allow(unsafe_code)] // the C entry point replaces the standard library's
    #[unsafe(no_mangle)]
    extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
        sanitize_standard_fds();
        ignore_sigpipe();
        // A panic has printed its message already (the default hook); it must
        // not unwind out of an `extern "C"` function (that aborts).
        let status = std::panic::catch_unwind(|| cli::run(cli::Args::parse())).unwrap_or(101);
        let _ = std::io::stdout().flush();
        c_int::from(u8::try_from(status).unwrap_or(1))
    }
}
