//! Label and field selectors: `app=hello,tier!=web,env in (a,b),!canary`.

use serde_json::Value;

use crate::resources::meta;
use crate::status::StatusError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    pub fn parse(raw: &str) -> Result<Self, StatusError> {
        let bad =
            |why: &str| StatusError::bad_request(format!("unable to parse labelSelector {raw:?}: {why}"));
        let mut requirements = Vec::new();
        for term in split_terms(raw) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = term.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((key, values)) = split_set(term, " notin ") {
                Requirement::NotIn(key, values.ok_or_else(|| bad("expected (values) after notin"))?)
            } else if let Some((key, values)) = split_set(term, " in ") {
                Requirement::In(key, values.ok_or_else(|| bad("expected (values) after in"))?)
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotEquals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::Equals(key.trim().into(), value.trim().into())
            } else {
                Requirement::Exists(term.to_string())
            };
            let key = match &requirement {
                Requirement::Equals(k, _)
                | Requirement::NotEquals(k, _)
                | Requirement::In(k, _)
                | Requirement::NotIn(k, _)
                | Requirement::Exists(k)
                | Requirement::NotExists(k) => k,
            };
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(bad(&format!("invalid label key {key:?}")));
            }
            requirements.push(requirement);
        }
        Ok(Self(requirements))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => meta::label(object, k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => meta::label(object, k) != Some(v.as_str()),
            Requirement::In(k, vs) => meta::label(object, k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => meta::label(object, k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => meta::label(object, k).is_some(),
            Requirement::NotExists(k) => meta::label(object, k).is_none(),
        })
    }
}

/// Split on commas outside parentheses.
fn split_terms(raw: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in raw.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&raw[start..]);
    terms
}

fn split_set(term: &str, operator: &str) -> Option<(String, Option<Vec<String>>)> {
    let (key, rest) = term.split_once(operator)?;
    let values = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .map(|inner| inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect());
    Some((key.trim().to_string(), values))
}

/// A parsed `fieldSelector`: Skiff supports `metadata.name` and `metadata.namespace`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(raw: &str) -> Result<Self, StatusError> {
        let mut terms = Vec::new();
        for term in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(StatusError::bad_request(format!("invalid fieldSelector term {term:?}")));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace") {
                return Err(StatusError::bad_request(format!(
                    "field label not supported: {field} (use metadata.name or metadata.namespace)"
                )));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = if field == "metadata.name" { meta::name(object) } else { meta::namespace(object) };
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "default", "labels": labels}})
    }

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let o = object(json!({"app": "hello", "tier": "web"}));
        for (selector, want) in [
            ("app=hello", true),
            ("app==hello,tier=web", true),
            ("app!=hello", false),
            ("tier in (web, db)", true),
            ("tier notin (web)", false),
            ("canary", false),
            ("!canary", true),
            ("app", true),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(selector).unwrap().matches(&o), want, "{selector}");
        }
        assert!(LabelSelector::parse("tier in web").is_err());
    }

    #[test]
    fn field_selectors_cover_name_and_namespace() {
        let o = object(json!({}));
        assert!(FieldSelector::parse("metadata.name=a").unwrap().matches(&o));
        assert!(!FieldSelector::parse("metadata.name=a,metadata.namespace!=default").unwrap().matches(&o));
        assert_eq!(FieldSelector::parse("spec.x=1").unwrap_err().code(), 400);
    }
}
