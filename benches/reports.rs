//! Report benchmark: loads N synthetic opportunities (default 1,000,000, ~4–5 stage
//! transitions each) into a fresh database and prints, for every report, the time of
//! the HTTP endpoint (in process, JSON included) beside the time of hand-written SQL
//! computing the same numbers on the same database. Median of several runs.
//!
//! Two SQL columns: "SQL ms" reads the same tables as the endpoint (the maintained
//! report aggregates where the endpoint uses them) and gives the ratio; "log SQL ms"
//! computes the same from the stage log and activities alone, as one would without the
//! aggregates.
//!
//!   cargo bench --bench reports -- --opportunities 1000000 --backend both
//!
//! `--reuse` keeps an already loaded database (same size) instead of regenerating it.
//! PostgreSQL comes from STAGEFLOW_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres).

mod support;

use support::baselines::{baseline, Variant, Who};

use std::time::{Duration, Instant};

use actix_web::{test, web};
use clap::Parser;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use stageflow::config::{SecretString, Settings};
use stageflow::demo::{generate, DemoOptions};
use stageflow::domain::opportunity::ActivityType;
use stageflow::domain::user::Role;
use stageflow::startup;
use stageflow::storage::aggregates::{first_activity_column, rank};
use stageflow::storage::DbConn;

