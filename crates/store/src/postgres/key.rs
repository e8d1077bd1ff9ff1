//! The key on a shared database: every node needs the same key file, and
//! the database keeps a key check value that proves it.

use std::io;
use std::path::Path;
use std::sync::Arc;

use postgres::Transaction;

use super::PgResult;
use crate::sqlite::key::{KEY_CHECK, KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT, secret_aad};
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
