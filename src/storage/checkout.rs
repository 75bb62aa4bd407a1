//! Taking a connection out of the pool. The pool itself does not probe connections on
//! checkout (a `SELECT 1` round trip before every request's first query); this module
//! probes a PostgreSQL connection only when it has sat idle for longer than
//! [`ALIVE_WITHOUT_PROBE`] since its last use, the "alive bypass window" that
//! established connection pools use. A connection in steady use is taken as it is; one
//! that idled (and may have been closed by the server, a proxy or a restart in the
//! meantime) is probed first, and a dead one is discarded and replaced.
//!
//! A connection that dies within the window fails its first query instead: diesel then
//! marks it broken, so the pool drops it when it comes back. A point read (the first
//! statement of every request) runs again on a fresh connection ([`super::run_point_read`]);
//! any other statement's client gets a 503 to retry (see
//! `AppError::from(diesel::result::Error)`). SQLite connections live in this process and
//! are never probed.

use std::time::{Duration, Instant};

use diesel::r2d2::{PooledConnection, R2D2Connection};

use super::{DbConn, DbPool, PooledConn, StorageError};

/// How long after its last use a PostgreSQL connection is taken as alive without a probe.
pub const ALIVE_WITHOUT_PROBE: Duration = Duration::from_millis(500);

/// When a pooled connection last finished a piece of work (kept with the connection in
/// the pool's per-connection extensions).
struct LastUsed(Instant);

/// A connection from the pool, waiting for one up to the pool's timeout; probed first
/// when it has idled (see the module documentation).
pub fn checkout(pool: &DbPool) -> Result<PooledConn, StorageError> {
    let conn = pool.get()?;
    ready(pool, conn)
}

/// Like [`checkout`], but only a connection that is free right now.
pub fn try_checkout(pool: &DbPool) -> Option<PooledConn> {
    let conn = pool.try_get()?;
    ready(pool, conn).ok()
}

/// Like [`checkout`], but probes the connection whatever its last use: for running a
/// statement again after its connection died, when the other pooled connections may
/// have died with it.
pub fn checkout_probed(pool: &DbPool) -> Result<PooledConn, StorageError> {
    let mut conn = pool.get()?;
    PooledConnection::extensions_mut(&mut conn).remove::<LastUsed>();
    ready(pool, conn)
}

/// Records that `conn` has just done its work, so its next checkout within the window
/// needs no probe.
pub fn mark_used(conn: &mut PooledConn) {
    if matches!(**conn, DbConn::Pg(_)) {
        PooledConnection::extensions_mut(conn).insert(LastUsed(Instant::now()));
    }
}

fn needs_probe(conn: &PooledConn) -> bool {
    matches!(**conn, DbConn::Pg(_))
        && PooledConnection::extensions(conn)
            .get::<LastUsed>()
            .is_none_or(|used| used.0.elapsed() > ALIVE_WITHOUT_PROBE)
}

/// Probes `conn` if it idled; a dead one is dropped (its failed probe marked it broken,
/// so the pool discards it) and the next one tried, up to one attempt per pooled
/// connection and one more.
fn ready(pool: &DbPool, mut conn: PooledConn) -> Result<PooledConn, StorageError> {
    let mut attempts = pool.max_size();
    loop {
        if !needs_probe(&conn) {
            return Ok(conn);
        }
        match conn.ping() {
            Ok(()) => {
                mark_used(&mut conn);
                return Ok(conn);
            }
            Err(e) if attempts == 0 => return Err(StorageError::Database(e)),
            Err(e) => {
                tracing::warn!(error = %e, "dropping a database connection that failed its probe");
                attempts -= 1;
                drop(conn);
                conn = pool.get()?;
                // Whatever closed one connection may have closed the others.
                PooledConnection::extensions_mut(&mut conn).remove::<LastUsed>();
            }
        }
    }
}
