//! `auth.*`: login with password and code, `me`, `logout`.

use std::time::Duration;

use serde_json::{Value, json};
use service::{CheckOutcome, Digits, SecretString};

use super::refused_without_secret;
use super::user::{Passwd, Summary};
use crate::Code;
use crate::registry::{Access, Method};
use crate::schema::Schema;
use crate::session::{Authenticated, PendingLogin};
use crate::typed::{Answer, Described, Fields, Reply, doc, flat, reply_field};
use crate::{Api, ApiError, Session, args, reply};
use wire::{Authenticator, LoginAnswer, MAX_WRONG_CODES};

args! {
    pub(crate) struct LoginOptions {
        user_info: bool => doc("Return auth.me in the answer").default(true),
    }
}

args! {
    /// `PASSWORD_PLAIN`: the first step of a login.
    pub(crate) struct PasswordPlain {
        username: String => doc("Account name"),
        password: SecretString => doc("Password"),
        login_options: LoginOptions => doc("Login options").default(json!({})),
    }
}

args! {
    /// `OTP_TOKEN`: the code that continues a login.
    pub(crate) struct OtpToken {
        otp_token: Code => doc("Code from the authenticator app"),
        /// Accepted as TrueNAS does; the password step's options decide.
        #[expect(dead_code, reason = "accepted for TrueNAS clients; the password step decides")]
        login_options: LoginOptions => doc("Login options").default(json!({})),
    }
}

args! {
    /// `TOKEN_PLAIN`: a token from `auth.generate_token` instead of a
    /// password and code.
    pub(crate) struct TokenPlain {
        token: SecretString => doc("Token from auth.generate_token"),
        login_options: LoginOptions => doc("Login options").default(json!({})),
    }
}

/// Longest time to live of a session token, in seconds.
const MAX_TOKEN_TTL: u64 = 86_400;

args! {
    /// `auth.generate_token`'s parameters, as TrueNAS names them.
    pub(crate) struct GenerateTokenArgs {
        ttl: u64 => doc("Seconds the token stays valid after its last use (1 to 86400)")
            .default(json!(600)),
        #[expect(dead_code, reason = "accepted for TrueNAS clients; nothing reads it")]
        attrs: Value => doc("Attributes (accepted for TrueNAS clients)").default(json!({})),
        match_origin: bool => doc("Only the address that asked for the token may use it")
            .default(json!(true)),
        single_use: bool => doc("The token works once").default(json!(false)),
    }
}

/// `auth.login_ex`'s data, by `mechanism`.
#[derive(serde::Deserialize)]
#[serde(tag = "mechanism")]
pub(crate) enum LoginData {
    #[serde(rename = "PASSWORD_PLAIN")]
    PasswordPlain(PasswordPlain),
    #[serde(rename = "OTP_TOKEN")]
    OtpToken(OtpToken),
    #[serde(rename = "TOKEN_PLAIN")]
    TokenPlain(TokenPlain),
}

impl Described for LoginData {
    fn schema() -> Schema {
        Schema::Tagged {
            tag: "mechanism",
            variants: vec![
                ("PASSWORD_PLAIN", PasswordPlain::fields()),
                ("OTP_TOKEN", OtpToken::fields()),
                ("TOKEN_PLAIN", TokenPlain::fields()),
            ],
        }
    }
}

/// `auth.login_ex_continue`'s data: only a code continues.
#[derive(serde::Deserialize)]
#[serde(tag = "mechanism")]
pub(crate) enum ContinueData {
    #[serde(rename = "OTP_TOKEN")]
    OtpToken(OtpToken),
}

impl Described for ContinueData {
    fn schema() -> Schema {
        Schema::Tagged {
            tag: "mechanism",
            variants: vec![("OTP_TOKEN", OtpToken::fields())],
        }
    }
}

args! {
    pub(crate) struct LoginExArgs {
        auth_login_ex: LoginData => doc("Login data"),
    }
}

