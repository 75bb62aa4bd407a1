//! Signatures on both sides of an integration.
//!
//! - Outbound (Standard Webhooks): `webhook-signature: v1,<base64 HMAC-SHA256 of
//!   "<id>.<timestamp>.<body>">`, keyed by the base64 part of a `whsec_` secret.
//! - Inbound (capture sources of kind `webhook`): `X-Stageflow-Signature:
//!   t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, keyed by the source's secret
//!   as text; checked in constant time against the current secret and, during a
//!   rotation, the previous one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::password::random_token;
use crate::error::AppResult;

type HmacSha256 = Hmac<Sha256>;

/// How far an inbound signature's time may be from ours.
pub const TOLERANCE_SECS: i64 = 300;

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts any key length")
}

/// A new outbound signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_webhook_secret() -> AppResult<String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(crate::error::AppError::internal)?;
    Ok(format!("whsec_{}", STANDARD.encode(key)))
}

/// A new inbound (capture) secret.
pub fn new_capture_secret() -> AppResult<String> {
    Ok(format!("scs_{}", random_token(40)?))
}

/// The `webhook-signature` value for one message, or `None` when the secret is not a
/// `whsec_` secret (subscriptions only ever hold ones made by [`new_webhook_secret`]).
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut m = mac(&key);
    m.update(format!("{id}.{timestamp}.").as_bytes());
    m.update(body);
    Some(format!("v1,{}", STANDARD.encode(m.finalize().into_bytes())))
}

/// Why an inbound signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    Stale,
    Mismatch,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "the X-Stageflow-Signature header is missing",
            Refusal::Malformed => "X-Stageflow-Signature must read t=<unix time>,v1=<hex>",
            Refusal::Stale => "the signature's time is more than 5 minutes away",
            Refusal::Mismatch => "the signature does not match the body",
        }
    }
}

/// The hex HMAC-SHA256 of `"<t>.<body>"` under `secret`: what a sender computes.
pub fn capture_signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(format!("{t}.").as_bytes());
    m.update(body);
    hex(&m.finalize().into_bytes())
}

/// Checks `header` over `body` against each of `secrets`; answers the fingerprint of
/// the signature that matched (what a replay would repeat).
pub fn verify_capture(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&str],
    now_unix: i64,
) -> Result<String, Refusal> {
    let header = header.ok_or(Refusal::Missing)?;
    let mut t = None;
    let mut given = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| Refusal::Malformed)?),
            Some(("v1", v)) => given.push(v.to_ascii_lowercase()),
            Some(_) => {}
            None => return Err(Refusal::Malformed),
        }
    }
    let t = t.ok_or(Refusal::Malformed)?;
    if given.is_empty() {
        return Err(Refusal::Malformed);
    }
    if now_unix.abs_diff(t) > TOLERANCE_SECS.unsigned_abs() {
        return Err(Refusal::Stale);
    }
    for secret in secrets {
        let expected = capture_signature(secret, t, body);
        for v in &given {
            if bool::from(expected.as_bytes().ct_eq(v.as_bytes())) {
                return Ok(hex(&Sha256::digest(expected.as_bytes())));
            }
        }
    }
    Err(Refusal::Mismatch)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_known_answer() {
        let sig = standard_signature(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
        );
    }

    #[test]
    fn new_secrets_sign() {
        let s = new_webhook_secret().unwrap();
        assert!(standard_signature(&s, "msg_1", 1, b"{}").is_some());
        assert_ne!(s, new_webhook_secret().unwrap());
    }

    #[test]
    fn capture_signatures_check_time_secret_and_body() {
        let body = br#"{"email":"a@b.c"}"#;
        let t = 1_700_000_000;
        let header = format!("t={t},v1={}", capture_signature("s1", t, body));
        let ok = verify_capture(Some(&header), body, &["s0", "s1"], t + 10);
        assert!(ok.is_ok());
        assert_eq!(
            verify_capture(Some(&header), body, &["s0"], t),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify_capture(Some(&header), b"{}", &["s1"], t),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify_capture(Some(&header), body, &["s1"], t + 301),
            Err(Refusal::Stale)
        );
        assert_eq!(
            verify_capture(None, body, &["s1"], t),
            Err(Refusal::Missing)
        );
        assert_eq!(
            verify_capture(Some("v1=abc"), body, &["s1"], t),
            Err(Refusal::Malformed)
        );
        let far = format!("t={},v1=00", i64::MIN);
        assert_eq!(
            verify_capture(Some(&far), body, &["s1"], t),
            Err(Refusal::Stale)
        );
    }
}
