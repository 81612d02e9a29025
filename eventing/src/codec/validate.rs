//! The attribute rules of the CloudEvents spec (1.0.2, and 0.3 where it differs).
//!
//! Every check returns the user-facing message of a 400 (without the "invalid CloudEvent"
//! prefix), and every message starts with the name of the attribute it is about.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Event, SpecVersion};

/// The longest extension attribute name the spec allows.
pub(crate) const MAX_NAME_LEN: usize = 20;

/// Whether `name` is a context attribute of `version`, so never an extension of it.
pub(crate) fn is_context_attribute(version: SpecVersion, name: &str) -> bool {
    match name {
        "specversion" | "id" | "source" | "type" | "datacontenttype" | "subject" | "time" => true,
        "dataschema" => version == SpecVersion::V1_0,
        "schemaurl" | "datacontentencoding" => version == SpecVersion::V0_3,
        _ => false,
    }
}

/// The name of an extension attribute: 1 to 20 of `[a-z0-9]`, and not `data`.
pub(crate) fn check_extension_name(name: &str) -> Result<(), String> {
    let valid_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if name.is_empty() {
        return Err("an extension attribute has an empty name".to_owned());
    }
    if !valid_chars || name.len() > MAX_NAME_LEN {
        let capitals = if name.chars().any(char::is_uppercase) { " (capitals are not allowed)" } else { "" };
        return Err(format!(
            "{name}: invalid attribute name{capitals}; names are 1 to {MAX_NAME_LEN} lowercase letters a-z \
             and digits 0-9"
        ));
    }
    if name == "data" {
        return Err(
            "data: the name is reserved for the event's data and cannot be an extension attribute".to_owned()
        );
    }
    Ok(())
}

/// A string attribute: the spec forbids control characters and Unicode noncharacters.
pub(crate) fn check_string(attribute: &str, value: &str) -> Result<(), String> {
    match value.chars().find(|&c| is_forbidden_char(c)) {
        Some(c) => Err(format!(
            "{attribute}: contains U+{:04X}, and CloudEvents strings must not contain control characters \
             or noncharacters",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

/// Whether the spec forbids `c` in a string attribute: a control character or a noncharacter.
pub(crate) fn is_forbidden_char(c: char) -> bool {
    let u = u32::from(c);
    u <= 0x1f || (0x7f..=0x9f).contains(&u) || (0xfdd0..=0xfdef).contains(&u) || u & 0xfffe == 0xfffe
}

/// A required string attribute: present (checked by the caller) and non-empty.
fn check_required(attribute: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{attribute}: must be a non-empty string"));
    }
    check_string(attribute, value)
}

/// An RFC 3986 URI-reference, or with `absolute` a URI (it has a scheme).
pub(crate) fn check_uri(attribute: &str, value: &str, absolute: bool) -> Result<(), String> {
    let what = if absolute { "an absolute URI" } else { "a URI-reference" };
    if value.is_empty() {
        return Err(format!("{attribute}: must be {what}, not empty"));
    }
    let bytes = value.as_bytes();
    let mut fragment = false;
    for (i, c) in value.char_indices() {
        match c {
            '%' => {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return Err(format!("{attribute}: {value:?} is not {what}: '%' must start a %XX escape"));
                }
            }
            '#' if fragment => {
                return Err(format!("{attribute}: {value:?} is not {what}: it has more than one '#'"));
            }
            '#' => fragment = true,
            c if c.is_ascii_alphanumeric() || "-._~:/?[]@!$&'()*+,;=".contains(c) => {}
            c => {
                return Err(format!(
                    "{attribute}: {value:?} is not {what}: {c:?} must be percent-encoded in a URI"
                ));
            }
        }
    }
    // A colon before the first '/', '?' or '#' ends a scheme; a relative reference can't have one there.
    let first_segment = &value[..value.find(['/', '?', '#']).unwrap_or(value.len())];
    match first_segment.split_once(':') {
        Some((scheme, _)) => {
            let mut chars = scheme.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            if !valid {
                return Err(format!("{attribute}: {value:?} is not {what}: {scheme:?} is not a URI scheme"));
            }
        }
        None if absolute => {
            return Err(format!("{attribute}: {value:?} is not {what}: it has no scheme (such as https:)"));
        }
        None => {}
    }
    Ok(())
}

/// An RFC 3339 timestamp (`T` between date and time, as the RFC's grammar says).
pub(crate) fn check_time(value: &str) -> Result<(), String> {
    let separator = value.as_bytes().get(10).copied();
    if matches!(separator, Some(b'T' | b't')) && OffsetDateTime::parse(value, &Rfc3339).is_ok() {
        return Ok(());
    }
    Err(format!("time: {value:?} is not an RFC 3339 timestamp (such as 2018-04-05T17:31:00Z)"))
}

/// An RFC 2046 media type: `type/subtype`, then parameters, all in printable ASCII.
pub(crate) fn check_media_type(value: &str) -> Result<(), String> {
    if !is_media_type(value) {
        return Err(format!("datacontenttype: {value:?} is not a media type (such as application/json)"));
    }
    Ok(())
}

/// Whether `value` is an RFC 2046 media type: `type/subtype`, then parameters, all in printable
/// ASCII (it travels as a header).
pub(crate) fn is_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
    };
    let well_formed = essence.split_once('/').is_some_and(|(t, s)| token(t) && token(s));
    well_formed && value.chars().all(|c| c == '\t' || (' '..='~').contains(&c))
}

