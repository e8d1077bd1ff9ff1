//! The read cache: the entry's settings and which secret is set, as last
//! read, kept until `PRAGMA data_version` moves.
//!
//! It keeps no secret at all — not the unsealed key, not the sealed blob,
//! not base32 text: only an [`EntrySummary`], which is what the frequent
//! reads need (is a code required, is there a secret). The few reads that
//! need the key itself ([`Reader::entry`]: `config`, the provisioning URIs)
//! unseal it afresh each time and hand it to the caller, whose copy wipes
//! itself on drop. One summary at most; per-user secrets are never cached.

use rusqlite::Connection;

use super::DbResult;
use super::entry::{load_entry, load_summary};
use crate::{EntrySummary, KeyFile, Result, SystemEntry};

/// The read connection and what it last read.
#[derive(Debug)]
pub(super) struct Reader {
    pub(super) conn: Connection,
    pub(super) cache: Option<Cached>,
}

/// The summary as of `PRAGMA data_version` = `version` on the read
/// connection, which moves whenever any other connection (the writer
/// included) commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cached {
    pub(super) version: i64,
    pub(super) summary: EntrySummary,
}

impl Reader {
    fn data_version(&self) -> Result<i64> {
        self.conn
            .prepare_cached("PRAGMA data_version")
            .db()?
            .query_row([], |r| r.get(0))
            .db()
    }

    /// The summary, from the cache while `PRAGMA data_version` stands still.
    pub(super) fn summary(&mut self) -> Result<EntrySummary> {
        let version = self.data_version()?;
        if let Some(cached) = self.cache
            && cached.version == version
        {
            return Ok(cached.summary);
        }
        // Read after the version: a commit in between makes the cache newer
        // than its label, which only costs one more reload.
        let summary = load_summary(&self.conn)?;
        self.cache = Some(Cached { version, summary });
        Ok(summary)
    }

    /// The entry with its secret unsealed, read afresh (never cached). The
    /// summary cache is refreshed on the way.
    pub(super) fn entry(&mut self, key: &KeyFile) -> Result<SystemEntry> {
        let version = self.data_version()?;
        // One read transaction, so the settings and the secret they point at
        // come from one snapshot.
        let tx = self.conn.unchecked_transaction().db()?;
        let entry = load_entry(&tx, key)?;
        tx.commit().db()?;
        self.cache = Some(Cached {
            version,
            summary: EntrySummary::from(&entry),
        });
        Ok(entry)
    }
}
