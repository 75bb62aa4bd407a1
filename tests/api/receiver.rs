//! A real HTTP receiver for outbound webhooks on 127.0.0.1: it records what arrives
//! and answers as a test scripts it (a status, or a delay past the sender's timeout).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One delivery as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// How the receiver answers the next request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// Waits this long, then answers 200.
    Slow(Duration),
    /// 307 to another address.
    Redirect(&'static str),
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    script: VecDeque<Answer>,
    delay: Option<Duration>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

impl Receiver {
    /// Starts a receiver on a free port; it answers 204 unless scripted.
    pub async fn start() -> Receiver {
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind the receiver");
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks"),
            shared,
        }
    }

    /// The next answers, in order (then 204 again).
    pub fn script(&self, answers: &[Answer]) {
        self.shared
            .lock()
            .unwrap()
            .script
            .extend(answers.iter().copied());
    }

    /// Every request waits this long before its answer (overlap for concurrency tests).
    pub fn delay_all(&self, d: Duration) {
        self.shared.lock().unwrap().delay = Some(d);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    pub fn types(&self) -> Vec<String> {
        self.received().iter().map(Received::event_type).collect()
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Mutex<Shared>>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (answer, delay) = {
        let mut s = shared.lock().unwrap();
        s.received.push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        (s.script.pop_front(), s.delay)
    };
    if let Some(d) = delay {
        actix_web::rt::time::sleep(d).await;
    }
    match answer {
        Some(Answer::Status(code)) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                .body("scripted answer")
        }
        Some(Answer::Slow(d)) => {
            actix_web::rt::time::sleep(d).await;
            HttpResponse::Ok().finish()
        }
        Some(Answer::Redirect(to)) => HttpResponse::TemporaryRedirect()
            .insert_header(("location", to))
            .finish(),
        None => HttpResponse::NoContent().finish(),
    }
}

/// The Standard Webhooks check, written here from the specification, apart from the
/// service's own signing code: HMAC-SHA256 keyed by the base64 part of the `whsec_`
/// secret, over `id.timestamp.body`, as `v1,<base64>`.
pub fn verify(secret: &str, r: &Received) -> bool {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("a base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    r.signature.split(' ').any(|s| s == expected)
}

#[::core::prelude::v1::test]
fn the_independent_check_passes_the_known_answer() {
    let r = Received {
        id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk".into(),
        timestamp: "1649367553".into(),
        signature: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=".into(),
        body: r#"{"email":"test@example.com","username":"test_user"}"#.into(),
    };
    assert!(verify("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &r));
    let forged = Received {
        body: r#"{"email":"test@example.com","username":"test_user2"}"#.into(),
        ..r
    };
    assert!(!verify("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &forged));
}
