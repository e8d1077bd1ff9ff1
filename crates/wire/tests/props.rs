//! Properties of the JSON-RPC envelope: `parse_incoming` on arbitrary text
//! and arbitrary JSON, valid and invalid requests, and the response and
//! error shapes, checked with proptest over generated inputs.

use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};
use wire::arbitrary::{exact_float, scalars, tree};
use wire::{
    ErrorCode, Id, Incoming, RpcError, TruenasError, parse_incoming, response_error, response_ok,
};

// ------------------------------------------------------------- strategies

/// Strings: any Unicode, or text dense in what JSON gives meaning to.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\/{}\\[\\]:, \t\n\u{0}\u{1f}\u{7f}\u{2028}\u{fffd}\u{1F642}a-z0-9]{0,12}",
    ]
}

/// Object keys: mostly the envelope's own members, so that generated objects
/// reach every check of the validation.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec!["jsonrpc", "method", "params", "id"]).prop_map(str::to_owned),
        1 => text(),
    ]
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        scalars(text().boxed()),
        // Near misses of the envelope's values.
        select(vec!["2.0", "2", "1.0", "2.0 ", "", "core.ping"]).prop_map(Value::from),
        Just(json!(2.0)),
    ]
    .boxed()
}

/// Arbitrary JSON trees, a few levels deep.
fn json_value() -> BoxedStrategy<Value> {
    tree(leaf(), key().boxed())
}

/// The ids TrueNAS accepts: null, a number of any kind, a string.
fn valid_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        exact_float().prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

/// JSON number text of any size and form: integers beyond 64 bits,
/// fractions, exponents (within what an `f64` can hold).
fn number_text() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?"
}

/// Members that are not the envelope's (TrueNAS ignores them).
fn extra_members() -> impl Strategy<Value = Vec<(String, Value)>> {
    vec(
        (
            text().prop_filter("not an envelope member", |k| {
                !matches!(k.as_str(), "jsonrpc" | "method" | "params" | "id")
            }),
            json_value(),
        ),
        0..3,
    )
}

/// A valid request: its members in any order, with `params` and `id`
/// perhaps absent, and perhaps unknown members besides.
fn valid_request() -> impl Strategy<Value = (Value, String, Option<Vec<Value>>, Option<Value>)> {
    (
        text().prop_filter("a method is not empty", |m| !m.is_empty()),
        proptest::option::of(vec(json_value(), 0..5)),
        proptest::option::of(valid_id()),
        extra_members(),
    )
        .prop_flat_map(|(method, params, id, extra)| {
            let mut members: Vec<(String, Value)> = vec![
                ("jsonrpc".into(), json!("2.0")),
                ("method".into(), json!(method)),
            ];
            if let Some(p) = &params {
                members.push(("params".into(), Value::Array(p.clone())));
            }
            if let Some(id) = &id {
                members.push(("id".into(), id.clone()));
            }
            members.extend(extra);
            Just(members).prop_shuffle().prop_map(move |members| {
                let obj: Map<String, Value> = members.into_iter().collect();
                (
                    Value::Object(obj),
                    method.clone(),
                    params.clone(),
                    id.clone(),
                )
            })
        })
}

/// Objects built from the envelope's members, each valid, invalid or absent,
/// so that every check of the validation passes and fails often.
fn envelope_like() -> impl Strategy<Value = Value> {
    (
        weighted(
            0.9,
            prop_oneof![
                3 => Just(json!("2.0")),
                1 => select(vec![json!(2.0), json!(2), json!("2"), json!("2.0 "), json!("")]),
                1 => json_value(),
            ],
        ),
        weighted(
            0.9,
            prop_oneof![
                3 => text().prop_map(Value::String),
                1 => Just(json!("")),
                1 => json_value(),
            ],
        ),
        weighted(
            0.7,
            prop_oneof![
                3 => vec(json_value(), 0..4).prop_map(Value::Array),
                1 => select(vec![Value::Null, json!({}), json!("[]")]),
                1 => json_value(),
            ],
        ),
        weighted(
            0.7,
            prop_oneof![
                3 => valid_id(),
                1 => exact_float().prop_map(Value::from),
                1 => json_value(),
            ],
        ),
        extra_members(),
    )
        .prop_flat_map(|(jsonrpc, method, params, id, extra)| {
            let mut members: Vec<(String, Value)> = [
                ("jsonrpc", jsonrpc),
                ("method", method),
                ("params", params),
                ("id", id),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
            members.extend(extra);
            Just(members)
                .prop_shuffle()
                .prop_map(|members| Value::Object(members.into_iter().collect()))
        })
}

fn error_code() -> impl Strategy<Value = i64> {
    prop_oneof![
        select(vec![-32700, -32600, -32601, -32602, -32603, -32000, -32001]),
        any::<i64>(),
    ]
}

/// `trace`/`extra` as a deserializer produces them: `None` for null, never
/// `Some(Value::Null)` (both are written `null`, so only one of the two can
/// come back).
fn optional_non_null() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(json_value().prop_filter("null reads back as None", |v| !v.is_null()))
}

