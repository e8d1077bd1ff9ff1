//! SQLite side of moving a whole state (see [`crate::migrate`]).

use rusqlite::{Connection, TransactionBehavior, params};

use super::{DbResult, SqliteStore};
use crate::Result;
use crate::snapshot::{AuditRowData, ConfigRow, SecretRowData, Snapshot};

/// Every row `sql` gives, each read by `f` (a tuple of the row's columns
/// reads itself: `|r| r.try_into()`).
fn all<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql).db()?;
    let rows = stmt.query_map([], f).db()?;
    rows.collect::<rusqlite::Result<Vec<T>>>().db()
}

impl SqliteStore {
    /// Every row, as stored.
    pub(crate) fn export(&self) -> Result<Snapshot> {
        let mut guard = self.lock();
        let conn = guard.conn()?;
        let tx = conn.transaction().db()?;
        let config = tx
            .query_row(
                "SELECT otp_digits, otp_window, otp_interval, services_ssh, enabled, secret_id,
                        legacy_shared_code
                 FROM twofactor_config WHERE id = 1",
                [],
                |r| {
                    Ok(ConfigRow {
                        digits: r.get(0)?,
                        window: r.get(1)?,
                        interval: r.get(2)?,
                        ssh: r.get(3)?,
                        enabled: r.get(4)?,
                        secret_id: r.get(5)?,
                        legacy_shared_code: r.get(6)?,
                    })
                },
            )
            .db()?;
        let snap = Snapshot {
            config,
            secrets: all(
                &tx,
                "SELECT id, owner, sealed, created_at_ms, last_step FROM otp_secrets ORDER BY id",
                |r| {
                    Ok(SecretRowData {
                        id: r.get(0)?,
                        owner: r.get(1)?,
                        sealed: r.get(2)?,
                        created_at_ms: r.get(3)?,
                        last_step: r.get(4)?,
                    })
                },
            )?,
            users: all(
                &tx,
                "SELECT username, uid, secret_id, otp_digits, otp_interval FROM user_secrets",
                |r| r.try_into(),
            )?,
            pending: all(
                &tx,
                "SELECT username, uid, sealed, otp_digits, otp_interval, expires_at_ms
                 FROM pending_secrets",
                |r| r.try_into(),
            )?,
            recovery: all(
                &tx,
                "SELECT username, uid, code_hash, mac_version FROM recovery_codes",
                |r| r.try_into(),
            )?,
            failures: all(
                &tx,
                "SELECT owner, origin, failures, window_start_ms, locked_until_ms, lockouts,
                        expires_at_ms FROM otp_failures",
                |r| r.try_into(),
            )?,
            audit: all(
                &tx,
                "SELECT id, at_ms, event, outcome, user_name, origin, service, detail,
                        class, occurrences, agg_key
                 FROM audit_log ORDER BY id",
                |r| {
                    Ok(AuditRowData {
                        id: r.get(0)?,
                        at_ms: r.get(1)?,
                        event: r.get(2)?,
                        outcome: r.get(3)?,
                        user: r.get(4)?,
                        origin: r.get(5)?,
                        service: r.get(6)?,
                        detail: r.get(7)?,
                        node: None,
                        class: r.get(8)?,
                        count: r.get(9)?,
                        agg_key: r.get(10)?,
                    })
                },
            )?,
        };
        tx.commit().db()?;
        Ok(snap)
    }

    /// Writes every row of `snap` into this (empty) state, in one
    /// transaction. Audit rows lose their node's name (SQLite has one node).
    pub(crate) fn import(&self, snap: &Snapshot) -> Result<()> {
        let mut guard = self.lock();
        let conn = guard.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        for s in &snap.secrets {
            tx.execute(
                "INSERT INTO otp_secrets (id, owner, sealed, created_at_ms, last_step)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.id, s.owner, s.sealed, s.created_at_ms, s.last_step],
            )
            .db()?;
        }
        let c = &snap.config;
        tx.execute(
            "UPDATE twofactor_config SET otp_digits = ?1, otp_window = ?2, otp_interval = ?3,
                 services_ssh = ?4, enabled = ?5, secret_id = ?6, legacy_shared_code = ?7
             WHERE id = 1",
            params![
                c.digits,
                c.window,
                c.interval,
                c.ssh,
                c.enabled,
                c.secret_id,
                c.legacy_shared_code
            ],
        )
        .db()?;
        for u in &snap.users {
            tx.execute(
                "INSERT INTO user_secrets (username, uid, secret_id, otp_digits, otp_interval)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![u.0, u.1, u.2, u.3, u.4],
            )
            .db()?;
        }
        for p in &snap.pending {
            tx.execute(
                "INSERT INTO pending_secrets
                     (username, uid, sealed, otp_digits, otp_interval, expires_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![p.0, p.1, p.2, p.3, p.4, p.5],
            )
            .db()?;
        }
        for r in &snap.recovery {
            tx.execute(
                "INSERT INTO recovery_codes (username, uid, code_hash, mac_version)
                 VALUES (?1, ?2, ?3, ?4)",
                params![r.0, r.1, r.2, r.3],
            )
            .db()?;
        }
        for f in &snap.failures {
            tx.execute(
                "INSERT INTO otp_failures (owner, origin, failures, window_start_ms,
                     locked_until_ms, lockouts, expires_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![f.0, f.1, f.2, f.3, f.4, f.5, f.6],
            )
            .db()?;
        }
        for a in &snap.audit {
            tx.execute(
                "INSERT INTO audit_log (id, at_ms, event, outcome, user_name, origin, service, detail,
                     class, occurrences, agg_key, account)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    a.id,
                    a.at_ms,
                    a.event,
                    a.outcome,
                    a.user,
                    a.origin,
                    a.service,
                    a.detail,
                    a.class,
                    a.count,
                    a.agg_key,
                    a.account()
                ],
            )
            .db()?;
        }
        super::audit::recount_rows(&tx)?;
        tx.commit().db()?;
        drop(guard);
        // The reader's cache is revalidated by data_version on its next use.
        Ok(())
    }
}
