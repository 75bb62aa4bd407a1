//! Request-path benchmark: `GET /api/v1/opportunities/{id}` on the real stageflow server
//! beside a minimal actix-web + diesel server (the "floor") that reads the same row by id
//! from the same database through an r2d2 pool of the same size and returns it as JSON.
//! The ratio says how much of the floor's rate the whole stageflow request path keeps
//! (request context, CORS, credential resolution, rate limit, idempotency check, the
//! handler's visibility filter and stage lookup, response shaping).
//!
//! Both servers run in this process on 127.0.0.1, one after the other, with the same
//! number of actix workers; stageflow is built like `startup::serve` builds it (the
//! production `startup::app`, logging at warn, default settings except the per-credential
//! rate limit, which is raised so the single benchmark token is never refused — the
//! limiter still counts every request). The load comes from a small keep-alive HTTP/1.1
//! client in this file (tokio): `--connections` connections, each sending its next
//! request as soon as the previous answer is read, for `--seconds` seconds after one
//! second of warm-up, cycling over a few thousand real deal ids. stageflow is called with
//! the token of an admin who signed in through `POST /api/v1/auth/token`.
//!
//!   cargo bench --bench request_path -- --deals 100000 --backend both --seconds 10 --connections 64
//!
//! The floor is measured twice: "floor" reads the row with the statement shape
//! stageflow's key lookups use (`storage::sql::key`, no bound `LIMIT`), "floor/first"
//! with diesel's usual `find(id).first()`, which SQLite plans again on every call (its
//! STAT4 samples make a bound key, and a bound `LIMIT`, count as plan-changing values).
//!
//! Other flags: `--reuse` keeps an already loaded database of the same size, `--workers W`
//! (server workers, default: the number of CPUs), `--client-threads T` (default 2),
//! `--rounds R` (measure each server R times, alternating, and keep the best).
//! PostgreSQL comes from STAGEFLOW_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use clap::Parser;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use stageflow::config::{SecretString, Settings};
use stageflow::demo::{generate, DemoOptions};
use stageflow::domain::user::Role;
use stageflow::startup;
use stageflow::storage::schema::{opportunities, users};
use stageflow::storage::sql::key;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "bench-password-1";

