//! Imports and exports as a script with curl would use them: files posted as they come
//! from spreadsheets and other systems, answers checked row by row.

use serde_json::{json, Value};
use stageflow::imports::jobs;

use crate::api_tests;
use crate::helpers::{id_of, stage_id, TestApp};
use crate::reports::{aggregate_rows, step};

api_tests!(
    a_spreadsheet_file_imports_its_good_rows_and_names_the_bad_ones,
    posting_the_same_file_again_changes_nothing_and_upsert_updates,
    deals_bring_their_stage_history_and_the_reports_count_it,
    bad_files_get_clear_answers,
    a_dry_run_answers_like_a_real_one_and_writes_nothing,
    exports_stream_every_matching_row_and_import_back_unchanged,
    a_job_shows_progress_errors_csv_and_resumes_after_a_restart,
    imports_see_and_change_only_what_the_caller_may,
);

async fn import(app: &TestApp, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Value {
    app.post(&format!("/api/v1/imports/{path}"))
        .admin()
        .raw(content_type, body.into())
        .send_ok()
        .await
        .body
}

fn errors(report: &Value) -> Vec<(u64, String, String)> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["field"].as_str().unwrap_or("").to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn counts(report: &Value) -> [u64; 4] {
    ["created", "updated", "unchanged", "failed"].map(|k| report[k].as_u64().unwrap())
}

async fn a_spreadsheet_file_imports_its_good_rows_and_names_the_bad_ones(app: TestApp) {
    // Saved by a spreadsheet: BOM, semicolons, a quoted field across lines, a trailing
    // row of empty cells, headers as people write them.
    let file = "\u{feff}First Name;Last Name;E-mail;Company Name;Phone Number;Budget;Tags;Favourite colour\n\
        Anna;Li;anna@example.com;\"Acme; Ltd\";\"+86 10\n 1234\";approved;vip;blue\n\
        Bo;Wang;not-an-email;Zeta;;;;\n\
        Cai;Xu;=HYPERLINK(\"x\");Zeta;;;;\n\
        Dan;Ma;anna@example.com;Other;;;;\n\
        Eve;Fu;eve@example.com;'=Formula Inc;;;;\n\
        ;;;;;;;\n";
    let report = import(&app, "leads", "text/csv", file).await;
    assert_eq!(counts(&report), [2, 0, 0, 3], "{report}");
    assert_eq!(
        errors(&report),
        vec![
            (2, "email".into(), "invalid".into()),
            (3, "email".into(), "formula".into()),
            (4, "email".into(), "duplicate_in_file".into()),
        ]
    );
    assert_eq!(report["unknown_columns"], json!(["Favourite colour"]));
    assert_eq!(report["rows"], 5);
    let leads = app
        .get("/api/v1/leads?sort=created_at")
        .admin()
        .send_ok()
        .await;
    let anna = &leads.body["data"][0];
    assert_eq!(anna["company"], "Acme; Ltd");
    assert_eq!(anna["phone"], "+86 10\n 1234");
    assert_eq!(anna["bant"]["budget"], "approved");
    assert_eq!(anna["tags"], json!(["vip"]));
    assert!(
        anna["score"].as_i64().unwrap() > 0,
        "scored like an API create"
    );
    assert_eq!(
        leads.body["data"][1]["company"], "=Formula Inc",
        "the ' keeps a formula as text"
    );
    // NDJSON and a JSON array take the API's own field names.
    let ndjson = "{\"last_name\":\"Gu\",\"email\":\"gu@example.com\",\"source\":\"event\"}\n\
                  {\"last_name\":\"Hu\",\"source\":\"carrier pigeon\"}\n";
    let report = import(&app, "leads", "application/x-ndjson", ndjson).await;
    assert_eq!(counts(&report), [1, 0, 0, 1]);
    assert_eq!(
        errors(&report),
        vec![(2, "source".into(), "unknown_value".into())]
    );
    let array =
        json!([{"name": "云启科技", "external_id": "A-1"}, {"industry": "SaaS"}]).to_string();
    let report = import(&app, "accounts", "application/json", array).await;
    assert_eq!(counts(&report), [1, 0, 0, 1]);
    assert_eq!(errors(&report), vec![(2, "name".into(), "required".into())]);
}

async fn posting_the_same_file_again_changes_nothing_and_upsert_updates(app: TestApp) {
    let file = "external_id,Company Name,industry\nA-1,云启科技,SaaS\nA-2,海川医疗,医疗\n";
    assert_eq!(
        counts(&import(&app, "accounts", "text/csv", file).await),
        [2, 0, 0, 0]
    );
    assert_eq!(
        counts(&import(&app, "accounts", "text/csv", file).await),
        [0, 0, 2, 0]
    );
    let changed = "external_id,Company Name,industry\nA-1,云启科技,教育\nA-2,海川医疗,医疗\n";
    // In create mode a changed row is a conflict, not a silent overwrite.
    let report = import(&app, "accounts", "text/csv", changed).await;
    assert_eq!(counts(&report), [0, 0, 1, 1]);
    assert_eq!(errors(&report), vec![(1, "".into(), "conflict".into())]);
    let report = import(&app, "accounts?mode=upsert", "text/csv", changed).await;
    assert_eq!(counts(&report), [0, 1, 1, 0]);
    let list = app
        .get("/api/v1/accounts?q=%E4%BA%91%E5%90%AF")
        .admin()
        .send_ok()
        .await;
    assert_eq!(list.body["data"][0]["industry"], "教育");
    assert_eq!(
        list.body["data"][0]["version"], 2,
        "one update, one version"
    );
    // Contacts reference accounts by their external id; leads match on email.
    let contacts =
        "email,last_name,account_external_id\nwei@example.com,Zhang,A-1\nmin@example.com,Min,A-9\n";
    let report = import(&app, "contacts", "text/csv", contacts).await;
    assert_eq!(
        errors(&report),
        vec![(2, "account_external_id".into(), "not_found".into())]
    );
    let leads = "email,last_name\nx@example.com,X\n";
    import(&app, "leads", "text/csv", leads).await;
    let report = import(
        &app,
        "leads?mode=upsert&match_on=email",
        "text/csv",
        "email,last_name\nX@Example.com,Xu\n",
    )
    .await;
    assert_eq!(counts(&report), [0, 1, 0, 0], "{report}");
}

async fn deals_bring_their_stage_history_and_the_reports_count_it(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let file = "name,pipeline,stage,amount,external_id,stage_history,loss_reason\n\
        Won deal,Plain,Won,\"12,500.00\",D-1,A:2024-01-01T00:00:00Z;B:2024-01-11;C:2024-02-10,\n\
        Lost deal,Plain,,800,D-2,A:2024-01-01;B:2024-01-21;Lost:2024-02-20,competitor\n\
        Open deal,Plain,,100,D-3,A:2024/03/01,\n\
        Late,Plain,,1,D-4,A:2024-01-02;B:2024-01-01,\n\
        Future,Plain,,1,D-5,A:2999-01-01,\n\
        Foreign,Plain,Nowhere,1,D-6,,\n";
    let report = import(&app, "opportunities", "text/csv", file).await;
    assert_eq!(counts(&report), [3, 0, 0, 3], "{report}");
    assert_eq!(
        errors(&report),
        vec![
            (4, "stage_history".into(), "invalid".into()),
            (5, "stage_history".into(), "invalid".into()),
            (6, "stage".into(), "not_found".into()),
        ]
    );
    let deals = app
        .get("/api/v1/opportunities?sort=created_at")
        .admin()
        .send_ok()
        .await;
    let won = deals.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["external_id"] == "D-1")
        .unwrap()
        .clone();
    assert_eq!(won["status"], "won");
    assert_eq!(won["amount"], "12500.00");
    assert_eq!(
        won["created_at"], "2024-01-01T00:00:00Z",
        "created when its history began"
    );
    let history = app
        .get(&format!("/api/v1/opportunities/{}/history", id_of(&won)))
        .admin()
        .send_ok()
        .await;
    let log: Vec<(String, String)> = history.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["entered_at"].as_str().unwrap().to_owned(),
                t["channel"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(log.len(), 4);
    assert_eq!(
        log[1],
        ("2024-01-11T00:00:00Z".to_owned(), "import".to_owned())
    );
    assert!(log.iter().all(|(_, c)| c == "import"));
    // Time in B: 30 days for both (D-1: Jan 11 → Feb 10; D-2: Jan 21 → Feb 20).
    let res = app
        .get(&format!(
            "/api/v1/reports/stage-durations?pipeline_id={}",
            id_of(&p)
        ))
        .admin()
        .send_ok()
        .await;
    assert_eq!(
        step(&res.body, "A")["count"],
        3 - 1,
        "two closed stays in A, one open"
    );
    assert_eq!(
        step(&res.body, "B")["median"].as_f64().unwrap().round(),
        30.0 * 86400.0
    );
    let losses = app
        .get(&format!(
            "/api/v1/reports/loss-reasons?pipeline_id={}",
            id_of(&p)
        ))
        .admin()
        .send_ok()
        .await;
    assert!(losses.text.contains("competitor"), "{}", losses.text);
    // The batch maintained the aggregates exactly as a rebuild from the log.
    let kept = aggregate_rows(&app);
    assert_eq!(kept.0.len(), 3);
    app.rebuild_aggregates();
    assert_eq!(aggregate_rows(&app), kept);
    // The log goes out whole for BI tools, and one deal's history as CSV.
    let log = app
        .get(&format!("/api/v1/stage-log?pipeline_id={}", id_of(&p)))
        .admin()
        .header("accept", "text/csv")
        .send_ok()
        .await;
    let mut lines = log.text.lines();
    assert!(lines.next().unwrap().starts_with("id,opportunity_id,external_id,pipeline_id,from_stage_id,from_stage_name,to_stage_id,to_stage_name,entered_at"));
    assert_eq!(lines.count(), 4 + 3 + 1, "every entry of the three deals");
    assert!(log.text.contains(",D-1,") && log.text.contains(",import,"));
    let page = app.get("/api/v1/stage-log?limit=2").admin().send_ok().await;
    assert_eq!(page.body["data"][0]["entered_at"], "2024-01-01T00:00:00Z");
    assert!(page.body["next_cursor"].is_string());
    let one = app
        .get(&format!("/api/v1/opportunities/{}/history", id_of(&won)))
        .admin()
        .header("accept", "text/csv")
        .send_ok()
        .await;
    assert_eq!(one.text.lines().count(), 1 + 4);
    // The same file again: nothing changes, history included.
    let report = import(&app, "opportunities", "text/csv", file).await;
    assert_eq!(counts(&report), [0, 0, 3, 3], "{report}");
    assert_eq!(stage_id(&p, "Won").len(), 36);
}

async fn bad_files_get_clear_answers(app: TestApp) {
    let unreadable = |code: &'static str| {
        move |res: &crate::helpers::Res| {
            res.problem(422, "unreadable_file");
            assert_eq!(res.body["errors"][0]["code"], code, "{}", res.text);
        }
    };
    let post = |body: Vec<u8>, ct: &'static str| {
        app.post("/api/v1/imports/leads")
            .admin()
            .raw(ct, body)
            .send()
    };
    unreadable("empty_file")(&post(Vec::new(), "text/csv").await);
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("name\n".encode_utf16().flat_map(|u| u.to_le_bytes()))
        .collect();
    unreadable("unsupported_encoding")(&post(utf16, "text/csv").await);
    unreadable("malformed_json")(&post(b"{\"a\":1}".to_vec(), "application/json").await);
    // A job is refused up front, before anything is stored.
    let res = app
        .post("/api/v1/imports/leads?async=true")
        .admin()
        .raw("application/json", "42")
        .send()
        .await;
    unreadable("malformed_json")(&res);
    assert_eq!(app.count("import_jobs", ""), 0);
    post(b"a".to_vec(), "application/xml")
        .await
        .problem(415, "unsupported_media_type");
    post(b"a".to_vec(), "text/csv; charset=latin1")
        .await
        .problem(415, "unsupported_media_type");
    app.post("/api/v1/imports/leads")
        .admin()
        .header("idempotency-key", "import-1")
        .raw("text/csv", "email\na@example.com\n")
        .send()
        .await
        .problem(400, "idempotency_key_not_supported");
    // A header only: nothing to do, said plainly.
    let report = import(&app, "leads", "text/csv", "email,last_name\n").await;
    assert_eq!(
        (counts(&report), report["rows"].as_u64()),
        ([0, 0, 0, 0], Some(0))
    );
    // Latin-1 bytes, a ragged row, a date nobody can read, a missing owner.
    let mut file = b"email,last_name,next_follow_up_at,owner_email\n".to_vec();
    file.extend(b"a@example.com,Caf\xe9,,\n");
    file.extend(b"b@example.com,B,,,extra\n");
    file.extend(b"c@example.com,C,01.02.2025,\n");
    file.extend(b"d@example.com,D,2025/02/01 10:00,nobody@example.com\n");
    file.extend(b"e@example.com,E,2025/02/01 10:00,\n");
    let report = import(&app, "leads", "text/csv", file).await;
    assert_eq!(
        errors(&report),
        vec![
            (1, "".into(), "unsupported_encoding".into()),
            (2, "".into(), "ragged_row".into()),
            (3, "next_follow_up_at".into(), "invalid_date".into()),
            (4, "owner_email".into(), "not_found".into()),
        ]
    );
    assert_eq!(counts(&report)[0], 1);
    // Amounts: thousands separators are read, ambiguous ones refused.
    let p = app.pipeline().plain().create().await;
    let deals = "name,pipeline,amount\nA,Plain,\"1,234,567.50\"\nB,Plain,1.234.567\n";
    let report = import(&app, "opportunities", "text/csv", deals).await;
    assert_eq!(
        errors(&report),
        vec![(2, "amount".into(), "invalid_number".into())]
    );
    assert!(p["id"].is_string());
    // A field far over the record limit stops the read there, with the rows before kept.
    let mut huge = b"email,last_name\nok@example.com,Ok\nbig@example.com,\"".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 3 << 20));
    huge.extend(b"\"\n");
    let report = import(&app, "leads", "text/csv", huge).await;
    assert_eq!(report["file_error"]["code"], "record_too_large");
    assert_eq!(counts(&report)[0], 1);
    // 10,000 bad rows: the answer stays small and says there are more.
    let mut many = String::from("email,last_name\n");
    for i in 0..10_000 {
        many.push_str(&format!("=cmd{i},X\n"));
    }
    let report = import(&app, "leads", "text/csv", many).await;
    assert_eq!(counts(&report)[3], 10_000);
    assert_eq!(report["errors"].as_array().unwrap().len(), 100);
    assert_eq!(report["errors_truncated"], true);
}

