//! `user.*` (CLI namespace `account user`): `has_local_administrator_set_up`
//! and the per-user two-factor methods.
//!
//! Who may act on which account is decided in one place,
//! [`target_account`]; what each action means is the service's.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};
use service::{Account, Digits, Interval, SecretOptions, UserConfig, UserRef};

use crate::Code;
use crate::registry::{Access, Method};
use crate::schema::Schema;
use crate::typed::{Described, InRange, Ranged, Reply, doc, flat};
use crate::{Api, ApiError, Collection, Event, Session, args, reply};

args! {
    /// Digits and interval of a new secret.
    pub(crate) struct SecretOptionsArg {
        otp_digits: Option<Digits> => doc(
            "Digits in a code (default: the user's previous value, else the system's)",
        ),
        interval: Option<Interval> => doc(
            "Seconds each code lives (default: the user's previous value, else the system's)",
        ),
    }
}

args! {
    /// The methods that name an account and nothing else.
    pub(crate) struct UserArgs {
        username: String => doc("Account name"),
    }
}

args! {
    /// `user.provisioning_qr`: an account, and which of its secrets.
    pub(crate) struct ProvisioningQrArgs {
        username: String => doc("Account name"),
        pending: bool => doc("The pending enrolment's secret (twofactor_enroll) instead of the active one")
            .default(json!(false)),
    }
}

args! {
    /// The methods that name an account and give options for its new secret.
    pub(crate) struct UserSecretArgs {
        username: String => doc("Account name"),
        twofactor_options: SecretOptionsArg => doc("Digits and interval of the new secret")
            .default(json!({})),
    }
}

args! {
    /// The methods that check a code of an account.
    pub(crate) struct UserTokenArgs {
        username: String => doc("Account name"),
        token: Option<Code> => doc("A code from the authenticator app (or a recovery code)")
            .nullable()
            .required(),
    }
}

/// A TrueNAS filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub(crate) enum FilterOp {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "in")]
    In,
    #[serde(rename = "^")]
    StartsWith,
}

/// One TrueNAS filter `[field, op, value]`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Filter(String, FilterOp, Value);

/// `user.query`'s filters: their shape is checked as a whole, so that a
/// problem is reported at `filters` (as TrueNAS does).
#[derive(Debug, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Filters(Vec<Filter>);

impl Described for Filters {
    fn schema() -> Schema {
        Schema::Rule {
            base: Box::new(Schema::List(Box::new(Schema::Any))),
            rule: check_filters,
        }
    }
}

/// The rule [`Filters`] deserialises by.
fn check_filters(filters: &Value) -> Result<(), String> {
    for filter in filters.as_array().into_iter().flatten() {
        let parts = filter
            .as_array()
            .filter(|p| p.len() == 3)
            .ok_or("Each filter is [field, operator, value]")?;
        parts[0].as_str().ok_or("A filter's field is a string")?;
        let op = parts[1].as_str().ok_or("A filter's operator is a string")?;
        match op {
            "=" | "!=" | "^" => {}
            "in" if parts[2].is_array() => {}
            "in" => return Err("The value of 'in' is a list".to_owned()),
            other => {
                return Err(format!(
                    "{:?}: not one of the operators =, !=, in, ^",
                    wire::shown(other)
                ));
            }
        }
    }
    Ok(())
}

args! {
    pub(crate) struct QueryOptions {
        get: bool => doc("Return the one matching entry").default(false),
        limit: u64 => doc("At most this many (0: all)").default(0),
        offset: u64 => doc("Skip this many").default(0),
        order_by: Vec<String> => doc("Sort keys; a leading - sorts descending").default(json!([])),
    }
}

args! {
    /// `user.get_user_obj`'s account: by name, or else by uid.
    pub(crate) struct UserObjData {
        username: Option<String> => doc("Account name").nullable(),
        uid: Option<Ranged<0, { u32::MAX as i64 }>> => doc("User id (when no username is given)"),
        get_groups: bool => doc("Include the account's group ids (grouplist)").default(false),
        #[expect(dead_code, reason = "accepted for TrueNAS clients; there are no SIDs here")]
        sid_info: bool => doc("Accepted for TrueNAS clients; there are no SIDs here").default(false),
    }
}

