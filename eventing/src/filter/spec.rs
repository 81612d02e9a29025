//! A Trigger's filter fields to a [`Filter`], validated as Knative's webhook does.

use serde_json::{Map, Value};

use super::Filter;

/// The dialects of `spec.filters`, in the order messages list them.
const DIALECTS: [&str; 7] = ["exact", "prefix", "suffix", "all", "any", "not", "cesql"];
const ONE_OF: &str = "exact, prefix, suffix, all, any or not";

type Errors = Vec<(String, String)>;

pub(super) fn parse(spec: &Value) -> Result<Filter, Errors> {
    let mut errors = Errors::new();
    let spec = match spec {
        Value::Null => return Ok(Filter::All(Vec::new())),
        Value::Object(spec) => spec,
        _ => return Err(vec![("spec".to_owned(), "must be an object".to_owned())]),
    };
    // Both are validated even though `filters` wins, as Knative's webhook does.
    let attributes = legacy(spec.get("filter"), &mut errors);
    let filters = match spec.get("filters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(filters)) => filters
            .iter()
            .enumerate()
            .filter_map(|(i, f)| filter(f, &format!("spec.filters[{i}]"), &mut errors))
            .collect(),
        Some(_) => {
            errors.push(("spec.filters".to_owned(), "must be a list of filters".to_owned()));
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut chosen = if filters.is_empty() { attributes } else { filters };
    Ok(if chosen.len() == 1 { chosen.remove(0) } else { Filter::All(chosen) })
}

/// `spec.filter.attributes`: exact matches, where `""` asks only that the attribute be set.
fn legacy(filter: Option<&Value>, errors: &mut Errors) -> Vec<Filter> {
    let filter = match filter {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Object(filter)) => filter,
        Some(_) => {
            errors.push(("spec.filter".to_owned(), "must be an object".to_owned()));
            return Vec::new();
        }
    };
    for name in filter.keys().filter(|k| *k != "attributes") {
        errors.push((
            format!("spec.filter.{name}"),
            "unknown field; spec.filter has only attributes".to_owned(),
        ));
    }
    let path = "spec.filter.attributes";
    let attributes = match filter.get("attributes") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Object(attributes)) => attributes,
        Some(_) => {
            errors.push((path.to_owned(), "must be a map of attribute names to values".to_owned()));
            return Vec::new();
        }
    };
    let mut filters = Vec::new();
    for (attribute, value) in attributes {
        if let Err(message) = check_attribute_name(attribute) {
            errors.push((path.to_owned(), message));
        }
        match value {
            Value::String(v) if v.is_empty() => {
                filters.push(Filter::Present { attribute: attribute.clone() })
            }
            Value::String(v) => {
                filters.push(Filter::Exact { attribute: attribute.clone(), value: v.clone() })
            }
            _ => errors.push((path.to_owned(), format!("the value of {attribute:?} must be a string"))),
        }
    }
    filters
}

/// One element of `spec.filters` (or nested in one) at `path`.
fn filter(value: &Value, path: &str, errors: &mut Errors) -> Option<Filter> {
    let Value::Object(object) = value else {
        errors.push((path.to_owned(), format!("must be an object with one of {ONE_OF}")));
        return None;
    };
    for name in object.keys().filter(|k| !DIALECTS.contains(&k.as_str())) {
        errors.push((format!("{path}.{name}"), format!("unknown field; a filter has one of {ONE_OF}")));
    }
    // A null dialect is an unset one (as Go's JSON decoding has it).
    let set: Vec<&str> =
        DIALECTS.into_iter().filter(|d| object.get(*d).is_some_and(|v| !v.is_null())).collect();
    let dialect = match set.as_slice() {
        [dialect] => *dialect,
        [] => {
            errors.push((path.to_owned(), format!("must have one of {ONE_OF}")));
            return None;
        }
        several => {
            let found = several.join(", ");
            errors.push((
                path.to_owned(),
                format!("multiple dialects found ({found}); a filter can have only one"),
            ));
            return None;
        }
    };
    let value = &object[dialect];
    let path = format!("{path}.{dialect}");
    match dialect {
        "exact" | "prefix" | "suffix" => {
            let (attribute, text) = attribute_map(value, &path, dialect, errors)?;
            Some(match dialect {
                "exact" => Filter::Exact { attribute, value: text },
                "prefix" => Filter::Prefix { attribute, prefix: text },
                _ => Filter::Suffix { attribute, suffix: text },
            })
        }
        "all" | "any" => {
            let Value::Array(list) = value else {
                errors.push((path, "must be a list of filters".to_owned()));
                return None;
            };
            if list.is_empty() {
                errors.push((path.clone(), "must contain at least one filter".to_owned()));
            }
            let before = errors.len();
            let nested: Vec<Filter> = list
                .iter()
                .enumerate()
                .filter_map(|(i, f)| filter(f, &format!("{path}[{i}]"), errors))
                .collect();
            if errors.len() > before || list.is_empty() {
                return None;
            }
            Some(if dialect == "all" { Filter::All(nested) } else { Filter::Any(nested) })
        }
        "not" => filter(value, &path, errors).map(|f| Filter::Not(Box::new(f))),
        _ => {
            errors.push((path, format!("CESQL filters are not supported; use {ONE_OF}")));
            None
        }
    }
}

