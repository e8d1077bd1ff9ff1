//! The one code-check path: replay protection, rate limiting and audit for
//! every place a code is checked (verify, login, PAM).

use otp::{Algorithm, Totp};
use serde_json::json;
use store::{LimiterState, transact};

use crate::{Caller, ServiceError, TwoFactor};

/// Rate-limit numbers (SPEC §6.3), settable in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Wrong codes tolerated within `window_secs` before a lock-out.
    pub max_failures: u32,
    pub window_secs: u32,
    /// First back-off; each further lock-out doubles it.
    pub initial_backoff_secs: u32,
    pub max_backoff_secs: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window_secs: 300,
            initial_backoff_secs: 30,
            max_backoff_secs: 900,
        }
    }
}

impl RateLimits {
    fn backoff_ms(&self, lockouts: u32) -> i64 {
        let secs = u64::from(self.initial_backoff_secs)
            .saturating_mul(1u64.checked_shl(lockouts.min(32)).unwrap_or(u64::MAX))
            .min(u64::from(self.max_backoff_secs));
        i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
    }

    /// Counts one failure at `now`; returns the back-off begun, if any.
    fn fail(&self, st: &mut LimiterState, now: i64) -> Option<i64> {
        if st.failures == 0 || now - st.window_start_ms > i64::from(self.window_secs) * 1000 {
            st.failures = 0;
            st.window_start_ms = now;
        }
        st.failures += 1;
        if st.failures < self.max_failures {
            return None;
        }
        let backoff = self.backoff_ms(st.lockouts);
        st.locked_until_ms = now.saturating_add(backoff);
        st.lockouts = st.lockouts.saturating_add(1);
        st.failures = 0;
        Some(backoff)
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
}

impl CheckOutcome {
    fn audit_name(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Wrong => "wrong",
            Self::Replayed => "replayed",
            Self::LockedOut { .. } => "locked_out",
        }
    }
}

impl TwoFactor {
    /// Checks a code for the system secret. Every outcome is audited in the
    /// same transaction as the state it changes, so among concurrent checks
    /// of one fresh code exactly one is accepted.
    pub fn check_code(
        &self,
        caller: &Caller,
        token: Option<&str>,
    ) -> Result<CheckOutcome, ServiceError> {
        let now = self.clock.now_ms();
        let token = token.map(str::trim).unwrap_or("");
        let limits = self.limits;
        let result = transact(&*self.store, |tx| {
            let entry = tx.entry()?;
            let settings = entry.settings;
            let Some(record) = entry.secret.filter(|_| settings.enabled) else {
                return Ok(None);
            };
            let mut scopes = vec![format!("secret:{}", record.id.0)];
            if let Some(addr) = caller.origin.remote_address() {
                scopes.push(format!("addr:{addr}"));
            }
            let mut states = Vec::with_capacity(scopes.len());
            for scope in &scopes {
                states.push(tx.limiter(scope)?);
            }
            let locked_until = states.iter().map(|s| s.locked_until_ms).max().unwrap_or(0);
            let outcome = if locked_until > now {
                let wait_ms = u64::try_from(locked_until - now).unwrap_or(0);
                CheckOutcome::LockedOut {
                    retry_after_secs: wait_ms.div_ceil(1000),
                }
            } else {
                let totp = Totp::new(
                    &record.secret,
                    settings.otp_digits,
                    settings.interval,
                    Algorithm::Sha1,
                );
                let secs = u64::try_from(now / 1000).unwrap_or(0);
                match totp.verify(token.as_bytes(), secs, settings.window) {
                    Some(step) if tx.advance_step(record.id, step)? => CheckOutcome::Accepted,
                    Some(_) => CheckOutcome::Replayed,
                    None => CheckOutcome::Wrong,
                }
            };
            let mut lockout = None;
            match outcome {
                CheckOutcome::Accepted => {
                    for scope in &scopes {
                        tx.put_limiter(scope, &LimiterState::default())?;
                    }
                }
                CheckOutcome::Wrong | CheckOutcome::Replayed => {
                    for (scope, st) in scopes.iter().zip(states.iter_mut()) {
                        if let Some(ms) = limits.fail(st, now) {
                            lockout = Some(lockout.map_or(ms, |m: i64| m.max(ms)));
                        }
                        tx.put_limiter(scope, st)?;
                    }
                }
                CheckOutcome::LockedOut { .. } => {}
            }
            let detail = match outcome {
                CheckOutcome::LockedOut { retry_after_secs } => {
                    Some(json!({"retry_after_secs": retry_after_secs}))
                }
                _ => None,
            };
            tx.audit(&caller.audit(now, "otp.check", outcome.audit_name(), detail))?;
            if let Some(ms) = lockout {
                tx.audit(&caller.audit(
                    now,
                    "otp.lockout",
                    "locked",
                    Some(json!({"seconds": ms / 1000})),
                ))?;
            }
            Ok(Some(outcome))
        })?;
        result.ok_or(ServiceError::NotEnabled)
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
            assert_eq!(l.fail(&mut st, 1000 + i * 1000), None);
        }
        assert_eq!(l.fail(&mut st, 6000), Some(30_000));
        assert_eq!(st.locked_until_ms, 36_000);
        assert_eq!(st.lockouts, 1);
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_lock() {
        let l = RateLimits::default();
        let mut st = LimiterState::default();
        for i in 0..20 {
            assert_eq!(l.fail(&mut st, i * 100_000), None, "failure {i}");
        }
    }
}
