//! Events for outbound webhooks, written to the outbox in the transaction of the change
//! they announce: a change that rolls back announces nothing, and one that commits
//! cannot lose its event. Every write path of the workflow layer calls in here after
//! it saved; nothing is written when no active subscription wants the event.
//!
//! A payload is `{id, type, occurred_at, data, previous}`: `data` is the record as the
//! API shows it after the change, `previous` the old values of the fields that changed
//! (bookkeeping fields — `version`, `updated_at`, `updated_by` — left out).

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::views::{ActivityOut, LeadOut, OpportunityOut};
use crate::domain::ids::UserId;
use crate::domain::integration::EventType;
use crate::domain::lead::LeadStatus;
use crate::domain::opportunity::OpportunityStatus;
use crate::error::{AppError, AppResult};
use crate::storage::activities::ActivityRow;
use crate::storage::leads::LeadRow;
use crate::storage::opportunities::OpportunityRow;
use crate::storage::webhooks::{self, SubscriptionRow};
use crate::storage::{self, pipelines, users, DbConn, Lock, Repo};

/// Fields that change with every write and say nothing about the record.
const BOOKKEEPING: &[&str] = &["version", "updated_at", "updated_by"];

/// Fields a change of stage sets; a change of only these is `stage_changed`, not
/// `updated`.
const STAGE_FIELDS: &[&str] = &[
    "stage_id",
    "status",
    "stage_entered_at",
    "won_at",
    "lost_at",
    "lost_reason_id",
    "lost_note",
    "next_action",
    "effective_probability",
];

/// What subscription filters look at: the record's values after the change.
#[derive(Default)]
struct Facts<'a> {
    pipeline_id: Option<&'a str>,
    stage_id: Option<&'a str>,
    owner_id: &'a str,
}

fn to_map<T: Serialize>(value: &T) -> AppResult<Map<String, Value>> {
    match serde_json::to_value(value).map_err(AppError::internal)? {
        Value::Object(m) => Ok(m),
        _ => Err(AppError::internal(
            "a record did not serialise as an object",
        )),
    }
}

/// The old values of the fields that differ (bookkeeping left out).
fn previous(before: &Map<String, Value>, after: &Map<String, Value>) -> Map<String, Value> {
    after
        .iter()
        .filter(|(k, v)| !BOOKKEEPING.contains(&k.as_str()) && before.get(*k) != Some(*v))
        .map(|(k, _)| (k.clone(), before.get(k).cloned().unwrap_or(Value::Null)))
        .collect()
}

/// The subscriptions that want `event` about a record with `facts`.
fn subscribers<'s>(
    conn: &mut DbConn,
    subs: &'s [SubscriptionRow],
    event: EventType,
    facts: &Facts<'_>,
) -> AppResult<Vec<&'s str>> {
    let mut out = Vec::new();
    for s in subs {
        if !s.events.contains(&event) {
            continue;
        }
        let wants =
            |filter: Option<&str>, value: Option<&str>| filter.is_none_or(|f| Some(f) == value);
        if !wants(s.pipeline_id.as_deref(), facts.pipeline_id)
            || !wants(s.to_stage_id.as_deref(), facts.stage_id)
            || !wants(s.owner_id.as_deref(), Some(facts.owner_id))
        {
            continue;
        }
        if let Some(team) = &s.team_id {
            let owner = users::find(conn, &UserId::from(facts.owner_id))?;
            if owner.and_then(|u| u.team_id).as_deref() != Some(team.as_str()) {
                continue;
            }
        }
        out.push(s.id.as_str());
    }
    Ok(out)
}

/// The active subscriptions, or none when nothing is subscribed: each change reads
/// them once and hands them to [`emit`].
fn subscriptions(conn: &mut DbConn) -> AppResult<Option<Vec<SubscriptionRow>>> {
    let subs = webhooks::active_subscriptions(conn)?;
    Ok((!subs.is_empty()).then_some(subs))
}

