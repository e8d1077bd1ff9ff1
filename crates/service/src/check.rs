//! The one code-check path: replay protection, rate limiting and audit for
//! every place a code is checked (verify, login, PAM).
//!
//! Wrong codes (wrong, malformed, replayed) are counted in two tiers:
//! per secret and origin, and per secret over all origins. Each tier
//! has its own counter in the store, keyed by (secret owner, origin), so
//! per-user secrets only bring another owner.

use std::num::NonZeroU32;

use otp::{Algorithm, Totp};
use serde_json::json;
use store::{ALL_ORIGINS, LimiterState, Tx, transact};

use crate::audit::{AuditEvent, AuditOutcome};
use crate::{Caller, ServiceError, TwoFactor, UserRef};

/// Counters whose window and lock-out memory ran out are deleted this many
/// for each audited transaction since the last prune, with audit retention
/// once a period.
const EXPIRE_BATCH: usize = 16;

/// Rate-limit numbers (a host reads them from its configuration file's
/// `[rate_limit]`). A zero would turn the lock-out off silently (a
/// back-off of 0 s locks until "now", a window of 0 s forgets every
/// failure), so they are at least 1 where it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Wrong codes from one origin tolerated within `window_secs` before
    /// that origin is locked out.
    pub max_failures: NonZeroU32,
    /// Wrong codes from all origins together tolerated within
    /// `window_secs` before the secret is locked out for every origin
    /// (but an administrator on the Unix socket).
    pub secret_max_failures: NonZeroU32,
    pub window_secs: NonZeroU32,
    /// First back-off; each further lock-out doubles it.
    pub initial_backoff_secs: NonZeroU32,
    pub max_backoff_secs: u32,
    /// Lock-outs are remembered (for the doubling) until a right code from
    /// the origin, or one fewer for each such quiet spell after the last
    /// lock-out ended: a pause of minutes does not start the back-off over.
    pub lockout_decay_secs: NonZeroU32,
}

impl Default for RateLimits {
    fn default() -> Self {
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        Self {
            max_failures: n(5),
            secret_max_failures: n(20),
            window_secs: n(300),
            initial_backoff_secs: n(30),
            max_backoff_secs: 900,
            lockout_decay_secs: n(3600),
        }
    }
}

/// Which counter a lock-out came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Origin,
    Secret,
}

impl Tier {
    fn name(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::Secret => "secret",
        }
    }
}

impl RateLimits {
    fn backoff_ms(&self, lockouts: u32) -> i64 {
        let secs = u64::from(self.initial_backoff_secs.get())
            .saturating_mul(1u64.checked_shl(lockouts.min(32)).unwrap_or(u64::MAX))
            .min(u64::from(self.max_backoff_secs));
        i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
    }

    fn window_ms(&self) -> i64 {
        i64::from(self.window_secs.get()) * 1000
    }

    /// Counts one failure at `now` against a limit of `max`; returns the
    /// back-off begun, if any.
    fn fail(&self, st: &mut LimiterState, max: u32, now: i64) -> Option<i64> {
        if st.failures == 0 || now - st.window_start_ms > self.window_ms() {
            st.failures = 0;
            st.window_start_ms = now;
        }
        st.failures += 1;
        if st.failures < max {
            return None;
        }
        let backoff = self.backoff_ms(st.lockouts);
        st.locked_until_ms = now.saturating_add(backoff);
        st.lockouts = st.lockouts.saturating_add(1);
        st.failures = 0;
        Some(backoff)
    }

    fn decay_ms(&self) -> i64 {
        i64::from(self.lockout_decay_secs.get()) * 1000
    }

    /// When a counter may be forgotten: its window has passed and every
    /// lock-out it remembers has decayed (so a persistent guesser keeps
    /// doubling, one who stays away for hours starts over).
    fn expires_at(&self, st: &LimiterState) -> i64 {
        let window_end = st.window_start_ms.saturating_add(self.window_ms());
        let memory_end = st
            .locked_until_ms
            .saturating_add(i64::from(st.lockouts).saturating_mul(self.decay_ms()));
        window_end.max(memory_end).max(st.locked_until_ms)
    }

