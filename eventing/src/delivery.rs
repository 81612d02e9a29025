//! Knative's delivery policy: how often and how patiently an event is retried, which outcomes are
//! worth retrying, and what a dead-lettered event carries.
//!
//! The rules follow Knative Eventing's own:
//!
//! * `spec.delivery` is validated as the webhook does (`DeliverySpec.Validate` in
//!   `pkg/apis/duck/v1/delivery_types.go`): `retry >= 0`, `backoffPolicy` is `linear` or
//!   `exponential`, `backoffDelay`, `timeout` and `retryAfterMax` are ISO 8601 durations and a
//!   `timeout` is not zero. Errors carry field paths (`spec.delivery.backoffDelay`).
//! * Backoff is `backoffDelay * attempt` (linear) or `backoffDelay * 2^attempt` (exponential), as
//!   `RetryConfigFromDeliverySpec` in `pkg/kncloudevents/retries.go` computes it.
//! * Retryable outcomes are those of `SelectiveRetry`: no response, 404, 408, 409, 429 and 5xx.
//! * `Retry-After` (seconds or an HTTP-date) counts on 429 and 503 only, capped by
//!   `retryAfterMax`, and the longer of it and the backoff wins (`generateBackoffFn`).
//! * Dead-lettered events carry `knativeerrordest`, `knativeerrorcode` and `knativeerrordata`
//!   (`pkg/kncloudevents/event_dispatcher.go`).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::json::kind;

/// The extension naming the destination that failed.
pub const ERROR_DEST_EXTENSION: &str = "knativeerrordest";
/// The extension carrying the failed attempt's status code.
pub const ERROR_CODE_EXTENSION: &str = "knativeerrorcode";
/// The extension carrying the failed attempt's response body, base64-encoded.
pub const ERROR_DATA_EXTENSION: &str = "knativeerrordata";
/// Knative's `KnativeErrorDataExtensionMaxLength`: `knativeerrordata` is cut to this many
/// characters (of base64, so the first 768 bytes of the body).
pub const ERROR_DATA_MAX_LENGTH: usize = 1024;
/// The status Knative reports for an attempt that got no response at all.
pub const NO_RESPONSE_CODE: StatusCode = StatusCode::INTERNAL_SERVER_ERROR;

/// Knative's cluster default for a Broker without `spec.delivery` (`config-br-defaults`).
pub const DEFAULT_RETRY: u32 = 10;
/// Knative's cluster default backoff delay (`config-br-defaults`: `PT0.2S`).
pub const DEFAULT_BACKOFF_DELAY: Duration = Duration::from_millis(200);

/// How the wait between retries grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackoffPolicy {
    /// `backoffDelay * attempt`.
    Linear,
    /// `backoffDelay * 2^attempt`.
    #[default]
    Exponential,
}

impl BackoffPolicy {
    /// The spelling in `spec.delivery.backoffPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackoffPolicy::Linear => "linear",
            BackoffPolicy::Exponential => "exponential",
        }
    }
}

/// How long one attempt may take when the delivery names no `timeout`: long enough for a
/// subscriber at zero to start behind the activator (which holds a request up to 60 s), and
/// never unbounded, so that a subscriber that never answers cannot hold a delivery slot.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// A Trigger's or Broker's delivery policy, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySpec {
    /// Retries after the first attempt before the event is dead-lettered (or dropped).
    pub retry: u32,
    pub backoff_policy: BackoffPolicy,
    pub backoff_delay: Duration,
    /// The timeout of each single attempt; `None` is [`DEFAULT_ATTEMPT_TIMEOUT`].
    pub timeout: Option<Duration>,
    /// The cap on a `Retry-After` header (429 and 503 only). `None` ignores the header, as Knative
    /// does while `delivery-retryafter` is not GA; `Some(ZERO)` ignores it too.
    pub retry_after_max: Option<Duration>,
    /// The dead letter sink's resolved URI. Never set by [`DeliverySpec::from_json`]: the platform
    /// resolves `spec.delivery.deadLetterSink` and fills it in.
    pub dead_letter_sink: Option<String>,
}

