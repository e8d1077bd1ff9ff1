//! Audit records: writing (with the node's name), pruning, querying.

use postgres::GenericClient;
use postgres::types::ToSql;

use super::{Db, PgResult, get};
use crate::{AuditEntry, AuditQuery, AuditRecord, Result, StoreError};

pub(super) fn insert(
    db: &mut Db<'_, impl GenericClient>,
    r: &AuditRecord,
    node: &str,
) -> Result<()> {
    let detail = r
        .detail
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::database(format!("cannot encode audit detail: {e}")))?;
    db.exec(
        "INSERT INTO audit_log (at_ms, event, outcome, user_name, origin, service, detail, node)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &r.at_ms, &r.event, &r.outcome, &r.user, &r.origin, &r.service, &detail, &node,
        ],
    )?;
    Ok(())
}

pub(super) fn query(client: &mut impl GenericClient, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let mut sql = String::from(
        "SELECT id, at_ms, event, outcome, user_name, origin, service, detail FROM audit_log",
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
        });
    }
    Ok(out)
}

pub(super) fn prune_audit(
    db: &mut Db<'_, impl GenericClient>,
    older_than_ms: i64,
    keep_rows: u64,
    batch: usize,
) -> Result<usize> {
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    let by_age = db.exec(
        "DELETE FROM audit_log WHERE id IN (
             SELECT id FROM audit_log WHERE at_ms < $1 ORDER BY at_ms LIMIT $2
             FOR UPDATE SKIP LOCKED)",
        &[&older_than_ms, &batch],
    )?;
    let mut deleted = i64::try_from(by_age).unwrap_or(i64::MAX);
    let keep = i64::try_from(keep_rows).unwrap_or(i64::MAX);
    let left = batch.saturating_sub(deleted);
    if left > 0 {
        let by_count = db.exec(
            "DELETE FROM audit_log WHERE id IN (
                 SELECT id FROM audit_log
                 WHERE id <= (SELECT max(id) FROM audit_log) - $1
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&keep, &left],
        )?;
        deleted = deleted.saturating_add(i64::try_from(by_count).unwrap_or(i64::MAX));
    }
    Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
}
