//! Lookups an import needs: a record by one of its keys, a pipeline by name.

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};

use super::sql::Sql;
use super::DbConn;
use crate::error::AppResult;

/// A table an import writes, and the keys a row may be matched on there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyed {
    Leads,
    Accounts,
    Contacts,
    Opportunities,
}

impl Keyed {
    fn table(self) -> &'static str {
        match self {
            Keyed::Leads => "leads",
            Keyed::Accounts => "accounts",
            Keyed::Contacts => "contacts",
            Keyed::Opportunities => "opportunities",
        }
    }
}

/// A key column: `id`, `external_id` or `email` (leads and contacts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyColumn {
    Id,
    ExternalId,
    Email,
}

impl KeyColumn {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyColumn::Id => "id",
            KeyColumn::ExternalId => "external_id",
            KeyColumn::Email => "email",
        }
    }
}

#[derive(QueryableByName)]
struct IdOwner {
    #[diesel(sql_type = crate::storage::uid::Uid)]
    id: String,
    #[diesel(sql_type = crate::storage::uid::Uid)]
    owner_id: String,
}

/// The `(id, owner_id)` of the record of `table` whose `column` is `value` (emails
/// compared in lower case, as they are stored).
pub fn find_key(
    conn: &mut DbConn,
    table: Keyed,
    column: KeyColumn,
    value: &str,
) -> AppResult<Option<(String, String)>> {
    let mut q = Sql::new(super::opportunities::backend_of(conn));
    q.push(&format!(
        "SELECT id, owner_id FROM {} WHERE {} = ",
        table.table(),
        column.as_str()
    ));
    let value = match column {
        KeyColumn::Email => value.trim().to_lowercase(),
        _ => value.trim().to_owned(),
    };
    match column {
        KeyColumn::Id => q.id(&value),
        _ => q.text(&value),
    };
    q.push(" LIMIT 1");
    Ok(q.load::<IdOwner>(conn)?
        .into_iter()
        .next()
        .map(|r| (r.id, r.owner_id)))
}

#[derive(QueryableByName)]
struct Keyed3 {
    #[diesel(sql_type = crate::storage::uid::Uid)]
    id: String,
    #[diesel(sql_type = crate::storage::uid::Uid)]
    owner_id: String,
    #[diesel(sql_type = Text)]
    key: String,
}

/// [`find_key`] for many values at once: `(id, owner_id, key)` of each match.
pub fn find_keys(
    conn: &mut DbConn,
    table: Keyed,
    column: KeyColumn,
    values: &[String],
) -> AppResult<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for chunk in values.chunks(500) {
        let mut q = Sql::new(super::opportunities::backend_of(conn));
        q.push(&format!(
            "SELECT id, owner_id, CAST({c} AS TEXT) AS key FROM {t} WHERE {c} IN ",
            c = column.as_str(),
            t = table.table()
        ));
        match column {
            KeyColumn::Id => q.in_ids(chunk),
            _ => q.in_texts(chunk),
        };
        out.extend(
            q.load::<Keyed3>(conn)?
                .into_iter()
                .map(|r| (r.id, r.owner_id, r.key)),
        );
    }
    Ok(out)
}

/// A loss reason's id: a readable slug, not a UUID.
#[derive(QueryableByName)]
struct Slug {
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = crate::storage::uid::Uid)]
    id: String,
}

/// The pipelines whose name is `name` (case-insensitive), oldest first.
pub fn pipelines_named(conn: &mut DbConn, name: &str) -> AppResult<Vec<String>> {
    let mut q = Sql::new(super::opportunities::backend_of(conn));
    q.push("SELECT id FROM pipelines WHERE lower(name) = ")
        .text(&name.trim().to_lowercase())
        .push(" ORDER BY created_at, id LIMIT 2");
    Ok(q.load::<Id>(conn)?.into_iter().map(|r| r.id).collect())
}

/// The id of the loss reason named `name` (or with that id).
pub fn loss_reason_named(conn: &mut DbConn, name: &str) -> AppResult<Option<String>> {
    let mut q = Sql::new(super::opportunities::backend_of(conn));
    q.push("SELECT id FROM loss_reasons WHERE id = ")
        .text(name.trim())
        .push(" OR lower(label) = ")
        .text(&name.trim().to_lowercase())
        .push(" ORDER BY id LIMIT 1");
    Ok(q.load::<Slug>(conn)?.into_iter().next().map(|r| r.id))
}

/// The keys an import has written so far, in a temporary table of its connection (one
/// import runs on one connection), so that a long file does not hold them in memory.
/// Keys are hashes; each with the row that had it first.
pub fn seen_open(conn: &mut DbConn) -> AppResult<()> {
    diesel::sql_query(
        "CREATE TEMPORARY TABLE IF NOT EXISTS import_seen (hash BIGINT PRIMARY KEY, first_row BIGINT NOT NULL)",
    )
    .execute(conn)?;
    diesel::sql_query("DELETE FROM import_seen").execute(conn)?;
    Ok(())
}

pub fn seen_close(conn: &mut DbConn) -> AppResult<()> {
    diesel::sql_query("DROP TABLE IF EXISTS import_seen").execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct SeenRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    hash: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    first_row: i64,
}

/// Which of `hashes` were seen before, with their first row.
pub fn seen_lookup(conn: &mut DbConn, hashes: &[i64]) -> AppResult<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    for chunk in hashes.chunks(500) {
        let mut q = Sql::new(super::opportunities::backend_of(conn));
        q.push("SELECT hash, first_row FROM import_seen WHERE hash IN (");
        for (i, h) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.int(*h);
        }
        q.push(")");
        out.extend(
            q.load::<SeenRow>(conn)?
                .into_iter()
                .map(|r| (r.hash, r.first_row)),
        );
    }
    Ok(out)
}

/// Remembers `(hash, row)` pairs.
pub fn seen_add(conn: &mut DbConn, pairs: &[(i64, i64)]) -> AppResult<()> {
    for chunk in pairs.chunks(400) {
        let mut q = Sql::new(super::opportunities::backend_of(conn));
        q.push("INSERT INTO import_seen (hash, first_row) VALUES ");
        for (i, (h, r)) in chunk.iter().enumerate() {
            q.push(if i > 0 { ", (" } else { "(" });
            q.int(*h).push(", ").int(*r).push(")");
        }
        q.push(" ON CONFLICT (hash) DO NOTHING");
        q.execute(conn)?;
    }
    Ok(())
}
