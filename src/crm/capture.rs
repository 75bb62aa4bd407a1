//! A captured lead: created under the source's rules (default source and detail,
//! owner fixed or by round robin) or, when a lead with the same email, phone or
//! external id exists, that lead is updated with what was posted and a note logs the
//! repeat. Everything goes through the lead write path of this layer, so scoring,
//! validation and the outbox apply as for the API.

use serde_json::{Map, Value};

use super::activities::{self, ActivityInput};
use super::leads::{self, LeadInput};
use super::records;
use crate::auth::caller::link_signer;
use crate::auth::links::Signer;
use crate::auth::Caller;
use crate::domain::opportunity::ActivityType;
use crate::error::{AppError, AppResult};
use crate::storage::capture::{self as store, SourceRow};
use crate::storage::{self, users, DbConn};

/// What a capture did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub lead_id: String,
    pub created: bool,
}

/// Who captured leads are written as: the admin who made the source, else the oldest
/// active admin.
fn acting_admin(conn: &mut DbConn, source: &SourceRow) -> AppResult<Caller> {
    if let Ok((caller, _)) = link_signer(conn, &Signer::User(source.created_by.as_str().into())) {
        return Ok(caller);
    }
    let admin = users::oldest_admin(conn)?
        .ok_or_else(|| AppError::internal("no active admin to write captured leads as"))?;
    Ok(link_signer(conn, &Signer::User(admin.id))?.0)
}

/// The owner of a new lead: the source's fixed owner, the next rep of its team, or the
/// admin the lead is written as.
fn owner(conn: &mut DbConn, source: &SourceRow, caller: &Caller) -> AppResult<String> {
    if let Some(team) = &source.team_id {
        let members = store::assignable_members(conn, team)?;
        if !members.is_empty() {
            let turn = store::next_turn(conn, &source.id)?;
            let i = usize::try_from(turn.rem_euclid(members.len() as i64)).unwrap_or(0);
            return Ok(members[i].clone());
        }
    }
    Ok(source
        .owner_id
        .as_deref()
        .unwrap_or(&caller.user_id)
        .to_owned())
}

fn input_from(fields: Map<String, Value>) -> AppResult<LeadInput> {
    serde_json::from_value(Value::Object(fields)).map_err(|e| {
        AppError::field(
            "body",
            "invalid",
            format!("the captured fields do not make a lead: {e}"),
        )
    })
}

/// Writes what `source` captured (`fields`, already mapped to lead fields).
pub fn capture(
    conn: &mut DbConn,
    source: &SourceRow,
    fields: Map<String, Value>,
) -> AppResult<Captured> {
    let caller = acting_admin(conn, source)?;
    for key in source.dedupe_on.iter() {
        let Some(value) = fields.get(key).and_then(Value::as_str) else {
            continue;
        };
        if let Some(id) = store::lead_with(conn, key, value)? {
            return update_existing(conn, source, &caller, &id, fields);
        }
    }
    let mut fields = fields;
    fields
        .entry("source")
        .or_insert_with(|| Value::String(source.default_source.as_str().to_owned()));
    if let Some(detail) = &source.source_detail {
        fields
            .entry("source_detail")
            .or_insert_with(|| Value::String(detail.clone()));
    }
    fields.insert(
        "owner_id".into(),
        Value::String(owner(conn, source, &caller)?),
    );
    let lead = leads::create(conn, &caller, &input_from(fields)?)?;
    Ok(Captured {
        lead_id: lead.id.into(),
        created: true,
    })
}

/// A repeat: the posted fields go over the lead's (tags and custom fields are merged),
/// and a note on the lead says when and through which source it came again.
fn update_existing(
    conn: &mut DbConn,
    source: &SourceRow,
    caller: &Caller,
    id: &str,
    fields: Map<String, Value>,
) -> AppResult<Captured> {
    let posted: Vec<String> = fields.keys().cloned().collect();
    let merge = |input: LeadInput| -> AppResult<LeadInput> {
        let Value::Object(mut current) =
            serde_json::to_value(&input).map_err(AppError::internal)?
        else {
            return Err(AppError::internal("a lead input is not an object"));
        };
        for (k, v) in fields {
            match (k.as_str(), current.get_mut(&k), v) {
                ("tags", Some(Value::Array(old)), Value::Array(new)) => {
                    for t in new {
                        if !old.contains(&t) {
                            old.push(t);
                        }
                    }
                }
                ("custom", Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
                (_, _, v) => {
                    current.insert(k, v);
                }
            }
        }
        input_from(current)
    };
    let lead = records::update(conn, caller, id, None, merge, &leads::ops())?;
    activities::create(
        conn,
        caller,
        &ActivityInput {
            type_: ActivityType::Note,
            subject: format!("Captured again through {}", source.name),
            body: Some(format!("Fields posted: {}", posted.join(", "))),
            lead_id: Some(lead.id.to_string()),
            opportunity_id: None,
            due_at: None,
            completed_at: Some(storage::now().and_utc()),
            outcome: None,
            owner_id: Some(lead.owner_id.to_string()),
        },
    )?;
    Ok(Captured {
        lead_id: lead.id.into(),
        created: false,
    })
}
