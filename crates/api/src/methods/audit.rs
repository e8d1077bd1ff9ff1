//! `audit.query`: the audit trail, newest first.

use serde_json::{Value, json};

use crate::registry::{Access, Method};
use crate::schema::Schema;
use crate::typed::{Described, Dict, InRange, Ranged, doc};
use crate::{Api, ApiError, Session, args, reply};

args! {
    pub(crate) struct AuditFilters {
        event: Option<AuditEvent> => doc(
            "Only this event (otp.check, otp.lockout, twofactor.update, auth.login, ...)",
        )
        .nullable(),
        outcome: Option<AuditOutcome> => doc(
            "Only this outcome (accepted, wrong, replayed, locked_out, success, ...)",
        )
        .nullable(),
        user: Option<String> => doc(
            "Only records about this account (the account acted on, or else the one that acted)",
        )
        .nullable(),
        since: Option<Since> => doc(
            "Only records at or after this time: Unix seconds, an ISO 8601 time \
             (2026-11-27, 2026-11-27T20:00:00Z, 2026-11-27T21:00+01:00) or a duration \
             back from now (90s, 30m, 1h, 7d)",
        ),
        limit: Ranged<1, 10_000> => doc("At most this many records").default(50),
    }
}

/// An `event` filter: one of the events records are written with.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct AuditEvent(String);

impl Described for AuditEvent {
    fn schema() -> Schema {
        Schema::Choice(service::AuditEvent::NAMES)
    }
}

/// An `outcome` filter: one of the outcomes records are written with.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct AuditOutcome(String);

impl Described for AuditOutcome {
    fn schema() -> Schema {
        Schema::Choice(service::AuditOutcome::NAMES)
    }
}

/// A `since` filter as given: checked by [`since_ms`] against the schema,
/// turned into a time when the query runs (a duration counts back from
/// then).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Since(Value);

impl Described for Since {
    fn schema() -> Schema {
        Schema::Rule {
            base: Box::new(Schema::Any),
            rule: |v| since_ms(v, 0).map(|_| ()),
        }
    }
}

/// Largest Unix time in seconds accepted (its milliseconds fit an `i64`).
const MAX_SECS: i64 = i64::MAX / 1000;

/// The instant `since` names, in ms since the epoch; `now_ms` is what a
/// duration counts back from.
fn since_ms(value: &Value, now_ms: i64) -> Result<i64, String> {
    let bad = || {
        "Expected Unix seconds, an ISO 8601 time (2026-11-27T20:00:00Z) or a duration \
         back from now (1h, 7d)"
            .to_owned()
    };
    let secs = match value {
        Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse::<i64>().map_err(|_| bad())?
            } else if let Ok(back) = humantime::parse_duration(s) {
                let back = i64::try_from(back.as_millis()).unwrap_or(i64::MAX);
                return Ok(now_ms.saturating_sub(back).max(0));
            } else {
                return iso8601_ms(s).ok_or_else(bad);
            }
        }
        _ => return Err(bad()),
    };
    if !(0..=MAX_SECS).contains(&secs) {
        return Err(format!("{secs} is not between 0 and {MAX_SECS}"));
    }
    Ok(secs * 1000)
}

/// An ISO 8601 date (midnight UTC) or date and time, in UTC unless it ends
/// with an offset (`Z`, `+01:00`, `-0500`); seconds and fractions optional.
fn iso8601_ms(text: &str) -> Option<i64> {
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, t),
        None => (text, "00:00:00"),
    };
    // The offset: a trailing Z, or a sign after the time of day.
    let (time, offset_secs) = if let Some(t) = time.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (t, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hours: i64 = digits[..2].parse().ok()?;
        let minutes: i64 = digits[2..].parse().ok()?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        (t, sign * (hours * 3600 + minutes * 60))
    } else {
        (time, 0)
    };
    let time = if time.len() == 5 {
        format!("{time}:00")
    } else {
        time.to_owned()
    };
    let at = humantime::parse_rfc3339_weak(&format!("{date}T{time}")).ok()?;
    let ms = i64::try_from(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some(ms.saturating_sub(offset_secs.saturating_mul(1000)).max(0))
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
                      Filter by event, outcome, user, since (Unix seconds, an ISO 8601 time or \
                      a duration such as 1h or 7d) and limit.",
        cli_description: "Show audit records",
        examples: &[
            "audit query",
            "audit query event=otp.check outcome=wrong limit=20",
            "audit query user=alice since=7d",
            "audit query since=2026-11-27T08:00:00Z",
        ],
        ..Method::base(Access::Admin, false).handles(query)
    }]
}

reply! {
    /// One row of `audit.query`.
    pub(crate) struct AuditRow {
        id: InRange<0, { i64::MAX }> => doc("Row number"),
        time: String => doc("When (RFC 3339, UTC)"),
        event: String => doc("What happened"),
        outcome: String => doc("How it ended"),
        user: Option<String> => doc("Whose account"),
        origin: String => doc("Where from"),
        service: Option<String> => doc("PAM service"),
        detail: Option<Dict> => doc("More, by event"),
        count: InRange<1, { i64::MAX }> => doc("How many identical records this row stands for"),
        // Only a shared state names nodes: a single node's rows keep the
        // shape they always had.
        #[serde(skip_serializing_if = "Option::is_none")]
        node: Option<String> => doc(
            "The node that wrote it, on a state shared by several nodes (absent on a \
             state of one node)"
        ),
    }
}

