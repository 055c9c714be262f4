//! Decoding constrained to JSON of a schema: a logits processor that lets through only the
//! tokens that keep the text a prefix of a JSON value valid under the schema, and lets the
//! text end only when the value is complete.
//!
//! The schemas it takes (a subset of JSON Schema, refused otherwise): `type` `object` (with
//! `properties`, written in their order, all of them; `required` naming some of them;
//! `additionalProperties` false or absent), `array` (`items`, `minItems`, `maxItems`),
//! `string` (`maxLength`), `number`, `integer`, `boolean`, `null`, and `enum` of strings,
//! numbers, booleans or null; `title`, `description` and `default` are read as comments.
//! Whitespace is free between the parts of objects and arrays, up to 64 characters in a row;
//! numbers have at most 15 digits before the point and 2 in the exponent (so that each parses
//! as a finite f64, an integer as an i64).
//!
//! A finished value ends the text (the end-of-text token is forced, even before
//! `min_new_tokens`).
//!
//! The budget: a token is let through only if the tokens left after it can still close the
//! value (the shortest completion counted a character a token, which a vocabulary with a token
//! per character always allows), so a draft never ends as broken JSON at `max_new_tokens`.
//! A schema whose shortest value does not fit `max_new_tokens` is an error before decoding.

use std::sync::Arc;

use serde_json::Value;

use super::LogitsConstraint;
use crate::error::{MedgenError, Result};
use crate::tokenizer::Tokenizer;

/// Deepest nesting of a schema, and most properties, items or enum values of any part.
const MAX_DEPTH: usize = 32;
const MAX_MEMBERS: usize = 1024;
/// Most digits of a number's integer part and of its exponent: every number then parses as a
/// finite f64, and every integer as an i64.
const MAX_INT_DIGITS: u8 = 15;
const MAX_EXP_DIGITS: u8 = 2;
/// Most whitespace characters in a row between the parts of a value.
const MAX_WS: usize = 64;

/// A JSON schema of the subset described in the module.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonSchema {
    Object(Vec<(String, JsonSchema)>),
    Array { items: Box<JsonSchema>, min: usize, max: usize },
    String { max_len: Option<usize> },
    Number { integer: bool },
    Boolean,
    Null,
    /// The values, each as its compact JSON text.
    Enum(Vec<String>),
}

fn bad(reason: impl Into<String>) -> MedgenError {
    MedgenError::invalid("json_schema", reason)
}

/// A JSON value with its objects' keys in the order written (serde_json's `Value` sorts them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ordered {
    Scalar(Value),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(v)))
            }
            fn visit_unit<E>(self) -> std::result::Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> std::result::Result<Ordered, A::Error> {
                let mut fields: Vec<(String, Ordered)> = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Ordered>()? {
                    fields.retain(|(old, _)| *old != k);
                    fields.push((k, v));
                }
                Ok(Ordered::Object(fields))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl Ordered {
    pub(crate) fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Ordered::Scalar(v) => v.as_str(),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Ordered::Scalar(v) => v.as_u64(),
            _ => None,
        }
    }

    /// Compact JSON text (of a scalar or an array of scalars, as enum values are).
    fn text(&self) -> String {
        match self {
            Ordered::Scalar(v) => v.to_string(),
            Ordered::Array(items) => format!("[{}]", items.iter().map(Ordered::text).collect::<Vec<_>>().join(",")),
            Ordered::Object(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v.text())).collect();
                format!("{{{}}}", parts.join(","))
            }
        }
    }
}

impl JsonSchema {
    /// Reads a schema from its JSON text, keeping the order of its properties; anything
    /// outside the subset is an `InvalidArgument` naming it.
    ///
    /// A schema whose shortest value is longer than [`crate::MAX_TOKENS`] characters (nested
    /// `minItems`, say) could never be written and is refused before it is built.
    pub fn parse(text: &str) -> Result<Self> {
        let tree: Ordered = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let schema = Self::read(&tree, 0)?;
        let len = schema.shortest_len();
        if len > crate::MAX_TOKENS {
            return Err(bad(format!("its shortest value is {len} characters, more than any draft ({})", crate::MAX_TOKENS)));
        }
        Ok(schema)
    }

