//! Lead capture: sources (admin) and the public endpoint third-party forms and webhook
//! senders post to. `POST /api/v1/capture/{key}` needs no login; what protects it is the
//! source's own rules: CORS from its allowed origins (forms), a signature with its
//! secret (webhooks), a honeypot and a minimum time to fill the form, and rate limits.

mod sources;

pub use sources::*;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::crm::capture::{self as crm, Captured};
use crate::domain::integration::CaptureKind;
use crate::error::{AppError, AppResult};
use crate::integrations::capture::{lead_fields, Payload};
use crate::integrations::signing::{self, Refusal};
use crate::state::AppState;
use crate::storage;
use crate::storage::capture::{self as store, SourceRow};

/// The header a webhook sender signs with.
pub const SIGNATURE_HEADER: &str = "x-stageflow-signature";
/// How long receipts (signatures, idempotency keys) are kept.
const RECEIPT_HOURS: i64 = 24;
pub(super) const CAPTURE_PREFIX: &str = "/api/v1/capture/";

/// The `Origin` of a browser's capture post, taken off the request before the API's
/// own CORS rules see it: capture answers by each source's allowed origins instead.
#[derive(Clone)]
pub struct CaptureOrigin(pub String);

/// Moves `Origin` aside on capture paths (see [`CaptureOrigin`]).
pub async fn detach_origin(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.path().starts_with(CAPTURE_PREFIX) {
        // Without its origin, a preflight must not look like one to the API's rules.
        let h = req.headers_mut();
        h.remove(header::ACCESS_CONTROL_REQUEST_METHOD);
        h.remove(header::ACCESS_CONTROL_REQUEST_HEADERS);
        if let Some(origin) = req.headers_mut().remove(header::ORIGIN).next() {
            // An origin that is not text cannot be allowed, but it is still an origin.
            let text = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            req.extensions_mut().insert(CaptureOrigin(text));
        }
    }
    next.call(req).await
}

/// What a capture answers when it did not redirect.
#[derive(Serialize, ToSchema)]
pub struct CaptureAccepted {
    pub lead_id: String,
    /// `created`, or `updated` for a repeat of an existing lead.
    #[schema(example = "created")]
    pub status: String,
}

/// The browser's `Origin`: set aside by [`detach_origin`], or still on the request when
/// the path was written so that the middleware did not recognise it (percent-encoded).
fn request_origin(req: &HttpRequest) -> Option<String> {
    req.extensions()
        .get::<CaptureOrigin>()
        .map(|o| o.0.clone())
        .or_else(|| {
            req.headers()
                .get(header::ORIGIN)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        })
}

fn origin_allowed(source: &SourceRow, origin: &str) -> bool {
    source.allowed_origins.iter().any(|o| o == origin)
}

fn cors_headers(res: &mut HttpResponse, origin: &str) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
}

async fn active_source(state: &AppState, key: String) -> AppResult<SourceRow> {
    storage::run(&state.pool, move |c| store::find_by_key(c, &key))
        .await?
        .filter(|s| s.active)
        .ok_or(AppError::NotFound)
}

