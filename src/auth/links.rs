//! Signed links: short-lived URLs that stand in for `Authorization` where a client cannot
//! send a header (an `<img src>`). A link names its signer and an expiry and carries an
//! HMAC-SHA256 over the signer's binding, the report, its exact parameters and the
//! expiry. The key is derived from the token secret, so every replica verifies what any
//! replica signed, and no second secret has to be configured.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::ids::UserId;

/// Lifetime of a link unless the request asks otherwise (15 minutes).
pub const DEFAULT_TTL_SECS: i64 = 15 * 60;
pub const MIN_TTL_SECS: i64 = 60;
pub const MAX_TTL_SECS: i64 = 60 * 60;

/// Separates link MACs from every other use of the token secret: a link signature can
/// never be replayed as a JWT signature, nor the other way round.
const KEY_LABEL: &[u8] = b"stageflow signed report links v1";

type HmacSha256 = Hmac<Sha256>;

pub struct LinkKey([u8; 32]);

impl LinkKey {
    pub fn derive(secret: &[u8]) -> LinkKey {
        LinkKey(mac_of(secret, KEY_LABEL))
    }

    /// The MAC over `fields`, encoded as a JSON array so that no two different field
    /// lists (a value with a separator in it, an absent against an empty value) share
    /// one message.
    fn mac(&self, fields: &[Option<&str>]) -> [u8; 32] {
        let message = serde_json::to_vec(fields).unwrap_or_default();
        mac_of(&self.0, &message)
    }

    /// The `signature` parameter for `signer`, whose current `binding` (see
    /// [`crate::auth::caller::link_signer`]) is covered with `fields`.
    pub fn sign(&self, signer: &Signer, binding: &str, fields: &[Option<&str>]) -> String {
        let mac = self.mac(&with_binding(binding, fields));
        format!("{}.{}", signer.encode(), URL_SAFE_NO_PAD.encode(mac))
    }

    /// Compares in constant time, so the answer's timing says nothing about how much of
    /// a forged MAC was right.
    pub fn verify(&self, signature: &Signature, binding: &str, fields: &[Option<&str>]) -> bool {
        let expected = self.mac(&with_binding(binding, fields));
        bool::from(expected.as_slice().ct_eq(&signature.mac))
    }
}

fn with_binding<'a>(binding: &'a str, fields: &[Option<&'a str>]) -> Vec<Option<&'a str>> {
    std::iter::once(Some(binding))
        .chain(fields.iter().copied())
        .collect()
}

fn mac_of(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Who signed a link: a person, or an API key (whose scopes still apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    User(UserId),
    Key(String),
}

impl Signer {
    fn encode(&self) -> String {
        match self {
            Signer::User(id) => format!("u.{id}"),
            Signer::Key(id) => format!("k.{id}"),
        }
    }
}

/// A parsed `signature` parameter: `u.<user id>.<mac>` or `k.<API key id>.<mac>`, the MAC
/// in unpadded base64url.
#[derive(Debug, Clone)]
pub struct Signature {
    pub signer: Signer,
    mac: Vec<u8>,
}

impl Signature {
    pub fn parse(text: &str) -> Option<Signature> {
        let mut parts = text.split('.');
        let (kind, id, mac) = (parts.next()?, parts.next()?, parts.next()?);
        // Ids are UUIDs; anything else never reaches the database.
        let id_like = |c: char| c.is_ascii_alphanumeric() || c == '-';
        if parts.next().is_some() || id.is_empty() || id.len() > 64 || !id.chars().all(id_like) {
            return None;
        }
        let signer = match kind {
            "u" => Signer::User(id.into()),
            "k" => Signer::Key(id.to_owned()),
            _ => return None,
        };
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        (mac.len() == 32).then_some(Signature { signer, mac })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let mac = mac_of(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_signature_holds_only_for_what_was_signed() {
        let key = LinkKey::derive(&[7u8; 32]);
        let signer = Signer::User("u1".into());
        let fields = [Some("funnel.svg"), Some("p1"), None, Some("1700000000")];
        let signed = key.sign(&signer, "user:u1:0", &fields);
        let sig = Signature::parse(&signed).unwrap();
        assert_eq!(sig.signer, signer);
        assert!(key.verify(&sig, "user:u1:0", &fields));
        assert!(
            !key.verify(&sig, "user:u1:1", &fields),
            "another generation"
        );
        let moved = [Some("funnel.svg"), Some("p1"), Some(""), Some("1700000000")];
        assert!(
            !key.verify(&sig, "user:u1:0", &moved),
            "absent is not empty"
        );
        let other = LinkKey::derive(&[8u8; 32]);
        assert!(!other.verify(&sig, "user:u1:0", &fields), "another secret");
    }

    #[test]
    fn malformed_signatures_do_not_parse() {
        for bad in [
            "",
            "u.x",
            "x.id.AAAA",
            "u..AAAA",
            "u.id.!!",
            "u.id.AAAA",
            "u.a.b.c",
        ] {
            assert!(Signature::parse(bad).is_none(), "{bad}");
        }
        let mac = "A".repeat(43);
        assert!(Signature::parse(&format!("u.0190-ab.{mac}")).is_some());
        assert!(
            Signature::parse(&format!("u.a\0b.{mac}")).is_none(),
            "only id characters reach the database"
        );
    }
}
