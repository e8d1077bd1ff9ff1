//! `pam_twofactor.so`: makes sshd (or any PAM service) ask for a TOTP code
//! when twofactord says one is needed (SPEC §7).
//!
//! ```text
//! auth required pam_twofactor.so [socket=PATH] [timeout=SECONDS] [unreachable=fail|ignore] [debug]
//! ```
//!
//! `pam_sm_authenticate` asks the daemon over its Unix socket
//! (`auth.twofactor.pam_required`); when no code is needed it answers
//! `PAM_IGNORE`. Otherwise it prompts `Verification code: ` (echo off) and has
//! the daemon check the answer (`auth.twofactor.pam_check`, with the same
//! replay protection, rate limiting and audit as every other check):
//! accepted is `PAM_SUCCESS`, anything else `PAM_AUTH_ERR`. A daemon that is
//! not there or does not answer within the time-out fails closed
//! (`PAM_AUTH_ERR`) unless `unreachable=ignore`, which applies only before a
//! code was asked for; a daemon that answers with an error always fails
//! closed. `pam_sm_setcred` answers `PAM_SUCCESS`, `pam_sm_acct_mgmt`
//! `PAM_IGNORE`.
//!
//! Owns: the PAM entry points and their options. Does not own: any rule
//! about codes (the daemon decides), an async runtime (the client is
//! blocking). All `unsafe` is in [`ffi`]; every entry point runs under
//! [`guarded`], so a panic is `PAM_AUTH_ERR` and never unwinds into sshd.
//! The code typed is never logged and is wiped from memory after use.

mod auth;
mod daemon;
#[allow(
    unsafe_code,
    reason = "the C ABI of PAM modules; the only unsafe code of the crate"
)]
mod ffi;
mod options;

/// The module's arguments, documented (for its manual page).
pub use options::DOCS as OPTION_DOCS;

use std::panic::{AssertUnwindSafe, catch_unwind};

pub use auth::{DaemonError, Outcome};
use auth::{Log, Verdict};
use daemon::SocketDaemon;
use options::Options;

/// The daemon's verdict from the text of its response to
/// `auth.twofactor.pam_check`, read as the module reads it: anything but a
/// well-formed result with a known outcome is an error (fail closed). Public
/// for the fuzz target and its regression test; the module itself gets the
/// text through the client.
pub fn parse_check_reply(text: &str) -> Result<Outcome, DaemonError> {
    daemon::parse_check_reply(text)
}

/// Runs an entry point's body; a panic becomes `PAM_AUTH_ERR` (fail closed).
fn guarded(body: impl FnOnce() -> Verdict) -> Verdict {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(Verdict::AuthErr)
}

/// `pam_sm_authenticate` with the handle made safe.
fn authenticate(h: &mut ffi::Handle, args: Vec<String>) -> Verdict {
    let log = h.syslog();
    let (opts, problems) = Options::parse(args.iter().map(String::as_str));
    for p in &problems {
        log.error(&format!("ignoring module option {p}"));
    }
    let login = match h.login() {
        Ok(l) => l,
        Err(why) => {
            log.error(&why);
            return Verdict::AuthErr;
        }
    };
    let daemon = SocketDaemon::new(opts.url(), opts.timeout);
    auth::authenticate(&opts, &login, h, &daemon, &log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_fails_closed() {
        assert_eq!(guarded(|| panic!("boom")), Verdict::AuthErr);
        assert_eq!(guarded(|| Verdict::Ignore), Verdict::Ignore);
    }
}
