//! Opportunities: CRUD, gated stage moves, win / lose / reopen, the stage history, and
//! the managed list of loss reasons.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::accounts::not_visible;
use super::crud::{stamp_new_or_next, Stamped};
use super::extract::{etag, ApiJson, ApiQuery, IfMatch, OptionalJson};
use super::fields::{
    custom_json, json_list, json_object, opt_text, patched, resolve_owner, tags_json, MergePatch,
};
use super::pagination::{page_out, page_request, PageOut};
use super::utc;
use crate::auth::api_keys::Scope;
use crate::auth::Caller;
use crate::domain::lead::{CompanySize, LeadSource};
use crate::domain::money::{format_amount, parse_amount, parse_currency};
use crate::domain::opportunity::{Channel, OpportunityStatus};
use crate::domain::pipeline::StageKind;
use crate::domain::user::Role;
use crate::domain::{required_text, Problems, MAX_NOTE_CHARS};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::accounts::{account, contact};
use crate::storage::opportunities::{
    self as store, enter_stage, stage_kind, OpportunityFilter, OpportunityRow, StageChange,
};
use crate::storage::pipelines::{self as pipelines, StageRow};
use crate::storage::scoring::{self, LossReasonRow};
use crate::storage::{self, activities, check_version, leads, DbConn};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NextAction {
    #[schema(example = "发送方案并约定讲解时间")]
    pub text: String,
    pub due_at: Option<DateTime<Utc>>,
}

/// The writable fields of an opportunity. `status`, `lost_reason_id`, `stage_entered_at`
/// and the other derived fields change only through the stage endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpportunityInput {
    #[schema(example = "云启科技 CRM 升级")]
    pub name: String,
    pub pipeline_id: String,
    /// An open stage of the pipeline; defaults to the first. Changing it is a stage move
    /// (gated like `/move`).
    pub stage_id: Option<String>,
    /// Decimal string, e.g. `"12500.00"`.
    #[schema(example = "12500.00")]
    pub amount: Option<String>,
    /// ISO 4217; defaults to the server's currency.
    #[schema(example = "CNY")]
    pub currency: Option<String>,
    /// Overrides the stage's probability (0–100); null uses the stage's.
    pub probability: Option<i32>,
    pub expected_close_date: Option<NaiveDate>,
    pub account_id: Option<String>,
    pub contact_id: Option<String>,
    pub lead_id: Option<String>,
    /// Defaults to the caller.
    pub owner_id: Option<String>,
    pub source: Option<LeadSource>,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Defaults from the stage's `next_action_within_days` when the deal enters a stage.
    pub next_action: Option<NextAction>,
    pub external_id: Option<String>,
    pub custom: Option<Map<String, Value>>,
}

/// The body of a PATCH: any writable members of [`OpportunityInput`].
pub type OpportunityPatch = MergePatch<OpportunityInput>;

#[derive(Serialize, ToSchema)]
pub struct OpportunityOut {
    pub id: String,
    pub name: String,
    pub pipeline_id: String,
    pub stage_id: String,
    pub status: OpportunityStatus,
    #[schema(example = "12500.00")]
    pub amount: Option<String>,
    pub currency: String,
    /// The override, if any.
    pub probability: Option<i32>,
    /// The override or else the stage's probability.
    pub effective_probability: i32,
    pub expected_close_date: Option<NaiveDate>,
    pub account_id: Option<String>,
    pub contact_id: Option<String>,
    pub lead_id: Option<String>,
    pub owner_id: String,
    pub source: Option<LeadSource>,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    pub tags: Vec<String>,
    pub next_action: Option<NextAction>,
    pub lost_reason_id: Option<String>,
    pub lost_note: Option<String>,
    pub stage_entered_at: DateTime<Utc>,
    /// Latest completed activity (not counted as a change: the version stays).
    pub last_activity_at: Option<DateTime<Utc>>,
    pub won_at: Option<DateTime<Utc>>,
    pub lost_at: Option<DateTime<Utc>>,
    pub external_id: Option<String>,
    pub custom: Map<String, Value>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
}

