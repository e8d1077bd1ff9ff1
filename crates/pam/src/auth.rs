//! The decision of `pam_sm_authenticate`, free of FFI: the PAM handle, the
//! daemon and the log are traits, so every path is unit-tested with fakes.

use client::wire::LockedOut;
pub use client::wire::PamOutcome as Outcome;
use zeroize::Zeroizing;

use crate::options::{Options, Unreachable};

/// The prompt shown through the PAM conversation (echo off).
pub(crate) const PROMPT: &str = "Verification code: ";

/// What the user is shown when the daemon cannot be asked (the reason
/// goes to syslog only).
pub(crate) const UNAVAILABLE: &str = "two-factor service unavailable; ask an administrator";

/// What the user is shown for an answer not shaped like a code.
pub(crate) fn expected_digits(digits: u8) -> String {
    format!("expected {digits} digits")
}

/// What the module answers PAM; the FFI layer maps it to the C constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    AuthErr,
    ConvErr,
    Ignore,
}

/// Who is logging in, from the PAM items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Login {
    pub(crate) user: String,
    pub(crate) service: String,
    /// `PAM_RHOST`; `None` when unset or empty.
    pub(crate) rhost: Option<String>,
}

/// The conversation could not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConvError(pub(crate) String);

/// The application side of PAM, as this module needs it.
pub(crate) trait Conversation {
    /// Asks with echo off; the answer is wiped when dropped.
    fn prompt_hidden(&mut self, prompt: &str) -> Result<Zeroizing<String>, ConvError>;
    /// Shows an error message (skipped under `PAM_SILENT`).
    fn error_message(&mut self, text: &str);
}

/// Why the daemon gave no usable answer.
#[derive(Debug)]
pub enum DaemonError {
    /// Not listening, or no answer within the time-out.
    Unreachable(String),
    /// It answered with an error, or with something this module does not know.
    Failed(String),
    /// It refuses the login outright, with a message for the user.
    Refused(String),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "daemon unreachable: {why}"),
            Self::Failed(why) => write!(f, "daemon error: {why}"),
            Self::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// The two private methods of SPEC §7.
pub(crate) trait Daemon {
    fn pam_required(&self, login: &Login) -> Result<bool, DaemonError>;
    fn pam_check(&self, login: &Login, token: &str) -> Result<Outcome, DaemonError>;
}

/// Where the module reports (syslog in production). Never given a code.
pub(crate) trait Log {
    fn error(&self, msg: &str);
    fn debug(&self, msg: &str);
}

/// `pam_sm_authenticate` once the PAM items are read.
pub(crate) fn authenticate(
    opts: &Options,
    login: &Login,
    conv: &mut dyn Conversation,
    daemon: &dyn Daemon,
    log: &dyn Log,
) -> Verdict {
    let who = describe(login);
    let required = match daemon.pam_required(login) {
        Ok(r) => r,
        Err(e @ DaemonError::Unreachable(_)) if opts.unreachable == Unreachable::Ignore => {
            log.error(&format!(
                "{who}: {e}; unreachable=ignore, so no code is asked"
            ));
            return Verdict::Ignore;
        }
        Err(DaemonError::Refused(msg)) => {
            log.error(&format!("{who}: {msg}"));
            conv.error_message(&msg);
            return Verdict::AuthErr;
        }
        Err(e) => {
            log.error(&format!("{who}: {e}; failing closed"));
            if matches!(e, DaemonError::Unreachable(_)) {
                conv.error_message(UNAVAILABLE);
            }
            return Verdict::AuthErr;
        }
    };
    if !required {
        if opts.debug {
            log.debug(&format!("{who}: no code required"));
        }
        return Verdict::Ignore;
    }
    let answer = match conv.prompt_hidden(PROMPT) {
        Ok(a) => a,
        Err(ConvError(why)) => {
            log.error(&format!("{who}: conversation failed: {why}"));
            return Verdict::ConvErr;
        }
    };
    // Once a code was asked for, 2FA is known to be on: an unreachable
    // daemon now fails closed whatever `unreachable=` says.
    let outcome = match daemon.pam_check(login, &answer) {
        Ok(o) => o,
        Err(e) => {
            log.error(&format!("{who}: {e}; failing closed"));
            if matches!(e, DaemonError::Unreachable(_)) {
                conv.error_message(UNAVAILABLE);
            }
            return Verdict::AuthErr;
        }
    };
    drop(answer);
    if opts.debug {
        log.debug(&format!("{who}: code {outcome:?}"));
    }
    match outcome {
        Outcome::Accepted => Verdict::Success,
        Outcome::LockedOut { retry_after_secs } => {
            conv.error_message(&LockedOut { retry_after_secs }.to_string());
            Verdict::AuthErr
        }
        // `require_secret` took effect while the user typed: say why.
        Outcome::Refused { message } => {
            log.error(&format!("{who}: {message}"));
            conv.error_message(&message);
            Verdict::AuthErr
        }
        // NotRequired here means 2FA was turned off while the user typed;
        // the code was not checked, so it proves nothing: fail this attempt.
        Outcome::Malformed { digits } => {
            conv.error_message(&expected_digits(digits));
            Verdict::AuthErr
        }
        Outcome::Wrong | Outcome::Replayed | Outcome::NotRequired => Verdict::AuthErr,
    }
}

