//! CloudEvents 1.0 and 0.3 over HTTP: the binary, structured and batched content modes of the
//! HTTP protocol binding, with the JSON event format.
//!
//! [`Event`] is Skiff's own lossless representation, not the SDK's: every attribute is kept as
//! the string it arrived as (a `time` is not re-formatted), and `data` as the exact bytes (JSON
//! data of a structured event as its JSON text, `data_base64` decoded). Decoding validates every
//! event against the spec ([`Event::validate`]); the SDK would accept an empty `id` or an
//! extension named `myExt`.
//!
//! Encoding is lossless too, with one exception the spec asks for: an event with data but no
//! `datacontenttype` is JSON by default, so [`encode_binary`] sends such data with
//! `Content-Type: application/json` when it is JSON. An empty body in binary mode is no data.
//!
//! Also here: Knative's broker extensions ([`set_arrival_time`], [`take_ttl`]).

mod binary;
mod structured;
mod validate;

pub(crate) use validate::{is_forbidden_char, is_media_type};

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

/// The CloudEvents versions Skiff speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub enum SpecVersion {
    #[default]
    #[serde(rename = "1.0")]
    V1_0,
    #[serde(rename = "0.3")]
    V0_3,
}

impl SpecVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V1_0 => "1.0",
            SpecVersion::V0_3 => "0.3",
        }
    }

    /// `"1.0"` or `"0.3"`, exactly.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1.0" => Some(SpecVersion::V1_0),
            "0.3" => Some(SpecVersion::V0_3),
            _ => None,
        }
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One CloudEvent. Decoded events are valid; one built in code can be checked with
/// [`Event::validate`] (the encoders trust it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub specversion: SpecVersion,
    pub id: String,
    /// A URI-reference.
    pub source: String,
    pub type_: String,
    pub datacontenttype: Option<String>,
    /// An absolute URI; in 0.3 the `schemaurl` attribute, a URI-reference.
    pub dataschema: Option<String>,
    pub subject: Option<String>,
    /// RFC 3339, as given.
    pub time: Option<String>,
    /// Extension attributes by (lowercase) name, values in their string form.
    pub extensions: BTreeMap<String, String>,
    /// The exact bytes of the data.
    pub data: Option<Bytes>,
}

impl Event {
    /// A CloudEvents 1.0 event with the required attributes and nothing else.
    pub fn new(id: impl Into<String>, source: impl Into<String>, type_: impl Into<String>) -> Self {
        Event { id: id.into(), source: source.into(), type_: type_.into(), ..Event::default() }
    }

    /// An attribute by its CloudEvents name: a context attribute of the event's version
    /// (`specversion`, `id`, `source`, `type`, `datacontenttype`, `dataschema` or in 0.3
    /// `schemaurl`, `subject`, `time`) or an extension. None when it is not set.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        let schema_name = match self.specversion {
            SpecVersion::V1_0 => "dataschema",
            SpecVersion::V0_3 => "schemaurl",
        };
        match name {
            "specversion" => Some(self.specversion.as_str()),
            "id" => Some(&self.id),
            "source" => Some(&self.source),
            "type" => Some(&self.type_),
            "datacontenttype" => self.datacontenttype.as_deref(),
            "subject" => self.subject.as_deref(),
            "time" => self.time.as_deref(),
            _ if name == schema_name => self.dataschema.as_deref(),
            _ => self.extensions.get(name).map(String::as_str),
        }
    }

    /// Checks every attribute against the spec, as decoding does.
    pub fn validate(&self) -> Result<(), DecodeError> {
        validate::check_event(self).map_err(DecodeError::Invalid)
    }
}

/// Why a request or response does not hold valid CloudEvents. The messages are user-facing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not valid CloudEvents; the message names the attribute and what is wrong.
    #[error("invalid CloudEvent: {0}")]
    Invalid(String),
    /// A CloudEvents event format other than JSON (or an unknown charset).
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
}

