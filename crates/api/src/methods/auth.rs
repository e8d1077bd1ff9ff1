//! `auth.*`: login with password and code (SPEC §5.4), `me`, `logout`.

use serde_json::{Value, json};
use service::CheckOutcome;

use super::{arg, refused_without_secret};
use crate::registry::{Access, Method};
use crate::schema::{Field, Schema};
use crate::session::{Authenticated, PendingLogin};
use crate::{Api, ApiError, Session};

/// Wrong codes allowed in one login before it starts over.
const MAX_WRONG_CODES: u8 = 3;

fn login_options() -> Field {
    Field::new(
        "login_options",
        Schema::Object(vec![Field::new(
            "user_info",
            Schema::Bool,
            "Return auth.me in the answer",
        )]),
        "Login options",
    )
}

fn login_schema() -> Schema {
    Schema::Object(vec![
        Field::new(
            "mechanism",
            Schema::Str { nullable: false },
            "PASSWORD_PLAIN or OTP_TOKEN",
        )
        .required(),
        Field::new("username", Schema::Str { nullable: false }, "Account name"),
        Field::new("password", Schema::Str { nullable: false }, "Password"),
        Field::new(
            "otp_token",
            Schema::Str { nullable: false },
            "Code from the authenticator app",
        ),
        login_options(),
    ])
}

pub(super) fn methods() -> Vec<Method> {
    let base = Method::base(Access::Public, true);
    vec![
        Method {
            name: "auth.login_ex",
            description: "Logs in. PASSWORD_PLAIN answers SUCCESS, OTP_REQUIRED (continue with \
                          auth.login_ex_continue) or AUTH_ERR.",
            cli_description: "Log in",
            accepts: vec![Field::new("auth_login_ex", login_schema(), "Login data").required()],
            handler: login_ex,
            ..base.clone()
        },
        Method {
            name: "auth.login_ex_continue",
            description: "Continues a login that answered OTP_REQUIRED, with mechanism OTP_TOKEN.",
            cli_description: "Continue a login with a code",
            accepts: vec![
                Field::new("auth_login_ex_continue", login_schema(), "Login data").required(),
            ],
            handler: |api, session, args| {
                api.admit_login(session, "auth.login_ex_continue")?;
                continue_with_code(api, session, arg(&args, 0))
            },
            ..base.clone()
        },
        Method {
            name: "auth.login",
            description: "Legacy login: true when the password (and, with 2FA on, the code) are right.",
            cli_description: "Log in (legacy)",
            accepts: vec![
                Field::new("username", Schema::Str { nullable: false }, "Account name").required(),
                Field::new("password", Schema::Str { nullable: false }, "Password").required(),
                Field::new("otp_token", Schema::Str { nullable: true }, "Code")
                    .default(Value::Null),
            ],
            returns: Schema::Bool,
            handler: login_legacy,
            ..base.clone()
        },
        Method {
            name: "auth.mechanism_choices",
            description: "The login mechanisms this server accepts.",
            cli_description: "List login mechanisms",
            inline: true,
            handler: |_, _, _| Ok(json!(["PASSWORD_PLAIN", "OTP_TOKEN"])),
            ..base.clone()
        },
        Method {
            name: "auth.me",
            description: "Describes the logged-in user.",
            cli_description: "Show who is logged in",
            examples: &["auth me"],
            access: Access::User,
            cli_private: false,
            inline: true,
            handler: |api, session, _| {
                let user = session.user().ok_or_else(ApiError::not_authenticated)?;
                me(api, &user)
            },
            ..base.clone()
        },
        Method {
            name: "auth.logout",
            description: "Ends the session's login.",
            cli_description: "Log out",
            access: Access::User,
            returns: Schema::Bool,
            handler: |api, session, _| {
                let caller = session.caller().via("auth.logout");
                let mut st = session.state();
                st.user = None;
                st.pending = None;
                st.subscriptions.clear();
                drop(st);
                api.twofactor()
                    .record(&caller, "auth.logout", "success", None)?;
                Ok(json!(true))
            },
            ..base
        },
    ]
}

fn me(api: &Api, user: &Authenticated) -> Result<Value, ApiError> {
    let a = &user.account;
    let two_factor = super::user::config_json(
        &api.twofactor()
            .user_config(&service::UserRef::of(&user.account))?,
    );
    Ok(json!({
        "pw_name": a.name,
        "pw_gecos": a.gecos,
        "pw_dir": a.home,
        "pw_shell": a.shell,
        "pw_uid": a.uid,
        "pw_gid": a.gid,
        "grouplist": a.groups,
        "sid": null,
        "source": "LOCAL",
        "local": true,
        "attributes": {},
        "two_factor_config": two_factor,
        "privilege": {
            "roles": if user.admin { vec!["FULL_ADMIN"] } else { vec![] },
            "web_shell": user.admin,
        },
        "account_attributes": if user.admin { vec!["LOCAL", "SYS_ADMIN"] } else { vec!["LOCAL"] },
    }))
}