impl OpportunityOut {
    pub fn new(o: OpportunityRow, stage_probability: i32) -> Self {
        let status = OpportunityStatus::parse(&o.status).unwrap_or(OpportunityStatus::Open);
        let closed = |s: OpportunityStatus| o.closed_at.filter(|_| status == s).map(utc);
        OpportunityOut {
            effective_probability: o.probability.unwrap_or(stage_probability),
            won_at: closed(OpportunityStatus::Won),
            lost_at: closed(OpportunityStatus::Lost),
            status,
            amount: o.amount_minor.map(format_amount),
            source: o.source.as_deref().and_then(LeadSource::parse),
            company_size: o.company_size.as_deref().and_then(CompanySize::parse),
            tags: json_list(&o.tags),
            custom: json_object(&o.custom),
            next_action: o.next_action_text.clone().map(|text| NextAction {
                text,
                due_at: o.next_action_due_at.map(utc),
            }),
            stage_entered_at: utc(o.stage_entered_at),
            last_activity_at: o.last_activity_at.map(utc),
            created_at: utc(o.created_at),
            updated_at: utc(o.updated_at),
            id: o.id,
            name: o.name,
            pipeline_id: o.pipeline_id,
            stage_id: o.stage_id,
            currency: o.currency,
            probability: o.probability,
            expected_close_date: o.expected_close_date,
            account_id: o.account_id,
            contact_id: o.contact_id,
            lead_id: o.lead_id,
            owner_id: o.owner_id,
            industry: o.industry,
            region: o.region,
            lost_reason_id: o.lost_reason_id,
            lost_note: o.lost_note,
            external_id: o.external_id,
            version: o.version,
            created_by: o.created_by,
            updated_by: o.updated_by,
        }
    }
}

impl From<&OpportunityRow> for OpportunityInput {
    fn from(o: &OpportunityRow) -> Self {
        OpportunityInput {
            name: o.name.clone(),
            pipeline_id: o.pipeline_id.clone(),
            stage_id: Some(o.stage_id.clone()),
            amount: o.amount_minor.map(format_amount),
            currency: Some(o.currency.clone()),
            probability: o.probability,
            expected_close_date: o.expected_close_date,
            account_id: o.account_id.clone(),
            contact_id: o.contact_id.clone(),
            lead_id: o.lead_id.clone(),
            owner_id: Some(o.owner_id.clone()),
            source: o.source.as_deref().and_then(LeadSource::parse),
            industry: o.industry.clone(),
            company_size: o.company_size.as_deref().and_then(CompanySize::parse),
            region: o.region.clone(),
            tags: json_list(&o.tags),
            next_action: o.next_action_text.clone().map(|text| NextAction {
                text,
                due_at: o.next_action_due_at.map(utc),
            }),
            external_id: o.external_id.clone(),
            custom: Some(json_object(&o.custom)),
        }
    }
}

fn respond(status: StatusCode, o: OpportunityRow, stage_probability: i32) -> HttpResponse {
    super::answer(status, "opportunities", &o.id)
        .insert_header(etag(o.version))
        .json(OpportunityOut::new(o, stage_probability))
}