/// Times every report endpoint beside hand-written SQL for the same numbers.
#[derive(Parser)]
struct Args {
    /// Opportunities to load.
    #[arg(long, default_value_t = 1_000_000)]
    opportunities: usize,
    /// Runs per measurement (the median is shown).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Instead of the default table, time every variant: each report × mode × range × each
    /// `group_by` × admin, manager and rep scoping (best of two), with a verdict against
    /// 1 s on PostgreSQL and 2 s on SQLite.
    #[arg(long)]
    variants: bool,
    /// With `--variants`: only the variants whose label contains one of these
    /// (comma-separated), e.g. `--only "funnel period range,stage-durations by"`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    #[command(flatten)]
    common: support::Common,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut DbConn, table: &str) -> i64 {
    diesel::sql_query(format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table}"))
        .get_result::<Count>(conn)
        .map(|c| c.n)
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Hand-written SQL for each report, as one would type it at psql/sqlite3.
fn hand_sql(backend: &str, pipeline: &str) -> Vec<(&'static str, Vec<String>)> {
    let pg = backend == "postgres";
    let p = format!("'{pipeline}'");
    let secs = |later: &str, earlier: &str| {
        if pg {
            format!("date_part('epoch', {later} - {earlier})")
        } else {
            format!("(julianday({later}) - julianday({earlier})) * 86400.0")
        }
    };
    let now = if pg {
        "now() AT TIME ZONE 'utc'".to_owned()
    } else {
        "datetime('now')".to_owned()
    };
    let stalled = if pg {
        "o.stage_entered_at + s.stalled_after_days * INTERVAL '1 day' < now() AT TIME ZONE 'utc' OR COALESCE(o.last_activity_at, o.created_at) + s.stalled_after_days * INTERVAL '1 day' < now() AT TIME ZONE 'utc'".to_owned()
    } else {
        "julianday(o.stage_entered_at) + s.stalled_after_days < julianday('now') OR julianday(COALESCE(o.last_activity_at, o.created_at)) + s.stalled_after_days < julianday('now')".to_owned()
    };
    let month = if pg {
        "to_char(o.expected_close_date, 'YYYY-MM')"
    } else {
        "strftime('%Y-%m', o.expected_close_date)"
    };
    let within = if pg {
        "n.entered_at <= t.entered_at + INTERVAL '14 days'"
    } else {
        "julianday(n.entered_at) <= julianday(t.entered_at) + 14"
    };
    let act_within = if pg {
        "a.completed_at <= st.entered_at + INTERVAL '14 days'"
    } else {
        "julianday(a.completed_at) <= julianday(st.entered_at) + 14"
    };
    let durations = if pg {
        format!(
            "SELECT stage_id, COUNT(*), AVG(d), percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.9) WITHIN GROUP (ORDER BY d), MAX(d) \
             FROM (SELECT t.to_stage_id AS stage_id, {} AS d FROM (SELECT to_stage_id, entered_at, LEAD(entered_at) OVER (PARTITION BY opportunity_id ORDER BY entered_at, id) AS left_at \
             FROM stage_transitions WHERE pipeline_id = {p}) t WHERE t.left_at IS NOT NULL) x GROUP BY stage_id",
            secs("t.left_at", "t.entered_at")
        )
    } else {
        format!(
            "WITH v AS (SELECT to_stage_id AS stage_id, {} AS d FROM (SELECT to_stage_id, entered_at, LEAD(entered_at) OVER (PARTITION BY opportunity_id ORDER BY entered_at, id) AS left_at \
             FROM stage_transitions WHERE pipeline_id = {p}) t WHERE left_at IS NOT NULL), \
             r AS (SELECT stage_id, d, ROW_NUMBER() OVER (PARTITION BY stage_id ORDER BY d) - 1 AS rn, COUNT(*) OVER (PARTITION BY stage_id) AS n FROM v) \
             SELECT stage_id, MAX(n), AVG(d), MAX(CASE WHEN rn = (n - 1) / 2 THEN d END), MAX(CASE WHEN rn = (n - 1) * 9 / 10 THEN d END), MAX(d) FROM r GROUP BY stage_id",
            secs("left_at", "entered_at")
        )
    };
    let open_ages = format!(
        "SELECT o.stage_id, COUNT(*), AVG({}) FROM opportunities o JOIN stages s ON s.id = o.stage_id WHERE o.pipeline_id = {p} AND o.status = 'open' GROUP BY o.stage_id",
        secs(&now, "o.stage_entered_at")
    );
    vec![
        ("funnel", vec![
            format!("SELECT max_rank, won, COUNT(*) FROM (SELECT t.opportunity_id, MAX({}) AS max_rank, MAX(CASE WHEN s.kind = 'won' THEN 1 ELSE 0 END) AS won FROM stage_transitions t JOIN stages s ON s.id = t.to_stage_id WHERE t.pipeline_id = {p} GROUP BY t.opportunity_id) d GROUP BY max_rank, won", rank("s")),
            format!("SELECT to_stage_id, COUNT(DISTINCT opportunity_id) FROM stage_transitions WHERE pipeline_id = {p} GROUP BY to_stage_id"),
            format!("SELECT t.from_stage_id, COUNT(*) FROM opportunities o JOIN stage_transitions t ON t.opportunity_id = o.id AND t.to_stage_id = o.stage_id AND t.entered_at = o.stage_entered_at WHERE o.status = 'lost' AND o.pipeline_id = {p} GROUP BY t.from_stage_id"),
        ]),
        ("stage-durations", vec![durations, open_ages]),
        ("stalled", vec![
            format!("SELECT COUNT(*) FROM opportunities o JOIN stages s ON s.id = o.stage_id WHERE o.status = 'open' AND s.stalled_after_days IS NOT NULL AND ({stalled})"),
            format!("SELECT o.id, o.name, s.name, u.name FROM opportunities o JOIN stages s ON s.id = o.stage_id LEFT JOIN users u ON u.id = o.owner_id WHERE o.status = 'open' AND s.stalled_after_days IS NOT NULL AND ({stalled}) ORDER BY o.stage_entered_at, o.id LIMIT 200"),
        ]),
        ("loss-reasons", vec![
            "SELECT t.from_stage_id, o.lost_reason_id, COUNT(*), SUM(o.amount_minor) FROM opportunities o JOIN stage_transitions t ON t.opportunity_id = o.id AND t.to_stage_id = o.stage_id AND t.entered_at = o.stage_entered_at WHERE o.status = 'lost' GROUP BY t.from_stage_id, o.lost_reason_id".to_owned(),
        ]),
        ("activity-effectiveness", vec![
            format!("SELECT s.id, COUNT(*), SUM(CASE WHEN n.id IS NOT NULL AND {} > {} AND {within} THEN 1 ELSE 0 END) \
             FROM (SELECT id, to_stage_id, entered_at, LEAD(id) OVER (PARTITION BY opportunity_id ORDER BY entered_at, id) AS next_id FROM stage_transitions WHERE pipeline_id = {p}) t \
             JOIN stages s ON s.id = t.to_stage_id LEFT JOIN stage_transitions n ON n.id = t.next_id LEFT JOIN stages ns ON ns.id = n.to_stage_id WHERE s.kind = 'open' GROUP BY s.id", rank("ns"), rank("s")),
            format!("WITH st AS (SELECT t.id AS sid, t.opportunity_id AS oid, t.to_stage_id AS stage_id, t.entered_at, n.entered_at AS left_at, CASE WHEN n.id IS NOT NULL AND {} > {} AND {within} THEN 1 ELSE 0 END AS adv \
             FROM (SELECT id, opportunity_id, to_stage_id, entered_at, LEAD(id) OVER (PARTITION BY opportunity_id ORDER BY entered_at, id) AS next_id FROM stage_transitions WHERE pipeline_id = {p}) t \
             JOIN stages s ON s.id = t.to_stage_id LEFT JOIN stage_transitions n ON n.id = t.next_id LEFT JOIN stages ns ON ns.id = n.to_stage_id WHERE s.kind = 'open') \
             SELECT st.stage_id, a.type, COUNT(DISTINCT st.sid), COUNT(DISTINCT CASE WHEN adv = 1 THEN st.sid END) FROM st JOIN activities a ON a.opportunity_id = st.oid AND a.completed_at >= st.entered_at AND (st.left_at IS NULL OR a.completed_at < st.left_at) AND {act_within} GROUP BY st.stage_id, a.type", rank("ns"), rank("s")),
        ]),
        ("lead-sources", vec![
            "SELECT l.source, COUNT(*), SUM(CASE WHEN l.status IN ('qualified', 'converted') THEN 1 ELSE 0 END), SUM(CASE WHEN l.status = 'converted' THEN 1 ELSE 0 END), SUM(CASE WHEN o.status = 'won' THEN 1 ELSE 0 END), SUM(CASE WHEN o.status = 'won' THEN o.amount_minor ELSE 0 END) FROM leads l LEFT JOIN opportunities o ON o.id = l.converted_opportunity_id GROUP BY l.source".to_owned(),
        ]),
        ("leaderboard", vec![
            "SELECT owner_id, COUNT(*), SUM(amount_minor) FROM opportunities WHERE status = 'won' GROUP BY owner_id".to_owned(),
            format!("SELECT o.owner_id, COUNT(*) FROM stage_transitions t JOIN opportunities o ON o.id = t.opportunity_id JOIN stages ts ON ts.id = t.to_stage_id JOIN stages fs ON fs.id = t.from_stage_id WHERE fs.kind = 'open' AND {} > {} GROUP BY o.owner_id", rank("ts"), rank("fs")),
        ]),
        ("reactivation", vec![
            "SELECT COUNT(*), SUM(reopened), SUM(CASE WHEN reopened = 1 AND status = 'won' THEN 1 ELSE 0 END) FROM (SELECT o.id, o.status, MAX(CASE WHEN fs.kind = 'lost' AND ts.kind = 'open' THEN 1 ELSE 0 END) AS reopened, MAX(CASE WHEN ts.kind = 'lost' THEN 1 ELSE 0 END) AS was_lost FROM opportunities o JOIN stage_transitions t ON t.opportunity_id = o.id JOIN stages ts ON ts.id = t.to_stage_id LEFT JOIN stages fs ON fs.id = t.from_stage_id GROUP BY o.id, o.status) d WHERE was_lost = 1".to_owned(),
        ]),
        ("forecast", vec![
            format!("SELECT {month}, o.owner_id, o.currency, COUNT(*), SUM(o.amount_minor), SUM(o.amount_minor * COALESCE(o.probability, s.probability)) FROM opportunities o JOIN stages s ON s.id = o.stage_id WHERE o.status = 'open' AND o.expected_close_date IS NOT NULL GROUP BY 1, 2, 3"),
        ]),
    ]
}

/// Hand-written SQL over the same tables the endpoint reads: for the reports served from
/// the maintained aggregates (`deal_reach`, `stage_stays`) this is the floor the endpoint
/// is measured against; the other reports read the base tables in both variants.
fn hand_sql_same_tables(backend: &str, pipeline: &str) -> Vec<(&'static str, Vec<String>)> {
    let pg = backend == "postgres";
    let p = format!("'{pipeline}'");
    let durations = if pg {
        format!(
            "SELECT stage_id, COUNT(*), AVG(seconds), percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds), percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds), MAX(seconds) \
             FROM stage_stays WHERE pipeline_id = {p} AND seconds IS NOT NULL GROUP BY stage_id"
        )
    } else {
        format!(
            "WITH r AS (SELECT stage_id, seconds AS d, ROW_NUMBER() OVER (PARTITION BY stage_id ORDER BY seconds) - 1 AS rn, COUNT(*) OVER (PARTITION BY stage_id) AS n \
             FROM stage_stays WHERE pipeline_id = {p} AND seconds IS NOT NULL) \
             SELECT stage_id, MAX(n), AVG(d), MAX(CASE WHEN rn = (n - 1) / 2 THEN d END), MAX(CASE WHEN rn = (n - 1) * 9 / 10 THEN d END), MAX(d) FROM r GROUP BY stage_id"
        )
    };
    let sums: String = ActivityType::ALL
        .iter()
        .map(|t| {
            let c = first_activity_column(t);
            format!(", SUM(CASE WHEN {c} <= 1209600 THEN 1 ELSE 0 END), SUM(CASE WHEN {c} <= 1209600 AND advanced = 1 AND seconds <= 1209600 THEN 1 ELSE 0 END)")
        })
        .collect();
    let activity = format!(
        "SELECT st.stage_id, COUNT(*), SUM(CASE WHEN advanced = 1 AND seconds <= 1209600 THEN 1 ELSE 0 END){sums} \
         FROM stage_stays st JOIN stages s ON s.id = st.stage_id WHERE s.kind = 'open' AND st.pipeline_id = {p} GROUP BY st.stage_id"
    );
    let log = hand_sql(backend, pipeline);
    let open_ages = log
        .iter()
        .find(|(n, _)| *n == "stage-durations")
        .map(|(_, s)| s[1].clone())
        .unwrap_or_default();
    let won = "SELECT owner_id, COUNT(*), SUM(amount_minor) FROM opportunities WHERE status = 'won' GROUP BY owner_id".to_owned();
    let mut same = vec![
        ("funnel", vec![format!(
            "SELECT entered_mask, lost_from_stage_id, COUNT(*) FROM deal_reach WHERE pipeline_id = {p} AND entered_mask <> 0 GROUP BY entered_mask, lost_from_stage_id"
        )]),
        ("stage-durations", vec![durations, open_ages]),
        ("loss-reasons", vec![
            "SELECT lost_from_stage_id, lost_reason_id, COUNT(*), SUM(amount_milli) FROM deal_reach WHERE status = 'lost' GROUP BY lost_from_stage_id, lost_reason_id".to_owned(),
        ]),
        ("activity-effectiveness", vec![activity]),
        ("leaderboard", vec![
            won,
            "SELECT owner_id, SUM(advances) FROM deal_reach WHERE advances > 0 GROUP BY owner_id".to_owned(),
        ]),
        ("reactivation", vec![
            "SELECT COUNT(*), SUM(reopened), SUM(CASE WHEN reopened = 1 AND status = 'won' THEN 1 ELSE 0 END), SUM(CASE WHEN reopened = 1 AND status = 'won' THEN amount_milli ELSE 0 END) FROM deal_reach WHERE was_lost = 1".to_owned(),
        ]),
    ];
    for (name, statements) in log {
        if !same.iter().any(|(n, _)| *n == name) {
            same.push((name, statements));
        }
    }
    same
}

fn endpoints(pipeline: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "funnel",
            format!("/api/v1/reports/funnel?pipeline_id={pipeline}"),
        ),
        (
            "stage-durations",
            format!("/api/v1/reports/stage-durations?pipeline_id={pipeline}"),
        ),
        ("stalled", "/api/v1/reports/stalled".to_owned()),
        ("loss-reasons", "/api/v1/reports/loss-reasons".to_owned()),
        (
            "activity-effectiveness",
            format!("/api/v1/reports/activity-effectiveness?pipeline_id={pipeline}"),
        ),
        ("lead-sources", "/api/v1/reports/lead-sources".to_owned()),
        ("leaderboard", "/api/v1/reports/leaderboard".to_owned()),
        ("reactivation", "/api/v1/reports/reactivation".to_owned()),
        ("forecast", "/api/v1/reports/forecast".to_owned()),
    ]
}

