//! A PingSource's `spec`, validated as Knative's webhook does, and the event it sends.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::schedule::{self, Schedule};
use crate::codec::{self, Event};
use crate::json::kind;

/// The type of every PingSource event.
pub const PING_EVENT_TYPE: &str = "dev.knative.sources.ping";

/// The longest extension attribute name (CloudEvents 1.0).
const MAX_EXTENSION_NAME: usize = 20;

/// Go's `base64.StdEncoding`, which Knative decodes `dataBase64` with: padded, lenient about
/// the unused bits of the last character. Line breaks are removed beforehand, as Go skips them.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// The `spec` of a PingSource, parsed and validated. The sink is not here: the platform
/// resolves `spec.sink` to a URI and validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingSpec {
    /// `spec.schedule` in `spec.timezone`.
    pub schedule: Schedule,
    /// The event's data: `spec.data` as UTF-8, or `spec.dataBase64` decoded. `None` when neither
    /// is set (or both are empty).
    pub data: Option<Bytes>,
    /// `spec.contentType`, the event's `datacontenttype`. Unset stays unset, as in Knative.
    pub content_type: Option<String>,
    /// `spec.ceOverrides.extensions`: extension attributes added to every event.
    pub extensions: BTreeMap<String, String>,
}

impl PingSpec {
    /// Parse and validate a PingSource's `spec` as Knative's webhook does
    /// (`PingSourceSpec.Validate`), reporting every problem as `(field path, message)`:
    ///
    /// * `spec.schedule` is required (Knative's defaulting webhook would write `* * * * *`) and a
    ///   valid [`Schedule`]; `spec.timezone`, when set, an IANA time zone name, and then the
    ///   schedule has no `CRON_TZ=` prefix;
    /// * `spec.data` and `spec.dataBase64` are mutually exclusive; `dataBase64` is standard
    ///   base64; with `contentType: application/json` the data must be a JSON object;
    /// * `spec.contentType` is a media type;
    /// * `spec.ceOverrides.extensions` names are 1 to 20 lowercase letters and digits, not a
    ///   CloudEvents context attribute, and their values are strings.
    ///
    /// Empty strings are unset, as Go's zero values are. `spec.sink` and unknown fields are
    /// ignored.
    pub fn from_json(spec: &Value) -> Result<PingSpec, Vec<(String, String)>> {
        let Some(spec) = spec.as_object() else {
            return Err(vec![("spec".to_owned(), format!("expected an object, got {}", kind(spec)))]);
        };
        let mut errors = Vec::new();
        let mut problem = |path: &str, message: String| errors.push((format!("spec.{path}"), message));

        let timezone = optional_string(spec, "timezone").unwrap_or_else(|message| {
            problem("timezone", message);
            None
        });
        // A bad time zone is reported once; the schedule is still checked (in UTC).
        let zone = timezone.map(|name| {
            schedule::time_zone(name).unwrap_or_else(|message| {
                problem("timezone", message);
                chrono_tz::Tz::UTC
            })
        });
        let schedule = match optional_string(spec, "schedule") {
            Ok(Some(text)) => {
                Schedule::parse_in(text, zone).map_err(|message| problem("schedule", message)).ok()
            }
            Ok(None) => {
                problem("schedule", "required: a cron schedule such as \"*/5 * * * *\"".to_owned());
                None
            }
            Err(message) => {
                problem("schedule", message);
                None
            }
        };

        let content_type = optional_string(spec, "contentType").unwrap_or_else(|message| {
            problem("contentType", message);
            None
        });
        if let Some(content_type) = content_type
            && let Err(message) = check_media_type(content_type)
        {
            problem("contentType", message);
        }
        let json_required = content_type.is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));

        let text = optional_string(spec, "data").unwrap_or_else(|message| {
            problem("data", message);
            None
        });
        let encoded = optional_string(spec, "dataBase64").unwrap_or_else(|message| {
            problem("dataBase64", message);
            None
        });
        let data = match (text, encoded) {
            (Some(_), Some(_)) => {
                problem(
                    "dataBase64",
                    "spec.data and spec.dataBase64 are mutually exclusive; set only one".to_owned(),
                );
                None
            }
            (Some(text), None) => {
                if json_required && let Err(message) = check_json_object(text.as_bytes()) {
                    problem("data", message);
                }
                Some(Bytes::copy_from_slice(text.as_bytes()))
            }
            (None, Some(encoded)) => {
                let lines_joined: String = encoded.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
                match GO_STD_BASE64.decode(lines_joined) {
                    Ok(decoded) => {
                        if json_required && let Err(message) = check_json_object(&decoded) {
                            problem("dataBase64", message);
                        }
                        Some(Bytes::from(decoded))
                    }
                    Err(err) => {
                        problem("dataBase64", format!("not valid base64: {err}"));
                        None
                    }
                }
            }
            (None, None) => None,
        };

        let extensions = extensions(spec.get("ceOverrides"), &mut problem);

        match schedule {
            Some(schedule) if errors.is_empty() => {
                Ok(PingSpec { schedule, data, content_type: content_type.map(str::to_owned), extensions })
            }
            _ => Err(errors),
        }
    }
}

