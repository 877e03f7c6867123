//! A small JSON value for the SDK's side of the wire: objects are key lists in document
//! order instead of `serde_json::Value`'s `BTreeMap`, which alone cost the wasm bundle
//! about 15 KB. Parsing and writing stay serde_json's; numbers keep serde_json's
//! `Number`, so integers round-trip exactly.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Number;

/// Any JSON value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Json {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Object),
}

/// A JSON object: its members in document order, keys unique (a repeated key keeps the
/// last value, as `JSON.parse` does).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object(Vec<(String, Json)>);

impl Object {
    pub fn new() -> Object {
        Object(Vec::new())
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing its value in place when present.
    pub fn insert(&mut self, key: String, value: Json) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Json> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Json)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear()
    }
}

impl<'a> IntoIterator for &'a Object {
    type Item = (&'a String, &'a Json);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (String, Json)>, ObjectEntry<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

type ObjectEntry<'a> = fn(&'a (String, Json)) -> (&'a String, &'a Json);

impl FromIterator<(String, Json)> for Object {
    fn from_iter<I: IntoIterator<Item = (String, Json)>>(iter: I) -> Object {
        let mut object = Object::new();
        for (k, v) in iter {
            object.insert(k, v);
        }
        object
    }
}

impl Json {
    /// Parses JSON text; `None` when it is not JSON.
    pub fn parse(text: &str) -> Option<Json> {
        serde_json::from_str(text).ok()
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Json>> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    /// A member of an object; `None` for other values.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.as_object().and_then(|o| o.get(key))
    }

    /// The JSON text of this value.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::String(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::String(s)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

/// For the server and tests, which build values with `serde_json::json!`.
impl From<serde_json::Value> for Json {
    fn from(value: serde_json::Value) -> Json {
        use serde_json::Value as V;
        match value {
            V::Null => Json::Null,
            V::Bool(b) => Json::Bool(b),
            V::Number(n) => Json::Number(n),
            V::String(s) => Json::String(s),
            V::Array(a) => Json::Array(a.into_iter().map(Json::from).collect()),
            V::Object(o) => Json::Object(o.into_iter().map(|(k, v)| (k, v.into())).collect()),
        }
    }
}

/// For the server, which stores values as `serde_json::Value`.
impl From<Json> for serde_json::Value {
    fn from(value: Json) -> serde_json::Value {
        use serde_json::Value as V;
        match value {
            Json::Null => V::Null,
            Json::Bool(b) => V::Bool(b),
            Json::Number(n) => V::Number(n),
            Json::String(s) => V::String(s),
            Json::Array(a) => V::Array(a.into_iter().map(V::from).collect()),
            Json::Object(o) => V::Object(o.into()),
        }
    }
}

/// For the server, which stores objects as `serde_json::Map`.
impl From<Object> for serde_json::Map<String, serde_json::Value> {
    fn from(object: Object) -> Self {
        object.0.into_iter().map(|(k, v)| (k, v.into())).collect()
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(a) => a.serialize(serializer),
            Json::Object(o) => o.serialize(serializer),
        }
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut object = Object::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            object.insert(k, v);
        }
        Ok(Json::Object(object))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Object, D::Error> {
        match Json::deserialize(deserializer)? {
            Json::Object(o) => Ok(o),
            _ => Err(serde::de::Error::custom("expected a JSON object")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_writes_in_document_order_with_exact_integers() {
        let text = r#"{"b":1,"a":[true,null,"x",18446744073709551615,-3,1.5],"c":{}}"#;
        let v = Json::parse(text).unwrap();
        assert_eq!(v.to_text(), text);
        assert_eq!(v.get("b").and_then(Json::as_u64), Some(1));
        assert_eq!(v.get("a").and_then(Json::as_array).map(Vec::len), Some(6));
    }

    #[test]
    fn a_repeated_key_keeps_the_last_value_like_json_parse() {
        let v = Json::parse(r#"{"k":1,"k":2}"#).unwrap();
        assert_eq!(v.to_text(), r#"{"k":2}"#);
    }

    #[test]
    fn converts_to_and_from_serde_json_values() {
        let value = json!({"x": [1, "two", {"three": 3.5}], "y": null});
        let back: serde_json::Value = Json::from(value.clone()).into();
        assert_eq!(back, value);
    }

    #[test]
    fn rejects_text_that_is_not_json() {
        assert_eq!(Json::parse("{"), None);
        assert_eq!(Json::parse("nope"), None);
    }
}

// proptest needs OS randomness, so these run natively only.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod props {
    use super::*;
    use crate::core::strategies::json_value;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// [`Json`]'s hand-written serde impls read and write what `serde_json::Value`'s
        /// do, and keep a document's member order through a round trip.
        #[test]
        fn json_reads_and_writes_as_serde_json_does(v in json_value()) {
            let text = v.to_string();
            let ours = Json::parse(&text).expect("serde_json wrote JSON");
            prop_assert_eq!(&ours, &Json::from(v.clone()));
            prop_assert_eq!(ours.to_text(), text.clone());
            prop_assert_eq!(serde_json::from_str::<serde_json::Value>(&ours.to_text()).ok(), Some(v.clone()));
            prop_assert_eq!(serde_json::Value::from(ours), v);
        }
    }
}
