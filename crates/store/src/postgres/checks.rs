//! Check state: the wrong-code counters per (secret owner, origin).
//! Reading a counter first takes a transaction-scoped advisory lock on its
//! key, so the read-modify-write the service does between [`failures`] and
//! [`put_failures`] is never interleaved with another node's: concurrent
//! failures are all counted. (The `rate_limits` table of the first schema
//! is no longer read or written.)

use postgres::GenericClient;

use super::{Db, get};
use crate::{LimiterState, Result, StoreError};

fn u32_from_sql(name: &str, value: i64) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("stored {name} {value} is out of range")))
}

/// Waits for (then holds until commit or rollback) the lock of one key.
fn lock_key(db: &mut Db<'_, impl GenericClient>, kind: &str, parts: &[&str]) -> Result<()> {
    let mut key = kind.to_owned();
    for p in parts {
        key.push('\u{1f}');
        key.push_str(p);
    }
    db.query(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&key],
    )?;
    Ok(())
}

fn read_state(row: Option<postgres::Row>) -> Result<LimiterState> {
    let Some(row) = row else {
        return Ok(LimiterState::default());
    };
    Ok(LimiterState {
        failures: u32_from_sql("failure count", get(&row, 0)?)?,
        window_start_ms: get(&row, 1)?,
        locked_until_ms: get(&row, 2)?,
        lockouts: u32_from_sql("lock-out count", get(&row, 3)?)?,
    })
}

pub(super) fn failures(
    db: &mut Db<'_, impl GenericClient>,
    owner: &str,
    origin: &str,
) -> Result<LimiterState> {
    lock_key(db, "failures", &[owner, origin])?;
    let row = db.opt(
        "SELECT failures, window_start_ms, locked_until_ms, lockouts
         FROM otp_failures WHERE owner = $1 AND origin = $2",
        &[&owner, &origin],
    )?;
    read_state(row)
}

/// [`failures`] without the lock, for a read-only snapshot (which never
/// writes a counter back).
pub(super) fn peek_failures(
    db: &mut Db<'_, impl GenericClient>,
    owner: &str,
    origin: &str,
) -> Result<LimiterState> {
    let row = db.opt(
        "SELECT failures, window_start_ms, locked_until_ms, lockouts
         FROM otp_failures WHERE owner = $1 AND origin = $2",
        &[&owner, &origin],
    )?;
    read_state(row)
}

pub(super) fn put_failures(
    db: &mut Db<'_, impl GenericClient>,
    owner: &str,
    origin: &str,
    state: &LimiterState,
    expires_at_ms: i64,
) -> Result<()> {
    // Already held after `failures`; taken here when it was not read.
    lock_key(db, "failures", &[owner, origin])?;
    if *state == LimiterState::default() {
        db.exec(
            "DELETE FROM otp_failures WHERE owner = $1 AND origin = $2",
            &[&owner, &origin],
        )?;
        return Ok(());
    }
    db.exec(
        "INSERT INTO otp_failures
             (owner, origin, failures, window_start_ms, locked_until_ms, lockouts, expires_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (owner, origin) DO UPDATE SET
             failures = excluded.failures,
             window_start_ms = excluded.window_start_ms,
             locked_until_ms = excluded.locked_until_ms,
             lockouts = excluded.lockouts,
             expires_at_ms = excluded.expires_at_ms",
        &[
            &owner,
            &origin,
            &i64::from(state.failures),
            &state.window_start_ms,
            &state.locked_until_ms,
            &i64::from(state.lockouts),
            &expires_at_ms,
        ],
    )?;
    Ok(())
}

pub(super) fn expire_failures(
    db: &mut Db<'_, impl GenericClient>,
    now_ms: i64,
    batch: usize,
) -> Result<usize> {
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    // SKIP LOCKED: rows another transaction is changing are left for a
    // later round instead of waited for. Relaxed: a deletion lost in a
    // crash of the database leaves counters that read as expired anyway
    // and are deleted again.
    let n = db.exec_relaxed(
        "DELETE FROM otp_failures WHERE (owner, origin) IN (
             SELECT owner, origin FROM otp_failures WHERE expires_at_ms <= $1
             ORDER BY expires_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[&now_ms, &batch],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Forgets every counter of `owner` (all origins): its lock-outs end.
pub(super) fn clear_failures(db: &mut Db<'_, impl GenericClient>, owner: &str) -> Result<usize> {
    let n = db.exec("DELETE FROM otp_failures WHERE owner = $1", &[&owner])?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}
