//! Column-aligned tables the way kubectl and kn print them, and human ages (`5s`, `3m`, `2h`, `4d`).

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::object::Condition;

/// Rows of cells under upper-case headers.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Space between columns, as kubectl's tabwriter leaves it.
const GAP: usize = 3;

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Self { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as text, each line ending in a newline; `indent` spaces before every line.
    pub fn render(&self, indent: usize) -> String {
        let columns = self.headers.len().max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = " ".repeat(indent);
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[i] - cell.chars().count() + GAP));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `5s`, `3m`, `2h`, `4d`: the largest whole unit of an elapsed time.
pub fn format_age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86400),
    }
}

/// How long ago an RFC 3339 timestamp was; empty when there is none.
pub fn age_since(timestamp: Option<&str>, now: OffsetDateTime) -> String {
    timestamp
        .and_then(|raw| OffsetDateTime::parse(raw, &Rfc3339).ok())
        .map(|then| format_age((now - then).whole_seconds()))
        .unwrap_or_default()
}

/// The age of an object from its `metadata.creationTimestamp`.
pub fn age(object: &Value, now: OffsetDateTime) -> String {
    age_since(object.pointer("/metadata/creationTimestamp").and_then(Value::as_str), now)
}

/// The `Conditions:` table of a description, as `kn ... describe` prints it: `++` True,
/// `!!` False, `??` Unknown.
pub fn conditions_table(conditions: &[Condition], now: OffsetDateTime) -> String {
    if conditions.is_empty() {
        return "  (none reported)\n".to_string();
    }
    let mut table = Table::new(["OK", "TYPE", "AGE", "REASON", "MESSAGE"]);
    for condition in conditions {
        let ok = match condition.status.as_str() {
            "True" => "++",
            "False" => "!!",
            _ => "??",
        };
        table.push(vec![
            ok.to_string(),
            condition.type_.clone(),
            age_since(condition.last_transition_time.as_deref(), now),
            condition.reason.clone(),
            condition.message.clone(),
        ]);
    }
    table.render(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn ages_use_the_largest_whole_unit() {
        assert_eq!(format_age(-3), "0s");
        assert_eq!(format_age(5), "5s");
        assert_eq!(format_age(59), "59s");
        assert_eq!(format_age(60), "1m");
        assert_eq!(format_age(3 * 60 + 59), "3m");
        assert_eq!(format_age(2 * 3600 + 5), "2h");
        assert_eq!(format_age(4 * 86400 + 7200), "4d");
    }

    #[test]
    fn ages_come_from_the_creation_timestamp() {
        let now = datetime!(2024-05-01 12:00:00 UTC);
        let object = json!({"metadata": {"creationTimestamp": "2024-05-01T11:57:00Z"}});
        assert_eq!(age(&object, now), "3m");
        assert_eq!(age(&json!({"metadata": {}}), now), "");
        assert_eq!(age_since(Some("yesterday"), now), "");
    }

    #[test]
    fn columns_line_up_and_lines_have_no_trailing_space() {
        let mut table = Table::new(["NAME", "URL", "READY"]);
        table.push(vec!["hello".into(), "http://hello.default.localhost".into(), "True".into()]);
        table.push(vec!["a".into(), "".into(), "".into()]);
        assert_eq!(
            table.render(0),
            "NAME    URL                              READY\n\
             hello   http://hello.default.localhost   True\n\
             a\n"
        );
        assert_eq!(table.render(2).lines().next(), Some("  NAME    URL                              READY"));
    }
}
