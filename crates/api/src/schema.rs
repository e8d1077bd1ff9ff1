//! Parameter and result schemas. One definition per argument serves twice:
//! [`Schema::validate`] checks input and produces TrueNAS's validation
//! messages, and [`Schema::to_json`] describes it for `core.get_methods` (and
//! so for the CLI's types, completion and `man`).

use serde_json::{Map, Value, json};
use wire::{ATTRIBUTE_REQUIRED, Discriminator, FIELD_NOT_EXPECTED, JsonSchema, JsonType, Types};

/// One validation problem: (attribute, message). The errno is always EINVAL.
pub type Problem = (String, String);

/// A JSON value's expected shape.
#[derive(Debug, Clone)]
pub enum Schema {
    Bool,
    /// An integer in `[min, max]`: a JSON integer, or a string of decimal
    /// digits. `6.0` and `1e1` are not integers (TrueNAS: `Not an
    /// integer`).
    Int {
        min: i64,
        max: i64,
    },
    /// A string; `nullable` also admits null.
    Str {
        nullable: bool,
    },
    /// One of these strings (TrueNAS's `Literal`, e.g. a `target`).
    Choice(&'static [&'static str]),
    /// An object with exactly these fields (others are "Field was not expected").
    Object(Vec<Field>),
    /// A list of items.
    List(Box<Schema>),
    /// An object whose `tag` field chooses its other fields (TrueNAS's
    /// discriminated unions, e.g. `auth.login_ex`'s `mechanism`).
    Tagged {
        tag: &'static str,
        variants: Vec<(&'static str, Vec<Field>)>,
    },
    /// `base`, and then a rule over the whole value that `base` cannot
    /// express; its message is reported at the value's own attribute.
    Rule {
        base: Box<Schema>,
        rule: fn(&Value) -> Result<(), String>,
    },
    /// Any of these shapes (results only: a query answers a list, or
    /// with `get` one entry).
    AnyOf(Vec<Schema>),
    /// Anything (described only).
    Any,
    /// An object whose keys depend on what it describes (results only: an
    /// audit record's detail).
    Dict,
    Null,
}

/// A field of an object, or a positional parameter of a method.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub schema: Schema,
    pub description: &'static str,
    /// Shown in `man` and the JSON schema; put in place of a missing value
    /// (at any depth) when [`Field::inject_default`] says so.
    pub default: Option<Value>,
    /// A missing value takes the default. Set for fields whose Rust type
    /// cannot say "absent" (not an `Option`): see [`crate::typed::field`].
    pub inject_default: bool,
    /// Null is admitted besides the schema's own type (set with
    /// [`Field::nullable`] before the schema is filled in).
    pub nullable: bool,
    /// A missing required parameter is "attribute required".
    pub required: bool,
    /// Changing this field makes every provisioned authenticator app
    /// produce wrong codes (described as `x-reprovision` for clients).
    pub reprovision: bool,
}

impl Field {
    pub fn new(name: &'static str, schema: Schema, description: &'static str) -> Self {
        Self {
            name,
            schema,
            description,
            default: None,
            inject_default: false,
            nullable: false,
            required: false,
            reprovision: false,
        }
    }