/// Checks input and builds the row (stage fields untouched on update); returns it with
/// the stage the input asks for.
pub fn opportunity_row(
    conn: &mut DbConn,
    caller: &Caller,
    state: &AppState,
    input: &OpportunityInput,
    base: Option<&OpportunityRow>,
) -> AppResult<(OpportunityRow, StageRow)> {
    let mut p = Problems::default();
    let vis = caller.visibility();
    let name = required_text(&mut p, "name", &input.name, 200);
    if let Some(b) = base {
        if b.pipeline_id != input.pipeline_id {
            return Err(AppError::field(
                "pipeline_id",
                "immutable",
                "an opportunity stays in its pipeline",
            ));
        }
    }
    let stages = pipelines::stages_of(conn, &input.pipeline_id)?;
    if stages.is_empty() {
        return Err(AppError::field(
            "pipeline_id",
            "not_found",
            "no such pipeline",
        ));
    }
    let target = match &input.stage_id {
        Some(id) => stages
            .iter()
            .find(|s| &s.id == id)
            .cloned()
            .ok_or_else(|| {
                AppError::field("stage_id", "not_found", "no such stage in this pipeline")
            })?,
        None => first_open_stage(&stages)?,
    };
    let amount_minor = match input
        .amount
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        Some(a) => parse_amount(a)
            .map_err(|m| p.add("amount", "invalid", m))
            .ok(),
        None => None,
    };
    let currency = match &input.currency {
        Some(c) => parse_currency(c).unwrap_or_else(|m| {
            p.add("currency", "invalid", m);
            String::new()
        }),
        None => state.settings.default_currency.clone(),
    };
    if let Some(prob) = input.probability {
        if !(0..=100).contains(&prob) {
            p.add("probability", "out_of_range", "must be between 0 and 100");
        }
    }
    if let Some(id) = &input.account_id {
        if account::find_visible(conn, &vis, id).is_err() {
            p.0.push(field_error(not_visible("account_id", "account")));
        }
    }
    if let Some(id) = &input.contact_id {
        if contact::find_visible(conn, &vis, id).is_err() {
            p.0.push(field_error(not_visible("contact_id", "contact")));
        }
    }
    if let Some(id) = &input.lead_id {
        if leads::find_visible(conn, &vis, id).is_err() {
            p.0.push(field_error(not_visible("lead_id", "lead")));
        }
    }
    let owner_id = resolve_owner(conn, &mut p, caller, &input.owner_id)?;
    let next_action = input.next_action.as_ref().map(|n| {
        let text = required_text(&mut p, "next_action.text", &n.text, 500);
        (text, n.due_at.map(|d| d.naive_utc()))
    });
    let row = OpportunityRow {
        name,
        amount_minor,
        currency,
        probability: input.probability,
        expected_close_date: input.expected_close_date,
        account_id: input.account_id.clone(),
        contact_id: input.contact_id.clone(),
        lead_id: input.lead_id.clone(),
        owner_id,
        source: input.source.map(|s| s.as_str().to_owned()),
        industry: opt_text(&mut p, "industry", &input.industry, 100),
        company_size: input.company_size.map(|s| s.as_str().to_owned()),
        region: opt_text(&mut p, "region", &input.region, 100),
        tags: tags_json(&mut p, &input.tags),
        next_action_text: next_action.as_ref().map(|n| n.0.clone()),
        next_action_due_at: next_action.and_then(|n| n.1),
        external_id: opt_text(&mut p, "external_id", &input.external_id, 200),
        custom: custom_json(&mut p, &input.custom),
        ..stamp_new_or_next(base.cloned(), caller, |id, now| OpportunityRow {
            id,
            name: String::new(),
            pipeline_id: input.pipeline_id.clone(),
            stage_id: String::new(),
            status: "open".into(),
            amount_minor: None,
            currency: String::new(),
            probability: None,
            expected_close_date: None,
            account_id: None,
            contact_id: None,
            lead_id: None,
            owner_id: String::new(),
            source: None,
            industry: None,
            company_size: None,
            region: None,
            tags: "[]".into(),
            next_action_text: None,
            next_action_due_at: None,
            lost_reason_id: None,
            lost_note: None,
            stage_entered_at: now,
            last_activity_at: None,
            closed_at: None,
            external_id: None,
            custom: "{}".into(),
            version: 1,
            created_at: now,
            updated_at: now,
            created_by: Some(caller.user_id.clone()),
            updated_by: Some(caller.user_id.clone()),
        })
    };
    p.into_result()?;
    Ok((row, target))
}

fn field_error(e: AppError) -> crate::error::FieldError {
    match e {
        AppError::Validation(mut v) if !v.is_empty() => v.remove(0),
        other => crate::error::FieldError::new("", "invalid", other.to_string()),
    }
}

pub fn first_open_stage(stages: &[StageRow]) -> AppResult<StageRow> {
    stages
        .iter()
        .find(|s| stage_kind(s) == StageKind::Open)
        .cloned()
        .ok_or_else(|| AppError::internal("pipeline without an open stage"))
}

fn can_read(caller: &Caller) -> AppResult<()> {
    caller.require_scope(Scope::OpportunitiesRead)
}

fn can_write(caller: &Caller) -> AppResult<()> {
    caller.require_scope(Scope::OpportunitiesWrite)
}

fn change<'a>(caller: &'a Caller, note: Option<String>, keep_next_action: bool) -> StageChange<'a> {
    StageChange {
        actor: &caller.user_id,
        channel: Channel::Api,
        note,
        at: storage::now(),
        keep_next_action,
    }
}

