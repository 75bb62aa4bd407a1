//! Leads: capture, screening, BANT scoring, disqualification and conversion.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::accounts::{
    account_row, contact_row, AccountInput, AccountOut, ContactInput, ContactOut,
};
use super::crud::{delete_owned, patch_owned, stamp_new_or_next, Ops, Stamped};
use super::extract::{etag, ApiJson, ApiQuery, IfMatch};
use super::fields::{
    custom_json, json_list, json_object, opt_email, opt_text, resolve_owner, tags_json, MergePatch,
};
use super::opportunities::{first_open_stage, opportunity_row, OpportunityInput, OpportunityOut};
use super::pagination::{page_out, page_request, PageOut};
use super::utc;
use crate::auth::api_keys::Scope;
use crate::auth::Caller;
use crate::domain::lead::{
    rule_field_values, score, Bant, CompanySize, LeadFacts, LeadSource, LeadStatus, ScoreItem,
    ScoringRule, RULE_FIELDS,
};
use crate::domain::opportunity::Channel;
use crate::domain::user::Role;
use crate::domain::{required_text, Problems};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::accounts::{self as accounts_store, account, contact};
use crate::storage::leads::{self as store, LeadFilter, LeadRow};
use crate::storage::opportunities::{self as opp_store, enter_stage, StageChange};
use crate::storage::{self, activities, check_version, pipelines, scoring, DbConn};

/// The writable fields of a lead.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    pub country: Option<String>,
    /// Defaults to `other`.
    pub source: Option<LeadSource>,
    pub source_detail: Option<String>,
    pub interest: Option<String>,
    /// `new` (default), `contacted`, `nurturing` or `qualified`. `converted` and
    /// `disqualified` are reached through their own endpoints.
    pub status: Option<LeadStatus>,
    pub bant: Option<Bant>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Defaults to the caller.
    pub owner_id: Option<String>,
    pub next_follow_up_at: Option<DateTime<Utc>>,
    pub external_id: Option<String>,
    pub custom: Option<Map<String, Value>>,
}

/// The body of a PATCH: any writable members of [`LeadInput`].
pub type LeadPatch = MergePatch<LeadInput>;

#[derive(Serialize, ToSchema)]
pub struct LeadOut {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    pub country: Option<String>,
    pub source: LeadSource,
    pub source_detail: Option<String>,
    pub interest: Option<String>,
    pub status: LeadStatus,
    pub bant: Bant,
    /// 0–100: the sum of the points in `score_breakdown`, clamped.
    pub score: i32,
    /// Every scoring rule that matched and the points it gave.
    pub score_breakdown: Vec<ScoreItem>,
    pub tags: Vec<String>,
    pub owner_id: String,
    pub next_follow_up_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub external_id: Option<String>,
    pub custom: Map<String, Value>,
    pub converted_at: Option<DateTime<Utc>>,
    pub converted_opportunity_id: Option<String>,
    pub disqualified_reason: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
}

fn bant_of(l: &LeadRow) -> Bant {
    serde_json::from_str(&l.bant).unwrap_or_default()
}

impl From<LeadRow> for LeadOut {
    fn from(l: LeadRow) -> Self {
        LeadOut {
            bant: bant_of(&l),
            source: LeadSource::parse(&l.source).unwrap_or(LeadSource::Other),
            status: LeadStatus::parse(&l.status).unwrap_or(LeadStatus::New),
            company_size: l.company_size.as_deref().and_then(CompanySize::parse),
            score_breakdown: serde_json::from_str(&l.score_breakdown).unwrap_or_default(),
            tags: json_list(&l.tags),
            custom: json_object(&l.custom),
            next_follow_up_at: l.next_follow_up_at.map(utc),
            last_activity_at: l.last_activity_at.map(utc),
            converted_at: l.converted_at.map(utc),
            created_at: utc(l.created_at),
            updated_at: utc(l.updated_at),
            id: l.id,
            first_name: l.first_name,
            last_name: l.last_name,
            email: l.email,
            phone: l.phone,
            company: l.company,
            job_title: l.job_title,
            industry: l.industry,
            region: l.region,
            country: l.country,
            source_detail: l.source_detail,
            interest: l.interest,
            score: l.score,
            owner_id: l.owner_id,
            external_id: l.external_id,
            converted_opportunity_id: l.converted_opportunity_id,
            disqualified_reason: l.disqualified_reason,
            version: l.version,
            created_by: l.created_by,
            updated_by: l.updated_by,
        }
    }
}