    /// A bound on the length in characters of [`JsonSchema::shortest`] (a comma over at most
    /// per object or array), saturating, so that it can be checked before the text is built.
    fn shortest_len(&self) -> usize {
        match self {
            JsonSchema::Object(fields) => fields.iter().fold(2usize, |n, (k, s)| {
                n.saturating_add(Value::from(k.as_str()).to_string().chars().count() + 2).saturating_add(s.shortest_len())
            }),
            JsonSchema::Array { items, min, .. } => items.shortest_len().saturating_add(1).saturating_mul(*min).saturating_add(2),
            JsonSchema::String { .. } => 2,
            JsonSchema::Number { .. } => 1,
            JsonSchema::Boolean => 5,
            JsonSchema::Null => 4,
            JsonSchema::Enum(values) => values.iter().map(|v| v.chars().count()).min().unwrap_or(0),
        }
    }

    fn read(v: &Ordered, depth: usize) -> Result<Self> {
        if depth > MAX_DEPTH {
            return Err(bad(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let Ordered::Object(fields) = v else { return Err(bad(format!("a schema must be an object, not {}", v.text()))) };
        const KNOWN: &[&str] = &[
            "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "maxLength", "enum",
            "title", "description", "default", "$schema",
        ];
        if let Some((k, _)) = fields.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
            return Err(bad(format!("the keyword {k:?} is not supported (the subset: {})", KNOWN.join(", "))));
        }
        if let Some(values) = v.get("enum") {
            let values = match values {
                Ordered::Array(a) if !a.is_empty() => a,
                _ => return Err(bad("enum must be a non-empty array")),
            };
            if values.len() > MAX_MEMBERS {
                return Err(bad(format!("enum has more than {MAX_MEMBERS} values")));
            }
            if values.iter().any(|v| !matches!(v, Ordered::Scalar(_))) {
                return Err(bad("enum values must be strings, numbers, booleans or null"));
            }
            return Ok(JsonSchema::Enum(values.iter().map(Ordered::text).collect()));
        }
        let ty = v.get("type").and_then(Ordered::as_str).ok_or_else(|| bad("each schema needs a \"type\" (one name) or an \"enum\""))?;
        let size = |key: &str| -> Result<Option<usize>> {
            match v.get(key) {
                None => Ok(None),
                Some(n) => n.as_u64().map(|n| Some(n as usize)).ok_or_else(|| bad(format!("{key} must be a non-negative integer"))),
            }
        };
        match ty {
            "object" => {
                if v.get("additionalProperties").is_some_and(|a| *a != Ordered::Scalar(Value::Bool(false))) {
                    return Err(bad("additionalProperties may only be false: every property is named"));
                }
                let props: &[(String, Ordered)] = match v.get("properties") {
                    None => &[],
                    Some(Ordered::Object(p)) => p,
                    Some(_) => return Err(bad("properties must be an object")),
                };
                if props.len() > MAX_MEMBERS {
                    return Err(bad(format!("more than {MAX_MEMBERS} properties")));
                }
                match v.get("required") {
                    None => {}
                    Some(Ordered::Array(names)) => {
                        for name in names {
                            let name = name.as_str().ok_or_else(|| bad("required must list property names"))?;
                            if !props.iter().any(|(k, _)| k == name) {
                                return Err(bad(format!("required names {name:?}, which is not a property")));
                            }
                        }
                    }
                    Some(_) => return Err(bad("required must be an array of property names")),
                }
                let fields = props.iter().map(|(k, s)| Ok((k.clone(), Self::read(s, depth + 1)?))).collect::<Result<_>>()?;
                Ok(JsonSchema::Object(fields))
            }
            "array" => {
                let items = v.get("items").ok_or_else(|| bad("an array needs \"items\""))?;
                let (min, max) = (size("minItems")?.unwrap_or(0), size("maxItems")?.unwrap_or(usize::MAX));
                if min > max || min > MAX_MEMBERS {
                    return Err(bad(format!("minItems {min} is above maxItems {max} or {MAX_MEMBERS}")));
                }
                Ok(JsonSchema::Array { items: Box::new(Self::read(items, depth + 1)?), min, max })
            }
            "string" => Ok(JsonSchema::String { max_len: size("maxLength")? }),
            "number" => Ok(JsonSchema::Number { integer: false }),
            "integer" => Ok(JsonSchema::Number { integer: true }),
            "boolean" => Ok(JsonSchema::Boolean),
            "null" => Ok(JsonSchema::Null),
            other => Err(bad(format!("the type {other:?} is not supported"))),
        }
    }

    /// The shortest JSON text of a value of this schema.
    fn shortest(&self) -> String {
        match self {
            JsonSchema::Object(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, s)| format!("{}:{}", Value::from(k.as_str()), s.shortest())).collect();
                format!("{{{}}}", parts.join(","))
            }
            JsonSchema::Array { items, min, .. } => format!("[{}]", vec![items.shortest(); *min].join(",")),
            JsonSchema::String { .. } => "\"\"".into(),
            JsonSchema::Number { .. } => "0".into(),
            JsonSchema::Boolean => "false".into(),
            JsonSchema::Null => "null".into(),
            JsonSchema::Enum(values) => values.iter().min_by_key(|v| v.chars().count()).cloned().unwrap_or_default(),
        }
    }