async fn a_dry_run_answers_like_a_real_one_and_writes_nothing(app: TestApp) {
    let file = "email,last_name\na@example.com,A\nbad,B\n";
    let dry = import(&app, "leads?dry_run=true", "text/csv", file).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(counts(&dry), [1, 0, 0, 1]);
    assert_eq!(app.count("leads", ""), 0);
    let real = import(&app, "leads", "text/csv", file).await;
    assert_eq!(counts(&real), counts(&dry));
    assert_eq!(app.count("leads", ""), 1);
}

async fn exports_stream_every_matching_row_and_import_back_unchanged(app: TestApp) {
    let mut file = String::from("email,last_name,source,tags,custom\n");
    for i in 0..1203 {
        let source = if i % 3 == 0 { "event" } else { "ads" };
        file.push_str(&format!(
            "l{i}@example.com,L{i},{source},a;b,\"{{\"\"k\"\":{i}}}\"\n"
        ));
    }
    file.push_str("f@example.com,\"=SUM(A1)\",ads,,\n");
    let report = import(&app, "leads", "text/csv", file).await;
    assert_eq!(counts(&report), [1203, 0, 0, 1]);
    let csv = app
        .get("/api/v1/leads?source=event")
        .admin()
        .header("accept", "text/csv")
        .send_ok()
        .await;
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(csv
        .header("content-disposition")
        .unwrap()
        .contains("leads-"));
    let lines = csv.text.lines().count();
    assert_eq!(
        lines,
        1 + 401,
        "every matching row past the page limit, and only those"
    );
    let again = app
        .post("/api/v1/imports/leads")
        .admin()
        .raw("text/csv", csv.text.clone())
        .send_ok()
        .await;
    assert_eq!(counts(&again.body), [0, 0, 401, 0], "{}", again.text);
    assert!(
        again.body["unknown_columns"].as_array().unwrap().is_empty(),
        "{}",
        again.text
    );
    let ndjson = app
        .get("/api/v1/leads?source=ads")
        .admin()
        .header("accept", "application/x-ndjson")
        .send_ok()
        .await;
    assert_eq!(ndjson.text.lines().count(), 802);
    let first: Value = serde_json::from_str(ndjson.text.lines().next().unwrap()).unwrap();
    assert_eq!(first["tags"], json!(["a", "b"]));
    let again = app
        .post("/api/v1/imports/leads")
        .admin()
        .raw("application/x-ndjson", ndjson.text.clone())
        .send_ok()
        .await;
    assert_eq!(counts(&again.body), [0, 0, 802, 0], "{}", again.text);
    // Deals too, stage and amounts included.
    let p = app.pipeline().plain().create().await;
    app.deal(&p)
        .amount("99.50")
        .create()
        .await
        .move_to("B")
        .await;
    let deals = app
        .get("/api/v1/opportunities")
        .admin()
        .header("accept", "text/csv")
        .send_ok()
        .await;
    let again = app
        .post("/api/v1/imports/opportunities")
        .admin()
        .raw("text/csv", deals.text.clone())
        .send_ok()
        .await;
    assert_eq!(counts(&again.body), [0, 0, 1, 0], "{}", again.text);
}

