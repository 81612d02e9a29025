//! The five fields of a standard cron spec (minute, hour, day of month, month, day of week) as
//! bit sets, parsed as robfig/cron's `ParseStandard` does, and the search for the next
//! wall-clock minute they match.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

/// What one field may hold.
struct Bounds {
    /// How messages name the field.
    name: &'static str,
    min: u32,
    /// The largest value written out (7 for day-of-week: Sunday again).
    max: u32,
    /// The largest value of `*` and of `N/step` (6 for day-of-week).
    star_max: u32,
    /// Names, lowercase, and their values.
    names: &'static [(&'static str, u32)],
    /// How messages describe the names.
    names_hint: &'static str,
}

const MINUTE: Bounds = Bounds { name: "minute", min: 0, max: 59, star_max: 59, names: &[], names_hint: "" };
const HOUR: Bounds = Bounds { name: "hour", min: 0, max: 23, star_max: 23, names: &[], names_hint: "" };
const DAY_OF_MONTH: Bounds =
    Bounds { name: "day-of-month", min: 1, max: 31, star_max: 31, names: &[], names_hint: "" };
const MONTH: Bounds = Bounds {
    name: "month",
    min: 1,
    max: 12,
    star_max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
    names_hint: " or a month name (JAN-DEC)",
};
const DAY_OF_WEEK: Bounds = Bounds {
    name: "day-of-week",
    min: 0,
    max: 7,
    star_max: 6,
    names: &[("sun", 0), ("mon", 1), ("tue", 2), ("wed", 3), ("thu", 4), ("fri", 5), ("sat", 6)],
    names_hint: " or a weekday name (SUN-SAT)",
};

/// One field: the values it matches, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Field {
    bits: u64,
    /// An element is `*` or `?` without a step (or with step 1): robfig/cron's "star bit", which
    /// decides cron's day rule.
    star: bool,
    /// An element starts with `*` or `?`, steps included: Vixie cron's wildcard, which decides
    /// how the field behaves across daylight saving time changes.
    wildcard: bool,
}

impl Field {
    fn has(&self, value: u32) -> bool {
        self.bits & (1 << value) != 0
    }

    /// The smallest value at or above `from` that the field holds.
    fn next_from(&self, from: u32) -> Option<u32> {
        let above = self.bits.checked_shr(from).map(|rest| rest << from).unwrap_or(0);
        (above != 0).then(|| above.trailing_zeros())
    }
}

/// A standard five-field cron spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fields {
    minute: Field,
    hour: Field,
    day_of_month: Field,
    month: Field,
    day_of_week: Field,
}

impl Fields {
    /// Five fields, already split on whitespace. Messages name the field at fault.
    pub(super) fn parse(fields: [&str; 5]) -> Result<Self, String> {
        let [minute, hour, day_of_month, month, day_of_week] = fields;
        Ok(Self {
            minute: parse_field(minute, &MINUTE)?,
            hour: parse_field(hour, &HOUR)?,
            day_of_month: parse_field(day_of_month, &DAY_OF_MONTH)?,
            month: parse_field(month, &MONTH)?,
            day_of_week: parse_field(day_of_week, &DAY_OF_WEEK)?,
        })
    }

    /// Vixie cron's "wildcard job": the minute or the hour field starts with `*`. Such a job
    /// runs by the clock as it reads across a daylight saving time change; any other job runs
    /// once a day at its fixed times.
    pub(super) fn is_wildcard(&self) -> bool {
        self.minute.wildcard || self.hour.wildcard
    }

    /// Cron's day rule: when both day fields are restricted (neither has a plain `*`), a day
    /// matching either one matches; otherwise it must match both.
    fn day_matches(&self, date: NaiveDate) -> bool {
        let by_month = self.day_of_month.has(date.day());
        let by_week = self.day_of_week.has(date.weekday().num_days_from_sunday());
        if self.day_of_month.star || self.day_of_week.star {
            by_month && by_week
        } else {
            by_month || by_week
        }
    }

    /// The first wall-clock minute at or after `from` (whose seconds are ignored) that the spec
    /// matches, on or before the day `until`.
    pub(super) fn next_match(&self, from: NaiveDateTime, until: NaiveDate) -> Option<NaiveDateTime> {
        let (mut date, mut hour, mut minute) = (from.date(), from.hour(), from.minute());
        loop {
            if date > until {
                return None;
            }
            if !self.month.has(date.month()) {
                date = first_of_next_month(date)?;
                (hour, minute) = (0, 0);
                continue;
            }
            if !self.day_matches(date) {
                date = date.succ_opt()?;
                (hour, minute) = (0, 0);
                continue;
            }
            let Some(next_hour) = self.hour.next_from(hour) else {
                date = date.succ_opt()?;
                (hour, minute) = (0, 0);
                continue;
            };
            if next_hour != hour {
                (hour, minute) = (next_hour, 0);
            }
            match self.minute.next_from(minute) {
                Some(next_minute) => return date.and_hms_opt(hour, next_minute, 0),
                None if hour == 23 => {
                    date = date.succ_opt()?;
                    (hour, minute) = (0, 0);
                }
                None => (hour, minute) = (hour + 1, 0),
            }
        }
    }
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    match date.month() {
        12 => NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1),
        month => NaiveDate::from_ymd_opt(date.year(), month + 1, 1),
    }
}

