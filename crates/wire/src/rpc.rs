//! The client's half of the JSON-RPC 2.0 envelope: the requests and
//! notifications a client sends, and the messages a server sends back
//! (answers and notifications), typed. `"jsonrpc": "2.0"` is written and
//! read in [`Version`] only.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::RpcError;

/// The protocol version member, `"jsonrpc": "2.0"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Version;

impl Version {
    /// The only version there is.
    pub const TEXT: &'static str = "2.0";
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Self::TEXT)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == Self::TEXT {
            Ok(Version)
        } else {
            Err(serde::de::Error::custom(format!(
                "jsonrpc is {text:?}, not \"2.0\""
            )))
        }
    }
}

/// A request a client sends: with an id it is a call the server answers,
/// without one a notification it only runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientRequest<'a> {
    pub jsonrpc: Version,
    pub method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub params: &'a [Value],
}

impl<'a> ClientRequest<'a> {
    /// A call, answered under `id`.
    pub fn call(method: &'a str, id: u64, params: &'a [Value]) -> Self {
        Self {
            jsonrpc: Version,
            method,
            id: Some(id),
            params,
        }
    }

    /// A notification: run, never answered.
    pub fn notification(method: &'a str, params: &'a [Value]) -> Self {
        Self {
            jsonrpc: Version,
            method,
            id: None,
            params,
        }
    }
}

/// A server's answer to a request: its id (as sent back), and either a
/// result or an error object. The result is kept as the text it came in,
/// so that a caller that wants a type reads it straight into that type
/// ([`Response::outcome_as`]) rather than through a [`Value`] first.
#[derive(Debug, Clone)]
pub struct Response {
    pub id: Value,
    result: Option<Box<RawValue>>,
    error: Option<Box<RawValue>>,
}

impl PartialEq for Response {
    fn eq(&self, other: &Self) -> bool {
        let text = |r: &Option<Box<RawValue>>| r.as_ref().map(|r| r.get().to_owned());
        self.id == other.id
            && text(&self.result) == text(&other.result)
            && text(&self.error) == text(&other.error)
    }
}

impl Response {
    /// The id as a client's numeric id, when it is one.
    pub fn numeric_id(&self) -> Option<u64> {
        self.id.as_u64()
    }

    /// The result, or the error object; `Err` with a reason when the
    /// answer has neither or its error object is malformed.
    pub fn outcome(self) -> Result<Result<Value, RpcError>, String> {
        self.outcome_as()
    }

    /// [`Response::outcome`] with the result read as `T`; `Err` also when
    /// the result is not a `T` (saying what did not fit).
    pub fn outcome_as<T: DeserializeOwned>(self) -> Result<Result<T, RpcError>, String> {
        if let Some(error) = self.error {
            return serde_json::from_str(error.get())
                .map(Err)
                .map_err(|e| format!("malformed error object: {e}"));
        }
        let result = self
            .result
            .ok_or_else(|| "a response with neither result nor error".to_owned())?;
        serde_json::from_str(result.get())
            .map(Ok)
            .map_err(|e| format!("the result is not understood: {e}"))
    }
}

/// A notification from the server (`collection_update`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub jsonrpc: Version,
    pub method: String,
    pub params: Value,
}

/// Anything a server sends a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    Response(Response),
    Notification(Notification),
}

/// The members a server's message may have; which are present decides
/// what it is.
#[derive(Deserialize)]
struct Members {
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    method: Option<String>,
    #[serde(default)]
    params: Value,
    #[serde(default, deserialize_with = "present_raw")]
    result: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present_raw")]
    error: Option<Box<RawValue>>,
}

/// A member that is present is `Some`, even when it is null.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// [`present`], keeping the member's text.
fn present_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

impl ServerMessage {
    /// Reads one message: with an id an answer, else with a method a
    /// notification. `Err` says what was wrong. The text is read once,
    /// into the members (an answer's result stays text).
    pub fn parse(text: &str) -> Result<Self, String> {
        match serde_json::from_str::<Members>(text) {
            Ok(m) => Self::from_members(m),
            // Which kind of wrong it was: read again, as anything.
            Err(e) => match serde_json::from_str::<Value>(text) {
                Err(e) => Err(format!("the server sent invalid JSON: {e}")),
                Ok(v) if !v.is_object() => Err("a message with neither id nor method".to_owned()),
                Ok(_) => Err(format!("the server sent an invalid message: {e}")),
            },
        }
    }

    /// [`ServerMessage::parse`] for a message already read as JSON.
    pub fn from_value(value: Value) -> Result<Self, String> {
        Self::parse(&value.to_string())
    }

    fn from_members(m: Members) -> Result<Self, String> {
        match (m.id, m.method) {
            (Some(id), _) => Ok(Self::Response(Response {
                id,
                result: m.result,
                error: m.error,
            })),
            (None, Some(method)) => Ok(Self::Notification(Notification {
                jsonrpc: Version,
                method,
                params: m.params,
            })),
            (None, None) => Err("a message with neither id nor method".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_written_as_before() {
        let params = [json!({"a": 1})];
        assert_eq!(
            serde_json::to_string(&ClientRequest::call("core.ping", 7, &params)).unwrap(),
            r#"{"jsonrpc":"2.0","method":"core.ping","id":7,"params":[{"a":1}]}"#
        );
        assert_eq!(
            serde_json::to_string(&ClientRequest::notification("core.ping", &[])).unwrap(),
            r#"{"jsonrpc":"2.0","method":"core.ping","params":[]}"#
        );
    }

    #[test]
    fn server_messages_are_sorted() {
        let ServerMessage::Response(r) =
            ServerMessage::parse(r#"{"jsonrpc":"2.0","result":null,"id":3}"#).unwrap()
        else {
            panic!("an answer")
        };
        assert_eq!(r.numeric_id(), Some(3));
        assert_eq!(r.outcome().unwrap(), Ok(Value::Null));
        let e = crate::RpcError::call(crate::Errno::EINVAL, "no");
        let text = crate::response_error(&crate::Id::from(&json!(4)), &e);
        let ServerMessage::Response(r) = ServerMessage::parse(&text).unwrap() else {
            panic!("an answer")
        };
        assert_eq!(r.outcome().unwrap(), Err(e));
        let n = ServerMessage::parse(r#"{"jsonrpc":"2.0","method":"m","params":{"x":1}}"#).unwrap();
        assert_eq!(
            n,
            ServerMessage::Notification(Notification {
                jsonrpc: Version,
                method: "m".into(),
                params: json!({"x": 1})
            })
        );
        assert!(ServerMessage::parse(r#"{"jsonrpc":"2.0"}"#).is_err());
        assert!(ServerMessage::parse("nope").is_err());
        assert!(ServerMessage::parse("[1]").is_err());
        let ServerMessage::Response(r) = ServerMessage::parse(r#"{"id":1}"#).unwrap() else {
            panic!("an answer")
        };
        assert_eq!(
            r.outcome().unwrap_err(),
            "a response with neither result nor error"
        );
        assert!(serde_json::from_str::<Version>(r#""1.0""#).is_err());
    }
}