/// Requests per second of `GET /api/v1/opportunities/{id}` on stageflow beside a
/// minimal server reading the same row.
#[derive(Parser)]
struct Args {
    /// Deals to load.
    #[arg(long, default_value_t = 100_000)]
    deals: usize,
    /// Seconds to measure each server (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Keep-alive client connections.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    connections: usize,
    /// Server workers.
    #[arg(long, default_value_t = cpus(), value_parser = at_least_one)]
    workers: usize,
    /// Threads of the load client.
    #[arg(long, default_value_t = 2, value_parser = at_least_one)]
    client_threads: usize,
    /// Measure each server this many times, alternating, and keep the best.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    rounds: usize,
    /// Distinct deal ids the requests cycle over.
    #[arg(long, default_value_t = 4000, value_parser = at_least_one)]
    ids: usize,
    #[command(flatten)]
    common: support::Common,
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A count where 0 means 1.
fn at_least_one(v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .map(|n| n.max(1))
        .map_err(|e| e.to_string())
}

/// Loads the deals (unless `--reuse` finds them), adds the admin the benchmark signs in
/// as, and returns the stageflow state and a spread of real deal ids.
fn prepare(backend: &str, a: &Args) -> (Settings, startup::AppState, Vec<String>) {
    let mut settings = Settings {
        database_url: support::database_url(
            backend,
            "stageflow_request_bench",
            a.deals,
            a.common.reuse,
        ),
        log: "warn".into(),
        rate_limit_per_minute: 1_000_000_000,
        ..Settings::default()
    };
    settings.jwt_secret = Some(SecretString::from(
        "bench-secret-bench-secret-bench-secret-0".to_owned(),
    ));
    let state = startup::build_state(settings.clone()).expect("state");
    let mut conn = state.pool.get().expect("connection");
    let have: i64 = opportunities::table
        .count()
        .get_result(&mut conn)
        .unwrap_or(0);
    if !(a.common.reuse && have >= a.deals as i64) {
        println!("[{backend}] generating {} deals …", a.deals);
        let opts = DemoOptions {
            opportunities: a.deals,
            seed: 42,
        };
        let s = generate(&mut conn, &opts, &mut std::io::stdout()).expect("demo data");
        println!(
            "[{backend}] {} deals, {} transitions, {} activities in {:.1} s",
            s.opportunities, s.transitions, s.activities, s.seconds
        );
    }
    let exists: i64 = users::table
        .filter(users::email.eq(EMAIL))
        .count()
        .get_result(&mut conn)
        .expect("users");
    if exists == 0 {
        startup::create_user(&mut conn, EMAIL, PASSWORD, "Bench", Role::Admin).expect("user");
    }
    let all: Vec<String> = opportunities::table
        .select(opportunities::id)
        .order(opportunities::id)
        .load(&mut conn)
        .expect("ids");
    let step = (all.len() / a.ids).max(1);
    let ids = all.into_iter().step_by(step).take(a.ids).collect();
    drop(conn);
    (settings, state, ids)
}

// ---------------------------------------------------------------------------------------
// The floor: one handler, the row by id through an r2d2 pool, serialized as it is stored.

#[derive(Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = opportunities)]
struct Deal {
    id: String,
    name: String,
    pipeline_id: String,
    stage_id: String,
    status: String,
    amount_minor: Option<i64>,
    currency: String,
    probability: Option<i32>,
    expected_close_date: Option<chrono::NaiveDate>,
    account_id: Option<String>,
    contact_id: Option<String>,
    lead_id: Option<String>,
    owner_id: String,
    source: Option<String>,
    industry: Option<String>,
    company_size: Option<String>,
    region: Option<String>,
    tags: String,
    next_action_text: Option<String>,
    next_action_due_at: Option<chrono::NaiveDateTime>,
    lost_reason_id: Option<String>,
    lost_note: Option<String>,
    stage_entered_at: chrono::NaiveDateTime,
    last_activity_at: Option<chrono::NaiveDateTime>,
    closed_at: Option<chrono::NaiveDateTime>,
    external_id: Option<String>,
    custom: String,
    version: i32,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
    created_by: Option<String>,
    updated_by: Option<String>,
}

enum FloorPool {
    Pg(Pool<ConnectionManager<PgConnection>>),
    Sqlite(Pool<ConnectionManager<SqliteConnection>>),
}

fn floor_pool(url: &str, size: u32) -> FloorPool {
    match url.strip_prefix("sqlite://") {
        Some(path) => FloorPool::Sqlite(
            Pool::builder()
                .max_size(size)
                .build(ConnectionManager::new(path))
                .expect("floor pool"),
        ),
        None => FloorPool::Pg(
            Pool::builder()
                .max_size(size)
                .build(ConnectionManager::new(url))
                .expect("floor pool"),
        ),
    }
}

/// The row by id, with the statement shape stageflow's key lookups use (see
/// `storage::sql::key`), so the floor is a floor.
async fn floor_deal(pool: web::Data<FloorPool>, id: web::Path<String>) -> HttpResponse {
    floor_answer(pool, id.into_inner(), false).await
}

/// The row by id written as diesel code usually is, `find(id).first()`: on SQLite the
/// bound key and `LIMIT` make it be planned again on every call.
async fn floor_deal_first(pool: web::Data<FloorPool>, id: web::Path<String>) -> HttpResponse {
    floor_answer(pool, id.into_inner(), true).await
}

async fn floor_answer(pool: web::Data<FloorPool>, id: String, first: bool) -> HttpResponse {
    let found = web::block(move || -> Result<Option<Deal>, String> {
        let by_key = opportunities::table.filter(opportunities::id.eq(key(&id)));
        let by_find = opportunities::table.find(stageflow::storage::uid::uid(&id));
        match &**pool {
            FloorPool::Pg(p) => {
                let conn = &mut p.get().map_err(|e| e.to_string())?;
                match first {
                    true => by_find.select(Deal::as_select()).first(conn),
                    false => by_key.select(Deal::as_select()).get_result(conn),
                }
            }
            FloorPool::Sqlite(p) => {
                let conn = &mut p.get().map_err(|e| e.to_string())?;
                match first {
                    true => by_find.select(Deal::as_select()).first(conn),
                    false => by_key.select(Deal::as_select()).get_result(conn),
                }
            }
        }
        .optional()
        .map_err(|e| e.to_string())
    })
    .await;
    match found {
        Ok(Ok(Some(deal))) => HttpResponse::Ok().json(deal),
        Ok(Ok(None)) => HttpResponse::NotFound().finish(),
        _ => HttpResponse::InternalServerError().finish(),
    }
}

// ---------------------------------------------------------------------------------------
// Servers

struct Running {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

impl Running {
    fn stop(self, rt: &tokio::runtime::Runtime) {
        rt.block_on(self.handle.stop(true));
        let _ = self.thread.join();
    }
}

/// Runs an actix server on its own thread (as `main` runs `startup::serve`).
fn spawn_server<F>(make: F) -> Running
where
    F: FnOnce() -> std::io::Result<actix_web::dev::Server> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = make().expect("server");
            tx.send(server.handle()).expect("handle");
            let _ = server.await;
        })
    });
    let handle = rx.recv().expect("server started");
    Running {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        handle,
        thread,
    }
}