args! {
    pub(crate) struct UserObjArgs {
        data: UserObjData => doc("Which account"),
    }
}

args! {
    pub(crate) struct QueryArgs {
        filters: Filters => doc("Filters").default(json!([])),
        options: QueryOptions => doc("Query options").default(json!({})),
    }
}

reply! {
    /// A `user.query` entry.
    pub(crate) struct UserRow {
        id: u32 => doc("Entry id (the uid)"),
        uid: u32 => doc("User id"),
        username: String => doc("Account name"),
        full_name: String => doc("GECOS name"),
        builtin: bool => doc("A system account (uid below 1000)"),
        twofactor_auth_configured: bool => doc("Whether the account has a two-factor secret"),
    }
}

reply! {
    /// An account's entry with its two-factor settings (what renewing and
    /// confirming a secret answer).
    pub(crate) struct UserWithConfig {
        #[serde(flatten)]
        row: UserRow => flat(),
        twofactor_config: TwofactorConfig => doc("Two-factor settings of the account"),
    }
}

/// `user.query`'s answer: a list of entries, or with `get` the first entry.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub(crate) enum QueryAnswer {
    All(Vec<UserRow>),
    One(UserRow),
}

impl Reply for QueryAnswer {
    fn returns() -> Schema {
        Schema::AnyOf(vec![Vec::<UserRow>::returns(), UserRow::returns()])
    }
}

/// Seconds until a pending secret expires.
type ExpiresIn = InRange<0, { service::ENROLMENT_TTL_SECS as i64 }>;

reply! {
    /// `user.twofactor_enroll`'s answer: the pending secret's URI and shape.
    pub(crate) struct Enrolment {
        provisioning_uri: service::ProvisioningUri => doc("Key URI of the pending secret"),
        otp_digits: Digits => doc("Digits in a code"),
        interval: Interval => doc("Seconds per code"),
        expires_in: ExpiresIn => doc("Seconds until the pending secret expires"),
    }
}