fn success(
    api: &Api,
    session: &Session,
    user: Authenticated,
    user_info: bool,
) -> Result<Value, ApiError> {
    let info = if user_info {
        me(api, &user)?
    } else {
        Value::Null
    };
    {
        let mut st = session.state();
        st.user = Some(user);
        st.pending = None;
        // A new login starts without the last one's subscriptions (SPEC §5.5).
        st.subscriptions.clear();
    }
    api.twofactor().record(
        &session.caller().via("auth.login_ex"),
        "auth.login",
        "success",
        None,
    )?;
    Ok(json!({"response_type": "SUCCESS", "user_info": info, "authenticator": "LEVEL_1"}))
}

/// Checks a password; on failure waits, audits and answers `None`.
fn check_password(
    api: &Api,
    session: &Session,
    user: &str,
    password: &str,
) -> Result<Option<Authenticated>, ApiError> {
    // Every failed login is answered at one deadline from here, however
    // long the lookup, PAM and the audit took (SPEC §11, issue 7 item 8).
    let clock = api.twofactor().clock();
    let started = clock.now_ms();
    let account = api.inner.accounts.by_name(user);
    // The password check runs even for unknown users so timing does not tell them apart.
    let rhost = session.origin().remote_address();
    let password = service::SecretString::from(password);
    let ok = api.inner.passwords.check(user, &password, rhost.as_deref());
    match account.filter(|_| ok) {
        Some(account) => {
            let admin = api.is_admin(&account);
            Ok(Some(Authenticated { account, admin }))
        }
        None => {
            let mut caller = session.caller().via("auth.login");
            caller.user = Some(user.to_owned());
            let recorded = api.record_failed_login(&caller, session);
            let spent = u64::try_from(clock.now_ms().saturating_sub(started)).unwrap_or(0);
            crate::delay_answer(
                api.inner
                    .options
                    .failed_login_delay
                    .saturating_sub(std::time::Duration::from_millis(spent)),
            );
            recorded?;
            Ok(None)
        }
    }
}

/// Whether a password login needs a code (SPEC 9.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeNeeded {
    Yes,
    No,
    /// 2FA is on, the account has no secret and `require_secret` is set:
    /// refused (audited `no second factor configured`).
    Refused,
}

/// 2FA on and the account has a secret of its own: a code. 2FA on without
/// one: the password alone, unless `require_secret`.
fn code_needed(api: &Api, session: &Session, auth: &Authenticated) -> Result<CodeNeeded, ApiError> {
    if !api.twofactor().code_required(false)? {
        return Ok(CodeNeeded::No);
    }
    let mut caller = session.caller().via("auth.login");
    caller.user = Some(auth.account.name.clone());
    if api
        .twofactor()
        .user_has_secret(&caller, &service::UserRef::of(&auth.account))?
    {
        return Ok(CodeNeeded::Yes);
    }
    if refused_without_secret(api, &caller)? {
        return Ok(CodeNeeded::Refused);
    }
    Ok(CodeNeeded::No)
}

fn auth_err() -> Value {
    json!({"response_type": "AUTH_ERR"})
}

fn login_ex(api: &Api, session: &Session, args: Vec<Value>) -> Result<Value, ApiError> {
    api.admit_login(session, "auth.login_ex")?;
    let data = arg(&args, 0);
    let mechanism = data
        .get("mechanism")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match mechanism {
        "PASSWORD_PLAIN" => {
            let mut problems = Vec::new();
            for key in ["username", "password"] {
                if !data.get(key).is_some_and(Value::is_string) {
                    problems.push((
                        format!("auth_login_ex.{key}"),
                        "attribute required".to_owned(),
                    ));
                }
            }
            if data.get("otp_token").is_some() {
                problems.push((
                    "auth_login_ex.otp_token".to_owned(),
                    "Field was not expected".to_owned(),
                ));
            }
            if !problems.is_empty() {
                return Err(ApiError::Validation(problems));
            }
            let user = data["username"].as_str().unwrap_or_default();
            let password = data["password"].as_str().unwrap_or_default();
            let user_info = data
                .get("login_options")
                .and_then(|o| o.get("user_info"))
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let Some(auth) = check_password(api, session, user, password)? else {
                return Ok(auth_err());
            };
            match code_needed(api, session, &auth)? {
                CodeNeeded::Yes => {}
                CodeNeeded::No => return success(api, session, auth, user_info),
                CodeNeeded::Refused => return Ok(auth_err()),
            }
            let name = auth.account.name.clone();
            let mut st = session.state();
            st.next_login += 1;
            st.pending = Some(PendingLogin {
                login: st.next_login,
                account: auth.account,
                admin: auth.admin,
                wrong_codes: 0,
                user_info,
            });
            Ok(json!({"response_type": "OTP_REQUIRED", "username": name}))
        }
        "OTP_TOKEN" => continue_with_code(api, session, data),
        other => Err(ApiError::Validation(vec![(
            "auth_login_ex.mechanism".to_owned(),
            format!("{other:?}: not one of PASSWORD_PLAIN, OTP_TOKEN"),
        )])),
    }
}

