//! Opportunities: their writable fields, how a row is built and checked, and every way
//! a deal changes (create, update, delete, the stage moves), each in the caller's
//! transaction and through the one stage entry of [`super::stages`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::fields::{custom_json, opt_text, resolve_owner, tags_json};
use super::records::stamp_new_or_next;
use super::stages::{
    ensure_open, enter_stage, first_of_kind, first_open_stage, stage_in, StageChange,
};
use crate::auth::Caller;
use crate::domain::ids::{OpportunityId, PipelineId, StageId, UserId};
use crate::domain::lead::{CompanySize, LeadSource};
use crate::domain::money::{amount_text, Currency, Money};
use crate::domain::opportunity::{Channel, OpportunityStatus};
use crate::domain::pipeline::StageKind;
use crate::domain::{required_text, Problems, MAX_NOTE_CHARS};
use crate::error::{AppError, AppResult, ProblemCode};
use crate::storage::accounts::{AccountRow, ContactRow};
use crate::storage::leads::LeadRow;
use crate::storage::opportunities::{self as store, OpportunityRow};
use crate::storage::pipelines::{self as pipelines, StageRow};
use crate::storage::types::JsonText;
use crate::storage::{
    self, activities, check_version, leads, scoring, DbConn, Repo, Stamped, Visible,
};

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
    #[schema(value_type = String)]
    pub pipeline_id: PipelineId,
    /// An open stage of the pipeline; defaults to the first. Changing it is a stage move
    /// (gated like `/move`).
    #[schema(value_type = Option<String>)]
    pub stage_id: Option<StageId>,
    /// Decimal string with the currency's decimals: `"12500.00"` CNY, `"1500000"` JPY,
    /// `"1.250"` KWD. Further zeros are accepted (`"1500000.00"` JPY).
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
    #[schema(value_type = Option<String>)]
    pub owner_id: Option<UserId>,
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

impl From<&OpportunityRow> for OpportunityInput {
    fn from(o: &OpportunityRow) -> Self {
        OpportunityInput {
            name: o.name.clone(),
            pipeline_id: o.pipeline_id.clone(),
            stage_id: Some(o.stage_id.clone()),
            amount: o.amount_minor.map(|m| amount_text(m, &o.currency)),
            currency: Some(o.currency.clone()),
            probability: o.probability,
            expected_close_date: o.expected_close_date,
            account_id: o.account_id.clone().map(String::from),
            contact_id: o.contact_id.clone().map(String::from),
            lead_id: o.lead_id.clone().map(String::from),
            owner_id: Some(o.owner_id.clone()),
            source: o.source,
            industry: o.industry.clone(),
            company_size: o.company_size,
            region: o.region.clone(),
            tags: o.tags.to_vec(),
            next_action: o.next_action_text.clone().map(|text| NextAction {
                text,
                due_at: o.next_action_due_at.map(|t| t.and_utc()),
            }),
            external_id: o.external_id.clone(),
            custom: Some((*o.custom).clone()),
        }
    }
}

