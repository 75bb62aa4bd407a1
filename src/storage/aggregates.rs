//! Maintained report aggregates: `deal_reach` (one row per deal) and `stage_stays` (one
//! row per stay in a stage), both derived from the append-only stage log and the
//! activities. They exist so that reports over a million deals read one narrow row per
//! deal or per stay instead of windowing and joining the whole log.
//!
//! One set of statements computes them, for one deal, one pipeline or everything:
//! - every write to an opportunity (create, save, stage change, activity change) calls
//!   [`refresh`] for that deal inside the same transaction, so the aggregates commit or
//!   roll back with the change;
//! - a change to a pipeline's stage structure (a stage added, deleted, reordered or given
//!   another kind) rebuilds that pipeline, because bits and ranks follow stage positions;
//! - a migration that adds or changes them marks them for a rebuild at the next start
//!   ([`catch_up`]), and the demo-data generator rebuilds everything once at the end.
//!
//! Rows are written with upserts, so two writers refreshing the same deal cannot collide
//! on a key: the later statement simply wins, and both compute from committed data.

use std::cell::RefCell;
use std::collections::BTreeSet;

use diesel::prelude::*;

use super::sql::Sql;
use super::{Backend, DbConn};
use crate::domain::opportunity::ActivityType;
use crate::error::AppResult;

/// What to recompute.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Deal(&'a str),
    /// Several deals at once (a batch of an import).
    Deals(&'a [String]),
    Pipeline(&'a str),
    All,
}

impl Target<'_> {
    /// Runs `statement`, whose `{target}` marks where the target's condition goes
    /// (` AND <deal or pipeline column> = <bind>`, or nothing for everything).
    fn run(
        &self,
        conn: &mut DbConn,
        statement: &str,
        deal_column: &str,
        pipeline_column: &str,
    ) -> AppResult<()> {
        let (before, after) = statement.split_once("{target}").unwrap_or((statement, ""));
        let mut q = Sql::new(super::opportunities::backend_of(conn));
        q.push(before);
        match self {
            Target::Deal(id) => {
                q.push(&format!(" AND {deal_column} = ")).id(id);
            }
            Target::Deals(ids) => {
                q.push(&format!(" AND {deal_column} IN ")).in_ids(ids);
            }
            Target::Pipeline(id) => {
                q.push(&format!(" AND {pipeline_column} = ")).id(id);
            }
            Target::All => {}
        }
        q.push(after).execute(conn)?;
        Ok(())
    }
}

/// Funnel rank of a stage alias: open stages by position, won last, lost outside (-1).
pub fn rank(alias: &str) -> String {
    format!("(CASE WHEN {alias}.kind = 'won' THEN 1000000 WHEN {alias}.kind = 'open' THEN {alias}.position ELSE -1 END)")
}

/// The column of a stay holding the seconds from its entry to the first completed
/// activity of `activity_type` during the stay.
pub fn first_activity_column(activity_type: &str) -> String {
    format!("first_{activity_type}_after")
}

thread_local! {
    /// The deals whose refresh waits for the end of the batch running on this thread.
    static DEFERRED: RefCell<Option<BTreeSet<String>>> = const { RefCell::new(None) };
}

/// Runs `f` (a batch of writes in one transaction, on this thread) with the per-deal
/// refreshes it asks for collected instead of run; answers them with its result, for
/// [`refresh_deals`] in the same transaction. A bulk write pays one refresh per batch
/// instead of one per deal.
pub fn deferring<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    DEFERRED.with(|d| *d.borrow_mut() = Some(BTreeSet::new()));
    let result = f();
    let ids = DEFERRED
        .with(|d| d.borrow_mut().take())
        .unwrap_or_default()
        .into_iter()
        .collect();
    (result, ids)
}

/// Refreshes the aggregates of these deals, a few hundred per statement.
pub fn refresh_deals(conn: &mut DbConn, ids: &[String]) -> AppResult<()> {
    for chunk in ids.chunks(500) {
        refresh(conn, Target::Deals(chunk))?;
    }
    Ok(())
}