pub(super) fn methods() -> Vec<Method> {
    let base = Method {
        validation_prefix: true,
        ..Method::base(Access::User, false)
    };
    vec![
        Method {
            name: "user.has_local_administrator_set_up",
            description: "Whether a local administrator exists: root, or a member of the configured \
                          administrators' group. midcli asks it when its shell starts.",
            cli_description: "Whether a local administrator exists",
            ..Method::base(Access::User, true)
                .handles(|api, _, ()| Ok(local_administrator_exists(api)))
        },
        Method {
            name: "user.query",
            description: "Accounts (uid 0, uid 1000 and above, and any holding a secret) with \
                          whether each has two-factor authentication configured. TrueNAS filters: \
                          [[\"username\", \"=\", \"alice\"]] with =, !=, in, ^ (starts with); \
                          options get, limit, offset, order_by. A user who is not an \
                          administrator sees only their own account.",
            cli_description: "List accounts and their 2FA state",
            examples: &[
                "account user query",
                "account user query [[\"username\", \"=\", \"alice\"]]",
                "account user query [] {\"order_by\": [\"-uid\"], \"limit\": 5}",
            ],
            // A list of entries, or with `get` the first entry.
            ..base.clone().handles(query)
        },
        Method {
            name: "user.get_user_obj",
            description: "An account as the system's account database has it (name, uid, gid, \
                          GECOS, home, shell and, with get_groups, its groups), found by username \
                          or else by uid.",
            cli_description: "Show an account",
            examples: &[
                "account user get_user_obj data={\"username\": \"alice\"}",
                "account user get_user_obj data={\"uid\": 0, \"get_groups\": true}",
            ],
            access: Access::Admin,
            ..base.clone().handles(get_user_obj)
        },
        Method {
            name: "user.renew_2fa_secret",
            description: "Gives the account a new secret at once (the old one stops working), with \
                          fresh replay and failure state. To switch without a moment in which no \
                          app has the right secret, use twofactor_enroll instead.",
            cli_description: "Replace an account's 2FA secret",
            examples: &[
                "account user renew_2fa_secret username=alice",
                "account user renew_2fa_secret username=alice twofactor_options={\"interval\": 60}",
            ],
            ..base.clone().handles(renew)
        },
        Method {
            name: "user.unset_2fa_secret",
            description: "Removes the account's secret, pending enrolment and recovery codes.",
            cli_description: "Remove an account's 2FA secret",
            examples: &["account user unset_2fa_secret username=alice"],
            ..base.clone().handles(unset)
        },
        Method {
            name: "user.clear_2fa_lockout",
            description: "Ends the account's lock-out after failed codes and forgets its wrong \
                          codes from every origin, keeping its secret (not in TrueNAS). \
                          Administrators only; audited.",
            cli_description: "End an account's 2FA lock-out, keeping its secret",
            examples: &["account user clear_2fa_lockout username=alice"],
            ..base.clone().handles(clear_lockout)
        },
        Method {
            name: "user.provisioning_uri",
            description: "The otpauth:// Key URI of the account's secret (for a QR code).",
            cli_description: "Show an account's provisioning URI (and QR code)",
            examples: &[
                "account user provisioning_uri username=alice",
                "account user provisioning_uri username=alice --qr",
            ],
            ..base.clone().handles(|api, session, a: UserArgs| {
                let (user, _) =
                    target_account(api, session, &a.username, "read the provisioning URI of")?;
                require_step_up(api, session, &user)?;
                Ok(api.twofactor().user_provisioning_uri(&user)?)
            })
        },
        Method {
            name: "user.provisioning_qr",
            description: "The account's provisioning URI drawn as a QR code, an SVG document (for \
                          the web page); with pending=true, the pending enrolment's.",
            cli_description: "Show an account's provisioning QR code as SVG",
            // For the web page; the CLI draws the URI itself (--qr, --svg).
            cli_private: true,
            examples: &["account user provisioning_qr username=alice"],
            ..base.clone().handles(|api, session, a: ProvisioningQrArgs| {
                let (user, _) =
                    target_account(api, session, &a.username, "read the provisioning URI of")?;
                // The pending secret becomes the active one at its
                // confirmation: both are the account's second factor.
                require_step_up(api, session, &user)?;
                let uri = if a.pending {
                    api.twofactor().pending_provisioning_uri(&user)?
                } else {
                    api.twofactor().user_provisioning_uri(&user)?
                };
                let svg =
                    crate::qr::svg(uri.as_str()).map_err(|e| ApiError::Internal(e.to_string()))?;
                Ok(svg.as_str().to_owned())
            })
        },
        Method {
            name: "user.twofactor_config",
            description: "The account's two-factor settings: provisioning URI, whether a secret is \
                          set, interval, digits and unused recovery codes.",
            cli_description: "Show an account's 2FA settings",
            examples: &["account user twofactor_config username=alice"],
            ..base.clone().handles(|api, session, a: UserArgs| {
                let (user, _) =
                    target_account(api, session, &a.username, "read the two-factor settings of")?;
                require_step_up(api, session, &user)?;
                Ok(TwofactorConfig::of(&api.twofactor().user_config(&user)?))
            })
        },
        Method {
            name: "user.verify_twofactor_token",
            description: "True when the token is a right code of the account's secret now (or one \
                          of its recovery codes). Each code works once; wrong codes count toward \
                          the lock-out.",
            cli_description: "Check a code of an account",
            examples: &["account user verify_twofactor_token username=alice token=123456"],
            ..base.clone().handles(|api, session, a: UserTokenArgs| {
                let user = target_user(api, session, &a.username, "check codes of")?;
                let caller = session.caller();
                let right = api.twofactor().verify_user(
                    &caller,
                    &user,
                    a.token.as_ref().map(Code::expose),
                )?;
                if right {
                    proved_code(api, session, &user);
                }
                Ok(right)
            })
        },
        Method {
            name: "user.twofactor_enroll",
            description: "Makes a pending secret and returns its provisioning URI; the active secret \
                          (if any) keeps working until twofactor_enroll_confirm gets a right code of \
                          the new one. A pending secret expires after 10 minutes. On a terminal the \
                          CLI shows the QR code, asks for a code and confirms.",
            cli_description: "Set up (or replace) 2FA, confirmed by a code",
            examples: &[
                "account user twofactor_enroll username=alice",
                "account user twofactor_enroll username=alice twofactor_options={\"otp_digits\": 8}",
            ],
            ..base.clone().handles(enroll)
        },
        Method {
            name: "user.twofactor_enroll_confirm",
            description: "Activates the pending secret if the token is a right code of it (that code \
                          is then used). A wrong code leaves the pending secret pending and the \
                          active one working, and counts as a failed code.",
            cli_description: "Confirm a pending 2FA secret with a code",
            examples: &["account user twofactor_enroll_confirm username=alice token=123456"],
            ..base.clone().handles(enroll_confirm)
        },
        Method {
            name: "user.generate_2fa_recovery_codes",
            description: "Makes 10 new one-time recovery codes (and revokes earlier ones). They are \
                          shown once; keep them somewhere safe. Each works once wherever a code is \
                          asked.",
            cli_description: "Make new recovery codes",
            examples: &["account user generate_2fa_recovery_codes username=alice"],
            ..base.handles(recovery_codes)
        },
    ]
}

