//! The JSON-RPC envelope parser (`wire::parse_incoming`) on any text: it
//! never panics, and whatever it decides can be answered: the response is
//! JSON, carries the version and the id exactly as it was sent.

use serde_json::Value;

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (id, reply) = match wire::parse_incoming(text) {
        wire::Incoming::Call(request) => {
            assert!(
                !request.method.is_empty(),
                "{text:?}: a call without a method"
            );
            match request.id {
                Some(id) => {
                    let reply = wire::response_ok(&id, Value::Array(request.params));
                    (id, reply)
                }
                None => return,
            }
        }
        wire::Incoming::Reject { id, error } => {
            assert!(matches!(error.code, -32700 | -32600), "{text:?}: {error:?}");
            let reply = wire::response_error(&id, &error);
            (id, reply)
        }
        wire::Incoming::Ignore => return,
    };
    let parsed: Value = serde_json::from_str(&reply)
        .unwrap_or_else(|e| panic!("{text:?}: the reply {reply:?} is not JSON: {e}"));
    assert_eq!(parsed["jsonrpc"], "2.0", "{reply}");
    // The id's text appears as the last member, byte for byte.
    assert!(
        reply.ends_with(&format!(",\"id\":{}}}", id.raw())),
        "{text:?}: {reply}"
    );
    assert_eq!(parsed["id"], id.to_value(), "{reply}");
}