fn continue_with_code(api: &Api, session: &Session, data: &Value) -> Result<Value, ApiError> {
    let mut problems = Vec::new();
    if data.get("mechanism").and_then(Value::as_str) != Some("OTP_TOKEN") {
        problems.push((
            "auth_login_ex_continue.mechanism".to_owned(),
            "Must be OTP_TOKEN".to_owned(),
        ));
    }
    for key in ["username", "password"] {
        if data.get(key).is_some() {
            problems.push((
                format!("auth_login_ex_continue.{key}"),
                "Field was not expected".to_owned(),
            ));
        }
    }
    if !data.get("otp_token").is_some_and(Value::is_string) {
        problems.push((
            "auth_login_ex_continue.otp_token".to_owned(),
            "attribute required".to_owned(),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    // The try is taken before the check, under the session's lock, so
    // concurrent continues cannot check more than MAX_WRONG_CODES codes.
    let pending = {
        let mut st = session.state();
        let Some(p) = st.pending.as_mut() else {
            return Err(ApiError::call(
                wire::Errno::EINVAL,
                "OTP_TOKEN: no authentication in progress",
            ));
        };
        if p.wrong_codes >= MAX_WRONG_CODES {
            st.pending = None;
            return Ok(auth_err());
        }
        p.wrong_codes += 1;
        p.clone()
    };
    let mut caller = session.caller().via("auth.login_ex_continue");
    caller.user = Some(pending.account.name.clone());
    let outcome = api.twofactor().check_code_for(
        &caller,
        &service::UserRef::of(&pending.account),
        data.get("otp_token").and_then(Value::as_str),
    );
    match outcome {
        Ok(CheckOutcome::Accepted) => {
            let user = Authenticated {
                account: pending.account,
                admin: pending.admin,
            };
            success(api, session, user, pending.user_info)
        }
        Ok(CheckOutcome::Wrong | CheckOutcome::Replayed) => {
            if pending.wrong_codes >= MAX_WRONG_CODES {
                let mut st = session.state();
                if st
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.login == pending.login)
                {
                    st.pending = None;
                }
                return Ok(auth_err());
            }
            Ok(json!({"response_type": "OTP_REQUIRED", "username": pending.account.name}))
        }
        Ok(CheckOutcome::LockedOut { retry_after_secs }) => {
            session.state().pending = None;
            Err(service::ServiceError::LockedOut { retry_after_secs }.into())
        }
        // The secret was removed meanwhile and a second factor is required.
        Err(service::ServiceError::NotConfigured) if api.inner.options.require_secret => {
            session.state().pending = None;
            Ok(auth_err())
        }
        // 2FA was turned off (or the user's secret removed) between the
        // password and the code: the password stands, as it would now.
        Err(service::ServiceError::NotEnabled | service::ServiceError::NotConfigured) => {
            let user = Authenticated {
                account: pending.account,
                admin: pending.admin,
            };
            success(api, session, user, pending.user_info)
        }
        Err(e) => Err(e.into()),
    }
}

fn login_legacy(api: &Api, session: &Session, args: Vec<Value>) -> Result<Value, ApiError> {
    api.admit_login(session, "auth.login")?;
    let user = arg(&args, 0).as_str().unwrap_or_default();
    let password = arg(&args, 1).as_str().unwrap_or_default();
    let Some(auth) = check_password(api, session, user, password)? else {
        return Ok(json!(false));
    };
    let needed = code_needed(api, session, &auth)?;
    if needed == CodeNeeded::Refused {
        return Ok(json!(false));
    }
    if needed == CodeNeeded::Yes {
        let mut caller = session.caller().via("auth.login");
        caller.user = Some(auth.account.name.clone());
        match api.twofactor().check_code_for(
            &caller,
            &service::UserRef::of(&auth.account),
            arg(&args, 2).as_str(),
        )? {
            CheckOutcome::Accepted => {}
            CheckOutcome::LockedOut { retry_after_secs } => {
                return Err(service::ServiceError::LockedOut { retry_after_secs }.into());
            }
            CheckOutcome::Wrong | CheckOutcome::Replayed => return Ok(json!(false)),
        }
    }
    {
        let mut st = session.state();
        st.user = Some(auth);
        st.subscriptions.clear();
    }
    api.twofactor().record(
        &session.caller().via("auth.login"),
        "auth.login",
        "success",
        None,
    )?;
    Ok(json!(true))
}
