//! CloudEvents conformance-style tests of the codec: every attribute, extension and data byte
//! round-trips through binary and structured mode; the spec's own examples; batches; and every
//! validation error, naming its attribute.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use skiff_eventing::codec::{
    self, BATCH_CONTENT_TYPE, DecodeError, Event, STRUCTURED_CONTENT_TYPE, SpecVersion, decode, decode_reply,
    encode_binary, encode_structured, from_bytes, to_bytes,
};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
    }
    map
}

fn structured(json: &str) -> Result<Vec<Event>, DecodeError> {
    decode(&headers(&[("content-type", STRUCTURED_CONTENT_TYPE)]), json.as_bytes())
}

fn one_structured(json: &str) -> Event {
    let mut events = structured(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(events.len(), 1);
    events.remove(0)
}

/// An event with every attribute of its version set, extensions of every JSON kind's string form.
fn full_event(version: SpecVersion, datacontenttype: Option<&str>, data: Option<&[u8]>) -> Event {
    let mut event =
        Event::new("A234-1234-1234 ü", "https://example.com/source?x=1#frag", "com.example.someevent");
    event.specversion = version;
    event.datacontenttype = datacontenttype.map(str::to_owned);
    event.dataschema = Some("https://example.com/schema.json".to_owned());
    event.subject = Some("a \"quoted\" subject with spaces, 100% € 😀".to_owned());
    event.time = Some("2018-04-05T17:31:00.123456789+02:00".to_owned());
    for (name, value) in [
        ("comexampleextension1", "value"),
        ("comexampleothervalue", "5"),
        ("flag", "true"),
        ("empty", ""),
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("unicode", "日本語 %20 literal"),
        ("x1234567890123456789", "a name of twenty characters"),
    ] {
        event.extensions.insert(name.to_owned(), value.to_owned());
    }
    event.data = data.map(Bytes::copy_from_slice);
    event.validate().unwrap();
    event
}

fn data_cases() -> Vec<(Option<&'static str>, Option<Vec<u8>>)> {
    let every_byte: Vec<u8> = (0..=255u8).rev().collect();
    let cases: Vec<(Option<&'static str>, Option<&[u8]>)> = vec![
        // Binary, not UTF-8: every byte value.
        (Some("application/octet-stream"), Some(&every_byte)),
        (Some("application/vnd.apache.thrift.binary"), Some(b"\x00\x01\xff\xfe\x80")),
        // JSON data, compact and with whitespace inside and around (kept byte for byte).
        (Some("application/json"), Some(br#"{"appinfoA":"abc","appinfoB":123,"appinfoC":true}"#)),
        (Some("application/json; charset=utf-8"), Some(b"{\n  \"a\" : [1, 2.50, 1e3, \"\\u00e9\"]\n}\n")),
        (Some("application/ld+json"), Some(br#"{"@context":"https://schema.org"}"#)),
        (Some("text/json"), Some(b"null")),
        (Some("application/json"), Some(br#""I'm just a string""#)),
        // JSON data, but not JSON text: kept exactly all the same.
        (Some("application/json"), Some(b"not json")),
        // Text data.
        (Some("text/plain"), Some("héllo\twörld\n\"quoted\" \\ 😀".as_bytes())),
        (Some("application/xml"), Some(br#"<much wow="xml"/>"#)),
        (Some("text/plain"), Some(b"\xc3\x28 invalid UTF-8 text")),
        // No datacontenttype: JSON by default.
        (None, Some(br#"{"implied":"json"}"#)),
        (None, Some(b"opaque, not JSON")),
        // No data.
        (Some("application/json"), None),
        (None, None),
    ];
    cases.into_iter().map(|(content_type, data)| (content_type, data.map(<[u8]>::to_vec))).collect()
}

fn binary_round_trip(event: &Event) -> Event {
    let (headers, body) = encode_binary(event);
    let mut events = decode(&headers, &body).unwrap_or_else(|e| panic!("{e}: {event:?}"));
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn structured_round_trip(event: &Event) -> Event {
    let (headers, body) = encode_structured(event);
    assert_eq!(headers[CONTENT_TYPE], STRUCTURED_CONTENT_TYPE);
    let mut events =
        decode(&headers, &body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    assert_eq!(events.len(), 1);
    events.remove(0)
}

/// What binary mode gives back: an event with JSON data and no datacontenttype gains the implied
/// `application/json`, as the spec asks.
fn after_binary(event: &Event) -> Event {
    let mut expected = event.clone();
    if expected.datacontenttype.is_none()
        && expected.data.as_ref().is_some_and(|d| serde_json::from_slice::<serde_json::Value>(d).is_ok())
    {
        expected.datacontenttype = Some("application/json".to_owned());
    }
    expected
}

#[test]
fn every_attribute_extension_and_data_byte_round_trips() {
    for version in [SpecVersion::V1_0, SpecVersion::V0_3] {
        for (content_type, data) in data_cases() {
            let event = full_event(version, content_type, data.as_deref());
            let context =
                format!("{version} {content_type:?} {:?}", data.as_deref().map(String::from_utf8_lossy));

            assert_eq!(structured_round_trip(&event), event, "structured: {context}");
            assert_eq!(from_bytes(&to_bytes(&event)).unwrap(), event, "log: {context}");
            assert_eq!(binary_round_trip(&event), after_binary(&event), "binary: {context}");
            // Across modes, both ways.
            assert_eq!(binary_round_trip(&structured_round_trip(&event)), after_binary(&event), "{context}");
            assert_eq!(structured_round_trip(&binary_round_trip(&event)), after_binary(&event), "{context}");
            // And through serde (as the JSON event format).
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event, "serde: {context}");
        }
    }
}

#[test]
fn binary_mode_headers_are_as_the_spec_says() {
    let event = full_event(SpecVersion::V1_0, Some("application/json"), Some(b"{}"));
    let (headers, body) = encode_binary(&event);
    assert_eq!(headers["ce-specversion"], "1.0");
    assert_eq!(headers["ce-id"], "A234-1234-1234%20%C3%BC");
    assert_eq!(headers["ce-source"], "https://example.com/source?x=1#frag");
    assert_eq!(headers["ce-type"], "com.example.someevent");
    assert_eq!(headers["ce-dataschema"], "https://example.com/schema.json");
    assert_eq!(
        headers["ce-subject"],
        "a%20%22quoted%22%20subject%20with%20spaces,%20100%25%20%E2%82%AC%20%F0%9F%98%80"
    );
    assert_eq!(headers["ce-time"], "2018-04-05T17:31:00.123456789+02:00");
    assert_eq!(headers["ce-comexampleothervalue"], "5");
    assert_eq!(headers["ce-empty"], "");
    assert_eq!(headers["ce-unicode"], "%E6%97%A5%E6%9C%AC%E8%AA%9E%20%2520%20literal");
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    assert!(headers.get("ce-datacontenttype").is_none());
    assert_eq!(&body[..], b"{}");

    let mut v03 = event.clone();
    v03.specversion = SpecVersion::V0_3;
    let (headers, _) = encode_binary(&v03);
    assert_eq!(headers["ce-specversion"], "0.3");
    assert_eq!(headers["ce-schemaurl"], "https://example.com/schema.json");
    assert!(headers.get("ce-dataschema").is_none());

    // No data, no datacontenttype: no Content-Type, empty body.
    let (headers, body) = encode_binary(&Event::new("1", "/s", "t"));
    assert!(headers.get(CONTENT_TYPE).is_none());
    assert!(body.is_empty());
}

/// The one event binary mode cannot carry: data that is itself a structured CloudEvent, since the
/// binding reads that Content-Type as structured mode. Structured mode (and the log) carry it.
#[test]
fn a_cloudevent_as_data() {
    let inner = br#"{"specversion":"1.0","id":"inner","source":"/i","type":"t"}"#;
    let event = full_event(SpecVersion::V1_0, Some(STRUCTURED_CONTENT_TYPE), Some(inner));
    assert_eq!(structured_round_trip(&event), event);
    let (headers, body) = encode_binary(&event);
    assert_eq!(decode(&headers, &body).unwrap()[0].id, "inner");
}

#[test]
fn binary_mode_decoding() {
    // Header names are case-insensitive; values percent-decoded (lower-case hex too), quoted
    // strings of older senders unquoted, surrounding whitespace dropped.
    let events = decode(
        &headers(&[
            ("CE-SpecVersion", "1.0"),
            ("Ce-Id", "Euro%20%e2%82%ac%20%F0%9F%98%80"),
            ("ce-source", "/mycontext/subcontext"),
            ("ce-type", "\"com.example.someevent\""),
            ("ce-time", "2018-04-05T03:56:24Z"),
            ("CE-MyExtension", "%41%42C"),
            ("Content-Type", "application/json; charset=utf-8"),
            ("x-other", "ignored"),
        ]),
        b"{\"a\":1}",
    )
    .unwrap();
    let mut expected = Event::new("Euro € 😀", "/mycontext/subcontext", "com.example.someevent");
    expected.time = Some("2018-04-05T03:56:24Z".to_owned());
    expected.extensions.insert("myextension".to_owned(), "ABC".to_owned());
    expected.datacontenttype = Some("application/json; charset=utf-8".to_owned());
    expected.data = Some(Bytes::from_static(b"{\"a\":1}"));
    assert_eq!(events, vec![expected]);

    // An empty body is no data; 0.3's datacontentencoding does not apply to binary mode.
    let events = decode(
        &headers(&[
            ("ce-specversion", "0.3"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("ce-schemaurl", "schemas/t.json"),
            ("ce-datacontentencoding", "base64"),
        ]),
        b"",
    )
    .unwrap();
    let mut expected = Event::new("1", "/s", "t");
    expected.specversion = SpecVersion::V0_3;
    expected.dataschema = Some("schemas/t.json".to_owned());
    assert_eq!(events, vec![expected]);
}

#[test]
fn the_json_format_spec_examples() {
    // Binary-valued data.
    let event = one_structured(
        r#"{
            "specversion" : "1.0",
            "type" : "com.example.someevent",
            "source" : "/mycontext",
            "id" : "A234-1234-1234",
            "time" : "2018-04-05T17:31:00Z",
            "comexampleextension1" : "value",
            "comexampleothervalue" : 5,
            "datacontenttype" : "application/vnd.apache.thrift.binary",
            "data_base64" : "AAEC/w=="
        }"#,
    );
    assert_eq!(event.extensions["comexampleothervalue"], "5");
    assert_eq!(event.data.as_deref(), Some(&b"\x00\x01\x02\xff"[..]));
    let (headers, body) = encode_binary(&event);
    assert_eq!(headers[CONTENT_TYPE], "application/vnd.apache.thrift.binary");
    assert_eq!(headers["ce-comexampleothervalue"], "5");
    assert_eq!(&body[..], b"\x00\x01\x02\xff");

    // XML as a string, with an unset (null) extension.
    let event = one_structured(
        r#"{"specversion":"1.0","type":"com.example.someevent","source":"/mycontext","id":"B234-1234-1234",
            "time":"2018-04-05T17:31:00Z","unsetextension":null,"datacontenttype":"application/xml",
            "data":"<much wow=\"xml\"/>"}"#,
    );
    assert!(!event.extensions.contains_key("unsetextension"));
    assert_eq!(encode_binary(&event).1, Bytes::from_static(br#"<much wow="xml"/>"#));

    // JSON data, with a null subject: the data is the JSON text exactly.
    let json = r#"{"specversion":"1.0","type":"com.example.someevent","source":"/mycontext","subject":null,
        "id":"C234-1234-1234","datacontenttype":"application/json","data":{
        "appinfoA" : "abc",
        "appinfoB" : 123,
        "appinfoC" : true
    }}"#;
    let event = one_structured(json);
    assert_eq!(event.subject, None);
    let data = &json[json.find("{\n").unwrap()..json.len() - 1];
    assert_eq!(event.data.as_deref(), Some(data.as_bytes()));

    // A JSON string and no datacontenttype: binary mode sends the quoted string as
    // application/json, as the spec's example shows.
    let event = one_structured(
        r#"{"specversion":"1.0","type":"com.example.someevent","source":"/mycontext","id":"D234-1234-1234",
            "data":"I'm just a string"}"#,
    );
    let (headers, body) = encode_binary(&event);
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    assert_eq!(&body[..], br#""I'm just a string""#);

    // An explicit null payload is not the absence of data.
    let event = one_structured(r#"{"specversion":"1.0","type":"t","source":"/s","id":"1","data":null}"#);
    assert_eq!(event.data.as_deref(), Some(&b"null"[..]));
    let event =
        one_structured(r#"{"specversion":"1.0","type":"t","source":"/s","id":"1","data_base64":null}"#);
    assert_eq!(event.data, None);
}

#[test]
fn structured_extension_values_become_strings() {
    let event = one_structured(
        r#"{"specversion":"1.0","id":"1","source":"/s","type":"t",
            "str":"s","int":-42,"big":12345678901,"yes":true,"no":false,"nothing":null}"#,
    );
    let got: Vec<(&str, &str)> = event.extensions.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        got,
        vec![("big", "12345678901"), ("int", "-42"), ("no", "false"), ("str", "s"), ("yes", "true")]
    );
}

#[test]
fn cloudevents_0_3_structured() {
    let event = one_structured(
        r#"{"specversion":"0.3","id":"1","source":"/s","type":"t","schemaurl":"/schemas/t",
            "datacontenttype":"application/octet-stream","datacontentencoding":"Base64","data":"AAH/"}"#,
    );
    assert_eq!(event.specversion, SpecVersion::V0_3);
    assert_eq!(event.dataschema.as_deref(), Some("/schemas/t"));
    assert_eq!(event.data.as_deref(), Some(&b"\x00\x01\xff"[..]));
    let json: serde_json::Value = serde_json::from_slice(&to_bytes(&event)).unwrap();
    assert_eq!(json["datacontentencoding"], "base64");
    assert_eq!(json["data"], "AAH/");
    assert!(json.get("data_base64").is_none());

    // In 1.0 these names are just extensions.
    let event = one_structured(
        r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","schemaurl":"x","datacontentencoding":"y"}"#,
    );
    assert_eq!(event.extensions.len(), 2);
}

#[test]
fn batched_mode() {
    let body = r#"[
      {"specversion":"1.0","type":"com.example.someevent","source":"/mycontext/4","id":"B234-1234-1234",
       "datacontenttype":"application/vnd.apache.thrift.binary","data_base64":"AQID"},
      {"specversion":"1.0","type":"com.example.someotherevent","source":"/mycontext/9","id":"C234-1234-1234",
       "datacontenttype":"application/json","data":{"appinfoA":"abc"}}
    ]"#;
    let batch = headers(&[("content-type", "application/cloudevents-batch+json; charset=UTF-8")]);
    let events = decode(&batch, body.as_bytes()).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id, "B234-1234-1234");
    assert_eq!(events[0].data.as_deref(), Some(&[1u8, 2, 3][..]));
    assert_eq!(events[1].type_, "com.example.someotherevent");
    assert_eq!(events[1].data.as_deref(), Some(&br#"{"appinfoA":"abc"}"#[..]));

    assert_eq!(decode(&batch, b"[]").unwrap(), vec![]);
    assert_eq!(decode(&batch, b" [ ] ").unwrap(), vec![]);

    let cases = [
        (r#"{"specversion":"1.0"}"#, "array"),
        (
            r#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"}, 5]"#,
            "batch[1]: the event is not a JSON object",
        ),
        (
            r#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","id":"","source":"/s","type":"t"}]"#,
            "batch[1]: id:",
        ),
        (
            r#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"0.3","id":"2","source":"/s","type":"t"}]"#,
            "batch[1]: specversion: 0.3 differs",
        ),
        (r#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},]"#, "not valid JSON"),
    ];
    for (body, expected) in cases {
        let err = decode(&batch, body.as_bytes()).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains(expected), "{body}: {err}");
    }
}

#[test]
fn media_types_and_modes() {
    let json = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;
    // Structured mode wins over ce- headers.
    let both =
        headers(&[("content-type", STRUCTURED_CONTENT_TYPE), ("ce-specversion", "0.3"), ("ce-id", "other")]);
    assert_eq!(decode(&both, json.as_bytes()).unwrap(), vec![Event::new("1", "/s", "t")]);

    for content_type in
        ["application/cloudevents+xml", "application/cloudevents", "application/cloudevents-batch+avro"]
    {
        let err = decode(&headers(&[("content-type", content_type)]), json.as_bytes()).unwrap_err();
        assert!(matches!(err, DecodeError::UnsupportedMediaType(_)), "{content_type}");
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let err = decode(&HeaderMap::new(), json.as_bytes()).unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    let err = decode(&headers(&[("content-type", BATCH_CONTENT_TYPE)]), json.as_bytes()).unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn replies_binary_structured_or_none() {
    let event = full_event(SpecVersion::V1_0, Some("text/plain"), Some(b"reply"));
    let (headers, body) = encode_binary(&event);
    assert_eq!(decode_reply(&headers, &body).unwrap(), Some(event.clone()));
    let (headers, body) = encode_structured(&event);
    assert_eq!(decode_reply(&headers, &body).unwrap(), Some(event));
    assert_eq!(decode_reply(&HeaderMap::new(), b"").unwrap(), None);
    assert_eq!(decode_reply(&self::headers(&[("content-type", "application/json")]), b"{}").unwrap(), None);
    let err = decode_reply(&self::headers(&[("content-type", STRUCTURED_CONTENT_TYPE)]), b"{}").unwrap_err();
    assert!(err.to_string().contains("specversion"), "{err}");
}

/// Every validation error: the request is a 400 whose message names the attribute.
#[test]
fn structured_validation_errors() {
    let base = r#""id":"1","source":"/s","type":"t""#;
    let cases: Vec<(String, &str)> = vec![
        (format!("{{{base}}}"), "specversion: the required attribute is missing"),
        (format!(r#"{{"specversion":"2.0",{base}}}"#), r#"specversion: "2.0" is not supported"#),
        (format!(r#"{{"specversion":1.0,{base}}}"#), "specversion: must be a string"),
        (r#"{"specversion":"1.0","source":"/s","type":"t"}"#.into(), "id: the required attribute is missing"),
        (
            r#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#.into(),
            "id: must be a non-empty string",
        ),
        (
            r#"{"specversion":"1.0","id":7,"source":"/s","type":"t"}"#.into(),
            "id: must be a string, not a number",
        ),
        (
            r#"{"specversion":"1.0","id":null,"source":"/s","type":"t"}"#.into(),
            "id: the required attribute is missing",
        ),
        (r#"{"specversion":"1.0","id":"a\u0000b","source":"/s","type":"t"}"#.into(), "id: contains U+0000"),
        (r#"{"specversion":"1.0","id":"1","type":"t"}"#.into(), "source: the required attribute is missing"),
        (
            r#"{"specversion":"1.0","id":"1","source":"","type":"t"}"#.into(),
            "source: must be a non-empty string",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"not a uri","type":"t"}"#.into(),
            "source: \"not a uri\" is not a URI-reference",
        ),
        (r#"{"specversion":"1.0","id":"1","source":"/s"}"#.into(), "type: the required attribute is missing"),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":""}"#.into(),
            "type: must be a non-empty string",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":["t"]}"#.into(),
            "type: must be a string, not an array",
        ),
        (
            format!(r#"{{"specversion":"1.0",{base},"time":"2018-04-05 17:31:00"}}"#),
            "time: \"2018-04-05 17:31:00\" is not an RFC 3339 timestamp",
        ),
        (
            format!(r#"{{"specversion":"1.0",{base},"dataschema":"/relative"}}"#),
            "dataschema: \"/relative\" is not an absolute URI",
        ),
        (
            format!(r#"{{"specversion":"0.3",{base},"schemaurl":"not a uri"}}"#),
            "schemaurl: \"not a uri\" is not a URI-reference",
        ),
        (format!(r#"{{"specversion":"1.0",{base},"subject":""}}"#), "subject: must be a non-empty string"),
        (
            format!(r#"{{"specversion":"1.0",{base},"datacontenttype":"json"}}"#),
            "datacontenttype: \"json\" is not a media type",
        ),
        (
            format!(r#"{{"specversion":"1.0",{base},"myExt":"v"}}"#),
            "myExt: invalid attribute name (capitals are not allowed)",
        ),
        (format!(r#"{{"specversion":"1.0",{base},"my-ext":"v"}}"#), "my-ext: invalid attribute name"),
        (
            format!(r#"{{"specversion":"1.0",{base},"x123456789012345678901":"v"}}"#),
            "x123456789012345678901: invalid attribute name",
        ),
        (format!(r#"{{"specversion":"1.0",{base},"":"v"}}"#), "an extension attribute has an empty name"),
        (
            format!(r#"{{"specversion":"1.0",{base},"ext":{{"a":1}}}}"#),
            "ext: an extension attribute must be a string, an integer or a boolean, not an object",
        ),
        (
            format!(r#"{{"specversion":"1.0",{base},"ext":1.5}}"#),
            "ext: an extension attribute must be a string, an integer or a boolean, not a non-integer number",
        ),
        (format!(r#"{{"specversion":"1.0",{base},"ext":"a\nb"}}"#), "ext: contains U+000A"),
        (
            format!(r#"{{"specversion":"1.0",{base},"data":1,"data_base64":"AA=="}}"#),
            "data_base64: data and data_base64 are mutually exclusive",
        ),
        (
            format!(r#"{{"specversion":"1.0",{base},"data_base64":"not base64!"}}"#),
            "data_base64: not valid base64",
        ),
        (format!(r#"{{"specversion":"1.0",{base},"data_base64":5}}"#), "data_base64: must be a string"),
        (
            format!(r#"{{"specversion":"0.3",{base},"data_base64":"AA=="}}"#),
            "data_base64: invalid attribute name",
        ),
        (
            format!(r#"{{"specversion":"0.3",{base},"datacontentencoding":"7bit","data":"x"}}"#),
            "datacontentencoding: \"7bit\" is not supported",
        ),
        (
            format!(r#"{{"specversion":"0.3",{base},"datacontentencoding":"base64","data":{{}}}}"#),
            "data: must be a base64 string",
        ),
        (
            format!(r#"{{"specversion":"0.3",{base},"datacontentencoding":"base64","data":"@@@"}}"#),
            "data: not valid base64",
        ),
        (format!(r#"{{"specversion":"1.0",{base},"id":"2"}}"#), "id: the member appears more than once"),
        (format!(r#"{{"specversion":"1.0",{base}"#), "the body is not valid JSON"),
        (format!(r#"[{{"specversion":"1.0",{base}}}]"#), "the body is not a JSON object"),
        ("\"specversion\"".into(), "the body is not a JSON object"),
        ("".into(), "the body is not valid JSON"),
    ];
    for (json, expected) in cases {
        let err = structured(&json).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{json}");
        let message = err.to_string();
        assert!(message.starts_with("invalid CloudEvent: "), "{message}");
        assert!(message.contains(expected), "{json}\n  got: {message}\n want: {expected}");
    }
    let err = decode(&headers(&[("content-type", STRUCTURED_CONTENT_TYPE)]), b"\xff").unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}

#[test]
fn binary_validation_errors() {
    let required = [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t")];
    let with = |extra: &[(&'static str, &'static str)], without: &str| {
        let mut pairs: Vec<(&str, &str)> = required.iter().copied().filter(|(n, _)| *n != without).collect();
        pairs.extend_from_slice(extra);
        headers(&pairs)
    };
    let cases: Vec<(HeaderMap, &str)> = vec![
        (with(&[("ce-specversion", "0.2")], "ce-specversion"), "specversion: \"0.2\" is not supported"),
        (with(&[], "ce-id"), "id: the required ce-id header is missing"),
        (with(&[], "ce-source"), "source: the required ce-source header is missing"),
        (with(&[], "ce-type"), "type: the required ce-type header is missing"),
        (with(&[("ce-id", "")], "ce-id"), "id: must be a non-empty string"),
        (with(&[("ce-source", "a%20b")], "ce-source"), "source: \"a b\" is not a URI-reference"),
        (with(&[("ce-type", "")], "ce-type"), "type: must be a non-empty string"),
        (with(&[("ce-id", "2")], ""), "id: the ce-id header is given more than once"),
        (with(&[("ce-time", "yesterday")], ""), "time: \"yesterday\" is not an RFC 3339 timestamp"),
        (with(&[("ce-dataschema", "schema.json")], ""), "dataschema: \"schema.json\" is not an absolute URI"),
        (with(&[("ce-subject", "")], ""), "subject: must be a non-empty string"),
        (
            with(&[("ce-datacontenttype", "text/plain")], ""),
            "datacontenttype: binary mode carries it in the Content-Type header",
        ),
        (with(&[("content-type", "plain")], ""), "datacontenttype: \"plain\" is not a media type"),
        (with(&[("ce-my-ext", "v")], ""), "my-ext: invalid attribute name"),
        (with(&[("ce-", "v")], ""), "an extension attribute has an empty name"),
        (with(&[("ce-data", "v")], ""), "data: the name is reserved"),
        (with(&[("ce-x123456789012345678901", "v")], ""), "x123456789012345678901: invalid attribute name"),
        (
            with(&[("ce-ext", "50%")], ""),
            "ext: the value of the ce-ext header has a '%' that does not start a %XX escape",
        ),
        (
            with(&[("ce-ext", "%C0%A0")], ""),
            "ext: the value of the ce-ext header is not UTF-8 once percent-decoded",
        ),
        (
            with(&[("ce-ext", "\"open")], ""),
            "ext: the value of the ce-ext header has an unterminated quoted string",
        ),
        (with(&[("ce-ext", "a%0Ab")], ""), "ext: contains U+000A"),
    ];
    for (headers, expected) in cases {
        let err = decode(&headers, b"").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        let message = err.to_string();
        assert!(message.contains(expected), "{headers:?}\n  got: {message}\n want: {expected}");
    }
}

#[test]
fn knative_extensions() {
    let mut event = Event::new("1", "/s", "t");
    codec::set_arrival_time(&mut event, time::macros::datetime!(2024-01-02 03:04:05 UTC));
    assert_eq!(event.extensions[codec::ARRIVAL_TIME_EXTENSION], "2024-01-02T03:04:05Z");

    // Ingress: a new event gets the default; it is delivered without the extension, and a reply
    // comes back with one less, until the loop is cut.
    let mut ttl = codec::take_ttl(&mut event).unwrap();
    assert_eq!(ttl, codec::DEFAULT_TTL);
    let mut hops = 0;
    while let Some(next) = codec::reply_ttl(ttl) {
        let mut reply = Event::new(format!("r{hops}"), "/f", "reply");
        codec::set_ttl(&mut reply, next);
        let (headers, body) = encode_binary(&reply);
        assert_eq!(headers["ce-knativebrokerttl"], next.to_string().as_str());
        let mut decoded = decode(&headers, &body).unwrap().remove(0);
        ttl = codec::take_ttl(&mut decoded).unwrap();
        assert!(!decoded.extensions.contains_key(codec::TTL_EXTENSION));
        hops += 1;
    }
    assert_eq!(hops, codec::DEFAULT_TTL - 1);
}

/// The SDK's JSON (as other CloudEvents implementations write it) decodes, and ours reads back
/// in the SDK.
#[test]
fn interoperates_with_the_cloudevents_sdk() {
    use cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};

    let sdk_event = EventBuilderV10::new()
        .id("sdk-1")
        .source("https://example.com/sdk")
        .ty("com.example.sdk")
        .subject("subj")
        .time("2020-01-02T03:04:05Z")
        .extension("count", 7i64)
        .extension("flag", true)
        .extension("name", "v")
        .data("application/json", serde_json::json!({"hello": "world"}))
        .build()
        .unwrap();
    let event = one_structured(&serde_json::to_string(&sdk_event).unwrap());
    assert_eq!(event.id, "sdk-1");
    assert_eq!(event.type_, "com.example.sdk");
    assert_eq!(event.subject.as_deref(), Some("subj"));
    assert_eq!(event.extensions["count"], "7");
    assert_eq!(event.extensions["flag"], "true");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(event.data.as_ref().unwrap()).unwrap()["hello"],
        "world"
    );

    let mut ours = full_event(SpecVersion::V1_0, Some("application/octet-stream"), Some(b"\x00\xff"));
    ours.extensions.retain(|name, _| name != "empty");
    let back: cloudevents::Event = serde_json::from_slice(&to_bytes(&ours)).unwrap();
    assert_eq!(back.id(), ours.id);
    assert_eq!(back.ty(), ours.type_);
    assert_eq!(back.subject(), ours.subject.as_deref());
    assert_eq!(back.data(), Some(&cloudevents::Data::Binary(vec![0, 255])));
}
