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
    if let Some(agg) = aggregate
        && add_to_aggregate(db, class, agg, 1)?.is_some()
    {
        return Ok(());
    }
    insert_row(db, r, class, aggregate.map(|a| a.key), node)
}

/// Counts `n` more records on one aggregate row of `agg`'s key, and says
/// which; `None` when there is none to count them on yet (fewer than
/// `free` rows of the key in the interval, or every aggregate held by
/// another transaction).
///
/// The rows after the `free` ones of this key in the interval are its
/// aggregates: one of them counts the records. The first that no other
/// transaction holds is taken (SKIP LOCKED), so concurrent writers of one
/// kind do not queue behind each other's commit on a single row; when
/// every aggregate is held (or there is none yet), the caller writes a new
/// row. The rows of one kind in an interval are thus bounded by `free`
/// plus the writers that ran at once, and the counts still add up to every
/// record.
pub(super) fn add_to_aggregate(
    db: &mut Db<'_, impl GenericClient>,
    class: AuditClass,
    agg: &Aggregate<'_>,
    n: i64,
) -> Result<Option<i64>> {
    let free = i64::from(agg.free);
    let row = opt(
        db,
        class,
        "UPDATE audit_log SET occurrences = occurrences + $4
          WHERE id = (SELECT id FROM audit_log
                       WHERE id IN (SELECT id FROM audit_log
                                     WHERE agg_key = $1 AND at_ms >= $2
                                     ORDER BY at_ms, id OFFSET $3 LIMIT 64)
                       ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
          RETURNING id",
        &[&agg.key, &agg.since_ms, &free, &n],
    )?;
    row.map(|row| get(&row, 0)).transpose()
}

/// Counts `n` more records on the aggregate row `id` that
/// [`add_to_aggregate`] chose for `agg` before, if it is still one of that
/// key and interval and no other transaction holds it (one look-up by
/// primary key instead of the search). Whether it did.
pub(super) fn add_to_known_aggregate(
    db: &mut Db<'_, impl GenericClient>,
    id: i64,
    agg: &Aggregate<'_>,
    n: i64,
) -> Result<bool> {
    let counted = db.exec_relaxed(
        "UPDATE audit_log SET occurrences = occurrences + $4
          WHERE id = (SELECT id FROM audit_log
                       WHERE id = $1 AND agg_key = $2 AND at_ms >= $3
                       FOR UPDATE SKIP LOCKED)",
        &[&id, &agg.key, &agg.since_ms, &n],
    )?;
    Ok(counted > 0)
}

/// The aggregate row the audit writer last counted each key on, so that
/// its next batch of that key finds it by primary key. A hint only: a row
/// pruned, moved on to another interval or held by another node's writer
/// is searched for again. Holds a few keys at most.
#[derive(Debug, Default)]
pub(super) struct KnownAggregates(Vec<((String, i64, u32), i64)>);

impl KnownAggregates {
    const MAX: usize = 32;

    fn get(&self, agg: &Aggregate<'_>) -> Option<i64> {
        self.0
            .iter()
            .find(|((k, s, f), _)| k == agg.key && *s == agg.since_ms && *f == agg.free)
            .map(|(_, id)| *id)
    }

    fn put(&mut self, agg: &Aggregate<'_>, id: i64) {
        self.0.retain(|((k, _, _), _)| k != agg.key);
        if self.0.len() >= Self::MAX {
            self.0.remove(0);
        }
        self.0
            .push(((agg.key.to_owned(), agg.since_ms, agg.free), id));
    }

    /// Counts `n` records of `agg` on an aggregate row (the known one, else
    /// one searched for); whether there was one.
    pub(super) fn count(
        &mut self,
        db: &mut Db<'_, impl GenericClient>,
        agg: &Aggregate<'_>,
        n: i64,
    ) -> Result<bool> {
        if let Some(id) = self.get(agg)
            && add_to_known_aggregate(db, id, agg, n)?
        {
            return Ok(true);
        }
        match add_to_aggregate(db, AuditClass::Routine, agg, n)? {
            Some(id) => {
                self.put(agg, id);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Appends one record as a row of its own.
fn insert_row(
    db: &mut Db<'_, impl GenericClient>,
    r: &AuditRecord,
    class: AuditClass,
    agg_key: Option<&str>,
    node: &str,
) -> Result<()> {
    let detail = encode_detail(r)?;
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
            &agg_key,
            &r.account(),
        ],
    )?;
    Ok(())
}

fn encode_detail(r: &AuditRecord) -> Result<Option<String>> {
    r.detail
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::database(format!("cannot encode audit detail: {e}")))
}

/// Writes a batch of routine records (in one transaction the caller
/// holds), with the same outcome as writing them one by one in their
/// order: records of one aggregate key and interval are counted together
/// (one update adding their number, after as many new rows as the key
/// still had free), and the records that are never aggregated go in one
/// multi-row insert.
pub(super) fn insert_routine_batch(
    db: &mut Db<'_, impl GenericClient>,
    records: &[super::batch::Record],
    node: &str,
    known: &mut KnownAggregates,
) -> Result<()> {
    let class = AuditClass::Routine;
    let mut groups: Vec<(Aggregate<'_>, Vec<&AuditRecord>)> = Vec::new();
    let mut plain: Vec<&AuditRecord> = Vec::new();
    for r in records {
        match r.aggregate() {
            None => plain.push(&r.record),
            Some(agg) => match groups.iter_mut().find(|(a, _)| *a == agg) {
                Some((_, members)) => members.push(&r.record),
                None => groups.push((agg, vec![&r.record])),
            },
        }
    }
    for (agg, members) in &groups {
        // Each record that finds no aggregate to count on becomes a row
        // (the key's free rows, then its first aggregate); the rest are
        // counted on an aggregate at once.
        for (i, record) in members.iter().enumerate() {
            let left = i64::try_from(members.len() - i).unwrap_or(i64::MAX);
            if known.count(db, agg, left)? {
                break;
            }
            insert_row(db, record, class, Some(agg.key), node)?;
        }
    }
    if plain.is_empty() {
        return Ok(());
    }
    let mut at_ms = Vec::with_capacity(plain.len());
    let mut event = Vec::with_capacity(plain.len());
    let mut outcome = Vec::with_capacity(plain.len());
    let mut user = Vec::with_capacity(plain.len());
    let mut origin = Vec::with_capacity(plain.len());
    let mut service = Vec::with_capacity(plain.len());
    let mut detail = Vec::with_capacity(plain.len());
    let mut account = Vec::with_capacity(plain.len());
    for r in &plain {
        at_ms.push(r.at_ms);
        event.push(r.event.as_str());
        outcome.push(r.outcome.as_str());
        user.push(r.user.as_deref());
        origin.push(r.origin.as_str());
        service.push(r.service.as_deref());
        detail.push(encode_detail(r)?);
        account.push(r.account());
    }
    exec(
        db,
        class,
        "INSERT INTO audit_log
             (at_ms, event, outcome, user_name, origin, service, detail, account, node, class)
         SELECT t.at_ms, t.event, t.outcome, t.user_name, t.origin, t.service, t.detail,
                t.account, $9, $10
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::text[], $7::text[], $8::text[])
              WITH ORDINALITY AS t(at_ms, event, outcome, user_name, origin, service, detail,
                                   account, n)
         ORDER BY t.n",
        &[
            &at_ms,
            &event,
            &outcome,
            &user,
            &origin,
            &service,
            &detail,
            &account,
            &node,
            &class.as_str(),
        ],
    )?;
    Ok(())
}

/// [`exec`] returning the row.
fn opt(
    db: &mut Db<'_, impl GenericClient>,
    class: AuditClass,
    sql: &'static str,
    p: &[&(dyn ToSql + Sync)],
) -> Result<Option<postgres::Row>> {
    match class {
        AuditClass::Routine => db.opt_relaxed(sql, p),
        AuditClass::Security => db.opt(sql, p),
    }
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
