//! `POST /imports/{kind}`: a CSV, NDJSON or JSON-array body read as a stream and
//! imported through the workflow layer, answered with counts and row errors; or, with
//! `async=true` or a large body, stored and run as a job (`GET`/`DELETE
//! /imports/{id}`, `GET /imports/{id}/errors.csv`).

use std::io::{self, Read};

use actix_web::http::{header, StatusCode};
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::ApiQuery;
use super::utc;
use crate::auth::api_keys::Scope;
use crate::auth::Caller;
use crate::domain::import::JobState;
use crate::domain::user::Role;
use crate::error::{AppError, AppResult, FieldError, ProblemCode};
use crate::imports::jobs::{self, CHUNK_BYTES};
use crate::imports::reader::{self, Format};
use crate::imports::{self, Kind, MatchOn, Mode, Options, Report};
use crate::state::AppState;
use crate::storage::types::JsonText;
use crate::storage::{self, import_jobs as store};

/// Bodies larger than this (by `Content-Length`) run as a job even without `async=true`.
pub const ASYNC_ABOVE_BYTES: u64 = 16 << 20;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `create` (default): a row matching an existing record is an error unless equal
    /// to it; `upsert`: it updates the record.
    pub mode: Option<Mode>,
    /// The key rows are matched on when they have no `id` column: `external_id`
    /// (default) or `email` (leads, contacts).
    pub match_on: Option<MatchOn>,
    /// Check every row and answer as a real run would, writing nothing.
    pub dry_run: Option<bool>,
    /// Store the file and import it in the background: 202 with the job's `Location`.
    /// Bodies over 16 MiB always run this way.
    #[serde(rename = "async")]
    #[param(rename = "async")]
    pub run_async: Option<bool>,
}

/// An import job and its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportJobOut {
    pub id: String,
    pub kind: Kind,
    /// `receiving`, `queued`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    pub dry_run: bool,
    /// Size of the uploaded file.
    pub bytes_total: i64,
    pub bytes_read: u64,
    pub rows_read: u64,
    /// `bytes_read / bytes_total` in percent.
    pub percent: f64,
    /// Rows per second since the job started.
    pub rows_per_second: Option<f64>,
    /// Estimated seconds left, from the byte rate.
    pub seconds_left: Option<f64>,
    /// Counts and the first row errors so far.
    pub report: Report,
    /// Why the job failed, and the row it reached.
    pub error: Option<String>,
    /// Rejected rows with their original columns and an `error` column.
    pub errors_url: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<store::JobRow> for ImportJobOut {
    fn from(j: store::JobRow) -> Self {
        let report: Report = j.report.into_inner();
        let options: Options = j.options.into_inner();
        let percent = match j.bytes_total {
            0 => 0.0,
            total => (report.bytes as f64 * 100.0 / total as f64).min(100.0),
        };
        let elapsed = j.started_at.map(|s| {
            let end = j.finished_at.unwrap_or_else(storage::now);
            (end - s).num_milliseconds().max(1) as f64 / 1000.0
        });
        let rows_per_second = elapsed.map(|e| report.rows as f64 / e);
        let seconds_left = match (elapsed, j.state) {
            (Some(e), JobState::Running) if report.bytes > 0 => {
                let rate = report.bytes as f64 / e;
                Some((j.bytes_total as f64 - report.bytes as f64).max(0.0) / rate)
            }
            _ => None,
        };
        ImportJobOut {
            errors_url: format!("/api/v1/imports/{}/errors.csv", j.id),
            kind: options.kind,
            dry_run: options.dry_run,
            state: j.state.as_str().into(),
            bytes_total: j.bytes_total,
            bytes_read: report.bytes,
            rows_read: report.rows,
            percent,
            rows_per_second,
            seconds_left,
            report,
            error: j.error,
            created_at: utc(j.created_at),
            started_at: j.started_at.map(utc),
            finished_at: j.finished_at.map(utc),
            id: j.id.into(),
        }
    }
}

fn require_scopes(caller: &Caller, kind: Kind) -> AppResult<()> {
    caller.require_scope(Scope::Imports)?;
    caller.require_scope(match kind {
        Kind::Opportunities => Scope::OpportunitiesWrite,
        _ => Scope::LeadsWrite,
    })
}

