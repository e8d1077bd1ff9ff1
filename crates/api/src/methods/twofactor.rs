//! `auth.twofactor.*` and the PAM module's private methods.

use serde_json::{Value, json};
use service::{
    Caller, CheckOutcome, Digits, Entry, Interval, Origin, Services, UpdateRequest, Window,
};

use super::refused_without_secret;
use crate::Code;
use crate::registry::{Access, Method};
use crate::schema::{Field, Schema};
use crate::typed::{Described, doc};
use crate::{Api, ApiError, Collection, Event, Session, args};
use wire::{PamOutcome, PamRequired};

args! {
    /// The services that also require a code.
    pub(crate) struct ServicesArg {
        ssh: bool => doc("Require a code at SSH login").default(false),
    }
}

args! {
    /// `auth.twofactor.update`'s argument: only the keys given change, so
    /// every field may be absent; the defaults are only shown.
    pub(crate) struct UpdateData {
        enabled: Option<bool> => doc("Turn two-factor authentication on or off"),
        otp_digits: Option<Digits> => doc("Digits in a code")
            .default(Digits::DEFAULT.get())
            .reprovision(),
        window: Option<Window> => doc(
            "Also accept codes this many time steps before and after the current one",
        )
        .default(Window::DEFAULT.get()),
        interval: Option<Interval> => doc("Seconds each code lives")
            .default(Interval::DEFAULT.get())
            .reprovision(),
        services: Option<ServicesArg> => doc("Services that also require a code"),
    }
}

args! {
    pub(crate) struct UpdateArgs {
        auth_twofactor_update: UpdateData => doc("The settings to change"),
    }
}

args! {
    pub(crate) struct VerifyArgs {
        token: Option<Code> => doc("The code from the authenticator app").nullable().required(),
    }
}

args! {
    /// The PAM module's question: does this login need a code?
    pub(crate) struct PamRequiredArgs {
        username: String => doc(""),
        pam_service: String => doc(""),
    }
}

args! {
    /// The PAM module's check of a code typed at its prompt.
    pub(crate) struct PamCheckArgs {
        username: String => doc(""),
        pam_service: String => doc(""),
        rhost: Option<String> => doc("").nullable(),
        token: Option<Code> => doc("").nullable().required(),
    }
}

/// The fields of the entry, in the order `config` returns them.
fn entry_schema() -> Schema {
    Schema::Object(vec![
        Field::new("id", Schema::Int { min: 1, max: 1 }, "Always 1"),
        Field::new("otp_digits", Digits::schema(), "Digits in a code"),
        Field::new(
            "secret",
            Schema::Str { nullable: true },
            "Base32 secret (null before first enable)",
        ),
        Field::new(
            "window",
            Window::schema(),
            "Extra time steps accepted on each side",
        ),
        Field::new("interval", Interval::schema(), "Seconds per code"),
        Field::new(
            "services",
            ServicesArg::schema(),
            "Services that also require a code",
        ),
        Field::new(
            "enabled",
            Schema::Bool,
            "Two-factor authentication on or off",
        ),
    ])
}

/// The JSON form of the entry, in TrueNAS's key order.
pub(crate) fn entry_json(e: &Entry) -> Value {
    json!({
        "id": Entry::ID,
        "otp_digits": e.otp_digits.get(),
        "secret": e.secret.as_ref().map(|s| s.as_str()),
        "window": e.window.get(),
        "interval": e.interval.get(),
        "services": {"ssh": e.services.ssh},
        "enabled": e.enabled,
    })
}

