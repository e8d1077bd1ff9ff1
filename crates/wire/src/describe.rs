//! The method-description document: what `core.get_services`,
//! `core.get_methods` and `core.describe_method` answer. The API writes it
//! and the CLI reads it through these same types; neither side looks keys
//! up in untyped JSON.
//!
//! Parameter and result schemas are a subset of JSON Schema (draft 7) plus
//! TrueNAS's own keys, which midcli reads: `_name_` (the parameter's name),
//! `_required_` (whether it must be given) and `_attrs_order_` (an
//! object's properties in order). `x-reprovision` marks a setting whose
//! change makes every provisioned authenticator app produce wrong codes.
//!
//! Key order is part of the format (clients and tests compare the text),
//! so [`JsonSchema`] writes its keys in a fixed order: an object or a
//! tagged union names itself (`_name_`, `_required_`) right after its
//! shape, any other schema after its `title`.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A JSON object whose keys keep their order: properties of an object
/// schema, the methods of `core.get_methods`, the services of
/// `core.get_services`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> Ordered<T> {
    pub fn get(&self, key: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds `value` under `key`, replacing an entry of that key in place.
    pub fn insert(&mut self, key: String, value: T) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }
}

impl<T> FromIterator<(String, T)> for Ordered<T> {
    fn from_iter<I: IntoIterator<Item = (String, T)>>(iter: I) -> Self {
        let mut out = Self::default();
        for (k, v) in iter {
            out.insert(k, v);
        }
        out
    }
}

impl<T> IntoIterator for Ordered<T> {
    type Item = (String, T);
    type IntoIter = std::vec::IntoIter<(String, T)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T> Extend<(String, T)> for Ordered<T> {
    fn extend<I: IntoIterator<Item = (String, T)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut out = Ordered::default();
                while let Some((k, v)) = access.next_entry::<String, T>()? {
                    out.insert(k, v);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(V(std::marker::PhantomData))
    }
}

/// One of JSON's types, as a schema's `type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    Null,
    Boolean,
    Integer,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    /// The name as written in a schema (`string`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::String => "string",
            Self::Array => "array",
            Self::Object => "object",
        }
    }

    /// Whether `value` is of this type.
    pub fn admits(self, value: &Value) -> bool {
        match self {
            Self::Null => value.is_null(),
            Self::Boolean => value.is_boolean(),
            Self::Integer => value.is_i64() || value.is_u64(),
            Self::Number => value.is_number(),
            Self::String => value.is_string(),
            Self::Array => value.is_array(),
            Self::Object => value.is_object(),
        }
    }
}

/// A schema's `type`: one name, or a list (`["string", "null"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Types {
    One(JsonType),
    Many(Vec<JsonType>),
}

impl Types {
    pub fn as_slice(&self) -> &[JsonType] {
        match self {
            Self::One(t) => std::slice::from_ref(t),
            Self::Many(ts) => ts,
        }
    }
}

/// A tagged union's `discriminator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discriminator {
    #[serde(rename = "propertyName")]
    pub property_name: String,
}

/// A parameter's or a result's schema. Every key is optional; a schema
/// with none admits anything.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct JsonSchema {
    #[serde(rename = "type")]
    pub types: Option<Types>,
    pub minimum: Option<i64>,
    pub maximum: Option<i64>,
    /// The strings admitted (`enum`).
    #[serde(rename = "enum")]
    pub choices: Option<Vec<String>>,
    /// The one string admitted (`const`: a tagged union's tag).
    #[serde(rename = "const")]
    pub constant: Option<String>,
    pub properties: Option<Ordered<JsonSchema>>,
    /// The properties an object must have.
    pub required: Option<Vec<String>>,
    #[serde(rename = "additionalProperties")]
    pub additional_properties: Option<bool>,
    pub items: Option<Box<JsonSchema>>,
    #[serde(rename = "oneOf")]
    pub one_of: Option<Vec<JsonSchema>>,
    /// Any of these shapes (a result that is a list or, asked for one
    /// entry, that entry).
    #[serde(rename = "anyOf")]
    pub any_of: Option<Vec<JsonSchema>>,
    pub discriminator: Option<Discriminator>,
    /// TrueNAS's `_name_`.
    #[serde(rename = "_name_")]
    pub name: Option<String>,
    /// TrueNAS's `_required_`: the parameter must be given.
    #[serde(rename = "_required_")]
    pub is_required: Option<bool>,
    /// TrueNAS's `_attrs_order_`.
    #[serde(rename = "_attrs_order_")]
    pub attrs_order: Option<Vec<String>>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// The default (`Some(Value::Null)` for an explicit `null`).
    #[serde(deserialize_with = "present")]
    pub default: Option<Value>,
    /// `x-reprovision`: changing this makes provisioned apps wrong.
    #[serde(rename = "x-reprovision")]
    pub reprovision: bool,
}