fn start_stageflow(state: startup::AppState, workers: usize) -> Running {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = listener.local_addr().expect("addr");
    let state = web::Data::new(state);
    let mut running = spawn_server(move || {
        Ok(HttpServer::new(move || startup::app(state.clone()))
            .workers(workers)
            .listen(listener)?
            .run())
    });
    running.addr = addr;
    running
}

fn start_floor(url: &str, pool_size: u32, workers: usize) -> Running {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = listener.local_addr().expect("addr");
    let pool = web::Data::new(floor_pool(url, pool_size));
    let mut running = spawn_server(move || {
        Ok(HttpServer::new(move || {
            App::new()
                .app_data(pool.clone())
                .route("/api/v1/opportunities/{id}", web::get().to(floor_deal))
                .route("/first/opportunities/{id}", web::get().to(floor_deal_first))
        })
        .workers(workers)
        .listen(listener)?
        .run())
    });
    running.addr = addr;
    running
}

// ---------------------------------------------------------------------------------------
// The load: keep-alive HTTP/1.1 connections, each with one request in flight.

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    /// Microseconds per successful request.
    latencies: Vec<u32>,
}

/// Reads one response; returns its status.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<u16> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("head"))?;
            let status: u16 = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("status"))?;
            let length = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .ok_or_else(|| bad("no content-length"))?;
            let total = end + 4 + length;
            while buf.len() < total {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(bad("closed"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn connection(
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    start: usize,
    measure_from: Instant,
    until: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        tally.failed += 1;
        return tally;
    };
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut i = start;
    loop {
        let sent = Instant::now();
        if sent >= until {
            break;
        }
        let request = &requests[i % requests.len()];
        i += 1;
        let status = match stream.write_all(request).await {
            Ok(()) => read_response(&mut stream, &mut buf).await,
            Err(e) => Err(e),
        };
        let done = Instant::now();
        if sent < measure_from {
            continue;
        }
        match status {
            Ok(200) => {
                tally.ok += 1;
                tally
                    .latencies
                    .push(done.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
            }
            Ok(_) => tally.failed += 1,
            Err(_) => {
                tally.failed += 1;
                break;
            }
        }
    }
    tally
}

struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
}

fn request_bytes(
    addr: SocketAddr,
    prefix: &str,
    ids: &[String],
    token: Option<&str>,
) -> Vec<Vec<u8>> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    ids.iter()
        .map(|id| {
            format!(
                "GET {prefix}/opportunities/{id} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n{auth}\r\n"
            )
            .into_bytes()
        })
        .collect()
}

fn drive(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    requests: &Arc<Vec<Vec<u8>>>,
    a: &Args,
) -> Figures {
    let warm_up = Duration::from_secs(1);
    let measured = Duration::from_secs(a.seconds);
    let tallies = rt.block_on(async {
        let measure_from = Instant::now() + warm_up;
        let until = measure_from + measured;
        let tasks: Vec<_> = (0..a.connections)
            .map(|c| {
                let start = c * requests.len() / a.connections;
                tokio::spawn(connection(
                    addr,
                    requests.clone(),
                    start,
                    measure_from,
                    until,
                ))
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.expect("client task"));
        }
        all
    });
    let mut latencies: Vec<u32> = Vec::new();
    let (mut ok, mut failed) = (0, 0);
    for t in tallies {
        ok += t.ok;
        failed += t.failed;
        latencies.extend(t.latencies);
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(latencies[i]) / 1000.0
    };
    Figures {
        rps: ok as f64 / measured.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        failed,
    }
}

/// Signs in as the benchmark admin, as a client would.
fn sign_in(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> String {
    rt.block_on(async {
        let body = serde_json::json!({ "email": EMAIL, "password": PASSWORD }).to_string();
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "POST /api/v1/auth/token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("answer");
        let text = String::from_utf8_lossy(&answer);
        let json = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let value: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|_| panic!("sign-in failed: {text}"));
        value["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    })
}

fn print(name: &str, f: &Figures) {
    println!(
        "  {name:<10} {:>10.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms{}",
        f.rps,
        f.p50_ms,
        f.p99_ms,
        if f.failed > 0 {
            format!("   ({} failed)", f.failed)
        } else {
            String::new()
        }
    );
}

fn main() {
    let a = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.client_threads)
        .enable_all()
        .build()
        .expect("client runtime");
    stageflow::telemetry::init(&Settings {
        log: "warn".into(),
        ..Settings::default()
    });
    let mut summary = Vec::new();
    for backend in a.common.backends() {
        let (settings, state, ids) = prepare(backend, &a);
        let pool_size = settings.pool_size;
        let stageflow = start_stageflow(state, a.workers);
        let floor = start_floor(&settings.database_url, pool_size, a.workers);
        let token = sign_in(&rt, stageflow.addr);
        let targets = [
            (
                "floor/first",
                floor.addr,
                request_bytes(floor.addr, "/first", &ids, None),
            ),
            (
                "floor",
                floor.addr,
                request_bytes(floor.addr, "/api/v1", &ids, None),
            ),
            (
                "stageflow",
                stageflow.addr,
                request_bytes(stageflow.addr, "/api/v1", &ids, Some(&token)),
            ),
        ]
        .map(|(name, addr, requests)| (name, addr, Arc::new(requests)));
        println!(
            "\n[{backend}] GET /api/v1/opportunities/{{id}} over {} ids of {} deals: {} workers, pool {}, {} connections, {} s, {} client threads",
            ids.len(),
            a.deals,
            a.workers,
            pool_size,
            a.connections,
            a.seconds,
            a.client_threads
        );
        let mut best: [Option<Figures>; 3] = [None, None, None];
        for _ in 0..a.rounds {
            for (i, (name, addr, requests)) in targets.iter().enumerate() {
                let f = drive(&rt, *addr, requests, &a);
                print(name, &f);
                if best[i].as_ref().is_none_or(|b| f.rps > b.rps) {
                    best[i] = Some(f);
                }
            }
        }
        let [first, floor_best, ours] = best.map(|f| f.expect("a round"));
        println!(
            "  stageflow / floor {:.0} %, / floor/first {:.0} %{}",
            100.0 * ours.rps / floor_best.rps.max(1e-9),
            100.0 * ours.rps / first.rps.max(1e-9),
            if a.rounds > 1 { " (best rounds)" } else { "" }
        );
        summary.push((backend, first, floor_best, ours));
        stageflow.stop(&rt);
        floor.stop(&rt);
    }
    println!("\nreq/s (p50 / p99 ms)");
    println!(
        "{:<10} {:>24} {:>24} {:>24} {:>8} {:>14}",
        "backend", "floor/first", "floor", "stageflow", "/ floor", "/ floor/first"
    );
    let cell = |f: &Figures| format!("{:.0} ({:.1} / {:.1})", f.rps, f.p50_ms, f.p99_ms);
    for (backend, first, floor, ours) in summary {
        println!(
            "{backend:<10} {:>24} {:>24} {:>24} {:>7.0} % {:>13.0} %",
            cell(&first),
            cell(&floor),
            cell(&ours),
            100.0 * ours.rps / floor.rps.max(1e-9),
            100.0 * ours.rps / first.rps.max(1e-9),
        );
    }
}
