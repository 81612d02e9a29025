//! Descriptions of eventing objects the way `kn broker|trigger|source ping describe` prints them:
//! blocks of aligned `Key: value` lines, the destinations, the delivery, and the conditions.

use serde_json::Value;
use time::OffsetDateTime;

use crate::cli::object::{conditions, name, namespace, str_at};
use crate::cli::table::{age, conditions_table};

/// A description being written, section by section.
pub struct Description {
    out: String,
    now: OffsetDateTime,
}

impl Description {
    /// Starts with the object's name, namespace, labels, annotations and age, then `fields`.
    pub fn new(object: &Value, now: OffsetDateTime, fields: &[(&str, String)]) -> Self {
        let mut head = vec![
            ("Name", name(object).to_string()),
            ("Namespace", namespace(object).to_string()),
            ("Labels", pairs(object.pointer("/metadata/labels"))),
            ("Annotations", pairs(object.pointer("/metadata/annotations"))),
            ("Age", age(object, now)),
        ];
        head.extend(fields.iter().cloned());
        let mut description = Self { out: String::new(), now };
        description.block(0, &head);
        description
    }

    /// Lines of `key: value` with the values lined up, `indent` spaces in; empty values are left out.
    pub fn block(&mut self, indent: usize, fields: &[(&str, String)]) {
        let shown: Vec<&(&str, String)> = fields.iter().filter(|(_, value)| !value.is_empty()).collect();
        let width = shown.iter().map(|(key, _)| key.chars().count()).max().unwrap_or(0);
        for (key, value) in shown {
            let key = format!("{key}:");
            self.out.push_str(&format!("{:indent$}{key:<pad$}{value}\n", "", pad = width + 3));
        }
    }

    /// A heading after a blank line: `Title:`, `indent` spaces in.
    pub fn heading(&mut self, indent: usize, title: &str) {
        if indent == 0 {
            self.out.push('\n');
        }
        self.out.push_str(&format!("{:indent$}{title}:\n", ""));
    }

    /// A `Destination` under `title`: the object it refers to, or its URI; `resolved` is the URI
    /// the controller resolved it to (empty when it has not).
    pub fn destination(&mut self, indent: usize, title: &str, destination: Option<&Value>, resolved: &str) {
        let Some(destination) = destination.filter(|d| d.is_object()) else { return };
        self.heading(indent, title);
        let reference = destination.get("ref").filter(|r| r.is_object());
        let uri = str_at(destination, "/uri").to_string();
        let mut fields = Vec::new();
        if let Some(reference) = reference {
            fields.push(("Name", str_at(reference, "/name").to_string()));
            fields.push(("Namespace", str_at(reference, "/namespace").to_string()));
            let resource = format!("{} ({})", str_at(reference, "/kind"), str_at(reference, "/apiVersion"));
            fields.push(("Resource", resource));
        }
        fields.push(("URI", uri.clone()));
        if resolved != uri {
            fields.push(("Resolved URI", resolved.to_string()));
        }
        self.block(indent + 2, &fields);
    }

    /// `spec.delivery`, when the object has one.
    pub fn delivery(&mut self, object: &Value) {
        let Some(delivery) = object.pointer("/spec/delivery").filter(|d| d.is_object()) else { return };
        self.heading(0, "Delivery");
        let retry = delivery.get("retry").map(|r| r.to_string()).unwrap_or_default();
        self.block(
            2,
            &[
                ("Retry", retry),
                ("Backoff Policy", str_at(delivery, "/backoffPolicy").to_string()),
                ("Backoff Delay", str_at(delivery, "/backoffDelay").to_string()),
                ("Timeout", str_at(delivery, "/timeout").to_string()),
            ],
        );
        let dead_letter_uri = str_at(object, "/status/deadLetterSinkUri");
        self.destination(2, "Dead Letter Sink", delivery.get("deadLetterSink"), dead_letter_uri);
    }

    /// Ends with the object's conditions.
    pub fn finish(mut self, object: &Value) -> String {
        self.out.push_str("\nConditions:\n");
        self.out.push_str(&conditions_table(&conditions(object), self.now));
        self.out
    }
}

/// Labels or annotations as `k=v, k=v`, sorted by key.
fn pairs(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object) else { return String::new() };
    let mut pairs: Vec<String> =
        map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    pairs.sort();
    pairs.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn blocks_line_up_and_leave_out_empty_values() {
        let object = json!({"metadata": {"name": "b", "namespace": "default",
            "annotations": {"z": "1", "a": "2"}, "creationTimestamp": "2024-05-01T11:59:00Z"}});
        let mut description =
            Description::new(&object, datetime!(2024-05-01 12:00:00 UTC), &[("Broker", "default".into())]);
        description.heading(0, "Filter");
        description.block(2, &[("type", "dev.x".into()), ("source", "s".into()), ("subject", String::new())]);
        let text = description.finish(&object);
        assert_eq!(
            text,
            "\
Name:         b
Namespace:    default
Annotations:  a=2, z=1
Age:          1m
Broker:       default

Filter:
  type:    dev.x
  source:  s

Conditions:
  (none reported)
"
        );
    }
}
