//! Request extractors that fail with problem+json naming the offending field, instead of
//! actix's plain-text defaults: JSON bodies, query strings and `If-Match`.

use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::auth::caller::{Caller, Credential};
use crate::error::ProblemCode;
use crate::error::{AppError, FieldError};
use crate::state::AppState;

/// A JSON body, read up to the configured size limit.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = json_body(req, payload, false);
        Box::pin(async move {
            let body = body.await?.unwrap_or_default();
            parse_json(&body).map(ApiJson)
        })
    }
}

/// An optional JSON body: none at all (or an empty one) is `None`, whatever the
/// `Content-Type`; a body that is present is held to every rule of [`ApiJson`], so a
/// mistake in it is refused rather than taken for no body.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = json_body(req, payload, true);
        Box::pin(async move {
            match body.await? {
                Some(body) => parse_json(&body).map(|v| OptionalJson(Some(v))),
                None => Ok(OptionalJson(None)),
            }
        })
    }
}

/// Reads a request body that must be JSON: 415 for another media type, 413 above the
/// limit. With `optional`, an empty body is `None` and its media type does not matter.
fn json_body(
    req: &HttpRequest,
    payload: &mut Payload,
    optional: bool,
) -> LocalBoxFuture<'static, Result<Option<web::Bytes>, AppError>> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(1024 * 1024, |s| s.settings.max_body_bytes);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    Box::pin(async move {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        let json = mime == "application/json" || mime.ends_with("+json");
        let unsupported =
            || AppError::UnsupportedMediaType("Send the body as application/json.".into());
        if !json && !optional {
            return Err(unsupported());
        }
        if declared_len.is_some_and(|n| n > limit) {
            return Err(AppError::PayloadTooLarge(limit));
        }
        let body = read_limited(&mut payload, limit).await?;
        match (body.is_empty(), json) {
            (true, _) if optional => Ok(None),
            (false, false) => Err(unsupported()),
            _ => Ok(Some(body)),
        }
    })
}

/// Reads a whole request body, refusing more than `limit` bytes (413).
pub async fn read_limited(payload: &mut Payload, limit: usize) -> Result<web::Bytes, AppError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest {
            code: ProblemCode::BodyUnreadable,
            detail: format!("The request body could not be read: {e}"),
            errors: Vec::new(),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses JSON, turning serde's message into a field error with a pointer.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    // Syntax first, so that a broken document is always a 400 whatever its content.
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| AppError::BadRequest {
            code: ProblemCode::MalformedJson,
            detail: format!("The body is not valid JSON: {e}"),
            errors: Vec::new(),
        })?;
    from_value(value)
}

/// Maps a JSON value onto `T`; a mismatch is a 422 naming the member.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, AppError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        AppError::Validation(vec![serde_field_error(
            &path,
            &err.into_inner().to_string(),
        )])
    })
}

/// Maps a serde data error at `path` to a field error (shared by bodies and queries).
pub fn serde_field_error(path: &str, message: &str) -> FieldError {
    // serde_json appends " at line X column Y"; clients do not need it.
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_owned();
    let base = if path == "." { "" } else { path };
    let quoted = message.split('`').nth(1).unwrap_or("");
    let join = |name: &str| {
        if base.is_empty() {
            name.to_owned()
        } else {
            format!("{base}.{name}")
        }
    };
    let (field, code) = if message.starts_with("missing field") {
        (join(quoted), "required")
    } else if message.starts_with("unknown field") {
        let f = if base.ends_with(quoted) {
            base.to_owned()
        } else {
            join(quoted)
        };
        (f, "unknown_field")
    } else if message.starts_with("unknown variant") {
        (base.to_owned(), "unknown_value")
    } else if message.starts_with("invalid type") {
        (base.to_owned(), "invalid_type")
    } else {
        (base.to_owned(), "invalid")
    };
    FieldError::new(field, code, message)
}

/// A query string parsed into `T`; errors are 400 with the parameter named.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequest for ApiQuery<T> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(ApiQuery))
    }
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, AppError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let fe = serde_field_error(&path, &err.into_inner().to_string());
        AppError::BadRequest {
            code: ProblemCode::InvalidParameter,
            detail: format!("Query parameter {}: {}", fe.field, fe.message),
            errors: vec![fe],
        }
    })
}

/// The version named by `If-Match` (`"3"`, `W/"3"`); `None` without the header or for `*`.
pub struct IfMatch(pub Option<i32>);

impl FromRequest for IfMatch {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = match req.headers().get(header::IF_MATCH) {
            None => Ok(IfMatch(None)),
            Some(v) => match v.to_str().map(str::trim) {
                Ok("*") => Ok(IfMatch(None)),
                Ok(s) => s
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .parse::<i32>()
                    .map(|n| IfMatch(Some(n)))
                    .map_err(|_| AppError::BadRequest {
                        code: ProblemCode::InvalidIfMatch,
                        detail: "If-Match must be an ETag from this API, e.g. \"3\".".into(),
                        errors: Vec::new(),
                    }),
                Err(_) => Err(AppError::BadRequest {
                    code: ProblemCode::InvalidIfMatch,
                    detail: "If-Match is not valid text.".into(),
                    errors: Vec::new(),
                }),
            },
        };
        std::future::ready(parsed)
    }
}

/// The strong ETag of a record at `version`.
pub fn etag(version: i32) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

/// The caller, from the credential the authentication middleware resolved for this
/// request.
impl FromRequest for Caller {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = match req.extensions().get::<Credential>() {
            Some(credential) => credential.caller(),
            None => Err(AppError::internal(
                "the authentication middleware did not run for this route",
            )),
        };
        std::future::ready(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        kind: crate::domain::pipeline::StageKind,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        stages: Vec<Inner>,
    }

    fn field_of(body: &str) -> (String, String) {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(AppError::Validation(e)) => (e[0].pointer.clone(), e[0].code.clone()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn json_errors_point_at_the_member() {
        assert_eq!(
            field_of(r#"{"stages":[]}"#),
            ("/name".into(), "required".into())
        );
        assert_eq!(
            field_of(r#"{"name":"x","stages":[{"kind":"open"},{"kind":"maybe"}]}"#),
            ("/stages/1/kind".into(), "unknown_value".into())
        );
        assert_eq!(
            field_of(r#"{"name":1,"stages":[]}"#),
            ("/name".into(), "invalid_type".into())
        );
        assert_eq!(
            field_of(r#"{"name":"x","stages":[],"extra":1}"#),
            ("/extra".into(), "unknown_field".into())
        );
        assert!(matches!(
            parse_json::<Outer>(b"{\"name\":"),
            Err(AppError::BadRequest {
                code: ProblemCode::MalformedJson,
                ..
            })
        ));
    }
}
