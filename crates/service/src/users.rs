//! Per-user two-factor and recovery codes.
//!
//! Root's secret is an ordinary row of the per-user secrets: every method
//! here works on it the same way as on any other account's. What is
//! really about root is said once: its Key URI label (`HOST@PRODUCT`),
//! its numbers being the entry's defaults (see `TwoFactor::activate`),
//! and that `legacy_shared_code` asks root's code of others, never of
//! root. The caller (the API) resolves the account and decides who may act
//! on it; this module decides what the action means.

use otp::{Algorithm, Digits, Interval, KeyUri, OtpKind, Secret};
use serde_json::json;
use store::{NewUserSecret, PendingSecret, Settings, Tx, transact};
use zeroize::Zeroizing;

use crate::audit::{AuditEvent, AuditOutcome};
use crate::check::Target;
use crate::{Caller, CheckOutcome, ProvisioningUri, RecoveryCode, ServiceError, TwoFactor};

/// How long a pending enrolment waits for its confirming code.
pub const ENROLMENT_TTL_SECS: u64 = 600;
/// How many recovery codes one generation makes.
pub const RECOVERY_CODES: usize = 10;

/// An account as a secret belongs to it: name and the uid it has now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub name: String,
    pub uid: u32,
}

impl UserRef {
    pub fn new(name: impl Into<String>, uid: u32) -> Self {
        Self {
            name: name.into(),
            uid,
        }
    }

    /// Root (uid 0), whose secret the TrueNAS entry (`config`) shows.
    pub fn root() -> Self {
        Self::new("root", 0)
    }

    pub fn of(account: &crate::Account) -> Self {
        Self::new(account.name.clone(), account.uid)
    }

    pub(crate) fn is_root(&self) -> bool {
        self.name == "root" && self.uid == 0
    }

    /// The owner label of this account's secret (its failure counters'
    /// key): the store's one label.
    pub(crate) fn owner(&self) -> String {
        store::user_owner(&self.name, self.uid)
    }
}

/// `twofactor_options` of renew and enrol: a field not given keeps the
/// user's previous value, else the entry's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretOptions {
    pub otp_digits: Option<Digits>,
    pub interval: Option<Interval>,
}

/// `user.twofactor_config`.
#[derive(Clone, PartialEq, Eq)]
pub struct UserConfig {
    pub provisioning_uri: Option<ProvisioningUri>,
    pub secret_configured: bool,
    pub interval: Interval,
    pub otp_digits: Digits,
    pub recovery_codes_left: u32,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field(
                "provisioning_uri",
                &self.provisioning_uri.as_ref().map(|_| "<redacted>"),
            )
            .field("secret_configured", &self.secret_configured)
            .field("interval", &self.interval)
            .field("otp_digits", &self.otp_digits)
            .field("recovery_codes_left", &self.recovery_codes_left)
            .finish()
    }
}

/// What `user.twofactor_enroll` answers.
#[derive(Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub provisioning_uri: ProvisioningUri,
    pub otp_digits: Digits,
    pub interval: Interval,
    pub expires_in: u64,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("provisioning_uri", &"<redacted>")
            .field("otp_digits", &self.otp_digits)
            .field("interval", &self.interval)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// What a login of an account needs while 2FA is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFactor {
    /// A code (or recovery code) of the account's own secret.
    Own,
    /// Root's code: `legacy_shared_code` is on and the account has no
    /// secret of its own.
    LegacySharedCode,
    /// Refused (fail closed): the account has no secret under its name but
    /// one is stored for its uid under `names` (it was renamed).
    SecretUnderOtherName { names: Vec<String> },
    /// No secret anywhere for it: the password alone (unless the system
    /// requires a secret).
    None,
}

/// An account holding a secret, for `user.query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHolder {
    pub username: String,
    /// The uid the secret was made for.
    pub uid: u32,
}

/// An active secret with the digits and interval of its codes.
type ActiveSecret = (Secret, Digits, Interval);