impl Default for DeliverySpec {
    /// Knative's cluster default delivery for a Broker (`config-br-defaults`): 10 retries,
    /// exponential backoff from 0.2s, the default attempt timeout, no dead letter sink.
    fn default() -> Self {
        Self {
            retry: DEFAULT_RETRY,
            backoff_policy: BackoffPolicy::Exponential,
            backoff_delay: DEFAULT_BACKOFF_DELAY,
            timeout: None,
            retry_after_max: None,
            dead_letter_sink: None,
        }
    }
}

impl DeliverySpec {
    /// Parse and validate a Trigger's or Broker's `spec.delivery`; `path` names it in errors
    /// (`"spec.delivery"`).
    ///
    /// No `spec.delivery` (absent or `null`) gets [`DeliverySpec::default`], Knative's cluster
    /// default. Within a given `spec.delivery`, a missing field means what it means to Knative's
    /// dispatcher: no `retry` is no retries, no `backoffDelay` is no wait, no `timeout` is no
    /// timeout. A missing `backoffPolicy` is exponential (Knative's dispatcher would not wait at
    /// all when only the delay is set). Unknown fields are ignored, as the API server prunes them.
    ///
    /// Every problem is reported, each as `(field path, message)`.
    pub fn from_json(delivery: Option<&Value>, path: &str) -> Result<Self, Vec<(String, String)>> {
        let delivery = match delivery {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(delivery)) => delivery,
            Some(other) => {
                return Err(vec![(path.to_string(), format!("expected an object, got {}", kind(other)))]);
            }
        };
        let field = |name: &str| format!("{path}.{name}");
        let mut errors = Vec::new();
        let mut spec = Self {
            retry: 0,
            backoff_policy: BackoffPolicy::Exponential,
            backoff_delay: Duration::ZERO,
            timeout: None,
            retry_after_max: None,
            dead_letter_sink: None,
        };

        match delivery.get("retry") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => match n.as_i64() {
                Some(retry) if retry >= 0 && retry <= i64::from(i32::MAX) => spec.retry = retry as u32,
                _ => errors.push((field("retry"), format!("invalid value: {n}"))),
            },
            Some(other) => {
                errors.push((field("retry"), format!("invalid value: {other} (expected an integer)")))
            }
        }

        match delivery.get("backoffPolicy") {
            None | Some(Value::Null) => {}
            Some(Value::String(policy)) if policy == "linear" => spec.backoff_policy = BackoffPolicy::Linear,
            Some(Value::String(policy)) if policy == "exponential" => {
                spec.backoff_policy = BackoffPolicy::Exponential
            }
            Some(other) => errors.push((
                field("backoffPolicy"),
                format!("invalid value: {} (expected linear or exponential)", display(other)),
            )),
        }

        let duration = |name: &str, allow_zero: bool, errors: &mut Vec<(String, String)>| {
            let value = match delivery.get(name) {
                None | Some(Value::Null) => return None,
                Some(Value::String(value)) => value,
                Some(other) => {
                    errors.push((
                        field(name),
                        format!("invalid value: {other} (expected an ISO 8601 duration)"),
                    ));
                    return None;
                }
            };
            match parse_iso8601_duration(value) {
                Ok(d) if d.is_zero() && !allow_zero => {
                    errors.push((field(name), format!("invalid value: {value} (must be greater than 0)")));
                    None
                }
                Ok(d) => Some(d),
                Err(why) => {
                    errors.push((field(name), format!("invalid value: {value} ({why})")));
                    None
                }
            }
        };
        if let Some(delay) = duration("backoffDelay", true, &mut errors) {
            spec.backoff_delay = delay;
        }
        spec.timeout = duration("timeout", false, &mut errors);
        spec.retry_after_max = duration("retryAfterMax", true, &mut errors);

        match delivery.get("format") {
            None | Some(Value::Null) => {}
            Some(Value::String(format)) if format == "json" || format == "binary" => {}
            Some(other) => errors.push((
                field("format"),
                format!("invalid value: {} (expected json or binary)", display(other)),
            )),
        }

        if let Some(sink) = delivery.get("deadLetterSink") {
            validate_destination(sink, &field("deadLetterSink"), &mut errors);
        }

        if errors.is_empty() { Ok(spec) } else { Err(errors) }
    }

    /// The wait before retry number `attempt` (1-based: 1 is the first retry, after the first
    /// attempt failed): `backoff_delay * attempt` (linear) or `backoff_delay * 2^attempt`
    /// (exponential), the formulas of Knative's `RetryConfigFromDeliverySpec`, whose tables they
    /// reproduce (`PT0.5S` exponential: 1s, 2s, 4s, ...). Saturates instead of overflowing.
    ///
    /// (Knative's HTTP dispatcher hands go-retryablehttp's 0-based loop index to that function, so
    /// there the first retry waits `delay * 2^0`, or nothing when linear. The 1-based reading is
    /// the documented one: "backoffDelay*2^<numberOfRetries>".)
    pub fn backoff(&self, attempt: u32) -> Duration {
        match self.backoff_policy {
            BackoffPolicy::Linear => self.backoff_delay.saturating_mul(attempt),
            BackoffPolicy::Exponential => match 2u32.checked_pow(attempt) {
                Some(factor) => self.backoff_delay.saturating_mul(factor),
                None if self.backoff_delay.is_zero() => Duration::ZERO,
                None => Duration::MAX,
            },
        }
    }

    /// The wait before retry `attempt` after a failed attempt that got `response` (its status and
    /// headers) or none: the backoff, or a longer `Retry-After` on a 429 or 503 when
    /// `retry_after_max` is set (capped by it), as Knative's `generateBackoffFn` decides.
    pub fn wait_before_retry(
        &self,
        attempt: u32,
        response: Option<(StatusCode, &HeaderMap)>,
        now: SystemTime,
    ) -> Duration {
        let backoff = self.backoff(attempt);
        let retry_after = match (self.retry_after_max, response) {
            (Some(max), Some((status, headers)))
                if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE =>
            {
                retry_after(headers, now, max).unwrap_or(Duration::ZERO)
            }
            _ => Duration::ZERO,
        };
        backoff.max(retry_after)
    }
}