pub(super) fn methods() -> Vec<Method> {
    let base = Method::base(Access::Admin, false);
    // The PAM module's methods: root over the Unix socket, never listed.
    let pam_base = Method {
        private: true,
        ..Method::base(Access::RootLocal, true)
    };
    vec![
        Method {
            name: "auth.twofactor.config",
            description: "Shows the two-factor authentication settings.",
            cli_description: "Show the 2FA settings",
            examples: &["auth two_factor config"],
            returns: || entry_schema(),
            inline: true,
            ..base
                .clone()
                .handles(|api, _, ()| Ok(entry_json(&api.twofactor().config()?)))
        },
        Method {
            name: "auth.twofactor.update",
            description: "Changes the 2FA settings; only the keys given change. Enabling for the first \
                          time generates the secret. Changing otp_digits or interval keeps the secret, \
                          but authenticator apps must be provisioned again.",
            cli_description: "Change the 2FA settings",
            examples: &[
                "auth two_factor update enabled=true",
                "auth two_factor update otp_digits=8 interval=60 window=1",
                "auth two_factor update services={\"ssh\": true}",
            ],
            returns: || entry_schema(),
            ..base.clone().handles(update)
        },
        Method {
            name: "auth.twofactor.provisioning_uri",
            description: "The otpauth:// Key URI that authenticator apps import (as a QR code).",
            cli_description: "Show the provisioning URI (and QR code)",
            examples: &[
                "auth two_factor provisioning_uri",
                "auth two_factor provisioning_uri --png qr.png",
            ],
            returns: || Schema::Str { nullable: false },
            ..base
                .clone()
                .handles(|api, _, ()| Ok(json!(api.twofactor().provisioning_uri()?)))
        },
        Method {
            name: "auth.twofactor.provisioning_qr",
            description: "The provisioning URI drawn as a QR code, an SVG document (for the web page).",
            cli_description: "Show the provisioning QR code as SVG",
            // For the web page; the CLI draws the URI itself (--qr, --svg).
            cli_private: true,
            returns: || Schema::Str { nullable: false },
            ..base.clone().handles(|api, _, ()| {
                let uri = api.twofactor().provisioning_uri()?;
                let svg = crate::qr::svg(&uri).map_err(|e| ApiError::Internal(e.to_string()))?;
                Ok(json!(svg.as_str()))
            })
        },
        Method {
            name: "auth.twofactor.renew_secret",
            description: "Replaces the secret with a new one. Every authenticator app must be \
                          provisioned again. Needs 2FA enabled.",
            cli_description: "Generate a new secret",
            examples: &["auth two_factor renew_secret"],
            returns: || Schema::Bool,
            ..base.clone().handles(renew_secret)
        },
        Method {
            name: "auth.twofactor.verify",
            description: "True when the token is a valid code now. Each code is accepted once; \
                          repeated wrong codes lock checks out for a while.",
            cli_description: "Check a code",
            examples: &["auth two_factor verify token=123456"],
            returns: || Schema::Bool,
            ..base.clone().handles(|api, session, a: VerifyArgs| {
                // An administrator on the Unix socket is never locked out,
                // so root can always recover; the service decides with the origin.
                let caller = session.caller();
                Ok(json!(
                    api.twofactor()
                        .verify(&caller, a.token.as_ref().map(Code::expose))?
                ))
            })
        },
        Method {
            name: "auth.twofactor.legacy_shared_code",
            description: "Whether the transition mode of a state upgraded from the single system \
                          secret is on: while it is, an account without a secret of its own is \
                          asked for root's code (the former system code) at API and SSH login. \
                          Not part of TrueNAS's API.",
            cli_description: "Whether accounts without a secret use root's code",
            examples: &["auth two_factor legacy_shared_code"],
            returns: || Schema::Bool,
            inline: true,
            ..base
                .clone()
                .handles(|api, _, ()| Ok(json!(api.twofactor().legacy_shared_code()?)))
        },
        Method {
            name: "auth.twofactor.end_legacy_shared_code",
            description: "Ends the transition mode: accounts without a secret of their own are no \
                          longer asked for root's code (each enrols its own with \
                          user.twofactor_enroll). Answers whether it was on. Not part of \
                          TrueNAS's API.",
            cli_description: "Stop asking root's code of accounts without a secret",
            examples: &["auth two_factor end_legacy_shared_code"],
            returns: || Schema::Bool,
            ..base.clone().handles(|api, session, ()| {
                let caller = session.caller();
                let was_on = api.twofactor().end_legacy_shared_code(&caller)?;
                Ok(json!(was_on))
            })
        },
        Method {
            name: "auth.twofactor.pam_required",
            description: "Whether a PAM login of this user through this PAM service needs a code.",
            returns: PamRequired::schema,
            ..pam_base.clone().handles(pam_required)
        },
        Method {
            name: "auth.twofactor.pam_check",
            description: "Checks a code typed at a PAM prompt: accepted, wrong, replayed, \
                          locked_out or not_required.",
            returns: PamOutcome::schema,
            ..pam_base.handles(pam_check)
        },
    ]
}

