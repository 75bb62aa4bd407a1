//! "A deal enters a stage": the one implementation behind creation, `/move`, `/win`,
//! `/lose`, `/reopen`, a PATCH of `stage_id`, conversion and the evacuation of a deleted
//! stage. It checks the target's gate against the deal as it will be, keeps status,
//! closing time, loss reason and next action in step with the stage's kind, and appends
//! the stay to the stage log. The caller saves the deal in the same transaction.

use chrono::NaiveDateTime;

use crate::domain::ids::{StageId, UserId};
use crate::domain::opportunity::{is_filled, Channel, OpportunityStatus};
use crate::domain::pipeline::{RequirableField, StageKind};
use crate::error::{AppError, AppResult, FieldError, ProblemCode};
use crate::storage::opportunities::{
    self as store, append_transition, OpportunityRow, TransitionRow,
};
use crate::storage::pipelines::StageRow;
use crate::storage::visibility::Visibility;
use crate::storage::{self, DbConn, Visible};

/// How a stage change is recorded.
pub struct StageChange<'a> {
    pub actor: &'a UserId,
    pub channel: Channel,
    pub note: Option<String>,
    pub at: NaiveDateTime,
    /// The request set `next_action` itself; do not default it from the stage.
    pub keep_next_action: bool,
}

fn corrupt(id: &str, what: &str, column: &str, value: &str) -> AppError {
    AppError::internal(format!("{what} {id} has an unreadable {column}: {value:?}"))
}

/// A stage's required fields, typed. Stored names were checked when the stage was
/// written, so one that does not parse is corrupt data and stops the move rather than
/// quietly opening the gate.
pub fn required_fields(stage: &StageRow) -> AppResult<Vec<RequirableField>> {
    stage
        .required_fields
        .iter()
        .map(|n| {
            RequirableField::parse(n)
                .ok_or_else(|| corrupt(&stage.id, "stage", "required_fields", n))
        })
        .collect()
}

fn text_set<S: AsRef<str>>(value: &Option<S>) -> bool {
    value
        .as_ref()
        .is_some_and(|v| !v.as_ref().trim().is_empty())
}

/// Whether the deal satisfies one required field.
pub fn is_set(deal: &OpportunityRow, field: &RequirableField) -> AppResult<bool> {
    use RequirableField as F;
    Ok(match field {
        F::Name => !deal.name.trim().is_empty(),
        F::Amount => deal.amount_minor.is_some(),
        F::Currency => !deal.currency.trim().is_empty(),
        F::Probability => deal.probability.is_some(),
        F::ExpectedCloseDate => deal.expected_close_date.is_some(),
        F::AccountId => text_set(&deal.account_id),
        F::ContactId => text_set(&deal.contact_id),
        F::LeadId => text_set(&deal.lead_id),
        F::OwnerId => !deal.owner_id.trim().is_empty(),
        F::Source => deal.source.is_some(),
        F::Industry => text_set(&deal.industry),
        F::CompanySize => deal.company_size.is_some(),
        F::Region => text_set(&deal.region),
        F::Tags => !deal.tags.is_empty(),
        F::NextAction => text_set(&deal.next_action_text),
        F::ExternalId => text_set(&deal.external_id),
        F::Custom(key) => is_filled(deal.custom.get(key)),
    })
}

/// The names of the target's required fields the deal lacks, in the stage's order.
pub fn missing_fields(deal: &OpportunityRow, target: &StageRow) -> AppResult<Vec<String>> {
    let mut missing = Vec::new();
    for field in required_fields(target)? {
        if !is_set(deal, &field)? {
            missing.push(field.name());
        }
    }
    Ok(missing)
}

/// The first open stage of a pipeline (stages come in position order).
pub fn first_open_stage(stages: &[StageRow]) -> AppResult<StageRow> {
    first_of_kind(stages, StageKind::Open)
}

/// The first stage of a kind (the won stage, the default lost stage).
pub fn first_of_kind(stages: &[StageRow], kind: StageKind) -> AppResult<StageRow> {
    if let Some(s) = stages.iter().find(|s| s.kind == kind) {
        return Ok(s.clone());
    }
    Err(AppError::internal(format!(
        "pipeline without a {} stage",
        kind.as_str()
    )))
}

/// A stage of the deal's pipeline named in the request member `field`.
pub fn stage_in<'a>(stages: &'a [StageRow], id: &str, field: &str) -> AppResult<&'a StageRow> {
    stages
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| AppError::field(field, "not_found", "no such stage in this deal's pipeline"))
}

/// A deal whose stage may change: open. A lost one comes back through `/reopen`; a won
/// one stays.
pub fn ensure_open(deal: &OpportunityRow) -> AppResult<()> {
    let detail = match deal.status {
        OpportunityStatus::Open => return Ok(()),
        OpportunityStatus::Lost => "The deal is lost; bring it back with /reopen.",
        OpportunityStatus::Won => "The deal is won; its stage no longer changes.",
    };
    Err(AppError::Conflict {
        code: ProblemCode::OpportunityClosed,
        detail: detail.into(),
        existing_id: None,
    })
}

