//! `audit.query`: the audit trail, newest first (SPEC §6.4).

use serde_json::{Value, json};

use crate::registry::{Access, Method};
use crate::schema::Schema;
use crate::typed::{Ranged, doc};
use crate::{Api, ApiError, Session, args};

args! {
    pub(crate) struct AuditFilters {
        event: Option<String> => doc(
            "Only this event (otp.check, otp.lockout, twofactor.update, auth.login, ...)",
        )
        .nullable(),
        outcome: Option<String> => doc(
            "Only this outcome (accepted, wrong, replayed, locked_out, success, ...)",
        )
        .nullable(),
        since: Option<Ranged<0, { i64::MAX / 1000 }>> => doc("Only records at or after this Unix time"),
        limit: Ranged<1, 10_000> => doc("At most this many records").default(50),
    }
}

args! {
    pub(crate) struct AuditQueryArgs {
        audit_query: AuditFilters => doc("Filters").default(json!({})),
    }
}

pub(super) fn methods() -> Vec<Method> {
    vec![Method {
        name: "audit.query",
        description: "Audit records (changes, secret renewals, code checks, logins), newest first. \
                      Filter by event, outcome, since (Unix seconds) and limit.",
        cli_description: "Show audit records",
        examples: &[
            "audit query",
            "audit query event=otp.check outcome=wrong limit=20",
        ],
        returns: || Schema::List(Box::new(Schema::Any)),
        ..Method::base(Access::Admin, false).handles(query)
    }]
}

fn query(api: &Api, _: &Session, args: AuditQueryArgs) -> Result<Value, ApiError> {
    let f = args.audit_query;
    let q = service::AuditQuery {
        event: f.event,
        outcome: f.outcome,
        since_ms: f.since.map(|s| s.get().saturating_mul(1000)),
        limit: usize::try_from(f.limit.get()).unwrap_or(usize::MAX),
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
                    "count": e.count,
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
