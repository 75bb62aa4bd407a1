//! The delivery worker: takes due deliveries from the outbox (a short claim
//! transaction, `FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas never send the same
//! delivery at once), sends them without holding a database connection, and records
//! each attempt. At least once, in order per record and subscription.
//!
//! Retries: the n-th failure waits `base · 2^(n−1)` (10 s, 20 s, 40 s, … up to 12 h),
//! ±20 % jitter so that receivers coming back are not hit by every sender at once,
//! until the schedule would pass the window (3 days by default): then the delivery is
//! `failed`. `410 Gone` disables the subscription and fails the delivery at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::guard::{self, GuardedResolver, Networks};
use super::signing::standard_signature;
use crate::config::Settings;
use crate::error::{AppError, AppResult};
use crate::storage::webhooks::{self, Claimed, Next, Outcome};
use crate::storage::{self, Backend, DbPool};

/// How many deliveries one claim takes (sent concurrently).
const BATCH: i64 = 32;
/// How much of a receiver's answer is read (and then dropped).
const MAX_RESPONSE_BYTES: usize = 4096;
/// How much of a failed answer is kept in the delivery log.
const KEPT_RESPONSE_CHARS: usize = 200;
/// How long ended deliveries stay in the log.
const KEEP_DAYS: i64 = 30;
/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(12 * 3600);

/// Sends deliveries.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    networks: Arc<Networks>,
    retry_base: Duration,
    retry_window: Duration,
    timeout: Duration,
}

impl Deliverer {
    pub fn new(settings: &Settings) -> AppResult<Deliverer> {
        let networks = Arc::new(
            Networks::parse(&settings.webhook_allowed_networks).map_err(AppError::internal)?,
        );
        let timeout = Duration::from_millis(settings.webhook_timeout_ms.max(1));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself, around the guard.
            .no_proxy()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .dns_resolver(Arc::new(GuardedResolver(networks.clone())))
            .user_agent(concat!("stageflow-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(AppError::internal)?;
        Ok(Deliverer {
            client,
            networks,
            retry_base: Duration::from_millis(settings.webhook_retry_base_ms.max(1)),
            retry_window: Duration::from_secs(settings.webhook_retry_window_secs),
            timeout,
        })
    }

    /// The lease a claim takes: longer than any attempt can last.
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.timeout * 2 + Duration::from_secs(30))
            .unwrap_or(chrono::Duration::minutes(5))
    }

    /// The nominal wait after the `n`-th failed attempt (n ≥ 1).
    fn delay(&self, n: i32) -> Duration {
        let factor = 2u32.saturating_pow(u32::try_from(n - 1).unwrap_or(0).min(30));
        self.retry_base.saturating_mul(factor).min(MAX_DELAY)
    }

    /// Where a delivery goes after its `n`-th failed attempt at `at`.
    fn after_failure(&self, n: i32, at: NaiveDateTime) -> Next {
        let scheduled: Duration = (1..=n).map(|k| self.delay(k)).sum();
        if scheduled > self.retry_window {
            return Next::Failed;
        }
        let jitter = 0.8 + 0.4 * random_unit();
        let wait = self.delay(n).mul_f64(jitter);
        Next::RetryAt(at + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(12)))
    }

    /// One attempt of a claimed delivery.
    pub async fn send(&self, c: &Claimed) -> (Outcome, bool) {
        let attempted_at = storage::now();
        let started = Instant::now();
        let answer = self.post(c).await;
        let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let n = c.delivery.attempts + 1;
        let (status, error, next, gone) = match answer {
            Ok((code, _)) if (200..300).contains(&code) => {
                (Some(code), None, Next::Delivered, false)
            }
            Ok((410, _)) => (
                Some(410),
                Some("410 Gone: the subscription was disabled".to_owned()),
                Next::Failed,
                true,
            ),
            Ok((code, body)) => (
                Some(code),
                Some(format!("HTTP {code}: {body}")),
                self.after_failure(n, attempted_at),
                false,
            ),
            Err(e) => (None, Some(e), self.after_failure(n, attempted_at), false),
        };
        let outcome = Outcome {
            delivery_id: c.delivery.id.clone(),
            lease: c.delivery.locked_until,
            subscription_id: c.delivery.subscription_id.clone(),
            attempted_at,
            response_status: status,
            latency_ms,
            error,
            next,
        };
        (outcome, gone)
    }

    /// Posts the event; answers the status and the start of the body, or why nothing
    /// was answered.
    async fn post(&self, c: &Claimed) -> Result<(i32, String), String> {
        let (url, host, port) = guard::target(&c.url).map_err(|r| r.message)?;
        // Names go through the resolver; an address in the URL is checked here.
        if host.parse::<std::net::IpAddr>().is_ok() {
            guard::resolve(&host, port, &self.networks)
                .await
                .map_err(|r| r.message)?;
        }
        let timestamp = chrono::Utc::now().timestamp();
        let body = c.event.payload.clone().into_bytes();
        let signature = standard_signature(&c.secret, &c.event.id, timestamp, &body)
            .ok_or("the subscription's secret is not a whsec_ secret")?;
        let mut response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &c.event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(describe)?;
        let status = i32::from(response.status().as_u16());
        let mut kept = Vec::new();
        while kept.len() < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        let text: String = String::from_utf8_lossy(&kept)
            .chars()
            .take(KEPT_RESPONSE_CHARS)
            .collect();
        Ok((status, text))
    }
}

