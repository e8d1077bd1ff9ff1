//! Reading the schemas of `core.get_methods` (`accepts`/`returns`), typed
//! as `wire::JsonSchema`: the summaries that `man` and the help print. The
//! CLI holds no schema of its own.

use client::wire::JsonSchema;

/// `boolean`, `string|null`, `object`... (`any` when unconstrained).
pub fn type_name(schema: &JsonSchema) -> String {
    let t: Vec<&str> = schema.types().iter().map(|t| t.name()).collect();
    if t.is_empty() {
        "any".to_owned()
    } else {
        t.join("|")
    }
}

/// The description, or nothing.
pub fn description(schema: &JsonSchema) -> &str {
    schema.description.as_deref().unwrap_or_default()
}

/// One-line summary: type, range, default, and an object's keys.
/// E.g. `integer, 6 to 8, default 6`.
pub fn summary(schema: &JsonSchema) -> String {
    let mut parts = vec![type_name(schema)];
    match (schema.minimum, schema.maximum) {
        (Some(min), Some(max)) => parts.push(format!("{min} to {max}")),
        (Some(min), None) => parts.push(format!("at least {min}")),
        (None, Some(max)) => parts.push(format!("at most {max}")),
        (None, None) => {}
    }
    if let Some(props) = &schema.properties {
        let inner: Vec<String> = props
            .iter()
            .map(|(k, v)| format!("{k}: {}", summary(v)))
            .collect();
        if !inner.is_empty() {
            parts.push(format!("{{{}}}", inner.join("; ")));
        }
    }
    if let Some(d) = &schema.default {
        parts.push(format!("default {d}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn typed(v: Value) -> JsonSchema {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn reads_types_and_summaries() {
        let s = typed(json!({"type": "integer", "minimum": 6, "maximum": 8, "default": 6}));
        assert_eq!(type_name(&s), "integer");
        assert_eq!(summary(&s), "integer, 6 to 8, default 6");
        let n = typed(json!({"type": ["string", "null"]}));
        assert_eq!(type_name(&n), "string|null");
        assert!(n.admits_type(&Value::Null));
        assert!(!n.admits_type(&json!(5)));
        assert!(JsonSchema::default().admits_type(&json!(5)));
        let o = typed(
            json!({"type": "object", "properties": {"ssh": {"type": "boolean", "default": false}},
                       "additionalProperties": false, "required": []}),
        );
        assert_eq!(summary(&o), "object, {ssh: boolean, default false}");
        assert!(o.closed());
        assert!(!o.property_required("ssh"));
    }
}
