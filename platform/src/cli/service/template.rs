//! Edits of a Service's revision template from `service create|update` flags, as pure functions
//! over the JSON object.

use serde_json::{Map, Value, json};

/// Flags that shape the revision template; any change to it makes a new revision.
#[derive(Debug, Default, clap::Args)]
pub struct TemplateArgs {
    /// The container image (or Wasm component in a registry) to run.
    #[arg(long)]
    pub image: Option<String>,
    /// A Wasm component file to upload to the node and run (sets runtimeClassName: wasm).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["image", "runtime_class"])]
    pub wasm: Option<std::path::PathBuf>,
    /// The runtime class of the revisions (spec.template.spec.runtimeClassName), e.g. wasm.
    #[arg(long, value_name = "NAME")]
    pub runtime_class: Option<String>,
    /// An environment variable NAME=VALUE; NAME- removes it. Repeatable.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// The port the container listens on: PORT or NAME:PORT (NAME is http1 or h2c).
    #[arg(short = 'p', long)]
    pub port: Option<String>,
    /// A revision template annotation KEY=VALUE; KEY- removes it. Repeatable.
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// The most requests one instance handles at once (containerConcurrency; 0 is unlimited).
    #[arg(long, value_name = "N")]
    pub concurrency_limit: Option<u32>,
    /// The fewest instances to keep (autoscaling.knative.dev/min-scale).
    #[arg(long, value_name = "N")]
    pub scale_min: Option<u32>,
    /// The most instances to run (autoscaling.knative.dev/max-scale).
    #[arg(long, value_name = "N")]
    pub scale_max: Option<u32>,
    /// The name of the new revision; prefixed with `SERVICE-` unless it starts with it.
    #[arg(long, value_name = "NAME")]
    pub revision_name: Option<String>,
}

pub const MIN_SCALE: &str = "autoscaling.knative.dev/min-scale";
pub const MAX_SCALE: &str = "autoscaling.knative.dev/max-scale";
/// The runtime class of Wasm revisions.
pub const WASM_RUNTIME_CLASS: &str = "wasm";

/// What the flags ask of the template, parsed and checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TemplateEdits {
    pub image: Option<String>,
    pub env: Vec<(String, Option<String>)>,
    pub port: Option<(Option<String>, u16)>,
    pub annotations: Vec<(String, Option<String>)>,
    pub concurrency: Option<u32>,
    pub revision_name: Option<String>,
    pub runtime_class: Option<String>,
}

impl TemplateEdits {
    pub fn parse(args: &TemplateArgs, service: &str) -> anyhow::Result<Self> {
        let mut edits = TemplateEdits {
            image: args.image.clone(),
            concurrency: args.concurrency_limit,
            ..Default::default()
        };
        for raw in &args.env {
            edits.env.push(parse_assignment("--env", raw)?);
        }
        for raw in &args.annotations {
            edits.annotations.push(parse_assignment("--annotation", raw)?);
        }
        if let (Some(min), Some(max)) = (args.scale_min, args.scale_max)
            && max != 0
            && min > max
        {
            anyhow::bail!("--scale-min {min} is more than --scale-max {max}");
        }
        if let Some(min) = args.scale_min {
            edits.annotations.push((MIN_SCALE.to_string(), Some(min.to_string())));
        }
        if let Some(max) = args.scale_max {
            edits.annotations.push((MAX_SCALE.to_string(), Some(max.to_string())));
        }
        edits.port = args.port.as_deref().map(parse_port).transpose()?;
        edits.runtime_class = args.runtime_class.as_deref().map(parse_runtime_class).transpose()?;
        edits.revision_name =
            args.revision_name.as_deref().map(|name| revision_name(service, name)).transpose()?;
        Ok(edits)
    }

    /// Runs the component at `image` (an uploaded `.wasm`) with the Wasm runtime.
    pub fn use_component(&mut self, image: &str) {
        self.image = Some(image.to_string());
        self.runtime_class = Some(WASM_RUNTIME_CLASS.to_string());
    }

    /// Makes the edits in `service.spec.template`. When they change the template and name no
    /// revision, a name left from an earlier `--revision-name` is dropped so the server names
    /// the new revision.
    pub fn apply(&self, service: &mut Value) {
        let before = service.pointer("/spec/template").cloned();
        if let Some(name) = &self.revision_name {
            object_at(service, &["spec", "template", "metadata"]).insert("name".into(), json!(name));
        }
        if !self.annotations.is_empty() {
            let annotations = object_at(service, &["spec", "template", "metadata", "annotations"]);
            for (key, value) in &self.annotations {
                match value {
                    Some(value) => annotations.insert(key.clone(), json!(value)),
                    None => annotations.shift_remove(key),
                };
            }
        }
        if let Some(concurrency) = self.concurrency {
            object_at(service, &["spec", "template", "spec"])
                .insert("containerConcurrency".into(), json!(concurrency));
        }
        if let Some(class) = &self.runtime_class {
            object_at(service, &["spec", "template", "spec"]).insert("runtimeClassName".into(), json!(class));
        }
        if self.image.is_some() || !self.env.is_empty() || self.port.is_some() {
            self.edit_container(first_container(service));
        }
        if self.revision_name.is_none() && service.pointer("/spec/template") != before.as_ref() {
            let metadata = service.pointer_mut("/spec/template/metadata").and_then(Value::as_object_mut);
            if let Some(metadata) = metadata {
                metadata.shift_remove("name");
            }
        }
    }

