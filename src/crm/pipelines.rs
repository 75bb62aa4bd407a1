//! The structure of a pipeline: adding, changing, removing and reordering its stages.
//! Every change takes the pipeline's row first (its version counts stage changes, since
//! the stages are part of its representation, and taking it serialises structural
//! changes to one pipeline), keeps the stage set valid (one won stage, at least one lost
//! and one open) and refreshes the report aggregates, whose stage bits and ranks follow
//! stage positions and kinds.

use crate::auth::Caller;
use crate::domain::ids::{PipelineId, StageId};
use crate::domain::pipeline::{check_stage_set, StageDraft, StageInput, StageKind};
use crate::domain::Problems;
use crate::error::{AppError, AppResult, ProblemCode};
use crate::storage::pipelines::{self as store, PipelineWithStages, StageRow};
use crate::storage::{aggregates, check_version, opportunities, DbConn};

/// Adds a checked stage at `position` (default: just before the first won or lost
/// stage).
pub fn add_stage(
    conn: &mut DbConn,
    caller: &Caller,
    pipeline_id: &PipelineId,
    draft: &StageDraft,
    position: Option<i32>,
) -> AppResult<StageRow> {
    store::touch(conn, pipeline_id, None, &caller.user_id)?;
    let mut stages = store::stages_of(conn, pipeline_id)?;
    let default_at = stages
        .iter()
        .position(|s| s.kind != StageKind::Open)
        .unwrap_or(stages.len());
    let at = match position {
        None => default_at,
        Some(pos) if pos >= 0 && (pos as usize) <= stages.len() => pos as usize,
        Some(_) => {
            return Err(AppError::field(
                "position",
                "out_of_range",
                format!("must be between 0 and {}", stages.len()),
            ))
        }
    };
    let row = StageRow::from_draft(pipeline_id, at as i32, draft, &caller.user_id)?;
    stages.insert(at, row.clone());
    check_set_after(&stages, "kind")?;
    store::insert_stage(conn, &row)?;
    set_order(conn, &stages)?;
    restructured(conn, pipeline_id)?;
    store::find_stage(conn, &row.id)
}

/// A stage as the input that would define it again.
fn input_of(s: &StageRow) -> StageInput {
    StageInput {
        name: s.name.clone(),
        probability: Some(s.probability),
        kind: Some(s.kind),
        stalled_after_days: s.stalled_after_days,
        required_fields: s.required_fields.to_vec(),
        exit_criteria: s.exit_criteria.to_vec(),
        suggested_actions: s.suggested_actions.to_vec(),
        next_action_within_days: s.next_action_within_days,
        position: None,
    }
}

/// Changes a stage at the expected version: `edit` turns its current definition into
/// the new one, which is checked like a new stage. Its kind may change only while no
/// deal sits in it.
pub fn change_stage(
    conn: &mut DbConn,
    caller: &Caller,
    id: &StageId,
    expected_version: Option<i32>,
    edit: impl FnOnce(StageInput) -> StageInput,
) -> AppResult<StageRow> {
    let current = store::find_stage(conn, id)?;
    check_version(expected_version, current.version)?;
    store::touch(conn, &current.pipeline_id, None, &caller.user_id)?;
    let input = edit(input_of(&current));
    let mut p = Problems::default();
    let draft = StageDraft::check(&input, "", &mut p);
    p.into_result()?;
    let kind_changes = draft.kind != current.kind;
    if kind_changes && opportunities::count_in_stage(conn, &current.id)? > 0 {
        return Err(AppError::Conflict {
            code: ProblemCode::StageNotEmpty,
            detail: "Deals sit in this stage; its kind cannot change until they move.".into(),
            existing_id: None,
        });
    }
    let mut row = StageRow::from_draft(
        &current.pipeline_id,
        current.position,
        &draft,
        &caller.user_id,
    )?;
    row.id = current.id.clone();
    row.version = current.version + 1;
    row.created_at = current.created_at;
    row.created_by = current.created_by.clone();
    let mut stages = store::stages_of(conn, &current.pipeline_id)?;
    if let Some(slot) = stages.iter_mut().find(|s| s.id == row.id) {
        *slot = row.clone();
    }
    check_set_after(&stages, "kind")?;
    store::save_stage(conn, &row)?;
    if kind_changes {
        restructured(conn, &current.pipeline_id)?;
    }
    store::find_stage(conn, &row.id)
}

