//! Properties of the command-line syntax: the line splitter, the
//! `name=value` form and how a value's text becomes JSON under its schema,
//! checked with proptest over generated inputs through the public API of
//! `cli::syntax` and `cli::args`.

use cli::args::invocation;
use cli::syntax::{split, split_assignment, split_lenient, value_for};
use cli::tree::Command;
use client::wire::arbitrary::{scalars, tree};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

// ------------------------------------------------------------- strategies

/// Strings: any Unicode, or text dense in what the splitter gives meaning to.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"'\\\\{}\\[\\]=:, \t\n\u{a0}\u{2028}\u{3000}a-z0-9-]{0,12}",
    ]
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        scalars(text().boxed()),
        "[0-9]{1,8}".prop_map(Value::String)
    ]
    .boxed()
}

/// Arbitrary JSON trees, a few levels deep.
fn json_value() -> BoxedStrategy<Value> {
    tree(leaf(), text().boxed())
}

/// An argument name (`otp_digits`, `services.ssh`, `a-b`).
fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_.-]{0,12}"
}

/// One word of value text: compact JSON, digits, or a bare word.
fn value_word() -> impl Strategy<Value = String> {
    prop_oneof![
        json_value().prop_map(|v| compact(&v)),
        "[0-9]{1,24}",
        "-?[0-9]{1,20}",
        "[A-Za-z0-9_.:/@+=%,-]{1,16}",
    ]
}

/// Text dense in the splitter's special characters.
fn syntax_text() -> impl Strategy<Value = String> {
    "[ \t\n\u{a0}\u{2028}'\"\\\\{}\\[\\]=a-c0-1\u{e9}\u{1F642}]{0,40}"
}

// ----------------------------------------------------------------- helpers

fn compact(v: &Value) -> String {
    serde_json::to_string(v).expect("a Value always serializes")
}

/// The JSON type name of a value, as a schema spells it.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Schemas that admit `v`: none, "any", its own type, with null, with string.
fn schemas_admitting(v: &Value) -> Vec<Option<Value>> {
    let t = type_of(v);
    vec![
        None,
        Some(json!({})),
        Some(json!({"type": t})),
        Some(json!({"type": [t, "null"]})),
        Some(json!({"type": ["string", t]})),
    ]
}

/// A schema written as JSON, read as the CLI reads introspection.
fn typed(schema: &Value) -> client::wire::JsonSchema {
    serde_json::from_value(schema.clone()).expect("a schema")
}

fn command(accepts: Vec<Value>) -> Command {
    let accepts = accepts.iter().map(typed).collect();
    Command {
        name: "cmd".into(),
        method: "test.cmd".into(),
        service: "test".into(),
        config_service: false,
        path: vec!["test".into()],
        summary: String::new(),
        description: String::new(),
        examples: Vec::new(),
        accepts,
        returns: None,
    }
}

/// A method taking one positional parameter called `name`.
fn positional(name: &str, schema: Option<&Value>) -> Command {
    let mut s = schema.cloned().unwrap_or_else(|| json!({}));
    s["_name_"] = json!(name);
    command(vec![s])
}

/// A method taking one object with the property `name` (`update`-like).
fn object(name: &str, schema: Option<&Value>) -> Command {
    command(vec![json!({
        "type": "object",
        "properties": {name: schema.cloned().unwrap_or_else(|| json!({}))},
    })])
}

/// The params a line gives, or the usage error's text.
fn params(cmd: &Command, line: &str) -> Result<Vec<Value>, String> {
    let words = split(line).map_err(|e| format!("syntax: {e}"))?;
    invocation(cmd, &words)
        .map(|i| i.params)
        .map_err(|e| e.to_string())
}

// -------------------------------------------------------------- properties