impl From<&LeadRow> for LeadInput {
    fn from(l: &LeadRow) -> Self {
        LeadInput {
            first_name: l.first_name.clone(),
            last_name: l.last_name.clone(),
            email: l.email.clone(),
            phone: l.phone.clone(),
            company: l.company.clone(),
            job_title: l.job_title.clone(),
            industry: l.industry.clone(),
            company_size: l.company_size.as_deref().and_then(CompanySize::parse),
            region: l.region.clone(),
            country: l.country.clone(),
            source: LeadSource::parse(&l.source),
            source_detail: l.source_detail.clone(),
            interest: l.interest.clone(),
            status: LeadStatus::parse(&l.status),
            bant: Some(bant_of(l)),
            tags: json_list(&l.tags),
            owner_id: Some(l.owner_id.clone()),
            next_follow_up_at: l.next_follow_up_at.map(utc),
            external_id: l.external_id.clone(),
            custom: Some(json_object(&l.custom)),
        }
    }
}

fn respond(status: StatusCode, l: LeadRow) -> HttpResponse {
    super::answer(status, "leads", &l.id)
        .insert_header(etag(l.version))
        .json(LeadOut::from(l))
}

/// Recomputes a lead's score and breakdown from the current rules.
pub fn apply_score(row: &mut LeadRow, rules: &[ScoringRule]) {
    let facts = LeadFacts {
        bant: bant_of(row),
        source: Some(row.source.clone()),
        industry: row.industry.clone(),
        company_size: row.company_size.clone(),
        region: row.region.clone(),
        country: row.country.clone(),
        tags: json_list(&row.tags),
        has_email: row.email.is_some(),
        has_phone: row.phone.is_some(),
    };
    let (total, items) = score(&facts, rules);
    row.score = total;
    row.score_breakdown = serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
}