/// Root counts when the account database knows uid 0. Members of the
/// administrators' group cannot be listed through `Accounts` (it looks
/// accounts up one at a time); a system with no root is not one this daemon
/// runs on, so root decides.
fn local_administrator_exists(api: &Api) -> bool {
    api.inner
        .accounts
        .by_uid(0)
        .is_some_and(|root| api.is_admin(&root))
}

/// The account `args[0]` names, if the session may act on it:
/// administrators any, others only their own. A refusal names the `action`
/// asked (`renew two-factor authentication for`, as TrueNAS words it for
/// renewing; `read the provisioning URI of`, ...) and does not say whether
/// the account exists.
fn target_account(
    api: &Api,
    session: &Session,
    username: &str,
    action: &str,
) -> Result<(UserRef, Account), ApiError> {
    let me = session.user().ok_or_else(ApiError::not_authenticated)?;
    if !me.admin && me.account.name != username {
        return Err(not_permitted(username, action));
    }
    let account = api.inner.accounts.by_name(username).ok_or_else(|| {
        ApiError::call(
            wire::Errno::ENOENT,
            format!("User '{}' does not exist", wire::shown(username)),
        )
    })?;
    Ok((UserRef::of(&account), account))
}

/// [`target_account`] for a method that needs only the account's name and
/// uid (a code check): the same refusals, without looking its groups up.
fn target_user(
    api: &Api,
    session: &Session,
    username: &str,
    action: &str,
) -> Result<UserRef, ApiError> {
    let me = session.user().ok_or_else(ApiError::not_authenticated)?;
    if !me.admin && me.account.name != username {
        return Err(not_permitted(username, action));
    }
    let (name, uid) = api.inner.accounts.identity(username).ok_or_else(|| {
        ApiError::call(
            wire::Errno::ENOENT,
            format!("User '{}' does not exist", wire::shown(username)),
        )
    })?;
    Ok(UserRef::new(name, uid))
}

/// The refusal of `action` on an account the session may not act on; the
/// name is echoed as a bounded prefix.
fn not_permitted(username: &str, action: &str) -> ApiError {
    ApiError::call(
        wire::Errno::EPERM,
        format!(
            "{}: currently authenticated credential may not {action} this user.",
            wire::shown(username)
        ),
    )
}

/// For a caller who is not an administrator, acting on an account that has
/// an active secret: reading its URI, replacing or removing it, or making
/// recovery codes needs proof of a current code (or recovery code) of that
/// secret on this connection -- a login that took the code, or a
/// successful `user.verify_twofactor_token` within the last 5 minutes. A
/// password (or a Unix-socket peer's uid) alone is not enough: whoever has
/// it could otherwise take the second factor over. Administrators (root
/// on the socket included) are not asked.
fn require_step_up(api: &Api, session: &Session, user: &UserRef) -> Result<(), ApiError> {
    let me = session.user().ok_or_else(ApiError::not_authenticated)?;
    if me.admin {
        return Ok(());
    }
    if !api.twofactor().user_has_secret(&session.caller(), user)? {
        return Ok(());
    }
    let now = api.twofactor().clock().now_ms();
    let proved = session
        .state()
        .step_up
        .as_ref()
        .is_some_and(|s| s.covers(&user.name, user.uid, now));
    if proved {
        return Ok(());
    }
    Err(ApiError::call(
        wire::STEP_UP_ERRNO,
        format!(
            "{}: {} (user.verify_twofactor_token with a code from the app or a recovery code, \
             then call again within 5 minutes)",
            user.name,
            wire::STEP_UP_REQUIRED
        ),
    ))
}

