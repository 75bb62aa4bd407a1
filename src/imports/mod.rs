//! Bulk imports: a file of leads, accounts, contacts or deals read as a stream and
//! written through the workflow layer ([`crate::crm`]), so an imported row obeys exactly
//! the rules of the API. Rows are written in batches, one transaction per batch and a
//! savepoint per row: a bad row is reported and rolled back alone, good rows commit, and
//! the report aggregates of a batch's deals are refreshed once at its end.
//!
//! Callers: the HTTP endpoint (synchronous, or as a job) and the `import` command.

pub mod apply;
pub mod columns;
pub mod jobs;
pub mod reader;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use diesel::Connection;

use crate::auth::Caller;
use crate::error::{AppError, AppResult, FieldError};
use crate::storage::{self, aggregates, DbConn};
use reader::{FileError, Next, Record, Records};

pub use crate::domain::import::{FileProblem, Kind, MatchOn, Mode, Options, Report, RowError};

/// Rows written per transaction.
pub const BATCH_ROWS: usize = 500;
/// Row errors an answer lists (all of them go to a job's `errors.csv`).
pub const LISTED_ERRORS: usize = 100;

impl From<FileError> for FileProblem {
    fn from(e: FileError) -> Self {
        FileProblem {
            code: e.code.into(),
            message: e.message,
        }
    }
}

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// Where progress and rejected rows go while a file is read.
pub trait Sink {
    /// A batch is written: `report` holds the counts with it, `rejected` its rejected
    /// rows. Runs inside the batch's transaction (after it for a dry run), so what it
    /// records commits with the batch; an error rolls the batch back and stops.
    /// Answers whether to go on (false: the job was cancelled).
    fn batch(
        &mut self,
        _conn: &mut DbConn,
        _report: &Report,
        _rejected: &[(Record, Vec<RowError>)],
    ) -> AppResult<bool> {
        Ok(true)
    }
}

/// A sink that shows progress after each batch.
pub struct Progress<F: FnMut(&Report)>(pub F);

impl<F: FnMut(&Report)> Sink for Progress<F> {
    fn batch(
        &mut self,
        _conn: &mut DbConn,
        report: &Report,
        _rejected: &[(Record, Vec<RowError>)],
    ) -> AppResult<bool> {
        (self.0)(report);
        Ok(true)
    }
}

/// A sink that only keeps the report.
pub struct Quiet;
impl Sink for Quiet {}

/// Reads every record of `records` and writes it as `caller`, in batches. The first
/// `skip` rows (written by an earlier run of the same job) are read and passed over.
pub fn run(
    conn: &mut DbConn,
    caller: &Caller,
    options: &Options,
    mut records: Records,
    skip: u64,
    sink: &mut dyn Sink,
) -> AppResult<Report> {
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    let columns = apply::Columns::of(options.kind, &records.header);
    let mut ctx = apply::Context::new(caller, options, columns);
    let mut seen = Seen::open(conn)?;
    let mut batch: Vec<Next> = Vec::with_capacity(BATCH_ROWS);
    let mut analyze_at = FIRST_ANALYZE;
    loop {
        let next = match records.next_record() {
            Ok(n) => n,
            Err(e) => {
                report.file_error = Some(e.into());
                Next::End
            }
        };
        let end = matches!(next, Next::End);
        match &next {
            Next::Record(r) if r.row <= skip => report.rows = r.row,
            Next::Bad { row, .. } if *row <= skip => report.rows = *row,
            Next::End => {}
            _ => batch.push(next),
        }
        if batch.len() >= BATCH_ROWS || (end && !batch.is_empty()) {
            report.bytes = records.bytes_read();
            report.unknown_columns = ctx.columns.unknown.clone();
            report.ignored_columns = ctx.columns.ignored.clone();
            // Batches commit without waiting for the disk, except the last one: its
            // synchronous commit makes every earlier one durable before the answer.
            ctx.durable = end;
            let go_on = write_batch(
                conn,
                &mut ctx,
                std::mem::take(&mut batch),
                &mut seen,
                &mut report,
                sink,
            )?;
            let written = report.created + report.updated;
            if written >= analyze_at && !options.dry_run {
                // The tables grew: plan the next batches with their new size.
                storage::analyze(conn, tables_of(options.kind))?;
                analyze_at = written * 2;
            }
            if !go_on {
                break;
            }
        }
        if end {
            break;
        }
    }
    report.bytes = records.bytes_read();
    report.unknown_columns = ctx.columns.unknown.clone();
    report.ignored_columns = ctx.columns.ignored.clone();
    seen.close(conn)?;
    Ok(report)
}