args! {
    pub(crate) struct LoginExContinueArgs {
        auth_login_ex_continue: ContinueData => doc("Login data"),
    }
}

args! {
    pub(crate) struct LoginArgs {
        username: String => doc("Account name"),
        password: SecretString => doc("Password"),
        otp_token: Option<Code> => doc("Code").nullable(),
    }
}

pub(super) fn methods() -> Vec<Method> {
    let base = Method::base(Access::Public, true);
    vec![
        Method {
            name: "auth.login_ex",
            description: "Logs in. PASSWORD_PLAIN answers SUCCESS, OTP_REQUIRED (continue with \
                          auth.login_ex_continue) or AUTH_ERR.",
            cli_description: "Log in",
            ..base.clone().answers(login_ex)
        },
        Method {
            name: "auth.login_ex_continue",
            description: "Continues a login that answered OTP_REQUIRED, with mechanism OTP_TOKEN.",
            cli_description: "Continue a login with a code",
            ..base
                .clone()
                .handles(|api, session, a: LoginExContinueArgs| {
                    api.admit_login(session, "auth.login_ex_continue")?;
                    let ContinueData::OtpToken(data) = a.auth_login_ex_continue;
                    continue_with_code(api, session, &data)
                })
        },
        Method {
            name: "auth.login",
            description: "Legacy login: true when the password (and, with 2FA on, the code) are right.",
            cli_description: "Log in (legacy)",
            ..base.clone().answers(login_legacy)
        },
        Method {
            name: "auth.login_otp_digits",
            description: "During a login that answered OTP_REQUIRED on this connection (the \
                          password was right), how many digits the code asked for has; null \
                          with no such login. Lets a client say `expected 6 digits` for a code \
                          of the wrong shape.",
            private: true,
            ..base.clone().handles(login_otp_digits)
        },
        Method {
            name: "auth.mechanism_choices",
            description: "The login mechanisms this server accepts.",
            cli_description: "List login mechanisms",
            inline: true,
            ..base
                .clone()
                .handles(|_, _, ()| Ok(mechanisms().into_iter().map(Mechanism).collect::<Vec<_>>()))
        },
        Method {
            name: "auth.me",
            description: "Describes the logged-in user.",
            cli_description: "Show who is logged in",
            examples: &["auth me"],
            access: Access::User,
            cli_private: false,
            inline: true,
            ..base.clone().handles(|api, session, ()| {
                let user = session.user().ok_or_else(ApiError::not_authenticated)?;
                me(api, &user)
            })
        },
        Method {
            name: "auth.generate_token",
            description: "Makes a session token for auth.login_ex with mechanism TOKEN_PLAIN (what \
                          keeps the web page signed in across a reload). Tokens live in the \
                          daemon's memory only, expire ttl seconds after their last use, are bound \
                          to the caller's address with match_origin, and end at auth.logout.",
            cli_description: "Make a session token",
            access: Access::User,
            ..base.clone().handles(generate_token)
        },
        Method {
            name: "auth.logout",
            description: "Ends the session's login.",
            cli_description: "Log out",
            access: Access::User,
            ..base.handles(|api, session, ()| {
                let caller = session.caller();
                let tokens = session.log_out();
                api.tokens().revoke(&tokens);
                api.twofactor().record(
                    &caller,
                    service::AuditEvent::AuthLogout,
                    service::AuditOutcome::Success,
                    None,
                )?;
                Ok(true)
            })
        },
    ]
}

/// The `mechanism`s `auth.login_ex` accepts: its union's variants.
fn mechanisms() -> Vec<&'static str> {
    match LoginData::schema() {
        Schema::Tagged { variants, .. } => variants.iter().map(|(name, _)| *name).collect(),
        _ => Vec::new(),
    }
}

/// The login mechanisms, as `auth.login_ex`'s union names them.
const MECHANISMS: &[&str] = &["PASSWORD_PLAIN", "OTP_TOKEN", "TOKEN_PLAIN"];

