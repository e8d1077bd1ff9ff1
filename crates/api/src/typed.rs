//! Typed method arguments: one definition per argument struct gives the
//! Rust type the handler receives, the [`Schema`] that validates input
//! (every problem at once, TrueNAS's messages, defaults at every depth) and
//! the JSON schema `core.get_methods` shows.
//!
//! A struct is declared with [`args!`](crate::args): its fields' types
//! describe themselves ([`Described`]): `bool`, `String`, the checked
//! newtypes `Digits`/`Interval`/`Window` (their schema's range is their
//! constructor's range), lists, nested argument structs. Input is validated
//! against the schema, then deserialised with serde into the struct, the
//! newtypes through their checked constructors; since both read the same
//! bounds, a value the schema accepts always constructs the type (the
//! property tests in `tests/typed.rs` hold that).
//!
//! Results are typed the same way: a handler answers a [`Reply`] type,
//! whose `Serialize` gives the JSON and whose [`Reply::returns`] gives the
//! `returns` schema; structs are declared with [`reply!`](crate::reply).
//! Untyped JSON is no result type, so no method can answer outside a
//! described shape without a `Reply` of its own.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::ApiError;
use crate::schema::{Field, Schema};

/// A type that an argument, or a field of one, can have.
pub trait Described {
    /// Its schema.
    fn schema() -> Schema;
    /// Whether a field of this type may be absent (`Option`). Absent
    /// fields of other types are required, or take their default.
    const OPTIONAL: bool = false;
}

/// An object argument: its fields, in order.
pub trait Fields {
    fn fields() -> Vec<Field>;
}

/// A method's positional parameters, as one struct (or `()` for none).
pub trait Params: Sized {
    /// The positional parameters, described.
    fn accepts() -> Vec<Field>;
    /// The struct from values that passed [`crate::Method::validate`],
    /// one per parameter of `accepts` (what [`Params::accepts`] gave) in
    /// order.
    fn from_validated(accepts: &[Field], values: Vec<Value>) -> Result<Self, ApiError>;
}

impl Params for () {
    fn accepts() -> Vec<Field> {
        Vec::new()
    }

    fn from_validated(_: &[Field], _: Vec<Value>) -> Result<Self, ApiError> {
        Ok(())
    }
}

/// A struct declared with [`args!`](crate::args) takes the positional
/// parameters as its fields.
impl<T: Fields + DeserializeOwned> Params for T {
    fn accepts() -> Vec<Field> {
        T::fields()
    }

    fn from_validated(accepts: &[Field], values: Vec<Value>) -> Result<Self, ApiError> {
        let named: Map<String, Value> = accepts
            .iter()
            .map(|f| f.name.to_owned())
            .zip(values)
            .collect();
        parse_validated(Value::Object(named))
    }
}

/// Deserialises a value the schema accepted. A failure here means the
/// schema and the type disagree, which the property tests rule out; it is
/// reported as an internal error, never as the caller's fault.
pub(crate) fn parse_validated<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value)
        .map_err(|e| ApiError::Internal(format!("schema and argument type disagree: {e}")))
}

/// A field of type `T` named `name`: `spec` gives its description and any
/// default, `reprovision` or `nullable` mark; the schema comes from `T`.
/// Required unless `T` is an `Option` or a default is given; the default
/// of a non-`Option` field is put in place of a missing value.
pub fn field<T: Described>(name: &'static str, spec: Field) -> Field {
    let schema = if spec.nullable {
        T::schema().or_null()
    } else {
        T::schema()
    };
    let has_default = spec.default.is_some();
    Field {
        name,
        schema,
        required: spec.required || (!T::OPTIONAL && !has_default),
        inject_default: !T::OPTIONAL && has_default,
        ..spec
    }
}

/// The start of a field's specification: its description.
pub fn doc(description: &'static str) -> Field {
    Field::new("", Schema::Any, description)
}

