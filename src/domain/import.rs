//! Imports: what a file holds, how it is imported, and what came of it. The import
//! reader and writer live in the `imports` module; these are the values a job stores.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::lead::text_enum;

text_enum!(
    /// What a file holds.
    Kind {
        Leads = "leads", Accounts = "accounts", Contacts = "contacts",
        Opportunities = "opportunities",
    }
);

/// `create` refuses a row that matches an existing record (unless it is identical);
/// `upsert` updates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Create,
    Upsert,
}

/// The key a row is matched on when it has no `id` column. With `external_id`, leads
/// and contacts that have none match on their email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchOn {
    #[default]
    ExternalId,
    Email,
}

/// How to import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    pub kind: Kind,
    pub mode: Mode,
    pub match_on: MatchOn,
    pub dry_run: bool,
    pub default_currency: String,
}

/// One problem of one row.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RowError {
    /// Data row number: 1 is the first row after the header (or the first line or
    /// array element).
    pub row: u64,
    /// The field or column at fault; null for the row as a whole.
    pub field: Option<String>,
    pub code: String,
    pub message: String,
}

/// The outcome of an import.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Report {
    pub created: u64,
    pub updated: u64,
    /// Rows equal to the record they match: nothing written.
    pub unchanged: u64,
    pub failed: u64,
    /// The first 100 row errors (a job's `errors.csv` has every rejected row).
    pub errors: Vec<RowError>,
    /// More errors than listed.
    pub errors_truncated: bool,
    /// Columns that match no field (named once, not per row).
    pub unknown_columns: Vec<String>,
    /// Columns an export writes that imports leave to the server (`score`,
    /// `created_at`, …).
    pub ignored_columns: Vec<String>,
    /// Data rows read.
    pub rows: u64,
    pub bytes: u64,
    /// Nothing was written (`dry_run=true`).
    pub dry_run: bool,
    /// The file stopped being readable here (the rows before it stand).
    pub file_error: Option<FileProblem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct FileProblem {
    pub code: String,
    pub message: String,
}

text_enum!(
    /// The body's format, from its `Content-Type`; a job stores it as `csv`, `ndjson`
    /// or `json` (an array).
    Format { Csv = "csv", Ndjson = "ndjson", JsonArray = "json" }
);

impl Format {
    /// The format of a media type (parameters ignored), if it is one of ours.
    pub fn of_media_type(media_type: &str) -> Option<Format> {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "text/csv" | "application/csv" => Some(Format::Csv),
            "application/x-ndjson" | "application/jsonl" | "application/ndjson" => {
                Some(Format::Ndjson)
            }
            "application/json" => Some(Format::JsonArray),
            _ => None,
        }
    }

    /// The format of a file name's extension (for the command line).
    pub fn of_file_name(name: &str) -> Option<Format> {
        let ext = name.rsplit('.').next()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "json" => Some(Format::JsonArray),
            _ => None,
        }
    }
}

text_enum!(
    /// Where an import job is: `receiving` (the upload is under way), `queued`,
    /// `running`, then one of `done`, `failed`, `cancelled`.
    JobState {
        Receiving = "receiving", Queued = "queued", Running = "running",
        Done = "done", Failed = "failed", Cancelled = "cancelled",
    }
);

impl JobState {
    /// Still to finish: it may be cancelled.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            JobState::Receiving | JobState::Queued | JobState::Running
        )
    }
}