impl TwoFactor {
    /// The Key URI of `user`'s secret with the per-user label
    /// `ISSUER:USER-HOST@PRODUCT` (TrueNAS 23.10+); root's is
    /// `ISSUER:HOST@PRODUCT`. The one Key URI builder of the service.
    pub(crate) fn user_uri(
        &self,
        user: &UserRef,
        secret: Secret,
        digits: Digits,
        interval: Interval,
    ) -> Result<ProvisioningUri, ServiceError> {
        let labels = self.labels();
        // Root's label is the one `auth.twofactor.provisioning_uri` has
        // always given (TrueNAS's), so that scanning it from either place
        // makes one entry in the app.
        let account = if user.is_root() {
            format!("{}@{}", labels.hostname, labels.product)
        } else {
            format!("{}-{}@{}", user.name, labels.hostname, labels.product)
        };
        let uri = KeyUri {
            kind: OtpKind::Totp,
            issuer: Some(labels.issuer.clone()),
            account,
            secret,
            algorithm: Algorithm::Sha1,
            digits,
            period: interval,
        };
        Ok(ProvisioningUri::new(uri.build()?))
    }

    /// `user`'s active secret with its numbers, read without a write
    /// transaction (a stale secret reads as none).
    fn read_active(
        &self,
        user: &UserRef,
    ) -> Result<(Option<ActiveSecret>, u32, Settings), ServiceError> {
        let view = self.store.read_user(&user.name, user.uid)?;
        let settings = self.store.read_summary()?.settings;
        let active = view
            .secret
            .filter(|s| s.uid == user.uid)
            .map(|s| (s.record.secret, s.digits, s.interval));
        Ok((active, view.recovery_codes_left, settings))
    }

    /// `user.twofactor_config(username)`.
    pub fn user_config(&self, user: &UserRef) -> Result<UserConfig, ServiceError> {
        let (active, left, settings) = self.read_active(user)?;
        Ok(match active {
            Some((secret, digits, interval)) => UserConfig {
                provisioning_uri: Some(self.user_uri(user, secret, digits, interval)?),
                secret_configured: true,
                interval,
                otp_digits: digits,
                recovery_codes_left: left,
            },
            None => UserConfig {
                provisioning_uri: None,
                secret_configured: false,
                interval: settings.interval,
                otp_digits: settings.otp_digits,
                recovery_codes_left: left,
            },
        })
    }

    /// Whether `user` has a secret of their own that is honoured; a stale
    /// one (the account was recreated with another uid) is audited.
    pub fn user_has_secret(&self, caller: &Caller, user: &UserRef) -> Result<bool, ServiceError> {
        match self.store.read_user(&user.name, user.uid)?.secret {
            None => Ok(false),
            Some(s) if s.uid == user.uid => Ok(true),
            Some(s) => {
                self.record(
                    caller,
                    AuditEvent::OtpCheck,
                    AuditOutcome::NotConfigured,
                    Some(json!({
                        "account": user.name,
                        "reason": "the secret was made for another account of this name (uid changed)",
                        "secret_uid": s.uid,
                        "account_uid": user.uid,
                    })),
                )?;
                Ok(false)
            }
        }
    }

    /// What a login of `user` needs while 2FA is enabled (the caller has
    /// checked that): its own code, root's code under
    /// `legacy_shared_code`, nothing, or a refusal because the account's
    /// secret is stored under another name for its uid (a rename).
    /// Unseals nothing.
    pub fn login_factor(
        &self,
        caller: &Caller,
        user: &UserRef,
    ) -> Result<LoginFactor, ServiceError> {
        if self.user_has_secret(caller, user)? {
            return Ok(LoginFactor::Own);
        }
        if !user.is_root() {
            let view = self.store.read_user(&user.name, user.uid)?;
            if !view.other_names_with_uid.is_empty() {
                return Ok(LoginFactor::SecretUnderOtherName {
                    names: view.other_names_with_uid,
                });
            }
            let summary = self.store.read_summary()?;
            if summary.settings.legacy_shared_code && summary.secret_id.is_some() {
                return Ok(LoginFactor::LegacySharedCode);
            }
        }
        Ok(LoginFactor::None)
    }