/// One documented endpoint per kind of record (`POST /imports/leads`, …), so a client
/// generated from the OpenAPI document gets one method each.
macro_rules! import_endpoint {
    ($name:ident, $path:literal, $kind:expr, $scope:literal, $what:literal) => {
        #[doc = concat!("Imports ", $what, " from a CSV, NDJSON or JSON-array body, read as a stream. ")]
        #[doc = "Each row goes through the same checks as the API; a bad row is reported (`errors`) and"]
        #[doc = "never stops the good ones; a file posted again leaves matched rows `unchanged`."]
        #[doc = "With `async=true` (or a body over 16 MiB) the file runs as a job. See the README."]
        #[utoipa::path(post, path = $path, tag = "imports",
            security(("bearer" = ["imports", $scope])),
            params(ImportQuery),
            request_body(content(
                (serde_json::Value = "text/csv"),
                (serde_json::Value = "application/x-ndjson"),
                (Vec<serde_json::Value> = "application/json")
            ), description = "A CSV file with a header row (UTF-8, comma or semicolon), NDJSON, or a JSON array of objects."),
            responses(
                (status = 200, body = Report, description = "Imported (some rows may have failed; see `errors`)"),
                (status = 202, body = ImportJobOut, headers(("Location" = String)), description = "Stored; runs as a job"),
                (status = 400, body = crate::error::Problem, description = "An unknown option value"),
                (status = 415, body = crate::error::Problem),
                (status = 422, body = crate::error::Problem, description = "The file cannot be read (empty, not UTF-8, no header)")))]
        pub async fn $name(
            state: web::Data<AppState>,
            caller: Caller,
            query: ApiQuery<ImportQuery>,
            req: HttpRequest,
            payload: web::Payload,
        ) -> AppResult<HttpResponse> {
            create_import($kind, state, caller, query, req, payload).await
        }
    };
}

import_endpoint!(
    import_leads,
    "/api/v1/imports/leads",
    Kind::Leads,
    "leads:write",
    "leads"
);
import_endpoint!(
    import_accounts,
    "/api/v1/imports/accounts",
    Kind::Accounts,
    "leads:write",
    "accounts"
);
import_endpoint!(
    import_contacts,
    "/api/v1/imports/contacts",
    Kind::Contacts,
    "leads:write",
    "contacts"
);
import_endpoint!(
    import_opportunities,
    "/api/v1/imports/opportunities",
    Kind::Opportunities,
    "opportunities:write",
    "opportunities (with `stage_history`: past stages as `stage:time` pairs separated by `;`, logged with channel `import`)"
);