/// A key that is present is `Some`, even when its value is null.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl JsonSchema {
    /// The types admitted; empty when anything is.
    pub fn types(&self) -> &[JsonType] {
        self.types.as_ref().map_or(&[], Types::as_slice)
    }

    /// Whether `value` is of one of the types (any value when none is named).
    pub fn admits_type(&self, value: &Value) -> bool {
        let types = self.types();
        types.is_empty() || types.iter().any(|t| t.admits(value))
    }

    /// The parameter's name: `_name_`, else `title`.
    pub fn param_name(&self) -> Option<&str> {
        self.name.as_deref().or(self.title.as_deref())
    }

    /// Whether the parameter must be given (`_required_`).
    pub fn must_be_given(&self) -> bool {
        self.is_required.unwrap_or(false)
    }

    /// Whether property `key` of this object schema must be given.
    pub fn property_required(&self, key: &str) -> bool {
        self.required
            .as_ref()
            .is_some_and(|r| r.iter().any(|k| k == key))
    }

    /// Whether this object schema refuses keys it does not list.
    pub fn closed(&self) -> bool {
        self.additional_properties == Some(false)
    }
}

impl Serialize for JsonSchema {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        macro_rules! put {
            ($key:literal, $field:expr) => {
                if let Some(v) = &$field {
                    map.serialize_entry($key, v)?;
                }
            };
        }
        put!("type", self.types);
        let names_itself = self.properties.is_some() || self.one_of.is_some();
        if names_itself {
            put!("properties", self.properties);
            put!("required", self.required);
            put!("additionalProperties", self.additional_properties);
            put!("oneOf", self.one_of);
            put!("discriminator", self.discriminator);
            put!("_name_", self.name);
            put!("_required_", self.is_required);
            put!("_attrs_order_", self.attrs_order);
            put!("title", self.title);
        } else {
            put!("minimum", self.minimum);
            put!("maximum", self.maximum);
            put!("enum", self.choices);
            put!("const", self.constant);
            put!("items", self.items);
            put!("anyOf", self.any_of);
            put!("required", self.required);
            put!("additionalProperties", self.additional_properties);
            put!("_attrs_order_", self.attrs_order);
            put!("title", self.title);
            put!("_name_", self.name);
        }
        put!("description", self.description);
        put!("default", self.default);
        if !names_itself {
            put!("_required_", self.is_required);
        }
        if self.reprovision {
            map.serialize_entry("x-reprovision", &true)?;
        }
        map.end()
    }
}

/// `examples` of a method: CLI invocations, each ending in a newline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Examples {
    pub cli: Vec<String>,
}

/// One method as `core.get_methods` describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MethodDoc {
    pub description: String,
    pub cli_description: String,
    pub examples: Examples,
    pub no_auth_required: bool,
    pub filterable: bool,
    pub job: bool,
    pub roles: Vec<String>,
    pub cli_private: bool,
    /// One schema per positional parameter.
    pub accepts: Vec<JsonSchema>,
    /// The result's schema (one).
    pub returns: Vec<JsonSchema>,
}

/// `core.get_methods`'s answer: method name to description.
pub type MethodDocs = Ordered<MethodDoc>;

/// A service's kind: `config` services have one entry (`update` edits
/// it); `service` ones are plain groups of methods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceType {
    Config,
    #[default]
    Service,
}

/// A service's `config` member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    pub namespace: String,
    /// Dotted CLI path (`auth.two_factor`); null keeps it out of the CLI.
    pub cli_namespace: Option<String>,
    pub cli_description: String,
    pub private: bool,
    pub cli_private: bool,
}

/// One service as `core.get_services` describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceDoc {
    #[serde(rename = "type")]
    pub kind: ServiceType,
    pub config: ServiceConfig,
}

/// `core.get_services`'s answer: service name to description.
pub type ServiceDocs = Ordered<ServiceDoc>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schema_reads_back_what_it_wrote() {
        let text = r#"{"type":"object","properties":{"b":{"type":["string","null"],"title":"b","_name_":"b","default":null,"_required_":false},"a":{"type":"integer","minimum":6,"maximum":8,"title":"a","_name_":"a","_required_":true,"x-reprovision":true}},"required":["a"],"additionalProperties":false,"_name_":"data","_required_":false,"_attrs_order_":["b","a"],"title":"data"}"#;
        let s: JsonSchema = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), text);
        let props = s.properties.as_ref().unwrap();
        assert_eq!(props.keys().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(props.get("b").unwrap().default, Some(Value::Null));
        assert!(props.get("a").unwrap().reprovision);
        assert!(s.property_required("a") && !s.property_required("b"));
        assert!(s.closed());
        assert!(props.get("b").unwrap().admits_type(&Value::Null));
        assert!(!props.get("a").unwrap().admits_type(&json!("x")));
    }

    #[test]
    fn a_service_is_typed() {
        let v = json!({"type": "config", "config": {"namespace": "auth.twofactor",
            "cli_namespace": "auth.two_factor", "cli_description": "2FA",
            "private": false, "cli_private": false}});
        let s: ServiceDoc = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(s.kind, ServiceType::Config);
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
    }
}
