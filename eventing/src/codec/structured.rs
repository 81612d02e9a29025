//! The JSON event format (structured mode) and the JSON batch format (batched mode).
//!
//! serde_json checks the JSON; a small scanner over the checked text then finds each member's
//! exact span, so that JSON `data` is kept as the very text it arrived as (serde_json's
//! `RawValue` would do the same, but its feature is not enabled in the workspace).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::ops::Range;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::validate::{self, is_context_attribute, is_json_media_type};
use super::{DecodeError, Event, SpecVersion};

/// Standard base64, with or without padding.
const BASE64_DECODE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64_ENCODE: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One event in the JSON event format.
pub(super) fn decode_event(json: &[u8]) -> Result<Event, DecodeError> {
    let text = checked_json(json)?;
    let members = object_members(text, 0..text.len())
        .ok_or_else(|| DecodeError::Invalid("the body is not a JSON object".to_owned()))?;
    decode_members(text, &members).map_err(DecodeError::Invalid)
}

/// A JSON array of events in the JSON event format, all of one specversion. It may be empty.
pub(super) fn decode_batch(json: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let text = checked_json(json)?;
    let elements = array_elements(text).ok_or_else(|| {
        DecodeError::Invalid("the body of a batch must be a JSON array of events".to_owned())
    })?;
    let mut events: Vec<Event> = Vec::with_capacity(elements.len());
    for (i, element) in elements.into_iter().enumerate() {
        let members = object_members(text, element)
            .ok_or_else(|| DecodeError::Invalid(format!("batch[{i}]: the event is not a JSON object")))?;
        let event =
            decode_members(text, &members).map_err(|e| DecodeError::Invalid(format!("batch[{i}]: {e}")))?;
        if let Some(first) = events.first()
            && first.specversion != event.specversion
        {
            return Err(DecodeError::Invalid(format!(
                "batch[{i}]: specversion: {} differs from the batch's {}; all events of a batch must have \
                 the same specversion",
                event.specversion, first.specversion
            )));
        }
        events.push(event);
    }
    Ok(events)
}

fn checked_json(json: &[u8]) -> Result<&str, DecodeError> {
    let text = std::str::from_utf8(json)
        .map_err(|_| DecodeError::Invalid("the body is not JSON: it is not UTF-8".to_owned()))?;
    serde_json::from_str::<IgnoredAny>(text)
        .map_err(|e| DecodeError::Invalid(format!("the body is not valid JSON: {e}")))?;
    Ok(text)
}

/// The members of the event object at `span` of `text`, by name and value span.
type Members = Vec<(String, Range<usize>)>;

