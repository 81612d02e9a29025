//! How large an object may be: what kube-apiserver and etcd bound, Skiff bounds too.
//!
//! - an object at most 1.5 MiB once encoded (etcd's default request limit), checked on every
//!   write the API makes, after defaults and patches, before it reaches the store;
//! - annotations at most 256 KiB in all, keys and values (Kubernetes' `TotalAnnotationSizeLimitB`);
//! - a JSON patch at most 10,000 operations, whose `copy` operations together copy no more
//!   than an object may hold (kube-apiserver's `AccumulatedCopySizeLimit`): a patch that
//!   doubles a value twenty times is refused before it grows.

use serde_json::Value;

use crate::status::{Cause, Reason, StatusError};

pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
pub const MAX_PATCH_OPERATIONS: usize = 10_000;

/// The size of `value` as JSON, or `None` once it passes `limit` (counting stops there).
pub fn encoded_size_within(value: &Value, limit: usize) -> Option<usize> {
    struct Counter {
        seen: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.seen += buf.len();
            if self.seen > self.limit {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { seen: 0, limit };
    serde_json::to_writer(&mut counter, value).ok().map(|()| counter.seen)
}

/// 413 for an object past [`MAX_OBJECT_BYTES`].
pub fn check_object_size(object: &Value) -> Result<(), StatusError> {
    match encoded_size_within(object, MAX_OBJECT_BYTES) {
        Some(_) => Ok(()),
        None => Err(StatusError::new(
            Reason::RequestEntityTooLarge,
            format!("the object is larger than the limit of {MAX_OBJECT_BYTES} bytes once encoded"),
        )),
    }
}

/// The cause for annotations past [`MAX_ANNOTATIONS_BYTES`], as Kubernetes words it.
pub fn annotations_cause(object: &Value) -> Option<Cause> {
    let annotations = object.pointer("/metadata/annotations")?.as_object()?;
    let total: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or_else(|| v.to_string().len(), str::len))
        .sum();
    (total > MAX_ANNOTATIONS_BYTES).then(|| {
        Cause::new(
            "metadata.annotations",
            format!("Too long: may not be more than {MAX_ANNOTATIONS_BYTES} bytes (these are {total})"),
        )
    })
}

/// Apply a JSON patch to `document` within the bounds above.
pub fn apply_json_patch(
    document: &mut Value,
    operations: &[json_patch::PatchOperation],
) -> Result<(), StatusError> {
    if operations.len() > MAX_PATCH_OPERATIONS {
        return Err(StatusError::new(
            Reason::RequestEntityTooLarge,
            format!(
                "the allowed maximum operations in a JSON patch is {MAX_PATCH_OPERATIONS}, got {}",
                operations.len()
            ),
        ));
    }
    let mut copied = 0usize;
    for (index, operation) in operations.iter().enumerate() {
        if let json_patch::PatchOperation::Copy(copy) = operation {
            let size = document
                .pointer(copy.from.as_str())
                .map(|value| encoded_size_within(value, MAX_OBJECT_BYTES - copied.min(MAX_OBJECT_BYTES)))
                .unwrap_or(Some(0));
            match size {
                Some(size) => copied += size,
                None => {
                    return Err(StatusError::new(
                        Reason::RequestEntityTooLarge,
                        format!(
                            "the JSON patch's copy operations (at operation {index}) copy more than \
                             the limit of {MAX_OBJECT_BYTES} bytes an object may hold"
                        ),
                    ));
                }
            }
        }
        json_patch::patch(document, std::slice::from_ref(operation)).map_err(|e| {
            StatusError::new(
                Reason::Invalid,
                format!("the JSON patch does not apply at operation {index}: {e}"),
            )
        })?;
    }
    check_object_size(document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_copy_bomb_stops_before_it_grows() {
        let mut document = json!({"metadata": {"annotations": {"a": "x".repeat(2000)}}, "spec": {"x": {}}});
        let mut operations =
            vec![json!({"op": "copy", "from": "/metadata/annotations/a", "path": "/spec/x/a"})];
        for i in 0..22 {
            operations.push(json!({"op": "copy", "from": "/spec/x", "path": format!("/spec/x/c{i}")}));
        }
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(operations)).unwrap();
        let err = apply_json_patch(&mut document, &patch.0).unwrap_err();
        assert_eq!(err.code(), 413, "{err}");
        assert!(
            encoded_size_within(&document, 4 * MAX_OBJECT_BYTES).is_some(),
            "the document did not balloon"
        );
    }

    #[test]
    fn operation_counts_and_sizes_are_bounded() {
        let many: Vec<Value> =
            (0..=MAX_PATCH_OPERATIONS).map(|_| json!({"op": "test", "path": "", "value": {}})).collect();
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(many)).unwrap();
        assert_eq!(apply_json_patch(&mut json!({}), &patch.0).unwrap_err().code(), 413);
        assert!(check_object_size(&json!({"a": "x".repeat(MAX_OBJECT_BYTES)})).is_err());
        assert!(check_object_size(&json!({"a": "x".repeat(1000)})).is_ok());
        let big = json!({"metadata": {"annotations": {"k": "v".repeat(MAX_ANNOTATIONS_BYTES)}}});
        assert!(annotations_cause(&big).unwrap().message.contains("262144"));
        assert!(annotations_cause(&json!({"metadata": {"annotations": {"k": "v"}}})).is_none());
    }
}