    fn edit_container(&self, container: &mut Map<String, Value>) {
        if let Some(image) = &self.image {
            container.insert("image".into(), json!(image));
        }
        if !self.env.is_empty() {
            edit_env(container, &self.env);
        }
        if let Some((name, port)) = &self.port {
            let mut entry = Map::new();
            if let Some(name) = name {
                entry.insert("name".into(), json!(name));
            }
            entry.insert("containerPort".into(), json!(port));
            container.insert("ports".into(), json!([entry]));
        }
    }
}

/// `NAME=VALUE` sets, `NAME-` removes.
fn parse_assignment(flag: &str, raw: &str) -> anyhow::Result<(String, Option<String>)> {
    let parsed = match raw.split_once('=') {
        Some((name, value)) => (name.trim().to_string(), Some(value.to_string())),
        None => match raw.strip_suffix('-') {
            Some(name) => (name.trim().to_string(), None),
            None => anyhow::bail!("{flag} {raw:?}: want NAME=VALUE, or NAME- to remove it"),
        },
    };
    if parsed.0.is_empty() {
        anyhow::bail!("{flag} {raw:?}: the name is empty");
    }
    Ok(parsed)
}

fn parse_port(raw: &str) -> anyhow::Result<(Option<String>, u16)> {
    let (name, number) = match raw.split_once(':') {
        Some((name, number)) => {
            if name != "http1" && name != "h2c" {
                anyhow::bail!("--port {raw:?}: the port name must be http1 or h2c");
            }
            (Some(name.to_string()), number)
        }
        None => (None, raw),
    };
    match number.parse::<u16>() {
        Ok(port) if port > 0 => Ok((name, port)),
        _ => anyhow::bail!("--port {raw:?}: want a port number from 1 to 65535"),
    }
}

/// A runtime class is a DNS-1123 subdomain (`wasm`, `runc`).
fn parse_runtime_class(raw: &str) -> anyhow::Result<String> {
    let valid = !raw.is_empty()
        && raw.len() <= 253
        && raw.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if !valid {
        anyhow::bail!("--runtime-class {raw:?}: want a lowercase name such as wasm");
    }
    Ok(raw.to_string())
}

/// kn's rule: a revision's name starts with its service's name and a dash.
pub fn revision_name(service: &str, name: &str) -> anyhow::Result<String> {
    if name.contains("{{") {
        anyhow::bail!("--revision-name {name:?}: templates are not supported, give a plain name");
    }
    if name.is_empty() {
        anyhow::bail!("--revision-name is empty");
    }
    let prefix = format!("{service}-");
    Ok(if name.starts_with(&prefix) { name.to_string() } else { format!("{prefix}{name}") })
}

fn edit_env(container: &mut Map<String, Value>, edits: &[(String, Option<String>)]) {
    let mut env: Vec<Value> = match container.remove("env") {
        Some(Value::Array(env)) => env,
        _ => Vec::new(),
    };
    for (name, value) in edits {
        let existing = env.iter().position(|e| e["name"] == name.as_str());
        match (value, existing) {
            (Some(value), Some(i)) => env[i] = json!({"name": name, "value": value}),
            (Some(value), None) => env.push(json!({"name": name, "value": value})),
            (None, Some(i)) => {
                env.remove(i);
            }
            (None, None) => {}
        }
    }
    if !env.is_empty() {
        container.insert("env".into(), Value::Array(env));
    }
}

/// The object at `path` under `value`, made (replacing anything that is not an object) if needed.
fn object_at<'a>(value: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    let map = value.as_object_mut().expect("made an object above");
    match path.split_first() {
        None => map,
        Some((key, rest)) => object_at(map.entry(*key).or_insert(Value::Null), rest),
    }
}