impl DecodeError {
    /// 400 Bad Request or 415 Unsupported Media Type.
    pub fn status(&self) -> StatusCode {
        match self {
            DecodeError::Invalid(_) => StatusCode::BAD_REQUEST,
            DecodeError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

/// The media type of the structured mode with the JSON event format.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
/// The media type of the batched mode with the JSON batch format.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

enum Mode {
    Binary,
    Structured,
    Batch,
    /// No CloudEvent at all: neither a CloudEvents media type nor a `ce-specversion` header.
    Plain,
}

fn mode(headers: &HeaderMap) -> Result<Mode, DecodeError> {
    let content_type = match headers.get(header::CONTENT_TYPE) {
        Some(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        None => String::new(),
    };
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence.starts_with("application/cloudevents") {
        let mode = match essence.as_str() {
            STRUCTURED_CONTENT_TYPE => Mode::Structured,
            BATCH_CONTENT_TYPE => Mode::Batch,
            _ => {
                return Err(DecodeError::UnsupportedMediaType(format!(
                    "the event format {essence} is not supported; send binary mode, \
                     {STRUCTURED_CONTENT_TYPE} or {BATCH_CONTENT_TYPE}"
                )));
            }
        };
        for parameter in parts {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            let value = value.trim().trim_matches('"');
            if name.trim().eq_ignore_ascii_case("charset") && !value.eq_ignore_ascii_case("utf-8") {
                return Err(DecodeError::UnsupportedMediaType(format!(
                    "charset {value} is not supported; the JSON event format is UTF-8"
                )));
            }
        }
        return Ok(mode);
    }
    if headers.contains_key("ce-specversion") { Ok(Mode::Binary) } else { Ok(Mode::Plain) }
}

/// Every event of one HTTP request: binary mode (`ce-*` headers, the body is the data),
/// structured (`application/cloudevents+json`) or batched (`application/cloudevents-batch+json`,
/// possibly empty). Each event is validated.
pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Event>, DecodeError> {
    match mode(headers)? {
        Mode::Binary => Ok(vec![binary::decode(headers, body)?]),
        Mode::Structured => Ok(vec![structured::decode_event(body)?]),
        Mode::Batch => structured::decode_batch(body),
        Mode::Plain => Err(DecodeError::Invalid(
            "the request is not a CloudEvent: it has no ce-specversion header (binary mode), and its \
             Content-Type is not application/cloudevents+json (structured mode)"
                .to_owned(),
        )),
    }
}

/// The event in a delivery's response, binary or structured. None when the response carries no
/// CloudEvent (neither `ce-specversion` nor a CloudEvents media type), whatever its body; Knative
/// treats a non-empty such body as a failed delivery, which is the caller's call. A batch is not
/// a valid reply.
pub fn decode_reply(headers: &HeaderMap, body: &[u8]) -> Result<Option<Event>, DecodeError> {
    match mode(headers)? {
        Mode::Binary => Ok(Some(binary::decode(headers, body)?)),
        Mode::Structured => Ok(Some(structured::decode_event(body)?)),
        Mode::Batch => Err(DecodeError::Invalid("a reply must be a single event, not a batch".to_owned())),
        Mode::Plain => Ok(None),
    }
}

/// Binary-mode request parts, for delivery: `ce-*` headers (percent-encoded as the spec says),
/// `Content-Type` from `datacontenttype` (`application/json` when that is absent and the data is
/// JSON), and the data as the body.
pub fn encode_binary(event: &Event) -> (HeaderMap, Bytes) {
    binary::encode(event)
}

/// Structured mode with the JSON event format (for a dead-letter sink, or storage): the
/// `Content-Type` header and the JSON body.
pub fn encode_structured(event: &Event) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(STRUCTURED_CONTENT_TYPE));
    (headers, Bytes::from(structured::encode(event)))
}

/// The event for the durable log: its structured JSON, compact and lossless.
pub fn to_bytes(event: &Event) -> Vec<u8> {
    structured::encode(event)
}

/// An event written by [`to_bytes`] (or any structured JSON event), validated.
pub fn from_bytes(bytes: &[u8]) -> Result<Event, DecodeError> {
    structured::decode_event(bytes)
}

/// Serialized as the JSON event format, with the data as JSON only where serde_json writes it
/// back byte for byte (otherwise `data_base64`), so that it round-trips through any serde format.
impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let json = structured::encode_with(self, structured::is_canonical_json);
        let value: serde_json::Value = serde_json::from_slice(&json).map_err(serde::ser::Error::custom)?;
        value.serialize(serializer)
    }
}