/// The map of `exact`, `prefix` or `suffix`: exactly one attribute and its value.
fn attribute_map(value: &Value, path: &str, dialect: &str, errors: &mut Errors) -> Option<(String, String)> {
    let empty = Map::new();
    let map = match value {
        Value::Object(map) => map,
        _ => {
            errors.push((path.to_owned(), "must be a map of one attribute name to a value".to_owned()));
            &empty
        }
    };
    let mut entries = map.iter();
    let (attribute, value) = match (entries.next(), entries.next()) {
        (Some(entry), None) => entry,
        (None, _) => {
            if value.is_object() {
                errors.push((path.to_owned(), "must have one attribute".to_owned()));
            }
            return None;
        }
        (Some(_), Some(_)) => {
            let message =
                format!("can have only one attribute (found {}); combine several with all", map.len());
            errors.push((path.to_owned(), message));
            return None;
        }
    };
    let mut valid = true;
    if let Err(message) = check_attribute_name(attribute) {
        errors.push((path.to_owned(), message));
        valid = false;
    }
    match value {
        Value::String(text) if text.is_empty() && dialect != "exact" => {
            errors.push((path.to_owned(), format!("the {dialect} for {attribute:?} must not be empty")));
            None
        }
        Value::String(text) if valid => Some((attribute.clone(), text.clone())),
        Value::String(_) => None,
        _ => {
            errors.push((path.to_owned(), format!("the value of {attribute:?} must be a string")));
            None
        }
    }
}

/// Knative's rule for filter attribute names: a lowercase letter, then lowercase letters and digits.
fn check_attribute_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid attribute name {name:?}: it must start with a lowercase letter and contain only \
             lowercase letters and digits"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        for ok in ["type", "a", "knativearrivaltime", "ext1"] {
            assert_eq!(check_attribute_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Type", "1ext", "my-ext", "my_ext", "é"] {
            assert!(check_attribute_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(parse(&json!(null)), Ok(Filter::All(vec![])));
        assert_eq!(parse(&json!({})), Ok(Filter::All(vec![])));
        assert_eq!(parse(&json!({"filter": {}})), Ok(Filter::All(vec![])));
        assert_eq!(parse(&json!({"filter": {"attributes": {}}, "filters": []})), Ok(Filter::All(vec![])));
        assert_eq!(
            parse(&json!({"filter": {"attributes": {"type": "t", "source": ""}}})),
            Ok(Filter::All(vec![
                Filter::Exact { attribute: "type".into(), value: "t".into() },
                Filter::Present { attribute: "source".into() },
            ]))
        );
        assert_eq!(
            parse(&json!({"filters": [{"not": {"exact": {"type": "t"}}}]})),
            Ok(Filter::Not(Box::new(Filter::Exact { attribute: "type".into(), value: "t".into() })))
        );
        assert_eq!(
            parse(
                &json!({"filters": [{"exact": {"type": "t"}, "prefix": null}, {"suffix": {"source": "/x"}}]})
            ),
            Ok(Filter::All(vec![
                Filter::Exact { attribute: "type".into(), value: "t".into() },
                Filter::Suffix { attribute: "source".into(), suffix: "/x".into() },
            ]))
        );
        assert_eq!(parse(&json!([])), Err(vec![("spec".to_owned(), "must be an object".to_owned())]));
    }
}