/// Declares an argument struct and, from the same field list, its schema:
///
/// ```text
/// args! {
///     /// `auth.twofactor.verify`'s parameters.
///     pub(crate) struct VerifyArgs {
///         token: Option<String> => doc("The code").nullable().required(),
///     }
/// }
/// ```
#[macro_export]
macro_rules! args {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty => $spec:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        $vis struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::typed::Fields for $name {
            fn fields() -> Vec<$crate::schema::Field> {
                vec![$( $crate::typed::field::<$ty>(stringify!($field), $spec) ),*]
            }
        }

        impl $crate::typed::Described for $name {
            fn schema() -> $crate::schema::Schema {
                $crate::schema::Schema::Object(<Self as $crate::typed::Fields>::fields())
            }
        }
    };
}

impl Described for bool {
    fn schema() -> Schema {
        Schema::Bool
    }
}

impl Described for String {
    fn schema() -> Schema {
        Schema::Str { nullable: false }
    }
}

/// Anything: an argument whose shape is the caller's (a filter's operand).
impl Described for Value {
    fn schema() -> Schema {
        Schema::Any
    }
}

/// A count: any integer from 0 that JSON and SQLite both hold.
impl Described for u64 {
    fn schema() -> Schema {
        Schema::Int {
            min: 0,
            max: i64::MAX,
        }
    }
}

impl<T: Described> Described for Option<T> {
    fn schema() -> Schema {
        T::schema()
    }
    const OPTIONAL: bool = true;
}

impl<T: Described> Described for Vec<T> {
    fn schema() -> Schema {
        Schema::List(Box::new(T::schema()))
    }
}

macro_rules! bounded_schema {
    ($($ty:ty),*) => {$(
        /// The constructor's own range, so the two cannot disagree.
        impl Described for $ty {
            fn schema() -> Schema {
                Schema::Int {
                    min: <$ty>::MIN.into(),
                    max: <$ty>::MAX.into(),
                }
            }
        }
    )*};
}

bounded_schema!(service::Digits, service::Interval, service::Window);

/// An integer in `[MIN, MAX]` (a count, a limit, a time), checked when
/// deserialised like the `otp` newtypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranged<const MIN: i64, const MAX: i64>(i64);

impl<const MIN: i64, const MAX: i64> Ranged<MIN, MAX> {
    pub fn new(n: i64) -> Option<Self> {
        (MIN..=MAX).contains(&n).then_some(Self(n))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl<'de, const MIN: i64, const MAX: i64> serde::Deserialize<'de> for Ranged<MIN, MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Self::new(n)
            .ok_or_else(|| serde::de::Error::custom(format!("{n} is not between {MIN} and {MAX}")))
    }
}

impl<const MIN: i64, const MAX: i64> Described for Ranged<MIN, MAX> {
    fn schema() -> Schema {
        Schema::Int { min: MIN, max: MAX }
    }
}

/// A password: read only through `expose_secret`, wiped when dropped,
/// never shown by `Debug`; deserialised straight into its secret box.
impl Described for service::SecretString {
    fn schema() -> Schema {
        Schema::Str { nullable: false }
    }
}

/// What a handler answers, and how long the answer must wait: a wrong
/// password is answered at one deadline from the start of its check,
/// which a transport waits out without holding a thread. A handler
/// answers its result type `T`; the method table turns it into JSON.
#[derive(Debug)]
pub struct Answer<T = Value> {
    pub result: Result<T, ApiError>,
    pub delay: Duration,
}

impl<T> Answer<T> {
    /// An answer that waits `delay`.
    pub fn after(result: Result<T, ApiError>, delay: Duration) -> Self {
        Self { result, delay }
    }
}

impl<T> From<Result<T, ApiError>> for Answer<T> {
    fn from(result: Result<T, ApiError>) -> Self {
        Self::after(result, Duration::ZERO)
    }
}