/// One of `auth.mechanism_choices`'s answers.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Mechanism(&'static str);

impl Reply for Mechanism {
    fn returns() -> Schema {
        Schema::Choice(MECHANISMS)
    }
}

reply! {
    /// What `auth.me` answers (also a login's `user_info`).
    pub(crate) struct Me {
        #[serde(flatten)]
        passwd: Passwd => flat(),
        attributes: Attributes => doc("Always empty"),
        two_factor_config: Summary => doc(
            "Two-factor state of the account (never its provisioning URI)",
        ),
        privilege: Privilege => doc("Roles and web shell access"),
        account_attributes: Vec<&'static str> => doc("LOCAL, and SYS_ADMIN for administrators"),
    }
}

reply! {
    /// `auth.me`'s `attributes`: none are kept here.
    pub(crate) struct Attributes {}
}

reply! {
    /// `auth.me`'s `privilege`.
    pub(crate) struct Privilege {
        roles: Vec<&'static str> => doc("FULL_ADMIN for administrators"),
        web_shell: bool => doc("Whether the web shell is open to the user"),
    }
}

/// A login answer as this server gives it: `user_info` is `auth.me`.
type LoginReply = LoginAnswer<Option<Me>>;

/// What a `SUCCESS` reports the user proved.
impl Reply for Authenticator {
    fn returns() -> Schema {
        Schema::Choice(&["LEVEL_1"])
    }
}

/// A login answer: one shape per `response_type`; `SUCCESS` carries
/// `auth.me`'s answer (or null when not asked for).
impl Reply for LoginReply {
    fn returns() -> Schema {
        Schema::Tagged {
            tag: "response_type",
            variants: vec![
                (
                    "SUCCESS",
                    vec![
                        reply_field::<Option<Me>>("user_info", doc("auth.me of the user, or null")),
                        reply_field::<Authenticator>("authenticator", doc("What the user proved")),
                    ],
                ),
                (
                    "OTP_REQUIRED",
                    vec![reply_field::<String>(
                        "username",
                        doc("Who continues with a code"),
                    )],
                ),
                ("AUTH_ERR", vec![]),
                ("EXPIRED", vec![]),
                (
                    "REDIRECT",
                    vec![reply_field::<Vec<String>>(
                        "urls",
                        doc("Where to log in instead"),
                    )],
                ),
            ],
        }
    }
}

fn me(api: &Api, user: &Authenticated) -> Result<Me, ApiError> {
    // Without the provisioning URI: it carries the seed, and a login's
    // answer is seen by more than the user (proxies, client logs).
    let two_factor = Summary::of(
        &api.twofactor()
            .user_config(&service::UserRef::of(&user.account))?,
    );
    Ok(Me {
        passwd: Passwd::of(&user.account, true),
        attributes: Attributes {},
        two_factor_config: two_factor,
        privilege: Privilege {
            roles: if user.admin {
                vec!["FULL_ADMIN"]
            } else {
                vec![]
            },
            web_shell: user.admin,
        },
        account_attributes: if user.admin {
            vec!["LOCAL", "SYS_ADMIN"]
        } else {
            vec!["LOCAL"]
        },
    })
}

/// Which second factor a successful login took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Took {
    /// None (2FA off, or the account has no secret).
    Nothing,
    /// A code (or recovery code) of the account's own secret: it counts
    /// as proof of that secret for the rest of this login.
    OwnCode,
    /// Root's code under `legacy_shared_code`.
    LegacySharedCode,
}

/// Logs `user` in on this session, remembering a code it proved.
fn log_in(session: &Session, user: Authenticated, took: Took) {
    session.log_in(user, took == Took::OwnCode);
}

/// The audit detail of a successful login.
fn login_detail(took: Took) -> Option<Value> {
    (took == Took::LegacySharedCode).then(|| {
        json!({
            "second_factor": "legacy_shared_code",
            "note": "root's code, asked of an account without its own secret",
        })
    })
}

