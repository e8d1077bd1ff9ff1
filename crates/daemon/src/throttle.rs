//! Rate limit for repeated log lines (otherwise one line per failed login and
//! ~10 a second on EMFILE, unbounded): at most [`PER_INTERVAL`] lines per
//! key in each [`INTERVAL`]; the next line logged after a quiet stretch
//! says how many similar lines were left out.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Lines per key in one interval.
pub const PER_INTERVAL: u32 = 5;
pub const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// Per-key windows; keys are static names of kinds of line.
#[derive(Debug, Default)]
pub struct LogThrottle {
    windows: Mutex<HashMap<&'static str, Window>>,
}

impl LogThrottle {
    /// `Some(k)`: log this line, noting `k` similar lines suppressed before
    /// it; `None`: leave it out (it is counted).
    pub fn allow_at(&self, key: &'static str, now: Instant) -> Option<u64> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let w = windows.entry(key).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(w.start) >= INTERVAL {
            w.start = now;
            w.logged = 0;
        }
        if w.logged < PER_INTERVAL {
            w.logged += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

static LOGS: LazyLock<LogThrottle> = LazyLock::new(LogThrottle::default);

/// [`LogThrottle::allow_at`] on the daemon's one throttle, now.
pub fn allow(key: &'static str) -> Option<u64> {
    LOGS.allow_at(key, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_lines_are_limited_and_counted() {
        let t = LogThrottle::default();
        let t0 = Instant::now();
        let logged: Vec<_> = (0..100)
            .filter_map(|i| t.allow_at("pam", t0 + Duration::from_millis(i)))
            .collect();
        assert_eq!(logged, vec![0; PER_INTERVAL as usize]);
        // Another key has its own budget.
        assert_eq!(t.allow_at("accept", t0), Some(0));
        // The next interval logs again and says how many were left out.
        assert_eq!(t.allow_at("pam", t0 + INTERVAL), Some(95));
        assert_eq!(t.allow_at("pam", t0 + INTERVAL), Some(0));
    }
}