    /// Admits null too.
    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }

    /// Marks a field whose change requires provisioning apps again.
    pub fn reprovision(mut self) -> Self {
        self.reprovision = true;
        self
    }

    pub fn default(mut self, value: impl serde::Serialize) -> Self {
        self.default = serde_json::to_value(value).ok();
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

impl Schema {
    /// Checks `value` against the schema, coercing digit strings to integers.
    /// Problems are pushed with `attr` as the attribute; returns the value to
    /// use (meaningful only when no problem was pushed).
    pub fn validate(&self, value: &Value, attr: &str, problems: &mut Vec<Problem>) -> Value {
        let mut fail = |msg: &str| problems.push((attr.to_owned(), msg.to_owned()));
        match self {
            Self::Bool => {
                if !value.is_boolean() {
                    fail("Not a boolean");
                }
                value.clone()
            }
            Self::Int { min, max } => {
                let n = match value {
                    // Only a number written as an integer: serde_json keeps
                    // `6.0` and `1e1` as floats, and those are refused.
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                        s.parse::<i64>().ok()
                    }
                    _ => None,
                };
                match n {
                    None => {
                        fail("Not an integer");
                        value.clone()
                    }
                    Some(n) if n < *min || n > *max => {
                        fail(&format!("Should be between {min} and {max}"));
                        json!(n)
                    }
                    Some(n) => json!(n),
                }
            }
            Self::Str { nullable } => {
                if !(value.is_string() || (*nullable && value.is_null())) {
                    fail(if *nullable {
                        "Not a string or null"
                    } else {
                        "Not a string"
                    });
                }
                value.clone()
            }
            Self::Choice(choices) => {
                if !value.as_str().is_some_and(|v| choices.contains(&v)) {
                    fail(&one_of(choices));
                }
                value.clone()
            }
            Self::Object(fields) => {
                let Some(obj) = value.as_object() else {
                    fail("Not a dictionary");
                    return value.clone();
                };
                let mut out = Map::new();
                for (key, v) in obj {
                    let sub = format!("{attr}.{key}");
                    match fields.iter().find(|f| f.name == key) {
                        Some(f) => {
                            out.insert(key.clone(), f.schema.validate(v, &sub, problems));
                        }
                        None => problems.push((sub, FIELD_NOT_EXPECTED.into())),
                    }
                }
                for f in fields.iter().filter(|f| !obj.contains_key(f.name)) {
                    let sub = format!("{attr}.{}", f.name);
                    if f.required {
                        problems.push((sub, ATTRIBUTE_REQUIRED.into()));
                    } else if let Some(d) = f.default.as_ref().filter(|_| f.inject_default) {
                        out.insert(f.name.to_owned(), f.schema.validate(d, &sub, problems));
                    }
                }
                Value::Object(out)
            }
            Self::Tagged { tag, variants } => {
                let Some(obj) = value.as_object() else {
                    fail("Not a dictionary");
                    return value.clone();
                };
                let tag_attr = format!("{attr}.{tag}");
                let Some(given) = obj.get(*tag) else {
                    problems.push((tag_attr, ATTRIBUTE_REQUIRED.into()));
                    return value.clone();
                };
                let names: Vec<&'static str> = variants.iter().map(|(n, _)| *n).collect();
                let chosen = given
                    .as_str()
                    .and_then(|g| variants.iter().find(|(n, _)| *n == g));
                let Some((name, fields)) = chosen else {
                    problems.push((tag_attr, one_of(&names)));
                    return value.clone();
                };
                let mut rest = obj.clone();
                rest.shift_remove(*tag);
                let mut out =
                    Self::Object(fields.clone()).validate(&Value::Object(rest), attr, problems);
                if let Some(o) = out.as_object_mut() {
                    o.insert((*tag).to_owned(), Value::String((*name).to_owned()));
                }
                out
            }
            Self::Rule { base, rule } => {
                let before = problems.len();
                let out = base.validate(value, attr, problems);
                if problems.len() == before
                    && let Err(msg) = rule(&out)
                {
                    problems.push((attr.to_owned(), msg));
                }
                out
            }
            Self::List(item) => {
                let Some(items) = value.as_array() else {
                    fail("Not a list");
                    return value.clone();
                };
                Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| item.validate(v, &format!("{attr}.{i}"), problems))
                        .collect(),
                )
            }
            Self::AnyOf(shapes) => {
                let mut first = None;
                for shape in shapes {
                    let mut own = Vec::new();
                    let out = shape.validate(value, attr, &mut own);
                    if own.is_empty() {
                        return out;
                    }
                    first.get_or_insert(own);
                }
                problems.extend(first.unwrap_or_default());
                value.clone()
            }
            Self::Any => value.clone(),
            Self::Dict => {
                if !value.is_object() {
                    fail("Not a dictionary");
                }
                value.clone()
            }
            Self::Null => {
                if !value.is_null() {
                    fail("Not null");
                }
                Value::Null
            }
        }
    }

    /// JSON Schema (draft 7 subset) for introspection. An object schema
    /// also carries TrueNAS's `_name_`, `_required_` and `_attrs_order_`
    /// (midcli reads them); `name` is its `_name_` when no field names it.
    pub fn to_json(&self, name: &str) -> JsonSchema {
        let typed = |t: JsonType| JsonSchema {
            types: Some(Types::One(t)),
            ..JsonSchema::default()
        };
        match self {
            Self::Bool => typed(JsonType::Boolean),
            Self::Int { min, max } => JsonSchema {
                minimum: Some(*min),
                maximum: Some(*max),
                ..typed(JsonType::Integer)
            },
            Self::Str { nullable: false } => typed(JsonType::String),
            Self::Str { nullable: true } => JsonSchema {
                types: Some(Types::Many(vec![JsonType::String, JsonType::Null])),
                ..JsonSchema::default()
            },
            Self::Choice(choices) => JsonSchema {
                choices: Some(choices.iter().map(|c| (*c).to_owned()).collect()),
                ..typed(JsonType::String)
            },
            Self::Object(fields) => JsonSchema {
                properties: Some(
                    fields
                        .iter()
                        .map(|f| (f.name.to_owned(), f.to_json()))
                        .collect(),
                ),
                required: Some(
                    fields
                        .iter()
                        .filter(|f| f.required)
                        .map(|f| f.name.to_owned())
                        .collect(),
                ),
                additional_properties: Some(false),
                name: Some(name.to_owned()),
                is_required: Some(false),
                attrs_order: Some(fields.iter().map(|f| f.name.to_owned()).collect()),
                ..typed(JsonType::Object)
            },
            Self::List(item) => JsonSchema {
                items: Some(Box::new(item.to_json(&format!("{name}_item")))),
                ..typed(JsonType::Array)
            },
            Self::Tagged { tag, variants } => {
                let one = variants
                    .iter()
                    .map(|(n, fields)| {
                        let mut v = Self::Object(fields.clone()).to_json(&format!("{name}_{n}"));
                        let tag_schema = JsonSchema {
                            constant: Some((*n).to_owned()),
                            name: Some((*tag).to_owned()),
                            is_required: Some(true),
                            ..typed(JsonType::String)
                        };
                        // The tag comes last among the properties but
                        // first in the lists of names.
                        if let Some(props) = v.properties.as_mut() {
                            props.insert((*tag).to_owned(), tag_schema);
                        }
                        for list in [v.required.as_mut(), v.attrs_order.as_mut()]
                            .into_iter()
                            .flatten()
                        {
                            list.insert(0, (*tag).to_owned());
                        }
                        v
                    })
                    .collect();
                JsonSchema {
                    one_of: Some(one),
                    discriminator: Some(Discriminator {
                        property_name: (*tag).to_owned(),
                    }),
                    name: Some(name.to_owned()),
                    is_required: Some(false),
                    ..JsonSchema::default()
                }
            }
            Self::Rule { base, .. } => base.to_json(name),
            Self::AnyOf(shapes) => JsonSchema {
                any_of: Some(
                    shapes
                        .iter()
                        .enumerate()
                        .map(|(i, s)| s.to_json(&format!("{name}_{i}")))
                        .collect(),
                ),
                ..JsonSchema::default()
            },
            Self::Any => JsonSchema::default(),
            Self::Dict => JsonSchema {
                additional_properties: Some(true),
                ..typed(JsonType::Object)
            },
            Self::Null => typed(JsonType::Null),
        }
    }

    /// The same schema admitting null too (only strings can say so in
    /// their own type; anything else is left as it is).
    pub fn or_null(self) -> Self {
        match self {
            Self::Str { .. } => Self::Str { nullable: true },
            other => other,
        }
    }
}