const GROUPS: &[&str] = &[
    "owner",
    "team",
    "source",
    "industry",
    "company_size",
    "region",
    "tag",
];

/// Every variant of every report: (label, query string, what it is), from the
/// parameters each report reads (`http::reports::PARAMETERS`).
fn variants(pipeline: &str) -> Vec<(String, String, Variant<'static>)> {
    let mut out = Vec::new();
    for (report, params) in stageflow::http::reports::PARAMETERS {
        if report.ends_with(".svg") {
            continue;
        }
        let has = |p: &str| params.iter().any(|q| q.trim_end_matches('*') == p);
        let modes: &[&str] = if has("mode") {
            &["cohort", "period"]
        } else {
            &[""]
        };
        let groups: Vec<&'static str> = if has("group_by") {
            std::iter::once("").chain(GROUPS.iter().copied()).collect()
        } else {
            vec![""]
        };
        for mode in modes {
            for range in [false, true] {
                for group in &groups {
                    let mut q = Vec::new();
                    if has("pipeline_id") {
                        q.push(format!("pipeline_id={pipeline}"));
                    }
                    if !mode.is_empty() {
                        q.push(format!("mode={mode}"));
                    }
                    if range && has("from") {
                        q.push("from=2026-01-01&to=2026-06-30".to_owned());
                    }
                    if !group.is_empty() {
                        q.push(format!("group_by={group}"));
                    }
                    let label = format!(
                        "{report}{}{}{}",
                        if mode.is_empty() {
                            String::new()
                        } else {
                            format!(" {mode}")
                        },
                        if range { " range" } else { "" },
                        if group.is_empty() {
                            String::new()
                        } else {
                            format!(" by {group}")
                        },
                    );
                    out.push((
                        label,
                        format!("/api/v1/reports/{report}?{}", q.join("&")),
                        Variant {
                            report,
                            mode,
                            range: range && has("from"),
                            group,
                        },
                    ));
                }
            }
        }
    }
    out
}