/// Recomputes the aggregates of the target from the stage log and the activities.
/// Inside [`batched`], a single deal's refresh is put off to the end of the batch.
pub fn refresh(conn: &mut DbConn, target: Target<'_>) -> AppResult<()> {
    if let Target::Deal(id) = target {
        let deferred = DEFERRED.with(|d| match d.borrow_mut().as_mut() {
            Some(ids) => {
                ids.insert(id.to_owned());
                true
            }
            None => false,
        });
        if deferred {
            return Ok(());
        }
    }
    let backend = super::opportunities::backend_of(conn);
    if backend == Backend::Postgres && !matches!(target, Target::Deal(_) | Target::Deals(_)) {
        // A pipeline or full rebuild sorts and groups millions of log rows: give this
        // transaction the memory to do it without spilling to disk.
        diesel::sql_query("SET LOCAL work_mem = '512MB'").execute(conn)?;
    }
    let (to, from) = (rank("s"), rank("fs"));
    // The log is read through its per-deal index. On SQLite the unary `+` keeps the
    // planner from taking the per-pipeline index instead (which it does without
    // statistics, and which reads every entry of the pipeline for each deal).
    let same_pipeline = match backend {
        Backend::Sqlite => "+t.pipeline_id = o.pipeline_id",
        Backend::Postgres => "t.pipeline_id = o.pipeline_id",
    };

    // The stage a lost deal was lost from: the one entry that matches, so any aggregate
    // picks it; PostgreSQL has no MAX over UUIDs, so there it goes through their text.
    let lost_from_entry = "CASE WHEN o.status = 'lost' AND t.to_stage_id = o.stage_id AND t.entered_at = o.stage_entered_at \
         THEN COALESCE(t.from_stage_id, t.to_stage_id) END";
    let lost_from = match backend {
        Backend::Sqlite => format!("MAX({lost_from_entry})"),
        Backend::Postgres => format!("CAST(MAX(CAST({lost_from_entry} AS TEXT)) AS uuid)"),
    };

    // Stage entries are written as bits of a BIGINT; SUM(DISTINCT 2^position) is the OR
    // of the bits on both backends (SQLite has no BIT_OR).
    let milli = super::sql::thousandths("o.amount_minor", "o.currency");
    let reach = format!(
        "INSERT INTO deal_reach (opportunity_id, pipeline_id, owner_id, created_at, entered_mask, \
         lost_from_stage_id, lost_at, was_lost, reopened, advances, status, amount_milli, closed_at, lost_reason_id, \
         source, industry, company_size, region, tags) \
         SELECT o.id, o.pipeline_id, o.owner_id, o.created_at, \
         CAST(COALESCE(SUM(DISTINCT CASE WHEN s.id IS NOT NULL THEN CAST(1 AS BIGINT) << s.position END), 0) AS BIGINT), \
         {lost_from}, \
         CASE WHEN o.status = 'lost' THEN o.stage_entered_at END, \
         MAX(CASE WHEN s.kind = 'lost' THEN 1 ELSE 0 END), \
         MAX(CASE WHEN fs.kind = 'lost' AND s.kind = 'open' THEN 1 ELSE 0 END), \
         SUM(CASE WHEN fs.kind = 'open' AND {to} > {from} THEN 1 ELSE 0 END), \
         o.status, {milli}, o.closed_at, o.lost_reason_id, o.source, o.industry, o.company_size, o.region, o.tags \
         FROM opportunities o JOIN stage_transitions t ON t.opportunity_id = o.id AND {same_pipeline} \
         LEFT JOIN stages s ON s.id = t.to_stage_id LEFT JOIN stages fs ON fs.id = t.from_stage_id \
         WHERE 1 = 1{{target}} \
         GROUP BY o.id, o.pipeline_id, o.owner_id, o.created_at, o.status, o.amount_minor, o.currency, o.closed_at, o.lost_reason_id, \
         o.stage_entered_at, o.source, o.industry, o.company_size, o.region, o.tags \
         ON CONFLICT (opportunity_id) DO UPDATE SET pipeline_id = excluded.pipeline_id, \
         owner_id = excluded.owner_id, created_at = excluded.created_at, entered_mask = excluded.entered_mask, \
         lost_from_stage_id = excluded.lost_from_stage_id, lost_at = excluded.lost_at, was_lost = excluded.was_lost, \
         reopened = excluded.reopened, advances = excluded.advances, status = excluded.status, \
         amount_milli = excluded.amount_milli, closed_at = excluded.closed_at, lost_reason_id = excluded.lost_reason_id, \
         source = excluded.source, industry = excluded.industry, company_size = excluded.company_size, \
         region = excluded.region, tags = excluded.tags"
    );
    target.run(conn, &reach, "o.id", "o.pipeline_id")?;

    let q = Sql::new(backend);
    let seconds = q.seconds_between("x.left_at", "x.entered_at");
    let firsts: Vec<String> = ActivityType::ALL
        .iter()
        .map(|t| first_activity_column(t))
        .collect();
    // Seconds from entry to the first completed activity of each type during each stay,
    // in the same statement.
    let after = q.seconds_between("a.completed_at", "x.entered_at");
    let mins = ActivityType::ALL
        .iter()
        .map(|t| format!(", MIN(CASE WHEN a.type = '{t}' THEN {after} END)"))
        .collect::<String>();
    let columns = firsts.iter().map(|c| format!(", {c}")).collect::<String>();
    let updates = firsts
        .iter()
        .map(|c| format!(", {c} = excluded.{c}"))
        .collect::<String>();
    let (this, next, previous) = (rank("s"), rank("ns"), rank("ps"));
    let stays = format!(
        "INSERT INTO stage_stays (id, opportunity_id, pipeline_id, owner_id, stage_id, stage_kind, entered_at, advance_in, \
         left_at, next_stage_id, seconds, advanced{columns}, source, industry, company_size, region, tags) \
         SELECT x.id, x.opportunity_id, x.pipeline_id, x.owner_id, x.stage_id, COALESCE(s.kind, ''), x.entered_at, \
         CASE WHEN ps.kind = 'open' AND {this} > {previous} THEN 1 ELSE 0 END, x.left_at, x.next_stage_id, \
         CASE WHEN x.left_at IS NULL THEN NULL ELSE {seconds} END, \
         MAX(CASE WHEN ns.id IS NOT NULL AND {next} > {this} THEN 1 ELSE 0 END){mins}, \
         x.source, x.industry, x.company_size, x.region, x.tags \
         FROM (SELECT t.id AS id, t.opportunity_id AS opportunity_id, t.pipeline_id AS pipeline_id, o.owner_id AS owner_id, \
               t.to_stage_id AS stage_id, t.from_stage_id AS from_stage_id, t.entered_at AS entered_at, \
               o.source AS source, o.industry AS industry, o.company_size AS company_size, o.region AS region, o.tags AS tags, \
               LEAD(t.entered_at) OVER (PARTITION BY t.opportunity_id ORDER BY t.entered_at, t.id) AS left_at, \
               LEAD(t.to_stage_id) OVER (PARTITION BY t.opportunity_id ORDER BY t.entered_at, t.id) AS next_stage_id \
               FROM opportunities o JOIN stage_transitions t ON t.opportunity_id = o.id WHERE 1 = 1{{target}}) x \
         LEFT JOIN stages s ON s.id = x.stage_id LEFT JOIN stages ns ON ns.id = x.next_stage_id \
         LEFT JOIN stages ps ON ps.id = x.from_stage_id \
         LEFT JOIN activities a ON a.opportunity_id = x.opportunity_id AND a.completed_at IS NOT NULL \
         AND a.completed_at >= x.entered_at AND (x.left_at IS NULL OR a.completed_at < x.left_at) \
         WHERE 1 = 1 \
         GROUP BY x.id, x.opportunity_id, x.pipeline_id, x.owner_id, x.stage_id, s.kind, s.position, x.entered_at, ps.kind, \
         ps.position, x.left_at, x.next_stage_id, x.source, x.industry, x.company_size, x.region, x.tags \
         ON CONFLICT (id) DO UPDATE SET pipeline_id = excluded.pipeline_id, owner_id = excluded.owner_id, \
         stage_id = excluded.stage_id, stage_kind = excluded.stage_kind, entered_at = excluded.entered_at, \
         advance_in = excluded.advance_in, left_at = excluded.left_at, \
         next_stage_id = excluded.next_stage_id, seconds = excluded.seconds, advanced = excluded.advanced{updates}, \
         source = excluded.source, industry = excluded.industry, company_size = excluded.company_size, \
         region = excluded.region, tags = excluded.tags"
    );
    target.run(conn, &stays, "o.id", "o.pipeline_id")
}

