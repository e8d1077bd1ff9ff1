//! The system entry: the settings, read together with root's secret row
//! (root's row of the per-user secrets) for the `config` answer.

use otp::{Digits, Interval, Window};
use postgres::GenericClient;

use super::{Db, get};
use crate::rows::step_to_sql;
pub(super) use crate::rows::{RootSecretRow as SecretRow, summary_of, unseal_entry};
use crate::users::{ROOT, ROOT_UID, user_owner};
use crate::{Result, SecretId, Settings, StoreError};

/// Reads the settings and root's sealed secret row (one statement, one
/// snapshot); unseals nothing.
pub(super) fn load_rows(
    db: &mut Db<'_, impl GenericClient>,
) -> Result<(Settings, Option<SecretRow>)> {
    let row = db
        .opt(
            "SELECT c.otp_digits, c.otp_window, c.otp_interval, c.services_ssh, c.enabled,
                    u.otp_digits, s.id, s.owner, s.sealed, s.created_at_ms, s.last_step,
                    c.legacy_shared_code, u.otp_interval
             FROM twofactor_config AS c
             LEFT JOIN user_secrets AS u ON u.username = $1 AND u.uid = $2
             LEFT JOIN otp_secrets AS s ON s.id = u.secret_id
             WHERE c.id = 1",
            &[&ROOT, &i64::from(ROOT_UID)],
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
    let found: Option<i64> = get(&row, 6)?;
    let secret = match found {
        None => None,
        Some(id) => {
            let owner: String = get(&row, 7)?;
            if owner != user_owner(ROOT, ROOT_UID) {
                return Err(StoreError::Corrupt(format!(
                    "secret {id} does not belong to root"
                )));
            }
            Some(SecretRow {
                id,
                sealed: get(&row, 8)?,
                created_at_ms: get(&row, 9)?,
                last_step: get(&row, 10)?,
                digits: get(&row, 5)?,
                interval: get(&row, 12)?,
            })
        }
    };
    Ok((settings, secret))
}

/// The settings row only: a code check reads the secret it checks by its
/// account, so joining root's secret here would read that row twice.
pub(super) fn load_settings(db: &mut Db<'_, impl GenericClient>) -> Result<Settings> {
    let row = db
        .opt(
            "SELECT otp_digits, otp_window, otp_interval, services_ssh, enabled,
                    legacy_shared_code
             FROM twofactor_config WHERE id = 1",
            &[],
        )?
        .ok_or_else(|| StoreError::Corrupt("the configuration entry is missing".into()))?;
    let param = |e: otp::ParamError| StoreError::Corrupt(format!("stored {e}"));
    Ok(Settings {
        otp_digits: Digits::new(get(&row, 0)?).map_err(param)?,
        window: Window::new(get(&row, 1)?).map_err(param)?,
        interval: Interval::new(get(&row, 2)?).map_err(param)?,
        ssh: get(&row, 3)?,
        enabled: get(&row, 4)?,
        legacy_shared_code: get(&row, 5)?,
    })
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

/// One conditional update: concurrent callers with the same step queue on
/// the row's lock, and each re-checks the condition against the committed
/// value, so exactly one of them changes the row. `Some(whether the
/// secret is root's)` when it moved, `None` when it did not.
pub(super) fn advance_step(
    db: &mut Db<'_, impl GenericClient>,
    id: SecretId,
    step: u64,
) -> Result<Option<bool>> {
    let step = step_to_sql(step)?;
    let row = db.opt(
        "UPDATE otp_secrets SET last_step = $2
         WHERE id = $1 AND (last_step IS NULL OR last_step < $2)
         RETURNING owner",
        &[&id.0, &step],
    )?;
    match row {
        None => Ok(None),
        Some(row) => {
            let owner: String = get(&row, 0)?;
            Ok(Some(owner == user_owner(ROOT, ROOT_UID)))
        }
    }
}
