//! Knative's delivery policy through the public API, as a delivery loop uses it.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode, header::RETRY_AFTER};
use serde_json::json;
use skiff_eventing::delivery::{
    BackoffPolicy, DeliverySpec, dead_letter_extensions, is_retryable, parse_iso8601_duration, retry_after,
};

/// What a delivery loop following `spec` does with a series of attempt outcomes: the waits
/// between attempts, and whether the event ends up delivered (`Ok`) or dead-lettered / dropped
/// (`Err` with the last outcome).
fn simulate(
    spec: &DeliverySpec,
    outcomes: &[Option<StatusCode>],
) -> (Vec<Duration>, Result<(), Option<StatusCode>>) {
    let mut waits = Vec::new();
    for (attempt, outcome) in outcomes.iter().enumerate() {
        if outcome.is_some_and(|s| s.is_success()) {
            return (waits, Ok(()));
        }
        let retries_done = attempt as u32;
        if !is_retryable(*outcome) || retries_done >= spec.retry {
            return (waits, Err(*outcome));
        }
        waits.push(spec.backoff(retries_done + 1));
    }
    panic!("ran out of outcomes")
}

fn status(code: u16) -> Option<StatusCode> {
    Some(StatusCode::from_u16(code).unwrap())
}

#[test]
fn a_knative_broker_delivery_spec_parses() {
    // As in Knative's documentation and `config-br-defaults`.
    let spec = DeliverySpec::from_json(
        Some(&json!({
            "deadLetterSink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "dls"}},
            "backoffDelay": "PT0.2S",
            "backoffPolicy": "exponential",
            "retry": 10
        })),
        "spec.delivery",
    )
    .unwrap();
    assert_eq!(spec.retry, 10);
    assert_eq!(spec.backoff_policy, BackoffPolicy::Exponential);
    assert_eq!(spec.backoff_delay, Duration::from_millis(200));
    // The platform resolves the sink.
    assert_eq!(spec.dead_letter_sink, None);
    assert_eq!(DeliverySpec { dead_letter_sink: None, ..spec }, DeliverySpec::default());
}

#[test]
fn webhook_style_errors_name_the_field() {
    let errors = DeliverySpec::from_json(
        Some(&json!({"retry": -3, "backoffDelay": "1 second", "backoffPolicy": "random", "timeout": "PT0S"})),
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
            "spec.delivery.timeout"
        ]
    );
    assert!(errors.iter().all(|(_, message)| message.starts_with("invalid value: ")), "{errors:?}");
    assert!(errors[2].1.contains("1 second"));
}

