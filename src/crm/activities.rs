//! Activities on leads and deals: their writable fields, how a row is built and checked,
//! and the parent's `last_activity_at` kept in step with every change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::fields::{opt_text, resolve_owner};
use super::records::{stamp_new_or_next, Ops};
use crate::auth::api_keys::Scope;
use crate::auth::Caller;
use crate::domain::opportunity::ActivityType;
use crate::domain::{required_text, Problems};
use crate::error::AppResult;
use crate::storage::activities::{self as store, ActivityRow};
use crate::storage::leads::LeadRow;
use crate::storage::opportunities::OpportunityRow;
use crate::storage::{self, leads, opportunities, DbConn, Repo, Stamped, Visible};

/// The writable fields of an activity. Exactly one of `lead_id` and `opportunity_id`.
/// Without `due_at` and `completed_at` the activity is a record of something done now;
/// with only `due_at` it is a planned follow-up, open until `completed_at` is set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityInput {
    #[serde(rename = "type")]
    pub type_: ActivityType,
    #[schema(example = "方案讲解会")]
    pub subject: String,
    pub body: Option<String>,
    pub lead_id: Option<String>,
    pub opportunity_id: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    #[schema(example = "客户认可方案，下周报价")]
    pub outcome: Option<String>,
    /// Defaults to the caller.
    pub owner_id: Option<String>,
}

impl From<&ActivityRow> for ActivityInput {
    fn from(a: &ActivityRow) -> Self {
        ActivityInput {
            type_: a.type_,
            subject: a.subject.clone(),
            body: a.body.clone(),
            lead_id: a.lead_id.clone().map(String::from),
            opportunity_id: a.opportunity_id.clone().map(String::from),
            due_at: a.due_at.map(|t| t.and_utc()),
            completed_at: a.completed_at.map(|t| t.and_utc()),
            outcome: a.outcome.clone(),
            owner_id: Some(a.owner_id.to_string()),
        }
    }
}

/// Checks input and builds the row; `base` is the stored activity on update.
pub fn build(
    conn: &mut DbConn,
    caller: &Caller,
    input: &ActivityInput,
    base: Option<&ActivityRow>,
) -> AppResult<ActivityRow> {
    match base {
        Some(b) => require_parent_scopes(
            caller,
            b.lead_id.is_some(),
            b.opportunity_id.is_some(),
            true,
        )?,
        None => require_parent_scopes(
            caller,
            input.lead_id.is_some(),
            input.opportunity_id.is_some(),
            true,
        )?,
    }
    let mut p = Problems::default();
    let vis = caller.visibility();
    // Logging on a record the caller may not see is answered like reading it: 404.
    match (&input.lead_id, &input.opportunity_id) {
        (Some(_), Some(_)) | (None, None) => p.add(
            "lead_id",
            "one_parent",
            "give exactly one of lead_id and opportunity_id",
        ),
        (Some(id), None) => {
            LeadRow::find_visible(conn, &vis, id)?;
        }
        (None, Some(id)) => {
            OpportunityRow::find_visible(conn, &vis, id)?;
        }
    }
    if let Some(b) = base {
        if b.lead_id.as_deref() != input.lead_id.as_deref()
            || b.opportunity_id.as_deref() != input.opportunity_id.as_deref()
        {
            p.add(
                "opportunity_id",
                "immutable",
                "an activity stays on its lead or opportunity",
            );
        }
    }
    let subject = required_text(&mut p, "subject", &input.subject, 300);
    let owner_id = resolve_owner(conn, &mut p, caller, input.owner_id.as_deref())?;
    let now = storage::now();
    let completed_at = match (input.completed_at, input.due_at, base) {
        (Some(c), _, _) => Some(c.naive_utc()),
        (None, None, None) => Some(now),
        _ => None,
    };
    let row = ActivityRow {
        type_: input.type_,
        subject,
        body: opt_text(&mut p, "body", &input.body, 10_000),
        lead_id: input.lead_id.clone().map(Into::into),
        opportunity_id: input.opportunity_id.clone().map(Into::into),
        due_at: input.due_at.map(|d| d.naive_utc()),
        completed_at,
        outcome: opt_text(&mut p, "outcome", &input.outcome, 2000),
        owner_id,
        ..stamp_new_or_next(base.cloned(), caller, |id, now| ActivityRow {
            id: id.into(),
            type_: ActivityType::Note,
            subject: String::new(),
            body: None,
            lead_id: None,
            opportunity_id: None,
            due_at: None,
            completed_at: None,
            outcome: None,
            owner_id: String::new().into(),
            version: 1,
            created_at: now,
            updated_at: now,
            created_by: Some(caller.user_id.clone()),
            updated_by: Some(caller.user_id.clone()),
        })
    };
    p.into_result()?;
    Ok(row)
}

/// Keeps the parent's `last_activity_at` equal to its latest completed activity.
fn refresh_parent(conn: &mut DbConn, a: &ActivityRow) -> AppResult<()> {
    if let Some(id) = &a.lead_id {
        let last = store::last_completed(conn, Some(id), None)?;
        leads::touch_activity(conn, id, last)?;
    }
    if let Some(id) = &a.opportunity_id {
        let last = store::last_completed(conn, None, Some(id))?;
        opportunities::touch_activity(conn, id, last)?;
    }
    Ok(())
}

/// The scope an API key needs for activities: their parent's kind decides (`leads:*` on a
/// lead, `opportunities:*` on a deal).
pub fn require_parent_scopes(
    caller: &Caller,
    has_lead: bool,
    has_deal: bool,
    write: bool,
) -> AppResult<()> {
    let (on_lead, on_deal) = match write {
        true => (Scope::LeadsWrite, Scope::OpportunitiesWrite),
        false => (Scope::LeadsRead, Scope::OpportunitiesRead),
    };
    if has_lead {
        caller.require_scope(on_lead)?;
    }
    if has_deal {
        caller.require_scope(on_deal)?;
    }
    Ok(())
}

/// Logs an activity on a lead or a deal the caller may see (404 otherwise).
pub fn create(conn: &mut DbConn, caller: &Caller, input: &ActivityInput) -> AppResult<ActivityRow> {
    let row = build(conn, caller, input, None)?;
    row.insert_row(conn)?;
    refresh_parent(conn, &row)?;
    super::events::activity_created(conn, &row)?;
    Ok(row)
}

/// How an activity is locked, shown as input, rebuilt and saved on update.
pub fn ops() -> Ops<ActivityRow, ActivityInput> {
    Ops {
        input_of: |r| ActivityInput::from(r),
        build,
        save: |conn, _, _, row| {
            row.save(conn)?;
            refresh_parent(conn, row)
        },
    }
}

/// Deletes an activity (the caller needs write scope on its parent's kind).
pub fn remove(conn: &mut DbConn, caller: &Caller, current: &ActivityRow) -> AppResult<()> {
    require_parent_scopes(
        caller,
        current.lead_id.is_some(),
        current.opportunity_id.is_some(),
        true,
    )?;
    ActivityRow::delete(conn, &current.id)?;
    refresh_parent(conn, current)
}
