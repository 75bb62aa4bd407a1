//! Pipelines and their stages.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{etag, ApiJson, ApiQuery, IfMatch};
use super::pagination::{page_request, PageOut};
use super::{double_option, utc};
use crate::auth::api_keys::Scope;
use crate::auth::Caller;
use crate::crm::fields::opt_text;
use crate::crm::pipelines as crm;
use crate::domain::ids::{PipelineId, StageId};
use crate::domain::pipeline::{check_stage_set, StageDraft, StageInput, StageKind};
use crate::domain::templates::{template, TEMPLATE_KEYS};
use crate::domain::user::Role;
use crate::domain::{required_text, Problems, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage;
use crate::storage::pipelines::{self as store, PipelineFilter, PipelineWithStages, StageRow};

#[derive(Serialize, ToSchema)]
pub struct StageOut {
    pub id: String,
    pub pipeline_id: String,
    #[schema(example = "方案设计")]
    pub name: String,
    /// 0-based order within the pipeline.
    pub position: i32,
    #[schema(example = 40)]
    pub probability: i32,
    pub kind: StageKind,
    pub stalled_after_days: Option<i32>,
    pub required_fields: Vec<String>,
    pub exit_criteria: Vec<String>,
    pub suggested_actions: Vec<String>,
    pub next_action_within_days: Option<i32>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<StageRow> for StageOut {
    fn from(s: StageRow) -> Self {
        StageOut {
            required_fields: s.required_fields.into_inner(),
            exit_criteria: s.exit_criteria.into_inner(),
            suggested_actions: s.suggested_actions.into_inner(),
            kind: s.kind,
            id: s.id.into(),
            pipeline_id: s.pipeline_id.into(),
            name: s.name,
            position: s.position,
            probability: s.probability,
            stalled_after_days: s.stalled_after_days,
            next_action_within_days: s.next_action_within_days,
            version: s.version,
            created_at: utc(s.created_at),
            updated_at: utc(s.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PipelineOut {
    pub id: String,
    #[schema(example = "标准销售流程")]
    pub name: String,
    pub description: Option<String>,
    /// In position order.
    pub stages: Vec<StageOut>,
    /// Bumped by every change to the pipeline or one of its stages.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
}

impl From<PipelineWithStages> for PipelineOut {
    fn from(p: PipelineWithStages) -> Self {
        let r = p.pipeline;
        PipelineOut {
            id: r.id.into(),
            name: r.name,
            description: r.description,
            stages: p.stages.into_iter().map(StageOut::from).collect(),
            version: r.version,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
            created_by: r.created_by.map(String::from),
            updated_by: r.updated_by.map(String::from),
        }
    }
}

fn pipeline_response(status: StatusCode, p: PipelineWithStages) -> HttpResponse {
    super::answer(status, "pipelines", &p.pipeline.id)
        .insert_header(etag(p.pipeline.version))
        .json(PipelineOut::from(p))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePipeline {
    #[schema(example = "华东区大客户")]
    pub name: String,
    pub description: Option<String>,
    /// In order. Exactly one `won` stage, at least one `lost` and one `open` stage.
    pub stages: Vec<StageInput>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKey {
    /// 初步接触 → 意向确认 → 方案设计 → 预算评估 → 商务谈判 → 合同签订 → 售后跟进 (won), 输单 (lost)
    Standard,
    /// 需求发现 → 产品演示 → 试用验证 → 报价与方案 → 采购审批 → 赢单 / 输单
    Saas,
    /// 初步接触 → 临床需求确认 → 技术沟通 → 价格谈判 → 标书投递 → 合同签署 / 未中标
    MedicalDevices,
    /// 咨询 → 试听课 → 意向确认 → 方案定制 → 付费报名 / 流失
    Education,
}

impl TemplateKey {
    fn key(self) -> &'static str {
        match self {
            TemplateKey::Standard => TEMPLATE_KEYS[0],
            TemplateKey::Saas => TEMPLATE_KEYS[1],
            TemplateKey::MedicalDevices => TEMPLATE_KEYS[2],
            TemplateKey::Education => TEMPLATE_KEYS[3],
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromTemplate {
    pub template: TemplateKey,
    /// Defaults to the template's own name.
    pub name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePipeline {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListPipelines {
    /// 1–500, default 50.
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// `created_at` (default), `name`, `updated_at`; prefix `-` for descending.
    pub sort: Option<String>,
    /// Case-insensitive part of the name.
    pub q: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateStage {
    pub name: Option<String>,
    pub probability: Option<i32>,
    pub kind: Option<StageKind>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>)]
    pub stalled_after_days: Option<Option<i32>>,
    pub required_fields: Option<Vec<String>>,
    pub exit_criteria: Option<Vec<String>>,
    pub suggested_actions: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>)]
    pub next_action_within_days: Option<Option<i32>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageOrder {
    /// Every stage id of the pipeline, in the new order.
    pub stage_ids: Vec<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteStageQuery {
    /// Stage of the same pipeline and kind that receives the deals sitting in the
    /// deleted stage (open deals go to an open stage, lost deals to a lost one).
    pub move_to: Option<String>,
}

fn can_configure(caller: &Caller) -> AppResult<()> {
    caller.require_person()?;
    caller.require_role(&[Role::Admin, Role::Manager])
}

/// Changing the stages of an existing pipeline, or deleting it, reaches every team's
/// deals in it, and pipelines record no owning team: only admins restructure them.
fn can_restructure(caller: &Caller) -> AppResult<()> {
    caller.require_admin()
}

fn check_stages(inputs: &[StageInput], p: &mut Problems) -> Vec<StageDraft> {
    let drafts: Vec<StageDraft> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.position.is_some() {
                p.add(
                    format!("stages[{i}].position"),
                    "not_allowed",
                    "the order of the array is the order of the stages",
                );
            }
            StageDraft::check(s, &format!("stages[{i}]."), p)
        })
        .collect();
    check_stage_set(
        p,
        "stages",
        drafts.iter().map(|d| (d.name.as_str(), d.kind)),
    );
    drafts
}

async fn create(
    state: &AppState,
    caller: Caller,
    name: String,
    description: Option<String>,
    drafts: Vec<StageDraft>,
) -> AppResult<HttpResponse> {
    let created = storage::run_tx(&state.pool, move |conn| {
        store::create(
            conn,
            &name,
            description.as_deref(),
            &drafts,
            &caller.user_id,
        )
    })
    .await?;
    Ok(pipeline_response(StatusCode::CREATED, created))
}

/// Creates a pipeline with its stages.
#[utoipa::path(post, path = "/api/v1/pipelines", tag = "pipelines", operation_id = "create_pipeline",
    security(("bearer" = [])), request_body = CreatePipeline,
    responses(
        (status = 201, body = PipelineOut, headers(("ETag" = String))),
        (status = 403, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem, description = "`errors` names each invalid member"),
    ))]
pub async fn create_pipeline(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreatePipeline>,
) -> AppResult<HttpResponse> {
    can_configure(&caller)?;
    let b = body.0;
    let mut p = Problems::default();
    let name = required_text(&mut p, "name", &b.name, MAX_NAME_CHARS);
    let description = opt_text(&mut p, "description", &b.description, MAX_DESCRIPTION_CHARS);
    let drafts = check_stages(&b.stages, &mut p);
    p.into_result()?;
    create(&state, caller, name, description, drafts).await
}

/// Creates a pipeline from a ready-made template.
#[utoipa::path(post, path = "/api/v1/pipelines/from-template", tag = "pipelines",
    operation_id = "create_pipeline_from_template",
    security(("bearer" = [])), request_body = FromTemplate,
    responses(
        (status = 201, body = PipelineOut, headers(("ETag" = String))),
        (status = 403, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem, description = "unknown template"),
    ))]
pub async fn create_pipeline_from_template(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<FromTemplate>,
) -> AppResult<HttpResponse> {
    can_configure(&caller)?;
    let t = template(body.0.template.key())
        .ok_or_else(|| AppError::field("template", "unknown_value", "no such template"))?;
    let mut p = Problems::default();
    let name = match &body.0.name {
        Some(n) => required_text(&mut p, "name", n, 200),
        None => t.default_name.to_owned(),
    };
    let drafts = check_stages(&t.stages, &mut p);
    p.into_result()?;
    create(&state, caller, name, Some(t.description.to_owned()), drafts).await
}

/// Lists pipelines with their stages.
#[utoipa::path(get, path = "/api/v1/pipelines", tag = "pipelines", operation_id = "list_pipelines",
    security(("bearer" = ["pipelines:read"])), params(ListPipelines),
    responses((status = 200, description = "One page as JSON, or every matching row with `Accept: text/csv` or `application/x-ndjson`", content((PageOut<PipelineOut> = "application/json"), (String = "text/csv"), (String = "application/x-ndjson"))), (status = 400, body = crate::error::Problem)))]
pub async fn list_pipelines(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListPipelines>,
    http_req: actix_web::HttpRequest,
) -> AppResult<HttpResponse> {
    caller.require_scope(Scope::PipelinesRead)?;
    let q = query.0;
    let page = page_request(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        super::pagination::sorts("/api/v1/pipelines"),
        "created_at",
    )?;
    let filter = PipelineFilter {
        q: q.q.filter(|s| !s.trim().is_empty()),
    };
    super::export::list_or_export(
        &state.pool,
        &http_req,
        "pipelines",
        page,
        move |conn, req| store::list(conn, &filter, req),
        PipelineOut::from,
    )
    .await
}

/// One pipeline with its stages.
#[utoipa::path(get, path = "/api/v1/pipelines/{id}", tag = "pipelines", operation_id = "find_pipeline",
    security(("bearer" = ["pipelines:read"])), params(("id" = String, Path)),
    responses((status = 200, body = PipelineOut, headers(("ETag" = String))), (status = 404, body = crate::error::Problem)))]
pub async fn find_pipeline(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PipelineId>,
) -> AppResult<HttpResponse> {
    caller.require_scope(Scope::PipelinesRead)?;
    let p = storage::run(&state.pool, move |conn| store::find(conn, &id)).await?;
    Ok(pipeline_response(StatusCode::OK, p))
}

/// Renames a pipeline or changes its description.
#[utoipa::path(patch, path = "/api/v1/pipelines/{id}", tag = "pipelines", operation_id = "update_pipeline",
    security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdatePipeline,
    responses(
        (status = 200, body = PipelineOut, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem, description = "version_conflict"),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn update_pipeline(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PipelineId>,
    if_match: IfMatch,
    body: ApiJson<UpdatePipeline>,
) -> AppResult<HttpResponse> {
    can_configure(&caller)?;
    let b = body.0;
    let mut p = Problems::default();
    let name = b
        .name
        .as_deref()
        .map(|n| required_text(&mut p, "name", n, MAX_NAME_CHARS));
    let description = b
        .description
        .as_ref()
        .map(|d| opt_text(&mut p, "description", d, MAX_DESCRIPTION_CHARS));
    p.into_result()?;
    let updated = storage::run_tx(&state.pool, move |conn| {
        store::touch(conn, &id, if_match.0, &caller.user_id)?;
        store::rename(
            conn,
            &id,
            name.as_deref(),
            description.as_ref().map(|d| d.as_deref()),
        )?;
        store::find(conn, &id)
    })
    .await?;
    Ok(pipeline_response(StatusCode::OK, updated))
}

/// Deletes a pipeline and its stages; refused (409) while it holds opportunities.
#[utoipa::path(delete, path = "/api/v1/pipelines/{id}", tag = "pipelines", operation_id = "delete_pipeline",
    security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem, description = "the pipeline holds opportunities"),
        (status = 412, body = crate::error::Problem)))]
