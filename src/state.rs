//! What every request handler shares: the pool, settings, signing keys and the
//! in-process rate limiters. Its own module, so the HTTP layer and identity can use it
//! without depending on start-up (which builds it and depends on them).

use std::sync::Arc;

use crate::auth::jwt::JwtKeys;
use crate::auth::rate_limit::{Budgets, Limiter};
use crate::config::Settings;
use crate::storage::clock::Clock;
use crate::storage::{Backend, DbPool};

pub struct AppState {
    pub pool: DbPool,
    pub backend: Backend,
    pub settings: Arc<Settings>,
    pub jwt: Arc<JwtKeys>,
    /// Sign-in attempts per (client IP, email).
    pub login_limiter: Arc<Limiter>,
    /// Sign-in attempts per client IP.
    pub login_ip_limiter: Arc<Limiter>,
    /// API requests per credential.
    pub request_limiter: Arc<Limiter>,
    /// API requests per client IP without valid credentials.
    pub public_limiter: Arc<Limiter>,
    /// Capture posts per (source, client IP), for form sources.
    pub capture_ip_limiter: Arc<Limiter>,
    /// Capture posts per source, each at its own `rate_limit_per_minute`.
    pub capture_source_budgets: Arc<Budgets>,
    /// The time requests write: the system's, unless a test sets it.
    pub clock: Clock,
}

impl AppState {
    /// Drops rate-limit entries whose budget is whole again.
    pub fn housekeep_limiters(&self) {
        for limiter in [
            &self.login_limiter,
            &self.login_ip_limiter,
            &self.request_limiter,
            &self.public_limiter,
        ] {
            limiter.housekeep();
        }
        self.capture_ip_limiter.housekeep();
        self.capture_source_budgets.housekeep();
    }
}
