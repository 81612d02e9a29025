use serde_json::json;

use super::*;
use crate::codec;

fn problems(spec: Value) -> Vec<(String, String)> {
    match PingSpec::from_json(&spec) {
        Ok(parsed) => panic!("{spec} is valid: {parsed:?}"),
        Err(problems) => problems,
    }
}

/// Asserts a problem at exactly `path` whose message contains `message`.
fn assert_problem(found: &[(String, String)], path: &str, message: &str) {
    assert!(
        found.iter().any(|(p, m)| p == path && m.contains(message)),
        "no {path:?} problem containing {message:?} in {found:?}"
    );
}

#[test]
fn a_full_spec() {
    let spec = PingSpec::from_json(&json!({
        "schedule": "*/2 * * * *",
        "timezone": "Europe/Madrid",
        "contentType": "application/json",
        "data": "{\"message\": \"Hello world!\"}",
        "ceOverrides": {"extensions": {"team": "blue", "tier2": "gold"}},
        "sink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "display"}},
        "somethingElse": 1,
    }))
    .unwrap();
    assert_eq!(spec.schedule, Schedule::parse("*/2 * * * *", Some("Europe/Madrid")).unwrap());
    assert_eq!(spec.content_type.as_deref(), Some("application/json"));
    assert_eq!(spec.data.as_deref(), Some(&b"{\"message\": \"Hello world!\"}"[..]));
    assert_eq!(
        spec.extensions,
        BTreeMap::from([("team".to_owned(), "blue".to_owned()), ("tier2".to_owned(), "gold".to_owned())])
    );
}

#[test]
fn minimal_specs_and_unset_fields() {
    for spec in [
        json!({"schedule": "* * * * *"}),
        json!({"schedule": "* * * * *", "data": "", "dataBase64": "", "contentType": "", "timezone": ""}),
        json!({"schedule": "* * * * *", "data": null, "ceOverrides": null}),
        json!({"schedule": "* * * * *", "ceOverrides": {}}),
    ] {
        let parsed = PingSpec::from_json(&spec).unwrap_or_else(|e| panic!("{spec}: {e:?}"));
        assert_eq!(parsed.data, None, "{spec}");
        assert_eq!(parsed.content_type, None, "{spec}");
        assert!(parsed.extensions.is_empty(), "{spec}");
        assert_eq!(parsed.schedule.time_zone(), chrono_tz::Tz::UTC);
    }
    // Data without a content type keeps none (Knative's default).
    let parsed = PingSpec::from_json(&json!({"schedule": "@hourly", "data": "hello"})).unwrap();
    assert_eq!((parsed.data.as_deref(), parsed.content_type), (Some(&b"hello"[..]), None));
}

#[test]
fn data_base64_is_decoded_as_go_does() {
    let decoded = |encoded: &str| {
        PingSpec::from_json(
            &json!({"schedule": "@daily", "dataBase64": encoded, "contentType": "application/octet-stream"}),
        )
        .map(|spec| spec.data.unwrap())
    };
    assert_eq!(decoded("AAEC/w==").unwrap(), Bytes::from_static(&[0, 1, 2, 255]));
    assert_eq!(decoded("eyJhIjox\nfQ==\r\n").unwrap(), Bytes::from_static(b"{\"a\":1}"));
    // Non-zero unused bits: Go's StdEncoding takes them.
    assert_eq!(decoded("AB==").unwrap(), Bytes::from_static(&[0]));
    for bad in ["not base64!", "AAE", "AAEC/w", "AAEC/w===", "YWJj ZA=="] {
        let found = decoded(bad).unwrap_err();
        assert_problem(&found, "spec.dataBase64", "not valid base64");
    }
}