async fn create_import(
    kind: Kind,
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ImportQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    require_scopes(&caller, kind)?;
    let format = body_format(&req)?;
    let q = query.0;
    let options = Options {
        kind,
        mode: q.mode.unwrap_or_default(),
        match_on: q.match_on.unwrap_or_default(),
        dry_run: q.dry_run.unwrap_or(false),
        default_currency: state.settings.default_currency.clone(),
    };
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if q.run_async.unwrap_or(false) || length.is_some_and(|l| l > ASYNC_ABOVE_BYTES) {
        let job = submit(&state, &caller, format, &options, payload).await?;
        return Ok(HttpResponse::Accepted()
            .insert_header((header::LOCATION, format!("/api/v1/imports/{}", job.id)))
            .json(ImportJobOut::from(job)));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
    let work = storage::run(&state.pool, move |conn| {
        let body = Box::new(Channel {
            rx,
            buf: Bytes::new(),
        });
        let records = reader::open(format, body).map_err(unreadable)?;
        imports::run(conn, &caller, &options, records, 0, &mut imports::Quiet)
    });
    let pump = pump(payload, tx);
    let (report, ()) = tokio::join!(work, pump);
    Ok(HttpResponse::Ok().json(report?))
}

/// Feeds the request body to the reader on the blocking pool; stops when it hangs up.
async fn pump(mut payload: web::Payload, tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>) {
    while let Some(chunk) = payload.next().await {
        let item = chunk.map_err(|e| io::Error::other(e.to_string()));
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
}

/// The request body as `Read`, for the blocking reader.
struct Channel {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    buf: Bytes,
}

impl Read for Channel {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}

fn unreadable(e: reader::FileError) -> AppError {
    AppError::Rule {
        code: ProblemCode::UnreadableFile,
        detail: format!("The file cannot be imported: {}.", e.message),
        errors: vec![FieldError::new("body", e.code, e.message)],
    }
}

fn body_format(req: &HttpRequest) -> AppResult<Format> {
    let unsupported = || {
        AppError::UnsupportedMediaType(
            "Send text/csv, application/x-ndjson or application/json (a JSON array).".into(),
        )
    };
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let charset = media
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"').to_ascii_lowercase());
    if charset.is_some_and(|c| c != "utf-8" && c != "utf8") {
        return Err(AppError::UnsupportedMediaType(
            "Imports read UTF-8; convert the file (e.g. iconv -f latin1 -t utf-8) or save it as CSV UTF-8.".into(),
        ));
    }
    Format::of_media_type(media).ok_or_else(unsupported)
}

/// Stores the body in chunks and queues the job.
async fn submit(
    state: &AppState,
    caller: &Caller,
    format: Format,
    options: &Options,
    mut payload: web::Payload,
) -> AppResult<store::JobRow> {
    // The start of the file is checked before anything is stored: a file that cannot be
    // read at all (empty, UTF-16, no header, not a JSON array) is refused now, not by a
    // job that fails later.
    let (mut buf, mut total, mut ended) = (Vec::with_capacity(CHUNK_BYTES), 0i64, false);
    while buf.len() < PROBE_BYTES {
        match payload.next().await {
            Some(Ok(bytes)) => {
                total += bytes.len() as i64;
                buf.extend_from_slice(&bytes);
            }
            Some(Err(e)) => return Err(broke_off(e)),
            None => {
                ended = true;
                break;
            }
        }
    }
    reader::open(format, Box::new(io::Cursor::new(buf.clone())))
        .map(drop)
        .map_err(unreadable)?;
    let now = storage::now();
    let job = store::JobRow {
        id: storage::new_id(),
        kind: options.kind,
        format,
        options: JsonText::encode(options.clone())?,
        signer: jobs::signer_text(caller),
        state: JobState::Receiving,
        bytes_total: 0,
        rows_done: 0,
        report: JsonText::encode(Report::default())?,
        header: JsonText::default(),
        error: None,
        worker: None,
        heartbeat_at: None,
        started_at: None,
        finished_at: None,
        created_at: now,
        updated_at: now,
    };
    let row = job.clone();
    storage::run(&state.pool, move |conn| store::insert(conn, &row)).await?;
    let mut seq = 0i32;
    let mut failure: Option<AppError> = None;
    loop {
        let next = if ended { None } else { payload.next().await };
        let last = next.is_none();
        match next {
            Some(Ok(bytes)) => {
                total += bytes.len() as i64;
                buf.extend_from_slice(&bytes);
            }
            Some(Err(e)) => {
                failure = Some(broke_off(e));
                break;
            }
            None => {}
        }
        while buf.len() >= CHUNK_BYTES || (last && !buf.is_empty()) {
            let part: Vec<u8> = buf.drain(..buf.len().min(CHUNK_BYTES)).collect();
            let id = job.id.clone();
            let n = seq;
            storage::run(&state.pool, move |conn| {
                store::add_chunk(conn, &id, n, &part)
            })
            .await?;
            seq += 1;
        }
        if last {
            break;
        }
    }
    let id = job.id.clone();
    if let Some(e) = failure {
        storage::run(&state.pool, move |conn| {
            store::finish(
                conn,
                &id,
                JobState::Failed,
                None,
                Some("the upload broke off"),
            )
        })
        .await?;
        return Err(e);
    }
    storage::run(&state.pool, move |conn| {
        store::queue(conn, &id, total)?;
        store::find(conn, &id)?.ok_or(AppError::NotFound)
    })
    .await
}

/// How much of an upload is read before its job is created, to check the file's start.
const PROBE_BYTES: usize = 64 * 1024;

fn broke_off(e: impl std::fmt::Display) -> AppError {
    AppError::BadRequest {
        code: ProblemCode::BodyUnreadable,
        detail: format!("The upload broke off: {e}"),
        errors: vec![],
    }
}

/// A job its creator (or an admin) may see.
async fn visible_job(state: &AppState, caller: &Caller, id: String) -> AppResult<store::JobRow> {
    caller.require_scope(Scope::Imports)?;
    let job = storage::run(&state.pool, move |conn| store::find(conn, &id))
        .await?
        .ok_or(AppError::NotFound)?;
    if caller.role != Role::Admin && job.signer != jobs::signer_text(caller) {
        return Err(AppError::NotFound);
    }
    Ok(job)
}

/// An import job: state, progress (bytes and rows read, rate, time left) and the counts
/// and first errors so far.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports", operation_id = "find_import",
    security(("bearer" = ["imports"])), params(("id" = String, Path)),
    responses((status = 200, body = ImportJobOut), (status = 404, body = crate::error::Problem)))]
