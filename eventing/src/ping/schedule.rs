//! A PingSource's schedule: what robfig/cron's standard parser accepts, in a time zone, and
//! when it next fires.

use std::fmt;
use std::time::Duration;

use chrono::offset::LocalResult;
use chrono::{
    DateTime, Days, NaiveDate, NaiveDateTime, Offset, SubsecRound, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use super::cron::Fields;
use super::duration::parse_go_duration;

/// How far ahead [`Schedule::next_after`] looks before it gives up (robfig/cron's limit).
const SEARCH_DAYS: u64 = 5 * 366;

/// How far back a wildcard schedule looks for a wall time that comes round again after `after`
/// in a fall-back overlap: longer than any daylight saving time shift in use.
const OVERLAP_LOOKBACK: TimeDelta = TimeDelta::hours(3);

/// The longest spring-forward gap searched for its end.
const LONGEST_GAP_MINUTES: u32 = 48 * 60;

/// The descriptors and the five fields each stands for.
const DESCRIPTORS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// When a PingSource fires: a cron spec in a time zone, or a fixed interval.
///
/// The syntax is robfig/cron's `ParseStandard` (which Knative uses):
///
/// * five fields, `minute hour day-of-month month day-of-week`, each a comma-separated list of
///   `*`, a value or a range `a-b`, each optionally with a step (`*/5`, `1-30/10`, and `5/15`
///   meaning `5-59/15`); `?` is `*`; months `JAN`-`DEC` and weekdays `SUN`-`SAT` by name in any
///   case; day-of-week `0` and `7` are both Sunday;
/// * cron's day rule: when both day-of-month and day-of-week are restricted (neither is a
///   plain `*`), a day matching either one matches;
/// * `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`;
/// * `@every <duration>` in Go's syntax (`@every 1h30m`): counted from the previous firing, not
///   aligned to the clock, in whole seconds and at least one;
/// * an optional `CRON_TZ=<zone> ` (or `TZ=<zone> `) prefix naming an IANA time zone, which
///   cannot be combined with a separate time zone (`spec.timezone`).
///
/// Without a time zone the schedule runs in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The spec as written (trimmed), prefix included.
    text: String,
    time_zone: Tz,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Cron(Fields),
    Every(Duration),
}

impl Schedule {
    /// Parse `schedule` in `timezone` (an IANA name; `None` or empty for UTC or the schedule's
    /// own `CRON_TZ=` prefix). The message of an error is user-facing and names what is wrong:
    /// `minute field "61": value 61 out of range 0-59`, `unknown time zone "Mars/Olympus"`.
    pub fn parse(schedule: &str, timezone: Option<&str>) -> Result<Schedule, String> {
        let zone = match timezone.filter(|name| !name.is_empty()) {
            Some(name) => Some(time_zone(name)?),
            None => None,
        };
        Self::parse_in(schedule, zone)
    }

    /// [`Schedule::parse`] with the time zone already looked up: `Some` when one was given
    /// separately, which a `CRON_TZ=` prefix then conflicts with.
    pub(super) fn parse_in(schedule: &str, zone: Option<Tz>) -> Result<Schedule, String> {
        let text = schedule.trim();
        if text.is_empty() {
            return Err("the schedule is empty; write one such as \"*/5 * * * *\"".to_owned());
        }
        let (prefix_zone, spec) = split_zone_prefix(text, zone.is_some())?;
        let time_zone = prefix_zone.or(zone).unwrap_or(Tz::UTC);
        let kind = if spec.starts_with('@') { descriptor(spec)? } else { Kind::Cron(cron_fields(spec)?) };
        Ok(Schedule { text: text.to_owned(), time_zone, kind })
    }

