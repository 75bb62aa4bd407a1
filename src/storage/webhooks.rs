//! Outbound webhooks: subscriptions, the outbox of events (written in the transaction
//! of the change they announce), one delivery per subscription and event, and the
//! attempts of each delivery.
//!
//! Delivery order per record: a worker only claims a delivery when no earlier pending
//! delivery of the same subscription and record exists, so the events of one deal reach
//! a receiver in the order they happened, while other records go on in parallel.

use crate::storage::uid::{uid, uids};
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{webhook_attempts, webhook_deliveries, webhook_events, webhook_subscriptions};
use super::sql::Sql;
use super::types::JsonText;
use super::versioned::delete_if_version;
use super::{Backend, DbConn};
use crate::domain::ids::{DeliveryId, PipelineId, StageId, TeamId, UserId, WebhookId};
use crate::domain::integration::{DeliveryStatus, EventType};
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhook_subscriptions, treat_none_as_null = true)]
pub struct SubscriptionRow {
    pub id: WebhookId,
    pub url: String,
    pub description: Option<String>,
    pub events: JsonText<Vec<EventType>>,
    pub pipeline_id: Option<PipelineId>,
    pub to_stage_id: Option<StageId>,
    pub owner_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    /// Shown once, at creation; never changed by a save.
    #[diesel(skip_update)]
    pub secret: String,
    pub active: bool,
    pub disabled_reason: Option<String>,
    #[diesel(skip_update)]
    pub version: i32,
    #[diesel(skip_update)]
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    #[diesel(skip_update)]
    pub created_by: UserId,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_events)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub event_type: String,
    pub record_id: String,
    pub occurred_at: NaiveDateTime,
    pub payload: String,
}

#[derive(Insertable)]
#[diesel(table_name = webhook_events)]
struct NewEvent<'a> {
    id: &'a str,
    event_type: &'a str,
    record_id: &'a str,
    occurred_at: NaiveDateTime,
    payload: &'a str,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub subscription_id: WebhookId,
    pub event_seq: i64,
    pub record_id: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub locked_until: Option<NaiveDateTime>,
    pub response_status: Option<i32>,
    pub latency_ms: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub struct AttemptRow {
    pub delivery_id: DeliveryId,
    pub attempt: i32,
    pub attempted_at: NaiveDateTime,
    pub response_status: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
}

pub fn list_subscriptions(conn: &mut DbConn) -> AppResult<Vec<SubscriptionRow>> {
    Ok(webhook_subscriptions::table
        .select(SubscriptionRow::as_select())
        .order(webhook_subscriptions::created_at.asc())
        .load(conn)?)
}

/// The active subscriptions, read once per batch of an import.
pub fn active_subscriptions(conn: &mut DbConn) -> AppResult<Vec<SubscriptionRow>> {
    super::batch::memo_subscriptions(conn, |conn| {
        Ok(webhook_subscriptions::table
            .filter(webhook_subscriptions::active.eq(true))
            .select(SubscriptionRow::as_select())
            .load(conn)?)
    })
}

/// Deletes a subscription with its deliveries and their attempts.
pub fn delete_subscription(conn: &mut DbConn, id: &str, version: i32) -> AppResult<()> {
    delete_if_version(conn, webhook_subscriptions::table, id, version)?;
    let deliveries: Vec<String> = webhook_deliveries::table
        .filter(webhook_deliveries::subscription_id.eq(uid(id)))
        .select(webhook_deliveries::id)
        .load(conn)?;
    diesel::delete(
        webhook_attempts::table.filter(webhook_attempts::delivery_id.eq_any(uids(&deliveries))),
    )
    .execute(conn)?;
    diesel::delete(
        webhook_deliveries::table.filter(webhook_deliveries::subscription_id.eq(uid(id))),
    )
    .execute(conn)?;
    Ok(())
}

