//! Request envelopes, validated with the messages TrueNAS sends, and the
//! shapes of responses and notifications.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{ErrorCode, RpcError};
use crate::wiping::WipingBuffer;

/// A request id: string, number or null, kept as the JSON text that was
/// sent so that it is echoed exactly. A number that is not a 64-bit integer
/// (`1.5`, `1e300`, `18446744073709551616`) would change if it went through
/// an `f64`; its text is taken verbatim from the message. `None` in
/// [`Request::id`] means the member was absent: a notification, run but
/// never answered.
#[derive(Clone)]
pub struct Id(Box<RawValue>);

impl Id {
    /// The null id (answers to messages whose id is unknown).
    pub fn null() -> Self {
        Self::from(&Value::Null)
    }

    /// The id's JSON text, as it will be sent.
    pub fn raw(&self) -> &str {
        self.0.get()
    }

    /// The id as a JSON value (a number beyond `f64`'s precision is
    /// rounded: use [`Id::raw`] to see it as sent).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.raw()).unwrap_or(Value::Null)
    }

    /// Takes JSON text that is known to be one valid JSON value.
    fn from_raw(raw: &RawValue) -> Self {
        Self(raw.to_owned())
    }
}

impl Default for Id {
    fn default() -> Self {
        Self::null()
    }
}

impl From<&Value> for Id {
    fn from(v: &Value) -> Self {
        // A `Value` always serializes; null is the (unreachable) fallback.
        Self(serde_json::value::to_raw_value(v).unwrap_or_else(|_| RawValue::NULL.to_owned()))
    }
}

impl From<Value> for Id {
    fn from(v: Value) -> Self {
        Self::from(&v)
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Self::from(&Value::from(n))
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Self::from(&Value::from(s))
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}

impl Eq for Id {}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.raw())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw())
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A validated call.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Option<Id>,
    pub method: String,
    pub params: Vec<Value>,
}

/// What one incoming text message turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Call(Request),
    /// Answer with this error under this id (null when the id is unknown).
    Reject {
        id: Id,
        error: RpcError,
    },
    /// Invalid, but it had no id: nothing is sent.
    Ignore,
}

/// Parses and validates one message, in TrueNAS's order of checks.
pub fn parse_incoming(text: &str) -> Incoming {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Incoming::Reject {
                id: Id::null(),
                error: RpcError::bare(ErrorCode::ParseError, format!("Invalid JSON: {e}")),
            };
        }
    };
    let mut obj = match value {
        Value::Object(o) => o,
        Value::Array(_) => {
            return Incoming::Reject {
                id: Id::null(),
                error: RpcError::bare(
                    ErrorCode::ParseError,
                    "Batch messages are not supported at this time",
                ),
            };
        }
        _ => {
            return Incoming::Reject {
                id: Id::null(),
                error: RpcError::bare(ErrorCode::ParseError, "Message must be a JSON object"),
            };
        }
    };
    let id = obj.remove("id").map(|value| id_as_sent(text, value));
    match validate(&mut obj, id.as_ref()) {
        Ok((method, params)) => Incoming::Call(Request { id, method, params }),
        // As TrueNAS: the id is echoed as sent, whatever its type.
        Err(message) => match id {
            Some(id) => Incoming::Reject {
                id,
                error: RpcError::bare(ErrorCode::InvalidRequest, message),
            },
            None => Incoming::Ignore,
        },
    }
}

/// The id of `text` (already parsed as `value`) as it was sent. Null,
/// strings, integers and values of other types are written as parsed; a
/// number that is not a 64-bit integer is taken verbatim from the text.
fn id_as_sent(text: &str, value: Value) -> Id {
    match &value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => {
            // Rare: read the message once more, keeping the members' text.
            // Duplicate members: the last one wins, as in `Value`'s map.
            serde_json::from_str::<BTreeMap<String, &RawValue>>(text)
                .ok()
                .and_then(|members| members.get("id").map(|raw| Id::from_raw(raw)))
                .unwrap_or_else(|| Id::from(&value))
        }
        _ => Id::from(&value),
    }
}

/// `null`, a string or a number (any number: `1.5`, `1e300`, `2^64`).
/// JSON true/false are not numbers here, nor are arrays or objects.
fn is_valid_id(id: &Id) -> bool {
    matches!(
        id.raw().as_bytes().first(),
        Some(b'n' | b'"' | b'-' | b'0'..=b'9')
    )
}

