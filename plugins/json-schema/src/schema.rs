//! A subset of JSON Schema, checked over `serde_json::Value`: `type`,
//! `properties`, `required`, `additionalProperties`, `items`, `enum`,
//! `const`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`,
//! `minLength`, `maxLength`, `minItems` and `maxItems`, plus boolean schemas.
//! The annotations `$schema`, `$id`, `$comment`, `title`, `description`,
//! `default`, `examples`, `deprecated`, `readOnly`, `writeOnly` and `format`
//! are accepted and not checked; any other keyword makes the schema invalid,
//! so that a schema never seems to check more than it does.
//!
//! As in JSON Schema, an integer is a number with no fractional part (`2.0`
//! is one), `number` includes integers, numbers compare by value, and the
//! keywords about one kind of value ignore the others.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

/// Checks the binding's schema (`config`, as JSON) and encodes it for
/// [`check`]: the binding's prepared configuration. The error is the reason
/// the binding is refused.
pub fn prepare(config: &[u8]) -> Result<Vec<u8>, String> {
    let invalid = |e: String| format!("the schema is invalid: {e}");
    let schema = parse_json(config).map_err(invalid)?;
    let schema = Schema::parse(&schema).map_err(invalid)?;
    let mut out = vec![ENCODING];
    schema.encode(&mut out);
    Ok(out)
}

/// Checks `data` (the node's new data) against a schema `prepare`d
/// before. The error is the reason given to the client.
pub fn check(prepared: &[u8], data: &[u8]) -> Result<(), String> {
    let schema = Schema::decode(prepared).ok_or(
        "the binding's prepared schema is not one this version of json-schema wrote; \
         bind the schema again",
    )?;
    let value = parse_json(data).map_err(|e| format!("data is not valid JSON: {e}"))?;
    schema.validate(&value)
}

fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("it is empty".into());
    }
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// A parsed schema.
#[derive(Debug)]
pub enum Schema {
    /// `true` or `{}`: anything.
    Any,
    /// `false`: nothing.
    Nothing,
    Rules(Box<Rules>),
}

/// The keywords of an object schema.
#[derive(Debug, Default)]
pub struct Rules {
    types: Option<Vec<Type>>,
    properties: BTreeMap<String, Schema>,
    required: Vec<String>,
    additional_properties: Option<Schema>,
    items: Option<Schema>,
    enumeration: Option<Vec<Value>>,
    constant: Option<Value>,
    minimum: Option<Number>,
    maximum: Option<Number>,
    exclusive_minimum: Option<Number>,
    exclusive_maximum: Option<Number>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Null,
}

const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
];

impl Schema {
    /// Parses a schema; the error names the faulty part as a JSON pointer
    /// into the schema.
    pub fn parse(schema: &Value) -> Result<Schema, String> {
        parse_schema(schema, "")
    }

    /// Checks a value; the error names the failing part as a JSON pointer
    /// into the value (nothing for the value itself).
    pub fn validate(&self, value: &Value) -> Result<(), String> {
        validate(self, value, Place::Root)
    }
}

