//! The report endpoints (the analytics module over HTTP). Every report is scoped to what
//! the caller may see, and answers CSV instead of JSON to `Accept: text/csv`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiQuery};
use crate::analytics::activity::{self, EffectivenessReport};
use crate::analytics::durations::{self, DurationsReport};
use crate::analytics::forecast::{
    self, AccuracyReport, ForecastReport, ForecastRow, Period, SnapshotRow,
};
use crate::analytics::funnel::{self, FunnelMode, FunnelReport};
use crate::analytics::funnel_svg::{self, Lang};
use crate::analytics::losses::{self, LossReport, ReactivationReport};
use crate::analytics::people::{self, LeadSourcesReport, Leaderboard, LeaderboardMetric};
use crate::analytics::stalled::{self, StalledReport};
use crate::analytics::{parse_bound, GroupBy, Scope};
use crate::auth::api_keys::Scope as KeyScope;
use crate::auth::caller::link_signer;
use crate::auth::links::{self, Signature};
use crate::auth::Caller;
use crate::domain::user::Role;
use crate::domain::{optional_id, required_text, Problems, MAX_NAME_CHARS};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;
use crate::storage;

/// The query parameters each report reads (`*`: required). The OpenAPI document lists
/// exactly these per report (`http::openapi`), so a client is never offered a
/// parameter its report ignores.
pub const PARAMETERS: &[(&str, &[&str])] = &[
    (
        "funnel",
        &[
            "pipeline_id*",
            "from",
            "to",
            "owner_id",
            "team_id",
            "group_by",
            "mode",
        ],
    ),
    (
        "funnel.svg",
        &[
            "pipeline_id*",
            "from",
            "to",
            "owner_id",
            "team_id",
            "mode",
            "lang",
            "expires",
            "signature",
        ],
    ),
    (
        "stage-durations",
        &[
            "pipeline_id*",
            "from",
            "to",
            "owner_id",
            "team_id",
            "group_by",
        ],
    ),
    ("stalled", &["pipeline_id", "owner_id", "team_id", "limit"]),
    (
        "loss-reasons",
        &["pipeline_id", "from", "to", "owner_id", "team_id"],
    ),
    (
        "activity-effectiveness",
        &[
            "pipeline_id*",
            "from",
            "to",
            "owner_id",
            "team_id",
            "within_days",
        ],
    ),
    (
        "lead-sources",
        &["pipeline_id", "from", "to", "owner_id", "team_id"],
    ),
    (
        "leaderboard",
        &["pipeline_id", "from", "to", "owner_id", "team_id", "metric"],
    ),
    (
        "reactivation",
        &["pipeline_id", "from", "to", "owner_id", "team_id"],
    ),
    (
        "forecast",
        &["pipeline_id", "from", "to", "owner_id", "team_id", "period"],
    ),
];

/// Parameters shared by the reports; each report reads those [`PARAMETERS`] names.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Required by funnel, stage-durations and activity-effectiveness.
    pub pipeline_id: Option<String>,
    /// Start of the range: `YYYY-MM-DD` (UTC day) or RFC 3339 with an offset.
    pub from: Option<String>,
    /// End of the range, inclusive for a date.
    pub to: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    /// Segments for funnel and stage-durations.
    pub group_by: Option<GroupBy>,
    /// Funnel: `cohort` (default) or `period`.
    pub mode: Option<FunnelMode>,
    /// Forecast: `month` (default) or `quarter`.
    pub period: Option<Period>,
    /// Leaderboard: `won_amount` (default), `won_count`, `stage_advances`.
    pub metric: Option<LeaderboardMetric>,
    /// Activity effectiveness: the advance window in days (default 14, 1–365).
    pub within_days: Option<i64>,
    /// Stalled: how many deals to list (default 200, at most 1000).
    pub limit: Option<i64>,
}

fn bad_param(field: &str, message: &str) -> AppError {
    AppError::BadRequest {
        code: ProblemCode::InvalidParameter,
        detail: format!("{field}: {message}"),
        errors: vec![FieldError::new(field, "invalid", message)],
    }
}