fn first_container(service: &mut Value) -> &mut Map<String, Value> {
    let spec = object_at(service, &["spec", "template", "spec"]);
    let containers = spec.entry("containers").or_insert_with(|| json!([]));
    if containers.as_array().is_none_or(Vec::is_empty) {
        *containers = json!([{}]);
    }
    object_at(&mut containers[0], &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_flags() -> TemplateArgs {
        TemplateArgs::default()
    }

    fn sample() -> Value {
        json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "hello", "resourceVersion": "4"},
            "spec": {
                "template": {
                    "metadata": {"name": "hello-first", "annotations": {"keep": "me", "drop": "me"}},
                    "spec": {"containers": [{"image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]},
                },
                "traffic": [{"latestRevision": true, "percent": 100}],
            },
        })
    }

    #[test]
    fn env_flags_set_replace_and_remove_in_order() {
        let args = TemplateArgs { env: vec!["B=two=2".into(), "C=3".into(), "A-".into()], ..no_flags() };
        let edits = TemplateEdits::parse(&args, "hello").unwrap();
        let mut service = sample();
        edits.apply(&mut service);
        assert_eq!(
            service["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "two=2"}, {"name": "C", "value": "3"}])
        );
    }

    #[test]
    fn malformed_assignments_are_refused() {
        for bad in ["NOVALUE", "=x", ""] {
            let args = TemplateArgs { env: vec![bad.into()], ..no_flags() };
            let err = TemplateEdits::parse(&args, "hello").unwrap_err().to_string();
            assert!(err.starts_with("--env"), "{bad}: {err}");
        }
    }

    #[test]
    fn annotations_scale_and_concurrency_land_in_the_template() {
        let args = TemplateArgs {
            annotations: vec!["drop-".into(), "team=web".into()],
            scale_min: Some(1),
            scale_max: Some(5),
            concurrency_limit: Some(10),
            ..no_flags()
        };
        let mut service = sample();
        TemplateEdits::parse(&args, "hello").unwrap().apply(&mut service);
        let template = &service["spec"]["template"];
        assert_eq!(
            template["metadata"]["annotations"],
            json!({"keep": "me", "team": "web", MIN_SCALE: "1", MAX_SCALE: "5"})
        );
        assert_eq!(template["spec"]["containerConcurrency"], 10);
        assert_eq!(service["spec"]["traffic"], json!([{"latestRevision": true, "percent": 100}]));
    }

    #[test]
    fn scale_bounds_must_be_in_order() {
        let args = TemplateArgs { scale_min: Some(3), scale_max: Some(2), ..no_flags() };
        assert!(TemplateEdits::parse(&args, "hello").is_err());
        let unbounded = TemplateArgs { scale_min: Some(3), scale_max: Some(0), ..no_flags() };
        assert!(TemplateEdits::parse(&unbounded, "hello").is_ok());
    }

    #[test]
    fn ports_take_a_number_or_a_protocol_and_number() {
        assert_eq!(parse_port("8080").unwrap(), (None, 8080));
        assert_eq!(parse_port("h2c:9000").unwrap(), (Some("h2c".into()), 9000));
        assert!(parse_port("0").is_err());
        assert!(parse_port("70000").is_err());
        assert!(parse_port("grpc:80").is_err());
        let mut empty = json!({});
        let edits = TemplateEdits { port: Some((None, 8080)), image: Some("x".into()), ..Default::default() };
        edits.apply(&mut empty);
        assert_eq!(
            empty,
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x", "ports": [{"containerPort": 8080}]}]}}}})
        );
    }

    #[test]
    fn a_runtime_class_lands_in_the_template_spec() {
        let args = TemplateArgs { runtime_class: Some("wasm".into()), ..no_flags() };
        let mut service = sample();
        TemplateEdits::parse(&args, "hello").unwrap().apply(&mut service);
        assert_eq!(service["spec"]["template"]["spec"]["runtimeClassName"], "wasm");
        // A new template: the old revision name goes.
        assert!(service["spec"]["template"]["metadata"].get("name").is_none());
        for bad in ["", "Wasm", "-x", "a..b", "w asm"] {
            let args = TemplateArgs { runtime_class: Some(bad.into()), ..no_flags() };
            assert!(TemplateEdits::parse(&args, "hello").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn revision_names_get_the_service_prefix_like_kn() {
        assert_eq!(revision_name("hello", "v2").unwrap(), "hello-v2");
        assert_eq!(revision_name("hello", "hello-v2").unwrap(), "hello-v2");
        assert_eq!(revision_name("hello", "helloworld").unwrap(), "hello-helloworld");
        assert!(revision_name("hello", "{{.Service}}-v2").is_err());
        let args = TemplateArgs { revision_name: Some("v2".into()), image: Some("a:2".into()), ..no_flags() };
        let mut service = sample();
        TemplateEdits::parse(&args, "hello").unwrap().apply(&mut service);
        assert_eq!(service["spec"]["template"]["metadata"]["name"], "hello-v2");
    }

    #[test]
    fn a_changed_template_without_a_revision_name_drops_the_old_name() {
        let mut service = sample();
        let edits = TemplateEdits { image: Some("a:2".into()), ..Default::default() };
        edits.apply(&mut service);
        assert!(service["spec"]["template"]["metadata"].get("name").is_none());
        assert_eq!(service["spec"]["template"]["spec"]["containers"][0]["image"], "a:2");

        let mut unchanged = sample();
        TemplateEdits { image: Some("a:1".into()), ..Default::default() }.apply(&mut unchanged);
        assert_eq!(unchanged, sample());
    }
}