/// Checks input and builds the scored row; `base` is the stored lead on update.
fn lead_row(
    conn: &mut DbConn,
    caller: &Caller,
    input: &LeadInput,
    base: Option<&LeadRow>,
) -> AppResult<LeadRow> {
    let mut p = Problems::default();
    let first_name = opt_text(&mut p, "first_name", &input.first_name, 100);
    let last_name = opt_text(&mut p, "last_name", &input.last_name, 100);
    let email = opt_email(&mut p, "email", &input.email);
    let phone = opt_text(&mut p, "phone", &input.phone, 50);
    let company = opt_text(&mut p, "company", &input.company, 200);
    if [&first_name, &last_name, &email, &phone, &company]
        .iter()
        .all(|v| v.is_none())
    {
        p.add(
            "last_name",
            "required",
            "a lead needs at least a name, a company, an email or a phone",
        );
    }
    let old_status = base.and_then(|b| LeadStatus::parse(&b.status));
    let status = input.status.unwrap_or(LeadStatus::New);
    if Some(status) != old_status {
        match (old_status, status) {
            (Some(LeadStatus::Converted), _) => {
                return Err(AppError::Conflict {
                    code: ProblemCode::LeadConverted,
                    detail: "A converted lead keeps its status.".into(),
                    existing_id: None,
                })
            }
            (_, LeadStatus::Converted | LeadStatus::Disqualified) => p.add(
                "status",
                "use_endpoint",
                "convert or disqualify a lead with POST /leads/{id}/convert or /disqualify",
            ),
            _ => {}
        }
    }
    let owner_id = resolve_owner(conn, &mut p, caller, &input.owner_id)?;
    let bant =
        serde_json::to_string(&input.bant.unwrap_or_default()).unwrap_or_else(|_| "{}".into());
    let mut row = LeadRow {
        first_name,
        last_name,
        email,
        phone,
        company,
        job_title: opt_text(&mut p, "job_title", &input.job_title, 100),
        industry: opt_text(&mut p, "industry", &input.industry, 100),
        company_size: input.company_size.map(|s| s.as_str().to_owned()),
        region: opt_text(&mut p, "region", &input.region, 100),
        country: opt_text(&mut p, "country", &input.country, 100),
        source: input
            .source
            .unwrap_or(LeadSource::Other)
            .as_str()
            .to_owned(),
        source_detail: opt_text(&mut p, "source_detail", &input.source_detail, 300),
        interest: opt_text(&mut p, "interest", &input.interest, 1000),
        status: status.as_str().to_owned(),
        bant,
        tags: tags_json(&mut p, &input.tags),
        owner_id,
        next_follow_up_at: input.next_follow_up_at.map(|t| t.naive_utc()),
        external_id: opt_text(&mut p, "external_id", &input.external_id, 200),
        custom: custom_json(&mut p, &input.custom),
        ..stamp_new_or_next(base.cloned(), caller, |id, now| LeadRow {
            id,
            first_name: None,
            last_name: None,
            email: None,
            phone: None,
            company: None,
            job_title: None,
            industry: None,
            company_size: None,
            region: None,
            country: None,
            source: String::new(),
            source_detail: None,
            interest: None,
            status: String::new(),
            bant: String::new(),
            score: 0,
            score_breakdown: "[]".into(),
            tags: "[]".into(),
            owner_id: String::new(),
            next_follow_up_at: None,
            last_activity_at: None,
            external_id: None,
            custom: "{}".into(),
            converted_at: None,
            converted_opportunity_id: None,
            disqualified_reason: None,
            version: 1,
            created_at: now,
            updated_at: now,
            created_by: Some(caller.user_id.clone()),
            updated_by: Some(caller.user_id.clone()),
        })
    };
    p.into_result()?;
    if old_status == Some(LeadStatus::Disqualified) && status != LeadStatus::Disqualified {
        row.disqualified_reason = None;
    }
    apply_score(&mut row, &scoring::rules(conn)?);
    Ok(row)
}

fn can_read(caller: &Caller) -> AppResult<()> {
    caller.require_scope(Scope::LeadsRead)
}

fn can_write(caller: &Caller) -> AppResult<()> {
    caller.require_scope(Scope::LeadsWrite)
}

/// Creates a lead and scores it. A lead with the email or external id of an existing
/// one is refused with 409 `duplicate_lead`, naming it in `existing_id` when the caller may see it.
#[utoipa::path(post, path = "/api/v1/leads", tag = "leads", operation_id = "create_lead",
    security(("bearer" = ["leads:write"])), request_body = LeadInput,
    responses(
        (status = 201, body = LeadOut, headers(("ETag" = String))),
        (status = 409, body = crate::error::Problem, description = "duplicate email or external_id"),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn create_lead(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<LeadInput>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let row = storage::run_tx(&state.pool, move |conn| {
        let row = lead_row(conn, &caller, &body.0, None)?;
        store::insert(conn, &row, &caller.visibility())?;
        Ok(row)
    })
    .await?;
    Ok(respond(StatusCode::CREATED, row))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListLeads {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// `created_at` (default), `updated_at`, `score`; prefix `-` for descending.
    pub sort: Option<String>,
    pub status: Option<LeadStatus>,
    pub source: Option<LeadSource>,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    pub owner_id: Option<String>,
    pub tag: Option<String>,
    pub min_score: Option<i32>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
    /// Part of the name, email or company.
    pub q: Option<String>,
}

/// Lists and screens the leads visible to the caller.
#[utoipa::path(get, path = "/api/v1/leads", tag = "leads", operation_id = "list_leads",
    security(("bearer" = ["leads:read"])), params(ListLeads),
    responses((status = 200, body = PageOut<LeadOut>), (status = 400, body = crate::error::Problem)))]
