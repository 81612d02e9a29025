use chrono::NaiveDate;

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}")).to_utc()
}

#[test]
fn parse_errors_say_what_is_wrong() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("", None, "the schedule is empty"),
        ("   ", None, "the schedule is empty"),
        ("61 * * * *", None, r#"minute field "61": value 61 out of range 0-59"#),
        ("* 24 * * *", None, r#"hour field "24": value 24 out of range 0-23"#),
        ("* * 32 * *", None, r#"day-of-month field "32": value 32 out of range 1-31"#),
        ("* * * 0 *", None, r#"month field "0": value 0 out of range 1-12"#),
        (
            "* * * * FUN",
            None,
            r#"day-of-week field "FUN": "FUN" is not a number or a weekday name (SUN-SAT)"#,
        ),
        ("* * * *", None, "expected 5 fields (minute hour day-of-month month day-of-week), found 4"),
        ("0 * * * * *", None, "found 6 in \"0 * * * * *\"; a seconds field is not supported"),
        ("@fortnightly", None, r#"unknown descriptor "@fortnightly"; use one of @yearly"#),
        ("@daily 5", None, r#"unknown descriptor "@daily 5""#),
        ("@every", None, "@every needs a duration"),
        ("@everyday", None, r#"unknown descriptor "@everyday""#),
        ("@every 10", None, "@every: \"10\" is not a duration (a number has no unit)"),
        ("@every 1d", None, r#"unknown unit "d""#),
        ("@every -5s", None, r#"@every: the interval "-5s" must be positive"#),
        ("@every 0", None, "must be positive"),
        ("CRON_TZ=Mars/Olympus * * * * *", None, r#"unknown time zone "Mars/Olympus""#),
        ("TZ=europe/madrid * * * * *", None, r#"unknown time zone "europe/madrid""#),
        ("* * * * *", Some("Mars/Olympus"), r#"unknown time zone "Mars/Olympus""#),
        ("* * * * *", Some("Local"), r#"unknown time zone "Local""#),
        (
            "CRON_TZ=Europe/Madrid * * * * *",
            Some("Europe/Madrid"),
            "the schedule's CRON_TZ=Europe/Madrid prefix cannot be combined with a separate time zone",
        ),
        ("CRON_TZ=Europe/Madrid", None, "CRON_TZ=Europe/Madrid must be followed by a schedule"),
        ("TZ=UTC 61 * * * *", None, r#"minute field "61""#),
    ];
    for &(schedule, timezone, expected) in cases {
        match Schedule::parse(schedule, timezone) {
            Ok(parsed) => panic!("{schedule:?} in {timezone:?} parsed: {parsed:?}"),
            Err(err) => assert!(err.contains(expected), "{schedule:?} in {timezone:?}: {err}"),
        }
    }
}

#[test]
fn parsed_schedules_keep_their_text_and_zone() {
    let cases: &[(&str, Option<&str>, &str, Tz)] = &[
        ("*/5 * * * *", None, "*/5 * * * *", Tz::UTC),
        ("*/5 * * * *", Some(""), "*/5 * * * *", Tz::UTC),
        ("  0 9 * * MON-FRI\n", Some("Europe/Madrid"), "0 9 * * MON-FRI", Tz::Europe__Madrid),
        ("CRON_TZ=Asia/Tokyo  @daily", None, "CRON_TZ=Asia/Tokyo  @daily", Tz::Asia__Tokyo),
        ("TZ=America/New_York 0 0 * * *", None, "TZ=America/New_York 0 0 * * *", Tz::America__New_York),
        ("@Every 90s", None, "@Every 90s", Tz::UTC),
        ("@HOURLY", None, "@HOURLY", Tz::UTC),
        ("? ? ? ? ?", None, "? ? ? ? ?", Tz::UTC),
    ];
    for &(schedule, timezone, text, zone) in cases {
        let parsed = Schedule::parse(schedule, timezone).unwrap_or_else(|e| panic!("{schedule:?}: {e}"));
        assert_eq!(parsed.as_str(), text);
        assert_eq!(parsed.to_string(), text);
        assert_eq!(parsed.time_zone(), zone, "{schedule:?}");
    }
}

#[test]
fn next_firings() {
    let new_york = Some("America/New_York");
    let madrid = Some("Europe/Madrid");
    // (schedule, timezone, after, the next firings in order)
    let cases: &[(&str, Option<&str>, &str, &[&str])] = &[
        ("* * * * *", None, "2024-05-06T07:08:09.5Z", &["2024-05-06T07:09:00Z", "2024-05-06T07:10:00Z"]),
        ("* * * * *", None, "2024-05-06T07:08:00Z", &["2024-05-06T07:09:00Z"]),
        ("*/15 * * * *", None, "2024-05-06T07:08:00Z", &["2024-05-06T07:15:00Z", "2024-05-06T07:30:00Z"]),
        ("*/15 * * * *", None, "2024-05-06T07:45:00Z", &["2024-05-06T08:00:00Z"]),
        ("1-30/10 * * * *", None, "2024-05-06T07:22:00Z", &["2024-05-06T08:01:00Z", "2024-05-06T08:11:00Z"]),
        ("5/15 * * * *", None, "2024-05-06T07:51:00Z", &["2024-05-06T08:05:00Z", "2024-05-06T08:20:00Z"]),
        (
            "0 9 * JAN,jul MON-fri",
            None,
            "2024-05-06T00:00:00Z",
            &["2024-07-01T09:00:00Z", "2024-07-02T09:00:00Z"],
        ),
        ("0 12 * * 7", None, "2024-09-04T00:00:00Z", &["2024-09-08T12:00:00Z", "2024-09-15T12:00:00Z"]),
        // Both day fields restricted: either. 2024-09-09 and 16 are Mondays.
        (
            "0 0 13 * MON",
            None,
            "2024-09-07T00:00:00Z",
            &["2024-09-09T00:00:00Z", "2024-09-13T00:00:00Z", "2024-09-16T00:00:00Z"],
        ),
        // One a star: both.
        ("0 0 * * MON", None, "2024-09-07T00:00:00Z", &["2024-09-09T00:00:00Z", "2024-09-16T00:00:00Z"]),
        ("0 0 13 * ?", None, "2024-09-07T00:00:00Z", &["2024-09-13T00:00:00Z", "2024-10-13T00:00:00Z"]),
        ("@hourly", None, "2024-05-06T07:08:00Z", &["2024-05-06T08:00:00Z", "2024-05-06T09:00:00Z"]),
        ("@daily", None, "2024-05-06T07:08:00Z", &["2024-05-07T00:00:00Z"]),
        ("@midnight", None, "2024-05-06T00:00:00Z", &["2024-05-07T00:00:00Z"]),
        ("@weekly", None, "2024-09-04T00:00:00Z", &["2024-09-08T00:00:00Z", "2024-09-15T00:00:00Z"]),
        ("@monthly", None, "2024-09-04T00:00:00Z", &["2024-10-01T00:00:00Z", "2024-11-01T00:00:00Z"]),
        ("@yearly", None, "2024-09-04T00:00:00Z", &["2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"]),
        ("59 23 31 12 *", None, "2024-12-31T23:59:00Z", &["2025-12-31T23:59:00Z"]),
        // Leap days only.
        ("0 0 29 2 *", None, "2024-03-01T00:00:00Z", &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
        ("0 0 29 2 *", None, "2024-02-28T12:00:00Z", &["2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"]),
        // Never.
        ("0 0 30 2 *", None, "2024-01-01T00:00:00Z", &[]),
        ("0 0 31 4,6,9,11 *", None, "2024-01-01T00:00:00Z", &[]),
        // Counted from `after`, to the second.
        ("@every 90s", None, "2024-05-06T07:08:09.5Z", &["2024-05-06T07:09:39Z", "2024-05-06T07:11:09Z"]),
        ("@every 1h30m", None, "2024-05-06T07:08:00Z", &["2024-05-06T08:38:00Z"]),
        ("@every 1500ms", None, "2024-05-06T07:08:00Z", &["2024-05-06T07:08:01Z", "2024-05-06T07:08:02Z"]),
        ("@every 10ms", None, "2024-05-06T07:08:00Z", &["2024-05-06T07:08:01Z"]),
        // Time zones: Madrid is UTC+2 in May, a prefix or a separate zone alike.
        ("CRON_TZ=Europe/Madrid 0 9 * * *", None, "2024-05-06T06:00:00Z", &["2024-05-06T07:00:00Z"]),
        ("TZ=Europe/Madrid 0 9 * * *", None, "2024-05-06T07:00:00Z", &["2024-05-07T07:00:00Z"]),
        ("0 9 * * *", madrid, "2024-05-06T06:00:00Z", &["2024-05-06T07:00:00Z"]),
        ("0 9 * * *", madrid, "2024-01-15T06:00:00Z", &["2024-01-15T08:00:00Z"]),
        ("CRON_TZ=Asia/Kolkata 0 0 * * *", None, "2024-05-06T00:00:00Z", &["2024-05-06T18:30:00Z"]),
        // Madrid springs forward on 2024-03-31 at 02:00 CET (01:00Z) to 03:00 CEST.
        ("30 2 * * *", madrid, "2024-03-31T00:00:00Z", &["2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z"]),
        // New York springs forward on 2024-03-10 at 02:00 EST (07:00Z) to 03:00 EDT. A fixed
        // time in the gap fires when it ends, times in one gap once.
        (
            "30 2 * * *",
            new_york,
            "2024-03-10T05:00:00Z",
            &["2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z", "2024-03-12T06:30:00Z"],
        ),
        ("0,30 2 * * *", new_york, "2024-03-10T05:00:00Z", &["2024-03-10T07:00:00Z", "2024-03-11T06:00:00Z"]),
        (
            "30 2,3 * * *",
            new_york,
            "2024-03-10T05:00:00Z",
            &["2024-03-10T07:00:00Z", "2024-03-10T07:30:00Z", "2024-03-11T06:30:00Z"],
        ),
        // Wildcard jobs skip the missing hour and keep their pace.
        (
            "0 * * * *",
            new_york,
            "2024-03-10T05:30:00Z",
            &["2024-03-10T06:00:00Z", "2024-03-10T07:00:00Z", "2024-03-10T08:00:00Z"],
        ),
        ("*/30 * * * *", new_york, "2024-03-10T06:30:00Z", &["2024-03-10T07:00:00Z", "2024-03-10T07:30:00Z"]),
        // New York falls back on 2024-11-03 at 02:00 EDT (06:00Z) to 01:00 EST. A fixed time in the
        // repeated hour fires once.
        (
            "30 1 * * *",
            new_york,
            "2024-11-03T04:00:00Z",
            &["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z", "2024-11-05T06:30:00Z"],
        ),
        ("30 1 * * *", new_york, "2024-11-03T06:10:00Z", &["2024-11-04T06:30:00Z"]),
        ("0 2 * * *", new_york, "2024-11-03T04:00:00Z", &["2024-11-03T07:00:00Z", "2024-11-04T07:00:00Z"]),
        // Wildcard jobs fire in both passes.
        (
            "0 * * * *",
            new_york,
            "2024-11-03T04:30:00Z",
            &["2024-11-03T05:00:00Z", "2024-11-03T06:00:00Z", "2024-11-03T07:00:00Z"],
        ),
        (
            "*/30 * * * *",
            new_york,
            "2024-11-03T05:10:00Z",
            &["2024-11-03T05:30:00Z", "2024-11-03T06:00:00Z", "2024-11-03T06:30:00Z", "2024-11-03T07:00:00Z"],
        ),
        // Right after the first 01:50 EDT, the 01:10 EST of the second pass is next.
        ("10 * * * *", new_york, "2024-11-03T05:50:00Z", &["2024-11-03T06:10:00Z", "2024-11-03T07:10:00Z"]),
    ];
    for &(schedule, timezone, after, expected) in cases {
        let parsed = Schedule::parse(schedule, timezone).unwrap_or_else(|e| panic!("{schedule:?}: {e}"));
        let mut at = utc(after);
        for (i, want) in expected.iter().enumerate() {
            let next = parsed.next_after(at);
            assert_eq!(next, Some(utc(want)), "{schedule:?} in {timezone:?}: firing {} after {at}", i + 1);
            at = utc(want);
        }
        if expected.is_empty() {
            assert_eq!(parsed.next_after(at), None, "{schedule:?} never fires");
        }
    }
}

/// Every firing over two days around New York's and Lord Howe's (30-minute) daylight saving time
/// changes, against a brute-force reading of the rules minute by minute.
#[test]
fn next_after_agrees_with_brute_force_across_dst() {
    let windows = [
        ("America/New_York", "2024-03-09T00:00:00Z"),
        ("America/New_York", "2024-11-02T00:00:00Z"),
        ("Australia/Lord_Howe", "2024-04-06T00:00:00Z"),
        ("Australia/Lord_Howe", "2024-10-05T00:00:00Z"),
        ("Europe/Madrid", "2024-03-30T00:00:00Z"),
    ];
    let specs = [
        "* * * * *",
        "*/15 * * * *",
        "0 * * * *",
        "45 */2 * * *",
        "* 2 * * *",
        "30 1 * * *",
        "30 2 * * *",
        "0,15,30,45 1-3 * * *",
        "@daily",
    ];
    for (zone, start) in windows {
        for spec in specs {
            let schedule = Schedule::parse(spec, Some(zone)).unwrap();
            let Kind::Cron(fields) = &schedule.kind else { unreachable!() };
            let zone = schedule.time_zone();
            let start = utc(start);
            let end = start + TimeDelta::days(2);
            let expected = brute_force(fields, zone, start, end);
            assert!(!expected.is_empty(), "{spec} in {zone}");
            let mut found = Vec::new();
            let mut at = start;
            while let Some(next) = schedule.next_after(at).filter(|&next| next < end) {
                found.push(next);
                at = next;
            }
            assert_eq!(found, expected, "{spec} in {zone} from {start}");
        }
    }
}

/// The rules of [`Schedule::next_after`], read off every minute between `start` and `end`.
fn brute_force(fields: &Fields, zone: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let matches = |wall: NaiveDateTime| fields.next_match(wall, wall.date()) == Some(wall);
    let wall_of = |at: DateTime<Utc>| at.with_timezone(&zone).naive_local();
    let mut firings = Vec::new();
    let mut at = start + TimeDelta::minutes(1);
    while at < end {
        let wall = wall_of(at);
        let previous = wall_of(at - TimeDelta::minutes(1));
        let first_pass = zone.from_local_datetime(&wall).earliest().map(|t| t.to_utc()) == Some(at);
        let fires = if fields.is_wildcard() {
            matches(wall)
        } else {
            // The first occurrence of a matching time, or a matching time skipped just before.
            let mut skipped = previous + TimeDelta::minutes(1);
            let mut in_gap = false;
            while skipped < wall {
                in_gap |= matches(skipped);
                skipped += TimeDelta::minutes(1);
            }
            (matches(wall) && first_pass) || in_gap
        };
        if fires {
            firings.push(at);
        }
        at += TimeDelta::minutes(1);
    }
    firings
}

#[test]
fn a_gap_ends_at_the_transition_instant() {
    let new_york: Tz = "America/New_York".parse().unwrap();
    let wall = NaiveDate::from_ymd_opt(2024, 3, 10).unwrap().and_hms_opt(2, 30, 0).unwrap();
    assert_eq!(gap_end(new_york, wall), Some(utc("2024-03-10T07:00:00Z")));
    // Samoa skipped 2011-12-30 entirely (UTC-10 to UTC+14).
    let apia: Tz = "Pacific/Apia".parse().unwrap();
    let wall = NaiveDate::from_ymd_opt(2011, 12, 30).unwrap().and_hms_opt(12, 0, 0).unwrap();
    assert_eq!(gap_end(apia, wall), Some(utc("2011-12-30T10:00:00Z")));
    let daily = Schedule::parse("0 12 * * *", Some("Pacific/Apia")).unwrap();
    assert_eq!(
        daily.next_after(utc("2011-12-29T12:00:00-10:00")),
        Some(utc("2011-12-31T00:00:00+14:00")),
        "the noon of the missing day fires when the day ends"
    );
}

#[test]
fn the_search_is_bounded() {
    let never = Schedule::parse("0 0 30 2 *", Some("America/New_York")).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(never.next_after(utc("2024-01-01T00:00:00Z")), None);
    assert_eq!(never.next_after(DateTime::<Utc>::MAX_UTC), None);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let every = Schedule::parse("@every 1h", None).unwrap();
    assert_eq!(every.next_after(DateTime::<Utc>::MAX_UTC), None);
    let minutely = Schedule::parse("* * * * *", None).unwrap();
    assert_eq!(minutely.next_after(DateTime::<Utc>::MAX_UTC), None);
}