/// Turns a subscription off after its receiver answered `410 Gone`.
pub fn disable(conn: &mut DbConn, id: &str, reason: &str) -> AppResult<()> {
    use webhook_subscriptions::dsl as s;
    diesel::update(s::webhook_subscriptions.find(uid(id)))
        .set((
            s::active.eq(false),
            s::disabled_reason.eq(reason),
            s::version.eq(s::version + 1),
            s::updated_at.eq(super::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Writes one event to the outbox with a pending delivery for each of `subscribers`.
pub fn enqueue(
    conn: &mut DbConn,
    id: &str,
    event_type: &str,
    record_id: &str,
    occurred_at: NaiveDateTime,
    payload: &str,
    subscribers: &[&str],
) -> AppResult<Vec<DeliveryId>> {
    let seq: i64 = diesel::insert_into(webhook_events::table)
        .values(NewEvent {
            id,
            event_type,
            record_id,
            occurred_at,
            payload,
        })
        .returning(webhook_events::seq)
        .get_result(conn)?;
    let rows: Vec<DeliveryRow> = subscribers
        .iter()
        .map(|s| DeliveryRow {
            id: super::new_id(),
            subscription_id: WebhookId::from(*s),
            event_seq: seq,
            record_id: record_id.to_owned(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(occurred_at),
            locked_until: None,
            response_status: None,
            latency_ms: None,
            last_error: None,
            created_at: occurred_at,
            finished_at: None,
        })
        .collect();
    for row in &rows {
        diesel::insert_into(webhook_deliveries::table)
            .values(row.clone())
            .execute(conn)?;
    }
    Ok(rows.into_iter().map(|d| d.id).collect())
}

/// A delivery claimed by a worker, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: DeliveryRow,
    pub event: EventRow,
    pub url: String,
    pub secret: String,
}

/// How many of the earliest due deliveries a claim looks at.
const SCAN_WINDOW: i64 = 1024;

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = crate::storage::uid::Uid)]
    id: String,
}

/// Claims up to `limit` due deliveries of active subscriptions, each the earliest
/// pending one of its (subscription, record), for `lease`: until then no other worker
/// (in this process or another replica) takes them. The claim is its own short
/// transaction, so no connection is held while receivers answer.
pub fn claim(
    conn: &mut DbConn,
    backend: Backend,
    now: NaiveDateTime,
    lease: chrono::Duration,
    limit: i64,
) -> AppResult<Vec<Claimed>> {
    // A plain read first: an idle worker never takes SQLite's write lock, nor waits
    // for it behind a long import.
    let due = webhook_deliveries::table
        .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending))
        .filter(webhook_deliveries::next_attempt_at.le(now))
        .select(webhook_deliveries::id)
        .first::<String>(conn)
        .optional()?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    super::write_tx(conn, |conn| {
        // The earliest due deliveries come off the due index in order (a window of
        // SCAN_WINDOW), and only those are checked for an earlier pending delivery of
        // their record: a claim costs the same whether ten or a million are queued.
        // The state is tested again on `d`, the row locked: when another worker's claim
        // commits while this one waits, PostgreSQL re-reads the locked row and
        // re-applies the conditions on it, so a delivery just claimed is not claimed
        // twice.
        let mut q = Sql::new(backend);
        q.push("SELECT d.id AS id FROM (SELECT id, subscription_id, record_id, event_seq, next_attempt_at FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ")
            .ts(now)
            .push(" AND (locked_until IS NULL OR locked_until <= ")
            .ts(now)
            .push(") ORDER BY next_attempt_at, event_seq LIMIT ")
            .int(SCAN_WINDOW)
            .push(") c JOIN webhook_deliveries d ON d.id = c.id JOIN webhook_subscriptions s ON s.id = c.subscription_id AND s.active WHERE d.status = 'pending' AND (d.locked_until IS NULL OR d.locked_until <= ")
            .ts(now)
            .push(") AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.status = 'pending' AND e.subscription_id = c.subscription_id AND e.record_id = c.record_id AND e.event_seq < c.event_seq) ORDER BY c.next_attempt_at, c.event_seq LIMIT ")
            .int(limit);
        if backend == Backend::Postgres {
            q.push(" FOR UPDATE OF d SKIP LOCKED");
        }
        let ids: Vec<String> = q.load::<IdRow>(conn)?.into_iter().map(|r| r.id).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(uids(&ids))))
            .set(webhook_deliveries::locked_until.eq(now + lease))
            .execute(conn)?;
        let rows: Vec<(DeliveryRow, EventRow, String, String)> = webhook_deliveries::table
            .inner_join(
                webhook_events::table.on(webhook_events::seq.eq(webhook_deliveries::event_seq)),
            )
            .inner_join(
                webhook_subscriptions::table
                    .on(webhook_subscriptions::id.eq(webhook_deliveries::subscription_id)),
            )
            .filter(webhook_deliveries::id.eq_any(uids(&ids)))
            .order(webhook_deliveries::event_seq.asc())
            .select((
                DeliveryRow::as_select(),
                EventRow::as_select(),
                webhook_subscriptions::url,
                webhook_subscriptions::secret,
            ))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(delivery, event, url, secret)| Claimed {
                delivery,
                event,
                url,
                secret,
            })
            .collect())
    })
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: DeliveryId,
    /// The lease the attempt was made under (its `locked_until`): the attempt is
    /// recorded only while the delivery is still held under it.
    pub lease: Option<NaiveDateTime>,
    pub subscription_id: WebhookId,
    pub attempted_at: NaiveDateTime,
    pub response_status: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    /// Delivered, failed for good, or pending again at a time.
    pub next: Next,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Delivered,
    /// Retries are over (or the receiver said 410 Gone).
    Failed,
    RetryAt(NaiveDateTime),
}

