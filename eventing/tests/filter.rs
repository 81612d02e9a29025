//! Trigger filters, table-driven: which events each spec matches, and what the webhook says of
//! each invalid spec.

use serde_json::{Value, json};
use skiff_eventing::codec::{Event, SpecVersion};
use skiff_eventing::filter::{Filter, TriggerFilter};

/// A 1.0 event with every attribute, and a sparse 0.3 one.
fn events() -> [Event; 2] {
    let mut hello = Event::new("id-1", "https://example.com/sources/a", "dev.knative.samples.helloworld");
    hello.subject = Some("orders/123".into());
    hello.datacontenttype = Some("application/json; charset=utf-8".into());
    hello.dataschema = Some("https://example.com/schema".into());
    hello.time = Some("2024-01-02T03:04:05Z".into());
    for (name, value) in [("region", "eu-west-1"), ("priority", "high"), ("empty", "")] {
        hello.extensions.insert(name.into(), value.into());
    }
    let mut other = Event::new("id-2", "/other", "com.example.other");
    other.specversion = SpecVersion::V0_3;
    other.dataschema = Some("/schemas/o".into());
    other.extensions.insert("region".into(), "us-east-1".into());
    [hello, other]
}

#[test]
fn the_filter_matrix() {
    let cases: Vec<(&str, Value, [bool; 2])> = vec![
        ("no filter", json!({"broker": "default"}), [true, true]),
        ("null filter", json!({"filter": null, "filters": null}), [true, true]),
        ("empty attributes", json!({"filter": {"attributes": {}}}), [true, true]),
        // spec.filter.attributes
        (
            "attributes type",
            json!({"filter": {"attributes": {"type": "dev.knative.samples.helloworld"}}}),
            [true, false],
        ),
        (
            "attributes are ANDed",
            json!({"filter": {"attributes": {"type": "dev.knative.samples.helloworld", "source": "/other"}}}),
            [false, false],
        ),
        ("attributes extension", json!({"filter": {"attributes": {"region": "us-east-1"}}}), [false, true]),
        ("attributes specversion", json!({"filter": {"attributes": {"specversion": "0.3"}}}), [false, true]),
        ("attributes \"\": set", json!({"filter": {"attributes": {"subject": ""}}}), [true, false]),
        (
            "attributes \"\": set and not empty",
            json!({"filter": {"attributes": {"empty": ""}}}),
            [false, false],
        ),
        (
            "attributes \"\": unknown extension",
            json!({"filter": {"attributes": {"nothere": ""}}}),
            [false, false],
        ),
        ("attributes \"\": required attribute", json!({"filter": {"attributes": {"id": ""}}}), [true, true]),
        // spec.filters: exact, prefix, suffix
        ("exact type", json!({"filters": [{"exact": {"type": "com.example.other"}}]}), [false, true]),
        ("exact id", json!({"filters": [{"exact": {"id": "id-1"}}]}), [true, false]),
        (
            "exact time as given",
            json!({"filters": [{"exact": {"time": "2024-01-02T03:04:05Z"}}]}),
            [true, false],
        ),
        ("exact subject", json!({"filters": [{"exact": {"subject": "orders/123"}}]}), [true, false]),
        (
            "exact datacontenttype",
            json!({"filters": [{"exact": {"datacontenttype": "application/json; charset=utf-8"}}]}),
            [true, false],
        ),
        (
            "exact datamediatype",
            json!({"filters": [{"exact": {"datamediatype": "application/json"}}]}),
            [true, false],
        ),
        (
            "exact dataschema of both versions",
            json!({"filters": [{"exact": {"dataschema": "/schemas/o"}}]}),
            [false, true],
        ),
        (
            "exact schemaurl of both versions",
            json!({"filters": [{"exact": {"schemaurl": "https://example.com/schema"}}]}),
            [true, false],
        ),
        ("exact empty extension value", json!({"filters": [{"exact": {"empty": ""}}]}), [true, false]),
        ("exact is case-sensitive", json!({"filters": [{"exact": {"priority": "HIGH"}}]}), [false, false]),
        ("exact unset attribute", json!({"filters": [{"exact": {"subject": ""}}]}), [false, false]),
        ("prefix type", json!({"filters": [{"prefix": {"type": "dev.knative."}}]}), [true, false]),
        (
            "prefix whole value",
            json!({"filters": [{"prefix": {"type": "com.example.other"}}]}),
            [false, true],
        ),
        ("prefix source", json!({"filters": [{"prefix": {"source": "https://"}}]}), [true, false]),
        ("prefix extension", json!({"filters": [{"prefix": {"region": "us-"}}]}), [false, true]),
        ("prefix unset", json!({"filters": [{"prefix": {"subject": "orders/"}}]}), [true, false]),
        ("suffix source", json!({"filters": [{"suffix": {"source": "/a"}}]}), [true, false]),
        ("suffix extension", json!({"filters": [{"suffix": {"region": "-1"}}]}), [true, true]),
        ("suffix missing extension", json!({"filters": [{"suffix": {"zone": "a"}}]}), [false, false]),
        // all, any, not
        (
            "top-level filters are ANDed",
            json!({"filters": [{"prefix": {"type": "dev."}}, {"exact": {"region": "us-east-1"}}]}),
            [false, false],
        ),
        (
            "all",
            json!({"filters": [{"all": [{"prefix": {"type": "dev."}}, {"exact": {"region": "eu-west-1"}}]}]}),
            [true, false],
        ),
        (
            "all, one fails",
            json!({"filters": [{"all": [{"prefix": {"type": "dev."}}, {"exact": {"priority": "low"}}]}]}),
            [false, false],
        ),
        (
            "any",
            json!({"filters": [{"any": [{"exact": {"type": "com.example.other"}}, {"exact": {"priority": "high"}}]}]}),
            [true, true],
        ),
        (
            "any, none",
            json!({"filters": [{"any": [{"exact": {"type": "x"}}, {"exact": {"type": "y"}}]}]}),
            [false, false],
        ),
        ("not", json!({"filters": [{"not": {"exact": {"type": "com.example.other"}}}]}), [true, false]),
        (
            "not of an unset attribute",
            json!({"filters": [{"not": {"exact": {"subject": "orders/123"}}}]}),
            [false, true],
        ),
        ("not not", json!({"filters": [{"not": {"not": {"suffix": {"source": "/other"}}}}]}), [false, true]),
        (
            "nested",
            json!({"filters": [{"any": [
                {"all": [{"prefix": {"type": "dev."}}, {"not": {"exact": {"priority": "low"}}}]},
                {"all": [{"exact": {"specversion": "0.3"}}, {"suffix": {"region": "east-1"}}]}
            ]}]}),
            [true, true],
        ),
        (
            "nested, narrower",
            json!({"filters": [{"all": [
                {"any": [{"exact": {"region": "eu-west-1"}}, {"exact": {"region": "us-east-1"}}]},
                {"not": {"any": [{"exact": {"specversion": "0.3"}}, {"exact": {"priority": "low"}}]}}
            ]}]}),
            [true, false],
        ),
        (
            "a null dialect is unset",
            json!({"filters": [{"exact": {"id": "id-2"}, "prefix": null}]}),
            [false, true],
        ),
        // Both given: filters wins; empty filters do not count.
        (
            "filters win over filter",
            json!({
                "filter": {"attributes": {"type": "dev.knative.samples.helloworld"}},
                "filters": [{"exact": {"type": "com.example.other"}}]
            }),
            [false, true],
        ),
        (
            "empty filters fall back to filter",
            json!({
                "filter": {"attributes": {"type": "dev.knative.samples.helloworld"}},
                "filters": []
            }),
            [true, false],
        ),
    ];
    let events = events();
    for (name, spec, expected) in cases {
        let filter = TriggerFilter::from_spec(&spec).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let got = [filter.matches(&events[0]), filter.matches(&events[1])];
        assert_eq!(got, expected, "{name}: {spec}");
    }
}