/// An id parameter: a UUID in its 36-character form, any case (as the document's
/// `format: uuid` allows), compared in the lower case ids are stored in.
fn id_param(field: &str, value: Option<&str>) -> AppResult<Option<String>> {
    value
        .map(|v| {
            uuid::Uuid::parse_str(v)
                .ok()
                .filter(|_| v.len() == 36)
                .map(|u| u.hyphenated().to_string())
                .ok_or_else(|| bad_param(field, "must be an id (a UUID)"))
        })
        .transpose()
}

/// The report's parameter checks applied to members of a body: a bad one is 422
/// `validation_failed` naming the member, as for any body.
fn body_error(e: AppError) -> AppError {
    match e {
        AppError::BadRequest {
            code: ProblemCode::InvalidParameter,
            errors,
            ..
        } => AppError::Validation(errors),
        other => other,
    }
}

fn scope_of(caller: &Caller, q: &ReportQuery, needs_pipeline: bool) -> AppResult<Scope> {
    caller.require_scope(KeyScope::ReportsRead)?;
    if needs_pipeline && q.pipeline_id.is_none() {
        return Err(AppError::BadRequest {
            code: ProblemCode::InvalidParameter,
            detail: "pipeline_id is required for this report".into(),
            errors: vec![FieldError::new(
                "pipeline_id",
                "required",
                "give the pipeline to report on",
            )],
        });
    }
    let from = q
        .from
        .as_deref()
        .map(|f| parse_bound("from", f, false))
        .transpose()?;
    let to =
        q.to.as_deref()
            .map(|t| parse_bound("to", t, true))
            .transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(bad_param("to", "must be after from"));
        }
    }
    Ok(Scope {
        visibility: caller.visibility(),
        pipeline_id: id_param("pipeline_id", q.pipeline_id.as_deref())?,
        owner_id: id_param("owner_id", q.owner_id.as_deref())?,
        team_id: id_param("team_id", q.team_id.as_deref())?,
        from,
        to,
    })
}

fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(prefers_csv)
}

/// The ranges of an `Accept` or `Accept-Language` header with their weights
/// (RFC 9110 §12.4.2), lower-cased, in the header's order; `q` defaults to 1.
fn weighted(header: &str) -> impl Iterator<Item = (String, f32)> + '_ {
    header.split(',').map(|range| {
        let mut parts = range.split(';');
        let value = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        (value, q)
    })
}