#[test]
fn validation_problems_have_field_paths() {
    let cases: &[(Value, &str, &str)] = &[
        (json!({}), "spec.schedule", "required"),
        (json!({"schedule": ""}), "spec.schedule", "required"),
        (json!({"schedule": 5}), "spec.schedule", "expected a string, got a number"),
        (
            json!({"schedule": "61 * * * *"}),
            "spec.schedule",
            r#"minute field "61": value 61 out of range 0-59"#,
        ),
        (json!({"schedule": "@every"}), "spec.schedule", "@every needs a duration"),
        (
            json!({"schedule": "* * * * *", "timezone": "Mars/Olympus"}),
            "spec.timezone",
            r#"unknown time zone "Mars/Olympus""#,
        ),
        (json!({"schedule": "* * * * *", "timezone": 1}), "spec.timezone", "expected a string"),
        (
            json!({"schedule": "CRON_TZ=Asia/Tokyo * * * * *", "timezone": "Asia/Tokyo"}),
            "spec.schedule",
            "cannot be combined with a separate time zone",
        ),
        (
            json!({"schedule": "CRON_TZ=Asia/Tokyo * * * * *", "timezone": "Mars/Olympus"}),
            "spec.schedule",
            "cannot be combined",
        ),
        (
            json!({"schedule": "CRON_TZ=Mars/Olympus * * * * *"}),
            "spec.schedule",
            r#"unknown time zone "Mars/Olympus""#,
        ),
        (
            json!({"schedule": "* * * * *", "data": "a", "dataBase64": "YQ=="}),
            "spec.dataBase64",
            "spec.data and spec.dataBase64 are mutually exclusive",
        ),
        (json!({"schedule": "* * * * *", "dataBase64": "%%%"}), "spec.dataBase64", "not valid base64"),
        (json!({"schedule": "* * * * *", "data": {"a": 1}}), "spec.data", "expected a string, got an object"),
        (
            json!({"schedule": "* * * * *", "contentType": "application/json", "data": "hello"}),
            "spec.data",
            "contentType is application/json but the data is not JSON",
        ),
        (
            json!({"schedule": "* * * * *", "contentType": "application/json", "data": "[1, 2]"}),
            "spec.data",
            "the data is an array, not a JSON object",
        ),
        (
            json!({"schedule": "* * * * *", "contentType": "application/json", "dataBase64": "WzFd"}),
            "spec.dataBase64",
            "not a JSON object",
        ),
        (
            json!({"schedule": "* * * * *", "contentType": "json"}),
            "spec.contentType",
            r#""json" is not a media type"#,
        ),
        (
            json!({"schedule": "* * * * *", "contentType": "text/plain; charset=ü"}),
            "spec.contentType",
            "not a media type",
        ),
        (
            json!({"schedule": "* * * * *", "ceOverrides": []}),
            "spec.ceOverrides",
            "expected an object, got an array",
        ),
        (
            json!({"schedule": "* * * * *", "ceOverrides": {"extensions": "a=b"}}),
            "spec.ceOverrides.extensions",
            "expected an object, got a string",
        ),
        (
            json!({"schedule": "* * * * *", "ceOverrides": {"extensions": {"Team": "blue"}}}),
            "spec.ceOverrides.extensions.Team",
            r#"invalid extension name "Team": only lowercase letters a-z and digits 0-9"#,
        ),
        (
            json!({"schedule": "* * * * *", "ceOverrides": {"extensions": {"my-ext": "x"}}}),
            "spec.ceOverrides.extensions.my-ext",
            "only lowercase letters",
        ),
        (
            json!({"schedule": "* * * * *", "ceOverrides": {"extensions": {"abcdefghijklmnopqrstu": "x"}}}),
            "spec.ceOverrides.extensions.abcdefghijklmnopqrstu",
            "longer than 20 characters",
        ),
        (
            json!({"schedule": "* * * * *", "ceOverrides": {"extensions": {"": "x"}}}),
            "spec.ceOverrides.extensions.",
            "cannot be empty",
        ),
        (
            json!({"schedule": "* * * * *", "ceOverrides": {"extensions": {"type": "x"}}}),
            "spec.ceOverrides.extensions.type",
            "a CloudEvents attribute of its own",
        ),
        (
            json!({"schedule": "* * * * *", "ceOverrides": {"extensions": {"count": 3}}}),
            "spec.ceOverrides.extensions.count",
            "expected a string, got a number",
        ),
        (
            json!({"schedule": "* * * * *", "ceOverrides": {"extensions": {"bell": "\u{7}"}}}),
            "spec.ceOverrides.extensions.bell",
            "contains U+0007",
        ),
    ];
    for (spec, path, message) in cases {
        let found = problems(spec.clone());
        assert_problem(&found, path, message);
    }
    assert_eq!(
        problems(json!("* * * * *")),
        vec![("spec".to_owned(), "expected an object, got a string".to_owned())]
    );
}

#[test]
fn every_problem_is_reported() {
    let found = problems(json!({
        "schedule": "* * * *",
        "timezone": "Nowhere",
        "data": "a",
        "dataBase64": "YQ==",
        "ceOverrides": {"extensions": {"BAD": "x", "good": "y"}},
    }));
    let paths: Vec<&str> = found.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        ["spec.timezone", "spec.schedule", "spec.dataBase64", "spec.ceOverrides.extensions.BAD"],
        "{found:?}"
    );
}

#[test]
fn the_ping_event() {
    let spec = PingSpec::from_json(&json!({
        "schedule": "* * * * *",
        "contentType": "text/plain",
        "data": "ping!",
        "ceOverrides": {"extensions": {"team": "blue"}},
    }))
    .unwrap();
    let at = DateTime::parse_from_rfc3339("2024-05-06T07:08:00Z").unwrap().to_utc();
    let event = ping_event("default", "every-minute", &spec, at);
    event.validate().unwrap();
    assert_eq!(event.specversion, codec::SpecVersion::V1_0);
    assert_eq!(event.type_, "dev.knative.sources.ping");
    assert_eq!(event.source, "/apis/v1/namespaces/default/pingsources/every-minute");
    assert_eq!(event.time.as_deref(), Some("2024-05-06T07:08:00Z"));
    assert_eq!(event.datacontenttype.as_deref(), Some("text/plain"));
    assert_eq!(event.data, Some(Bytes::from_static(b"ping!")));
    assert_eq!(event.attribute("team"), Some("blue"));
    assert_eq!(event.subject, None);

    let (headers, body) = codec::encode_binary(&event);
    assert_eq!(headers["ce-type"], "dev.knative.sources.ping");
    assert_eq!(headers["ce-team"], "blue");
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(body, Bytes::from_static(b"ping!"));

    // Without data, content type or extensions.
    let bare = PingSpec::from_json(&json!({"schedule": "@hourly"})).unwrap();
    let at = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.123Z").unwrap().to_utc();
    let event = ping_event("ns", "p", &bare, at);
    event.validate().unwrap();
    assert_eq!(event.time.as_deref(), Some("2024-05-06T07:08:09.123Z"));
    assert_eq!((event.data, event.datacontenttype), (None, None));
    assert!(event.extensions.is_empty());
}

#[test]
fn event_ids_are_random_uuid_v4() {
    let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_event_id()).collect();
    assert_eq!(ids.len(), 1000);
    for id in ids.iter().take(50) {
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)), "{id}");
        assert!(groups[2].starts_with('4'), "version 4: {id}");
        assert!(groups[3].starts_with(['8', '9', 'a', 'b']), "variant 10: {id}");
    }
}
