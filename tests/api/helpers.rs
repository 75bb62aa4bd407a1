//! Test harness: every test gets the real application over a fresh database, on SQLite
//! (a new file in a temp dir) or PostgreSQL (a new database, dropped afterwards).

use std::rc::Rc;

use actix_web::body::{to_bytes, BoxBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{test, web};
use diesel::{Connection, PgConnection, RunQueryDsl};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Value};
use stageflow::config::{SecretString, Settings};
use stageflow::domain::user::Role;
use stageflow::startup::{self, AppState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[actix_web::test]` per backend for each `async fn name(app: TestApp)`.
#[macro_export]
macro_rules! api_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

type CallFn = Rc<dyn Fn(actix_http::Request) -> LocalBoxFuture<'static, ServiceResponse<BoxBody>>>;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const PASSWORD: &str = "correct-horse-battery";

pub struct TestApp {
    call: CallFn,
    pub backend: Backend,
    pub state: web::Data<AppState>,
    pub admin_token: String,
    _db: TestDb,
}

pub enum TestDb {
    Sqlite(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self {
            TestDb::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            TestDb::Postgres { admin_url, name } => {
                if let Ok(mut conn) = PgConnection::establish(admin_url) {
                    let _ = diesel::sql_query(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ))
                    .execute(&mut conn);
                }
            }
        }
    }
}

fn pg_admin_url() -> String {
    std::env::var("STAGEFLOW_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Replaces the database name of a PostgreSQL URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

impl TestDb {
    /// `None` when PostgreSQL is unreachable outside CI; in CI that is a failure.
    pub fn create(backend: Backend) -> Option<(TestDb, String)> {
        let name = format!("sf_test_{}", uuid::Uuid::now_v7().simple());
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("temp dir");
                let url = format!("sqlite://{}", dir.join("test.db").display());
                Some((TestDb::Sqlite(dir), url))
            }
            Backend::Postgres => {
                let admin_url = pg_admin_url();
                let mut conn = match PgConnection::establish(&admin_url) {
                    Ok(c) => c,
                    Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                        panic!("PostgreSQL at {admin_url} is unreachable in CI: {e}")
                    }
                    Err(e) => {
                        eprintln!("skipping a PostgreSQL test: {admin_url} unreachable ({e})");
                        return None;
                    }
                };
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .expect("create test database");
                let url = with_database(&admin_url, &name);
                Some((TestDb::Postgres { admin_url, name }, url))
            }
        }
    }
}

pub fn test_settings(database_url: String) -> Settings {
    Settings {
        database_url,
        jwt_secret: Some(SecretString::from(
            "test-secret-that-is-long-enough-0123456789".to_owned(),
        )),
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(SecretString::from(PASSWORD.to_owned())),
        pool_size: 4,
        cors_origins: vec!["https://app.example.com".into()],
        login_attempts_per_minute: 1000,
        login_ip_attempts_per_minute: 1000,
        ..Settings::default()
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(
        backend: Backend,
        tweak: impl FnOnce(&mut Settings),
    ) -> Option<TestApp> {
        let (db, url) = TestDb::create(backend)?;
        let mut settings = test_settings(url);
        tweak(&mut settings);
        let state = web::block(move || {
            let state = startup::build_state(settings).expect("state");
            startup::bootstrap_admin(&state).expect("first admin");
            state
        })
        .await
        .expect("blocking");
        let state = web::Data::new(state);
        let service = Rc::new(test::init_service(startup::app(state.clone())).await);
        let call: CallFn = Rc::new(move |req| {
            let service = service.clone();
            Box::pin(async move {
                test::call_service(&*service, req)
                    .await
                    .map_into_boxed_body()
            })
        });
        let mut app = TestApp {
            call,
            backend,
            state,
            admin_token: String::new(),
            _db: db,
        };
        app.admin_token = app.login(ADMIN_EMAIL, PASSWORD).await;
        Some(app)
    }

    /// A fresh app on the same backend with other settings; this one is dropped.
    pub async fn respawn_with(self, tweak: impl FnOnce(&mut Settings)) -> Option<TestApp> {
        let backend = self.backend;
        drop(self);
        Self::spawn_with(backend, tweak).await
    }

    pub fn req(&self, method: Method, path: &str) -> Req<'_> {
        Req {
            app: self,
            what: format!("{method} {path}"),
            inner: test::TestRequest::default().method(method).uri(path),
        }
    }

    pub fn get(&self, path: &str) -> Req<'_> {
        self.req(Method::GET, path)
    }
    pub fn post(&self, path: &str) -> Req<'_> {
        self.req(Method::POST, path)
    }
    pub fn patch(&self, path: &str) -> Req<'_> {
        self.req(Method::PATCH, path)
    }
    pub fn put(&self, path: &str) -> Req<'_> {
        self.req(Method::PUT, path)
    }
    pub fn delete(&self, path: &str) -> Req<'_> {
        self.req(Method::DELETE, path)
    }

    /// As an admin: a DELETE of `path` at version `stale` is 412 `version_conflict`; at
    /// `current` it is 204, after which the record is not found.
    pub async fn delete_only_at_version(&self, path: &str, stale: i32, current: i32) {
        self.delete(path)
            .admin()
            .header("if-match", &format!("\"{stale}\""))
            .send()
            .await
            .problem(412, "version_conflict");
        self.delete(path)
            .admin()
            .header("if-match", &format!("\"{current}\""))
            .expect(204)
            .await;
        self.get(path)
            .admin()
            .send()
            .await
            .problem(404, "not_found");
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let res = self
            .post("/api/v1/auth/token")
            .json(json!({"email": email, "password": password}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "login failed: {}", res.body);
        res.body["access_token"].as_str().expect("token").to_owned()
    }

    /// Creates a user through the API as admin and returns `(id, token)`.
    pub async fn user(&self, email: &str, role: Role, team_id: Option<&str>) -> (String, String) {
        let res = self
            .post("/api/v1/users")
            .token(&self.admin_token)
            .json(json!({"email": email, "password": PASSWORD, "name": email, "role": role, "team_id": team_id}))
            .created()
            .await;
        let id = res.body["id"].as_str().unwrap().to_owned();
        (id, self.login(email, PASSWORD).await)
    }

    pub async fn team(&self, name: &str, manager_id: Option<&str>) -> String {
        self.post("/api/v1/teams")
            .token(&self.admin_token)
            .json(json!({"name": name, "manager_id": manager_id}))
            .created()
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn pipeline_from_template(&self, template: &str) -> Value {
        self.post("/api/v1/pipelines/from-template")
            .token(&self.admin_token)
            .json(json!({"template": template}))
            .created()
            .await
            .body
    }
}

pub struct Req<'a> {
    app: &'a TestApp,
    /// Method and path, for the message of a failed `expect`.
    what: String,
    inner: test::TestRequest,
}

impl Req<'_> {
    pub fn token(mut self, token: &str) -> Self {
        self.inner = self
            .inner
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
        self
    }

    pub fn admin(self) -> Self {
        let token = self.app.admin_token.clone();
        self.token(&token)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.inner = self
            .inner
            .insert_header((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends the request from this client address (the socket peer).
    pub fn peer(mut self, addr: &str) -> Self {
        self.inner = self.inner.peer_addr(addr.parse().expect("socket address"));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.inner = self.inner.set_json(body);
        self
    }

    pub fn raw(mut self, content_type: &str, body: impl Into<web::Bytes>) -> Self {
        self.inner = self
            .inner
            .insert_header((header::CONTENT_TYPE, content_type.to_owned()))
            .set_payload(body.into());
        self
    }

    pub async fn send(self) -> Res {
        let res = (self.app.call)(self.inner.to_request()).await;
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = to_bytes(res.into_body()).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            text,
        }
    }

    /// Sends the request and asserts the answer's status, so an arrange step that
    /// fails stops the test there, with the request and the body in the message.
    pub async fn expect(self, status: u16) -> Res {
        let what = self.what.clone();
        let res = self.send().await;
        assert_eq!(res.status.as_u16(), status, "{what}: {}", res.text);
        res
    }

    /// [`Req::expect`] 200.
    pub async fn send_ok(self) -> Res {
        self.expect(200).await
    }

    /// [`Req::expect`] 201.
    pub async fn created(self) -> Res {
        self.expect(201).await
    }
}

#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with `status` and `code`; returns the body.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.text
        );
        assert_eq!(self.body["code"], code, "body: {}", self.text);
        assert_eq!(self.body["status"], status);
        &self.body
    }

    /// The `field`s named in a problem's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The ids of a list page's `data`, in order.
    pub fn ids(&self) -> Vec<String> {
        self.body["data"]
            .as_array()
            .map(|a| a.iter().map(id_of).collect())
            .unwrap_or_default()
    }
}

#[::core::prelude::v1::test]
fn database_names_are_swapped_in_urls() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}

impl TestApp {
    /// Runs SQL directly (arranging time-based scenarios such as stalled deals or a
    /// back-dated stage log), then rebuilds the report aggregates from the log, as an
    /// operator would after editing history by hand.
    pub fn exec_sql(&self, statement: &str) {
        let mut conn = self.state.pool.get().expect("connection");
        diesel::sql_query(statement)
            .execute(&mut *conn)
            .expect("sql");
        self.rebuild_aggregates();
    }

    /// Recomputes every report aggregate from the stage log and the activities.
    pub fn rebuild_aggregates(&self) {
        let mut conn = self.state.pool.get().expect("connection");
        stageflow::storage::aggregates::refresh(
            &mut conn,
            stageflow::storage::aggregates::Target::All,
        )
        .expect("rebuild");
    }

    /// The rows of a one-column text query, sorted.
    pub fn texts(&self, query: &str) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct T {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let mut conn = self.state.pool.get().expect("connection");
        let mut rows: Vec<String> = diesel::sql_query(query)
            .load::<T>(&mut *conn)
            .expect("query")
            .into_iter()
            .map(|t| t.v)
            .collect();
        rows.sort();
        rows
    }

    /// `SELECT COUNT(*)` over a table with an optional WHERE clause.
    pub fn count(&self, table: &str, condition: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.state.pool.get().expect("connection");
        let where_clause = if condition.is_empty() {
            String::new()
        } else {
            format!(" WHERE {condition}")
        };
        diesel::sql_query(format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table}{where_clause}"
        ))
        .get_result::<N>(&mut *conn)
        .expect("count")
        .n
    }
}

/// The id of the stage named `name` in a pipeline body.
pub fn stage_id(pipeline: &Value, name: &str) -> String {
    pipeline["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}