    /// Audits a login refused because the account's secret is stored
    /// under another name for its uid.
    pub fn refuse_renamed(
        &self,
        caller: &Caller,
        user: &UserRef,
        names: &[String],
    ) -> Result<(), ServiceError> {
        self.record(
            caller,
            AuditEvent::AuthLogin,
            AuditOutcome::Refused,
            Some(json!({
                "account": user.name,
                "uid": user.uid,
                "reason": "a secret is stored for this uid under another name (renamed account?); \
                           an administrator must enrol a secret for the new name",
                "names": names,
            })),
        )
    }

    /// Whether a secret is stored under this account name, whoever the
    /// account is now. For a name the system cannot look up: a secret
    /// there means the check must fail closed, not pass.
    pub fn name_holds_secret(&self, name: &str) -> Result<bool, ServiceError> {
        Ok(self.store.read_user(name, 0)?.secret.is_some())
    }

    /// `user.provisioning_uri(username)`.
    pub fn user_provisioning_uri(&self, user: &UserRef) -> Result<ProvisioningUri, ServiceError> {
        let (active, _, _) = self.read_active(user)?;
        let (secret, digits, interval) = active.ok_or_else(|| ServiceError::UserHasNoSecret {
            username: user.name.clone(),
        })?;
        self.user_uri(user, secret, digits, interval)
    }

    /// The provisioning URI of `user`'s pending enrolment (what
    /// `user.twofactor_enroll` returned), while it has not expired.
    pub fn pending_provisioning_uri(
        &self,
        user: &UserRef,
    ) -> Result<ProvisioningUri, ServiceError> {
        let now = self.clock.now_ms();
        let pending = transact(&*self.store, |tx| tx.pending_secret(&user.name))?
            .filter(|p| p.uid == user.uid && now < p.expires_at_ms)
            .ok_or(ServiceError::NoPendingEnrolment)?;
        self.user_uri(user, pending.secret, pending.digits, pending.interval)
    }

    /// The digits and interval a new secret of `user` gets.
    fn new_params(
        &self,
        tx: &mut dyn Tx,
        user: &UserRef,
        opts: SecretOptions,
    ) -> store::Result<(Digits, Interval)> {
        let settings = tx.settings()?;
        let (prev_digits, prev_interval) = match tx.user_secret(&user.name)? {
            Some(s) if s.uid == user.uid => (s.digits, s.interval),
            _ => (settings.otp_digits, settings.interval),
        };
        Ok((
            opts.otp_digits.unwrap_or(prev_digits),
            opts.interval.unwrap_or(prev_interval),
        ))
    }

    /// Makes `secret` the account's active one. Returns its id.
    ///
    /// Root's numbers are the entry's defaults for new secrets: the
    /// TrueNAS entry (`config`, `update`) shows and sets one pair for
    /// both, so a new secret of root's sets the defaults too, and `update`
    /// sets root's row with them.
    pub(crate) fn activate(
        &self,
        tx: &mut dyn Tx,
        user: &UserRef,
        secret: &Secret,
        digits: Digits,
        interval: Interval,
        now: i64,
    ) -> store::Result<store::SecretId> {
        if user.is_root() {
            let mut settings = tx.settings()?;
            settings.otp_digits = digits;
            settings.interval = interval;
            tx.put_settings(&settings)?;
        }
        tx.put_user_secret(&NewUserSecret {
            username: &user.name,
            uid: user.uid,
            secret,
            digits,
            interval,
            created_at_ms: now,
        })
    }

    /// `user.renew_2fa_secret`: a new secret at once (TrueNAS semantics),
    /// with fresh replay and failure state.
    pub fn renew_user_secret(
        &self,
        caller: &Caller,
        user: &UserRef,
        opts: SecretOptions,
    ) -> Result<UserConfig, ServiceError> {
        let now = self.clock.now_ms();
        transact(&*self.store, |tx| {
            let (digits, interval) = self.new_params(tx, user, opts)?;
            let secret = self.new_secret()?;
            self.activate(tx, user, &secret, digits, interval, now)?;
            tx.delete_pending_secret(&user.name)?;
            tx.audit(&caller.audit(
                now,
                AuditEvent::UserRenew2faSecret,
                AuditOutcome::Success,
                Some(json!({"account": user.name, "otp_digits": digits.get(), "interval": interval.get()})),
            ))?;
            self.retain_audit(tx, now)
        })?;
        self.user_config(user)
    }

