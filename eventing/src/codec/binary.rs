//! The binary content mode: attributes in `ce-*` headers (percent-encoded), `datacontenttype` in
//! `Content-Type`, the data as the body.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use super::validate::{self, is_context_attribute};
use super::{DecodeError, Event, SpecVersion};

const PREFIX: &str = "ce-";

pub(super) fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Event, DecodeError> {
    decode_attributes(headers, body).map_err(DecodeError::Invalid)
}

fn decode_attributes(headers: &HeaderMap, body: &[u8]) -> Result<Event, String> {
    let mut attributes = BTreeMap::new();
    // HeaderMap names are lowercase already: header names are case-insensitive.
    for name in headers.keys() {
        let Some(attribute) = name.as_str().strip_prefix(PREFIX) else { continue };
        let mut values = headers.get_all(name).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(format!("{attribute}: the {name} header is given more than once"));
        };
        let value = header_value(value.as_bytes())
            .map_err(|problem| format!("{attribute}: the value of the {name} header {problem}"))?;
        attributes.insert(attribute, value);
    }

    let specversion = match attributes.remove("specversion") {
        Some(v) => SpecVersion::parse(&v)
            .ok_or_else(|| format!("specversion: {v:?} is not supported; Skiff accepts 1.0 and 0.3"))?,
        None => return Err("specversion: the required ce-specversion header is missing".to_owned()),
    };
    let mut required = |name: &str| {
        attributes.remove(name).ok_or_else(|| format!("{name}: the required ce-{name} header is missing"))
    };
    let mut event = Event {
        specversion,
        id: required("id")?,
        source: required("source")?,
        type_: required("type")?,
        ..Event::default()
    };
    if attributes.contains_key("datacontenttype") {
        return Err("datacontenttype: binary mode carries it in the Content-Type header; a \
                    ce-datacontenttype header must not be present"
            .to_owned());
    }
    event.subject = attributes.remove("subject");
    event.time = attributes.remove("time");
    event.dataschema = match specversion {
        SpecVersion::V1_0 => attributes.remove("dataschema"),
        SpecVersion::V0_3 => attributes.remove("schemaurl"),
    };
    if specversion == SpecVersion::V0_3 {
        // 0.3: the encoding of string-encoded data; the body of binary mode is the bytes
        // themselves, so the spec has it ignored here.
        attributes.remove("datacontentencoding");
    }
    for (name, value) in attributes {
        validate::check_extension_name(name)?;
        event.extensions.insert(name.to_owned(), value);
    }

    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type
            .to_str()
            .map_err(|_| "datacontenttype: the Content-Type header is not printable ASCII".to_owned())?;
        event.datacontenttype = Some(content_type.trim().to_owned());
    }
    if !body.is_empty() {
        event.data = Some(Bytes::copy_from_slice(body));
    }
    validate::check_event(&event)?;
    Ok(event)
}

/// A `ce-*` header value: unquoted where it has RFC 7230 quoted strings (older senders), then
/// percent-decoded, then UTF-8. The error completes "the value of the ce-x header ...".
fn header_value(raw: &[u8]) -> Result<String, String> {
    let raw = raw.trim_ascii();
    let mut unquoted = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'"' {
            unquoted.push(b);
            continue;
        }
        loop {
            match bytes.next() {
                Some(b'"') => break,
                Some(b'\\') => match bytes.next() {
                    Some(escaped) => unquoted.push(escaped),
                    None => return Err("has an unterminated quoted string".to_owned()),
                },
                Some(b) => unquoted.push(b),
                None => return Err("has an unterminated quoted string".to_owned()),
            }
        }
    }

    let mut decoded = Vec::with_capacity(unquoted.len());
    let mut i = 0;
    while i < unquoted.len() {
        if unquoted[i] == b'%' {
            let hex = |j: usize| unquoted.get(j).and_then(|&c| char::from(c).to_digit(16));
            let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) else {
                return Err("has a '%' that does not start a %XX escape".to_owned());
            };
            decoded.push((high << 4 | low) as u8); // two hex digits: at most 0xff
            i += 3;
            continue;
        }
        decoded.push(unquoted[i]);
        i += 1;
    }
    String::from_utf8(decoded).map_err(|_| "is not UTF-8 once percent-decoded".to_owned())
}