    /// Whether `value` is valid under this schema.
    pub fn accepts(&self, value: &Value) -> bool {
        match (self, value) {
            (JsonSchema::Object(fields), Value::Object(map)) => {
                map.len() == fields.len() && fields.iter().all(|(k, s)| map.get(k).is_some_and(|v| s.accepts(v)))
            }
            (JsonSchema::Array { items, min, max }, Value::Array(a)) => {
                (*min..=*max).contains(&a.len()) && a.iter().all(|v| items.accepts(v))
            }
            (JsonSchema::String { max_len }, Value::String(s)) => max_len.is_none_or(|m| s.chars().count() <= m),
            (JsonSchema::Number { integer: false }, Value::Number(_)) => true,
            (JsonSchema::Number { integer: true }, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (JsonSchema::Boolean, Value::Bool(_)) | (JsonSchema::Null, Value::Null) => true,
            (JsonSchema::Enum(values), v) => values.contains(&v.to_string()),
            _ => false,
        }
    }
}

/// Where a number stands: after a sign, digits of the integer part (a leading zero allows no
/// more), after the point, in the fraction, after `e`, after the exponent's sign, in it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Sign,
    Zero,
    Int,
    Point,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

impl Num {
    fn done(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::ExpDigits)
    }

    fn next(self, c: char, integer: bool) -> Option<Num> {
        let digit = c.is_ascii_digit();
        Some(match (self, c) {
            (Num::Sign, '0') => Num::Zero,
            (Num::Sign, _) if digit => Num::Int,
            (Num::Int, _) if digit => Num::Int,
            (Num::Zero | Num::Int, '.') if !integer => Num::Point,
            (Num::Zero | Num::Int | Num::Frac, 'e' | 'E') if !integer => Num::Exp,
            (Num::Point | Num::Frac, _) if digit => Num::Frac,
            (Num::Exp, '+' | '-') => Num::ExpSign,
            (Num::Exp | Num::ExpSign | Num::ExpDigits, _) if digit => Num::ExpDigits,
            _ => return None,
        })
    }
}

