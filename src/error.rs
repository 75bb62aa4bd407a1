//! The error vocabulary of the service: one `AppError` enum, the stable problem codes
//! and field codes, and the problem document's shape. It depends on nothing else in the
//! crate and knows nothing of actix: `http::problem` chooses the HTTP status of each
//! error and renders it as RFC 9457 `application/problem+json`.

use serde::Serialize;
use utoipa::ToSchema;

/// One offending member of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted name of the member, e.g. `stages[2].probability`.
    pub field: String,
    /// JSON Pointer of the member (RFC 6901), e.g. `/stages/2/probability`.
    pub pointer: String,
    /// Stable machine code, e.g. `required`, `out_of_range`, `unknown_value`.
    pub code: String,
    pub message: String,
}

impl FieldError {
    /// `field` uses dots and `[i]` for indexes; the pointer is derived from it.
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        let field = field.into();
        FieldError {
            pointer: pointer_of(&field),
            field,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// An offending request header: `field` is the header's name, `pointer` is empty
    /// (pointers address the body).
    pub fn header(name: &str, code: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: name.to_owned(),
            pointer: String::new(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// `stages[2].name` → `/stages/2/name`.
pub fn pointer_of(field: &str) -> String {
    if field.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for part in field.split('.') {
        let mut rest = part;
        while let Some(open) = rest.find('[') {
            push_segment(&mut out, &rest[..open]);
            let close = rest[open..].find(']').map_or(rest.len(), |c| open + c);
            push_segment(&mut out, &rest[open + 1..close]);
            rest = rest.get(close + 1..).unwrap_or("");
        }
        push_segment(&mut out, rest);
    }
    out
}

fn push_segment(out: &mut String, segment: &str) {
    if !segment.is_empty() {
        out.push('/');
        out.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    }
}

/// Every `code` a problem can carry, as one type: the OpenAPI document lists their
/// texts as the values of `Problem.code`, and the api-guide table documents them.
macro_rules! problem_codes {
    ($($variant:ident = $text:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemCode { $($variant),* }

        impl ProblemCode {
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(ProblemCode::$variant => $text),* }
            }
        }
    };
}

problem_codes! {
    ValidationFailed = "validation_failed",
    NotFound = "not_found",
    Unauthorized = "unauthorized",
    Forbidden = "forbidden",
    VersionConflict = "version_conflict",
    PayloadTooLarge = "payload_too_large",
    UnsupportedMediaType = "unsupported_media_type",
    RateLimited = "rate_limited",
    ServiceUnavailable = "service_unavailable",
    InternalError = "internal_error",
    BadRequest = "bad_request",
    MethodNotAllowed = "method_not_allowed",
    NotAcceptable = "not_acceptable",
    Conflict = "conflict",
    Error = "error",
    AccountInUse = "account_in_use",
    BodyUnreadable = "body_unreadable",
    ContactInUse = "contact_in_use",
    LeadInUse = "lead_in_use",
    EmailTaken = "email_taken",
    IdempotencyKeyInProgress = "idempotency_key_in_progress",
    IdempotencyKeyNotSupported = "idempotency_key_not_supported",
    IdempotencyKeyReused = "idempotency_key_reused",
    InvalidCursor = "invalid_cursor",
    InvalidIdempotencyKey = "invalid_idempotency_key",
    InvalidIfMatch = "invalid_if_match",
    InvalidParameter = "invalid_parameter",
    LeadAlreadyConverted = "lead_already_converted",
    LeadConverted = "lead_converted",
    LeadDisqualified = "lead_disqualified",
    LossReasonExists = "loss_reason_exists",
    MalformedJson = "malformed_json",
    NotLost = "not_lost",
    OpportunityClosed = "opportunity_closed",
    PipelineNotEmpty = "pipeline_not_empty",
    SnapshotQuotaExceeded = "snapshot_quota_exceeded",
    StageNotEmpty = "stage_not_empty",
    StageRequirementsUnmet = "stage_requirements_unmet",
    TeamNameTaken = "team_name_taken",
    DuplicateLead = "duplicate_lead",
    DuplicateOpportunity = "duplicate_opportunity",
    UnreadableFile = "unreadable_file",
    ImportNotCancellable = "import_not_cancellable",
    InvalidSignature = "invalid_signature",
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every `code` a field error can carry (`errors[].code`), listed the same way.
pub const FIELD_CODES: &[&str] = &[
    "required",
    "invalid",
    "invalid_type",
    "unknown_field",
    "unknown_value",
    "closed_stage",
    "duplicate",
    "duplicate_name",
    "immutable",
    "invalid_cursor",
    "lost_stage_missing",
    "not_a_permutation",
    "not_allowed",
    "not_found",
    "not_lost_stage",
    "not_open_stage",
    "not_supported",
    "one_parent",
    "open_stage_missing",
    "out_of_range",
    "required_by_stage",
    "reused",
    "same_stage",
    "self_lockout",
    "too_large",
    "too_long",
    "too_many",
    "too_short",
    "use_endpoint",
    "won_stage_count",
    "wrong_pipeline",
    // Import files and rows.
    "ambiguous",
    "body_unreadable",
    "duplicate_in_file",
    "empty_file",
    "formula",
    "invalid_date",
    "invalid_number",
    "malformed_csv",
    "malformed_json",
    "no_header",
    "ragged_row",
    "not_an_object",
    "record_too_large",
    "unreadable",
    "unsupported_encoding",
    // Webhook targets.
    "forbidden_target",
    "invalid_url",
    "unresolvable_host",
    "unsupported_scheme",
];

/// RFC 9457 problem document, as served.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Id of an existing record a conflict refers to, when the caller may see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
    /// Current version of the record, on `version_conflict`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i32>,
    /// Request id, also found in the logs (always present on 5xx).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    #[error("{code}: {detail}")]
    BadRequest {
        code: ProblemCode,
        detail: String,
        errors: Vec<FieldError>,
    },
    /// A business rule refused a well-formed request (422 with its own code).
    #[error("{code}: {detail}")]
    Rule {
        code: ProblemCode,
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("not found")]
    NotFound,
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A signed request whose signature is missing, stale, wrong or replayed (401).
    #[error("invalid signature: {0}")]
    Signature(String),
    #[error("{code}: {detail}")]
    Conflict {
        code: ProblemCode,
        detail: String,
        existing_id: Option<String>,
    },
    #[error("version conflict (current {current})")]
    VersionConflict { current: i32 },
    #[error("payload too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// A quota of the caller is used up for now (429 with its own code).
    #[error("{code}: {detail}")]
    QuotaExceeded {
        code: ProblemCode,
        detail: String,
        retry_after_secs: u64,
    },
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        AppError::Validation(vec![FieldError::new(field, code, message)])
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        AppError::Internal(err.to_string())
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation(_) => "validation_failed",
            AppError::BadRequest { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::Rule { code, .. }
            | AppError::QuotaExceeded { code, .. } => code.as_str(),
            AppError::NotFound => "not_found",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::Signature(_) => "invalid_signature",
            AppError::VersionConflict { .. } => "version_conflict",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Unavailable(_) => "service_unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// The human-readable explanation a problem document carries.
    pub fn detail(&self) -> String {
        match self {
            AppError::Validation(errors) => match errors.as_slice() {
                [one] => format!("{}: {}", one.field, one.message),
                _ => format!("{} fields are invalid", errors.len()),
            },
            AppError::BadRequest { detail, .. }
            | AppError::Conflict { detail, .. }
            | AppError::Rule { detail, .. }
            | AppError::QuotaExceeded { detail, .. } => detail.clone(),
            AppError::NotFound => "The resource does not exist or is not visible to you.".into(),
            AppError::Unauthorized(why) | AppError::Forbidden(why) | AppError::Signature(why) => {
                why.clone()
            }
            AppError::VersionConflict { current } => format!(
                "The record was changed by someone else; its current version is {current}. Reload it and retry with If-Match."
            ),
            AppError::PayloadTooLarge(limit) => {
                format!("The request body is larger than the {limit} bytes allowed.")
            }
            AppError::UnsupportedMediaType(why) => why.clone(),
            AppError::RateLimited { retry_after_secs } => {
                format!("Too many requests; retry in {retry_after_secs} s.")
            }
            AppError::Unavailable(_) => "The service is temporarily unavailable.".into(),
            AppError::Internal(_) => "An unexpected error occurred.".into(),
        }
    }
}

pub fn problem_type(code: &str) -> String {
    format!("urn:stageflow:problem:{code}")
}

impl From<diesel::result::Error> for AppError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            Error::NotFound => AppError::NotFound,
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => AppError::Conflict {
                code: ProblemCode::Conflict,
                detail: "A record with the same unique value already exists.".into(),
                existing_id: None,
            },
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                AppError::Unavailable("serialization failure; retry".into())
            }
            // The server closed the connection (a restart, an idle timeout): the pool
            // drops it, and a retry gets another.
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                AppError::Unavailable(format!("database connection closed: {}", info.message()))
            }
            other => AppError::Internal(format!("database: {other}")),
        }
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        AppError::Unavailable(format!("database pool: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection the database closed is a 503 to retry (the pool discards the
    /// connection), not a 500; other database failures stay 500s.
    #[test]
    fn a_closed_connection_is_unavailable_not_internal() {
        use diesel::result::{DatabaseErrorKind, Error};
        let closed = Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("server closed the connection unexpectedly".to_owned()),
        );
        assert!(matches!(AppError::from(closed), AppError::Unavailable(_)));
        let other = Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new("boom".to_owned()));
        assert!(matches!(AppError::from(other), AppError::Internal(_)));
    }