/// Whether a media type declares JSON data: `*/json` or `*/*+json`, parameters aside.
pub(crate) fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.split_once('/') {
        Some((_, subtype)) => subtype == "json" || subtype.ends_with("+json"),
        None => false,
    }
}

/// Everything the spec says of an event's attributes; the first failure.
pub(crate) fn check_event(event: &Event) -> Result<(), String> {
    let version = event.specversion;
    check_required("id", &event.id)?;
    check_required("source", &event.source)?;
    check_uri("source", &event.source, false)?;
    check_required("type", &event.type_)?;
    if let Some(subject) = &event.subject {
        check_required("subject", subject)?;
    }
    if let Some(content_type) = &event.datacontenttype {
        check_media_type(content_type)?;
    }
    if let Some(schema) = &event.dataschema {
        match version {
            SpecVersion::V1_0 => check_uri("dataschema", schema, true)?,
            SpecVersion::V0_3 => check_uri("schemaurl", schema, false)?,
        }
    }
    if let Some(time) = &event.time {
        check_time(time)?;
    }
    for (name, value) in &event.extensions {
        check_extension_name(name)?;
        if is_context_attribute(version, name) {
            return Err(format!(
                "{name}: is a context attribute of CloudEvents {version}, not an extension attribute"
            ));
        }
        check_string(name, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_names() {
        for ok in ["a", "abc123", "knativearrivaltime", "x1234567890123456789"] {
            assert_eq!(check_extension_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Abc", "my-ext", "my_ext", "x12345678901234567890", "é", "data"] {
            assert!(check_extension_name(bad).is_err(), "{bad}");
        }
        let err = check_extension_name("myExt").unwrap_err();
        assert!(err.starts_with("myExt: ") && err.contains("capitals"), "{err}");
    }

    #[test]
    fn strings() {
        assert!(check_string("id", "tab\there").is_err());
        assert!(check_string("id", "del\u{7f}").is_err());
        assert!(check_string("id", "c1\u{85}").is_err());
        assert!(check_string("id", "non\u{fffe}char").is_err());
        assert!(check_string("id", "non\u{1ffff}char").is_err());
        assert_eq!(check_string("id", "Euro € 😀 \"quoted\" 100%"), Ok(()));
    }

    #[test]
    fn uris() {
        for ok in [
            "/mycontext",
            "https://github.com/cloudevents/spec/pull/123",
            "urn:event:from:myapi/resource/123",
            "mailto:cncf-wg-serverless@lists.cncf.io",
            "//example.com/path?q=1#frag",
            "relative/path",
            "http://[::1]:8080/x",
            "a%20b",
            "?query",
        ] {
            assert_eq!(check_uri("source", ok, false), Ok(()), "{ok}");
        }
        for bad in ["a b", "1abc:x", "%zz", "x%2", "a#b#c", "ü", "a\"b", "<x>", "c:\\\\path"] {
            assert!(check_uri("source", bad, false).is_err(), "{bad}");
        }
        assert_eq!(check_uri("dataschema", "https://example.com/schema.json", true), Ok(()));
        assert_eq!(check_uri("dataschema", "urn:x", true), Ok(()));
        let err = check_uri("dataschema", "/schema.json", true).unwrap_err();
        assert!(err.starts_with("dataschema: ") && err.contains("no scheme"), "{err}");
    }

    #[test]
    fn times() {
        for ok in [
            "2018-04-05T17:31:00Z",
            "2018-04-05T17:31:00.123456789Z",
            "2018-04-05t17:31:00z",
            "2018-04-05T17:31:00+02:00",
            "1985-04-12T23:20:50.52-08:00",
        ] {
            assert_eq!(check_time(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "2018-04-05",
            "2018-04-05 17:31:00Z",
            "2018-04-05T17:31:00",
            "2018-13-05T17:31:00Z",
            "2018-04-05T25:31:00Z",
            "yesterday",
            "1522949460",
        ] {
            assert!(check_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn media_types() {
        for ok in ["application/json", "text/plain; charset=utf-8", "application/vnd.apache.thrift.binary"] {
            assert_eq!(check_media_type(ok), Ok(()), "{ok}");
        }
        for bad in ["", "json", "/json", "text/", "text/plain; é", "te xt/plain"] {
            assert!(check_media_type(bad).is_err(), "{bad}");
        }
        for json in
            ["application/json", "Application/JSON; charset=utf-8", "text/json", "application/ld+json"]
        {
            assert!(is_json_media_type(json), "{json}");
        }
        for other in ["text/plain", "application/jsonx", "application/xml", "json"] {
            assert!(!is_json_media_type(other), "{other}");
        }
    }
}
