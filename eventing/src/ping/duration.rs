//! Go's duration syntax (`time.ParseDuration`), which robfig/cron's `@every` takes: a sequence
//! of decimal numbers, each with an optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`,
//! `m`, `h`), such as `1h30m`, `1.5s` or `300ms`, optionally signed; `0` needs no unit.

/// Nanoseconds per unit, longest spelling first where one is a prefix of another.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// The duration in nanoseconds, negative when written with `-`. Like Go, at most `i64::MAX`
/// nanoseconds (about 292 years).
pub(super) fn parse_go_duration(text: &str) -> Result<i128, String> {
    let invalid =
        |why: &str| format!("{text:?} is not a duration ({why}); write one such as 1h30m, 90s or 1.5h");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (whole, after_whole) = rest.split_at(digits_end);
        let (fraction, after_number) = match after_whole.strip_prefix('.') {
            Some(after_dot) => {
                let end = after_dot.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_dot.len());
                after_dot.split_at(end)
            }
            None => ("", after_whole),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid("expected a number"));
        }
        let unit_end =
            after_number.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_end);
        if unit.is_empty() {
            return Err(invalid("a number has no unit"));
        }
        let Some(&(_, unit_nanos)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(invalid(&format!("unknown unit {unit:?}; units are ns, us, ms, s, m and h")));
        };
        let too_long = || invalid("too long");
        // 40 digits would overflow a u128 before the limit check; anything that long is too long.
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_long())? };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_long)?;
        if !fraction.is_empty() {
            // Digits past the 20th cannot change a result limited to i64 nanoseconds.
            let kept = &fraction[..fraction.len().min(20)];
            let numerator: u128 = kept.parse().map_err(|_| too_long())?;
            nanos += numerator * unit_nanos / 10u128.pow(kept.len() as u32);
        }
        total = total.checked_add(nanos).filter(|&t| t <= i64::MAX as u128).ok_or_else(too_long)?;
        rest = after_unit;
    }
    let total = total as i128;
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;

    #[test]
    fn go_durations() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("-0", 0),
            ("10s", 10 * S),
            ("1m30s", 90 * S),
            ("1h", 3600 * S),
            ("1h30m", 5400 * S),
            ("1.5h", 5400 * S),
            (".5s", S / 2),
            ("1.s", S),
            ("300ms", 3 * S / 10),
            ("2us", 2_000),
            ("2µs", 2_000),
            ("2μs", 2_000),
            ("7ns", 7),
            ("+5s", 5 * S),
            ("-1m", -60 * S),
            ("1h1h", 7200 * S),
            ("0.000000001s", 1),
            ("0.1234567891234567891234s", 123_456_789),
            ("2562047h47m16.854775807s", i64::MAX as i128),
        ];
        for &(text, nanos) in cases {
            assert_eq!(parse_go_duration(text), Ok(nanos), "{text}");
        }
    }

    #[test]
    fn bad_durations() {
        let cases = [
            ("", "it is empty"),
            ("-", "it is empty"),
            ("s", "expected a number"),
            (".s", "expected a number"),
            ("10", "a number has no unit"),
            ("1h30", "a number has no unit"),
            ("10x", r#"unknown unit "x""#),
            ("10 s", r#"unknown unit " s""#),
            ("1d", r#"unknown unit "d""#),
            ("2562047h47m16.854775808s", "too long"),
            ("99999999999999999999999999999999999999999h", "too long"),
        ];
        for (text, expected) in cases {
            let err = parse_go_duration(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.starts_with(&format!("{text:?} is not a duration")), "{err}");
        }
    }
}