fn success(
    api: &Api,
    session: &Session,
    user: Authenticated,
    user_info: bool,
    took: Took,
) -> Result<LoginReply, ApiError> {
    let info = if user_info {
        Some(me(api, &user)?)
    } else {
        None
    };
    log_in(session, user, took);
    api.twofactor().record(
        &session.caller(),
        service::AuditEvent::AuthLogin,
        service::AuditOutcome::Success,
        login_detail(took),
    )?;
    Ok(LoginAnswer::Success {
        user_info: info,
        authenticator: Authenticator::Level1,
    })
}

/// A wrong password (or unknown account): audited, and answered only at
/// the deadline.
struct FailedLogin {
    /// How much longer the answer waits.
    delay: Duration,
    /// Whether the audit record was written.
    recorded: Result<(), ApiError>,
}

impl FailedLogin {
    /// The failure's answer: `value`, at the deadline; if the audit failed,
    /// that error (also at the deadline).
    fn answer<T>(self, value: T) -> Answer<T> {
        Answer::after(self.recorded.map(|()| value), self.delay)
    }
}

/// Checks a password.
fn check_password(
    api: &Api,
    session: &Session,
    user: &str,
    password: &SecretString,
) -> Result<Authenticated, FailedLogin> {
    // Every failed login is answered at one deadline from here, however
    // long the lookup, PAM and the audit took, so the
    // time taken tells nothing.
    let clock = api.twofactor().clock();
    let started = clock.now_ms();
    let account = api.inner.accounts.by_name(user);
    // The password check runs even for unknown users so timing does not tell them apart.
    let rhost = session.origin().remote_address();
    let ok = api.inner.passwords.check(user, password, rhost.as_deref());
    match account.filter(|_| ok) {
        Some(account) => {
            let admin = api.is_admin(&account);
            Ok(Authenticated { account, admin })
        }
        None => {
            let caller = session.login_caller(user);
            let recorded = api.record_failed_login(&caller, session);
            let spent = u64::try_from(clock.now_ms().saturating_sub(started)).unwrap_or(0);
            let delay = api
                .inner
                .options
                .failed_login_delay
                .saturating_sub(Duration::from_millis(spent));
            Err(FailedLogin { delay, recorded })
        }
    }
}

/// Whether a password login needs a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeNeeded {
    /// The account's own code.
    Yes,
    /// Root's code (`legacy_shared_code`).
    Legacy,
    No,
    /// 2FA is on, the account has no secret and `require_secret` is set:
    /// refused (audited `no second factor configured`).
    Refused,
}

/// 2FA on and the account has a secret of its own: a code. 2FA on without
/// one: root's code under `legacy_shared_code`; refused when the account's
/// secret is stored under a former name of its uid; else the password
/// alone, unless `require_secret`.
fn code_needed(api: &Api, session: &Session, auth: &Authenticated) -> Result<CodeNeeded, ApiError> {
    if !api.twofactor().code_required(false)? {
        return Ok(CodeNeeded::No);
    }
    let caller = session.login_caller(&auth.account.name);
    let user = service::UserRef::of(&auth.account);
    match api.twofactor().login_factor(&caller, &user)? {
        service::LoginFactor::Own => return Ok(CodeNeeded::Yes),
        // `require_secret` wants each account's own secret: it refuses
        // rather than take root's code.
        service::LoginFactor::LegacySharedCode if !api.inner.options.require_secret => {
            return Ok(CodeNeeded::Legacy);
        }
        service::LoginFactor::LegacySharedCode => {}
        service::LoginFactor::SecretUnderOtherName { names } => {
            api.twofactor().refuse_renamed(&caller, &user, &names)?;
            return Ok(CodeNeeded::Refused);
        }
        service::LoginFactor::None => {}
    }
    if refused_without_secret(api, &caller)? {
        return Ok(CodeNeeded::Refused);
    }
    Ok(CodeNeeded::No)
}