/// Content negotiation between JSON (the default) and CSV by `Accept` q-values
/// (RFC 9110 §12.5.1): CSV only when it is preferred strictly over JSON.
fn prefers_csv(accept: &str) -> bool {
    let quality = |wanted: &str| -> f32 {
        let (kind, _) = wanted.split_once('/').unwrap_or((wanted, ""));
        let mut best: Option<(u8, f32)> = None;
        for (media, q) in weighted(accept) {
            // The most specific matching range decides (exact, then type/*, then */*).
            let specificity = if media == wanted {
                3
            } else if media == format!("{kind}/*") {
                2
            } else if media == "*/*" {
                1
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    };
    let csv = quality("text/csv");
    csv > 0.0 && csv > quality("application/json")
}

/// The picture's language by `Accept-Language` (RFC 9110 §12.5.4): the highest-weighted
/// range naming `zh` or `en` (`*` means `en`); equal weights keep the header's order.
/// English when nothing matches.
fn preferred_lang(accept_language: Option<&str>) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for (tag, q) in weighted(accept_language.unwrap_or("")) {
        let Some(lang) = Lang::of_tag(&tag) else {
            continue;
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::En, |(_, lang)| lang)
}

/// True for the numbers the reports write (`12`, `-12.00`, `0.6667`).
fn is_number(cell: &str) -> bool {
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !frac.is_empty()
        && whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
}

/// A spreadsheet runs a cell starting with `=`, `+`, `-` or `@` (or tab or CR before
/// one) as a formula, and names, regions and tags are typed by reps: such text gets a
/// leading `'` (OWASP, CSV injection). Numbers keep their sign.
fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_number(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// RFC 4180 CSV with a header row; text that a spreadsheet would run is neutralised.
pub fn to_csv(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .map(|f| {
                let f = neutralise(f);
                if f.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", f.replace('"', "\"\""))
                } else {
                    f.into_owned()
                }
            })
            .collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn respond<T: Serialize>(
    req: &HttpRequest,
    name: &str,
    body: &T,
    csv: impl FnOnce(&T) -> Vec<Vec<String>>,
) -> HttpResponse {
    if wants_csv(req) {
        HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ))
            .body(to_csv(&csv(body)))
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// Stage-to-stage conversion with numerators and denominators.
///
/// `cohort`: deals created in the range, followed to today. `period`: stage entries in
/// the range. Skipped stages count as passed, re-entries once; a reopened deal counts
/// once with all it reached. With `group_by`, `segments` repeats the structure per key.
#[utoipa::path(get, path = "/api/v1/reports/funnel", tag = "reports", operation_id = "funnel_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = FunnelReport),
        (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn funnel_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, true)?;
    let mode = q.mode.unwrap_or(FunnelMode::Cohort);
    let r = storage::run(&state.pool, move |conn| {
        funnel::report(conn, &scope, mode, q.group_by)
    })
    .await?;
    Ok(respond(&req, "funnel", &r, funnel::csv_rows))
}

/// The parameters of the funnel picture, and the signed link that may stand in for
/// credentials (see [`create_funnel_link`]).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FunnelSvgQuery {
    /// The pipeline to draw.
    pub pipeline_id: Option<String>,
    /// Start of the range: `YYYY-MM-DD` (UTC day) or RFC 3339 with an offset.
    pub from: Option<String>,
    /// End of the range, inclusive for a date.
    pub to: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    /// `cohort` (default) or `period`.
    pub mode: Option<FunnelMode>,
    /// Language of the picture's fixed words (title, footer, "won", rates): `en` or `zh`.
    /// Without it, the language `Accept-Language` prefers, else `en`. Stage names stay
    /// as the pipeline names them.
    pub lang: Option<Lang>,
    /// Signed links only: when the link expires (Unix seconds), as issued by
    /// `POST /api/v1/reports/funnel.svg/links`.
    pub expires: Option<i64>,
    /// Signed links only: the link's signature, as issued. With `expires` and no
    /// `Authorization`, the picture is drawn as its signer may see it now; any changed
    /// parameter, an expired link or a deactivated signer is 401 `unauthorized`.
    pub signature: Option<String>,
}

impl FunnelSvgQuery {
    fn report_query(&self) -> ReportQuery {
        ReportQuery {
            pipeline_id: self.pipeline_id.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            owner_id: self.owner_id.clone(),
            team_id: self.team_id.clone(),
            mode: self.mode,
            ..ReportQuery::default()
        }
    }

    /// The picture's parameters in order, with the expiry: what a link's MAC covers.
    fn link_params(&self, expires: i64) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("pipeline_id", self.pipeline_id.clone()),
            ("from", self.from.clone()),
            ("to", self.to.clone()),
            ("owner_id", self.owner_id.clone()),
            ("team_id", self.team_id.clone()),
            ("mode", self.mode.map(|m| m.as_str().to_owned())),
            ("lang", self.lang.map(|l| l.as_str().to_owned())),
            ("expires", Some(expires.to_string())),
        ]
    }

    fn signed_fields<'a>(params: &'a [(&'static str, Option<String>)]) -> Vec<Option<&'a str>> {
        std::iter::once(Some("funnel.svg"))
            .chain(params.iter().map(|(_, v)| v.as_deref()))
            .collect()
    }
}

fn accept_language(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
}

/// A link to the funnel picture of `q`, signed for `caller` and valid until `expires`
/// (Unix seconds): `/api/v1/reports/funnel.svg?<parameters>&expires=…&signature=…`.
pub async fn sign_funnel_link(
    state: &AppState,
    caller: &Caller,
    q: &FunnelSvgQuery,
    expires: i64,
) -> AppResult<String> {
    let signer = caller.signer();
    let params = q.link_params(expires);
    let keys = state.jwt.clone();
    storage::run(&state.pool, move |conn| {
        let (_, binding) = link_signer(conn, &signer)?;
        let signature = keys
            .links
            .sign(&signer, &binding, &FunnelSvgQuery::signed_fields(&params));
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &params {
            if let Some(value) = value {
                url.append_pair(name, value);
            }
        }
        url.append_pair("signature", &signature);
        Ok(format!("/api/v1/reports/funnel.svg?{}", url.finish()))
    })
    .await
}

/// The signer of a link as they are now, and the seconds the link has left.
async fn verify_funnel_link(state: &AppState, q: &FunnelSvgQuery) -> AppResult<(Caller, i64)> {
    let invalid = || {
        AppError::Unauthorized(
            "The link is invalid: its parameters or signature were changed.".into(),
        )
    };
    let (Some(expires), Some(signature)) = (q.expires, q.signature.as_deref()) else {
        return Err(AppError::Unauthorized(
            "A signed link needs both expires and signature; create one with POST /api/v1/reports/funnel.svg/links.".into(),
        ));
    };
    let now = chrono::Utc::now().timestamp();
    if expires <= now {
        return Err(AppError::Unauthorized(
            "The link expired; create a new one with POST /api/v1/reports/funnel.svg/links.".into(),
        ));
    }
    let signature = Signature::parse(signature).ok_or_else(invalid)?;
    let params = q.link_params(expires);
    let keys = state.jwt.clone();
    storage::run(&state.pool, move |conn| {
        let (caller, binding) = link_signer(conn, &signature.signer)?;
        if !keys.links.verify(
            &signature,
            &binding,
            &FunnelSvgQuery::signed_fields(&params),
        ) {
            return Err(invalid());
        }
        Ok((caller, expires - now))
    })
    .await
}

/// The funnel as an SVG picture: bars sized by deals reaching each step, labelled with
/// counts and conversion rates, its fixed words in one language (`lang`).
///
/// Either with `Authorization`, or, where no header can be sent (`<img src>`), through a
/// signed link from `POST /api/v1/reports/funnel.svg/links`: `expires` and `signature`
/// and no credentials. A link shows what its signer may see at the time of the request
/// and is cached privately until it expires (`Cache-Control: private, max-age=…`).
#[utoipa::path(get, path = "/api/v1/reports/funnel.svg", tag = "reports", operation_id = "funnel_svg",
    security(("bearer" = ["reports:read"]), ()), params(FunnelSvgQuery),
    responses((status = 200, content_type = "image/svg+xml", body = String,
            description = "The picture; `Content-Language` names the language of its fixed words"),
        (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem, description = "`unauthorized`: no or bad credentials, or a signed link that is expired (the detail says so), altered, or whose signer was deactivated"),
        (status = 404, body = crate::error::Problem)))]