/// Percent-encodes as the spec says: space, `"`, `%` and everything outside printable ASCII
/// (U+0021 to U+007E), byte by byte of the UTF-8, with upper-case hex.
fn percent_encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

pub(super) fn encode(event: &Event) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    let mut put = |name: &str, value: &str| {
        let name = HeaderName::from_bytes(format!("{PREFIX}{name}").as_bytes());
        // Percent-encoded values are printable ASCII: always a valid header value.
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(&percent_encode(value))) {
            headers.insert(name, value);
        }
    };
    let version = event.specversion;
    put("specversion", version.as_str());
    put("id", &event.id);
    put("source", &event.source);
    put("type", &event.type_);
    if let Some(schema) = &event.dataschema {
        put(if version == SpecVersion::V1_0 { "dataschema" } else { "schemaurl" }, schema);
    }
    if let Some(subject) = &event.subject {
        put("subject", subject);
    }
    if let Some(time) = &event.time {
        put("time", time);
    }
    for (name, value) in &event.extensions {
        if !is_context_attribute(version, name) && validate::check_extension_name(name).is_ok() {
            put(name, value);
        }
    }

    let content_type = match (&event.datacontenttype, &event.data) {
        (Some(content_type), _) => HeaderValue::from_str(content_type).ok(),
        // The spec: no datacontenttype means JSON; say so when the data is JSON.
        (None, Some(data)) if super::structured::is_json(data) => {
            Some(HeaderValue::from_static("application/json"))
        }
        (None, _) => None,
    };
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    (headers, event.data.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_as_the_spec_example() {
        assert_eq!(percent_encode("Euro € 😀"), "Euro%20%E2%82%AC%20%F0%9F%98%80");
        assert_eq!(percent_encode("a\"b%c"), "a%22b%25c");
        assert_eq!(percent_encode("/plain/ascii?x=1&y=~"), "/plain/ascii?x=1&y=~");
        assert_eq!(header_value(b"Euro%20%E2%82%AC%20%F0%9F%98%80").unwrap(), "Euro € 😀");
        assert_eq!(header_value(b"lower%e2%82%ac").unwrap(), "lower€");
        assert_eq!(header_value(b"unnecessary%41").unwrap(), "unnecessaryA");
    }

    #[test]
    fn percent_decoding_errors() {
        assert!(header_value(b"%C0%A0").is_err(), "overlong UTF-8");
        assert!(header_value(b"%ff").is_err(), "not UTF-8");
        assert!(header_value(b"50%").is_err());
        assert!(header_value(b"%4").is_err());
        assert!(header_value(b"%zz").is_err());
        assert!(header_value(b"%+1").is_err(), "from_str_radix would take a sign");
    }

    #[test]
    fn quoted_strings_of_older_senders() {
        assert_eq!(header_value(br#""hello world""#).unwrap(), "hello world");
        assert_eq!(header_value(br#""a \"quoted\" \\ value""#).unwrap(), r#"a "quoted" \ value"#);
        assert_eq!(header_value(br#"x"%20"y"#).unwrap(), "x y");
        assert!(header_value(br#""open"#).is_err());
        assert_eq!(header_value(b"  padded\t").unwrap(), "padded");
    }

    #[test]
    fn every_string_round_trips() {
        for s in ["", " lead and trail ", "tab\tnewline\n", "\u{7f}\u{80}\u{ff}", "日本語", "%%20\"\"", "😀"]
        {
            let encoded = percent_encode(s);
            assert!(HeaderValue::from_str(&encoded).is_ok(), "{encoded}");
            assert_eq!(header_value(encoded.as_bytes()).unwrap(), s);
        }
    }
}