/// The JSON event format, validated.
impl<'de> serde::Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let json = serde_json::to_vec(&value).map_err(serde::de::Error::custom)?;
        structured::decode_event(&json).map_err(serde::de::Error::custom)
    }
}

/// Knative's extension for when the broker received an event.
pub const ARRIVAL_TIME_EXTENSION: &str = "knativearrivaltime";

/// Sets `knativearrivaltime` to `now`, in RFC 3339 UTC (as Knative's broker ingress does).
pub fn set_arrival_time(event: &mut Event, now: time::OffsetDateTime) {
    let utc = now.to_offset(time::UtcOffset::UTC);
    // Formatting an in-range OffsetDateTime as RFC 3339 fails only for years beyond 9999.
    if let Ok(formatted) = utc.format(&time::format_description::well_known::Rfc3339) {
        event.extensions.insert(ARRIVAL_TIME_EXTENSION.to_owned(), formatted);
    }
}

/// Knative's broker TTL extension: how many more times an event may come back to the broker as
/// a reply.
pub const TTL_EXTENSION: &str = "knativebrokerttl";
/// The TTL of an event that arrives without one.
pub const DEFAULT_TTL: u32 = 255;

/// Removes the broker TTL from the event and returns it, as Knative does before delivering to a
/// subscriber: missing means [`DEFAULT_TTL`], a negative value 0, anything but an integer is an
/// error. An event whose TTL is 0 is dropped. A reply to an event delivered with TTL `n` goes
/// back to the broker with [`reply_ttl`]`(n)`.
pub fn take_ttl(event: &mut Event) -> Result<u32, DecodeError> {
    let Some(raw) = event.extensions.remove(TTL_EXTENSION) else {
        return Ok(DEFAULT_TTL);
    };
    let digits = raw.strip_prefix('-').unwrap_or(&raw);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: parsing fails only past u32::MAX.
        return Ok(if raw.starts_with('-') { 0 } else { digits.parse().unwrap_or(u32::MAX) });
    }
    let message = format!("{TTL_EXTENSION}: {raw:?} is not an integer");
    event.extensions.insert(TTL_EXTENSION.to_owned(), raw);
    Err(DecodeError::Invalid(message))
}

/// Sets the broker TTL extension.
pub fn set_ttl(event: &mut Event, ttl: u32) {
    event.extensions.insert(TTL_EXTENSION.to_owned(), ttl.to_string());
}