fn pam_counts_as_ssh(api: &Api, service: &str) -> bool {
    api.inner
        .options
        .ssh_pam_services
        .iter()
        .any(|s| s == service)
}

fn update(api: &Api, session: &Session, args: UpdateArgs) -> Result<Value, ApiError> {
    let data = args.auth_twofactor_update;
    let req = UpdateRequest {
        enabled: data.enabled,
        otp_digits: data.otp_digits,
        window: data.window,
        interval: data.interval,
        services: data.services.map(|s| Services { ssh: s.ssh }),
    };
    let caller = session.caller();
    Ok(entry_json(&api.twofactor().update(&caller, req)?))
}

fn renew_secret(api: &Api, session: &Session, (): ()) -> Result<Value, ApiError> {
    let caller = session.caller();
    Ok(json!(api.twofactor().renew_secret(&caller)?))
}

/// Tells subscribers of `auth.twofactor` that the entry changed: the
/// entry as `config` shows it now (its secret masked by [`Api::emit`]).
pub(crate) fn announce_entry(api: &Api) {
    match api.twofactor().config() {
        Ok(entry) => api.emit(&Event {
            collection: Collection::TwoFactor,
            msg: "changed",
            id: json!(Entry::ID),
            fields: entry_json(&entry),
        }),
        Err(e) => tracing::debug!(error = %e, "cannot read the changed entry"),
    }
}

/// The message a PAM login without a secret gets under `require_secret`.
pub(crate) const SECRET_REQUIRED: &str =
    "Two-factor authentication is required but not set up for this account";

/// The message a PAM login gets when the account's secret is stored under
/// a former name of its uid.
pub(crate) const SECRET_UNDER_OTHER_NAME: &str = "This account's two-factor secret is stored \
     under a former name of the account; ask an administrator to enrol it again";

