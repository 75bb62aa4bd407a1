//! Typed record ids: an `OpportunityId` cannot be passed where a `StageId` is expected,
//! so `count_in_stage(conn, &deal.pipeline_id)` does not compile.
//!
//! Every id is the canonical text of a UUID (`0191f7a2-…`, lower case), as the API
//! shows it; the kind is only a type parameter and costs nothing at run time. The
//! storage layer binds and reads these as its id column type (see `storage::uid`); the
//! domain knows only the text. An id read from a request is whatever text the client
//! sent: one that is not canonical names no record, and the lookup says "not found".

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

/// An id of a record of kind `K` (one of the markers in [`kind`]).
pub struct Id<K> {
    text: String,
    kind: PhantomData<fn() -> K>,
}

/// The kinds of record with a typed id. Uninhabited: they exist only as type parameters.
pub mod kind {
    pub enum Opportunity {}
    pub enum Stage {}
    pub enum Pipeline {}
    pub enum User {}
    pub enum Lead {}
    pub enum Account {}
    pub enum Contact {}
    pub enum Activity {}
    pub enum Team {}
    pub enum CaptureSource {}
    pub enum Webhook {}
    pub enum ApiKey {}
    pub enum ImportJob {}
    pub enum Transition {}
    pub enum Delivery {}
    pub enum Snapshot {}
}

pub type OpportunityId = Id<kind::Opportunity>;
pub type StageId = Id<kind::Stage>;
pub type PipelineId = Id<kind::Pipeline>;
pub type UserId = Id<kind::User>;
pub type LeadId = Id<kind::Lead>;
pub type AccountId = Id<kind::Account>;
pub type ContactId = Id<kind::Contact>;
pub type ActivityId = Id<kind::Activity>;
pub type TeamId = Id<kind::Team>;
pub type CaptureSourceId = Id<kind::CaptureSource>;
pub type WebhookId = Id<kind::Webhook>;
pub type ApiKeyId = Id<kind::ApiKey>;
pub type ImportJobId = Id<kind::ImportJob>;
pub type TransitionId = Id<kind::Transition>;
pub type DeliveryId = Id<kind::Delivery>;
pub type SnapshotId = Id<kind::Snapshot>;

impl<K> Id<K> {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

impl<K> From<String> for Id<K> {
    fn from(text: String) -> Self {
        Id {
            text,
            kind: PhantomData,
        }
    }
}

impl<K> From<&str> for Id<K> {
    fn from(text: &str) -> Self {
        Id::from(text.to_owned())
    }
}

impl<K> From<Id<K>> for String {
    fn from(id: Id<K>) -> String {
        id.text
    }
}

impl<K> std::ops::Deref for Id<K> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl<K> AsRef<str> for Id<K> {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl<K> std::borrow::Borrow<str> for Id<K> {
    fn borrow(&self) -> &str {
        &self.text
    }
}

impl<K> Clone for Id<K> {
    fn clone(&self) -> Self {
        Id::from(self.text.clone())
    }
}

impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<K> Eq for Id<K> {}

impl<K> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl<K> Hash for Id<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}

impl<K> PartialEq<str> for Id<K> {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl<K> PartialEq<&str> for Id<K> {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl<K> PartialEq<String> for Id<K> {
    fn eq(&self, other: &String) -> bool {
        &self.text == other
    }
}

impl<K> PartialEq<Id<K>> for String {
    fn eq(&self, other: &Id<K>) -> bool {
        self == &other.text
    }
}

impl<K> PartialEq<Id<K>> for str {
    fn eq(&self, other: &Id<K>) -> bool {
        self == other.text
    }
}

impl<K> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<K> serde::Serialize for Id<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de, K> serde::Deserialize<'de> for Id<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Id::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_text() {
        let id = StageId::from("0191f7a2-0000-7000-8000-000000000001");
        assert_eq!(id.to_string(), "0191f7a2-0000-7000-8000-000000000001");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"0191f7a2-0000-7000-8000-000000000001\""
        );
        let back: StageId = serde_json::from_str("\"0191f7a2-0000-7000-8000-000000000001\"")
            .expect("an id reads from a JSON string");
        assert_eq!(back, id);
        assert!(id == "0191f7a2-0000-7000-8000-000000000001");
        assert!(serde_json::from_str::<StageId>("12").is_err());
    }
}