/// Removes a stage at the expected version. Deals in it enter `move_to`, a stage of the
/// same kind, as a move would (`crm::stages::evacuate_stage`); without one, a stage
/// that holds deals stays.
pub fn remove_stage(
    conn: &mut DbConn,
    caller: &Caller,
    id: &StageId,
    expected_version: Option<i32>,
    move_to: Option<&str>,
) -> AppResult<()> {
    let current = store::find_stage(conn, id)?;
    check_version(expected_version, current.version)?;
    store::touch(conn, &current.pipeline_id, None, &caller.user_id)?;
    let mut stages = store::stages_of(conn, &current.pipeline_id)?;
    let target = move_to
        .map(|t| evacuation_target(&stages, &current, t))
        .transpose()?;
    stages.retain(|s| s.id != *id);
    check_set_after(&stages, "id")?;
    match target {
        Some(target) => {
            super::stages::evacuate_stage(conn, &current, &target, &caller.user_id)?;
        }
        None if opportunities::count_in_stage(conn, id)? > 0 => {
            return Err(AppError::Conflict {
                code: ProblemCode::StageNotEmpty,
                detail: "Opportunities are in this stage; pass move_to=<stage id> to move them."
                    .into(),
                existing_id: None,
            });
        }
        None => {}
    }
    store::delete_stage(conn, id, current.version)?;
    set_order(conn, &stages)?;
    restructured(conn, &current.pipeline_id)
}

/// Puts a pipeline's stages in `order`, which must name each of them once.
pub fn reorder_stages(
    conn: &mut DbConn,
    caller: &Caller,
    pipeline_id: &PipelineId,
    expected_version: Option<i32>,
    order: &[StageId],
) -> AppResult<PipelineWithStages> {
    store::touch(conn, pipeline_id, expected_version, &caller.user_id)?;
    let stages = store::stages_of(conn, pipeline_id)?;
    let mut given = order.to_vec();
    given.sort();
    given.dedup();
    let mut existing: Vec<StageId> = stages.iter().map(|s| s.id.clone()).collect();
    existing.sort();
    if given != existing || order.len() != existing.len() {
        return Err(AppError::field(
            "stage_ids",
            "not_a_permutation",
            "list every stage id of the pipeline exactly once",
        ));
    }
    store::set_positions(conn, order)?;
    restructured(conn, pipeline_id)?;
    store::find(conn, pipeline_id)
}

fn check_set_after(stages: &[StageRow], field: &str) -> AppResult<()> {
    let mut p = Problems::default();
    check_stage_set(
        &mut p,
        field,
        stages.iter().map(|s| (s.name.as_str(), s.kind)),
    );
    p.into_result()
}

fn set_order(conn: &mut DbConn, stages: &[StageRow]) -> AppResult<()> {
    store::set_positions(
        conn,
        &stages.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
    )
}

/// Where the deals of a deleted stage may go: another stage of the pipeline of the same
/// kind. Open deals go to an open stage (winning or losing them is for /win and /lose,
/// with their own rules); lost deals to another lost stage, keeping their reason.
fn evacuation_target(stages: &[StageRow], from: &StageRow, target: &str) -> AppResult<StageRow> {
    let target = stages
        .iter()
        .find(|s| s.id.as_str() == target && s.id != from.id)
        .ok_or_else(|| {
            AppError::field(
                "move_to",
                "invalid",
                "must be another stage of the same pipeline",
            )
        })?;
    match from.kind {
        kind if kind == target.kind => Ok(target.clone()),
        StageKind::Open => Err(AppError::field(
            "move_to",
            "closed_stage",
            "deals move to an open stage; win or lose them with /win and /lose",
        )),
        _ => Err(AppError::field(
            "move_to",
            "not_lost_stage",
            "the deals of a lost stage move to another lost stage",
        )),
    }
}

/// Stage bits and ranks in the report aggregates follow stage positions and kinds:
/// recompute the pipeline's after its stage structure changed.
fn restructured(conn: &mut DbConn, pipeline_id: &PipelineId) -> AppResult<()> {
    aggregates::refresh(conn, aggregates::Target::Pipeline(pipeline_id))
}
