//! `Idempotency-Key` on `POST`: the first request with a key runs and its answer is kept
//! for 24 hours; a retry with the same key and the same request replays that answer
//! (same status and body, `Idempotent-Replayed: true`) instead of acting twice. The same
//! key with another request is refused (422 `idempotency_key_reused`); a retry while the
//! first is still running gets 409 `idempotency_key_in_progress`.
//!
//! Keys belong to the credential that sent them: the user of a token (so a refreshed
//! token keeps its keys), or the API key itself. Requests without valid credentials are
//! not recorded and never replayed; the handler answers them as usual. Requests that
//! issue a secret refuse the header, so no secret is ever kept for a replay. Answers worth retrying (5xx, 401,
//! 429) release the key instead of being kept.

use actix_web::body::{self, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};
use sha2::{Digest, Sha256};

use crate::error::ProblemCode;
use crate::error::{AppError, FieldError};
use crate::state::AppState;
use crate::storage::{self, idempotency as store};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// How long a key and its answer are kept.
const KEEP_HOURS: i64 = 24;
/// A first request still running after this long is taken to have died with its
/// process (its transaction rolled back), so a retry may run.
const ABANDONED_AFTER_SECS: i64 = 600;
const MAX_KEY_LEN: usize = 255;

/// POSTs that refuse `Idempotency-Key` rather than silently ignore it, and why: those
/// whose answer carries a secret shown once (never stored), and imports (a stream).
pub const NOT_REPLAYABLE: &[(&str, &str)] = &[
    ("/api/v1/api-keys", SECRET_SHOWN_ONCE),
    ("/api/v1/capture-sources", SECRET_SHOWN_ONCE),
    (
        "/api/v1/capture-sources/{id}/rotate-secret",
        SECRET_SHOWN_ONCE,
    ),
    ("/api/v1/webhooks", SECRET_SHOWN_ONCE),
    ("/api/v1/imports/leads", IMPORT_STREAM),
    ("/api/v1/imports/accounts", IMPORT_STREAM),
    ("/api/v1/imports/contacts", IMPORT_STREAM),
    ("/api/v1/imports/opportunities", IMPORT_STREAM),
];

const SECRET_SHOWN_ONCE: &str =
    "the answer carries a secret that is shown once and never stored, so it cannot be replayed";
const IMPORT_STREAM: &str = "an import is a stream that is not kept for replay; rows match their records by key, so post the file again instead (matched rows stay unchanged)";

/// Why `path` refuses `Idempotency-Key`, if it does.
/// `path` is a request path or a documented template; `{id}` in the list matches one
/// segment.
pub fn not_replayable(path: &str) -> Option<&'static str> {
    let matches = |pattern: &str| {
        let (a, b): (Vec<&str>, Vec<&str>) =
            (pattern.split('/').collect(), path.split('/').collect());
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(p, s)| *p == *s || (*p == "{id}" && !s.is_empty()))
    };
    NOT_REPLAYABLE
        .iter()
        .find(|(p, _)| matches(p))
        .map(|(_, why)| *why)
}

fn parse_key(value: &HeaderValue) -> Result<String, AppError> {
    value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= MAX_KEY_LEN && k.chars().all(|c| c.is_ascii_graphic())
        })
        .map(str::to_owned)
        .ok_or_else(|| AppError::BadRequest {
            code: ProblemCode::InvalidIdempotencyKey,
            detail: format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters without spaces."
            ),
            errors: vec![FieldError::header(
                "Idempotency-Key",
                "invalid",
                "not a valid idempotency key",
            )],
        })
}

/// What makes two requests "the same": method, path, query, content type and body.
fn request_hash(req: &ServiceRequest, body: &[u8]) -> String {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut h = Sha256::new();
    for part in [
        req.method().as_str(),
        req.path(),
        req.query_string(),
        content_type,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(body);
    crate::auth::api_keys::hex(&h.finalize())
}

fn header_text(res: &HttpResponse<impl MessageBody>, name: HeaderName) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn replay(stored: store::Stored) -> HttpResponse {
    let status = stored
        .status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut res = HttpResponse::build(status);
    res.insert_header((REPLAYED, "true"));
    for (name, value) in [
        (header::CONTENT_TYPE, stored.content_type),
        (header::LOCATION, stored.location),
        (header::ETAG, stored.etag),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            res.insert_header((name, v));
        }
    }
    res.body(stored.body.unwrap_or_default())
}