/// The keys of the rows written so far, to report a later row with the same key as a
/// duplicate in the file. Earlier batches' keys are in a temporary table of the import's
/// connection (`storage::imports::seen_*`), so memory stays flat however long the file;
/// the current batch's are here.
struct Seen {
    /// Keys of earlier batches that rows of this batch have: hash → first row.
    earlier: HashMap<u64, u64>,
    /// Keys of this batch so far.
    batch: HashMap<u64, u64>,
}

impl Seen {
    fn open(conn: &mut DbConn) -> AppResult<Seen> {
        storage::imports::seen_open(conn)?;
        Ok(Seen {
            earlier: HashMap::new(),
            batch: HashMap::new(),
        })
    }

    /// Looks up which of the batch's keys earlier batches had.
    fn look_up(&mut self, conn: &mut DbConn, hashes: &[u64]) -> AppResult<()> {
        self.batch.clear();
        let keys: Vec<i64> = hashes.iter().map(|h| *h as i64).collect();
        self.earlier = storage::imports::seen_lookup(conn, &keys)?
            .into_iter()
            .map(|(h, r)| (h as u64, r as u64))
            .collect();
        Ok(())
    }

    /// The first row with this key, or none (and the key is now this row's).
    fn first(&mut self, hash: u64, row: u64) -> Option<u64> {
        if let Some(r) = self.earlier.get(&hash).or_else(|| self.batch.get(&hash)) {
            return Some(*r);
        }
        self.batch.insert(hash, row);
        None
    }

    /// Keeps the batch's keys once it is written (or, for a dry run, rolled back).
    fn remember(&mut self, conn: &mut DbConn) -> AppResult<()> {
        let pairs: Vec<(i64, i64)> = self
            .batch
            .drain()
            .map(|(h, r)| (h as i64, r as i64))
            .collect();
        self.earlier.clear();
        storage::imports::seen_add(conn, &pairs)
    }

    fn close(self, conn: &mut DbConn) -> AppResult<()> {
        storage::imports::seen_close(conn)
    }
}

/// The hash of a row's key.
fn key_hash(column: &str, value: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (column, value.trim().to_lowercase()).hash(&mut h);
    h.finish()
}

/// Rows written before the first fresh statistics; then at every doubling.
const FIRST_ANALYZE: u64 = 2000;

/// The tables an import of `kind` grows.
fn tables_of(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Leads => &["leads"],
        Kind::Accounts => &["accounts"],
        Kind::Contacts => &["contacts"],
        Kind::Opportunities => &[
            "opportunities",
            "stage_transitions",
            "deal_reach",
            "stage_stays",
        ],
    }
}

fn note_errors(report: &mut Report, errors: &[RowError]) {
    for e in errors {
        if report.errors.len() < LISTED_ERRORS {
            report.errors.push(e.clone());
        } else {
            report.errors_truncated = true;
        }
    }
}

/// Writes one batch in one transaction (rolled back for a dry run); the deals it
/// touched get their report aggregates refreshed once. New leads and deals are first
/// written buffered, with multi-row inserts ([`storage::batch`]); when that fails (a
/// duplicate the unique indexes caught), the batch is rolled back and written again
/// row by row, each row in its own savepoint, so every row gets its precise answer.
/// The report is updated only when the batch is through.
fn write_batch(
    conn: &mut DbConn,
    ctx: &mut apply::Context<'_>,
    rows: Vec<Next>,
    seen: &mut Seen,
    report: &mut Report,
    sink: &mut dyn Sink,
) -> AppResult<bool> {
    if ctx.buffers_creates() {
        match attempt(conn, ctx, &rows, seen, report, sink, true) {
            Err(Stop::Retry) => {}
            other => return finish(conn, other, seen, report, sink),
        }
    }
    let outcome = attempt(conn, ctx, &rows, seen, report, sink, false);
    finish(conn, outcome, seen, report, sink)
}

type Rejected = Vec<(Record, Vec<RowError>)>;

