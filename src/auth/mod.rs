//! Identity: password hashing, JWT access tokens, API keys, the `Caller` extractor and
//! visibility scoping.

pub mod api_keys;
pub mod caller;
pub mod jwt;
pub mod links;
pub mod password;
pub mod rate_limit;

/// Visibility is a storage filter; identity only works out which one a caller has.
pub use crate::storage::visibility::{self, Visibility};
pub use caller::Caller;