/// Rebuilds every deal's aggregates from the log: [`refresh`] of [`Target::All`], with
/// the aggregates' secondary indexes dropped while the rows go in and built afterwards,
/// once, from the finished tables. Maintaining six indexes row by row while writing
/// millions of stays costs several times more than building them (on PostgreSQL, with
/// parallel workers). Runs inside the caller's transaction: a failure restores the
/// indexes with everything else.
pub fn rebuild(conn: &mut DbConn) -> AppResult<()> {
    without_secondary_indexes(conn, &["deal_reach", "stage_stays"], |conn| {
        refresh(conn, Target::All)
    })
}

#[derive(diesel::QueryableByName)]
struct IndexDef {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    definition: String,
}

/// Runs `f` with the non-unique indexes of `tables` set aside ([`set_indexes_aside`])
/// and builds them again afterwards, all in the caller's transaction.
pub fn without_secondary_indexes<T>(
    conn: &mut DbConn,
    tables: &[&str],
    f: impl FnOnce(&mut DbConn) -> AppResult<T>,
) -> AppResult<T> {
    set_indexes_aside(conn, tables)?;
    let out = f(conn)?;
    restore_indexes(conn)?;
    Ok(out)
}

/// The server setting holding the definitions of indexes set aside for a bulk write.
const SET_ASIDE: &str = "indexes_set_aside";