pub async fn funnel_svg(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: ApiQuery<FunnelSvgQuery>,
) -> AppResult<HttpResponse> {
    use actix_web::FromRequest;
    let q = query.0;
    let signed = q.expires.is_some() || q.signature.is_some();
    let (caller, cache) = if signed && !req.headers().contains_key(header::AUTHORIZATION) {
        let (caller, remaining) = verify_funnel_link(&state, &q).await?;
        (caller, Some(format!("private, max-age={remaining}")))
    } else {
        (Caller::extract(&req).await?, None)
    };
    let scope = scope_of(&caller, &q.report_query(), true)?;
    let mode = q.mode.unwrap_or(FunnelMode::Cohort);
    let lang = q
        .lang
        .unwrap_or_else(|| preferred_lang(accept_language(&req)));
    let pid = q.pipeline_id.clone().unwrap_or_default();
    let (r, title) = storage::run(&state.pool, move |conn| {
        let report = funnel::report(conn, &scope, mode, None)?;
        let name = storage::pipelines::find(conn, &pid)?.pipeline.name;
        Ok((report, name))
    })
    .await?;
    let mut res = HttpResponse::Ok();
    res.content_type("image/svg+xml; charset=utf-8")
        .insert_header((header::CONTENT_LANGUAGE, lang.as_str()));
    if let Some(cache) = cache {
        res.insert_header((header::CACHE_CONTROL, cache));
    }
    Ok(res.body(funnel_svg::svg(&r, &title, lang)))
}

