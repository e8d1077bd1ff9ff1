//! `auth.twofactor.*` (SPEC §3) and the PAM module's private methods (§7).

use otp::{Digits, Interval, Window};
use serde_json::{Value, json};
use service::{Caller, CheckOutcome, Entry, Origin, Services, UpdateRequest};

use super::{arg, refused_without_secret};
use crate::registry::{Access, Method};
use crate::schema::{Field, Schema};
use crate::{Api, ApiError, Event, Session};

fn int(min: impl Into<i64>, max: impl Into<i64>) -> Schema {
    Schema::Int {
        min: min.into(),
        max: max.into(),
    }
}

fn services_schema() -> Schema {
    Schema::Object(vec![
        Field::new("ssh", Schema::Bool, "Require a code at SSH login").default(json!(false)),
    ])
}

/// The fields of the entry, in the order `config` returns them.
fn entry_schema() -> Schema {
    Schema::Object(vec![
        Field::new("id", Schema::Int { min: 1, max: 1 }, "Always 1"),
        Field::new(
            "otp_digits",
            int(Digits::MIN, Digits::MAX),
            "Digits in a code",
        ),
        Field::new(
            "secret",
            Schema::Str { nullable: true },
            "Base32 secret (null before first enable)",
        ),
        Field::new(
            "window",
            int(Window::MIN, Window::MAX),
            "Extra time steps accepted on each side",
        ),
        Field::new(
            "interval",
            int(Interval::MIN, Interval::MAX),
            "Seconds per code",
        ),
        Field::new(
            "services",
            services_schema(),
            "Services that also require a code",
        ),
        Field::new(
            "enabled",
            Schema::Bool,
            "Two-factor authentication on or off",
        ),
    ])
}

/// The JSON form of the entry (SPEC §2 key order).
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
            returns: entry_schema(),
            inline: true,
            handler: |api, _, _| Ok(entry_json(&api.twofactor().config()?)),
            ..base.clone()
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
            accepts: vec![
                Field::new(
                    "auth_twofactor_update",
                    Schema::Object(vec![
                        Field::new("enabled", Schema::Bool, "Turn two-factor authentication on or off"),
                        Field::new("otp_digits", int(Digits::MIN, Digits::MAX), "Digits in a code")
                            .default(json!(Digits::DEFAULT.get()))
                            .reprovision(),
                        Field::new(
                            "window",
                            int(Window::MIN, Window::MAX),
                            "Also accept codes this many time steps before and after the current one",
                        )
                        .default(json!(Window::DEFAULT.get())),
                        Field::new("interval", int(Interval::MIN, Interval::MAX), "Seconds each code lives")
                            .default(json!(Interval::DEFAULT.get()))
                            .reprovision(),
                        Field::new("services", services_schema(), "Services that also require a code"),
                    ]),
                    "The settings to change",
                )
                .required(),
            ],
            returns: entry_schema(),
            handler: update,
            ..base.clone()
        },
        Method {
            name: "auth.twofactor.provisioning_uri",
            description: "The otpauth:// Key URI that authenticator apps import (as a QR code).",
            cli_description: "Show the provisioning URI (and QR code)",
            examples: &["auth two_factor provisioning_uri", "auth two_factor provisioning_uri --png qr.png"],
            returns: Schema::Str { nullable: false },
            handler: |api, _, _| Ok(json!(api.twofactor().provisioning_uri()?.as_str())),
            ..base.clone()
        },
        Method {
            name: "auth.twofactor.renew_secret",
            description: "Replaces the secret with a new one. Every authenticator app must be \
                          provisioned again. Needs 2FA enabled.",
            cli_description: "Generate a new secret",
            examples: &["auth two_factor renew_secret"],
            returns: Schema::Bool,
            handler: renew_secret,
            ..base.clone()
        },
        Method {
            name: "auth.twofactor.verify",
            description: "True when the token is a valid code now. Each code is accepted once; \
                          repeated wrong codes lock checks out for a while.",
            cli_description: "Check a code",
            examples: &["auth two_factor verify token=123456"],
            accepts: vec![
                Field::new("token", Schema::Str { nullable: true }, "The code from the authenticator app")
                    .required(),
            ],
            returns: Schema::Bool,
            handler: |api, session, args| {
                // An administrator on the Unix socket is never locked out
                // (SPEC 6.3); the service decides with the origin.
                let admin = session.user().is_some_and(|u| u.admin);
                let caller = session.caller().via("auth.twofactor.verify").as_admin(admin);
                Ok(json!(api.twofactor().verify(&caller, arg(&args, 0).as_str())?))
            },
            ..base.clone()
        },
        Method {
            name: "auth.twofactor.pam_required",
            description: "Whether a PAM login of this user through this PAM service needs a code.",
            accepts: vec![
                Field::new("username", Schema::Str { nullable: false }, "").required(),
                Field::new("pam_service", Schema::Str { nullable: false }, "").required(),
            ],
            returns: Schema::Any,
            handler: pam_required,
            ..pam_base.clone()
        },
        Method {
            name: "auth.twofactor.pam_check",
            description: "Checks a code typed at a PAM prompt: accepted, wrong, replayed, \
                          locked_out or not_required.",
            accepts: vec![
                Field::new("username", Schema::Str { nullable: false }, "").required(),
                Field::new("pam_service", Schema::Str { nullable: false }, "").required(),
                Field::new("rhost", Schema::Str { nullable: true }, "").default(Value::Null),
                Field::new("token", Schema::Str { nullable: true }, "").required(),
            ],
            returns: Schema::Any,
            handler: pam_check,
            ..pam_base
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

fn update(api: &Api, session: &Session, args: Vec<Value>) -> Result<Value, ApiError> {
    let data = arg(&args, 0);
    // The schema checked types and ranges; these conversions cannot fail
    // past it, but a mismatch is reported rather than trusted.
    let int_of = |key: &str| data.get(key).and_then(Value::as_i64);
    let bad = |e: otp::ParamError| ApiError::Internal(format!("schema and type disagree: {e}"));
    let req = UpdateRequest {
        enabled: data.get("enabled").and_then(Value::as_bool),
        otp_digits: int_of("otp_digits")
            .map(Digits::new)
            .transpose()
            .map_err(bad)?,
        window: int_of("window").map(Window::new).transpose().map_err(bad)?,
        interval: int_of("interval")
            .map(Interval::new)
            .transpose()
            .map_err(bad)?,
        services: data.get("services").map(|s| Services {
            ssh: s.get("ssh").and_then(Value::as_bool).unwrap_or(false),
        }),
    };
    let caller = session.caller().via("auth.twofactor.update");
    let entry = entry_json(&api.twofactor().update(&caller, req)?);
    emit_changed(api, &entry);
    Ok(entry)
}

fn renew_secret(api: &Api, session: &Session, _: Vec<Value>) -> Result<Value, ApiError> {
    let caller = session.caller().via("auth.twofactor.renew_secret");
    let done = api.twofactor().renew_secret(&caller)?;
    emit_changed(api, &entry_json(&api.twofactor().config()?));
    Ok(json!(done))
}

/// Tells subscribers of `auth.twofactor` that the entry changed.
fn emit_changed(api: &Api, entry: &Value) {
    api.emit(&Event {
        collection: "auth.twofactor",
        msg: "changed",
        id: json!(Entry::ID),
        fields: entry.clone(),
    });
}

/// The message a PAM login without a secret gets under `require_secret`.
pub(crate) const SECRET_REQUIRED: &str =
    "Two-factor authentication is required but not set up for this account";

/// What a PAM login of `user` through `service` needs (SPEC 9.5).
enum PamNeed {
    /// No code: PAM_IGNORE.
    Nothing,
    /// The user's own code.
    Code(service::UserRef),
    /// `require_secret` and no secret: refused with [`SECRET_REQUIRED`].
    Refuse,
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
                format!("User '{user}' could not be looked up; refusing"),
            ));
        }
        return Ok(PamNeed::Nothing);
    };
    let user = service::UserRef::of(&account);
    if api.twofactor().user_has_secret(caller, &user)? {
        return Ok(PamNeed::Code(user));
    }
    if refused_without_secret(api, caller)? {
        return Ok(PamNeed::Refuse);
    }
    Ok(PamNeed::Nothing)
}

