//! HS256 access tokens with a pinned algorithm and required `exp`, `nbf`, `iss`, `aud`, `sub`.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::links::LinkKey;
use crate::domain::ids::UserId;
use crate::error::{AppError, AppResult};

pub const MIN_SECRET_BYTES: usize = 32;

/// The configured secret is too short to sign with.
#[derive(Debug, thiserror::Error)]
#[error("the JWT secret must be at least {MIN_SECRET_BYTES} bytes (got {0})")]
pub struct SecretTooShort(pub usize);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: UserId,
    pub role: String,
    pub team_id: Option<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// The user's token generation when the token was issued; a password change or a
    /// deactivation moves it on and so revokes every earlier token.
    #[serde(default)]
    pub gen: i64,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    pub ttl_secs: i64,
    /// Signs and verifies report links; derived from the same secret.
    pub links: LinkKey,
}

impl JwtKeys {
    pub fn new(
        secret: &[u8],
        issuer: &str,
        audience: &str,
        ttl_secs: i64,
    ) -> Result<Self, SecretTooShort> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretTooShort(secret.len()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 30;
        Ok(JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs,
            links: LinkKey::derive(secret),
        })
    }

    pub fn issue(
        &self,
        user_id: &str,
        role: &str,
        team_id: Option<&str>,
        generation: i64,
    ) -> AppResult<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.into(),
            role: role.to_owned(),
            team_id: team_id.map(str::to_owned),
            iat: now,
            nbf: now,
            exp: now + self.ttl_secs,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            gen: generation,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)
    }

    /// Verifies signature, algorithm and claims; any failure is one opaque 401.
    pub fn verify(&self, token: &str) -> AppResult<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                tracing::debug!(error = %e, "token rejected");
                AppError::Unauthorized("The access token is invalid or expired.".into())
            })
    }

    /// Signs arbitrary claims with this key (tests build bad tokens with it).
    pub fn sign_raw(&self, claims: &serde_json::Value) -> AppResult<String> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(AppError::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&[7u8; 32], "stageflow", "stageflow-api", 60).unwrap()
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtKeys::new(&[1u8; 31], "i", "a", 60).is_err());
    }

    #[test]
    fn issued_tokens_verify() {
        let k = keys();
        let t = k.issue("u1", "rep", Some("t1"), 3).unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.role.as_str(), c.team_id.as_deref()),
            ("u1", "rep", Some("t1"))
        );
        assert_eq!(c.gen, 3);
    }

    #[test]
    fn missing_or_wrong_claims_fail() {
        let k = keys();
        let now = chrono::Utc::now().timestamp();
        let good = serde_json::json!({"sub":"u","role":"rep","iat":now,"nbf":now,"exp":now+60,"iss":"stageflow","aud":"stageflow-api"});
        assert!(k.verify(&k.sign_raw(&good).unwrap()).is_ok());
        for (key, value) in [
            ("aud", serde_json::json!("other")),
            ("iss", serde_json::json!("other")),
            ("exp", serde_json::json!(now - 120)),
            ("nbf", serde_json::json!(now + 600)),
        ] {
            let mut c = good.clone();
            c[key] = value;
            assert!(
                k.verify(&k.sign_raw(&c).unwrap()).is_err(),
                "{key} accepted"
            );
        }
        for key in ["exp", "aud", "iss", "sub", "nbf"] {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove(key);
            assert!(
                k.verify(&k.sign_raw(&c).unwrap()).is_err(),
                "missing {key} accepted"
            );
        }
        let other = JwtKeys::new(&[8u8; 32], "stageflow", "stageflow-api", 60).unwrap();
        assert!(k
            .verify(&other.issue("u", "rep", None, 0).unwrap())
            .is_err());
    }
}
