//! `config`, `update`, `provisioning_uri`, `renew_secret`, `verify`.

use std::sync::Arc;

use otp::{Digits, Interval, Secret, Window};
use serde_json::json;
use store::{Settings, Store, SystemEntry, Tx, transact};
use zeroize::Zeroizing;

use crate::audit::{AuditEvent, AuditOutcome};
use crate::check::RateLimits;
use crate::{AuditRetention, Caller, Clock, ProvisioningUri, Randomness, ServiceError, UserRef};

/// `services` of the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Services {
    pub ssh: bool,
}

/// The entry as `config` returns it, secret as base32 text.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub otp_digits: Digits,
    pub secret: Option<Zeroizing<String>>,
    pub window: Window,
    pub interval: Interval,
    pub services: Services,
    pub enabled: bool,
}

impl Entry {
    /// The entry's id: one system-wide entry.
    pub const ID: i64 = 1;

    /// The entry from the settings and root's secret: the digits and
    /// interval are root's (equal to the defaults, see
    /// [`TwoFactor::activate`]), the defaults when root has no secret.
    fn from_stored(e: &SystemEntry) -> Self {
        let s = e.settings;
        let root = e.root.as_ref();
        Self {
            otp_digits: root.map_or(s.otp_digits, |r| r.digits),
            secret: root.map(|r| r.record.secret.to_base32()),
            window: s.window,
            interval: root.map_or(s.interval, |r| r.interval),
            services: Services { ssh: s.ssh },
            enabled: s.enabled,
        }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("otp_digits", &self.otp_digits)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("window", &self.window)
            .field("interval", &self.interval)
            .field("services", &self.services)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// `update`'s argument, already parsed: only the keys given are `Some`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateRequest {
    pub enabled: Option<bool>,
    pub otp_digits: Option<Digits>,
    pub window: Option<Window>,
    pub interval: Option<Interval>,
    pub services: Option<Services>,
}

/// What goes into the Key URI label: `ISSUER:HOST@PRODUCT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub issuer: String,
    pub product: String,
    pub hostname: String,
}

impl Labels {
    /// The system's short host name (up to the first dot).
    pub fn system_hostname() -> String {
        let full = gethostname::gethostname().to_string_lossy().into_owned();
        full.split('.').next().unwrap_or_default().to_owned()
    }
}

/// The `auth.twofactor` service.
#[derive(Debug, Clone)]
pub struct TwoFactor {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) random: Arc<dyn Randomness>,
    labels: Labels,
    pub(crate) limits: RateLimits,
    pub(crate) retention: AuditRetention,
    /// When this process prunes the audit trail next.
    pub(crate) prune: Arc<crate::retention::PruneSchedule>,
}

