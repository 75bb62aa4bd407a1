//! The funnel picture as SVG, and the signed links that let an `<img>` show it without
//! a bearer token.

use super::*;

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

pub(super) fn accept_language(req: &HttpRequest) -> Option<&str> {
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
pub(super) async fn verify_funnel_link(
    state: &AppState,
    q: &FunnelSvgQuery,
) -> AppResult<(Caller, i64)> {
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
        let name = storage::pipelines::find(conn, &pid.as_str().into())?
            .pipeline
            .name;
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
        storage::pipelines::find(conn, &pid.into()).map(drop)
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