/// Check a Knative `Destination` (`ref` and/or `uri`) at `path`, adding each problem to `errors`.
pub fn validate_destination(sink: &Value, path: &str, errors: &mut Vec<(String, String)>) {
    let Value::Object(sink) = sink else {
        errors.push((path.to_string(), format!("expected an object, got {}", kind(sink))));
        return;
    };
    let reference = sink.get("ref").filter(|r| !r.is_null());
    let uri = sink.get("uri").filter(|u| !u.is_null());
    match (reference, uri) {
        (None, None) => {
            errors.push((path.to_string(), "expected at least one, got none: ref, uri".to_string()));
        }
        (Some(Value::Object(reference)), _) => {
            let missing: Vec<String> = ["kind", "name", "apiVersion"]
                .into_iter()
                .filter(|key| reference.get(*key).and_then(Value::as_str).is_none_or(str::is_empty))
                .map(|key| format!("{path}.ref.{key}"))
                .collect();
            if !missing.is_empty() {
                errors.push((missing.join(", "), "missing field(s)".to_string()));
            }
        }
        (Some(other), _) => {
            errors.push((format!("{path}.ref"), format!("expected an object, got {}", kind(other))));
        }
        (None, Some(Value::String(uri))) => {
            if !is_absolute_uri(uri) {
                errors.push((
                    format!("{path}.uri"),
                    format!("invalid value: {uri} (expected an absolute URI)"),
                ));
            }
        }
        (None, Some(other)) => {
            errors.push((format!("{path}.uri"), format!("invalid value: {other} (expected a string)")));
        }
    }
    if let (Some(_), Some(uri)) = (reference, uri)
        && !uri.is_string()
    {
        errors.push((format!("{path}.uri"), format!("invalid value: {uri} (expected a string)")));
    }
}

fn is_absolute_uri(uri: &str) -> bool {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.is_empty()
        }
        None => false,
    }
}