/// Creates an opportunity in an open stage of its pipeline (the first by default). The
/// stage's `required_fields` apply; the creation is the first row of the stage log.
#[utoipa::path(post, path = "/api/v1/opportunities", tag = "opportunities", operation_id = "create_opportunity",
    security(("bearer" = ["opportunities:write"])), request_body = OpportunityInput,
    responses(
        (status = 201, body = OpportunityOut, headers(("ETag" = String))),
        (status = 409, body = crate::error::Problem, description = "duplicate external_id"),
        (status = 422, body = crate::error::Problem, description = "invalid input or `stage_requirements_unmet`"),
    ))]
pub async fn create_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<OpportunityInput>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let st = state.clone();
    let (row, prob) = storage::run_tx(&state.pool, move |conn| {
        let (mut row, target) = opportunity_row(conn, &caller, &st, &body.0, None)?;
        if stage_kind(&target) != StageKind::Open {
            return Err(AppError::field(
                "stage_id",
                "closed_stage",
                "create deals in an open stage; then use /win or /lose",
            ));
        }
        let keep = body.0.next_action.is_some();
        row.stage_id = target.id.clone();
        // The creation is the first stay: it starts when the record does.
        let first = StageChange {
            at: row.created_at,
            ..change(&caller, None, keep)
        };
        enter_stage(conn, &mut row, None, &target, &first)?;
        store::insert(conn, &row, &caller.visibility())?;
        Ok((row, target.probability))
    })
    .await?;
    Ok(respond(StatusCode::CREATED, row, prob))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListOpportunities {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// `created_at` (default), `updated_at`, `name`, `amount`, `stage_entered_at`; `-` for descending.
    pub sort: Option<String>,
    pub pipeline_id: Option<String>,
    pub stage_id: Option<String>,
    pub status: Option<OpportunityStatus>,
    pub owner_id: Option<String>,
    pub tag: Option<String>,
    pub source: Option<LeadSource>,
    pub industry: Option<String>,
    /// `true`: only stalled open deals (past their stage's `stalled_after_days` in the
    /// stage or without activity); `false`: the others.
    pub stalled: Option<bool>,
    pub close_from: Option<NaiveDate>,
    pub close_to: Option<NaiveDate>,
    pub amount_min: Option<String>,
    pub amount_max: Option<String>,
    /// Part of the name.
    pub q: Option<String>,
}

fn amount_param(field: &str, value: &Option<String>) -> AppResult<Option<i64>> {
    value
        .as_deref()
        .map(|v| {
            // Exactly the documented pattern: no spaces around the number.
            let parsed = if v.trim() == v {
                parse_amount(v)
            } else {
                Err("must be a decimal string such as \"12500.00\" without spaces")
            };
            parsed.map_err(|m| AppError::BadRequest {
                code: ProblemCode::InvalidParameter,
                detail: format!("{field} {m}"),
                errors: vec![crate::error::FieldError::new(field, "invalid", m)],
            })
        })
        .transpose()
}

/// Lists the opportunities visible to the caller.
#[utoipa::path(get, path = "/api/v1/opportunities", tag = "opportunities", operation_id = "list_opportunities",
    security(("bearer" = ["opportunities:read"])), params(ListOpportunities),
    responses((status = 200, body = PageOut<OpportunityOut>), (status = 400, body = crate::error::Problem)))]
pub async fn list_opportunities(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListOpportunities>,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let q = query.0;
    let page = page_request(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        super::pagination::sorts("/api/v1/opportunities"),
        "created_at",
    )?;
    let filter = OpportunityFilter {
        amount_min: amount_param("amount_min", &q.amount_min)?,
        amount_max: amount_param("amount_max", &q.amount_max)?,
        pipeline_id: q.pipeline_id,
        stage_id: q.stage_id,
        status: q.status.map(|s| s.as_str().to_owned()),
        owner_id: q.owner_id,
        tag: q.tag,
        source: q.source.map(|s| s.as_str().to_owned()),
        industry: q.industry,
        stalled: q.stalled,
        close_from: q.close_from,
        close_to: q.close_to,
        q: q.q,
    };
    let vis = caller.visibility();
    let req = page.clone();
    let rows = storage::run(&state.pool, move |conn| {
        store::list(conn, &vis, &filter, &req)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page_out(rows, &page, |(o, p)| OpportunityOut::new(o, p))))
}

