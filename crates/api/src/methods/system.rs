//! `system.*`: what midcli asks of the system it is connected to.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::registry::{Access, Method};
use crate::schema::{Field, Schema};
use crate::typed::Described;
use crate::{Api, ApiError, Session};
use service::{Digits, Interval, Window};

/// A time in ms since the epoch as RFC 3339 (UTC, seconds).
fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `system.twofactor_status`'s answer.
fn status_schema() -> Schema {
    let flag = |name, doc| Field::new(name, Schema::Bool, doc);
    let count = |name, doc| {
        Field::new(
            name,
            Schema::Int {
                min: 0,
                max: i64::MAX,
            },
            doc,
        )
    };
    let text = |name, doc| Field::new(name, Schema::Str { nullable: false }, doc);
    let names = || Schema::List(Box::new(Schema::Str { nullable: false }));
    Schema::Object(vec![
        Field::new(
            "mode",
            Schema::Choice(&["embedded", "daemon"]),
            "Whose state",
        ),
        Field::new("state_dir", Schema::Str { nullable: true }, "Its directory"),
        text("version", "Version of the program"),
        flag("enabled", "2FA is on"),
        flag("ssh", "2FA is enforced for SSH"),
        Field::new(
            "ssh_pam_services",
            names(),
            "PAM services that count as SSH",
        ),
        Field::new("otp_digits", Digits::schema(), "Digits per code"),
        Field::new("interval", Interval::schema(), "Seconds per code"),
        Field::new("window", Window::schema(), "Steps accepted either side"),
        flag("root_secret", "Root has a secret"),
        count("accounts_with_secret", "Accounts with a secret"),
        Field::new("pending_enrolments", names(), "Accounts enrolling"),
        Field::new(
            "locked_out",
            Schema::List(Box::new(Schema::Object(vec![
                text("account", "Account"),
                text("origin", "Address, local, or * for all"),
                text("until", "When it ends (RFC 3339, UTC)"),
                count("retry_after_secs", "Seconds until it ends"),
            ]))),
            "Lock-outs now",
        ),
        flag(
            "legacy_shared_code",
            "Accounts without a secret are asked root's code",
        ),
        Field::new(
            "database",
            Schema::Object(vec![
                Field::new(
                    "engine",
                    Schema::Choice(&["sqlite", "postgresql"]),
                    "SQLite (one node) or PostgreSQL (shared by several nodes)",
                ),
                Field::new(
                    "node",
                    Schema::Str { nullable: true },
                    "This node's name on a shared database",
                ),
                flag(
                    "reachable",
                    "The database answers now (when it does not, only mode, version \
                     and database are given)",
                ),
            ]),
            "Where the state is kept and whether it answers",
        ),
    ])
}

/// `system.twofactor_status`: what the state says, in one object. With a
/// shared database out of reach it still answers, saying so: where the
/// state is, this node's name, and that the database does not answer.
fn status(api: &Api, session: &Session, (): ()) -> Result<Value, ApiError> {
    let options = &api.inner.options;
    let mode = match session.origin() {
        service::Origin::Embedded { .. } => "embedded",
        _ => "daemon",
    };
    // Reachable: the status below was read from it.
    let node = api.twofactor().shared_node();
    let database = |reachable: bool| {
        json!({
            "engine": if node.is_some() { "postgresql" } else { "sqlite" },
            "node": node,
            "reachable": reachable,
        })
    };
    let s = match api.twofactor().status() {
        Ok(s) => s,
        Err(service::ServiceError::Store(e))
            if e.db_kind() == Some(service::DbErrorKind::Unavailable) =>
        {
            return Ok(json!({
                "mode": mode,
                "state_dir": options.state_dir.as_ref().map(|d| d.display().to_string()),
                "version": env!("CARGO_PKG_VERSION"),
                "database": database(false),
            }));
        }
        Err(e) => return Err(e.into()),
    };
    let locked: Vec<Value> = s
        .locked_out
        .iter()
        .map(|l| {
            json!({
                "account": l.account,
                "origin": l.origin,
                "until": rfc3339(l.until_ms),
                "retry_after_secs": u64::try_from(l.until_ms - s.now_ms).unwrap_or(0).div_ceil(1000),
            })
        })
        .collect();
    Ok(json!({
        "mode": mode,
        "state_dir": options.state_dir.as_ref().map(|d| d.display().to_string()),
        "version": env!("CARGO_PKG_VERSION"),
        "enabled": s.enabled,
        "ssh": s.ssh,
        "ssh_pam_services": options.ssh_pam_services,
        "otp_digits": s.otp_digits,
        "interval": s.interval,
        "window": s.window,
        "root_secret": s.root_secret,
        "accounts_with_secret": s.accounts_with_secret,
        "pending_enrolments": s.pending_enrolments,
        "locked_out": locked,
        "legacy_shared_code": s.legacy_shared_code,
        "database": database(true),
    }))
}

pub(super) fn methods() -> Vec<Method> {
    vec![
        Method {
            name: "system.twofactor_status",
            description: "The state at a glance: where it is (embedded or the daemon's, and its \
                          directory), the version, whether 2FA is on and enforced for SSH (and \
                          which PAM services count as SSH), how many accounts have a secret, \
                          pending enrolments, who is locked out now and until when, and the \
                          database: SQLite, or PostgreSQL with this node's name, and whether \
                          it answers.",
            cli_description: "Show the 2FA status of this state",
            examples: &["system twofactor_status", "status"],
            returns: status_schema,
            ..Method::base(Access::Admin, false).handles(status)
        },
        Method {
            name: "system.hostname",
            description: "Returns the system's short host name (the one in the provisioning URI and \
                      the CLI prompt).",
            cli_description: "Show the host name",
            inline: true,
            returns: || Schema::Str { nullable: false },
            // midcli asks for it to draw its prompt; `tfa` has its own.
            ..Method::base(Access::User, true)
                .handles(|api, _, ()| Ok(json!(api.twofactor().labels().hostname)))
        },
    ]
}