fn truenas_error() -> impl Strategy<Value = TruenasError> {
    (
        any::<i32>(),
        text(),
        text(),
        optional_non_null(),
        optional_non_null(),
    )
        .prop_map(|(error, errname, reason, trace, extra)| TruenasError {
            error: wire::Errno(error),
            errname,
            reason,
            trace,
            extra,
        })
}

fn rpc_error() -> impl Strategy<Value = RpcError> {
    (error_code(), text(), proptest::option::of(truenas_error())).prop_map(
        |(code, message, data)| RpcError {
            code,
            message,
            data,
        },
    )
}

// ----------------------------------------------------------------- helpers

fn text_of(v: &Value) -> String {
    serde_json::to_string(v).expect("a Value always serializes")
}

/// The id TrueNAS accepts, as `is_valid_id` should see it.
fn is_valid_id(id: &Value) -> bool {
    matches!(id, Value::Null | Value::String(_) | Value::Number(_))
}

/// What a message should become, checked in TrueNAS's order.
fn expected(value: &Value) -> Incoming {
    let Value::Object(obj) = value else {
        let message = if value.is_array() {
            "Batch messages are not supported at this time"
        } else {
            "Message must be a JSON object"
        };
        return Incoming::Reject {
            id: Id::null(),
            error: RpcError::bare(ErrorCode::ParseError, message),
        };
    };
    let id = obj.get("id");
    let valid = obj.get("jsonrpc") == Some(&json!("2.0"))
        && id.is_none_or(is_valid_id)
        && obj
            .get("method")
            .is_some_and(|m| m.as_str().is_some_and(|m| !m.is_empty()))
        && obj.get("params").is_none_or(Value::is_array);
    if valid {
        return Incoming::Call(wire::Request {
            id: id.map(Id::from),
            method: obj["method"].as_str().unwrap_or_default().to_owned(),
            params: obj
                .get("params")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        });
    }
    match id {
        // The message is checked by the unit tests; here only the code.
        Some(id) => Incoming::Reject {
            id: Id::from(id),
            error: RpcError::bare(ErrorCode::InvalidRequest, ""),
        },
        None => Incoming::Ignore,
    }
}

/// Compares an outcome with [`expected`]'s, ignoring envelope messages.
fn same_outcome(got: &Incoming, want: &Incoming) -> bool {
    match (got, want) {
        (Incoming::Reject { id: a, error: e }, Incoming::Reject { id: b, error: f }) => {
            a == b
                && e.code == f.code
                && e.data.is_none()
                && (f.message.is_empty() || e.message == f.message)
        }
        _ => got == want,
    }
}

/// Text that is not JSON is a -32700 `Invalid JSON` under a null id; JSON
/// text gets the outcome of its value.
fn check_text(s: &str) -> Result<(), TestCaseError> {
    let got = parse_incoming(s);
    match serde_json::from_str::<Value>(s) {
        Err(_) => prop_assert!(
            matches!(&got, Incoming::Reject { id, error }
                if *id == Id::null() && error.code == -32700 && error.message.starts_with("Invalid JSON: ")),
            "{s:?}: got {got:?}"
        ),
        Ok(v) => prop_assert!(same_outcome(&got, &expected(&v)), "{s:?}: got {got:?}"),
    }
    Ok(())
}

// -------------------------------------------------------------- properties