/// The phases of an object or an array being written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Object: before the key of property `next` (or the closing brace when there is none).
    /// Array: before the first item or the closing bracket.
    Open,
    /// Object: after the key, before the colon.
    Key,
    /// After a value: before a comma or the closing brace/bracket.
    Value,
    /// Array: after a comma, before an item.
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
enum Frame<'s> {
    /// A value of this schema comes next.
    Value(&'s JsonSchema),
    /// `text` from `pos` on comes next, exactly.
    Literal { text: String, pos: usize },
    /// One of these values (compact JSON texts), `done` characters of it written.
    Enum { values: &'s [String], written: String },
    /// Inside a string, `len` characters written; `escape` characters of an escape still due
    /// (`usize::MAX` right after the backslash).
    Str { len: usize, max: Option<usize>, escape: usize },
    /// `digits`: digits of the integer part, then of the exponent (bounded so that every
    /// number parses as a finite f64, and an integer as an i64).
    Number { at: Num, integer: bool, digits: u8 },
    Object { fields: &'s [(String, JsonSchema)], next: usize, phase: Phase },
    Array { items: &'s JsonSchema, count: usize, min: usize, max: usize, phase: Phase },
}

/// A JSON value being written: the frames still open, innermost last.
#[derive(Debug, Clone, PartialEq)]
struct Machine<'s> {
    stack: Vec<Frame<'s>>,
    /// Whitespace characters in a row.
    ws: usize,
}

impl<'s> Machine<'s> {
    fn new(schema: &'s JsonSchema) -> Self {
        Machine { stack: vec![Frame::Value(schema)], ws: 0 }
    }

    /// Whether the text so far is a whole value (a number may still grow).
    fn complete(&self) -> bool {
        match self.stack.as_slice() {
            [] => true,
            [Frame::Number { at, .. }] => at.done(),
            _ => false,
        }
    }

    /// Whitespace between parts: allowed where the innermost frame is a value to come or an
    /// object or array between its parts.
    fn space_allowed(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Value(_) | Frame::Object { .. } | Frame::Array { .. }))
    }

    /// Reads `c`; false when no valid value continues this way.
    fn feed(&mut self, c: char) -> bool {
        // JSON's whitespace: space, tab, line feed, carriage return (not every Unicode space).
        if matches!(c, ' ' | '\t' | '\n' | '\r') && self.space_allowed() {
            self.ws += 1;
            return self.ws <= MAX_WS;
        }
        self.ws = 0;
        self.step(c)
    }

    fn step(&mut self, c: char) -> bool {
        let Some(top) = self.stack.last_mut() else { return false };
        match top {
            Frame::Value(schema) => {
                let schema: &'s JsonSchema = schema;
                let frame = match (schema, c) {
                    (JsonSchema::Object(fields), '{') => Frame::Object { fields, next: 0, phase: Phase::Open },
                    (JsonSchema::Array { items, min, max }, '[') => {
                        Frame::Array { items, count: 0, min: *min, max: *max, phase: Phase::Open }
                    }
                    (JsonSchema::String { max_len }, '"') => Frame::Str { len: 0, max: *max_len, escape: 0 },
                    (JsonSchema::Number { integer }, '-') => Frame::Number { at: Num::Sign, integer: *integer, digits: 0 },
                    (JsonSchema::Number { integer }, '0') => Frame::Number { at: Num::Zero, integer: *integer, digits: 1 },
                    (JsonSchema::Number { integer }, '1'..='9') => Frame::Number { at: Num::Int, integer: *integer, digits: 1 },
                    (JsonSchema::Boolean, 't') => Frame::Literal { text: "true".into(), pos: 1 },
                    (JsonSchema::Boolean, 'f') => Frame::Literal { text: "false".into(), pos: 1 },
                    (JsonSchema::Null, 'n') => Frame::Literal { text: "null".into(), pos: 1 },
                    (JsonSchema::Enum(values), _) => {
                        *top = Frame::Enum { values, written: String::new() };
                        return self.step(c);
                    }
                    _ => return false,
                };
                *top = frame;
                self.finish_literal();
                true
            }
            Frame::Literal { text, pos } => {
                if text[*pos..].starts_with(c) {
                    *pos += c.len_utf8();
                    self.finish_literal();
                    true
                } else {
                    false
                }
            }
            Frame::Enum { values, written } => {
                let mut longer = written.clone();
                longer.push(c);
                if values.iter().any(|v| v.starts_with(&longer)) {
                    *written = longer;
                    // A value no other extends is finished (a string's closing quote, say).
                    if values.contains(written) && !values.iter().any(|v| v.len() > written.len() && v.starts_with(written.as_str())) {
                        self.stack.pop();
                    }
                    true
                } else if values.iter().any(|v| v == written) {
                    // A finished number: the character belongs to what follows.
                    self.stack.pop();
                    self.feed(c)
                } else {
                    false
                }
            }
            Frame::Str { len, max, escape } => {
                // An escape counts as one character, at its letter.
                if *escape == usize::MAX {
                    *escape = 0;
                    match c {
                        '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' => {}
                        'u' => *escape = 4,
                        _ => return false,
                    }
                } else if *escape > 0 {
                    *escape -= 1;
                    return c.is_ascii_hexdigit();
                } else if c == '"' {
                    self.stack.pop();
                    return true;
                } else if c == '\\' {
                    // The escaped character must still fit the string's length.
                    *escape = usize::MAX;
                    return max.is_none_or(|m| *len < m);
                } else if (c as u32) < 0x20 {
                    return false;
                }
                *len += 1;
                max.is_none_or(|m| *len <= m)
            }
            Frame::Number { at, integer, digits } => match at.next(c, *integer) {
                Some(next) => {
                    *digits = match next {
                        Num::Int | Num::ExpDigits => *digits + 1,
                        Num::Exp => 0,
                        _ => *digits,
                    };
                    *at = next;
                    // 15 digits before the point, 2 in the exponent.
                    match next {
                        Num::Int => *digits <= MAX_INT_DIGITS,
                        Num::ExpDigits => *digits <= MAX_EXP_DIGITS,
                        _ => true,
                    }
                }
                None if at.done() => {
                    self.stack.pop();
                    self.feed(c)
                }
                None => false,
            },
            Frame::Object { fields, next, phase } => {
                let fields: &'s [(String, JsonSchema)] = fields;
                match (*phase, c) {
                    (Phase::Open, '}') if fields.is_empty() => {
                        self.stack.pop();
                        true
                    }
                    (Phase::Open, '"') if *next < fields.len() => {
                        let key = Value::from(fields[*next].0.as_str()).to_string();
                        *phase = Phase::Key;
                        self.stack.push(Frame::Literal { text: key, pos: 1 });
                        true
                    }
                    (Phase::Key, ':') => {
                        let schema = &fields[*next].1;
                        *next += 1;
                        *phase = Phase::Value;
                        self.stack.push(Frame::Value(schema));
                        true
                    }
                    (Phase::Value, ',') if *next < fields.len() => {
                        *phase = Phase::Open;
                        true
                    }
                    (Phase::Value, '}') if *next == fields.len() => {
                        self.stack.pop();
                        true
                    }
                    _ => false,
                }
            }
            Frame::Array { items, count, min, max, phase } => {
                let items: &'s JsonSchema = items;
                match (*phase, c) {
                    (Phase::Open | Phase::Value, ']') if *count >= *min => {
                        self.stack.pop();
                        true
                    }
                    (Phase::Value, ',') if *count < *max => {
                        *phase = Phase::Comma;
                        true
                    }
                    (Phase::Open | Phase::Comma, _) if *count < *max => {
                        *count += 1;
                        *phase = Phase::Value;
                        self.stack.push(Frame::Value(items));
                        self.step(c)
                    }
                    _ => false,
                }
            }
        }
    }

    /// Pops a literal written to its end.
    fn finish_literal(&mut self) {
        if let Some(Frame::Literal { text, pos }) = self.stack.last() {
            if *pos == text.len() {
                self.stack.pop();
            }
        }
    }

    /// The shortest text that completes the value.
    fn completion(&self) -> String {
        let mut out = String::new();
        for frame in self.stack.iter().rev() {
            match frame {
                Frame::Value(schema) => out.push_str(&schema.shortest()),
                Frame::Literal { text, pos } => out.push_str(&text[*pos..]),
                Frame::Enum { values, written } => {
                    let rest = values.iter().filter(|v| v.starts_with(written.as_str())).min_by_key(|v| v.len());
                    out.push_str(rest.map_or("", |v| &v[written.len()..]));
                }
                Frame::Str { escape, .. } => {
                    // An escape's letter ("n"), or its hex digits, then the closing quote.
                    if *escape == usize::MAX {
                        out.push('n');
                    }
                    (0..*escape % usize::MAX).for_each(|_| out.push('0'));
                    out.push('"');
                }
                Frame::Number { at, .. } => out.push_str(if at.done() { "" } else { "0" }),
                Frame::Object { fields, next, phase } => {
                    let property = |(k, s): &(String, JsonSchema)| format!("{}:{}", Value::from(k.as_str()), s.shortest());
                    let later = |from: usize| -> String { fields[from..].iter().map(|f| format!(",{}", property(f))).collect() };
                    match phase {
                        Phase::Open if *next < fields.len() => {
                            out.push_str(&property(&fields[*next]));
                            out.push_str(&later(*next + 1));
                        }
                        Phase::Open => {}
                        Phase::Key => {
                            out.push(':');
                            out.push_str(&fields[*next].1.shortest());
                            out.push_str(&later(*next + 1));
                        }
                        Phase::Value | Phase::Comma => out.push_str(&later(*next)),
                    }
                    out.push('}');
                }
                Frame::Array { items, count, min, phase, .. } => {
                    let item = items.shortest();
                    let missing = min.saturating_sub(*count);
                    match phase {
                        Phase::Open => out.push_str(&vec![item; missing].join(",")),
                        Phase::Comma => out.push_str(&vec![item; missing.max(1)].join(",")),
                        _ => (0..missing).for_each(|_| {
                            out.push(',');
                            out.push_str(&item);
                        }),
                    }
                    out.push(']');
                }
            }
        }
        out
    }
}

