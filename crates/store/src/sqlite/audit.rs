//! Audit records: writing, pruning by age and count, querying newest first.

use rusqlite::{Connection, OptionalExtension, ToSql, params};

use super::DbResult;
use crate::{Aggregate, AuditClass, AuditEntry, AuditQuery, AuditRecord, Result, StoreError};

/// The `audit.query` statement for `q` and its arguments, but for the
/// final `LIMIT ?`.
pub(super) fn audit_select(q: &AuditQuery) -> (String, Vec<&dyn ToSql>) {
    let mut sql = String::from(
        "SELECT id, at_ms, event, outcome, user_name, origin, service, detail, occurrences \
         FROM audit_log",
    );
    let mut args: Vec<&dyn ToSql> = Vec::new();
    let mut conditions = Vec::new();
    if let Some(event) = &q.event {
        conditions.push("event = ?");
        args.push(event);
    }
    if let Some(outcome) = &q.outcome {
        conditions.push("outcome = ?");
        args.push(outcome);
    }
    if let Some(user) = &q.user {
        conditions.push("account = ?");
        args.push(user);
    }
    if let Some(since) = &q.since_ms {
        conditions.push("at_ms >= ?");
        args.push(since);
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    // Newest first on the time index (or the event/outcome/account index, whose
    // entries are ordered by time within each value): no sort, no scan.
    sql.push_str(" ORDER BY at_ms DESC, id DESC LIMIT ?");
    (sql, args)
}

/// `audit.query`: the records `q` asks for, newest first.
pub(super) fn query(conn: &Connection, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let (sql, mut args) = audit_select(q);
    args.push(&limit);

    let mut stmt = conn.prepare_cached(&sql).db()?;
    let rows = stmt
        .query_map(args.as_slice(), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, i64>(8)?,
            ))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (id, at_ms, event, outcome, user, origin, service, detail, count) = row.db()?;
        let count = u64::try_from(count)
            .map_err(|_| StoreError::Corrupt(format!("audit record {id} count {count}")))?;
        let detail = detail
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("audit record {id} detail: {e}")))?;
        out.push(AuditEntry {
            id,
            record: AuditRecord {
                at_ms,
                event,
                outcome,
                user,
                origin,
                service,
                detail,
            },
            count,
            node: None,
        });
    }
    Ok(out)
}

pub(super) fn prune_audit(
    conn: &Connection,
    class: AuditClass,
    older_than_ms: i64,
    keep_rows: u64,
    batch: usize,
) -> Result<usize> {
    let class = class.as_str();
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    // By age: the class's oldest first, on its time index.
    let mut deleted = conn
        .prepare_cached(
            "DELETE FROM audit_log WHERE id IN (
                 SELECT id FROM audit_log WHERE class = ?1 AND at_ms < ?2
                 ORDER BY at_ms LIMIT ?3)",
        )
        .db()?
        .execute(params![class, older_than_ms, batch])
        .db()?;
    count_rows(conn, class, -count_of(deleted))?;
    // By count: each class's row count is kept beside it, so the excess is
    // one look-up, and the oldest of the class come first on its index.
    let keep = i64::try_from(keep_rows).unwrap_or(i64::MAX);
    let rows: i64 = conn
        .prepare_cached("SELECT row_count FROM audit_class_rows WHERE class = ?1")
        .db()?
        .query_row([class], |r| r.get(0))
        .db()?;
    let left = batch
        .saturating_sub(count_of(deleted))
        .min(rows.saturating_sub(keep));
    if left > 0 {
        let by_count = conn
            .prepare_cached(
                "DELETE FROM audit_log WHERE id IN (
                     SELECT id FROM audit_log WHERE class = ?1 ORDER BY id LIMIT ?2)",
            )
            .db()?
            .execute(params![class, left])
            .db()?;
        count_rows(conn, class, -count_of(by_count))?;
        deleted += by_count;
    }
    Ok(deleted)
}

/// A number of rows as SQL's integer.
fn count_of(rows: usize) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}

/// Adds `change` to `class`'s row count: every statement that adds or
/// deletes audit rows does, in its transaction (`audit_class_rows`).
fn count_rows(conn: &Connection, class: &str, change: i64) -> Result<()> {
    if change != 0 {
        conn.prepare_cached(
            "UPDATE audit_class_rows SET row_count = row_count + ?2 WHERE class = ?1",
        )
        .db()?
        .execute(params![class, change])
        .db()?;
    }
    Ok(())
}

/// Sets every class's row count from the rows there are (after rows were
/// written in bulk, as an import does).
pub(super) fn recount_rows(conn: &Connection) -> Result<()> {
    conn.execute(
        "UPDATE audit_class_rows
            SET row_count = (SELECT count(*) FROM audit_log
                              WHERE audit_log.class = audit_class_rows.class)",
        [],
    )
    .db()?;
    Ok(())
}

pub(super) fn insert(
    conn: &Connection,
    r: &AuditRecord,
    class: AuditClass,
    aggregate: Option<&Aggregate<'_>>,
) -> Result<()> {
    if let Some(agg) = aggregate {
        // The row after the `free` ones of this key in the interval is the
        // aggregate: when it exists, it counts this record too.
        let aggregate_row: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM audit_log WHERE agg_key = ?1 AND at_ms >= ?2
                 ORDER BY at_ms, id LIMIT 1 OFFSET ?3",
            )
            .db()?
            .query_row(params![agg.key, agg.since_ms, agg.free], |r| r.get(0))
            .optional()
            .db()?;
        if let Some(id) = aggregate_row {
            conn.prepare_cached("UPDATE audit_log SET occurrences = occurrences + 1 WHERE id = ?1")
                .db()?
                .execute([id])
                .db()?;
            return Ok(());
        }
    }
    let detail = r
        .detail
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::database(format!("cannot encode audit detail: {e}")))?;
    let account = r.account();
    conn.prepare_cached(
        "INSERT INTO audit_log
                 (at_ms, event, outcome, user_name, origin, service, detail, class, agg_key,
                  account)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .db()?
    .execute(params![
        r.at_ms,
        r.event,
        r.outcome,
        r.user,
        r.origin,
        r.service,
        detail,
        class.as_str(),
        aggregate.map(|a| a.key),
        account
    ])
    .db()?;
    count_rows(conn, class.as_str(), 1)
}