/// A method's result, or a field of one: one type gives both the JSON
/// the method answers (its `Serialize`) and the `returns` schema that
/// `core.get_methods` shows, so the two cannot drift apart. Structs are
/// declared with [`reply!`](crate::reply); debug builds also check every
/// answer against its schema.
pub trait Reply: Serialize {
    /// The schema of this type's JSON.
    fn returns() -> Schema;
}

/// A result as the JSON the method answers.
pub(crate) fn to_json(reply: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(reply).map_err(|e| ApiError::Internal(format!("result not JSON: {e}")))
}

/// A method's result as its handler gave it, not yet written out: an
/// in-process caller reads it as JSON ([`Outcome::to_value`]); a transport
/// writes it straight into the text of its response
/// ([`Outcome::response`]), with no JSON tree built and torn down in
/// between. A secret in it is held in a wiping type, wiped when the
/// outcome is dropped; the response text is a [`wire::WipingBuffer`].
pub struct Outcome(Box<dyn Encode>);

/// What [`Outcome`] needs of a result type.
trait Encode {
    fn to_value(&self) -> Result<Value, ApiError>;
    fn response(&self, id: &wire::Id) -> Result<wire::WipingBuffer, ApiError>;
}

impl<R: Serialize> Encode for R {
    fn to_value(&self) -> Result<Value, ApiError> {
        to_json(self)
    }

    fn response(&self, id: &wire::Id) -> Result<wire::WipingBuffer, ApiError> {
        wire::response_ok_of(id, self)
            .map_err(|e| ApiError::Internal(format!("result not JSON: {e}")))
    }
}

/// Never the result itself (it may hold a secret).
impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outcome(..)")
    }
}

impl Outcome {
    pub(crate) fn new<R: Serialize + 'static>(result: R) -> Self {
        Self(Box::new(result))
    }

    /// The result as JSON.
    pub fn to_value(&self) -> Result<Value, ApiError> {
        self.0.to_value()
    }

    /// The whole response to request `id` (`{"jsonrpc":"2.0","result":…,
    /// "id":…}`), written into a buffer that is wiped when dropped.
    pub fn response(&self, id: &wire::Id) -> Result<wire::WipingBuffer, ApiError> {
        self.0.response(id)
    }
}

/// A field of a result, of type `T`, named `name`: `spec` gives its
/// description (and any default shown); the schema comes from `T`.
pub fn reply_field<T: Reply>(name: &'static str, spec: Field) -> Field {
    Field {
        name,
        schema: T::returns(),
        ..spec
    }
}

/// The fields a `reply!` struct's field contributes to its object: itself,
/// or with [`flat`] the fields of its own object (serde's `flatten`).
pub fn reply_fields<T: Reply>(name: &'static str, spec: Field) -> Vec<Field> {
    if spec.name == FLATTENED {
        match T::returns() {
            Schema::Object(fields) => fields,
            // An optional flattened object: its fields, present or absent
            // together (none of them is required).
            Schema::AnyOf(mut alts)
                if alts.len() == 2
                    && matches!(alts[1], Schema::Null)
                    && matches!(alts[0], Schema::Object(_)) =>
            {
                match alts.swap_remove(0) {
                    Schema::Object(fields) => fields,
                    other => vec![Field::new(name, other, spec.description)],
                }
            }
            other => vec![Field::new(name, other, spec.description)],
        }
    } else {
        vec![reply_field::<T>(name, spec)]
    }
}

/// Marks a flattened field's specification (see [`flat`]).
const FLATTENED: &str = "..";

/// The specification of a `reply!` field whose own fields are spliced
/// into the enclosing object; the field needs `#[serde(flatten)]`.
pub fn flat() -> Field {
    Field::new(FLATTENED, Schema::Any, "")
}