fn validate(
    obj: &mut Map<String, Value>,
    id: Option<&Id>,
) -> Result<(String, Vec<Value>), &'static str> {
    match obj.get("jsonrpc") {
        None => return Err("Missing 'jsonrpc' member"),
        Some(Value::String(s)) if s == crate::Version::TEXT => {}
        Some(_) => return Err("'jsonrpc' member must be of type string and must be exactly '2.0'"),
    }
    if id.is_some_and(|id| !is_valid_id(id)) {
        return Err("'id' member must be of type null, string or number");
    }
    let method = match obj.remove("method") {
        None => return Err("Missing 'method' member"),
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(_) => return Err("'method' member must be of type string"),
    };
    let params = match obj.remove("params") {
        None => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("'params' member must be of type array"),
    };
    Ok((method, params))
}

#[derive(Serialize)]
struct ResultResponse<'a, T: ?Sized> {
    jsonrpc: crate::Version,
    result: &'a T,
    id: &'a Id,
}

#[derive(Serialize)]
struct ErrorResponse<'a> {
    jsonrpc: crate::Version,
    error: &'a RpcError,
    id: &'a Id,
}

/// Serializes a response; neither shape can fail (string keys only).
fn response_text(response: &impl Serialize) -> String {
    serde_json::to_string(response).unwrap_or_default()
}

/// `{"jsonrpc":"2.0","result":...,"id":...}`, the id as it was sent.
pub fn response_ok(id: &Id, result: Value) -> String {
    response_text(&ResultResponse {
        jsonrpc: crate::Version,
        result: &result,
        id,
    })
}

/// [`response_ok`] for an answer that may carry a secret: the text is
/// written into a [`WipingBuffer`], and every string of `result` is wiped
/// before it is dropped, so the only copy left is the buffer, wiped in turn
/// when the transport drops it.
pub fn response_ok_wiping(id: &Id, mut result: Value) -> WipingBuffer {
    let text = crate::wiping::to_wiping(&ResultResponse {
        jsonrpc: crate::Version,
        result: &result,
        id,
    })
    .unwrap_or_default();
    crate::wiping::wipe_strings(&mut result);
    text
}

/// [`response_ok_wiping`] for a result of any serializable type, written
/// straight into the [`WipingBuffer`] (no JSON tree in between; wiping the
/// result itself is its type's business). Fails only when the result is
/// not JSON (a map with keys that are not strings).
pub fn response_ok_of<T: Serialize + ?Sized>(
    id: &Id,
    result: &T,
) -> serde_json::Result<WipingBuffer> {
    crate::wiping::to_wiping(&ResultResponse {
        jsonrpc: crate::Version,
        result,
        id,
    })
}

/// `{"jsonrpc":"2.0","error":{...},"id":...}`, the id as it was sent.
pub fn response_error(id: &Id, error: &RpcError) -> String {
    response_text(&ErrorResponse {
        jsonrpc: crate::Version,
        error,
        id,
    })
}