/// A JSON value as Knative prints it in "invalid value": strings without quotes.
fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parse an ISO 8601 duration: `P[nY][nM][nW][nD][T[nH][nM][nS]]`, e.g. `PT0.5S`, `PT1M`,
/// `P1DT2H`. The last component given may have a fraction (`.` or `,`). Years and months count at
/// their average lengths (365.2425 and 30.436875 days, as Knative's duration library converts
/// them), weeks as 7 days. Negative durations are refused.
pub fn parse_iso8601_duration(s: &str) -> Result<Duration, String> {
    // (designator, seconds per unit)
    const DATE_UNITS: [(char, u128); 4] =
        [('Y', 31_556_952), ('M', 2_629_746), ('W', 604_800), ('D', 86_400)];
    const TIME_UNITS: [(char, u128); 3] = [('H', 3_600), ('M', 60), ('S', 1)];
    const NANOS: u128 = 1_000_000_000;
    let invalid = |why: &str| Err(format!("not an ISO 8601 duration: {why}"));
    let too_large = || "duration too large".to_string();

    if s.starts_with('-') {
        return Err("negative durations are not allowed".to_string());
    }
    let Some(mut rest) = s.strip_prefix('P') else {
        return invalid("expected it to start with P");
    };
    let mut in_time = false;
    let mut next_unit = 0; // components come in order, each at most once
    let mut components = 0;
    let mut fraction_seen = false;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('T') {
            if in_time {
                return invalid("T given twice");
            }
            if after.is_empty() {
                return invalid("expected at least one component after T");
            }
            (in_time, next_unit, rest) = (true, 0, after);
            continue;
        }
        if fraction_seen {
            return invalid("only the last component may have a fraction");
        }
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(end);
        let Some(designator) = after.chars().next() else {
            return invalid("a number is missing its designator");
        };
        rest = &after[designator.len_utf8()..];
        let (whole, fraction) = match number.split_once(['.', ',']) {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (number, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return invalid("expected a number before each designator");
        }
        let units: &[(char, u128)] = if in_time { &TIME_UNITS } else { &DATE_UNITS };
        let Some(position) = units[next_unit..].iter().position(|(d, _)| *d == designator) else {
            return invalid(&format!("unexpected designator {designator:?}"));
        };
        let unit_nanos = units[next_unit + position].1 * NANOS;
        next_unit += position + 1;
        components += 1;

        let whole: u128 = whole.parse().map_err(|_| too_large())?;
        nanos = whole.checked_mul(unit_nanos).and_then(|n| nanos.checked_add(n)).ok_or_else(too_large)?;
        if let Some(fraction) = fraction {
            if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return invalid("malformed fraction");
            }
            fraction_seen = true;
            // 18 digits are finer than a nanosecond of a year; the rest cannot matter.
            let digits = &fraction[..fraction.len().min(18)];
            let numerator: u128 = digits.parse().map_err(|_| too_large())?;
            nanos += numerator * unit_nanos / 10u128.pow(digits.len() as u32);
        }
    }
    if components == 0 {
        return invalid("expected at least one component");
    }
    let secs = u64::try_from(nanos / NANOS).map_err(|_| too_large())?;
    Ok(Duration::new(secs, (nanos % NANOS) as u32))
}

/// Knative's retryable outcomes (`SelectiveRetry`): no response at all (a connection error or a
/// timeout), 404 (a pod becoming ready), 408, 409, 429 and every 5xx. Anything else is final.
pub fn is_retryable(status: Option<StatusCode>) -> bool {
    match status {
        None => true,
        Some(status) => {
            status.is_server_error()
                || matches!(
                    status,
                    StatusCode::NOT_FOUND
                        | StatusCode::REQUEST_TIMEOUT
                        | StatusCode::CONFLICT
                        | StatusCode::TOO_MANY_REQUESTS
                )
        }
    }
}

/// The wait a `Retry-After` header asks for, as delay-seconds (`120`) or an HTTP-date (IMF-fixdate,
/// RFC 850 or asctime, compared with `now`; one in the past asks for no wait), capped by `max`.
/// `None` without the header or when it cannot be parsed.
pub fn retry_after(headers: &HeaderMap, now: SystemTime, max: Duration) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still a (very long) wait.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        parse_http_date(value)?.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(max))
}