/// Remembers that this connection proved a current code of `user`'s
/// secret now: it counts for the next 5 minutes (step-up).
fn proved_code(api: &Api, session: &Session, user: &UserRef) {
    session.state().step_up = Some(crate::session::StepUp {
        name: user.name.clone(),
        uid: user.uid,
        at_ms: Some(api.twofactor().clock().now_ms()),
    });
}

fn options_of(o: SecretOptionsArg) -> SecretOptions {
    SecretOptions {
        otp_digits: o.otp_digits,
        interval: o.interval,
    }
}

reply! {
    /// An account as TrueNAS's `struct passwd` answers (`auth.me`,
    /// `user.get_user_obj`).
    pub(crate) struct Passwd {
        pw_name: String => doc("Account name"),
        pw_gecos: String => doc("GECOS field"),
        pw_dir: String => doc("Home directory"),
        pw_shell: String => doc("Login shell"),
        pw_uid: u32 => doc("User id"),
        pw_gid: u32 => doc("Primary group id"),
        grouplist: Option<Vec<u32>> => doc("Group ids (null unless asked for)"),
        sid: () => doc("Always null (no SIDs here)"),
        source: &'static str => doc("Always LOCAL"),
        local: bool => doc("Always true"),
    }
}

impl Passwd {
    /// The account's entry; `grouplist` is null unless asked for.
    pub(crate) fn of(a: &Account, with_groups: bool) -> Self {
        Self {
            pw_name: a.name.clone(),
            pw_gecos: a.gecos.clone(),
            pw_dir: a.home.clone(),
            pw_shell: a.shell.clone(),
            pw_uid: a.uid,
            pw_gid: a.gid,
            grouplist: with_groups.then(|| a.groups.clone()),
            sid: (),
            source: "LOCAL",
            local: true,
        }
    }
}

/// How many unused recovery codes an account has.
type RecoveryCodesLeft = InRange<0, { service::RECOVERY_CODES as i64 }>;

reply! {
    /// `auth.me`'s `two_factor_config` (also in `auth.login_ex`'s
    /// `user_info`): `user.twofactor_config` without the provisioning URI,
    /// which carries the seed and comes only from the methods that give it.
    pub(crate) struct Summary {
        secret_configured: bool => doc("Whether a secret is set"),
        interval: Interval => doc("Seconds per code"),
        otp_digits: Digits => doc("Digits in a code"),
        recovery_codes_left: RecoveryCodesLeft => doc("Unused recovery codes"),
    }
}

impl Summary {
    pub(crate) fn of(c: &UserConfig) -> Self {
        Self {
            secret_configured: c.secret_configured,
            interval: c.interval,
            otp_digits: c.otp_digits,
            recovery_codes_left: InRange(i64::from(c.recovery_codes_left)),
        }
    }
}

reply! {
    /// `user.twofactor_config`'s answer: the summary and the provisioning URI.
    pub(crate) struct TwofactorConfig {
        provisioning_uri: Option<String> => doc("Key URI (null without a secret)"),
        #[serde(flatten)]
        summary: Summary => flat(),
    }
}

impl TwofactorConfig {
    pub(crate) fn of(c: &UserConfig) -> Self {
        Self {
            provisioning_uri: c.provisioning_uri.as_ref().map(|u| u.as_str().to_owned()),
            summary: Summary::of(c),
        }
    }
}

/// The `user.query` entry of an account.
fn entry_json(account: &Account, configured: bool) -> UserRow {
    row_json(&account.name, account.uid, &account.gecos, configured)
}

/// A `user.query` entry of the account `name` with `uid` and `gecos`.
fn row_json(name: &str, uid: u32, gecos: &str, configured: bool) -> UserRow {
    UserRow {
        id: uid,
        uid,
        username: name.to_owned(),
        full_name: gecos.split(',').next().unwrap_or_default().to_owned(),
        builtin: uid != 0 && uid < 1000,
        twofactor_auth_configured: configured,
    }
}