#[test]
fn parsed_filters() {
    let filter = TriggerFilter::from_spec(&json!({"filters": [{"prefix": {"type": "dev."}}]})).unwrap();
    assert_eq!(filter.filter(), &Filter::Prefix { attribute: "type".into(), prefix: "dev.".into() });
    let filter =
        TriggerFilter::from_spec(&json!({"filter": {"attributes": {"type": "t", "subject": ""}}})).unwrap();
    assert_eq!(
        filter.filter(),
        &Filter::All(vec![
            Filter::Exact { attribute: "type".into(), value: "t".into() },
            Filter::Present { attribute: "subject".into() },
        ])
    );
    assert_eq!(TriggerFilter::from_spec(&json!({})).unwrap(), TriggerFilter::default());
}

#[test]
fn webhook_validation() {
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (json!("spec"), vec![("spec", "must be an object")]),
        (json!({"filter": "x"}), vec![("spec.filter", "must be an object")]),
        (json!({"filter": {"attrs": {}}}), vec![("spec.filter.attrs", "unknown field")]),
        (json!({"filter": {"attributes": ["type"]}}), vec![("spec.filter.attributes", "must be a map")]),
        (
            json!({"filter": {"attributes": {"Type": "x"}}}),
            vec![(
                "spec.filter.attributes",
                "invalid attribute name \"Type\": it must start with a lowercase letter",
            )],
        ),
        (
            json!({"filter": {"attributes": {"1a": "x"}}}),
            vec![("spec.filter.attributes", "invalid attribute name \"1a\"")],
        ),
        (
            json!({"filter": {"attributes": {"type": 5}}}),
            vec![("spec.filter.attributes", "the value of \"type\" must be a string")],
        ),
        (json!({"filters": {}}), vec![("spec.filters", "must be a list of filters")]),
        (json!({"filters": ["exact"]}), vec![("spec.filters[0]", "must be an object")]),
        (
            json!({"filters": [{}]}),
            vec![("spec.filters[0]", "must have one of exact, prefix, suffix, all, any or not")],
        ),
        (json!({"filters": [{"exact": null}]}), vec![("spec.filters[0]", "must have one of")]),
        (
            json!({"filters": [{"exact": {"type": "a"}, "prefix": {"type": "b"}}]}),
            vec![("spec.filters[0]", "multiple dialects found (exact, prefix); a filter can have only one")],
        ),
        (
            json!({"filters": [{"exact": {"type": "a"}, "extra": 1}]}),
            vec![("spec.filters[0].extra", "unknown field")],
        ),
        (json!({"filters": [{"exact": {}}]}), vec![("spec.filters[0].exact", "must have one attribute")]),
        (
            json!({"filters": [{"exact": {"type": "a", "source": "b"}}]}),
            vec![("spec.filters[0].exact", "can have only one attribute (found 2)")],
        ),
        (
            json!({"filters": [{"exact": "type"}]}),
            vec![("spec.filters[0].exact", "must be a map of one attribute name")],
        ),
        (
            json!({"filters": [{"exact": {"Type": "a"}}]}),
            vec![("spec.filters[0].exact", "invalid attribute name \"Type\"")],
        ),
        (
            json!({"filters": [{"exact": {"my-ext": "a"}}]}),
            vec![("spec.filters[0].exact", "invalid attribute name \"my-ext\"")],
        ),
        (
            json!({"filters": [{"exact": {"type": 1}}]}),
            vec![("spec.filters[0].exact", "the value of \"type\" must be a string")],
        ),
        (
            json!({"filters": [{"exact": {"type": "a"}}, {"prefix": {"type": ""}}]}),
            vec![("spec.filters[1].prefix", "the prefix for \"type\" must not be empty")],
        ),
        (
            json!({"filters": [{"suffix": {"source": ""}}]}),
            vec![("spec.filters[0].suffix", "the suffix for \"source\" must not be empty")],
        ),
        (
            json!({"filters": [{"all": []}]}),
            vec![("spec.filters[0].all", "must contain at least one filter")],
        ),
        (
            json!({"filters": [{"any": []}]}),
            vec![("spec.filters[0].any", "must contain at least one filter")],
        ),
        (json!({"filters": [{"any": {}}]}), vec![("spec.filters[0].any", "must be a list of filters")]),
        (json!({"filters": [{"not": {}}]}), vec![("spec.filters[0].not", "must have one of")]),
        (json!({"filters": [{"not": []}]}), vec![("spec.filters[0].not", "must be an object")]),
        (
            json!({"filters": [{"not": {"exact": {"type": "a"}, "suffix": {"type": "b"}}}]}),
            vec![("spec.filters[0].not", "multiple dialects found (exact, suffix)")],
        ),
        (
            json!({"filters": [{"all": [{"exact": {"type": "a"}}, {"any": [{"not": {"prefix": {"Source": "x"}}}]}]}]}),
            vec![("spec.filters[0].all[1].any[0].not.prefix", "invalid attribute name \"Source\"")],
        ),
        (
            json!({"filters": [{"cesql": "type = 'x'"}]}),
            vec![(
                "spec.filters[0].cesql",
                "CESQL filters are not supported; use exact, prefix, suffix, all, any or not",
            )],
        ),
        // Every problem at once, the legacy filter's too although filters would win.
        (
            json!({
                "filter": {"attributes": {"A": "x"}},
                "filters": [{"prefix": {"type": ""}}, {"not": {}}, {"any": [{"exact": {"a": "1", "b": "2"}}, {"all": []}]}]
            }),
            vec![
                ("spec.filter.attributes", "invalid attribute name \"A\""),
                ("spec.filters[0].prefix", "must not be empty"),
                ("spec.filters[1].not", "must have one of"),
                ("spec.filters[2].any[0].exact", "can have only one attribute"),
                ("spec.filters[2].any[1].all", "must contain at least one filter"),
            ],
        ),
    ];
    for (spec, expected) in cases {
        let errors = TriggerFilter::from_spec(&spec).expect_err(&spec.to_string());
        assert_eq!(errors.len(), expected.len(), "{spec}: {errors:?}");
        for ((path, message), (want_path, want_message)) in errors.iter().zip(&expected) {
            assert_eq!(path, want_path, "{spec}: {errors:?}");
            assert!(message.contains(want_message), "{spec}: {message:?} lacks {want_message:?}");
        }
    }
}
