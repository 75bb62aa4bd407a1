//! Import jobs, their uploaded chunks and rejected rows.

use crate::storage::uid::uid;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{import_chunks, import_jobs, import_rejects};
use super::types::JsonText;
use super::{now, DbConn};
use crate::domain::ids::ImportJobId;
use crate::domain::import::{Format, JobState, Kind, Options, Report};
use crate::error::AppResult;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = import_jobs)]
pub struct JobRow {
    pub id: ImportJobId,
    pub kind: Kind,
    pub format: Format,
    pub options: JsonText<Options>,
    pub signer: String,
    pub state: JobState,
    pub bytes_total: i64,
    pub rows_done: i64,
    pub report: JsonText<Report>,
    /// The file's column names, for `errors.csv`.
    pub header: JsonText<Vec<String>>,
    pub error: Option<String>,
    pub worker: Option<String>,
    pub heartbeat_at: Option<NaiveDateTime>,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, row: &JobRow) -> AppResult<()> {
    diesel::insert_into(import_jobs::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<JobRow>> {
    Ok(import_jobs::table
        .find(uid(id))
        .select(JobRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn add_chunk(conn: &mut DbConn, job_id: &str, seq: i32, data: &[u8]) -> AppResult<()> {
    diesel::insert_into(import_chunks::table)
        .values((
            import_chunks::job_id.eq(uid(job_id)),
            import_chunks::seq.eq(seq),
            import_chunks::data.eq(data),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn chunk(conn: &mut DbConn, job_id: &str, seq: i32) -> AppResult<Option<Vec<u8>>> {
    Ok(import_chunks::table
        .find((uid(job_id), seq))
        .select(import_chunks::data)
        .first(conn)
        .optional()?)
}

/// The upload is complete: the job waits for a worker.
pub fn queue(conn: &mut DbConn, id: &str, bytes_total: i64) -> AppResult<()> {
    diesel::update(import_jobs::table.find(uid(id)))
        .set((
            import_jobs::state.eq(JobState::Queued),
            import_jobs::bytes_total.eq(bytes_total),
            import_jobs::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Claims the oldest queued job, or a running one whose worker stopped beating since
/// `stale_before` (a restart): one worker per job, whatever the number of replicas.
pub fn claim(
    conn: &mut DbConn,
    worker: &str,
    stale_before: NaiveDateTime,
) -> AppResult<Option<JobRow>> {
    super::write_tx(conn, |conn| {
        let pick = import_jobs::table
            .filter(
                import_jobs::state
                    .eq(JobState::Queued)
                    .or(import_jobs::state
                        .eq(JobState::Running)
                        .and(import_jobs::heartbeat_at.lt(stale_before))),
            )
            .order(import_jobs::created_at.asc())
            .select(import_jobs::id);
        let id: Option<String> = match conn {
            DbConn::Pg(c) => pick.for_update().skip_locked().first(c).optional()?,
            DbConn::Sqlite(c) => pick.first(c).optional()?,
        };
        let Some(id) = id else {
            return Ok(None);
        };
        let at = now();
        diesel::update(import_jobs::table.find(uid(&id)))
            .set((
                import_jobs::state.eq(JobState::Running),
                import_jobs::worker.eq(worker),
                import_jobs::heartbeat_at.eq(at),
                import_jobs::started_at.eq(at),
                import_jobs::updated_at.eq(at),
            ))
            .execute(conn)?;
        find(conn, &id)
    })
}

/// Records a batch's progress (in the batch's transaction): refused when the job is no
/// longer this worker's or was cancelled, which rolls the batch back. Answers the state.
pub fn progress(
    conn: &mut DbConn,
    id: &str,
    worker: &str,
    rows_done: i64,
    report: &Report,
) -> AppResult<JobState> {
    let report = JsonText::encode(report)?;
    let at = now();
    diesel::update(
        import_jobs::table
            .find(uid(id))
            .filter(import_jobs::worker.eq(worker))
            .filter(import_jobs::state.eq(JobState::Running)),
    )
    .set((
        import_jobs::rows_done.eq(rows_done),
        import_jobs::report.eq(&report),
        import_jobs::heartbeat_at.eq(at),
        import_jobs::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(import_jobs::table
        .find(uid(id))
        .select(import_jobs::state)
        .first(conn)?)
}

pub fn set_header(conn: &mut DbConn, id: &str, header: &[String]) -> AppResult<()> {
    diesel::update(import_jobs::table.find(uid(id)))
        .set(import_jobs::header.eq(JsonText::encode(header.to_vec())?))
        .execute(conn)?;
    Ok(())
}

/// Ends a job (its chunks go; its rejected rows stay for `errors.csv`). A job already
/// ended (cancelled meanwhile) keeps its state.
pub fn finish(
    conn: &mut DbConn,
    id: &str,
    state: JobState,
    report: Option<&Report>,
    error: Option<&str>,
) -> AppResult<()> {
    let report = report.map(JsonText::encode).transpose()?;
    super::write_tx(conn, |conn| {
        let at = now();
        let open = import_jobs::table
            .find(uid(id))
            .filter(import_jobs::state.eq_any([
                JobState::Receiving,
                JobState::Queued,
                JobState::Running,
            ]));
        match &report {
            Some(r) => diesel::update(open)
                .set((
                    import_jobs::state.eq(state),
                    import_jobs::report.eq(r),
                    import_jobs::error.eq(error),
                    import_jobs::finished_at.eq(at),
                    import_jobs::updated_at.eq(at),
                ))
                .execute(conn)?,
            None => diesel::update(open)
                .set((
                    import_jobs::state.eq(state),
                    import_jobs::error.eq(error),
                    import_jobs::finished_at.eq(at),
                    import_jobs::updated_at.eq(at),
                ))
                .execute(conn)?,
        };
        diesel::delete(import_chunks::table.filter(import_chunks::job_id.eq(uid(id))))
            .execute(conn)?;
        Ok(())
    })
}

pub fn add_reject(
    conn: &mut DbConn,
    job_id: &str,
    row: i64,
    cells: &str,
    error: &str,
) -> AppResult<()> {
    let insert = diesel::insert_into(import_rejects::table).values((
        import_rejects::job_id.eq(uid(job_id)),
        import_rejects::row_number.eq(row),
        import_rejects::cells.eq(cells),
        import_rejects::error.eq(error),
    ));
    // A resumed job may reject a row again.
    match conn {
        DbConn::Pg(c) => insert
            .on_conflict((import_rejects::job_id, import_rejects::row_number))
            .do_nothing()
            .execute(c)?,
        DbConn::Sqlite(c) => insert
            .on_conflict((import_rejects::job_id, import_rejects::row_number))
            .do_nothing()
            .execute(c)?,
    };
    Ok(())
}

/// Rejected rows from `after_row` on, `limit` of them: `(row, cells, error)`.
pub fn rejects(
    conn: &mut DbConn,
    job_id: &str,
    after_row: i64,
    limit: i64,
) -> AppResult<Vec<(i64, String, String)>> {
    Ok(import_rejects::table
        .filter(import_rejects::job_id.eq(uid(job_id)))
        .filter(import_rejects::row_number.gt(after_row))
        .order(import_rejects::row_number.asc())
        .limit(limit)
        .select((
            import_rejects::row_number,
            import_rejects::cells,
            import_rejects::error,
        ))
        .load(conn)?)
}