/// `/apis/v1/namespaces/{namespace}/pingsources/{name}`: the `source` of a PingSource's events.
pub fn ping_source(namespace: &str, name: &str) -> String {
    format!("/apis/v1/namespaces/{namespace}/pingsources/{name}")
}

/// The event a PingSource sends when it fires at `at`: CloudEvents 1.0 of type
/// [`PING_EVENT_TYPE`] from [`ping_source`], a fresh random (UUID v4) id, `time` the scheduled
/// firing time in RFC 3339, `datacontenttype` and data from the spec, and its
/// `ceOverrides` extensions.
pub fn ping_event(namespace: &str, name: &str, spec: &PingSpec, at: DateTime<Utc>) -> Event {
    let mut event = Event::new(new_event_id(), ping_source(namespace, name), PING_EVENT_TYPE);
    event.time = Some(at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    event.datacontenttype.clone_from(&spec.content_type);
    event.data.clone_from(&spec.data);
    event.extensions.extend(spec.extensions.iter().map(|(name, value)| (name.clone(), value.clone())));
    event
}

/// 122 random bits in the shape of a UUID version 4 (RFC 9562), as Knative's ids are.
fn new_event_id() -> String {
    let mut bits = fastrand::u128(..);
    bits = (bits & !(0xf << 76)) | (0x4 << 76); // version 4
    bits = (bits & !(0x3 << 62)) | (0x2 << 62); // variant 10
    let hex = format!("{bits:032x}");
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// A string field: absent, `null` and `""` are unset.
fn optional_string<'a>(spec: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match spec.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str()).filter(|text| !text.is_empty())),
        Some(other) => Err(format!("expected a string, got {}", kind(other))),
    }
}

/// `spec.ceOverrides.extensions`.
fn extensions(overrides: Option<&Value>, problem: &mut impl FnMut(&str, String)) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let overrides = match overrides {
        None | Some(Value::Null) => return found,
        Some(Value::Object(overrides)) => overrides,
        Some(other) => {
            problem("ceOverrides", format!("expected an object, got {}", kind(other)));
            return found;
        }
    };
    let extensions = match overrides.get("extensions") {
        None | Some(Value::Null) => return found,
        Some(Value::Object(extensions)) => extensions,
        Some(other) => {
            problem("ceOverrides.extensions", format!("expected an object, got {}", kind(other)));
            return found;
        }
    };
    for (name, value) in extensions {
        let path = format!("ceOverrides.extensions.{name}");
        if let Err(message) = check_extension_name(name) {
            problem(&path, message);
            continue;
        }
        match value {
            Value::String(value) => match forbidden_char(value) {
                Some(c) => problem(
                    &path,
                    format!(
                        "contains U+{:04X}; CloudEvents attributes cannot hold control characters or noncharacters",
                        u32::from(c)
                    ),
                ),
                None => {
                    found.insert(name.clone(), value.clone());
                }
            },
            other => problem(&path, format!("expected a string, got {}", kind(other))),
        }
    }
    found
}

/// An extension attribute's name: 1 to 20 of `[a-z0-9]`, not a context attribute nor `data`.
fn check_extension_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an extension name cannot be empty".to_owned());
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(format!("invalid extension name {name:?}: only lowercase letters a-z and digits 0-9"));
    }
    if name.len() > MAX_EXTENSION_NAME {
        return Err(format!("invalid extension name {name:?}: longer than {MAX_EXTENSION_NAME} characters"));
    }
    let reserved = [
        "specversion",
        "id",
        "source",
        "type",
        "datacontenttype",
        "dataschema",
        "subject",
        "time",
        "data",
        "data_base64",
    ];
    if reserved.contains(&name) {
        return Err(format!("{name:?} is a CloudEvents attribute of its own, not an extension"));
    }
    Ok(())
}

/// The spec's forbidden characters in a string attribute: controls and noncharacters.
fn forbidden_char(value: &str) -> Option<char> {
    value.chars().find(|&c| codec::is_forbidden_char(c))
}

/// An RFC 2046 media type, `type/subtype` and parameters in printable ASCII (it is a header).
fn check_media_type(value: &str) -> Result<(), String> {
    if !codec::is_media_type(value) {
        return Err(format!("{value:?} is not a media type (such as application/json or text/plain)"));
    }
    Ok(())
}

/// Knative checks data declared `application/json` by reading it into a JSON object.
fn check_json_object(data: &[u8]) -> Result<(), String> {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(_)) => Ok(()),
        Ok(other) => Err(format!(
            "contentType is application/json but the data is {}, not a JSON object",
            kind(&other)
        )),
        Err(err) => Err(format!("contentType is application/json but the data is not JSON: {err}")),
    }
}

#[cfg(test)]
mod tests;