fn statements_of(all: &[(&'static str, Vec<String>)], name: &str) -> Vec<String> {
    all.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s.clone())
        .unwrap_or_default()
}

/// The rows (one text column `v`) of the statements, together.
async fn lines(
    state: &web::Data<stageflow::startup::AppState>,
    statements: Vec<String>,
) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let pool = state.pool.clone();
    web::block(move || {
        let mut conn = pool.get().expect("connection");
        let mut out = Vec::new();
        for s in &statements {
            let rows = diesel::sql_query(s.as_str())
                .load::<Line>(&mut conn)
                .unwrap_or_else(|e| panic!("{s}: {e}"));
            out.extend(rows.into_iter().map(|l| l.v));
        }
        out
    })
    .await
    .expect("sql")
}

/// Median time of running the statements in sequence, every row produced.
async fn time_sql(
    state: &web::Data<stageflow::startup::AppState>,
    statements: Vec<String>,
    runs: usize,
) -> Duration {
    let pool = state.pool.clone();
    web::block(move || {
        let mut conn = pool.get().expect("connection");
        let mut times = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            for s in &statements {
                // Count the rows in the database so that every row is produced: SQLite
                // hands out the first row of an index-ordered GROUP BY before the rest
                // are computed. On PostgreSQL the count takes the whole row (`x.*`):
                // with `COUNT(*)` the planner drops the columns nobody reads (the
                // aggregates, percentiles, even a LEFT JOIN on a key) and times less
                // work than the report does.
                let wrapped = match &*conn {
                    DbConn::Pg(_) => format!("SELECT CAST(COUNT(x.*) AS BIGINT) AS n FROM ({s}) x"),
                    DbConn::Sqlite(_) => {
                        format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ({s}) x")
                    }
                };
                diesel::sql_query(wrapped)
                    .get_result::<Count>(&mut conn)
                    .unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            times.push(started.elapsed());
        }
        median(times)
    })
    .await
    .expect("sql")
}

