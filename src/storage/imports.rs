//! Lookups an import needs: a record by one of its keys, a pipeline by name.

use diesel::sql_types::Text;
use diesel::QueryableByName;

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
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
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
    q.text(&value).push(" LIMIT 1");
    Ok(q.load::<IdOwner>(conn)?
        .into_iter()
        .next()
        .map(|r| (r.id, r.owner_id)))
}

#[derive(QueryableByName)]
struct Keyed3 {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
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
            "SELECT id, owner_id, {c} AS key FROM {t} WHERE {c} IN ",
            c = column.as_str(),
            t = table.table()
        ));
        q.in_texts(chunk);
        out.extend(
            q.load::<Keyed3>(conn)?
                .into_iter()
                .map(|r| (r.id, r.owner_id, r.key)),
        );
    }
    Ok(out)
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
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
    Ok(q.load::<Id>(conn)?.into_iter().next().map(|r| r.id))
}