/// The parameters of a funnel picture to link to, as `GET /api/v1/reports/funnel.svg`
/// takes them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFunnelLink {
    pub pipeline_id: String,
    /// `YYYY-MM-DD` (UTC day) or RFC 3339 with an offset.
    pub from: Option<String>,
    /// Inclusive for a date.
    pub to: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    /// `cohort` (default) or `period`.
    pub mode: Option<FunnelMode>,
    /// The picture's language; without it the one `Accept-Language` of this request
    /// prefers, else `en`. The link always names it.
    pub lang: Option<Lang>,
    /// How long the link works, in seconds: 60 to 3600; 900 (15 minutes) by default.
    #[schema(minimum = 60, maximum = 3600, example = 900)]
    pub ttl_secs: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FunnelLink {
    /// Path and query of the picture, to put after the API's origin (`<img src>`):
    /// `/api/v1/reports/funnel.svg?…&expires=…&signature=…`.
    pub url: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A short-lived link to the funnel picture, for `<img src>` (no `Authorization` needed).
///
/// The link is signed for the caller (HMAC-SHA256 over the caller, the exact parameters
/// and the expiry, 15 minutes unless `ttl_secs` says otherwise) and shows what the
/// caller may see when it is opened. Changing any parameter voids it, and so do the
/// caller's deactivation, a password change, or the revocation of the API key that
/// signed it.
#[utoipa::path(post, path = "/api/v1/reports/funnel.svg/links", tag = "reports", operation_id = "create_funnel_link",
    security(("bearer" = ["reports:read"])), request_body = CreateFunnelLink,
    responses((status = 201, body = FunnelLink, description = "The link; `Location` holds its URL too",
            headers(("Location" = String, description = "The link's URL"))),
        (status = 404, body = crate::error::Problem, description = "No such pipeline: `not_found`"),
        (status = 422, body = crate::error::Problem, description = "`ttl_secs` out of 60–3600: `validation_failed`")))]
pub async fn create_funnel_link(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: ApiJson<CreateFunnelLink>,
) -> AppResult<HttpResponse> {
    let b = body.0;
    let ttl = b.ttl_secs.unwrap_or(links::DEFAULT_TTL_SECS);
    if !(links::MIN_TTL_SECS..=links::MAX_TTL_SECS).contains(&ttl) {
        return Err(AppError::field(
            "ttl_secs",
            "out_of_range",
            format!(
                "must be between {} and {} seconds",
                links::MIN_TTL_SECS,
                links::MAX_TTL_SECS
            ),
        ));
    }
    // Blank values would be dropped from the link's query and break its signature; the
    // document types them as ids and dates, so they are refused like any bad value.
    let mut p = Problems::default();
    for (field, value) in [
        ("from", &b.from),
        ("to", &b.to),
        ("owner_id", &b.owner_id),
        ("team_id", &b.team_id),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            p.add(
                field,
                "required",
                "must not be empty; leave the member out instead",
            );
        }
    }
    p.into_result()?;
    let q = FunnelSvgQuery {
        pipeline_id: Some(b.pipeline_id),
        from: b.from,
        to: b.to,
        owner_id: b.owner_id,
        team_id: b.team_id,
        mode: b.mode,
        lang: Some(
            b.lang
                .unwrap_or_else(|| preferred_lang(accept_language(&req))),
        ),
        expires: None,
        signature: None,
    };
    scope_of(&caller, &q.report_query(), true).map_err(body_error)?;
    let pid = q.pipeline_id.clone().unwrap_or_default();
    storage::run(&state.pool, move |conn| {
        storage::pipelines::find(conn, &pid).map(drop)
    })
    .await?;
    let expires = chrono::Utc::now().timestamp() + ttl;
    let expires_at = chrono::DateTime::from_timestamp(expires, 0)
        .ok_or_else(|| AppError::internal("link expiry out of range"))?;
    let url = sign_funnel_link(&state, &caller, &q, expires).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, url.clone()))
        .json(FunnelLink { url, expires_at }))
}