/// Tells subscribers of `user` that an account's 2FA state changed: its
/// `user.query` row as it is now, never a secret or URI.
pub(crate) fn announce_user(api: &Api, account: &Account) {
    let user = service::UserRef::new(account.name.clone(), account.uid);
    match api.twofactor().user_config(&user) {
        Ok(cfg) => api.emit(&Event {
            collection: Collection::User,
            msg: "changed",
            id: json!(account.uid),
            fields: serde_json::to_value(entry_json(account, cfg.secret_configured))
                .unwrap_or_default(),
        }),
        Err(e) => tracing::debug!(error = %e, "cannot read the changed account"),
    }
}

fn with_config(api: &Api, account: &Account, user: &UserRef) -> Result<UserWithConfig, ApiError> {
    let cfg = api.twofactor().user_config(user)?;
    let entry = UserWithConfig {
        row: entry_json(account, cfg.secret_configured),
        twofactor_config: TwofactorConfig::of(&cfg),
    };
    Ok(entry)
}

fn get_user_obj(api: &Api, _: &Session, a: UserObjArgs) -> Result<Passwd, ApiError> {
    let UserObjData {
        username,
        uid,
        get_groups,
        ..
    } = a.data;
    let account = match (username, uid) {
        (Some(name), _) => api.inner.accounts.by_name(&name).ok_or_else(|| {
            ApiError::call(
                wire::Errno::ENOENT,
                format!("User '{}' does not exist", wire::shown(&name)),
            )
        }),
        (None, Some(uid)) => u32::try_from(uid.get())
            .ok()
            .and_then(|uid| api.inner.accounts.by_uid(uid))
            .ok_or_else(|| {
                ApiError::call(
                    wire::Errno::ENOENT,
                    format!("uid {} does not exist", uid.get()),
                )
            }),
        (None, None) => Err(ApiError::call(
            wire::Errno::EINVAL,
            "Either username or uid must be given",
        )),
    }?;
    Ok(Passwd::of(&account, get_groups))
}

fn renew(api: &Api, session: &Session, a: UserSecretArgs) -> Result<UserWithConfig, ApiError> {
    let (user, account) = target_account(
        api,
        session,
        &a.username,
        "renew two-factor authentication for",
    )?;
    require_step_up(api, session, &user)?;
    let opts = options_of(a.twofactor_options);
    api.twofactor()
        .renew_user_secret(&session.caller(), &user, opts)?;
    with_config(api, &account, &user)
}

fn unset(api: &Api, session: &Session, a: UserArgs) -> Result<(), ApiError> {
    let (user, _) = target_account(api, session, &a.username, "unset the two-factor secret of")?;
    let admin = session.user().is_some_and(|u| u.admin);
    if api.inner.options.require_secret && !admin {
        return Err(ApiError::call(
            wire::Errno::EPERM,
            format!(
                "{}: two-factor authentication is required on this system; only an \
                 administrator may remove a secret",
                user.name
            ),
        ));
    }
    require_step_up(api, session, &user)?;
    api.twofactor()
        .unset_user_secret(&session.caller(), &user)?;
    Ok(())
}

/// Administrators only, their own account included: a lock-out that its
/// owner (or whoever has the owner's password) could clear would not stop
/// guessing.
fn clear_lockout(api: &Api, session: &Session, a: UserArgs) -> Result<bool, ApiError> {
    const ACTION: &str = "clear the two-factor lock-out of";
    if !session.user().is_some_and(|u| u.admin) {
        return Err(not_permitted(&a.username, ACTION));
    }
    let (user, _) = target_account(api, session, &a.username, ACTION)?;
    let cleared = api.twofactor().clear_lockout(&session.caller(), &user)?;
    Ok(cleared)
}

fn enroll(api: &Api, session: &Session, a: UserSecretArgs) -> Result<Enrolment, ApiError> {
    let (user, _) = target_account(api, session, &a.username, "enrol a two-factor secret for")?;
    require_step_up(api, session, &user)?;
    let opts = options_of(a.twofactor_options);
    let e = api.twofactor().enroll(&session.caller(), &user, opts)?;
    Ok(Enrolment {
        provisioning_uri: e.provisioning_uri,
        otp_digits: e.otp_digits,
        interval: e.interval,
        expires_in: InRange(i64::try_from(e.expires_in).unwrap_or(i64::MAX)),
    })
}