/// A server-to-client notification (`collection_update`, ...).
pub fn notification(method: &str, params: Value) -> Value {
    let n = crate::Notification {
        jsonrpc: crate::Version,
        method: method.to_owned(),
        params,
    };
    serde_json::to_value(n).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reject_message(text: &str) -> (Id, i64, String) {
        match parse_incoming(text) {
            Incoming::Reject { id, error } => (id, error.code, error.message),
            other => panic!("expected a rejection of {text}, got {other:?}"),
        }
    }

    #[test]
    fn valid_calls() {
        let Incoming::Call(r) = parse_incoming(r#"{"jsonrpc":"2.0","method":"core.ping","id":7}"#)
        else {
            panic!()
        };
        assert_eq!(
            (r.id, r.method.as_str(), r.params.len()),
            (Some(Id::from(7u64)), "core.ping", 0)
        );
        let Incoming::Call(r) = parse_incoming(r#"{"jsonrpc":"2.0","method":"m","params":[1]}"#)
        else {
            panic!()
        };
        assert_eq!(r.id, None);
        let Incoming::Call(r) = parse_incoming(r#"{"jsonrpc":"2.0","method":"m","id":null}"#)
        else {
            panic!()
        };
        assert_eq!(r.id, Some(Id::null()));
    }

    #[test]
    fn truenas_messages() {
        assert_eq!(
            reject_message(r#"{"method":"m","id":1}"#),
            (Id::from(1u64), -32600, "Missing 'jsonrpc' member".into())
        );
        assert_eq!(
            reject_message(r#"{"jsonrpc":"1.0","method":"m","id":"a"}"#),
            (
                Id::from("a"),
                -32600,
                "'jsonrpc' member must be of type string and must be exactly '2.0'".into()
            )
        );
        assert_eq!(
            reject_message(r#"{"jsonrpc":"2.0","id":1}"#),
            (Id::from(1u64), -32600, "Missing 'method' member".into())
        );
        assert_eq!(
            reject_message(r#"{"jsonrpc":"2.0","method":5,"id":1}"#),
            (
                Id::from(1u64),
                -32600,
                "'method' member must be of type string".into()
            )
        );
        assert_eq!(
            reject_message(r#"{"jsonrpc":"2.0","method":"m","params":{},"id":1}"#),
            (
                Id::from(1u64),
                -32600,
                "'params' member must be of type array".into()
            )
        );
        assert_eq!(
            reject_message(r#"[{"jsonrpc":"2.0","method":"m","id":1}]"#),
            (
                Id::null(),
                -32700,
                "Batch messages are not supported at this time".into()
            )
        );
        assert_eq!(
            reject_message(r#"{"jsonrpc":"2.0","method":"m","id":[1]}"#),
            (
                Id::from(json!([1])),
                -32600,
                "'id' member must be of type null, string or number".into()
            )
        );
        assert_eq!(reject_message("{nope").1, -32700);
        assert_eq!(parse_incoming(r#"{"method":"m"}"#), Incoming::Ignore);
    }

    /// Any JSON number is an id, echoed exactly as it was sent.
    #[test]
    fn numbers_of_any_kind_are_ids_echoed_as_sent() {
        for sent in [
            "1.5",
            "1e300",
            "18446744073709551616",
            "-9223372036854775809",
            "1.0",
            "-0.0",
            "1E+2",
            "123456789012345678901234567890.5e-3",
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","method":"m","id": {sent} }}"#);
            let Incoming::Call(r) = parse_incoming(&text) else {
                panic!("{sent} refused: {:?}", parse_incoming(&text))
            };
            let id = r.id.expect("an id");
            assert_eq!(id.raw(), sent);
            let reply = response_ok(&id, json!(null));
            assert!(reply.ends_with(&format!(r#","id":{sent}}}"#)), "{reply}");
            let reply = response_error(&id, &RpcError::internal());
            assert!(reply.ends_with(&format!(r#","id":{sent}}}"#)), "{reply}");
            // And a rejected message echoes it too.
            let text = format!(r#"{{"jsonrpc":"1.0","method":"m","id":{sent}}}"#);
            assert_eq!(reject_message(&text).0.raw(), sent);
        }
        // The last of duplicate members wins, as for every other member.
        let Incoming::Call(r) =
            parse_incoming(r#"{"jsonrpc":"2.0","method":"m","id":1.5,"id":2.5}"#)
        else {
            panic!()
        };
        assert_eq!(r.id.map(|id| id.raw().to_owned()), Some("2.5".into()));
        for not_an_id in ["true", "false", "{}", "[1.5]"] {
            let text = format!(r#"{{"jsonrpc":"2.0","method":"m","id":{not_an_id}}}"#);
            assert_eq!(
                reject_message(&text),
                (
                    Id::from(serde_json::from_str::<Value>(not_an_id).unwrap()),
                    -32600,
                    "'id' member must be of type null, string or number".into()
                )
            );
        }
    }

    #[test]
    fn responses_are_json_with_the_members_in_order() {
        let id = Id::from("x");
        assert_eq!(
            response_ok(&id, json!({"a": 1})),
            r#"{"jsonrpc":"2.0","result":{"a":1},"id":"x"}"#
        );
        let v: Value =
            serde_json::from_str(&response_error(&Id::null(), &RpcError::internal())).unwrap();
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["error"]["code"], json!(-32603));
    }
}
