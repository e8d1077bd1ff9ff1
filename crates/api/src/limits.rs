//! SPEC §11 in the API layer: unauthenticated login attempts limited per
//! address and method (TrueNAS 24.10+: 20 per 60 s, then `Rate Limit
//! Exceeded`, EBUSY), and a bound on the audit rows failed logins write, so
//! a flood cannot fill the single SQLite writer.
//!
//! Both read the injected clock (milliseconds), so tests move time by hand.

use std::collections::{BTreeMap, HashMap, VecDeque};

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

/// Failed-login audit rows written per second at most; the rest are
/// counted and written as one summary row when the next one is written.
pub(crate) const FAILED_LOGIN_AUDITS_PER_SEC: u32 = 10;
/// Addresses named in one summary; the others are summed under `other`.
const MAX_SUMMARY_ADDRESSES: usize = 64;

/// What to write for one failed login.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuditDecision {
    /// Write the row; before it, a summary of the rows suppressed since the
    /// last one (address → count), if any.
    Write(Option<BTreeMap<String, u64>>),
    /// Counted only.
    Suppress,
}

#[derive(Debug, Default)]
pub(crate) struct FailedLoginAudit {
    second: i64,
    written: u32,
    suppressed: BTreeMap<String, u64>,
}

impl FailedLoginAudit {
    pub(crate) fn decide(&mut self, address: &str, now_ms: i64) -> AuditDecision {
        let second = now_ms.div_euclid(1000);
        if second != self.second {
            self.second = second;
            self.written = 0;
        }
        if self.written < FAILED_LOGIN_AUDITS_PER_SEC {
            self.written += 1;
            let summary =
                (!self.suppressed.is_empty()).then(|| std::mem::take(&mut self.suppressed));
            return AuditDecision::Write(summary);
        }
        let key = if self.suppressed.len() < MAX_SUMMARY_ADDRESSES
            || self.suppressed.contains_key(address)
        {
            address.to_owned()
        } else {
            "other".to_owned()
        };
        *self.suppressed.entry(key).or_default() += 1;
        AuditDecision::Suppress
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

    #[test]
    fn failed_login_audits_are_bounded_and_summarised() {
        let mut a = FailedLoginAudit::default();
        let t = 5_000;
        for _ in 0..FAILED_LOGIN_AUDITS_PER_SEC {
            assert!(matches!(a.decide("a", t), AuditDecision::Write(None)));
        }
        for _ in 0..7 {
            assert_eq!(a.decide("a", t + 10), AuditDecision::Suppress);
        }
        assert_eq!(a.decide("b", t + 20), AuditDecision::Suppress);
        let AuditDecision::Write(Some(summary)) = a.decide("a", t + 1000) else {
            panic!("the next second writes, with the summary");
        };
        assert_eq!(summary, BTreeMap::from([("a".into(), 7), ("b".into(), 1)]));
        assert!(matches!(
            a.decide("a", t + 1001),
            AuditDecision::Write(None)
        ));
    }
}
