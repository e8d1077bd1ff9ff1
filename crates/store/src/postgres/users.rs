//! PostgreSQL side of per-user secrets (see [`crate::users`]). The sealing
//! (associated data, recovery-code hashes) is the SQLite backend's, so a
//! state moves between engines without re-sealing.

use otp::{Digits, Interval};
use postgres::GenericClient;

use super::{Db, get};
use crate::rows::{SealedSecret, params_from_sql, uid_from_sql, unseal};
use crate::sqlite::key::secret_aad;
use crate::sqlite::users::{code_hash, code_hash_v1, pending_aad};
use crate::users::{NewUserSecret, PendingSecret, UserSecret, UserSecretInfo, user_owner};
use crate::{KeyFile, Result, SecretId, StoreError};

/// Holds one account's lock until the transaction ends: changes of one
/// account's secret from several nodes take turns.
fn lock_user(db: &mut Db<'_, impl GenericClient>, username: &str) -> Result<()> {
    db.query(
        "SELECT pg_advisory_xact_lock(hashtextextended('user' || chr(31) || $1, 0))",
        &[&username],
    )?;
    Ok(())
}

pub(super) fn user_secret(
    db: &mut Db<'_, impl GenericClient>,
    key: &KeyFile,
    username: &str,
) -> Result<Option<UserSecret>> {
    let Some(row) = db.opt(
        "SELECT u.uid, u.otp_digits, u.otp_interval, s.id, s.owner, s.sealed,
                s.created_at_ms, s.last_step
         FROM user_secrets AS u JOIN otp_secrets AS s ON s.id = u.secret_id
         WHERE u.username = $1",
        &[&username],
    )?
    else {
        return Ok(None);
    };
    let owner: String = get(&row, 4)?;
    let sealed: Vec<u8> = get(&row, 5)?;
    SealedSecret {
        username,
        uid: get(&row, 0)?,
        digits: get(&row, 1)?,
        interval: get(&row, 2)?,
        id: get(&row, 3)?,
        owner: &owner,
        sealed: &sealed,
        created_at_ms: get(&row, 6)?,
        last_step: get(&row, 7)?,
    }
    .open(key)
    .map(Some)
}

fn drop_active(db: &mut Db<'_, impl GenericClient>, username: &str) -> Result<bool> {
    let Some(row) = db.opt(
        "DELETE FROM user_secrets WHERE username = $1 RETURNING secret_id, uid",
        &[&username],
    )?
    else {
        return Ok(false);
    };
    let secret_id: i64 = get(&row, 0)?;
    let uid = uid_from_sql(get(&row, 1)?)?;
    db.exec("DELETE FROM otp_secrets WHERE id = $1", &[&secret_id])?;
    let owner = user_owner(username, uid);
    db.exec("DELETE FROM otp_failures WHERE owner = $1", &[&owner])?;
    Ok(true)
}

pub(super) fn put_user_secret(
    db: &mut Db<'_, impl GenericClient>,
    key: &KeyFile,
    new: &NewUserSecret<'_>,
) -> Result<SecretId> {
    lock_user(db, new.username)?;
    drop_active(db, new.username)?;
    let owner = user_owner(new.username, new.uid);
    db.exec("DELETE FROM otp_failures WHERE owner = $1", &[&owner])?;
    // Recovery codes made for another account of this name (another uid)
    // go: they were never this account's.
    db.exec(
        "DELETE FROM recovery_codes WHERE username = $1 AND uid <> $2",
        &[&new.username, &i64::from(new.uid)],
    )?;
    let sealed = key.seal(new.secret.expose(), &secret_aad(&owner))?;
    let row = db
        .opt(
            "INSERT INTO otp_secrets (owner, sealed, created_at_ms, last_step)
             VALUES ($1, $2, $3, NULL) RETURNING id",
            &[&owner, &sealed, &new.created_at_ms],
        )?
        .ok_or_else(|| StoreError::database("the new secret got no id"))?;
    let id: i64 = get(&row, 0)?;
    db.exec(
        "INSERT INTO user_secrets (username, uid, secret_id, otp_digits, otp_interval)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &new.username,
            &i64::from(new.uid),
            &id,
            &i64::from(new.digits.get()),
            &i64::from(new.interval.get()),
        ],
    )?;
    Ok(SecretId(id))
}

pub(super) fn set_secret_params(
    db: &mut Db<'_, impl GenericClient>,
    username: &str,
    digits: Digits,
    interval: Interval,
) -> Result<bool> {
    lock_user(db, username)?;
    let changed = db.exec(
        "UPDATE user_secrets SET otp_digits = $2, otp_interval = $3 WHERE username = $1",
        &[
            &username,
            &i64::from(digits.get()),
            &i64::from(interval.get()),
        ],
    )?;
    Ok(changed == 1)
}

pub(super) fn delete_user_secret(
    db: &mut Db<'_, impl GenericClient>,
    username: &str,
) -> Result<bool> {
    lock_user(db, username)?;
    let had = drop_active(db, username)?;
    delete_pending(db, username)?;
    db.exec(
        "DELETE FROM recovery_codes WHERE username = $1",
        &[&username],
    )?;
    Ok(had)
}