pub async fn idempotency(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(raw) = req
        .headers()
        .get(IDEMPOTENCY_KEY)
        .filter(|_| req.method() == Method::POST)
        .cloned()
    else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    // Only a credential that holds right now may claim or replay a key: a deactivated
    // user or a revoked API key gets its 401 from the handler, never an earlier answer.
    let Some(scope) = super::middleware::credential(&req).and_then(|c| c.scope()) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    if let Some(why) = not_replayable(req.path()) {
        return Ok(req.error_response(AppError::BadRequest {
            code: ProblemCode::IdempotencyKeyNotSupported,
            detail: format!("Idempotency-Key is not accepted here: {why}."),
            errors: vec![FieldError::header(
                "Idempotency-Key",
                "not_supported",
                "not accepted on this request",
            )],
        }));
    }
    let key = match parse_key(&raw) {
        Ok(key) => key,
        Err(e) => return Ok(req.error_response(e)),
    };
    let mut payload = req.parts_mut().1.take();
    let body = match super::extract::read_limited(&mut payload, state.settings.max_body_bytes).await
    {
        Ok(body) => body,
        Err(e) => return Ok(req.error_response(e)),
    };
    let hash = request_hash(&req, &body);
    req.set_payload(Payload::from(body));

    let now = storage::now();
    let window = store::Window {
        now,
        expired_before: now - chrono::Duration::hours(KEEP_HOURS),
        abandoned_before: now - chrono::Duration::seconds(ABANDONED_AFTER_SECS),
    };
    let claim = {
        let (scope, key) = (scope.clone(), key.clone());
        storage::run(&state.pool, move |conn| {
            store::claim(conn, &scope, &key, &hash, &window)
        })
        .await
    };
    match claim {
        Err(e) => Ok(req.error_response(e)),
        Ok(store::Claim::Replay(stored)) => Ok(req.into_response(replay(stored))),
        Ok(store::Claim::Mismatch) => Ok(req.error_response(AppError::Rule {
            code: ProblemCode::IdempotencyKeyReused,
            detail: "This Idempotency-Key was already used with a different request; use a new key for a new request.".into(),
            errors: vec![FieldError::header("Idempotency-Key", "reused", "already used with another request")],
        })),
        Ok(store::Claim::Running) => Ok(req.error_response(AppError::Conflict {
            code: ProblemCode::IdempotencyKeyInProgress,
            detail: "A request with this Idempotency-Key is still being processed; retry shortly.".into(),
            existing_id: None,
        })),
        Ok(store::Claim::Run) => {
            let res = next.call(req).await;
            record(&state, scope, key, res).await
        }
    }
}

/// Keeps the handler's answer under the key (or releases the key), and passes it on.
async fn record(
    state: &AppState,
    scope: String,
    key: String,
    res: Result<ServiceResponse<impl MessageBody + 'static>, Error>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let keep = matches!(&res, Ok(r) if !(r.status().is_server_error()
        || r.status() == StatusCode::UNAUTHORIZED
        || r.status() == StatusCode::TOO_MANY_REQUESTS));
    let res = match res {
        Ok(res) if keep => res,
        other => {
            let (scope, key) = (scope.clone(), key.clone());
            if let Err(e) =
                storage::run(&state.pool, move |conn| store::release(conn, &scope, &key)).await
            {
                tracing::error!(error = %e, "could not release an idempotency key");
            }
            return other.map(ServiceResponse::map_into_boxed_body);
        }
    };
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes = body::to_bytes(body)
        .await
        .map_err(|_| Error::from(AppError::internal("response body could not be read")))?;
    let text = String::from_utf8(bytes.to_vec()).ok();
    let answer = store::Stored {
        status: Some(i32::from(head.status().as_u16())),
        content_type: header_text(&head, header::CONTENT_TYPE),
        location: header_text(&head, header::LOCATION),
        etag: header_text(&head, header::ETAG),
        body: text.clone(),
    };
    let outcome = storage::run(&state.pool, move |conn| match text {
        Some(_) => store::finish(conn, &scope, &key, &answer),
        // Only text answers are kept; anything else releases the key.
        None => store::release(conn, &scope, &key),
    })
    .await;
    if let Err(e) = outcome {
        // The action happened; only its replay is lost. The key stays claimed until it
        // counts as abandoned, so a quick retry is refused rather than run twice.
        tracing::error!(error = %e, "could not keep the answer of an idempotent request");
    }
    let res = head.set_body(bytes).map_into_boxed_body();
    Ok(ServiceResponse::new(req, res))
}