fn auth_err() -> LoginReply {
    LoginAnswer::AuthErr
}

fn login_ex(api: &Api, session: &Session, args: LoginExArgs) -> Answer<LoginReply> {
    if let Err(e) = api.admit_login(session, "auth.login_ex") {
        return Answer::from(Err(e));
    }
    let data = match args.auth_login_ex {
        LoginData::PasswordPlain(data) => data,
        LoginData::OtpToken(data) => return Answer::from(continue_with_code(api, session, &data)),
        LoginData::TokenPlain(data) => return Answer::from(login_with_token(api, session, &data)),
    };
    let user_info = data.login_options.user_info;
    let auth = match check_password(api, session, &data.username, &data.password) {
        Ok(auth) => auth,
        Err(failed) => return failed.answer(auth_err()),
    };
    Answer::from(password_accepted(api, session, auth, user_info))
}

/// After a right password: logged in, or a code asked for, or refused.
fn password_accepted(
    api: &Api,
    session: &Session,
    auth: Authenticated,
    user_info: bool,
) -> Result<LoginReply, ApiError> {
    let legacy_shared_code = match code_needed(api, session, &auth)? {
        CodeNeeded::Yes => false,
        CodeNeeded::Legacy => true,
        CodeNeeded::No => return success(api, session, auth, user_info, Took::Nothing),
        CodeNeeded::Refused => return Ok(auth_err()),
    };
    let name = auth.account.name.clone();
    let mut st = session.state();
    st.next_login += 1;
    st.pending = Some(PendingLogin {
        login: st.next_login,
        account: auth.account,
        admin: auth.admin,
        wrong_codes: 0,
        user_info,
        legacy_shared_code,
    });
    Ok(LoginAnswer::OtpRequired { username: name })
}

fn continue_with_code(
    api: &Api,
    session: &Session,
    data: &OtpToken,
) -> Result<LoginReply, ApiError> {
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
    let caller = session.login_caller(&pending.account.name);
    let outcome = api.twofactor().check_login_code(
        &caller,
        &service::UserRef::of(&pending.account),
        Some(data.otp_token.expose()),
    );
    match outcome {
        Ok(CheckOutcome::Accepted) => {
            let user = Authenticated {
                account: pending.account,
                admin: pending.admin,
            };
            let took = if pending.legacy_shared_code {
                Took::LegacySharedCode
            } else {
                Took::OwnCode
            };
            success(api, session, user, pending.user_info, took)
        }
        Ok(CheckOutcome::Wrong | CheckOutcome::Replayed | CheckOutcome::Malformed { .. }) => {
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
            Ok(LoginAnswer::OtpRequired {
                username: pending.account.name,
            })
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
            success(api, session, user, pending.user_info, Took::Nothing)
        }
        Err(e) => Err(e.into()),
    }
}

fn login_legacy(api: &Api, session: &Session, args: LoginArgs) -> Answer<bool> {
    if let Err(e) = api.admit_login(session, "auth.login") {
        return Answer::from(Err(e));
    }
    match check_password(api, session, &args.username, &args.password) {
        Ok(auth) => Answer::from(legacy_accepted(
            api,
            session,
            auth,
            args.otp_token.as_ref().map(Code::expose),
        )),
        Err(failed) => failed.answer(false),
    }
}