pub async fn delete_pipeline(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PipelineId>,
    if_match: IfMatch,
) -> AppResult<HttpResponse> {
    can_restructure(&caller)?;
    storage::run_tx(&state.pool, move |conn| {
        store::touch(conn, &id, if_match.0, &caller.user_id)?;
        let deals = crate::storage::opportunities::count_in_pipeline(conn, &id)?;
        if deals > 0 {
            return Err(AppError::Conflict {
                code: ProblemCode::PipelineNotEmpty,
                detail: format!(
                    "The pipeline holds {deals} opportunities; move or delete them first."
                ),
                existing_id: None,
            });
        }
        store::delete(conn, &id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds a stage to a pipeline.
#[utoipa::path(post, path = "/api/v1/pipelines/{id}/stages", tag = "pipelines", operation_id = "create_stage",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = StageInput,
    responses(
        (status = 201, body = StageOut, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn create_stage(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PipelineId>,
    body: ApiJson<StageInput>,
) -> AppResult<HttpResponse> {
    can_restructure(&caller)?;
    let b = body.0;
    let mut p = Problems::default();
    let draft = StageDraft::check(&b, "", &mut p);
    p.into_result()?;
    let stage = storage::run_tx(&state.pool, move |conn| {
        crm::add_stage(conn, &caller, &id, &draft, b.position)
    })
    .await?;
    Ok(super::answer(StatusCode::CREATED, "stages", &stage.id)
        .insert_header(etag(stage.version))
        .json(StageOut::from(stage)))
}

/// Changes a stage. The result must still satisfy every stage rule.
#[utoipa::path(patch, path = "/api/v1/stages/{id}", tag = "pipelines", operation_id = "update_stage",
    security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdateStage,
    responses(
        (status = 200, body = StageOut, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem, description = "version_conflict"),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn update_stage(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<StageId>,
    if_match: IfMatch,
    body: ApiJson<UpdateStage>,
) -> AppResult<HttpResponse> {
    can_restructure(&caller)?;
    let b = body.0;
    // Members not sent keep their values; a kind change resets the probability to the
    // outcome's fixed value unless one is given.
    let edit = move |current: StageInput| StageInput {
        probability: match (b.probability, b.kind) {
            (Some(v), _) => Some(v),
            (None, Some(StageKind::Won | StageKind::Lost)) => None,
            (None, _) => current.probability,
        },
        kind: b.kind.or(current.kind),
        name: b.name.unwrap_or(current.name),
        stalled_after_days: b.stalled_after_days.unwrap_or(current.stalled_after_days),
        required_fields: b.required_fields.unwrap_or(current.required_fields),
        exit_criteria: b.exit_criteria.unwrap_or(current.exit_criteria),
        suggested_actions: b.suggested_actions.unwrap_or(current.suggested_actions),
        next_action_within_days: b
            .next_action_within_days
            .unwrap_or(current.next_action_within_days),
        position: None,
    };
    let stage = storage::run_tx(&state.pool, move |conn| {
        crm::change_stage(conn, &caller, &id, if_match.0, edit)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(stage.version))
        .json(StageOut::from(stage)))
}

/// Deletes a stage (admins). Deals in it enter `move_to`, a stage of the same kind, as a
/// move would: its `required_fields` apply to every deal, and one that misses them
/// refuses the whole deletion. The pipeline must keep one won, one lost and one open stage.
///
/// `If-Match` is the stage's version, as for `PATCH` on the same path.
#[utoipa::path(delete, path = "/api/v1/stages/{id}", tag = "pipelines", operation_id = "delete_stage",
    security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header), DeleteStageQuery),
    responses(
        (status = 204),
        (status = 403, body = crate::error::Problem, description = "only admins restructure pipelines"),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem, description = "deals are in the stage and no move_to was given"),
        (status = 412, body = crate::error::Problem, description = "version_conflict"),
        (status = 422, body = crate::error::Problem, description = "`move_to` is not a stage of the same kind, or `stage_requirements_unmet` for deals in the stage"),
    ))]
pub async fn delete_stage(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<StageId>,
    if_match: IfMatch,
    query: ApiQuery<DeleteStageQuery>,
) -> AppResult<HttpResponse> {
    can_restructure(&caller)?;
    let move_to = query.0.move_to;
    let id = id.into_inner();
    storage::run_tx(&state.pool, move |conn| {
        crm::remove_stage(conn, &caller, &id, if_match.0, move_to.as_deref())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sets the order of a pipeline's stages.
#[utoipa::path(put, path = "/api/v1/pipelines/{id}/stage-order", tag = "pipelines", operation_id = "update_stage_order",
    security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = StageOrder,
    responses(
        (status = 200, body = PipelineOut, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem, description = "not a permutation of the pipeline's stages"),
    ))]
pub async fn update_stage_order(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PipelineId>,
    if_match: IfMatch,
    body: ApiJson<StageOrder>,
) -> AppResult<HttpResponse> {
    can_restructure(&caller)?;
    let order: Vec<StageId> = body.0.stage_ids.into_iter().map(StageId::from).collect();
    let updated = storage::run_tx(&state.pool, move |conn| {
        crm::reorder_stages(conn, &caller, &id, if_match.0, &order)
    })
    .await?;
    Ok(pipeline_response(StatusCode::OK, updated))
}