/// `true`, `false`, or `{"refuse": message}` under `require_secret`.
fn pam_required(api: &Api, _: &Session, args: Vec<Value>) -> Result<Value, ApiError> {
    let user = arg(&args, 0).as_str().unwrap_or_default();
    let service = arg(&args, 1).as_str().unwrap_or_default();
    let caller = Caller::new(Some(user), Origin::Pam { rhost: None }).via(format!("pam:{service}"));
    Ok(match pam_need(api, &caller, user, service)? {
        PamNeed::Nothing => json!(false),
        PamNeed::Code(_) => json!(true),
        PamNeed::Refuse => json!({"refuse": SECRET_REQUIRED}),
    })
}

fn pam_check(api: &Api, _: &Session, args: Vec<Value>) -> Result<Value, ApiError> {
    let user = arg(&args, 0).as_str().unwrap_or_default();
    let service = arg(&args, 1).as_str().unwrap_or_default();
    let rhost = arg(&args, 2).as_str().map(str::to_owned);
    let token = arg(&args, 3).as_str();
    let caller = Caller::new(Some(user), Origin::Pam { rhost }).via(format!("pam:{service}"));
    let target = match pam_need(api, &caller, user, service)? {
        PamNeed::Nothing => return Ok(json!({"outcome": "not_required"})),
        PamNeed::Refuse => return Ok(json!({"outcome": "refused", "message": SECRET_REQUIRED})),
        PamNeed::Code(target) => target,
    };
    let out = match api.twofactor().check_code_for(&caller, &target, token) {
        Ok(CheckOutcome::Accepted) => json!({"outcome": "accepted"}),
        Ok(CheckOutcome::Wrong) => json!({"outcome": "wrong"}),
        Ok(CheckOutcome::Replayed) => json!({"outcome": "replayed"}),
        Ok(CheckOutcome::LockedOut { retry_after_secs }) => {
            json!({"outcome": "locked_out", "retry_after_secs": retry_after_secs})
        }
        Err(service::ServiceError::NotEnabled | service::ServiceError::NotConfigured) => {
            json!({"outcome": "not_required"})
        }
        Err(e) => return Err(e.into()),
    };
    Ok(out)
}
