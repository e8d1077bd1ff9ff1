//! The system entry: settings and the sealed secret with its replay state.

use otp::{Digits, Interval, Secret, Window};
use postgres::GenericClient;

use super::{Db, get};
use crate::sqlite::key::secret_aad;
use crate::{
    EntrySummary, KeyFile, Result, SYSTEM_OWNER, SecretId, SecretRecord, Settings, StoreError,
    SystemEntry,
};

/// The entry's secret row, still sealed; `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct SecretRow {
    pub(super) id: i64,
    sealed: Vec<u8>,
    created_at_ms: i64,
    last_step: Option<i64>,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow")
            .field("id", &self.id)
            .field("sealed", &format_args!("<{} bytes>", self.sealed.len()))
            .finish_non_exhaustive()
    }
}

fn step_from_sql(step: i64) -> Result<u64> {
    u64::try_from(step)
        .map_err(|_| StoreError::Corrupt(format!("stored time step {step} is negative")))
}

pub(super) fn step_to_sql(step: u64) -> Result<i64> {
    i64::try_from(step)
        .map_err(|_| StoreError::Corrupt(format!("time step {step} is out of range")))
}

/// Reads the settings and the sealed secret row they point at (one
/// statement, one snapshot); unseals nothing.
pub(super) fn load_rows(
    db: &mut Db<'_, impl GenericClient>,
) -> Result<(Settings, Option<SecretRow>)> {
    let row = db
        .opt(
            "SELECT c.otp_digits, c.otp_window, c.otp_interval, c.services_ssh, c.enabled,
                    c.secret_id, s.id, s.owner, s.sealed, s.created_at_ms, s.last_step,
                    c.legacy_shared_code
             FROM twofactor_config AS c
             LEFT JOIN otp_secrets AS s ON s.id = c.secret_id
             WHERE c.id = 1",
            &[],
        )?
        .ok_or_else(|| StoreError::Corrupt("the configuration entry is missing".into()))?;
    let param = |e: otp::ParamError| StoreError::Corrupt(format!("stored {e}"));
    let settings = Settings {
        otp_digits: Digits::new(get(&row, 0)?).map_err(param)?,
        window: Window::new(get(&row, 1)?).map_err(param)?,
        interval: Interval::new(get(&row, 2)?).map_err(param)?,
        ssh: get(&row, 3)?,
        enabled: get(&row, 4)?,
        legacy_shared_code: get(&row, 11)?,
    };
    let secret_id: Option<i64> = get(&row, 5)?;
    let found: Option<i64> = get(&row, 6)?;
    let secret = match (secret_id, found) {
        (None, _) => None,
        (Some(id), None) => {
            return Err(StoreError::Corrupt(format!(
                "the entry's secret {id} is missing"
            )));
        }
        (Some(_), Some(id)) => {
            let owner: String = get(&row, 7)?;
            if owner != SYSTEM_OWNER {
                return Err(StoreError::Corrupt(format!(
                    "secret {id} does not belong to the system"
                )));
            }
            Some(SecretRow {
                id,
                sealed: get(&row, 8)?,
                created_at_ms: get(&row, 9)?,
                last_step: get(&row, 10)?,
            })
        }
    };
    Ok((settings, secret))
}

pub(super) fn summary_of(settings: Settings, row: Option<&SecretRow>) -> EntrySummary {
    EntrySummary {
        settings,
        secret_id: row.map(|s| SecretId(s.id)),
    }
}

pub(super) fn unseal_entry(
    settings: Settings,
    row: Option<&SecretRow>,
    key: &KeyFile,
) -> Result<SystemEntry> {
    let secret = match row {
        None => None,
        Some(r) => {
            let mut plain = key
                .open(&r.sealed, &secret_aad(SYSTEM_OWNER))
                .map_err(|_| {
                    StoreError::Corrupt(format!(
                        "sealed secret {} does not open under the key file",
                        r.id
                    ))
                })?;
            let secret = Secret::from_bytes(std::mem::take(&mut *plain))
                .map_err(|e| StoreError::Corrupt(format!("secret {}: {e}", r.id)))?;
            Some(SecretRecord {
                id: SecretId(r.id),
                secret,
                last_step: r.last_step.map(step_from_sql).transpose()?,
                created_at_ms: r.created_at_ms,
            })
        }
    };
    Ok(SystemEntry { settings, secret })
}

