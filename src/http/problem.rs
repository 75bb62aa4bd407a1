//! How an `AppError` leaves the service: the only place that chooses its HTTP status,
//! and its rendering as RFC 9457 `application/problem+json` with a stable `code`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::error::{problem_type, AppError, Problem};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The problem document of an error. 5xx (and 503) bodies carry the request id that
/// the error's log line also has; other bodies do not need it.
pub fn problem_of(err: &AppError) -> Problem {
    let status = err.status_code();
    let (errors, existing_id, current_version) = match err {
        AppError::Validation(errors)
        | AppError::BadRequest { errors, .. }
        | AppError::Rule { errors, .. } => (errors.clone(), None, None),
        AppError::Conflict { existing_id, .. } => (Vec::new(), existing_id.clone(), None),
        AppError::VersionConflict { current } => (Vec::new(), None, Some(*current)),
        _ => (Vec::new(), None, None),
    };
    let request_id = crate::telemetry::current_request_id()
        .filter(|_| status.is_server_error() || matches!(err, AppError::Unavailable(_)));
    Problem {
        type_: problem_type(err.code()),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: err.detail(),
        code: err.code().to_owned(),
        errors,
        existing_id,
        current_version,
        request_id,
    }
}

/// Renders a problem document for a status that did not come from an `AppError`
/// (unknown route, wrong method, errors raised by middleware).
pub fn problem_for_status(status: StatusCode) -> Problem {
    let (code, detail) = match status.as_u16() {
        400 => ("bad_request", "The request could not be understood."),
        401 => ("unauthorized", "Authentication is required."),
        403 => ("forbidden", "You may not do this."),
        404 => ("not_found", "No such resource."),
        405 => (
            "method_not_allowed",
            "This method is not allowed on this path; see the Allow header.",
        ),
        406 => (
            "not_acceptable",
            "The requested media type cannot be produced.",
        ),
        413 => ("payload_too_large", "The request body is too large."),
        415 => (
            "unsupported_media_type",
            "The request body has an unsupported media type.",
        ),
        429 => ("rate_limited", "Too many requests."),
        s if s >= 500 => ("internal_error", "An unexpected error occurred."),
        _ => ("error", "The request failed."),
    };
    Problem {
        type_: problem_type(code),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.to_owned(),
        code: code.to_owned(),
        errors: Vec::new(),
        existing_id: None,
        current_version: None,
        request_id: None,
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Validation(_) | AppError::Rule { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Unauthorized(_) | AppError::Signature(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::VersionConflict { .. } => StatusCode::PRECONDITION_FAILED,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RateLimited { .. } | AppError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AppError::Internal(msg) => tracing::error!(error = %msg, "internal error"),
            AppError::Unavailable(msg) => tracing::warn!(error = %msg, "service unavailable"),
            _ => {}
        }
        let mut builder = HttpResponse::build(self.status_code());
        builder.content_type(PROBLEM_JSON);
        match self {
            AppError::Unauthorized(_) => {
                builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            AppError::RateLimited { retry_after_secs }
            | AppError::QuotaExceeded {
                retry_after_secs, ..
            } => {
                builder.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        builder.json(problem_of(self))
    }
}

/// A blocking task (password hashing on the blocking pool) that panicked or was
/// cancelled.
impl From<actix_web::error::BlockingError> for AppError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        AppError::Internal(format!("blocking task: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProblemCode;

    #[test]
    fn every_status_has_a_problem_code() {
        let texts: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        for status in 400..600u16 {
            if let Ok(s) = StatusCode::from_u16(status) {
                let code = problem_for_status(s).code;
                assert!(texts.contains(&code.as_str()), "{code}");
            }
        }
    }
}