/// Checks input and builds the row (stage fields untouched on update); returns it with
/// the stage the input asks for. `base` is the stored deal on update.
pub fn build(
    conn: &mut DbConn,
    caller: &Caller,
    default_currency: &str,
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
    let currency = match &input.currency {
        Some(c) => Currency::parse(c)
            .map_err(|m| p.add("currency", "invalid", m))
            .ok(),
        None => Currency::parse(default_currency).ok(),
    };
    // The amount is read in the deal's currency (its decimals); with no valid currency
    // only the amount's form is checked.
    let amount_minor = match input
        .amount
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        Some(a) => Money::parse(a, currency.unwrap_or(Currency::FALLBACK))
            .map(|m| m.minor)
            .map_err(|m| p.add("amount", "invalid", m))
            .ok(),
        None => None,
    };
    let currency = currency.map(|c| c.to_string()).unwrap_or_default();
    if let Some(prob) = input.probability {
        if !(0..=100).contains(&prob) {
            p.add("probability", "out_of_range", "must be between 0 and 100");
        }
    }
    if let Some(id) = &input.account_id {
        if AccountRow::find_visible(conn, &vis, id).is_err() {
            not_visible(&mut p, "account_id", "account");
        }
    }
    if let Some(id) = &input.contact_id {
        if ContactRow::find_visible(conn, &vis, id).is_err() {
            not_visible(&mut p, "contact_id", "contact");
        }
    }
    if let Some(id) = &input.lead_id {
        if LeadRow::find_visible(conn, &vis, id).is_err() {
            not_visible(&mut p, "lead_id", "lead");
        }
    }
    let owner_id = resolve_owner(conn, &mut p, caller, input.owner_id.as_deref())?;
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
        account_id: input.account_id.clone().map(Into::into),
        contact_id: input.contact_id.clone().map(Into::into),
        lead_id: input.lead_id.clone().map(Into::into),
        owner_id,
        source: input.source,
        industry: opt_text(&mut p, "industry", &input.industry, 100),
        company_size: input.company_size,
        region: opt_text(&mut p, "region", &input.region, 100),
        tags: tags_json(&mut p, &input.tags)?,
        next_action_text: next_action.as_ref().map(|n| n.0.clone()),
        next_action_due_at: next_action.and_then(|n| n.1),
        external_id: opt_text(&mut p, "external_id", &input.external_id, 200),
        custom: custom_json(&mut p, &input.custom)?,
        ..stamp_new_or_next(base.cloned(), caller, |id, now| OpportunityRow {
            id: id.into(),
            name: String::new(),
            pipeline_id: input.pipeline_id.clone(),
            stage_id: StageId::from(""),
            status: OpportunityStatus::Open,
            amount_minor: None,
            currency: String::new(),
            probability: None,
            expected_close_date: None,
            account_id: None,
            contact_id: None,
            lead_id: None,
            owner_id: UserId::from(""),
            source: None,
            industry: None,
            company_size: None,
            region: None,
            tags: JsonText::default(),
            next_action_text: None,
            next_action_due_at: None,
            lost_reason_id: None,
            lost_note: None,
            stage_entered_at: now,
            last_activity_at: None,
            closed_at: None,
            external_id: None,
            custom: JsonText::default(),
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

fn not_visible(p: &mut Problems, field: &str, what: &str) {
    p.add(field, "not_found", format!("no such {what}"));
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

/// A deal with its stage's probability, as the API shows it.
pub type DealWithProbability = (OpportunityRow, i32);

/// Creates a deal in an open stage of its pipeline (the first by default). The stage's
/// requirements apply; the creation is the first row of the stage log.
pub fn create(
    conn: &mut DbConn,
    caller: &Caller,
    default_currency: &str,
    input: &OpportunityInput,
) -> AppResult<DealWithProbability> {
    let (mut row, target) = build(conn, caller, default_currency, input, None)?;
    if target.kind != StageKind::Open {
        return Err(AppError::field(
            "stage_id",
            "closed_stage",
            "create deals in an open stage; then use /win or /lose",
        ));
    }
    // The creation is the first stay: it starts when the record does.
    let first = StageChange {
        at: row.created_at,
        ..change(caller, None, input.next_action.is_some())
    };
    enter_stage(conn, &mut row, None, &target, &first)?;
    store::insert(conn, &row, &caller.visibility())?;
    super::events::opportunity(conn, None, &row)?;
    Ok((row, target.probability))
}

/// A stage a deal entered in the past, for a deal brought in with its history.
#[derive(Debug, Clone)]
pub struct PastStage {
    pub stage: StageRow,
    pub at: chrono::NaiveDateTime,
}

/// Creates a deal that existed before: created at the first of `past` (an open stage)
/// and entering each later one at its time, then `now_in` if it differs from the last,
/// all gated like moves and logged with `channel`. Lost stages take `loss_reason_id`.
pub fn create_with_history(
    conn: &mut DbConn,
    caller: &Caller,
    default_currency: &str,
    input: &OpportunityInput,
    past: &[PastStage],
    now_in: Option<StageRow>,
    loss_reason_id: Option<String>,
) -> AppResult<DealWithProbability> {
    let mut input = input.clone();
    let first = past
        .first()
        .map(|p| p.stage.clone())
        .or_else(|| now_in.clone().filter(|s| s.kind == StageKind::Open));
    input.stage_id = first.as_ref().map(|s| s.id.clone());
    let (mut row, target) = build(conn, caller, default_currency, &input, None)?;
    if let Some(reason) = &loss_reason_id {
        check_loss_reason(conn, reason)?;
    }
    if let Some(p) = past.first() {
        row.created_at = p.at;
    }
    let log = |at, keep| StageChange {
        at,
        channel: Channel::Import,
        ..change(caller, None, keep)
    };
    let created = log(row.created_at, input.next_action.is_some());
    enter_stage(conn, &mut row, None, &target, &created)?;
    let mut from = target.id.clone();
    let later = past.iter().skip(1).map(|p| (p.stage.clone(), p.at));
    let last = now_in.filter(|s| *s.id != *past.last().map_or(&target.id, |p| &p.stage.id));
    for (stage, at) in later.chain(last.map(|s| (s, storage::now()))) {
        if stage.kind == StageKind::Lost {
            row.lost_reason_id = loss_reason_id.clone();
        }
        enter_stage(conn, &mut row, Some(from), &stage, &log(at, false))?;
        from = stage.id.clone();
    }
    let probability = pipelines::stages_of(conn, &row.pipeline_id)?
        .iter()
        .find(|s| s.id == row.stage_id)
        .map_or(0, |s| s.probability);
    store::insert(conn, &row, &caller.visibility())?;
    super::events::opportunity(conn, None, &row)?;
    Ok((row, probability))
}

/// Whether the deal's stage log begins with `past` (stages and times).
pub fn log_starts_with(
    conn: &mut DbConn,
    id: &OpportunityId,
    past: &[PastStage],
) -> AppResult<bool> {
    let log = store::history(conn, id)?;
    Ok(log.len() >= past.len()
        && log
            .iter()
            .zip(past)
            .all(|(t, p)| t.to_stage_id == p.stage.id && t.entered_at == p.at))
}

/// The pipeline of a visible deal.
pub fn pipeline_of(conn: &mut DbConn, caller: &Caller, id: &str) -> AppResult<PipelineId> {
    Ok(OpportunityRow::lock_visible(conn, &caller.visibility(), id)?.pipeline_id)
}

/// Applies `edit` and a move to `to` (if another stage) to a visible deal, unless the
/// result equals the deal as it is: answers whether anything was written. With
/// `overwrite` false, a deal that would change is refused (409) instead.
#[allow(clippy::too_many_arguments)]
pub fn update_if_changed(
    conn: &mut DbConn,
    caller: &Caller,
    default_currency: &str,
    id: &str,
    edit: impl FnOnce(OpportunityInput) -> AppResult<OpportunityInput>,
    to: Option<StageRow>,
    loss_reason_id: Option<String>,
    channel: Channel,
    overwrite: bool,
) -> AppResult<bool> {
    let current = OpportunityRow::lock_visible(conn, &caller.visibility(), id)?;
    let before = OpportunityInput::from(&current);
    let mut input = edit(before.clone())?;
    if let Some(to) = &to {
        input.stage_id = Some(to.id.clone());
    }
    let wanted = input
        .stage_id
        .clone()
        .unwrap_or_else(|| current.stage_id.clone());
    input.stage_id = Some(current.stage_id.clone());
    let (mut row, _) = build(conn, caller, default_currency, &input, Some(&current))?;
    let same = serde_json::to_value(OpportunityInput::from(&row)).ok()
        == serde_json::to_value(&before).ok();
    if same && wanted == current.stage_id {
        return Ok(false);
    }
    if !overwrite {
        return Err(AppError::Conflict {
            code: ProblemCode::DuplicateOpportunity,
            detail:
                "A deal with this key exists and differs; import with mode=upsert to update it."
                    .into(),
            existing_id: Some(current.id.to_string()),
        });
    }
    if wanted != current.stage_id {
        ensure_open(&current)?;
        let stages = pipelines::stages_of(conn, &row.pipeline_id)?;
        let target = stage_in(&stages, &wanted, "stage")?.clone();
        if target.kind == StageKind::Lost {
            if let Some(reason) = loss_reason_id {
                check_loss_reason(conn, &reason)?;
                row.lost_reason_id = Some(reason);
            }
        }
        let log = StageChange {
            channel,
            ..change(caller, None, false)
        };
        enter_stage(
            conn,
            &mut row,
            Some(current.stage_id.clone()),
            &target,
            &log,
        )?;
    }
    store::save(conn, &row, &caller.visibility())?;
    super::events::opportunity(conn, Some(&current), &row)?;
    Ok(true)
}

/// Updates a visible deal: `edit` turns its current input into the new one, which is
/// checked like a create. A new `stage_id` is a stage move (gated and logged);
/// `sets_next_action` says the change names the next action itself, so the target
/// stage's suggestion does not replace it.
pub fn update(
    conn: &mut DbConn,
    caller: &Caller,
    default_currency: &str,
    id: &str,
    expected_version: Option<i32>,
    edit: impl FnOnce(OpportunityInput) -> AppResult<OpportunityInput>,
    sets_next_action: bool,
) -> AppResult<DealWithProbability> {
    let current = OpportunityRow::lock_visible(conn, &caller.visibility(), id)?;
    check_version(expected_version, current.version)?;
    let input = edit(OpportunityInput::from(&current))?;
    let (mut row, target) = build(conn, caller, default_currency, &input, Some(&current))?;
    if target.id != current.stage_id {
        ensure_open(&current)?;
        enter_stage(
            conn,
            &mut row,
            Some(current.stage_id.clone()),
            &target,
            &change(caller, None, sets_next_action),
        )?;
    }
    store::save(conn, &row, &caller.visibility())?;
    super::events::opportunity(conn, Some(&current), &row)?;
    Ok((row, target.probability))
}

/// Deletes a visible deal and its activities. Its stage log stays (it is history).
pub fn delete(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    expected_version: Option<i32>,
) -> AppResult<()> {
    let remove = |conn: &mut DbConn, _: &Caller, deal: &OpportunityRow| {
        activities::delete_for_opportunity(conn, &deal.id)?;
        leads::forget_conversion(conn, &deal.id)?;
        Ok(OpportunityRow::delete(conn, &deal.id)?)
    };
    super::records::delete(conn, caller, id, expected_version, remove)
}

/// A change of stage asked for by a user.
pub enum StageMove {
    /// To any stage of the pipeline; a won or lost target wins or loses the deal.
    Move {
        stage_id: String,
        note: Option<String>,
        loss_reason_id: Option<String>,
        lost_note: Option<String>,
        next_action: Option<NextAction>,
    },
    /// To the pipeline's won stage.
    Win { note: Option<String> },
    /// To a lost stage (the first by default) with a managed reason.
    Lose {
        loss_reason_id: String,
        stage_id: Option<String>,
        note: Option<String>,
    },
    /// A lost deal back to an open stage (回流).
    Reopen {
        stage_id: String,
        note: Option<String>,
    },
}

impl StageMove {
    /// Checks the texts before anything is read, so every problem of the request is
    /// reported at once.
    fn checked(self) -> AppResult<StageMove> {
        let mut p = Problems::default();
        let note = |p: &mut Problems, n: Option<String>| opt_text(p, "note", &n, MAX_NOTE_CHARS);
        let checked = match self {
            StageMove::Move {
                stage_id,
                note: n,
                loss_reason_id,
                lost_note,
                next_action,
            } => {
                let note = note(&mut p, n);
                let lost_note = opt_text(&mut p, "lost_note", &lost_note, MAX_NOTE_CHARS);
                let next_action = next_action.map(|n| NextAction {
                    text: required_text(&mut p, "next_action.text", &n.text, 500),
                    due_at: n.due_at,
                });
                StageMove::Move {
                    stage_id,
                    note,
                    loss_reason_id,
                    lost_note,
                    next_action,
                }
            }
            StageMove::Win { note: n } => StageMove::Win {
                note: note(&mut p, n),
            },
            StageMove::Lose {
                loss_reason_id,
                stage_id,
                note: n,
            } => StageMove::Lose {
                loss_reason_id,
                stage_id,
                note: note(&mut p, n),
            },
            StageMove::Reopen { stage_id, note: n } => StageMove::Reopen {
                stage_id,
                note: note(&mut p, n),
            },
        };
        p.into_result()?;
        Ok(checked)
    }
}

/// The shared path of every stage endpoint: lock the deal, check the expected version,
/// pick the target (adjusting the deal as the move asks), pass the gate, log, save.
pub fn change_stage(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    expected_version: Option<i32>,
    requested: StageMove,
) -> AppResult<DealWithProbability> {
    let requested = requested.checked()?;
    let mut row = OpportunityRow::lock_visible(conn, &caller.visibility(), id)?;
    check_version(expected_version, row.version)?;
    let stages = pipelines::stages_of(conn, &row.pipeline_id)?;
    let from = row.stage_id.clone();
    let before = row.clone();
    let (target, note, keep_next_action) = match requested {
        StageMove::Move {
            stage_id,
            note,
            loss_reason_id,
            lost_note,
            next_action,
        } => {
            ensure_open(&row)?;
            let target = stage_in(&stages, &stage_id, "stage_id")?.clone();
            if target.kind == StageKind::Lost {
                if let Some(reason) = loss_reason_id {
                    check_loss_reason(conn, &reason)?;
                    row.lost_reason_id = Some(reason);
                    row.lost_note = lost_note;
                }
            }
            let keep = next_action.is_some();
            if let Some(n) = next_action {
                row.next_action_text = Some(n.text);
                row.next_action_due_at = n.due_at.map(|d| d.naive_utc());
            }
            (target, note, keep)
        }
        StageMove::Win { note } => {
            ensure_open(&row)?;
            (first_of_kind(&stages, StageKind::Won)?, note, false)
        }
        StageMove::Lose {
            loss_reason_id,
            stage_id,
            note,
        } => {
            ensure_open(&row)?;
            check_loss_reason(conn, &loss_reason_id)?;
            let target = match &stage_id {
                Some(sid) => stage_in(&stages, sid, "stage_id")?.clone(),
                None => first_of_kind(&stages, StageKind::Lost)?,
            };
            if target.kind != StageKind::Lost {
                return Err(AppError::field(
                    "stage_id",
                    "not_lost_stage",
                    "choose a lost stage",
                ));
            }
            row.lost_reason_id = Some(loss_reason_id);
            row.lost_note = note.clone();
            (target, note, false)
        }
        StageMove::Reopen { stage_id, note } => {
            if row.status != OpportunityStatus::Lost {
                return Err(AppError::Conflict {
                    code: ProblemCode::NotLost,
                    detail: "Only a lost deal can be reopened.".into(),
                    existing_id: None,
                });
            }
            let target = stage_in(&stages, &stage_id, "stage_id")?.clone();
            if target.kind != StageKind::Open {
                return Err(AppError::field(
                    "stage_id",
                    "not_open_stage",
                    "reopen into an open stage",
                ));
            }
            (target, note, false)
        }
    };
    enter_stage(
        conn,
        &mut row,
        Some(from),
        &target,
        &change(caller, note, keep_next_action),
    )?;
    row.stamp_next(&caller.user_id, storage::now());
    store::save(conn, &row, &caller.visibility())?;
    super::events::opportunity(conn, Some(&before), &row)?;
    Ok((row, target.probability))
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
