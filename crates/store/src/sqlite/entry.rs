//! The system entry: the settings, read together with root's secret row
//! (root's row of the per-user secrets) for the `config` answer.

use otp::{Digits, Interval, Window};
use rusqlite::{Connection, OptionalExtension, params};

use super::{DbResult, step_to_sql};
pub(super) use crate::rows::{RootSecretRow as SecretRow, summary_of, unseal_entry};
use crate::users::{ROOT, ROOT_UID, user_owner};
use crate::{Result, SecretId, Settings, StoreError};

/// Reads the settings and root's (sealed) secret row, checking that the
/// row belongs to root; unseals nothing.
pub(super) fn load_rows(conn: &Connection) -> Result<(Settings, Option<SecretRow>)> {
    struct Row {
        digits: i64,
        window: i64,
        interval: i64,
        ssh: bool,
        enabled: bool,
        legacy: bool,
        secret: Option<(SecretRow, String)>,
    }
    // One statement, so the settings and root's row come from one snapshot.
    let mut stmt = conn
        .prepare_cached(
            "SELECT c.otp_digits, c.otp_window, c.otp_interval, c.services_ssh, c.enabled,
                    s.id, s.owner, s.sealed, s.created_at_ms, s.last_step,
                    c.legacy_shared_code, u.otp_digits, u.otp_interval
             FROM twofactor_config AS c
             LEFT JOIN user_secrets AS u ON u.username = ?1 AND u.uid = ?2
             LEFT JOIN otp_secrets AS s ON s.id = u.secret_id
             WHERE c.id = 1",
        )
        .db()?;
    let row = stmt
        .query_row(params![ROOT, ROOT_UID], |r| {
            let secret = match r.get::<_, Option<i64>>(5)? {
                Some(id) => Some((
                    SecretRow {
                        id,
                        sealed: r.get(7)?,
                        created_at_ms: r.get(8)?,
                        last_step: r.get(9)?,
                        digits: r.get(11)?,
                        interval: r.get(12)?,
                    },
                    r.get(6)?,
                )),
                None => None,
            };
            Ok(Row {
                digits: r.get(0)?,
                window: r.get(1)?,
                interval: r.get(2)?,
                ssh: r.get(3)?,
                enabled: r.get(4)?,
                legacy: r.get(10)?,
                secret,
            })
        })
        .optional()
        .db()?
        .ok_or_else(|| StoreError::Corrupt("the configuration entry is missing".into()))?;

    let param = |e: otp::ParamError| StoreError::Corrupt(format!("stored {e}"));
    let settings = Settings {
        otp_digits: Digits::new(row.digits).map_err(param)?,
        window: Window::new(row.window).map_err(param)?,
        interval: Interval::new(row.interval).map_err(param)?,
        ssh: row.ssh,
        enabled: row.enabled,
        legacy_shared_code: row.legacy,
    };
    let secret = match row.secret {
        None => None,
        Some((secret, owner)) => {
            if owner != user_owner(ROOT, ROOT_UID) {
                return Err(StoreError::Corrupt(format!(
                    "secret {} does not belong to root",
                    secret.id
                )));
            }
            Some(secret)
        }
    };
    Ok((settings, secret))
}

/// The settings alone.
///
/// The settings row only: a code check reads the secret it checks by its
/// account, so joining root's secret here would read that row twice.
pub(super) fn load_settings(conn: &Connection) -> Result<Settings> {
    let (digits, window, interval, ssh, enabled, legacy): (i64, i64, i64, bool, bool, bool) = conn
        .prepare_cached(
            "SELECT otp_digits, otp_window, otp_interval, services_ssh, enabled,
                    legacy_shared_code
             FROM twofactor_config WHERE id = 1",
        )
        .db()?
        .query_row([], |r| r.try_into())
        .optional()
        .db()?
        .ok_or_else(|| StoreError::Corrupt("the configuration entry is missing".into()))?;
    let param = |e: otp::ParamError| StoreError::Corrupt(format!("stored {e}"));
    Ok(Settings {
        otp_digits: Digits::new(digits).map_err(param)?,
        window: Window::new(window).map_err(param)?,
        interval: Interval::new(interval).map_err(param)?,
        ssh,
        enabled,
        legacy_shared_code: legacy,
    })
}

pub(super) fn put_settings(conn: &Connection, s: &Settings) -> Result<()> {
    let changed = conn
        .prepare_cached(
            "UPDATE twofactor_config
             SET otp_digits = ?1, otp_window = ?2, otp_interval = ?3,
                 services_ssh = ?4, enabled = ?5, legacy_shared_code = ?6
             WHERE id = 1",
        )
        .db()?
        .execute(params![
            s.otp_digits.get(),
            s.window.get(),
            s.interval.get(),
            s.ssh,
            s.enabled,
            s.legacy_shared_code
        ])
        .db()?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Corrupt(
            "the configuration entry is missing".into(),
        ))
    }
}

pub(super) fn advance_step(conn: &Connection, id: SecretId, step: u64) -> Result<bool> {
    let step = step_to_sql(step)?;
    let changed = conn
        .prepare_cached(
            "UPDATE otp_secrets SET last_step = ?2
             WHERE id = ?1 AND (last_step IS NULL OR last_step < ?2)",
        )
        .db()?
        .execute(params![id.0, step])
        .db()?;
    Ok(changed == 1)
}