fn decode_members(text: &str, members: &Members) -> Result<Event, String> {
    let mut seen = HashSet::new();
    if let Some((name, _)) = members.iter().find(|(name, _)| !seen.insert(name.as_str())) {
        return Err(format!("{name}: the member appears more than once"));
    }
    let raw = |name: &str| members.iter().find(|(n, _)| n == name).map(|(_, span)| &text[span.clone()]);

    let version = match raw("specversion").map(|raw| string_member("specversion", raw)).transpose()? {
        Some(Some(v)) => SpecVersion::parse(&v)
            .ok_or_else(|| format!("specversion: {v:?} is not supported; Skiff accepts 1.0 and 0.3"))?,
        _ => return Err("specversion: the required attribute is missing".to_owned()),
    };

    let mut event = Event { specversion: version, ..Event::default() };
    let (mut id, mut source, mut type_) = (None, None, None);
    let (mut data, mut data_base64, mut encoding) = (None, None, None);
    for (name, span) in members {
        let raw = &text[span.clone()];
        let name = name.as_str();
        match (name, version) {
            ("specversion", _) => {}
            ("id", _) => id = string_member(name, raw)?,
            ("source", _) => source = string_member(name, raw)?,
            ("type", _) => type_ = string_member(name, raw)?,
            ("subject", _) => event.subject = string_member(name, raw)?,
            ("time", _) => event.time = string_member(name, raw)?,
            ("datacontenttype", _) => event.datacontenttype = string_member(name, raw)?,
            ("dataschema", SpecVersion::V1_0) | ("schemaurl", SpecVersion::V0_3) => {
                event.dataschema = string_member(name, raw)?;
            }
            ("datacontentencoding", SpecVersion::V0_3) => encoding = string_member(name, raw)?,
            ("data", _) => data = Some(raw),
            ("data_base64", SpecVersion::V1_0) => data_base64 = string_member(name, raw)?,
            _ => {
                validate::check_extension_name(name)?;
                if let Some(value) = extension_member(name, raw)? {
                    event.extensions.insert(name.to_owned(), value);
                }
            }
        }
    }
    let missing = |name: &str| format!("{name}: the required attribute is missing");
    event.id = id.ok_or_else(|| missing("id"))?;
    event.source = source.ok_or_else(|| missing("source"))?;
    event.type_ = type_.ok_or_else(|| missing("type"))?;

    if let Some(encoding) = &encoding
        && !encoding.eq_ignore_ascii_case("base64")
    {
        return Err(format!(
            "datacontentencoding: {encoding:?} is not supported; the only encoding is base64"
        ));
    }
    event.data = match (data, data_base64) {
        (Some(_), Some(_)) => {
            return Err("data_base64: data and data_base64 are mutually exclusive".to_owned());
        }
        (None, Some(base64)) => Some(decode_base64("data_base64", &base64)?),
        (None, None) => None,
        (Some(raw), None) if encoding.is_some() => match string_member("data", raw) {
            Ok(Some(base64)) => Some(decode_base64("data", &base64)?),
            Ok(None) => None,
            Err(_) => {
                return Err("data: must be a base64 string when datacontentencoding is base64".to_owned());
            }
        },
        // JSON data (by default too): its exact text, `null` included.
        (Some(raw), None) if event.datacontenttype.as_deref().is_none_or(is_json_media_type) => {
            Some(Bytes::copy_from_slice(raw.as_bytes()))
        }
        // Other data is a string of its content; the spec lets other JSON be refused, but its text
        // is the kinder reading.
        (Some(raw), None) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::String(content)) => Some(Bytes::from(content)),
            Ok(Value::Null) => None,
            _ => Some(Bytes::copy_from_slice(raw.as_bytes())),
        },
    };

    validate::check_event(&event)?;
    Ok(event)
}

/// A string attribute; null is unset.
fn string_member(name: &str, raw: &str) -> Result<Option<String>, String> {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::String(s)) => Ok(Some(s)),
        Ok(Value::Null) => Ok(None),
        _ => Err(format!("{name}: must be a string, not {}", kind(raw))),
    }
}

/// An extension attribute in its string form: strings, integers and booleans; null is unset.
fn extension_member(name: &str, raw: &str) -> Result<Option<String>, String> {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::String(s)) => Ok(Some(s)),
        Ok(Value::Null) => Ok(None),
        Ok(Value::Bool(b)) => Ok(Some(b.to_string())),
        Ok(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        _ => {
            let kind = if kind(raw) == "a number" { "a non-integer number" } else { kind(raw) };
            Err(format!(
                "{name}: an extension attribute must be a string, an integer or a boolean, not {kind}"
            ))
        }
    }
}

/// What a JSON value is, for messages.
fn kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn decode_base64(name: &str, base64: &str) -> Result<Bytes, String> {
    BASE64_DECODE.decode(base64).map(Bytes::from).map_err(|e| format!("{name}: not valid base64 ({e})"))
}

/// A scanner over text serde_json has checked: it only finds where values start and end.
struct Scanner<'a> {
    text: &'a [u8],
    pos: usize,
    end: usize,
}