/// Records an attempt and where its delivery now stands. A delivery that is no longer
/// held under the attempt's lease (deleted with its subscription, queued again, or
/// claimed by another worker after the lease ran out) is left alone.
pub fn record(conn: &mut DbConn, o: &Outcome) -> AppResult<()> {
    use webhook_deliveries::dsl as d;
    let (status, next_at, finished) = match o.next {
        Next::Delivered => (DeliveryStatus::Delivered, None, Some(o.attempted_at)),
        Next::Failed => (DeliveryStatus::Failed, None, Some(o.attempted_at)),
        Next::RetryAt(t) => (DeliveryStatus::Pending, Some(t), None),
    };
    let held = d::webhook_deliveries
        .find(uid(&o.delivery_id))
        .filter(d::locked_until.eq(o.lease));
    let n = diesel::update(held)
        .set((
            d::status.eq(status),
            d::attempts.eq(d::attempts + 1),
            d::next_attempt_at.eq(next_at),
            d::locked_until.eq(None::<NaiveDateTime>),
            d::response_status.eq(o.response_status),
            d::latency_ms.eq(o.latency_ms),
            d::last_error.eq(&o.error),
            d::finished_at.eq(finished),
        ))
        .execute(conn)?;
    if n == 0 {
        return Ok(());
    }
    // Counted after the update, which holds the delivery's row.
    let attempt = i32::try_from(
        webhook_attempts::table
            .filter(webhook_attempts::delivery_id.eq(uid(&o.delivery_id)))
            .count()
            .get_result::<i64>(conn)?,
    )
    .unwrap_or(i32::MAX - 1)
        + 1;
    diesel::insert_into(webhook_attempts::table)
        .values(AttemptRow {
            delivery_id: o.delivery_id.clone(),
            attempt,
            attempted_at: o.attempted_at,
            response_status: o.response_status,
            latency_ms: o.latency_ms,
            error: o.error.clone(),
        })
        .execute(conn)?;
    Ok(())
}

/// A delivery with its event's id and type, and its attempts.
pub type DeliveryWithLog = (DeliveryRow, String, String, Vec<AttemptRow>);

/// A subscription's deliveries, newest first, before the keyset `before_seq`.
pub fn deliveries(
    conn: &mut DbConn,
    subscription_id: &str,
    status: Option<DeliveryStatus>,
    before_seq: Option<i64>,
    limit: i64,
) -> AppResult<Vec<DeliveryWithLog>> {
    let mut q = webhook_deliveries::table
        .inner_join(webhook_events::table.on(webhook_events::seq.eq(webhook_deliveries::event_seq)))
        .filter(webhook_deliveries::subscription_id.eq(uid(subscription_id)))
        .select((
            DeliveryRow::as_select(),
            webhook_events::id,
            webhook_events::event_type,
        ))
        .order(webhook_deliveries::event_seq.desc())
        .limit(limit)
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(webhook_deliveries::status.eq(s));
    }
    if let Some(b) = before_seq {
        q = q.filter(webhook_deliveries::event_seq.lt(b));
    }
    let rows: Vec<(DeliveryRow, String, String)> = q.load(conn)?;
    with_logs(conn, rows)
}

/// One delivery with its log.
pub fn delivery_with_log(conn: &mut DbConn, id: &str) -> AppResult<DeliveryWithLog> {
    let rows: Vec<(DeliveryRow, String, String)> = webhook_deliveries::table
        .inner_join(webhook_events::table.on(webhook_events::seq.eq(webhook_deliveries::event_seq)))
        .filter(webhook_deliveries::id.eq(uid(id)))
        .select((
            DeliveryRow::as_select(),
            webhook_events::id,
            webhook_events::event_type,
        ))
        .load(conn)?;
    with_logs(conn, rows)?.pop().ok_or(AppError::NotFound)
}

fn with_logs(
    conn: &mut DbConn,
    rows: Vec<(DeliveryRow, String, String)>,
) -> AppResult<Vec<DeliveryWithLog>> {
    let ids: Vec<&str> = rows.iter().map(|(d, _, _)| d.id.as_str()).collect();
    let mut attempts: Vec<AttemptRow> = webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(uids(&ids)))
        .order((webhook_attempts::delivery_id, webhook_attempts::attempt))
        .select(AttemptRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(d, event_id, event_type)| {
            let mine: Vec<AttemptRow> = attempts
                .iter()
                .filter(|a| a.delivery_id == d.id)
                .cloned()
                .collect();
            attempts.retain(|a| a.delivery_id != d.id);
            (d, event_id, event_type, mine)
        })
        .collect())
}

