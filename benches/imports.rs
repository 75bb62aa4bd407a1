//! Import throughput: N leads and N deals with their stage history, each posted as one
//! CSV file to a running server (the release binary, started per backend on a fresh
//! database) and streamed with chunked transfer encoding, so the synchronous path reads
//! it as it arrives. Prints rows per second, the server's peak resident memory, and —
//! on PostgreSQL — the database's own `COPY` of the same file into a bare table.
//!
//! ```text
//! cargo bench --bench imports -- --leads 1000000 --deals 1000000 --backend both
//! ```

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;

mod support;

#[derive(Parser)]
struct Args {
    /// Leads in the lead file.
    #[arg(long, default_value_t = 1_000_000)]
    leads: usize,
    /// Deals in the deal file, each with `--history` past stage entries.
    #[arg(long, default_value_t = 1_000_000)]
    deals: usize,
    #[arg(long, default_value_t = 4)]
    history: usize,
    #[command(flatten)]
    common: support::Common,
}

const ADMIN: &str = "bench-admin@example.com";
const PASSWORD: &str = "bench-password-123";

fn main() {
    let a = Args::parse();
    let dir = std::env::temp_dir().join("stageflow-import-bench");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let leads = dir.join(format!("leads-{}.csv", a.leads));
    let deals = dir.join(format!("deals-{}-{}.csv", a.deals, a.history));
    write_leads(&leads, a.leads);
    write_deals(&deals, a.deals, a.history);
    let mut summary = Vec::new();
    for backend in a.common.backends() {
        let url = support::database_url(backend, "bench_imports", a.leads + a.deals, false);
        let port = free_port();
        let mut server = start(&url, port);
        let token = sign_in(port);
        request(port, "POST", "/api/v1/pipelines", &token, Some(PIPELINE));
        println!("\n[{backend}] importing into a fresh database");
        for (what, file, rows, path) in [
            ("leads", &leads, a.leads, "/api/v1/imports/leads"),
            (
                "deals+history",
                &deals,
                a.deals,
                "/api/v1/imports/opportunities",
            ),
        ] {
            let started = Instant::now();
            let report = post_file(port, path, &token, file);
            let seconds = started.elapsed().as_secs_f64();
            let failed = report["failed"].as_u64().unwrap_or(u64::MAX);
            let created = report["created"].as_u64().unwrap_or(0);
            assert_eq!(failed, 0, "rows failed: {}", report["errors"]);
            assert_eq!(created as usize, rows, "every row created: {report}");
            let rss = peak_rss_mb(server.id());
            let rate = rows as f64 / seconds;
            println!("  {what:<14} {rows:>9} rows in {seconds:>7.1} s = {rate:>8.0} rows/s, server peak RSS {rss:.0} MB");
            summary.push(format!(
                "{backend:<9} {what:<14} {rate:>8.0} rows/s  peak RSS {rss:>4.0} MB"
            ));
        }
        if backend == "postgres" {
            for (what, file, columns) in [
                ("leads", &leads, LEAD_COLUMNS),
                ("deals", &deals, DEAL_COLUMNS),
            ] {
                match copy_baseline(&url, file, columns) {
                    Some((rows, seconds)) => {
                        let line = format!(
                            "postgres  COPY {what:<9} {:>8.0} rows/s  (the same file into a bare table, {seconds:.1} s)",
                            rows as f64 / seconds
                        );
                        println!("  {line}");
                        summary.push(line);
                    }
                    None => println!("  (psql not found: no COPY baseline)"),
                }
            }
        }
        let _ = server.kill();
        let _ = server.wait();
    }
    println!("\nsummary");
    for line in summary {
        println!("  {line}");
    }
}

const PIPELINE: &str = r#"{"name":"Bench","stages":[{"name":"A","probability":10},{"name":"B","probability":30},{"name":"C","probability":50},{"name":"D","probability":70},{"name":"E","probability":80},{"name":"Won","kind":"won"},{"name":"Lost","kind":"lost"}]}"#;
const LEAD_COLUMNS: &str = "email text, first_name text, last_name text, company text, industry text, region text, source text, budget text, tags text, external_id text";
const DEAL_COLUMNS: &str = "name text, pipeline text, amount text, expected_close_date text, source text, region text, external_id text, stage_history text";

fn write_leads(path: &Path, n: usize) {
    if path.exists() {
        return;
    }
    let mut w = BufWriter::new(std::fs::File::create(path).expect("lead file"));
    writeln!(
        w,
        "email,first_name,last_name,Company Name,industry,region,source,budget,tags,external_id"
    )
    .unwrap();
    let industries = ["SaaS", "教育", "医疗", "制造", "零售"];
    let sources = ["web_form", "ads", "event", "referral", "outbound"];
    let budgets = ["unknown", "planned", "approved"];
    for i in 0..n {
        writeln!(
            w,
            "lead{i}@example.com,名{i},姓{},公司 {},{},华东,{},{},vip;q{},L-{i}",
            i % 97,
            i % 5000,
            industries[i % 5],
            sources[i % 5],
            budgets[i % 3],
            i % 4
        )
        .unwrap();
    }
}