/// Declares a result struct and, from the same field list, its `returns`
/// schema; the fields are answered in the order written:
///
/// ```text
/// reply! {
///     /// `auth.me`'s `privilege`.
///     pub(crate) struct Privilege {
///         roles: Vec<&'static str> => doc("Roles"),
///         web_shell: bool => doc("Web shell access"),
///     }
/// }
/// ```
#[macro_export]
macro_rules! reply {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty => $spec:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(serde::Serialize)]
        $vis struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::typed::Reply for $name {
            fn returns() -> $crate::schema::Schema {
                let fields: Vec<Vec<$crate::schema::Field>> = vec![
                    $( $crate::typed::reply_fields::<$ty>(stringify!($field), $spec) ),*
                ];
                $crate::schema::Schema::Object(fields.concat())
            }
        }
    };
}

impl Reply for bool {
    fn returns() -> Schema {
        Schema::Bool
    }
}

impl Reply for String {
    fn returns() -> Schema {
        Schema::Str { nullable: false }
    }
}

impl Reply for &'static str {
    fn returns() -> Schema {
        Schema::Str { nullable: false }
    }
}

/// Text that is wiped when the answer is dropped (a secret in base32).
impl Reply for zeroize::Zeroizing<String> {
    fn returns() -> Schema {
        Schema::Str { nullable: false }
    }
}

/// A Key URI (`otpauth://…`): a string.
impl Reply for service::ProvisioningUri {
    fn returns() -> Schema {
        Schema::Str { nullable: false }
    }
}

/// Nothing: `null`.
impl Reply for () {
    fn returns() -> Schema {
        Schema::Null
    }
}

/// A count: any integer from 0 that JSON and SQLite both hold.
impl Reply for u64 {
    fn returns() -> Schema {
        <Self as Described>::schema()
    }
}

/// A user or group id.
impl Reply for u32 {
    fn returns() -> Schema {
        Schema::Int {
            min: 0,
            max: i64::from(u32::MAX),
        }
    }
}

/// A value or null. A nullable string says so in its own type.
impl<T: Reply> Reply for Option<T> {
    fn returns() -> Schema {
        match T::returns() {
            Schema::Str { .. } => Schema::Str { nullable: true },
            other => Schema::AnyOf(vec![other, Schema::Null]),
        }
    }
}

impl<T: Reply> Reply for Vec<T> {
    fn returns() -> Schema {
        Schema::List(Box::new(T::returns()))
    }
}

macro_rules! bounded_reply {
    ($($ty:ty),*) => {$(
        /// Answered in the range it is constructed in.
        impl Reply for $ty {
            fn returns() -> Schema {
                <$ty as Described>::schema()
            }
        }
    )*};
}

bounded_reply!(service::Digits, service::Interval, service::Window);

/// An integer a result promises to keep in `[MIN, MAX]` (a count bounded
/// by a constant of the service, a row number). It is not checked when
/// made: debug builds hold every answer to its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct InRange<const MIN: i64, const MAX: i64>(pub i64);

impl<const MIN: i64, const MAX: i64> Reply for InRange<MIN, MAX> {
    fn returns() -> Schema {
        Schema::Int { min: MIN, max: MAX }
    }
}

/// An object whose keys depend on what it describes (an audit record's
/// detail, by event).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Dict(pub Map<String, Value>);

