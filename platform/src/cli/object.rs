//! Reading the fields of an API object that the CLI shows: names, status conditions.

use serde_json::Value;

/// The string at a JSON pointer, or `""`.
pub fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a JSON pointer (a number, or a string holding one, as labels do).
pub fn int_at(object: &Value, pointer: &str) -> Option<i64> {
    match object.pointer(pointer)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A label's value, or `""`. (Label keys hold `/`, so no JSON pointer reaches them.)
pub fn label<'a>(object: &'a Value, key: &str) -> &'a str {
    object["metadata"]["labels"][key].as_str().unwrap_or("")
}

pub fn name(object: &Value) -> &str {
    str_at(object, "/metadata/name")
}

pub fn namespace(object: &Value) -> &str {
    str_at(object, "/metadata/namespace")
}

/// One entry of `status.conditions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: Option<String>,
}

impl Condition {
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }

    pub fn is_false(&self) -> bool {
        self.status == "False"
    }

    /// `Ready: False RevisionFailed container exited`, the way progress lines show it.
    pub fn one_line(&self) -> String {
        let mut line = format!("{}: {}", self.type_, self.status);
        for part in [&self.reason, &self.message] {
            if !part.is_empty() {
                line.push(' ');
                line.push_str(part);
            }
        }
        line
    }
}

/// The object's `status.conditions`, in the order the server wrote them.
pub fn conditions(object: &Value) -> Vec<Condition> {
    let Some(items) = object.pointer("/status/conditions").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|c| Condition {
            type_: str_at(c, "/type").to_string(),
            status: match str_at(c, "/status") {
                "" => "Unknown".to_string(),
                status => status.to_string(),
            },
            reason: str_at(c, "/reason").to_string(),
            message: str_at(c, "/message").to_string(),
            last_transition_time: c.get("lastTransitionTime").and_then(Value::as_str).map(str::to_string),
        })
        .collect()
}

pub fn condition(object: &Value, type_: &str) -> Option<Condition> {
    conditions(object).into_iter().find(|c| c.type_ == type_)
}

/// kn's CONDITIONS column: `2 OK / 3`.
pub fn conditions_summary(object: &Value) -> String {
    let all = conditions(object);
    if all.is_empty() {
        return String::new();
    }
    let ok = all.iter().filter(|c| c.is_true()).count();
    format!("{ok} OK / {}", all.len())
}

/// The READY and REASON columns: the Ready condition's status and reason.
pub fn ready_and_reason(object: &Value) -> (String, String) {
    match condition(object, "Ready") {
        Some(ready) => (ready.status, ready.reason),
        None => ("Unknown".to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service() -> Value {
        json!({"status": {"conditions": [
            {"type": "ConfigurationsReady", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "RevisionFailed", "message": "exit 1"},
            {"type": "RoutesReady", "status": "Unknown"},
        ]}})
    }

    #[test]
    fn conditions_are_summarised_like_kn() {
        assert_eq!(conditions_summary(&service()), "1 OK / 3");
        assert_eq!(ready_and_reason(&service()), ("False".to_string(), "RevisionFailed".to_string()));
        assert_eq!(conditions_summary(&json!({})), "");
        assert_eq!(ready_and_reason(&json!({})).0, "Unknown");
    }

    #[test]
    fn a_condition_reads_on_one_line() {
        assert_eq!(condition(&service(), "Ready").unwrap().one_line(), "Ready: False RevisionFailed exit 1");
        assert_eq!(condition(&service(), "RoutesReady").unwrap().one_line(), "RoutesReady: Unknown");
    }

    #[test]
    fn integers_are_read_from_numbers_and_label_strings() {
        let object = json!({"metadata": {"generation": 3, "labels": {"g": "7", "x": "seven"}}});
        assert_eq!(int_at(&object, "/metadata/generation"), Some(3));
        assert_eq!(int_at(&object, "/metadata/labels/g"), Some(7));
        assert_eq!(int_at(&object, "/metadata/labels/x"), None);
    }
}