/// `auth.login` after a right password: the code, if one is needed.
fn legacy_accepted(
    api: &Api,
    session: &Session,
    auth: Authenticated,
    otp_token: Option<&str>,
) -> Result<bool, ApiError> {
    let needed = code_needed(api, session, &auth)?;
    if needed == CodeNeeded::Refused {
        return Ok(false);
    }
    let took = match needed {
        CodeNeeded::Yes => Took::OwnCode,
        CodeNeeded::Legacy => Took::LegacySharedCode,
        CodeNeeded::No | CodeNeeded::Refused => Took::Nothing,
    };
    if took != Took::Nothing {
        let caller = session.login_caller(&auth.account.name);
        match api.twofactor().check_login_code(
            &caller,
            &service::UserRef::of(&auth.account),
            otp_token,
        )? {
            CheckOutcome::Accepted => {}
            CheckOutcome::LockedOut { retry_after_secs } => {
                return Err(service::ServiceError::LockedOut { retry_after_secs }.into());
            }
            CheckOutcome::Wrong | CheckOutcome::Replayed | CheckOutcome::Malformed { .. } => {
                return Ok(false);
            }
        }
    }
    log_in(session, auth, took);
    api.twofactor().record(
        &session.caller(),
        service::AuditEvent::AuthLogin,
        service::AuditOutcome::Success,
        login_detail(took),
    )?;
    Ok(true)
}

/// `auth.generate_token`: a token for the logged-in user.
fn generate_token(api: &Api, session: &Session, a: GenerateTokenArgs) -> Result<String, ApiError> {
    api.admit_login(session, "auth.generate_token")?;
    if !(1..=MAX_TOKEN_TTL).contains(&a.ttl) {
        return Err(ApiError::Validation(vec![(
            "auth_generate_token.ttl".into(),
            format!("Should be between 1 and {MAX_TOKEN_TTL}"),
        )]));
    }
    let user = session.user().ok_or_else(ApiError::not_authenticated)?;
    let took_code = session.state().step_up.as_ref().is_some_and(|s| {
        s.at_ms.is_none() && s.name == user.account.name && s.uid == user.account.uid
    });
    let grant = crate::tokens::Grant {
        account: user.account,
        admin: user.admin,
        took_code,
        ttl_ms: i64::try_from(a.ttl * 1000).unwrap_or(i64::MAX),
        bound_to: a
            .match_origin
            .then(|| crate::tokens::origin_key(session.origin())),
        single_use: a.single_use,
    };
    let now = api.twofactor().clock().now_ms();
    let (id, token) = api
        .tokens()
        .issue(grant, now, &service::OsRandom)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let recorded = api.twofactor().record(
        &session.caller(),
        service::AuditEvent::AuthGenerateToken,
        service::AuditOutcome::Success,
        Some(json!({"ttl": a.ttl, "match_origin": a.match_origin, "single_use": a.single_use})),
    );
    if let Err(e) = recorded {
        // Not audited, not handed out.
        api.tokens().revoke(&[id]);
        return Err(e.into());
    }
    session.state().tokens.push(id);
    Ok(token.as_str().to_owned())
}

/// `auth.login_ex` with `TOKEN_PLAIN`: logged in as the token's account,
/// as that account is now (deleted, or its name given to another uid:
/// refused); a refused token is audited like a wrong password and
/// answered `AUTH_ERR`.
fn login_with_token(
    api: &Api,
    session: &Session,
    data: &TokenPlain,
) -> Result<LoginReply, ApiError> {
    use service::ExposeSecret;
    let now = api.twofactor().clock().now_ms();
    let key = crate::tokens::origin_key(session.origin());
    let redeemed = api.tokens().redeem(data.token.expose_secret(), &key, now);
    let refusal = match redeemed {
        Ok((id, grant)) => {
            let current = api
                .inner
                .accounts
                .by_name(&grant.account.name)
                .filter(|a| a.uid == grant.account.uid);
            if let Some(account) = current {
                // Never more than the session that made the token had, and
                // only while the account is still an administrator.
                let admin = grant.admin && api.is_admin(&account);
                let took = if grant.took_code {
                    Took::OwnCode
                } else {
                    Took::Nothing
                };
                let answer = success(
                    api,
                    session,
                    Authenticated { account, admin },
                    data.login_options.user_info,
                    took,
                )?;
                session.state().tokens.push(id);
                return Ok(answer);
            }
            api.tokens().revoke(&[id]);
            crate::tokens::Refusal::Unknown
        }
        Err(refusal) => refusal,
    };
    let caller = session.caller();
    api.record_failed_login_as(&caller, session, refusal.outcome())?;
    Ok(auth_err())
}

