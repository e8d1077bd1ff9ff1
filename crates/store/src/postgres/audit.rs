//! Audit records: writing (with the node's name), pruning, querying.

use postgres::GenericClient;
use postgres::types::ToSql;

use super::{Db, PgResult, get};
use crate::{Aggregate, AuditClass, AuditEntry, AuditQuery, AuditRecord, Result, StoreError};

pub(super) fn insert(
    db: &mut Db<'_, impl GenericClient>,
    r: &AuditRecord,
    class: AuditClass,
    aggregate: Option<&Aggregate<'_>>,
    node: &str,
) -> Result<()> {
    if let Some(agg) = aggregate {
        // The rows after the `free` ones of this key in the interval are
        // its aggregates: one of them counts this record too. The first
        // that no other transaction holds is taken (SKIP LOCKED), so
        // concurrent writers of one kind do not queue behind each other's
        // commit on a single row; when every aggregate is held (or there is
        // none yet), a new row is written. The rows of one kind in an
        // interval are thus bounded by `free` plus the writers that ran at
        // once, and the counts still add up to every record.
        let free = i64::from(agg.free);
        let counted = exec(
            db,
            class,
            "UPDATE audit_log SET occurrences = occurrences + 1
              WHERE id = (SELECT id FROM audit_log
                           WHERE id IN (SELECT id FROM audit_log
                                         WHERE agg_key = $1 AND at_ms >= $2
                                         ORDER BY at_ms, id OFFSET $3 LIMIT 64)
                           ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)",
            &[&agg.key, &agg.since_ms, &free],
        )?;
        if counted > 0 {
            return Ok(());
        }
    }
    let detail = r
        .detail
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::database(format!("cannot encode audit detail: {e}")))?;
    exec(
        db,
        class,
        "INSERT INTO audit_log
             (at_ms, event, outcome, user_name, origin, service, detail, node, class, agg_key,
              account)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &r.at_ms,
            &r.event,
            &r.outcome,
            &r.user,
            &r.origin,
            &r.service,
            &detail,
            &node,
            &class.as_str(),
            &aggregate.map(|a| a.key),
            &r.account(),
        ],
    )?;
    Ok(())
}

/// A write of a record of `class`: a routine record may be lost in a crash
/// of the database (it does not make the commit durable), a security
/// record may not.
fn exec(
    db: &mut Db<'_, impl GenericClient>,
    class: AuditClass,
    sql: &'static str,
    p: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    match class {
        AuditClass::Routine => db.exec_relaxed(sql, p),
        AuditClass::Security => db.exec(sql, p),
    }
}

pub(super) fn query(client: &mut impl GenericClient, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let mut sql = String::from(
        "SELECT id, at_ms, event, outcome, user_name, origin, service, detail, occurrences, \
         node FROM audit_log",
    );
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    let mut conditions = Vec::new();
    if let Some(event) = &q.event {
        args.push(event);
        conditions.push(format!("event = ${}", args.len()));
    }
    if let Some(outcome) = &q.outcome {
        args.push(outcome);
        conditions.push(format!("outcome = ${}", args.len()));
    }
    if let Some(since) = &q.since_ms {
        args.push(since);
        conditions.push(format!("at_ms >= ${}", args.len()));
    }
    if let Some(user) = &q.user {
        args.push(user);
        conditions.push(format!("account = ${}", args.len()));
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    args.push(&limit);
    sql.push_str(&format!(
        " ORDER BY at_ms DESC, id DESC LIMIT ${}",
        args.len()
    ));
    let rows = client.query(sql.as_str(), &args).pg()?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = get(&row, 0)?;
        let detail: Option<String> = get(&row, 7)?;
        let detail = detail
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("audit record {id} detail: {e}")))?;
        let count: i64 = get(&row, 8)?;
        let count = u64::try_from(count)
            .map_err(|_| StoreError::Corrupt(format!("audit record {id} count {count}")))?;
        out.push(AuditEntry {
            id,
            record: AuditRecord {
                at_ms: get(&row, 1)?,
                event: get(&row, 2)?,
                outcome: get(&row, 3)?,
                user: get(&row, 4)?,
                origin: get(&row, 5)?,
                service: get(&row, 6)?,
                detail,
            },
            count,
            node: get(&row, 9)?,
        });
    }
    Ok(out)
}

pub(super) fn prune_audit(
    db: &mut Db<'_, impl GenericClient>,
    class: AuditClass,
    older_than_ms: i64,
    keep_rows: u64,
    batch: usize,
) -> Result<usize> {
    let class = class.as_str();
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    // By age: the class's oldest first, on its time index; in the same
    // statement (one round trip), the class's rows are counted on its
    // (class, id) index. The count sees the rows as they were before the
    // deletion, so those deleted by age are taken off it. Pruning is
    // repeated (the service prunes once a period), so it may be lost in a
    // crash of the database (relaxed).
    let row = db
        .opt_relaxed(
            "WITH aged AS (
                 DELETE FROM audit_log WHERE id IN (
                     SELECT id FROM audit_log WHERE class = $1 AND at_ms < $2
                     ORDER BY at_ms LIMIT $3 FOR UPDATE SKIP LOCKED)
                 RETURNING 1)
             SELECT (SELECT count(*) FROM aged),
                    (SELECT count(*) FROM audit_log WHERE class = $1)",
            &[&class, &older_than_ms, &batch],
        )?
        .ok_or_else(|| StoreError::database("count returned no row"))?;
    let mut deleted: i64 = get(&row, 0)?;
    let before: i64 = get(&row, 1)?;
    let rows = before.saturating_sub(deleted);
    // By count: the class's oldest go first. Only this class's rows count.
    let keep = i64::try_from(keep_rows).unwrap_or(i64::MAX);
    let left = batch.saturating_sub(deleted).min(rows.saturating_sub(keep));
    if left > 0 {
        let by_count = db.exec_relaxed(
            "DELETE FROM audit_log WHERE id IN (
                 SELECT id FROM audit_log WHERE class = $1
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&class, &left],
        )?;
        deleted = deleted.saturating_add(i64::try_from(by_count).unwrap_or(i64::MAX));
    }
    Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
}