/// The extensions Knative adds to an event sent to the dead letter sink:
/// `knativeerrordest` (the destination that failed), `knativeerrorcode` (the last status; 500
/// when there was no response, as Knative reports it) and `knativeerrordata`: the response body
/// base64-encoded (always, as Knative does, so that binary and control characters survive a
/// header) and cut to 1024 characters. Without a body there is no `knativeerrordata`.
pub fn dead_letter_extensions(
    destination: &str,
    status: Option<StatusCode>,
    body: &[u8],
) -> Vec<(String, String)> {
    let code = status.unwrap_or(NO_RESPONSE_CODE);
    let mut extensions = vec![
        (ERROR_DEST_EXTENSION.to_string(), destination.to_string()),
        (ERROR_CODE_EXTENSION.to_string(), code.as_u16().to_string()),
    ];
    if !body.is_empty() {
        // 1024 base64 characters encode exactly 768 bytes: encoding just those is the same as
        // cutting the encoding of the whole body.
        let kept = &body[..body.len().min(ERROR_DATA_MAX_LENGTH / 4 * 3)];
        extensions
            .push((ERROR_DATA_EXTENSION.to_string(), base64::engine::general_purpose::STANDARD.encode(kept)));
    }
    extensions
}

/// An HTTP-date in any of the three forms RFC 9110 asks recipients to accept.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const LONG_WEEKDAYS: [&str; 7] =
        ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    let tokens: Vec<&str> = value.split_whitespace().collect();
    let (year, month, day, clock) = match tokens.as_slice() {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        [weekday, day, month, year, clock, "GMT"] => {
            let weekday = weekday.strip_suffix(',')?;
            if !WEEKDAYS.contains(&weekday) || day.len() != 2 || year.len() != 4 {
                return None;
            }
            (number(year)?, *month, number(day)?, *clock)
        }
        // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        [weekday, date, clock, "GMT"] => {
            let weekday = weekday.strip_suffix(',')?;
            if !LONG_WEEKDAYS.contains(&weekday) {
                return None;
            }
            let mut parts = date.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || day.len() != 2 || year.len() != 2 {
                return None;
            }
            // Two-digit years as Go's time package reads them (which Knative uses).
            let yy: i32 = number(year)?;
            let year = if yy >= 69 { 1900 + yy } else { 2000 + yy };
            (year, month, number(day)?, *clock)
        }
        // asctime: Sun Nov  6 08:49:37 1994
        [weekday, month, day, clock, year] => {
            if !WEEKDAYS.contains(weekday) || year.len() != 4 || day.is_empty() || day.len() > 2 {
                return None;
            }
            (number(year)?, *month, number(day)?, *clock)
        }
        _ => return None,
    };
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == month)? as u8 + 1;
    let mut hms = clock.split(':');
    let mut field = || -> Option<u8> {
        let part = hms.next()?;
        if part.len() != 2 {
            return None;
        }
        number(part)
    };
    let (hour, minute, second) = (field()?, field()?, field()?);
    if hms.next().is_some() {
        return None;
    }
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let clock = time::Time::from_hms(hour, minute, second).ok()?;
    let at = time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp();
    if at >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(at as u64))
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(at.unsigned_abs()))
    }
}

