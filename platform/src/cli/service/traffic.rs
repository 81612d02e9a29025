//! `--traffic`, `--tag` and `--untag`: edits of a Service's `spec.traffic`, with kn's rules.
//!
//! Untags go first, then tags, then the split: `--traffic` is the whole desired split, so every
//! target it does not name drops to 0%, and a target left with neither traffic nor a tag is
//! removed.

use serde_json::{Map, Value, json};

/// `@latest` in a flag: the latest ready revision, whichever it is.
pub const LATEST: &str = "@latest";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrafficEdits {
    pub untag: Vec<String>,
    /// `(revision or @latest, tag)`
    pub tags: Vec<(String, String)>,
    /// `(revision, tag or @latest, percent)`, summing to 100.
    pub split: Option<Vec<(String, i64)>>,
}

impl TrafficEdits {
    /// From the flags' values; each may hold several comma-separated entries.
    pub fn parse(traffic: &[String], tags: &[String], untag: &[String]) -> anyhow::Result<Self> {
        let mut edits = TrafficEdits { untag: entries(untag), ..Default::default() };
        for entry in entries(tags) {
            let Some((revision, tag)) = entry.split_once('=').filter(|(r, t)| !r.is_empty() && !t.is_empty())
            else {
                anyhow::bail!("--tag {entry:?}: want REVISION=TAG (REVISION may be @latest)");
            };
            if edits.tags.iter().any(|(_, t)| t == tag) {
                anyhow::bail!("--tag names the tag {tag:?} twice");
            }
            edits.tags.push((revision.to_string(), tag.to_string()));
        }
        let split_entries = entries(traffic);
        if !split_entries.is_empty() {
            let mut split = Vec::new();
            for entry in split_entries {
                let Some((target, percent)) = entry.split_once('=').filter(|(t, _)| !t.is_empty()) else {
                    anyhow::bail!(
                        "--traffic {entry:?}: want REVISION=PERCENT (REVISION may be a tag or @latest)"
                    );
                };
                let percent = match percent.trim_end_matches('%').parse::<i64>() {
                    Ok(p) if (0..=100).contains(&p) => p,
                    _ => {
                        anyhow::bail!("--traffic {entry:?}: the percent must be a whole number from 0 to 100")
                    }
                };
                if split.iter().any(|(t, _)| t == target) {
                    anyhow::bail!("--traffic names {target:?} twice");
                }
                split.push((target.to_string(), percent));
            }
            let sum: i64 = split.iter().map(|(_, p)| p).sum();
            if sum != 100 {
                anyhow::bail!("--traffic percents add up to {sum}, they must add up to 100");
            }
            edits.split = Some(split);
        }
        Ok(edits)
    }

    pub fn is_empty(&self) -> bool {
        self.untag.is_empty() && self.tags.is_empty() && self.split.is_none()
    }

    /// The new `spec.traffic` from the current one (an empty one means all to the latest revision).
    pub fn apply(&self, current: &[Value]) -> anyhow::Result<Vec<Value>> {
        let mut targets: Vec<Map<String, Value>> =
            current.iter().filter_map(|t| t.as_object().cloned()).collect();
        if targets.is_empty() {
            targets.push(as_map(json!({"latestRevision": true, "percent": 100})));
        }
        for tag in &self.untag {
            let mut found = false;
            for target in targets.iter_mut().filter(|t| tag_of(t) == Some(tag)) {
                target.shift_remove("tag");
                found = true;
            }
            if !found {
                anyhow::bail!("--untag {tag:?}: no traffic target has that tag");
            }
        }
        for (revision, tag) in &self.tags {
            if targets.iter().any(|t| tag_of(t) == Some(tag)) {
                anyhow::bail!("the tag {tag:?} is already in use; add --untag {tag} to move it");
            }
            match targets.iter_mut().find(|t| tag_of(t).is_none() && names(t, revision)) {
                Some(target) => {
                    target.insert("tag".into(), json!(tag));
                }
                None => targets.push(new_target(revision, Some(tag), 0)),
            }
        }
        if let Some(split) = &self.split {
            for target in &mut targets {
                target.insert("percent".into(), json!(0));
            }
            for (name, percent) in split {
                let by_tag = targets.iter().position(|t| name != LATEST && tag_of(t) == Some(name));
                let by_name = || {
                    let untagged = targets.iter().position(|t| tag_of(t).is_none() && names(t, name));
                    untagged.or_else(|| targets.iter().position(|t| names(t, name)))
                };
                match by_tag.or_else(by_name) {
                    Some(i) => {
                        targets[i].insert("percent".into(), json!(percent));
                    }
                    None => targets.push(new_target(name, None, *percent)),
                }
            }
        }
        targets.retain(|t| tag_of(t).is_some() || t.get("percent").and_then(Value::as_i64).unwrap_or(0) > 0);
        Ok(targets.into_iter().map(Value::Object).collect())
    }
}

