//! The system entry: settings and the sealed secret with its replay state.

use otp::{Digits, Interval, Secret, Window};
use rusqlite::{Connection, OptionalExtension, params};

use super::key::secret_aad;
use super::{DbResult, step_from_sql, step_to_sql};
use crate::{
    EntrySummary, KeyFile, Result, SYSTEM_OWNER, SecretId, SecretRecord, Settings, StoreError,
    SystemEntry,
};

/// The entry's secret row, still sealed: the ciphertext is useless
/// without the key file, and `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct SecretRow {
    id: i64,
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

#[cfg(test)]
impl SecretRow {
    /// Damages the ciphertext (one bit), as a test of what reads it.
    pub(super) fn flip_a_bit(&mut self) {
        if let Some(b) = self.sealed.get_mut(30) {
            *b ^= 0x01;
        }
    }

    pub(super) fn sealed(&self) -> &[u8] {
        &self.sealed
    }
}

/// Reads the settings and the (sealed) secret row they point at, checking
/// that the row is there and belongs to the system; unseals nothing.
pub(super) fn load_rows(conn: &Connection) -> Result<(Settings, Option<SecretRow>)> {
    struct Row {
        digits: i64,
        window: i64,
        interval: i64,
        ssh: bool,
        enabled: bool,
        legacy: bool,
        secret_id: Option<i64>,
        secret: Option<(SecretRow, String)>,
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT c.otp_digits, c.otp_window, c.otp_interval, c.services_ssh, c.enabled,
                    c.secret_id, s.id, s.owner, s.sealed, s.created_at_ms, s.last_step,
                    c.legacy_shared_code
             FROM twofactor_config AS c
             LEFT JOIN otp_secrets AS s ON s.id = c.secret_id
             WHERE c.id = 1",
        )
        .db()?;
    let row = stmt
        .query_row([], |r| {
            let secret = match r.get::<_, Option<i64>>(6)? {
                Some(id) => Some((
                    SecretRow {
                        id,
                        sealed: r.get(8)?,
                        created_at_ms: r.get(9)?,
                        last_step: r.get(10)?,
                    },
                    r.get(7)?,
                )),
                None => None,
            };
            Ok(Row {
                digits: r.get(0)?,
                window: r.get(1)?,
                interval: r.get(2)?,
                ssh: r.get(3)?,
                enabled: r.get(4)?,
                legacy: r.get(11)?,
                secret_id: r.get(5)?,
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
    let secret = match (row.secret_id, row.secret) {
        (None, _) => None,
        (Some(id), None) => {
            return Err(StoreError::Corrupt(format!(
                "the entry's secret {id} is missing"
            )));
        }
        (Some(_), Some((secret, owner))) => {
            if owner != SYSTEM_OWNER {
                return Err(StoreError::Corrupt(format!(
                    "secret {} does not belong to the system",
                    secret.id
                )));
            }
            Some(secret)
        }
    };
    Ok((settings, secret))
}

/// The settings and which secret is set, from the rows, unsealing nothing.
pub(super) fn summary_of(settings: Settings, row: Option<&SecretRow>) -> EntrySummary {
    EntrySummary {
        settings,
        secret_id: row.map(|s| SecretId(s.id)),
    }
}

/// Reads the system entry and unseals its secret.
pub(super) fn load_entry(conn: &Connection, key: &KeyFile) -> Result<SystemEntry> {
    let (settings, row) = load_rows(conn)?;
    unseal_entry(settings, row.as_ref(), key)
}

/// The system entry from its rows, the secret unsealed into a value that
/// wipes itself (the caller's copy; nothing unsealed is kept here).
pub(super) fn unseal_entry(
    settings: Settings,
    row: Option<&SecretRow>,
    key: &KeyFile,
) -> Result<SystemEntry> {
    let secret = match row {
        None => None,
        Some(SecretRow {
            id,
            sealed,
            created_at_ms,
            last_step,
        }) => {
            let mut plain = key.open(sealed, &secret_aad(SYSTEM_OWNER)).map_err(|_| {
                StoreError::Corrupt(format!(
                    "sealed secret {id} does not open under the key file"
                ))
            })?;
            // Moves the bytes out of the wiping buffer into the secret's own.
            let secret = Secret::from_bytes(std::mem::take(&mut *plain))
                .map_err(|e| StoreError::Corrupt(format!("secret {id}: {e}")))?;
            Some(SecretRecord {
                id: SecretId(*id),
                secret,
                last_step: last_step.map(step_from_sql).transpose()?,
                created_at_ms: *created_at_ms,
            })
        }
    };
    Ok(SystemEntry { settings, secret })
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

/// The id of the system (root's) secret, `None` when there is none.
pub(super) fn system_secret_id(conn: &Connection) -> Result<Option<i64>> {
    conn.query_row(
        "SELECT secret_id FROM twofactor_config WHERE id = 1",
        [],
        |r| r.get(0),
    )
    .optional()
    .db()?
    .ok_or_else(|| StoreError::Corrupt("the configuration entry is missing".into()))
}

/// Deletes a former system secret, once the configuration no longer
/// points at it: its replay state and its failure counters go with it.
pub(super) fn forget_system_secret(conn: &Connection, id: i64) -> Result<()> {
    conn.execute("DELETE FROM otp_secrets WHERE id = ?1", [id])
        .db()?;
    conn.execute("DELETE FROM otp_failures WHERE owner = ?1", [SYSTEM_OWNER])
        .db()?;
    Ok(())
}

pub(super) fn replace_secret(
    conn: &Connection,
    key: &KeyFile,
    secret: &Secret,
    created_at_ms: i64,
) -> Result<SecretId> {
    let old = system_secret_id(conn)?;
    let sealed = key.seal(secret.expose(), &secret_aad(SYSTEM_OWNER))?;
    conn.execute(
        "INSERT INTO otp_secrets (owner, sealed, created_at_ms, last_step)
             VALUES (?1, ?2, ?3, NULL)",
        params![SYSTEM_OWNER, sealed, created_at_ms],
    )
    .db()?;
    let id = conn.last_insert_rowid();
    conn.execute(
        "UPDATE twofactor_config SET secret_id = ?1 WHERE id = 1",
        [id],
    )
    .db()?;
    if let Some(old) = old {
        forget_system_secret(conn, old)?;
    }
    Ok(SecretId(id))
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