    /// The schedule as written (trimmed), for display and tracing (`faas.cron`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The time zone the schedule runs in.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// The first firing strictly after `after`, or `None` when there is none within five years
    /// (`0 0 30 2 *`).
    ///
    /// A cron spec is matched against the wall clock of the schedule's time zone, by the minute.
    /// Across daylight saving time changes it behaves as Vixie cron does:
    ///
    /// * A job at fixed times (neither its minute nor its hour field starts with `*`, and not
    ///   `@hourly`) fires once a day at each of them. A time skipped by a spring-forward gap
    ///   fires at the first instant after the gap (`30 2 * * *` in New York fires at 03:00 EDT
    ///   that day; times in one gap fire together, once), and a time repeated by a fall-back
    ///   overlap fires once, at its first occurrence.
    /// * A wildcard job (`*/15 * * * *`, `0 * * * *`) runs by the clock as it reads: minutes that
    ///   do not exist are skipped and minutes that occur twice fire twice, so that it keeps its
    ///   pace in real time.
    ///
    /// (robfig/cron instead skips a fixed-time job that falls in a gap, and runs one that falls
    /// in an overlap twice.)
    ///
    /// `@every` adds its interval to `after` cut to the whole second.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(interval) => {
                after.trunc_subsecs(0).checked_add_signed(TimeDelta::from_std(*interval).ok()?)
            }
            Kind::Cron(fields) => next_cron(fields, self.time_zone, after),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An IANA time zone by its exact name (`Europe/Madrid`, `UTC`).
pub(super) fn time_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone {name:?}; use an IANA time zone name such as \"Europe/Madrid\" or \"UTC\"")
    })
}

/// The zone of a `CRON_TZ=` or `TZ=` prefix, and the rest of the spec.
fn split_zone_prefix(text: &str, zone_given: bool) -> Result<(Option<Tz>, &str), String> {
    let Some(name_and_spec) = text.strip_prefix("CRON_TZ=").or_else(|| text.strip_prefix("TZ=")) else {
        return Ok((None, text));
    };
    let prefix = &text[..text.len() - name_and_spec.len()];
    let Some((name, spec)) = name_and_spec.split_once(char::is_whitespace) else {
        return Err(format!(
            "{prefix}{name_and_spec} must be followed by a schedule, such as \"{text} 0 9 * * *\""
        ));
    };
    if zone_given {
        return Err(format!(
            "the schedule's {prefix}{name} prefix cannot be combined with a separate time zone; set only one"
        ));
    }
    Ok((Some(time_zone(name)?), spec.trim_start()))
}

fn descriptor(spec: &str) -> Result<Kind, String> {
    let lower = spec.to_ascii_lowercase();
    if let Some(&(_, fields)) = DESCRIPTORS.iter().find(|(name, _)| *name == lower) {
        return Ok(Kind::Cron(cron_fields(fields)?));
    }
    let every =
        lower.strip_prefix("@every").filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace));
    if every.is_some() {
        let duration = spec["@every".len()..].trim();
        if duration.is_empty() {
            return Err("@every needs a duration, such as \"@every 1h30m\"".to_owned());
        }
        let nanos = parse_go_duration(duration).map_err(|e| format!("@every: {e}"))?;
        if nanos <= 0 {
            return Err(format!("@every: the interval {duration:?} must be positive"));
        }
        // robfig/cron: whole seconds, at least one.
        let seconds = u64::try_from(nanos / 1_000_000_000).unwrap_or(0).max(1);
        return Ok(Kind::Every(Duration::from_secs(seconds)));
    }
    let names: Vec<&str> = DESCRIPTORS.iter().map(|(name, _)| *name).collect();
    Err(format!("unknown descriptor {spec:?}; use one of {} or \"@every <duration>\"", names.join(", ")))
}

fn cron_fields(spec: &str) -> Result<Fields, String> {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    match <[&str; 5]>::try_from(parts.as_slice()) {
        Ok(fields) => Fields::parse(fields),
        Err(_) => {
            let seconds = if parts.len() == 6 { "; a seconds field is not supported" } else { "" };
            Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {} in {spec:?}{seconds}",
                parts.len()
            ))
        }
    }
}