async fn a_job_shows_progress_errors_csv_and_resumes_after_a_restart(app: TestApp) {
    let mut file = String::from("email,last_name,Company Name\n");
    for i in 0..1200 {
        let email = if i % 400 == 7 {
            format!("bad{i}")
        } else {
            format!("j{i}@example.com")
        };
        file.push_str(&format!("{email},J{i},\"Co, {i}\"\n"));
    }
    let res = app
        .post("/api/v1/imports/leads?async=true")
        .admin()
        .raw("text/csv", file.clone())
        .expect(202)
        .await;
    let location = res.header("location").unwrap().to_owned();
    assert_eq!(res.body["state"], "queued");
    assert_eq!(res.body["bytes_total"], file.len());
    assert_eq!(
        app.count("leads", ""),
        0,
        "nothing written before a worker runs it"
    );
    assert!(jobs::work_once(&app.state.pool, "test-worker").unwrap());
    let job = app.get(&location).admin().send_ok().await;
    assert_eq!(job.body["state"], "done", "{}", job.text);
    assert_eq!(job.body["percent"], 100.0);
    assert_eq!(counts(&job.body["report"]), [1197, 0, 0, 3]);
    let errors_csv = app
        .get(&format!("{location}/errors.csv"))
        .admin()
        .send_ok()
        .await;
    let mut lines = errors_csv.text.lines();
    assert_eq!(lines.next(), Some("email,last_name,Company Name,error"));
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("bad7,J7,\"Co, 7\",email: "),
        "{}",
        errors_csv.text
    );
    assert_eq!(errors_csv.text.lines().count(), 4);
    // Fixed and posted again: the good rows are unchanged, the fixed ones created.
    let fixed = errors_csv
        .text
        .replace("bad", "fixed@")
        .replace("@7,", "7@example.com,");
    let report = import(&app, "leads", "text/csv", fixed).await;
    assert_eq!(counts(&report)[0], 3, "{report}");
    // A job whose worker stopped after 500 rows (a restart) is taken over and resumes.
    let res = app
        .post("/api/v1/imports/accounts?async=true")
        .admin()
        .raw(
            "text/csv",
            (0..1000).fold(String::from("name,external_id\n"), |mut s, i| {
                s.push_str(&format!("A{i},X{i}\n"));
                s
            }),
        )
        .expect(202)
        .await;
    let id = id_of(&res.body);
    let first_half = (0..500).fold(String::from("name,external_id\n"), |mut s, i| {
        s.push_str(&format!("A{i},X{i}\n"));
        s
    });
    import(&app, "accounts", "text/csv", first_half).await;
    app.exec_sql(&format!(
        "UPDATE import_jobs SET state = 'running', worker = 'gone', rows_done = 500, \
         report = '{{\"created\":500,\"updated\":0,\"unchanged\":0,\"failed\":0,\"errors\":[],\"errors_truncated\":false,\"unknown_columns\":[],\"ignored_columns\":[],\"rows\":500,\"bytes\":0,\"dry_run\":false,\"file_error\":null}}', \
         heartbeat_at = '2000-01-01 00:00:00' WHERE id = '{id}'"
    ));
    assert!(jobs::work_once(&app.state.pool, "test-worker").unwrap());
    let job = app
        .get(&format!("/api/v1/imports/{id}"))
        .admin()
        .send_ok()
        .await;
    assert_eq!(job.body["state"], "done", "{}", job.text);
    assert_eq!(counts(&job.body["report"]), [1000, 0, 0, 0]);
    assert_eq!(app.count("accounts", ""), 1000, "no row lost, none twice");
    // Two workers (two replicas) polling at once: the job runs once.
    let res = app
        .post("/api/v1/imports/leads?async=true")
        .admin()
        .raw("text/csv", "email\nonce@example.com\n")
        .expect(202)
        .await;
    let (a, b) = (app.state.pool.clone(), app.state.pool.clone());
    let one = std::thread::spawn(move || jobs::work_once(&a, "worker-a").unwrap());
    let two = std::thread::spawn(move || jobs::work_once(&b, "worker-b").unwrap());
    let ran = [one.join().unwrap(), two.join().unwrap()];
    assert_eq!(ran.iter().filter(|r| **r).count(), 1, "{ran:?}");
    let job = app
        .get(res.header("location").unwrap())
        .admin()
        .send_ok()
        .await;
    assert_eq!(counts(&job.body["report"]), [1, 0, 0, 0]);
    // A queued job can be cancelled; an ended one cannot.
    let res = app
        .post("/api/v1/imports/leads?async=true")
        .admin()
        .raw("text/csv", "email\nz@example.com\n")
        .expect(202)
        .await;
    let url = res.header("location").unwrap().to_owned();
    let cancelled = app.delete(&url).admin().send_ok().await;
    assert_eq!(cancelled.body["state"], "cancelled");
    assert!(!jobs::work_once(&app.state.pool, "test-worker").unwrap());
    app.delete(&url)
        .admin()
        .send()
        .await
        .problem(409, "import_not_cancellable");
}