    /// The stored counter as of `now`: fresh when it has expired (whether
    /// or not the expired row was deleted yet), and with one lock-out
    /// fewer for every full decay period since the last one ended. The
    /// periods used up move `locked_until_ms` on (never past `now`), so
    /// they are not counted again.
    fn current(&self, mut st: LimiterState, now: i64) -> LimiterState {
        if st == LimiterState::default() {
            return st;
        }
        if now >= self.expires_at(&st) {
            return LimiterState::default();
        }
        if st.lockouts > 0 && now > st.locked_until_ms {
            let periods = (now - st.locked_until_ms) / self.decay_ms();
            let forgiven = u32::try_from(periods).unwrap_or(u32::MAX).min(st.lockouts);
            st.lockouts -= forgiven;
            st.locked_until_ms += i64::from(forgiven) * self.decay_ms();
        }
        st
    }
}

/// The outcome of one code check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    Accepted,
    /// Not a code of any step in the window (or not well formed).
    Wrong,
    /// A right code whose step was already used (or older than one used).
    Replayed,
    LockedOut {
        retry_after_secs: u64,
    },
    /// Not shaped like a code at all: not `digits` digits (spaces inside
    /// aside) and not a recovery code. Answered like a wrong code but not
    /// counted as a guess: a typo of the shape says nothing about the
    /// secret.
    Malformed {
        digits: u8,
    },
}

impl CheckOutcome {
    fn audit_name(self) -> AuditOutcome {
        match self {
            Self::Accepted => AuditOutcome::Accepted,
            Self::Wrong => AuditOutcome::Wrong,
            Self::Malformed { .. } => AuditOutcome::Malformed,
            Self::Replayed => AuditOutcome::Replayed,
            Self::LockedOut { .. } => AuditOutcome::LockedOut,
        }
    }

    /// The answer of the verify methods: a right code is `true`, a wrong
    /// or replayed one `false`, a lock-out [`ServiceError::LockedOut`].
    pub(crate) fn verdict(self) -> Result<bool, ServiceError> {
        match self {
            Self::Accepted => Ok(true),
            Self::Wrong | Self::Replayed | Self::Malformed { .. } => Ok(false),
            Self::LockedOut { retry_after_secs } => {
                Err(ServiceError::LockedOut { retry_after_secs })
            }
        }
    }
}

/// The secret a check is against (an account's own, or root's under
/// `legacy_shared_code`), with the numbers that make its codes.
pub(crate) struct Target {
    /// Failure-counter owner ([`UserRef::owner`] of the secret's account).
    pub owner: String,
    pub secret: otp::Secret,
    /// The stored secret whose replay state moves; `None` for a pending
    /// enrolment (activated by the `accept` step of the check).
    pub id: Option<store::SecretId>,
    pub digits: otp::Digits,
    pub interval: otp::Interval,
}

/// The settings a check runs under. A caller exempt from the counters (an
/// administrator on the Unix socket, who can read the state and its
/// secrets anyway) may be answered from the store's cache of the entry,
/// so that its check needs no read of the database; every other caller's
/// check reads them in its transaction.
fn check_settings(tx: &mut dyn Tx, caller: &Caller) -> store::Result<store::Settings> {
    if caller.bypasses_lockout() {
        tx.settings_cached()
    } else {
        tx.settings()
    }
}

impl TwoFactor {
    /// Checks a code for root's secret. Every
    /// outcome is audited in the same transaction as the state it changes,
    /// so among concurrent checks of one fresh code exactly one is accepted.
    pub fn check_code(
        &self,
        caller: &Caller,
        token: Option<&str>,
    ) -> Result<CheckOutcome, ServiceError> {
        self.check_code_for(caller, &UserRef::root(), token)
    }

    /// Checks a code (or one of the account's recovery codes) for
    /// `user`'s own secret: the one code-check path of verify, login and
    /// PAM. 2FA disabled is [`ServiceError::NotEnabled`]; an account
    /// without a (still valid) secret is [`ServiceError::NotConfigured`].
    pub fn check_code_for(
        &self,
        caller: &Caller,
        user: &UserRef,
        token: Option<&str>,
    ) -> Result<CheckOutcome, ServiceError> {
        let now = self.clock.now_ms();
        transact(&*self.store, |tx| {
            let settings = check_settings(tx, caller)?;
            if !settings.enabled {
                return Ok(Err(ServiceError::NotEnabled));
            }
            let Some(target) = self.active_target(tx, caller, user, now)? else {
                return Ok(Err(ServiceError::NotConfigured));
            };
            let outcome = self.check_in_tx(
                tx,
                caller,
                user,
                &target,
                token,
                settings.window,
                now,
                true,
                &mut |tx, step| match target.id {
                    Some(id) => tx.advance_step(id, step),
                    None => Ok(false),
                },
            )?;
            Ok(Ok(outcome))
        })?
    }

