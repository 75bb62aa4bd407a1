//! Stored answers to `POST` requests sent with an `Idempotency-Key` (see
//! `http::idempotency`). A key belongs to one credential (`scope`) and lives 24 hours.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::schema::idempotency_keys as k;
use super::DbConn;
use crate::error::AppResult;

/// A finished response, as replayed.
#[derive(Debug, Clone, Queryable)]
pub struct Stored {
    pub status: Option<i32>,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub etag: Option<String>,
    pub body: Option<String>,
}

/// What to do with a request carrying a key.
#[derive(Debug)]
pub enum Claim {
    /// The key is new (or expired, or abandoned): run the request and record it.
    Run,
    /// The first request with this key finished: replay its answer.
    Replay(Stored),
    /// The first request with this key is still running.
    Running,
    /// The key was used with another request.
    Mismatch,
}

/// The key's lifetimes relative to now.
pub struct Window {
    pub now: NaiveDateTime,
    /// Keys created before this are forgotten.
    pub expired_before: NaiveDateTime,
    /// A request still running since before this is taken to have died with its
    /// process (its transaction rolled back), and may be run again.
    pub abandoned_before: NaiveDateTime,
}

/// Claims `key` for a request whose method, path, query and body hash to `hash`.
pub fn claim(
    conn: &mut DbConn,
    scope: &str,
    key: &str,
    hash: &str,
    window: &Window,
) -> AppResult<Claim> {
    let result = super::write_tx(conn, |conn| -> Result<Claim, DieselError> {
        let existing: Option<(String, NaiveDateTime, Stored)> = k::table
            .filter(k::scope.eq(scope).and(k::key.eq(key)))
            .select((
                k::request_hash,
                k::created_at,
                (k::status, k::content_type, k::location, k::etag, k::body),
            ))
            .first(conn)
            .optional()?;
        match existing {
            Some((_, created, _)) if created < window.expired_before => {
                diesel::delete(k::table.filter(k::scope.eq(scope).and(k::key.eq(key))))
                    .execute(conn)?;
            }
            Some((stored_hash, _, _)) if stored_hash != hash => return Ok(Claim::Mismatch),
            Some((_, created, stored)) if stored.status.is_none() => {
                if created >= window.abandoned_before {
                    return Ok(Claim::Running);
                }
                diesel::update(k::table.filter(k::scope.eq(scope).and(k::key.eq(key))))
                    .set(k::created_at.eq(window.now))
                    .execute(conn)?;
                return Ok(Claim::Run);
            }
            Some((_, _, stored)) => return Ok(Claim::Replay(stored)),
            None => {}
        }
        // Forget expired keys as new ones arrive (the created_at index keeps it cheap).
        diesel::delete(k::table.filter(k::created_at.lt(window.expired_before))).execute(conn)?;
        diesel::insert_into(k::table)
            .values((
                k::scope.eq(scope),
                k::key.eq(key),
                k::request_hash.eq(hash),
                k::created_at.eq(window.now),
            ))
            .execute(conn)?;
        Ok(Claim::Run)
    });
    match result {
        Ok(claim) => Ok(claim),
        // A concurrent first request inserted the key between our read and insert.
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            Ok(Claim::Running)
        }
        Err(e) => Err(e.into()),
    }
}

/// Records the answer of a request that ran under `key`.
pub fn finish(conn: &mut DbConn, scope: &str, key: &str, answer: &Stored) -> AppResult<()> {
    super::write_tx(conn, |conn| {
        diesel::update(k::table.filter(k::scope.eq(scope).and(k::key.eq(key))))
            .set((
                k::status.eq(answer.status),
                k::content_type.eq(&answer.content_type),
                k::location.eq(&answer.location),
                k::etag.eq(&answer.etag),
                k::body.eq(&answer.body),
            ))
            .execute(conn)
    })?;
    Ok(())
}

/// Releases a key whose request failed in a way worth retrying (5xx, 401, 429).
pub fn release(conn: &mut DbConn, scope: &str, key: &str) -> AppResult<()> {
    super::write_tx(conn, |conn| {
        diesel::delete(k::table.filter(k::scope.eq(scope).and(k::key.eq(key)))).execute(conn)
    })?;
    Ok(())
}
