//! Exports: `Accept: text/csv` or `application/x-ndjson` on a list endpoint streams
//! every matching row (the list's filters apply, no page limit), fetched page by page
//! so memory stays flat, with a `Content-Disposition` file name. CSV cells hold text;
//! lists and objects are written as JSON, and text that a spreadsheet would run as a
//! formula is prefixed with `'` (imports take the prefix off again), so an exported
//! file imports back as `unchanged`.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream;
use serde::Serialize;
use serde_json::Value;

use super::pagination::page_out;
use crate::error::AppResult;
use crate::imports::columns::looks_like_formula;
use crate::storage::{self, DbConn, DbPool, Page, PageRequest};

/// Rows fetched per round trip while exporting.
const EXPORT_PAGE: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

/// The export format the `Accept` header asks for, if any (JSON otherwise).
pub fn requested(req: &HttpRequest) -> Option<ExportFormat> {
    let accept = req.headers().get(header::ACCEPT)?.to_str().ok()?;
    accept.split(',').find_map(|part| {
        match part.split(';').next()?.trim().to_ascii_lowercase().as_str() {
            "text/csv" => Some(ExportFormat::Csv),
            "application/x-ndjson" | "application/jsonl" => Some(ExportFormat::Ndjson),
            _ => None,
        }
    })
}

/// Answers a list request: one JSON page, or every row as CSV or NDJSON when the
/// `Accept` header asks for it.
pub async fn list_or_export<R, O, F>(
    pool: &DbPool,
    req: &HttpRequest,
    name: &str,
    page: PageRequest,
    fetch: F,
    shape: fn(R) -> O,
) -> AppResult<HttpResponse>
where
    R: Send + 'static,
    O: Serialize + 'static,
    F: Fn(&mut DbConn, &PageRequest) -> AppResult<Page<R>> + Send + Sync + Clone + 'static,
{
    let Some(format) = requested(req) else {
        let req_page = page.clone();
        let rows = storage::run(pool, move |conn| fetch(conn, &req_page)).await?;
        return Ok(HttpResponse::Ok().json(page_out(rows, &page, shape)));
    };
    let first = PageRequest {
        limit: EXPORT_PAGE,
        ..page
    };
    struct State<F> {
        pool: DbPool,
        next: Option<PageRequest>,
        columns: Option<Vec<String>>,
        fetch: F,
    }
    let start = State {
        pool: pool.clone(),
        next: Some(first),
        columns: None,
        fetch,
    };
    let body = stream::unfold(start, move |mut st| async move {
        let page = st.next.take()?;
        let fetch = st.fetch.clone();
        let req = page.clone();
        let rows = match storage::run(&st.pool, move |conn| fetch(conn, &req)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "export stopped");
                return Some((
                    Err(actix_web::error::ErrorInternalServerError("export stopped")),
                    st,
                ));
            }
        };
        st.next = rows.next.clone().map(|after| PageRequest {
            after: Some(after),
            ..page
        });
        let items = rows.items.into_iter().map(shape);
        let out = encode(format, &mut st.columns, items);
        Some((Ok::<Bytes, actix_web::Error>(Bytes::from(out)), st))
    });
    Ok(attachment(format, name).streaming(body))
}

/// A whole, bounded answer (one deal's history) as CSV or NDJSON.
pub fn all_rows<O: Serialize>(format: ExportFormat, name: &str, rows: Vec<O>) -> HttpResponse {
    let out = encode(format, &mut None, rows.into_iter());
    attachment(format, name).body(out)
}

fn attachment(format: ExportFormat, name: &str) -> actix_web::HttpResponseBuilder {
    let (content_type, ext) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let date = storage::now().format("%Y%m%d");
    let mut builder = HttpResponse::Ok();
    builder.content_type(content_type).insert_header((
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{name}-{date}.{ext}\""),
    ));
    builder
}

/// Rows as NDJSON lines or CSV records; the CSV header (the first row's members) is
/// written once, when `columns` is still unknown.
fn encode<O: Serialize>(
    format: ExportFormat,
    columns: &mut Option<Vec<String>>,
    items: impl Iterator<Item = O>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        let value = serde_json::to_value(item).unwrap_or(Value::Null);
        match format {
            ExportFormat::Ndjson => {
                out.extend(value.to_string().into_bytes());
                out.push(b'\n');
            }
            ExportFormat::Csv => {
                let Value::Object(map) = value else { continue };
                let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
                if columns.is_none() {
                    let names: Vec<String> = map.keys().cloned().collect();
                    let _ = w.write_record(&names);
                    *columns = Some(names);
                }
                let names = columns.as_deref().unwrap_or_default();
                let cells: Vec<String> = names
                    .iter()
                    .map(|c| cell(map.get(c).unwrap_or(&Value::Null)))
                    .collect();
                let _ = w.write_record(&cells);
                out.extend(w.into_inner().unwrap_or_default());
            }
        }
    }
    out
}

/// One CSV cell.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) if looks_like_formula(s) => format!("'{s}"),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}
