//! SQLite side of per-user secrets (see [`crate::users`]).

use otp::{Digits, Interval};
use rusqlite::{Connection, OptionalExtension, params};

use super::DbResult;
use super::key::secret_aad;
use crate::rows::{SealedSecret, params_from_sql, uid_from_sql, unseal};
use crate::users::{NewUserSecret, PendingSecret, UserSecret, UserSecretInfo, user_owner};
use crate::{KeyFile, Result, SecretId, StoreError};

pub(crate) fn pending_aad(username: &str, uid: u32) -> Vec<u8> {
    let mut aad = b"twofactor/v1/pending_secret/".to_vec();
    aad.extend_from_slice(user_owner(username, uid).as_bytes());
    aad
}

/// One row of the user-secret join, as SQLite returns it.
type UserRow = (i64, i64, i64, i64, String, Vec<u8>, i64, Option<i64>);

pub(super) fn user_secret(
    conn: &Connection,
    key: &KeyFile,
    username: &str,
) -> Result<Option<UserSecret>> {
    let row: Option<UserRow> = conn
        .prepare_cached(
            "SELECT u.uid, u.otp_digits, u.otp_interval, s.id, s.owner, s.sealed,
                    s.created_at_ms, s.last_step
             FROM user_secrets AS u JOIN otp_secrets AS s ON s.id = u.secret_id
             WHERE u.username = ?1",
        )
        .db()?
        .query_row([username], |r| r.try_into())
        .optional()
        .db()?;
    let Some((uid, digits, interval, id, owner, sealed, created_at_ms, last_step)) = row else {
        return Ok(None);
    };
    SealedSecret {
        username,
        uid,
        digits,
        interval,
        id,
        owner: &owner,
        sealed: &sealed,
        created_at_ms,
        last_step,
    }
    .open(key)
    .map(Some)
}

/// Deletes `username`'s active secret row and its failure counters (not
/// its pending enrolment or recovery codes). Returns whether there was one.
fn drop_active(conn: &Connection, username: &str) -> Result<bool> {
    let old: Option<(i64, i64)> = conn
        .prepare_cached("SELECT secret_id, uid FROM user_secrets WHERE username = ?1")
        .db()?
        .query_row([username], |r| r.try_into())
        .optional()
        .db()?;
    let Some((secret_id, uid)) = old else {
        return Ok(false);
    };
    conn.prepare_cached("DELETE FROM user_secrets WHERE username = ?1")
        .db()?
        .execute([username])
        .db()?;
    conn.prepare_cached("DELETE FROM otp_secrets WHERE id = ?1")
        .db()?
        .execute([secret_id])
        .db()?;
    let owner = user_owner(username, uid_from_sql(uid)?);
    conn.prepare_cached("DELETE FROM otp_failures WHERE owner = ?1")
        .db()?
        .execute([owner])
        .db()?;
    Ok(true)
}

pub(super) fn put_user_secret(
    conn: &Connection,
    key: &KeyFile,
    new: &NewUserSecret<'_>,
) -> Result<SecretId> {
    drop_active(conn, new.username)?;
    let owner = user_owner(new.username, new.uid);
    // Counters of this owner left by an earlier secret start over too.
    conn.prepare_cached("DELETE FROM otp_failures WHERE owner = ?1")
        .db()?
        .execute([&owner])
        .db()?;
    // Recovery codes made for another account of this name (another uid)
    // go: they were never this account's.
    conn.prepare_cached("DELETE FROM recovery_codes WHERE username = ?1 AND uid <> ?2")
        .db()?
        .execute(params![new.username, new.uid])
        .db()?;
    let sealed = key.seal(new.secret.expose(), &secret_aad(&owner))?;
    conn.prepare_cached(
        "INSERT INTO otp_secrets (owner, sealed, created_at_ms, last_step)
         VALUES (?1, ?2, ?3, NULL)",
    )
    .db()?
    .execute(params![owner, sealed, new.created_at_ms])
    .db()?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO user_secrets (username, uid, secret_id, otp_digits, otp_interval)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .db()?
    .execute(params![
        new.username,
        new.uid,
        id,
        new.digits.get(),
        new.interval.get()
    ])
    .db()?;
    Ok(SecretId(id))
}

pub(super) fn set_secret_params(
    conn: &Connection,
    username: &str,
    digits: Digits,
    interval: Interval,
) -> Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE user_secrets SET otp_digits = ?2, otp_interval = ?3 WHERE username = ?1",
        )
        .db()?
        .execute(params![username, digits.get(), interval.get()])
        .db()?;
    Ok(changed == 1)
}

pub(super) fn delete_user_secret(conn: &Connection, username: &str) -> Result<bool> {
    let had = drop_active(conn, username)?;
    delete_pending(conn, username)?;
    conn.prepare_cached("DELETE FROM recovery_codes WHERE username = ?1")
        .db()?
        .execute([username])
        .db()?;
    Ok(had)
}

pub(super) fn user_secrets(conn: &Connection) -> Result<Vec<UserSecretInfo>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT username, uid, otp_digits, otp_interval FROM user_secrets ORDER BY username",
        )
        .db()?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (username, uid, digits, interval) = row.db()?;
        let (digits, interval) = params_from_sql(digits, interval)?;
        out.push(UserSecretInfo {
            username,
            uid: uid_from_sql(uid)?,
            digits,
            interval,
        });
    }
    Ok(out)
}

