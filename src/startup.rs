//! Builds the application: state (pool, keys, limits), the actix `App` (used by `main`
//! and by the tests), first-start admin creation, and the server loop.

use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::auth::jwt::{JwtKeys, SecretTooShort};
use crate::auth::password;
use crate::auth::rate_limit::Limiter;
use crate::config::{ExposeSecret, Settings};
use crate::domain::user::{Email, Role, MIN_PASSWORD_LEN};
use crate::error::AppError;
use crate::http;
pub use crate::state::AppState;
use crate::storage::{self, users, Backend, DbPool};

/// Why the server or a command could not start. Each cause stays attached as the
/// error's `source`, so the message names the step and then the underlying reason
/// ([`error_chain`]).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] storage::SetupError),
    #[error(transparent)]
    JwtSecret(#[from] SecretTooShort),
    #[error("STAGEFLOW_JWT_SECRET is required with PostgreSQL (at least 32 bytes)")]
    JwtSecretRequired,
    #[error("cannot keep the generated JWT secret in the SQLite database")]
    JwtSecretStore(#[source] AppError),
    #[error("cannot get a database connection")]
    Pool(#[source] diesel::r2d2::PoolError),
    #[error("set both STAGEFLOW_ADMIN_EMAIL and STAGEFLOW_ADMIN_PASSWORD, or neither")]
    AdminHalfConfigured,
    #[error("STAGEFLOW_ADMIN_EMAIL {0}")]
    AdminEmail(String),
    #[error("STAGEFLOW_ADMIN_PASSWORD must be at least {MIN_PASSWORD_LEN} characters")]
    AdminPasswordTooShort,
    #[error("creating the first admin failed")]
    CreateAdmin(#[source] AppError),
    /// A command-line argument was refused; the message names it.
    #[error("{0}")]
    Argument(String),
    #[error("creating the user failed")]
    CreateUser(#[source] AppError),
    #[error("generating the demo data failed")]
    DemoData(#[source] AppError),
    #[error("server error")]
    Serve(#[source] std::io::Error),
    #[error("the import failed")]
    Import(#[source] AppError),
}

/// The user a command-line import acts as: the one with `email`, else the oldest active
/// admin.
pub fn acting_user(
    conn: &mut storage::DbConn,
    email: Option<&str>,
) -> Result<crate::auth::Caller, AppError> {
    let user = match email {
        Some(e) => storage::users::find_by_email(conn, &e.trim().to_lowercase())?
            .filter(|u| u.active)
            .ok_or_else(|| AppError::Forbidden(format!("no active user {e}")))?,
        None => storage::users::oldest_admin(conn)?
            .ok_or_else(|| AppError::Forbidden("no active admin; pass --as".into()))?,
    };
    let signer = crate::auth::links::Signer::User(user.id);
    Ok(crate::auth::caller::link_signer(conn, &signer)?.0)
}

/// An error and its causes on one line, outermost first: `a: b: c`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string().trim().to_owned();
    let mut cause = err.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(e.to_string().trim());
        cause = e.source();
    }
    text
}

/// Connects, migrates and loads the signing key. Refuses weak or missing secrets where
/// they matter.
pub fn build_state(settings: Settings) -> Result<AppState, StartupError> {
    let (pool, backend) = storage::connect(&settings.database_url, settings.pool_size)?;
    let secret = jwt_secret(&settings, &pool, backend)?;
    let jwt = JwtKeys::new(
        secret.as_bytes(),
        &settings.jwt_issuer,
        &settings.jwt_audience,
        settings.token_ttl_secs,
    )?;
    Ok(AppState {
        pool,
        backend,
        login_limiter: Arc::new(Limiter::per_minute(settings.login_attempts_per_minute)),
        login_ip_limiter: Arc::new(Limiter::per_minute(settings.login_ip_attempts_per_minute)),
        request_limiter: Arc::new(Limiter::per_minute(settings.rate_limit_per_minute)),
        public_limiter: Arc::new(Limiter::per_minute(settings.public_rate_limit_per_minute)),
        capture_ip_limiter: Arc::new(Limiter::per_minute(settings.capture_ip_per_minute)),
        capture_source_budgets: Default::default(),
        jwt: Arc::new(jwt),
        settings: Arc::new(settings),
        clock: Default::default(),
    })
}

/// PostgreSQL deployments must configure `STAGEFLOW_JWT_SECRET` (replicas share it).
/// A zero-configuration SQLite install generates one and keeps it in its database, so
/// tokens survive restarts.
fn jwt_secret(
    settings: &Settings,
    pool: &DbPool,
    backend: Backend,
) -> Result<String, StartupError> {
    if let Some(secret) = &settings.jwt_secret {
        return Ok(secret.expose_secret().to_owned());
    }
    if backend == Backend::Postgres {
        return Err(StartupError::JwtSecretRequired);
    }
    let mut conn = pool.get().map_err(StartupError::Pool)?;
    let fresh = password::random_token(48).map_err(StartupError::JwtSecretStore)?;
    let stored = storage::settings::get_or_insert(&mut conn, "jwt_secret", &fresh)
        .map_err(|e| StartupError::JwtSecretStore(e.into()))?;
    if stored == fresh {
        tracing::warn!(
            "no STAGEFLOW_JWT_SECRET set: generated one and stored it in the SQLite database"
        );
    }
    Ok(stored)
}

/// What the first start did about the first admin.
pub enum Bootstrap {
    AlreadyHasUsers,
    Created {
        email: String,
    },
    /// No credentials were configured: the generated password, to print once.
    Generated {
        email: String,
        password: String,
    },
}

/// Creates the first admin when the database has no user yet.
pub fn bootstrap_admin(state: &AppState) -> Result<Bootstrap, StartupError> {
    let mut conn = state.pool.get().map_err(StartupError::Pool)?;
    ensure_admin(&mut conn, &state.settings)
}

/// The first-start rule on a connection: with no user yet, creates the configured admin
/// (`STAGEFLOW_ADMIN_EMAIL`/`PASSWORD`) or `admin@localhost` with a generated password.
/// Used by `serve`, and by `demo-data` before it adds its demo users, so a database
/// filled with demo data still has an admin someone can sign in as.
pub fn ensure_admin(conn: &mut storage::DbConn, s: &Settings) -> Result<Bootstrap, StartupError> {
    if users::count(conn).map_err(StartupError::CreateAdmin)? > 0 {
        return Ok(Bootstrap::AlreadyHasUsers);
    }
    let (email, password, generated) = match (&s.admin_email, &s.admin_password) {
        (Some(e), Some(p)) => (e.clone(), p.expose_secret().to_owned(), false),
        (None, None) => (
            "admin@localhost".to_owned(),
            password::random_token(20).map_err(StartupError::CreateAdmin)?,
            true,
        ),
        _ => return Err(StartupError::AdminHalfConfigured),
    };
    let email = Email::parse(&email).map_err(|m| StartupError::AdminEmail(m.to_string()))?;
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(StartupError::AdminPasswordTooShort);
    }
    match create_user(
        conn,
        email.as_str(),
        &password,
        "Administrator",
        Role::Admin,
    ) {
        Ok(()) => {}
        // Another replica created it first.
        Err(AppError::Conflict { .. }) => return Ok(Bootstrap::AlreadyHasUsers),
        Err(e) => return Err(StartupError::CreateAdmin(e)),
    }
    let email = email.into_inner();
    Ok(if generated {
        Bootstrap::Generated { email, password }
    } else {
        Bootstrap::Created { email }
    })
}

/// Creates an active user (CLI and first start).
pub fn create_user(
    conn: &mut storage::DbConn,
    email: &str,
    password_text: &str,
    name: &str,
    role: Role,
) -> crate::error::AppResult<()> {
    let now = storage::now();
    let row = users::UserRow {
        id: storage::new_id(),
        email: email.to_owned(),
        name: name.to_owned(),
        password_hash: password::hash(password_text)?,
        role,
        team_id: None,
        active: true,
        version: 1,
        created_at: now,
        updated_at: now,
        created_by: None,
        updated_by: None,
        token_generation: 0,
    };
    storage::write_tx(conn, |conn| users::insert(conn, &row))
}

fn cors(settings: &Settings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::ACCEPT,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::CONTENT_DISPOSITION,
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
            http::idempotency::REPLAYED,
            http::rate_limit::RATELIMIT,
            http::rate_limit::RATELIMIT_POLICY,
        ])
        .max_age(3600);
    for origin in &settings.cors_origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// The whole application for one worker.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let cors = cors(&state.settings);
    App::new()
        .app_data(state)
        .configure(http::routes)
        .default_service(web::to(http::not_found))
        .wrap(from_fn(http::idempotency::idempotency))
        .wrap(from_fn(http::rate_limit::rate_limit))
        .wrap(from_fn(http::middleware::authenticate))
        .wrap(cors)
        .wrap(from_fn(http::capture::detach_origin))
        .wrap(from_fn(http::middleware::request_context))
        .wrap(tracing_actix_web::TracingLogger::<
            http::middleware::RequestSpan,
        >::new())
}

pub async fn serve(state: AppState) -> std::io::Result<()> {
    let bind = state.settings.bind.clone();
    let state = web::Data::new(state);
    tracing::info!(%bind, backend = ?state.backend, "stageflow listening");
    let limiters = state.clone();
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiters.housekeep_limiters();
        }
    });
    // Import jobs run in the background, one at a time per process.
    actix_web::rt::spawn(crate::imports::jobs::work(
        state.pool.clone(),
        Duration::from_secs(1),
    ));
    // Outbound webhooks: deliveries from the outbox, and the stalled-deal scan.
    match crate::integrations::delivery::Deliverer::new(&state.settings) {
        Ok(deliverer) => {
            actix_web::rt::spawn(crate::integrations::delivery::work(
                state.pool.clone(),
                state.backend,
                deliverer,
                Duration::from_millis(state.settings.webhook_poll_ms.max(10)),
                Duration::from_secs(state.settings.stall_scan_secs.max(1)),
            ));
        }
        Err(e) => tracing::error!(error = %e, "webhook deliveries cannot start"),
    }
    HttpServer::new(move || app(state.clone()))
        .bind(&bind)?
        .run()
        .await
}