fn write_deals(path: &Path, n: usize, history: usize) {
    if path.exists() {
        return;
    }
    let mut w = BufWriter::new(std::fs::File::create(path).expect("deal file"));
    writeln!(
        w,
        "name,pipeline,amount,expected_close_date,source,region,external_id,stage_history"
    )
    .unwrap();
    let stages = ["A", "B", "C", "D", "E"];
    let base = chrono::NaiveDate::from_ymd_opt(2023, 1, 1)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap();
    for i in 0..n {
        let start = base + chrono::Duration::minutes((i % 500_000) as i64);
        let entries: Vec<String> = (0..history.min(stages.len()))
            .map(|k| {
                let at = start + chrono::Duration::days(7 * k as i64);
                format!("{}:{}", stages[k], at.format("%Y-%m-%dT%H:%M:%SZ"))
            })
            .collect();
        writeln!(
            w,
            "商机 {i},Bench,{}.00,2025-06-30,ads,华南,D-{i},{}",
            1000 + (i % 9000),
            entries.join(";")
        )
        .unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start(url: &str, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stageflow"))
        .env("STAGEFLOW_DATABASE_URL", url)
        .env("STAGEFLOW_BIND", format!("127.0.0.1:{port}"))
        .env("STAGEFLOW_ADMIN_EMAIL", ADMIN)
        .env("STAGEFLOW_ADMIN_PASSWORD", PASSWORD)
        .env(
            "STAGEFLOW_JWT_SECRET",
            "bench-secret-bench-secret-bench-secret-42",
        )
        .env("STAGEFLOW_LOG", "warn")
        .env("STAGEFLOW_RATE_LIMIT_PER_MINUTE", "100000")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the server");
    for _ in 0..600 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not start");
}

fn sign_in(port: u16) -> String {
    let body = format!(r#"{{"email":"{ADMIN}","password":"{PASSWORD}"}}"#);
    let res = request(port, "POST", "/api/v1/auth/token", "", Some(&body));
    res["access_token"].as_str().expect("a token").to_owned()
}

/// A small JSON request; answers the JSON body.
fn request(port: u16, method: &str, path: &str, token: &str, body: Option<&str>) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    read_response(s)
}

/// Streams a file with chunked transfer encoding; answers the JSON body.
fn post_file(port: u16, path: &str, token: &str, file: &PathBuf) -> Value {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut w = BufWriter::with_capacity(1 << 20, s.try_clone().expect("clone"));
    write!(
        w,
        "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut f = std::fs::File::open(file).expect("file");
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        write!(w, "{n:x}\r\n").unwrap();
        w.write_all(&buf[..n]).expect("send");
        w.write_all(b"\r\n").unwrap();
    }
    w.write_all(b"0\r\n\r\n").unwrap();
    w.flush().unwrap();
    read_response(s)
}

fn read_response(s: TcpStream) -> Value {
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    let mut chunked = false;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("header");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if line
            .to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
        {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).expect("chunk");
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut body).expect("body");
    }
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert!(
        status.contains(" 200 ") || status.contains(" 201 "),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    value
}

/// The largest resident set of the process so far (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// PostgreSQL's own `COPY` of the same file into a bare table: rows and seconds.
fn copy_baseline(url: &str, file: &Path, columns: &str) -> Option<(usize, f64)> {
    let table = "bench_copy_baseline";
    let sql = format!(
        "SET client_min_messages = warning; DROP TABLE IF EXISTS {table}; CREATE UNLOGGED TABLE {table} ({columns});"
    );
    Command::new("psql")
        .args([url, "-qc", &sql])
        .status()
        .ok()?;
    let started = Instant::now();
    let out = Command::new("psql")
        .args([
            url,
            "-qc",
            &format!("\\copy {table} FROM '{}' CSV HEADER", file.display()),
        ])
        .output()
        .ok()?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!("COPY failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let count = Command::new("psql")
        .args([url, "-tAc", &format!("SELECT count(*) FROM {table}; ")])
        .output()
        .ok()?;
    let rows = String::from_utf8_lossy(&count.stdout).trim().parse().ok()?;
    Command::new("psql")
        .args([url, "-qc", &format!("DROP TABLE {table}")])
        .status()
        .ok()?;
    Some((rows, seconds))
}