pub async fn list_leads(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListLeads>,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let q = query.0;
    let page = page_request(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        super::pagination::sorts("/api/v1/leads"),
        "created_at",
    )?;
    let filter = LeadFilter {
        status: q.status.map(|s| s.as_str().to_owned()),
        source: q.source.map(|s| s.as_str().to_owned()),
        industry: q.industry,
        company_size: q.company_size.map(|s| s.as_str().to_owned()),
        region: q.region,
        owner_id: q.owner_id,
        tag: q.tag,
        min_score: q.min_score,
        created_from: q.created_from.map(|t| t.naive_utc()),
        created_to: q.created_to.map(|t| t.naive_utc()),
        q: q.q.filter(|s| !s.trim().is_empty()),
    };
    let vis = caller.visibility();
    let req = page.clone();
    let rows = storage::run(&state.pool, move |conn| {
        store::list(conn, &vis, &filter, &req)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page_out(rows, &page, LeadOut::from)))
}

/// One lead.
#[utoipa::path(get, path = "/api/v1/leads/{id}", tag = "leads", operation_id = "find_lead",
    security(("bearer" = ["leads:read"])), params(("id" = String, Path)),
    responses((status = 200, body = LeadOut, headers(("ETag" = String))), (status = 404, body = crate::error::Problem)))]
pub async fn find_lead(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let vis = caller.visibility();
    let row = storage::run(&state.pool, move |conn| {
        store::find_visible(conn, &vis, &id)
    })
    .await?;
    Ok(respond(StatusCode::OK, row))
}

