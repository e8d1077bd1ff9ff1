//! The protocol's named values that both ends must spell alike: the
//! system daemon's socket, the answers of `auth.login_ex` and of the PAM
//! module's two private methods, the lock-out text, and which service a
//! method belongs to. Each is defined once here; the server builds these
//! types and the clients (CLI, PAM module) read them, so neither matches
//! strings of its own.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The system daemon's Unix socket: root's default, where `tfa` run by
/// another user looks for the system daemon, and the PAM module's default.
pub const SYSTEM_SOCKET: &str = "/run/twofactor/twofactord.sock";

/// TrueNAS's validation message for a key the schema does not have: the
/// server writes it, and the CLI recognises it to suggest the right name.
pub const FIELD_NOT_EXPECTED: &str = "Field was not expected";

/// TrueNAS's validation message for a required key that is missing.
pub const ATTRIBUTE_REQUIRED: &str = "attribute required";

/// Codes a login may try after its password (`auth.login_ex_continue`
/// answers `OTP_REQUIRED` again until then, then `AUTH_ERR`).
pub const MAX_WRONG_CODES: u8 = 3;

/// The `response_type` of an `auth.login_ex` / `auth.login_ex_continue`
/// answer, spelled as TrueNAS spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResponseType {
    Success,
    OtpRequired,
    AuthErr,
    Expired,
    Redirect,
}

impl ResponseType {
    /// The `response_type` of a login answer; `None` when it has none this
    /// protocol knows.
    pub fn of(answer: &Value) -> Option<Self> {
        Self::deserialize(answer.get("response_type")?).ok()
    }
}

/// The authenticator level a `SUCCESS` reports (TrueNAS's `LEVEL_1`: a
/// password, possibly with a code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Authenticator {
    #[default]
    #[serde(rename = "LEVEL_1")]
    Level1,
}

/// A whole `auth.login_ex` / `auth.login_ex_continue` answer as a client
/// reads it, `user_info` left as JSON.
pub type LoginResponse = LoginAnswer<Value>;

/// A whole `auth.login_ex` / `auth.login_ex_continue` answer:
/// `{"response_type": "SUCCESS", "user_info": …, "authenticator": "LEVEL_1"}`,
/// `{"response_type": "OTP_REQUIRED", "username": U}`,
/// `{"response_type": "AUTH_ERR"}`, `EXPIRED`, `REDIRECT`. `U` is the type
/// of `user_info`: the server answers its own typed `auth.me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response_type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LoginAnswer<U> {
    Success {
        /// `auth.me` of the user, or null when `login_options.user_info`
        /// is false.
        #[serde(default)]
        user_info: U,
        #[serde(default)]
        authenticator: Authenticator,
    },
    OtpRequired {
        #[serde(default)]
        username: String,
    },
    AuthErr,
    Expired,
    Redirect {
        #[serde(default)]
        urls: Vec<String>,
    },
}

impl<U> LoginAnswer<U> {
    pub fn response_type(&self) -> ResponseType {
        match self {
            Self::Success { .. } => ResponseType::Success,
            Self::OtpRequired { .. } => ResponseType::OtpRequired,
            Self::AuthErr => ResponseType::AuthErr,
            Self::Expired => ResponseType::Expired,
            Self::Redirect { .. } => ResponseType::Redirect,
        }
    }
}

impl<U: Serialize> LoginAnswer<U> {
    /// The answer as JSON (the result of the method).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The answer of `auth.twofactor.pam_check`: the daemon's verdict on a code
/// typed at a PAM prompt, `{"outcome": "accepted"}` …
/// `{"outcome": "locked_out", "retry_after_secs": N}`,
/// `{"outcome": "refused", "message": M}`. An outcome not listed here does
/// not deserialise, so a client fails closed on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PamOutcome {
    Accepted,
    Wrong,
    Replayed,
    /// Not shaped like a code (not this many digits, spaces aside, and not
    /// a recovery code): refused without counting as a guess.
    Malformed {
        digits: u8,
    },
    LockedOut {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// No code is needed (any more): 2FA is off, or not for this service
    /// or user. The code was not checked.
    NotRequired,
    /// The login is refused outright (`require_secret` and no secret of
    /// the user's own), with a message for the user.
    Refused {
        message: String,
    },
}

impl PamOutcome {
    /// The answer as JSON (the result of the method).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The answer of `auth.twofactor.pam_required`: `true`, `false`, or
/// `{"refuse": MESSAGE}` (`require_secret` and no secret of the user's
/// own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PamRequired {
    /// Whether a code is asked.
    Code(bool),
    /// The login is refused, with a message for the user.
    Refuse { refuse: String },
}

impl PamRequired {
    /// The answer as JSON (the result of the method).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The lock-out text, the same in the API's `EBUSY` error and
/// at the PAM prompt: `Too many failed attempts; try again in N seconds`
/// (`… try again later` when the wait is not known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedOut {
    pub retry_after_secs: Option<u64>,
}

impl LockedOut {
    pub fn after(retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
        }
    }
}

