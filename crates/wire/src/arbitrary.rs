//! Proptest strategies for JSON, shared by the property tests of every
//! crate that parses or prints it (feature `proptest`, test builds only).

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

/// Finite floats that survive a trip through JSON text exactly.
///
/// The workspace's serde_json does not enable `float_roundtrip`, so its
/// default float parser may be one ULP off for long decimals (a property of
/// serde_json, not of our code). A mantissa of at most 10 digits with a
/// small exponent is always read back exactly.
pub fn exact_float() -> impl Strategy<Value = f64> + Clone {
    prop_oneof![
        (any::<i32>(), -12i32..=12).prop_map(|(m, e)| {
            // A decimal literal always parses; NaN never comes out.
            format!("{m}e{e}").parse::<f64>().unwrap_or(0.0)
        }),
        select(vec![0.0, -0.0, 0.5, -1.5, 1e300, -2.5e-300]),
    ]
}

/// JSON scalars: null, booleans, the integer ranges, exact floats, and
/// strings from `strings`.
pub fn scalars(strings: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        exact_float().prop_map(Value::from),
        strings.prop_map(Value::String),
    ]
    .boxed()
}

/// JSON trees a few levels deep over `leaf`, with object keys from `keys`.
pub fn tree(leaf: BoxedStrategy<Value>, keys: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((keys.clone(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}