pub(super) fn put_settings(db: &mut Db<'_, impl GenericClient>, s: &Settings) -> Result<()> {
    let changed = db.exec(
        "UPDATE twofactor_config
         SET otp_digits = $1, otp_window = $2, otp_interval = $3,
             services_ssh = $4, enabled = $5, legacy_shared_code = $6
         WHERE id = 1",
        &[
            &i64::from(s.otp_digits.get()),
            &i64::from(s.window.get()),
            &i64::from(s.interval.get()),
            &s.ssh,
            &s.enabled,
            &s.legacy_shared_code,
        ],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Corrupt(
            "the configuration entry is missing".into(),
        ))
    }
}

/// The id of the system secret, locking the entry's row until the
/// transaction ends (two nodes replacing it at once take turns).
pub(super) fn lock_system_secret_id(db: &mut Db<'_, impl GenericClient>) -> Result<Option<i64>> {
    let row = db
        .opt(
            "SELECT secret_id FROM twofactor_config WHERE id = 1 FOR UPDATE",
            &[],
        )?
        .ok_or_else(|| StoreError::Corrupt("the configuration entry is missing".into()))?;
    get(&row, 0)
}

pub(super) fn forget_system_secret(db: &mut Db<'_, impl GenericClient>, id: i64) -> Result<()> {
    db.exec("DELETE FROM otp_secrets WHERE id = $1", &[&id])?;
    db.exec(
        "DELETE FROM otp_failures WHERE owner = $1",
        &[&SYSTEM_OWNER],
    )?;
    Ok(())
}

pub(super) fn replace_secret(
    db: &mut Db<'_, impl GenericClient>,
    key: &KeyFile,
    secret: &Secret,
    created_at_ms: i64,
) -> Result<SecretId> {
    let old = lock_system_secret_id(db)?;
    let sealed = key.seal(secret.expose(), &secret_aad(SYSTEM_OWNER))?;
    let row = db
        .opt(
            "INSERT INTO otp_secrets (owner, sealed, created_at_ms, last_step)
             VALUES ($1, $2, $3, NULL) RETURNING id",
            &[&SYSTEM_OWNER, &sealed, &created_at_ms],
        )?
        .ok_or_else(|| StoreError::database("the new secret got no id"))?;
    let id: i64 = get(&row, 0)?;
    db.exec(
        "UPDATE twofactor_config SET secret_id = $1 WHERE id = 1",
        &[&id],
    )?;
    if let Some(old) = old {
        forget_system_secret(db, old)?;
    }
    Ok(SecretId(id))
}

/// One conditional update: concurrent callers with the same step queue on
/// the row's lock, and each re-checks the condition against the committed
/// value, so exactly one of them changes the row.
pub(super) fn advance_step(
    db: &mut Db<'_, impl GenericClient>,
    id: SecretId,
    step: u64,
) -> Result<bool> {
    let step = step_to_sql(step)?;
    let changed = db.exec(
        "UPDATE otp_secrets SET last_step = $2
         WHERE id = $1 AND (last_step IS NULL OR last_step < $2)",
        &[&id.0, &step],
    )?;
    Ok(changed == 1)
}

pub(super) fn clear_system_secret(db: &mut Db<'_, impl GenericClient>) -> Result<bool> {
    let Some(old) = lock_system_secret_id(db)? else {
        return Ok(false);
    };
    db.exec(
        "UPDATE twofactor_config SET secret_id = NULL WHERE id = 1",
        &[],
    )?;
    forget_system_secret(db, old)?;
    Ok(true)
}