impl fmt::Display for LockedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after_secs {
            Some(n) => write!(f, "Too many failed attempts; try again in {n} seconds"),
            None => f.write_str("Too many failed attempts; try again later"),
        }
    }
}

/// Whether `method` is in the service named `service`: the service's name
/// and a dot start the method's name.
pub fn in_service(method: &str, service: &str) -> bool {
    method
        .strip_prefix(service)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// The service `method` belongs to among `services`: the one with the
/// longest name prefixing it (`auth.twofactor.update` is in
/// `auth.twofactor`, not in `auth`). `name` gives a service's name.
pub fn service_of<'a, S>(
    method: &str,
    services: impl IntoIterator<Item = &'a S>,
    name: impl Fn(&S) -> &str,
) -> Option<&'a S>
where
    S: ?Sized + 'a,
{
    services
        .into_iter()
        .filter(|s| in_service(method, name(s)))
        .max_by_key(|s| name(s).len())
}

/// The words of the error a call gets when it needs a current code of the
/// account's secret first (step-up; errno `EACCES`): clients (`tfa`) that
/// see them may ask for a code, call `user.verify_twofactor_token` and
/// retry.
pub const STEP_UP_REQUIRED: &str = "confirm with a current code first";

/// The errno of that error (the one place it is chosen).
pub const STEP_UP_ERRNO: crate::Errno = crate::Errno::EACCES;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn round_trip<T>(value: &T, literal: &Value)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug,
    {
        assert_eq!(&serde_json::to_value(value).unwrap(), literal, "{value:?}");
        let back: T = serde_json::from_value(literal.clone()).unwrap();
        assert_eq!(&back, value, "{literal}");
    }

    #[test]
    fn the_system_socket_and_the_tries_are_specs() {
        assert_eq!(SYSTEM_SOCKET, "/run/twofactor/twofactord.sock");
        assert_eq!(MAX_WRONG_CODES, 3);
    }

    #[test]
    fn response_types_are_truenas_strings() {
        for (t, s) in [
            (ResponseType::Success, "SUCCESS"),
            (ResponseType::OtpRequired, "OTP_REQUIRED"),
            (ResponseType::AuthErr, "AUTH_ERR"),
            (ResponseType::Expired, "EXPIRED"),
            (ResponseType::Redirect, "REDIRECT"),
        ] {
            round_trip(&t, &json!(s));
            assert_eq!(ResponseType::of(&json!({"response_type": s})), Some(t));
        }
        for bad in [
            json!({"response_type": "success"}),
            json!({"response_type": "OTP"}),
            json!({"response_type": 1}),
            json!({}),
            json!("SUCCESS"),
        ] {
            assert_eq!(ResponseType::of(&bad), None, "{bad}");
        }
    }

    #[test]
    fn login_responses_are_specs_json() {
        round_trip(
            &LoginResponse::Success {
                user_info: json!({"pw_name": "root"}),
                authenticator: Authenticator::Level1,
            },
            &json!({"response_type": "SUCCESS", "user_info": {"pw_name": "root"},
                    "authenticator": "LEVEL_1"}),
        );
        round_trip(
            &LoginResponse::Success {
                user_info: Value::Null,
                authenticator: Authenticator::Level1,
            },
            &json!({"response_type": "SUCCESS", "user_info": null, "authenticator": "LEVEL_1"}),
        );
        round_trip(
            &LoginResponse::OtpRequired {
                username: "alice".into(),
            },
            &json!({"response_type": "OTP_REQUIRED", "username": "alice"}),
        );
        round_trip(
            &LoginResponse::AuthErr,
            &json!({"response_type": "AUTH_ERR"}),
        );
        round_trip(
            &LoginResponse::Expired,
            &json!({"response_type": "EXPIRED"}),
        );
        round_trip(
            &LoginResponse::Redirect {
                urls: vec!["ws://b/api/current".into()],
            },
            &json!({"response_type": "REDIRECT", "urls": ["ws://b/api/current"]}),
        );
        // The key order is TrueNAS's, byte for byte.
        assert_eq!(
            serde_json::to_string(&LoginResponse::Success {
                user_info: Value::Null,
                authenticator: Authenticator::Level1
            })
            .unwrap(),
            r#"{"response_type":"SUCCESS","user_info":null,"authenticator":"LEVEL_1"}"#
        );
        let r = LoginResponse::OtpRequired {
            username: "u".into(),
        };
        assert_eq!(r.response_type(), ResponseType::OtpRequired);
        assert_eq!(ResponseType::of(&r.to_value()), Some(r.response_type()));
        assert!(serde_json::from_value::<LoginResponse>(json!({"response_type": "NOPE"})).is_err());
    }

    #[test]
    fn pam_outcomes_are_todays_json() {
        for (o, literal) in [
            (PamOutcome::Accepted, json!({"outcome": "accepted"})),
            (PamOutcome::Wrong, json!({"outcome": "wrong"})),
            (PamOutcome::Replayed, json!({"outcome": "replayed"})),
            (PamOutcome::NotRequired, json!({"outcome": "not_required"})),
            (
                PamOutcome::LockedOut {
                    retry_after_secs: Some(30),
                },
                json!({"outcome": "locked_out", "retry_after_secs": 30}),
            ),
            (
                PamOutcome::LockedOut {
                    retry_after_secs: None,
                },
                json!({"outcome": "locked_out"}),
            ),
            (
                PamOutcome::Refused {
                    message: "no".into(),
                },
                json!({"outcome": "refused", "message": "no"}),
            ),
        ] {
            round_trip(&o, &literal);
            assert_eq!(o.to_value(), literal);
        }
        for bad in [
            json!({"outcome": "ACCEPTED"}),
            json!({"outcome": "ok"}),
            json!({"outcome": "refused"}),
            json!({"outcome": "locked_out", "retry_after_secs": "soon"}),
            json!({}),
            json!(true),
            json!(null),
            json!("accepted"),
        ] {
            assert!(
                serde_json::from_value::<PamOutcome>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn pam_required_is_a_boolean_or_a_refusal() {
        round_trip(&PamRequired::Code(true), &json!(true));
        round_trip(&PamRequired::Code(false), &json!(false));
        round_trip(
            &PamRequired::Refuse {
                refuse: "set one up".into(),
            },
            &json!({"refuse": "set one up"}),
        );
        assert_eq!(PamRequired::Code(true).to_value(), json!(true));
        for bad in [
            json!(null),
            json!("true"),
            json!(1),
            json!({}),
            json!({"refuse": 1}),
        ] {
            assert!(
                serde_json::from_value::<PamRequired>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_lock_out_text_is_specs() {
        assert_eq!(
            LockedOut::after(60).to_string(),
            "Too many failed attempts; try again in 60 seconds"
        );
        assert_eq!(
            LockedOut {
                retry_after_secs: None
            }
            .to_string(),
            "Too many failed attempts; try again later"
        );
    }

    #[test]
    fn a_method_is_in_the_longest_service_prefixing_it() {
        let services = ["auth", "auth.twofactor", "core", "auth.two"];
        let of = |m: &str| service_of(m, &services, |s| *s).copied();
        assert_eq!(of("auth.twofactor.update"), Some("auth.twofactor"));
        assert_eq!(of("auth.login_ex"), Some("auth"));
        assert_eq!(of("auth.twofactorx.y"), Some("auth"));
        assert_eq!(of("core.get_methods"), Some("core"));
        assert_eq!(of("corex.ping"), None);
        assert_eq!(of("auth"), None);
        assert!(in_service("a.b.c", "a.b") && !in_service("a.bc", "a.b"));
    }
}
