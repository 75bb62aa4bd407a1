//! Import jobs: a file kept in the database in chunks and imported by a background
//! worker, with progress recorded in each batch's transaction. A job belongs to one
//! worker at a time (claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL, kept by a
//! heartbeat); a job whose worker stopped (a restart) is claimed again and resumes after
//! the last committed row. Nothing is lost and no row is written twice.

use std::io::{self, Read};
use std::time::Duration;

use serde_json::Value;

use super::reader::{self, Format, Record};
use super::{Options, Report, RowError, Sink};
use crate::auth::caller::link_signer;
use crate::auth::links::Signer;
use crate::auth::Caller;
use crate::domain::import::JobState;
use crate::error::{AppError, AppResult};
use crate::storage::import_jobs::{self as store, JobRow};
use crate::storage::{self, DbConn, DbPool};

/// Bytes per stored chunk of an upload.
pub const CHUNK_BYTES: usize = 1 << 20;
/// A running job whose heartbeat is older than this is taken over.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// How a job's creator is written down, to act as them when the job runs.
pub fn signer_text(caller: &Caller) -> String {
    match caller.signer() {
        Signer::User(id) => format!("user:{id}"),
        Signer::Key(id) => format!("key:{id}"),
    }
}

fn caller_of(conn: &mut DbConn, signer: &str) -> AppResult<Caller> {
    let signer = match signer.split_once(':') {
        Some(("user", id)) => Signer::User(id.into()),
        Some(("key", id)) => Signer::Key(id.to_owned()),
        _ => {
            return Err(AppError::internal(format!(
                "unreadable job signer {signer:?}"
            )))
        }
    };
    Ok(link_signer(conn, &signer)?.0)
}

/// Reads a stored upload chunk by chunk, each with a connection of its own.
struct Chunks {
    pool: DbPool,
    job_id: String,
    seq: i32,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Chunks {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.buf.len() {
            let mut conn = storage::checkout::checkout(&self.pool).map_err(io::Error::other)?;
            match store::chunk(&mut conn, &self.job_id, self.seq).map_err(io::Error::other)? {
                Some(data) => {
                    self.buf = data;
                    self.pos = 0;
                    self.seq += 1;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Records progress and rejected rows in each batch's transaction.
struct JobSink<'a> {
    job: &'a JobRow,
    worker: &'a str,
}

impl Sink for JobSink<'_> {
    fn batch(
        &mut self,
        conn: &mut DbConn,
        report: &Report,
        rejected: &[(Record, Vec<RowError>)],
    ) -> AppResult<bool> {
        for (rec, errors) in rejected {
            let cells = match self.job.format {
                Format::Csv => serde_json::to_string(&rec.raw()),
                _ => serde_json::to_string(&Value::Object(rec.cells.iter().cloned().collect())),
            }
            .map_err(AppError::internal)?;
            store::add_reject(
                conn,
                &self.job.id,
                rec.row as i64,
                &cells,
                &error_text(errors),
            )?;
        }
        let state = store::progress(conn, &self.job.id, self.worker, report.rows as i64, report)?;
        match state {
            JobState::Running => Ok(true),
            JobState::Cancelled => Ok(false),
            other => Err(AppError::Conflict {
                code: crate::error::ProblemCode::Conflict,
                detail: format!("the job is {} and no longer this worker's", other.as_str()),
                existing_id: None,
            }),
        }
    }
}

/// The `error` cell of a rejected row.
pub fn error_text(errors: &[RowError]) -> String {
    errors
        .iter()
        .map(|e| match &e.field {
            Some(f) => format!("{f}: {} ({})", e.message, e.code),
            None => format!("{} ({})", e.message, e.code),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Claims one job and runs it to its end; answers whether there was one.
pub fn work_once(pool: &DbPool, worker: &str) -> AppResult<bool> {
    let mut conn = storage::checkout::checkout(pool)?;
    let stale = storage::now() - chrono::Duration::from_std(STALE_AFTER).unwrap_or_default();
    let Some(job) = store::claim(&mut conn, worker, stale)? else {
        return Ok(false);
    };
    let outcome = run_job(pool, &mut conn, &job, worker);
    match outcome {
        Ok(report) => {
            let state = if report.file_error.is_some() {
                JobState::Failed
            } else {
                JobState::Done
            };
            let error = report.file_error.as_ref().map(|f| f.message.clone());
            store::finish(&mut conn, &job.id, state, Some(&report), error.as_deref())?;
        }
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "import job failed");
            let reached = store::find(&mut conn, &job.id)?.map_or(0, |j| j.rows_done);
            let message = format!("{e} (rows up to {reached} are written)");
            store::finish(&mut conn, &job.id, JobState::Failed, None, Some(&message))?;
        }
    }
    Ok(true)
}

fn run_job(pool: &DbPool, conn: &mut DbConn, job: &JobRow, worker: &str) -> AppResult<Report> {
    let options: &Options = &job.options;
    let caller = caller_of(conn, &job.signer)?;
    let body = Chunks {
        pool: pool.clone(),
        job_id: job.id.to_string(),
        seq: 0,
        buf: Vec::new(),
        pos: 0,
    };
    let records = match reader::open(job.format, Box::new(body)) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Report {
                file_error: Some(e.into()),
                ..Report::default()
            })
        }
    };
    store::set_header(conn, &job.id, &records.header)?;
    let skip = job.rows_done.max(0) as u64;
    let mut sink = JobSink { job, worker };
    let mut report = super::run(conn, &caller, options, records, skip, &mut sink)?;
    if skip > 0 {
        // Counts of the rows before the restart come from the stored report.
        report = merge_counts((*job.report).clone(), report);
    }
    Ok(report)
}

/// The report of a resumed job: the counts stored before plus those of the rest.
fn merge_counts(before: Report, after: Report) -> Report {
    let mut errors = before.errors;
    errors.extend(after.errors);
    let truncated =
        errors.len() > super::LISTED_ERRORS || before.errors_truncated || after.errors_truncated;
    errors.truncate(super::LISTED_ERRORS);
    Report {
        created: before.created + after.created,
        updated: before.updated + after.updated,
        unchanged: before.unchanged + after.unchanged,
        failed: before.failed + after.failed,
        errors,
        errors_truncated: truncated,
        ..after
    }
}

/// The background worker of one server process: runs jobs one after another, and
/// looks for new ones every `idle` when there are none.
pub async fn work(pool: DbPool, idle: Duration) {
    let worker = format!("{}-{}", std::process::id(), storage::new_id::<String>());
    loop {
        let (pool2, worker2) = (pool.clone(), worker.clone());
        let ran = tokio::task::spawn_blocking(move || work_once(&pool2, &worker2)).await;
        match ran {
            Ok(Ok(true)) => continue,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "import worker"),
            Err(e) => tracing::error!(error = %e, "import worker stopped unexpectedly"),
        }
        tokio::time::sleep(idle).await;
    }
}
