//! `skiff apply -f`: create what is missing, merge-patch what exists, like `kubectl apply`
//! without the three-way merge: the patch is exactly what the user wrote.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize as _;
use serde_json::Value;

use super::client::ApiClient;
use super::kinds::{self, Kind};
use super::object::str_at;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A YAML or JSON file (several documents allowed), a directory of them, or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

pub async fn run(client: &ApiClient, namespace: &str, args: &ApplyArgs) -> anyhow::Result<()> {
    // Read, parse and check everything first: a mistake anywhere sends nothing.
    let mut planned = Vec::new();
    for file in &args.files {
        for (source, text) in read_sources(file)? {
            for (index, document) in parse_documents(&text, &source)?.into_iter().enumerate() {
                let where_ = format!("document {} in {source}", index + 1);
                planned.push(plan(document, namespace).with_context(|| where_)?);
            }
        }
    }
    for object in &planned {
        let outcome = apply_one(client, object).await?;
        super::emit(&format!("{}/{} {outcome}\n", object.kind.qualified(), object.name))?;
    }
    Ok(())
}

/// The text of `file`: stdin for `-`, each `.yaml`/`.yml`/`.json` file of a directory.
fn read_sources(file: &str) -> anyhow::Result<Vec<(String, String)>> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read stdin")?;
        return Ok(vec![("stdin".to_string(), text)]);
    }
    let path = Path::new(file);
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read directory {file}"))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
            .collect();
        files.sort();
        return files
            .into_iter()
            .map(|p| {
                let text =
                    std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
                Ok((p.display().to_string(), text))
            })
            .collect();
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {file}"))?;
    Ok(vec![(file.to_string(), text)])
}

/// The objects in a YAML stream (`---` between documents) or a JSON text, empty documents left
/// out and `kind: List` opened up. Errors name `source` and the line.
pub fn parse_documents(text: &str, source: &str) -> anyhow::Result<Vec<Value>> {
    let mut documents = Vec::new();
    if text.trim_start().starts_with(['{', '[']) {
        for document in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            documents.push(document.map_err(|err| anyhow::anyhow!("invalid JSON in {source}: {err}"))?);
        }
    } else {
        for document in serde_yaml::Deserializer::from_str(text) {
            documents.push(Value::deserialize(document).map_err(|err| yaml_error(source, &err))?);
        }
    }
    let mut objects = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        match document {
            Value::Null => {}
            Value::Array(items) => objects.extend(items),
            Value::Object(_) if is_list(&document) => {
                if let Some(Value::Array(items)) = document.get("items") {
                    objects.extend(items.iter().cloned());
                }
            }
            Value::Object(_) => objects.push(document),
            _ => anyhow::bail!("document {} in {source} is not an object", index + 1),
        }
    }
    Ok(objects)
}

fn yaml_error(source: &str, err: &serde_yaml::Error) -> anyhow::Error {
    match err.location() {
        Some(at) => {
            let message =
                err.to_string().replacen(&format!(" at line {} column {}", at.line(), at.column()), "", 1);
            anyhow::anyhow!(
                "invalid YAML in {source} at line {}, column {}: {message}",
                at.line(),
                at.column()
            )
        }
        None => anyhow::anyhow!("invalid YAML in {source}: {err}"),
    }
}

fn is_list(document: &Value) -> bool {
    str_at(document, "/kind").ends_with("List") && document.get("items").is_some_and(Value::is_array)
}

/// One object to apply, checked and placed.
#[derive(Debug)]
pub struct Planned {
    pub kind: &'static Kind,
    pub namespace: String,
    pub name: String,
    /// What the user wrote (without `status`), with the namespace filled in.
    pub body: Value,
}

/// Finds the object's kind and place; fills in the namespace from `-n` when the document has none.
pub fn plan(mut body: Value, default_namespace: &str) -> anyhow::Result<Planned> {
    let api_version = str_at(&body, "/apiVersion");
    let kind_name = str_at(&body, "/kind");
    if api_version.is_empty() || kind_name.is_empty() {
        anyhow::bail!("the object has no apiVersion or kind");
    }
    let kind = kinds::for_object(api_version, kind_name)?;
    let name = str_at(&body, "/metadata/name").to_string();
    if name.is_empty() {
        anyhow::bail!("the {} has no metadata.name", kind.kind);
    }
    let namespace = if kind.namespaced {
        let namespace = match str_at(&body, "/metadata/namespace") {
            "" => default_namespace.to_string(),
            namespace => namespace.to_string(),
        };
        body["metadata"]["namespace"] = Value::String(namespace.clone());
        namespace
    } else {
        String::new()
    };
    if let Some(fields) = body.as_object_mut() {
        fields.shift_remove("status");
    }
    Ok(Planned { kind, namespace, name, body })
}

