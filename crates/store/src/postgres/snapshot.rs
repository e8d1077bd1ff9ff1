//! PostgreSQL side of moving a whole state (see [`crate::migrate`]).

use postgres::Row;

use super::{PgResult, PgStore, get};
use crate::Result;
use crate::snapshot::{AuditRowData, ConfigRow, SecretRowData, Snapshot};

fn rows(tx: &mut postgres::Transaction<'_>, sql: &str) -> Result<Vec<Row>> {
    tx.query(sql, &[]).pg()
}

/// A row read as the tuple of its columns' types.
trait Columns: Sized {
    fn read(row: &Row) -> Result<Self>;
}

macro_rules! columns {
    ($($t:ident $i:tt),+) => {
        impl<$($t: for<'a> postgres::types::FromSql<'a>),+> Columns for ($($t,)+) {
            fn read(row: &Row) -> Result<Self> {
                Ok(($(get(row, $i)?,)+))
            }
        }
    };
}
columns!(A 0, B 1, C 2, D 3);
columns!(A 0, B 1, C 2, D 3, E 4);
columns!(A 0, B 1, C 2, D 3, E 4, F 5);
columns!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);

/// Every row `sql` gives, each as a tuple of its columns.
fn all<T: Columns>(tx: &mut postgres::Transaction<'_>, sql: &str) -> Result<Vec<T>> {
    rows(tx, sql)?.iter().map(T::read).collect()
}

/// Every row, as stored, from one snapshot of the database.
pub(crate) fn export(store: &PgStore) -> Result<Snapshot> {
    store.with_client(|client| {
        let mut tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .pg()?;
        let c = tx
            .query_one(
                "SELECT otp_digits, otp_window, otp_interval, services_ssh, enabled, secret_id,
                        legacy_shared_code
                 FROM twofactor_config WHERE id = 1",
                &[],
            )
            .pg()?;
        let mut snap = Snapshot {
            config: ConfigRow {
                digits: get(&c, 0)?,
                window: get(&c, 1)?,
                interval: get(&c, 2)?,
                ssh: get(&c, 3)?,
                enabled: get(&c, 4)?,
                secret_id: get(&c, 5)?,
                legacy_shared_code: get(&c, 6)?,
            },
            ..Snapshot::default()
        };
        for r in rows(
            &mut tx,
            "SELECT id, owner, sealed, created_at_ms, last_step FROM otp_secrets ORDER BY id",
        )? {
            snap.secrets.push(SecretRowData {
                id: get(&r, 0)?,
                owner: get(&r, 1)?,
                sealed: get(&r, 2)?,
                created_at_ms: get(&r, 3)?,
                last_step: get(&r, 4)?,
            });
        }
        snap.users = all(
            &mut tx,
            "SELECT username, uid, secret_id, otp_digits, otp_interval FROM user_secrets",
        )?;
        snap.pending = all(
            &mut tx,
            "SELECT username, uid, sealed, otp_digits, otp_interval, expires_at_ms
             FROM pending_secrets",
        )?;
        snap.recovery = all(
            &mut tx,
            "SELECT username, uid, code_hash, mac_version FROM recovery_codes",
        )?;
        snap.failures = all(
            &mut tx,
            "SELECT owner, origin, failures, window_start_ms, locked_until_ms, lockouts,
                    expires_at_ms FROM otp_failures",
        )?;
        for r in rows(
            &mut tx,
            "SELECT id, at_ms, event, outcome, user_name, origin, service, detail, node,
                    class, occurrences, agg_key
             FROM audit_log ORDER BY id",
        )? {
            snap.audit.push(AuditRowData {
                id: get(&r, 0)?,
                at_ms: get(&r, 1)?,
                event: get(&r, 2)?,
                outcome: get(&r, 3)?,
                user: get(&r, 4)?,
                origin: get(&r, 5)?,
                service: get(&r, 6)?,
                detail: get(&r, 7)?,
                node: get(&r, 8)?,
                class: get(&r, 9)?,
                count: get(&r, 10)?,
                agg_key: get(&r, 11)?,
            });
        }
        tx.commit().pg()?;
        Ok(snap)
    })
}

/// Writes every row of `snap` into this (empty) database in one
/// transaction, then moves the id sequences past the copied ids. Audit rows
/// without a node's name get this node's.
pub(crate) fn import(store: &PgStore, snap: &Snapshot) -> Result<()> {
    let node = store.node().to_owned();
    store.with_client(|client| {
        let mut tx = client.transaction().pg()?;
        for s in &snap.secrets {
            tx.execute(
                "INSERT INTO otp_secrets (id, owner, sealed, created_at_ms, last_step)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&s.id, &s.owner, &s.sealed, &s.created_at_ms, &s.last_step],
            )
            .pg()?;
        }
        let c = &snap.config;
        tx.execute(
            "UPDATE twofactor_config SET otp_digits = $1, otp_window = $2, otp_interval = $3,
                 services_ssh = $4, enabled = $5, secret_id = $6, legacy_shared_code = $7
             WHERE id = 1",
            &[
                &c.digits,
                &c.window,
                &c.interval,
                &c.ssh,
                &c.enabled,
                &c.secret_id,
                &c.legacy_shared_code,
            ],
        )
        .pg()?;
        for u in &snap.users {
            tx.execute(
                "INSERT INTO user_secrets (username, uid, secret_id, otp_digits, otp_interval)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&u.0, &u.1, &u.2, &u.3, &u.4],
            )
            .pg()?;
        }
        for p in &snap.pending {
            tx.execute(
                "INSERT INTO pending_secrets
                     (username, uid, sealed, otp_digits, otp_interval, expires_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&p.0, &p.1, &p.2, &p.3, &p.4, &p.5],
            )
            .pg()?;
        }
        for r in &snap.recovery {
            tx.execute(
                "INSERT INTO recovery_codes (username, uid, code_hash, mac_version)
                 VALUES ($1, $2, $3, $4)",
                &[&r.0, &r.1, &r.2, &r.3],
            )
            .pg()?;
        }
        for f in &snap.failures {
            tx.execute(
                "INSERT INTO otp_failures (owner, origin, failures, window_start_ms,
                     locked_until_ms, lockouts, expires_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&f.0, &f.1, &f.2, &f.3, &f.4, &f.5, &f.6],
            )
            .pg()?;
        }
        for a in &snap.audit {
            let n = a.node.as_deref().unwrap_or(&node);
            tx.execute(
                "INSERT INTO audit_log (id, at_ms, event, outcome, user_name, origin, service,
                     detail, node, class, occurrences, agg_key, account)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                &[
                    &a.id,
                    &a.at_ms,
                    &a.event,
                    &a.outcome,
                    &a.user,
                    &a.origin,
                    &a.service,
                    &a.detail,
                    &n,
                    &a.class,
                    &a.count,
                    &a.agg_key,
                    &a.account(),
                ],
            )
            .pg()?;
        }
        tx.batch_execute(
            "SELECT setval(pg_get_serial_sequence('otp_secrets', 'id'),
                           GREATEST((SELECT max(id) FROM otp_secrets), 0) + 1, false);
             SELECT setval(pg_get_serial_sequence('audit_log', 'id'),
                           GREATEST((SELECT max(id) FROM audit_log), 0) + 1, false);",
        )
        .pg()?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&super::cache::CHANNEL, &format!("{node}\nentry")],
        )
        .pg()?;
        tx.commit().pg()
    })
}