pub async fn find_import(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let job = visible_job(&state, &caller, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ImportJobOut::from(job)))
}

/// Cancels a job that has not ended: the batch under way rolls back, the rows written
/// before it stay.
#[utoipa::path(delete, path = "/api/v1/imports/{id}", tag = "imports", operation_id = "cancel_import",
    security(("bearer" = ["imports"])), params(("id" = String, Path)),
    responses((status = 200, body = ImportJobOut), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem, description = "The job has ended")))]
pub async fn cancel_import(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let job = visible_job(&state, &caller, id.into_inner()).await?;
    if !job.state.is_live() {
        return Err(AppError::Conflict {
            code: ProblemCode::ImportNotCancellable,
            detail: format!("The job is {}.", job.state.as_str()),
            existing_id: None,
        });
    }
    let job = storage::run(&state.pool, move |conn| {
        store::finish(conn, &job.id, JobState::Cancelled, None, Some("cancelled"))?;
        store::find(conn, &job.id)?.ok_or(AppError::NotFound)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ImportJobOut::from(job)))
}

/// The rejected rows of a job as CSV: the file's own columns plus `error`, ready to fix
/// and post again (an NDJSON or JSON import gives `row`, `error` and the `record`).
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors.csv", tag = "imports", operation_id = "find_import_errors",
    security(("bearer" = ["imports"])), params(("id" = String, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = crate::error::Problem)))]
pub async fn find_import_errors(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let job = visible_job(&state, &caller, id.into_inner()).await?;
    let csv_input = job.format == Format::Csv;
    let header: Vec<String> = if csv_input {
        let mut h: Vec<String> = job.header.into_inner();
        h.push("error".into());
        h
    } else {
        vec!["row".into(), "error".into(), "record".into()]
    };
    let mut first = csv::Writer::from_writer(Vec::new());
    first.write_record(&header).map_err(AppError::internal)?;
    let first = first.into_inner().map_err(AppError::internal)?;
    // Streamed a thousand rows at a time: a file of millions of bad rows has as many.
    struct Next {
        pool: storage::DbPool,
        job_id: String,
        after: Option<i64>,
        columns: usize,
        csv_input: bool,
    }
    let start = Next {
        pool: state.pool.clone(),
        job_id: job.id.to_string(),
        after: Some(0),
        columns: header.len(),
        csv_input,
    };
    let rows = futures_util::stream::unfold(start, |mut st| async move {
        let after = st.after.take()?;
        let id = st.job_id.clone();
        let page = match storage::run(&st.pool, move |conn| store::rejects(conn, &id, after, 1000))
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "errors.csv stopped");
                return Some((
                    Err(actix_web::error::ErrorInternalServerError("stopped")),
                    st,
                ));
            }
        };
        st.after = page.last().map(|last| last.0);
        let mut out = csv::Writer::from_writer(Vec::new());
        for (row, cells, error) in page {
            let record: Vec<String> = if st.csv_input {
                // A CSV row's cells are stored as a JSON array of strings; anything
                // else is shown as it is stored rather than dropped.
                let mut c: Vec<String> =
                    serde_json::from_str(&cells).unwrap_or_else(|_| vec![cells.clone()]);
                c.resize(st.columns - 1, String::new());
                c.push(error);
                c
            } else {
                vec![row.to_string(), error, cells]
            };
            let _ = out.write_record(&record);
        }
        let bytes = out.into_inner().unwrap_or_default();
        Some((Ok::<Bytes, actix_web::Error>(Bytes::from(bytes)), st))
    });
    let body =
        futures_util::stream::once(
            async move { Ok::<Bytes, actix_web::Error>(Bytes::from(first)) },
        )
        .chain(rows);
    Ok(HttpResponse::build(StatusCode::OK)
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"import-{}-errors.csv\"", job.id),
        ))
        .streaming(body))
}