    /// The login check (API login and PAM): the account's own secret, or,
    /// under `legacy_shared_code`, root's for an account without one (with
    /// root's replay and lock-out state; recovery codes are not taken
    /// then, and the audit record says `legacy_shared_code`).
    pub fn check_login_code(
        &self,
        caller: &Caller,
        user: &UserRef,
        token: Option<&str>,
    ) -> Result<CheckOutcome, ServiceError> {
        let now = self.clock.now_ms();
        transact(&*self.store, |tx| {
            let settings = check_settings(tx, caller)?;
            if !settings.enabled {
                return Ok(Err(ServiceError::NotEnabled));
            }
            let own = self.active_target(tx, caller, user, now)?;
            let (target, recovery) = match own {
                Some(t) => (t, true),
                None if settings.legacy_shared_code && !user.is_root() => {
                    match self.active_target(tx, caller, &UserRef::root(), now)? {
                        Some(t) => (t, false),
                        None => return Ok(Err(ServiceError::NotConfigured)),
                    }
                }
                None => return Ok(Err(ServiceError::NotConfigured)),
            };
            let outcome = self.check_in_tx(
                tx,
                caller,
                user,
                &target,
                token,
                settings.window,
                now,
                recovery,
                &mut |tx, step| match target.id {
                    Some(id) => tx.advance_step(id, step),
                    None => Ok(false),
                },
            )?;
            Ok(Ok(outcome))
        })?
    }

    /// The account's active secret as a check target, `None` when it has
    /// none. A secret made for another uid under the same name (the
    /// account was deleted and recreated) is not honoured: `None`, audited.
    pub(crate) fn active_target(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        user: &UserRef,
        now: i64,
    ) -> store::Result<Option<Target>> {
        let stored = if caller.bypasses_lockout() {
            tx.user_secret_cached(&user.name)?
        } else {
            tx.user_secret(&user.name)?
        };
        let Some(stored) = stored else {
            return Ok(None);
        };
        if stored.uid != user.uid {
            self.audit_repeatable(
                tx,
                caller,
                &stored.owner(),
                now,
                AuditEvent::OtpCheck,
                AuditOutcome::NotConfigured,
                Some(json!({
                    "account": user.name,
                    "reason": "the secret was made for another account of this name (uid changed)",
                    "secret_uid": stored.uid,
                    "account_uid": user.uid,
                })),
            )?;
            return Ok(None);
        }
        Ok(Some(Target {
            owner: stored.owner(),
            secret: stored.record.secret,
            id: Some(stored.record.id),
            digits: stored.digits,
            interval: stored.interval,
        }))
    }