/// Time in each stage: closed stays (count, avg, median, p90, max, seconds) and running
/// stays (count, median and p90 age) apart. Percentiles interpolate like `percentile_cont`.
#[utoipa::path(get, path = "/api/v1/reports/stage-durations", tag = "reports", operation_id = "stage_durations_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = DurationsReport), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn stage_durations_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, true)?;
    let now = storage::now();
    let r = storage::run(&state.pool, move |conn| {
        durations::report(conn, &scope, q.group_by, now)
    })
    .await?;
    Ok(respond(&req, "stage-durations", &r, durations::csv_rows))
}

/// Open deals past their stage's `stalled_after_days` in the stage or without activity,
/// longest in stage first (the same rule as `GET /opportunities?stalled=true`).
#[utoipa::path(get, path = "/api/v1/reports/stalled", tag = "reports", operation_id = "stalled_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = StalledReport), (status = 400, body = crate::error::Problem)))]
pub async fn stalled_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, false)?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(bad_param("limit", "must be between 1 and 1000"));
    }
    let now = storage::now();
    let r = storage::run(&state.pool, move |conn| {
        stalled::report(conn, &scope, now, limit)
    })
    .await?;
    Ok(respond(&req, "stalled", &r, stalled::csv_rows))
}

/// Lost deals (lost in the range) by the stage they were lost from × loss reason, with
/// counts and amounts.
#[utoipa::path(get, path = "/api/v1/reports/loss-reasons", tag = "reports", operation_id = "loss_reasons_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = LossReport), (status = 400, body = crate::error::Problem)))]
pub async fn loss_reasons_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let scope = scope_of(&caller, &query.0, false)?;
    let r = storage::run(&state.pool, move |conn| losses::report(conn, &scope)).await?;
    Ok(respond(&req, "loss-reasons", &r, losses::csv_rows))
}

/// Per open stage and activity type: how often stays with that activity advanced
/// within `within_days`, against stays without it.
#[utoipa::path(get, path = "/api/v1/reports/activity-effectiveness", tag = "reports", operation_id = "activity_effectiveness_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = EffectivenessReport), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn activity_effectiveness_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, true)?;
    let days = q.within_days.unwrap_or(14);
    if !(1..=365).contains(&days) {
        return Err(bad_param("within_days", "must be between 1 and 365"));
    }
    let r = storage::run(&state.pool, move |conn| {
        activity::report(conn, &scope, days)
    })
    .await?;
    Ok(respond(
        &req,
        "activity-effectiveness",
        &r,
        activity::csv_rows,
    ))
}

/// Per lead source: leads created in the range, qualified, converted, won, the rates
/// between them and the won amount.
#[utoipa::path(get, path = "/api/v1/reports/lead-sources", tag = "reports", operation_id = "lead_sources_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = LeadSourcesReport), (status = 400, body = crate::error::Problem)))]
pub async fn lead_sources_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let scope = scope_of(&caller, &query.0, false)?;
    let r = storage::run(&state.pool, move |conn| people::lead_sources(conn, &scope)).await?;
    Ok(respond(&req, "lead-sources", &r, people::lead_sources_csv))
}

/// Owners ranked by won amount, won count or stage advances in the range.
#[utoipa::path(get, path = "/api/v1/reports/leaderboard", tag = "reports", operation_id = "leaderboard_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = Leaderboard), (status = 400, body = crate::error::Problem)))]
pub async fn leaderboard_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, false)?;
    let metric = q.metric.unwrap_or(LeaderboardMetric::WonAmount);
    let r = storage::run(&state.pool, move |conn| {
        people::leaderboard(conn, &scope, metric)
    })
    .await?;
    Ok(respond(&req, "leaderboard", &r, people::leaderboard_csv))
}