/// Changes a lead (JSON merge patch of its writable fields) and rescores it.
#[utoipa::path(patch, path = "/api/v1/leads/{id}", tag = "leads", operation_id = "update_lead",
    security(("bearer" = ["leads:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = LeadPatch,
    responses(
        (status = 200, body = LeadOut, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn update_lead(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<Value>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let ops = Ops {
        lock: store::lock_visible,
        input_of: |r| LeadInput::from(r),
        build: lead_row,
        save: |conn, caller, row| store::save(conn, row, &caller.visibility()),
    };
    let row = patch_owned(&state, caller, id.into_inner(), if_match, body.0, ops).await?;
    Ok(respond(StatusCode::OK, row))
}

/// Deletes a lead that was not converted, with its activities.
#[utoipa::path(delete, path = "/api/v1/leads/{id}", tag = "leads", operation_id = "delete_lead",
    security(("bearer" = ["leads:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub async fn delete_lead(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    delete_owned(
        &state,
        caller,
        id.into_inner(),
        if_match,
        store::lock_visible,
        |conn, _, current| {
            if current.status == LeadStatus::Converted.as_str() {
                return Err(AppError::Conflict {
                    code: ProblemCode::LeadConverted,
                    detail: "A converted lead is part of its opportunity's history and stays."
                        .into(),
                    existing_id: current.converted_opportunity_id.clone(),
                });
            }
            store::ensure_lead_unused(conn, &current.id)?;
            activities::delete_for_lead(conn, &current.id)?;
            store::delete_row(conn, &current.id)
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisqualifyRequest {
    #[schema(example = "无采购预算，一年内无计划")]
    pub reason: String,
}

/// Disqualifies a lead with a reason. PATCH its status back to reopen it.
#[utoipa::path(post, path = "/api/v1/leads/{id}/disqualify", tag = "leads", operation_id = "disqualify_lead",
    security(("bearer" = ["leads:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = DisqualifyRequest,
    responses((status = 200, body = LeadOut), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn disqualify_lead(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<DisqualifyRequest>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let mut p = Problems::default();
    let reason = required_text(&mut p, "reason", &body.0.reason, 1000);
    p.into_result()?;
    let row = storage::run_tx(&state.pool, move |conn| {
        let mut row = store::lock_visible(conn, &caller.visibility(), &id)?;
        check_version(if_match.0, row.version)?;
        if row.status == LeadStatus::Converted.as_str() {
            return Err(AppError::Conflict {
                code: ProblemCode::LeadConverted,
                detail: "A converted lead cannot be disqualified.".into(),
                existing_id: row.converted_opportunity_id,
            });
        }
        row.stamp_next(&caller.user_id, storage::now());
        row.status = LeadStatus::Disqualified.as_str().into();
        row.disqualified_reason = Some(reason);
        store::save(conn, &row, &caller.visibility())?;
        Ok(row)
    })
    .await?;
    Ok(respond(StatusCode::OK, row))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertRequest {
    pub pipeline_id: String,
    /// Defaults to "<company> – <interest>" (or the person's name).
    pub name: Option<String>,
    #[schema(example = "120000.00")]
    pub amount: Option<String>,
    pub expected_close_date: Option<NaiveDate>,
    /// An open stage; defaults to the pipeline's first.
    pub stage_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConversionOut {
    pub lead: LeadOut,
    pub account: AccountOut,
    pub contact: ContactOut,
    pub opportunity: OpportunityOut,
}

fn person_name(l: &LeadRow) -> Option<String> {
    let name = [l.last_name.as_deref(), l.first_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("");
    (!name.is_empty()).then_some(name)
}

/// Converts a lead in one transaction: links or creates the account (matched by company
/// name) and the contact (matched by email), creates the opportunity in the pipeline's
/// first stage (its requirements apply), and marks the lead converted. Twice is 409.
#[utoipa::path(post, path = "/api/v1/leads/{id}/convert", tag = "leads", operation_id = "convert_lead",
    security(("bearer" = ["leads:write", "opportunities:write"])), params(("id" = String, Path)), request_body = ConvertRequest,
    responses(
        (status = 201, body = ConversionOut),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem, description = "already converted (`existing_id` is the opportunity) or disqualified"),
        (status = 422, body = crate::error::Problem, description = "invalid input or `stage_requirements_unmet`"),
    ))]
pub async fn convert_lead(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ApiJson<ConvertRequest>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    caller.require_scope(Scope::OpportunitiesWrite)?;
    let st = state.clone();
    let out = storage::run_tx(&state.pool, move |conn| {
        convert(conn, &st, &caller, &id, body.0)
    })
    .await?;
    // The conversion's primary record is the new deal.
    Ok(super::answer(StatusCode::CREATED, "opportunities", &out.opportunity.id).json(out))
}

fn convert(
    conn: &mut DbConn,
    state: &AppState,
    caller: &Caller,
    id: &str,
    req: ConvertRequest,
) -> AppResult<ConversionOut> {
    let vis = caller.visibility();
    let mut lead = store::lock_visible(conn, &vis, id)?;
    match LeadStatus::parse(&lead.status) {
        Some(LeadStatus::Converted) => {
            return Err(AppError::Conflict {
                code: ProblemCode::LeadAlreadyConverted,
                detail: "The lead was converted already.".into(),
                existing_id: lead.converted_opportunity_id.clone(),
            })
        }
        Some(LeadStatus::Disqualified) => {
            return Err(AppError::Conflict {
                code: ProblemCode::LeadDisqualified,
                detail: "Requalify the lead (PATCH its status) before converting it.".into(),
                existing_id: None,
            })
        }
        _ => {}
    }
    let stages = pipelines::stages_of(conn, &req.pipeline_id)?;
    if stages.is_empty() {
        return Err(AppError::field(
            "pipeline_id",
            "not_found",
            "no such pipeline",
        ));
    }
    let stage = match &req.stage_id {
        Some(sid) => stages
            .iter()
            .find(|s| &s.id == sid)
            .cloned()
            .filter(|s| s.kind == "open"),
        None => Some(first_open_stage(&stages)?),
    }
    .ok_or_else(|| {
        AppError::field(
            "stage_id",
            "not_found",
            "no such open stage in this pipeline",
        )
    })?;
    // A lead owned by someone else stays theirs; so do its account, contact and deal.
    let owned_by_lead = Some(lead.owner_id.clone());
    let account_name = lead
        .company
        .clone()
        .or_else(|| person_name(&lead))
        .or_else(|| lead.email.clone())
        .unwrap_or_default();
    let account = match accounts_store::visible_account_named(conn, &vis, &account_name)? {
        Some(a) => a,
        None => {
            let input = AccountInput {
                name: account_name,
                industry: lead.industry.clone(),
                company_size: lead
                    .company_size
                    .as_deref()
                    .and_then(crate::domain::lead::CompanySize::parse),
                region: lead.region.clone(),
                website: None,
                owner_id: owned_by_lead.clone(),
            };
            let row = account_row(conn, caller, &input, None)?;
            account::insert_row(conn, &row)?;
            row
        }
    };
    let existing_contact = match &lead.email {
        Some(email) => accounts_store::visible_contact_with_email(conn, &vis, email)?,
        None => None,
    };
    let contact = match existing_contact {
        Some(c) => c,
        None => {
            let input = ContactInput {
                first_name: lead.first_name.clone(),
                last_name: lead.last_name.clone().or_else(|| {
                    lead.first_name
                        .is_none()
                        .then(|| lead.company.clone())
                        .flatten()
                }),
                email: lead.email.clone(),
                phone: lead.phone.clone(),
                account_id: Some(account.id.clone()),
                owner_id: owned_by_lead.clone(),
            };
            let row = contact_row(conn, caller, &input, None)?;
            contact::insert_row(conn, &row)?;
            row
        }
    };
    let default_name = match (&lead.company, &lead.interest) {
        (Some(c), Some(i)) => format!("{c} – {i}"),
        (Some(c), None) => c.clone(),
        _ => person_name(&lead).unwrap_or_else(|| account.name.clone()),
    };
    let input = OpportunityInput {
        name: req.name.clone().unwrap_or(default_name),
        pipeline_id: req.pipeline_id.clone(),
        stage_id: Some(stage.id.clone()),
        amount: req.amount.clone(),
        currency: None,
        probability: None,
        expected_close_date: req.expected_close_date,
        account_id: Some(account.id.clone()),
        contact_id: Some(contact.id.clone()),
        lead_id: Some(lead.id.clone()),
        owner_id: owned_by_lead,
        source: LeadSource::parse(&lead.source),
        industry: lead.industry.clone(),
        company_size: lead
            .company_size
            .as_deref()
            .and_then(crate::domain::lead::CompanySize::parse),
        region: lead.region.clone(),
        tags: json_list(&lead.tags),
        next_action: None,
        external_id: None,
        custom: None,
    };
    let (mut opp, target) = opportunity_row(conn, caller, state, &input, None)?;
    let change = StageChange {
        actor: &caller.user_id,
        channel: Channel::Api,
        note: Some(format!("converted from lead {}", lead.id)),
        at: opp.created_at,
        keep_next_action: false,
    };
    enter_stage(conn, &mut opp, None, &target, &change)?;
    opp_store::insert(conn, &opp, &vis)?;
    lead.stamp_next(&caller.user_id, change.at);
    lead.status = LeadStatus::Converted.as_str().into();
    lead.converted_at = Some(change.at);
    lead.converted_opportunity_id = Some(opp.id.clone());
    store::save(conn, &lead, &vis)?;
    Ok(ConversionOut {
        lead: lead.into(),
        account: account.into(),
        contact: contact.into(),
        opportunity: OpportunityOut::new(opp, target.probability),
    })
}

#[derive(Serialize, ToSchema)]
pub struct ScoringRulesOut {
    /// Applied in order; a lead's score is the sum of the matching rules' points,
    /// clamped to 0–100.
    pub rules: Vec<ScoringRule>,
    /// Fields a rule may test.
    pub fields: Vec<&'static str>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoringRuleInput {
    /// Stable id; generated when absent.
    pub id: Option<String>,
    #[schema(example = "bant.budget")]
    pub field: String,
    #[schema(example = "approved")]
    pub value: String,
    #[schema(example = 25, minimum = -100, maximum = 100)]
    pub points: i32,
    #[schema(example = "预算已批准")]
    pub label: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceScoringRules {
    pub rules: Vec<ScoringRuleInput>,
}

#[derive(Serialize, ToSchema)]
pub struct ScoringRulesReplaced {
    pub rules: Vec<ScoringRule>,
    pub fields: Vec<&'static str>,
    /// How many leads were rescored with the new rules.
    pub rescored: usize,
}

/// The lead scoring rules.
#[utoipa::path(get, path = "/api/v1/scoring-rules", tag = "leads", operation_id = "list_scoring_rules",
    security(("bearer" = ["leads:read"])), responses((status = 200, body = ScoringRulesOut)))]
pub async fn list_scoring_rules(
    state: web::Data<AppState>,
    caller: Caller,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let rules = storage::run(&state.pool, scoring::rules).await?;
    Ok(HttpResponse::Ok().json(ScoringRulesOut {
        rules,
        fields: RULE_FIELDS.to_vec(),
    }))
}

/// Replaces the scoring rules (admin) and rescores every lead that is not converted.
#[utoipa::path(put, path = "/api/v1/scoring-rules", tag = "leads", operation_id = "replace_scoring_rules",
    security(("bearer" = [])), request_body = ReplaceScoringRules,
    responses((status = 200, body = ScoringRulesReplaced), (status = 403, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn replace_scoring_rules(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<ReplaceScoringRules>,
) -> AppResult<HttpResponse> {
    caller.require_person()?;
    caller.require_role(&[Role::Admin])?;
    let rules = check_rules(&body.0.rules)?;
    let (rules, rescored) = storage::run_tx(&state.pool, move |conn| {
        scoring::replace_rules(conn, &rules)?;
        let leads = store::unconverted(conn)?;
        for mut lead in leads.iter().cloned() {
            apply_score(&mut lead, &rules);
            store::set_score(conn, &lead.id, lead.score, &lead.score_breakdown)?;
        }
        Ok((rules, leads.len()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(ScoringRulesReplaced {
        rules,
        fields: RULE_FIELDS.to_vec(),
        rescored,
    }))
}

fn check_rules(input: &[ScoringRuleInput]) -> AppResult<Vec<ScoringRule>> {
    let mut p = Problems::default();
    if input.len() > 200 {
        p.add("rules", "too_many", "at most 200 rules");
    }
    let mut out: Vec<ScoringRule> = Vec::new();
    for (i, r) in input.iter().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        let field = r.field.trim().to_owned();
        match rule_field_values(&field) {
            None => p.add(
                at("field"),
                "unknown_value",
                format!("use one of {}", RULE_FIELDS.join(", ")),
            ),
            Some(Some(values)) if !values.contains(&r.value.as_str()) => p.add(
                at("value"),
                "unknown_value",
                format!("use one of {}", values.join(", ")),
            ),
            _ => {}
        }
        let value = required_text(&mut p, &at("value"), &r.value, 100);
        if !(-100..=100).contains(&r.points) {
            p.add(at("points"), "out_of_range", "must be between -100 and 100");
        }
        let label = required_text(&mut p, &at("label"), &r.label, 100);
        let id =
            r.id.clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(storage::new_id);
        if out.iter().any(|o| o.id == id) {
            p.add(at("id"), "duplicate", "rule ids must be unique");
        }
        out.push(ScoringRule {
            id,
            field,
            value,
            points: r.points,
            label,
        });
    }
    p.into_result()?;
    Ok(out)
}
