//! `metadata`, owner references and status conditions, on JSON objects.

use std::borrow::Cow;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, as Kubernetes writes timestamps: RFC 3339 in UTC to the second.
pub fn now() -> String {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc());
    now.format(&Rfc3339).unwrap_or_default()
}

/// Parse an RFC 3339 timestamp.
pub fn parse_time(raw: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(raw, &Rfc3339).ok()
}

pub fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

pub fn name(object: &Value) -> &str {
    str_at(object, "/metadata/name").unwrap_or("")
}

pub fn namespace(object: &Value) -> &str {
    str_at(object, "/metadata/namespace").unwrap_or("")
}

pub fn uid(object: &Value) -> &str {
    str_at(object, "/metadata/uid").unwrap_or("")
}

pub fn generation(object: &Value) -> i64 {
    object.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0)
}

pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("labels")?.get(key)?.as_str()
}

pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// `object.metadata`, created if missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"].as_object_mut().expect("metadata is an object")
}

/// An owner reference naming `owner` as the controller of a dependent.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The uid of the object's controller, if it has one.
pub fn controller_uid(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r["controller"] == Value::Bool(true))
        .and_then(|r| r["uid"].as_str())
}

/// Whether any owner reference of `object` names `uid`.
pub fn is_owned_by(object: &Value, owner_uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(owner_uid)))
}

/// A status condition as Knative writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub type_: Cow<'static, str>,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }

    pub fn parse(raw: Option<&str>) -> Self {
        match raw {
            Some("True") => ConditionStatus::True,
            Some("False") => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        }
    }
}

impl Condition {
    pub fn truthy(type_: &'static str) -> Self {
        Self {
            type_: Cow::Borrowed(type_),
            status: ConditionStatus::True,
            reason: String::new(),
            message: String::new(),
        }
    }

    pub fn new(
        type_: &'static str,
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self { type_: Cow::Borrowed(type_), status, reason: reason.into(), message: message.into() }
    }

    pub fn falsy(type_: &'static str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(type_, ConditionStatus::False, reason, message)
    }

    pub fn unknown(type_: &'static str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(type_, ConditionStatus::Unknown, reason, message)
    }

    /// The same condition under another type, as a parent mirrors a child's `Ready`.
    pub fn renamed(&self, type_: &'static str) -> Self {
        Self { type_: Cow::Borrowed(type_), ..self.clone() }
    }
}

/// The condition `type_` of an object's status.
pub fn condition(object: &Value, type_: &str) -> Option<Condition> {
    let found = object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(type_))?;
    Some(Condition {
        type_: Cow::Owned(type_.to_string()),
        status: ConditionStatus::parse(found["status"].as_str()),
        reason: found["reason"].as_str().unwrap_or_default().to_string(),
        message: found["message"].as_str().unwrap_or_default().to_string(),
    })
}

/// Whether the object says `Ready=True`.
pub fn is_ready(object: &Value) -> bool {
    condition(object, "Ready").is_some_and(|c| c.status == ConditionStatus::True)
}

/// The `status.conditions` array for `conditions`, keeping each unchanged condition's
/// `lastTransitionTime` from `previous` (the object's current status).
pub fn conditions_json(conditions: &[Condition], previous: Option<&Value>) -> Value {
    let old = previous.and_then(|p| p.pointer("/status/conditions")).and_then(Value::as_array);
    let stamp = now();
    let mut sorted: Vec<&Condition> = conditions.iter().collect();
    // Knative lists the happy condition first, the others by type.
    sorted.sort_by_key(|c| (c.type_ != "Ready", c.type_.clone()));
    Value::Array(
        sorted
            .into_iter()
            .map(|c| {
                let kept = old
                    .and_then(|old| old.iter().find(|o| o["type"].as_str() == Some(&*c.type_)))
                    .filter(|o| o["status"].as_str() == Some(c.status.as_str()))
                    .and_then(|o| o["lastTransitionTime"].as_str())
                    .map(str::to_string);
                let mut out = json!({
                    "type": &*c.type_,
                    "status": c.status.as_str(),
                    "lastTransitionTime": kept.unwrap_or_else(|| stamp.clone()),
                });
                if !c.reason.is_empty() {
                    out["reason"] = json!(c.reason);
                }
                if !c.message.is_empty() {
                    out["message"] = json!(c.message);
                }
                out
            })
            .collect(),
    )
}

/// The `Ready` condition of a parent from its parts: false if any part is false, unknown
/// if any is unknown, else true.
pub fn summarize(parts: &[Condition]) -> Condition {
    parts
        .iter()
        .find(|c| c.status == ConditionStatus::False)
        .or_else(|| parts.iter().find(|c| c.status == ConditionStatus::Unknown))
        .map(|c| c.renamed("Ready"))
        .unwrap_or_else(|| Condition::truthy("Ready"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let previous = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "2020-01-01T00:00:00Z"},
        ]}});
        let same = conditions_json(&[Condition::falsy("Ready", "X", "y")], Some(&previous));
        assert_eq!(same[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        let flipped = conditions_json(&[Condition::truthy("Ready")], Some(&previous));
        assert_ne!(flipped[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
    }

    #[test]
    fn summary_prefers_false_then_unknown() {
        let parts = [
            Condition::unknown("A", "Wait", ""),
            Condition::falsy("B", "Broken", "b is broken"),
            Condition::truthy("C"),
        ];
        let ready = summarize(&parts);
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.reason, "Broken");
        assert_eq!(summarize(&[Condition::truthy("A")]).status, ConditionStatus::True);
    }
}
