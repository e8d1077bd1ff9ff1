//! `audit.query`: the audit trail, newest first (SPEC §6.4).

use serde_json::{Value, json};

use super::arg;
use crate::registry::{Access, Method};
use crate::schema::{Field, Schema};
use crate::{Api, ApiError, Session};

pub(super) fn methods() -> Vec<Method> {
    vec![Method {
        name: "audit.query",
        description: "Audit records (changes, secret renewals, code checks, logins), newest first. \
                      Filter by event, outcome, since (Unix seconds) and limit.",
        cli_description: "Show audit records",
        examples: &["audit query", "audit query event=otp.check outcome=wrong limit=20"],
        accepts: vec![
            Field::new(
                "audit_query",
                Schema::Object(vec![
                    Field::new("event", Schema::Str { nullable: true }, "Only this event (otp.check, otp.lockout, twofactor.update, auth.login, ...)"),
                    Field::new("outcome", Schema::Str { nullable: true }, "Only this outcome (accepted, wrong, replayed, locked_out, success, ...)"),
                    Field::new("since", Schema::Int { min: 0, max: i64::MAX / 1000 }, "Only records at or after this Unix time"),
                    Field::new("limit", Schema::Int { min: 1, max: 10_000 }, "At most this many records").default(json!(50)),
                ]),
                "Filters",
            )
            .default(json!({})),
        ],
        returns: Schema::List(Box::new(Schema::Any)),
        handler: query,
        ..Method::base(Access::Admin, false)
    }]
}

fn query(api: &Api, _: &Session, args: Vec<Value>) -> Result<Value, ApiError> {
    let f = arg(&args, 0);
    let text = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_owned);
    let q = store::AuditQuery {
        event: text("event"),
        outcome: text("outcome"),
        since_ms: f
            .get("since")
            .and_then(Value::as_i64)
            .map(|s| s.saturating_mul(1000)),
        limit: f
            .get("limit")
            .and_then(Value::as_u64)
            .map_or(50, |n| usize::try_from(n).unwrap_or(50)),
    };
    let rows = api.twofactor().audit(&q)?;
    Ok(Value::Array(
        rows.into_iter()
            .map(|e| {
                let r = e.record;
                json!({
                    "id": e.id,
                    "time": rfc3339(r.at_ms),
                    "event": r.event,
                    "outcome": r.outcome,
                    "user": r.user,
                    "origin": r.origin,
                    "service": r.service,
                    "detail": r.detail,
                })
            })
            .collect(),
    ))
}

/// `2026-11-27T20:11:29.996Z`: readable in a table, sortable as text.
fn rfc3339(at_ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}
