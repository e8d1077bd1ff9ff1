//! Reading the JSON schemas of `core.get_methods` (`accepts`/`returns`):
//! the types, ranges, defaults and properties that drive argument typing,
//! completion and `man`. The CLI holds no schema of its own.

use serde_json::{Map, Value};

/// The JSON types a schema admits (`"type"` as a string or a list); empty
/// when it admits anything.
pub fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether `value` is of one of `types` (an empty list admits anything).
pub fn admits(types: &[&str], value: &Value) -> bool {
    types.is_empty()
        || types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        })
}

/// The name of a parameter (`_name_`, else `title`).
pub fn name(schema: &Value) -> Option<&str> {
    schema
        .get("_name_")
        .or_else(|| schema.get("title"))
        .and_then(Value::as_str)
}

/// The properties of an object schema, in order.
pub fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// Whether an object schema refuses keys it does not list.
pub fn closed(schema: &Value) -> bool {
    schema.get("additionalProperties") == Some(&Value::Bool(false))
}

/// Whether the parameter must be given.
pub fn required(schema: &Value) -> bool {
    schema
        .get("_required_")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Whether property `key` of an object schema must be given.
pub fn property_required(object: &Value, key: &str) -> bool {
    object
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|k| k.as_str() == Some(key)))
}

pub fn description(schema: &Value) -> &str {
    schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `boolean`, `string|null`, `object`... (`any` when unconstrained).
pub fn type_name(schema: &Value) -> String {
    let t = types(schema);
    if t.is_empty() {
        "any".to_owned()
    } else {
        t.join("|")
    }
}

/// One-line summary: type, range, default, and an object's keys.
/// E.g. `integer, 6 to 8, default 6`.
pub fn summary(schema: &Value) -> String {
    let mut parts = vec![type_name(schema)];
    match (schema.get("minimum"), schema.get("maximum")) {
        (Some(min), Some(max)) => parts.push(format!("{min} to {max}")),
        (Some(min), None) => parts.push(format!("at least {min}")),
        (None, Some(max)) => parts.push(format!("at most {max}")),
        (None, None) => {}
    }
    if let Some(props) = properties(schema) {
        let inner: Vec<String> = props
            .iter()
            .map(|(k, v)| format!("{k}: {}", summary(v)))
            .collect();
        if !inner.is_empty() {
            parts.push(format!("{{{}}}", inner.join("; ")));
        }
    }
    if let Some(d) = schema.get("default") {
        parts.push(format!("default {d}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_types_and_summaries() {
        let s = json!({"type": "integer", "minimum": 6, "maximum": 8, "default": 6});
        assert_eq!(types(&s), vec!["integer"]);
        assert_eq!(summary(&s), "integer, 6 to 8, default 6");
        let n = json!({"type": ["string", "null"]});
        assert_eq!(type_name(&n), "string|null");
        assert!(admits(&types(&n), &Value::Null));
        assert!(!admits(&types(&n), &json!(5)));
        assert!(admits(&[], &json!(5)));
        let o = json!({"type": "object", "properties": {"ssh": {"type": "boolean", "default": false}},
                       "additionalProperties": false, "required": []});
        assert_eq!(summary(&o), "object, {ssh: boolean, default false}");
        assert!(closed(&o));
        assert!(!property_required(&o, "ssh"));
    }
}
