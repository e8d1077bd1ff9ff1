//! `system.*`: what midcli asks of the system it is connected to.

use std::time::{Duration, UNIX_EPOCH};

use crate::registry::{Access, Method};
use crate::schema::Schema;
use crate::typed::{InRange, Reply, doc, flat};
use crate::{Api, ApiError, Session, reply};
use service::{Digits, Interval, Window};

/// A time in ms since the epoch as RFC 3339 (UTC, seconds).
fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Whose state `system.twofactor_status` describes.
#[derive(serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// The CLI's own, opened in-process.
    Embedded,
    /// The daemon's.
    Daemon,
}

impl Reply for Mode {
    fn returns() -> Schema {
        Schema::Choice(&["embedded", "daemon"])
    }
}

/// The engine keeping the state.
#[derive(serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Engine {
    /// One node's SQLite file.
    Sqlite,
    /// A PostgreSQL database shared by several nodes.
    Postgresql,
}

impl Reply for Engine {
    fn returns() -> Schema {
        Schema::Choice(&["sqlite", "postgresql"])
    }
}

/// The status's settings, in the ranges of their types.
type DigitsShown = InRange<{ Digits::MIN as i64 }, { Digits::MAX as i64 }>;
type IntervalShown = InRange<{ Interval::MIN as i64 }, { Interval::MAX as i64 }>;
type WindowShown = InRange<{ Window::MIN as i64 }, { Window::MAX as i64 }>;

reply! {
    /// One lock-out in force.
    pub(crate) struct LockedOutNow {
        account: String => doc("Account"),
        origin: String => doc("Address, local, or * for all"),
        until: String => doc("When it ends (RFC 3339, UTC)"),
        retry_after_secs: u64 => doc("Seconds until it ends"),
    }
}

reply! {
    /// What the state says (absent while a shared database does not answer).
    pub(crate) struct StateStatus {
        enabled: bool => doc("2FA is on"),
        ssh: bool => doc("2FA is enforced for SSH"),
        ssh_pam_services: Vec<String> => doc("PAM services that count as SSH"),
        otp_digits: DigitsShown => doc("Digits per code"),
        interval: IntervalShown => doc("Seconds per code"),
        window: WindowShown => doc("Steps accepted either side"),
        root_secret: bool => doc("Root has a secret"),
        accounts_with_secret: u64 => doc("Accounts with a secret"),
        pending_enrolments: Vec<String> => doc("Accounts enrolling"),
        locked_out: Vec<LockedOutNow> => doc("Lock-outs now"),
        legacy_shared_code: bool => doc("Accounts without a secret are asked root's code"),
    }
}

reply! {
    /// Where the state is kept and whether it answers.
    pub(crate) struct DatabaseStatus {
        engine: Engine => doc("SQLite (one node) or PostgreSQL (shared by several nodes)"),
        node: Option<String> => doc("This node's name on a shared database"),
        reachable: bool => doc(
            "The database answers now (when it does not, only mode, version and database \
             are given)"
        ),
    }
}

reply! {
    /// `system.twofactor_status`'s answer.
    pub(crate) struct TwofactorStatus {
        mode: Mode => doc("Whose state"),
        state_dir: Option<String> => doc("Its directory"),
        version: &'static str => doc("Version of the program"),
        #[serde(flatten)]
        state: Option<StateStatus> => flat(),
        database: DatabaseStatus => doc("Where the state is kept and whether it answers"),
    }
}

/// `system.twofactor_status`: what the state says, in one object. With a
/// shared database out of reach it still answers, saying so: where the
/// state is, this node's name, and that the database does not answer.
fn status(api: &Api, session: &Session, (): ()) -> Result<TwofactorStatus, ApiError> {
    let options = &api.inner.options;
    let node = api.twofactor().shared_node();
    let database = |reachable: bool| DatabaseStatus {
        engine: if node.is_some() {
            Engine::Postgresql
        } else {
            Engine::Sqlite
        },
        node: node.map(str::to_owned),
        reachable,
    };
    let answer = |state: Option<StateStatus>, reachable: bool| TwofactorStatus {
        mode: match session.origin() {
            service::Origin::Embedded { .. } => Mode::Embedded,
            _ => Mode::Daemon,
        },
        state_dir: options.state_dir.as_ref().map(|d| d.display().to_string()),
        version: env!("CARGO_PKG_VERSION"),
        state,
        database: database(reachable),
    };
    let s = match api.twofactor().status() {
        Ok(s) => s,
        Err(service::ServiceError::Store(e))
            if e.db_kind() == Some(service::DbErrorKind::Unavailable) =>
        {
            return Ok(answer(None, false));
        }
        Err(e) => return Err(e.into()),
    };
    let locked_out = s
        .locked_out
        .iter()
        .map(|l| LockedOutNow {
            account: l.account.clone(),
            origin: l.origin.clone(),
            until: rfc3339(l.until_ms),
            retry_after_secs: u64::try_from(l.until_ms - s.now_ms)
                .unwrap_or(0)
                .div_ceil(1000),
        })
        .collect();
    let state = StateStatus {
        enabled: s.enabled,
        ssh: s.ssh,
        ssh_pam_services: options.ssh_pam_services.clone(),
        otp_digits: InRange(i64::from(s.otp_digits)),
        interval: InRange(i64::try_from(s.interval).unwrap_or(i64::MAX)),
        window: InRange(i64::from(s.window)),
        root_secret: s.root_secret,
        accounts_with_secret: u64::try_from(s.accounts_with_secret).unwrap_or(u64::MAX),
        pending_enrolments: s.pending_enrolments,
        locked_out,
        legacy_shared_code: s.legacy_shared_code,
    };
    Ok(answer(Some(state), true))
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
            ..Method::base(Access::Admin, false).handles(status)
        },
        Method {
            name: "system.hostname",
            description: "Returns the system's short host name (the one in the provisioning URI and \
                      the CLI prompt).",
            cli_description: "Show the host name",
            inline: true,
            // midcli asks for it to draw its prompt; `tfa` has its own.
            ..Method::base(Access::User, true)
                .handles(|api, _, ()| Ok(api.twofactor().labels().hostname.clone()))
        },
    ]
}