/// One delivery of a subscription.
pub fn find_delivery(conn: &mut DbConn, id: &str) -> AppResult<DeliveryRow> {
    webhook_deliveries::table
        .find(uid(id))
        .select(DeliveryRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// Queues a delivery again, now, with a fresh retry schedule (its attempts stay).
/// Refused while a worker is sending it.
pub fn redeliver(conn: &mut DbConn, id: &str) -> AppResult<()> {
    use webhook_deliveries::dsl as d;
    let now = super::now();
    let idle = d::webhook_deliveries
        .find(uid(id))
        .filter(d::locked_until.is_null().or(d::locked_until.le(now)));
    let n = diesel::update(idle)
        .set((
            d::status.eq(DeliveryStatus::Pending),
            d::attempts.eq(0),
            d::next_attempt_at.eq(now),
            d::locked_until.eq(None::<NaiveDateTime>),
            d::finished_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(AppError::Conflict {
            code: crate::error::ProblemCode::Conflict,
            detail: "The delivery is being sent right now; ask again when the attempt is over."
                .into(),
            existing_id: None,
        });
    }
    Ok(())
}

/// The number of pending deliveries (for the benchmark and the tests).
pub fn pending_count(conn: &mut DbConn) -> AppResult<i64> {
    Ok(webhook_deliveries::table
        .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending))
        .count()
        .get_result(conn)?)
}

/// Open deals past their stage's stall threshold that were not announced for their
/// current stay yet; each is marked announced in the same transaction.
pub fn take_new_stalls(
    conn: &mut DbConn,
    backend: Backend,
    now: NaiveDateTime,
    limit: i64,
) -> AppResult<Vec<super::opportunities::OpportunityRow>> {
    use super::opportunities::{stalled_condition, OpportunityRow};
    use super::schema::{opportunities, stages, stall_notices};
    let announced = stall_notices::table
        .filter(stall_notices::opportunity_id.eq(opportunities::id))
        .filter(stall_notices::stage_entered_at.eq(opportunities::stage_entered_at));
    let mut deals: Vec<OpportunityRow> = opportunities::table
        .inner_join(stages::table)
        .filter(stalled_condition(backend, now))
        .filter(diesel::dsl::not(diesel::dsl::exists(announced)))
        .select(OpportunityRow::as_select())
        .limit(limit)
        .load(conn)?;
    // On PostgreSQL the deals are then locked, so that no move commits between this
    // scan and its events (which would put a stale `stalled` after the move): a deal
    // being changed right now, or moved since it was read, waits for the next scan.
    // SQLite's write transaction already excludes every other writer.
    if let DbConn::Pg(c) = conn {
        let ids: Vec<&str> = deals.iter().map(|d| d.id.as_str()).collect();
        let held: Vec<(String, NaiveDateTime, String)> = opportunities::table
            .filter(opportunities::id.eq_any(uids(&ids)))
            .select((
                opportunities::id,
                opportunities::stage_entered_at,
                opportunities::stage_id,
            ))
            .for_update()
            .skip_locked()
            .load(c)?;
        deals.retain(|d| {
            held.iter().any(|(id, at, stage)| {
                *id == d.id && *at == d.stage_entered_at && *stage == d.stage_id
            })
        });
    }
    for d in &deals {
        diesel::insert_into(stall_notices::table)
            .values((
                stall_notices::opportunity_id.eq(uid(&d.id)),
                stall_notices::stage_entered_at.eq(d.stage_entered_at),
            ))
            .execute(conn)?;
    }
    Ok(deals)
}

/// Forgets deliveries that ended before `before` (with their attempts) and the events
/// no delivery refers to any more. Pending deliveries are never touched.
pub fn purge(conn: &mut DbConn, before: NaiveDateTime) -> AppResult<usize> {
    super::write_tx(conn, |conn| {
        let old: Vec<String> = webhook_deliveries::table
            .filter(webhook_deliveries::status.ne(DeliveryStatus::Pending))
            .filter(webhook_deliveries::finished_at.lt(before))
            .select(webhook_deliveries::id)
            .limit(10_000)
            .load(conn)?;
        if old.is_empty() {
            return Ok(0);
        }
        diesel::delete(
            webhook_attempts::table.filter(webhook_attempts::delivery_id.eq_any(uids(&old))),
        )
        .execute(conn)?;
        diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(uids(&old))))
            .execute(conn)?;
        let referenced = webhook_deliveries::table.select(webhook_deliveries::event_seq);
        diesel::delete(
            webhook_events::table
                .filter(webhook_events::occurred_at.lt(before))
                .filter(webhook_events::seq.ne_all(referenced)),
        )
        .execute(conn)?;
        Ok(old.len())
    })
}