impl TwoFactor {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Randomness>,
        labels: Labels,
        limits: RateLimits,
    ) -> Self {
        Self {
            store,
            clock,
            random,
            labels,
            limits,
            retention: AuditRetention::default(),
            prune: Arc::default(),
        }
    }

    /// Sets audit retention (default: [`AuditRetention::default`]).
    /// Whether reads of the entry are answered from memory now (no I/O
    /// that could wait on a network): what lets a host run them on its
    /// event loop.
    pub fn reads_cached(&self) -> bool {
        self.store.reads_cached()
    }

    pub fn with_audit_retention(mut self, retention: AuditRetention) -> Self {
        self.retention = retention;
        self
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Registers `listener` for every change committed to the state,
    /// by this process, another process on the same state, or another
    /// node on a shared database, each told once ([`Store::on_change`]).
    pub fn on_change(&self, listener: store::ChangeListener) {
        self.store.on_change(listener);
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// `config()`: the entry.
    pub fn config(&self) -> Result<Entry, ServiceError> {
        Ok(Entry::from_stored(&self.store.read()?))
    }

    /// Whether a code is required right now (2FA on; `for_ssh` also needs
    /// `services.ssh`).
    pub fn code_required(&self, for_ssh: bool) -> Result<bool, ServiceError> {
        let s = self.store.read_summary()?.settings;
        Ok(s.enabled && (!for_ssh || s.ssh))
    }

    /// Whether `legacy_shared_code` is on: accounts without a secret of
    /// their own are asked for root's code (a state migrated from the
    /// single-secret model).
    pub fn legacy_shared_code(&self) -> Result<bool, ServiceError> {
        Ok(self.store.read_summary()?.settings.legacy_shared_code)
    }

    /// Ends `legacy_shared_code` (audited). Returns whether it was on.
    pub fn end_legacy_shared_code(&self, caller: &Caller) -> Result<bool, ServiceError> {
        let now = self.clock.now_ms();
        let was_on = transact(&*self.store, |tx| {
            let mut settings = tx.settings()?;
            let was_on = settings.legacy_shared_code;
            settings.legacy_shared_code = false;
            tx.put_settings(&settings)?;
            tx.audit(&caller.audit(
                now,
                AuditEvent::TwofactorEndLegacySharedCode,
                AuditOutcome::Success,
                Some(json!({"was_on": was_on})),
            ))?;
            self.retain_audit(tx, now)?;
            Ok(was_on)
        })?;
        Ok(was_on)
    }

    /// A fresh secret, or the random source's failure (nothing is made).
    pub(crate) fn new_secret(&self) -> Result<Secret, store::StoreError> {
        let mut failed = None;
        let secret = Secret::generate(|buf| failed = self.random.fill(buf).err());
        match failed {
            None => Ok(secret),
            Some(e) => Err(e.into()),
        }
    }

    /// Root's active secret inside a transaction (a row of the name made
    /// for another uid is not root's).
    fn root_secret(tx: &mut dyn Tx) -> store::Result<Option<store::UserSecret>> {
        let root = UserRef::root();
        Ok(tx.user_secret(&root.name)?.filter(|s| s.uid == root.uid))
    }

    /// `update(data)`: applies the keys given (the digits and interval to
    /// the defaults and to root's secret alike); generates root's secret
    /// when the result is enabled and has none. Changes and its audit
    /// record commit together.
    pub fn update(&self, caller: &Caller, req: UpdateRequest) -> Result<Entry, ServiceError> {
        let now = self.clock.now_ms();
        let root = UserRef::root();
        let entry = transact(&*self.store, |tx| {
            let old = tx.settings()?;
            let new = Settings {
                otp_digits: req.otp_digits.unwrap_or(old.otp_digits),
                window: req.window.unwrap_or(old.window),
                interval: req.interval.unwrap_or(old.interval),
                ssh: req.services.map_or(old.ssh, |s| s.ssh),
                enabled: req.enabled.unwrap_or(old.enabled),
                legacy_shared_code: old.legacy_shared_code,
            };
            tx.put_settings(&new)?;
            let had = Self::root_secret(tx)?.is_some();
            if had {
                tx.set_secret_params(&root.name, new.otp_digits, new.interval)?;
            }
            let generated = new.enabled && !had;
            if generated {
                let secret = self.new_secret()?;
                self.activate(tx, &root, &secret, new.otp_digits, new.interval, now)?;
            }
            tx.audit(&caller.audit(
                now,
                AuditEvent::TwofactorUpdate,
                AuditOutcome::Success,
                Some(json!({"changed": changed_keys(&old, &new), "secret_generated": generated})),
            ))?;
            self.retain_audit(tx, now)?;
            Ok(SystemEntry {
                settings: tx.settings()?,
                root: Self::root_secret(tx)?,
            })
        })?;
        Ok(Entry::from_stored(&entry))
    }

    /// `provisioning_uri()`: the Key URI of the current secret. It carries
    /// the secret in base32, so it is wiped when the caller drops it.
    pub fn provisioning_uri(&self) -> Result<ProvisioningUri, ServiceError> {
        let root = self.store.read()?.root.ok_or(ServiceError::NoSecret)?;
        self.user_uri(
            &UserRef::root(),
            root.record.secret,
            root.digits,
            root.interval,
        )
    }

    /// `renew_secret()`: a new secret (and with it fresh replay and failure
    /// state). Refused while 2FA is disabled.
    pub fn renew_secret(&self, caller: &Caller) -> Result<bool, ServiceError> {
        let now = self.clock.now_ms();
        let root = UserRef::root();
        transact(&*self.store, |tx| {
            let settings = tx.settings()?;
            if !settings.enabled {
                return Ok(false);
            }
            // Root's numbers stay (they are the defaults).
            let (digits, interval) = Self::root_secret(tx)?
                .map_or((settings.otp_digits, settings.interval), |s| {
                    (s.digits, s.interval)
                });
            self.activate(tx, &root, &self.new_secret()?, digits, interval, now)?;
            tx.audit(&caller.audit(
                now,
                AuditEvent::TwofactorRenewSecret,
                AuditOutcome::Success,
                None,
            ))?;
            self.retain_audit(tx, now)?;
            Ok(true)
        })?
        .then_some(true)
        .ok_or(ServiceError::NotEnabled)
    }

    /// `verify(token)`: the shared check path, answered as a boolean.
    pub fn verify(&self, caller: &Caller, token: Option<&str>) -> Result<bool, ServiceError> {
        self.check_code(caller, token)?.verdict()
    }

    /// Appends an audit record for something decided outside this crate
    /// (logins). Never pass codes or secrets in `detail`.
    pub fn record(
        &self,
        caller: &Caller,
        event: AuditEvent,
        outcome: AuditOutcome,
        detail: Option<serde_json::Value>,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now_ms();
        let owner = caller.user.clone().unwrap_or_default();
        transact(&*self.store, |tx| {
            self.audit_repeatable(tx, caller, &owner, now, event, outcome, detail.clone())?;
            self.retain_audit(tx, now)
        })?;
        Ok(())
    }

    /// Audit records, newest first.
    pub fn audit(&self, query: &store::AuditQuery) -> Result<Vec<store::AuditEntry>, ServiceError> {
        Ok(self.store.query_audit(query)?)
    }
}

fn changed_keys(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.enabled != new.enabled {
        out.push("enabled");
    }
    if old.otp_digits != new.otp_digits {
        out.push("otp_digits");
    }
    if old.window != new.window {
        out.push("window");
    }
    if old.interval != new.interval {
        out.push("interval");
    }
    if old.ssh != new.ssh {
        out.push("services");
    }
    out
}