enum Stop {
    Failed(AppError),
    /// The buffered writes failed: write the batch again row by row.
    Retry,
    /// A dry run's batch, rolled back after it was written.
    DryRun(Box<(Report, Rejected)>),
}

impl From<diesel::result::Error> for Stop {
    fn from(e: diesel::result::Error) -> Self {
        Stop::Failed(e.into())
    }
}

fn finish(
    conn: &mut DbConn,
    outcome: Result<(Report, bool), Stop>,
    seen: &mut Seen,
    report: &mut Report,
    sink: &mut dyn Sink,
) -> AppResult<bool> {
    if matches!(outcome, Ok(_) | Err(Stop::DryRun(_))) {
        seen.remember(conn)?;
    }
    match outcome {
        Ok((after, go_on)) => {
            *report = after;
            Ok(go_on)
        }
        Err(Stop::DryRun(dry)) => {
            let (after, rejected) = *dry;
            *report = after;
            sink.batch(conn, report, &rejected)
        }
        Err(Stop::Failed(e)) => Err(e),
        Err(Stop::Retry) => Err(AppError::internal("a batch failed twice")),
    }
}

/// One try at a batch, buffered or row by row.
#[allow(clippy::too_many_arguments)]
fn attempt(
    conn: &mut DbConn,
    ctx: &mut apply::Context<'_>,
    rows: &[Next],
    seen: &mut Seen,
    report: &Report,
    sink: &mut dyn Sink,
    buffered: bool,
) -> Result<(Report, bool), Stop> {
    let dry_run = ctx.options.dry_run;
    let durable = ctx.durable;
    storage::write_tx(conn, |conn| -> Result<(Report, bool), Stop> {
        if !durable {
            storage::commit_without_waiting(conn).map_err(Stop::Failed)?;
        }
        let mut after = report.clone();
        let mut rejected: Rejected = Vec::new();
        let (results, deals) = storage::batch::scope_if(buffered, || {
            aggregates::deferring(|| -> AppResult<Option<Vec<RowResult>>> {
                let results = rows_of_batch(conn, ctx, rows, seen, buffered)?;
                if buffered {
                    if let Err(e) = storage::batch::flush(conn) {
                        tracing::debug!(error = %e, "buffered import batch refused; writing it row by row");
                        return Ok(None);
                    }
                }
                Ok(Some(results))
            })
        });
        let Some(results) = results.map_err(Stop::Failed)? else {
            return Err(Stop::Retry);
        };
        aggregates::refresh_deals(conn, &deals).map_err(Stop::Failed)?;
        for (rec, result) in results {
            after.rows = after.rows.max(rec.row);
            match result {
                Ok(Outcome::Created) => after.created += 1,
                Ok(Outcome::Updated) => after.updated += 1,
                Ok(Outcome::Unchanged) => after.unchanged += 1,
                Err(errors) => {
                    after.failed += 1;
                    note_errors(&mut after, &errors);
                    rejected.push((rec, errors));
                }
            }
        }
        if dry_run {
            // Roll back: the answer is what a real run would give.
            return Err(Stop::DryRun(Box::new((after, rejected))));
        }
        let go_on = sink.batch(conn, &after, &rejected).map_err(Stop::Failed)?;
        Ok((after, go_on))
    })
}

type RowResult = (Record, Result<Outcome, Vec<RowError>>);

/// Parses every row of the batch, looks up the records they match in one go, then
/// writes them one by one.
fn rows_of_batch(
    conn: &mut DbConn,
    ctx: &mut apply::Context<'_>,
    rows: &[Next],
    seen: &mut Seen,
    buffered: bool,
) -> AppResult<Vec<RowResult>> {
    let mut parsed: Vec<(Record, Result<apply::Parsed, Vec<RowError>>)> =
        Vec::with_capacity(rows.len());
    for next in rows {
        match next {
            Next::Record(rec) => {
                let result = parse_row(conn, ctx, rec)?;
                parsed.push((rec.clone(), result));
            }
            Next::Bad { row, code, message } => parsed.push((
                Record {
                    row: *row,
                    cells: Vec::new(),
                    not_utf8: false,
                },
                Err(vec![RowError {
                    row: *row,
                    field: None,
                    code: (*code).into(),
                    message: message.clone(),
                }]),
            )),
            Next::End => {}
        }
    }
    ctx.prefetch(conn, parsed.iter().filter_map(|(_, p)| p.as_ref().ok()))?;
    let hashes: Vec<u64> = parsed
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok()?.key().map(|(c, v)| key_hash(c, v)))
        .collect();
    seen.look_up(conn, &hashes)?;
    let mut results = Vec::with_capacity(parsed.len());
    for (rec, p) in parsed {
        let result = match p {
            Ok(p) => write_row(conn, ctx, &rec, &p, seen, buffered)?,
            Err(errors) => Err(errors),
        };
        results.push((rec, result));
    }
    Ok(results)
}