impl Scanner<'_> {
    fn skip_whitespace(&mut self) {
        while self.pos < self.end && matches!(self.text[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        if self.pos < self.end { Some(self.text[self.pos]) } else { None }
    }

    /// Consumes `byte` (after whitespace), if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let next = self.peek() == Some(byte);
        if next {
            self.pos += 1;
        }
        next
    }

    /// The span of the value that starts here (after whitespace).
    fn value(&mut self) -> Range<usize> {
        self.skip_whitespace();
        let start = self.pos;
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                while let Some(b) = self.peek() {
                    match b {
                        b'"' => {
                            self.string();
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                self.pos += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                while self.peek().is_some_and(|b| !b",}] \t\n\r".contains(&b)) {
                    self.pos += 1;
                }
            }
        }
        start..self.pos
    }

    /// Skips the string that starts here.
    fn string(&mut self) {
        self.pos += 1;
        while let Some(b) = self.peek() {
            self.pos += if b == b'\\' { 2 } else { 1 };
            if b == b'"' {
                break;
            }
        }
        self.pos = self.pos.min(self.end);
    }
}

/// The members of the object at `span`, or None if it is not an object.
fn object_members(text: &str, span: Range<usize>) -> Option<Members> {
    let mut scanner = Scanner { text: text.as_bytes(), pos: span.start, end: span.end };
    if !scanner.eat(b'{') {
        return None;
    }
    let mut members = Vec::new();
    if scanner.eat(b'}') {
        return Some(members);
    }
    loop {
        let key = scanner.value();
        let name = serde_json::from_str::<String>(&text[key]).ok()?;
        scanner.eat(b':');
        members.push((name, scanner.value()));
        if !scanner.eat(b',') {
            return Some(members);
        }
    }
}

/// The element spans of the top-level array, or None if it is not an array.
fn array_elements(text: &str) -> Option<Vec<Range<usize>>> {
    let mut scanner = Scanner { text: text.as_bytes(), pos: 0, end: text.len() };
    if !scanner.eat(b'[') {
        return None;
    }
    let mut elements = Vec::new();
    if scanner.eat(b']') {
        return Some(elements);
    }
    loop {
        elements.push(scanner.value());
        if !scanner.eat(b',') {
            return Some(elements);
        }
    }
}

/// Whether `data` is a JSON text.
pub(super) fn is_json(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok_and(|text| serde_json::from_str::<IgnoredAny>(text).is_ok())
}

/// Whether `data` can be written as the `data` member and read back byte for byte: JSON without
/// surrounding whitespace.
fn is_embeddable_json(data: &[u8]) -> bool {
    let ws = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t' | b'\n' | b'\r'));
    !data.is_empty() && !ws(data.first()) && !ws(data.last()) && is_json(data)
}

/// Whether serde_json writes `data` back byte for byte (for `Serialize`, which goes through a
/// `serde_json::Value`).
pub(super) fn is_canonical_json(data: &[u8]) -> bool {
    serde_json::from_slice::<Value>(data)
        .is_ok_and(|value| serde_json::to_vec(&value).is_ok_and(|v| v == data))
}

/// The event in the JSON event format, compact.
pub(super) fn encode(event: &Event) -> Vec<u8> {
    encode_with(event, is_embeddable_json)
}

/// The event in the JSON event format, with JSON data written as JSON where `embed_json` allows
/// (otherwise base64).
pub(super) fn encode_with(event: &Event, embed_json: fn(&[u8]) -> bool) -> Vec<u8> {
    let version = event.specversion;
    let mut out = String::with_capacity(128 + event.data.as_ref().map_or(0, |d| d.len() * 4 / 3));
    out.push('{');
    let member = |out: &mut String, name: &str, value: &str| {
        if out.len() > 1 {
            out.push(',');
        }
        push_json_string(out, name);
        out.push(':');
        push_json_string(out, value);
    };
    member(&mut out, "specversion", version.as_str());
    member(&mut out, "id", &event.id);
    member(&mut out, "source", &event.source);
    member(&mut out, "type", &event.type_);
    if let Some(content_type) = &event.datacontenttype {
        member(&mut out, "datacontenttype", content_type);
    }
    if let Some(schema) = &event.dataschema {
        member(&mut out, if version == SpecVersion::V1_0 { "dataschema" } else { "schemaurl" }, schema);
    }
    if let Some(subject) = &event.subject {
        member(&mut out, "subject", subject);
    }
    if let Some(time) = &event.time {
        member(&mut out, "time", time);
    }
    for (name, value) in &event.extensions {
        if !is_context_attribute(version, name) && validate::check_extension_name(name).is_ok() {
            member(&mut out, name, value);
        }
    }
    if let Some(data) = &event.data {
        let json_type = event.datacontenttype.as_deref().is_none_or(is_json_media_type);
        match std::str::from_utf8(data) {
            Ok(json) if json_type && embed_json(data) => {
                out.push_str(",\"data\":");
                out.push_str(json);
            }
            Ok(text) if !json_type => member(&mut out, "data", text),
            _ if version == SpecVersion::V1_0 => member(&mut out, "data_base64", &BASE64_ENCODE.encode(data)),
            _ => {
                member(&mut out, "datacontentencoding", "base64");
                member(&mut out, "data", &BASE64_ENCODE.encode(data));
            }
        }
    }
    out.push('}');
    out.into_bytes()
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(text: &str) -> Vec<(String, &str)> {
        let members = object_members(text, 0..text.len()).unwrap();
        members.into_iter().map(|(name, span)| (name, &text[span])).collect()
    }

    #[test]
    fn scanner_finds_exact_spans() {
        let text =
            r#" { "a" : 1 , "b\"q" :"x,}\"]" ,"c":{ "d": [1, {"e": "}"}] } ,"f":[ ], "g":null,"h":-1.5e3 } "#;
        assert_eq!(
            members(text),
            vec![
                ("a".to_owned(), "1"),
                ("b\"q".to_owned(), r#""x,}\"]""#),
                ("c".to_owned(), r#"{ "d": [1, {"e": "}"}] }"#),
                ("f".to_owned(), "[ ]"),
                ("g".to_owned(), "null"),
                ("h".to_owned(), "-1.5e3"),
            ]
        );
        assert_eq!(members("{}"), vec![]);
        assert!(object_members("[1]", 0..3).is_none());
        let text = r#"[ {"a":1} , {"b":"]"} ]"#;
        let spans = array_elements(text).unwrap();
        assert_eq!(
            spans.iter().map(|s| &text[s.clone()]).collect::<Vec<_>>(),
            vec![r#"{"a":1}"#, r#"{"b":"]"}"#]
        );
        assert_eq!(array_elements(" [ ] ").unwrap(), Vec::<std::ops::Range<usize>>::new());
        assert!(array_elements("{}").is_none());
    }

    #[test]
    fn json_strings_escape() {
        let mut out = String::new();
        push_json_string(&mut out, "q\"b\\n\n\u{1}é😀");
        assert_eq!(out, r#""q\"b\\n\n\u0001é😀""#);
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), "q\"b\\n\n\u{1}é😀");
    }

    #[test]
    fn json_data_kinds() {
        assert!(is_embeddable_json(b"{\"a\": 1}"));
        assert!(is_embeddable_json(b"\"s\""));
        assert!(is_embeddable_json(b"null"));
        assert!(!is_embeddable_json(b"{\"a\": 1}\n"));
        assert!(!is_embeddable_json(b" 1"));
        assert!(!is_embeddable_json(b"hello"));
        assert!(!is_embeddable_json(b""));
        assert!(!is_embeddable_json(b"\xff"));
        assert!(is_canonical_json(b"{\"a\":[1,2.5]}"));
        assert!(!is_canonical_json(b"{\"a\": 1}"));
        assert!(!is_canonical_json(b"1e3"));
    }
}
