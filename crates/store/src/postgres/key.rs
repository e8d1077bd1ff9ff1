//! The key on a shared database: every node needs the same key file, and
//! the database keeps a key check value that proves it.

use std::io;
use std::path::Path;
use std::sync::Arc;

use postgres::Transaction;

use super::PgResult;
use crate::model::LEGACY_SYSTEM_OWNER;
use crate::sqlite::key::{KEY_CHECK, KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT, reseal_one, secret_aad};
use crate::users::{ROOT, ROOT_UID, user_owner};
use crate::{KeyFile, Randomness, Result, StoreError};

/// Loads (or on a database without any sealed data, creates) the key file
/// and proves it against the database's key check, storing one when there
/// is none yet. Runs inside the start-up transaction, under the schema lock,
/// so two nodes starting together cannot both create a key.
pub(super) fn setup_key(
    tx: &mut Transaction<'_>,
    path: &Path,
    random: Arc<dyn Randomness>,
) -> Result<KeyFile> {
    let shown = || path.display().to_string();
    let check: Option<Vec<u8>> = tx
        .query_opt("SELECT value FROM meta WHERE key = $1", &[&KEY_CHECK])
        .pg()?
        .map(|r| r.get(0));
    let sealed: Vec<(String, Vec<u8>)> = tx
        .query("SELECT owner, sealed FROM otp_secrets ORDER BY id", &[])
        .pg()?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let key = match KeyFile::load_with(path, random.clone()) {
        Ok(key) => key,
        Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            if check.is_some() || !sealed.is_empty() {
                return Err(StoreError::KeyMissing { path: shown() });
            }
            if let Some(dir) = path.parent() {
                crate::sqlite::files::prepare_dir(dir)?;
                if let Some(name) = path.file_name() {
                    crate::sqlite::files::remove_key_leftovers(dir, name)?;
                }
            }
            KeyFile::create_with(path, random)?
        }
        Err(e) => return Err(e),
    };
    let mismatch = || StoreError::KeyCheckFailed { path: shown() };
    match check {
        Some(blob) => {
            let plain = key.open(&blob, KEY_CHECK_AAD).map_err(|_| mismatch())?;
            if plain.as_slice() != KEY_CHECK_PLAINTEXT {
                return Err(mismatch());
            }
        }
        None => {
            for (owner, blob) in &sealed {
                key.open(blob, &secret_aad(owner)).map_err(|_| mismatch())?;
            }
            let blob = key.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)",
                &[&KEY_CHECK, &blob],
            )
            .pg()?;
        }
    }
    Ok(key)
}

/// Finishes moving root's secret to its row of the per-user secrets
/// (script 4): re-seals a secret still under the entry's former owner label
/// under root's, in the start-up transaction (see the SQLite backend's
/// `reseal_root`, whose sealing this shares).
pub(super) fn reseal_root(tx: &mut Transaction<'_>, key: &KeyFile) -> Result<()> {
    let rows = tx
        .query(
            "SELECT s.id, s.sealed, u.username, u.uid FROM otp_secrets AS s
             LEFT JOIN user_secrets AS u ON u.secret_id = s.id
             WHERE s.owner = $1",
            &[&LEGACY_SYSTEM_OWNER],
        )
        .pg()?;
    for row in rows {
        let id: i64 = row.get(0);
        let sealed: Vec<u8> = row.get(1);
        let name: Option<String> = row.get(2);
        let uid: Option<i64> = row.get(3);
        let user = name.zip(uid);
        let resealed = reseal_one(key, id, &sealed, user.as_ref())?;
        tx.execute(
            "UPDATE otp_secrets SET owner = $2, sealed = $3 WHERE id = $1",
            &[&id, &user_owner(ROOT, ROOT_UID), &resealed],
        )
        .pg()?;
    }
    Ok(())
}
