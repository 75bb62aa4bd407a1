//! Amounts stored before each currency had its own decimals are rescaled by the
//! migration that introduced them, on both backends.

use diesel::backend::Backend as DieselBackend;
use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use stageflow::storage::{DbConn, PG_MIGRATIONS, SQLITE_MIGRATIONS};

use crate::helpers::{Backend, TestDb};

const MIGRATION: &str = "currency_exponents";

#[test]
fn sqlite_rescales_stored_amounts_to_their_currency() {
    rescales_stored_amounts(Backend::Sqlite);
}

#[test]
fn postgres_rescales_stored_amounts_to_their_currency() {
    rescales_stored_amounts(Backend::Postgres);
}

/// Runs every migration before the one whose name ends with `name`, then `between`,
/// then the rest.
fn around<C, DB>(conn: &mut C, source: EmbeddedMigrations, name: &str, between: impl FnOnce(&mut C))
where
    DB: DieselBackend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let migrations = source.migrations().expect("migrations");
    let at = migrations
        .iter()
        .position(|m| m.name().to_string().ends_with(name))
        .expect("the migration under test");
    conn.applied_migrations().expect("migration table");
    for m in &migrations[..at] {
        conn.run_migration(m.as_ref()).expect("earlier migration");
    }
    between(conn);
    for m in &migrations[at..] {
        conn.run_migration(m.as_ref())
            .expect("the migration under test and later ones");
    }
}

/// A connection to the database at `url`, migrated with `rows` (SQL) written just
/// before the migration whose name ends with `name`.
pub fn migrated_with(backend: Backend, url: &str, name: &str, rows: &str) -> DbConn {
    let insert = |c: &mut dyn SimpleConnection| c.batch_execute(rows).expect("rows written");
    match backend {
        Backend::Postgres => {
            let mut c = PgConnection::establish(url).expect("connect");
            around(&mut c, PG_MIGRATIONS, name, |c| insert(c));
            DbConn::Pg(c)
        }
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite://");
            let mut c = SqliteConnection::establish(path).expect("open");
            around(&mut c, SQLITE_MIGRATIONS, name, |c| insert(c));
            DbConn::Sqlite(c)
        }
    }
}

fn rescales_stored_amounts(backend: Backend) {
    let Some((_db, url)) = TestDb::create(backend) else {
        return;
    };
    let id = || uuid::Uuid::now_v7().to_string();
    let (user, pipeline, stage) = (id(), id(), id());
    // Amounts as they were kept before: hundredths of a unit whatever the currency.
    let deals = [
        (id(), "JPY", 150_000_i64),
        (id(), "JPY", 1_050),
        (id(), "KWD", 125),
        (id(), "CNY", 1_250_050),
    ];
    let mut rows = format!(
        "INSERT INTO users (id, email, name, password_hash, role, active, version, created_at, updated_at) \
           VALUES ('{user}', 'a@example.com', 'A', 'x', 'admin', TRUE, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP); \
         INSERT INTO pipelines (id, name, version, created_at, updated_at, created_by) \
           VALUES ('{pipeline}', 'P', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, '{user}'); \
         INSERT INTO stages (id, pipeline_id, name, position, kind, probability, created_at, updated_at) \
           VALUES ('{stage}', '{pipeline}', 'S', 0, 'open', 10, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);"
    );
    for (deal, currency, amount) in &deals {
        rows.push_str(&format!(
            "INSERT INTO opportunities (id, name, pipeline_id, stage_id, status, amount_minor, currency, owner_id, \
               stage_entered_at, tags, custom, version, created_at, updated_at) \
               VALUES ('{deal}', 'D', '{pipeline}', '{stage}', 'open', {amount}, '{currency}', '{user}', \
               CURRENT_TIMESTAMP, '[]', '{{}}', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP); \
             INSERT INTO deal_reach (opportunity_id, pipeline_id, owner_id, created_at, entered_mask, was_lost, \
               reopened, advances, status, amount_minor, tags) \
               VALUES ('{deal}', '{pipeline}', '{user}', CURRENT_TIMESTAMP, 1, 0, 0, 0, 'open', {amount}, '[]');"
        ));
    }
    let mut conn = migrated_with(backend, &url, MIGRATION, &rows);

    let read = |conn: &mut DbConn, sql: &str| -> Vec<i64> {
        deals
            .iter()
            .map(|(deal, _, _)| {
                diesel::sql_query(format!("{sql} = '{deal}'"))
                    .get_result::<Amount>(conn)
                    .expect("read back")
                    .v
            })
            .collect()
    };
    assert_eq!(
        read(
            &mut conn,
            "SELECT amount_minor AS v FROM opportunities WHERE id"
        ),
        // 1500 yen; 10.50 yen round to 11; 1.250 dinars; yuan unchanged.
        [1_500, 11, 1_250, 1_250_050]
    );
    assert_eq!(
        read(
            &mut conn,
            "SELECT amount_milli AS v FROM deal_reach WHERE opportunity_id"
        ),
        [1_500_000, 11_000, 1_250, 12_500_500]
    );
}

#[derive(QueryableByName)]
struct Amount {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    v: i64,
}