proptest! {
    #[test]
    fn splitting_never_panics(line in prop_oneof![any::<String>(), syntax_text()]) {
        let strict = split(&line);
        let lenient = split_lenient(&line);
        // Completion slices the line at each word's start.
        let mut last = None;
        for w in &lenient {
            prop_assert!(line.is_char_boundary(w.start) && w.start < line.len(), "{w:?}");
            prop_assert!(last.is_none_or(|l| l < w.start), "{lenient:?}");
            last = Some(w.start);
        }
        // On a line the strict splitter accepts, both agree.
        if let Ok(words) = strict {
            let texts: Vec<String> = lenient.into_iter().map(|w| w.text).collect();
            prop_assert_eq!(texts, words);
        }
    }

    /// Plain words come back as they are, whatever white space separates them.
    #[test]
    fn plain_words_split_at_white_space(
        words in vec("[A-Za-z0-9_.:/@+=%,-]{1,10}", 0..6),
        gaps in vec("[ \t\n\u{a0}\u{3000}]{1,3}", 6),
        lead in "[ \t]{0,2}",
    ) {
        let mut line = lead;
        for (w, g) in words.iter().zip(&gaps) {
            line.push_str(w);
            line.push_str(g);
        }
        prop_assert_eq!(split(&line), Ok(words));
    }

    /// `name=<compact JSON of v>` is one word, names `name`, and reads back
    /// as `v` under any schema admitting v's type, also through a whole
    /// invocation (a positional parameter and an object's property).
    #[test]
    fn json_values_read_back(name in name(), v in json_value()) {
        let json = compact(&v);
        let line = format!("{name}={json}");
        let words = split(&line);
        prop_assert_eq!(words.as_deref(), Ok(&[line.clone()][..]));
        prop_assert_eq!(split_assignment(&line), Some((name.as_str(), json.as_str())));
        for schema in schemas_admitting(&v) {
            let s = schema.as_ref();
            prop_assert_eq!(&value_for(&json, s.map(typed).as_ref()), &v, "schema {:?}", s);
            prop_assert_eq!(params(&positional(&name, s), &line), Ok(vec![v.clone()]));
            prop_assert_eq!(
                params(&object(&name, s), &line),
                Ok(vec![json!({name.clone(): v.clone()})])
            );
        }
        // Positionally too.
        prop_assert_eq!(params(&positional(&name, None), &json), Ok(vec![v.clone()]));
    }

    /// Digits stay the string typed for a string parameter: never a number,
    /// never losing a leading zero.
    #[test]
    fn digits_stay_strings_for_string_schemas(
        digits in prop_oneof!["[0-9]{1,24}", "0[0-9]{0,10}"],
        nullable in any::<bool>(),
    ) {
        let schema = if nullable {
            json!({"type": ["string", "null"]})
        } else {
            json!({"type": "string"})
        };
        let want = Value::String(digits.clone());
        prop_assert_eq!(&value_for(&digits, Some(&typed(&schema))), &want);
        let cmd = positional("token", Some(&schema));
        prop_assert_eq!(params(&cmd, &format!("token={digits}")), Ok(vec![want.clone()]));
        prop_assert_eq!(params(&cmd, &digits), Ok(vec![want.clone()]));
        prop_assert_eq!(
            params(&object("token", Some(&schema)), &format!("token={digits}")),
            Ok(vec![json!({"token": want})])
        );
    }

    /// Any i64 in decimal is that number for an integer parameter.
    #[test]
    fn integers_read_back_for_integer_schemas(n in any::<i64>(), bounded in any::<bool>()) {
        let schema = if bounded {
            json!({"type": "integer", "minimum": 6, "maximum": 8})
        } else {
            json!({"type": "integer"})
        };
        let text = n.to_string();
        prop_assert_eq!(value_for(&text, Some(&typed(&schema))), json!(n));
        let cmd = positional("count", Some(&schema));
        prop_assert_eq!(params(&cmd, &format!("count={text}")), Ok(vec![json!(n)]));
        prop_assert_eq!(params(&cmd, &text), Ok(vec![json!(n)]));
    }

    /// `name = value`, `name= value` and `name =value` are `name=value`.
    #[test]
    fn spaces_around_equals_do_not_matter(
        name in name(),
        value in value_word(),
        schema in select(vec![
            None,
            Some(json!({"type": "string"})),
            Some(json!({"type": ["string", "null"]})),
            Some(json!({"type": "integer"})),
            Some(json!({"type": "object"})),
        ]),
        as_object in any::<bool>(),
    ) {
        let cmd = if as_object {
            object(&name, schema.as_ref())
        } else {
            positional(&name, schema.as_ref())
        };
        let joined = params(&cmd, &format!("{name}={value}"));
        prop_assert!(joined.is_ok(), "{name}={value}: {joined:?}");
        for line in [
            format!("{name} = {value}"),
            format!("{name}= {value}"),
            format!("{name} ={value}"),
            format!("  {name}\t=  {value} "),
        ] {
            prop_assert_eq!(&params(&cmd, &line), &joined, "{}", line);
        }
    }
}
