//! Stored values as both engines keep them, decoded in one place: numbers
//! that must be in range, sealed secrets that must open under the key file
//! and belong to their account. A value that does not decode is corrupt
//! data, said as such, never a secret shown.

use otp::{Digits, Interval, Secret};

use crate::sqlite::key::secret_aad;
use crate::users::{ROOT, ROOT_UID, UserSecret, user_owner};
use crate::{
    EntrySummary, KeyFile, Result, SecretId, SecretRecord, Settings, StoreError, SystemEntry,
};

pub(crate) fn step_to_sql(step: u64) -> Result<i64> {
    i64::try_from(step)
        .map_err(|_| StoreError::Corrupt(format!("time step {step} is out of range")))
}

pub(crate) fn step_from_sql(step: i64) -> Result<u64> {
    u64::try_from(step)
        .map_err(|_| StoreError::Corrupt(format!("stored time step {step} is negative")))
}

pub(crate) fn uid_from_sql(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("stored uid {v} is out of range")))
}

pub(crate) fn params_from_sql(digits: i64, interval: i64) -> Result<(Digits, Interval)> {
    let param = |e: otp::ParamError| StoreError::Corrupt(format!("stored {e}"));
    Ok((
        Digits::new(digits).map_err(param)?,
        Interval::new(interval).map_err(param)?,
    ))
}

/// Opens a sealed blob into a secret (the plain bytes move from the
/// wiping buffer into the secret's own); `what` names it in errors.
pub(crate) fn unseal(key: &KeyFile, blob: &[u8], aad: &[u8], what: &str) -> Result<Secret> {
    let mut plain = key.open(blob, aad).map_err(|_| {
        StoreError::Corrupt(format!("sealed {what} does not open under the key file"))
    })?;
    Secret::from_bytes(std::mem::take(&mut *plain))
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// An account's active secret as its rows hold it, still sealed: the same
/// columns on both engines, root's included.
pub(crate) struct SealedSecret<'a> {
    pub(crate) username: &'a str,
    pub(crate) uid: i64,
    pub(crate) digits: i64,
    pub(crate) interval: i64,
    pub(crate) id: i64,
    pub(crate) owner: &'a str,
    pub(crate) sealed: &'a [u8],
    pub(crate) created_at_ms: i64,
    pub(crate) last_step: Option<i64>,
}

impl SealedSecret<'_> {
    /// The secret, unsealed, once its row proves to be the account's own.
    pub(crate) fn open(&self, key: &KeyFile) -> Result<UserSecret> {
        let uid = uid_from_sql(self.uid)?;
        let (digits, interval) = params_from_sql(self.digits, self.interval)?;
        if self.owner != user_owner(self.username, uid) {
            return Err(StoreError::Corrupt(format!(
                "secret {} does not belong to this account",
                self.id
            )));
        }
        let secret = unseal(
            key,
            self.sealed,
            &secret_aad(self.owner),
            &format!("secret {}", self.id),
        )?;
        Ok(UserSecret {
            username: self.username.to_owned(),
            uid,
            digits,
            interval,
            record: SecretRecord {
                id: SecretId(self.id),
                secret,
                last_step: self.last_step.map(step_from_sql).transpose()?,
                created_at_ms: self.created_at_ms,
            },
        })
    }
}

/// Root's secret row as the entry reads it, still sealed: the ciphertext
/// is useless without the key file, and `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RootSecretRow {
    pub(crate) id: i64,
    pub(crate) sealed: Vec<u8>,
    pub(crate) created_at_ms: i64,
    pub(crate) last_step: Option<i64>,
    pub(crate) digits: i64,
    pub(crate) interval: i64,
}

impl std::fmt::Debug for RootSecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootSecretRow")
            .field("id", &self.id)
            .field("sealed", &format_args!("<{} bytes>", self.sealed.len()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl RootSecretRow {
    /// Damages the ciphertext (one bit), as a test of what reads it.
    pub(crate) fn flip_a_bit(&mut self) {
        if let Some(b) = self.sealed.get_mut(30) {
            *b ^= 0x01;
        }
    }

    /// The ciphertext, as a test compares it.
    pub(crate) fn sealed(&self) -> &[u8] {
        &self.sealed
    }
}

/// The settings and which secret root has, from the rows, unsealing nothing.
pub(crate) fn summary_of(settings: Settings, row: Option<&RootSecretRow>) -> EntrySummary {
    EntrySummary {
        settings,
        secret_id: row.map(|s| SecretId(s.id)),
    }
}

/// The entry from its rows, root's secret unsealed into a value that
/// wipes itself (the caller's copy; nothing unsealed is kept here).
pub(crate) fn unseal_entry(
    settings: Settings,
    row: Option<&RootSecretRow>,
    key: &KeyFile,
) -> Result<SystemEntry> {
    let owner = user_owner(ROOT, ROOT_UID);
    let root = row
        .map(|r| {
            SealedSecret {
                username: ROOT,
                uid: i64::from(ROOT_UID),
                digits: r.digits,
                interval: r.interval,
                id: r.id,
                owner: &owner,
                sealed: &r.sealed,
                created_at_ms: r.created_at_ms,
                last_step: r.last_step,
            }
            .open(key)
        })
        .transpose()?;
    Ok(SystemEntry { settings, root })
}