/// A node of the token trie: its children by character and the tokens that end at it.
#[derive(Debug, Default)]
struct Node {
    children: Vec<(char, usize)>,
    tokens: Vec<u32>,
}

/// The constraint for one schema and one tokenizer.
#[derive(Debug)]
pub struct JsonConstraint {
    schema: JsonSchema,
    texts: Arc<Vec<String>>,
    eos: Vec<u32>,
    /// The trie of every token's text (tokens with no text left out).
    trie: Vec<Node>,
    /// Tokens with text that holds no quote, backslash or control character: inside a string
    /// they only add characters.
    plain: Vec<u32>,
    /// The others with text.
    special: Vec<u32>,
}

impl JsonConstraint {
    /// The constraint of `schema` for `tok`'s model and a budget of `max_new_tokens`.
    ///
    /// Errors: `InvalidArgument` for a schema outside the subset, one whose shortest value does
    /// not fit `max_new_tokens`, or a model without an end-of-text token.
    pub fn new(schema: &str, tok: &Tokenizer, max_new_tokens: usize) -> Result<Self> {
        let schema = JsonSchema::parse(schema)?;
        if tok.eos_ids().is_empty() {
            return Err(bad("the model has no end-of-text token, so a JSON value could not end"));
        }
        let texts = tok.token_texts();
        let mut trie = vec![Node::default()];
        let (mut plain, mut special) = (Vec::new(), Vec::new());
        for (id, text) in texts.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
            let mut at = 0;
            for c in text.chars() {
                at = match trie[at].children.iter().find(|(ch, _)| *ch == c) {
                    Some(&(_, child)) => child,
                    None => {
                        trie.push(Node::default());
                        let child = trie.len() - 1;
                        trie[at].children.push((c, child));
                        child
                    }
                };
            }
            trie[at].tokens.push(id as u32);
            if text.chars().any(|c| c == '"' || c == '\\' || (c as u32) < 0x20) {
                special.push(id as u32);
            } else {
                plain.push(id as u32);
            }
        }
        let constraint = JsonConstraint { schema, texts, eos: tok.eos_ids().to_vec(), trie, plain, special };
        let need = constraint.need(&Machine::new(&constraint.schema)) + 1;
        if need >= usize::MAX / 2 {
            // A character the tokenizer writes only as several byte tokens (肺, 😀 with a
            // byte-level vocabulary) has no token text of its own to match.
            let shortest = Machine::new(&constraint.schema).completion();
            return Err(MedgenError::Unsupported(format!(
                "a JSON schema whose shortest value ({shortest}) holds a character this tokenizer writes only in byte pieces: constrained generation matches whole characters"
            )));
        }
        if need > max_new_tokens {
            return Err(MedgenError::invalid(
                "max_new_tokens",
                format!("{max_new_tokens} is too few for the JSON schema: its shortest value and the end take {need} tokens"),
            ));
        }
        Ok(constraint)
    }

    /// The schema read.
    pub fn schema(&self) -> &JsonSchema {
        &self.schema
    }

    /// The tokens it takes to write `text`, longest match first (an upper bound on the
    /// fewest); a character no token starts with makes it unwritable (`usize::MAX / 2`).
    fn tokens_for(&self, text: &str) -> usize {
        let chars: Vec<char> = text.chars().collect();
        let (mut at, mut n) = (0, 0);
        while at < chars.len() {
            let (mut node, mut best) = (0, 0);
            for (i, c) in chars[at..].iter().enumerate() {
                match self.trie[node].children.iter().find(|(ch, _)| ch == c) {
                    Some(&(_, child)) => node = child,
                    None => break,
                }
                if !self.trie[node].tokens.is_empty() {
                    best = i + 1;
                }
            }
            if best == 0 {
                return usize::MAX / 2;
            }
            at += best;
            n += 1;
        }
        n
    }

    /// The tokens the value still needs.
    fn need(&self, m: &Machine<'_>) -> usize {
        self.tokens_for(&m.completion())
    }

    /// The machine after the generated tokens; None if they already left the schema.
    fn replay(&self, generated: &[u32]) -> Option<Machine<'_>> {
        let mut m = Machine::new(&self.schema);
        for &t in generated {
            for c in self.texts.get(t as usize)?.chars() {
                if !m.feed(c) {
                    return None;
                }
            }
        }
        Some(m)
    }

    /// Marks in `allowed` every token whose text `m` reads, leaving a value that `room`
    /// characters can still complete: a walk of the trie from `node`.
    fn walk(&self, m: &Machine<'_>, node: usize, room: usize, allowed: &mut [bool]) {
        for &(c, child) in &self.trie[node].children {
            let mut next = m.clone();
            if !next.feed(c) {
                continue;
            }
            let fits = !self.trie[child].tokens.is_empty() && self.need(&next) <= room;
            if fits {
                for &t in &self.trie[child].tokens {
                    allowed[t as usize] = true;
                }
            }
            // A token that overruns here may still close the value further on.
            self.walk(&next, child, room, allowed);
        }
    }
}