pub(super) fn user_secrets(db: &mut Db<'_, impl GenericClient>) -> Result<Vec<UserSecretInfo>> {
    let rows = db.query(
        "SELECT username, uid, otp_digits, otp_interval FROM user_secrets ORDER BY username",
        &[],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (digits, interval) = params_from_sql(get(&row, 2)?, get(&row, 3)?)?;
        out.push(UserSecretInfo {
            username: get(&row, 0)?,
            uid: uid_from_sql(get(&row, 1)?)?,
            digits,
            interval,
        });
    }
    Ok(out)
}

pub(super) fn pending(
    db: &mut Db<'_, impl GenericClient>,
    key: &KeyFile,
    username: &str,
) -> Result<Option<PendingSecret>> {
    let Some(row) = db.opt(
        "SELECT uid, sealed, otp_digits, otp_interval, expires_at_ms
         FROM pending_secrets WHERE username = $1",
        &[&username],
    )?
    else {
        return Ok(None);
    };
    let uid = uid_from_sql(get(&row, 0)?)?;
    let (digits, interval) = params_from_sql(get(&row, 2)?, get(&row, 3)?)?;
    let sealed: Vec<u8> = get(&row, 1)?;
    let secret = unseal(key, &sealed, &pending_aad(username, uid), "pending secret")?;
    Ok(Some(PendingSecret {
        username: username.to_owned(),
        uid,
        secret,
        digits,
        interval,
        expires_at_ms: get(&row, 4)?,
    }))
}

pub(super) fn put_pending(
    db: &mut Db<'_, impl GenericClient>,
    key: &KeyFile,
    p: &PendingSecret,
) -> Result<()> {
    let sealed = key.seal(p.secret.expose(), &pending_aad(&p.username, p.uid))?;
    db.exec(
        "INSERT INTO pending_secrets
             (username, uid, sealed, otp_digits, otp_interval, expires_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (username) DO UPDATE SET
             uid = excluded.uid, sealed = excluded.sealed,
             otp_digits = excluded.otp_digits, otp_interval = excluded.otp_interval,
             expires_at_ms = excluded.expires_at_ms",
        &[
            &p.username,
            &i64::from(p.uid),
            &sealed,
            &i64::from(p.digits.get()),
            &i64::from(p.interval.get()),
            &p.expires_at_ms,
        ],
    )?;
    Ok(())
}

pub(super) fn delete_pending(db: &mut Db<'_, impl GenericClient>, username: &str) -> Result<()> {
    db.exec(
        "DELETE FROM pending_secrets WHERE username = $1",
        &[&username],
    )?;
    Ok(())
}

pub(super) fn put_recovery_codes(
    db: &mut Db<'_, impl GenericClient>,
    key: &KeyFile,
    username: &str,
    uid: u32,
    codes: &[&str],
) -> Result<()> {
    db.exec(
        "DELETE FROM recovery_codes WHERE username = $1",
        &[&username],
    )?;
    for code in codes {
        let hash = code_hash(key, username, uid, code).to_vec();
        db.exec(
            "INSERT INTO recovery_codes (username, uid, code_hash, mac_version)
             VALUES ($1, $2, $3, 2)
             ON CONFLICT (username, code_hash) DO NOTHING",
            &[&username, &i64::from(uid), &hash],
        )?;
    }
    Ok(())
}

/// One conditional delete: of concurrent uses of one code, exactly one
/// deletes the row. Only a code of this uid matches (the uid is in the row
/// and, for codes of MAC version 2, in the MAC input).
pub(super) fn use_recovery_code(
    db: &mut Db<'_, impl GenericClient>,
    key: &KeyFile,
    username: &str,
    uid: u32,
    code: &str,
) -> Result<Option<u32>> {
    let hash = code_hash(key, username, uid, code).to_vec();
    let old = code_hash_v1(key, username, code).to_vec();
    let deleted = db.exec(
        "DELETE FROM recovery_codes WHERE username = $1 AND uid = $2
           AND ((mac_version = 2 AND code_hash = $3) OR (mac_version = 1 AND code_hash = $4))",
        &[&username, &i64::from(uid), &hash, &old],
    )?;
    if deleted == 0 {
        return Ok(None);
    }
    Ok(Some(recovery_codes_left(db, username, uid)?))
}

pub(super) fn recovery_codes_left(
    db: &mut Db<'_, impl GenericClient>,
    username: &str,
    uid: u32,
) -> Result<u32> {
    let row = db
        .opt(
            "SELECT count(*) FROM recovery_codes WHERE username = $1 AND uid = $2",
            &[&username, &i64::from(uid)],
        )?
        .ok_or_else(|| StoreError::database("count returned no row"))?;
    let n: i64 = get(&row, 0)?;
    u32::try_from(n).map_err(|_| StoreError::Corrupt("recovery code count out of range".into()))
}

/// Names other than `username` whose stored secret was made for `uid`.
pub(super) fn other_names_with_uid(
    db: &mut Db<'_, impl GenericClient>,
    username: &str,
    uid: u32,
) -> Result<Vec<String>> {
    let rows = db.query(
        "SELECT username FROM user_secrets WHERE uid = $1 AND username <> $2
         ORDER BY username COLLATE \"C\" LIMIT 16",
        &[&i64::from(uid), &username],
    )?;
    rows.iter().map(|r| get(r, 0)).collect()
}