/// The CORS preflight of a browser about to post to a form source: 204 with the
/// CORS headers for an allowed origin, 403 otherwise. (Not an API operation: browsers
/// send it on their own, so it is left out of the OpenAPI document.)
pub async fn preflight(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> AppResult<HttpResponse> {
    let source = active_source(&state, key.into_inner()).await?;
    let Some(origin) = request_origin(&req).filter(|o| origin_allowed(&source, o)) else {
        return Err(AppError::Forbidden(
            "This origin may not post to this source.".into(),
        ));
    };
    let mut res = HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "content-type, idempotency-key",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
        .finish();
    cors_headers(&mut res, &origin);
    Ok(res)
}

/// Takes a lead from a third-party form or webhook (no login). Form posts
/// (urlencoded or multipart) and JSON are accepted. `202` with the lead id, or `303`
/// to the source's `redirect_url` for a browser's plain HTML form (`Accept: text/html`).
/// A repeat (same email, phone or external id, per the source, or the same
/// `Idempotency-Key`) updates the existing lead. Webhook sources require
/// `X-Stageflow-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`;
/// missing, stale (over 5 minutes), wrong or replayed signatures get 401 and nothing
/// is stored.
#[utoipa::path(post, path = "/api/v1/capture/{key}", tag = "capture", operation_id = "capture_lead",
    security(()),
    params(("key" = String, Path),
        ("X-Stageflow-Signature" = Option<String>, Header, description = "Webhook sources: t=<unix>,v1=<hex>"),
        ("Idempotency-Key" = Option<String>, Header)),
    request_body(content(
        (Object = "application/x-www-form-urlencoded"),
        (Object = "multipart/form-data"),
        (Object = "application/json"),
    )),
    responses(
        (status = 202, body = CaptureAccepted),
        (status = 303, description = "To the source's redirect_url", headers(("Location" = String))),
        (status = 401, body = crate::error::Problem, description = "invalid_signature"),
        (status = 403, body = crate::error::Problem, description = "origin not allowed"),
        (status = 404, body = crate::error::Problem),
        (status = 413, body = crate::error::Problem),
        (status = 415, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem, headers(("Retry-After" = String))),
    ))]
pub async fn capture(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let origin = request_origin(&req);
    let source = match active_source(&state, key.into_inner()).await {
        Ok(s) => s,
        Err(e) => return e.error_response(),
    };
    let allowed = origin
        .as_ref()
        .filter(|o| origin_allowed(&source, o))
        .cloned();
    if origin.is_some() && allowed.is_none() {
        return AppError::Forbidden("This origin may not post to this source.".into())
            .error_response();
    }
    let mut res = match take(&state, &req, source, body).await {
        Ok(r) => r,
        Err(e) => e.error_response(),
    };
    if let Some(o) = allowed {
        cors_headers(&mut res, &o);
    }
    res
}

fn limited(q: crate::auth::rate_limit::Quota) -> AppResult<()> {
    if q.allowed {
        Ok(())
    } else {
        Err(AppError::RateLimited {
            retry_after_secs: q.reset_secs,
        })
    }
}

async fn payload_of(req: &HttpRequest, body: web::Bytes) -> AppResult<Payload> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(Payload::Form(
            form_urlencoded::parse(&body).into_owned().collect(),
        )),
        "multipart/form-data" => {
            let boundary = multer::parse_boundary(&ct)
                .map_err(|_| unreadable("the multipart boundary is missing"))?;
            let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
            let mut parts = multer::Multipart::new(stream, boundary);
            let mut fields = Vec::new();
            while let Some(field) = parts
                .next_field()
                .await
                .map_err(|e| unreadable(&e.to_string()))?
            {
                let name = field.name().unwrap_or("").to_owned();
                if field.file_name().is_some() {
                    continue;
                }
                let text = field.text().await.map_err(|e| unreadable(&e.to_string()))?;
                fields.push((name, text));
            }
            Ok(Payload::Form(fields))
        }
        e if e == "application/json" || e.ends_with("+json") => {
            match serde_json::from_slice::<Value>(&body) {
                Ok(v @ Value::Object(_)) => Ok(Payload::Json(v)),
                Ok(_) => Err(AppError::field(
                    "",
                    "invalid_type",
                    "the body must be a JSON object",
                )),
                Err(e) => Err(AppError::BadRequest {
                    code: crate::error::ProblemCode::MalformedJson,
                    detail: format!("The body is not valid JSON: {e}"),
                    errors: Vec::new(),
                }),
            }
        }
        _ => Err(AppError::UnsupportedMediaType(
            "Post application/x-www-form-urlencoded, multipart/form-data or application/json."
                .into(),
        )),
    }
}

