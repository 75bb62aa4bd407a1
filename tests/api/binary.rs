//! Tests of the real `stageflow` binary: killed with SIGKILL in the middle of
//! concurrent writes it keeps every write it acknowledged; start-up failures exit
//! non-zero with the real cause; `demo-data` leaves an admin to sign in as.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Backend, TestDb, ADMIN_EMAIL, PASSWORD};

const BINARY: &str = env!("CARGO_BIN_EXE_stageflow");
const WRITERS: usize = 6;

fn command(database_url: &str) -> Command {
    let mut cmd = Command::new(BINARY);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("STAGEFLOW_CONFIG", "/dev/null")
        .env("STAGEFLOW_DATABASE_URL", database_url)
        .env(
            "STAGEFLOW_JWT_SECRET",
            "crash-test-secret-that-is-long-enough-0123",
        )
        .env("STAGEFLOW_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("STAGEFLOW_ADMIN_PASSWORD", PASSWORD)
        .env("STAGEFLOW_RATE_LIMIT_PER_MINUTE", "1000000")
        .env("STAGEFLOW_LOG", "warn");
    cmd
}

/// One HTTP/1.1 exchange on a fresh connection: `(status, body)`.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(database_url: &str) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = command(database_url)
            .arg("serve")
            .env("STAGEFLOW_BIND", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server");
        let mut server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http(port, "GET", "/health/ready", None, "").map(|r| r.0) != Some(200) {
            assert!(
                server.child.try_wait().expect("server state").is_none(),
                "the server exited during start-up"
            );
            assert!(Instant::now() < deadline, "the server did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        server.port = port;
        server
    }

    fn token(&self) -> String {
        let body = format!(r#"{{"email":"{ADMIN_EMAIL}","password":"{PASSWORD}"}}"#);
        let (status, body) =
            http(self.port, "POST", "/api/v1/auth/token", None, &body).expect("sign in");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        v["access_token"].as_str().expect("token").to_owned()
    }

    fn kill(mut self) {
        // SIGKILL: no shutdown hooks, no flushing beyond what was committed.
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn acknowledged_writes_survive_sigkill(backend: Backend) {
    let Some((_db, url)) = TestDb::create(backend) else {
        return;
    };
    let server = Server::start(&url);
    let token = Arc::new(server.token());
    let port = server.port;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (token, acknowledged, killed) =
                (token.clone(), acknowledged.clone(), killed.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let body = format!(r#"{{"company":"Crash {w}-{i}","tags":["crash"]}}"#);
                    match http(port, "POST", "/api/v1/leads", Some(&token), &body) {
                        Some((201, body)) => {
                            let v: Value = serde_json::from_str(&body).expect("json");
                            let id = v["id"].as_str().expect("id").to_owned();
                            acknowledged.lock().unwrap().push(id);
                        }
                        Some((status, body)) if !killed.load(Ordering::SeqCst) => {
                            panic!("write refused before the kill: {status} {body}")
                        }
                        // The connection broke or the answer was cut by the kill.
                        _ => break,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    killed.store(true, Ordering::SeqCst);
    server.kill();
    for w in writers {
        w.join().expect("writer");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 10,
        "only {} writes",
        acknowledged.len()
    );

    // The restarted server recovers the database and holds every acknowledged lead.
    let server = Server::start(&url);
    let token = server.token();
    let mut stored = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/leads?tag=crash&limit=500&cursor={c}"),
            None => "/api/v1/leads?tag=crash&limit=500".to_owned(),
        };
        let (status, body) = http(server.port, "GET", &path, Some(&token), "").expect("list");
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).expect("json");
        for lead in page["data"].as_array().expect("data") {
            stored.insert(lead["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes were lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    println!(
        "{backend:?}: {} acknowledged writes, all present after SIGKILL and restart",
        acknowledged.len()
    );
}

#[test]
fn sqlite_keeps_acknowledged_writes_through_sigkill() {
    acknowledged_writes_survive_sigkill(Backend::Sqlite);
}

#[test]
fn postgres_keeps_acknowledged_writes_through_sigkill() {
    acknowledged_writes_survive_sigkill(Backend::Postgres);
}

/// A database that cannot be reached stops start-up with a non-zero exit and the
/// driver's own reason.
#[test]
fn an_unreachable_database_exits_non_zero_with_the_cause() {
    for (url, cause) in [
        ("postgres://postgres@127.0.0.1:1/none", "Connection refused"),
        (
            "postgres://postgres@127.0.0.1:5432/none?sslmode=bogus",
            "sslmode",
        ),
    ] {
        let out = command(url).arg("migrate").output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: exited successfully");
        assert!(stderr.contains(cause), "{url}: {stderr}");
    }
}

/// `demo-data` on a fresh database creates the configured admin before its demo users,
/// says so, and the server then lets that admin sign in.
#[test]
fn demo_data_keeps_the_configured_admin() {
    let Some((_db, url)) = TestDb::create(Backend::Sqlite) else {
        return;
    };
    let out = command(&url)
        .args(["demo-data", "--opportunities", "40"])
        .output()
        .expect("run demo-data");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("Created admin {ADMIN_EMAIL}")),
        "{stdout}"
    );
    let server = Server::start(&url);
    assert!(!server.token().is_empty());
}

/// `stageflow import` writes a file into the configured database as the API would, and
/// a dry run writes nothing.
#[test]
fn the_import_command_reports_like_the_api() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some((_db, url)) = TestDb::create(backend) else {
            continue;
        };
        let dir = std::env::temp_dir().join(format!("stageflow-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("leads.csv");
        std::fs::write(
            &file,
            "E-mail,Company Name\nA@example.com,Acme\nnot-an-email,Zeta\n",
        )
        .expect("file");
        let run = |extra: &[&str]| {
            let out = command(&url)
                .args(["import", file.to_str().unwrap(), "--kind", "leads"])
                .args(extra)
                .output()
                .expect("run import");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout).expect("a JSON report")
        };
        let dry = run(&["--dry-run"]);
        assert_eq!(
            (dry["created"].as_u64(), dry["failed"].as_u64()),
            (Some(1), Some(1))
        );
        let real = run(&[]);
        assert_eq!(
            (real["created"].as_u64(), real["failed"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(real["errors"][0]["field"], "email");
        let again = run(&[]);
        assert_eq!(again["unchanged"].as_u64(), Some(1), "{again}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