#[test]
fn iso8601_durations_from_the_field() {
    for (text, want) in [
        ("PT0.5S", Duration::from_millis(500)),
        ("PT1M", Duration::from_secs(60)),
        ("P1DT2H", Duration::from_secs(93_600)),
        ("PT2H30M15.25S", Duration::from_millis(9_015_250)),
        ("P1W", Duration::from_secs(604_800)),
    ] {
        assert_eq!(parse_iso8601_duration(text).unwrap(), want, "{text}");
    }
    for bad in ["PT", "P", "T1S", "PT1s", "1.5", "P1.5DT1H", "PT-1S", "-P1D"] {
        assert!(parse_iso8601_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn exponential_retries_until_success() {
    let spec = DeliverySpec::from_json(
        Some(&json!({"retry": 3, "backoffPolicy": "exponential", "backoffDelay": "PT0.5S"})),
        "spec.delivery",
    )
    .unwrap();
    let (waits, outcome) = simulate(&spec, &[status(503), None, status(429), status(202)]);
    let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
    assert_eq!(secs, [1.0, 2.0, 4.0]);
    assert_eq!(outcome, Ok(()));
}

#[test]
fn linear_retries_run_out_and_dead_letter() {
    let spec = DeliverySpec::from_json(
        Some(&json!({"retry": 4, "backoffPolicy": "linear", "backoffDelay": "PT2.5S"})),
        "spec.delivery",
    )
    .unwrap();
    let (waits, outcome) = simulate(&spec, &[status(500); 5]);
    let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
    assert_eq!(secs, [2.5, 5.0, 7.5, 10.0]);
    assert_eq!(outcome, Err(status(500)));
}

#[test]
fn final_outcomes_are_not_retried() {
    let spec = DeliverySpec::default();
    for code in [400, 401, 403, 405, 410, 413, 415, 422, 301, 302] {
        let (waits, outcome) = simulate(&spec, &[status(code)]);
        assert!(waits.is_empty(), "{code}");
        assert_eq!(outcome, Err(status(code)));
    }
    for code in [404, 408, 409, 429, 500, 502, 503, 504] {
        let (waits, _) = simulate(&spec, &[status(code), status(200)]);
        assert_eq!(waits.len(), 1, "{code}");
    }
    // No response at all (connection refused, timeout) is retried.
    assert_eq!(simulate(&spec, &[None, status(200)]).0.len(), 1);
    // No retries configured: one attempt only.
    let once = DeliverySpec::from_json(Some(&json!({})), "spec.delivery").unwrap();
    assert_eq!(simulate(&once, &[status(503)]), (vec![], Err(status(503))));
}

fn format_http_date(at: SystemTime) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let at = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.format(&format).unwrap()
}

#[test]
fn retry_after_in_seconds_or_as_a_date() {
    let now = SystemTime::now();
    let max = Duration::from_secs(600);
    let mut headers = HeaderMap::new();
    assert_eq!(retry_after(&headers, now, max), None);

    headers.insert(RETRY_AFTER, HeaderValue::from_static("42"));
    assert_eq!(retry_after(&headers, now, max), Some(Duration::from_secs(42)));

    let in_a_minute = format_http_date(now + Duration::from_secs(61));
    headers.insert(RETRY_AFTER, HeaderValue::from_str(&in_a_minute).unwrap());
    let wait = retry_after(&headers, now, max).unwrap();
    assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(61), "{wait:?} for {in_a_minute}");

    let tomorrow = format_http_date(now + Duration::from_secs(86_400));
    headers.insert(RETRY_AFTER, HeaderValue::from_str(&tomorrow).unwrap());
    assert_eq!(retry_after(&headers, now, max), Some(max));

    let yesterday = format_http_date(now - Duration::from_secs(86_400));
    headers.insert(RETRY_AFTER, HeaderValue::from_str(&yesterday).unwrap());
    assert_eq!(retry_after(&headers, now, max), Some(Duration::ZERO));

    headers.insert(RETRY_AFTER, HeaderValue::from_static("whenever"));
    assert_eq!(retry_after(&headers, now, max), None);
}

#[test]
fn retry_after_extends_the_backoff_when_opted_in() {
    let spec = DeliverySpec::from_json(
        Some(&json!({"retry": 3, "backoffDelay": "PT1S", "retryAfterMax": "PT30S"})),
        "spec.delivery",
    )
    .unwrap();
    let now = SystemTime::now();
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
    assert_eq!(
        spec.wait_before_retry(1, Some((StatusCode::TOO_MANY_REQUESTS, &headers)), now),
        Duration::from_secs(30)
    );
    headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    assert_eq!(
        spec.wait_before_retry(2, Some((StatusCode::SERVICE_UNAVAILABLE, &headers)), now),
        Duration::from_secs(4)
    );
}

#[test]
fn dead_lettered_events_say_where_and_why() {
    let body = "{\"error\":\"schema mismatch\"}";
    let extensions = dead_letter_extensions(
        "http://subscriber.default.svc.cluster.local/",
        Some(StatusCode::UNPROCESSABLE_ENTITY),
        body.as_bytes(),
    );
    let get = |name: &str| extensions.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(get("knativeerrordest"), Some("http://subscriber.default.svc.cluster.local/"));
    assert_eq!(get("knativeerrorcode"), Some("422"));
    let data = base64::engine::general_purpose::STANDARD.decode(get("knativeerrordata").unwrap()).unwrap();
    assert_eq!(data, body.as_bytes());
    // Extension names are valid CloudEvents attribute names: lower-case letters and digits.
    assert!(extensions.iter().all(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())));

    // A binary body is carried intact (base64), cut to 1024 characters.
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let extensions = dead_letter_extensions("http://s/", Some(StatusCode::BAD_GATEWAY), &binary);
    let data = &extensions[2].1;
    assert_eq!(data.len(), 1024);
    let decoded = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
    assert_eq!(decoded, binary[..768]);

    // No response: Knative reports 500.
    let extensions = dead_letter_extensions("http://s/", None, b"dispatch error: connection refused");
    assert_eq!(extensions[1], ("knativeerrorcode".to_string(), "500".to_string()));
}
