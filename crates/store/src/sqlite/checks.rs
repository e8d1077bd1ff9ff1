//! Check state: the wrong-code counters per (secret owner, origin), with
//! their expiry. (The `rate_limits` table of an earlier schema is gone
//! since migration 10.)

use rusqlite::{Connection, OptionalExtension, Params, params};

use super::{DbResult, u32_from_sql};
use crate::{LimiterState, Result};

/// Reads one counter row (`failures, window_start_ms, locked_until_ms,
/// lockouts`, in that order) selected by `sql`; the default state when
/// there is none.
fn read_state(conn: &Connection, sql: &str, params: impl Params) -> Result<LimiterState> {
    let row: Option<(i64, i64, i64, i64)> = conn
        .prepare_cached(sql)
        .db()?
        .query_row(params, |r| r.try_into())
        .optional()
        .db()?;
    let Some((failures, window_start_ms, locked_until_ms, lockouts)) = row else {
        return Ok(LimiterState::default());
    };
    Ok(LimiterState {
        failures: u32_from_sql("failure count", failures)?,
        window_start_ms,
        locked_until_ms,
        lockouts: u32_from_sql("lock-out count", lockouts)?,
    })
}

pub(super) fn failures(conn: &Connection, owner: &str, origin: &str) -> Result<LimiterState> {
    read_state(
        conn,
        "SELECT failures, window_start_ms, locked_until_ms, lockouts
             FROM otp_failures WHERE owner = ?1 AND origin = ?2",
        [owner, origin],
    )
}

pub(super) fn put_failures(
    conn: &Connection,
    owner: &str,
    origin: &str,
    state: &LimiterState,
    expires_at_ms: i64,
) -> Result<()> {
    if *state == LimiterState::default() {
        conn.prepare_cached("DELETE FROM otp_failures WHERE owner = ?1 AND origin = ?2")
            .db()?
            .execute([owner, origin])
            .db()?;
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO otp_failures
                 (owner, origin, failures, window_start_ms, locked_until_ms, lockouts,
                  expires_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (owner, origin) DO UPDATE SET
                 failures = excluded.failures,
                 window_start_ms = excluded.window_start_ms,
                 locked_until_ms = excluded.locked_until_ms,
                 lockouts = excluded.lockouts,
                 expires_at_ms = excluded.expires_at_ms",
    )
    .db()?
    .execute(params![
        owner,
        origin,
        state.failures,
        state.window_start_ms,
        state.locked_until_ms,
        state.lockouts,
        expires_at_ms
    ])
    .db()?;
    Ok(())
}

pub(super) fn expire_failures(conn: &Connection, now_ms: i64, batch: usize) -> Result<usize> {
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "DELETE FROM otp_failures WHERE rowid IN (
                 SELECT rowid FROM otp_failures WHERE expires_at_ms <= ?1
                 ORDER BY expires_at_ms LIMIT ?2)",
    )
    .db()?
    .execute(params![now_ms, batch])
    .db()
}

pub(super) fn clear_failures(conn: &Connection, owner: &str) -> Result<usize> {
    conn.prepare_cached("DELETE FROM otp_failures WHERE owner = ?1")
        .db()?
        .execute([owner])
        .db()
}