fn parse_schema(schema: &Value, at: &str) -> Result<Schema, String> {
    let object = match schema {
        Value::Bool(true) => return Ok(Schema::Any),
        Value::Bool(false) => return Ok(Schema::Nothing),
        Value::Object(object) => object,
        _ => return Err(located(at, "a schema must be an object or a boolean".into())),
    };
    let mut rules = Rules::default();
    for (keyword, value) in object {
        let here = format!("{at}/{}", escape(keyword));
        let wrong = |what: &str| Err(located(&here, format!("must be {what}")));
        match keyword.as_str() {
            "type" => {
                let names = match value {
                    Value::String(_) => std::slice::from_ref(value),
                    Value::Array(names) if !names.is_empty() => names.as_slice(),
                    _ => return wrong("a type name or a non-empty array of them"),
                };
                let mut types = Vec::new();
                for name in names {
                    types.push(match name.as_str() {
                        Some("object") => Type::Object,
                        Some("array") => Type::Array,
                        Some("string") => Type::String,
                        Some("integer") => Type::Integer,
                        Some("number") => Type::Number,
                        Some("boolean") => Type::Boolean,
                        Some("null") => Type::Null,
                        _ => return Err(located(&here, format!("unknown type {name}"))),
                    });
                }
                rules.types = Some(types);
            }
            "properties" => {
                let Value::Object(properties) = value else {
                    return wrong("an object");
                };
                for (name, schema) in properties {
                    let schema = parse_schema(schema, &format!("{here}/{}", escape(name)))?;
                    rules.properties.insert(name.clone(), schema);
                }
            }
            "required" => {
                let Some(names) = value.as_array() else {
                    return wrong("an array of field names");
                };
                for name in names {
                    let Some(name) = name.as_str() else {
                        return wrong("an array of field names");
                    };
                    rules.required.push(name.to_owned());
                }
            }
            "additionalProperties" => {
                rules.additional_properties = Some(parse_schema(value, &here)?);
            }
            "items" => {
                if value.is_array() {
                    return wrong("a schema (the array form of items is not supported)");
                }
                rules.items = Some(parse_schema(value, &here)?);
            }
            "enum" => {
                let Some(values) = value.as_array() else {
                    return wrong("an array");
                };
                rules.enumeration = Some(values.clone());
            }
            "const" => rules.constant = Some(value.clone()),
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                let Value::Number(n) = value else {
                    return wrong("a number");
                };
                let slot = match keyword.as_str() {
                    "minimum" => &mut rules.minimum,
                    "maximum" => &mut rules.maximum,
                    "exclusiveMinimum" => &mut rules.exclusive_minimum,
                    _ => &mut rules.exclusive_maximum,
                };
                *slot = Some(n.clone());
            }
            "minLength" | "maxLength" | "minItems" | "maxItems" => {
                let Some(n) = value.as_u64() else {
                    return wrong("a non-negative integer");
                };
                let slot = match keyword.as_str() {
                    "minLength" => &mut rules.min_length,
                    "maxLength" => &mut rules.max_length,
                    "minItems" => &mut rules.min_items,
                    _ => &mut rules.max_items,
                };
                *slot = Some(n);
            }
            k if ANNOTATIONS.contains(&k) => {}
            k => return Err(located(at, format!("unsupported keyword {:?}", k))),
        }
    }
    Ok(Schema::Rules(Box::new(rules)))
}

// ---- The prepared form: a parsed schema as bytes, read back on every call
// far more cheaply than the JSON it came from. Private to this plugin: it
// starts with ENCODING, and a schema is its tag then, for rules, each
// keyword present as (key, value), ending with END.

/// The version of the encoding below.
const ENCODING: u8 = 1;

const ANY: u8 = 0;
const NOTHING: u8 = 1;
const RULES: u8 = 2;

const END: u8 = 0;
const TYPES: u8 = 1;
const PROPERTIES: u8 = 2;
const REQUIRED: u8 = 3;
const ADDITIONAL: u8 = 4;
const ITEMS: u8 = 5;
const ENUM: u8 = 6;
const CONST: u8 = 7;
/// `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`: 8 to 11.
const BOUNDS: u8 = 8;
/// `minLength`, `maxLength`, `minItems`, `maxItems`: 12 to 15.
const COUNTS: u8 = 12;

const TYPE_NAMES: [Type; 7] = [
    Type::Object,
    Type::Array,
    Type::String,
    Type::Integer,
    Type::Number,
    Type::Boolean,
    Type::Null,
];