impl Reply for Dict {
    fn returns() -> Schema {
        Schema::Dict
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::methods::registry;

    /// Values shaped by `schema`: mostly what it accepts, with boundary
    /// numbers, digit strings, missing and unexpected fields, wrong types.
    fn values(schema: &Schema) -> BoxedStrategy<Value> {
        let junk = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..12).prop_map(Value::from),
            prop::sample::select(vec!["=", "!=", "in", "^", "x", "", "7", "CLI"])
                .prop_map(Value::from),
        ];
        let any_value = prop_oneof![
            3 => junk.clone(),
            1 => prop::collection::vec(junk.clone(), 0..4).prop_map(Value::from),
            1 => (
                prop::sample::select(vec!["username", "uid"]),
                prop::sample::select(vec!["=", "!=", "in", "^", ">"]),
                prop_oneof![junk.clone(), prop::collection::vec(junk.clone(), 0..3).prop_map(Value::from)],
            )
                .prop_map(|(f, o, v)| json!([f, o, v])),
        ];
        match schema {
            Schema::Bool => {
                prop_oneof![4 => any::<bool>().prop_map(Value::from), 1 => junk].boxed()
            }
            Schema::Int { min, max } => {
                let (min, max) = (*min, *max);
                prop_oneof![
                    4 => (min..=max).prop_map(Value::from),
                    2 => prop::sample::select(vec![min, max, min.saturating_sub(1), max.saturating_add(1), 0, -1, i64::MAX, i64::MIN])
                        .prop_map(Value::from),
                    1 => (min..=max).prop_map(|n| Value::from(n.to_string())),
                    1 => prop::sample::select(vec!["7.0", "1e1", "-0", " 7", "07"]).prop_map(|t| serde_json::from_str(t).unwrap_or(Value::from(t))),
                    1 => junk,
                ]
                .boxed()
            }
            Schema::Str { .. } => {
                prop_oneof![4 => "[a-z0-9 ]{0,8}".prop_map(Value::from), 1 => junk].boxed()
            }
            Schema::Choice(choices) => prop_oneof![
                4 => prop::sample::select(choices.to_vec()).prop_map(Value::from),
                1 => junk,
            ]
            .boxed(),
            Schema::Object(fields) => object(fields.clone(), None, junk),
            Schema::Tagged { tag, variants } => {
                let each: Vec<BoxedStrategy<Value>> = variants
                    .iter()
                    .map(|(name, fields)| object(fields.clone(), Some((tag, name)), junk.clone()))
                    .collect();
                prop::strategy::Union::new(each).boxed()
            }
            Schema::List(item) => prop::collection::vec(values(item), 0..4)
                .prop_map(Value::from)
                .boxed(),
            Schema::Rule { base, .. } => values(base),
            Schema::AnyOf(shapes) => {
                prop::strategy::Union::new(shapes.iter().map(values).collect::<Vec<_>>()).boxed()
            }
            Schema::Any => any_value.boxed(),
            Schema::Dict => prop_oneof![Just(json!({})), Just(json!({"a": 1})), junk,].boxed(),
            Schema::Null => Just(Value::Null).boxed(),
        }
    }

    /// An object of `fields`: each present (valid-ish) or absent, now and
    /// then an unexpected key; with `tag`, that field set to its variant.
    fn object(
        fields: Vec<Field>,
        tag: Option<(&'static str, &'static str)>,
        junk: impl Strategy<Value = Value> + Clone + 'static,
    ) -> BoxedStrategy<Value> {
        let each: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
            .into_iter()
            .map(|f| {
                let name = f.name.to_owned();
                let mut v = values(&f.schema);
                if f.nullable || matches!(f.schema, Schema::Str { nullable: true }) {
                    v = prop_oneof![4 => v, 1 => Just(Value::Null)].boxed();
                }
                prop::option::weighted(0.7, v.prop_map(move |v| (name.clone(), v))).boxed()
            })
            .collect();
        (each, prop::option::weighted(0.1, junk))
            .prop_map(move |(kv, extra)| {
                let mut m: Map<String, Value> = kv.into_iter().flatten().collect();
                if let Some(extra) = extra {
                    m.insert("unexpected".into(), extra);
                }
                if let Some((tag, name)) = tag {
                    m.insert(tag.into(), Value::from(name));
                }
                Value::Object(m)
            })
            .boxed()
    }

    /// For every method: whatever its schema accepts, its handler's
    /// parameter type is constructed from (the newtypes included), so
    /// schema and type cannot disagree.
    #[test]
    fn every_value_a_schema_accepts_constructs_the_parameter_type() {
        use proptest::test_runner::{Config, TestRunner};
        for m in &registry().methods {
            let params: Vec<BoxedStrategy<Value>> =
                m.accepts().iter().map(|f| values(&f.schema)).collect();
            let accepted = std::cell::Cell::new(0u32);
            let mut runner = TestRunner::new(Config {
                cases: 300,
                failure_persistence: None,
                ..Config::default()
            });
            runner
                .run(&params, |args| {
                    for n in 0..=args.len() {
                        let given = args[..n].to_vec();
                        if let Ok(valid) = m.validate(given.clone()) {
                            accepted.set(accepted.get() + 1);
                            let parsed = (m.parse)(m, valid.clone());
                            prop_assert!(
                                parsed.is_ok(),
                                "{given:?} passed the schema as {valid:?} but did not parse: {parsed:?}"
                            );
                        }
                    }
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{}: {e}", m.name));
            assert!(
                accepted.get() > 0,
                "{}: no generated value was accepted",
                m.name
            );
        }
    }

    proptest! {
        /// Each checked newtype's schema admits exactly what its
        /// constructor admits.
        #[test]
        fn newtype_schemas_are_their_constructors(n in prop_oneof![-20i64..4000, any::<i64>()]) {
            fn agrees<T: Described + serde::de::DeserializeOwned>(n: i64) -> Result<(), TestCaseError> {
                let mut problems = Vec::new();
                T::schema().validate(&json!(n), "x", &mut problems);
                let built = serde_json::from_value::<T>(json!(n)).is_ok();
                prop_assert_eq!(problems.is_empty(), built, "{}", n);
                Ok(())
            }
            agrees::<service::Digits>(n)?;
            agrees::<service::Interval>(n)?;
            agrees::<service::Window>(n)?;
            agrees::<Ranged<1, 10_000>>(n)?;
        }
    }

    /// No method's `returns` says "anything" at any depth: every result's
    /// shape is described by its type.
    #[test]
    fn no_result_is_described_as_anything() {
        fn walk(schema: &Schema, at: &str, found: &mut Vec<String>) {
            match schema {
                Schema::Any => found.push(at.to_owned()),
                Schema::Object(fields) => {
                    for f in fields {
                        walk(&f.schema, &format!("{at}.{}", f.name), found);
                    }
                }
                Schema::Tagged { variants, .. } => {
                    for (name, fields) in variants {
                        for f in fields {
                            walk(&f.schema, &format!("{at}<{name}>.{}", f.name), found);
                        }
                    }
                }
                Schema::List(item) => walk(item, &format!("{at}[]"), found),
                Schema::Rule { base, .. } => walk(base, at, found),
                Schema::AnyOf(shapes) => {
                    for (i, s) in shapes.iter().enumerate() {
                        walk(s, &format!("{at}|{i}"), found);
                    }
                }
                Schema::Bool
                | Schema::Int { .. }
                | Schema::Str { .. }
                | Schema::Choice(_)
                | Schema::Dict
                | Schema::Null => {}
            }
        }
        let mut found = Vec::new();
        for m in &registry().methods {
            walk(&(m.returns)(), m.name, &mut found);
        }
        assert_eq!(found, Vec::<String>::new());
    }

    /// Every default, at any depth, passes its own schema.
    #[test]
    fn every_default_is_valid() {
        fn walk(fields: &[Field], at: &str, seen: &mut usize) {
            for f in fields {
                let attr = format!("{at}.{}", f.name);
                if let Some(d) = &f.default {
                    *seen += 1;
                    let mut problems = Vec::new();
                    f.schema.validate(d, &attr, &mut problems);
                    assert!(problems.is_empty(), "{attr}: default {d}: {problems:?}");
                }
                match &f.schema {
                    Schema::Object(inner) => walk(inner, &attr, seen),
                    Schema::Tagged { variants, .. } => {
                        for (_, inner) in variants {
                            walk(inner, &attr, seen);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut seen = 0;
        for m in &registry().methods {
            walk(m.accepts(), m.name, &mut seen);
        }
        assert!(seen >= 10, "only {seen} defaults found");
    }

    /// Defaults are put in place inside objects too, not only for missing
    /// positional parameters.
    #[test]
    fn defaults_apply_inside_objects() {
        let reg = registry();
        let valid = |method: &str, args: Value| {
            let m = reg.method(method).expect(method);
            m.validate(args.as_array().cloned().unwrap_or_default())
                .expect(method)
        };
        // A missing object parameter, and an empty one, both get its fields' defaults.
        assert_eq!(valid("audit.query", json!([])), vec![json!({"limit": 50})]);
        assert_eq!(
            valid("audit.query", json!([{"event": "auth.login"}])),
            vec![json!({"event": "auth.login", "limit": 50})]
        );
        assert_eq!(
            valid("auth.twofactor.update", json!([{"services": {}}])),
            vec![json!({"services": {"ssh": false}})]
        );
        // Update's other defaults are only shown: a missing key stays
        // missing, so it does not change.
        assert_eq!(
            valid("auth.twofactor.update", json!([{"enabled": true}])),
            vec![json!({"enabled": true})]
        );
        let login = valid(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": "a", "password": "p"}]),
        );
        assert_eq!(login[0]["login_options"], json!({"user_info": true}));
        let q = valid("user.query", json!([[], {"limit": 2}]));
        assert_eq!(
            q[1],
            json!({"limit": 2, "get": false, "offset": 0, "order_by": []})
        );
    }

    #[test]
    fn tagged_unions_report_the_tag_and_the_chosen_variant() {
        let reg = registry();
        let problems = |method: &str, args: Value| match reg
            .method(method)
            .expect(method)
            .validate(args.as_array().cloned().unwrap_or_default())
        {
            Err(ApiError::Validation(p)) => p,
            other => panic!("{method}: {other:?}"),
        };
        let p = |a: &str, m: &str| (a.to_owned(), m.to_owned());
        assert_eq!(
            problems("auth.login_ex", json!([{"username": "a"}])),
            vec![p("auth_login_ex.mechanism", "attribute required")]
        );
        assert_eq!(
            problems("auth.login_ex", json!([{"mechanism": "API_KEY_PLAIN"}])),
            vec![p(
                "auth_login_ex.mechanism",
                "Input should be 'PASSWORD_PLAIN', 'OTP_TOKEN' or 'TOKEN_PLAIN'"
            )]
        );
        assert_eq!(
            problems(
                "auth.login_ex",
                json!([{"mechanism": "PASSWORD_PLAIN", "username": 5, "otp_token": "1"}])
            ),
            vec![
                p("auth_login_ex.username", "Not a string"),
                p("auth_login_ex.otp_token", "Field was not expected"),
                p("auth_login_ex.password", "attribute required"),
            ]
        );
        assert_eq!(
            problems(
                "auth.login_ex_continue",
                json!([{"mechanism": "PASSWORD_PLAIN"}])
            ),
            vec![p(
                "auth_login_ex_continue.mechanism",
                "Input should be 'OTP_TOKEN'"
            )]
        );
    }

    #[test]
    fn a_password_argument_is_not_shown() {
        use service::ExposeSecret;
        let reg = registry();
        let m = reg.method("auth.login").expect("auth.login");
        let values = m
            .validate(vec![json!("alice"), json!("hunter2"), json!("492039")])
            .expect("valid");
        let a: crate::methods::LoginArgs =
            Params::from_validated(m.accepts(), values).expect("parses");
        assert_eq!(a.password.expose_secret(), "hunter2");
        assert!(!format!("{:?}", a.password).contains("hunter2"));
        // The code beside it is typed as a code: wiped, not shown.
        let code = a.otp_token.as_ref().map(crate::Code::expose);
        assert_eq!(code, Some("492039"));
        assert!(!format!("{:?}", a.otp_token).contains("492039"));
    }
}
