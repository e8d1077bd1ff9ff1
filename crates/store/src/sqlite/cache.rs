//! The sealing cache: the entry as last read, with its secret unsealed, kept
//! until a commit makes it stale.
//!
//! What it keeps, and no more: one entry (the system entry; per-user secrets
//! are never cached), whose only secret part is the decoded key bytes inside
//! [`otp::Secret`] — a wiping buffer with a redacting `Debug`; never the
//! sealed blob, never base32 text. It lets go of that secret as soon as it
//! is stale: when this store commits (see `SqliteStore::transact_dyn`), and
//! before a reload after anybody else's commit, so a reload that fails (a
//! secret that no longer opens) leaves nothing behind either.

use std::fmt;

use rusqlite::Connection;

use super::DbResult;
use super::entry::load_entry;
use crate::{KeyFile, Result, SystemEntry};

/// The read connection and what it last read.
pub(super) struct Reader {
    pub(super) conn: Connection,
    pub(super) cache: Option<Cached>,
}

/// The entry as of `PRAGMA data_version` = `version` on the read
/// connection, which moves whenever any other connection (the writer
/// included) commits.
pub(super) struct Cached {
    pub(super) version: i64,
    pub(super) entry: SystemEntry,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Cached {
    /// The version, the settings and which secret: never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cached")
            .field("version", &self.version)
            .field("settings", &self.entry.settings)
            .field("secret_id", &self.entry.secret.as_ref().map(|s| s.id))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Reader {
    /// The entry, from the cache while `PRAGMA data_version` stands still.
    pub(super) fn entry(&mut self, key: &KeyFile) -> Result<SystemEntry> {
        let version: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .db()?
            .query_row([], |r| r.get(0))
            .db()?;
        if let Some(cached) = &self.cache
            && cached.version == version
        {
            return Ok(cached.entry.clone());
        }
        // Stale: the old secret goes (and is wiped) before anything else,
        // whether or not the reload works.
        self.cache = None;
        // One read transaction, so the settings and the secret they point at
        // come from one snapshot. Read after the version: a commit in
        // between makes the cache newer than its label, which only costs
        // one more reload.
        let tx = self.conn.unchecked_transaction().db()?;
        let entry = load_entry(&tx, key)?;
        tx.commit().db()?;
        self.cache = Some(Cached {
            version,
            entry: entry.clone(),
        });
        Ok(entry)
    }
}
