//! Found by attacking the merged product as a careless administrator: rate
//! limit numbers that silently turn the lock-out off must be
//! refused at start-up, naming the key, like every other bad value.

use api::config::Config;

#[test]
fn rate_limit_numbers_that_disable_the_lock_out_are_refused() {
    for (text, key) in [
        // A zero back-off locks "until now": wrong codes are never refused.
        (
            "[rate_limit]\ninitial_backoff_secs = 0\nmax_backoff_secs = 0\n",
            "rate_limit.initial_backoff_secs",
        ),
        (
            "[rate_limit]\ninitial_backoff_secs = 0\n",
            "rate_limit.initial_backoff_secs",
        ),
        // A zero window forgets each failure before the next one counts.
        ("[rate_limit]\nwindow_secs = 0\n", "rate_limit.window_secs"),
    ] {
        let err = Config::parse(text, "t.toml").expect_err(text).to_string();
        assert!(err.contains(key), "{text}: {err}");
        assert!(err.contains("at least 1"), "{text}: {err}");
    }
    // The smallest settings that still lock out are accepted.
    let c = Config::parse(
        "[rate_limit]\ninitial_backoff_secs = 1\nmax_backoff_secs = 1\nwindow_secs = 1\n",
        "t.toml",
    )
    .expect("valid");
    assert_eq!(
        (
            c.rate_limits.initial_backoff_secs.get(),
            c.rate_limits.window_secs.get()
        ),
        (1, 1)
    );
}