/// A field: a comma-separated list of `*`, `?`, a value or a range `a-b`, each optionally with a
/// step `/n` (`N/n` meaning `N` to the field's maximum).
fn parse_field(text: &str, bounds: &Bounds) -> Result<Field, String> {
    let fail = |problem: String| format!("{} field {text:?}: {problem}", bounds.name);
    let mut field = Field { bits: 0, star: false, wildcard: false };
    for element in text.split(',') {
        if element.is_empty() {
            return Err(fail("empty list element".to_owned()));
        }
        let (range, step) = match element.split_once('/') {
            Some((_, step)) if step.contains('/') => {
                return Err(fail(format!("{element:?} has more than one '/'")));
            }
            Some((range, step)) => {
                let step = number(step).ok_or_else(|| fail(format!("step {step:?} is not a number")))?;
                if step == 0 {
                    return Err(fail("a step must be at least 1".to_owned()));
                }
                (range, Some(step))
            }
            None => (element, None),
        };
        let (start, end) = if range == "*" || range == "?" {
            field.wildcard = true;
            field.star |= step.unwrap_or(1) == 1;
            (bounds.min, bounds.star_max)
        } else {
            let value = |text: &str| value(text, bounds).map_err(&fail);
            match range.split_once('-') {
                Some((_, end)) if end.contains('-') => {
                    return Err(fail(format!("{range:?} has more than one '-'")));
                }
                Some((start, end)) => (value(start)?, value(end)?),
                None => {
                    let single = value(range)?;
                    // `N/step` runs from N to the end of the field.
                    if step.is_some() { (single, bounds.star_max.max(single)) } else { (single, single) }
                }
            }
        };
        if start > end {
            return Err(fail(format!("range start {start} is after its end {end}")));
        }
        let step = step.unwrap_or(1);
        let mut at = start;
        while at <= end {
            field.bits |= 1 << at;
            at = at.saturating_add(step);
        }
    }
    // Day-of-week 7 is Sunday too.
    if bounds.max == 7 && field.has(7) {
        field.bits = (field.bits & !(1 << 7)) | 1;
    }
    Ok(field)
}

/// A value of the field: a number within its bounds, or one of its names (any case).
fn value(text: &str, bounds: &Bounds) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(&(_, value)) = bounds.names.iter().find(|(name, _)| *name == lower) {
        return Ok(value);
    }
    let Some(value) = number(text) else {
        return Err(format!("{text:?} is not a number{}", bounds.names_hint));
    };
    if value < bounds.min || value > bounds.max {
        let sunday = if bounds.max == 7 { " (0 and 7 are Sunday)" } else { "" };
        return Err(format!("value {value} out of range {}-{}{sunday}", bounds.min, bounds.max));
    }
    Ok(value)
}

