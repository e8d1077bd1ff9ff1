//! [`Daemon`] over the blocking client: one short connection per call, so
//! no connection is held open while the user types the code.

use std::time::{Duration, Instant};

use client::wire::PamRequired;
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

    /// One call on a fresh connection. `timeout=` bounds the whole exchange
    /// (connect, handshake, request, answer) with one deadline, however the
    /// daemon paces its bytes. A request that carries the code typed goes
    /// through the client's wiping call: its text is written into a buffer
    /// wiped once sent, and the parameters' strings are wiped before they
    /// are dropped.
    fn call(
        &self,
        method: &str,
        params: Vec<Value>,
        carries: Carries,
    ) -> Result<Value, DaemonError> {
        let now = Instant::now();
        // `timeout=` is at most 120 s, so this always fits; `now` (give up at
        // once, fail closed) would be the answer if it did not.
        let deadline = now.checked_add(self.timeout).unwrap_or(now);
        let mut c = Client::connect_until(&self.url, deadline).map_err(classify)?;
        match carries {
            Carries::Code => c.call_secret(method, params),
            Carries::Nothing => c.call(method, params),
        }
        .map_err(classify)
    }
}

/// Whether a request carries the code the user typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carries {
    Nothing,
    Code,
}

impl Daemon for SocketDaemon {
    fn pam_required(&self, login: &Login) -> Result<bool, DaemonError> {
        let v = self.call(
            "auth.twofactor.pam_required",
            vec![json!(login.user), json!(login.service)],
            Carries::Nothing,
        )?;
        parse_required(v)
    }

    fn pam_check(&self, login: &Login, token: &str) -> Result<Outcome, DaemonError> {
        let params = vec![
            json!(login.user),
            json!(login.service),
            json!(login.rhost),
            json!(token),
        ];
        parse_outcome(&self.call("auth.twofactor.pam_check", params, Carries::Code)?)
    }
}

