//! The key: proving the key file against the stored key check, and
//! loading or creating it on a first start.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::DbResult;
use super::files::remove_key_leftovers;
use crate::model::LEGACY_SYSTEM_OWNER;
use crate::users::{ROOT, ROOT_UID, user_owner};
use crate::{KeyFile, Randomness, Result, StoreError};

/// `meta` key of the key check.
pub(crate) const KEY_CHECK: &str = "key_check";
/// Known plaintext sealed under the key, to tell a wrong key file at start.
pub(crate) const KEY_CHECK_PLAINTEXT: &[u8] = b"twofactor key check v1";
/// Associated data of the key check.
pub(crate) const KEY_CHECK_AAD: &[u8] = b"twofactor/v1/key_check";

/// Associated data of a sealed OTP secret: purpose and owner.
pub(crate) fn secret_aad(owner: &str) -> Vec<u8> {
    let mut aad = b"twofactor/v1/otp_secret/".to_vec();
    aad.extend_from_slice(owner.as_bytes());
    aad
}

/// Loads the key and proves it against the stored key check.
pub(super) fn open_key(path: &Path, check: &[u8], random: Arc<dyn Randomness>) -> Result<KeyFile> {
    let shown = || path.display().to_string();
    let key = match KeyFile::load_with(path, random) {
        Ok(key) => key,
        Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::KeyMissing { path: shown() });
        }
        Err(e) => return Err(e),
    };
    verify_key_check(&key, check, path)?;
    Ok(key)
}

pub(super) fn verify_key_check(key: &KeyFile, check: &[u8], path: &Path) -> Result<()> {
    let wrong = || StoreError::WrongKey {
        path: path.display().to_string(),
    };
    let plain = key.open(check, KEY_CHECK_AAD).map_err(|_| wrong())?;
    if plain.as_slice() != KEY_CHECK_PLAINTEXT {
        return Err(wrong());
    }
    Ok(())
}

/// Loads or creates the key, under the database's write lock so two
/// processes starting at once cannot both create one.
pub(super) fn setup_key(
    conn: &mut Connection,
    path: &Path,
    random: Arc<dyn Randomness>,
) -> Result<KeyFile> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let check: Option<Vec<u8>> = tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [KEY_CHECK], |r| {
            r.get(0)
        })
        .optional()
        .db()?;
    let sealed: Vec<(String, Vec<u8>)> = {
        let mut stmt = tx
            .prepare("SELECT owner, sealed FROM otp_secrets ORDER BY id")
            .db()?;
        let rows = stmt.query_map([], |r| r.try_into()).db()?;
        rows.collect::<rusqlite::Result<_>>().db()?
    };
    let shown = || path.display().to_string();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        remove_key_leftovers(dir, name)?;
    }

    let key = match KeyFile::load_with(path, random.clone()) {
        Ok(key) => key,
        Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            if check.is_some() || !sealed.is_empty() {
                return Err(StoreError::KeyMissing { path: shown() });
            }
            KeyFile::create_with(path, random)?
        }
        Err(e) => return Err(e),
    };

    match check {
        Some(blob) => verify_key_check(&key, &blob, path)?,
        None => {
            // A new key, or one created just before a crash: whatever is
            // sealed must open under it before it is vouched for.
            for (owner, blob) in &sealed {
                key.open(blob, &secret_aad(owner))
                    .map_err(|_| StoreError::WrongKey { path: shown() })?;
            }
            let blob = key.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![KEY_CHECK, blob],
            )
            .db()?;
        }
    }
    tx.commit().db()?;
    Ok(key)
}

/// Finishes moving root's secret to its row of the per-user secrets (SQLite
/// script 8, PostgreSQL script 4): a secret still sealed under the owner
/// label it had as the entry's (`system`) is opened with that label and
/// sealed again under root's (`user:0:root`), in one transaction. Only
/// root's row can be such a secret; anything else is corrupt. Does nothing
/// on a state with none (every state after the first opening).
pub(super) fn reseal_root(conn: &mut Connection, key: &KeyFile) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    /// id, sealed blob, and the (name, uid) of the per-user row pointing at it.
    type Row = (i64, Vec<u8>, Option<(String, i64)>);
    let rows: Vec<Row> = {
        let mut stmt = tx
            .prepare(
                "SELECT s.id, s.sealed, u.username, u.uid FROM otp_secrets AS s
                 LEFT JOIN user_secrets AS u ON u.secret_id = s.id
                 WHERE s.owner = ?1",
            )
            .db()?;
        let rows = stmt
            .query_map([LEGACY_SYSTEM_OWNER], |r| {
                let user = match r.get::<_, Option<String>>(2)? {
                    Some(name) => Some((name, r.get(3)?)),
                    None => None,
                };
                Ok((r.get(0)?, r.get(1)?, user))
            })
            .db()?;
        rows.collect::<rusqlite::Result<_>>().db()?
    };
    for (id, sealed, user) in rows {
        let resealed = reseal_one(key, id, &sealed, user.as_ref())?;
        tx.execute(
            "UPDATE otp_secrets SET owner = ?2, sealed = ?3 WHERE id = ?1",
            params![id, user_owner(ROOT, ROOT_UID), resealed],
        )
        .db()?;
    }
    tx.commit().db()
}

/// Re-seals root's former entry secret `id` under root's label (shared by
/// both engines). `user` is the per-user row that points at it.
pub(crate) fn reseal_one(
    key: &KeyFile,
    id: i64,
    sealed: &[u8],
    user: Option<&(String, i64)>,
) -> Result<Vec<u8>> {
    if user.is_none_or(|(name, uid)| name != ROOT || *uid != i64::from(ROOT_UID)) {
        return Err(StoreError::Corrupt(format!(
            "secret {id} of the former system entry is not root's"
        )));
    }
    let plain = key
        .open(sealed, &secret_aad(LEGACY_SYSTEM_OWNER))
        .map_err(|_| {
            StoreError::Corrupt(format!(
                "sealed secret {id} does not open under the key file"
            ))
        })?;
    key.seal(&plain, &secret_aad(&user_owner(ROOT, ROOT_UID)))
}
