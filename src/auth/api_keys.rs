//! API keys for machines: `sfk_<prefix>_<secret>`. Only a SHA-256 of the secret is
//! stored (the secret is 190 random bits, so a slow hash adds nothing); the prefix finds
//! the row and the hashes are compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::password::random_token;
use crate::error::AppResult;

pub use crate::domain::user::Scope;

pub struct NewKey {
    pub prefix: String,
    pub secret_hash: String,
    /// The full key, shown to the caller once.
    pub plaintext: String,
}

pub fn generate() -> AppResult<NewKey> {
    let prefix = random_token(10)?;
    let secret = random_token(33)?;
    Ok(NewKey {
        secret_hash: hash_secret(&secret),
        plaintext: format!("sfk_{prefix}_{secret}"),
        prefix,
    })
}

/// Splits `sfk_<prefix>_<secret>`; `None` when the shape is wrong.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("sfk_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 10 && !secret.is_empty()).then_some((prefix, secret))
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    hex(&digest)
}

pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_match() {
        let k = generate().unwrap();
        let (prefix, secret) = parse(&k.plaintext).unwrap();
        assert_eq!(prefix, k.prefix);
        assert!(secret_matches(secret, &k.secret_hash));
        assert!(!secret_matches("nope", &k.secret_hash));
        assert!(parse("sfk_short_x").is_none());
        assert!(parse("Bearer abc").is_none());
    }
}