fn is_fatal(e: &AppError) -> bool {
    matches!(e, AppError::Internal(_) | AppError::Unavailable(_))
}

/// A row's cells checked and turned into input; a failure of the database itself (not
/// of the row) stops the import.
fn parse_row(
    conn: &mut DbConn,
    ctx: &mut apply::Context<'_>,
    rec: &Record,
) -> AppResult<Result<apply::Parsed, Vec<RowError>>> {
    if rec.not_utf8 {
        return Ok(Err(vec![RowError {
            row: rec.row,
            field: None,
            code: "unsupported_encoding".into(),
            message: "the row is not UTF-8 (Latin-1 or another code page?); save the file as UTF-8"
                .into(),
        }]));
    }
    match ctx.parse(conn, rec) {
        Ok(p) => Ok(Ok(p)),
        Err(e) if is_fatal(&e) => Err(e),
        Err(e) => Ok(Err(row_errors(rec.row, e))),
    }
}

/// Writes one row: a new record while buffering needs no savepoint (nothing reaches the
/// database before the flush; what it buffered is dropped if it fails), anything else
/// runs in its own.
fn write_row(
    conn: &mut DbConn,
    ctx: &mut apply::Context<'_>,
    rec: &Record,
    parsed: &apply::Parsed,
    seen: &mut Seen,
    buffered: bool,
) -> AppResult<Result<Outcome, Vec<RowError>>> {
    let row = rec.row;
    if let Some((column, key)) = parsed.key() {
        if let Some(first) = seen.first(key_hash(column, key), row) {
            return Ok(Err(vec![RowError {
                row,
                field: Some(column.to_owned()),
                code: "duplicate_in_file".into(),
                message: format!("row {first} has the same {column}"),
            }]));
        }
    }
    let result = if buffered && ctx.is_new(parsed) {
        let mark = storage::batch::mark();
        let result = ctx.write(conn, parsed);
        if result.is_err() {
            storage::batch::rollback_to(mark);
        }
        result
    } else {
        conn.transaction(|conn| ctx.write(conn, parsed))
    };
    match result {
        Ok(outcome) => Ok(Ok(outcome)),
        Err(e) if is_fatal(&e) => Err(e),
        Err(e) => Ok(Err(row_errors(row, e))),
    }
}

/// A workflow error as row errors: one per field problem, else one for the row.
pub fn row_errors(row: u64, e: AppError) -> Vec<RowError> {
    let one = |field: Option<String>, code: &str, message: String| RowError {
        row,
        field,
        code: code.to_owned(),
        message,
    };
    let fields = |errors: Vec<FieldError>| -> Vec<RowError> {
        errors
            .into_iter()
            .map(|f| one(Some(f.field), &f.code, f.message))
            .collect()
    };
    match e {
        AppError::Validation(errors) => fields(errors),
        AppError::BadRequest {
            errors,
            code,
            detail,
        }
        | AppError::Rule {
            errors,
            code,
            detail,
        } => {
            if errors.is_empty() {
                vec![one(None, code.as_str(), detail)]
            } else {
                fields(errors)
            }
        }
        AppError::Conflict { code, detail, .. } => vec![one(None, code.as_str(), detail)],
        AppError::NotFound => vec![one(
            Some("id".into()),
            "not_found",
            "no such record visible to you".into(),
        )],
        AppError::VersionConflict { .. } => vec![one(
            None,
            "version_conflict",
            "the record changed while the row was written; post it again".into(),
        )],
        AppError::Forbidden(m) => vec![one(None, "forbidden", m)],
        other => vec![one(None, other.code(), other.to_string())],
    }
}
