//! What an audit record says happened, and how it ended: one enum each,
//! with the name stored in the database (and accepted by `audit.query`)
//! written once beside each variant.

use std::fmt;

/// Declares an enum whose variants each have one stored name.
macro_rules! named {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];
            /// Every stored name, in the order of [`Self::ALL`].
            pub const NAMES: &'static [&'static str] = &[$($text),*];

            /// The name stored in an audit record.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// The value stored under `name`, if any.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// What an audit record is about: what `audit.query event=` accepts.
    pub enum AuditEvent {
        AuthLogin = "auth.login",
        AuthLogout = "auth.logout",
        AuthGenerateToken = "auth.generate_token",
        /// A code checked (verify, a login, PAM).
        OtpCheck = "otp.check",
        /// A lock-out tier started.
        OtpLockout = "otp.lockout",
        TwofactorUpdate = "twofactor.update",
        TwofactorRenewSecret = "twofactor.renew_secret",
        TwofactorEndLegacySharedCode = "twofactor.end_legacy_shared_code",
        UserRenew2faSecret = "user.renew_2fa_secret",
        UserUnset2faSecret = "user.unset_2fa_secret",
        UserTwofactorEnroll = "user.twofactor_enroll",
        UserTwofactorEnrollConfirm = "user.twofactor_enroll_confirm",
        UserGenerate2faRecoveryCodes = "user.generate_2fa_recovery_codes",
        UserClear2faLockout = "user.clear_2fa_lockout",
    }
}

named! {
    /// How it ended: what `audit.query outcome=` accepts.
    pub enum AuditOutcome {
        Success = "success",
        /// A right code.
        Accepted = "accepted",
        Wrong = "wrong",
        /// Not shaped like a code.
        Malformed = "malformed",
        Replayed = "replayed",
        /// Not checked: a lock-out was in force.
        LockedOut = "locked_out",
        /// A lock-out started.
        Locked = "locked",
        /// A recovery code was used.
        RecoveryCode = "recovery_code",
        NotConfigured = "not_configured",
        /// An enrolment waits for its confirming code.
        Pending = "pending",
        Refused = "refused",
        WrongPassword = "wrong_password",
        /// Repeats beyond the audit's rate, counted in one row.
        Suppressed = "suppressed",
        BadToken = "bad_token",
        TokenWrongOrigin = "token_wrong_origin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored names are the database's and `audit.query`'s: a rename
    /// would orphan every record written before it.
    #[test]
    fn stored_names_stay_as_they_are() {
        assert_eq!(
            AuditEvent::NAMES,
            [
                "auth.login",
                "auth.logout",
                "auth.generate_token",
                "otp.check",
                "otp.lockout",
                "twofactor.update",
                "twofactor.renew_secret",
                "twofactor.end_legacy_shared_code",
                "user.renew_2fa_secret",
                "user.unset_2fa_secret",
                "user.twofactor_enroll",
                "user.twofactor_enroll_confirm",
                "user.generate_2fa_recovery_codes",
                "user.clear_2fa_lockout",
            ]
        );
        assert_eq!(
            AuditOutcome::NAMES,
            [
                "success",
                "accepted",
                "wrong",
                "malformed",
                "replayed",
                "locked_out",
                "locked",
                "recovery_code",
                "not_configured",
                "pending",
                "refused",
                "wrong_password",
                "suppressed",
                "bad_token",
                "token_wrong_origin",
            ]
        );
    }

    #[test]
    fn each_name_reads_back_as_its_value() {
        for (e, name) in AuditEvent::ALL.iter().zip(AuditEvent::NAMES) {
            assert_eq!(e.as_str(), *name);
            assert_eq!(AuditEvent::from_name(name), Some(*e));
            assert_eq!(e.to_string(), *name);
        }
        for (o, name) in AuditOutcome::ALL.iter().zip(AuditOutcome::NAMES) {
            assert_eq!(o.as_str(), *name);
            assert_eq!(AuditOutcome::from_name(name), Some(*o));
        }
        assert_eq!(AuditEvent::from_name("auth.Login"), None);
        assert_eq!(AuditOutcome::from_name(""), None);
    }
}