/// One opportunity.
#[utoipa::path(get, path = "/api/v1/opportunities/{id}", tag = "opportunities", operation_id = "find_opportunity",
    security(("bearer" = ["opportunities:read"])), params(("id" = String, Path)),
    responses((status = 200, body = OpportunityOut, headers(("ETag" = String))), (status = 404, body = crate::error::Problem)))]
pub async fn find_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let vis = caller.visibility();
    let (row, prob) = storage::run(&state.pool, move |conn| {
        store::find_visible_with_probability(conn, &vis, &id)
    })
    .await?;
    Ok(respond(StatusCode::OK, row, prob))
}

/// Changes an opportunity (JSON merge patch of its writable fields). A new `stage_id`
/// is a stage move: the target stage's requirements are checked against the patched
/// record and the move is logged.
#[utoipa::path(patch, path = "/api/v1/opportunities/{id}", tag = "opportunities", operation_id = "update_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = OpportunityPatch,
    responses(
        (status = 200, body = OpportunityOut, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem, description = "version_conflict"),
        (status = 422, body = crate::error::Problem, description = "invalid input or `stage_requirements_unmet`"),
    ))]
pub async fn update_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<Value>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let st = state.clone();
    let (row, prob) = storage::run_tx(&state.pool, move |conn| {
        let current = store::lock_visible(conn, &caller.visibility(), &id)?;
        check_version(if_match.0, current.version)?;
        let input = patched(&OpportunityInput::from(&current), &body.0)?;
        let (mut row, target) = opportunity_row(conn, &caller, &st, &input, Some(&current))?;
        if target.id != current.stage_id {
            ensure_open(&current)?;
            let keep = body.0.get("next_action").is_some();
            enter_stage(
                conn,
                &mut row,
                Some(current.stage_id.clone()),
                &target,
                &change(&caller, None, keep),
            )?;
        }
        store::save(conn, &row, &caller.visibility())?;
        Ok((row, target.probability))
    })
    .await?;
    Ok(respond(StatusCode::OK, row, prob))
}

fn ensure_open(o: &OpportunityRow) -> AppResult<()> {
    match o.status.as_str() {
        "open" => Ok(()),
        "lost" => Err(AppError::Conflict {
            code: ProblemCode::OpportunityClosed,
            detail: "The deal is lost; bring it back with /reopen.".into(),
            existing_id: None,
        }),
        _ => Err(AppError::Conflict {
            code: ProblemCode::OpportunityClosed,
            detail: "The deal is won; its stage no longer changes.".into(),
            existing_id: None,
        }),
    }
}