impl Schema {
    fn encode(&self, out: &mut Vec<u8>) {
        let rules = match self {
            Schema::Any => return out.push(ANY),
            Schema::Nothing => return out.push(NOTHING),
            Schema::Rules(rules) => rules,
        };
        out.push(RULES);
        if let Some(types) = &rules.types {
            out.push(TYPES);
            put_len(out, types.len());
            for t in types {
                out.push(TYPE_NAMES.iter().position(|n| n == t).unwrap_or_default() as u8);
            }
        }
        if !rules.properties.is_empty() {
            out.push(PROPERTIES);
            put_len(out, rules.properties.len());
            for (name, schema) in &rules.properties {
                put_str(out, name);
                schema.encode(out);
            }
        }
        if !rules.required.is_empty() {
            out.push(REQUIRED);
            put_len(out, rules.required.len());
            for name in &rules.required {
                put_str(out, name);
            }
        }
        for (key, schema) in [(ADDITIONAL, &rules.additional_properties), (ITEMS, &rules.items)] {
            if let Some(schema) = schema {
                out.push(key);
                schema.encode(out);
            }
        }
        if let Some(values) = &rules.enumeration {
            out.push(ENUM);
            put_str(out, &Value::Array(values.clone()).to_string());
        }
        if let Some(value) = &rules.constant {
            out.push(CONST);
            put_str(out, &value.to_string());
        }
        let bounds =
            [&rules.minimum, &rules.maximum, &rules.exclusive_minimum, &rules.exclusive_maximum];
        for (key, bound) in (BOUNDS..).zip(bounds) {
            if let Some(n) = bound {
                out.push(key);
                put_number(out, n);
            }
        }
        let counts = [rules.min_length, rules.max_length, rules.min_items, rules.max_items];
        for (key, count) in (COUNTS..).zip(counts) {
            if let Some(n) = count {
                out.push(key);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        out.push(END);
    }

    /// Reads what `prepare` wrote; `None` if it is not that.
    fn decode(prepared: &[u8]) -> Option<Schema> {
        let (&encoding, rest) = prepared.split_first()?;
        if encoding != ENCODING {
            return None;
        }
        let mut input = Input(rest);
        let schema = input.schema()?;
        input.0.is_empty().then_some(schema)
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_number(out: &mut Vec<u8>, n: &Number) {
    if let Some(u) = n.as_u64() {
        out.push(0);
        out.extend_from_slice(&u.to_le_bytes());
    } else if let Some(i) = n.as_i64() {
        out.push(1);
        out.extend_from_slice(&i.to_le_bytes());
    } else {
        out.push(2);
        out.extend_from_slice(&n.as_f64().unwrap_or_default().to_le_bytes());
    }
}

/// The prepared bytes not read yet.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn word(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }

    fn len(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn string(&mut self) -> Option<String> {
        let len = self.len()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    fn json(&mut self) -> Option<Value> {
        let len = self.len()?;
        serde_json::from_slice(self.take(len)?).ok()
    }

    fn number(&mut self) -> Option<Number> {
        let tag = self.byte()?;
        let word = self.word()?;
        match tag {
            0 => Some(u64::from_le_bytes(word).into()),
            1 => Some(i64::from_le_bytes(word).into()),
            2 => Number::from_f64(f64::from_le_bytes(word)),
            _ => None,
        }
    }

    fn schema(&mut self) -> Option<Schema> {
        match self.byte()? {
            ANY => return Some(Schema::Any),
            NOTHING => return Some(Schema::Nothing),
            RULES => {}
            _ => return None,
        }
        let mut rules = Rules::default();
        loop {
            match self.byte()? {
                END => return Some(Schema::Rules(Box::new(rules))),
                TYPES => {
                    let count = self.len()?;
                    let mut types = Vec::with_capacity(count.min(TYPE_NAMES.len()));
                    for _ in 0..count {
                        types.push(*TYPE_NAMES.get(usize::from(self.byte()?))?);
                    }
                    rules.types = Some(types);
                }
                PROPERTIES => {
                    for _ in 0..self.len()? {
                        let name = self.string()?;
                        rules.properties.insert(name, self.schema()?);
                    }
                }
                REQUIRED => {
                    for _ in 0..self.len()? {
                        rules.required.push(self.string()?);
                    }
                }
                ADDITIONAL => rules.additional_properties = Some(self.schema()?),
                ITEMS => rules.items = Some(self.schema()?),
                ENUM => match self.json()? {
                    Value::Array(values) => rules.enumeration = Some(values),
                    _ => return None,
                },
                CONST => rules.constant = Some(self.json()?),
                key @ BOUNDS..COUNTS => {
                    let n = Some(self.number()?);
                    match key - BOUNDS {
                        0 => rules.minimum = n,
                        1 => rules.maximum = n,
                        2 => rules.exclusive_minimum = n,
                        _ => rules.exclusive_maximum = n,
                    }
                }
                key @ COUNTS..=15 => {
                    let n = Some(u64::from_le_bytes(self.word()?));
                    match key - COUNTS {
                        0 => rules.min_length = n,
                        1 => rules.max_length = n,
                        2 => rules.min_items = n,
                        _ => rules.max_items = n,
                    }
                }
                _ => return None,
            }
        }
    }
}

/// Where in the data a value is, written out as a JSON pointer only when a
/// rejection names it: a document's every field and item has one.
#[derive(Clone, Copy)]
enum Place<'a> {
    Root,
    Field(&'a Place<'a>, &'a str),
    Item(&'a Place<'a>, usize),
}

impl Place<'_> {
    fn pointer(&self) -> String {
        match self {
            Place::Root => String::new(),
            Place::Field(parent, name) => format!("{}/{}", parent.pointer(), escape(name)),
            Place::Item(parent, index) => format!("{}/{index}", parent.pointer()),
        }
    }
}

fn validate(schema: &Schema, value: &Value, at: Place) -> Result<(), String> {
    let rules = match schema {
        Schema::Any => return Ok(()),
        Schema::Nothing => return Err(located(&at.pointer(), "no value is allowed here".into())),
        Schema::Rules(rules) => rules,
    };
    let fail = |message: String| Err(located(&at.pointer(), message));

    if let Some(types) = &rules.types
        && !types.iter().any(|t| has_type(value, *t))
    {
        return fail(format!("expected {}, got {}", list(types), kind(value)));
    }
    if let Some(constant) = &rules.constant
        && !equal(value, constant)
    {
        return fail(format!("expected {}, got {}", show(constant), show(value)));
    }
    if let Some(values) = &rules.enumeration
        && !values.iter().any(|v| equal(value, v))
    {
        let allowed = show(&Value::Array(values.clone()));
        return fail(format!("expected one of {allowed}, got {}", show(value)));
    }

    match value {
        Value::Number(n) => {
            // The bound, whether the value's ordering against it passes, and
            // how to say what it requires.
            type Bound<'a> = (&'a Option<Number>, fn(Ordering) -> bool, &'static str);
            let bounds: [Bound; 4] = [
                (&rules.minimum, Ordering::is_ge, "at least"),
                (&rules.exclusive_minimum, Ordering::is_gt, "greater than"),
                (&rules.maximum, Ordering::is_le, "at most"),
                (&rules.exclusive_maximum, Ordering::is_lt, "less than"),
            ];
            for (bound, ok, what) in bounds {
                if let Some(bound) = bound
                    && !compare(n, bound).is_some_and(ok)
                {
                    return fail(format!("must be {what} {bound}, got {n}"));
                }
            }
        }
        Value::String(s) => {
            let chars = s.chars().count() as u64;
            if let Some(min) = rules.min_length
                && chars < min
            {
                return fail(format!("expected at least {min} characters, got {chars}"));
            }
            if let Some(max) = rules.max_length
                && chars > max
            {
                return fail(format!("expected at most {max} characters, got {chars}"));
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(min) = rules.min_items
                && len < min
            {
                return fail(format!("expected at least {min} items, got {len}"));
            }
            if let Some(max) = rules.max_items
                && len > max
            {
                return fail(format!("expected at most {max} items, got {len}"));
            }
            if let Some(schema) = &rules.items {
                for (i, item) in items.iter().enumerate() {
                    validate(schema, item, Place::Item(&at, i))?;
                }
            }
        }
        Value::Object(fields) => validate_object(rules, fields, at)?,
        Value::Null | Value::Bool(_) => {}
    }
    Ok(())
}

fn validate_object(rules: &Rules, fields: &Map<String, Value>, at: Place) -> Result<(), String> {
    for name in &rules.required {
        if !fields.contains_key(name) {
            return Err(located(&at.pointer(), format!("missing required field {name:?}")));
        }
    }
    // Fields in name order: the first failure is the same on every replica.
    for (name, value) in fields {
        let here = Place::Field(&at, name);
        match (rules.properties.get(name), &rules.additional_properties) {
            (Some(schema), _) => validate(schema, value, here)?,
            (None, Some(Schema::Nothing)) => {
                return Err(located(&at.pointer(), format!("unexpected field {name:?}")));
            }
            (None, Some(schema)) => validate(schema, value, here)?,
            (None, None) => {}
        }
    }
    Ok(())
}

fn has_type(value: &Value, t: Type) -> bool {
    match (t, value) {
        (Type::Object, Value::Object(_))
        | (Type::Array, Value::Array(_))
        | (Type::String, Value::String(_))
        | (Type::Number, Value::Number(_))
        | (Type::Boolean, Value::Bool(_))
        | (Type::Null, Value::Null) => true,
        (Type::Integer, Value::Number(n)) => is_integer(n),
        _ => false,
    }
}

fn is_integer(n: &Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

/// Numbers by value: exactly for integers, as `f64` otherwise.
fn compare(a: &Number, b: &Number) -> Option<Ordering> {
    let exact = |n: &Number| n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
    match (exact(a), exact(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// JSON equality, with numbers compared by value (`1` equals `1.0`).
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => compare(a, b) == Some(Ordering::Equal),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| equal(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(n) if is_integer(n) => "an integer",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

/// "an object", "a string or null", "an integer, a string or null".
fn list(types: &[Type]) -> String {
    let names: Vec<&str> = types
        .iter()
        .map(|t| match t {
            Type::Object => "an object",
            Type::Array => "an array",
            Type::String => "a string",
            Type::Integer => "an integer",
            Type::Number => "a number",
            Type::Boolean => "a boolean",
            Type::Null => "null",
        })
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// A value as compact JSON, cut to a readable length.
fn show(value: &Value) -> String {
    const MAX: usize = 80;
    let mut text = value.to_string();
    if let Some((cut, _)) = text.char_indices().nth(MAX) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// A JSON pointer token: `~` as `~0`, `/` as `~1`.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The message, prefixed with where it applies unless that is the root.
fn located(at: &str, message: String) -> String {
    if at.is_empty() { message } else { format!("{at}: {message}") }
}

#[cfg(test)]
mod tests {
    use super::{Schema, prepare};

    /// Prepares `schema` and checks `data` against it, as a binding does;
    /// also proves the prepared form reads back to what was encoded.
    fn check(schema: &[u8], data: &[u8]) -> Result<(), String> {
        let prepared = prepare(schema)?;
        let decoded = Schema::decode(&prepared).expect("the prepared form reads back");
        let mut again = vec![super::ENCODING];
        decoded.encode(&mut again);
        assert_eq!(again, prepared, "decoding then encoding gives the same bytes");
        super::check(&prepared, data)
    }

    const SERVICE: &str = r#"{
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "a service",
        "type": "object",
        "required": ["name", "port"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 8},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "weight": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
            "mode": {"enum": ["active", "standby"]},
            "kind": {"const": "service"},
            "owner": {"type": ["string", "null"]},
            "meta": {"type": "object", "additionalProperties": {"type": "boolean"}}
        },
        "additionalProperties": false
    }"#;

    fn service(data: &str) -> Result<(), String> {
        check(SERVICE.as_bytes(), data.as_bytes())
    }

    fn err(result: Result<(), String>) -> String {
        result.expect_err("expected a rejection")
    }

    #[test]
    fn accepts_matching_data() {
        service(r#"{"name": "db", "port": 5432}"#).unwrap();
        service(
            r#"{"name": "dbé", "port": 5432.0, "weight": 0.5, "tags": ["a", "b"],
                "mode": "standby", "kind": "service", "owner": null, "meta": {"x": true}}"#,
        )
        .unwrap();
    }

    #[test]
    fn types() {
        assert_eq!(
            err(service(r#"{"name": "db", "port": "80"}"#)),
            "/port: expected an integer, got a string"
        );
        assert_eq!(
            err(service(r#"{"name": "db", "port": 80.5}"#)),
            "/port: expected an integer, got a number"
        );
        assert_eq!(
            err(service(r#"{"name": "db", "port": 1, "owner": 3}"#)),
            "/owner: expected a string or null, got an integer"
        );
        assert_eq!(err(service("[1]")), "expected an object, got an array");
        let many = r#"{"type": ["object", "array", "boolean"]}"#;
        assert_eq!(
            err(check(many.as_bytes(), b"null")),
            "expected an object, an array or a boolean, got null"
        );
        check(br#"{"type": "number"}"#, b"7").unwrap();
        check(br#"{"type": "integer"}"#, b"1e3").unwrap();
    }

    #[test]
    fn objects() {
        assert_eq!(err(service(r#"{"port": 1}"#)), r#"missing required field "name""#);
        assert_eq!(
            err(service(r#"{"name": "a", "port": 1, "colour": "red"}"#)),
            r#"unexpected field "colour""#
        );
        assert_eq!(
            err(service(r#"{"name": "a", "port": 1, "meta": {"x": 1}}"#)),
            "/meta/x: expected a boolean, got an integer"
        );
        let nested = r#"{"properties": {"a/b": {"required": ["c"]}}}"#;
        assert_eq!(
            err(check(nested.as_bytes(), br#"{"a/b": {}}"#)),
            r#"/a~1b: missing required field "c""#
        );
        // Keywords about objects ignore other values.
        check(nested.as_bytes(), b"3").unwrap();
    }

    #[test]
    fn numbers() {
        let port = |p: &str| service(&format!(r#"{{"name": "a", "port": {p}}}"#));
        assert_eq!(err(port("0")), "/port: must be at least 1, got 0");
        assert_eq!(err(port("65536")), "/port: must be at most 65535, got 65536");
        port("65535").unwrap();
        let weight = |w: &str| service(&format!(r#"{{"name": "a", "port": 1, "weight": {w}}}"#));
        assert_eq!(err(weight("0")), "/weight: must be greater than 0, got 0");
        assert_eq!(err(weight("1.0")), "/weight: must be less than 1, got 1.0");
        weight("0.999").unwrap();
        // Large integers compare exactly.
        let big = br#"{"maximum": 9007199254740992}"#;
        check(big, b"9007199254740992").unwrap();
        assert!(check(big, b"9007199254740993").is_err());
        check(br#"{"minimum": -1.5}"#, b"-1").unwrap();
        check(br#"{"maximum": 18446744073709551615}"#, b"18446744073709551615").unwrap();
    }

    #[test]
    fn strings_and_arrays() {
        assert_eq!(
            err(service(r#"{"name": "", "port": 1}"#)),
            "/name: expected at least 1 characters, got 0"
        );
        assert_eq!(
            err(service(r#"{"name": "ééééééééé", "port": 1}"#)),
            "/name: expected at most 8 characters, got 9"
        );
        assert_eq!(
            err(service(r#"{"name": "a", "port": 1, "tags": []}"#)),
            "/tags: expected at least 1 items, got 0"
        );
        assert_eq!(
            err(service(r#"{"name": "a", "port": 1, "tags": ["a", "b", "c", "d"]}"#)),
            "/tags: expected at most 3 items, got 4"
        );
        assert_eq!(
            err(service(r#"{"name": "a", "port": 1, "tags": ["a", 2]}"#)),
            "/tags/1: expected a string, got an integer"
        );
    }

    #[test]
    fn enum_and_const() {
        assert_eq!(
            err(service(r#"{"name": "a", "port": 1, "mode": "off"}"#)),
            r#"/mode: expected one of ["active","standby"], got "off""#
        );
        assert_eq!(
            err(service(r#"{"name": "a", "port": 1, "kind": "job"}"#)),
            r#"/kind: expected "service", got "job""#
        );
        // Numbers are equal by value.
        check(br#"{"const": {"a": [1, 2.0]}}"#, br#"{"a": [1.0, 2]}"#).unwrap();
        check(br#"{"enum": [1, "x"]}"#, b"1.0").unwrap();
        let long = format!(r#""{}""#, "x".repeat(200));
        let message = err(check(br#"{"const": 1}"#, long.as_bytes()));
        assert!(message.ends_with("x…"), "{message}");
        assert!(message.chars().count() < 100, "{message}");
    }

    #[test]
    fn boolean_schemas() {
        check(b"true", b"[1, 2]").unwrap();
        check(b"{}", b"null").unwrap();
        assert_eq!(err(check(b"false", b"1")), "no value is allowed here");
        let no_b = br#"{"properties": {"b": false}}"#;
        assert_eq!(err(check(no_b, br#"{"b": 1}"#)), "/b: no value is allowed here");
        let none = br#"{"additionalProperties": false}"#;
        assert_eq!(err(check(none, br#"{"b": 1}"#)), r#"unexpected field "b""#);
    }

    #[test]
    fn bad_data() {
        assert_eq!(err(service("")), "data is not valid JSON: it is empty");
        assert_eq!(
            err(service("{")),
            "data is not valid JSON: EOF while parsing an object at line 1 column 1"
        );
        assert!(err(service("{\"name\": }")).starts_with("data is not valid JSON: "));
    }

    #[test]
    fn bad_schemas() {
        let bad = |schema: &str| err(check(schema.as_bytes(), b"1"));
        assert_eq!(bad(""), "the schema is invalid: it is empty");
        assert!(bad("{").starts_with("the schema is invalid: EOF"));
        assert_eq!(bad("3"), "the schema is invalid: a schema must be an object or a boolean");
        assert_eq!(
            bad(r#"{"type": "int"}"#),
            r#"the schema is invalid: /type: unknown type "int""#
        );
        assert_eq!(
            bad(r#"{"type": []}"#),
            "the schema is invalid: /type: must be a type name or a non-empty array of them"
        );
        assert_eq!(
            bad(r#"{"properties": {"a": {"pattern": "x"}}}"#),
            r#"the schema is invalid: /properties/a: unsupported keyword "pattern""#
        );
        assert_eq!(
            bad(r#"{"minLength": -1}"#),
            "the schema is invalid: /minLength: must be a non-negative integer"
        );
        assert_eq!(
            bad(r#"{"items": [{}]}"#),
            "the schema is invalid: /items: must be a schema (the array form of items is not supported)"
        );
        assert_eq!(
            bad(r#"{"required": "a"}"#),
            "the schema is invalid: /required: must be an array of field names"
        );
        assert_eq!(
            bad(r#"{"exclusiveMinimum": true}"#),
            "the schema is invalid: /exclusiveMinimum: must be a number"
        );
        // Invalid even where the data does not reach.
        assert!(check(br#"{"properties": {"a": {"type": "x"}}}"#, b"1").is_err());
    }

    #[test]
    fn damaged_prepared_forms_are_refused_not_misread() {
        // Proves `check` reads only what `prepare` wrote: another encoding
        // version, a cut, or trailing bytes give the re-bind message.
        let prepared = prepare(br#"{"type": "object", "required": ["a"]}"#).unwrap();
        super::check(&prepared, br#"{"a": 1}"#).unwrap();
        let mut other = prepared.clone();
        other[0] = super::ENCODING + 1;
        let mut longer = prepared.clone();
        longer.push(0);
        for bad in [other, prepared[..prepared.len() - 1].to_vec(), longer, vec![]] {
            let e = super::check(&bad, b"{}").expect_err("refused");
            assert!(e.contains("bind the schema again"), "{e}");
        }
    }
}