fn enroll_confirm(
    api: &Api,
    session: &Session,
    a: UserTokenArgs,
) -> Result<UserWithConfig, ApiError> {
    let (user, account) = target_account(api, session, &a.username, "confirm the enrolment of")?;
    api.twofactor()
        .enroll_confirm(&session.caller(), &user, a.token.as_ref().map(Code::expose))?;
    // The confirming code is a current code of what is now the active secret.
    proved_code(api, session, &user);
    with_config(api, &account, &user)
}

fn recovery_codes(
    api: &Api,
    session: &Session,
    a: UserArgs,
) -> Result<Vec<zeroize::Zeroizing<String>>, ApiError> {
    let (user, _) = target_account(api, session, &a.username, "make recovery codes for")?;
    require_step_up(api, session, &user)?;
    let codes = api
        .twofactor()
        .generate_recovery_codes(&session.caller(), &user)?;
    Ok(codes
        .iter()
        .map(|c| zeroize::Zeroizing::new(c.as_str().to_owned()))
        .collect())
}

// ------------------------------------------------------------- user.query

/// Whether `entry` passes `filter`.
fn matches(entry: &Value, Filter(field, op, want): &Filter) -> bool {
    let got = entry.get(field).unwrap_or(&Value::Null);
    match op {
        FilterOp::Eq => got == want,
        FilterOp::Ne => got != want,
        FilterOp::In => want.as_array().is_some_and(|w| w.contains(got)),
        FilterOp::StartsWith => match (got.as_str(), want.as_str()) {
            (Some(g), Some(w)) => g.starts_with(w),
            _ => false,
        },
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    }
}

fn query(api: &Api, session: &Session, args: QueryArgs) -> Result<QueryAnswer, ApiError> {
    let me = session.user().ok_or_else(ApiError::not_authenticated)?;
    let Filters(filters) = &args.filters;
    let options = args.options;
    let offset = usize::try_from(options.offset).unwrap_or(usize::MAX);
    let limit = (options.limit > 0).then(|| usize::try_from(options.limit).unwrap_or(usize::MAX));
    // Without a sort key the order is by name, so only the first
    // `offset + limit` names need keeping while the accounts go by.
    let keep = if options.order_by.is_empty() {
        limit.map(|l| l.saturating_add(offset))
    } else {
        None
    };
    let mut rows = Rows {
        by_name: BTreeMap::new(),
        filters,
        keep,
    };
    if me.admin {
        admin_rows(api, filters, &mut rows)?;
    } else {
        // A user sees their own account: one read of their own secret.
        let a = &me.account;
        let configured = api.twofactor().honours_secret(&a.name, a.uid)?;
        rows.offer(&a.name, row_json(&a.name, a.uid, &a.gecos, configured));
    }
    let mut kept: Vec<(Value, UserRow)> = rows.by_name.into_values().collect();
    for key in options.order_by.iter().rev() {
        let (key, desc) = match key.strip_prefix('-') {
            Some(k) => (k, true),
            None => (key.as_str(), false),
        };
        kept.sort_by(|(a, _), (b, _)| {
            let o = compare(
                a.get(key).unwrap_or(&Value::Null),
                b.get(key).unwrap_or(&Value::Null),
            );
            if desc { o.reverse() } else { o }
        });
    }
    let mut kept: Vec<UserRow> = kept.into_iter().skip(offset).map(|(_, row)| row).collect();
    if let Some(limit) = limit {
        kept.truncate(limit);
    }
    if options.get {
        return kept
            .into_iter()
            .next()
            .map(QueryAnswer::One)
            .ok_or_else(|| ApiError::call(wire::Errno::ENOENT, "No account matches the filters"));
    }
    Ok(QueryAnswer::All(kept))
}

/// The entries a query keeps, by name (the listing's order): those that
/// pass the filters, at most `keep` of the first names when only the
/// first ones can be answered.
struct Rows<'a> {
    /// Each entry as the filters and sort keys read it, and as answered.
    by_name: BTreeMap<String, (Value, UserRow)>,
    filters: &'a [Filter],
    keep: Option<usize>,
}