/// Writes each of `events` that one of `subs` wants; `data` is built only then.
fn emit(
    conn: &mut DbConn,
    subs: &[SubscriptionRow],
    events: &[EventType],
    record_id: &str,
    facts: &Facts<'_>,
    data: impl FnOnce(&mut DbConn) -> AppResult<Map<String, Value>>,
    previous: &Map<String, Value>,
) -> AppResult<()> {
    let mut wanted = Vec::new();
    for &event in events {
        let to = subscribers(conn, subs, event, facts)?;
        if !to.is_empty() {
            wanted.push((event, to));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let data = Value::Object(data(conn)?);
    let at = storage::now();
    for (event, to) in wanted {
        let id = message_id();
        let payload = json!({
            "id": id,
            "type": event.as_str(),
            "occurred_at": super::views::utc(at),
            "data": data,
            "previous": previous,
        });
        webhooks::enqueue(
            conn,
            &id,
            event.as_str(),
            record_id,
            at,
            &payload.to_string(),
            &to,
        )?;
    }
    Ok(())
}

/// A message id as Standard Webhooks writes them: `msg_` and a unique suffix.
pub fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// A lead was created (`before` none), changed, or converted.
pub fn lead(conn: &mut DbConn, before: Option<&LeadRow>, after: &LeadRow) -> AppResult<()> {
    let Some(subs) = subscriptions(conn)? else {
        return Ok(());
    };
    let after_map = to_map(&LeadOut::from(after.clone()))?;
    let (events, prev) = match before {
        None => (vec![EventType::LeadCreated], Map::new()),
        Some(b) => {
            let prev = previous(&to_map(&LeadOut::from(b.clone()))?, &after_map);
            if prev.is_empty() {
                return Ok(());
            }
            let converted = after.status == LeadStatus::Converted && b.status != after.status;
            let kind = if converted {
                EventType::LeadConverted
            } else {
                EventType::LeadUpdated
            };
            (vec![kind], prev)
        }
    };
    let facts = Facts {
        owner_id: &after.owner_id,
        ..Facts::default()
    };
    emit(
        conn,
        &subs,
        &events,
        &after.id,
        &facts,
        |_| Ok(after_map),
        &prev,
    )
}

fn deal_view(conn: &mut DbConn, row: &OpportunityRow) -> AppResult<Map<String, Value>> {
    let probability = pipelines::stages_of(conn, &row.pipeline_id)?
        .iter()
        .find(|s| s.id == row.stage_id)
        .map_or(0, |s| s.probability);
    to_map(&OpportunityOut::new(row.clone(), probability))
}

/// A deal was created (`before` none) or changed: `stage_changed` for a new stage,
/// `won`, `lost` or `reopened` beside it for a new status, `updated` when fields other
/// than the stage's changed.
pub fn opportunity(
    conn: &mut DbConn,
    before: Option<&OpportunityRow>,
    after: &OpportunityRow,
) -> AppResult<()> {
    let Some(subs) = subscriptions(conn)? else {
        return Ok(());
    };
    let facts = Facts {
        pipeline_id: Some(&after.pipeline_id),
        stage_id: Some(&after.stage_id),
        owner_id: &after.owner_id,
    };
    let Some(b) = before else {
        return emit(
            conn,
            &subs,
            &[EventType::OpportunityCreated],
            &after.id,
            &facts,
            |conn| deal_view(conn, after),
            &Map::new(),
        );
    };
    let after_map = deal_view(conn, after)?;
    let prev = previous(&deal_view(conn, b)?, &after_map);
    if prev.is_empty() {
        return Ok(());
    }
    let mut events = Vec::new();
    if b.stage_id != after.stage_id {
        events.push(EventType::OpportunityStageChanged);
        match (b.status, after.status) {
            (OpportunityStatus::Open, OpportunityStatus::Won) => {
                events.push(EventType::OpportunityWon)
            }
            (OpportunityStatus::Open, OpportunityStatus::Lost) => {
                events.push(EventType::OpportunityLost)
            }
            (OpportunityStatus::Lost, OpportunityStatus::Open) => {
                events.push(EventType::OpportunityReopened)
            }
            _ => {}
        }
    }
    if prev.keys().any(|k| !STAGE_FIELDS.contains(&k.as_str())) {
        events.push(EventType::OpportunityUpdated);
    }
    emit(
        conn,
        &subs,
        &events,
        &after.id,
        &facts,
        |_| Ok(after_map),
        &prev,
    )
}

/// A deal has been in its stage past the stage's `stalled_after_days`.
pub fn stalled(conn: &mut DbConn, deal: &OpportunityRow) -> AppResult<()> {
    let Some(subs) = subscriptions(conn)? else {
        return Ok(());
    };
    let facts = Facts {
        pipeline_id: Some(&deal.pipeline_id),
        stage_id: Some(&deal.stage_id),
        owner_id: &deal.owner_id,
    };
    emit(
        conn,
        &subs,
        &[EventType::OpportunityStalled],
        &deal.id,
        &facts,
        |conn| deal_view(conn, deal),
        &Map::new(),
    )
}

/// An activity was logged on a lead or a deal.
pub fn activity_created(conn: &mut DbConn, a: &ActivityRow) -> AppResult<()> {
    let Some(subs) = subscriptions(conn)? else {
        return Ok(());
    };
    let deal = match &a.opportunity_id {
        Some(id) => OpportunityRow::read(conn, id, Lock::No)?,
        None => None,
    };
    let facts = Facts {
        pipeline_id: deal.as_ref().map(|d| d.pipeline_id.as_str()),
        stage_id: deal.as_ref().map(|d| d.stage_id.as_str()),
        owner_id: &a.owner_id,
    };
    emit(
        conn,
        &subs,
        &[EventType::ActivityCreated],
        &a.id,
        &facts,
        |_| to_map(&ActivityOut::from(a.clone())),
        &Map::new(),
    )
}
