//! Per-user secrets: each account's own sealed secret with its
//! digits, interval and replay state, a pending enrolment, and recovery-code
//! hashes, for every account, root (uid 0) included: root's secret is an
//! ordinary row, read and written by the same operations as anyone's.
//!
//! A secret belongs to a user name *and* the uid it had: the sealed blob's
//! associated data names both ([`user_owner`]), so a row moved to another
//! account no longer opens, and the service refuses a record whose uid is
//! not the account's any more.
//!
//! One user's secret is found by its name (the primary key) and only that
//! one is unsealed: the cost of a read does not grow with the number of
//! users, and secrets are never all held unsealed in memory. The records
//! are the engine's business; these are the values they hold
//! (`sqlite/users.rs` for SQLite).

use otp::{Digits, Interval, Secret};

use crate::SecretRecord;

/// Root's account name and uid: the row the TrueNAS entry (`config`)
/// shows the secret of.
pub(crate) const ROOT: &str = "root";
pub(crate) const ROOT_UID: u32 = 0;

/// The owner label of `username`'s secret made while it had `uid` (root's
/// is `user:0:root`): the associated data of its sealed blob and the key
/// of its failure counters. The one place the label is written.
pub fn user_owner(username: &str, uid: u32) -> String {
    format!("user:{uid}:{username}")
}

/// One account's active secret, unsealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSecret {
    pub username: String,
    /// The uid the account had when the secret was made.
    pub uid: u32,
    pub digits: Digits,
    pub interval: Interval,
    pub record: SecretRecord,
}

impl UserSecret {
    /// The failure-counter owner of this secret.
    pub fn owner(&self) -> String {
        user_owner(&self.username, self.uid)
    }
}

/// A stored account secret described without unsealing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSecretInfo {
    pub username: String,
    pub uid: u32,
    pub digits: Digits,
    pub interval: Interval,
}

/// A secret made by an enrolment that waits for a confirming code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSecret {
    pub username: String,
    pub uid: u32,
    pub secret: Secret,
    pub digits: Digits,
    pub interval: Interval,
    pub expires_at_ms: i64,
}

/// What to store as an account's new active secret.
#[derive(Debug, Clone, Copy)]
pub struct NewUserSecret<'a> {
    pub username: &'a str,
    pub uid: u32,
    pub secret: &'a Secret,
    pub digits: Digits,
    pub interval: Interval,
    pub created_at_ms: i64,
}

impl<'a> NewUserSecret<'a> {
    /// Root's (uid 0) new secret with the default numbers (6 digits, 30 s).
    pub fn root(secret: &'a Secret, created_at_ms: i64) -> Self {
        Self {
            username: ROOT,
            uid: ROOT_UID,
            secret,
            digits: Digits::default(),
            interval: Interval::default(),
            created_at_ms,
        }
    }
}
