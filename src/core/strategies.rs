//! proptest strategies the core's property tests share: text that stresses JSON
//! escaping, numbers at their bounds, and JSON values. Test-only and native-only
//! (proptest needs OS randomness).

use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any text: arbitrary unicode, the empty string, and text full of JSON's own syntax,
/// control characters and characters JavaScript treats as line ends.
pub fn text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        3 => any::<String>(),
        1 => Just(String::new()),
        2 => "[\"{}:,\\\\/ a-z0-9\u{0}\u{1f}\u{7f}\u{e9}\u{2028}\u{1F600}]{0,24}",
    ]
}

pub fn opt_text() -> impl Strategy<Value = Option<String>> + Clone {
    proptest::option::of(text())
}

/// Whole numbers at and near the bounds of `u32`, and anything between.
pub fn number() -> impl Strategy<Value = u32> + Clone {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        any::<u32>()
    ]
}

/// Floats that survive a trip through JSON text exactly (few significant digits):
/// serde_json promises exact float round trips only with its `float_roundtrip` feature.
pub fn float() -> impl Strategy<Value = f64> + Clone {
    any::<i32>().prop_map(|n| f64::from(n) / 100.0)
}

/// Any JSON value, at most three levels deep.
pub fn json_value() -> impl Strategy<Value = Value> + Clone {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        float().prop_map(|n| json!(n)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}