/// Checks the target stage's gate against `deal` (already carrying the request's other
/// changes); on success moves it there, keeps status, timestamps and next action in
/// step, and appends one row to the stage log.
pub fn enter_stage(
    conn: &mut DbConn,
    deal: &mut OpportunityRow,
    from_stage_id: Option<StageId>,
    target: &StageRow,
    change: &StageChange<'_>,
) -> AppResult<()> {
    if target.pipeline_id != deal.pipeline_id {
        return Err(AppError::field(
            "stage_id",
            "wrong_pipeline",
            "the stage belongs to another pipeline",
        ));
    }
    if from_stage_id.as_deref() == Some(target.id.as_str()) {
        return Err(AppError::field(
            "stage_id",
            "same_stage",
            "the opportunity is already in this stage",
        ));
    }
    let kind = target.kind;
    if kind == StageKind::Lost && deal.lost_reason_id.is_none() {
        return Err(AppError::field(
            "loss_reason_id",
            "required",
            "a lost deal needs a loss reason (see /loss-reasons)",
        ));
    }
    let missing = missing_fields(deal, target)?;
    if !missing.is_empty() {
        return Err(AppError::Rule {
            code: ProblemCode::StageRequirementsUnmet,
            detail: format!("Stage {:?} requires: {}.", target.name, missing.join(", ")),
            errors: missing
                .iter()
                .map(|f| {
                    FieldError::new(
                        f.as_str(),
                        "required_by_stage",
                        format!("required to enter stage {:?}", target.name),
                    )
                })
                .collect(),
        });
    }
    deal.stage_id = target.id.clone();
    deal.stage_entered_at = change.at;
    match kind {
        StageKind::Open => {
            deal.status = OpportunityStatus::Open;
            deal.closed_at = None;
            deal.lost_reason_id = None;
            deal.lost_note = None;
            if let (false, Some(days)) = (change.keep_next_action, target.next_action_within_days) {
                deal.next_action_text = Some(
                    target
                        .suggested_actions
                        .first()
                        .cloned()
                        .unwrap_or_else(|| format!("推进：{}", target.name)),
                );
                deal.next_action_due_at = Some(change.at + chrono::Duration::days(i64::from(days)));
            }
        }
        StageKind::Won | StageKind::Lost => {
            let status = if kind == StageKind::Won {
                deal.lost_reason_id = None;
                deal.lost_note = None;
                OpportunityStatus::Won
            } else {
                OpportunityStatus::Lost
            };
            deal.status = status;
            deal.closed_at = Some(change.at);
            deal.next_action_text = None;
            deal.next_action_due_at = None;
        }
    }
    append_transition(
        conn,
        &TransitionRow {
            id: storage::new_id(),
            opportunity_id: deal.id.clone(),
            pipeline_id: deal.pipeline_id.clone(),
            from_stage_id,
            to_stage_id: target.id.clone(),
            entered_at: change.at,
            actor_id: Some(change.actor.clone()),
            channel: change.channel,
            note: change.note.clone(),
        },
    )
}

/// Moves every deal of a stage being deleted into `target` through [`enter_stage`], so
/// the target's gate, timestamps, next action, the log and the aggregates follow. All or
/// nothing: when deals miss what the target requires, the answer names the missing
/// fields (never the deals) and the caller's transaction rolls back.
pub fn evacuate_stage(
    conn: &mut DbConn,
    from: &StageRow,
    target: &StageRow,
    actor: &UserId,
) -> AppResult<usize> {
    let ids = store::ids_in_stage(conn, &from.id)?;
    let change = StageChange {
        actor,
        channel: Channel::System,
        note: Some(format!("stage {:?} deleted", from.name)),
        at: storage::now(),
        keep_next_action: false,
    };
    let from_lost = from.kind == StageKind::Lost;
    let mut missing: Vec<FieldError> = Vec::new();
    for id in &ids {
        let mut deal = OpportunityRow::lock_visible(conn, &Visibility::All, id)?;
        let before = deal.clone();
        // A lost deal moved between lost stages was lost when it was, not now.
        let closed_at = deal.closed_at;
        match enter_stage(conn, &mut deal, Some(from.id.clone()), target, &change) {
            Ok(()) => {}
            Err(AppError::Rule {
                code: ProblemCode::StageRequirementsUnmet,
                errors,
                ..
            }) => {
                for e in errors {
                    if !missing.iter().any(|m| m.field == e.field) {
                        missing.push(e);
                    }
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        if from_lost {
            deal.closed_at = closed_at;
        }
        storage::Stamped::stamp_next(&mut deal, actor, change.at);
        store::save(conn, &deal, &Visibility::All)?;
        super::events::opportunity(conn, Some(&before), &deal)?;
    }
    if !missing.is_empty() {
        return Err(AppError::Rule {
            code: ProblemCode::StageRequirementsUnmet,
            detail: format!(
                "Deals in stage {:?} lack what stage {:?} requires: {}. Set those fields or choose another move_to.",
                from.name,
                target.name,
                missing.iter().map(|e| e.field.as_str()).collect::<Vec<_>>().join(", ")
            ),
            errors: missing,
        });
    }
    Ok(ids.len())
}
