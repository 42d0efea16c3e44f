//! Small helpers over `serde_json::Value` shared by the registry modules: path access,
//! "set if absent" defaulting, semantic equality (nil == empty), Kubernetes label-selector
//! rendering, int-or-string parsing and standard base64.
//!
//! Pure data helpers; no Kubernetes policy lives here.

use serde_json::{Map, Value};

/// `v[p0][p1]...`, `None` if any step is missing or not an object.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.as_object()?.get(*p)?;
    }
    Some(cur)
}

/// Like [`at`] but treats JSON `null` as missing.
pub fn present<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    at(v, path).filter(|v| !v.is_null())
}

pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

pub fn i64_at(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

/// The object at `v[key]`, created (as `{}`) when absent or null. `None` when the value
/// exists but is not an object (left alone: validation reports it).
pub fn child<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let map = v.as_object_mut()?;
    let slot = map.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// [`child`] on a map.
pub fn child_in<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let slot = map.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// The object at `v[key]` only if it already exists.
pub fn existing<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    v.as_object_mut()?.get_mut(key).filter(|v| v.is_object())
}

/// Set `map[key] = value` when absent or null.
pub fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get(key) {
        Some(v) if !v.is_null() => {}
        _ => {
            map.insert(key.to_string(), value);
        }
    }
}

/// Fields whose value is a Go map (keys are data, not struct fields): there a key with a zero
/// value is still a difference.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "matchLabels",
    "nodeSelector",
    "data",
    "binaryData",
    "stringData",
];

fn is_map_field(key: &str) -> bool {
    MAP_FIELDS.contains(&key)
}

/// Whether a value is nil-like for semantic equality: null, `[]`, an empty map, a struct of
/// only nil-likes, or (as a struct field) a zero scalar (`false`, `0`, `""`), since Go cannot
/// tell an omitted non-pointer field from its zero value.
fn is_empty(v: &Value, is_map: bool) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) if is_map => m.is_empty(),
        Value::Object(m) => m.iter().all(|(k, v)| is_empty(v, is_map_field(k))),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
    }
}

/// Semantic deep equality (Go's `equality.Semantic.DeepEqual` on typed objects, approximated on
/// JSON): absent, null, empty maps/lists and zero-valued struct fields are equal; map-typed
/// fields (`labels`, `annotations`, `data`, ...) compare their keys exactly; numbers compare by
/// value (`1` == `1.0`).
pub fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    eq(a, b, false)
}

/// [`semantic_eq`] of the values of field `key` (map-typed fields such as `annotations` or
/// `data` compare their keys exactly).
pub fn semantic_eq_field(key: &str, a: Option<&Value>, b: Option<&Value>) -> bool {
    eq(a, b, is_map_field(key))
}

fn eq(a: Option<&Value>, b: Option<&Value>, is_map: bool) -> bool {
    let a_empty = a.is_none_or(|v| is_empty(v, is_map));
    let b_empty = b.is_none_or(|v| is_empty(v, is_map));
    if a_empty || b_empty {
        return a_empty && b_empty;
    }
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) if is_map => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| eq(Some(v), Some(w), false)))
        }
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            x.iter()
                .all(|(k, v)| eq(Some(v), y.get(k), is_map_field(k)))
                && y.iter()
                    .filter(|(k, _)| !x.contains_key(*k))
                    .all(|(k, v)| is_empty(v, is_map_field(k)))
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| eq(Some(a), Some(b), false))
        }
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// A parsed `IntOrString` (`maxSurge: 1` or `maxSurge: "25%"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i64),
    /// The raw string (valid percent or not).
    Str(String),
}

impl IntOrPercent {
    pub fn from_value(v: &Value) -> Option<IntOrPercent> {
        match v {
            Value::Number(n) => n.as_i64().map(IntOrPercent::Int),
            Value::String(s) => Some(IntOrPercent::Str(s.clone())),
            _ => None,
        }
    }

    /// The raw number, or the number before `%` (0 when unparsable).
    pub fn raw_number(&self) -> i64 {
        match self {
            IntOrPercent::Int(i) => *i,
            IntOrPercent::Str(s) => s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        }
    }
}