    /// `user.unset_2fa_secret`: removes the secret, the pending enrolment
    /// and the recovery codes.
    pub fn unset_user_secret(&self, caller: &Caller, user: &UserRef) -> Result<(), ServiceError> {
        let now = self.clock.now_ms();
        transact(&*self.store, |tx| {
            let had = tx.delete_user_secret(&user.name)?;
            tx.audit(&caller.audit(
                now,
                AuditEvent::UserUnset2faSecret,
                AuditOutcome::Success,
                Some(json!({"account": user.name, "had_secret": had})),
            ))?;
            self.retain_audit(tx, now)
        })?;
        Ok(())
    }

    /// `user.clear_2fa_lockout`: ends the account's lock-outs and forgets
    /// its wrong codes from every origin (the doubling starts over), the
    /// secret untouched. Audited; returns whether anything was cleared.
    pub fn clear_lockout(&self, caller: &Caller, user: &UserRef) -> Result<bool, ServiceError> {
        let now = self.clock.now_ms();
        let owner = user.owner();
        let cleared = transact(&*self.store, |tx| {
            let cleared = tx.clear_failures(&owner)?;
            tx.audit(&caller.audit(
                now,
                AuditEvent::UserClear2faLockout,
                AuditOutcome::Success,
                Some(json!({"account": user.name, "counters_cleared": cleared})),
            ))?;
            self.retain_audit(tx, now)?;
            Ok(cleared)
        })?;
        Ok(cleared > 0)
    }

    /// `user.verify_twofactor_token`: the shared check path as a boolean.
    pub fn verify_user(
        &self,
        caller: &Caller,
        user: &UserRef,
        token: Option<&str>,
    ) -> Result<bool, ServiceError> {
        self.check_code_for(caller, user, token)?.verdict()
    }

    /// `user.twofactor_enroll`: a pending secret; the active one (if any)
    /// keeps working until a right code confirms the new one.
    pub fn enroll(
        &self,
        caller: &Caller,
        user: &UserRef,
        opts: SecretOptions,
    ) -> Result<Enrolment, ServiceError> {
        let now = self.clock.now_ms();
        let secret = self.new_secret()?;
        let (digits, interval) = transact(&*self.store, |tx| {
            let (digits, interval) = self.new_params(tx, user, opts)?;
            tx.put_pending_secret(&PendingSecret {
                username: user.name.clone(),
                uid: user.uid,
                secret: secret.clone(),
                digits,
                interval,
                expires_at_ms: now.saturating_add(ENROLMENT_TTL_SECS as i64 * 1000),
            })?;
            tx.audit(&caller.audit(
                now,
                AuditEvent::UserTwofactorEnroll,
                AuditOutcome::Pending,
                Some(json!({"account": user.name, "otp_digits": digits.get(), "interval": interval.get()})),
            ))?;
            self.retain_audit(tx, now)?;
            Ok((digits, interval))
        })?;
        Ok(Enrolment {
            provisioning_uri: self.user_uri(user, secret, digits, interval)?,
            otp_digits: digits,
            interval,
            expires_in: ENROLMENT_TTL_SECS,
        })
    }