/// `auth.login_otp_digits`: the digits of the code the pending login on
/// this session waits for (the account's own secret, or root's under
/// `legacy_shared_code`), or null. Only after the password was right, so
/// it says nothing to a caller who does not know it.
fn login_otp_digits(api: &Api, session: &Session, (): ()) -> Result<Option<Digits>, ApiError> {
    let pending = session
        .state()
        .pending
        .as_ref()
        .map(|p| (p.account.clone(), p.legacy_shared_code));
    let Some((account, legacy)) = pending else {
        return Ok(None);
    };
    let user = if legacy {
        service::UserRef::root()
    } else {
        service::UserRef::of(&account)
    };
    let config = api.twofactor().user_config(&user)?;
    Ok(Some(config.otp_digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems `value` has against `schema`.
    fn problems(schema: &Schema, value: &impl serde::Serialize) -> Vec<crate::schema::Problem> {
        let json = serde_json::to_value(value).expect("serialises");
        let mut found = Vec::new();
        schema.validate(&json, "result", &mut found);
        found
    }

    fn me() -> Me {
        let account = service::Account {
            groups: vec![1000, 27],
            ..service::Account::bare(1000)
        };
        Me {
            passwd: Passwd::of(&account, true),
            attributes: Attributes {},
            two_factor_config: Summary {
                secret_configured: true,
                interval: service::Interval::DEFAULT,
                otp_digits: Digits::DEFAULT,
                recovery_codes_left: crate::typed::InRange(3),
            },
            privilege: Privilege {
                roles: vec!["FULL_ADMIN"],
                web_shell: true,
            },
            account_attributes: vec!["LOCAL", "SYS_ADMIN"],
        }
    }

    /// Every shape a login can answer is inside the schema it describes.
    #[test]
    fn every_login_answer_is_in_its_returns_schema() {
        let answers: Vec<LoginReply> = vec![
            LoginAnswer::Success {
                user_info: Some(me()),
                authenticator: Authenticator::Level1,
            },
            LoginAnswer::Success {
                user_info: None,
                authenticator: Authenticator::Level1,
            },
            LoginAnswer::OtpRequired {
                username: "alice".into(),
            },
            LoginAnswer::AuthErr,
            LoginAnswer::Expired,
            LoginAnswer::Redirect {
                urls: vec!["https://nas.example/".into()],
            },
        ];
        for a in &answers {
            assert_eq!(
                problems(&LoginReply::returns(), a),
                vec![],
                "{:?}",
                serde_json::to_value(a)
            );
        }
    }

    /// `auth.me` is described to its leaves: the group list, the SID, the
    /// attributes and the privilege each have their own shape.
    #[test]
    fn me_is_described_to_its_leaves() {
        let Schema::Object(fields) = Me::returns() else {
            panic!("auth.me is an object");
        };
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "pw_name",
                "pw_gecos",
                "pw_dir",
                "pw_shell",
                "pw_uid",
                "pw_gid",
                "grouplist",
                "sid",
                "source",
                "local",
                "attributes",
                "two_factor_config",
                "privilege",
                "account_attributes"
            ]
        );
        let any: Vec<&str> = fields
            .iter()
            .filter(|f| matches!(f.schema, Schema::Any))
            .map(|f| f.name)
            .collect();
        assert_eq!(any, Vec::<&str>::new());
        // A wrong privilege is refused now.
        let mut wrong = serde_json::to_value(me()).expect("serialises");
        wrong["privilege"] = json!({"roles": "FULL_ADMIN", "web_shell": true});
        assert_eq!(problems(&Me::returns(), &wrong).len(), 1);
    }

    /// `auth.mechanism_choices` answers the union's names, each one its
    /// schema lists.
    #[test]
    fn mechanism_choices_are_the_unions_variants() {
        assert_eq!(mechanisms(), MECHANISMS);
    }
}
