//! The hostile-load limits in the API layer: unauthenticated login attempts
//! limited per address and method (TrueNAS 24.10+: 20 per 60 s, then `Rate
//! Limit Exceeded`, EBUSY). The audit rows failed logins write are bounded by
//! the service's aggregation of repeated records.
//!
//! Both read the injected clock (milliseconds), so tests move time by hand.
//!
//! The login limiter is deliberately per node: it lives in this process's
//! memory and is neither stored nor shared. It is a flood brake on
//! unauthenticated login calls (each of which may cost a PAM password
//! check), not the guard of any secret. With several nodes on one shared
//! state, a client gets the full allowance (`[limits] login_attempts` per
//! `login_window_secs`) on each node it can reach: N nodes admit N times as
//! many login calls. What protects the second factor is elsewhere and is
//! shared: the wrong-code counters and lock-outs are store rows that every
//! node reads and writes in the same transaction as the check, so wrong
//! codes spread over the nodes lock a secret on all of them. Keeping the
//! brake in memory means a flood of login calls never turns into a flood of
//! database writes.

use std::collections::{HashMap, VecDeque};

/// Addresses remembered at once; when full, unknown addresses are refused
/// (fail closed) until entries expire.
const MAX_TRACKED: usize = 65_536;

/// A sliding-window counter per (address, method).
#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    attempts: HashMap<(String, &'static str), VecDeque<i64>>,
}

impl LoginLimiter {
    /// Counts one attempt at `now_ms`; `false` when `max` attempts already
    /// fell within the last `window_ms` (the refused attempt is not counted).
    pub(crate) fn admit(
        &mut self,
        key: &str,
        method: &'static str,
        now_ms: i64,
        max: u32,
        window_ms: i64,
    ) -> bool {
        let since = now_ms.saturating_sub(window_ms);
        if self.attempts.len() >= MAX_TRACKED {
            self.attempts.retain(|_, times| {
                while times.front().is_some_and(|t| *t <= since) {
                    times.pop_front();
                }
                !times.is_empty()
            });
        }
        let full = self.attempts.len() >= MAX_TRACKED;
        let k = (key.to_owned(), method);
        let times = match self.attempts.get_mut(&k) {
            Some(t) => t,
            None if full => return false,
            None => self.attempts.entry(k).or_default(),
        };
        while times.front().is_some_and(|t| *t <= since) {
            times.pop_front();
        }
        if times.len() >= usize::try_from(max).unwrap_or(usize::MAX) {
            return false;
        }
        times.push_back(now_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_per_window_per_address_and_method() {
        let mut l = LoginLimiter::default();
        let t0 = 1_000_000;
        for i in 0..20 {
            assert!(l.admit("10.0.0.1", "auth.login_ex", t0 + i, 20, 60_000));
        }
        assert!(!l.admit("10.0.0.1", "auth.login_ex", t0 + 100, 20, 60_000));
        // Another method and another address have their own counts.
        assert!(l.admit("10.0.0.1", "auth.login", t0 + 100, 20, 60_000));
        assert!(l.admit("10.0.0.2", "auth.login_ex", t0 + 100, 20, 60_000));
        // The oldest attempt leaves the window: one more is allowed.
        assert!(l.admit("10.0.0.1", "auth.login_ex", t0 + 60_000, 20, 60_000));
        assert!(!l.admit("10.0.0.1", "auth.login_ex", t0 + 60_000, 20, 60_000));
    }
}