async fn apply_one(client: &ApiClient, object: &Planned) -> anyhow::Result<&'static str> {
    let Planned { kind, namespace, name, body } = object;
    let Some(current) = client.get_optional(kind, namespace, name).await? else {
        client.create(kind, namespace, body).await?;
        return Ok("created");
    };
    if !changes(&current, body) {
        return Ok("unchanged");
    }
    let after = client.merge_patch(kind, namespace, name, body).await?;
    let version = |o: &Value| str_at(o, "/metadata/resourceVersion").to_string();
    Ok(if version(&after) == version(&current) { "unchanged" } else { "configured" })
}

/// Whether merging `patch` into `current` changes anything.
pub fn changes(current: &Value, patch: &Value) -> bool {
    let mut merged = current.clone();
    json_patch::merge(&mut merged, patch);
    &merged != current
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_streams_split_into_objects_and_skip_empty_documents() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\n---\n\
                    apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: hello\n...\n";
        let objects = parse_documents(text, "app.yaml").unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["kind"], "Namespace");
        assert_eq!(objects[1]["metadata"]["name"], "hello");
        assert!(parse_documents("", "empty.yaml").unwrap().is_empty());
        assert!(parse_documents("# only a comment\n", "c.yaml").unwrap().is_empty());
    }

    #[test]
    fn malformed_yaml_names_the_file_and_line() {
        let text = "apiVersion: v1\nkind: Namespace\n---\nmetadata:\n  name: [a, b\nspec: {}\n";
        let err = parse_documents(text, "broken.yaml").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid YAML in broken.yaml at line 6, column 5: did not find expected ',' or ']', \
             while parsing a flow sequence at line 5 column 9"
        );
        let err = parse_documents("a: 1\nb: 2\n  c: 3\n", "indent.yaml").unwrap_err().to_string();
        assert!(err.contains("indent.yaml at line 3"), "{err}");
    }

    #[test]
    fn json_documents_and_lists_are_accepted() {
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [{"kind": "A"}, {"kind": "B"}]}
            {"kind": "C"}"#;
        let kinds: Vec<Value> =
            parse_documents(text, "x.json").unwrap().into_iter().map(|o| o["kind"].clone()).collect();
        assert_eq!(kinds, [json!("A"), json!("B"), json!("C")]);
        let err = parse_documents("{\"kind\": \n  oops}", "bad.json").unwrap_err().to_string();
        assert!(err.starts_with("invalid JSON in bad.json") && err.contains("line 2"), "{err}");
        let err = parse_documents("just a string\n", "s.yaml").unwrap_err().to_string();
        assert_eq!(err, "document 1 in s.yaml is not an object");
    }

    #[test]
    fn plans_fill_the_namespace_and_drop_status() {
        let service = json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "hello"}, "spec": {}, "status": {"url": "x"},
        });
        let planned = plan(service, "team-a").unwrap();
        assert_eq!(planned.kind.plural, "services");
        assert_eq!((planned.namespace.as_str(), planned.name.as_str()), ("team-a", "hello"));
        assert_eq!(planned.body["metadata"]["namespace"], "team-a");
        assert!(planned.body.get("status").is_none());

        let in_own_namespace = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Route", "metadata": {"name": "r", "namespace": "b"}});
        assert_eq!(plan(in_own_namespace, "default").unwrap().namespace, "b");
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}});
        assert!(plan(namespace, "default").unwrap().body["metadata"].get("namespace").is_none());
    }

    #[test]
    fn plans_reject_unknown_kinds_and_missing_names() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let err = plan(deployment, "default").unwrap_err().to_string();
        assert!(err.contains("\"Deployment\"") && err.contains("apps/v1"), "{err}");
        let nameless = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {}});
        assert_eq!(plan(nameless, "default").unwrap_err().to_string(), "the Service has no metadata.name");
        assert!(plan(json!({"metadata": {"name": "x"}}), "default").is_err());
    }

    #[test]
    fn a_patch_of_what_is_already_there_changes_nothing() {
        let current = json!({
            "metadata": {"name": "hello", "resourceVersion": "7", "generation": 2},
            "spec": {"template": {"spec": {"containers": [{"image": "a"}], "containerConcurrency": 0}}},
        });
        assert!(!changes(
            &current,
            &json!({"metadata": {"name": "hello"}, "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}})
        ));
        assert!(changes(
            &current,
            &json!({"spec": {"template": {"spec": {"containers": [{"image": "b"}]}}}})
        ));
    }
}