/// The first firing of a cron spec after `after`, as [`Schedule::next_after`] describes.
///
/// Wall-clock matches are found in order and each is turned into instants: its first occurrence
/// (for a fixed-time job in a gap, the end of the gap), and for a wildcard job in an overlap its
/// second occurrence too. First occurrences grow with the wall time; a second occurrence can
/// come after the first occurrences of later wall times. So, when a fall-back is near, the
/// search starts early enough to see a second occurrence still ahead (wildcard jobs only), and
/// it stops once a first occurrence is past the best candidate.
fn next_cron(fields: &Fields, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(&zone).naive_local();
    let next_minute = local.with_second(0)?.with_nanosecond(0)?.checked_add_signed(TimeDelta::minutes(1))?;
    let until = local.date().checked_add_days(Days::new(SEARCH_DAYS)).unwrap_or(NaiveDate::MAX);
    let wildcard = fields.is_wildcard();
    // A second occurrence still ahead needs a fall-back within the lookback from `after`.
    let offset_at = |at: DateTime<Utc>| zone.offset_from_utc_datetime(&at.naive_utc()).fix();
    let overlap_ahead =
        after.checked_add_signed(OVERLAP_LOOKBACK).is_some_and(|later| offset_at(later) != offset_at(after));
    let mut from = if wildcard && overlap_ahead {
        next_minute.checked_sub_signed(OVERLAP_LOOKBACK)?
    } else {
        next_minute
    };
    let mut best: Option<DateTime<Utc>> = None;
    while let Some(wall) = fields.next_match(from, until) {
        let (first, second) = occurrences(zone, wall, wildcard);
        if let (Some(first), Some(best)) = (first, best)
            && first > best
        {
            break;
        }
        for candidate in [first, second].into_iter().flatten() {
            if candidate > after && best.is_none_or(|best| candidate < best) {
                best = Some(candidate);
            }
        }
        if best.is_some() && !wildcard {
            // No second occurrences: the first candidate is the earliest.
            break;
        }
        from = wall.checked_add_signed(TimeDelta::minutes(1))?;
    }
    best
}

/// The instants a matching wall time fires at: its first occurrence, and the second one of a
/// wildcard job in an overlap. In a gap, a fixed-time job fires when the gap ends and a
/// wildcard job not at all.
fn occurrences(
    zone: Tz,
    wall: NaiveDateTime,
    wildcard: bool,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    match zone.from_local_datetime(&wall) {
        LocalResult::Single(at) => (Some(at.to_utc()), None),
        LocalResult::Ambiguous(first, second) => (Some(first.to_utc()), wildcard.then(|| second.to_utc())),
        LocalResult::None if wildcard => (None, None),
        LocalResult::None => (gap_end(zone, wall), None),
    }
}

/// The instant a spring-forward gap holding the wall time `wall` ends: the first one whose
/// offset is the one after the gap.
fn gap_end(zone: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut probe = wall;
    let after_gap = (0..LONGEST_GAP_MINUTES).find_map(|_| {
        probe = probe.checked_add_signed(TimeDelta::minutes(1))?;
        zone.from_local_datetime(&probe).earliest()
    })?;
    let offset_after = after_gap.offset().fix();
    // `wall` read with the offset after the gap is an instant before it (else `wall` would exist).
    let mut before = (wall - offset_after).and_utc().timestamp();
    let mut at = after_gap.timestamp();
    while at - before > 1 {
        let middle = before + (at - before) / 2;
        let offset = zone.offset_from_utc_datetime(&DateTime::from_timestamp(middle, 0)?.naive_utc()).fix();
        if offset == offset_after {
            at = middle;
        } else {
            before = middle;
        }
    }
    DateTime::from_timestamp(at, 0)
}

#[cfg(test)]
mod tests;