    /// `user.twofactor_enroll_confirm`: activates the pending secret when
    /// `token` is a right code for it; that code then counts as used. A
    /// wrong code leaves everything as it was and counts as a failure of
    /// the user's secret.
    pub fn enroll_confirm(
        &self,
        caller: &Caller,
        user: &UserRef,
        token: Option<&str>,
    ) -> Result<UserConfig, ServiceError> {
        let now = self.clock.now_ms();
        let result = transact(&*self.store, |tx| {
            let window = tx.settings()?.window;
            let pending = tx.pending_secret(&user.name)?.filter(|p| p.uid == user.uid);
            let Some(pending) = pending else {
                return Ok(Err(ServiceError::NoPendingEnrolment));
            };
            if now >= pending.expires_at_ms {
                return Ok(Err(ServiceError::EnrolmentExpired));
            }
            let target = Target {
                owner: user.owner(),
                secret: pending.secret.clone(),
                id: None,
                digits: pending.digits,
                interval: pending.interval,
            };
            let mut accept = |tx: &mut dyn Tx, step: u64| -> store::Result<bool> {
                let id = self.activate(
                    tx,
                    user,
                    &pending.secret,
                    pending.digits,
                    pending.interval,
                    now,
                )?;
                tx.delete_pending_secret(&user.name)?;
                // The confirming code is used: it cannot be replayed.
                tx.advance_step(id, step)?;
                Ok(true)
            };
            let outcome = self.check_in_tx(
                tx,
                caller,
                user,
                &target,
                token,
                window,
                now,
                false,
                &mut accept,
            )?;
            Ok(match outcome {
                CheckOutcome::Accepted => {
                    tx.audit(&caller.audit(
                        now,
                        AuditEvent::UserTwofactorEnrollConfirm,
                        AuditOutcome::Success,
                        Some(json!({"account": user.name})),
                    ))?;
                    Ok(())
                }
                CheckOutcome::Wrong | CheckOutcome::Replayed | CheckOutcome::Malformed { .. } => {
                    Err(ServiceError::InvalidEnrolmentCode)
                }
                CheckOutcome::LockedOut { retry_after_secs } => {
                    Err(ServiceError::LockedOut { retry_after_secs })
                }
            })
        })?;
        result?;
        self.user_config(user)
    }

    /// `user.generate_2fa_recovery_codes`: ten new codes, shown once;
    /// earlier ones are revoked. Only keyed hashes are stored.
    pub fn generate_recovery_codes(
        &self,
        caller: &Caller,
        user: &UserRef,
    ) -> Result<Vec<RecoveryCode>, ServiceError> {
        let now = self.clock.now_ms();
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        while codes.len() < RECOVERY_CODES {
            let code = RecoveryCode::generate(&*self.random).map_err(store::StoreError::from)?;
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        let normalized: Vec<Zeroizing<String>> = codes
            .iter()
            .filter_map(|c| RecoveryCode::parse(c))
            .collect();
        transact(&*self.store, |tx| {
            let refs: Vec<&str> = normalized.iter().map(|c| c.as_str()).collect();
            tx.put_recovery_codes(&user.name, user.uid, &refs)?;
            tx.audit(&caller.audit(
                now,
                AuditEvent::UserGenerate2faRecoveryCodes,
                AuditOutcome::Success,
                Some(json!({"account": user.name, "count": refs.len()})),
            ))?;
            self.retain_audit(tx, now)
        })?;
        Ok(codes)
    }

    /// Whether the account `name` with `uid` holds a secret made for it
    /// (one stored under its name for another uid does not count), from a
    /// read-only snapshot of that one account.
    pub fn honours_secret(&self, name: &str, uid: u32) -> Result<bool, ServiceError> {
        Ok(self.secret_uid(name)? == Some(uid))
    }

    /// The uid the secret stored under `name` was made for (root's: 0),
    /// `None` when the name holds none; from a read-only snapshot of that
    /// one account.
    pub fn secret_uid(&self, name: &str) -> Result<Option<u32>, ServiceError> {
        Ok(self.store.read_user(name, 0)?.secret.map(|s| s.uid))
    }

    /// Every account holding a secret, root first, then by name.
    pub fn secret_holders(&self) -> Result<Vec<SecretHolder>, ServiceError> {
        // A read-only snapshot: listing never waits for, or holds up, a
        // check or a change.
        let mut out: Vec<SecretHolder> = self
            .store
            .read_user_secrets()?
            .into_iter()
            .map(|i| SecretHolder {
                username: i.username,
                uid: i.uid,
            })
            .collect();
        // Stable: the others keep the store's order by name.
        out.sort_by_key(|h| !(h.username == "root" && h.uid == 0));
        Ok(out)
    }
}