/// A number of plain ASCII digits (no sign, no spaces).
fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn iso8601_durations() {
        let cases: &[(&str, Duration)] = &[
            ("PT0.5S", ms(500)),
            ("PT0,5S", ms(500)),
            ("PT1S", ms(1000)),
            ("PT1M", Duration::from_secs(60)),
            ("PT1H30M", Duration::from_secs(5400)),
            ("P1DT2H", Duration::from_secs(26 * 3600)),
            ("P2W", Duration::from_secs(14 * 86_400)),
            ("P1D", Duration::from_secs(86_400)),
            ("PT0S", Duration::ZERO),
            ("P0D", Duration::ZERO),
            ("PT0.000000001S", Duration::from_nanos(1)),
            ("PT1.5M", Duration::from_secs(90)),
            ("P1Y", Duration::from_secs(31_556_952)),
            ("P1M", Duration::from_secs(2_629_746)),
            ("P1MT1M", Duration::from_secs(2_629_746 + 60)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_iso8601_duration(text), Ok(*want), "{text}");
        }
        for bad in
            ["", "P", "PT", "P1DT", "1S", "PT1", "PTS", "PT1.S", "PT.5S", "PT1S2M", "P1H", "PT1D", "pt1s"]
        {
            assert!(parse_iso8601_duration(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(parse_iso8601_duration("PT1.5M1S").unwrap_err().contains("last component"));
        assert!(parse_iso8601_duration("-PT1S").unwrap_err().contains("negative"));
        assert!(parse_iso8601_duration("PT99999999999999999999999S").is_err());
    }

    #[test]
    fn defaults_without_delivery_and_within_one() {
        assert_eq!(DeliverySpec::from_json(None, "spec.delivery"), Ok(DeliverySpec::default()));
        assert_eq!(DeliverySpec::from_json(Some(&Value::Null), "spec.delivery"), Ok(DeliverySpec::default()));
        let default = DeliverySpec::default();
        assert_eq!((default.retry, default.backoff_delay), (10, ms(200)));
        assert_eq!(default.backoff_policy, BackoffPolicy::Exponential);

        let spec = DeliverySpec::from_json(Some(&json!({})), "spec.delivery").unwrap();
        assert_eq!(spec.retry, 0);
        assert_eq!(spec.backoff_delay, Duration::ZERO);
        assert_eq!(spec.backoff_policy, BackoffPolicy::Exponential);
        assert_eq!(spec.timeout, None);
    }

    #[test]
    fn a_full_delivery_parses() {
        let spec = DeliverySpec::from_json(
            Some(&json!({
                "retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT0.5S", "timeout": "PT10S",
                "retryAfterMax": "PT2M", "format": "json",
                "deadLetterSink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "dls"}},
                "somethingNew": true
            })),
            "spec.delivery",
        )
        .unwrap();
        assert_eq!(
            spec,
            DeliverySpec {
                retry: 5,
                backoff_policy: BackoffPolicy::Linear,
                backoff_delay: ms(500),
                timeout: Some(Duration::from_secs(10)),
                retry_after_max: Some(Duration::from_secs(120)),
                dead_letter_sink: None,
            }
        );
    }

    #[test]
    fn every_validation_error_is_reported_with_its_path() {
        let errors = DeliverySpec::from_json(
            Some(&json!({
                "retry": -1, "backoffPolicy": "fibonacci", "backoffDelay": "FOO", "timeout": "PT0S",
                "retryAfterMax": 5, "format": "xml", "deadLetterSink": {}
            })),
            "spec.delivery",
        )
        .unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.delivery.retry",
                "spec.delivery.backoffPolicy",
                "spec.delivery.backoffDelay",
                "spec.delivery.timeout",
                "spec.delivery.retryAfterMax",
                "spec.delivery.format",
                "spec.delivery.deadLetterSink",
            ]
        );
        assert_eq!(errors[0].1, "invalid value: -1");
        assert!(errors[1].1.starts_with("invalid value: fibonacci"));
        assert!(errors[2].1.starts_with("invalid value: FOO ("), "{}", errors[2].1);
        assert!(errors[3].1.contains("greater than 0"));
        assert_eq!(errors[6].1, "expected at least one, got none: ref, uri");
    }

    #[test]
    fn type_and_shape_errors() {
        let err = |value: Value| DeliverySpec::from_json(Some(&value), "spec.delivery").unwrap_err();
        assert_eq!(
            err(json!("PT1S")),
            [("spec.delivery".to_string(), "expected an object, got a string".to_string())]
        );
        assert_eq!(err(json!({"retry": "3"}))[0].0, "spec.delivery.retry");
        assert_eq!(err(json!({"retry": 1.5}))[0].0, "spec.delivery.retry");
        assert_eq!(err(json!({"retry": 3_000_000_000u64}))[0].0, "spec.delivery.retry");
        assert_eq!(err(json!({"backoffPolicy": "Linear"}))[0].0, "spec.delivery.backoffPolicy");
        assert_eq!(err(json!({"backoffDelay": "-PT1S"}))[0].0, "spec.delivery.backoffDelay");
        assert_eq!(
            err(json!({"deadLetterSink": {"ref": {"kind": "Service"}}}))[0],
            (
                "spec.delivery.deadLetterSink.ref.name, spec.delivery.deadLetterSink.ref.apiVersion"
                    .to_string(),
                "missing field(s)".to_string()
            )
        );
        assert_eq!(
            err(json!({"deadLetterSink": {"uri": "/relative"}}))[0].0,
            "spec.delivery.deadLetterSink.uri"
        );
        let ok =
            DeliverySpec::from_json(Some(&json!({"deadLetterSink": {"uri": "http://dls.example"}})), "d");
        assert!(ok.is_ok());
        // The path is the caller's.
        assert_eq!(err(json!({"retry": -2}))[0].0, "spec.delivery.retry");
        let broker =
            DeliverySpec::from_json(Some(&json!({"retry": -2})), "spec.config.delivery").unwrap_err();
        assert_eq!(broker[0].0, "spec.config.delivery.retry");
    }

    #[test]
    fn backoff_tables_match_knative() {
        let spec = |policy, delay| DeliverySpec {
            retry: 5,
            backoff_policy: policy,
            backoff_delay: delay,
            ..DeliverySpec::default()
        };
        // The tables of Knative's TestRetryConfigFromDeliverySpec.
        let linear = spec(BackoffPolicy::Linear, ms(2500));
        let got: Vec<Duration> = (1..=5).map(|a| linear.backoff(a)).collect();
        assert_eq!(got, [ms(2500), ms(5000), ms(7500), ms(10_000), ms(12_500)]);
        let exponential = spec(BackoffPolicy::Exponential, ms(1500));
        let got: Vec<Duration> = (1..=5).map(|a| exponential.backoff(a)).collect();
        assert_eq!(got, [ms(3000), ms(6000), ms(12_000), ms(24_000), ms(48_000)]);
        let exponential = spec(BackoffPolicy::Exponential, ms(500));
        let got: Vec<Duration> = (1..=5).map(|a| exponential.backoff(a)).collect();
        assert_eq!(got, [ms(1000), ms(2000), ms(4000), ms(8000), ms(16_000)]);
        // The cluster default: 0.2s exponential.
        let got: Vec<Duration> = (1..=3).map(|a| DeliverySpec::default().backoff(a)).collect();
        assert_eq!(got, [ms(400), ms(800), ms(1600)]);
        // Huge attempts saturate; no delay stays no delay.
        assert_eq!(exponential.backoff(64), Duration::MAX);
        assert_eq!(spec(BackoffPolicy::Exponential, Duration::ZERO).backoff(64), Duration::ZERO);
        assert_eq!(spec(BackoffPolicy::Linear, Duration::MAX).backoff(2), Duration::MAX);
    }

    #[test]
    fn retryable_matrix() {
        assert!(is_retryable(None));
        let retryable = [404, 408, 409, 429, 500, 501, 502, 503, 504, 599];
        let final_ =
            [100, 200, 201, 202, 204, 300, 301, 302, 304, 400, 401, 403, 405, 406, 410, 413, 415, 422, 451];
        for code in retryable {
            assert!(is_retryable(Some(StatusCode::from_u16(code).unwrap())), "{code}");
        }
        for code in final_ {
            assert!(!is_retryable(Some(StatusCode::from_u16(code).unwrap())), "{code}");
        }
    }

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, retry_after.parse().unwrap());
        headers
    }

    #[test]
    fn retry_after_forms() {
        // 1994-11-06T08:49:37Z
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let max = Duration::from_secs(3600);
        assert_eq!(retry_after(&HeaderMap::new(), now, max), None);
        assert_eq!(retry_after(&headers("120"), now, max), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&headers(" 7 "), now, max), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers("0"), now, max), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("86400"), now, max), Some(max));
        assert_eq!(retry_after(&headers("99999999999999999999999"), now, max), Some(max));
        assert_eq!(retry_after(&headers("-5"), now, max), None);
        assert_eq!(retry_after(&headers("soon"), now, max), None);
        assert_eq!(retry_after(&headers("1.5"), now, max), None);
        // The three HTTP-date forms, 90 seconds after `now`.
        for date in
            ["Sun, 06 Nov 1994 08:51:07 GMT", "Sunday, 06-Nov-94 08:51:07 GMT", "Sun Nov  6 08:51:07 1994"]
        {
            assert_eq!(retry_after(&headers(date), now, max), Some(Duration::from_secs(90)), "{date}");
        }
        // In the past: no wait. Capped by max. Malformed dates are ignored.
        assert_eq!(retry_after(&headers("Sun, 06 Nov 1994 08:00:00 GMT"), now, max), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("Mon, 07 Nov 1994 08:49:37 GMT"), now, max), Some(max));
        assert_eq!(retry_after(&headers("Sun, 06 Nov 1994 08:51:07 UTC"), now, max), None);
        assert_eq!(retry_after(&headers("Sun, 31 Feb 1994 08:51:07 GMT"), now, max), None);
        assert_eq!(retry_after(&headers("Sun, 06 Nov 1994 25:51:07 GMT"), now, max), None);
        assert_eq!(retry_after(&headers("120"), now, Duration::ZERO), Some(Duration::ZERO));
    }

    #[test]
    fn wait_before_retry_takes_the_longer_retry_after_on_429_and_503_only() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut spec = DeliverySpec { backoff_delay: ms(500), ..DeliverySpec::default() };
        let ra = headers("30");
        let too_many = Some((StatusCode::TOO_MANY_REQUESTS, &ra));
        // Without retryAfterMax the header is ignored (Knative's opt-in).
        assert_eq!(spec.wait_before_retry(1, too_many, now), ms(1000));
        spec.retry_after_max = Some(Duration::from_secs(10));
        assert_eq!(spec.wait_before_retry(1, too_many, now), Duration::from_secs(10));
        assert_eq!(spec.wait_before_retry(6, too_many, now), ms(32_000));
        assert_eq!(spec.wait_before_retry(1, Some((StatusCode::SERVICE_UNAVAILABLE, &ra)), now), ms(10_000));
        assert_eq!(spec.wait_before_retry(1, Some((StatusCode::BAD_GATEWAY, &ra)), now), ms(1000));
        assert_eq!(spec.wait_before_retry(1, None, now), ms(1000));
        spec.retry_after_max = Some(Duration::ZERO);
        assert_eq!(spec.wait_before_retry(1, too_many, now), ms(1000));
    }

    #[test]
    fn dead_letter_extensions_encode_the_body() {
        let decode = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        let ext =
            dead_letter_extensions("http://sub.default.svc/", Some(StatusCode::BAD_REQUEST), b"bad event");
        assert_eq!(
            ext,
            [
                ("knativeerrordest".to_string(), "http://sub.default.svc/".to_string()),
                ("knativeerrorcode".to_string(), "400".to_string()),
                ("knativeerrordata".to_string(), "YmFkIGV2ZW50".to_string()),
            ]
        );
        // Binary bodies survive.
        let binary = [0u8, 159, 146, 150, 255, b'\n', b'\r'];
        let ext = dead_letter_extensions("http://x/", Some(StatusCode::INTERNAL_SERVER_ERROR), &binary);
        assert_eq!(decode(&ext[2].1), binary);
        // No response: 500, as Knative reports it; no body, no data.
        let ext = dead_letter_extensions("http://x/", None, b"");
        assert_eq!(ext.len(), 2);
        assert_eq!(ext[1].1, "500");
        // Long bodies are cut to 1024 characters of base64: the first 768 bytes.
        let long: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let ext = dead_letter_extensions("http://x/", Some(StatusCode::BAD_GATEWAY), &long);
        assert_eq!(ext[2].1.len(), ERROR_DATA_MAX_LENGTH);
        assert_eq!(decode(&ext[2].1), &long[..768]);
        let full = base64::engine::general_purpose::STANDARD.encode(&long);
        assert_eq!(ext[2].1, full[..ERROR_DATA_MAX_LENGTH]);
        // Exactly at the limit and just below it.
        let ext = dead_letter_extensions("http://x/", Some(StatusCode::BAD_GATEWAY), &long[..767]);
        assert_eq!(decode(&ext[2].1), &long[..767]);
    }
}
