//! Request envelopes, validated with the messages TrueNAS sends, and the
//! shapes of responses and notifications.

use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, RpcError};

/// A request id: string, number or null. `None` in [`Request::id`] means the
/// member was absent: a notification, run but never answered.
pub type Id = Value;

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
                id: Value::Null,
                error: RpcError::bare(ErrorCode::ParseError, format!("Invalid JSON: {e}")),
            };
        }
    };
    let mut obj = match value {
        Value::Object(o) => o,
        Value::Array(_) => {
            return Incoming::Reject {
                id: Value::Null,
                error: RpcError::bare(
                    ErrorCode::ParseError,
                    "Batch messages are not supported at this time",
                ),
            };
        }
        _ => {
            return Incoming::Reject {
                id: Value::Null,
                error: RpcError::bare(ErrorCode::ParseError, "Message must be a JSON object"),
            };
        }
    };
    let id = obj.remove("id");
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

fn is_valid_id(id: &Value) -> bool {
    // Python's `None | int | str`: floats are not ids (bool is an int there,
    // but JSON true/false are not numbers here).
    matches!(id, Value::Null | Value::String(_)) || id.as_i64().is_some() || id.as_u64().is_some()
}

fn validate(
    obj: &mut Map<String, Value>,
    id: Option<&Value>,
) -> Result<(String, Vec<Value>), &'static str> {
    match obj.get("jsonrpc") {
        None => return Err("Missing 'jsonrpc' member"),
        Some(Value::String(s)) if s == "2.0" => {}
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

/// `{"jsonrpc":"2.0","result":...,"id":...}`.
pub fn response_ok(id: &Id, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "result": result, "id": id})
}

/// `{"jsonrpc":"2.0","error":{...},"id":...}`.
pub fn response_error(id: &Id, error: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "error": error, "id": id})
}

/// A server-to-client notification (`collection_update`, ...).
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (Some(json!(7)), "core.ping", 0)
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
        assert_eq!(r.id, Some(Value::Null));
    }

    #[test]
    fn truenas_messages() {
        assert_eq!(
            reject_message(r#"{"method":"m","id":1}"#),
            (json!(1), -32600, "Missing 'jsonrpc' member".into())
        );
        assert_eq!(
            reject_message(r#"{"jsonrpc":"1.0","method":"m","id":"a"}"#),
            (
                json!("a"),
                -32600,
                "'jsonrpc' member must be of type string and must be exactly '2.0'".into()
            )
        );
        assert_eq!(
            reject_message(r#"{"jsonrpc":"2.0","id":1}"#),
            (json!(1), -32600, "Missing 'method' member".into())
        );
        assert_eq!(
            reject_message(r#"{"jsonrpc":"2.0","method":5,"id":1}"#),
            (
                json!(1),
                -32600,
                "'method' member must be of type string".into()
            )
        );
        assert_eq!(
            reject_message(r#"{"jsonrpc":"2.0","method":"m","params":{},"id":1}"#),
            (
                json!(1),
                -32600,
                "'params' member must be of type array".into()
            )
        );
        assert_eq!(
            reject_message(r#"[{"jsonrpc":"2.0","method":"m","id":1}]"#),
            (
                Value::Null,
                -32700,
                "Batch messages are not supported at this time".into()
            )
        );
        assert_eq!(
            reject_message(r#"{"jsonrpc":"2.0","method":"m","id":[1]}"#),
            (
                json!([1]),
                -32600,
                "'id' member must be of type null, string or number".into()
            )
        );
        assert_eq!(reject_message("{nope").1, -32700);
        assert_eq!(parse_incoming(r#"{"method":"m"}"#), Incoming::Ignore);
    }
}
