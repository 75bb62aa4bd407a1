//! Small key/value settings the server keeps for itself (e.g. the generated JWT secret
//! of a zero-configuration SQLite install).

use diesel::prelude::*;

use super::schema::server_settings;
use super::DbConn;

pub fn get(conn: &mut DbConn, key: &str) -> QueryResult<Option<String>> {
    server_settings::table
        .select(server_settings::value)
        .filter(server_settings::key.eq(key))
        .first(conn)
        .optional()
}

/// Stores `value` unless the key already holds one; returns what is stored.
pub fn get_or_insert(conn: &mut DbConn, key: &str, value: &str) -> QueryResult<String> {
    super::write_tx(conn, |conn| {
        if let Some(existing) = get(conn, key)? {
            return Ok(existing);
        }
        diesel::insert_into(server_settings::table)
            .values((
                server_settings::key.eq(key),
                server_settings::value.eq(value),
            ))
            .execute(conn)?;
        Ok(value.to_owned())
    })
}
