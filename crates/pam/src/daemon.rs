//! [`Daemon`] over the blocking client: one short connection per call, so
//! no connection is held open while the user types the code.

use std::time::Duration;

use client::{Client, ClientError};
use serde_json::{Value, json};

use crate::auth::{Daemon, DaemonError, Login, Outcome};

/// `twofactord` on its Unix socket.
#[derive(Debug)]
pub(crate) struct SocketDaemon {
    url: String,
    timeout: Duration,
}

impl SocketDaemon {
    pub(crate) fn new(url: String, timeout: Duration) -> Self {
        Self { url, timeout }
    }

    fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, DaemonError> {
        let mut c = Client::connect(&self.url, self.timeout).map_err(classify)?;
        c.call(method, params).map_err(classify)
    }
}

impl Daemon for SocketDaemon {
    fn pam_required(&self, login: &Login) -> Result<bool, DaemonError> {
        let v = self.call(
            "auth.twofactor.pam_required",
            vec![json!(login.user), json!(login.service)],
        )?;
        // `{"refuse": MESSAGE}`: the login is refused (`require_secret` and
        // no secret of the user's own, SPEC 9.5); the message is shown.
        if let Some(msg) = v.get("refuse").and_then(Value::as_str) {
            return Err(DaemonError::Refused(msg.to_owned()));
        }
        v.as_bool()
            .ok_or_else(|| DaemonError::Failed(format!("pam_required answered {}", kind(&v))))
    }

    fn pam_check(&self, login: &Login, token: &str) -> Result<Outcome, DaemonError> {
        let params = vec![
            json!(login.user),
            json!(login.service),
            json!(login.rhost),
            json!(token),
        ];
        parse_outcome(&self.call("auth.twofactor.pam_check", params)?)
    }
}

/// Not listening or too slow is "unreachable" (`unreachable=` applies); an
/// answer that is an error is a failure whatever the option says.
fn classify(e: ClientError) -> DaemonError {
    match e {
        ClientError::Connect { .. } | ClientError::Timeout(_) | ClientError::Closed(_) => {
            DaemonError::Unreachable(e.to_string())
        }
        other => DaemonError::Failed(other.to_string()),
    }
}

/// `{"outcome": "...", "retry_after_secs"?: N}`; anything unknown fails.
pub(crate) fn parse_outcome(v: &Value) -> Result<Outcome, DaemonError> {
    let outcome = v.get("outcome").and_then(Value::as_str);
    Ok(match outcome {
        Some("accepted") => Outcome::Accepted,
        Some("wrong") => Outcome::Wrong,
        Some("replayed") => Outcome::Replayed,
        Some("locked_out") => Outcome::LockedOut {
            retry_after_secs: v.get("retry_after_secs").and_then(Value::as_u64),
        },
        Some("not_required") => Outcome::NotRequired,
        Some(other) => {
            return Err(DaemonError::Failed(format!(
                "pam_check answered outcome {other:?}"
            )));
        }
        None => {
            return Err(DaemonError::Failed(format!(
                "pam_check answered {}",
                kind(v)
            )));
        }
    })
}

/// A value's JSON type, for messages (values themselves are not logged).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object without a known outcome",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        let p = |v: Value| parse_outcome(&v).ok();
        assert_eq!(p(json!({"outcome": "accepted"})), Some(Outcome::Accepted));
        assert_eq!(p(json!({"outcome": "wrong"})), Some(Outcome::Wrong));
        assert_eq!(p(json!({"outcome": "replayed"})), Some(Outcome::Replayed));
        assert_eq!(
            p(json!({"outcome": "not_required"})),
            Some(Outcome::NotRequired)
        );
        assert_eq!(
            p(json!({"outcome": "locked_out", "retry_after_secs": 30})),
            Some(Outcome::LockedOut {
                retry_after_secs: Some(30)
            })
        );
        assert_eq!(
            p(json!({"outcome": "locked_out"})),
            Some(Outcome::LockedOut {
                retry_after_secs: None
            })
        );
        for bad in [
            json!({"outcome": "ACCEPTED"}),
            json!({}),
            json!(true),
            json!(null),
            json!("accepted"),
        ] {
            assert!(
                matches!(parse_outcome(&bad), Err(DaemonError::Failed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn no_daemon_is_unreachable_within_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("ws+unix://{}", dir.path().join("none.sock").display());
        let d = SocketDaemon::new(url, Duration::from_secs(1));
        let login = Login {
            user: "u".into(),
            service: "sshd".into(),
            rhost: None,
        };
        let started = std::time::Instant::now();
        assert!(matches!(
            d.pam_required(&login),
            Err(DaemonError::Unreachable(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