/// A label selector (`matchLabels` + `matchExpressions`) rendered as Kubernetes prints it
/// (`app=web,tier in (a,b)`), requirements sorted by key. `None` for an invalid selector.
pub fn selector_string(sel: &Value) -> Option<String> {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            reqs.push((k.clone(), format!("{k}={}", v.as_str()?)));
        }
    }
    if let Some(me) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in me {
            let key = e.get("key")?.as_str()?;
            let mut values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            values.sort_unstable();
            let s = match e.get("operator")?.as_str()? {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => return None,
            };
            reqs.push((key.to_string(), s));
        }
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(reqs.into_iter().map(|r| r.1).collect::<Vec<_>>().join(","))
}

/// Whether `labels` (an object of strings, or absent) satisfies the selector. An empty selector
/// matches everything. `None` for an invalid selector.
pub fn selector_matches(sel: &Value, labels: Option<&Value>) -> Option<bool> {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if get(k) != Some(v.as_str()?) {
                return Some(false);
            }
        }
    }
    if let Some(me) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in me {
            let key = e.get("key")?.as_str()?;
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let have = get(key);
            let ok = match e.get("operator")?.as_str()? {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => return None,
            };
            if !ok {
                return Some(false);
            }
        }
    }
    Some(true)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (what Go's `encoding/base64.StdEncoding` produces).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Decode standard padded base64. `Err(i)` = index of the first illegal byte, as Go reports
/// (`illegal base64 data at input byte i`).
pub fn base64_decode(s: &str) -> Result<Vec<u8>, usize> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        // Go reports the position where the incomplete quantum starts being read.
        let valid = bytes.iter().take_while(|b| B64.contains(b)).count();
        return Err(valid.min(bytes.len() / 4 * 4));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (ci, chunk) in bytes.chunks(4).enumerate() {
        let last = ci == bytes.len() / 4 - 1;
        let mut n: u32 = 0;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if c == b'=' && last && i >= 2 {
                pad += 1;
                0
            } else if pad > 0 {
                return Err(ci * 4 + i);
            } else {
                match B64.iter().position(|&x| x == c) {
                    Some(p) => p as u32,
                    None => return Err(ci * 4 + i),
                }
            };
            n = (n << 6) | v;
        }
        out.push((n >> 16) as u8);
        if pad < 2 {
            out.push((n >> 8) as u8);
        }
        if pad < 1 {
            out.push(n as u8);
        }
    }
    Ok(out)
}

/// Go `%q`-style quoting (close enough: JSON string escaping).
pub fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn semantic_equality_treats_nil_as_empty() {
        assert!(semantic_eq(None, Some(&json!({}))));
        assert!(semantic_eq(Some(&json!(null)), Some(&json!([]))));
        assert!(semantic_eq(Some(&json!({"a": {}})), Some(&json!({}))));
        assert!(semantic_eq(
            Some(&json!({"a": 1})),
            Some(&json!({"a": 1.0}))
        ));
        assert!(!semantic_eq(Some(&json!({"a": 1})), Some(&json!({"a": 2}))));
        assert!(!semantic_eq(Some(&json!({"a": 1})), None));
        assert!(!semantic_eq(Some(&json!([1])), Some(&json!([1, 2]))));
        assert!(semantic_eq(
            Some(&json!({"x": {"b": []}})),
            Some(&json!({"x": null}))
        ));
    }

    #[test]
    fn selectors_render_and_match() {
        let sel = json!({"matchLabels": {"tier": "web", "app": "x"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["b", "a"]},
                                 {"key": "gone", "operator": "DoesNotExist"}]});
        assert_eq!(
            selector_string(&sel).unwrap(),
            "app=x,env in (a,b),!gone,tier=web"
        );
        let labels = json!({"tier": "web", "app": "x", "env": "a"});
        assert_eq!(selector_matches(&sel, Some(&labels)), Some(true));
        let labels = json!({"tier": "web", "app": "x", "env": "c"});
        assert_eq!(selector_matches(&sel, Some(&labels)), Some(false));
        assert_eq!(selector_matches(&json!({}), None), Some(true));
        assert_eq!(selector_matches(&sel, None), Some(false));
    }

    #[test]
    fn base64_round_trips() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm9v!mFy"), Err(4));
        assert_eq!(base64_decode("Zm9"), Err(0));
        assert_eq!(base64_decode("Zm=v"), Err(3));
    }

    #[test]
    fn int_or_percent() {
        assert_eq!(
            IntOrPercent::from_value(&json!("25%"))
                .unwrap()
                .raw_number(),
            25
        );
        assert_eq!(IntOrPercent::from_value(&json!(3)).unwrap().raw_number(), 3);
        assert!(IntOrPercent::from_value(&json!(true)).is_none());
    }
}
