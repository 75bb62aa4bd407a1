//! One pooled connection for a whole request where that is safe. Inside
//! [`one_connection`], the first [`super::run`] checks a connection out as usual and,
//! when its work is done, leaves it with the request instead of handing it back, so the
//! next `run` of the same request (the handler after the credential lookup) skips the
//! pool: no second checkout, no second liveness probe. The connection goes back to the
//! pool when the request's future ends (or is dropped).
//!
//! Only requests that wait on nothing but the database between two `run`s may hold one
//! (the authentication middleware opens the slot for `GET` and `HEAD`, which have no
//! body to read): a connection must never sit idle while a slow client uploads.

use std::cell::RefCell;
use std::future::Future;

use super::PooledConn;

tokio::task_local! {
    static HELD: RefCell<Option<PooledConn>>;
}

/// Runs `fut` with room for one connection that its `run`s share.
pub async fn one_connection<F: Future>(fut: F) -> F::Output {
    HELD.scope(RefCell::new(None), fut).await
}

/// `None` outside [`one_connection`]; else the connection held so far, if any.
pub(super) fn take() -> Option<Option<PooledConn>> {
    HELD.try_with(|slot| slot.borrow_mut().take()).ok()
}

/// Keeps `conn` for the next `run` of this request.
pub(super) fn keep(conn: PooledConn) {
    let _ = HELD.try_with(|slot| *slot.borrow_mut() = Some(conn));
}
