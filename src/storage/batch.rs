//! A batch of imported rows written in one transaction, faster than row by row while
//! going through the same workflow functions:
//! - reference data that does not change within a batch (the scoring rules, a
//!   pipeline's stages, users) is read once;
//! - new leads, new deals and stage-log entries are buffered and written at the end of
//!   the batch with multi-row inserts ([`flush`]), before the report aggregates of the
//!   batch's deals are refreshed.
//!
//! The checks that look for an existing duplicate (a lead's email or external id, a
//! deal's external id) are left to the unique indexes while buffering: when the flush
//! fails, the caller rolls the batch back and writes it again row by row, where each
//! duplicate gets its precise answer. Everything else a row is checked against runs as
//! it does for a single request.

use std::cell::RefCell;
use std::collections::HashMap;

use diesel::prelude::*;

use super::leads::LeadRow;
use super::opportunities::{OpportunityRow, TransitionRow};
use super::pipelines::StageRow;
use super::schema::{leads, opportunities, stage_transitions};
use super::users::UserRow;
use super::webhooks::SubscriptionRow;
use super::DbConn;
use crate::domain::lead::ScoringRule;
use crate::error::AppResult;

#[derive(Default)]
struct Batch {
    rules: Option<Vec<ScoringRule>>,
    subscriptions: Option<Vec<SubscriptionRow>>,
    stages: HashMap<String, Vec<StageRow>>,
    users: HashMap<String, Option<UserRow>>,
    leads: Vec<LeadRow>,
    deals: Vec<OpportunityRow>,
    transitions: Vec<TransitionRow>,
}

thread_local! {
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Runs `f` with a batch open on this thread (the caller flushes it before it ends).
pub fn scope<T>(f: impl FnOnce() -> T) -> T {
    BATCH.with(|b| *b.borrow_mut() = Some(Batch::default()));
    let out = f();
    BATCH.with(|b| *b.borrow_mut() = None);
    out
}

/// [`scope`] when `open`, else just `f`.
pub fn scope_if<T>(open: bool, f: impl FnOnce() -> T) -> T {
    if open {
        scope(f)
    } else {
        f()
    }
}

/// Whether writes on this thread are being buffered.
pub fn active() -> bool {
    BATCH.with(|b| b.borrow().is_some())
}

/// How much is buffered: what [`rollback_to`] returns to when a row fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mark(usize, usize, usize);

pub fn mark() -> Mark {
    BATCH.with(|b| {
        b.borrow().as_ref().map_or(Mark::default(), |b| {
            Mark(b.leads.len(), b.deals.len(), b.transitions.len())
        })
    })
}

/// Drops what a failed row buffered.
pub fn rollback_to(m: Mark) {
    BATCH.with(|b| {
        if let Some(b) = b.borrow_mut().as_mut() {
            b.leads.truncate(m.0);
            b.deals.truncate(m.1);
            b.transitions.truncate(m.2);
        }
    })
}

/// Appends `row` to the buffer `pick` chooses; false when no batch is open (the caller
/// writes it now).
fn buffer<T: Clone>(row: &T, pick: fn(&mut Batch) -> &mut Vec<T>) -> bool {
    BATCH.with(|b| match b.borrow_mut().as_mut() {
        Some(b) => {
            pick(b).push(row.clone());
            true
        }
        None => false,
    })
}

/// Buffers a new lead; false when no batch is open.
pub fn buffer_lead(row: &LeadRow) -> bool {
    buffer(row, |b| &mut b.leads)
}

/// Buffers a new deal; false when no batch is open.
pub fn buffer_deal(row: &OpportunityRow) -> bool {
    buffer(row, |b| &mut b.deals)
}

/// Buffers a stage-log entry; false when no batch is open.
pub fn buffer_transition(row: &TransitionRow) -> bool {
    buffer(row, |b| &mut b.transitions)
}

/// A value read once per batch: `get` finds it remembered, else `load` reads it and
/// `put` remembers it. Without a batch, `load` runs every time.
fn remembered<V: Clone>(
    get: impl Fn(&Batch) -> Option<V>,
    put: impl FnOnce(&mut Batch, V),
    load: impl FnOnce() -> AppResult<V>,
) -> AppResult<V> {
    if let Some(v) = BATCH.with(|b| b.borrow().as_ref().and_then(&get)) {
        return Ok(v);
    }
    let value = load()?;
    BATCH.with(|b| {
        if let Some(b) = b.borrow_mut().as_mut() {
            put(b, value.clone());
        }
    });
    Ok(value)
}

/// The scoring rules, read once per batch.
pub fn rules(
    conn: &mut DbConn,
    load: fn(&mut DbConn) -> AppResult<Vec<ScoringRule>>,
) -> AppResult<Vec<ScoringRule>> {
    remembered(|b| b.rules.clone(), |b, v| b.rules = Some(v), || load(conn))
}

/// The active webhook subscriptions, read once per batch.
pub fn memo_subscriptions(
    conn: &mut DbConn,
    load: fn(&mut DbConn) -> AppResult<Vec<SubscriptionRow>>,
) -> AppResult<Vec<SubscriptionRow>> {
    remembered(
        |b| b.subscriptions.clone(),
        |b, v| b.subscriptions = Some(v),
        || load(conn),
    )
}

/// A pipeline's stages, read once per batch.
pub fn stages(
    conn: &mut DbConn,
    pipeline_id: &str,
    load: fn(&mut DbConn, &str) -> AppResult<Vec<StageRow>>,
) -> AppResult<Vec<StageRow>> {
    remembered(
        |b| b.stages.get(pipeline_id).cloned(),
        |b, v| {
            b.stages.insert(pipeline_id.to_owned(), v);
        },
        || load(conn, pipeline_id),
    )
}

/// A user by id, read once per batch.
pub fn user(
    conn: &mut DbConn,
    id: &str,
    load: fn(&mut DbConn, &str) -> AppResult<Option<UserRow>>,
) -> AppResult<Option<UserRow>> {
    remembered(
        |b| b.users.get(id).cloned(),
        |b, v| {
            b.users.insert(id.to_owned(), v);
        },
        || load(conn, id),
    )
}

/// Multi-row inserts on PostgreSQL (one round trip per few hundred rows); on SQLite,
/// which runs in-process, a prepared insert per row costs as little.
macro_rules! insert_all {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            DbConn::Pg(c) => {
                for chunk in $rows.chunks(ROWS_PER_INSERT) {
                    diesel::insert_into($table)
                        .values(chunk.to_vec())
                        .execute(c)?;
                }
            }
            DbConn::Sqlite(c) => {
                for row in &$rows {
                    diesel::insert_into($table).values(row.clone()).execute(c)?;
                }
            }
        }
    };
}

/// Rows per multi-row insert (well under both backends' limits on bound values).
const ROWS_PER_INSERT: usize = 200;

/// Writes what the batch buffered: leads, deals, then their stage-log entries. The
/// batch stays open (empty) for the rest of the transaction.
pub fn flush(conn: &mut DbConn) -> AppResult<()> {
    let (leads_rows, deals, transitions) = BATCH.with(|b| match b.borrow_mut().as_mut() {
        Some(b) => (
            std::mem::take(&mut b.leads),
            std::mem::take(&mut b.deals),
            std::mem::take(&mut b.transitions),
        ),
        None => Default::default(),
    });
    insert_all!(conn, leads::table, leads_rows);
    insert_all!(conn, opportunities::table, deals);
    insert_all!(conn, stage_transitions::table, transitions);
    Ok(())
}