/// Lost deals that flowed back (回流) and how they ended.
#[utoipa::path(get, path = "/api/v1/reports/reactivation", tag = "reports", operation_id = "reactivation_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = ReactivationReport), (status = 400, body = crate::error::Problem)))]
pub async fn reactivation_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let scope = scope_of(&caller, &query.0, false)?;
    let r = storage::run(&state.pool, move |conn| losses::reactivation(conn, &scope)).await?;
    Ok(respond(&req, "reactivation", &r, losses::reactivation_csv))
}

/// Weighted (by effective probability) and unweighted amounts of open deals by expected
/// close month or quarter, owner and currency; `from`/`to` bound the close dates.
#[utoipa::path(get, path = "/api/v1/reports/forecast", tag = "reports", operation_id = "forecast_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = ForecastReport), (status = 400, body = crate::error::Problem)))]
pub async fn forecast_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, false)?;
    let period = q.period.unwrap_or(Period::Month);
    let r = storage::run(&state.pool, move |conn| {
        forecast::report(conn, &scope, period)
    })
    .await?;
    Ok(respond(&req, "forecast", &r, forecast::csv_rows))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    #[schema(example = "2026 Q4 commit")]
    pub name: String,
    /// Defaults to `month`.
    pub period: Option<Period>,
    pub pipeline_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotOut {
    pub id: String,
    pub name: String,
    pub period: Period,
    pub pipeline_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub rows: Vec<ForecastRow>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_by: String,
}

fn snapshot_out(s: SnapshotRow) -> AppResult<SnapshotOut> {
    let params: CreateSnapshot = serde_json::from_str(&s.scope).map_err(AppError::internal)?;
    Ok(SnapshotOut {
        rows: serde_json::from_str(&s.rows).map_err(AppError::internal)?,
        period: if s.period == "quarter" {
            Period::Quarter
        } else {
            Period::Month
        },
        id: s.id,
        name: s.name,
        pipeline_id: params.pipeline_id,
        from: params.from,
        to: params.to,
        owner_id: params.owner_id,
        team_id: params.team_id,
        created_at: s.created_at.and_utc(),
        created_by: s.created_by,
    })
}

fn snapshot_query(p: &CreateSnapshot) -> ReportQuery {
    ReportQuery {
        pipeline_id: p.pipeline_id.clone(),
        from: p.from.clone(),
        to: p.to.clone(),
        owner_id: p.owner_id.clone(),
        team_id: p.team_id.clone(),
        period: p.period,
        ..ReportQuery::default()
    }
}

/// Freezes the current forecast (as the caller sees it) for a later accuracy check.
/// Each user may take 100 snapshots in any 24 hours.
#[utoipa::path(post, path = "/api/v1/reports/forecast/snapshots", tag = "reports", operation_id = "create_forecast_snapshot",
    security(("bearer" = [])), request_body = CreateSnapshot,
    responses((status = 201, body = SnapshotOut), (status = 400, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem, description = "`name` over 200 characters, or an id that is not a UUID"),
        (status = 429, body = crate::error::Problem, description = "`snapshot_quota_exceeded`: 100 snapshots in the last 24 hours; see `Retry-After`")))]
pub async fn create_forecast_snapshot(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateSnapshot>,
) -> AppResult<HttpResponse> {
    caller.require_person()?;
    let mut b = body.0;
    let mut p = Problems::default();
    b.name = required_text(&mut p, "name", &b.name, MAX_NAME_CHARS);
    for (field, id) in [
        ("pipeline_id", &b.pipeline_id),
        ("owner_id", &b.owner_id),
        ("team_id", &b.team_id),
    ] {
        optional_id(&mut p, field, id.as_deref());
    }
    p.into_result()?;
    let scope = scope_of(&caller, &snapshot_query(&b), false).map_err(body_error)?;
    let period = b.period.unwrap_or(Period::Month);
    let params = serde_json::to_string(&b).map_err(AppError::internal)?;
    let name = b.name;
    let snapshot = storage::run_tx(&state.pool, move |conn| {
        let now = storage::now();
        forecast::check_snapshot_quota(conn, &caller.user_id, now)?;
        let report = forecast::report(conn, &scope, period)?;
        let row = SnapshotRow {
            id: storage::new_id(),
            name,
            period: period.as_str().to_owned(),
            scope: params,
            rows: serde_json::to_string(&report.rows).map_err(AppError::internal)?,
            created_at: now,
            created_by: caller.user_id.clone(),
        };
        forecast::insert_snapshot(conn, &row)?;
        Ok(row)
    })
    .await?;
    // A snapshot is read through its accuracy report, its one URL.
    let location = format!(
        "/api/v1/reports/forecast/snapshots/{}/accuracy",
        snapshot.id
    );
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, location))
        .json(snapshot_out(snapshot)?))
}