/// The TTL a reply carries back to the broker when the event it answers was delivered with
/// `ttl`: one less. None when that is 0: the reply is dropped (Knative's loop protection).
pub fn reply_ttl(ttl: u32) -> Option<u32> {
    ttl.checked_sub(1).filter(|&left| left > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn modes_by_content_type() {
        let structured = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;
        let events =
            decode(&headers(&[("content-type", "Application/CloudEvents+JSON; charset=UTF-8")]), structured)
                .unwrap();
        assert_eq!(events, vec![Event::new("1", "/s", "t")]);

        let batch = format!("[{}]", std::str::from_utf8(structured).unwrap());
        let events = decode(&headers(&[("content-type", BATCH_CONTENT_TYPE)]), batch.as_bytes()).unwrap();
        assert_eq!(events.len(), 1);

        let err = decode(&headers(&[("content-type", "application/cloudevents+avro")]), b"").unwrap_err();
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(err.to_string().contains("application/cloudevents+avro"), "{err}");

        let err =
            decode(&headers(&[("content-type", "application/cloudevents+json; charset=latin1")]), structured)
                .unwrap_err();
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

        let err = decode(&headers(&[("content-type", "application/json")]), structured).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("ce-specversion"), "{err}");
    }

    #[test]
    fn replies() {
        assert_eq!(decode_reply(&HeaderMap::new(), b"").unwrap(), None);
        assert_eq!(decode_reply(&headers(&[("content-type", "text/plain")]), b"ok").unwrap(), None);
        let reply = decode_reply(
            &headers(&[("ce-specversion", "1.0"), ("ce-id", "r"), ("ce-source", "/f"), ("ce-type", "reply")]),
            b"",
        )
        .unwrap()
        .unwrap();
        assert_eq!(reply, Event::new("r", "/f", "reply"));
        let err = decode_reply(&headers(&[("content-type", BATCH_CONTENT_TYPE)]), b"[]").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let err = decode_reply(&headers(&[("ce-specversion", "1.0"), ("ce-id", "r")]), b"").unwrap_err();
        assert!(err.to_string().contains("source"), "{err}");
    }

    #[test]
    fn attributes_by_name() {
        let mut event = Event::new("1", "/s", "t");
        event.subject = Some("sub".into());
        event.dataschema = Some("https://example.com/s".into());
        event.extensions.insert("ext".into(), "v".into());
        assert_eq!(event.attribute("specversion"), Some("1.0"));
        assert_eq!(event.attribute("type"), Some("t"));
        assert_eq!(event.attribute("subject"), Some("sub"));
        assert_eq!(event.attribute("dataschema"), Some("https://example.com/s"));
        assert_eq!(event.attribute("schemaurl"), None);
        assert_eq!(event.attribute("ext"), Some("v"));
        assert_eq!(event.attribute("time"), None);
        event.specversion = SpecVersion::V0_3;
        assert_eq!(event.attribute("schemaurl"), Some("https://example.com/s"));
        assert_eq!(event.attribute("dataschema"), None);
    }

    #[test]
    fn arrival_time_is_utc_rfc3339() {
        let mut event = Event::new("1", "/s", "t");
        set_arrival_time(&mut event, time::macros::datetime!(2024-05-06 07:08:09.5 +02:00));
        assert_eq!(event.attribute(ARRIVAL_TIME_EXTENSION), Some("2024-05-06T05:08:09.5Z"));
        event.validate().unwrap();
    }

    #[test]
    fn ttl() {
        let mut event = Event::new("1", "/s", "t");
        assert_eq!(take_ttl(&mut event), Ok(DEFAULT_TTL));
        set_ttl(&mut event, 3);
        assert_eq!(event.attribute(TTL_EXTENSION), Some("3"));
        assert_eq!(take_ttl(&mut event), Ok(3));
        assert_eq!(event.attribute(TTL_EXTENSION), None);
        for (raw, ttl) in [
            ("0", 0),
            ("-4", 0),
            ("-0", 0),
            ("007", 7),
            ("99999999999999999999999999999999999999999", u32::MAX),
        ] {
            event.extensions.insert(TTL_EXTENSION.into(), raw.into());
            assert_eq!(take_ttl(&mut event), Ok(ttl), "{raw}");
        }
        for raw in ["", "-", "ten", "1.5", "+3", " 3", "1e3"] {
            event.extensions.insert(TTL_EXTENSION.into(), raw.into());
            let err = take_ttl(&mut event).unwrap_err();
            assert!(err.to_string().contains(TTL_EXTENSION), "{err}");
            assert_eq!(event.attribute(TTL_EXTENSION), Some(raw), "kept on error");
        }
        assert_eq!(reply_ttl(DEFAULT_TTL), Some(254));
        assert_eq!(reply_ttl(2), Some(1));
        assert_eq!(reply_ttl(1), None);
        assert_eq!(reply_ttl(0), None);
    }

    #[test]
    fn serde_round_trip() {
        let mut event = Event::new("1", "/s", "t");
        event.datacontenttype = Some("application/json".into());
        event.data = Some(Bytes::from_static(br#"{"a":[1,2.5,"x"]}"#));
        event.extensions.insert("n".into(), "5".into());
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["data"]["a"][1], 2.5);
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);

        // Not what serde_json would write back: kept as base64.
        event.data = Some(Bytes::from_static(b"{ \"a\" : 1e3 }"));
        let json = serde_json::to_value(&event).unwrap();
        assert!(json.get("data_base64").is_some(), "{json}");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);

        let err = serde_json::from_str::<Event>(r#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#);
        assert!(err.unwrap_err().to_string().contains("id"));
    }
}