impl AuditRow {
    fn of(e: service::AuditEntry) -> Self {
        let r = e.record;
        Self {
            id: InRange(e.id),
            time: rfc3339(r.at_ms),
            event: r.event,
            outcome: r.outcome,
            user: r.user,
            origin: r.origin,
            service: r.service,
            // The service writes a detail as an object or not at all; a
            // stored null is none, and anything else (never written by
            // this program) is kept under one key rather than dropped.
            detail: match r.detail {
                None | Some(Value::Null) => None,
                Some(Value::Object(map)) => Some(Dict(map)),
                Some(other) => Some(Dict([("value".to_owned(), other)].into_iter().collect())),
            },
            count: InRange(i64::try_from(e.count).unwrap_or(i64::MAX)),
            node: e.node,
        }
    }
}

fn query(api: &Api, _: &Session, args: AuditQueryArgs) -> Result<Vec<AuditRow>, ApiError> {
    let f = args.audit_query;
    let now_ms = api.twofactor().clock().now_ms();
    let since_ms = match f.since {
        // The schema checked it already; a failure here cannot happen.
        Some(Since(v)) => Some(since_ms(&v, now_ms).map_err(|e| {
            ApiError::call(
                crate::wire::Errno::EINVAL,
                format!("audit_query.since: {e}"),
            )
        })?),
        None => None,
    };
    let q = service::AuditQuery {
        event: f.event.map(|e| e.0),
        outcome: f.outcome.map(|o| o.0),
        user: f.user,
        since_ms,
        limit: usize::try_from(f.limit.get()).unwrap_or(usize::MAX),
    };
    let rows = api.twofactor().audit(&q)?;
    Ok(rows.into_iter().map(AuditRow::of).collect())
}

/// `2026-11-27T20:11:29.996Z`: readable in a table, sortable as text.
fn rfc3339(at_ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW_MS: i64 = 1_764_000_000_000;

    #[test]
    fn since_takes_seconds_times_and_durations() {
        let ok = |v: Value| since_ms(&v, NOW_MS).expect("accepted");
        assert_eq!(ok(json!(1_700_000_000)), 1_700_000_000_000);
        assert_eq!(ok(json!("1700000000")), 1_700_000_000_000);
        assert_eq!(ok(json!(0)), 0);
        assert_eq!(ok(json!("1h")), NOW_MS - 3_600_000);
        assert_eq!(ok(json!("7d")), NOW_MS - 7 * 86_400_000);
        assert_eq!(ok(json!("90s")), NOW_MS - 90_000);
        assert_eq!(ok(json!("2026-11-27T20:11:29Z")), 1_795_810_289_000);
        assert_eq!(ok(json!("2026-11-27T20:11:29.500Z")), 1_795_810_289_500);
        assert_eq!(ok(json!("2026-11-27 20:11:29")), 1_795_810_289_000);
        assert_eq!(ok(json!("2026-11-27T21:11:29+01:00")), 1_795_810_289_000);
        assert_eq!(ok(json!("2026-11-27T15:11:29-0500")), 1_795_810_289_000);
        assert_eq!(ok(json!("2026-11-27T20:11Z")), 1_795_810_260_000);
        assert_eq!(ok(json!("2026-11-27")), 1_795_737_600_000);
    }

    /// A row answers its fields in the documented order, inside its
    /// schema, and its detail is described as an object or null.
    #[test]
    fn a_row_is_its_schema() {
        let entry = |detail: Option<Value>| service::AuditEntry {
            id: 7,
            record: store::AuditRecord {
                at_ms: 1_795_810_289_500,
                event: "twofactor.update".into(),
                outcome: "success".into(),
                user: Some("alice".into()),
                origin: "unix:uid=0".into(),
                service: None,
                detail,
            },
            count: 1,
            node: None,
        };
        let row = AuditRow::of(entry(Some(
            json!({"changed": ["enabled"], "secret_generated": true}),
        )));
        let text = serde_json::to_string(&row).expect("serialises");
        assert_eq!(
            text,
            r#"{"id":7,"time":"2026-11-27T20:11:29.500Z","event":"twofactor.update","outcome":"success","user":"alice","origin":"unix:uid=0","service":null,"detail":{"changed":["enabled"],"secret_generated":true},"count":1}"#
        );
        let schema = <AuditRow as crate::typed::Reply>::returns();
        for row in [
            row,
            AuditRow::of(entry(None)),
            AuditRow::of(entry(Some(Value::Null))),
        ] {
            let mut problems = Vec::new();
            schema.validate(
                &serde_json::to_value(&row).expect("json"),
                "row",
                &mut problems,
            );
            assert_eq!(problems, vec![]);
        }
        let Schema::Object(fields) = schema else {
            panic!("a row is an object");
        };
        let detail = fields.iter().find(|f| f.name == "detail").expect("detail");
        assert!(
            matches!(&detail.schema, Schema::AnyOf(s) if matches!(s[..], [Schema::Dict, Schema::Null])),
            "{:?}",
            detail.schema
        );
    }

    #[test]
    fn since_refuses_what_it_cannot_read() {
        for bad in [
            json!("yesterday"),
            json!("2026-13-01"),
            json!("2026-11-27T25:00:00Z"),
            json!("2026-11-27T20:00:00+25:00"),
            json!(""),
            json!(-1),
            json!(1.5),
            json!(true),
            json!(null),
            json!(i64::MAX),
        ] {
            assert!(since_ms(&bad, NOW_MS).is_err(), "{bad} was accepted");
        }
    }
}
