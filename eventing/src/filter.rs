//! Knative Trigger filters: `spec.filter.attributes` (exact matches) and `spec.filters`, the
//! newer dialect of the CloudEvents Subscriptions API (`exact`, `prefix`, `suffix`, `all`, `any`,
//! `not`). When a Trigger has both, `spec.filters` wins, as in Knative. CESQL is not supported.
//!
//! [`TriggerFilter::from_spec`] validates as Knative's webhook does, with every problem reported
//! against its field path; [`TriggerFilter::matches`] is the data plane.

mod spec;

use crate::codec::Event;

/// One filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// The attribute is set and equal to `value`.
    Exact { attribute: String, value: String },
    /// The attribute is set and starts with `prefix`.
    Prefix { attribute: String, prefix: String },
    /// The attribute is set and ends with `suffix`.
    Suffix { attribute: String, suffix: String },
    /// The attribute is set and not empty: `""` in `spec.filter.attributes`.
    Present { attribute: String },
    /// Every filter matches (true when empty: no filter at all).
    All(Vec<Filter>),
    /// At least one filter matches.
    Any(Vec<Filter>),
    /// The filter does not match.
    Not(Box<Filter>),
}

impl Filter {
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Filter::Exact { attribute, value } => lookup(event, attribute) == Some(value.as_str()),
            Filter::Prefix { attribute, prefix } => {
                lookup(event, attribute).is_some_and(|v| v.starts_with(prefix.as_str()))
            }
            Filter::Suffix { attribute, suffix } => {
                lookup(event, attribute).is_some_and(|v| v.ends_with(suffix.as_str()))
            }
            Filter::Present { attribute } => lookup(event, attribute).is_some_and(|v| !v.is_empty()),
            Filter::All(filters) => filters.iter().all(|f| f.matches(event)),
            Filter::Any(filters) => filters.iter().any(|f| f.matches(event)),
            Filter::Not(filter) => !filter.matches(event),
        }
    }
}

/// An attribute as Knative's filters see it: the event's context attributes and extensions
/// ([`Event::attribute`]), plus `schemaurl` and `dataschema` for either version's schema, and
/// `datamediatype` for `datacontenttype` without its parameters.
pub fn lookup<'a>(event: &'a Event, attribute: &str) -> Option<&'a str> {
    match attribute {
        "dataschema" | "schemaurl" => event.dataschema.as_deref(),
        "datamediatype" => {
            event.datacontenttype.as_deref().map(|t| t.split(';').next().unwrap_or_default().trim())
        }
        _ => event.attribute(attribute),
    }
}

/// The filter of one Trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerFilter {
    filter: Filter,
}

impl Default for TriggerFilter {
    /// No filter: every event matches.
    fn default() -> Self {
        TriggerFilter { filter: Filter::All(Vec::new()) }
    }
}

impl TriggerFilter {
    /// From the Trigger's `spec` (the filter fields of it; others are not looked at). On error,
    /// every problem as (field path such as `spec.filters[1].prefix`, message).
    pub fn from_spec(spec: &serde_json::Value) -> Result<Self, Vec<(String, String)>> {
        spec::parse(spec).map(|filter| TriggerFilter { filter })
    }

    pub fn new(filter: Filter) -> Self {
        TriggerFilter { filter }
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    pub fn matches(&self, event: &Event) -> bool {
        self.filter.matches(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(attribute: &str, value: &str) -> Filter {
        Filter::Exact { attribute: attribute.into(), value: value.into() }
    }

    #[test]
    fn matching() {
        let mut event = Event::new("1", "/s", "dev.knative.example");
        event.extensions.insert("empty".into(), String::new());
        event.datacontenttype = Some("application/json; charset=utf-8".into());
        let cases = [
            (exact("type", "dev.knative.example"), true),
            (exact("type", "dev.knative"), false),
            (exact("missing", ""), false),
            (exact("empty", ""), true),
            (Filter::Present { attribute: "empty".into() }, false),
            (Filter::Present { attribute: "type".into() }, true),
            (Filter::Present { attribute: "subject".into() }, false),
            (Filter::Prefix { attribute: "type".into(), prefix: "dev.".into() }, true),
            (Filter::Suffix { attribute: "type".into(), suffix: ".example".into() }, true),
            (Filter::Suffix { attribute: "subject".into(), suffix: "".into() }, false),
            (exact("datamediatype", "application/json"), true),
            (Filter::All(vec![]), true),
            (Filter::Any(vec![]), false),
            (Filter::Not(Box::new(exact("missing", "x"))), true),
            (Filter::Any(vec![exact("type", "x"), exact("id", "1")]), true),
            (Filter::All(vec![exact("type", "x"), exact("id", "1")]), false),
        ];
        for (filter, expected) in cases {
            assert_eq!(filter.matches(&event), expected, "{filter:?}");
        }
        assert!(TriggerFilter::default().matches(&event));
    }
}
