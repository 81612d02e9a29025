//! Errors as the Kubernetes API reports them: a `Status` object with a reason and an HTTP code.

use serde_json::{Value, json};

/// One field that failed validation: `spec.traffic[1].percent` and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// The reasons of `metav1.StatusReason` that Skiff answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    AlreadyExists,
    Conflict,
    Expired,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    Invalid,
    TooManyRequests,
    ServiceUnavailable,
    InternalError,
}

impl Reason {
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Expired => 410,
            Reason::RequestEntityTooLarge => 413,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::TooManyRequests => 429,
            Reason::ServiceUnavailable => 503,
            Reason::InternalError => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Expired => "Expired",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::InternalError => "InternalError",
        }
    }
}

/// An API error: what the user gets back as a `Status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StatusError {
    pub reason: Reason,
    pub message: String,
    /// Boxed so that `Result<_, StatusError>` stays small.
    pub details: Box<Details>,
}

/// `details` of a `Status`: the object the error is about and the fields that were wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub kind: Option<String>,
    pub group: Option<String>,
    pub name: Option<String>,
    pub causes: Vec<Cause>,
}

impl StatusError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), details: Box::default() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Reason::InternalError, message)
    }

    /// `services.serving.knative.dev "hello" not found`
    pub fn not_found(plural: &str, group: &str, name: &str) -> Self {
        Self::new(Reason::NotFound, format!("{} \"{name}\" not found", qualified(plural, group)))
            .with_details(plural, group, name)
    }

    pub fn already_exists(plural: &str, group: &str, name: &str) -> Self {
        Self::new(Reason::AlreadyExists, format!("{} \"{name}\" already exists", qualified(plural, group)))
            .with_details(plural, group, name)
    }

    pub fn conflict(plural: &str, group: &str, name: &str) -> Self {
        Self::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(plural, group)
            ),
        )
        .with_details(plural, group, name)
    }

    /// `Service.serving.knative.dev "hello" is invalid: spec.traffic: Invalid value: ...`
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        let mut err = Self::new(
            Reason::Invalid,
            format!("{} \"{name}\" is invalid: {}", qualified(kind, group), summary.join(", ")),
        )
        .with_details(kind, group, name);
        err.details.causes = causes;
        err
    }

    fn with_details(mut self, kind: &str, group: &str, name: &str) -> Self {
        self.details.kind = Some(kind.to_string());
        self.details.group = (!group.is_empty()).then(|| group.to_string());
        self.details.name = Some(name.to_string());
        self
    }

    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    pub fn with_cause(mut self, cause: Cause) -> Self {
        self.details.causes.push(cause);
        self
    }

    /// The `Status` object of `meta/v1`.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(name) = &self.details.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = &self.details.group {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &self.details.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !self.details.causes.is_empty() {
            let causes: Vec<Value> = self
                .details
                .causes
                .iter()
                .map(|c| json!({"reason": "FieldValueInvalid", "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code(),
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_every_field() {
        let err = StatusError::invalid(
            "Service",
            "serving.knative.dev",
            "hello",
            vec![Cause::new("spec.traffic", "traffic percents sum to 90, want 100")],
        );
        let status = err.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["details"]["causes"][0]["field"], "spec.traffic");
        assert!(status["message"].as_str().unwrap().contains("spec.traffic: traffic percents sum to 90"));
    }

    #[test]
    fn not_found_reads_like_kubernetes() {
        let err = StatusError::not_found("services", "serving.knative.dev", "nope");
        assert_eq!(err.message, "services.serving.knative.dev \"nope\" not found");
        assert_eq!(err.to_status()["code"], 404);
    }
}
