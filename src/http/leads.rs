//! Leads: capture, screening, BANT scoring, disqualification and conversion.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::accounts::{AccountOut, ContactOut};
use super::crud::{delete_owned, patch_owned};
use super::extract::{etag, ApiJson, ApiQuery, IfMatch};
use super::fields::MergePatch;
use super::opportunities::OpportunityOut;
use super::pagination::{page_request, PageOut};
use crate::auth::api_keys::Scope;
use crate::auth::Caller;
use crate::crm::conversion::{self, ConvertRequest};
pub use crate::crm::leads::LeadInput;
use crate::crm::leads::{self as crm};
pub use crate::crm::views::LeadOut;
use crate::domain::lead::{
    rule_field_values, CompanySize, LeadSource, LeadStatus, ScoringRule, RULE_FIELDS,
};
use crate::domain::user::Role;
use crate::domain::{required_text, Problems};
use crate::error::AppResult;
use crate::state::AppState;
use crate::storage::leads::{self as store, LeadFilter, LeadRow};
use crate::storage::{self, scoring, Visible};

/// The body of a PATCH: any writable members of [`LeadInput`].
pub type LeadPatch = MergePatch<LeadInput>;

fn respond(status: StatusCode, l: LeadRow) -> HttpResponse {
    super::answer(status, "leads", &l.id)
        .insert_header(etag(l.version))
        .json(LeadOut::from(l))
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
    let row = storage::run_tx(&state.pool, move |conn| crm::create(conn, &caller, &body.0)).await?;
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
    responses((status = 200, description = "One page as JSON, or every matching row with `Accept: text/csv` or `application/x-ndjson`", content((PageOut<LeadOut> = "application/json"), (String = "text/csv"), (String = "application/x-ndjson"))), (status = 400, body = crate::error::Problem)))]
pub async fn list_leads(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListLeads>,
    http_req: HttpRequest,
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
        status: q.status,
        source: q.source,
        industry: q.industry,
        company_size: q.company_size,
        region: q.region,
        owner_id: q.owner_id,
        tag: q.tag,
        min_score: q.min_score,
        created_from: q.created_from.map(|t| t.naive_utc()),
        created_to: q.created_to.map(|t| t.naive_utc()),
        q: q.q.filter(|s| !s.trim().is_empty()),
    };
    let vis = caller.visibility();
    super::export::list_or_export(
        &state.pool,
        &http_req,
        "leads",
        page,
        move |conn, req| store::list(conn, &vis, &filter, req),
        LeadOut::from,
    )
    .await
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
        Ok(LeadRow::find_visible(conn, &vis, &id)?)
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
    let row = patch_owned(
        &state,
        caller,
        id.into_inner(),
        if_match,
        body.0,
        crm::ops(),
    )
    .await?;
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
    delete_owned(&state, caller, id.into_inner(), if_match, crm::remove).await?;
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
    let row = storage::run_tx(&state.pool, move |conn| {
        crm::disqualify(conn, &caller, &id, if_match.0, &body.0.reason)
    })
    .await?;
    Ok(respond(StatusCode::OK, row))
}

#[derive(Serialize, ToSchema)]
pub struct ConversionOut {
    pub lead: LeadOut,
    pub account: AccountOut,
    pub contact: ContactOut,
    pub opportunity: OpportunityOut,
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
    let currency = state.settings.default_currency.clone();
    let done = storage::run_tx(&state.pool, move |conn| {
        conversion::convert(conn, &caller, &currency, &id, body.0)
    })
    .await?;
    let (deal, probability) = done.opportunity;
    let out = ConversionOut {
        lead: done.lead.into(),
        account: done.account.into(),
        contact: done.contact.into(),
        opportunity: OpportunityOut::new(deal, probability),
    };
    // The conversion's primary record is the new deal.
    Ok(super::answer(StatusCode::CREATED, "opportunities", &out.opportunity.id).json(out))
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
        let rescored = crm::replace_rules(conn, &rules)?;
        Ok((rules, rescored))
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