/// Decimal digits only (no sign); a number too large for a u32 is `u32::MAX`, out of any range.
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(spec: &str) -> Fields {
        let parts: Vec<&str> = spec.split_whitespace().collect();
        Fields::parse(parts.try_into().unwrap()).unwrap()
    }

    fn values(field: Field) -> Vec<u32> {
        (0..64).filter(|&v| field.has(v)).collect()
    }

    #[test]
    fn field_syntax() {
        let cases: &[(&str, &Bounds, &[u32], bool, bool)] = &[
            ("*", &MINUTE, &[], true, true),
            ("?", &DAY_OF_MONTH, &[], true, true),
            ("*/15", &MINUTE, &[0, 15, 30, 45], false, true),
            ("*/1", &HOUR, &[], true, true),
            ("5/15", &MINUTE, &[5, 20, 35, 50], false, false),
            ("1-30/10", &MINUTE, &[1, 11, 21], false, false),
            ("1,2,5-7", &HOUR, &[1, 2, 5, 6, 7], false, false),
            ("0,*/20", &MINUTE, &[0, 20, 40], false, true),
            ("jan,MAR-May", &MONTH, &[1, 3, 4, 5], false, false),
            ("FEB/4", &MONTH, &[2, 6, 10], false, false),
            ("mon-FRI", &DAY_OF_WEEK, &[1, 2, 3, 4, 5], false, false),
            ("7", &DAY_OF_WEEK, &[0], false, false),
            ("5-7", &DAY_OF_WEEK, &[0, 5, 6], false, false),
            ("*/2", &DAY_OF_WEEK, &[0, 2, 4, 6], false, true),
            ("1/2", &DAY_OF_WEEK, &[1, 3, 5], false, false),
            ("31/100", &DAY_OF_MONTH, &[31], false, false),
            ("007", &MINUTE, &[7], false, false),
        ];
        for &(text, bounds, expected, star, wildcard) in cases {
            let field = parse_field(text, bounds).unwrap_or_else(|e| panic!("{text}: {e}"));
            if !expected.is_empty() {
                assert_eq!(values(field), expected, "{text}");
            } else {
                assert_eq!(values(field), (bounds.min..=bounds.star_max).collect::<Vec<_>>(), "{text}");
            }
            assert_eq!((field.star, field.wildcard), (star, wildcard), "{text}");
        }
    }

    #[test]
    fn field_errors_name_the_field_and_the_problem() {
        let cases: &[(&str, &Bounds, &str)] = &[
            ("61", &MINUTE, r#"minute field "61": value 61 out of range 0-59"#),
            ("24", &HOUR, r#"hour field "24": value 24 out of range 0-23"#),
            ("0", &DAY_OF_MONTH, r#"day-of-month field "0": value 0 out of range 1-31"#),
            ("13", &MONTH, r#"month field "13": value 13 out of range 1-12"#),
            ("8", &DAY_OF_WEEK, r#"day-of-week field "8": value 8 out of range 0-7 (0 and 7 are Sunday)"#),
            ("99999999999", &MINUTE, "value 4294967295 out of range 0-59"),
            ("x", &MINUTE, r#"minute field "x": "x" is not a number"#),
            ("foo", &MONTH, r#""foo" is not a number or a month name (JAN-DEC)"#),
            ("MON-FOO", &DAY_OF_WEEK, r#""FOO" is not a number or a weekday name (SUN-SAT)"#),
            ("jan", &DAY_OF_WEEK, r#""jan" is not a number or a weekday name"#),
            ("1,,2", &MINUTE, r#"minute field "1,,2": empty list element"#),
            ("1,", &MINUTE, "empty list element"),
            ("*/0", &MINUTE, "a step must be at least 1"),
            ("*/x", &MINUTE, r#"step "x" is not a number"#),
            ("*/", &MINUTE, r#"step "" is not a number"#),
            ("1/2/3", &MINUTE, r#""1/2/3" has more than one '/'"#),
            ("1-2-3", &HOUR, r#""1-2-3" has more than one '-'"#),
            ("20-10", &DAY_OF_MONTH, "range start 20 is after its end 10"),
            ("SAT-SUN", &DAY_OF_WEEK, "range start 6 is after its end 0"),
            ("-5", &MINUTE, r#""" is not a number"#),
            ("*-5", &MINUTE, r#""*" is not a number"#),
            ("+5", &MINUTE, r#""+5" is not a number"#),
        ];
        for &(text, bounds, expected) in cases {
            let err = parse_field(text, bounds).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn day_rule() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // 2012-07-15 is a Sunday, 2012-06-15 a Friday, 2012-08-01 a Wednesday.
        let either = fields("0 0 1,15 * SUN");
        assert!(either.day_matches(date(2012, 7, 15)));
        assert!(either.day_matches(date(2012, 6, 15)));
        assert!(either.day_matches(date(2012, 8, 1)));
        assert!(either.day_matches(date(2012, 7, 8)));
        assert!(!either.day_matches(date(2012, 7, 9)));
        // A step is a restriction too (robfig/cron): still either.
        assert!(fields("0 0 */10 * SUN").day_matches(date(2012, 7, 8)));
        // A star on one side: both must match.
        assert!(!fields("0 0 * * MON").day_matches(date(2012, 7, 15)));
        assert!(!fields("0 0 1,15 * *").day_matches(date(2012, 7, 9)));
        assert!(fields("0 0 1,15 * ?").day_matches(date(2012, 7, 15)));
    }

    #[test]
    fn next_match_skips_whole_fields() {
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        let until = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        let cases = [
            ("* * * * *", "2012-07-09 14:45", "2012-07-09 14:45"),
            ("0/15 * * * *", "2012-07-09 14:46", "2012-07-09 15:00"),
            ("20-35/15 * * * *", "2012-07-09 23:46", "2012-07-10 00:20"),
            ("0 0 9 Apr-Oct ?", "2012-07-09 23:35", "2012-08-09 00:00"),
            // `*/5` restricts the days (robfig/cron v3): the 1st or a Monday.
            ("0 0 */5 Apr,Aug,Oct Mon", "2012-07-09 23:35", "2012-08-01 00:00"),
            ("0 0 * Apr,Aug,Oct Mon", "2012-07-09 23:35", "2012-08-06 00:00"),
            ("0 0 * Feb Mon", "2012-07-09 23:35", "2013-02-04 00:00"),
            ("0 0 * Feb Mon/2", "2012-07-09 23:35", "2013-02-01 00:00"),
            ("59 23 31 12 *", "2012-12-31 23:59", "2012-12-31 23:59"),
            ("0 0 29 2 *", "2012-07-09 00:00", "2016-02-29 00:00"),
        ];
        for (spec, from, expected) in cases {
            assert_eq!(fields(spec).next_match(at(from), until), Some(at(expected)), "{spec} from {from}");
        }
        assert_eq!(fields("0 0 30 2 *").next_match(at("2012-07-09 00:00"), until), None);
        assert_eq!(fields("0 0 31 4 *").next_match(at("2012-07-09 00:00"), until), None);
        assert_eq!(fields("* * * * *").next_match(at("2030-01-02 00:00"), until), None);
    }
}