fn describe(e: reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A uniform number in [0, 1) from the system's randomness (0.5 if it fails).
fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Claims due deliveries, sends them concurrently and records the attempts. Answers how
/// many were sent.
pub async fn run_once(pool: &DbPool, backend: Backend, deliverer: &Deliverer) -> AppResult<usize> {
    let lease = deliverer.lease();
    let now = storage::now();
    let claimed = storage::run(pool, move |c| {
        webhooks::claim(c, backend, now, lease, BATCH)
    })
    .await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let sent = futures_util::future::join_all(claimed.iter().map(|c| deliverer.send(c))).await;
    let n = sent.len();
    storage::run_tx(pool, move |conn| {
        for (outcome, gone) in &sent {
            webhooks::record(conn, outcome)?;
            if *gone {
                webhooks::disable(
                    conn,
                    &outcome.subscription_id,
                    "the receiver answered 410 Gone",
                )?;
            }
        }
        Ok(())
    })
    .await?;
    Ok(n)
}

/// Announces deals that stalled since the last scan (`opportunity.stalled`, once per
/// stay in a stage). Answers how many.
pub async fn scan_stalls(pool: &DbPool, backend: Backend) -> AppResult<usize> {
    storage::run_tx(pool, move |conn| {
        let wanted = webhooks::active_subscriptions(conn)?.iter().any(|s| {
            s.events
                .contains(&crate::domain::integration::EventType::OpportunityStalled)
        });
        if !wanted {
            return Ok(0);
        }
        let deals = webhooks::take_new_stalls(conn, backend, storage::now(), 500)?;
        for d in &deals {
            crate::crm::events::stalled(conn, d)?;
        }
        Ok(deals.len())
    })
    .await
}

/// The background loop of one process: deliveries whenever some are due, stalled deals
/// every `stall_every`.
pub async fn work(
    pool: DbPool,
    backend: Backend,
    deliverer: Deliverer,
    poll: Duration,
    stall_every: Duration,
) {
    let mut last_scan: Option<Instant> = None;
    let mut last_purge: Option<Instant> = None;
    loop {
        if last_scan.is_none_or(|t| t.elapsed() >= stall_every) {
            last_scan = Some(Instant::now());
            if let Err(e) = scan_stalls(&pool, backend).await {
                tracing::warn!(error = %e, "stalled-deal scan failed");
            }
        }
        if last_purge.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            last_purge = Some(Instant::now());
            let before = storage::now() - chrono::Duration::days(KEEP_DAYS);
            if let Err(e) = storage::run(&pool, move |c| webhooks::purge(c, before)).await {
                tracing::warn!(error = %e, "delivery log purge failed");
            }
        }
        match run_once(&pool, backend, &deliverer).await {
            Ok(0) => actix_web::rt::time::sleep(poll).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery round failed");
                actix_web::rt::time::sleep(poll).await;
            }
        }
    }
}