/// A snapshot against what actually closed: per period and owner, the frozen weighted
/// forecast beside the amount won in that period, attainment and error.
#[utoipa::path(get, path = "/api/v1/reports/forecast/snapshots/{id}/accuracy", tag = "reports", operation_id = "forecast_snapshot_accuracy",
    security(("bearer" = ["reports:read"])), params(("id" = String, Path)),
    responses((status = 200, body = AccuracyReport), (status = 404, body = crate::error::Problem)))]
pub async fn forecast_snapshot_accuracy(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_scope(KeyScope::ReportsRead)?;
    let admin = caller.role == Role::Admin;
    let r = storage::run(&state.pool, move |conn| {
        let snapshot = forecast::find_snapshot(conn, &id, &caller.user_id, admin)?;
        let params: CreateSnapshot =
            serde_json::from_str(&snapshot.scope).map_err(AppError::internal)?;
        let scope = scope_of(&caller, &snapshot_query(&params), false)?;
        forecast::accuracy(conn, &snapshot, &scope)
    })
    .await?;
    Ok(respond(
        &req,
        "forecast-accuracy",
        &r,
        forecast::accuracy_csv,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_q_values_choose_the_format() {
        assert!(prefers_csv("text/csv"));
        assert!(prefers_csv("text/csv, application/json;q=0.5"));
        assert!(!prefers_csv("application/json, text/csv;q=0.1"));
        assert!(!prefers_csv("*/*"));
        assert!(!prefers_csv("application/json"));
        assert!(!prefers_csv("text/csv;q=0"));
        assert!(prefers_csv("text/*, application/json;q=0.9"));
        assert!(!prefers_csv("text/html, */*;q=0.8"));
    }

    #[test]
    fn accept_language_picks_the_picture_language() {
        assert_eq!(preferred_lang(None), Lang::En);
        assert_eq!(preferred_lang(Some("zh-CN,zh;q=0.9,en;q=0.8")), Lang::Zh);
        assert_eq!(preferred_lang(Some("en-US,zh;q=0.5")), Lang::En);
        assert_eq!(preferred_lang(Some("fr-FR, zh-TW;q=0.7")), Lang::Zh);
        assert_eq!(preferred_lang(Some("de")), Lang::En);
        assert_eq!(preferred_lang(Some("zh;q=0, en;q=0.1")), Lang::En);
        assert_eq!(preferred_lang(Some("fr, *;q=0.2, zh;q=0.1")), Lang::En);
    }

    #[test]
    fn csv_cells_that_would_run_as_formulas_get_a_quote() {
        let rows = vec![vec![
            "=HYPERLINK(\"http://x\",\"y\")".to_owned(),
            "+1".into(),
            "-1+2".into(),
            "@SUM(A1)".into(),
            "\t=1".into(),
            "\r=1".into(),
            "-".into(),
        ]];
        assert_eq!(
            to_csv(&rows),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",'+1,'-1+2,'@SUM(A1),'\t=1,\"'\r=1\",'-\r\n"
        );
    }

    #[test]
    fn csv_numbers_and_plain_text_stay_as_they_are() {
        let rows = vec![vec![
            "-12.00".to_owned(),
            "-3".into(),
            "0.6667".into(),
            "12500.00".into(),
            "华东".into(),
            "a=b".into(),
            "".into(),
        ]];
        assert_eq!(to_csv(&rows), "-12.00,-3,0.6667,12500.00,华东,a=b,\r\n");
    }
}