fn entries(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

fn as_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn tag_of(target: &Map<String, Value>) -> Option<&str> {
    target.get("tag").and_then(Value::as_str).filter(|t| !t.is_empty())
}

fn is_latest(target: &Map<String, Value>) -> bool {
    target.get("latestRevision").and_then(Value::as_bool).unwrap_or(false)
}

/// Whether a target stands for `revision` (`@latest`: the latest-revision target).
fn names(target: &Map<String, Value>, revision: &str) -> bool {
    if revision == LATEST {
        is_latest(target)
    } else {
        !is_latest(target) && target.get("revisionName").and_then(Value::as_str) == Some(revision)
    }
}

fn new_target(revision: &str, tag: Option<&str>, percent: i64) -> Map<String, Value> {
    let mut target = Map::new();
    if let Some(tag) = tag {
        target.insert("tag".into(), json!(tag));
    }
    if revision == LATEST {
        target.insert("latestRevision".into(), json!(true));
    } else {
        target.insert("revisionName".into(), json!(revision));
        target.insert("latestRevision".into(), json!(false));
    }
    target.insert("percent".into(), json!(percent));
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    fn parse(traffic: &[&str], tags: &[&str], untag: &[&str]) -> anyhow::Result<TrafficEdits> {
        TrafficEdits::parse(&strings(traffic), &strings(tags), &strings(untag))
    }

    #[test]
    fn a_split_parses_from_comma_separated_and_repeated_flags() {
        let edits = parse(&["a=50,b=25", "@latest=25%"], &[], &[]).unwrap();
        let want = vec![("a".into(), 50), ("b".into(), 25), ("@latest".into(), 25)];
        assert_eq!(edits.split, Some(want));
        assert_eq!(parse(&["@latest=100"], &[], &[]).unwrap().split, Some(vec![("@latest".into(), 100)]));
    }

    #[test]
    fn bad_splits_are_refused() {
        let err = parse(&["a=50,b=40"], &[], &[]).unwrap_err().to_string();
        assert_eq!(err, "--traffic percents add up to 90, they must add up to 100");
        assert!(parse(&["a=101"], &[], &[]).is_err());
        assert!(parse(&["a=half"], &[], &[]).is_err());
        assert!(parse(&["a"], &[], &[]).is_err());
        assert!(parse(&["a=50,a=50"], &[], &[]).is_err());
        assert!(parse(&[], &["a"], &[]).is_err());
        assert!(parse(&[], &["a=x,b=x"], &[]).is_err());
    }

    #[test]
    fn a_split_replaces_the_old_one_and_drops_empty_targets() {
        let current = [json!({"latestRevision": true, "percent": 100})];
        let edits = parse(&["hello-00001=50,@latest=50"], &[], &[]).unwrap();
        assert_eq!(
            edits.apply(&current).unwrap(),
            [
                json!({"latestRevision": true, "percent": 50}),
                json!({"revisionName": "hello-00001", "latestRevision": false, "percent": 50}),
            ]
        );
        let current = [
            json!({"revisionName": "hello-00001", "percent": 50}),
            json!({"revisionName": "hello-00002", "percent": 50}),
        ];
        let edits = parse(&["hello-00002=100"], &[], &[]).unwrap();
        assert_eq!(edits.apply(&current).unwrap(), [json!({"revisionName": "hello-00002", "percent": 100})]);
    }

    #[test]
    fn tags_label_targets_or_add_empty_ones() {
        let current = [json!({"latestRevision": true, "percent": 100})];
        let edits = parse(&[], &["@latest=current,hello-00001=old"], &[]).unwrap();
        assert_eq!(
            edits.apply(&current).unwrap(),
            [
                json!({"latestRevision": true, "percent": 100, "tag": "current"}),
                json!({"tag": "old", "revisionName": "hello-00001", "latestRevision": false, "percent": 0}),
            ]
        );
        // With no traffic written yet, the default (all to @latest) is the starting point.
        let edits = parse(&[], &["hello-00001=old"], &[]).unwrap();
        assert_eq!(edits.apply(&[]).unwrap().len(), 2);
    }

    #[test]
    fn a_split_can_name_a_tag() {
        let current = [
            json!({"latestRevision": true, "percent": 100}),
            json!({"revisionName": "hello-00001", "percent": 0, "tag": "old"}),
        ];
        let edits = parse(&["old=10,@latest=90"], &[], &[]).unwrap();
        let traffic = edits.apply(&current).unwrap();
        assert_eq!(traffic[0]["percent"], 90);
        assert_eq!(traffic[1]["percent"], 10);
    }

    #[test]
    fn untag_frees_a_tag_and_a_taken_tag_is_refused() {
        let current = [
            json!({"latestRevision": true, "percent": 100}),
            json!({"revisionName": "hello-00001", "percent": 0, "tag": "old"}),
        ];
        let err = parse(&[], &["hello-00002=old"], &[]).unwrap().apply(&current).unwrap_err().to_string();
        assert!(err.contains("--untag old"), "{err}");
        let edits = parse(&[], &["hello-00002=old"], &["old"]).unwrap();
        assert_eq!(
            edits.apply(&current).unwrap(),
            [
                json!({"latestRevision": true, "percent": 100}),
                json!({"tag": "old", "revisionName": "hello-00002", "latestRevision": false, "percent": 0}),
            ]
        );
        assert!(parse(&[], &[], &["nope"]).unwrap().apply(&current).is_err());
    }
}