proptest! {
    #[test]
    fn parse_incoming_never_panics_on_any_text(s in any::<String>()) {
        check_text(&s)?;
    }

    /// Text dense in JSON punctuation reaches past the first character.
    #[test]
    fn parse_incoming_never_panics_on_json_like_text(
        s in "[\\[\\]{}\",:0-9a-z\\\\ .eE+-]{0,40}",
    ) {
        check_text(&s)?;
    }

    /// Any JSON value: no panic, and the outcome TrueNAS's order of checks
    /// gives (Call only for a valid request, the id echoed as sent on a
    /// rejection, nothing for an invalid message without an id).
    #[test]
    fn parse_incoming_follows_the_checks_on_any_json(
        v in prop_oneof![1 => json_value(), 2 => envelope_like()],
    ) {
        let got = parse_incoming(&text_of(&v));
        let want = expected(&v);
        prop_assert!(same_outcome(&got, &want), "{v}: got {got:?}, want {want:?}");
    }

    #[test]
    fn valid_requests_are_calls((v, method, params, id) in valid_request()) {
        let got = parse_incoming(&text_of(&v));
        prop_assert_eq!(
            got,
            Incoming::Call(wire::Request {
                id: id.map(Id::from),
                method,
                params: params.unwrap_or_default(),
            })
        );
    }

    /// Whatever else the object holds, a `jsonrpc` member that is not exactly
    /// "2.0" (or none) means no call, and the rejection echoes the id.
    #[test]
    fn wrong_jsonrpc_is_never_a_call(
        (v, _, _, _) in valid_request(),
        jsonrpc in proptest::option::of(
            json_value().prop_filter("not \"2.0\"", |j| *j != json!("2.0"))
        ),
        id in proptest::option::of(json_value()),
    ) {
        let mut obj = v.as_object().cloned().unwrap_or_default();
        match jsonrpc {
            Some(j) => obj.insert("jsonrpc".into(), j),
            None => obj.remove("jsonrpc"),
        };
        if let Some(id) = &id {
            obj.insert("id".into(), id.clone());
        }
        let sent_id = obj.get("id").cloned();
        match (parse_incoming(&text_of(&Value::Object(obj))), sent_id) {
            (Incoming::Reject { id, error }, Some(sent)) => {
                prop_assert_eq!(id, Id::from(sent));
                prop_assert_eq!(error.code, -32600);
            }
            (Incoming::Ignore, None) => {}
            (other, sent) => prop_assert!(false, "id {sent:?}: got {other:?}"),
        }
    }

    /// A top-level array is refused as a batch, whatever it holds.
    #[test]
    fn arrays_are_batches(items in vec(json_value(), 0..5)) {
        let got = parse_incoming(&text_of(&Value::Array(items)));
        prop_assert_eq!(
            got,
            Incoming::Reject {
                id: Id::null(),
                error: RpcError::bare(
                    ErrorCode::ParseError,
                    "Batch messages are not supported at this time"
                ),
            }
        );
    }

    #[test]
    fn responses_carry_the_version_and_the_id(
        id in prop_oneof![valid_id(), json_value()],
        result in json_value(),
        error in rpc_error(),
    ) {
        let ok: Value = serde_json::from_str(&response_ok(&Id::from(&id), result.clone()))
            .expect("a response is JSON");
        prop_assert_eq!(ok.as_object().map(Map::len), Some(3));
        prop_assert_eq!(&ok["jsonrpc"], &json!("2.0"));
        prop_assert_eq!(&ok["id"], &id);
        prop_assert_eq!(&ok["result"], &result);

        let err: Value = serde_json::from_str(&response_error(&Id::from(&id), &error))
            .expect("a response is JSON");
        prop_assert_eq!(err.as_object().map(Map::len), Some(3));
        prop_assert_eq!(&err["jsonrpc"], &json!("2.0"));
        prop_assert_eq!(&err["id"], &id);
        let back: RpcError = serde_json::from_value(err["error"].clone())
            .expect("the error member reads back");
        prop_assert_eq!(back, error);
    }

    #[test]
    fn rpc_errors_round_trip(error in rpc_error()) {
        let text = serde_json::to_string(&error).expect("serializes");
        let back: RpcError = serde_json::from_str(&text).expect("deserializes");
        prop_assert_eq!(&back, &error);
        // And the text is stable from then on.
        prop_assert_eq!(serde_json::to_string(&back).expect("serializes"), text);
    }

    /// Any JSON number is an id: the call is accepted and both response
    /// shapes carry the id's text exactly as it was sent.
    #[test]
    fn numeric_ids_are_echoed_as_sent(
        (v, _, _, _) in valid_request(),
        id in number_text(),
        valid in any::<bool>(),
    ) {
        let mut obj = v.as_object().cloned().unwrap_or_default();
        obj.remove("id");
        if !valid {
            obj.insert("jsonrpc".into(), json!("1.0"));
        }
        let text = text_of(&Value::Object(obj));
        // A number too large for an f64 is not JSON this parser reads.
        prop_assume!(serde_json::from_str::<Value>(&id).is_ok());
        let text = format!("{},\"id\":{id}}}", text.strip_suffix('}').unwrap_or(&text));
        let text = text.replacen("{,", "{", 1);
        let got = match parse_incoming(&text) {
            Incoming::Call(r) if valid => r.id,
            Incoming::Reject { id, error } if !valid && error.code == -32600 => Some(id),
            other => return Err(TestCaseError::fail(format!("{text}: got {other:?}"))),
        };
        let got = got.expect("the id is there");
        prop_assert_eq!(got.raw(), id.as_str());
        let ok = response_ok(&got, Value::Null);
        let want = format!(",\"id\":{id}}}");
        prop_assert!(ok.ends_with(&want), "{}", ok);
        let err = response_error(&got, &RpcError::internal());
        prop_assert!(err.ends_with(&want), "{}", err);
    }
}