async fn imports_see_and_change_only_what_the_caller_may(app: TestApp) {
    let admin_lead = app
        .lead()
        .company("Admin Co")
        .set("email", "boss@example.com")
        .create()
        .await;
    let (_, rep) = app.rep("rep@example.com").await;
    let post = |body: &'static str| {
        app.post("/api/v1/imports/leads?mode=upsert")
            .token(&rep)
            .raw("text/csv", body)
            .send_ok()
    };
    // Another's lead by email: taken, without saying whose or which.
    let report = post("email,company\nboss@example.com,Mine now\n")
        .await
        .body;
    assert_eq!(errors(&report), vec![(1, "".into(), "conflict".into())]);
    assert!(!report.to_string().contains(&id_of(&admin_lead)));
    // By id: not found, as on GET.
    let body: &'static str =
        Box::leak(format!("id,company\n{},Mine now\n", id_of(&admin_lead)).into_boxed_str());
    let report = post(body).await.body;
    assert_eq!(errors(&report), vec![(1, "id".into(), "not_found".into())]);
    let unchanged = app
        .get(&format!("/api/v1/leads/{}", id_of(&admin_lead)))
        .admin()
        .send_ok()
        .await;
    assert_eq!(unchanged.body["company"], "Admin Co");
    // The rep's export holds only the rep's rows; another's job is not theirs to see.
    post("email,company\nmine@example.com,Rep Co\n").await;
    let export = app
        .get("/api/v1/leads")
        .token(&rep)
        .header("accept", "text/csv")
        .send_ok()
        .await;
    assert_eq!(export.text.lines().count(), 2);
    let job = app
        .post("/api/v1/imports/leads?async=true")
        .admin()
        .raw("text/csv", "email\nq@example.com\n")
        .expect(202)
        .await;
    app.get(job.header("location").unwrap())
        .token(&rep)
        .send()
        .await
        .problem(404, "not_found");
}