impl Rows<'_> {
    /// Offers one account's entry; the first entry of a name stays.
    fn offer(&mut self, name: &str, row: UserRow) {
        if self.by_name.contains_key(name) {
            return;
        }
        let seen = serde_json::to_value(&row).unwrap_or_default();
        if !self.filters.iter().all(|f| matches(&seen, f)) {
            return;
        }
        if let Some(keep) = self.keep {
            if keep == 0 {
                return;
            }
            if self.by_name.len() >= keep {
                match self.by_name.last_key_value() {
                    Some((last, _)) if last.as_str() > name => {
                        self.by_name.pop_last();
                    }
                    _ => return,
                }
            }
        }
        self.by_name.insert(name.to_owned(), (seen, row));
    }
}

/// An administrator's listing: root, accounts from uid 1000 and any
/// account holding a secret. A filter on `username` or `uid` with `=` or
/// `in` looks those accounts up directly; otherwise the accounts are
/// enumerated one at a time. Secret holders come from a read-only
/// snapshot.
fn admin_rows(api: &Api, filters: &[Filter], rows: &mut Rows<'_>) -> Result<(), ApiError> {
    let accounts = &api.inner.accounts;
    let tf = api.twofactor();
    // A looked-up account: listed if root, from uid 1000, or holding a
    // secret (its own or one stored under its name); one read of that name.
    let direct = |rows: &mut Rows<'_>, a: Account| -> Result<(), ApiError> {
        let secret = tf.secret_uid(&a.name)?;
        if a.uid == 0 || a.uid >= 1000 || secret.is_some() {
            let configured = secret == Some(a.uid);
            rows.offer(&a.name, row_json(&a.name, a.uid, &a.gecos, configured));
        }
        Ok(())
    };
    if let Some(names) = wanted(filters, "username", |v| v.as_str().map(str::to_owned)) {
        for name in names {
            if let Some(a) = accounts.by_name(&name) {
                direct(rows, a)?;
            }
        }
        return Ok(());
    }
    if let Some(uids) = wanted(filters, "uid", |v| {
        v.as_u64().and_then(|u| u32::try_from(u).ok())
    }) {
        for uid in uids {
            if let Some(a) = accounts.by_uid(uid) {
                direct(rows, a)?;
            }
        }
        return Ok(());
    }
    let holders = tf.secret_holders()?;
    let honoured: HashSet<(&str, u32)> = holders
        .iter()
        .map(|h| (h.username.as_str(), h.uid))
        .collect();
    let holds: HashSet<&str> = holders.iter().map(|h| h.username.as_str()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    accounts.for_each_listed(&mut |a| {
        if a.uid == 0 || a.uid >= 1000 || holds.contains(a.name.as_str()) {
            let configured = honoured.contains(&(a.name.as_str(), a.uid));
            rows.offer(&a.name, row_json(&a.name, a.uid, &a.gecos, configured));
        }
        seen.insert(a.name);
        true
    });
    // Holders the enumeration did not show (a source that does not
    // enumerate): looked up by name.
    for h in &holders {
        if !seen.contains(&h.username)
            && let Some(a) = accounts.by_name(&h.username)
        {
            let configured = honoured.contains(&(a.name.as_str(), a.uid));
            rows.offer(&a.name, row_json(&a.name, a.uid, &a.gecos, configured));
        }
    }
    Ok(())
}

/// The values a filter on `field` with `=` or `in` allows (the first such
/// filter), read by `value`; `None` when no filter pins the field. A value
/// of another type pins it to nothing.
fn wanted<T>(
    filters: &[Filter],
    field: &str,
    value: impl Fn(&Value) -> Option<T>,
) -> Option<Vec<T>> {
    filters.iter().find_map(|Filter(f, op, want)| {
        if f != field {
            return None;
        }
        match op {
            FilterOp::Eq => Some(value(want).into_iter().collect()),
            FilterOp::In => Some(
                want.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(&value)
                    .collect(),
            ),
            FilterOp::Ne | FilterOp::StartsWith => None,
        }
    })
}