/// What a PAM login of `user` through `service` needs.
enum PamNeed {
    /// No code: PAM_IGNORE.
    Nothing,
    /// The user's own code (or root's under `legacy_shared_code`).
    Code(service::UserRef),
    /// Refused with this message (`require_secret` and no secret, or the
    /// secret is stored under a former name).
    Refuse(&'static str),
}

fn pam_need(api: &Api, caller: &Caller, user: &str, service: &str) -> Result<PamNeed, ApiError> {
    if !(pam_counts_as_ssh(api, service) && api.twofactor().code_required(true)?) {
        return Ok(PamNeed::Nothing);
    }
    // An account NSS does not know is not ours to pass or fail (other
    // modules of the stack refuse it) -- unless a secret is stored under its
    // name: then the look-up failed (NSS down, a module that lost the
    // account) and the check fails closed instead of waving the login on.
    let Some(account) = api.inner.accounts.by_name(user) else {
        if api.twofactor().name_holds_secret(user)? {
            tracing::warn!(user, "account with a secret not found by NSS; refusing");
            return Err(ApiError::call(
                wire::Errno::ENOENT,
                format!(
                    "User '{}' could not be looked up; refusing",
                    wire::shown(user)
                ),
            ));
        }
        return Ok(PamNeed::Nothing);
    };
    let user = service::UserRef::of(&account);
    match api.twofactor().login_factor(caller, &user)? {
        service::LoginFactor::Own => return Ok(PamNeed::Code(user)),
        // Under `require_secret` each account needs its own: refused below.
        service::LoginFactor::LegacySharedCode if !api.inner.options.require_secret => {
            return Ok(PamNeed::Code(user));
        }
        service::LoginFactor::LegacySharedCode => {}
        service::LoginFactor::SecretUnderOtherName { names } => {
            api.twofactor().refuse_renamed(caller, &user, &names)?;
            return Ok(PamNeed::Refuse(SECRET_UNDER_OTHER_NAME));
        }
        service::LoginFactor::None => {}
    }
    if refused_without_secret(api, caller)? {
        return Ok(PamNeed::Refuse(SECRET_REQUIRED));
    }
    Ok(PamNeed::Nothing)
}

/// `true`, `false`, or `{"refuse": message}` under `require_secret`.
fn pam_required(api: &Api, _: &Session, a: PamRequiredArgs) -> Result<Value, ApiError> {
    let caller = Caller::new(Some(&a.username), Origin::Pam { rhost: None })
        .via(format!("pam:{}", a.pam_service));
    let answer = match pam_need(api, &caller, &a.username, &a.pam_service)? {
        PamNeed::Nothing => PamRequired::Code(false),
        PamNeed::Code(_) => PamRequired::Code(true),
        PamNeed::Refuse(message) => PamRequired::Refuse {
            refuse: message.into(),
        },
    };
    Ok(answer.to_value())
}

fn pam_check(api: &Api, _: &Session, a: PamCheckArgs) -> Result<Value, ApiError> {
    let caller = Caller::new(Some(&a.username), Origin::Pam { rhost: a.rhost })
        .via(format!("pam:{}", a.pam_service));
    let target = match pam_need(api, &caller, &a.username, &a.pam_service)? {
        PamNeed::Nothing => return Ok(PamOutcome::NotRequired.to_value()),
        PamNeed::Refuse(message) => {
            return Ok(PamOutcome::Refused {
                message: message.into(),
            }
            .to_value());
        }
        PamNeed::Code(target) => target,
    };
    let outcome =
        match api
            .twofactor()
            .check_login_code(&caller, &target, a.token.as_ref().map(Code::expose))
        {
            Ok(CheckOutcome::Accepted) => PamOutcome::Accepted,
            Ok(CheckOutcome::Wrong) => PamOutcome::Wrong,
            Ok(CheckOutcome::Replayed) => PamOutcome::Replayed,
            Ok(CheckOutcome::Malformed { digits }) => PamOutcome::Malformed { digits },
            Ok(CheckOutcome::LockedOut { retry_after_secs }) => PamOutcome::LockedOut {
                retry_after_secs: Some(retry_after_secs),
            },
            Err(service::ServiceError::NotEnabled | service::ServiceError::NotConfigured) => {
                PamOutcome::NotRequired
            }
            Err(e) => return Err(e.into()),
        };
    Ok(outcome.to_value())
}

/// `true`, `false`, or `{"refuse": MESSAGE}`.
impl Described for PamRequired {
    fn schema() -> Schema {
        Schema::AnyOf(vec![
            Schema::Bool,
            Schema::Object(vec![
                Field::new(
                    "refuse",
                    Schema::Str { nullable: false },
                    "Why the login is refused",
                )
                .required(),
            ]),
        ])
    }
}

/// One shape per `outcome`.
impl Described for PamOutcome {
    fn schema() -> Schema {
        let seconds = Schema::Int {
            min: 0,
            max: i64::MAX,
        };
        Schema::Tagged {
            tag: "outcome",
            variants: vec![
                ("accepted", vec![]),
                ("wrong", vec![]),
                ("replayed", vec![]),
                (
                    "malformed",
                    vec![Field::new("digits", Digits::schema(), "Digits a code has").required()],
                ),
                (
                    "locked_out",
                    vec![Field::new(
                        "retry_after_secs",
                        seconds,
                        "Seconds until codes are checked again",
                    )],
                ),
                ("not_required", vec![]),
                (
                    "refused",
                    vec![
                        Field::new(
                            "message",
                            Schema::Str { nullable: false },
                            "Why the login is refused",
                        )
                        .required(),
                    ],
                ),
            ],
        }
    }
}
