//! Record ids: native UUIDs on PostgreSQL, text on SQLite, the same canonical text in
//! every answer, and a malformed id is "not found" on both backends.

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use serde_json::json;

use crate::api_tests;
use crate::helpers::{id_of, Backend, TestApp, TestDb};

api_tests!(malformed_ids_name_no_record);

async fn malformed_ids_name_no_record(app: TestApp) {
    let p = app.pipeline_from_template("standard").await;
    let deal = app.deal(&p).name("Acme").create().await;
    let id = deal.id.clone();
    let res = app
        .get(&format!("/api/v1/opportunities/{id}"))
        .admin()
        .send_ok()
        .await;
    assert_eq!(
        res.body["id"],
        id.as_str(),
        "an id comes back as it was given"
    );

    for other in [
        id.to_uppercase(),
        id.replace('-', ""),
        format!("{id}x"),
        "not-an-id".to_owned(),
    ] {
        app.get(&format!("/api/v1/opportunities/{other}"))
            .admin()
            .send()
            .await
            .problem(404, "not_found");
    }
    let res = app
        .get("/api/v1/opportunities?owner_id=not-an-id")
        .admin()
        .send_ok()
        .await;
    assert_eq!(res.body["data"], json!([]), "{}", res.body);
    let res = app
        .get(&format!("/api/v1/opportunities?pipeline_id={}", id_of(&p)))
        .admin()
        .send_ok()
        .await;
    assert_eq!(res.body["data"][0]["id"], id.as_str());
}

/// Every text column named like an id is a UUID on PostgreSQL, except the ids that are
/// readable slugs or carried as text on purpose. A new id column added as TEXT fails
/// here.
#[test]
fn postgres_stores_every_record_id_as_a_uuid() {
    let Some((_db, url)) = TestDb::create(Backend::Postgres) else {
        return;
    };
    let mut conn = PgConnection::establish(&url).expect("connect");
    conn.run_pending_migrations(stageflow::storage::PG_MIGRATIONS)
        .expect("migrations");
    let text_ids = columns(
        &mut conn,
        "data_type = 'text' AND (column_name IN ('id', 'created_by', 'updated_by') \
         OR column_name LIKE '%\\_id')",
    );
    assert_eq!(
        text_ids,
        [
            "deal_reach.lost_reason_id",
            "loss_reasons.id",
            "opportunities.external_id",
            "opportunities.lost_reason_id",
            "scoring_rules.id",
            "webhook_deliveries.record_id",
            "webhook_events.id",
            "webhook_events.record_id",
            "accounts.external_id",
            "contacts.external_id",
            "leads.external_id",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    let uuids = columns(&mut conn, "data_type = 'uuid'");
    for column in [
        "opportunities.id",
        "opportunities.owner_id",
        "stage_stays.id",
        "stage_stays.stage_id",
        "stage_transitions.opportunity_id",
        "deal_reach.lost_from_stage_id",
        "users.created_by",
    ] {
        assert!(uuids.iter().any(|c| c == column), "{column} in {uuids:?}");
    }
}

/// The migration to UUIDs converts a database that already holds records: the ids read
/// back the same, and the foreign keys still hold.
#[test]
fn postgres_converts_stored_text_ids_to_uuids() {
    let Some((_db, url)) = TestDb::create(Backend::Postgres) else {
        return;
    };
    let mut conn = PgConnection::establish(&url).expect("connect");
    let migrations =
        MigrationSource::<Pg>::migrations(&stageflow::storage::PG_MIGRATIONS).expect("migrations");
    let at = migrations
        .iter()
        .position(|m| m.name().to_string().ends_with("uuid_ids"))
        .expect("the migration to UUIDs");
    let (before, rest) = migrations.split_at(at);
    let last = &rest[0];
    conn.applied_migrations().expect("migration table");
    for m in before {
        conn.run_migration(m.as_ref()).expect("earlier migration");
    }
    let user = uuid::Uuid::now_v7().to_string();
    let pipeline = uuid::Uuid::now_v7().to_string();
    let stage = uuid::Uuid::now_v7().to_string();
    let deal = uuid::Uuid::now_v7().to_string();
    conn.batch_execute(&format!(
        "INSERT INTO users (id, email, name, password_hash, role, active, version, created_at, updated_at) \
           VALUES ('{user}', 'a@example.com', 'A', 'x', 'admin', TRUE, 1, now(), now()); \
         INSERT INTO pipelines (id, name, version, created_at, updated_at, created_by) \
           VALUES ('{pipeline}', 'P', 1, now(), now(), '{user}'); \
         INSERT INTO stages (id, pipeline_id, name, position, kind, probability, created_at, updated_at) \
           VALUES ('{stage}', '{pipeline}', 'S', 0, 'open', 10, now(), now()); \
         INSERT INTO opportunities (id, name, pipeline_id, stage_id, status, currency, owner_id, \
           stage_entered_at, tags, custom, version, created_at, updated_at) \
           VALUES ('{deal}', 'D', '{pipeline}', '{stage}', 'open', 'CNY', '{user}', now(), '[]', '{{}}', 1, now(), now());"
    ))
    .expect("rows with text ids");
    conn.run_migration(last.as_ref())
        .expect("the migration to UUIDs");
    for m in &rest[1..] {
        conn.run_migration(m.as_ref()).expect("a later migration");
    }

    let read: Vec<(String, String, String)> = diesel::sql_query(
        "SELECT CAST(o.id AS TEXT) AS a, CAST(o.stage_id AS TEXT) AS b, CAST(p.created_by AS TEXT) AS c \
         FROM opportunities o JOIN pipelines p ON p.id = o.pipeline_id",
    )
    .load::<Three>(&mut conn)
    .expect("read back")
    .into_iter()
    .map(|t| (t.a, t.b, t.c))
    .collect();
    assert_eq!(read, vec![(deal.clone(), stage.clone(), user.clone())]);
    let dangling = conn.batch_execute(&format!(
        "INSERT INTO opportunities (id, name, pipeline_id, stage_id, status, currency, owner_id, \
           stage_entered_at, tags, custom, version, created_at, updated_at) \
           VALUES ('{}', 'E', '{pipeline}', '{}', 'open', 'CNY', '{user}', now(), '[]', '{{}}', 1, now(), now())",
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7()
    ));
    assert!(
        dangling.is_err_and(|e| e.to_string().contains("foreign key")),
        "a deal in a stage that does not exist is refused after the change"
    );
}

#[derive(QueryableByName)]
struct Three {
    #[diesel(sql_type = diesel::sql_types::Text)]
    a: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    b: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    c: String,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// `table.column` of the public columns matching `condition`, sorted.
fn columns(conn: &mut PgConnection, condition: &str) -> Vec<String> {
    let mut names: Vec<String> = diesel::sql_query(format!(
        "SELECT table_name || '.' || column_name AS name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND {condition}"
    ))
    .load::<Name>(conn)
    .expect("columns")
    .into_iter()
    .map(|n| n.name)
    .collect();
    names.sort();
    names
}
