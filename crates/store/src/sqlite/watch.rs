//! Hearing what other processes commit to the same state.
//!
//! Every transaction that changes something a listener hears of also
//! rewrites that thing's row of `change_notices` (see the schema) with the
//! next sequence number and its handle's token, in the same transaction.
//! A handle with listeners runs one watcher thread with a read-only
//! connection of its own. Every [`WATCH_INTERVAL`] it asks that
//! connection's `PRAGMA data_version`, which moves when any other
//! connection commits (this handle's writer included); only then does it
//! read the notice rows past the last sequence number it saw, and tells the
//! listeners those another handle wrote. Its own handle's rows are
//! skipped: their changes were told in-process at commit.
//!
//! Why polling: SQLite has no cross-process notification, and the
//! alternatives (inotify on the WAL file) miss commits on some file systems
//! and fire on every checkpoint. `PRAGMA data_version` reads the WAL index
//! in shared memory, no file I/O, and takes no lock a writer waits for, so
//! four polls a second cost nothing measurable and never touch the code
//! check's path (which runs on other connections and never waits for this
//! one). Changes from other processes are administrative (a `tfa` run
//! beside the daemon), so a quarter second before subscribers hear them is
//! well within what a person notices. Several changes to one thing between
//! two polls are told once, with the state as it is then.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use super::DbResult;
use super::schema::open_reader;
use crate::Result;
use crate::changes::{Change, ChangeSet, Notifier};

/// How often the watcher asks whether another connection committed.
pub(super) const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// A token telling this handle's notice rows from every other live
/// handle's: the process id and a count of handles opened in this process.
pub(super) fn writer_token() -> i64 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static OPENED: AtomicU32 = AtomicU32::new(0);
    let n = OPENED.fetch_add(1, Ordering::Relaxed);
    (i64::from(std::process::id()) << 32) | i64::from(n)
}

/// Writes the notice rows of `changes`, inside the transaction that made
/// them.
pub(super) fn record(conn: &Connection, changes: &ChangeSet, writer: i64) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO change_notices (kind, username, seq, writer)
             VALUES (?1, ?2, (SELECT coalesce(max(seq), 0) + 1 FROM change_notices), ?3)
             ON CONFLICT (kind, username) DO UPDATE SET seq = excluded.seq, writer = excluded.writer",
        )
        .db()?;
    for change in changes.iter() {
        let (kind, name) = match change {
            Change::Entry => ("entry", ""),
            Change::User { username } => ("user", username.as_str()),
        };
        stmt.execute(rusqlite::params![kind, name, writer]).db()?;
    }
    Ok(())
}

/// The watcher thread; dropping it stops the thread and waits for it (at
/// once: the thread waits on the stop channel, not in a sleep).
#[derive(Debug)]
pub(super) struct Watcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            // The last handle on the store may be let go by a listener on
            // the watcher thread itself; it then ends on its own.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// Where the watcher is: the connection's data version and the last
/// notice it has seen.
struct Position {
    version: i64,
    seq: i64,
}

fn position(conn: &Connection) -> Result<Position> {
    let tx = conn.unchecked_transaction().db()?;
    let version = tx.query_row("PRAGMA data_version", [], |r| r.get(0)).db()?;
    let seq = tx
        .query_row(
            "SELECT coalesce(max(seq), 0) FROM change_notices",
            [],
            |r| r.get(0),
        )
        .db()?;
    tx.commit().db()?;
    Ok(Position { version, seq })
}

/// Starts watching `db_path` for commits of handles other than `writer`,
/// from now on.
pub(super) fn spawn(db_path: &Path, writer: i64, notifier: Arc<Notifier>) -> Result<Watcher> {
    let conn = open_reader(db_path)?;
    let mut at = position(&conn)?;
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("twofactor-watch".into())
        .spawn(move || {
            let mut failing = false;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(WATCH_INTERVAL) {
                match poll(&conn, &mut at, writer) {
                    Ok(changes) => {
                        failing = false;
                        notifier.notify(&changes);
                    }
                    Err(e) => {
                        // Tried again at the next tick; said once.
                        if !failing {
                            tracing::warn!(error = %e, "cannot read other processes' changes");
                            failing = true;
                        }
                    }
                }
            }
        })
        .map_err(|source| crate::StoreError::Io {
            path: "the change watcher thread".into(),
            source,
        })?;
    Ok(Watcher {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// One look: nothing when no other connection committed since the last;
/// else the changes other handles noted since the last notice seen.
fn poll(conn: &Connection, at: &mut Position, writer: i64) -> Result<Vec<Change>> {
    let version: i64 = conn
        .prepare_cached("PRAGMA data_version")
        .db()?
        .query_row([], |r| r.get(0))
        .db()?;
    if version == at.version {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT kind, username, seq, writer FROM change_notices WHERE seq > ?1 ORDER BY seq",
        )
        .db()?;
    let rows = stmt
        .query_map([at.seq], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .db()?;
    let mut seen = ChangeSet::default();
    let mut last = at.seq;
    for row in rows {
        let (kind, username, seq, by) = row.db()?;
        last = last.max(seq);
        if by == writer {
            continue;
        }
        seen.note(match kind.as_str() {
            "entry" => Change::Entry,
            _ => Change::User { username },
        });
    }
    // Only now: a failed read is read again at the next tick.
    at.version = version;
    at.seq = last;
    Ok(seen.into_vec())
}
