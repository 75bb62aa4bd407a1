//! Webhook delivery throughput: events written to the outbox (in transactions of 500,
//! as a busy server would), then delivered by the worker to a local receiver until
//! none is pending. Prints events per second for writing and for delivering — over
//! many records (deliveries go out in parallel) and over one record (strictly in
//! order) — with one and with two workers claiming concurrently.
//!
//! ```text
//! cargo bench --bench webhooks -- --events 20000 --backend both
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, App, HttpResponse, HttpServer};
use clap::Parser;
use stageflow::config::{SecretString, Settings};
use stageflow::domain::integration::EventType;
use stageflow::integrations::delivery::{run_once, Deliverer};
use stageflow::integrations::signing::new_webhook_secret;
use stageflow::startup::{build_state, AppState};
use stageflow::storage::types::JsonText;
use stageflow::storage::webhooks::{self as outbox, SubscriptionRow};
use stageflow::storage::{self, write_tx, Repo};

mod support;

#[derive(Parser)]
struct Args {
    /// Events about distinct records.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Events about one record (delivered one after another).
    #[arg(long, default_value_t = 1_000)]
    one_record: usize,
    #[command(flatten)]
    common: support::Common,
}

fn payload(i: usize) -> String {
    // About the size of a lead as the API shows it.
    serde_json::json!({
        "id": format!("msg_{i}"), "type": "lead.created", "occurred_at": "2026-12-01T00:00:00Z",
        "data": {"id": format!("lead-{i}"), "first_name": "Anna", "last_name": "Li",
                 "email": format!("anna{i}@example.com"), "company": "云启科技", "industry": "制造业",
                 "region": "华东", "source": "web_form", "status": "new", "score": 35,
                 "bant": {"budget": "approved", "authority": "unknown", "need": "confirmed", "timeline": "unknown"},
                 "tags": ["官网", "2026 展会"], "custom": {"budget": "50万"}, "version": 1,
                 "owner_id": "0191d9a0-0000-7000-8000-000000000000",
                 "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z"},
        "previous": {}
    })
    .to_string()
}

fn write_events(state: &AppState, sub: &str, n: usize, one_record: bool) -> f64 {
    let started = Instant::now();
    let mut conn = state.pool.get().expect("connection");
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        write_tx(&mut conn, |c| {
            for &i in chunk {
                let record = if one_record {
                    "the-record".to_owned()
                } else {
                    format!("lead-{i}")
                };
                let id = format!("msg_{}_{i}", if one_record { "one" } else { "many" });
                outbox::enqueue(
                    c,
                    &id,
                    "lead.created",
                    &record,
                    storage::now(),
                    &payload(i),
                    &[sub],
                )?;
            }
            Ok::<_, stageflow::error::AppError>(())
        })
        .expect("write events");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn deliver(state: &AppState, workers: usize) -> f64 {
    let started = Instant::now();
    let deliverers: Vec<Deliverer> = (0..workers)
        .map(|_| Deliverer::new(&state.settings).expect("deliverer"))
        .collect();
    loop {
        let rounds = deliverers
            .iter()
            .map(|d| run_once(&state.pool, state.backend, d));
        let sent: usize = futures_util::future::join_all(rounds)
            .await
            .into_iter()
            .map(|r| r.expect("round"))
            .sum();
        if sent == 0 {
            let mut conn = state.pool.get().expect("connection");
            if outbox::pending_count(&mut conn).expect("count") == 0 {
                break;
            }
        }
    }
    started.elapsed().as_secs_f64()
}

fn main() {
    let a = Args::parse();
    actix_web::rt::System::new().block_on(async move {
        let received = Arc::new(AtomicUsize::new(0));
        let counter = web::Data::new(received.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(counter.clone()).default_service(web::to(
                |c: web::Data<Arc<AtomicUsize>>, _body: web::Bytes| async move {
                    c.fetch_add(1, Ordering::Relaxed);
                    HttpResponse::NoContent().finish()
                },
            ))
        })
        .workers(2)
        .bind(("127.0.0.1", 0))
        .expect("bind the receiver");
        let url = format!("http://127.0.0.1:{}/hooks", server.addrs()[0].port());
        actix_web::rt::spawn(server.run());
        let mut summary = Vec::new();
        for backend in a.common.backends() {
            for workers in [1, 2] {
                let db = support::database_url(backend, &format!("bench_webhooks_{workers}"), a.events, false);
                let settings = Settings {
                    database_url: db,
                    jwt_secret: Some(SecretString::from("bench-secret-that-is-long-enough-0123456789".to_owned())),
                    webhook_allowed_networks: "127.0.0.0/8".into(),
                    pool_size: 8,
                    ..Settings::default()
                };
                let state = web::block(move || build_state(settings).expect("state"))
                    .await
                    .expect("blocking");
                let now = storage::now();
                let sub = SubscriptionRow {
                    id: storage::new_id(),
                    url: url.clone(),
                    description: None,
                    events: JsonText::new(vec![EventType::LeadCreated]).unwrap(),
                    pipeline_id: None,
                    to_stage_id: None,
                    owner_id: None,
                    team_id: None,
                    secret: new_webhook_secret().unwrap(),
                    active: true,
                    disabled_reason: None,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                    created_by: "bench".into(),
                };
                sub.insert_row(&mut state.pool.get().unwrap()).unwrap();
                for (what, n, one) in [("many records", a.events, false), ("one record", a.one_record, true)] {
                    let before = received.load(Ordering::Relaxed);
                    let written = write_events(&state, &sub.id, n, one);
                    let seconds = deliver(&state, workers).await;
                    let got = received.load(Ordering::Relaxed) - before;
                    assert_eq!(got, n, "every event delivered once");
                    let line = format!(
                        "{backend:<9} {workers} worker(s)  {what:<12} {n:>7} events: outbox write {written:>7.0}/s, delivered {:>6.0}/s ({seconds:.1} s)",
                        n as f64 / seconds
                    );
                    println!("{line}");
                    summary.push(line);
                }
            }
        }
        println!("\nsummary");
        for line in summary {
            println!("  {line}");
        }
    });
}