/// Deletes an opportunity and its activities. Its stage log stays (it is history).
#[utoipa::path(delete, path = "/api/v1/opportunities/{id}", tag = "opportunities", operation_id = "delete_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 412, body = crate::error::Problem)))]
pub async fn delete_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    storage::run_tx(&state.pool, move |conn| {
        let current = store::lock_visible(conn, &caller.visibility(), &id)?;
        check_version(if_match.0, current.version)?;
        activities::delete_for_opportunity(conn, &id)?;
        leads::forget_conversion(conn, &id)?;
        store::delete_row(conn, &id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub stage_id: String,
    /// Kept in the stage log.
    pub note: Option<String>,
    /// Check the gate and answer as a real move would, without writing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Required when the target is a lost stage.
    pub loss_reason_id: Option<String>,
    pub lost_note: Option<String>,
    /// Replaces the next action the stage would suggest.
    pub next_action: Option<NextAction>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct WinRequest {
    pub note: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoseRequest {
    /// One of `/loss-reasons`.
    #[schema(example = "competitor")]
    pub loss_reason_id: String,
    pub note: Option<String>,
    /// Which lost stage, when the pipeline has several; defaults to the first.
    pub stage_id: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopenRequest {
    /// The open stage the deal flows back to.
    pub stage_id: String,
    pub note: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// What a stage endpoint decided: the target stage and the log note.
struct Decision {
    target: StageRow,
    note: Option<String>,
    keep_next_action: bool,
}

/// The shared path of every stage endpoint: lock the deal, check If-Match, let `decide`
/// pick the target (and adjust the deal), pass the gate, log, save — or, with `dry_run`,
/// do all of it and roll back.
async fn stage_endpoint<F>(
    state: web::Data<AppState>,
    caller: Caller,
    id: String,
    if_match: IfMatch,
    dry_run: bool,
    decide: F,
) -> AppResult<HttpResponse>
where
    F: FnOnce(&mut DbConn, &mut OpportunityRow, &[StageRow]) -> AppResult<Decision>
        + Send
        + 'static,
{
    can_write(&caller)?;
    let (row, prob) = storage::run_tx_maybe_dry(&state.pool, dry_run, move |conn| {
        let mut row = store::lock_visible(conn, &caller.visibility(), &id)?;
        check_version(if_match.0, row.version)?;
        let stages = pipelines::stages_of(conn, &row.pipeline_id)?;
        let from = row.stage_id.clone();
        let d = decide(conn, &mut row, &stages)?;
        enter_stage(
            conn,
            &mut row,
            Some(from),
            &d.target,
            &change(&caller, d.note, d.keep_next_action),
        )?;
        row.stamp_next(&caller.user_id, storage::now());
        store::save(conn, &row, &caller.visibility())?;
        Ok((row, d.target.probability))
    })
    .await?;
    Ok(respond(StatusCode::OK, row, prob))
}

fn stage_in<'a>(stages: &'a [StageRow], id: &str, field: &str) -> AppResult<&'a StageRow> {
    stages
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| AppError::field(field, "not_found", "no such stage in this deal's pipeline"))
}

fn check_loss_reason(conn: &mut DbConn, id: &str) -> AppResult<()> {
    match scoring::find_loss_reason(conn, id)? {
        Some(r) if r.active => Ok(()),
        _ => Err(AppError::field(
            "loss_reason_id",
            "not_found",
            "no such active loss reason; see /loss-reasons",
        )),
    }
}

fn note_text(note: Option<String>) -> AppResult<Option<String>> {
    let mut p = Problems::default();
    let note = opt_text(&mut p, "note", &note, MAX_NOTE_CHARS);
    p.into_result()?;
    Ok(note)
}

/// Moves a deal to another stage of its pipeline. The target's `required_fields` must
/// be set (422 `stage_requirements_unmet` lists the missing ones); a won or lost target
/// wins or loses the deal. `dry_run` answers the same without writing.
#[utoipa::path(post, path = "/api/v1/opportunities/{id}/move", tag = "opportunities", operation_id = "move_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = MoveRequest,
    responses(
        (status = 200, body = OpportunityOut, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem, description = "the deal is closed"),
        (status = 412, body = crate::error::Problem, description = "version_conflict"),
        (status = 422, body = crate::error::Problem, description = "`stage_requirements_unmet` or invalid input"),
    ))]
pub async fn move_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<MoveRequest>,
) -> AppResult<HttpResponse> {
    let b = body.0;
    let mut p = Problems::default();
    let note = opt_text(&mut p, "note", &b.note, MAX_NOTE_CHARS);
    let lost_note = opt_text(&mut p, "lost_note", &b.lost_note, MAX_NOTE_CHARS);
    let next_action_text = b
        .next_action
        .as_ref()
        .map(|n| required_text(&mut p, "next_action.text", &n.text, 500));
    p.into_result()?;
    let dry_run = b.dry_run;
    stage_endpoint(
        state,
        caller,
        id.into_inner(),
        if_match,
        dry_run,
        move |conn, row, stages| {
            ensure_open(row)?;
            let target = stage_in(stages, &b.stage_id, "stage_id")?.clone();
            if stage_kind(&target) == StageKind::Lost {
                if let Some(reason) = &b.loss_reason_id {
                    check_loss_reason(conn, reason)?;
                    row.lost_reason_id = Some(reason.clone());
                    row.lost_note = lost_note.clone();
                }
            }
            let keep = match &b.next_action {
                Some(n) => {
                    row.next_action_text = next_action_text.clone();
                    row.next_action_due_at = n.due_at.map(|d| d.naive_utc());
                    true
                }
                None => false,
            };
            Ok(Decision {
                target,
                note,
                keep_next_action: keep,
            })
        },
    )
    .await
}