    /// The check itself, inside the caller's transaction: lock-out, code
    /// (then, when allowed, a recovery code), counters, audit. `accept`
    /// records the matching step and says whether it was fresh. A missing
    /// `token` is empty; blanks around it and inside it do not count.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check_in_tx(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        user: &UserRef,
        target: &Target,
        token: Option<&str>,
        window: otp::Window,
        now: i64,
        recovery: bool,
        accept: &mut dyn FnMut(&mut dyn Tx, u64) -> store::Result<bool>,
    ) -> store::Result<CheckOutcome> {
        let token = crate::provisioning::compact_code(token.unwrap_or(""));
        let token = token.as_str();
        let digits = target.digits.get();
        let well_formed = crate::provisioning::is_code_shaped(token, digits);
        let limits = self.limits;
        let owner = target.owner.as_str();
        let origin = caller.origin.rate_limit_key();
        let bypass = caller.bypasses_lockout();
        // Checks that count nothing (below) are never locked out either:
        // they need not read the counters at all.
        let read = |tx: &mut dyn Tx, key: &str| {
            if bypass {
                Ok(LimiterState::default())
            } else {
                tx.failures(owner, key)
            }
        };
        let mut tiers = [
            (
                Tier::Origin,
                origin.as_str(),
                limits.max_failures.get(),
                limits.current(read(tx, &origin)?, now),
            ),
            (
                Tier::Secret,
                ALL_ORIGINS,
                limits.secret_max_failures.get(),
                limits.current(read(tx, ALL_ORIGINS)?, now),
            ),
        ];
        let locked_until = if bypass {
            0
        } else {
            tiers.iter().map(|t| t.3.locked_until_ms).max().unwrap_or(0)
        };
        let mut recovery_left = None;
        let outcome = if locked_until > now {
            let wait_ms = u64::try_from(locked_until - now).unwrap_or(0);
            CheckOutcome::LockedOut {
                retry_after_secs: wait_ms.div_ceil(1000),
            }
        } else {
            let totp = Totp::new(
                &target.secret,
                target.digits,
                target.interval,
                Algorithm::Sha1,
            );
            let secs = u64::try_from(now / 1000).unwrap_or(0);
            let code = if recovery && !well_formed {
                crate::RecoveryCode::parse(token)
            } else {
                None
            };
            match (totp.verify(token.as_bytes(), secs, window), code) {
                (Some(step), _) if accept(tx, step)? => CheckOutcome::Accepted,
                (Some(_), _) => CheckOutcome::Replayed,
                (None, Some(code)) => match tx.use_recovery_code(&user.name, user.uid, &code)? {
                    Some(left) => {
                        recovery_left = Some(left);
                        CheckOutcome::Accepted
                    }
                    None => CheckOutcome::Wrong,
                },
                (None, None) if well_formed => CheckOutcome::Wrong,
                (None, None) => CheckOutcome::Malformed { digits },
            }
        };
        let mut lockouts = Vec::new();
        match outcome {
            CheckOutcome::Accepted => {
                // A right code resets its own origin's count only: the
                // count over all origins is what stops many addresses.
                tx.put_failures(owner, &origin, &LimiterState::default(), 0)?;
            }
            // An administrator on the Unix socket can read the secret:
            // their typos are audited but counted nowhere, so that they
            // can neither lock themselves nor others sharing `local`.
            CheckOutcome::Wrong | CheckOutcome::Replayed if bypass => {}
            CheckOutcome::Wrong | CheckOutcome::Replayed => {
                for (tier, key, max, st) in &mut tiers {
                    if let Some(ms) = limits.fail(st, *max, now) {
                        lockouts.push((*tier, ms));
                    }
                    tx.put_failures(owner, key, st, limits.expires_at(st))?;
                }
            }
            // Audited, never counted (see `Malformed`).
            CheckOutcome::LockedOut { .. } | CheckOutcome::Malformed { .. } => {}
        }
        let mut detail = serde_json::Map::new();
        if !user.is_root() {
            detail.insert("account".into(), json!(user.name));
            // Another account checked against root's secret: the shared
            // code of `legacy_shared_code`.
            if owner == UserRef::root().owner() {
                detail.insert("legacy_shared_code".into(), json!(true));
                detail.insert(
                    "note".into(),
                    json!("root's code, asked of an account without its own secret"),
                );
            }
        }
        if let CheckOutcome::LockedOut { retry_after_secs } = outcome {
            detail.insert("retry_after_secs".into(), json!(retry_after_secs));
        }
        if let Some(left) = recovery_left {
            detail.insert("account".into(), json!(user.name));
            detail.insert(
                "note".into(),
                json!(format!("recovery code used ({left} left)")),
            );
            detail.insert("recovery_codes_left".into(), json!(left));
        }
        let detail = (!detail.is_empty()).then_some(serde_json::Value::Object(detail));
        let name = if recovery_left.is_some() {
            AuditOutcome::RecoveryCode
        } else {
            outcome.audit_name()
        };
        self.audit_repeatable(tx, caller, owner, now, AuditEvent::OtpCheck, name, detail)?;
        for (tier, ms) in lockouts {
            tx.audit(&caller.audit(
                now,
                AuditEvent::OtpLockout,
                AuditOutcome::Locked,
                Some(json!({
                    "scope": tier.name(),
                    "origin": if tier == Tier::Origin { origin.as_str() } else { ALL_ORIGINS },
                    "seconds": ms / 1000,
                    "account": user.name,
                })),
            ))?;
        }
        self.retain_audit(tx, now)?;
        Ok(outcome)
    }

    /// Appends a record of something `caller` can repeat at will (a
    /// check, a login): classed by its kind, and aggregated with the
    /// identical records of this caller for `owner`'s account beyond the
    /// configured rate.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn audit_repeatable(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        owner: &str,
        now: i64,
        event: AuditEvent,
        outcome: AuditOutcome,
        detail: Option<serde_json::Value>,
    ) -> store::Result<()> {
        let record = caller.audit(now, event, outcome, detail);
        let class = crate::retention::class_of(event, outcome);
        if !crate::retention::aggregated(event) {
            return tx.audit_as(&record, class, None);
        }
        let key = format!(
            "{event}\u{1f}{outcome}\u{1f}{}\u{1f}{}\u{1f}{owner}",
            caller.user.as_deref().unwrap_or(""),
            caller.origin.caller_key(),
        );
        let aggregate = store::Aggregate {
            key: &key,
            since_ms: self.retention.interval_start(now),
            free: self.retention.aggregate_after,
        };
        tx.audit_as(&record, class, Some(&aggregate))
    }

    /// Applies audit retention, to each class on its own budget, and
    /// deletes expired failure counters, when this process's prune is due
    /// (see [`crate::retention`]); called in every transaction that
    /// appends audit records, it costs nothing in the others of the
    /// period.
    pub(crate) fn retain_audit(&self, tx: &mut dyn Tx, now: i64) -> store::Result<()> {
        use crate::retention::PruneSchedule;
        let r = self.retention;
        let Some(transactions) = self.prune.due(now) else {
            return Ok(());
        };
        // Expired counters read as expired anyway; deleting them only
        // keeps the table small.
        let expire = PruneSchedule::allowance(EXPIRE_BATCH, transactions);
        let mut full = tx.expire_failures(now, expire)? >= expire;
        let batch = PruneSchedule::allowance(r.batch, transactions);
        for class in store::AuditClass::ALL {
            let (days, rows) = r.budget(class);
            let max_age_ms = i64::from(days).saturating_mul(86_400_000);
            full |= tx.prune_audit(class, now.saturating_sub(max_age_ms), rows, batch)? >= batch;
        }
        if full {
            self.prune.backlog();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let l = RateLimits::default();
        let got: Vec<i64> = (0..8).map(|n| l.backoff_ms(n) / 1000).collect();
        assert_eq!(got, vec![30, 60, 120, 240, 480, 900, 900, 900]);
        assert_eq!(l.backoff_ms(u32::MAX) / 1000, 900);
    }

    #[test]
    fn five_failures_within_the_window_lock() {
        let l = RateLimits::default();
        let mut st = LimiterState::default();
        for i in 0..4 {
            assert_eq!(l.fail(&mut st, 5, 1000 + i * 1000), None);
        }
        assert_eq!(l.fail(&mut st, 5, 6000), Some(30_000));
        assert_eq!(st.locked_until_ms, 36_000);
        assert_eq!(st.lockouts, 1);
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_lock() {
        let l = RateLimits::default();
        let mut st = LimiterState::default();
        for i in 0..20 {
            assert_eq!(l.fail(&mut st, 5, i * 100_000), None, "failure {i}");
        }
    }

    #[test]
    fn a_counter_expires_after_its_window_and_lock_out_memory() {
        let l = RateLimits::default();
        let mut st = LimiterState::default();
        l.fail(&mut st, 5, 0);
        assert_eq!(l.expires_at(&st), 300_000);
        assert_eq!(l.current(st, 299_999), st);
        assert_eq!(l.current(st, 300_000), LimiterState::default());
        for t in 1..5 {
            l.fail(&mut st, 5, t);
        }
        // Locked 30 s from t=4 ms; remembered an hour beyond.
        assert_eq!(st.locked_until_ms, 30_004);
        assert_eq!(l.expires_at(&st), 30_004 + 3_600_000);
        assert_eq!(l.current(st, 3_630_003), st);
        assert_eq!(l.current(st, 3_630_004), LimiterState::default());
    }

    #[test]
    fn lock_outs_decay_one_per_quiet_period() {
        let l = RateLimits::default();
        let st = LimiterState {
            failures: 0,
            window_start_ms: 0,
            locked_until_ms: 1_000_000,
            lockouts: 3,
        };
        // Within the first period after the lock-out: all remembered.
        assert_eq!(l.current(st, 1_000_000 + 3_599_999).lockouts, 3);
        let later = l.current(st, 1_000_000 + 3_600_000);
        assert_eq!(later.lockouts, 2);
        assert_eq!(later.locked_until_ms, 1_000_000 + 3_600_000);
        // Applying it again at the same instant forgives nothing more.
        assert_eq!(l.current(later, 1_000_000 + 3_600_000), later);
        assert_eq!(l.current(later, 1_000_000 + 7_200_000).lockouts, 1);
        assert_eq!(
            l.current(st, 1_000_000 + 3 * 3_600_000),
            LimiterState::default()
        );
    }
}
