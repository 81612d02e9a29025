//! `GET .../revisions/{name}/log`: what the revision's pods wrote, as text lines
//! `{time} {stream} {line}`. `?tailLines=N` keeps the last N.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Params;
use super::path::Target;
use crate::dataplane::Tables;
use crate::resources::REVISIONS;
use crate::status::{Reason, StatusError};

pub const SUBRESOURCE: &str = "log";

pub(super) fn revision_log(
    tables: &Tables,
    target: &Target,
    params: &Params,
) -> Result<Response, StatusError> {
    let (Some(namespace), Some(name)) = (target.namespace.as_deref(), target.name.as_deref()) else {
        return Err(super::path::not_found());
    };
    if target.resource != &REVISIONS {
        return Err(StatusError::new(
            Reason::NotFound,
            format!("{} has no subresource \"log\"", target.resource.plural),
        ));
    }
    let Some(entry) = tables.revision(namespace, name) else {
        return Err(StatusError::new(
            Reason::NotFound,
            format!("revision \"{name}\" has no running pod, so there is no log to show"),
        ));
    };
    let (lines, dropped) = entry.pod.logs();
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