fn unreadable(why: &str) -> AppError {
    AppError::BadRequest {
        code: crate::error::ProblemCode::BodyUnreadable,
        detail: format!("The form body cannot be read: {why}"),
        errors: Vec::new(),
    }
}

/// Everything after the source and origin are known.
async fn take(
    state: &AppState,
    req: &HttpRequest,
    source: SourceRow,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let ip = super::rate_limit::client_ip(req.peer_addr());
    if source.kind == CaptureKind::Form {
        limited(
            state
                .capture_ip_limiter
                .take(&format!("{}:{ip}", source.id)),
        )?;
    }
    let per_minute = u32::try_from(source.rate_limit_per_minute).unwrap_or(1);
    if source.kind == CaptureKind::Form {
        limited(state.capture_source_budgets.take(per_minute, &source.id))?;
    }
    let now = storage::now();
    let signature = match source.kind {
        CaptureKind::Webhook => {
            let header = req
                .headers()
                .get(SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok());
            let mut secrets: Vec<&str> = source.secret.iter().map(String::as_str).collect();
            if source.previous_secret_until.is_some_and(|t| t > now) {
                secrets.extend(source.previous_secret.as_deref());
            }
            let fp = signing::verify_capture(header, &body, &secrets, now.and_utc().timestamp())
                .map_err(refusal)?;
            // Only signed posts spend a webhook source's budget, so unsigned noise
            // cannot starve the real sender.
            limited(state.capture_source_budgets.take(per_minute, &source.id))?;
            Some(format!("sig:{fp}"))
        }
        CaptureKind::Form => None,
    };
    let payload = payload_of(req, body).await?;
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let redirect = source.redirect_url.clone();
    let answer = |captured: Captured| -> HttpResponse {
        match (&redirect, wants_html) {
            (Some(url), true) => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, url.clone()))
                .finish(),
            _ => HttpResponse::Accepted().json(CaptureAccepted {
                lead_id: captured.lead_id,
                status: if captured.created {
                    "created"
                } else {
                    "updated"
                }
                .into(),
            }),
        }
    };
    if source.kind == CaptureKind::Form
        && (payload.honeypot_filled(source.honeypot_field.as_deref())
            || payload.too_fast(source.min_submit_seconds, now.and_utc().timestamp()))
    {
        tracing::info!(source = %source.id, "capture dropped as automated");
        return Ok(answer(Captured {
            lead_id: storage::new_id(),
            created: true,
        }));
    }
    let fields = lead_fields(
        &payload,
        &source.field_map,
        &sources::part(&source, "defaults"),
        &sources::part(&source, "constants"),
    );
    let idempotency = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("key:{}", k.trim()))
        .filter(|k| k.len() > 4 && k.len() <= 260);
    let captured = storage::run_tx(&state.pool, move |conn| {
        // One capture of a source at a time: its repeats (same key, same email) then
        // see each other, on any replica.
        store::lock(conn, &source.id)?;
        store::forget_receipts(conn, now - chrono::Duration::hours(RECEIPT_HOURS))?;
        if let Some(sig) = &signature {
            if !store::receipt(conn, &source.id, sig, None)? {
                return Err(refusal_replayed());
            }
        }
        if let Some(key) = &idempotency {
            if let Some(Some(lead_id)) = store::receipt_lead(conn, &source.id, key)? {
                return Ok(Captured {
                    lead_id,
                    created: false,
                });
            }
        }
        let captured = crm::capture(conn, &source, fields)?;
        if let Some(key) = &idempotency {
            store::receipt(conn, &source.id, key, Some(&captured.lead_id))?;
        }
        // (The receipt for an idempotency key cannot clash: the source is locked.)
        Ok(captured)
    })
    .await?;
    Ok(answer(captured))
}

fn refusal(r: Refusal) -> AppError {
    AppError::Signature(r.message().to_owned())
}

fn refusal_replayed() -> AppError {
    AppError::Signature("this signature was already used; sign each delivery anew".into())
}
