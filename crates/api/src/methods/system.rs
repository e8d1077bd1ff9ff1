//! `system.*`: what midcli asks of the system it is connected to.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::registry::{Access, Method};
use crate::schema::Schema;
use crate::{Api, ApiError, Session};

/// A time in ms since the epoch as RFC 3339 (UTC, seconds).
fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `system.twofactor_status`: what the state says, in one object.
fn status(api: &Api, session: &Session, (): ()) -> Result<Value, ApiError> {
    let s = api.twofactor().status()?;
    let options = &api.inner.options;
    let mode = match session.origin() {
        service::Origin::Embedded { .. } => "embedded",
        _ => "daemon",
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
    }))
}

pub(super) fn methods() -> Vec<Method> {
    vec![
        Method {
            name: "system.twofactor_status",
            description: "The state at a glance: where it is (embedded or the daemon's, and its \
                          directory), the version, whether 2FA is on and enforced for SSH (and \
                          which PAM services count as SSH), how many accounts have a secret, \
                          pending enrolments, and who is locked out now and until when.",
            cli_description: "Show the 2FA status of this state",
            examples: &["system twofactor_status", "status"],
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