fn describe(login: &Login) -> String {
    format!(
        "user={:?} service={:?} rhost={}",
        login.user,
        login.service,
        login
            .rhost
            .as_deref()
            .map_or_else(|| "-".to_owned(), |h| format!("{h:?}"))
    )
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[derive(Default)]
    struct FakeConv {
        answer: Option<&'static str>,
        prompts: Vec<String>,
        errors: Vec<String>,
    }

    impl Conversation for FakeConv {
        fn prompt_hidden(&mut self, prompt: &str) -> Result<Zeroizing<String>, ConvError> {
            self.prompts.push(prompt.to_owned());
            self.answer
                .map(|a| Zeroizing::new(a.to_owned()))
                .ok_or_else(|| ConvError("no answer".into()))
        }
        fn error_message(&mut self, text: &str) {
            self.errors.push(text.to_owned());
        }
    }

    type Answer<T> = fn() -> Result<T, DaemonError>;

    struct FakeDaemon {
        required: Answer<bool>,
        check: Answer<Outcome>,
        tokens: RefCell<Vec<String>>,
    }

    impl FakeDaemon {
        fn new(required: Answer<bool>, check: Answer<Outcome>) -> Self {
            Self {
                required,
                check,
                tokens: RefCell::default(),
            }
        }
    }

    impl Daemon for FakeDaemon {
        fn pam_required(&self, _: &Login) -> Result<bool, DaemonError> {
            (self.required)()
        }
        fn pam_check(&self, _: &Login, token: &str) -> Result<Outcome, DaemonError> {
            self.tokens.borrow_mut().push(token.to_owned());
            (self.check)()
        }
    }

    #[derive(Default)]
    struct FakeLog(RefCell<Vec<String>>);

    impl Log for FakeLog {
        fn error(&self, msg: &str) {
            self.0.borrow_mut().push(format!("error: {msg}"));
        }
        fn debug(&self, msg: &str) {
            self.0.borrow_mut().push(format!("debug: {msg}"));
        }
    }

    fn login() -> Login {
        Login {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.9".into()),
        }
    }

    fn run(
        opts: &Options,
        answer: Option<&'static str>,
        daemon: &FakeDaemon,
    ) -> (Verdict, FakeConv, FakeLog) {
        let mut conv = FakeConv {
            answer,
            ..FakeConv::default()
        };
        let log = FakeLog::default();
        let v = authenticate(opts, &login(), &mut conv, daemon, &log);
        (v, conv, log)
    }

    fn unreachable<T>() -> Result<T, DaemonError> {
        Err(DaemonError::Unreachable("connection refused".into()))
    }

    fn failed<T>() -> Result<T, DaemonError> {
        Err(DaemonError::Failed("Not authorized".into()))
    }

    fn debug_opts() -> Options {
        Options {
            debug: true,
            ..Options::default()
        }
    }

    #[test]
    fn not_required_is_ignore_without_a_prompt() {
        let d = FakeDaemon::new(|| Ok(false), || panic!("no check"));
        let (v, conv, _) = run(&Options::default(), Some("123456"), &d);
        assert_eq!(v, Verdict::Ignore);
        assert!(conv.prompts.is_empty());
    }

    #[test]
    fn a_refusal_is_shown_and_fails_without_a_prompt_even_with_unreachable_ignore() {
        let d = FakeDaemon::new(
            || {
                Err(DaemonError::Refused(
                    "Two-factor authentication is required but not set up for this account".into(),
                ))
            },
            || panic!("no check"),
        );
        let opts = Options {
            unreachable: Unreachable::Ignore,
            ..Options::default()
        };
        let (v, conv, _) = run(&opts, Some("123456"), &d);
        assert_eq!(v, Verdict::AuthErr);
        assert!(conv.prompts.is_empty());
        assert_eq!(
            conv.errors,
            ["Two-factor authentication is required but not set up for this account"]
        );
    }

    #[test]
    fn accepted_code_succeeds_and_is_passed_as_typed() {
        let d = FakeDaemon::new(|| Ok(true), || Ok(Outcome::Accepted));
        let (v, conv, log) = run(&debug_opts(), Some(" 012345 "), &d);
        assert_eq!(v, Verdict::Success);
        assert_eq!(conv.prompts, ["Verification code: "]);
        assert_eq!(*d.tokens.borrow(), [" 012345 "]);
        let logged = log.0.borrow().join("\n");
        assert!(
            logged.contains("Accepted") && !logged.contains("012345"),
            "{logged}"
        );
    }

    #[test]
    fn every_other_outcome_fails() {
        for check in [
            (|| Ok(Outcome::Wrong)) as Answer<Outcome>,
            || Ok(Outcome::Replayed),
            || Ok(Outcome::NotRequired),
            || {
                Ok(Outcome::LockedOut {
                    retry_after_secs: Some(30),
                })
            },
        ] {
            let d = FakeDaemon::new(|| Ok(true), check);
            let (v, _, log) = run(&debug_opts(), Some("999999"), &d);
            assert_eq!(v, Verdict::AuthErr);
            assert!(!log.0.borrow().join("\n").contains("999999"));
        }
    }

    #[test]
    fn locked_out_says_when_to_retry() {
        let d = FakeDaemon::new(
            || Ok(true),
            || {
                Ok(Outcome::LockedOut {
                    retry_after_secs: Some(60),
                })
            },
        );
        let (v, conv, _) = run(&Options::default(), Some("1"), &d);
        assert_eq!(v, Verdict::AuthErr);
        assert_eq!(
            conv.errors,
            ["Too many failed attempts; try again in 60 seconds"]
        );
        let d = FakeDaemon::new(
            || Ok(true),
            || {
                Ok(Outcome::LockedOut {
                    retry_after_secs: None,
                })
            },
        );
        let (_, conv, _) = run(&Options::default(), Some("1"), &d);
        assert_eq!(conv.errors, ["Too many failed attempts; try again later"]);
    }

    /// `require_secret` turned on while the user typed: the refusal is
    /// shown, and the login fails.
    #[test]
    fn a_refused_check_is_shown_and_fails() {
        let d = FakeDaemon::new(
            || Ok(true),
            || {
                Ok(Outcome::Refused {
                    message:
                        "Two-factor authentication is required but not set up for this account"
                            .into(),
                })
            },
        );
        let (v, conv, log) = run(&Options::default(), Some("123456"), &d);
        assert_eq!(v, Verdict::AuthErr);
        assert_eq!(
            conv.errors,
            ["Two-factor authentication is required but not set up for this account"]
        );
        assert!(!log.0.borrow().join("\n").contains("123456"));
    }

    #[test]
    fn unreachable_daemon_fails_closed_by_default() {
        let d = FakeDaemon::new(unreachable, || panic!("no check"));
        let (v, conv, log) = run(&Options::default(), Some("1"), &d);
        assert_eq!(v, Verdict::AuthErr);
        assert!(conv.prompts.is_empty());
        assert!(log.0.borrow()[0].contains("unreachable"), "{:?}", log.0);
        // The user learns why, without the reason (that is for syslog).
        assert_eq!(conv.errors, [UNAVAILABLE]);
        // Lost after the prompt: the same.
        let d = FakeDaemon::new(|| Ok(true), unreachable);
        let (v, conv, _) = run(&Options::default(), Some("1"), &d);
        assert_eq!(v, Verdict::AuthErr);
        assert_eq!(conv.errors, [UNAVAILABLE]);
        // A daemon that answers with an error is not "unavailable".
        let d = FakeDaemon::new(failed, || panic!("no check"));
        let (_, conv, _) = run(&Options::default(), Some("1"), &d);
        assert!(conv.errors.is_empty(), "{:?}", conv.errors);
    }

    #[test]
    fn a_malformed_code_says_how_many_digits() {
        let d = FakeDaemon::new(|| Ok(true), || Ok(Outcome::Malformed { digits: 6 }));
        let (v, conv, _) = run(&Options::default(), Some("12345x"), &d);
        assert_eq!(v, Verdict::AuthErr);
        assert_eq!(conv.errors, ["expected 6 digits"]);
    }

    #[test]
    fn unreachable_ignore_falls_through() {
        let opts = Options {
            unreachable: Unreachable::Ignore,
            ..Options::default()
        };
        let d = FakeDaemon::new(unreachable, || panic!("no check"));
        assert_eq!(run(&opts, Some("1"), &d).0, Verdict::Ignore);
    }

    #[test]
    fn daemon_errors_fail_closed_even_with_unreachable_ignore() {
        let opts = Options {
            unreachable: Unreachable::Ignore,
            ..Options::default()
        };
        let d = FakeDaemon::new(failed, || panic!("no check"));
        assert_eq!(run(&opts, Some("1"), &d).0, Verdict::AuthErr);
        // Once the code was asked for, losing the daemon fails closed.
        let d = FakeDaemon::new(|| Ok(true), unreachable);
        assert_eq!(run(&opts, Some("1"), &d).0, Verdict::AuthErr);
        let d = FakeDaemon::new(|| Ok(true), failed);
        assert_eq!(run(&opts, Some("1"), &d).0, Verdict::AuthErr);
    }

    #[test]
    fn conversation_failure_is_conv_err_and_checks_nothing() {
        let d = FakeDaemon::new(|| Ok(true), || panic!("no check"));
        assert_eq!(run(&Options::default(), None, &d).0, Verdict::ConvErr);
        assert!(d.tokens.borrow().is_empty());
    }
}
