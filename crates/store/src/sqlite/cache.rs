//! The read cache: the entry's rows as last read (its settings, and root's
//! secret row still sealed), kept until `PRAGMA data_version` moves.
//!
//! It keeps nothing unsealed: not the secret's bytes, not base32 text. A
//! read that needs the secret ([`Reader::entry`]: `config`, the entry's
//! provisioning URI) unseals the cached ciphertext afresh each time and
//! hands the result to the caller, whose copy wipes itself on drop; the
//! frequent reads (is a code required, is there a secret) need only the
//! [`EntrySummary`] and unseal nothing. One entry at most; the other
//! accounts' secrets are never cached (root's row is read through them too,
//! uncached, like anyone's).

use rusqlite::Connection;

use super::DbResult;
use super::entry::{SecretRow, load_rows, summary_of, unseal_entry};
use crate::{EntrySummary, KeyFile, Result, Settings, SystemEntry};

/// The read connection and what it last read.
#[derive(Debug)]
pub(super) struct Reader {
    pub(super) conn: Connection,
    pub(super) cache: Option<Cached>,
}

/// The rows as of `PRAGMA data_version` = `version` on the read
/// connection, which moves whenever any other connection (the writer
/// included) commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cached {
    pub(super) version: i64,
    pub(super) settings: Settings,
    pub(super) secret: Option<SecretRow>,
}

impl Reader {
    fn data_version(&self) -> Result<i64> {
        self.conn
            .prepare_cached("PRAGMA data_version")
            .db()?
            .query_row([], |r| r.get(0))
            .db()
    }

    /// The rows, from the cache while `PRAGMA data_version` stands still.
    fn rows(&mut self) -> Result<&Cached> {
        let version = self.data_version()?;
        match self.cache.take() {
            Some(cached) if cached.version == version => Ok(self.cache.insert(cached)),
            _ => {
                // Read after the version: a commit in between makes the
                // cache newer than its label, which only costs one more
                // reload. One statement, so the settings and the secret row
                // they point at come from one snapshot.
                let (settings, secret) = load_rows(&self.conn)?;
                Ok(self.cache.insert(Cached {
                    version,
                    settings,
                    secret,
                }))
            }
        }
    }

    /// The summary: settings and which secret is set, nothing unsealed.
    pub(super) fn summary(&mut self) -> Result<EntrySummary> {
        let c = self.rows()?;
        Ok(summary_of(c.settings, c.secret.as_ref()))
    }

    /// The entry with its secret unsealed afresh from the cached
    /// ciphertext (the unsealed secret is never cached).
    pub(super) fn entry(&mut self, key: &KeyFile) -> Result<SystemEntry> {
        let c = self.rows()?;
        unseal_entry(c.settings, c.secret.as_ref(), key)
    }
}