pub(super) fn pending(
    conn: &Connection,
    key: &KeyFile,
    username: &str,
) -> Result<Option<PendingSecret>> {
    let row: Option<(i64, Vec<u8>, i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT uid, sealed, otp_digits, otp_interval, expires_at_ms
             FROM pending_secrets WHERE username = ?1",
        )
        .db()?
        .query_row([username], |r| r.try_into())
        .optional()
        .db()?;
    let Some((uid, sealed, digits, interval, expires_at_ms)) = row else {
        return Ok(None);
    };
    let uid = uid_from_sql(uid)?;
    let (digits, interval) = params_from_sql(digits, interval)?;
    let secret = unseal(key, &sealed, &pending_aad(username, uid), "pending secret")?;
    Ok(Some(PendingSecret {
        username: username.to_owned(),
        uid,
        secret,
        digits,
        interval,
        expires_at_ms,
    }))
}

pub(super) fn put_pending(conn: &Connection, key: &KeyFile, p: &PendingSecret) -> Result<()> {
    let sealed = key.seal(p.secret.expose(), &pending_aad(&p.username, p.uid))?;
    conn.prepare_cached(
        "INSERT INTO pending_secrets
             (username, uid, sealed, otp_digits, otp_interval, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (username) DO UPDATE SET
             uid = excluded.uid, sealed = excluded.sealed,
             otp_digits = excluded.otp_digits, otp_interval = excluded.otp_interval,
             expires_at_ms = excluded.expires_at_ms",
    )
    .db()?
    .execute(params![
        p.username,
        p.uid,
        sealed,
        p.digits.get(),
        p.interval.get(),
        p.expires_at_ms
    ])
    .db()?;
    Ok(())
}

pub(super) fn delete_pending(conn: &Connection, username: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM pending_secrets WHERE username = ?1")
        .db()?
        .execute([username])
        .db()?;
    Ok(())
}

/// The keyed hash of a recovery code made for `username` while it had
/// `uid`: the uid is part of the MAC input, so a code made for one account
/// never matches for another of the same name.
pub(crate) fn code_hash(key: &KeyFile, username: &str, uid: u32, code: &str) -> [u8; 32] {
    key.mac(&[
        b"recovery-code/v2",
        username.as_bytes(),
        &uid.to_be_bytes(),
        code.as_bytes(),
    ])
}

/// The hash of a code made before codes were bound to a uid (schema 5
/// moved them, recording the uid of the account's secret row then).
pub(crate) fn code_hash_v1(key: &KeyFile, username: &str, code: &str) -> [u8; 32] {
    key.mac(&[b"recovery-code", username.as_bytes(), code.as_bytes()])
}

pub(super) fn put_recovery_codes(
    conn: &Connection,
    key: &KeyFile,
    username: &str,
    uid: u32,
    codes: &[&str],
) -> Result<()> {
    conn.prepare_cached("DELETE FROM recovery_codes WHERE username = ?1")
        .db()?
        .execute([username])
        .db()?;
    for code in codes {
        let hash = code_hash(key, username, uid, code);
        conn.prepare_cached(
            "INSERT INTO recovery_codes (username, uid, code_hash, mac_version)
             VALUES (?1, ?2, ?3, 2)
             ON CONFLICT (username, code_hash) DO NOTHING",
        )
        .db()?
        .execute(params![username, uid, hash.as_slice()])
        .db()?;
    }
    Ok(())
}

pub(super) fn use_recovery_code(
    conn: &Connection,
    key: &KeyFile,
    username: &str,
    uid: u32,
    code: &str,
) -> Result<Option<u32>> {
    // Looked up by its keyed hash: equality of two MACs says nothing about
    // the code to a timing observer who does not hold the key. Only a code
    // of this uid matches (the uid is in the row and, for new codes, in the
    // MAC input).
    let hash = code_hash(key, username, uid, code);
    let old = code_hash_v1(key, username, code);
    let deleted = conn
        .prepare_cached(
            "DELETE FROM recovery_codes WHERE username = ?1 AND uid = ?2
               AND ((mac_version = 2 AND code_hash = ?3) OR (mac_version = 1 AND code_hash = ?4))",
        )
        .db()?
        .execute(params![username, uid, hash.as_slice(), old.as_slice()])
        .db()?;
    if deleted == 0 {
        return Ok(None);
    }
    Ok(Some(recovery_codes_left(conn, username, uid)?))
}

pub(super) fn recovery_codes_left(conn: &Connection, username: &str, uid: u32) -> Result<u32> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM recovery_codes WHERE username = ?1 AND uid = ?2")
        .db()?
        .query_row(params![username, uid], |r| r.get(0))
        .db()?;
    u32::try_from(n).map_err(|_| StoreError::Corrupt("recovery code count out of range".into()))
}

/// Names other than `username` whose stored secret was made for `uid`.
pub(super) fn other_names_with_uid(
    conn: &Connection,
    username: &str,
    uid: u32,
) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT username FROM user_secrets WHERE uid = ?1 AND username <> ?2
             ORDER BY username LIMIT 16",
        )
        .db()?;
    let rows = stmt
        .query_map(params![uid, username], |r| r.get::<_, String>(0))
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.db()?);
    }
    Ok(out)
}
