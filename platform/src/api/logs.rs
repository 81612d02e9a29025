//! `GET .../revisions/{name}/log` and `.../pods/{name}/log` (`kubectl logs`): what the revision's pods wrote, as text lines
//! `{time} {stream} {line}`. `?tailLines=N` keeps the last N.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::Params;
use super::path::Target;
use crate::resources::{PODS, REVISIONS, meta, serving};
use crate::status::{Reason, StatusError};

pub const SUBRESOURCE: &str = "log";

pub(super) fn revision_log(
    state: &ApiState,
    target: &Target,
    params: &Params,
) -> Result<Response, StatusError> {
    let (Some(namespace), Some(name)) = (target.namespace.as_deref(), target.name.as_deref()) else {
        return Err(super::path::not_found());
    };
    let revision = if target.resource == &REVISIONS {
        name.to_string()
    } else if target.resource == &PODS {
        // Pods of a revision share its log, as the lines of one Deployment's pods.
        let pod = state.objects.get(&PODS, Some(namespace), name)?;
        meta::label(&pod, serving::LABEL_REVISION).unwrap_or_default().to_string()
    } else {
        return Err(StatusError::new(
            Reason::NotFound,
            format!("{} has no subresource \"log\"", target.resource.plural),
        ));
    };
    let Some(entry) = state.tables.revision(namespace, &revision) else {
        return Err(StatusError::new(
            Reason::NotFound,
            format!("revision \"{revision}\" is not running, so there is no log to show"),
        ));
    };
    let (lines, dropped) = crate::runtime::log_entries(&entry.log);
    let tail = params.get("tailLines").and_then(|t| t.parse::<usize>().ok()).unwrap_or(usize::MAX);
    let skip = lines.len().saturating_sub(tail);
    let mut text = String::new();
    if dropped > 0 && skip == 0 {
        text.push_str(&format!("({dropped} earlier lines were dropped to bound the log)\n"));
    }
    for entry in lines.into_iter().skip(skip) {
        text.push_str(&format!("{} {} {}\n", entry.time, entry.stream, entry.line));
    }
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}