/// `true`, `false`, or `{"refuse": MESSAGE}`: the login is refused
/// (`require_secret` and no secret of the user's own) and the
/// message is shown. Anything else fails.
fn parse_required(v: Value) -> Result<bool, DaemonError> {
    let kind = kind(&v);
    match serde_json::from_value(v) {
        Ok(PamRequired::Code(required)) => Ok(required),
        Ok(PamRequired::Refuse { refuse }) => Err(DaemonError::Refused(refuse)),
        Err(_) => Err(DaemonError::Failed(format!("pam_required answered {kind}"))),
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

/// The verdict in the text of a response to `auth.twofactor.pam_check`:
/// the JSON-RPC envelope read as the client reads it, then the outcome.
pub(crate) fn parse_check_reply(text: &str) -> Result<Outcome, DaemonError> {
    let answer: Value = serde_json::from_str(text)
        .map_err(|e| DaemonError::Failed(format!("the daemon sent invalid JSON: {e}")))?;
    let result = client::answer_to_result(answer).map_err(classify)?;
    parse_outcome(&result)
}

/// `{"outcome": "...", ...}` as `wire` defines it; anything else fails.
pub(crate) fn parse_outcome(v: &Value) -> Result<Outcome, DaemonError> {
    serde_json::from_value(v.clone()).map_err(|_| match v.get("outcome").and_then(Value::as_str) {
        Some(other) => DaemonError::Failed(format!("pam_check answered outcome {other:?}")),
        None => DaemonError::Failed(format!("pam_check answered {}", kind(v))),
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
    fn an_untrusted_daemon_fails_never_unreachable() {
        // Failed, never Unreachable: `unreachable=ignore` must not let an
        // impostor through.
        for (peer, own) in [(Some(65534), 0), (Some(1001), 1000), (None, 0)] {
            let e = client::trusted_unix_server(std::path::Path::new("/run/t.sock"), peer, own)
                .expect_err("refused");
            assert!(
                matches!(classify(e), DaemonError::Failed(_)),
                "{peer:?} for {own}"
            );
        }
    }

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
        assert_eq!(
            p(json!({"outcome": "refused", "message": "set one up"})),
            Some(Outcome::Refused {
                message: "set one up".into()
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
    fn required_is_a_boolean_or_a_refusal() {
        assert_eq!(parse_required(json!(true)).ok(), Some(true));
        assert_eq!(parse_required(json!(false)).ok(), Some(false));
        assert!(matches!(
            parse_required(json!({"refuse": "set one up"})),
            Err(DaemonError::Refused(m)) if m == "set one up"
        ));
        for bad in [
            json!(null),
            json!("true"),
            json!(1),
            json!({"refuse": 1}),
            json!({}),
        ] {
            assert!(
                matches!(parse_required(bad.clone()), Err(DaemonError::Failed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn replies_are_read_as_the_client_reads_them() {
        assert_eq!(
            parse_check_reply(r#"{"jsonrpc":"2.0","id":1,"result":{"outcome":"accepted"}}"#).ok(),
            Some(Outcome::Accepted)
        );
        for bad in [
            "",
            "{",
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":"accepted"}"#,
            // An error wins over a result that says accepted.
            r#"{"jsonrpc":"2.0","id":1,"result":{"outcome":"accepted"},"error":{"code":-32001,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":"accepted"}"#,
        ] {
            assert!(
                matches!(parse_check_reply(bad), Err(DaemonError::Failed(_))),
                "{bad}"
            );
        }
    }

    /// A daemon that sends its bytes one at a time, 100 ms apart: during
    /// the handshake (`handshake`), or in the answer to the call.
    fn dripping_daemon(
        handshake: bool,
    ) -> (tempfile::TempDir, String, std::thread::JoinHandle<()>) {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drip.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut out = Vec::new();
            if handshake {
                let _ = stream.read(&mut [0u8; 1024]);
                out.extend(b"HTTP/1.1 101 Switching Protocols\r\n");
                out.extend(std::iter::repeat_n(b'x', 600));
            } else {
                let Ok(mut ws) = tungstenite::accept(&stream) else {
                    return;
                };
                let _ = ws.read();
                // A 600-byte text frame that starts like an answer.
                out.extend([0x81, 126, 0x02, 0x58]);
                out.extend(br#"{"jsonrpc":"2.0","id":1,"result":{"outcome":"accepted"}"#);
                out.extend(std::iter::repeat_n(b' ', 600));
            }
            for b in out {
                if stream.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let url = format!("ws+unix://{}", path.display());
        (dir, url, h)
    }

    /// `timeout=` bounds the whole exchange: a daemon dripping bytes used to
    /// hold a login for a minute and more (the time-out applied per read).
    /// Unreachable is what `unreachable=` decides on, and the authenticate
    /// tests show that it fails closed by default.
    #[test]
    fn a_dripping_daemon_is_unreachable_at_the_timeout() {
        let login = Login {
            user: "u".into(),
            service: "sshd".into(),
            rhost: None,
        };
        let timeout = Duration::from_secs(1);
        for handshake in [true, false] {
            let (_dir, url, h) = dripping_daemon(handshake);
            let d = SocketDaemon::new(url, timeout);
            let started = Instant::now();
            let got = d.pam_check(&login, "123456");
            let took = started.elapsed();
            assert!(
                matches!(got, Err(DaemonError::Unreachable(_))),
                "handshake {handshake}: {got:?}"
            );
            // The time-out is the behaviour, so real time is measured:
            // never before it, and well before the minute of dripping a
            // per-read time-out would allow (generous: shared cores).
            assert!(
                took >= timeout && took < timeout + Duration::from_secs(20),
                "handshake {handshake}: took {took:?}"
            );
            h.join().unwrap();
        }
    }

    #[test]
    fn no_daemon_is_unreachable_within_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("ws+unix://{}", dir.path().join("none.sock").display());
        // A time-out far longer than any machine's hiccup: a missing socket
        // must be unreachable at once, not when the time-out runs out.
        let timeout = Duration::from_secs(120);
        let d = SocketDaemon::new(url, timeout);
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
        let took = started.elapsed();
        assert!(took < timeout / 4, "took {took:?}");
    }
}