impl LogitsConstraint for JsonConstraint {
    fn apply(&self, scores: &mut [f32], generated: &[u32], max_new_tokens: usize) {
        let mut allowed = vec![false; scores.len()];
        if let Some(m) = self.replay(generated) {
            // Room after this token: the tokens left after it, one of them for the end.
            let room = max_new_tokens.saturating_sub(generated.len() + 2);
            if m.complete() && m.stack.is_empty() {
                self.eos.iter().for_each(|&e| allowed[e as usize] = true);
            } else {
                if m.complete() {
                    self.eos.iter().for_each(|&e| allowed[e as usize] = true);
                }
                match m.stack.last() {
                    Some(Frame::Str { max: None, escape: 0, .. }) if self.need(&m) <= room => {
                        // Inside a string, text without quotes or escapes only adds characters.
                        self.plain.iter().for_each(|&t| allowed[t as usize] = true);
                        for &t in &self.special {
                            let mut next = m.clone();
                            if self.texts[t as usize].chars().all(|c| next.feed(c)) && self.need(&next) <= room {
                                allowed[t as usize] = true;
                            }
                        }
                    }
                    _ => self.walk(&m, 0, room, &mut allowed),
                }
            }
        }
        if !allowed.iter().any(|&a| a) {
            // Nothing fits (a budget overrun cannot happen when the schema fit): end the text.
            self.eos.iter().for_each(|&e| allowed[e as usize] = true);
        }
        for (s, &ok) in scores.iter_mut().zip(&allowed) {
            if !ok {
                *s = f32::NEG_INFINITY;
            }
        }
        // Where only the end is allowed it ends the text, even against min_new_tokens.
        if scores.iter().all(|s| *s == f32::NEG_INFINITY) {
            if let Some(s) = self.eos.first().and_then(|&e| scores.get_mut(e as usize)) {
                *s = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reads(schema: &JsonSchema, text: &str) -> Option<bool> {
        let mut m = Machine::new(schema);
        for (i, c) in text.char_indices() {
            if !m.feed(c) {
                eprintln!("refused at {i}: {:?}", &text[..i]);
                return None;
            }
        }
        Some(m.complete())
    }

    #[test]
    fn the_machine_reads_valid_json_and_refuses_the_rest() {
        let schema = JsonSchema::parse(
            r#"{"type": "object", "properties": {
                "plan": {"type": "string"},
                "dose_mg": {"type": "number"},
                "days": {"type": "integer"},
                "urgent": {"type": "boolean"},
                "route": {"enum": ["oral", "iv", 3]},
                "codes": {"type": "array", "items": {"type": "string", "maxLength": 4}, "maxItems": 2},
                "none": {"type": "null"}}}"#,
        )
        .unwrap();
        let good = r#"{"plan": "rest \"now\" \u00e9", "dose_mg": -1.5e3, "days": 10, "urgent": true,
                       "route": "iv", "codes": ["A1", "B22"], "none": null}"#;
        assert_eq!(reads(&schema, good), Some(true));
        let value: Value = serde_json::from_str(good).unwrap();
        assert!(schema.accepts(&value));
        assert_eq!(reads(&schema, r#"{"plan": "x""#), Some(false));
        for bad in [
            r#"{"dose_mg": 1}"#,
            r#"{"plan": 3"#,
            r#"{"plan": "a", "dose_mg": 01"#,
            r#"{"plan": "a", "dose_mg": 1e400"#,
            r#"{"plan": "a", "dose_mg": 1, "days": 1234567890123456"#,
            r#"{"plan": "a", "dose_mg": 1, "days": 1.5"#,
            r#"{"plan": "a", "dose_mg": 1, "days": 1, "urgent": yes"#,
            r#"{"plan": "a", "dose_mg": 1, "days": 1, "urgent": true, "route": "po""#,
            r#"{"plan": "a", "dose_mg": 1, "days": 1, "urgent": true, "route": 3, "codes": ["ABCDE"#,
            r#"{"plan": "a", "dose_mg": 1, "days": 1, "urgent": true, "route": 3, "codes": ["ABCD\"#,
            r#"{"plan": "a", "dose_mg": 1, "days": 1, "urgent": true, "route": 3, "codes": ["A","B","C""#,
            "{\"plan\": \"line\nbreak\"",
            "{\u{c}\"plan\": \"x\"",
        ] {
            assert_eq!(reads(&schema, bad), None, "{bad}");
        }
    }

    #[test]
    fn the_completion_is_the_shortest_closing_text() {
        let schema = JsonSchema::parse(
            &json!({"type": "object", "properties": {
                "a": {"type": "string"}, "b": {"type": "array", "items": {"type": "integer"}, "minItems": 2}}})
            .to_string(),
        )
        .unwrap();
        let shortest = schema.shortest();
        assert_eq!(shortest, r#"{"a":"","b":[0,0]}"#);
        for cut in 0..shortest.len() {
            let mut m = Machine::new(&schema);
            assert!(shortest[..cut].chars().all(|c| m.feed(c)));
            assert_eq!(m.completion(), &shortest[cut..], "after {:?}", &shortest[..cut]);
        }
        for (written, rest) in [(r#"{"a": "xy", "b": [12"#, ",0]}"), (r#"{"a": "x\"#, r#"n","b":[0,0]}"#), (r#"{"a": "\u00"#, r#"00","b":[0,0]}"#)] {
            let mut m = Machine::new(&schema);
            assert!(written.chars().all(|c| m.feed(c)), "{written}");
            assert_eq!(m.completion(), rest);
            let mut whole = m.clone();
            assert!(rest.chars().all(|c| whole.feed(c)) && whole.complete() && whole.stack.is_empty(), "{written}{rest}");
        }
    }

    #[test]
    fn schemas_outside_the_subset_are_refused_by_name() {
        for (schema, word) in [
            (json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}}), "$ref"),
            (json!({"anyOf": []}), "anyOf"),
            (json!({"type": ["string", "null"]}), "type"),
            (json!({"type": "object", "additionalProperties": true}), "additionalProperties"),
            (json!({"type": "object", "properties": {}, "required": ["x"]}), "required"),
            (json!({"type": "array"}), "items"),
            (json!({"enum": []}), "enum"),
            (json!({"type": "string", "maxLength": -1}), "maxLength"),
            (json!("string"), "object"),
            (json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": "a"}), "required"),
        ] {
            match JsonSchema::parse(&schema.to_string()) {
                Err(MedgenError::InvalidArgument { name: "json_schema", reason }) => assert!(reason.contains(word), "{reason}"),
                other => panic!("{schema}: {other:?}"),
            }
        }
        let mut deep = json!({"type": "string"});
        for _ in 0..40 {
            deep = json!({"type": "array", "items": deep});
        }
        assert!(JsonSchema::parse(&deep.to_string()).is_err());
        // Nested minItems that would make a shortest value of 1000^8 characters.
        let mut huge = json!({"type": "integer"});
        for _ in 0..8 {
            huge = json!({"type": "array", "items": huge, "minItems": 1000});
        }
        assert!(matches!(JsonSchema::parse(&huge.to_string()), Err(MedgenError::InvalidArgument { .. })));
        assert!(JsonSchema::parse("{").is_err());
    }
}
