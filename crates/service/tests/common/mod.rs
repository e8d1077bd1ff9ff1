//! Shared by the service tests: the `TwoFactor` service on a real SQLite
//! store in a temporary directory, on a manual clock.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the helpers"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]

use std::sync::Arc;

use service::{Labels, ManualClock, Randomness, RateLimits, TwoFactor};

/// Where the fixtures' clocks start.
pub const T0: i64 = 1_700_000_000;

/// The labels the tests expect in provisioning URIs.
pub fn nas_labels() -> Labels {
    Labels {
        issuer: "iXsystems".into(),
        product: "TrueNAS".into(),
        hostname: "nas".into(),
    }
}

/// The service on `store`, with the test labels.
pub fn two_factor(
    store: store::SqliteStore,
    clock: Arc<ManualClock>,
    random: Arc<dyn Randomness>,
    limits: RateLimits,
) -> TwoFactor {
    TwoFactor::new(Arc::new(store), clock, random, nas_labels(), limits)
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub tf: TwoFactor,
}

/// A service on a fresh store in a temporary directory, clock at [`T0`].
pub fn fixture_with_random(random: Arc<dyn Randomness>, limits: RateLimits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = store::SqliteStore::open(&dir.path().join("state")).unwrap();
    let clock = Arc::new(ManualClock::at_secs(T0));
    let tf = two_factor(store, clock.clone(), random, limits);
    Fixture { dir, clock, tf }
}