    /// The string literal passed as argument `index` of every call to `name(` in `text`.
    fn literal_args(text: &str, name: &str, index: usize, arity: usize) -> Vec<String> {
        let mut found = Vec::new();
        for (at, _) in text.match_indices(name) {
            let rest = &text[at + name.len()..];
            let (mut depth, mut in_str, mut escaped) = (0i32, false, false);
            let (mut args, mut current) = (Vec::new(), String::new());
            for c in rest.chars() {
                if in_str {
                    current.push(c);
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => in_str = false,
                        _ => {}
                    }
                    continue;
                }
                match c {
                    '"' => {
                        in_str = true;
                        current.push(c);
                    }
                    '(' | '[' | '{' => {
                        depth += 1;
                        current.push(c);
                    }
                    ')' | ']' | '}' if depth == 0 => break,
                    ')' | ']' | '}' => {
                        depth -= 1;
                        current.push(c);
                    }
                    ',' if depth == 0 => args.push(std::mem::take(&mut current)),
                    _ => current.push(c),
                }
            }
            if !current.trim().is_empty() {
                args.push(current);
            }
            if args.len() != arity {
                continue;
            }
            let arg = args[index].trim();
            if let Some(code) = arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
                found.push(code.to_owned());
            }
        }
        found
    }

    fn sources() -> Vec<(String, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).expect("src").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("source");
                    out.push((path.display().to_string(), text));
                }
            }
        }
        let mut out = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut out,
        );
        out
    }

    #[test]
    fn problem_codes_are_unique_snake_case() {
        let texts: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        let mut unique = texts.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), texts.len(), "a code is listed twice");
        for code in texts {
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
    }

    #[test]
    fn every_field_code_in_the_source_is_catalogued() {
        let mut seen = 0;
        for (file, text) in sources() {
            let mut codes = literal_args(&text, ".add(", 1, 3);
            codes.extend(literal_args(&text, "FieldError::new(", 1, 3));
            codes.extend(literal_args(&text, "FieldError::header(", 1, 3));
            codes.extend(literal_args(&text, "AppError::field(", 1, 3));
            for code in codes {
                seen += 1;
                assert!(
                    FIELD_CODES.contains(&code.as_str()),
                    "{file}: field code {code:?} is missing from FIELD_CODES"
                );
            }
        }
        assert!(seen > 20, "the scan found only {seen} codes");
    }

    #[test]
    fn pointers_follow_rfc6901() {
        assert_eq!(pointer_of("name"), "/name");
        assert_eq!(pointer_of("stages[2].probability"), "/stages/2/probability");
        assert_eq!(pointer_of("bant.budget"), "/bant/budget");
        assert_eq!(pointer_of("a/b"), "/a~1b");
        assert_eq!(pointer_of(""), "");
    }
}