/// Wins a deal: moves it to the pipeline's won stage (its requirements apply).
#[utoipa::path(post, path = "/api/v1/opportunities/{id}/win", tag = "opportunities", operation_id = "win_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body(content = Option<WinRequest>, description = "Optional: without a body (or with an empty one) the deal is simply won. A body that is sent must be JSON with known members."),
    responses(
        (status = 200, body = OpportunityOut, headers(("ETag" = String))),
        (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn win_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: OptionalJson<WinRequest>,
) -> AppResult<HttpResponse> {
    let b = body.0.unwrap_or_default();
    let note = note_text(b.note)?;
    stage_endpoint(
        state,
        caller,
        id.into_inner(),
        if_match,
        b.dry_run,
        move |_, row, stages| {
            ensure_open(row)?;
            let target = stages
                .iter()
                .find(|s| stage_kind(s) == StageKind::Won)
                .cloned()
                .ok_or_else(|| AppError::internal("pipeline without a won stage"))?;
            Ok(Decision {
                target,
                note,
                keep_next_action: false,
            })
        },
    )
    .await
}

/// Loses a deal with a managed loss reason.
#[utoipa::path(post, path = "/api/v1/opportunities/{id}/lose", tag = "opportunities", operation_id = "lose_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = LoseRequest,
    responses(
        (status = 200, body = OpportunityOut, headers(("ETag" = String))),
        (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn lose_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<LoseRequest>,
) -> AppResult<HttpResponse> {
    let b = body.0;
    let note = note_text(b.note)?;
    stage_endpoint(
        state,
        caller,
        id.into_inner(),
        if_match,
        b.dry_run,
        move |conn, row, stages| {
            ensure_open(row)?;
            check_loss_reason(conn, &b.loss_reason_id)?;
            let target = match &b.stage_id {
                Some(sid) => stage_in(stages, sid, "stage_id")?.clone(),
                None => stages
                    .iter()
                    .find(|s| stage_kind(s) == StageKind::Lost)
                    .cloned()
                    .ok_or_else(|| AppError::internal("pipeline without a lost stage"))?,
            };
            if stage_kind(&target) != StageKind::Lost {
                return Err(AppError::field(
                    "stage_id",
                    "not_lost_stage",
                    "choose a lost stage",
                ));
            }
            row.lost_reason_id = Some(b.loss_reason_id.clone());
            row.lost_note = note.clone();
            Ok(Decision {
                target,
                note,
                keep_next_action: false,
            })
        },
    )
    .await
}

/// Brings a lost deal back to an open stage (回流); counted by the reactivation report.
#[utoipa::path(post, path = "/api/v1/opportunities/{id}/reopen", tag = "opportunities", operation_id = "reopen_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = ReopenRequest,
    responses(
        (status = 200, body = OpportunityOut, headers(("ETag" = String))),
        (status = 409, body = crate::error::Problem, description = "the deal is not lost"),
        (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn reopen_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<ReopenRequest>,
) -> AppResult<HttpResponse> {
    let b = body.0;
    let note = note_text(b.note)?;
    stage_endpoint(
        state,
        caller,
        id.into_inner(),
        if_match,
        b.dry_run,
        move |_, row, stages| {
            if row.status != "lost" {
                return Err(AppError::Conflict {
                    code: ProblemCode::NotLost,
                    detail: "Only a lost deal can be reopened.".into(),
                    existing_id: None,
                });
            }
            let target = stage_in(stages, &b.stage_id, "stage_id")?.clone();
            if stage_kind(&target) != StageKind::Open {
                return Err(AppError::field(
                    "stage_id",
                    "not_open_stage",
                    "reopen into an open stage",
                ));
            }
            Ok(Decision {
                target,
                note,
                keep_next_action: false,
            })
        },
    )
    .await
}

#[derive(Serialize, ToSchema)]
pub struct HistoryEntry {
    pub from_stage_id: Option<String>,
    pub from_stage_name: Option<String>,
    pub to_stage_id: String,
    pub to_stage_name: Option<String>,
    pub entered_at: DateTime<Utc>,
    /// When the deal entered the next stage; null for the current stay.
    pub left_at: Option<DateTime<Utc>>,
    /// `left_at − entered_at`; null for the current stay.
    pub duration_seconds: Option<i64>,
    pub actor_id: Option<String>,
    pub channel: Channel,
    pub note: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryOut {
    pub data: Vec<HistoryEntry>,
}

/// The deal's stage log, oldest first, with the time spent in each stay.
#[utoipa::path(get, path = "/api/v1/opportunities/{id}/history", tag = "opportunities", operation_id = "opportunity_history",
    security(("bearer" = ["opportunities:read"])), params(("id" = String, Path)),
    responses((status = 200, body = HistoryOut), (status = 404, body = crate::error::Problem)))]
pub async fn opportunity_history(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let vis = caller.visibility();
    let (rows, stages) = storage::run(&state.pool, move |conn| {
        let opp = store::find_visible(conn, &vis, &id)?;
        Ok((
            store::history(conn, &opp.id)?,
            pipelines::stages_of(conn, &opp.pipeline_id)?,
        ))
    })
    .await?;
    let name = |id: &str| stages.iter().find(|s| s.id == id).map(|s| s.name.clone());
    let mut data = Vec::with_capacity(rows.len());
    for (i, t) in rows.iter().enumerate() {
        let left_at = rows.get(i + 1).map(|next| next.entered_at);
        data.push(HistoryEntry {
            from_stage_name: t.from_stage_id.as_deref().and_then(name),
            from_stage_id: t.from_stage_id.clone(),
            to_stage_name: name(&t.to_stage_id),
            to_stage_id: t.to_stage_id.clone(),
            entered_at: utc(t.entered_at),
            left_at: left_at.map(utc),
            duration_seconds: left_at.map(|l| (l - t.entered_at).num_seconds()),
            actor_id: t.actor_id.clone(),
            channel: Channel::parse(&t.channel).unwrap_or(Channel::System),
            note: t.note.clone(),
        });
    }
    Ok(HttpResponse::Ok().json(HistoryOut { data }))
}

#[derive(Serialize, ToSchema)]
pub struct LossReasonOut {
    #[schema(example = "competitor")]
    pub id: String,
    #[schema(example = "竞争对手介入")]
    pub label: String,
    pub active: bool,
    pub position: i32,
}

impl From<LossReasonRow> for LossReasonOut {
    fn from(r: LossReasonRow) -> Self {
        LossReasonOut {
            id: r.id,
            label: r.label,
            active: r.active,
            position: r.position,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LossReasonList {
    pub data: Vec<LossReasonOut>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLossReason {
    /// Stable snake_case code used by clients and reports.
    #[schema(example = "price_too_high")]
    pub id: String,
    #[schema(example = "报价过高")]
    pub label: String,
}

/// The managed loss reasons.
#[utoipa::path(get, path = "/api/v1/loss-reasons", tag = "opportunities", operation_id = "list_loss_reasons",
    security(("bearer" = ["opportunities:read"])), responses((status = 200, body = LossReasonList)))]
pub async fn list_loss_reasons(
    state: web::Data<AppState>,
    caller: Caller,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let rows = storage::run(&state.pool, scoring::loss_reasons).await?;
    Ok(HttpResponse::Ok().json(LossReasonList {
        data: rows.into_iter().map(LossReasonOut::from).collect(),
    }))
}

/// Adds a loss reason (admin or manager).
#[utoipa::path(post, path = "/api/v1/loss-reasons", tag = "opportunities", operation_id = "create_loss_reason",
    security(("bearer" = [])), request_body = CreateLossReason,
    responses((status = 201, body = LossReasonOut), (status = 403, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn create_loss_reason(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateLossReason>,
) -> AppResult<HttpResponse> {
    caller.require_person()?;
    caller.require_role(&[Role::Admin, Role::Manager])?;
    let b = body.0;
    let mut p = Problems::default();
    let code = b.id.trim().to_owned();
    if code.is_empty()
        || code.len() > 50
        || !code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        p.add("id", "invalid", "use 1–50 characters of a-z, 0-9 and _");
    }
    let label = required_text(&mut p, "label", &b.label, 100);
    p.into_result()?;
    let row = storage::run_tx(&state.pool, move |conn| {
        if scoring::find_loss_reason(conn, &code)?.is_some() {
            return Err(AppError::Conflict {
                code: ProblemCode::LossReasonExists,
                detail: format!("The loss reason {code} already exists."),
                existing_id: Some(code),
            });
        }
        let row = LossReasonRow {
            position: scoring::next_loss_reason_position(conn)?,
            id: code,
            label,
            active: true,
            created_at: storage::now(),
        };
        scoring::insert_loss_reason(conn, &row)?;
        Ok(row)
    })
    .await?;
    // Loss reasons have no URL of their own; their list is where the new one is read.
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, "/api/v1/loss-reasons"))
        .json(LossReasonOut::from(row)))
}
