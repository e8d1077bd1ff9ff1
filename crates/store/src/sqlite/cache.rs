//! The sealing cache: the entry as last read, with its secret unsealed, kept
//! until another connection commits.

use rusqlite::Connection;

use super::DbResult;
use super::entry::load_entry;
use crate::{KeyFile, Result, SystemEntry};

/// The read connection and what it last read.
pub(super) struct Reader {
    pub(super) conn: Connection,
    /// The entry as of `PRAGMA data_version` = `.0` on this connection,
    /// which moves whenever any other connection (the writer included)
    /// commits.
    pub(super) cache: Option<(i64, SystemEntry)>,
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
        if let Some((seen, entry)) = &self.cache
            && *seen == version
        {
            return Ok(entry.clone());
        }
        // One read transaction, so the settings and the secret they point at
        // come from one snapshot. Read after the version: a commit in
        // between makes the cache newer than its label, which only costs
        // one more reload.
        let tx = self.conn.unchecked_transaction().db()?;
        let entry = load_entry(&tx, key)?;
        tx.commit().db()?;
        self.cache = Some((version, entry.clone()));
        Ok(entry)
    }
}