/// Drops the non-unique indexes of `tables` before a bulk write, and records their
/// definitions in the server settings with the drop, so that [`restore_indexes`] builds
/// them again: at the end of the write, or at the next start when the process stopped
/// before that. Unique indexes stay: they are constraints the writes rely on.
pub fn set_indexes_aside(conn: &mut DbConn, tables: &[&str]) -> AppResult<()> {
    let backend = super::opportunities::backend_of(conn);
    let mut defs: Vec<String> = match super::settings::get(conn, SET_ASIDE)? {
        Some(json) => serde_json::from_str(&json).map_err(crate::error::AppError::internal)?,
        None => Vec::new(),
    };
    for table in tables {
        let mut q = Sql::new(backend);
        match backend {
            Backend::Postgres => q
                .push("SELECT indexname AS name, indexdef AS definition FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ")
                .text(table)
                .push(" AND indexdef NOT LIKE 'CREATE UNIQUE%'"),
            Backend::Sqlite => q
                .push("SELECT name, sql AS definition FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = ")
                .text(table)
                .push(" AND sql NOT LIKE 'CREATE UNIQUE%'"),
        };
        for d in q.load::<IndexDef>(conn)? {
            diesel::sql_query(format!("DROP INDEX {}", d.name)).execute(conn)?;
            defs.push(d.definition);
        }
    }
    let json = serde_json::to_string(&defs).map_err(crate::error::AppError::internal)?;
    use super::schema::server_settings as ss;
    diesel::delete(ss::table.filter(ss::key.eq(SET_ASIDE))).execute(conn)?;
    diesel::insert_into(ss::table)
        .values((ss::key.eq(SET_ASIDE), ss::value.eq(json)))
        .execute(conn)?;
    Ok(())
}

/// Builds the indexes [`set_indexes_aside`] recorded, if any (on PostgreSQL with the
/// memory to sort each in one pass).
pub fn restore_indexes(conn: &mut DbConn) -> AppResult<()> {
    let Some(json) = super::settings::get(conn, SET_ASIDE)? else {
        return Ok(());
    };
    let defs: Vec<String> =
        serde_json::from_str(&json).map_err(crate::error::AppError::internal)?;
    if super::opportunities::backend_of(conn) == Backend::Postgres {
        diesel::sql_query("SET LOCAL maintenance_work_mem = '1GB'").execute(conn)?;
    }
    for d in &defs {
        diesel::sql_query(d).execute(conn)?;
    }
    use super::schema::server_settings as ss;
    diesel::delete(ss::table.filter(ss::key.eq(SET_ASIDE))).execute(conn)?;
    Ok(())
}

/// Rebuilds everything when a migration asked for it; run at start after migrations.
pub fn catch_up(conn: &mut DbConn) -> Result<(), super::SetupError> {
    // Indexes a bulk write set aside and did not get to build again.
    super::write_tx(conn, restore_indexes).map_err(super::SetupError::RebuildAggregates)?;
    let pending = super::settings::get(conn, KEY).map_err(super::SetupError::Settings)?;
    if pending.as_deref() != Some("rebuild") {
        return Ok(());
    }
    let started = std::time::Instant::now();
    super::write_tx(conn, |conn| -> AppResult<()> {
        rebuild(conn)?;
        diesel::delete(
            super::schema::server_settings::table
                .filter(super::schema::server_settings::key.eq(KEY)),
        )
        .execute(conn)?;
        Ok(())
    })
    .map_err(super::SetupError::RebuildAggregates)?;
    settle(conn, &["deal_reach", "stage_stays"]).map_err(super::SetupError::SettleAggregates)?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "report aggregates rebuilt"
    );
    Ok(())
}

/// After a bulk write: fresh planner statistics for `tables` (all tables when empty) and,
/// on PostgreSQL, a vacuum, which sets the visibility map that index-only scans need (the
/// covering indexes of the reports are read that way). Runs outside a transaction.
pub fn settle(conn: &mut DbConn, tables: &[&str]) -> AppResult<()> {
    let command = match super::opportunities::backend_of(conn) {
        Backend::Postgres => "VACUUM (ANALYZE)",
        Backend::Sqlite => "ANALYZE",
    };
    if tables.is_empty() {
        diesel::sql_query(command).execute(conn)?;
    }
    for table in tables {
        diesel::sql_query(format!("{command} {table}")).execute(conn)?;
    }
    Ok(())
}

const KEY: &str = "report_aggregates";