/// TrueNAS's message for a value outside a set of strings.
fn one_of(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
    let list = match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    format!("Input should be {list}")
}

impl Field {
    /// The field's JSON schema with its title, description and default.
    pub fn to_json(&self) -> JsonSchema {
        let mut v = self.schema.to_json(self.name);
        v.title = Some(self.name.to_owned());
        v.name = Some(self.name.to_owned());
        if !self.description.is_empty() {
            v.description = Some(self.description.to_owned());
        }
        if let Some(d) = &self.default {
            v.default = Some(d.clone());
        }
        v.is_required = Some(self.required);
        v.reprovision = self.reprovision;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(schema: &Schema, v: Value) -> (Value, Vec<Problem>) {
        let mut p = Vec::new();
        let out = schema.validate(&v, "x", &mut p);
        (out, p)
    }

    #[test]
    fn integers_accept_digit_strings_and_check_ranges() {
        let s = Schema::Int { min: 6, max: 8 };
        assert_eq!(check(&s, json!(7)), (json!(7), vec![]));
        assert_eq!(check(&s, json!("7")), (json!(7), vec![]));
        assert_eq!(check(&s, json!("07")).0, json!(7));
        let float = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        for bad in [
            float("7.0"),
            float("1e1"),
            float("7e0"),
            float("-0.0"),
            json!("7.0"),
            json!(" 7"),
            json!("seven"),
            json!(7.5),
            json!(true),
            json!(null),
            json!("-7"),
            json!(""),
        ] {
            assert_eq!(
                check(&s, bad.clone()).1,
                vec![("x".into(), "Not an integer".into())],
                "{bad}"
            );
        }
        assert_eq!(
            check(&s, json!(5)).1,
            vec![("x".into(), "Should be between 6 and 8".into())]
        );
    }

    #[test]
    fn objects_report_every_problem() {
        let s = Schema::Object(vec![
            Field::new("a", Schema::Bool, ""),
            Field::new(
                "b",
                Schema::Object(vec![Field::new("ssh", Schema::Bool, "")]),
                "",
            ),
        ]);
        let (_, p) = check(
            &s,
            json!({"a": 1, "b": {"ftp": true, "ssh": "yes"}, "c": 0}),
        );
        assert_eq!(
            p,
            vec![
                ("x.a".into(), "Not a boolean".into()),
                ("x.b.ftp".into(), "Field was not expected".into()),
                ("x.b.ssh".into(), "Not a boolean".into()),
                ("x.c".into(), "Field was not expected".into()),
            ]
        );
        assert_eq!(
            check(&s, json!([])).1,
            vec![("x".into(), "Not a dictionary".into())]
        );
    }

    #[test]
    fn describes_itself() {
        let f =
            Field::new("otp_digits", Schema::Int { min: 6, max: 8 }, "digits").default(json!(6));
        let j = serde_json::to_value(f.to_json()).unwrap();
        assert_eq!(j["_name_"], "otp_digits");
        assert_eq!(j["minimum"], 6);
        assert_eq!(j["maximum"], 8);
        assert_eq!(j["default"], 6);
        assert_eq!(j["title"], "otp_digits");
    }

    #[test]
    fn objects_carry_name_required_and_attribute_order() {
        let inner = Schema::Object(vec![Field::new("ssh", Schema::Bool, "")]);
        let s = Schema::Object(vec![
            Field::new("zeta", Schema::Bool, "").required(),
            Field::new("alpha", inner, ""),
        ]);
        let j =
            serde_json::to_value(Field::new("data", s.clone(), "").required().to_json()).unwrap();
        assert_eq!(
            (&j["_name_"], &j["_required_"], &j["_attrs_order_"]),
            (&json!("data"), &json!(true), &json!(["zeta", "alpha"]))
        );
        let nested = &j["properties"]["alpha"];
        assert_eq!(
            (
                &nested["_name_"],
                &nested["_required_"],
                &nested["_attrs_order_"]
            ),
            (&json!("alpha"), &json!(false), &json!(["ssh"]))
        );
        // Unnamed (a result, list items): named after their place.
        let list = serde_json::to_value(Schema::List(Box::new(s)).to_json("rows")).unwrap();
        assert_eq!(list["items"]["_name_"], "rows_item");
        assert_eq!(list["items"]["_attrs_order_"], json!(["zeta", "alpha"]));
    }

    #[test]
    fn choices() {
        let s = Schema::Choice(&["WS", "CLI", "REST"]);
        assert_eq!(check(&s, json!("CLI")), (json!("CLI"), vec![]));
        for bad in [json!("cli"), json!(null), json!(1)] {
            assert_eq!(
                check(&s, bad).1,
                vec![("x".into(), "Input should be 'WS', 'CLI' or 'REST'".into())]
            );
        }
        assert_eq!(
            serde_json::to_value(s.to_json("t")).unwrap(),
            json!({"type": "string", "enum": ["WS", "CLI", "REST"]})
        );
    }
}