#[actix_web::main]
async fn main() {
    let a = Args::parse();
    for backend in a.common.backends() {
        let url =
            support::database_url(backend, "stageflow_bench", a.opportunities, a.common.reuse);
        let mut settings = Settings {
            database_url: url,
            pool_size: 2,
            ..Settings::default()
        };
        settings.jwt_secret = Some(SecretString::from(
            "bench-secret-bench-secret-bench-secret-0".to_owned(),
        ));
        let state = web::block(move || startup::build_state(settings))
            .await
            .unwrap()
            .expect("state");
        let n = a.opportunities;
        let reuse = a.common.reuse;
        let pool = state.pool.clone();
        let (pipeline, token) = web::block(move || {
            let mut conn = pool.get().expect("connection");
            if !(reuse && count(&mut conn, "opportunities") >= n as i64) {
                println!("[{backend}] generating {n} opportunities …");
                let s = generate(&mut conn, &DemoOptions { opportunities: n, seed: 42 }, &mut std::io::stdout()).expect("demo data");
                println!(
                    "[{backend}] {} opportunities ({} won, {} lost), {} transitions, {} activities, {} leads in {:.1} s",
                    s.opportunities, s.won, s.lost, s.transitions, s.activities, s.leads, s.seconds
                );
            }
            let _ = startup::create_user(&mut conn, "bench@example.com", "bench-password-1", "Bench", Role::Admin);
            let pipeline: String = stageflow::storage::schema::pipelines::table
                .select(stageflow::storage::schema::pipelines::id)
                .order(stageflow::storage::schema::pipelines::created_at.asc())
                .first(&mut conn)
                .expect("a pipeline");
            (pipeline, conn)
        })
        .await
        .map(|(p, _)| {
            let mut conn = state.pool.get().expect("connection");
            let user: String = stageflow::storage::schema::users::table
                .select(stageflow::storage::schema::users::id)
                .filter(stageflow::storage::schema::users::email.eq("bench@example.com"))
                .first(&mut conn)
                .expect("bench user");
            (p, state.jwt.issue(&user, "admin", None, 0).expect("token"))
        })
        .expect("setup");
        let state = web::Data::new(state);
        let app = test::init_service(startup::app(state.clone())).await;
        let hand = hand_sql(backend, &pipeline);
        let same = hand_sql_same_tables(backend, &pipeline);
        println!(
            "\n[{backend}] {} opportunities, {} transitions — median of {} runs",
            a.opportunities,
            {
                let mut c = state.pool.get().expect("connection");
                count(&mut c, "stage_transitions")
            },
            a.runs
        );
        println!(
            "{:<24} {:>12} {:>12} {:>7} {:>12}",
            "report", "endpoint ms", "SQL ms", "ratio", "log SQL ms"
        );
        let defaults: Vec<(&'static str, String)> = if a.variants {
            Vec::new()
        } else {
            endpoints(&pipeline)
        };
        for (name, path) in defaults {
            let mut times = Vec::new();
            for _ in 0..a.runs {
                let req = test::TestRequest::get()
                    .uri(&path)
                    .insert_header(("authorization", format!("Bearer {token}")))
                    .to_request();
                let started = Instant::now();
                let res = test::call_service(&app, req).await;
                let status = res.status();
                let _ = test::read_body(res).await;
                times.push(started.elapsed());
                assert!(status.is_success(), "{name}: {status}");
            }
            let endpoint = median(times);
            let same_sql = time_sql(&state, statements_of(&same, name), a.runs).await;
            let log_sql = time_sql(&state, statements_of(&hand, name), a.runs).await;
            println!(
                "{:<24} {:>12.1} {:>12.1} {:>7.2} {:>12.1}",
                name,
                endpoint.as_secs_f64() * 1000.0,
                same_sql.as_secs_f64() * 1000.0,
                endpoint.as_secs_f64() / same_sql.as_secs_f64().max(1e-9),
                log_sql.as_secs_f64() * 1000.0,
            );
        }
        if a.variants {
            let target_ms = if backend == "postgres" {
                1000.0
            } else {
                2000.0
            };
            let mut tokens = vec![("admin", token.clone(), Who::Admin)];
            let mut conn = state.pool.get().expect("connection");
            for role in [Role::Manager, Role::Rep] {
                use stageflow::storage::schema::users;
                let who: Option<(String, Option<String>)> = users::table
                    .filter(users::role.eq(role))
                    .filter(users::team_id.is_not_null())
                    .select((users::id, users::team_id))
                    .order(users::created_at.asc())
                    .first(&mut conn)
                    .optional()
                    .expect("users");
                if let Some((id, team)) = who {
                    let t = state
                        .jwt
                        .issue(&id, role.as_str(), team.as_deref(), 0)
                        .expect("token");
                    let who = match role {
                        Role::Rep => Who::Rep(id.clone()),
                        _ => Who::Team(team.clone().unwrap_or_default()),
                    };
                    tokens.push((role.as_str(), t, who));
                }
            }
            let stages: Vec<(String, i32, String)> = {
                use stageflow::storage::schema::stages;
                stages::table
                    .filter(stages::pipeline_id.eq(stageflow::storage::uid::uid(&pipeline)))
                    .select((stages::id, stages::position, stages::kind))
                    .order(stages::position.asc())
                    .load::<(String, i32, String)>(&mut conn)
                    .expect("stages")
            };
            drop(conn);
            println!(
                "\n[{backend}] every variant, best of 2, target {target_ms:.0} ms; SQL: hand-written over the same tables, \
                 checked once to give the endpoint's numbers"
            );
            println!(
                "{:<52} {:<8} {:>12} {:>10} {:>6}  verdict  numbers",
                "variant", "role", "endpoint", "SQL", "ratio"
            );
            let (mut over, mut total, mut differ) = (0, 0, 0);
            for (label, path, variant) in variants(&pipeline) {
                if !a.only.is_empty() && !a.only.iter().any(|o| label.contains(o.as_str())) {
                    continue;
                }
                for (role, t, who) in &tokens {
                    let mut best = Duration::MAX;
                    let mut status = actix_web::http::StatusCode::OK;
                    let mut body = serde_json::Value::Null;
                    for _ in 0..2 {
                        let req = test::TestRequest::get()
                            .uri(&path)
                            .insert_header(("authorization", format!("Bearer {t}")))
                            .to_request();
                        let started = Instant::now();
                        let res = test::call_service(&app, req).await;
                        status = res.status();
                        let bytes = test::read_body(res).await;
                        best = best.min(started.elapsed());
                        body = serde_json::from_slice(&bytes).unwrap_or_default();
                    }
                    assert!(status.is_success(), "{label} as {role}: {status}");
                    let ms = best.as_secs_f64() * 1000.0;
                    total += 1;
                    let verdict = if ms <= target_ms {
                        "ok"
                    } else {
                        over += 1;
                        "OVER"
                    };
                    let scoped = path.contains("pipeline_id=");
                    let (sql, numbers) = match baseline(
                        backend == "postgres",
                        &pipeline,
                        &stages,
                        &variant,
                        scoped,
                        who,
                    ) {
                        Some(b) => {
                            // Once, outside the timed runs: the same numbers.
                            let mut expected = lines(&state, b.statements.clone()).await;
                            let mut got = (b.numbers)(&body);
                            expected.sort();
                            got.sort();
                            let same = if expected == got {
                                "same"
                            } else {
                                differ += 1;
                                eprintln!("{label} as {role}:\n  SQL      {expected:?}\n  endpoint {got:?}");
                                "DIFFER"
                            };
                            (Some(time_sql(&state, b.statements, 2).await), same)
                        }
                        None => (None, "-"),
                    };
                    match sql {
                        Some(sql) => {
                            let sql_ms = sql.as_secs_f64() * 1000.0;
                            println!(
                                "{:<52} {:<8} {:>9.1} ms {:>7.1} ms {:>6.2}  {verdict:<7}  {numbers}",
                                label, role, ms, sql_ms, ms / sql_ms.max(1e-6)
                            );
                        }
                        None => println!(
                            "{:<52} {:<8} {:>9.1} ms {:>10} {:>6}  {verdict:<7}  {numbers}",
                            label, role, ms, "-", "-"
                        ),
                    }
                }
            }
            println!(
                "[{backend}] {over} of {total} variants over {target_ms:.0} ms; {differ} differ from their SQL"
            );
        }
    }
}
