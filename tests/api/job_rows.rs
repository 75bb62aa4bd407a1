//! Stored import jobs read back as typed values: the state, format and kind as enums,
//! the options, report and header as their JSON documents. Jobs written before the
//! report had to be whole are brought up to date by their migration; a document that
//! does not parse is an error, never an empty default.

use stageflow::domain::import::{Format, JobState, Kind};
use stageflow::storage::import_jobs;

use crate::helpers::{Backend, TestDb};
use crate::money::migrated_with;

const MIGRATION: &str = "import_job_reports";

#[test]
fn sqlite_jobs_read_back_typed() {
    jobs_read_back_typed(Backend::Sqlite);
}

#[test]
fn postgres_jobs_read_back_typed() {
    jobs_read_back_typed(Backend::Postgres);
}

fn jobs_read_back_typed(backend: Backend) {
    let Some((_db, url)) = TestDb::create(backend) else {
        return;
    };
    let id = || uuid::Uuid::now_v7().to_string();
    let (broken_off, corrupt) = (id(), id());
    let options = r#"{"kind":"contacts","mode":"upsert","match_on":"email","dry_run":true,"default_currency":"CNY"}"#;
    let job = |job: &str, report: &str| {
        format!(
            "INSERT INTO import_jobs (id, kind, format, options, signer, state, report, header, error, \
               created_at, updated_at) \
               VALUES ('{job}', 'contacts', 'ndjson', '{options}', 'user:x', 'failed', '{report}', '[]', \
               'the upload broke off', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);"
        )
    };
    // A job whose upload broke off kept the empty report it was created with.
    let rows = job(&broken_off, "{}") + &job(&corrupt, "{\"created\":");
    let mut conn = migrated_with(backend, &url, MIGRATION, &rows);

    let read = import_jobs::find(&mut conn, &broken_off)
        .expect("the job reads back")
        .expect("the job exists");
    assert_eq!(read.state, JobState::Failed);
    assert_eq!(read.format, Format::Ndjson);
    assert_eq!(read.kind, Kind::Contacts);
    assert!(read.options.dry_run);
    assert_eq!(read.options.default_currency, "CNY");
    assert_eq!((read.report.rows, read.report.created), (0, 0));
    assert!(read.report.file_error.is_none());
    assert!(read.header.is_empty());

    assert!(
        import_jobs::find(&mut conn, &corrupt).is_err(),
        "a report that does not parse is an error, not an empty report"
    );
}
